//! Configuration: one TOML file → a validated, resolved [`Config`].
//!
//! Loading happens in two steps, as in ripgrep's `LowArgs` → `HiArgs`:
//! serde reads the file into `Raw*` structs that mirror it exactly
//! (`deny_unknown_fields`, [`Spanned`] where a value needs checking), then
//! `resolve` checks every value, collects **every** error at once with its
//! `file:line:column`, and builds the types the rest of postdesk uses.
//! Relative paths are relative to the config file's folder.
//! `config.example.toml` documents every key.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::mail::Class;
use crate::secret::SecretSource;
use crate::sla::calendar::{self, BusinessCalendar, WeeklyHours};

/// Where the config is looked for when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/postdesk/postdesk.toml";
/// The environment variable that names the config file.
pub const ENV_VAR: &str = "POSTDESK_CONFIG";

/// Every problem found in a config file, each with its location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    pub errors: Vec<String>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            f.write_str(e)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

// ---------------------------------------------------------------------------
// The resolved configuration.

/// The whole validated configuration. Cheap to clone; the daemon swaps it
/// on SIGHUP.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file this was read from.
    pub path: PathBuf,
    pub store: StoreConfig,
    pub tickets: TicketsConfig,
    pub security: SecurityConfig,
    pub ingest: IngestConfig,
    pub acknowledge: AckConfig,
    pub detect: DetectConfig,
    pub outbox: OutboxConfig,
    pub templates: TemplatesConfig,
    pub mailboxes: Vec<MailboxConfig>,
    pub queues: Vec<QueueConfig>,
    pub routes: Vec<RouteConfig>,
    pub daemon: DaemonConfig,
    pub http: Option<HttpConfig>,
    pub log: LogConfig,
}

/// The SQLite database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub path: PathBuf,
}

/// How tickets are named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketsConfig {
    /// `PD` in `PD-42`.
    pub prefix: String,
}

/// Reply-token signing and the Message-ID domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityConfig {
    /// Where the HMAC key for reply tokens comes from. `None`: a random key
    /// is generated once and kept in the database.
    pub token_secret: Option<SecretSource>,
    /// Right-hand side of the Message-IDs postdesk generates.
    pub message_id_domain: String,
}

/// Limits and policy of the ingest pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestConfig {
    /// Messages larger than this are quarantined with their headers instead
    /// of being loaded and parsed.
    pub max_message_size: usize,
    /// Classes of mail that open a ticket when they do not thread onto one.
    /// The rest is stored (nothing is lost) but opens no ticket.
    pub ticket_classes: Vec<Class>,
}

/// When an acknowledgement is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckConfig {
    pub enabled: bool,
    /// At most this many automatic mails to one address per hour.
    pub per_sender_per_hour: u32,
    /// At most this many automatic mails per hour in all.
    pub per_hour: u32,
    /// No acknowledgement for a message older than this (by its Date and
    /// arrival), so pointing postdesk at an old inbox mails nobody.
    pub max_age: Duration,
    /// After this many automatic mails on one ticket without a human reply
    /// in between, postdesk stops sending automatic mail on it.
    pub max_auto_per_ticket: u32,
}

/// Language detection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectConfig {
    /// Restrict detection to these languages (BCP 47 primary subtags);
    /// empty means every language the detector knows.
    pub languages: Vec<String>,
}

/// How outgoing mail leaves.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxConfig {
    pub transport: TransportConfig,
    /// Waits between attempts after a temporary failure; the last one
    /// repeats until `give_up_after`.
    pub retry: Vec<Duration>,
    /// A row still failing temporarily after this long is marked failed.
    pub give_up_after: Duration,
    /// The whole SMTP exchange for one message must finish within this.
    pub send_timeout: Duration,
}

/// One of the outgoing transports.
#[derive(Debug, Clone, PartialEq)]
pub enum TransportConfig {
    /// Writes each mail as an `.eml` file into `dir` (the embedded default).
    File {
        dir: PathBuf,
    },
    /// Pipes each mail to the local MTA's sendmail program.
    Sendmail {
        command: PathBuf,
    },
    Smtp(SmtpConfig),
}

/// An SMTP relay.
#[derive(Debug, Clone, PartialEq)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub ca_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<SecretSource>,
    /// The name given in EHLO; default: the system host name.
    pub hello_name: Option<String>,
    pub pool_size: u32,
}

/// How a connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    Implicit,
    /// Plain connection upgraded with STARTTLS (143, 587, 25); required.
    StartTls,
    /// No TLS: only for loopback or with `allow_plaintext = true`.
    None,
}

impl TlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Implicit => "implicit",
            TlsMode::StartTls => "starttls",
            TlsMode::None => "none",
        }
    }
}

/// Operator overrides for the shipped templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplatesConfig {
    pub dir: Option<PathBuf>,
}

/// One support mailbox: an address customers write to, where its mail is
/// read from, and its defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct MailboxConfig {
    pub name: String,
    /// Lowercased.
    pub address: String,
    pub display_name: Option<String>,
    /// Other addresses that deliver into this mailbox, lowercased.
    pub aliases: Vec<String>,
    pub default_queue: String,
    pub default_language: String,
    pub source: Option<SourceConfig>,
}

impl MailboxConfig {
    /// The address and every alias.
    pub fn addresses(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.address.as_str()).chain(self.aliases.iter().map(String::as_str))
    }
}

/// Where a mailbox's mail is read from by `postdesk run`.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceConfig {
    Maildir(MaildirConfig),
    Imap(ImapConfig),
}

/// A local Maildir watched by the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaildirConfig {
    pub path: PathBuf,
    /// Whether an ingested message is moved from `new/` to `cur/` (marked
    /// seen, as a mail client would) or left where it is.
    pub after_ingest: MaildirAction,
    pub poll_interval: Duration,
}

/// What happens to a Maildir file once its message is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaildirAction {
    /// Leave it; the database remembers it was ingested.
    None,
    /// Move `new/x` to `cur/x:2,S`.
    Seen,
}

/// An IMAP mailbox watched by the daemon.
#[derive(Debug, Clone, PartialEq)]
pub struct ImapConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub ca_file: Option<PathBuf>,
    pub username: String,
    pub auth: ImapAuth,
    pub folder: String,
    /// Our agents' replies sent from the shared mailbox; ingested as
    /// outbound messages on their tickets.
    pub sent_folder: Option<String>,
    pub after_ingest: PostAction,
    pub backlog: Backlog,
    pub idle: bool,
    /// How often to poll when the server has no IDLE.
    pub poll_interval: Duration,
    /// IDLE is re-issued at least this often (RFC 2177: at most 29 min).
    pub idle_renew: Duration,
    /// Upper bound of the reconnect backoff.
    pub max_backoff: Duration,
    /// Messages per FETCH and per store transaction while a backlog drains.
    pub batch_size: usize,
}

