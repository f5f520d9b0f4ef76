//! What a support lead reads: one model of postdesk's state, gathered from
//! the database (so `postdesk status` works beside the running daemon,
//! through a read-only WAL connection) and rendered four ways: the
//! `status` command, systemd's STATUS= line, the periodic status log line,
//! and `/healthz` + the metrics gauges. One rule decides health:
//!
//! **degraded** when a mailbox has not synced for longer than
//! `daemon.stale_after` (or is failing), when outgoing mail failed for
//! good, or when a ticket breached its response target; else **healthy**.

use std::time::Duration;

use jiff::Timestamp;
use rusqlite::Connection;
use serde::Serialize;

use crate::config::Config;
use crate::sla::calendar::format_duration;
use crate::store::StoreError;
use crate::store::outbox::{self, OutboxCounts};
use crate::store::query::{self, QueueCounts, SourceState};

/// A queue's tickets and response-clock figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueStatus {
    #[serde(flatten)]
    pub counts: QueueCounts,
    /// Open tickets inside their warning window (response due soon).
    pub due_soon: u64,
    /// Open tickets past their response due time.
    pub breached: u64,
    /// The ticket waiting longest for an answer (`PD-42`), and since when.
    pub oldest_unanswered: Option<String>,
    pub oldest_unanswered_since: Option<Timestamp>,
}

/// One configured mailbox's ingestion state, from its sources' rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MailboxStatus {
    pub mailbox: String,
    pub address: String,
    /// The oldest of its sources' last successful syncs (a mailbox with a
    /// Sent folder is as current as its slowest folder).
    pub last_sync: Option<Timestamp>,
    pub last_error: Option<String>,
    pub last_error_at: Option<Timestamp>,
    /// Not synced within `daemon.stale_after`, or failing since its last sync.
    pub stale: bool,
    pub sources: Vec<SourceState>,
}

/// Everything `postdesk status --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReport {
    pub healthy: bool,
    /// What makes it degraded, one sentence each.
    pub problems: Vec<String>,
    pub queues: Vec<QueueStatus>,
    pub mailboxes: Vec<MailboxStatus>,
    pub outbox: OutboxCounts,
    /// The most recent mails that failed for good, with the reason.
    pub outbox_failed: Vec<FailedMail>,
    /// Pending mails that failed at least [`STUCK_ATTEMPTS`] times.
    pub outbox_stuck: u64,
    pub quarantine: u64,
    pub generated_at: Timestamp,
}

/// A mail that failed for good.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedMail {
    pub kind: String,
    pub ticket: Option<String>,
    pub to: String,
    pub error: Option<String>,
}

/// Attempts after which pending mail counts as stuck (degraded).
pub const STUCK_ATTEMPTS: u32 = 3;

