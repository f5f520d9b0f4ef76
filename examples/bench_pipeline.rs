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
    let items: Vec<IngestItem> = works
        .into_iter()
        .map(|work| IngestItem {
            work,
            effects: SourceEffects::default(),
        })
        .collect();
    for sync in ["FULL", "NORMAL"] {
        let store_time = median(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut store = Store::open(&dir.path().join("bench.db")).expect("store");
            store
                .conn
                .pragma_update(None, "synchronous", sync)
                .expect("pragma");
            let key = store.token_key(&cfg).expect("key");
            let policy = Policy {
                config: cfg.clone(),
                key,
            };
            let t = Instant::now();
            for chunk in items.chunks(BATCH) {
                ingest_batch(
                    &mut store.conn,
                    chunk,
                    &policy,
                    jiff::Timestamp::now(),
                    false,
                )
                .expect("ingest");
            }
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
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("bench.db")).expect("store");
        let key = store.token_key(&cfg).expect("key");
        let policy = Policy {
            config: cfg.clone(),
            key,
        };
        let t = Instant::now();
        for chunk in raws.chunks(BATCH) {
            let items: Vec<IngestItem> = analyzer
                .analyze_batch(chunk.to_vec())
                .into_iter()
                .map(|work| IngestItem {
                    work,
                    effects: SourceEffects::default(),
                })
                .collect();
            ingest_batch(
                &mut store.conn,
                &items,
                &policy,
                jiff::Timestamp::now(),
                false,
            )
            .expect("ingest");
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
