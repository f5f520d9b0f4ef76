//! `postdesk status`: the support lead's view, readable while the daemon
//! runs. Exit code 0 healthy, 1 degraded (the rule is in [`crate::status`]).

use anyhow::Context;

use super::{Exit, short_time};
use crate::config::Config;
use crate::sla::calendar::format_duration;
use crate::status;
use crate::store::Store;

pub fn status(cfg: &Config, json: bool) -> anyhow::Result<Exit> {
    let store = Store::open_readonly(&cfg.store.path)
        .with_context(|| format!("reading {}", cfg.store.path.display()))?;
    let now = jiff::Timestamp::now();
    let report = status::collect(&store.conn, cfg, now)?;
    if json {
        say!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        say!(
            "postdesk: {}  ({})",
            if report.healthy {
                "healthy"
            } else {
                "DEGRADED"
            },
            report.summary_line()
        );
        for p in &report.problems {
            say!("  ! {p}");
        }
        say!("queues:");
        for q in &report.queues {
            let c = &q.counts;
            say!(
                "  {:<14} {} open, {} waiting on customer, {} closed; {} due soon, {} breached{}",
                c.queue,
                c.open,
                c.waiting,
                c.closed,
                q.due_soon,
                q.breached,
                match (&q.oldest_unanswered, q.oldest_unanswered_since) {
                    (Some(t), Some(since)) => {
                        format!(
                            "; oldest unanswered {t} ({})",
                            format_duration(now.duration_since(since))
                        )
                    }
                    _ => String::new(),
                }
            );
        }
        if !report.mailboxes.is_empty() {
            say!("mailboxes:");
        }
        for m in &report.mailboxes {
            say!(
                "  {:<14} {:<32} last sync {}{}",
                m.mailbox,
                m.address,
                m.last_sync
                    .map(|t| format!("{} UTC", short_time(t)))
                    .unwrap_or_else(|| "never".into()),
                m.last_error
                    .as_deref()
                    .map(|e| format!(
                        "; last error {}: {e}",
                        m.last_error_at.map(short_time).unwrap_or_default()
                    ))
                    .unwrap_or_default()
            );
        }
        say!(
            "outbox: {} pending, {} failed, {} sent",
            report.outbox.pending,
            report.outbox.failed,
            report.outbox.sent
        );
        for f in &report.outbox_failed {
            say!(
                "  failed: {}{} to {}: {}",
                f.kind,
                f.ticket
                    .as_deref()
                    .map(|t| format!(" ({t})"))
                    .unwrap_or_default(),
                f.to,
                f.error.as_deref().unwrap_or("-")
            );
        }
        say!(
            "quarantine: {} message{}",
            report.quarantine,
            if report.quarantine == 1 { "" } else { "s" }
        );
    }
    Ok(if report.healthy {
        Exit::Success
    } else {
        Exit::Failure
    })
}
