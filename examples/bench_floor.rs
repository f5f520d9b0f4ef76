//! The floor under IMAP ingest: what the work that no design of postdesk
//! can skip costs in CPU per message on this machine, so the throughput
//! target can be judged against it (BENCHMARKS.md, "IMAP ingest / The
//! floor"). `scripts/bench-imap.sh` runs it and adds Dovecot's own CPU.
//!
//! ```sh
//! python3 ../shared/bench/load_mailbox.py -n 1000 --seed 42 --no-imap --eml-dir /tmp/bench-eml
//! cargo run --release --example bench_floor -- /tmp/bench-eml [CONFIG]
//! ```
//!
//! Each part alone, on one thread, with its CPU time (not wall time, so
//! the other core's load does not count):
//!
//! - `parse`: mail-parser 0.11 alone (`MessageParser::default().parse`),
//!   none of postdesk's own work on the result;
//! - `hash`: SHA-256 of the raw bytes (the content hash that dedups a
//!   UIDVALIDITY rescan);
//! - `store`: the raw bytes and their hash, one row each, into a bare
//!   SQLite table in WAL mode with `synchronous=FULL`, 200 rows per
//!   transaction: the least a durable store of raw mail does;
//! - `fetch` (with CONFIG, a postdesk.toml whose first mailbox is IMAP):
//!   `UID FETCH 1:* (UID BODY.PEEK[])` on one connection made by
//!   postdesk's own connect code (async-imap over tokio-rustls), bytes
//!   counted and dropped, on a single-threaded runtime (so all of its
//!   work is on the measured thread): the client side of IMAP and TLS.
//!
//! Prints one JSON object: microseconds of CPU per message for each part
//! (median of 3 runs), their sum, and the message count. `BENCH_DB_DIR`
//! (default `/var/tmp`) holds the store's scratch database: a real disk,
//! since what `synchronous=FULL` costs is an fsync.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use sha2::{Digest, Sha256};

const RUNS: usize = 3;
const BATCH: usize = 200;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "/tmp/bench-eml".to_owned()));
    let config = args.next();
    let raws = read_mailbox(&dir)?;
    let n = raws.len();
    anyhow::ensure!(n > 0, "no .eml files in {}", dir.display());

    let parse = median(|| {
        cpu_per_message(n, || {
            for raw in &raws {
                std::hint::black_box(mail_parser::MessageParser::default().parse(raw));
            }
        })
    });
    let hash = median(|| {
        cpu_per_message(n, || {
            for raw in &raws {
                std::hint::black_box(Sha256::digest(raw));
            }
        })
    });
    let db_dir =
        std::env::var_os("BENCH_DB_DIR").map_or_else(|| PathBuf::from("/var/tmp"), PathBuf::from);
    let store = median(|| store_raw(&db_dir, &raws).expect("the scratch store works"));
    let fetch = match config {
        Some(path) => {
            let mut runs = Vec::new();
            for _ in 0..RUNS {
                runs.push(fetch_all(Path::new(&path))?);
            }
            let expected = n;
            let (count, _) = runs[0];
            anyhow::ensure!(
                count == expected,
                "the IMAP folder holds {count} messages, the eml folder {expected}: load the same mailbox"
            );
            let mut per: Vec<f64> = runs
                .iter()
                .map(|(c, secs)| secs / *c as f64 * 1e6)
                .collect();
            per.sort_by(f64::total_cmp);
            Some(per[RUNS / 2])
        }
        None => None,
    };
    let sum = parse + hash + store + fetch.unwrap_or(0.0);
    println!(
        "{}",
        serde_json::json!({ "floor_us_per_message": {
            "messages": n,
            "parse_mail_parser": round(parse),
            "hash_sha256": round(hash),
            "store_raw_full": round(store),
            "fetch_imap_client": fetch.map(round),
            "sum": round(sum),
        }})
    );
    Ok(())
}

fn read_mailbox(dir: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot read {}: {e}; generate the mailbox first",
                dir.display()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display())))
        .collect()
}