/// How to log in to IMAP.
#[derive(Debug, Clone, PartialEq)]
pub enum ImapAuth {
    /// LOGIN / AUTHENTICATE PLAIN with a password.
    Password(SecretSource),
    /// AUTHENTICATE XOAUTH2 with an access token, fetched again after an
    /// authentication failure.
    XOAuth2(SecretSource),
}

/// What is done on the server once a message is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostAction {
    None,
    Seen,
    Move(String),
}

/// What counts as new on first contact with a mailbox that holds mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backlog {
    All,
    Unseen,
    None,
}

/// A queue: a team with its own languages, zone, hours, targets and
/// escalation contacts.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueConfig {
    pub name: String,
    /// Languages the queue serves; the first is its fallback language for
    /// customer mail.
    pub languages: Vec<String>,
    pub timezone: jiff::tz::TimeZone,
    /// The IANA name of `timezone`, for display.
    pub timezone_name: String,
    /// Business hours and holidays (`holidays` and `holidays_ical`) in
    /// `timezone`: the clock every due time is computed on.
    pub calendar: BusinessCalendar,
    pub first_response: Duration,
    pub next_response: Duration,
    pub warn: WarnPoint,
    pub escalation: Vec<EscalationLevel>,
    /// Agent addresses (`alice@example.com`) or domains (`@example.com`),
    /// lowercased.
    pub agents: Vec<String>,
    pub operator_language: String,
    /// A reply to a ticket closed less than this long ago reopens it;
    /// later, it opens a new ticket linked to the old one.
    pub reopen_within: Duration,
}

impl QueueConfig {
    /// True when `address` (lowercased) is one of the queue's agents.
    pub fn is_agent(&self, address: &str) -> bool {
        self.agents.iter().any(|a| match a.strip_prefix('@') {
            Some(domain) => address.rsplit_once('@').is_some_and(|(_, d)| d == domain),
            None => a == address,
        })
    }
}

/// When the warning goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarnPoint {
    /// At this percentage of the target elapsed (1–99).
    Percent(u8),
    /// This long before the due time.
    Before(Duration),
}

/// One escalation level: who is told, how long after the breach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationLevel {
    pub after: Duration,
    pub contacts: Vec<String>,
}

/// A routing rule; the first that matches a ticket picks its queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// Matches any of these languages; empty matches every language.
    pub languages: Vec<String>,
    /// Matches any of these mailboxes; empty matches every mailbox.
    pub mailboxes: Vec<String>,
    pub queue: String,
}

/// Daemon timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    /// How often the status line is logged.
    pub status_interval: Duration,
    /// A mailbox not synced for longer than this makes status "degraded".
    pub stale_after: Duration,
    /// How long shutdown waits for tasks to finish what they hold.
    pub shutdown_timeout: Duration,
}

/// The optional HTTP listener for `/metrics` and `/healthz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    pub listen: SocketAddr,
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing-subscriber filter, e.g. `info` or `postdesk=debug`.
    pub level: String,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// journald under systemd, human text otherwise.
    Auto,
    Human,
    Json,
    Journald,
}

impl Config {
    /// Loads the file named by `--config`, `POSTDESK_CONFIG` or the default
    /// path, in that order.
    pub fn locate(explicit: Option<&Path>) -> PathBuf {
        if let Some(p) = explicit {
            return p.to_owned();
        }
        match std::env::var_os(ENV_VAR) {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => PathBuf::from(DEFAULT_PATH),
        }
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
            errors: vec![format!(
                "{}: cannot read the config file: {e}; pass --config FILE or set {ENV_VAR} (see config.example.toml)",
                path.display()
            )],
        })?;
        Config::from_str(&text, path)
    }

    /// Validates config text; `path` names it in errors and anchors
    /// relative paths.
    pub fn from_str(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| location(path, text, s.start))
                .unwrap_or_else(|| path.display().to_string());
            ConfigErrors {
                errors: vec![format!("{at}: {}", e.message().trim_end())],
            }
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut ck = Checker {
            path,
            text,
            errors: Vec::new(),
        };
        let cfg = resolve(raw, base, path, &mut ck);
        if ck.errors.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigErrors { errors: ck.errors })
        }
    }

    /// `PD-42` for ticket 42.
    pub fn ticket_ref(&self, number: i64) -> String {
        format!("{}-{number}", self.tickets.prefix)
    }

    /// The ticket number in `PD-42`, `pd-42` or `42`.
    pub fn parse_ticket_ref(&self, s: &str) -> Option<i64> {
        let s = s.trim();
        let num = match s.rsplit_once('-') {
            Some((p, n)) if p.eq_ignore_ascii_case(&self.tickets.prefix) => n,
            Some(_) => return None,
            None => s,
        };
        num.parse().ok().filter(|n: &i64| *n > 0)
    }

    pub fn mailbox(&self, name: &str) -> Option<&MailboxConfig> {
        self.mailboxes.iter().find(|m| m.name == name)
    }

    pub fn queue(&self, name: &str) -> Option<&QueueConfig> {
        self.queues.iter().find(|q| q.name == name)
    }

    /// Every address that is ours: mailbox addresses and aliases.
    pub fn own_addresses(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .mailboxes
            .iter()
            .flat_map(|m| m.addresses().map(str::to_owned))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// True for our addresses, also with a subaddress (`support+x@`).
    pub fn is_own_address(&self, address: &str) -> bool {
        let a = without_subaddress(address);
        self.mailboxes.iter().any(|m| m.addresses().any(|x| x == a))
    }
}

/// The address lowercased, without a `+tag` subaddress in its local part
/// (`Support+PD-4@Example.com` → `support@example.com`): mail to a tagged
/// address still reaches the same mailbox.
pub fn without_subaddress(address: &str) -> String {
    let a = address.trim().to_lowercase();
    match a.rsplit_once('@') {
        Some((local, domain)) => match local.split_once('+') {
            Some((base, _)) if !base.is_empty() => format!("{base}@{domain}"),
            _ => a,
        },
        None => a,
    }
}

