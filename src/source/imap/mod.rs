//! IMAP: exactly-once ingestion from real mailboxes, pushed by IDLE.
//!
//! One task per watched folder: a mailbox's inbox folder, and its Sent
//! folder when configured. A separate task (and connection) for Sent,
//! rather than one task alternating, because IDLE watches only the
//! selected folder: with one connection, an agent's reply would wait for
//! the next inbox event or poll; with two, both are pushed, and a broken
//! folder (renamed, no rights) does not stop the other.
//!
//! Each task follows chatmail/core's `inbox_loop`: keep the session while
//! things work, drop it on any error and reconnect with capped,
//! jittered exponential backoff; log each failure cause once. A session:
//!
//! 1. connect, log in ([`connect`]), SELECT the folder and compare its
//!    UIDVALIDITY with the one in SQLite ([`sync::open_folder`]): first
//!    contact applies the `backlog` setting; a change starts a rescan
//!    deduplicated by Message-ID and content hash;
//! 2. carry out the server-side actions owed for messages committed
//!    before a crash ([`actions`]);
//! 3. fetch what is new: UIDs above the checkpoint, sizes first, bodies in
//!    batches; analyze on the analysis threads; commit each batch in one
//!    transaction with its checkpoint and owed actions; only then flag or
//!    move on the server and forget the actions ([`sync`]);
//! 4. IDLE until the server reports new mail, `idle_renew` passes, or
//!    postdesk stops ([`idle`]); or sleep `poll_interval` without IDLE.
//!
//! What is new is decided by UIDVALIDITY + UID in SQLite, never by
//! `\Seen`. `shared.stop` is checked between batches only: SIGTERM
//! finishes and commits the batch in hand, runs its actions, LOGOUT.

pub mod actions;
pub mod connect;
pub mod idle;
pub mod probe;
pub mod sync;
mod utf7;

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use rustls::ClientConfig;
use tracing::Instrument;

use crate::config::{Backlog, ImapConfig, MailboxConfig, PostAction, SourceConfig, TlsMode};
use crate::daemon::{HEARTBEAT_STEP, PassSummary, Shared};
use crate::health::Heartbeat;
use crate::mail::Direction;
use crate::secret::SecretError;
use crate::store::StoreError;
use crate::store::ingest;
use crate::tls::TlsError;

pub use connect::{Capabilities, Connection, Credentials};

