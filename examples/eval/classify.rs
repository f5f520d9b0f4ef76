//! Evaluation: classify.
//!
//! Against the manifest's `bounce` and `autoreply` rows:
//!
//! * bounce recall: rows the source calls a bounce (`is_bounce: true`)
//!   must be `bounce`;
//! * auto-reply recall: rows the source calls an auto-reply
//!   (`is_auto_reply`) or auto-generated (`is_auto_generated: true`) must be
//!   automatic, and auto-replies should be `auto-replied`;
//! * other robot mail: sisimai `feedback` (ARF) and `delivered` (success
//!   DSN) rows must be automatic but not bounces;
//! * false positives: rows the source says are not a bounce / not
//!   automatic that we flag;
//! * human mail: every parseable message of the quote, thread and parse
//!   sets is, as far as the sources say, written by a person; anything we
//!   flag there is listed for review.
//!
//! Also informational: failed addresses and permanence against flufl.bounce,
//! Discourse and Zammad expectations. Every miss is listed by file.

use std::collections::BTreeMap;
use std::path::Path;

use postdesk::classify::{ClassifyContext, classify};
use postdesk::mail::{Class, Classification, ParsedMail};
use postdesk::parse::parse;
use serde_json::Value;

use crate::Row;

/// A tally of hits over expected positives, with the misses named.
#[derive(Default)]
struct Tally {
    hits: usize,
    total: usize,
    misses: Vec<String>,
}

impl Tally {
    fn add(&mut self, hit: bool, file: &str, detail: impl FnOnce() -> String) {
        self.total += 1;
        if hit {
            self.hits += 1;
        } else {
            self.misses.push(format!("{file}: {}", detail()));
        }
    }

    fn print(&self, label: &str) {
        let pct = if self.total == 0 {
            100.0
        } else {
            self.hits as f64 * 100.0 / self.total as f64
        };
        println!("{label}: {}/{} ({pct:.1}%)", self.hits, self.total);
        for m in &self.misses {
            println!("  MISS {m}");
        }
    }
}

fn describe(c: &Classification) -> String {
    format!("{} [{}]", c.class, c.reasons.join("; "))
}

fn load(corpus: &Path, file: &str, ctx: &ClassifyContext) -> Option<(ParsedMail, Classification)> {
    let bytes = crate::read(corpus, file)?;
    match parse(&bytes) {
        Ok(mail) => {
            let class = classify(&mail, ctx);
            Some((mail, class))
        }
        Err(e) => {
            println!("  PARSE ERROR {file}: {e}");
            None
        }
    }
}

fn flag(expect: &Value, key: &str) -> Option<bool> {
    expect.get(key).and_then(Value::as_bool)
}

fn strings(expect: &Value, key: &str) -> Vec<String> {
    expect
        .get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_lowercase)
                .collect()
        })
        .unwrap_or_default()
}

