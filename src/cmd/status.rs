//! `postdesk status`: counts and health from the database, readable while
//! the daemon runs.

use anyhow::Context;
use serde::Serialize;

use super::{Exit, short_time};
use crate::config::Config;
use crate::store::Store;
use crate::store::outbox::{self, OutboxCounts};
use crate::store::query::{self, QueueCounts, SourceState};

/// What `postdesk status --json` prints.
#[derive(Debug, Serialize)]
struct StatusReport {
    healthy: bool,
    problems: Vec<String>,
    queues: Vec<QueueCounts>,
    sources: Vec<SourceState>,
    outbox: OutboxCounts,
    quarantine: u64,
}

pub fn status(cfg: &Config, json: bool) -> anyhow::Result<Exit> {
    let store = Store::open_readonly(&cfg.store.path)
        .with_context(|| format!("reading {}", cfg.store.path.display()))?;
    let queues = query::queue_counts(&store.conn)?;
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
            println!(
                "  {:<14} {} open, {} waiting on customer, {} closed",
                q.queue, q.open, q.waiting, q.closed
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