/// How long one command (other than IDLE) may wait for its answer.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// The first reconnect waits about this long; each failure doubles it, up
/// to `max_backoff`.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// Why talking to the IMAP server failed. Every variant ends the session;
/// the task reconnects with backoff. [`ImapError::needs_operator`] says
/// which ones only a person can fix (they are logged as errors, the rest
/// as warnings).
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error(
        "cannot connect to {host}:{port}: {source}; check host and port, and that the server runs"
    )]
    Connect {
        host: String,
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Tls(String),
    #[error("cannot set up TLS: {0}")]
    TlsSetup(#[from] TlsError),
    #[error(
        "the server {0} does not offer STARTTLS; use tls = \"implicit\" (port 993) or ask for STARTTLS"
    )]
    NoStartTls(String),
    #[error("the server refused the connection: {0}; it may be overloaded, try later")]
    Greeting(String),
    #[error(
        "the server refused the login of {user}: {reason}; check the {secret} and the username"
    )]
    Auth {
        user: String,
        reason: String,
        secret: String,
    },
    #[error("cannot read the IMAP secret: {0}")]
    Secret(#[source] SecretError),
    #[error(
        "folder {folder:?} cannot be opened: {reason}; check the folder name as the server spells it (folder, sent_folder)"
    )]
    Folder { folder: String, reason: String },
    #[error("the server reports no UIDVALIDITY for folder {0:?}; postdesk needs stable UIDs")]
    NoUidValidity(String),
    #[error("the server ended the session: {0}")]
    Bye(String),
    #[error("the server closed the connection during {0}; reconnecting")]
    ConnectionLost(&'static str),
    #[error("no answer from the server within {secs} s ({what}); reconnecting")]
    Timeout { what: &'static str, secs: u64 },
    #[error("network error during {0}: {1}")]
    Io(&'static str, #[source] std::io::Error),
    #[error("IMAP error during {what}: {source}")]
    Protocol {
        what: &'static str,
        #[source]
        source: async_imap::error::Error,
    },
    #[error("cannot store messages: {0}; they stay on the server and are fetched again")]
    Store(#[source] StoreError),
    #[error("internal task failed: {0}")]
    Task(String),
}

impl ImapError {
    fn protocol(what: &'static str, e: async_imap::error::Error) -> ImapError {
        match e {
            async_imap::error::Error::ConnectionLost => ImapError::ConnectionLost(what),
            async_imap::error::Error::Io(io) => ImapError::io(what, io),
            source => ImapError::Protocol { what, source },
        }
    }

    /// A failed command on a folder (SELECT, EXAMINE, STATUS): the
    /// server's NO or BAD means the folder is wrong, which only a person
    /// can fix; anything else is a protocol or connection failure.
    fn on_folder(what: &'static str, folder: &str, e: async_imap::error::Error) -> ImapError {
        match e {
            async_imap::error::Error::No(reason) | async_imap::error::Error::Bad(reason) => {
                ImapError::Folder {
                    folder: folder.to_owned(),
                    reason,
                }
            }
            e => ImapError::protocol(what, e),
        }
    }

    /// An I/O error; a peer that just went away (EOF, also a TLS session
    /// ended without close_notify, a reset) is a lost connection.
    fn io(what: &'static str, e: std::io::Error) -> ImapError {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => {
                ImapError::ConnectionLost(what)
            }
            _ => ImapError::Io(what, e),
        }
    }

    /// Failures only a person can fix (a password, a certificate, a folder
    /// name): logged as errors. The rest (a restart of the server, a
    /// dropped connection) pass by themselves: warnings.
    pub fn needs_operator(&self) -> bool {
        matches!(
            self,
            ImapError::Tls(_)
                | ImapError::TlsSetup(_)
                | ImapError::NoStartTls(_)
                | ImapError::Auth { .. }
                | ImapError::Secret(_)
                | ImapError::Folder { .. }
                | ImapError::NoUidValidity(_)
                | ImapError::Store(_)
        )
    }
}

/// Runs `fut` with a deadline; a server that stops answering must not
/// hang the task (a frozen server accepts connections and says nothing).
pub(crate) async fn timed<T>(
    what: &'static str,
    limit: Duration,
    fut: impl Future<Output = Result<T, ImapError>>,
) -> Result<T, ImapError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(ImapError::Timeout {
            what,
            secs: limit.as_secs(),
        }),
    }
}

/// Inbox or Sent: what the folder's messages are to the support team.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Customer mail: inbound; the post-action applies.
    Inbox,
    /// Our agents' replies sent from the shared mailbox: outbound, and left
    /// alone on the server (it is the agents' Sent folder).
    Sent,
}

/// One IMAP folder postdesk reads, with the mailbox it belongs to.
#[derive(Debug, Clone)]
pub struct Folder {
    /// The configured mailbox's name.
    pub mailbox: String,
    /// The folder's name as the server spells it (UTF-8; encoded on the
    /// wire).
    pub name: String,
    pub role: Role,
    pub config: Arc<ImapConfig>,
}

impl Folder {
    /// The folders of a mailbox: its folder and, if set, its Sent folder.
    /// Empty for a mailbox without IMAP.
    pub fn of(mailbox: &MailboxConfig) -> Vec<Folder> {
        let Some(SourceConfig::Imap(cfg)) = &mailbox.source else {
            return Vec::new();
        };
        let cfg = Arc::new(cfg.clone());
        let mut folders = vec![Folder {
            mailbox: mailbox.name.clone(),
            name: cfg.folder.clone(),
            role: Role::Inbox,
            config: cfg.clone(),
        }];
        if let Some(sent) = &cfg.sent_folder {
            folders.push(Folder {
                mailbox: mailbox.name.clone(),
                name: sent.clone(),
                role: Role::Sent,
                config: cfg.clone(),
            });
        }
        folders
    }

