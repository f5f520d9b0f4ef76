//! Real Dovecot + Postfix on loopback in a temp directory.
//!
//! [`MailStack::start`] gives a fresh, private instance: Dovecot (IMAP with
//! STARTTLS, implicit TLS, LMTP) and Postfix (SMTP, submission and smtps
//! with SASL through Dovecot), which delivers its virtual domains into
//! Dovecot over LMTP and everything else into `sink@`. Config, TLS material,
//! Maildirs, queue, logs and sockets live in one directory under /dev/shm
//! (or /tmp); nothing touches /etc, /var or /run; the servers listen on
//! free ports of 127.0.0.1 (and 127.0.0.2 for the wrong certificate) only.
//! Start-up takes about 0.3 s.
//!
//! [`shared`] is one instance for the whole test binary, for tests that do
//! not stop or break servers: each takes its own mailbox user with
//! [`MailStack::lease_user`]. Tests that stop, kill or freeze servers start
//! their own.
//!
//! Teardown is by PID of this instance's processes only, on `Drop` (also
//! when a test panics). For [`shared`] (a static, never dropped) and for a
//! test binary that is killed, a guard process kills what is left and
//! removes the directories when this process exits (see `process.rs`).
//!
//! Set `MAILSTACK_VERBOSE=1` to print each stack's start-up time.
//! The recipe and its measurements: `../shared/mailstack/README.md`.

// Not every test module uses every helper.
#![allow(dead_code)]

mod config;
mod daemons;
pub mod imap;
mod layout;
mod ports;
mod process;
pub mod smtp;
mod sys;
mod tls;

use std::fmt;
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use config::{Ports, Settings, WRONG_CERT_HOST};
use daemons::{Instance, Kind, StartError};
use layout::Layout;

pub use imap::ImapSession;
pub use process::group_members;
pub use smtp::SmtpError;

/// Where the servers listen.
pub const HOST: &str = "127.0.0.1";
/// The name the server certificate is valid for (also 127.0.0.1 and ::1).
pub const TLS_SERVER_NAME: &str = "localhost";
/// The domain of the default users.
pub const DOMAIN: &str = "example.test";
/// Users every stack has (password: the local part + "-secret").
pub const DEFAULT_USERS: [&str; 5] = [
    "support@example.test",
    "customer@example.test",
    "lead@example.test",
    "agent@example.test",
    "sink@example.test",
];
/// Receives mail for every domain the stack does not host (catch-all on).
pub const SINK: &str = "sink@example.test";

const INSTALL_HINT: &str =
    "run scripts/test.sh, which installs dovecot-imapd dovecot-lmtpd postfix";
/// Spare users of the [`shared`] stack, one or more per test.
const SHARED_SPARE_USERS: usize = 256;
/// Start attempts when a chosen port is taken in the meantime.
const START_ATTEMPTS: usize = 5;

/// A mailbox user and its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub address: String,
    pub password: String,
}

/// What IMAP `STATUS` / `doveadm mailbox status` report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxStatus {
    pub messages: u32,
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub unseen: u32,
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub uid: u32,
    /// Sorted; without `\Recent`, which depends on which session looked first.
    pub flags: Vec<String>,
    /// The message as stored (IMAP delivers CRLF line endings).
    pub bytes: Vec<u8>,
}

/// Listeners that serve a certificate from the harness CA whose name
/// ([`WrongCert::name`]) is neither localhost nor an IP address: a client
/// that verifies names must refuse them.
#[derive(Debug, Clone)]
pub struct WrongCert {
    /// 127.0.0.2 (Dovecot picks certificates by local address).
    pub host: &'static str,
    /// Plain IMAP, for STARTTLS.
    pub imap_port: u16,
    /// Implicit TLS.
    pub imaps_port: u16,
    /// The wrong certificate plus the CA (PEM).
    pub cert_file: PathBuf,
    pub name: &'static str,
}

