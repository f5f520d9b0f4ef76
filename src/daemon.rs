//! `postdesk run`: the long-running tasks and their shutdown.
//!
//! One task per mailbox source and one outbox sender, all sharing the
//! store's writer thread. A root [`CancellationToken`] is threaded through
//! every loop; loops check it only between messages, never inside a
//! transaction or a send, so SIGTERM finishes the message in hand, commits
//! and exits. A [`TaskTracker`] lets shutdown wait for every task, with a
//! deadline below systemd's stop timeout.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, MaildirAction, MaildirConfig, SourceConfig};
use crate::health::Health;
use crate::mail::RawMail;
use crate::notify::template::Templates;
use crate::notify::{FlushStats, Outbox};
use crate::pipeline::{self, Analyzer};
use crate::plan::{Outcome, Policy};
use crate::source::maildir;
use crate::store::handle::StoreHandle;
use crate::store::ingest::{self, IngestItem, IngestReport, SourceEffects, Work};
use crate::supervisor::Supervisor;
use crate::systemd;

/// Messages per store transaction for a source pass.
const BATCH: usize = 64;
/// Waiting loops wake at least this often to beat their heartbeat.
pub const HEARTBEAT_STEP: Duration = Duration::from_secs(5);

/// What every task shares. Cheap to clone.
#[derive(Clone)]
pub struct Shared {
    pub store: StoreHandle,
    pub policy: Arc<Policy>,
    pub analyzer: Arc<Analyzer>,
    pub outbox: Outbox,
    /// Woken when new outbox rows were written, so acks go out at once
    /// instead of at the next poll.
    pub outbox_wake: Arc<Notify>,
    /// Woken when a message may have started or stopped a response clock,
    /// so the SLA timer looks at its next deadline again.
    pub sla_wake: Arc<Notify>,
    /// Task heartbeats and source state (watchdog, READY, status line).
    pub health: Health,
    pub stop: CancellationToken,
    /// TLS client configs, one per CA file, shared by the folders of this
    /// generation (building one parses every system root).
    pub tls: crate::tls::TlsConfigs,
}

/// Counts of one `--once` pass, for the summary.
#[derive(Debug, Default, Clone)]
pub struct PassSummary {
    pub reports: Vec<IngestReport>,
    /// Messages read but not stored (they stay in their source).
    pub failed: usize,
    /// Sources that could not be read at all (connection, login, folder).
    pub sources_failed: usize,
    pub outbox: FlushStats,
}

impl Shared {
    /// Opens the store and builds what the tasks need from the config
    /// (for one pass: `run --once`).
    pub async fn start(cfg: Config) -> anyhow::Result<Shared> {
        let store = StoreHandle::open(&cfg.store.path).await?;
        Shared::build(store, cfg, Health::new(), CancellationToken::new()).await
    }

    /// Builds what the tasks need from `cfg`, on an open store. A secret
    /// or CA file that cannot be read fails here, with the reason, rather
    /// than as an error logged by every outbox round.
    pub async fn build(
        store: StoreHandle,
        cfg: Config,
        health: Health,
        stop: CancellationToken,
    ) -> anyhow::Result<Shared> {
        let key_cfg = cfg.clone();
        let key = store
            .call(move |c| crate::store::token_key(c, &key_cfg))
            .await?;
        let dir = cfg.templates.dir.clone();
        let templates =
            tokio::task::spawn_blocking(move || Templates::load(dir.as_deref())).await??;
        let config = Arc::new(cfg);
        let outbox = Outbox::new(config.clone(), Arc::new(templates));
        outbox.ready().await?;
        let analyzer = Arc::new(Analyzer::new(&config));
        crate::pipeline::warm_up(analyzer.clone());
        Ok(Shared {
            store,
            analyzer,
            policy: Arc::new(Policy {
                config: (*config).clone(),
                key,
            }),
            outbox,
            outbox_wake: Arc::new(Notify::new()),
            sla_wake: Arc::new(Notify::new()),
            health,
            stop,
            tls: crate::tls::TlsConfigs::default(),
        })
    }

    fn config(&self) -> &Config {
        &self.policy.config
    }

    /// Stores an analyzed batch. Returns one result per message.
    pub async fn ingest(
        &self,
        items: Vec<IngestItem>,
    ) -> Vec<Result<IngestReport, crate::store::StoreError>> {
        self.ingest_since(items, std::time::Instant::now()).await
    }

