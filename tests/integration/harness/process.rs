//! Daemon processes: children of this process, each master leading a
//! process group of its own (pgid = master pid), signalled by PID only.
//!
//! Both masters run in the foreground (`dovecot -F`, Postfix `master`
//! without `-w`), so they are our children: we reap them ourselves and never
//! trust a pid file. Their children stay in the master's group; after a
//! master is gone its leftovers are found by that group id, and a PID is
//! signalled only if its executable is a Dovecot or Postfix binary. No
//! pkill, no killall.
//!
//! If this process dies without cleaning up (SIGKILL, abort, a timeout),
//! and for the [`super::shared`] stack, which as a static is never dropped,
//! a guard process does it: `/bin/sh` reading a pipe from us. The kernel
//! closes the pipe when we exit, however we exit; the guard then SIGKILLs
//! the groups and removes the directories we registered and did not
//! deregister. (`PR_SET_PDEATHSIG` is no substitute: Postfix's master
//! changes its effective uid at start-up, which clears it.)

use std::fs;
use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

pub use super::sys::{SIGCONT, SIGKILL, SIGSTOP, SIGTERM, signal};

/// Starts a master. `own_group`: put it in a new process group (Dovecot);
/// Postfix's master calls `setsid()` itself and fails if it already leads
/// a group. Either way its group id is its pid.
pub fn spawn_master(mut cmd: Command, own_group: bool) -> io::Result<Child> {
    if own_group {
        cmd.process_group(0);
    }
    let child = cmd.spawn()?;
    guard(&format!("g {}", child.id()));
    Ok(child)
}

/// Live (non-zombie) Dovecot/Postfix processes in process group `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|&pid| matches!(stat(pid), Some((state, group)) if group == pgid && state != 'Z'))
        .filter(|&pid| is_mail_exe(pid))
        .collect()
}

/// Signals every live process of group `pgid`; returns how many.
pub fn signal_group(pgid: u32, sig: i32) -> usize {
    let members = group_members(pgid);
    for &pid in &members {
        signal(pid, sig);
    }
    members.len()
}

/// SIGKILLs group `pgid` until nothing of it is left, then tells the guard
/// to forget it. False if something survived `limit`.
pub fn kill_group(pgid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if signal_group(pgid, SIGKILL) == 0 {
            guard(&format!("G {pgid}"));
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until group `pgid` is empty; false if `limit` passed first.
pub fn wait_group_empty(pgid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while !group_members(pgid).is_empty() {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Polls `child` until it exits (and is reaped) or `limit` passes.
pub fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
            Ok(None) | Err(_) => return None,
        }
    }
}

/// The guard removes `dir` if this process dies before [`forget_dir`].
pub fn watch_dir(dir: &Path) {
    guard(&format!("d {}", dir.display()));
}

pub fn forget_dir(dir: &Path) {
    guard(&format!("D {}", dir.display()));
}

/// The guard: reads "g PGID" / "G PGID" (watch / forget a process group)
/// and "d DIR" / "D DIR" (watch / forget a directory) until end of input,
/// then kills what is watched (twice, for forks in flight) and removes it.
const GUARD_SCRIPT: &str = r#"
groups=' '
dirs=''
while IFS= read -r line; do
    arg=${line#? }
    case $line in
        "g "*) groups="$groups$arg " ;;
        "G "*) groups=$(printf '%s' "$groups" | sed "s/ $arg / /g") ;;
        "d "*) dirs="$dirs
$arg" ;;
        "D "*) dirs=$(printf '%s\n' "$dirs" | grep -vxF -e "$arg") ;;
    esac
done
for g in $groups; do kill -KILL "-$g" 2>/dev/null; done
sleep 0.2
for g in $groups; do kill -KILL "-$g" 2>/dev/null; done
printf '%s\n' "$dirs" | while IFS= read -r d; do
    if [ -n "$d" ]; then rm -rf -- "$d"; fi
done
"#;

/// Sends one line to the guard, starting it on first use.
#[expect(
    clippy::zombie_processes,
    reason = "the guard must outlive this process; init reaps it"
)]
fn guard(line: &str) {
    static GUARD: OnceLock<Mutex<ChildStdin>> = OnceLock::new();
    let stdin = GUARD.get_or_init(|| {
        // Its own process group: a Ctrl-C to the test must not kill it
        // before it has cleaned up. It outlives us on purpose; the Child
        // handle is dropped without waiting.
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(GUARD_SCRIPT)
            .arg("mailstack-guard")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the mail stack cleanup guard (/bin/sh): {e}"));
        let stdin = child
            .stdin
            .take()
            .unwrap_or_else(|| unreachable!("stdin is piped"));
        Mutex::new(stdin)
    });
    let mut stdin = stdin.lock().unwrap_or_else(PoisonError::into_inner);
    if let Err(e) = writeln!(stdin, "{line}") {
        panic!("the mail stack cleanup guard is gone ({e}); servers could outlive the tests");
    }
}

/// (state, process group id) from `/proc/PID/stat`.
fn stat(pid: u32) -> Option<(char, u32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid pgrp ..."; comm may contain anything
    let rest = text.get(text.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let pgrp = fields.nth(1)?.parse().ok()?;
    Some((state, pgrp))
}

fn is_mail_exe(pid: u32) -> bool {
    let Ok(exe) = fs::read_link(format!("/proc/{pid}/exe")) else {
        return false;
    };
    let exe = exe.to_string_lossy();
    [
        "/usr/sbin/dovecot",
        "/usr/bin/doveconf",
        "/usr/lib/dovecot/",
        "/usr/lib/postfix/",
        "/usr/sbin/post",
    ]
    .iter()
    .any(|prefix| exe.starts_with(prefix))
}
