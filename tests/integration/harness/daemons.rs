//! Starting, stopping and breaking the two masters of an instance.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::config::{Ports, Settings, WRONG_CERT_HOST};
use super::layout::Layout;
use super::process::{self, SIGCONT, SIGKILL, SIGSTOP, SIGTERM};

pub const DOVECOT: &str = "/usr/sbin/dovecot";
pub const DOVEADM: &str = "/usr/bin/doveadm";
pub const POSTFIX_MASTER: &str = "/usr/lib/postfix/sbin/master";
pub const POSTQUEUE: &str = "/usr/sbin/postqueue";
/// Environment of every Dovecot/Postfix command: nothing from the test.
pub const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

const HOST: &str = "127.0.0.1";

/// How long a server may take to greet after its master was started.
const READY_LIMIT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dovecot,
    Postfix,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Dovecot => "dovecot",
            Kind::Postfix => "postfix",
        }
    }
}

/// Why a master did not come up.
#[derive(Debug)]
pub enum StartError {
    /// A port was taken between choosing and binding it; retry with others.
    AddrInUse,
    Failed(String),
}

impl From<io::Error> for StartError {
    fn from(e: io::Error) -> Self {
        StartError::Failed(e.to_string())
    }
}

/// One master process and what is left of its group after it died.
#[derive(Debug)]
struct Daemon {
    /// The running master, our child; `None` once it has been reaped.
    master: Option<Child>,
    /// Process group (= master pid) whose processes may still be alive.
    group: Option<u32>,
}

impl Daemon {
    fn running(&mut self) -> bool {
        self.master
            .as_mut()
            .is_some_and(|m| matches!(m.try_wait(), Ok(None)))
    }

    /// Kills what a dead master left behind (Dovecot's imap, log and stats
    /// processes outlive a SIGKILLed master by about 10 s).
    fn clear_leftovers(&mut self) {
        if let Some(mut master) = self.master.take() {
            let _ = master.kill();
            let _ = master.wait();
        }
        if let Some(group) = self.group.take() {
            process::kill_group(group, Duration::from_secs(5));
        }
    }

    /// SIGTERM to the master, wait for it and then for its group.
    fn stop(&mut self) {
        if let (Some(master), Some(group)) = (self.master.as_mut(), self.group) {
            // a frozen master would not act on SIGTERM
            process::signal_group(group, SIGCONT);
            process::signal(master.id(), SIGTERM);
            if process::wait_exit(master, Duration::from_secs(15)).is_none() {
                let _ = master.kill();
                let _ = master.wait();
            }
            self.master = None;
            // children normally exit with the master
            process::wait_group_empty(group, Duration::from_secs(3));
        }
        self.clear_leftovers();
    }

    /// SIGKILL to the master only; its children notice on their own.
    fn kill_master(&mut self) {
        if let Some(mut master) = self.master.take() {
            let _ = master.kill();
            let _ = master.wait();
        }
    }

    /// SIGKILL to every process of the group at once.
    fn crash(&mut self) {
        if let Some(group) = self.group {
            process::signal_group(group, SIGKILL);
        }
        self.clear_leftovers();
    }

    fn signal_all(&self, sig: i32) {
        if let Some(group) = self.group {
            process::signal_group(group, sig);
        }
    }
}

/// The processes of one instance.
#[derive(Debug)]
pub struct Instance {
    pub layout: Layout,
    pub settings: Settings,
    pub ports: Ports,
    dovecot: Mutex<Daemon>,
    postfix: Mutex<Daemon>,
}

impl Instance {
    pub fn new(layout: Layout, settings: Settings, ports: Ports) -> Instance {
        let daemon = || {
            Mutex::new(Daemon {
                master: None,
                group: None,
            })
        };
        Instance {
            layout,
            settings,
            ports,
            dovecot: daemon(),
            postfix: daemon(),
        }
    }

    fn daemon(&self, kind: Kind) -> MutexGuard<'_, Daemon> {
        let d = match kind {
            Kind::Dovecot => &self.dovecot,
            Kind::Postfix => &self.postfix,
        };
        d.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts both masters at once and waits for both greetings.
    pub fn start_all(&self) -> Result<(), StartError> {
        self.spawn(Kind::Dovecot)?;
        if self.settings.postfix {
            self.spawn(Kind::Postfix)?;
        }
        self.await_ready(Kind::Dovecot)?;
        if self.settings.postfix {
            self.await_ready(Kind::Postfix)?;
        }
        Ok(())
    }

    /// Starts `kind` unless it runs; same ports, same mail.
    pub fn start(&self, kind: Kind) -> Result<(), StartError> {
        if self.daemon(kind).running() {
            return Ok(());
        }
        self.spawn(kind)?;
        self.await_ready(kind)
    }