// ---------------------------------------------------------------------------
// The file as written.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    tickets: RawTickets,
    #[serde(default)]
    security: RawSecurity,
    #[serde(default)]
    ingest: RawIngest,
    #[serde(default)]
    acknowledge: RawAck,
    #[serde(default)]
    detect: RawDetect,
    #[serde(default)]
    outbox: RawOutbox,
    #[serde(default)]
    templates: RawTemplates,
    #[serde(default)]
    mailboxes: Vec<RawMailbox>,
    #[serde(default)]
    queues: Vec<RawQueue>,
    #[serde(default)]
    routes: Vec<RawRoute>,
    #[serde(default)]
    daemon: RawDaemon,
    http: Option<RawHttp>,
    #[serde(default)]
    log: RawLog,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTickets {
    prefix: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSecurity {
    token_secret: Option<Spanned<RawSecret>>,
    message_id_domain: Option<Spanned<String>>,
}

/// A secret as written: a table naming its source, or (refused) anything
/// else, such as the secret itself or a misspelt source.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawSecret {
    Source(SecretSource),
    Other(serde::de::IgnoredAny),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIngest {
    max_message_size: Option<Spanned<RawSize>>,
    ticket_classes: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawSize {
    Bytes(i64),
    Text(String),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAck {
    enabled: Option<bool>,
    per_sender_per_hour: Option<Spanned<i64>>,
    per_hour: Option<Spanned<i64>>,
    max_age: Option<Spanned<String>>,
    max_auto_per_ticket: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDetect {
    languages: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawOutbox {
    transport: Option<Spanned<String>>,
    dir: Option<Spanned<String>>,
    sendmail: Option<Spanned<String>>,
    smtp: Option<RawSmtp>,
    retry: Option<Vec<Spanned<String>>>,
    give_up_after: Option<Spanned<String>>,
    send_timeout: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: Spanned<String>,
    port: Option<Spanned<i64>>,
    tls: Option<Spanned<String>>,
    allow_plaintext: Option<bool>,
    ca_file: Option<String>,
    username: Option<String>,
    password: Option<Spanned<RawSecret>>,
    hello_name: Option<String>,
    pool_size: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTemplates {
    dir: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMailbox {
    name: Spanned<String>,
    address: Spanned<String>,
    display_name: Option<String>,
    #[serde(default)]
    aliases: Vec<Spanned<String>>,
    default_queue: Option<Spanned<String>>,
    default_language: Option<Spanned<String>>,
    maildir: Option<RawMaildir>,
    imap: Option<Spanned<RawImap>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMaildir {
    path: Spanned<String>,
    after_ingest: Option<Spanned<String>>,
    poll_interval: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImap {
    host: Spanned<String>,
    port: Option<Spanned<i64>>,
    tls: Option<Spanned<String>>,
    allow_plaintext: Option<bool>,
    ca_file: Option<String>,
    username: Spanned<String>,
    auth: Option<Spanned<String>>,
    password: Option<Spanned<RawSecret>>,
    oauth_token: Option<Spanned<RawSecret>>,
    folder: Option<String>,
    sent_folder: Option<String>,
    after_ingest: Option<Spanned<String>>,
    move_to: Option<String>,
    backlog: Option<Spanned<String>>,
    idle: Option<bool>,
    poll_interval: Option<Spanned<String>>,
    idle_renew: Option<Spanned<String>>,
    max_backoff: Option<Spanned<String>>,
    batch_size: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueue {
    name: Spanned<String>,
    #[serde(default)]
    languages: Vec<Spanned<String>>,
    timezone: Option<Spanned<String>>,
    hours: Option<Spanned<RawHours>>,
    #[serde(default)]
    holidays: Vec<Spanned<String>>,
    holidays_ical: Option<Spanned<String>>,
    first_response: Option<Spanned<String>>,
    next_response: Option<Spanned<String>>,
    warn: Option<Spanned<String>>,
    #[serde(default)]
    escalation: Vec<RawEscalation>,
    #[serde(default)]
    agents: Vec<Spanned<String>>,
    operator_language: Option<Spanned<String>>,
    reopen_within: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawHours {
    Text(String),
    Days(BTreeMap<String, String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEscalation {
    after: Option<Spanned<String>>,
    contacts: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    #[serde(default)]
    languages: Vec<Spanned<String>>,
    #[serde(default)]
    mailboxes: Vec<Spanned<String>>,
    queue: Spanned<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    status_interval: Option<Spanned<String>>,
    stale_after: Option<Spanned<String>>,
    shutdown_timeout: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Spanned<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<Spanned<String>>,
    level: Option<String>,
}

// ---------------------------------------------------------------------------
// Checking.

/// Collects errors with their location in the file.
struct Checker<'a> {
    path: &'a Path,
    text: &'a str,
    errors: Vec<String>,
}

impl Checker<'_> {
    fn err<T>(&mut self, at: &Spanned<T>, key: &str, msg: impl fmt::Display) {
        let loc = location(self.path, self.text, at.span().start);
        self.errors.push(format!("{loc}: {key}: {msg}"));
    }

    fn err_plain(&mut self, key: &str, msg: impl fmt::Display) {
        self.errors
            .push(format!("{}: {key}: {msg}", self.path.display()));
    }

    fn duration(&mut self, v: &Option<Spanned<String>>, key: &str, default: Duration) -> Duration {
        let Some(s) = v else { return default };
        match parse_duration(s.get_ref()) {
            Ok(d) => d,
            Err(e) => {
                self.err(s, key, e);
                default
            }
        }
    }

    fn positive_duration(
        &mut self,
        v: &Option<Spanned<String>>,
        key: &str,
        default: Duration,
    ) -> Duration {
        let d = self.duration(v, key, default);
        if d.is_zero()
            && let Some(s) = v
        {
            self.err(s, key, "must be longer than zero");
            return default;
        }
        d
    }

    fn count(
        &mut self,
        v: &Option<Spanned<i64>>,
        key: &str,
        default: u32,
        min: i64,
        max: i64,
    ) -> u32 {
        let Some(n) = v else { return default };
        let value = *n.get_ref();
        if value < min || value > max {
            self.err(
                n,
                key,
                format!("{value} is out of range; use a number from {min} to {max}"),
            );
            return default;
        }
        u32::try_from(value).unwrap_or(default)
    }

    fn port(&mut self, v: &Option<Spanned<i64>>, key: &str, default: u16) -> u16 {
        let Some(n) = v else { return default };
        match u16::try_from(*n.get_ref()) {
            Ok(p) if p > 0 => p,
            _ => {
                self.err(
                    n,
                    key,
                    format!("{} is not a TCP port; use 1 to 65535", n.get_ref()),
                );
                default
            }
        }
    }

    fn address(&mut self, v: &Spanned<String>, key: &str) -> String {
        let a = v.get_ref().trim().to_lowercase();
        if !is_plain_address(&a) {
            self.err(
                v,
                key,
                format!(
                    "{:?} is not an e-mail address; write it as name@example.com",
                    v.get_ref()
                ),
            );
        }
        a
    }

    fn language(&mut self, v: &Spanned<String>, key: &str) -> String {
        match normalize_language(v.get_ref()) {
            Some(l) => l,
            None => {
                self.err(
                    v,
                    key,
                    format!(
                        "{:?} is not a language tag; use a code such as \"en\", \"de\" or \"ja\"",
                        v.get_ref()
                    ),
                );
                "en".to_owned()
            }
        }
    }

    fn secret(&mut self, v: &Spanned<RawSecret>, key: &str, base: &Path) -> Option<SecretSource> {
        match v.get_ref() {
            RawSecret::Source(s) => {
                let mut s = s.clone();
                s.resolve_paths(base);
                Some(s)
            }
            RawSecret::Other(_) => {
                self.err(
                    v,
                    key,
                    "secrets are not written in the config file; name where to read it: \
                     { file = \"/etc/postdesk/secret\" }, { command = [\"prog\", \"arg\"] }, \
                     { env = \"VAR\" } or { credential = \"name\" }",
                );
                None
            }
        }
    }

    fn tls(&mut self, v: &Option<Spanned<String>>, key: &str, default: TlsMode) -> TlsMode {
        let Some(s) = v else { return default };
        match s.get_ref().as_str() {
            "implicit" | "tls" | "ssl" => TlsMode::Implicit,
            "starttls" => TlsMode::StartTls,
            "none" | "plain" => TlsMode::None,
            other => {
                self.err(
                    s,
                    key,
                    format!(
                        "unknown TLS mode {other:?}; use \"implicit\", \"starttls\" or \"none\""
                    ),
                );
                default
            }
        }
    }
}

/// `path:line:column` of a byte offset, 1-based.
fn location(path: &Path, text: &str, offset: usize) -> String {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    format!("{}:{line}:{col}", path.display())
}

/// Durations such as `90s`, `15m`, `24h`, `3d`, `1h 30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!("{s:?} is not a duration ({e}); write it like \"90s\", \"15m\", \"24h\" or \"3d\"")
    })
}

/// Sizes such as `25 MiB`, `30MB`, `512k` or a plain number of bytes.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size; write it like \"25 MiB\" or 26214400"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {s:?}; use B, KB, KiB, MB, MiB, GB or GiB"
            ));
        }
    };
    n.checked_mul(mult)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// A bare `local@domain` without spaces, brackets or control characters.
/// Config addresses end up in outgoing headers, so they are held to this.
pub fn is_plain_address(a: &str) -> bool {
    let Some((local, domain)) = a.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && (domain.contains('.') || domain == "localhost")
        && a.chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && !"<>()[],;:\"\\".contains(c))
}

/// `de-DE` → `de`, `EN` → `en`; `None` for anything that is not a
/// language tag. The primary subtag is what postdesk stores.
pub fn normalize_language(tag: &str) -> Option<String> {
    let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
    let ok = (2..=3).contains(&primary.len()) && primary.bytes().all(|b| b.is_ascii_lowercase());
    if !ok {
        return None;
    }
    // "no" (Norwegian) is written as Bokmål, which is what support mail is.
    Some(if primary == "no" {
        "nb".to_owned()
    } else {
        primary
    })
}

fn resolve_path(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_owned()
    } else {
        base.join(p)
    }
}

fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

const DEFAULT_QUEUE: &str = "general";

/// A calendar open around the clock in `tz`.
fn always_open(tz: &jiff::tz::TimeZone) -> BusinessCalendar {
    // A week with hours and no holidays is always a valid calendar.
    BusinessCalendar::new(tz.clone(), WeeklyHours::always_open(), [])
        .unwrap_or_else(|_| unreachable!("an always-open week is a valid calendar"))
}

fn resolve(raw: RawConfig, base: &Path, path: &Path, ck: &mut Checker<'_>) -> Config {
    let store = StoreConfig {
        path: raw
            .store
            .path
            .as_ref()
            .map(|p| resolve_path(base, p.get_ref()))
            .unwrap_or_else(|| PathBuf::from("/var/lib/postdesk/postdesk.db")),
    };

    let prefix = match &raw.tickets.prefix {
        Some(p) => {
            let v = p.get_ref().trim().to_owned();
            let ok = v.len() <= 10
                && v.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && v.chars().all(|c| c.is_ascii_alphanumeric());
            if !ok {
                ck.err(p, "tickets.prefix", format!("{v:?} cannot be a ticket prefix; use 1 to 10 letters or digits starting with a letter, e.g. \"PD\""));
            }
            v
        }
        None => "PD".to_owned(),
    };

    // Queues first: mailboxes and routes refer to them.
    let mut queues = Vec::new();
    let mut queue_names = BTreeSet::new();
    for (i, q) in raw.queues.iter().enumerate() {
        let key = |k: &str| format!("queues[{i}].{k}");
        let name = q.name.get_ref().trim().to_owned();
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            ck.err(
                &q.name,
                &key("name"),
                "a queue name must be a non-empty word without spaces",
            );
        }
        if !queue_names.insert(name.clone()) {
            ck.err(
                &q.name,
                &key("name"),
                format!("queue {name:?} is defined twice"),
            );
        }
        let languages: Vec<String> = q
            .languages
            .iter()
            .map(|l| ck.language(l, &key("languages")))
            .collect();
        let (timezone, timezone_name) = match &q.timezone {
            Some(tz) => match jiff::tz::TimeZone::get(tz.get_ref()) {
                Ok(z) => (z, tz.get_ref().clone()),
                Err(_) => {
                    ck.err(tz, &key("timezone"), format!("unknown time zone {:?}; use an IANA name, e.g. \"Europe/Berlin\" or \"Asia/Tokyo\"", tz.get_ref()));
                    (jiff::tz::TimeZone::UTC, "UTC".to_owned())
                }
            },
            None => (jiff::tz::TimeZone::UTC, "UTC".to_owned()),
        };
        let week = match &q.hours {
            None => WeeklyHours::always_open(),
            Some(h) => match h.get_ref() {
                RawHours::Text(t) if matches!(t.trim(), "24/7" | "always") => {
                    WeeklyHours::always_open()
                }
                RawHours::Text(t) => {
                    ck.err(h, &key("hours"), format!("{t:?} is not business hours; write \"24/7\" or a table such as {{ mon = \"09:00-17:00\", tue = \"09:00-12:00, 13:00-17:00\" }}"));
                    WeeklyHours::always_open()
                }
                RawHours::Days(d) => WeeklyHours::from_days(d.iter()).unwrap_or_else(|e| {
                    ck.err(h, &key("hours"), e);
                    WeeklyHours::always_open()
                }),
            },
        };
        let mut holidays = BTreeSet::new();
        for h in &q.holidays {
            match calendar::parse_holiday(h.get_ref()) {
                Ok(d) => {
                    holidays.insert(d);
                }
                Err(e) => ck.err(h, &key("holidays"), e),
            }
        }
        if let Some(ics) = &q.holidays_ical {
            let path = resolve_path(base, ics.get_ref());
            match std::fs::read(&path) {
                Err(e) => ck.err(
                    ics,
                    &key("holidays_ical"),
                    format!("cannot read {}: {e}", path.display()),
                ),
                Ok(bytes) => {
                    // A year back to ten years ahead: enough for any due
                    // time, and a bound for yearly rules.
                    let year = jiff::Zoned::now().year();
                    match calendar::ical::holidays_from_ics_bytes(
                        &bytes,
                        year - 1,
                        year + 10,
                        &timezone,
                    ) {
                        Ok(found) => {
                            for w in &found.warnings {
                                tracing::warn!(file = %path.display(), warning = %w, "Holiday calendar entry skipped.");
                            }
                            holidays.extend(found.dates);
                        }
                        Err(e) => ck.err(
                            ics,
                            &key("holidays_ical"),
                            format!("{}: {e}", path.display()),
                        ),
                    }
                }
            }
        }
        let calendar =
            BusinessCalendar::new(timezone.clone(), week, holidays).unwrap_or_else(|e| {
                match &q.hours {
                    Some(h) => ck.err(h, &key("hours"), e),
                    None => ck.err(&q.name, &key("hours"), e),
                }
                always_open(&timezone)
            });
        let first_response = ck.positive_duration(
            &q.first_response,
            &key("first_response"),
            Duration::from_secs(24 * 3600),
        );
        let next_response = ck.positive_duration(
            &q.next_response,
            &key("next_response"),
            Duration::from_secs(24 * 3600),
        );
        let warn = match &q.warn {
            None => WarnPoint::Percent(80),
            Some(w) => {
                let t = w.get_ref().trim();
                if let Some(p) = t.strip_suffix('%') {
                    match p.trim().parse::<u8>() {
                        Ok(p) if (1..=99).contains(&p) => WarnPoint::Percent(p),
                        _ => {
                            ck.err(
                                w,
                                &key("warn"),
                                format!("{t:?}: a percentage must be from 1% to 99%"),
                            );
                            WarnPoint::Percent(80)
                        }
                    }
                } else {
                    match parse_duration(t) {
                        Ok(d) if d < first_response.min(next_response) && !d.is_zero() => {
                            WarnPoint::Before(d)
                        }
                        Ok(_) => {
                            ck.err(w, &key("warn"), "the warning must come before the due time: use a duration shorter than the response targets, or a percentage like \"80%\"");
                            WarnPoint::Percent(80)
                        }
                        Err(e) => {
                            ck.err(
                                w,
                                &key("warn"),
                                format!("{e}, or a percentage such as \"80%\""),
                            );
                            WarnPoint::Percent(80)
                        }
                    }
                }
            }
        };
        let mut escalation = Vec::new();
        let mut last_after = None;
        for (j, e) in q.escalation.iter().enumerate() {
            let k = format!("queues[{i}].escalation[{j}]");
            let after = ck.duration(&e.after, &format!("{k}.after"), Duration::ZERO);
            if let (Some(prev), Some(a)) = (last_after, &e.after)
                && after <= prev
            {
                ck.err(
                    a,
                    &format!("{k}.after"),
                    "each escalation level must come later than the one before",
                );
            }
            last_after = Some(after);
            if e.contacts.get_ref().is_empty() {
                ck.err(
                    &e.contacts,
                    &format!("{k}.contacts"),
                    "name at least one address to notify",
                );
            }
            let contacts = e
                .contacts
                .get_ref()
                .iter()
                .map(|c| ck.address(c, &format!("{k}.contacts")))
                .collect();
            escalation.push(EscalationLevel { after, contacts });
        }
        let agents = q
            .agents
            .iter()
            .map(|a| {
                let v = a.get_ref().trim().to_lowercase();
                if let Some(domain) = v.strip_prefix('@') {
                    if domain.is_empty()
                        || domain.contains('@')
                        || domain.contains(char::is_whitespace)
                    {
                        ck.err(
                            a,
                            &key("agents"),
                            format!("{v:?} is neither an address nor \"@domain\""),
                        );
                    }
                    v
                } else {
                    ck.address(a, &key("agents"))
                }
            })
            .collect();
        let operator_language = q
            .operator_language
            .as_ref()
            .map(|l| ck.language(l, &key("operator_language")))
            .unwrap_or_else(|| "en".to_owned());
        let reopen_within = ck.duration(
            &q.reopen_within,
            &key("reopen_within"),
            Duration::from_secs(14 * 24 * 3600),
        );
        queues.push(QueueConfig {
            name,
            languages,
            timezone,
            timezone_name,
            calendar,
            first_response,
            next_response,
            warn,
            escalation,
            agents,
            operator_language,
            reopen_within,
        });
    }
    if queues.is_empty() {
        // A config without queues still works: one 24/7 queue in UTC.
        queue_names.insert(DEFAULT_QUEUE.to_owned());
        queues.push(QueueConfig {
            name: DEFAULT_QUEUE.to_owned(),
            languages: Vec::new(),
            timezone: jiff::tz::TimeZone::UTC,
            timezone_name: "UTC".to_owned(),
            calendar: always_open(&jiff::tz::TimeZone::UTC),
            first_response: Duration::from_secs(24 * 3600),
            next_response: Duration::from_secs(24 * 3600),
            warn: WarnPoint::Percent(80),
            escalation: Vec::new(),
            agents: Vec::new(),
            operator_language: "en".to_owned(),
            reopen_within: Duration::from_secs(14 * 24 * 3600),
        });
    }
    let first_queue = queues
        .first()
        .map(|q| q.name.clone())
        .unwrap_or_else(|| DEFAULT_QUEUE.to_owned());

    let mut mailboxes = Vec::new();
    let mut mailbox_names = BTreeSet::new();
    let mut seen_addresses = BTreeSet::new();
    for (i, m) in raw.mailboxes.iter().enumerate() {
        let key = |k: &str| format!("mailboxes[{i}].{k}");
        let name = m.name.get_ref().trim().to_owned();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            ck.err(
                &m.name,
                &key("name"),
                "a mailbox name must be letters, digits, '-', '_' or '.', e.g. \"support\"",
            );
        }
        if !mailbox_names.insert(name.clone()) {
            ck.err(
                &m.name,
                &key("name"),
                format!("mailbox {name:?} is defined twice"),
            );
        }
        let address = ck.address(&m.address, &key("address"));
        let aliases: Vec<String> = m
            .aliases
            .iter()
            .map(|a| ck.address(a, &key("aliases")))
            .collect();
        for (a, span) in
            std::iter::once((&address, &m.address)).chain(aliases.iter().zip(&m.aliases))
        {
            if !seen_addresses.insert(a.clone()) {
                ck.err(
                    span,
                    &key("address"),
                    format!(
                        "{a} belongs to two mailboxes; each address can be read by one mailbox only"
                    ),
                );
            }
        }
        let default_queue = match &m.default_queue {
            Some(q) => {
                if !queue_names.contains(q.get_ref()) {
                    ck.err(
                        q,
                        &key("default_queue"),
                        format!(
                            "there is no queue {:?}; define it under [[queues]] or use one of {:?}",
                            q.get_ref(),
                            queue_names
                        ),
                    );
                }
                q.get_ref().clone()
            }
            None => first_queue.clone(),
        };
        let default_language = m
            .default_language
            .as_ref()
            .map(|l| ck.language(l, &key("default_language")))
            .unwrap_or_else(|| "en".to_owned());
        if let Some(d) = &m.display_name
            && d.chars().any(char::is_control)
        {
            ck.err(
                &m.name,
                &key("display_name"),
                "the display name cannot contain control characters or line breaks",
            );
        }
        let source = match (&m.maildir, &m.imap) {
            (Some(_), Some(imap)) => {
                ck.err(imap, &key("imap"), "a mailbox reads from one source: keep either [mailboxes.maildir] or [mailboxes.imap]");
                None
            }
            (Some(md), None) => {
                let after_ingest = match &md.after_ingest {
                    None => MaildirAction::Seen,
                    Some(a) => match a.get_ref().as_str() {
                        "seen" => MaildirAction::Seen,
                        "none" => MaildirAction::None,
                        other => {
                            ck.err(a, &key("maildir.after_ingest"), format!("unknown action {other:?}; use \"seen\" (move new/ to cur/) or \"none\""));
                            MaildirAction::Seen
                        }
                    },
                };
                Some(SourceConfig::Maildir(MaildirConfig {
                    path: resolve_path(base, md.path.get_ref()),
                    after_ingest,
                    poll_interval: ck.positive_duration(
                        &md.poll_interval,
                        &key("maildir.poll_interval"),
                        Duration::from_secs(5),
                    ),
                }))
            }
            (None, Some(imap)) => {
                resolve_imap(imap, base, &key("imap"), ck).map(SourceConfig::Imap)
            }
            (None, None) => None,
        };
        mailboxes.push(MailboxConfig {
            name,
            address,
            display_name: m.display_name.clone(),
            aliases,
            default_queue,
            default_language,
            source,
        });
    }
    if mailboxes.is_empty() {
        ck.err_plain("mailboxes", "no mailbox is configured; add a [[mailboxes]] table with name and address (see config.example.toml)");
    }

    let mut routes = Vec::new();
    for (i, r) in raw.routes.iter().enumerate() {
        let key = |k: &str| format!("routes[{i}].{k}");
        if !queue_names.contains(r.queue.get_ref()) {
            ck.err(
                &r.queue,
                &key("queue"),
                format!(
                    "there is no queue {:?}; define it under [[queues]]",
                    r.queue.get_ref()
                ),
            );
        }
        for m in &r.mailboxes {
            if !mailbox_names.contains(m.get_ref()) {
                ck.err(
                    m,
                    &key("mailboxes"),
                    format!("there is no mailbox {:?}", m.get_ref()),
                );
            }
        }
        if r.languages.is_empty() && r.mailboxes.is_empty() {
            ck.err(&r.queue, &format!("routes[{i}]"), "a route needs `languages`, `mailboxes` or both; mail that matches no route goes to its mailbox's default_queue");
        }
        routes.push(RouteConfig {
            languages: r
                .languages
                .iter()
                .map(|l| ck.language(l, &key("languages")))
                .collect(),
            mailboxes: r.mailboxes.iter().map(|m| m.get_ref().clone()).collect(),
            queue: r.queue.get_ref().clone(),
        });
    }

    let message_id_domain = match &raw.security.message_id_domain {
        Some(d) => {
            let v = d.get_ref().trim().to_lowercase();
            if v.is_empty()
                || !v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            {
                ck.err(
                    d,
                    "security.message_id_domain",
                    format!("{v:?} is not a domain name; use e.g. \"support.example.com\""),
                );
            }
            v
        }
        None => mailboxes
            .first()
            .and_then(|m| m.address.rsplit_once('@').map(|(_, d)| d.to_owned()))
            .unwrap_or_else(|| "postdesk.invalid".to_owned()),
    };
    let token_secret = raw
        .security
        .token_secret
        .as_ref()
        .and_then(|s| ck.secret(s, "security.token_secret", base));

    let max_message_size = match &raw.ingest.max_message_size {
        None => 50 << 20,
        Some(s) => {
            let parsed = match s.get_ref() {
                RawSize::Bytes(n) => {
                    usize::try_from(*n).map_err(|_| "a size cannot be negative".to_owned())
                }
                RawSize::Text(t) => parse_size(t),
            };
            match parsed {
                Ok(n) if n >= 1024 => n,
                Ok(_) => {
                    ck.err(
                        s,
                        "ingest.max_message_size",
                        "that is too small for any real mail; use at least 1 KiB",
                    );
                    50 << 20
                }
                Err(e) => {
                    ck.err(s, "ingest.max_message_size", e);
                    50 << 20
                }
            }
        }
    };
    let ticket_classes = match &raw.ingest.ticket_classes {
        None => vec![Class::Human, Class::AutoGenerated, Class::Bulk],
        Some(list) => {
            let mut v = Vec::new();
            for c in list.get_ref() {
                match Class::parse(c) {
                    Some(Class::Loop) => ck.err(list, "ingest.ticket_classes", "\"loop\" mail never opens a ticket: it is our own mail coming back"),
                    Some(class) => v.push(class),
                    None => ck.err(list, "ingest.ticket_classes", format!("unknown class {c:?}; use human, auto-replied, auto-generated, bounce or bulk")),
                }
            }
            v
        }
    };

    let acknowledge = AckConfig {
        enabled: raw.acknowledge.enabled.unwrap_or(true),
        per_sender_per_hour: ck.count(
            &raw.acknowledge.per_sender_per_hour,
            "acknowledge.per_sender_per_hour",
            3,
            0,
            1000,
        ),
        per_hour: ck.count(
            &raw.acknowledge.per_hour,
            "acknowledge.per_hour",
            500,
            0,
            1_000_000,
        ),
        max_age: ck.duration(
            &raw.acknowledge.max_age,
            "acknowledge.max_age",
            Duration::from_secs(3 * 24 * 3600),
        ),
        max_auto_per_ticket: ck.count(
            &raw.acknowledge.max_auto_per_ticket,
            "acknowledge.max_auto_per_ticket",
            3,
            1,
            100,
        ),
    };

    let mut detect = DetectConfig {
        languages: Vec::new(),
    };
    for l in raw.detect.languages.iter().flatten() {
        let code = ck.language(l, "detect.languages");
        if let Err(unknown) = crate::detect::Detector::with_languages([code.as_str()]) {
            for u in unknown {
                ck.err(l, "detect.languages", u);
            }
        } else if !detect.languages.contains(&code) {
            detect.languages.push(code);
        }
    }

    let transport = match raw.outbox.transport.as_ref().map(|t| t.get_ref().as_str()) {
        None | Some("file") => TransportConfig::File {
            dir: raw
                .outbox
                .dir
                .as_ref()
                .map(|d| resolve_path(base, d.get_ref()))
                .unwrap_or_else(|| PathBuf::from("/var/lib/postdesk/outbox")),
        },
        Some("sendmail") => TransportConfig::Sendmail {
            command: raw
                .outbox
                .sendmail
                .as_ref()
                .map(|d| PathBuf::from(d.get_ref()))
                .unwrap_or_else(|| PathBuf::from("/usr/sbin/sendmail")),
        },
        Some("smtp") => match &raw.outbox.smtp {
            Some(s) => resolve_smtp(s, base, ck),
            None => {
                if let Some(t) = &raw.outbox.transport {
                    ck.err(
                        t,
                        "outbox.transport",
                        "transport \"smtp\" needs an [outbox.smtp] table with at least host",
                    );
                }
                TransportConfig::File {
                    dir: PathBuf::from("/var/lib/postdesk/outbox"),
                }
            }
        },
        Some(other) => {
            if let Some(t) = &raw.outbox.transport {
                ck.err(
                    t,
                    "outbox.transport",
                    format!("unknown transport {other:?}; use \"smtp\", \"sendmail\" or \"file\""),
                );
            }
            TransportConfig::File {
                dir: PathBuf::from("/var/lib/postdesk/outbox"),
            }
        }
    };
    let retry = match &raw.outbox.retry {
        None => [60, 300, 900, 3600, 4 * 3600]
            .map(Duration::from_secs)
            .to_vec(),
        Some(list) if list.is_empty() => {
            ck.err_plain(
                "outbox.retry",
                "give at least one wait, e.g. [\"1m\", \"5m\", \"1h\"]",
            );
            vec![Duration::from_secs(60)]
        }
        Some(list) => list
            .iter()
            .map(|d| {
                ck.positive_duration(&Some(d.clone()), "outbox.retry", Duration::from_secs(60))
            })
            .collect(),
    };
    let outbox = OutboxConfig {
        transport,
        retry,
        give_up_after: ck.positive_duration(
            &raw.outbox.give_up_after,
            "outbox.give_up_after",
            Duration::from_secs(2 * 24 * 3600),
        ),
        send_timeout: ck.positive_duration(
            &raw.outbox.send_timeout,
            "outbox.send_timeout",
            Duration::from_secs(60),
        ),
    };

    let daemon = DaemonConfig {
        status_interval: ck.positive_duration(
            &raw.daemon.status_interval,
            "daemon.status_interval",
            Duration::from_secs(300),
        ),
        stale_after: ck.positive_duration(
            &raw.daemon.stale_after,
            "daemon.stale_after",
            Duration::from_secs(900),
        ),
        shutdown_timeout: ck.positive_duration(
            &raw.daemon.shutdown_timeout,
            "daemon.shutdown_timeout",
            Duration::from_secs(20),
        ),
    };
    let http = raw
        .http
        .as_ref()
        .and_then(|h| match h.listen.get_ref().parse::<SocketAddr>() {
            Ok(listen) => Some(HttpConfig { listen }),
            Err(_) => {
                ck.err(
                    &h.listen,
                    "http.listen",
                    format!(
                        "{:?} is not an address and port; use e.g. \"127.0.0.1:9187\"",
                        h.listen.get_ref()
                    ),
                );
                None
            }
        });
    let log = LogConfig {
        format: match raw.log.format.as_ref().map(|f| (f, f.get_ref().as_str())) {
            None | Some((_, "auto")) => LogFormat::Auto,
            Some((_, "human")) => LogFormat::Human,
            Some((_, "json")) => LogFormat::Json,
            Some((_, "journald")) => LogFormat::Journald,
            Some((f, other)) => {
                ck.err(f, "log.format", format!("unknown format {other:?}; use \"auto\", \"human\", \"json\" or \"journald\""));
                LogFormat::Auto
            }
        },
        level: raw.log.level.clone().unwrap_or_else(|| "info".to_owned()),
    };

    Config {
        path: path.to_owned(),
        store,
        tickets: TicketsConfig { prefix },
        security: SecurityConfig {
            token_secret,
            message_id_domain,
        },
        ingest: IngestConfig {
            max_message_size,
            ticket_classes,
        },
        acknowledge,
        detect,
        outbox,
        templates: TemplatesConfig {
            dir: raw.templates.dir.as_deref().map(|d| resolve_path(base, d)),
        },
        mailboxes,
        queues,
        routes,
        daemon,
        http,
        log,
    }
}

