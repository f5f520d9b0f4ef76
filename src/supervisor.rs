//! Watches the daemon's tasks and tells systemd and the journal about
//! them: READY=1 once every source has settled, WATCHDOG=1 only while
//! every long-running task keeps checking in, STATUS= with the one-line
//! summary, and a status line in the log every `daemon.status_interval`
//! (and on SIGUSR1).
//!
//! It runs for the whole life of the daemon, across config reloads, and
//! reads the database on a read-only connection like `postdesk status`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::health::Health;
use crate::status::{self, StatusReport};
use crate::store::Store;
use crate::systemd;

/// How often the supervisor looks at the tasks.
const TICK: Duration = Duration::from_secs(1);
/// How often STATUS= is refreshed.
const STATUS_EVERY: Duration = Duration::from_secs(10);

/// What the supervisor shares with the daemon's main loop.
#[derive(Clone)]
pub struct Supervisor {
    pub health: Health,
    pub config: Arc<RwLock<Arc<Config>>>,
    /// Set after READY=1; cleared by a reload so READY=1 follows it.
    ready: Arc<AtomicBool>,
    /// Wakes the supervisor to log the status line now (SIGUSR1).
    status_now: Arc<Notify>,
}

impl Supervisor {
    pub fn new(health: Health, config: Arc<RwLock<Arc<Config>>>) -> Supervisor {
        Supervisor {
            health,
            config,
            ready: Arc::new(AtomicBool::new(false)),
            status_now: Arc::new(Notify::new()),
        }
    }

    fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// A reload started: READY=1 is sent again once the new sources settle.
    pub fn reloading(&self) {
        self.ready.store(false, Ordering::SeqCst);
        systemd::reloading();
    }

    /// A reload was refused: the old configuration keeps running.
    pub fn reload_refused(&self) {
        self.ready.store(true, Ordering::SeqCst);
        systemd::ready("config reload refused; running the previous config");
    }

    /// Asks for the status line in the log now.
    pub fn log_status_now(&self) {
        self.status_now.notify_one();
    }

    /// Runs until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let watchdog = systemd::watchdog_interval();
        if let Some(w) = watchdog {
            tracing::info!(interval = %humantime::format_duration(w), "systemd watchdog enabled.");
        }
        let mut last_ping = Instant::now();
        let mut warned_silent = false;
        let mut last_status = Instant::now() - STATUS_EVERY;
        let mut last_log = Instant::now();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.status_now.notified() => {
                    if let Some(r) = self.report().await { log_status(&r) }
                    last_log = Instant::now();
                }
                _ = tokio::time::sleep(TICK) => {}
            }
            // WATCHDOG=1 proves that every task turned since the last ping,
            // not merely that this timer fires.
            if let Some(w) = watchdog {
                if self.health.all_beat_since(last_ping) {
                    if last_ping.elapsed() >= w / 2 {
                        systemd::watchdog();
                        last_ping = Instant::now();
                        warned_silent = false;
                    }
                } else if last_ping.elapsed() >= w / 2 && !warned_silent {
                    let silent = self.health.silent_since(last_ping);
                    tracing::warn!(tasks = ?silent, "Tasks have not checked in; holding the watchdog ping.");
                    warned_silent = true;
                }
            }
            if !self.ready.load(Ordering::SeqCst) && self.health.all_sources_settled() {
                let line = self
                    .report()
                    .await
                    .map(|r| r.summary_line())
                    .unwrap_or_default();
                systemd::ready(&line);
                self.ready.store(true, Ordering::SeqCst);
                tracing::info!(status = %line, "Ready: every mailbox has finished its first sync or is retrying.");
                last_status = Instant::now();
            }
            if last_status.elapsed() >= STATUS_EVERY {
                if let Some(r) = self.report().await {
                    systemd::status(&r.summary_line());
                }
                last_status = Instant::now();
            }
            if last_log.elapsed() >= self.config().daemon.status_interval {
                if let Some(r) = self.report().await {
                    log_status(&r);
                }
                last_log = Instant::now();
            }
        }
    }

    /// The status report, read on a blocking thread; `None` (logged) when
    /// the database cannot be read right now.
    async fn report(&self) -> Option<StatusReport> {
        let cfg = self.config();
        let result = tokio::task::spawn_blocking(move || {
            let store = Store::open_readonly(&cfg.store.path).map_err(|e| e.to_string())?;
            status::collect(&store.conn, &cfg, jiff::Timestamp::now()).map_err(|e| e.to_string())
        })
        .await;
        match result {
            Ok(Ok(r)) => Some(r),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "Cannot read the status from the database.");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "Status task failed.");
                None
            }
        }
    }
}

/// The status line, with one structured line per queue and mailbox, so
/// the journal can be filtered by field.
fn log_status(r: &StatusReport) {
    tracing::info!(
        healthy = r.healthy,
        outbox_pending = r.outbox.pending,
        outbox_failed = r.outbox.failed,
        quarantine = r.quarantine,
        problems = r.problems.len(),
        "Status: {}",
        r.summary_line()
    );
    for q in &r.queues {
        tracing::info!(
            queue = %q.counts.queue,
            open = q.counts.open,
            waiting = q.counts.waiting,
            due_soon = q.due_soon,
            breached = q.breached,
            oldest_unanswered = q.oldest_unanswered.as_deref().unwrap_or(""),
            "Status of queue {}.",
            q.counts.queue
        );
    }
    for m in &r.mailboxes {
        tracing::info!(
            mailbox = %m.mailbox,
            last_sync = %m.last_sync.map(|t| t.to_string()).unwrap_or_else(|| "never".into()),
            last_error = m.last_error.as_deref().unwrap_or(""),
            stale = m.stale,
            "Status of mailbox {}.",
            m.mailbox
        );
    }
    for p in &r.problems {
        tracing::warn!(problem = %p, "Degraded: {p}");
    }
}
