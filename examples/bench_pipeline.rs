//! Throughput of postdesk's own stages, without IMAP: the part that must
//! not be the bottleneck.
//!
//! ```sh
//! python3 ../shared/bench/load_mailbox.py -n 1000 --seed 42 --no-imap --eml-dir /tmp/bench-eml
//! cargo run --release --example bench_pipeline -- /tmp/bench-eml
//! ```
//!
//! Prints, for the messages in the folder: the pure stages (parse →
//! classify → extract → detect) on all cores; the store (one transaction
//! per batch of 200, as the IMAP source commits a backlog) with
//! `synchronous=FULL` (what postdesk uses) and `NORMAL` (for comparison);
//! and both together. Each phase is run 3 times; the median is printed.
//!
//! `BENCH_N=200` limits the number of messages; `BENCH_ONLY=parse` (or
//! extract, detect, store) runs one stage alone, `BENCH_REPS` times, for
//! a profiler.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use postdesk::config::Config;
use postdesk::mail::{Direction, Origin, RawMail};
use postdesk::pipeline::Analyzer;
use postdesk::plan::Policy;
use postdesk::store::Store;
use postdesk::store::ingest::{IngestItem, SourceEffects, Work, ingest_batch};

const BATCH: usize = 200;
const RUNS: usize = 3;

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/bench-eml"));
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect(),
        Err(e) => {
            eprintln!(
                "cannot read {}: {e}; generate the mailbox first (see the doc comment)",
                dir.display()
            );
            std::process::exit(2);
        }
    };
    files.sort();
    if let Some(limit) = std::env::var("BENCH_N")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
    {
        files.truncate(limit);
    }
    let raws: Vec<RawMail> = files
        .iter()
        .enumerate()
        .map(|(i, p)| RawMail {
            origin: Origin::Mbox {
                path: "bench".into(),
                index: i,
            },
            mailbox: None,
            direction: Direction::Inbound,
            arrived: None,
            bytes: std::fs::read(p).expect("read message"),
        })
        .collect();
    let n = raws.len();
    let bytes: usize = raws.iter().map(|r| r.bytes.len()).sum();
    println!(
        "{n} messages, {:.1} MB, {} cores",
        bytes as f64 / 1e6,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    let cfg = Config::from_str(
        "[[mailboxes]]\nname = \"support\"\naddress = \"support@example.test\"\n[acknowledge]\nmax_age = \"36500d\"\n",
        Path::new("/bench/postdesk.toml"),
    )
    .expect("config");
    let analyzer = Analyzer::new(&cfg);

    // BENCH_ONLY=parse|extract|detect|store runs one stage alone, BENCH_REPS
    // times, and prints nothing more: for a profiler such as
    // `valgrind --tool=callgrind`, whose instruction counts do not suffer
    // from the timing noise of a shared machine.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let reps: usize = std::env::var("BENCH_REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    if !only.is_empty() {
        profile_stage(&only, reps, &raws, &analyzer, &cfg);
        return;
    }

    // Where the time goes: each pure stage alone, one thread.
    let parsed: Vec<_> = raws
        .iter()
        .filter_map(|r| postdesk::parse::parse(&r.bytes).ok())
        .collect();
    let ctx = postdesk::classify::ClassifyContext {
        own_addresses: vec!["support@example.test".into()],
        message_id_domain: "example.test".into(),
    };
    let detector = postdesk::detect::Detector::new();
    let texts: Vec<_> = parsed.iter().map(postdesk::extract::extract).collect();
    let stage = |name: &str, f: &mut dyn FnMut()| {
        let d = median(|| {
            let t = Instant::now();
            f();
            t.elapsed()
        });
        println!(
            "  {name:<53} {:>8.1} µs/msg (one thread)",
            d.as_secs_f64() * 1e6 / n as f64
        );
    };
    println!("stages:");
    stage("parse", &mut || {
        for r in &raws {
            std::hint::black_box(postdesk::parse::parse(&r.bytes).ok());
        }
    });
    stage("classify", &mut || {
        for p in &parsed {
            std::hint::black_box(postdesk::classify::classify(p, &ctx));
        }
    });
    stage("extract", &mut || {
        for p in &parsed {
            std::hint::black_box(postdesk::extract::extract(p));
        }
    });
    stage("detect", &mut || {
        for (t, p) in texts.iter().zip(&parsed) {
            std::hint::black_box(detector.detect(t, &p.subject));
        }
    });
    let text_len: usize = texts.iter().map(|t| t.text.len()).sum();
    println!("  mean extracted text: {} bytes", text_len / n.max(1));

    let analyze = median(|| {
        let t = Instant::now();
        let works = analyzer.analyze_batch(raws.clone());
        assert_eq!(works.len(), n);
        t.elapsed()
    });
    report(
        "analyze (parse, classify, extract, detect)",
        n,
        bytes,
        analyze,
    );

    let works = analyzer.analyze_batch(raws.clone());
    let quarantined = works
        .iter()
        .filter(|w| matches!(w, Work::Quarantine(_)))
        .count();
    let items = ingest_items(works);
    for sync in ["FULL", "NORMAL"] {
        let store_time = median(|| {
            let (_dir, mut store, policy) = fresh_store(&cfg);
            store
                .conn
                .pragma_update(None, "synchronous", sync)
                .expect("pragma");
            let t = Instant::now();
            store_all(&mut store, &items, &policy);
            t.elapsed()
        });
        report(
            &format!("store, synchronous={sync}, {BATCH} per transaction"),
            n,
            bytes,
            store_time,
        );
    }

    let total = median(|| {
        let (_dir, mut store, policy) = fresh_store(&cfg);
        let t = Instant::now();
        for chunk in raws.chunks(BATCH) {
            let items = ingest_items(analyzer.analyze_batch(chunk.to_vec()));
            store_all(&mut store, &items, &policy);
        }
        t.elapsed()
    });
    report(
        "end to end (analyze then store, per batch, FULL)",
        n,
        bytes,
        total,
    );
    println!("quarantined: {quarantined}");
}