    /// Like [`Shared::ingest`]; `read_at` is when the source read the
    /// batch, for the ingest latency metric (read → committed).
    pub async fn ingest_since(
        &self,
        items: Vec<IngestItem>,
        read_at: std::time::Instant,
    ) -> Vec<Result<IngestReport, crate::store::StoreError>> {
        let policy = self.policy.clone();
        let n = items.len();
        let results = self
            .store
            .call(move |c| {
                Ok(ingest::ingest_resilient(
                    c,
                    &items,
                    &policy,
                    Timestamp::now(),
                    false,
                ))
            })
            .await
            .unwrap_or_else(|e| {
                // The writer thread itself failed (shutting down): every
                // message stays in its source and is tried again.
                (0..n)
                    .map(|_| Err(crate::store::StoreError::Unavailable(e.to_string())))
                    .collect()
            });
        // After the commit is answered, not inside it (store/handle.rs).
        self.store.checkpoint_soon();
        let latency = read_at.elapsed();
        for r in results.iter().flatten() {
            crate::metrics::ingested(
                r.class.map(|c| c.as_str()).unwrap_or("none"),
                r.outcome.as_str(),
                latency,
            );
        }
        if results.iter().any(|r| r.as_ref().is_ok_and(|r| r.ack)) {
            self.outbox_wake.notify_one();
        }
        if results.iter().any(|r| {
            r.as_ref()
                .is_ok_and(|r| matches!(r.outcome, Outcome::Created | Outcome::Threaded))
        }) {
            self.sla_wake.notify_one();
        }
        results
    }
}

/// Runs the daemon until SIGTERM/SIGINT, or one pass with `once`.
pub async fn run(cfg: Config, once: bool) -> anyhow::Result<PassSummary> {
    if once {
        return run_once(Shared::start(cfg).await?).await;
    }
    let store = StoreHandle::open(&cfg.store.path).await?;
    let health = Health::new();
    let live = Arc::new(RwLock::new(Arc::new(cfg.clone())));
    let root = CancellationToken::new();
    let background = TaskTracker::new();
    let supervisor = Supervisor::new(health.clone(), live.clone());
    background.spawn(supervisor.clone().run(root.clone()));
    if let Some(http) = &cfg.http {
        // A listener that cannot bind is a configuration error: say so now.
        let prometheus = crate::metrics::install().map_err(anyhow::Error::msg)?;
        let listener = tokio::net::TcpListener::bind(http.listen)
            .await
            .map_err(|e| anyhow::anyhow!("http.listen: cannot listen on {}: {e}", http.listen))?;
        let state = crate::http::HttpState {
            config: live.clone(),
            prometheus,
        };
        let stop = root.clone();
        background.spawn(async move {
            if let Err(e) = crate::http::serve(listener, state, stop).await {
                tracing::error!(error = %e, "The HTTP listener failed; /metrics and /healthz are down.");
            }
        });
    }
    let mut signals = Signals::install()?;
    let mut cfg = cfg;
    'generations: loop {
        let generation = Generation::start(
            store.clone(),
            cfg.clone(),
            health.clone(),
            root.child_token(),
        )
        .await?;
        loop {
            match signals.next().await {
                Signal::Stop => {
                    systemd::stopping();
                    tracing::info!("Stopping: finishing the work in hand.");
                    generation.stop().await;
                    break 'generations;
                }
                Signal::StatusLine => supervisor.log_status_now(),
                Signal::Reload => {
                    supervisor.reloading();
                    match load_checked(&cfg.path).await {
                        Ok(new) => {
                            tracing::info!(config = %new.path.display(), "Config reloaded; restarting the tasks with it.");
                            generation.stop().await;
                            if let Ok(mut l) = live.write() {
                                *l = Arc::new(new.clone());
                            }
                            cfg = new;
                            continue 'generations;
                        }
                        Err(e) => {
                            tracing::error!(error = %format!("{e:#}"), "Config reload refused; the running config stays.");
                            supervisor.reload_refused();
                        }
                    }
                }
            }
        }
    }
    root.cancel();
    background.close();
    if tokio::time::timeout(Duration::from_secs(5), background.wait())
        .await
        .is_err()
    {
        tracing::warn!("Background tasks did not stop in time.");
    }
    tracing::info!("Stopped.");
    Ok(PassSummary::default())
}