/// `wait_for_messages` gave up.
pub struct WaitTimeout {
    pub wanted: u32,
    pub last: Result<MailboxStatus, String>,
    pub waited: Duration,
    /// Postfix queue length and log tails at the time.
    pub context: String,
}

impl fmt::Display for WaitTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "still not {} messages after {:?}; last status: {:?}\n{}",
            self.wanted, self.waited, self.last, self.context
        )
    }
}

impl fmt::Debug for WaitTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for WaitTimeout {}

/// Options for [`MailStack`]; `MailStack::builder().…().start()`.
#[derive(Debug, Clone)]
pub struct MailStackBuilder {
    users: Vec<User>,
    spare_users: usize,
    postfix: bool,
    catch_all: bool,
    extra_domains: Vec<String>,
    base_dir: PathBuf,
}

impl MailStackBuilder {
    /// Adds a user; its domain becomes one of the stack's domains.
    pub fn user(mut self, address: &str, password: &str) -> Self {
        let address = address.to_ascii_lowercase();
        assert!(
            address.contains('@')
                && !address.contains([':', ' '])
                && !password.contains([':', ' ', '\n']),
            "user {address:?} / password {password:?}: want user@domain and a password without ':' or spaces"
        );
        self.users.retain(|u| u.address != address);
        self.users.push(User {
            address,
            password: password.to_owned(),
        });
        self
    }

    /// How many spare users `lease_user` can hand out (default 16).
    pub fn spare_users(mut self, n: usize) -> Self {
        self.spare_users = n;
        self
    }

    /// Dovecot only: no Postfix, no SMTP ports.
    pub fn without_postfix(mut self) -> Self {
        self.postfix = false;
        self
    }

    /// On (default): mail for other domains goes to `sink@`. Off: relaying
    /// is refused at RCPT with 554, even from loopback.
    pub fn catch_all(mut self, on: bool) -> Self {
        self.catch_all = on;
        self
    }

    /// Another domain Postfix delivers locally (unknown users: 550).
    pub fn extra_domain(mut self, domain: &str) -> Self {
        self.extra_domains.push(domain.to_ascii_lowercase());
        self
    }

    /// Directory to create the instance in. Default: /dev/shm if it has
    /// 512 MiB free (tmpfs: bulk APPEND 4x faster than ext4), else /tmp.
    pub fn base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = dir.into();
        self
    }

    /// Starts the stack; panics with the server logs if it cannot.
    #[track_caller]
    pub fn start(self) -> MailStack {
        MailStack::launch(self, false)
    }
}

/// A running Dovecot + Postfix pair; destroyed on drop.
pub struct MailStack {
    instance: Instance,
    /// The [`shared`] stack refuses destructive operations.
    shared: bool,
    next_spare: AtomicUsize,
    spares: usize,
}

/// The stack shared by all tests of this binary (started on first use).
/// Use [`MailStack::lease_user`] for mailboxes of your own; do not expect
/// the default users' mailboxes to be empty.
pub fn shared() -> &'static MailStack {
    static SHARED: OnceLock<MailStack> = OnceLock::new();
    SHARED.get_or_init(|| {
        MailStack::launch(MailStack::builder().spare_users(SHARED_SPARE_USERS), true)
    })
}

impl MailStack {
    /// A fresh stack with the default users and catch-all on.
    #[track_caller]
    pub fn start() -> MailStack {
        MailStack::builder().start()
    }

    pub fn builder() -> MailStackBuilder {
        let b = MailStackBuilder {
            users: Vec::new(),
            spare_users: 16,
            postfix: true,
            catch_all: true,
            extra_domains: Vec::new(),
            base_dir: layout::default_base_dir(),
        };
        DEFAULT_USERS.iter().fold(b, |b, address| {
            let local = address.split('@').next().unwrap_or_default();
            b.user(address, &format!("{local}-secret"))
        })
    }