    /// The folder's name in the `sources` table, health and logs:
    /// `imap:<mailbox>/<folder>`.
    pub fn source(&self) -> String {
        format!("imap:{}/{}", self.mailbox, self.name)
    }

    pub fn direction(&self) -> Direction {
        match self.role {
            Role::Inbox => Direction::Inbound,
            Role::Sent => Direction::Outbound,
        }
    }

    /// The action owed on the server for a committed message, as stored in
    /// `mailbox_actions`: `seen`, `move:<folder>`, or none.
    pub fn post_action(&self) -> Option<String> {
        match (self.role, &self.config.after_ingest) {
            (Role::Sent, _) | (_, PostAction::None) => None,
            (Role::Inbox, PostAction::Seen) => Some(actions::SEEN.to_owned()),
            (Role::Inbox, PostAction::Move(f)) => Some(format!("{}{f}", actions::MOVE_PREFIX)),
        }
    }

    /// What first contact ingests. For Sent, "unseen" means nothing old
    /// (sent mail is always seen): only replies sent from now on.
    pub fn backlog(&self) -> Backlog {
        match (self.role, self.config.backlog) {
            (Role::Sent, Backlog::Unseen) => Backlog::None,
            (_, b) => b,
        }
    }
}

/// Capped exponential backoff with jitter: waits of about 1, 2, 4, …
/// seconds up to `max`, each drawn from [d/2, d] so that many mailboxes
/// failing together (a server restart) do not reconnect in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(max: Duration) -> Backoff {
        Backoff {
            next: FIRST_BACKOFF.min(max),
            max,
        }
    }

    /// Back to the first step, after a session that worked.
    pub fn reset(&mut self) {
        self.next = FIRST_BACKOFF.min(self.max);
    }

    /// The wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = d.saturating_mul(2).min(self.max);
        let half = d / 2;
        half + half.mul_f64(f64::from(rand::random::<u32>()) / f64::from(u32::MAX))
    }
}

/// Remembers the last failure so that each cause is logged once, not on
/// every retry; the health state and the database get each change.
#[derive(Debug, Default)]
struct Failures {
    last: Option<String>,
    attempts: u32,
}

impl Failures {
    async fn record(&mut self, shared: &Shared, source: &str, e: &ImapError) {
        let text = e.to_string();
        self.attempts = self.attempts.saturating_add(1);
        let now = Timestamp::now();
        shared.health.source_error(source, text.clone(), now);
        if self.last.as_deref() == Some(text.as_str()) {
            tracing::debug!(attempts = self.attempts, error = %text, "Still failing.");
            return;
        }
        if e.needs_operator() {
            tracing::error!(error = %text, "IMAP source failing.");
        } else {
            tracing::warn!(error = %text, "IMAP connection failed.");
        }
        let (s, t) = (source.to_owned(), text.clone());
        if let Err(e) = shared
            .store
            .call(move |c| ingest::mark_source_error(c, &s, &t, now))
            .await
        {
            tracing::debug!(error = %e, "Cannot record the source error.");
        }
        self.last = Some(text);
    }

    fn recovered(&mut self) {
        if self.last.take().is_some() {
            tracing::info!(attempts = self.attempts, "IMAP source working again.");
        }
        self.attempts = 0;
    }
}

/// The TLS config for a folder's connections, shared with the other
/// folders that use the same `ca_file` (building one reads the system
/// roots and `ca_file` from disk).
async fn tls_config(
    configs: &crate::tls::TlsConfigs,
    cfg: &ImapConfig,
) -> Result<Option<Arc<ClientConfig>>, ImapError> {
    if cfg.tls == TlsMode::None {
        return Ok(None);
    }
    let ca = cfg.ca_file.clone();
    let configs = configs.clone();
    let built = tokio::task::spawn_blocking(move || configs.get(ca.as_deref()))
        .await
        .map_err(|e| ImapError::Task(e.to_string()))??;
    Ok(Some(built))
}