/// One pass over every source, the SLA timer and the outbox.
async fn run_once(shared: Shared) -> anyhow::Result<PassSummary> {
    let mut summary = PassSummary::default();
    for m in &shared.config().mailboxes {
        match &m.source {
            Some(SourceConfig::Maildir(md)) => {
                maildir_pass(&shared, &m.name, md, &mut summary).await;
            }
            Some(SourceConfig::Imap(_)) => {
                crate::source::imap::run_once(&shared, m, &mut summary).await;
            }
            None => {}
        }
    }
    // Warnings and escalations due by now, before the outbox goes out.
    if let Err(e) =
        crate::sla::timer::pass(&shared.store, shared.policy.clone(), Timestamp::now(), true).await
    {
        tracing::error!(error = %e, "SLA timer pass failed; warnings and escalations wait for the next run.");
    }
    summary.outbox = shared.outbox.flush(&shared.store).await?;
    Ok(summary)
}

/// Reads and checks a new config the way start-up would: the file, its
/// templates and the outbox transport (secrets and CA files readable).
async fn load_checked(path: &std::path::Path) -> anyhow::Result<Config> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let cfg = Config::load(&path)?;
        Templates::load(cfg.templates.dir.as_deref())?;
        crate::notify::Transport::from_config(&cfg)?;
        Ok(cfg)
    })
    .await?
}

/// The tasks of one configuration; a reload stops them (each finishes the
/// message in hand and commits) and starts the next generation.
struct Generation {
    shared: Shared,
    tracker: TaskTracker,
    /// Kept while the generation runs: the SLA timer reads the policy
    /// through it.
    _sla_policy: tokio::sync::watch::Sender<Arc<Policy>>,
}

impl Generation {
    async fn start(
        store: StoreHandle,
        cfg: Config,
        health: Health,
        stop: CancellationToken,
    ) -> anyhow::Result<Generation> {
        let shared = Shared::build(store, cfg, health, stop).await?;
        let tracker = TaskTracker::new();
        let mut sources = Vec::new();
        for m in &shared.config().mailboxes {
            match &m.source {
                Some(SourceConfig::Maildir(md)) => {
                    sources.push(maildir_source(&m.name));
                    shared.health.add_source(&maildir_source(&m.name), &m.name);
                    tracker.spawn(maildir_loop(shared.clone(), m.name.clone(), md.clone()));
                }
                Some(SourceConfig::Imap(_)) => {
                    // One task (and connection) per folder: the inbox and,
                    // when set, the Sent folder.
                    for folder in crate::source::imap::Folder::of(m) {
                        sources.push(folder.source());
                        shared.health.add_source(&folder.source(), &m.name);
                        tracker.spawn(crate::source::imap::watch(shared.clone(), folder));
                    }
                }
                None => {}
            }
        }
        // Mailboxes removed by a reload no longer hold READY back.
        shared.health.retain_sources(&sources);
        tracker.spawn(outbox_loop(shared.clone()));
        let (sla_policy, sla_policy_rx) = tokio::sync::watch::channel(shared.policy.clone());
        tracker.spawn(crate::sla::timer::run(
            crate::sla::timer::Timer {
                store: shared.store.clone(),
                policy: sla_policy_rx,
                wake: shared.sla_wake.clone(),
                outbox_wake: shared.outbox_wake.clone(),
                heartbeat: shared.health.register("sla-timer"),
                stop: shared.stop.clone(),
                step: HEARTBEAT_STEP,
            },
            Timestamp::now,
        ));
        tracker.close();
        tracing::info!(
            mailboxes = shared.config().mailboxes.len(),
            "postdesk is running."
        );
        Ok(Generation {
            shared,
            tracker,
            _sla_policy: sla_policy,
        })
    }

    /// Cancels the tasks and waits for them, up to `daemon.shutdown_timeout`.
    async fn stop(self) {
        self.shared.stop.cancel();
        let deadline = self.shared.config().daemon.shutdown_timeout;
        if tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::error!(timeout = %humantime::format_duration(deadline), "Tasks did not stop in time; going on anyway.");
        }
    }
}

/// What the daemon's main loop reacts to.
enum Signal {
    /// SIGTERM or SIGINT.
    Stop,
    /// SIGHUP.
    Reload,
    /// SIGUSR1.
    StatusLine,
}