    #[track_caller]
    fn launch(b: MailStackBuilder, shared: bool) -> MailStack {
        let started = Instant::now();
        preflight(b.postfix);
        let spare_users = (1..=b.spare_users).map(|i| User {
            address: format!("u{i:03}@{DOMAIN}"),
            password: format!("u{i:03}-secret"),
        });
        let users: Vec<User> = b.users.iter().cloned().chain(spare_users).collect();
        let mut domains: Vec<String> = Vec::new();
        for d in users
            .iter()
            .filter_map(|u| u.address.split('@').nth(1))
            .chain(b.extra_domains.iter().map(String::as_str))
        {
            if !domains.iter().any(|have| have == d) {
                domains.push(d.to_owned());
            }
        }
        let catch_all = b.catch_all.then(|| {
            let target = format!("sink@{}", domains.first().map_or(DOMAIN, String::as_str));
            assert!(
                users.iter().any(|u| u.address == target),
                "catch-all needs the user {target}"
            );
            target
        });
        let settings = Settings {
            users,
            domains,
            catch_all,
            postfix: b.postfix,
        };
        let layout = Layout::create_unique(&b.base_dir).unwrap_or_else(|e| {
            panic!(
                "cannot create the mail stack directory in {}: {e}",
                b.base_dir.display()
            )
        });
        let fail = |what: &str, instance: Option<&Instance>| -> ! {
            let logs = instance.map(|i| i.log_tail(30)).unwrap_or_default();
            if let Some(i) = instance {
                i.destroy();
            } else {
                let _ = std::fs::remove_dir_all(&layout.root);
                process::forget_dir(&layout.root);
            }
            panic!(
                "mail stack in {} did not start: {what}\n{logs}If Dovecot or Postfix is missing or broken: {INSTALL_HINT}",
                layout.root.display()
            );
        };
        if let Err(e) = tls::generate(&layout.tls, &settings.mail_host()) {
            fail(&e.to_string(), None);
        }
        if settings.postfix
            && let Err(e) = layout.create_postfix_dirs()
        {
            fail(&format!("cannot create the Postfix queue: {e}"), None);
        }
        let hosts = [Ipv4Addr::LOCALHOST, Ipv4Addr::new(127, 0, 0, 2)];
        for attempt in 1..=START_ATTEMPTS {
            let ports = Ports::from_slice(&ports::pick(Ports::COUNT, &hosts));
            if let Err(e) = config::write_all(&layout, &settings, &ports) {
                fail(&format!("cannot write the configuration: {e}"), None);
            }
            let instance = Instance::new(layout.clone(), settings.clone(), ports);
            match instance.start_all() {
                Ok(()) => {
                    let stack = MailStack {
                        instance,
                        shared,
                        next_spare: AtomicUsize::new(0),
                        spares: b.spare_users,
                    };
                    if std::env::var_os("MAILSTACK_VERBOSE").is_some() {
                        eprintln!(
                            "mail stack {} ready in {:?}",
                            layout.root.display(),
                            started.elapsed()
                        );
                    }
                    return stack;
                }
                Err(StartError::AddrInUse) if attempt < START_ATTEMPTS => instance.crash_all(),
                Err(StartError::AddrInUse) => fail("ports kept being taken", Some(&instance)),
                Err(StartError::Failed(what)) => fail(&what, Some(&instance)),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    // ---- where things are -------------------------------------------------

    pub fn host(&self) -> &'static str {
        HOST
    }
    pub fn imap_port(&self) -> u16 {
        self.instance.ports.imap
    }
    pub fn imaps_port(&self) -> u16 {
        self.instance.ports.imaps
    }
    #[track_caller]
    pub fn smtp_port(&self) -> u16 {
        self.need_postfix();
        self.instance.ports.smtp
    }
    /// STARTTLS required, then AUTH (PLAIN/LOGIN) against Dovecot's users.
    #[track_caller]
    pub fn submission_port(&self) -> u16 {
        self.need_postfix();
        self.instance.ports.submission
    }
    /// Implicit TLS, then AUTH.
    #[track_caller]
    pub fn smtps_port(&self) -> u16 {
        self.need_postfix();
        self.instance.ports.smtps
    }
    pub fn tls_server_name(&self) -> &'static str {
        TLS_SERVER_NAME
    }
    /// PEM of the CA that signed the server certificates.
    pub fn ca_file(&self) -> PathBuf {
        self.instance.layout.ca_file()
    }
    pub fn wrong_cert(&self) -> WrongCert {
        WrongCert {
            host: WRONG_CERT_HOST,
            imap_port: self.instance.ports.wrong_imap,
            imaps_port: self.instance.ports.wrong_imaps,
            cert_file: self.instance.layout.tls.join("wrong-chain.crt"),
            name: tls::WRONG_NAME,
        }
    }
    pub fn dir(&self) -> &Path {
        &self.instance.layout.root
    }
    pub fn dovecot_conf(&self) -> PathBuf {
        self.instance.layout.dovecot_conf()
    }
    pub fn dovecot_log(&self) -> PathBuf {
        self.instance.layout.dovecot_log()
    }
    pub fn postfix_log(&self) -> PathBuf {
        self.instance.layout.postfix_log()
    }
    pub fn postfix_config_dir(&self) -> &Path {
        &self.instance.layout.postfix_etc
    }
    /// Dovecot's LMTP socket (what Postfix delivers to).
    pub fn lmtp_socket(&self) -> PathBuf {
        self.instance.layout.lmtp_socket()
    }
    /// The last `lines` lines of every server log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.instance.log_tail(lines)
    }

