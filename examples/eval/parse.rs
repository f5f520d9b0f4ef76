//! Evaluation: parse.
//!
//! Runs parse → classify over every mail-like file under the corpus (not
//! only manifest rows): `.eml`, `.txt`, `.box`, `.raw` files and each
//! message of an `.mbox`. Panics must be 0; parse errors are listed by kind
//! (most are `.txt` files of the quote and language sets that are bodies,
//! not mail). Then checks the manifest's `parse` rows: Message-ID, From,
//! subject and the start of the text body.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Instant;

use postdesk::classify::{ClassifyContext, classify};
use postdesk::parse::{ParseError, parse};

use crate::Row;

/// File extensions that hold one message (or an mbox of them).
const MAIL_EXTENSIONS: &[&str] = &["eml", "txt", "box", "raw", "mbox"];

pub fn run(corpus: &Path, rows: &[Row]) {
    println!("== parse: every mail-like file under the corpus");
    let mut files = Vec::new();
    walk(corpus, &mut files);
    files.sort();

    let ctx = ClassifyContext::default();
    let (mut messages, mut ok, mut empty, mut not_mail) = (0usize, 0usize, 0usize, 0usize);
    let mut panics: Vec<String> = Vec::new();
    let mut not_mail_by_ext: std::collections::BTreeMap<String, usize> = Default::default();
    let mut total_bytes = 0usize;
    let started = Instant::now();
    for path in &files {
        let Ok(bytes) = std::fs::read(path) else {
            eprintln!("cannot read {}", path.display());
            continue;
        };
        let ext = extension(path);
        let units = if ext == "mbox" {
            split_mbox(&bytes)
        } else {
            vec![bytes.as_slice()]
        };
        for (index, unit) in units.into_iter().enumerate() {
            messages += 1;
            total_bytes += unit.len();
            let name = format!("{}#{index}", relative(corpus, path));
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                parse(unit).map(|mail| {
                    let _ = classify(&mail, &ctx);
                })
            }));
            match outcome {
                Err(_) => panics.push(format!("{name}: panic outside the parse guard")),
                Ok(Ok(())) => ok += 1,
                Ok(Err(ParseError::Empty)) => empty += 1,
                Ok(Err(ParseError::NotMail)) => {
                    not_mail += 1;
                    *not_mail_by_ext.entry(ext.clone()).or_default() += 1;
                }
                Ok(Err(ParseError::Panicked(msg))) => panics.push(format!("{name}: {msg}")),
            }
        }
    }
    let elapsed = started.elapsed();
    println!(
        "files: {}  messages: {messages}  parsed: {ok}  empty: {empty}  not mail: {not_mail} {not_mail_by_ext:?}  panics: {}",
        files.len(),
        panics.len()
    );
    println!(
        "time: {:.1} ms for {:.1} MB ({:.0} messages/s, one thread, parse + classify)",
        elapsed.as_secs_f64() * 1e3,
        total_bytes as f64 / 1e6,
        messages as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    for p in &panics {
        println!("  PANIC {p}");
    }
    check_parse_rows(corpus, rows);
    println!();
}

/// Compares the manifest's expected header values and body start.
fn check_parse_rows(corpus: &Path, rows: &[Row]) {
    let mut checked = 0usize;
    let mut mismatches: Vec<String> = Vec::new();
    for row in rows.iter().filter(|r| r.kind == "parse") {
        let Some(bytes) = crate::read(corpus, &row.file) else {
            continue;
        };
        checked += 1;
        let mail = match parse(&bytes) {
            Ok(mail) => mail,
            Err(e) => {
                mismatches.push(format!("{}: parse error: {e}", row.file));
                continue;
            }
        };
        let expect = &row.expect;
        if let Some(id) = expect.get("message_id").and_then(|v| v.as_str())
            && mail.message_id != id
        {
            mismatches.push(format!(
                "{}: message_id {:?}, expected {id:?}",
                row.file, mail.message_id
            ));
        }
        if let Some(subject) = expect.get("subject").and_then(|v| v.as_str())
            && normalize(&mail.subject) != normalize(subject)
        {
            mismatches.push(format!(
                "{}: subject {:?}, expected {subject:?}",
                row.file, mail.subject
            ));
        }
        let expected_from = expect
            .get("from")
            .and_then(|v| v.get(0))
            .and_then(|v| v.get("address"))
            .and_then(|v| v.as_str())
            .or_else(|| expect.get("from_email").and_then(|v| v.as_str()))
            .or_else(|| expect.get("from_address").and_then(|v| v.as_str()));
        if let Some(from) = expected_from {
            let got = mail.from.as_ref().map(|a| a.key()).unwrap_or_default();
            if got != from.to_lowercase() {
                mismatches.push(format!("{}: from {got:?}, expected {from:?}", row.file));
            }
        }
        if let Some(name) = expect.get("from_display_name").and_then(|v| v.as_str()) {
            let got = mail
                .from
                .as_ref()
                .and_then(|a| a.name.clone())
                .unwrap_or_default();
            if got != name {
                mismatches.push(format!(
                    "{}: from name {got:?}, expected {name:?}",
                    row.file
                ));
            }
        }
        if let Some(body) = expect.get("body_text").and_then(|v| v.as_str())
            && !normalize(&mail.text).contains(&normalize(body))
        {
            let shown: String = mail.text.chars().take(80).collect();
            mismatches.push(format!("{}: text {shown:?} lacks {body:?}", row.file));
        }
        if let Some(names) = expect
            .get("attachment_filenames")
            .and_then(|v| v.as_array())
        {
            let got: Vec<String> = mail
                .attachments
                .iter()
                .filter_map(|a| a.name.clone())
                .collect();
            for name in names.iter().filter_map(|n| n.as_str()) {
                if !got.iter().any(|g| g == name) {
                    mismatches.push(format!(
                        "{}: attachment {name:?} missing (have {got:?})",
                        row.file
                    ));
                }
            }
        }
        let excerpt = expect
            .get("first_text_body_excerpt")
            .or_else(|| expect.get("body_starts_with"))
            .and_then(|v| v.as_str());
        if let Some(excerpt) = excerpt {
            let got = normalize(&mail.text);
            let want = normalize(excerpt);
            if !got.starts_with(&want) {
                let shown: String = got.chars().take(80).collect();
                mismatches.push(format!(
                    "{}: text starts {shown:?}, expected {:?}",
                    row.file,
                    want.chars().take(80).collect::<String>()
                ));
            }
        }
    }
    println!(
        "parse rows: {checked} checked, {} mismatches",
        mismatches.len()
    );
    for m in &mismatches {
        println!("  MISMATCH {m}");
    }
}

/// Whitespace collapsed, for comparisons that ignore line wrapping.
fn normalize(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else if MAIL_EXTENSIONS.contains(&extension(&path).as_str()) {
            out.push(path);
        }
    }
}

fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase()
}

fn relative(corpus: &Path, path: &Path) -> String {
    path.strip_prefix(corpus)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The messages of an mbox: split before every `From ` line that starts
/// the file or follows an empty line.
fn split_mbox(bytes: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut offset = 0usize;
    let mut previous_blank = true;
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        if previous_blank && line.starts_with(b"From ") {
            starts.push(offset);
        }
        previous_blank = line.iter().all(u8::is_ascii_whitespace);
        offset += line.len();
    }
    if starts.is_empty() {
        return vec![bytes];
    }
    let mut out = Vec::with_capacity(starts.len());
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(bytes.len());
        if let Some(unit) = bytes.get(start..end) {
            out.push(unit);
        }
    }
    out
}