/// The signal streams, installed once for the daemon's life.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
            usr1: signal(SignalKind::user_defined1())?,
        })
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => { tracing::info!("SIGTERM received."); Signal::Stop }
            _ = self.int.recv() => { tracing::info!("SIGINT received."); Signal::Stop }
            _ = self.hup.recv() => { tracing::info!("SIGHUP received: reloading the config."); Signal::Reload }
            _ = self.usr1.recv() => Signal::StatusLine,
        }
    }
}

#[tracing::instrument(skip_all, fields(mailbox = %mailbox))]
async fn maildir_loop(shared: Shared, mailbox: String, md: MaildirConfig) {
    let heartbeat = shared.health.register(maildir_source(&mailbox));
    loop {
        heartbeat.beat();
        let mut summary = PassSummary::default();
        maildir_pass(&shared, &mailbox, &md, &mut summary).await;
        // Sleep in short steps so the heartbeat proves the loop still turns.
        let until = tokio::time::Instant::now() + md.poll_interval;
        while tokio::time::Instant::now() < until {
            heartbeat.beat();
            let step = until
                .saturating_duration_since(tokio::time::Instant::now())
                .min(HEARTBEAT_STEP);
            tokio::select! {
                _ = shared.stop.cancelled() => return,
                _ = tokio::time::sleep(step) => {}
            }
        }
    }
}

/// The source name of a Maildir in the `sources` table.
fn maildir_source(mailbox: &str) -> String {
    format!("maildir:{mailbox}")
}

