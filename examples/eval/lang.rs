//! Evaluation: language detection (`detect`) on lingua-py's sentences and
//! whatlang-rs's own examples.
//!
//! lingua's files are named by ISO 639-1 code (`nb.txt` is Bokmål,
//! `nn.txt` Nynorsk, which whatlang does not model). For every file we
//! report accuracy with all languages and, for the languages support
//! teams see most ([`SUPPORT_LANGUAGES`]), with detection restricted to
//! those 30 — how the daemon is meant to be configured. "reliable" is the
//! share of sentences our rules trust (see `Detector::detect`); "reliable
//! acc" is the accuracy among those.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use postdesk::detect::Detector;
use serde_json::Value;

use crate::Row;

/// The 30 languages a European/global support desk sees most: the EU's
/// big languages and Nordics, the CIS, Turkey and the Middle East, the
/// large Asian markets. All are modelled by whatlang.
pub const SUPPORT_LANGUAGES: [&str; 30] = [
    "en", "de", "fr", "es", "it", "pt", "nl", "sv", "da", "nb", "fi", "pl", "cs", "ru", "uk", "tr",
    "ar", "he", "hi", "ja", "zh", "ko", "th", "vi", "id", "el", "hu", "ro", "bg", "hr",
];

/// Counts for one language file.
#[derive(Default, Clone, Copy)]
struct Score {
    total: usize,
    correct: usize,
    reliable: usize,
    reliable_correct: usize,
}

impl Score {
    fn add(&mut self, correct: bool, reliable: bool) {
        self.total += 1;
        self.correct += usize::from(correct);
        self.reliable += usize::from(reliable);
        self.reliable_correct += usize::from(reliable && correct);
    }
    fn acc(&self) -> f64 {
        ratio(self.correct, self.total)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 * 100.0 / b as f64
    }
}

pub fn run(corpus: &Path, rows: &[Row]) {
    println!("== lang: detection accuracy ==");
    let all = Detector::new();
    let Ok(support) = Detector::with_languages(SUPPORT_LANGUAGES) else {
        println!("cannot build the restricted detector");
        return;
    };
    let mut unrestricted: BTreeMap<String, Score> = BTreeMap::new();
    let mut restricted: BTreeMap<String, Score> = BTreeMap::new();
    let mut confusions: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut sentences = 0usize;
    let start = Instant::now();
    for row in rows
        .iter()
        .filter(|r| r.kind == "lang" && r.source == "pemistahl/lingua-py")
    {
        let Some(code) = row.expect.get("language_iso639_1").and_then(Value::as_str) else {
            continue;
        };
        let Some(bytes) = crate::read(corpus, &row.file) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        let in_support = SUPPORT_LANGUAGES.contains(&code);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            sentences += 1;
            let d = all.detect_text(line);
            let got = d.as_ref().map(|d| d.language.as_str()).unwrap_or("-");
            unrestricted
                .entry(code.to_owned())
                .or_default()
                .add(got == code, d.as_ref().is_some_and(|d| d.reliable));
            if in_support {
                let d = support.detect_text(line);
                let got = d.as_ref().map(|d| d.language.clone()).unwrap_or("-".into());
                restricted
                    .entry(code.to_owned())
                    .or_default()
                    .add(got == code, d.as_ref().is_some_and(|d| d.reliable));
                if got != code {
                    *confusions
                        .entry(code.to_owned())
                        .or_default()
                        .entry(got)
                        .or_default() += 1;
                }
            }
        }
    }
    let elapsed = start.elapsed();
    println!(
        "lingua-py sentences: {sentences} ({:.1} µs per detection, both detectors)",
        elapsed.as_secs_f64() * 1e6
            / (sentences.max(1) as f64
                + restricted.values().map(|s| s.total).sum::<usize>() as f64)
    );
    println!(
        "{:4} {:>7} {:>9} {:>9} | {:>9} {:>9} {:>9}  top confusions (restricted)",
        "lang", "n", "all acc", "reliable", "30 acc", "reliable", "rel acc"
    );
    for (code, u) in &unrestricted {
        let r = restricted.get(code);
        let conf = confusions
            .get(code)
            .map(|m| {
                let mut v: Vec<_> = m.iter().collect();
                v.sort_by(|a, b| b.1.cmp(a.1));
                v.iter()
                    .take(3)
                    .map(|(l, n)| format!("{l}:{n}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        match r {
            Some(r) => println!(
                "{code:4} {:7} {:8.1}% {:8.1}% | {:8.1}% {:8.1}% {:8.1}%  {conf}",
                u.total,
                u.acc(),
                ratio(u.reliable, u.total),
                r.acc(),
                ratio(r.reliable, r.total),
                ratio(r.reliable_correct, r.reliable)
            ),
            None => println!(
                "{code:4} {:7} {:8.1}% {:8.1}% |",
                u.total,
                u.acc(),
                ratio(u.reliable, u.total)
            ),
        }
    }
    let mean = |m: &BTreeMap<String, Score>| -> f64 {
        let v: Vec<f64> = SUPPORT_LANGUAGES
            .iter()
            .filter_map(|c| m.get(*c))
            .map(Score::acc)
            .collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    let sum = |m: &BTreeMap<String, Score>, f: fn(&Score) -> usize| -> usize {
        SUPPORT_LANGUAGES
            .iter()
            .filter_map(|c| m.get(*c))
            .map(f)
            .sum()
    };
    println!(
        "30-language mean accuracy: restricted {:.2}%, unrestricted {:.2}%",
        mean(&restricted),
        mean(&unrestricted)
    );
    println!(
        "30 languages, restricted: reliable {:.1}% of sentences, accuracy when reliable {:.2}%",
        ratio(
            sum(&restricted, |s| s.reliable),
            sum(&restricted, |s| s.total)
        ),
        ratio(
            sum(&restricted, |s| s.reliable_correct),
            sum(&restricted, |s| s.reliable)
        )
    );
    println!(
        "all {} lingua languages, unrestricted: mean accuracy {:.2}% (languages whatlang lacks count as 0)",
        unrestricted.len(),
        unrestricted.values().map(Score::acc).sum::<f64>() / unrestricted.len().max(1) as f64
    );
    whatlang_examples(corpus, rows, &all);
    println!();
}

/// whatlang's own examples (circular: its test set). Report only.
fn whatlang_examples(corpus: &Path, rows: &[Row], all: &Detector) {
    let Some(row) = rows
        .iter()
        .find(|r| r.kind == "lang" && r.source == "greyblake/whatlang-rs")
    else {
        return;
    };
    let Some(bytes) = crate::read(corpus, &row.file) else {
        return;
    };
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&bytes) else {
        return;
    };
    let (mut n, mut ok) = (0, 0);
    let mut wrong = Vec::new();
    for (code3, sentence) in &map {
        let Some(s) = sentence.as_str() else { continue };
        let want = whatlang::Lang::from_code(code3.as_str())
            .map(postdesk::detect::bcp47)
            .unwrap_or(code3.as_str());
        let got = all.detect_text(s).map(|d| d.language).unwrap_or_default();
        n += 1;
        if got == want {
            ok += 1;
        } else {
            wrong.push(format!("{want}->{got}"));
        }
    }
    println!(
        "whatlang-rs examples (circular): {ok}/{n} = {:.1}%  wrong: {}",
        ratio(ok, n),
        wrong.join(" ")
    );
}
