//! Evaluation of the pure pipeline stages on the shared real-world corpus.
//!
//! `cargo run --release --example eval -- [../shared/corpus]` reads
//! `manifest.jsonl` and prints, per task: parse panics, bounce and
//! auto-reply recall and false positives, quote-stripping agreement and
//! language accuracy. The corpus is not part of the project; when it is
//! absent the command says so and exits 0.

mod classify;
mod lang;
mod parse;
mod quote;

use std::path::{Path, PathBuf};

/// One line of `manifest.jsonl`.
#[derive(Debug, serde::Deserialize)]
pub struct Row {
    pub file: String,
    pub kind: String,
    #[serde(default)]
    pub expect: serde_json::Value,
    #[serde(default)]
    pub source: String,
}

fn main() {
    let corpus = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/corpus"));
    let manifest = corpus.join("manifest.jsonl");
    let Ok(text) = std::fs::read_to_string(&manifest) else {
        println!(
            "corpus not found at {}; nothing to evaluate",
            manifest.display()
        );
        return;
    };
    let rows: Vec<Row> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    println!(
        "corpus: {} ({} manifest rows)\n",
        corpus.display(),
        rows.len()
    );
    parse::run(&corpus, &rows);
    classify::run(&corpus, &rows);
    quote::run(&corpus, &rows);
    lang::run(&corpus, &rows);
}

/// Reads a corpus file, or prints why not.
pub fn read(corpus: &Path, file: &str) -> Option<Vec<u8>> {
    match std::fs::read(corpus.join(file)) {
        Ok(b) => Some(b),
        Err(e) => {
            eprintln!("cannot read {file}: {e}");
            None
        }
    }
}