/// What one folder task keeps across sessions.
struct Watcher {
    shared: Shared,
    folder: Folder,
    source: String,
    heartbeat: Heartbeat,
    credentials: Credentials,
    tls: Option<Arc<ClientConfig>>,
    backoff: Backoff,
    failures: Failures,
}

/// The daemon task for one folder: runs until `shared.stop` is cancelled.
pub async fn watch(shared: Shared, folder: Folder) {
    let span = tracing::info_span!("imap", mailbox = %folder.mailbox, folder = %folder.name);
    async move {
        let source = folder.source();
        let mut w = Watcher {
            heartbeat: shared.health.register(source.clone()),
            credentials: Credentials::new(folder.config.auth.clone()),
            tls: None,
            backoff: Backoff::new(folder.config.max_backoff),
            failures: Failures::default(),
            shared,
            folder,
            source,
        };
        loop {
            w.heartbeat.beat();
            if w.shared.stop.is_cancelled() {
                return;
            }
            let result = w.session().await;
            if w.shared.stop.is_cancelled() {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "Stopped with an error.");
                }
                return;
            }
            match result {
                Ok(()) => return,
                Err(ImapError::Store(StoreError::Closed)) => return,
                Err(e) => {
                    w.failures.record(&w.shared, &w.source, &e).await;
                    let delay = w.backoff.next_delay();
                    tracing::debug!(
                        retry_in_ms = delay.as_millis() as u64,
                        "Reconnecting later."
                    );
                    if !sleep_beating(delay, &w.heartbeat, &w.shared.stop).await {
                        return;
                    }
                }
            }
        }
    }
    .instrument(span)
    .await
}

impl Watcher {
    /// One session: connect, sync, then IDLE (or poll) and sync again
    /// until stopped (`Ok`) or something fails.
    async fn session(&mut self) -> Result<(), ImapError> {
        if self.tls.is_none() {
            self.tls = tls_config(&self.shared.tls, &self.folder.config).await?;
        }
        let mut conn = connect::connect(
            &self.folder.config,
            self.tls.as_ref(),
            &mut self.credentials,
        )
        .await?;
        self.heartbeat.beat();
        let opened = sync::open_folder(&self.shared, &mut conn, &self.folder).await?;
        let use_idle = self.folder.config.idle && conn.caps.idle;
        tracing::debug!(
            uidvalidity = opened.uidvalidity,
            idle = use_idle,
            r#move = conn.caps.r#move,
            "Folder opened."
        );
        loop {
            self.heartbeat.beat();
            let done = sync::sync(
                &self.shared,
                &mut conn,
                &self.folder,
                &opened,
                &self.heartbeat,
                None,
            )
            .await?;
            self.synced().await;
            if done.stopped || self.shared.stop.is_cancelled() {
                conn.logout().await;
                return Ok(());
            }
            conn.drain_unsolicited();
            if std::mem::take(&mut conn.maybe_new_mail) {
                continue;
            }
            if use_idle {
                let (c, wake) = idle::idle(
                    conn,
                    self.folder.config.idle_renew,
                    &self.heartbeat,
                    &self.shared.stop,
                )
                .await?;
                conn = c;
                tracing::debug!(wake = ?wake, "IDLE ended.");
                if wake == idle::Wake::Stop {
                    conn.logout().await;
                    return Ok(());
                }
            } else if !sleep_beating(
                self.folder.config.poll_interval,
                &self.heartbeat,
                &self.shared.stop,
            )
            .await
            {
                conn.logout().await;
                return Ok(());
            }
        }
    }

    /// A sync worked: reset the backoff, report health.
    async fn synced(&mut self) {
        self.backoff.reset();
        self.failures.recovered();
        let now = Timestamp::now();
        self.shared.health.source_synced(&self.source, now);
        let s = self.source.clone();
        if let Err(e) = self
            .shared
            .store
            .call(move |c| ingest::mark_source_synced(c, &s, now))
            .await
        {
            tracing::debug!(error = %e, "Cannot record the sync.");
        }
    }
}