fn round(us: f64) -> f64 {
    (us * 1000.0).round() / 1000.0
}

fn median(mut run: impl FnMut() -> f64) -> f64 {
    let mut v: Vec<f64> = (0..RUNS).map(|_| run()).collect();
    v.sort_by(f64::total_cmp);
    v[RUNS / 2]
}

/// This thread's CPU time (user + system), in nanoseconds, from the
/// scheduler's own account (`/proc/thread-self/schedstat`; the crate
/// forbids the `unsafe` that `clock_gettime` would need).
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("Linux /proc");
    let ns = stat
        .split_whitespace()
        .next()
        .and_then(|v| v.parse::<u64>().ok())
        .expect("schedstat starts with the time on CPU in ns");
    Duration::from_nanos(ns)
}

/// Microseconds of this thread's CPU per message that `work` takes.
fn cpu_per_message(n: usize, work: impl FnOnce()) -> f64 {
    let start = thread_cpu();
    work();
    (thread_cpu() - start).as_secs_f64() / n as f64 * 1e6
}

/// Stores every raw message with its hash in a fresh database; returns
/// the CPU microseconds per message of the storing thread.
fn store_raw(dir: &Path, raws: &[Vec<u8>]) -> rusqlite::Result<f64> {
    let scratch = tempfile::Builder::new()
        .prefix("pd-bench-floor")
        .tempdir_in(dir)
        .expect("a scratch directory for the database");
    let mut db = rusqlite::Connection::open(scratch.path().join("floor.db"))?;
    db.pragma_update(None, "journal_mode", "wal")?;
    db.pragma_update(None, "synchronous", "full")?;
    db.execute_batch("CREATE TABLE raw (id INTEGER PRIMARY KEY, content_hash BLOB NOT NULL UNIQUE, bytes BLOB NOT NULL)")?;
    let hashes: Vec<_> = raws.iter().map(Sha256::digest).collect();
    let start = thread_cpu();
    for (raws, hashes) in raws.chunks(BATCH).zip(hashes.chunks(BATCH)) {
        let tx = db.transaction()?;
        {
            let mut insert =
                tx.prepare_cached("INSERT INTO raw (content_hash, bytes) VALUES (?1, ?2)")?;
            for (raw, hash) in raws.iter().zip(hashes) {
                insert.execute((hash.as_slice(), raw.as_slice()))?;
            }
        }
        tx.commit()?;
    }
    Ok((thread_cpu() - start).as_secs_f64() / raws.len() as f64 * 1e6)
}

/// Fetches every message of the first mailbox's folder once; returns the
/// count and the process CPU seconds the fetch took.
fn fetch_all(config: &Path) -> anyhow::Result<(usize, f64)> {
    let cfg = postdesk::config::Config::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let imap = cfg
        .mailboxes
        .first()
        .and_then(|m| match &m.source {
            Some(postdesk::config::SourceConfig::Imap(imap)) => Some(imap.clone()),
            _ => None,
        })
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{}: the first mailbox has no [mailboxes.imap]",
                config.display()
            )
        })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let tls = match imap.tls {
            postdesk::config::TlsMode::None => None,
            _ => Some(postdesk::tls::client_config(imap.ca_file.as_deref())?),
        };
        let mut creds = postdesk::source::imap::Credentials::new(imap.auth.clone());
        let mut conn =
            postdesk::source::imap::connect::connect(&imap, tls.as_ref(), &mut creds).await?;
        conn.session.examine(&imap.folder).await?;
        let start = thread_cpu();
        let mut count = 0usize;
        let mut bytes = 0usize;
        {
            let mut stream = conn.session.uid_fetch("1:*", "(UID BODY.PEEK[])").await?;
            while let Some(fetch) = stream.next().await {
                let fetch = fetch?;
                if let Some(body) = fetch.body() {
                    count += 1;
                    bytes += body.len();
                }
            }
        }
        let cpu = (thread_cpu() - start).as_secs_f64();
        std::hint::black_box(bytes);
        conn.logout().await;
        Ok((count, cpu))
    })
}