fn resolve_smtp(s: &RawSmtp, base: &Path, ck: &mut Checker<'_>) -> TransportConfig {
    let tls = ck.tls(&s.tls, "outbox.smtp.tls", TlsMode::StartTls);
    let host = s.host.get_ref().trim().to_owned();
    if host.is_empty() {
        ck.err(&s.host, "outbox.smtp.host", "the SMTP host is empty");
    }
    if tls == TlsMode::None
        && !is_loopback_host(&host)
        && !s.allow_plaintext.unwrap_or(false)
        && let Some(t) = &s.tls
    {
        ck.err(t, "outbox.smtp.tls", format!("refusing to send mail in clear text to {host}; use \"starttls\" or \"implicit\", or set allow_plaintext = true if the network is trusted"));
    }
    let default_port = match tls {
        TlsMode::Implicit => 465,
        TlsMode::StartTls => 587,
        TlsMode::None => 25,
    };
    let password = s
        .password
        .as_ref()
        .and_then(|p| ck.secret(p, "outbox.smtp.password", base));
    if password.is_some()
        && s.username.is_none()
        && let Some(p) = &s.password
    {
        ck.err(p, "outbox.smtp.password", "a password needs a username");
    }
    TransportConfig::Smtp(SmtpConfig {
        host,
        port: ck.port(&s.port, "outbox.smtp.port", default_port),
        tls,
        ca_file: s.ca_file.as_deref().map(|p| resolve_path(base, p)),
        username: s.username.clone(),
        password,
        hello_name: s.hello_name.clone(),
        pool_size: ck.count(&s.pool_size, "outbox.smtp.pool_size", 2, 1, 32),
    })
}

