//! Evaluation: quote and signature stripping (`extract`) against the
//! expectations of talon, github/email_reply_parser, discourse's
//! email_reply_trimmer, crisp's email-reply-parser and discourse.
//!
//! Each source states its expectation in its own shape (SOURCES.md), so
//! each row is compared the way that source's tests compare:
//! - talon's `extract_from_plain` keeps signatures: compare reply +
//!   signature; HTML rows ignore all whitespace.
//! - github gives the visible text, fragment regexes, or per-fragment
//!   quoted/signature/hidden flags (compared as "a quote / a signature was
//!   hidden").
//! - trimmer and crisp give the trimmed first fragment.
//!
//! Whitespace is normalised (runs collapsed, ends trimmed) everywhere.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use mail_parser::{MessageParser, PartType};
use postdesk::extract::{self, Pieces};
use postdesk::mail::ParsedMail;
use serde_json::Value;

use crate::Row;

/// The outcome of one row.
struct Outcome {
    agree: bool,
    /// Why it disagreed, for the listing.
    detail: String,
}

pub fn run(corpus: &Path, rows: &[Row]) {
    println!("== quote: extract vs reference expectations ==");
    let mut per_source: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut disagreements: Vec<String> = Vec::new();
    let mut times: Vec<(Duration, usize, String)> = Vec::new();
    let mut pipeline_times: Vec<Duration> = Vec::new();
    for row in rows.iter().filter(|r| r.kind == "quote") {
        let Some(bytes) = crate::read(corpus, &row.file) else {
            continue;
        };
        let Some(mail) = build_mail(row, &bytes) else {
            eprintln!("cannot build a message from {}", row.file);
            continue;
        };
        let start = Instant::now();
        let pieces = extract::pieces(&mail);
        let elapsed = start.elapsed();
        // The daemon runs detect right after extract; time both together.
        let both = Instant::now();
        let customer = extract::extract(&mail);
        let _ = postdesk::detect::detect(&customer, &mail.subject);
        pipeline_times.push(both.elapsed());
        times.push((elapsed, bytes.len(), row.file.clone()));
        let outcome = judge(corpus, row, &pieces, elapsed);
        let entry = per_source.entry(row.source.as_str()).or_default();
        entry.1 += 1;
        if outcome.agree {
            entry.0 += 1;
        } else {
            disagreements.push(format!("  {}: {}", row.file, outcome.detail));
        }
    }
    let (mut agree, mut total) = (0, 0);
    for (source, (a, t)) in &per_source {
        println!("{source:32} {a:3}/{t:3}  {:5.1}%", pct(*a, *t));
        agree += a;
        total += t;
    }
    println!(
        "{:32} {agree:3}/{total:3}  {:5.1}%",
        "all",
        pct(agree, total)
    );
    times.sort();
    if let Some((max, size, file)) = times.last() {
        let sum: Duration = times.iter().map(|t| t.0).sum();
        println!(
            "extract time: mean {:.3} ms, max {:.3} ms ({file}, {size} bytes)",
            sum.as_secs_f64() * 1000.0 / times.len().max(1) as f64,
            max.as_secs_f64() * 1000.0
        );
    }
    pipeline_times.sort();
    if let Some(max) = pipeline_times.last() {
        let sum: Duration = pipeline_times.iter().sum();
        let median = pipeline_times
            .get(pipeline_times.len() / 2)
            .copied()
            .unwrap_or_default();
        println!(
            "extract+detect per message: mean {:.3} ms, median {:.3} ms, max {:.3} ms",
            sum.as_secs_f64() * 1000.0 / pipeline_times.len() as f64,
            median.as_secs_f64() * 1000.0,
            max.as_secs_f64() * 1000.0
        );
    }
    println!("disagreements ({}):", disagreements.len());
    for d in &disagreements {
        println!("{d}");
    }
    println!();
}

fn pct(a: usize, t: usize) -> f64 {
    if t == 0 {
        0.0
    } else {
        a as f64 * 100.0 / t as f64
    }
}