/// The mailbox a `sources` row belongs to: `imap:support/INBOX` and
/// `maildir:support` both belong to `support`.
pub fn mailbox_of_source(source: &str) -> &str {
    let rest = source.split_once(':').map_or(source, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// Gathers the report at `now`.
pub fn collect(
    conn: &Connection,
    cfg: &Config,
    now: Timestamp,
) -> Result<StatusReport, StoreError> {
    // A database older than the SLA schema (read-only: not migrated) has no clock figures.
    let sla = match crate::store::sla::ensure_schema(conn) {
        Ok(()) => crate::store::sla::queue_sla(conn, now)?,
        Err(_) => Vec::new(),
    };
    let mut counts = query::queue_counts(conn)?;
    // Configured queues without tickets still show, with zeros.
    for q in &cfg.queues {
        if !counts.iter().any(|c| c.queue == q.name) {
            counts.push(QueueCounts {
                queue: q.name.clone(),
                ..QueueCounts::default()
            });
        }
    }
    let queues: Vec<QueueStatus> = counts
        .into_iter()
        .map(|counts| {
            let s = sla.iter().find(|s| s.queue == counts.queue);
            QueueStatus {
                due_soon: s.map_or(0, |s| s.due_soon),
                breached: s.map_or(0, |s| s.breached),
                oldest_unanswered: s
                    .and_then(|s| s.oldest_unanswered)
                    .map(|t| cfg.ticket_ref(t)),
                oldest_unanswered_since: s.and_then(|s| s.oldest_unanswered_since),
                counts,
            }
        })
        .collect();

    let sources = query::sources(conn)?;
    let stale_after =
        jiff::SignedDuration::try_from(cfg.daemon.stale_after).unwrap_or(jiff::SignedDuration::MAX);
    let mailboxes: Vec<MailboxStatus> = cfg
        .mailboxes
        .iter()
        .filter(|m| m.source.is_some())
        .map(|m| {
            let own: Vec<SourceState> = sources
                .iter()
                .filter(|s| mailbox_of_source(&s.source) == m.name)
                .cloned()
                .collect();
            let last_sync = if own.is_empty() || own.iter().any(|s| s.synced_at.is_none()) {
                None
            } else {
                own.iter().filter_map(|s| s.synced_at).min()
            };
            let latest_error = own
                .iter()
                .filter(|s| s.last_error.is_some())
                .max_by_key(|s| s.last_error_at);
            let failing = latest_error.is_some_and(|e| e.last_error_at > last_sync);
            let stale = failing || last_sync.is_none_or(|t| now.duration_since(t) > stale_after);
            MailboxStatus {
                mailbox: m.name.clone(),
                address: m.address.clone(),
                last_sync,
                last_error: latest_error.and_then(|e| e.last_error.clone()),
                last_error_at: latest_error.and_then(|e| e.last_error_at),
                stale,
                sources: own,
            }
        })
        .collect();
    let outbox = outbox::counts(conn)?;
    let outbox_failed = outbox::list(conn, "failed", 10)?
        .into_iter()
        .map(|r| FailedMail {
            kind: r.kind,
            ticket: r.ticket_id.map(|t| cfg.ticket_ref(t)),
            to: r.to_addr,
            error: r.last_error,
        })
        .collect();
    let (outbox_stuck, stuck_error) = outbox::stuck(conn, STUCK_ATTEMPTS)?;
    let quarantine = query::quarantine_open(conn)?;

    let mut problems = Vec::new();
    for m in mailboxes.iter().filter(|m| m.stale) {
        let since = match m.last_sync {
            Some(t) => format!("last synced {} ago", format_duration(now.duration_since(t))),
            None => "never synced".to_owned(),
        };
        let error = m
            .last_error
            .as_deref()
            .map(|e| format!("; last error: {e}"))
            .unwrap_or_default();
        problems.push(format!(
            "mailbox {} ({}): {since}{error}",
            m.mailbox, m.address
        ));
    }
    if outbox.failed > 0 {
        problems.push(format!(
            "{} outgoing mail{} failed for good (see `postdesk status --json` and the log)",
            outbox.failed,
            if outbox.failed == 1 { "" } else { "s" }
        ));
    }
    if outbox_stuck > 0 {
        problems.push(format!(
            "{outbox_stuck} outgoing mail{} keep failing and wait for a retry{}",
            if outbox_stuck == 1 { "" } else { "s" },
            stuck_error
                .map(|e| format!(" (last error: {e})"))
                .unwrap_or_default()
        ));
    }
    let breached: u64 = queues.iter().map(|q| q.breached).sum();
    if breached > 0 {
        problems.push(format!(
            "{breached} ticket{} past the response target",
            if breached == 1 { "" } else { "s" }
        ));
    }
    Ok(StatusReport {
        healthy: problems.is_empty(),
        problems,
        queues,
        mailboxes,
        outbox,
        outbox_failed,
        outbox_stuck,
        quarantine,
        generated_at: now,
    })
}

impl StatusReport {
    /// The one line systemd shows, e.g. `12 open, 2 due soon, 0 breached ·
    /// support@ synced 3 s ago · outbox 0`.
    pub fn summary_line(&self) -> String {
        let open: u64 = self.queues.iter().map(|q| q.counts.open).sum();
        let due: u64 = self.queues.iter().map(|q| q.due_soon).sum();
        let breached: u64 = self.queues.iter().map(|q| q.breached).sum();
        let mut parts = vec![format!("{open} open, {due} due soon, {breached} breached")];
        for m in &self.mailboxes {
            let local = m.address.split('@').next().unwrap_or(&m.address);
            parts.push(match (m.last_sync, &m.last_error) {
                (_, Some(e)) if m.stale && m.last_error_at > m.last_sync => {
                    format!("{local}@ failing: {}", one_line(e, 60))
                }
                (Some(t), _) => format!(
                    "{local}@ synced {} ago",
                    short_age(self.generated_at.duration_since(t))
                ),
                (None, _) => format!("{local}@ not synced yet"),
            });
        }
        let mut outbox = format!("outbox {}", self.outbox.pending);
        if self.outbox.failed > 0 {
            outbox.push_str(&format!(" ({} failed)", self.outbox.failed));
        }
        parts.push(outbox);
        if self.quarantine > 0 {
            parts.push(format!("quarantine {}", self.quarantine));
        }
        parts.join(" · ")
    }
}

/// `3 s`, `4 min`, `2 h`, `3 d`: the age at a glance.
fn short_age(d: jiff::SignedDuration) -> String {
    let s = d.as_secs().max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86400),
    }
}

fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        flat.chars()
            .take(max.saturating_sub(1))
            .chain(['…'])
            .collect()
    }
}

/// How long ago `t` was, for tables (`Duration` for humantime).
pub fn age(now: Timestamp, t: Timestamp) -> Duration {
    Duration::from_secs(u64::try_from(now.duration_since(t).as_secs()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_belong_to_their_mailbox() {
        assert_eq!(mailbox_of_source("imap:support/INBOX"), "support");
        assert_eq!(mailbox_of_source("imap:support/Sent"), "support");
        assert_eq!(mailbox_of_source("maildir:sales"), "sales");
        assert_eq!(mailbox_of_source("odd"), "odd");
    }

    #[test]
    fn ages_read_at_a_glance() {
        assert_eq!(short_age(jiff::SignedDuration::from_secs(3)), "3 s");
        assert_eq!(short_age(jiff::SignedDuration::from_secs(250)), "4 min");
        assert_eq!(short_age(jiff::SignedDuration::from_secs(7300)), "2 h");
    }
}
