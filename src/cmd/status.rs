//! `postdesk status`: counts and health from the database, readable while
//! the daemon runs.

use anyhow::Context;
use serde::Serialize;

use super::{Exit, short_time};
use crate::config::Config;
use crate::store::Store;
use crate::store::outbox::{self, OutboxCounts};
use crate::store::query::{self, QueueCounts, SourceState};

/// A queue's ticket counts with its response-clock figures.
#[derive(Debug, Serialize)]
struct QueueStatus {
    #[serde(flatten)]
    counts: QueueCounts,
    /// Open tickets inside their warning window (response due soon).
    due_soon: u64,
    /// Open tickets past their response due time.
    breached: u64,
    /// The ticket waiting longest for an answer (`PD-42`), and since when.
    oldest_unanswered: Option<String>,
    oldest_unanswered_since: Option<jiff::Timestamp>,
}

/// What `postdesk status --json` prints.
#[derive(Debug, Serialize)]
struct StatusReport {
    healthy: bool,
    problems: Vec<String>,
    queues: Vec<QueueStatus>,
    sources: Vec<SourceState>,
    outbox: OutboxCounts,
    quarantine: u64,
}

pub fn status(cfg: &Config, json: bool) -> anyhow::Result<Exit> {
    let store = Store::open_readonly(&cfg.store.path)
        .with_context(|| format!("reading {}", cfg.store.path.display()))?;
    let now = jiff::Timestamp::now();
    // An old database without clocks (read-only: not migrated) has no figures.
    let sla = match crate::store::sla::ensure_schema(&store.conn) {
        Ok(()) => crate::store::sla::queue_sla(&store.conn, now)?,
        Err(_) => Vec::new(),
    };
    let queues: Vec<QueueStatus> = query::queue_counts(&store.conn)?
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
    let sources = query::sources(&store.conn)?;
    let outbox = outbox::counts(&store.conn)?;
    let quarantine = query::quarantine_open(&store.conn)?;
    let mut problems = Vec::new();
    if outbox.failed > 0 {
        problems.push(format!(
            "{} outgoing mail{} failed permanently",
            outbox.failed,
            if outbox.failed == 1 { "" } else { "s" }
        ));
    }
    for s in &sources {
        if let Some(e) = &s.last_error
            && s.last_error_at >= s.synced_at
        {
            problems.push(format!("{}: {e}", s.source));
        }
    }
    let report = StatusReport {
        healthy: problems.is_empty(),
        problems,
        queues,
        sources,
        outbox,
        quarantine,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "postdesk: {}",
            if report.healthy {
                "healthy"
            } else {
                "DEGRADED"
            }
        );
        for p in &report.problems {
            println!("  ! {p}");
        }
        println!("queues:");
        if report.queues.is_empty() {
            println!("  (no tickets yet)");
        }
        for q in &report.queues {
            let c = &q.counts;
            println!(
                "  {:<14} {} open, {} waiting on customer, {} closed; {} due soon, {} breached{}",
                c.queue,
                c.open,
                c.waiting,
                c.closed,
                q.due_soon,
                q.breached,
                match (&q.oldest_unanswered, q.oldest_unanswered_since) {
                    (Some(t), Some(since)) => format!(
                        "; oldest unanswered {t} ({})",
                        crate::sla::calendar::format_duration(now.duration_since(since))
                    ),
                    _ => String::new(),
                }
            );
        }
        println!(
            "outbox: {} pending, {} failed, {} sent",
            report.outbox.pending, report.outbox.failed, report.outbox.sent
        );
        println!(
            "quarantine: {} message{}",
            report.quarantine,
            if report.quarantine == 1 { "" } else { "s" }
        );
        for s in &report.sources {
            println!(
                "source {}: last sync {}{}",
                s.source,
                s.synced_at
                    .map(short_time)
                    .unwrap_or_else(|| "never".into()),
                s.last_error
                    .as_deref()
                    .map(|e| format!(", last error: {e}"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(if report.healthy {
        Exit::Success
    } else {
        Exit::Failure
    })
}