/// A `ParsedMail` from a corpus file: `.eml` files are parsed with
/// mail-parser (the parse stage may still be a stub), bare bodies become
/// the text (or, for talon's HTML fixtures, the HTML) of an empty message.
fn build_mail(row: &Row, bytes: &[u8]) -> Option<ParsedMail> {
    let input = row
        .expect
        .get("input")
        .and_then(Value::as_str)
        .unwrap_or("");
    if row.file.ends_with(".eml") && input != "whole file as plain text" {
        let msg = MessageParser::default().parse(bytes)?;
        let mut text = None;
        let mut html = None;
        for part in &msg.parts {
            match &part.body {
                PartType::Text(t) if text.is_none() => text = Some(t.to_string()),
                PartType::Html(h) if html.is_none() => html = Some(h.to_string()),
                _ => {}
            }
        }
        // talon compares `extract_from_plain(first text/plain part)`.
        if row.source == "talon" {
            html = None;
        }
        let mut mail = bare(text.as_deref().unwrap_or(""), html.as_deref());
        mail.subject = msg.subject().unwrap_or("").to_owned();
        return Some(mail);
    }
    let body = String::from_utf8_lossy(bytes).into_owned();
    if row.file.ends_with(".html") {
        Some(bare("", Some(&body)))
    } else {
        Some(bare(&body, None))
    }
}

fn bare(text: &str, html: Option<&str>) -> ParsedMail {
    ParsedMail {
        message_id: String::new(),
        message_id_synthetic: true,
        in_reply_to: Vec::new(),
        references: Vec::new(),
        from: None,
        sender: None,
        reply_to: Vec::new(),
        to: Vec::new(),
        cc: Vec::new(),
        return_path: None,
        subject: String::new(),
        date: None,
        content_language: None,
        headers: Vec::new(),
        text: text.to_owned(),
        html: html.map(str::to_owned),
        text_from_html: text.is_empty() && html.is_some(),
        attachments: Vec::new(),
        report: None,
        content_hash: String::new(),
        size_bytes: text.len(),
    }
}