    /// Makes `token` the one XOAUTH2 access token Dovecot accepts for
    /// `address` (none by default), as an OAuth server issuing a new token
    /// would. Dovecot re-reads the file when its size or modification
    /// second changes (restarting Dovecot always does); an open session
    /// stays logged in.
    #[track_caller]
    pub fn set_oauth_token(&self, address: &str, token: &str) {
        assert!(
            !token.contains([':', ' ', '\n']),
            "token {token:?}: no ':', spaces or newlines"
        );
        static TOKENS: Mutex<()> = Mutex::new(());
        let _guard = TOKENS.lock().unwrap_or_else(|p| p.into_inner());
        let address = address.to_ascii_lowercase();
        self.password(&address);
        let file = self.instance.layout.oauth_tokens_file();
        let old = std::fs::read_to_string(&file).expect("read the token file");
        let mut lines: Vec<String> = old
            .lines()
            .filter(|l| l.split(':').next() != Some(address.as_str()))
            .map(str::to_owned)
            .collect();
        lines.push(format!("{address}:{{PLAIN}}{token}::::::"));
        // Written beside and renamed: Dovecot never reads half a file.
        let tmp = file.with_extension("new");
        std::fs::write(&tmp, lines.join("\n") + "\n").expect("write the token file");
        layout::make_readable_by_dovecot(&tmp).expect("token file permissions");
        std::fs::rename(&tmp, &file).expect("replace the token file");
    }

    /// The configured users (spare users not included).
    pub fn users(&self) -> &[User] {
        let all = &self.instance.settings.users;
        all.get(..all.len() - self.spares).unwrap_or(all)
    }
    /// The password of any user of this stack, spare users included.
    #[track_caller]
    pub fn password(&self, address: &str) -> &str {
        self.instance
            .settings
            .users
            .iter()
            .find(|u| u.address.eq_ignore_ascii_case(address))
            .map(|u| u.password.as_str())
            .unwrap_or_else(|| panic!("{address} is not a user of this mail stack"))
    }
    /// A user no other test of this process gets: its mailboxes start empty.
    #[track_caller]
    pub fn lease_user(&self) -> User {
        let i = self.next_spare.fetch_add(1, Ordering::Relaxed);
        assert!(
            i < self.spares,
            "all {} spare users are leased; raise spare_users",
            self.spares
        );
        let all = &self.instance.settings.users;
        all.get(all.len() - self.spares + i)
            .cloned()
            .unwrap_or_else(|| unreachable!())
    }

