//! `postdesk run`: the daemon, or with `--once` one pass that prints what
//! it did.

use super::Exit;
use crate::config::Config;
use crate::daemon;
use crate::plan::Outcome;

pub fn run(cfg: Config, once: bool) -> anyhow::Result<Exit> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let summary_cfg = cfg.clone();
    let summary = runtime.block_on(daemon::run(cfg, once))?;
    if !once {
        return Ok(Exit::Success);
    }
    let count = |o: Outcome| summary.reports.iter().filter(|r| r.outcome == o).count();
    let mut langs: Vec<&str> = summary
        .reports
        .iter()
        .filter_map(|r| r.language.as_deref())
        .collect();
    langs.sort_unstable();
    langs.dedup();
    say!(
        "{} message{} read: {} new ticket{}, {} threaded, {} ignored, {} duplicate, {} quarantined{}",
        summary.reports.len(),
        if summary.reports.len() == 1 { "" } else { "s" },
        count(Outcome::Created),
        if count(Outcome::Created) == 1 {
            ""
        } else {
            "s"
        },
        count(Outcome::Threaded),
        count(Outcome::Ignored),
        count(Outcome::Duplicate),
        count(Outcome::Quarantined),
        if summary.failed > 0 {
            format!(", {} NOT STORED (see the log)", summary.failed)
        } else {
            String::new()
        },
    );
    if !langs.is_empty() {
        say!("languages: {}", langs.join(", "));
    }
    let o = summary.outbox;
    say!(
        "outbox: {} sent, {} to retry, {} failed{}",
        o.sent,
        o.retried,
        o.failed,
        daemon::outbox_dir(&summary_cfg)
            .map(|d| format!(" (files in {})", d.display()))
            .unwrap_or_default()
    );
    if summary.sources_failed > 0 {
        say!(
            "{} source{} could not be read (see the log and `postdesk status`)",
            summary.sources_failed,
            if summary.sources_failed == 1 { "" } else { "s" }
        );
    }
    say!(
        "next: postdesk --config {} tickets",
        summary_cfg.path.display()
    );
    Ok(if summary.failed > 0 || summary.sources_failed > 0 {
        Exit::Failure
    } else {
        Exit::Success
    })
}