fn norm(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn no_ws(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

fn short(s: &str) -> String {
    let n: String = norm(s).chars().take(140).collect();
    format!("{n:?}")
}

fn with_signature(p: &Pieces) -> String {
    match &p.signature {
        Some(sig) => format!("{}\n\n{sig}", p.reply),
        None => p.reply.clone(),
    }
}

fn same(expected: &str, got: &str) -> Outcome {
    Outcome {
        agree: norm(expected) == norm(got),
        detail: format!("expected {} got {}", short(expected), short(got)),
    }
}

/// A JavaScript or Ruby regex literal ("/^On/m" or "^On") as a Rust regex.
fn regex(src: &str) -> Option<regex::Regex> {
    let (body, flags) = match src.strip_prefix('/').and_then(|s| s.rsplit_once('/')) {
        Some((b, f)) => (b, f),
        None => (src, ""),
    };
    let prefix = if flags.contains('m') { "(?m)" } else { "" };
    regex::Regex::new(&format!("{prefix}{body}")).ok()
}

fn regexes(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

fn judge(corpus: &Path, row: &Row, p: &Pieces, elapsed: Duration) -> Outcome {
    let e = &row.expect;
    let s = |k: &str| e.get(k).and_then(Value::as_str);
    let file = |k: &str| {
        s(k).and_then(|f| std::fs::read(corpus.join(f)).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    if let Some(max) = e.get("max_seconds").and_then(Value::as_f64)
        && elapsed.as_secs_f64() > max
    {
        return Outcome {
            agree: false,
            detail: format!("took {elapsed:?}, limit {max} s"),
        };
    }
    match row.source.as_str() {
        "talon" => {
            if let Some(t) = s("reply_text") {
                return same(t, &with_signature(p));
            }
            if let Some(t) = s("reply_text_ignoring_whitespace") {
                return Outcome {
                    agree: no_ws(t) == no_ws(&p.reply),
                    detail: format!("expected {} got {}", short(t), short(&p.reply)),
                };
            }
            if let Some(h) = s("reply_html_ignoring_whitespace") {
                let t = html2text::config::plain_no_decorate()
                    .string_from_read(h.as_bytes(), 1000)
                    .unwrap_or_default();
                return Outcome {
                    agree: no_ws(&t) == no_ws(&p.reply),
                    detail: format!("expected {} got {}", short(&t), short(&p.reply)),
                };
            }
            if e.get("reply_nonempty").is_some() {
                let bad = s("reply_must_not_contain").unwrap_or("\u{0}");
                return Outcome {
                    agree: !p.reply.trim().is_empty() && !p.reply.contains(bad),
                    detail: format!("got {}", short(&p.reply)),
                };
            }
            if let (Some(sig), Some(body)) =
                (file("signature_file"), corpus_text(corpus, &row.file))
            {
                let expected_body = body.trim_end().strip_suffix(sig.trim()).unwrap_or(&body);
                let got_sig = p.signature.clone().unwrap_or_default();
                return Outcome {
                    agree: norm(expected_body) == norm(&p.reply) && norm(&sig) == norm(&got_sig),
                    detail: format!("expected signature {} got {}", short(&sig), short(&got_sig)),
                };
            }
        }
        "github/email_reply_parser" => {
            let mut checks: Vec<Outcome> = Vec::new();
            if let Some(t) = s("visible_reply") {
                checks.push(same(t, &p.reply));
            }
            // The first fragment is what precedes the first quote; our reply
            // also keeps answers written between later quotes.
            if let Some(t) = s("first_fragment") {
                checks.push(Outcome {
                    agree: norm(&p.reply).starts_with(&norm(t)),
                    detail: format!("reply {} does not start with {}", short(&p.reply), short(t)),
                });
            }
            if let Some(sig) = s("last_fragment") {
                let got = p.signature.clone().unwrap_or_default();
                checks.push(same(sig, &got));
            }
            for r in e
                .get("first_fragment_regex")
                .map(regexes)
                .unwrap_or_default()
            {
                let ok = regex(&r).is_some_and(|re| re.is_match(&p.reply));
                checks.push(Outcome {
                    agree: ok,
                    detail: format!("reply {} !~ {r}", short(&p.reply)),
                });
            }
            for r in e
                .get("second_fragment_regex")
                .map(regexes)
                .unwrap_or_default()
            {
                let sig = p.signature.clone().unwrap_or_default();
                let ok = regex(&r).is_some_and(|re| {
                    re.is_match(p.quoted.trim_start()) || re.is_match(sig.trim_start())
                });
                checks.push(Outcome {
                    agree: ok,
                    detail: format!("quote/signature {} !~ {r}", short(&p.quoted)),
                });
            }
            let flags = |k: &str| -> Vec<bool> {
                e.get(k)
                    .and_then(Value::as_array)
                    .map(|a| a.iter().map(|v| v.as_bool().unwrap_or(false)).collect())
                    .unwrap_or_default()
            };
            let (quoted, sig, hidden) = (flags("quoted"), flags("signature"), flags("hidden"));
            if !quoted.is_empty() {
                let want = quoted.iter().any(|q| *q);
                checks.push(Outcome {
                    agree: p.quote_removed == want,
                    detail: format!("quote_removed {} expected {want}", p.quote_removed),
                });
            }
            if !sig.is_empty() {
                let want = sig.iter().zip(&hidden).any(|(s, h)| *s && *h);
                checks.push(Outcome {
                    agree: p.signature.is_some() == want,
                    detail: format!(
                        "signature {:?} expected {want}",
                        p.signature.as_deref().map(short)
                    ),
                });
            }
            if e.get("fragments").and_then(Value::as_u64) == Some(1) && quoted.is_empty() {
                checks.push(Outcome {
                    agree: !p.quote_removed && p.signature.is_none(),
                    detail: format!("one fragment expected, got {}", short(&p.reply)),
                });
            }
            return combine(checks);
        }
        "discourse/email_reply_trimmer" => {
            if let Some(t) = file("trimmed_file") {
                return same(&t, &p.reply);
            }
        }
        "crisp-oss/email-reply-parser" => {
            if let Some(t) = s("first_fragment_trimmed")
                .or(s("first_fragment"))
                .or(s("visible_text"))
                .or(s("visible_text_trimmed"))
            {
                return same(t, &p.reply);
            }
            let checks = e
                .get("first_fragment_regex")
                .map(regexes)
                .unwrap_or_default()
                .into_iter()
                .map(|r| Outcome {
                    agree: regex(&r).is_some_and(|re| re.is_match(&p.reply)),
                    detail: format!("reply {} !~ {r}", short(&p.reply)),
                })
                .collect();
            return combine(checks);
        }
        "discourse/discourse" => {
            if let Some(t) = s("reply_text") {
                return same(t, &p.reply);
            }
            if let Some(t) = s("reply_markdown") {
                return same(&t.replace('*', ""), &p.reply.replace('*', ""));
            }
        }
        _ => {}
    }
    Outcome {
        agree: false,
        detail: format!("no comparable expectation in {e}"),
    }
}

fn corpus_text(corpus: &Path, file: &str) -> Option<String> {
    std::fs::read(corpus.join(file))
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn combine(checks: Vec<Outcome>) -> Outcome {
    if checks.is_empty() {
        return Outcome {
            agree: true,
            detail: "timing only".to_owned(),
        };
    }
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.agree)
        .map(|c| c.detail.clone())
        .collect();
    Outcome {
        agree: failed.is_empty(),
        detail: failed.join("; "),
    }
}