    fn spawn(&self, kind: Kind) -> Result<(), StartError> {
        let mut d = self.daemon(kind);
        d.clear_leftovers();
        let (mut cmd, out) = match kind {
            Kind::Dovecot => {
                // A stale pid file of a killed master would make Dovecot
                // refuse to start if that pid were alive (or a zombie).
                let _ = fs::remove_file(self.layout.run.join("master.pid"));
                let mut cmd = Command::new(DOVECOT);
                cmd.arg("-F").arg("-c").arg(self.layout.dovecot_conf());
                (cmd, self.layout.dovecot_out())
            }
            Kind::Postfix => {
                // `postfix start` would run postfix-script (checks, then
                // `master -w`, which daemonizes); the master itself in the
                // foreground is all we need, and stays our child.
                let mut cmd = Command::new(POSTFIX_MASTER);
                cmd.arg("-c")
                    .arg(&self.layout.postfix_etc)
                    .env("MAIL_CONFIG", &self.layout.postfix_etc);
                (cmd, self.layout.postfix_out())
            }
        };
        let out = File::options().create(true).append(true).open(out)?;
        cmd.env("PATH", PATH)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let master = process::spawn_master(cmd, kind == Kind::Dovecot)
            .map_err(|e| StartError::Failed(format!("cannot run {}: {e}", kind.name())))?;
        d.group = Some(master.id());
        d.master = Some(master);
        Ok(())
    }

    fn await_ready(&self, kind: Kind) -> Result<(), StartError> {
        let (port, want, quit) = match kind {
            Kind::Dovecot => (self.ports.imap, "* OK", "a LOGOUT"),
            Kind::Postfix => (self.ports.smtp, "220", "QUIT"),
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + READY_LIMIT;
        loop {
            {
                let mut d = self.daemon(kind);
                let exited = match d.master.as_mut() {
                    Some(m) => m.try_wait().ok().flatten(),
                    None => {
                        return Err(StartError::Failed(format!(
                            "{} was stopped while starting",
                            kind.name()
                        )));
                    }
                };
                if let Some(status) = exited {
                    d.master = None;
                    return Err(self.exit_error(
                        kind,
                        &format!("{} master exited during start-up ({status})", kind.name()),
                    ));
                }
            }
            if let Some(line) = banner(addr, quit) {
                if line.starts_with(want) {
                    return Ok(());
                }
                return Err(StartError::Failed(format!(
                    "{} answered {line:?}, expected {want:?}",
                    kind.name()
                )));
            }
            if Instant::now() >= deadline {
                return Err(StartError::Failed(format!(
                    "no {want:?} greeting from {} on {addr} within {READY_LIMIT:?}",
                    kind.name()
                )));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// A master that exits during start-up because another process took
    /// one of its ports: its own sockets are closed now, so a port we
    /// cannot bind is someone else's. (Postfix's master logs nothing then:
    /// its log daemon is not running yet.)
    fn exit_error(&self, kind: Kind, what: &str) -> StartError {
        let p = &self.ports;
        let ours: &[(&str, u16)] = match kind {
            Kind::Dovecot => &[
                (HOST, p.imap),
                (HOST, p.imaps),
                (WRONG_CERT_HOST, p.wrong_imap),
                (WRONG_CERT_HOST, p.wrong_imaps),
            ],
            Kind::Postfix => &[(HOST, p.smtp), (HOST, p.submission), (HOST, p.smtps)],
        };
        let taken = ours.iter().find(|(host, port)| {
            matches!(TcpListener::bind((*host, *port)), Err(e) if e.kind() == io::ErrorKind::AddrInUse)
        });
        match taken {
            Some(_) => StartError::AddrInUse,
            None => StartError::Failed(what.to_owned()),
        }
    }

    pub fn running(&self, kind: Kind) -> bool {
        self.daemon(kind).running()
    }

    pub fn master_pid(&self, kind: Kind) -> Option<u32> {
        let mut d = self.daemon(kind);
        if d.running() {
            d.master.as_ref().map(Child::id)
        } else {
            None
        }
    }

    pub fn stop(&self, kind: Kind) {
        self.daemon(kind).stop();
    }

    pub fn kill_master(&self, kind: Kind) {
        self.daemon(kind).kill_master();
    }

    pub fn crash(&self, kind: Kind) {
        self.daemon(kind).crash();
    }

    pub fn freeze(&self, kind: Kind) {
        self.daemon(kind).signal_all(SIGSTOP);
    }

    pub fn thaw(&self, kind: Kind) {
        self.daemon(kind).signal_all(SIGCONT);
    }

    pub fn crash_all(&self) {
        self.crash(Kind::Postfix);
        self.crash(Kind::Dovecot);
    }

    /// SIGKILL everything of both masters, reap them, remove the directory.
    pub fn destroy(&self) {
        self.crash_all();
        let _ = fs::remove_dir_all(&self.layout.root);
        process::forget_dir(&self.layout.root);
    }

    /// The last `lines` lines of both server logs, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let mut files = vec![self.layout.dovecot_out(), self.layout.dovecot_log()];
        if self.settings.postfix {
            files.extend([self.layout.postfix_out(), self.layout.postfix_log()]);
        }
        let mut out = String::new();
        for file in files {
            let text = fs::read_to_string(&file).unwrap_or_default();
            if text.trim().is_empty() {
                continue;
            }
            let all: Vec<&str> = text.lines().collect();
            out.push_str(&format!("--- last lines of {} ---\n", file.display()));
            for line in all.iter().skip(all.len().saturating_sub(lines)) {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

/// The first line a server sends on `addr`; `None` if nothing listens yet
/// or nothing arrives in time. Says `quit` before closing.
fn banner(addr: SocketAddr, quit: &str) -> Option<String> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let _ = reader.get_mut().write_all(format!("{quit}\r\n").as_bytes());
    (!line.is_empty()).then(|| line.trim_end().to_owned())
}

/// Files below `dir`, recursively (Postfix's hashed queue directories).
pub fn count_files(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => count_files(&e.path()),
            Ok(t) if t.is_file() => 1,
            _ => 0,
        })
        .sum()
}