/// Sleeps `total`, beating the heartbeat every few seconds. False when
/// `stop` was cancelled meanwhile.
pub(crate) async fn sleep_beating(
    total: Duration,
    heartbeat: &Heartbeat,
    stop: &tokio_util::sync::CancellationToken,
) -> bool {
    let until = tokio::time::Instant::now() + total;
    loop {
        heartbeat.beat();
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return true;
        }
        tokio::select! {
            _ = stop.cancelled() => return false,
            _ = tokio::time::sleep(left.min(HEARTBEAT_STEP)) => {}
        }
    }
}

/// `postdesk run --once`: one sync of each folder of `mailbox`, then
/// LOGOUT. A folder that cannot be read counts as a failure in the
/// summary (exit code 1) and is logged.
pub async fn run_once(shared: &Shared, mailbox: &MailboxConfig, summary: &mut PassSummary) {
    for folder in Folder::of(mailbox) {
        let span = tracing::info_span!("imap", mailbox = %folder.mailbox, folder = %folder.name);
        let source = folder.source();
        match once(shared, &folder, summary).instrument(span).await {
            Ok(()) => {
                let now = Timestamp::now();
                shared.health.source_synced(&source, now);
                let s = source.clone();
                let _ = shared
                    .store
                    .call(move |c| ingest::mark_source_synced(c, &s, now))
                    .await;
            }
            Err(e) => {
                summary.sources_failed += 1;
                Failures::default().record(shared, &source, &e).await;
            }
        }
    }
}

async fn once(
    shared: &Shared,
    folder: &Folder,
    summary: &mut PassSummary,
) -> Result<(), ImapError> {
    let tls = tls_config(&shared.tls, &folder.config).await?;
    let mut creds = Credentials::new(folder.config.auth.clone());
    let mut conn = connect::connect(&folder.config, tls.as_ref(), &mut creds).await?;
    let opened = sync::open_folder(shared, &mut conn, folder).await?;
    let heartbeat = shared.health.register(folder.source());
    let done = sync::sync(
        shared,
        &mut conn,
        folder,
        &opened,
        &heartbeat,
        Some(summary),
    )
    .await;
    conn.logout().await;
    done.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_secs(10));
        let waits: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        for (w, nominal) in waits.iter().zip([1u64, 2, 4, 8, 10, 10, 10, 10]) {
            let nominal = Duration::from_secs(nominal);
            assert!(*w >= nominal / 2 && *w <= nominal, "{w:?} for {nominal:?}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
        let mut small = Backoff::new(Duration::from_millis(300));
        assert!(small.next_delay() <= Duration::from_millis(300));
    }

    fn mailbox(extra: &str) -> MailboxConfig {
        let cfg = crate::config::Config::from_str(
            &format!(
                "[[mailboxes]]\nname = \"support\"\naddress = \"support@example.com\"\n\
                 [mailboxes.imap]\nhost = \"127.0.0.1\"\ntls = \"none\"\nusername = \"u\"\n\
                 password = {{ env = \"X\" }}\n{extra}"
            ),
            std::path::Path::new("/x.toml"),
        )
        .unwrap();
        cfg.mailboxes.into_iter().next().unwrap()
    }

    #[test]
    fn folders_roles_and_actions() {
        let m = mailbox("sent_folder = \"Sent\"\nafter_ingest = \"move\"\nmove_to = \"Done\"\n");
        let f = Folder::of(&m);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].source(), "imap:support/INBOX");
        assert_eq!(f[0].post_action().as_deref(), Some("move:Done"));
        assert_eq!(f[0].direction(), Direction::Inbound);
        assert_eq!(f[1].source(), "imap:support/Sent");
        assert_eq!(f[1].post_action(), None, "the Sent folder is left alone");
        assert_eq!(f[1].direction(), Direction::Outbound);
        assert_eq!(f[1].backlog(), Backlog::None);
        let m = mailbox("after_ingest = \"none\"\n");
        assert_eq!(Folder::of(&m)[0].post_action(), None);
        assert_eq!(Folder::of(&m)[0].backlog(), Backlog::Unseen);
    }
}