pub fn run(corpus: &Path, rows: &[Row]) {
    println!("== classify");
    let ctx = ClassifyContext::default();
    let mut bounce_recall = Tally::default();
    let mut auto_recall = Tally::default();
    let mut auto_replied_exact = Tally::default();
    let mut other_robots = Tally::default();
    let mut negatives = Tally::default();
    let mut recipients = Tally::default();
    let mut permanence = Tally::default();
    let mut context_dependent: Vec<String> = Vec::new();
    let mut by_class: BTreeMap<&'static str, usize> = BTreeMap::new();

    for row in rows
        .iter()
        .filter(|r| r.kind == "bounce" || r.kind == "autoreply")
    {
        let Some((mail, c)) = load(corpus, &row.file, &ctx) else {
            continue;
        };
        *by_class.entry(c.class.as_str()).or_default() += 1;
        let expect = &row.expect;
        let reasons = sisimai_reasons(expect);

        if flag(expect, "is_bounce") == Some(true) {
            bounce_recall.add(c.class == Class::Bounce, &row.file, || describe(&c));
            check_bounce_details(row, &mail, &c, &mut recipients, &mut permanence);
        } else if flag(expect, "is_bounce") == Some(false) {
            negatives.add(c.class != Class::Bounce, &row.file, || {
                format!("not a bounce per source, got {}", describe(&c))
            });
        }
        if flag(expect, "is_auto_reply") == Some(true) {
            auto_recall.add(c.class.is_automatic(), &row.file, || describe(&c));
            auto_replied_exact.add(c.class == Class::AutoReplied, &row.file, || describe(&c));
        }
        match flag(expect, "is_auto_generated") {
            Some(true) => auto_recall.add(c.class.is_automatic(), &row.file, || describe(&c)),
            Some(false) => negatives.add(c.class == Class::Human, &row.file, || {
                format!("not automatic per source, got {}", describe(&c))
            }),
            None => {}
        }
        if expect
            .get("is_auto_generated_in_mailinglist_mirror_mode")
            .is_some()
        {
            context_dependent.push(format!(
                "{}: {} (source: human only in Discourse's list-mirror mode)",
                row.file,
                describe(&c)
            ));
        }
        if flag(expect, "is_bounce").is_none()
            && reasons.iter().any(|r| r == "feedback" || r == "delivered")
        {
            let ok = c.class.is_automatic() && c.class != Class::Bounce;
            other_robots.add(ok, &row.file, || {
                format!(
                    "{} should be automatic, not a bounce; got {}",
                    reasons.join(","),
                    describe(&c)
                )
            });
        }
    }

    bounce_recall.print("bounce recall (is_bounce: true → bounce)");
    auto_recall.print("auto-reply/auto-generated recall (→ any automatic class)");
    auto_replied_exact.print("auto-replies classified exactly auto-replied");
    other_robots.print("ARF feedback and success DSNs (→ automatic, not bounce)");
    negatives.print("negatives kept (source says not a bounce / not automatic)");
    println!("context-dependent rows (not scored):");
    for c in &context_dependent {
        println!("  {c}");
    }
    println!("classes over bounce/autoreply rows: {by_class:?}");
    recipients.print("failed addresses found (flufl, Discourse, Zammad; informational)");
    permanence.print("permanent vs delay warning right (informational)");
    human_sets(corpus, rows, &ctx);
    println!();
}

fn sisimai_reasons(expect: &Value) -> Vec<String> {
    expect
        .get("sisimai_recipients")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| r.get("reason").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Failed addresses and permanence against the sources that state them.
fn check_bounce_details(
    row: &Row,
    mail: &ParsedMail,
    c: &Classification,
    recipients: &mut Tally,
    permanence: &mut Tally,
) {
    let Some(info) = &c.bounce else {
        return;
    };
    let expect = &row.expect;
    let permanent = strings(expect, "permanent_failure_addresses");
    let temporary = strings(expect, "temporary_failure_addresses");
    let mut expected: Vec<String> = permanent.iter().chain(&temporary).cloned().collect();
    if let Some(r) = expect.get("bounced_recipient").and_then(Value::as_str) {
        expected.push(r.to_lowercase());
    }
    for address in &expected {
        recipients.add(info.failed_recipients.contains(address), &row.file, || {
            format!(
                "{address} not among {:?} (report: {:?})",
                info.failed_recipients,
                mail.report.as_ref().map(|r| &r.recipients)
            )
        });
    }
    let want_permanent = if !permanent.is_empty() {
        Some(true)
    } else if !temporary.is_empty() {
        Some(false)
    } else if let Some(hard) = flag(expect, "hard_bounce") {
        Some(hard)
    } else {
        expect
            .get("status")
            .or_else(|| expect.get("bounce_error_code"))
            .and_then(Value::as_str)
            .map(|s| s.starts_with('5'))
    };
    if let Some(want) = want_permanent {
        permanence.add(info.permanent == want, &row.file, || {
            format!("permanent = {}, expected {want}", info.permanent)
        });
    }
}

/// Mail written by people (quote, thread and parse sets): anything we flag
/// is listed. Not a score: these sets state nothing about the sender.
fn human_sets(corpus: &Path, rows: &[Row], ctx: &ClassifyContext) {
    let mut seen = std::collections::BTreeSet::new();
    let mut total = 0usize;
    let mut flagged: Vec<String> = Vec::new();
    for row in rows
        .iter()
        .filter(|r| matches!(r.kind.as_str(), "quote" | "thread" | "parse"))
    {
        if !seen.insert(row.file.clone()) || row.source.contains("zammad") {
            continue;
        }
        let Some(bytes) = crate::read(corpus, &row.file) else {
            continue;
        };
        let Ok(mail) = parse(&bytes) else {
            continue;
        };
        total += 1;
        let c = classify(&mail, ctx);
        if c.class != Class::Human {
            flagged.push(format!("{}: {}", row.file, describe(&c)));
        }
    }
    println!(
        "human-written sets (quote/thread/parse rows that parse as mail): {total}, flagged non-human: {}",
        flagged.len()
    );
    for f in &flagged {
        println!("  REVIEW {f}");
    }
}