    // ---- processes -----------------------------------------------------

    pub fn is_dovecot_running(&self) -> bool {
        self.instance.running(Kind::Dovecot)
    }
    pub fn is_postfix_running(&self) -> bool {
        self.instance.running(Kind::Postfix)
    }
    pub fn dovecot_pid(&self) -> Option<u32> {
        self.instance.master_pid(Kind::Dovecot)
    }
    pub fn postfix_pid(&self) -> Option<u32> {
        self.instance.master_pid(Kind::Postfix)
    }

    /// Graceful stop (SIGTERM): IMAP clients get `* BYE`. Takes about 1 s
    /// (Dovecot's master sleeps 1 s for its log process).
    #[track_caller]
    pub fn stop_dovecot(&self) {
        self.exclusive("stop_dovecot");
        self.instance.stop(Kind::Dovecot);
    }
    /// Starts Dovecot again: same ports, same mail, same UIDVALIDITY.
    /// Kills what a killed master left behind first.
    #[track_caller]
    pub fn start_dovecot(&self) {
        self.restart_kind(Kind::Dovecot);
    }
    /// SIGKILL to the master only. Ports close at once; open IMAP sessions
    /// live on for about 10 s, then get `* BYE`.
    #[track_caller]
    pub fn kill_dovecot(&self) {
        self.exclusive("kill_dovecot");
        self.instance.kill_master(Kind::Dovecot);
    }
    /// SIGKILL to every Dovecot process: clients see EOF immediately.
    #[track_caller]
    pub fn crash_dovecot(&self) {
        self.exclusive("crash_dovecot");
        self.instance.crash(Kind::Dovecot);
    }
    /// SIGSTOP to every Dovecot process: connects succeed, nothing answers.
    #[track_caller]
    pub fn freeze_dovecot(&self) {
        self.exclusive("freeze_dovecot");
        self.instance.freeze(Kind::Dovecot);
    }
    pub fn thaw_dovecot(&self) {
        self.instance.thaw(Kind::Dovecot);
    }

    /// Graceful stop: the SMTP ports close, queued mail stays queued.
    #[track_caller]
    pub fn stop_postfix(&self) {
        self.exclusive("stop_postfix");
        self.need_postfix();
        self.instance.stop(Kind::Postfix);
    }
    #[track_caller]
    pub fn start_postfix(&self) {
        self.need_postfix();
        self.restart_kind(Kind::Postfix);
    }
    /// SIGKILL to the master only; its children exit within about 0.3 s.
    #[track_caller]
    pub fn kill_postfix(&self) {
        self.exclusive("kill_postfix");
        self.need_postfix();
        self.instance.kill_master(Kind::Postfix);
    }
    #[track_caller]
    pub fn crash_postfix(&self) {
        self.exclusive("crash_postfix");
        self.need_postfix();
        self.instance.crash(Kind::Postfix);
    }
    #[track_caller]
    pub fn freeze_postfix(&self) {
        self.exclusive("freeze_postfix");
        self.need_postfix();
        self.instance.freeze(Kind::Postfix);
    }
    pub fn thaw_postfix(&self) {
        self.instance.thaw(Kind::Postfix);
    }

    #[track_caller]
    fn restart_kind(&self, kind: Kind) {
        if let Err(e) = self.instance.start(kind) {
            let what = match e {
                StartError::AddrInUse => {
                    "a port of this stack was taken by another process".to_owned()
                }
                StartError::Failed(what) => what,
            };
            panic!(
                "restarting {} in {} failed: {what}\n{}",
                kind.name(),
                self.dir().display(),
                self.log_tail(30)
            );
        }
    }