/// One stage alone, for a profiler: see `BENCH_ONLY` in `main`.
fn profile_stage(only: &str, reps: usize, raws: &[RawMail], analyzer: &Analyzer, cfg: &Config) {
    let parsed: Vec<_> = raws
        .iter()
        .filter_map(|r| postdesk::parse::parse(&r.bytes).ok())
        .collect();
    match only {
        "parse" => {
            for _ in 0..reps {
                for r in raws {
                    std::hint::black_box(postdesk::parse::parse(&r.bytes).ok());
                }
            }
        }
        "extract" => {
            for _ in 0..reps {
                for p in &parsed {
                    std::hint::black_box(postdesk::extract::extract(p));
                }
            }
        }
        "detect" => {
            let detector = postdesk::detect::Detector::new();
            let texts: Vec<_> = parsed.iter().map(postdesk::extract::extract).collect();
            for _ in 0..reps {
                for (t, p) in texts.iter().zip(&parsed) {
                    std::hint::black_box(detector.detect(t, &p.subject));
                }
            }
        }
        "store" => {
            let items = ingest_items(analyzer.analyze_batch(raws.to_vec()));
            let n = items.len();
            let bytes: usize = raws.iter().map(|r| r.bytes.len()).sum();
            let (dir, mut store, policy) = fresh_store(cfg);
            for pass in ["first pass", "second pass (all duplicates)"] {
                let t = Instant::now();
                store_all(&mut store, &items, &policy);
                report(&format!("store only, {pass}"), n, bytes, t.elapsed());
            }
            let size = std::fs::metadata(dir.path().join("bench.db"))
                .map(|m| m.len())
                .unwrap_or(0);
            println!("database: {:.1} MB", size as f64 / 1e6);
        }
        other => {
            eprintln!("BENCH_ONLY={other}: expected parse, extract, detect or store");
            std::process::exit(2);
        }
    }
}

/// A new database in a temporary directory (dropped with it) and the
/// policy that goes with it.
fn fresh_store(cfg: &Config) -> (tempfile::TempDir, Store, Policy) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(&dir.path().join("bench.db")).expect("store");
    let key = store.token_key(cfg).expect("key");
    let policy = Policy {
        config: cfg.clone(),
        key,
    };
    (dir, store, policy)
}

fn ingest_items(works: Vec<Work>) -> Vec<IngestItem> {
    works
        .into_iter()
        .map(|work| IngestItem {
            work,
            effects: SourceEffects::default(),
        })
        .collect()
}

/// Stores `items` in batches of `BATCH`, one transaction each, as the IMAP
/// source commits a backlog.
fn store_all(store: &mut Store, items: &[IngestItem], policy: &Policy) {
    for chunk in items.chunks(BATCH) {
        ingest_batch(
            &mut store.conn,
            chunk,
            policy,
            jiff::Timestamp::now(),
            false,
        )
        .expect("ingest");
    }
}

fn median(mut f: impl FnMut() -> Duration) -> Duration {
    let mut v: Vec<Duration> = (0..RUNS).map(|_| f()).collect();
    v.sort();
    v[RUNS / 2]
}

fn report(what: &str, n: usize, bytes: usize, d: Duration) {
    let s = d.as_secs_f64();
    println!(
        "{what:<55} {:>8.3} s  {:>8.0} msg/s  {:>6.1} MB/s",
        s,
        n as f64 / s,
        bytes as f64 / 1e6 / s
    );
}
