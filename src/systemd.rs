//! The systemd notify protocol: READY=1, WATCHDOG=1, STATUS=, STOPPING=1
//! and RELOADING=1 over `$NOTIFY_SOCKET` (the sd-notify crate).
//!
//! Outside systemd (no NOTIFY_SOCKET) every call is a no-op, so the daemon
//! code calls these unconditionally. A failed send is logged once and
//! otherwise ignored: systemd being away must never stop the daemon.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;

/// Set once a send failed, so the log is not flooded every watchdog tick.
static SEND_FAILED: AtomicBool = AtomicBool::new(false);

fn send(states: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(false, states) {
        if !SEND_FAILED.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %e, "Cannot notify systemd; continuing without it.");
        }
    } else {
        SEND_FAILED.store(false, Ordering::Relaxed);
    }
}

/// The service is up: the store is open and every source has settled.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(&one_line(status))]);
}

/// Every long-running task has checked in since the last ping.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// The one-line summary `systemctl status` shows.
pub fn status(line: &str) {
    send(&[NotifyState::Status(&one_line(line))]);
}

pub fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping: finishing the work in hand"),
    ]);
}

/// Reloading the config; systemd waits for the next READY=1.
pub fn reloading() {
    // systemd ≥ 253 wants MONOTONIC_USEC with RELOADING=1; older ones ignore it.
    let mono = NotifyState::monotonic_usec_now().ok();
    let mut states = vec![NotifyState::Reloading];
    states.extend(mono);
    send(&states);
}

/// The watchdog interval systemd expects pings within (WatchdogSec=), if
/// it is enabled for this process: `WATCHDOG_USEC` set, and
/// `WATCHDOG_PID`, when set, naming this process. Read here rather than
/// with `sd_notify::watchdog_enabled`, which also refuses an unset
/// WATCHDOG_PID, where libsystemd's `sd_watchdog_enabled` accepts it.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC")
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|u| *u > 0)?;
    match std::env::var("WATCHDOG_PID") {
        Ok(pid) if pid.trim().parse::<u32>().ok() != Some(std::process::id()) => None,
        _ => Some(Duration::from_micros(usec)),
    }
}

/// STATUS= is one line; newlines would end the datagram's field.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_stay_on_one_line() {
        assert_eq!(one_line("a\nb\rc"), "a b c");
    }
}