    #[track_caller]
    fn exclusive(&self, op: &str) {
        assert!(
            !self.shared,
            "{op} on the shared mail stack would break other tests; use MailStack::start() for destructive tests"
        );
    }

    #[track_caller]
    fn need_postfix(&self) {
        assert!(
            self.instance.settings.postfix,
            "this mail stack was built without Postfix"
        );
    }

    // ---- mail ------------------------------------------------------------

    /// A logged-in IMAP session (plain TCP) as `user`.
    #[track_caller]
    pub fn imap_session(&self, user: &str) -> ImapSession<TcpStream> {
        let mut s = ImapSession::connect(HOST, self.imap_port()).unwrap_or_else(|e| {
            panic!(
                "IMAP connect to {HOST}:{}: {e}\n{}",
                self.imap_port(),
                self.log_tail(20)
            )
        });
        s.login(user, self.password(user))
            .unwrap_or_else(|e| panic!("IMAP login as {user}: {e}"));
        s
    }

    /// Appends one message over IMAP (not `doveadm save`: APPEND returns the
    /// UID, via UIDPLUS); returns its UID.
    #[track_caller]
    pub fn append(&self, user: &str, folder: &str, message: &[u8]) -> u32 {
        let uids = self.append_many(user, folder, &[message]);
        uids.first().copied().unwrap_or_else(|| unreachable!())
    }

    /// Appends many messages with MULTIAPPEND, one round trip per 1,000
    /// (2,000 small messages: about 0.3 s on tmpfs, 1.3 s on ext4; one
    /// APPEND each would be ~20 ms per message). Returns the UIDs in order.
    #[track_caller]
    pub fn append_many<M: AsRef<[u8]>>(
        &self,
        user: &str,
        folder: &str,
        messages: &[M],
    ) -> Vec<u32> {
        let mut session = self.imap_session(user);
        let mut uids = Vec::with_capacity(messages.len());
        for chunk in messages.chunks(1000) {
            let got = session
                .multiappend(folder, chunk)
                .unwrap_or_else(|e| panic!("APPEND to {user} {folder}: {e}"));
            uids.extend(got);
        }
        let _ = session.command("LOGOUT");
        uids
    }

    /// Creates a folder (no error if it exists).
    #[track_caller]
    pub fn create_folder(&self, user: &str, folder: &str) {
        if let Err(e) = self.doveadm(&["mailbox", "create", "-u", user, folder])
            && !e.contains("already exists")
        {
            panic!("{e}");
        }
    }