/// One pass over a Maildir: every new message is analyzed, committed, and
/// only then marked seen.
pub async fn maildir_pass(
    shared: &Shared,
    mailbox: &str,
    md: &MaildirConfig,
    summary: &mut PassSummary,
) {
    let source = maildir_source(mailbox);
    let dir = md.path.clone();
    // With after_ingest = none, files stay in new/ and cur/: the store's
    // origins table is what makes a second pass skip them.
    let include_cur = md.after_ingest == MaildirAction::None;
    let scan_dir = dir.clone();
    let entries =
        match tokio::task::spawn_blocking(move || maildir::scan(&scan_dir, include_cur)).await {
            Ok(Ok(e)) => e,
            Ok(Err(e)) => {
                source_error(shared, &source, &e.to_string()).await;
                return;
            }
            Err(e) => {
                source_error(shared, &source, &e.to_string()).await;
                return;
            }
        };
    for chunk in entries.chunks(BATCH) {
        if shared.stop.is_cancelled() {
            return;
        }
        let chunk = chunk.to_vec();
        let read_at = std::time::Instant::now();
        let analyzer = shared.analyzer.clone();
        let (mailbox_name, dir2) = (mailbox.to_owned(), dir.clone());
        let work = tokio::task::spawn_blocking(move || {
            read_and_analyze(&analyzer, &dir2, &chunk, &mailbox_name)
        })
        .await;
        let (entries, items) = match work {
            Ok(x) => x,
            Err(e) => {
                source_error(shared, &source, &format!("analysis task failed: {e}")).await;
                return;
            }
        };
        let results = shared.ingest_since(items, read_at).await;
        let mut committed = Vec::new();
        for (entry, r) in entries.into_iter().zip(results) {
            match r {
                Ok(report) => {
                    log_report(Some(mailbox), None, &report);
                    summary.reports.push(report);
                    committed.push(entry);
                }
                Err(e) => {
                    summary.failed += 1;
                    tracing::error!(file = %entry.path.display(), error = %e, "Message not stored; it stays in the Maildir and is retried.");
                }
            }
        }
        if md.after_ingest == MaildirAction::Seen {
            let dir3 = dir.clone();
            let moved = tokio::task::spawn_blocking(move || {
                committed
                    .iter()
                    .filter_map(|e| maildir::mark_seen(&dir3, e).err())
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
            for e in moved {
                tracing::warn!(error = %e, "Cannot mark a committed message as seen; it will be skipped as a duplicate next time.");
            }
        }
    }
    shared.health.source_synced(&source, Timestamp::now());
    let s = source.clone();
    if let Err(e) = shared
        .store
        .call(move |c| ingest::mark_source_synced(c, &s, Timestamp::now()))
        .await
    {
        tracing::error!(error = %e, "Cannot record the sync.");
    }
}

/// Reads a chunk of Maildir entries and analyzes them (blocking). Files
/// that vanished are skipped; files over the size limit become quarantine
/// entries with their headers only.
fn read_and_analyze(
    analyzer: &Analyzer,
    dir: &std::path::Path,
    chunk: &[maildir::Entry],
    mailbox: &str,
) -> (Vec<maildir::Entry>, Vec<IngestItem>) {
    let mut entries = Vec::new();
    let mut raws: Vec<RawMail> = Vec::new();
    let mut read_entries = Vec::new();
    let mut items = Vec::new();
    let effects = SourceEffects {
        remember_origin: true,
        ..SourceEffects::default()
    };
    for e in chunk {
        if e.size_bytes > analyzer.max_message_size() as u64 {
            let head = maildir::read_head(e, 64 * 1024).unwrap_or_default();
            entries.push(e.clone());
            items.push(IngestItem {
                work: Work::Quarantine(pipeline::too_large(
                    e.origin(dir),
                    Some(mailbox.to_owned()),
                    &head,
                    e.size_bytes as usize,
                    analyzer.max_message_size(),
                )),
                effects: effects.clone(),
            });
            continue;
        }
        match maildir::read(dir, e, Some(mailbox)) {
            Ok(raw) => {
                raws.push(raw);
                read_entries.push(e.clone());
            }
            Err(err) => tracing::debug!(error = %err, "Maildir file vanished before it was read."),
        }
    }
    for (e, work) in read_entries.into_iter().zip(analyzer.analyze_batch(raws)) {
        entries.push(e);
        items.push(IngestItem {
            work,
            effects: effects.clone(),
        });
    }
    (entries, items)
}

/// The log line for one ingested message: `mailbox` where no span names
/// it already (the IMAP task's does), `uid` for IMAP sources.
pub(crate) fn log_report(mailbox: Option<&str>, uid: Option<u32>, r: &IngestReport) {
    match r.outcome {
        Outcome::Duplicate => {
            tracing::debug!(mailbox, uid, origin = %r.origin, "Duplicate skipped.")
        }
        Outcome::Quarantined => {
            tracing::warn!(mailbox, uid, origin = %r.origin, reason = %r.reason, "Message quarantined.")
        }
        _ => tracing::info!(
            mailbox,
            uid,
            origin = %r.origin,
            message_id = r.message_id.as_deref().unwrap_or(""),
            ticket = r.ticket,
            outcome = r.outcome.as_str(),
            class = r.class.map(|c| c.as_str()).unwrap_or(""),
            language = r.language.as_deref().unwrap_or(""),
            ack = r.ack,
            "Message ingested."
        ),
    }
}

async fn source_error(shared: &Shared, source: &str, error: &str) {
    tracing::error!(source, error, "Cannot read the source.");
    shared.health.source_error(source, error, Timestamp::now());
    let (s, e) = (source.to_owned(), error.to_owned());
    let _ = shared
        .store
        .call(move |c| ingest::mark_source_error(c, &s, &e, Timestamp::now()))
        .await;
}

#[tracing::instrument(skip_all)]
async fn outbox_loop(shared: Shared) {
    let heartbeat = shared.health.register("outbox");
    loop {
        heartbeat.beat();
        // Bounded, so a backlog cannot keep the heartbeat or a stop waiting.
        let deadline = std::time::Instant::now() + HEARTBEAT_STEP;
        match shared
            .outbox
            .flush_until(&shared.store, Some(deadline))
            .await
        {
            Ok(stats) if stats != FlushStats::default() => {
                tracing::debug!(
                    sent = stats.sent,
                    retried = stats.retried,
                    failed = stats.failed,
                    "Outbox flushed."
                );
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "Outbox flush failed; retrying later."),
        }
        let next = shared
            .store
            .call(|c| crate::store::outbox::next_due(c))
            .await
            .ok()
            .flatten();
        let wait = next
            .map(|t| {
                Duration::try_from(t.duration_since(Timestamp::now())).unwrap_or(Duration::ZERO)
            })
            .unwrap_or(HEARTBEAT_STEP)
            .min(HEARTBEAT_STEP);
        tokio::select! {
            _ = shared.stop.cancelled() => return,
            _ = shared.outbox_wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Where the file transport writes, for the summary.
pub fn outbox_dir(cfg: &Config) -> Option<PathBuf> {
    match &cfg.outbox.transport {
        crate::config::TransportConfig::File { dir } => Some(dir.clone()),
        _ => None,
    }
}