fn resolve_imap(
    raw: &Spanned<RawImap>,
    base: &Path,
    key: &str,
    ck: &mut Checker<'_>,
) -> Option<ImapConfig> {
    let r = raw.get_ref();
    let k = |s: &str| format!("{key}.{s}");
    let tls = ck.tls(&r.tls, &k("tls"), TlsMode::Implicit);
    let host = r.host.get_ref().trim().to_owned();
    if host.is_empty() {
        ck.err(&r.host, &k("host"), "the IMAP host is empty");
    }
    if tls == TlsMode::None
        && !is_loopback_host(&host)
        && !r.allow_plaintext.unwrap_or(false)
        && let Some(t) = &r.tls
    {
        ck.err(t, &k("tls"), format!("refusing to send the password in clear text to {host}; use \"implicit\" or \"starttls\", or set allow_plaintext = true if the network is trusted"));
    }
    let port = ck.port(
        &r.port,
        &k("port"),
        if tls == TlsMode::Implicit { 993 } else { 143 },
    );
    let auth_kind = r.auth.as_ref().map(|a| (a, a.get_ref().as_str()));
    let auth = match auth_kind {
        None | Some((_, "password")) | Some((_, "login")) | Some((_, "plain")) => match &r.password
        {
            Some(p) => ck.secret(p, &k("password"), base).map(ImapAuth::Password),
            None => {
                ck.err(&r.username, &k("password"), "no password source; add password = { file = \"/etc/postdesk/imap.pass\" } (or command, env, credential), or auth = \"xoauth2\" with oauth_token");
                None
            }
        },
        Some((_, "xoauth2")) => {
            match &r.oauth_token {
                Some(t) => ck.secret(t, &k("oauth_token"), base).map(ImapAuth::XOAuth2),
                None => {
                    ck.err(&r.username, &k("oauth_token"), "auth = \"xoauth2\" needs oauth_token = { command = [...] } or { file = ... }");
                    None
                }
            }
        }
        Some((a, other)) => {
            ck.err(
                a,
                &k("auth"),
                format!("unknown auth {other:?}; use \"password\" or \"xoauth2\""),
            );
            None
        }
    };
    let after_ingest = match r.after_ingest.as_ref().map(|a| (a, a.get_ref().as_str())) {
        None | Some((_, "seen")) => PostAction::Seen,
        Some((_, "none")) => PostAction::None,
        Some((a, "move")) => {
            match &r.move_to {
                Some(f) if !f.trim().is_empty() => PostAction::Move(f.clone()),
                _ => {
                    ck.err(a, &k("after_ingest"), "\"move\" needs move_to = \"Archive\" (the folder to move ingested mail to)");
                    PostAction::Seen
                }
            }
        }
        Some((a, other)) => {
            ck.err(
                a,
                &k("after_ingest"),
                format!("unknown action {other:?}; use \"none\", \"seen\" or \"move\""),
            );
            PostAction::Seen
        }
    };
    let backlog = match r.backlog.as_ref().map(|b| (b, b.get_ref().as_str())) {
        None | Some((_, "unseen")) => Backlog::Unseen,
        Some((_, "all")) => Backlog::All,
        Some((_, "none")) => Backlog::None,
        Some((b, other)) => {
            ck.err(
                b,
                &k("backlog"),
                format!("unknown backlog {other:?}; use \"unseen\", \"all\" or \"none\""),
            );
            Backlog::Unseen
        }
    };
    let idle_renew = ck.positive_duration(
        &r.idle_renew,
        &k("idle_renew"),
        Duration::from_secs(10 * 60),
    );
    if idle_renew > Duration::from_secs(29 * 60)
        && let Some(i) = &r.idle_renew
    {
        ck.err(
            i,
            &k("idle_renew"),
            "servers drop IDLE after 30 minutes (RFC 2177); use at most \"29m\"",
        );
    }
    let batch_size = ck.count(&r.batch_size, &k("batch_size"), 200, 1, 5000) as usize;
    let folder = r.folder.clone().unwrap_or_else(|| "INBOX".to_owned());
    // Each of these would feed mail back into a folder postdesk reads: a
    // move into the watched folder comes back with a new UID forever, and
    // customers' mail moved into (or read from) the Sent folder would be
    // taken for our agents' replies.
    if let Some(sent) = &r.sent_folder
        && same_folder(sent, &folder)
    {
        ck.err_plain(
            &k("sent_folder"),
            format!("{sent:?} is also the folder ingested as customer mail; name the mailbox's Sent folder (e.g. \"Sent\") or remove the key"),
        );
    }
    if let PostAction::Move(to) = &after_ingest {
        if same_folder(to, &folder) {
            ck.err_plain(
                &k("move_to"),
                format!("{to:?} is the folder being watched; moved mail would come back as new; name another folder (e.g. \"Archive\")"),
            );
        } else if r.sent_folder.as_deref().is_some_and(|s| same_folder(to, s)) {
            ck.err_plain(
                &k("move_to"),
                format!("{to:?} is the sent_folder; customers' mail moved there would be read as agents' replies; name another folder (e.g. \"Archive\")"),
            );
        }
    }
    Some(ImapConfig {
        host,
        port,
        tls,
        ca_file: r.ca_file.as_deref().map(|p| resolve_path(base, p)),
        username: r.username.get_ref().clone(),
        auth: auth?,
        folder,
        sent_folder: r.sent_folder.clone(),
        after_ingest,
        backlog,
        idle: r.idle.unwrap_or(true),
        poll_interval: ck.positive_duration(
            &r.poll_interval,
            &k("poll_interval"),
            Duration::from_secs(60),
        ),
        idle_renew,
        max_backoff: ck.positive_duration(
            &r.max_backoff,
            &k("max_backoff"),
            Duration::from_secs(300),
        ),
        batch_size,
    })
}

/// IMAP folder names are case-sensitive, except INBOX (RFC 3501 5.1).
fn same_folder(a: &str, b: &str) -> bool {
    a == b || (a.eq_ignore_ascii_case("INBOX") && b.eq_ignore_ascii_case("INBOX"))
}

#[cfg(test)]
mod tests;