    #[track_caller]
    pub fn mailbox_status(&self, user: &str, folder: &str) -> MailboxStatus {
        self.try_mailbox_status(user, folder)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_mailbox_status(&self, user: &str, folder: &str) -> Result<MailboxStatus, String> {
        let out = self.doveadm(&[
            "-f",
            "tab",
            "mailbox",
            "status",
            "-u",
            user,
            "messages uidvalidity uidnext unseen",
            folder,
        ])?;
        let mut lines = out.lines();
        let (Some(header), Some(values)) = (lines.next(), lines.next()) else {
            return Err(format!("unexpected doveadm mailbox status output: {out:?}"));
        };
        let field = |name: &str| -> Result<u32, String> {
            header
                .split('\t')
                .zip(values.split('\t'))
                .find(|(h, _)| *h == name)
                .and_then(|(_, v)| v.trim().parse().ok())
                .ok_or_else(|| format!("no {name} in doveadm output {out:?}"))
        };
        Ok(MailboxStatus {
            messages: field("messages")?,
            uidvalidity: field("uidvalidity")?,
            uidnext: field("uidnext")?,
            unseen: field("unseen")?,
        })
    }

    /// Every message of `folder` in UID order, read without setting `\Seen`.
    #[track_caller]
    pub fn messages(&self, user: &str, folder: &str) -> Vec<StoredMessage> {
        let mut session = self.imap_session(user);
        let context = |e| panic!("reading {user} {folder}: {e}");
        session
            .command(&format!("EXAMINE {}", imap::quote(folder)))
            .unwrap_or_else(context);
        let response = session
            .command("UID FETCH 1:* (UID FLAGS BODY.PEEK[])")
            .unwrap_or_else(context);
        let _ = session.command("LOGOUT");
        let mut messages: Vec<StoredMessage> = response
            .untagged
            .into_iter()
            .filter(|u| u.text.contains(" FETCH ("))
            .filter_map(|u| {
                Some(StoredMessage {
                    uid: imap::fetch_number(&u.text, "UID")?,
                    flags: normalize_flags(imap::fetch_flags(&u.text)),
                    bytes: u.literals.into_iter().next()?,
                })
            })
            .collect();
        messages.sort_by_key(|m| m.uid);
        messages
    }

    /// The raw bytes of every message of `folder`, in UID order.
    #[track_caller]
    pub fn fetch_all(&self, user: &str, folder: &str) -> Vec<Vec<u8>> {
        self.messages(user, folder)
            .into_iter()
            .map(|m| m.bytes)
            .collect()
    }

    /// (UID, sorted flags) of every message of `folder`, without `\Recent`.
    #[track_caller]
    pub fn flags(&self, user: &str, folder: &str) -> Vec<(u32, Vec<String>)> {
        let mut session = self.imap_session(user);
        let context = |e| panic!("reading flags of {user} {folder}: {e}");
        session
            .command(&format!("EXAMINE {}", imap::quote(folder)))
            .unwrap_or_else(context);
        let response = session
            .command("UID FETCH 1:* (UID FLAGS)")
            .unwrap_or_else(context);
        let _ = session.command("LOGOUT");
        let mut flags: Vec<(u32, Vec<String>)> = response
            .untagged
            .iter()
            .filter(|u| u.text.contains(" FETCH ("))
            .filter_map(|u| {
                Some((
                    imap::fetch_number(&u.text, "UID")?,
                    normalize_flags(imap::fetch_flags(&u.text)),
                ))
            })
            .collect();
        flags.sort();
        flags
    }

    /// Changes the UIDVALIDITY of `folder` (messages and UIDs stay), as
    /// happens when a mailbox is restored or rebuilt on the server.
    #[track_caller]
    pub fn set_uidvalidity(&self, user: &str, folder: &str, uidvalidity: u32) {
        self.doveadm(&[
            "mailbox",
            "update",
            "--uid-validity",
            &uidvalidity.to_string(),
            "-u",
            user,
            folder,
        ])
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Removes every message of `folder`.
    #[track_caller]
    pub fn expunge_all(&self, user: &str, folder: &str) {
        self.doveadm(&["expunge", "-u", user, "mailbox", folder, "all"])
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Polls until `folder` holds at least `count` messages.
    pub fn wait_for_messages(
        &self,
        user: &str,
        folder: &str,
        count: u32,
        timeout: Duration,
    ) -> Result<MailboxStatus, WaitTimeout> {
        let started = Instant::now();
        loop {
            let last = self.try_mailbox_status(user, folder);
            match &last {
                Ok(status) if status.messages >= count => return Ok(*status),
                _ if started.elapsed() >= timeout => {
                    let queue = if self.instance.settings.postfix {
                        self.postfix_queue_len().to_string()
                    } else {
                        "-".into()
                    };
                    return Err(WaitTimeout {
                        wanted: count,
                        last,
                        waited: started.elapsed(),
                        context: format!(
                            "{user} {folder}; postfix queue: {queue}\n{}",
                            self.log_tail(15)
                        ),
                    });
                }
                _ => thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Sends `message` to Postfix's plain SMTP port (no TLS, no AUTH;
    /// loopback may relay).
    pub fn send_smtp(&self, from: &str, to: &[&str], message: &[u8]) -> Result<(), SmtpError> {
        smtp::send(HOST, self.smtp_port(), from, to, message)
    }

    /// Messages in Postfix's queue (incoming, active, deferred, hold,
    /// maildrop); also works while Postfix is stopped.
    pub fn postfix_queue_len(&self) -> usize {
        let spool = &self.instance.layout.postfix_spool;
        ["maildrop", "incoming", "active", "deferred", "hold"]
            .iter()
            .map(|q| daemons::count_files(&spool.join(q)))
            .sum()
    }

    /// Retries deferred mail now instead of at the next queue run.
    #[track_caller]
    pub fn flush_postfix(&self) {
        self.need_postfix();
        let out = Command::new(daemons::POSTQUEUE)
            .arg("-c")
            .arg(&self.instance.layout.postfix_etc)
            .arg("-f")
            .env_clear()
            .env("PATH", daemons::PATH)
            .output()
            .unwrap_or_else(|e| panic!("cannot run postqueue: {e}"));
        assert!(
            out.status.success(),
            "postqueue -f failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `doveadm -c <our config> args…`; Err carries its stderr.
    fn doveadm(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(daemons::DOVEADM)
            .arg("-c")
            .arg(self.instance.layout.dovecot_conf())
            .args(args)
            .env_clear()
            .env("PATH", daemons::PATH)
            .output()
            .map_err(|e| format!("cannot run doveadm: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "doveadm {args:?} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

impl Drop for MailStack {
    fn drop(&mut self) {
        if thread::panicking() {
            // libtest shows this with the failed test's output
            eprintln!(
                "mail stack {} at the time of the panic:\n{}",
                self.dir().display(),
                self.log_tail(20)
            );
        }
        self.instance.destroy();
    }
}

/// Sorted, without `\Recent`.
fn normalize_flags(flags: Vec<String>) -> Vec<String> {
    let mut flags: Vec<String> = flags
        .into_iter()
        .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
        .collect();
    flags.sort();
    flags
}

/// Fails loudly, before anything is created, if the servers cannot run.
#[track_caller]
fn preflight(postfix: bool) {
    static CHECKED: Mutex<Option<Vec<String>>> = Mutex::new(None);
    let mut checked = CHECKED.lock().unwrap_or_else(PoisonError::into_inner);
    let problems = checked.get_or_insert_with(|| {
        let mut problems = Vec::new();
        let is_root =
            std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
        if !matches!(is_root, Ok(true)) {
            problems.push(
                "the tests must run as root (Postfix and Dovecot drop privileges themselves)"
                    .to_owned(),
            );
        }
        let files = [
            (daemons::DOVECOT, "dovecot-core"),
            (daemons::DOVEADM, "dovecot-core"),
            ("/usr/lib/dovecot/imap", "dovecot-imapd"),
            ("/usr/lib/dovecot/lmtp", "dovecot-lmtpd"),
            (daemons::POSTFIX_MASTER, "postfix"),
            (daemons::POSTQUEUE, "postfix"),
            ("/usr/bin/openssl", "openssl"),
        ];
        for (file, package) in files {
            if !Path::new(file).exists() {
                problems.push(format!("{file} is missing (package {package})"));
            }
        }
        for (db, name) in [
            ("/etc/passwd", "dovecot"),
            ("/etc/passwd", "dovenull"),
            ("/etc/passwd", "postfix"),
            ("/etc/group", "postdrop"),
        ] {
            if layout::system_id(db, name).is_err() {
                problems.push(format!(
                    "no '{name}' in {db} (created by the dovecot/postfix packages)"
                ));
            }
        }
        problems
    });
    let relevant: Vec<&String> = problems
        .iter()
        .filter(|p| postfix || !p.contains("postfix") && !p.contains("postdrop"))
        .collect();
    assert!(
        relevant.is_empty(),
        "cannot start the test mail servers:\n  {}\n{INSTALL_HINT}",
        relevant
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}
