//! What the daemon's tasks report about themselves: a heartbeat per
//! long-running task, and the sync state of each source.
//!
//! The systemd watchdog must prove that the loops doing the work still
//! turn, not that a timer fires: so every task gets a [`Heartbeat`] and
//! beats it from its own loop (also while it waits, e.g. in IDLE), and the
//! daemon pings WATCHDOG=1 only when every registered task has beaten since
//! the last ping. Sources report each sync and each failure here too, for
//! READY=1 (sent once every source has finished its first pass, or failed
//! and is retrying), the STATUS= line and `/healthz`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use jiff::Timestamp;

/// Shared by every task of one daemon. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Health {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// Task name → when it last beat.
    tasks: BTreeMap<String, Instant>,
    sources: BTreeMap<String, SourceHealth>,
}

/// The state of one source (a mailbox folder or Maildir).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct SourceHealth {
    /// The mailbox this source belongs to.
    pub mailbox: String,
    pub last_sync: Option<Timestamp>,
    pub last_error: Option<String>,
    pub last_error_at: Option<Timestamp>,
    /// Consecutive failures since the last successful sync.
    pub failures: u32,
}

impl SourceHealth {
    /// Finished a first pass, or failed at least once (and is retrying).
    pub fn settled(&self) -> bool {
        self.last_sync.is_some() || self.last_error.is_some()
    }

    /// The last event was an error.
    pub fn failing(&self) -> bool {
        self.failures > 0
    }
}

/// A task's handle to prove it is alive. Dropping it unregisters the task
/// (a task that ended must not hold the watchdog back).
#[derive(Debug)]
pub struct Heartbeat {
    name: String,
    health: Health,
}

impl Heartbeat {
    /// Call from the task's own loop, at least every few seconds while it
    /// waits (well below the watchdog interval).
    pub fn beat(&self) {
        self.health
            .lock()
            .tasks
            .insert(self.name.clone(), Instant::now());
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.health.lock().tasks.remove(&self.name);
    }
}

impl Health {
    pub fn new() -> Health {
        Health::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain data behind; keep going.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a long-running task; it counts as alive now.
    pub fn register(&self, task: impl Into<String>) -> Heartbeat {
        let hb = Heartbeat {
            name: task.into(),
            health: self.clone(),
        };
        hb.beat();
        hb
    }

    /// Declares a source before its first pass, so READY waits for it.
    pub fn add_source(&self, source: &str, mailbox: &str) {
        self.lock()
            .sources
            .entry(source.to_owned())
            .or_insert_with(|| SourceHealth {
                mailbox: mailbox.to_owned(),
                ..SourceHealth::default()
            });
    }

    /// Removes a source (its mailbox was removed from the config).
    pub fn remove_source(&self, source: &str) {
        self.lock().sources.remove(source);
    }

    /// Keeps only the sources in `keep` (after a config reload).
    pub fn retain_sources(&self, keep: &[String]) {
        self.lock().sources.retain(|name, _| keep.contains(name));
    }

    pub fn source_synced(&self, source: &str, at: Timestamp) {
        crate::metrics::source_synced(source);
        let mut s = self.lock();
        let e = s.sources.entry(source.to_owned()).or_default();
        e.last_sync = Some(at);
        e.failures = 0;
    }

    pub fn source_error(&self, source: &str, error: impl Into<String>, at: Timestamp) {
        crate::metrics::source_error(source);
        let mut s = self.lock();
        let e = s.sources.entry(source.to_owned()).or_default();
        e.last_error = Some(error.into());
        e.last_error_at = Some(at);
        e.failures = e.failures.saturating_add(1);
    }

    /// True when every task has beaten since `since`.
    pub fn all_beat_since(&self, since: Instant) -> bool {
        self.lock().tasks.values().all(|t| *t >= since)
    }

    /// The tasks that have not beaten since `since`.
    pub fn silent_since(&self, since: Instant) -> Vec<String> {
        self.lock()
            .tasks
            .iter()
            .filter(|(_, t)| **t < since)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// True when every declared source has settled (see [`SourceHealth::settled`]).
    pub fn all_sources_settled(&self) -> bool {
        self.lock().sources.values().all(SourceHealth::settled)
    }

    pub fn sources(&self) -> BTreeMap<String, SourceHealth> {
        self.lock().sources.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_waits_for_every_task() {
        let h = Health::new();
        let a = h.register("a");
        let b = h.register("b");
        let mark = Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        a.beat();
        assert!(!h.all_beat_since(mark));
        assert_eq!(h.silent_since(mark), vec!["b"]);
        b.beat();
        assert!(h.all_beat_since(mark));
        let c = h.register("c");
        drop(c);
        assert!(
            h.all_beat_since(mark),
            "an ended task does not hold the watchdog"
        );
    }

    #[test]
    fn sources_settle_on_sync_or_error() {
        let h = Health::new();
        h.add_source("imap:support/INBOX", "support");
        h.add_source("maildir:sales", "sales");
        assert!(!h.all_sources_settled());
        h.source_synced("imap:support/INBOX", Timestamp::now());
        h.source_error("maildir:sales", "no such folder", Timestamp::now());
        assert!(h.all_sources_settled());
        assert!(h.sources()["maildir:sales"].failing());
        h.source_synced("maildir:sales", Timestamp::now());
        assert!(!h.sources()["maildir:sales"].failing());
    }
}
