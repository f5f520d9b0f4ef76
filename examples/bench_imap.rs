//! IMAP ingest benchmark driver (see scripts/bench-imap.sh and the "IMAP
//! ingest" section of BENCHMARKS.md).
//!
//! `bench_imap CONFIG [full|normal]` runs one `--once` pass over every IMAP
//! mailbox of CONFIG, exactly like `postdesk run --once`, but lets the
//! writer connection's `synchronous` pragma be switched, so the cost of
//! the durability postdesk chose (FULL) can be measured against NORMAL on
//! the same mailbox. Prints one JSON line. `PD_BENCH_CACHE_KIB=2048` also
//! sets the writer's page cache size.

use std::path::Path;
use std::time::Instant;

use postdesk::config::Config;
use postdesk::daemon::{PassSummary, Shared};
use postdesk::plan::Outcome;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let config = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: bench_imap CONFIG [full|normal]"))?;
    let synchronous = args.next().unwrap_or_else(|| "full".to_owned());
    anyhow::ensure!(
        synchronous == "full" || synchronous == "normal",
        "synchronous is full or normal, not {synchronous:?}"
    );
    let cfg = Config::load(Path::new(&config)).map_err(|e| anyhow::anyhow!("{e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let shared = Shared::start(cfg.clone()).await?;
        let mode = synchronous.clone();
        // PD_BENCH_CACHE_KIB: the writer's page cache (postdesk sets 16 MB),
        // to measure what it costs in RSS and gains in speed.
        let cache_kib: Option<i64> = std::env::var("PD_BENCH_CACHE_KIB")
            .ok()
            .and_then(|v| v.parse().ok());
        shared
            .store
            .call(move |c| {
                c.pragma_update(None, "synchronous", &mode)?;
                if let Some(kib) = cache_kib {
                    c.pragma_update(None, "cache_size", -kib)?;
                }
                Ok(())
            })
            .await?;
        let started = Instant::now();
        let mut summary = PassSummary::default();
        for m in &cfg.mailboxes {
            postdesk::source::imap::run_once(&shared, m, &mut summary).await;
        }
        let secs = started.elapsed().as_secs_f64();
        let n = summary.reports.len();
        let created = summary
            .reports
            .iter()
            .filter(|r| r.outcome == Outcome::Created)
            .count();
        println!(
            "{{\"synchronous\": \"{synchronous}\", \"messages\": {n}, \"created\": {created}, \"failed\": {}, \"seconds\": {secs:.3}, \"messages_per_s\": {:.0}, \"peak_rss_mb\": {:.1}}}",
            summary.failed,
            n as f64 / secs.max(1e-9),
            peak_rss_mb()
        );
        anyhow::Ok(())
    })
}

/// VmHWM of this process, in MB.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
