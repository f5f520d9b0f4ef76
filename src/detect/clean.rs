//! Removing what is not language before detection: URLs, addresses,
//! numbers, identifiers, code and log lines, reply prefixes and ticket
//! tags. They carry trigrams of no language (or of English, for code)
//! and tip short texts the wrong way.

use std::sync::LazyLock;

use regex::Regex;

/// Compiles a constant pattern; the unit tests compile every one, so a
/// typo fails `cargo test`, never the daemon.
fn compile(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| panic!("invalid built-in pattern {pattern:?}: {e}"))
}

/// Reply and forward prefixes in the languages mail clients write them
/// ("Re:", "AW:", "WG:", "RV:", "SV:", "Antw:", "Odp:", "回复:", "Отв:"…),
/// with Outlook's counters ("Re[2]:") and ticket tags ("[PD-42]") mixed
/// in, repeated.
static SUBJECT_PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    compile(concat!(
        r"(?i)^(?:\s*(?:",
        r"(?:re|aw|wg|fw|fwd|rv|sv|vs|vb|vl|antw|antwort|odp|pd|tr|ref|réf|rif|res|enc|ynt|yanıt|ilt|atb|bls|r|i|",
        r"回复|回覆|答复|转发|轉寄|転送|返信|답장|전달|отв|ответ|пер|перес|пересл|απ|σχετ|πρθ|תגובה|הועבר|رد|توجيه)",
        r"\s*(?:\[\d+\]|\(\d+\))?\s*[:：]",
        r"|\[[^\]\n]{0,60}\]",
        r"))+"
    ))
});

/// Ticket tags anywhere in a subject: "[PD-42]", "[Ticket#10010]".
static TICKET_TAG: LazyLock<Regex> = LazyLock::new(|| compile(r"\[[^\]\n]{0,60}\]"));

/// Log levels and exception markers: a line with one of these and any
/// digit or symbol is a pasted log, not prose.
static LOG_LINE: LazyLock<Regex> = LazyLock::new(|| {
    compile(r"\b(?:ERROR|WARN|WARNING|INFO|DEBUG|TRACE|FATAL|Exception|Traceback|at [\w.$]+\()")
});

/// True when the subject starts with a reply or forward prefix: its words
/// are then most likely ours or a third party's, not the customer's.
pub fn is_reply_subject(subject: &str) -> bool {
    SUBJECT_PREFIX
        .find(subject)
        .is_some_and(|m| m.as_str().contains([':', '：']))
}

/// The subject without reply/forward prefixes and ticket tags.
pub fn clean_subject(subject: &str) -> String {
    let rest = match SUBJECT_PREFIX.find(subject) {
        Some(m) => subject.get(m.end()..).unwrap_or(""),
        None => subject,
    };
    let rest = TICKET_TAG.replace_all(rest, " ");
    clean_text(&rest)
}

/// The text without URLs, e-mail addresses, numbers, identifiers
/// (snake_case, camelCase, dotted.names, paths) and code or log lines.
pub fn clean_text(text: &str) -> String {
    clean_text_upto(text, usize::MAX)
}

/// Like [`clean_text`], stopping once `max` bytes of clean text are
/// collected: detection looks at a sample, and cleaning the rest of a
/// long message would be wasted work.
pub fn clean_text_upto(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max.saturating_add(256)));
    for line in text.lines() {
        if out.len() >= max {
            break;
        }
        if is_code_line(line) {
            continue;
        }
        let mut first = true;
        for token in line.split_whitespace() {
            // Written straight into `out` and taken back when the token is
            // not language: no String per word.
            let mark = out.len();
            if !first {
                out.push(' ');
            }
            if push_clean_token(&mut out, token) {
                first = false;
            } else {
                out.truncate(mark);
            }
        }
        if !first {
            out.push('\n');
        }
    }
    let len = out.trim_end().len();
    out.truncate(len);
    out
}

/// Code, markup and logs: many programming symbols, or a log level with
/// digits.
fn is_code_line(line: &str) -> bool {
    let mut visible = 0usize;
    let mut symbols = 0usize;
    let mut digits = 0usize;
    if line.is_ascii() {
        // Most log and code lines are ASCII: bytes, without UTF-8
        // decoding. (`char::is_whitespace` on ASCII is
        // `u8::is_ascii_whitespace` plus vertical tab.)
        for b in line
            .bytes()
            .filter(|&b| !(b.is_ascii_whitespace() || b == 0x0b))
        {
            visible += 1;
            symbols += usize::from(is_code_symbol(char::from(b)));
            digits += usize::from(b.is_ascii_digit());
        }
    } else {
        for c in line.chars().filter(|c| !c.is_whitespace()) {
            visible += 1;
            symbols += usize::from(is_code_symbol(c));
            digits += usize::from(c.is_ascii_digit());
        }
    }
    if visible == 0 {
        return false;
    }
    // The regex last: most prose lines have neither digits nor symbols.
    symbols * 5 > visible || ((digits > 0 || symbols > 0) && LOG_LINE.is_match(line))
}

/// Programming symbols that mark a line as code. (A `matches!` rather
/// than `"…".contains(c)`: this runs for every character of the sample.)
fn is_code_symbol(c: char) -> bool {
    matches!(
        c,
        '{' | '}'
            | '['
            | ']'
            | '('
            | ')'
            | ';'
            | '='
            | '<'
            | '>'
            | '/'
            | '\\'
            | '|'
            | '_'
            | '$'
            | '#'
            | '%'
            | '^'
            | '&'
            | '*'
            | '~'
            | '`'
            | '+'
    )
}

/// Symbols dropped from a token, keeping the letters around them.
fn is_token_symbol(c: char) -> bool {
    matches!(
        c,
        '_' | '/'
            | '\\'
            | '='
            | '<'
            | '>'
            | '{'
            | '}'
            | '|'
            | '#'
            | '$'
            | '%'
            | '~'
            | '`'
            | '^'
            | '*'
            | '+'
            | '['
            | ']'
    )
}

/// Appends the language part of a whitespace-separated token to `out`:
/// the token without digits and programming symbols ("2016年12月12日"
/// keeps "年月日"). Returns false when the token is no language (an
/// address, an identifier, or no letter left, as "v2.3"); then what it
/// appended is not meaningful and the caller truncates it.
fn push_clean_token(out: &mut String, token: &str) -> bool {
    // A char search first: the substring searcher's setup costs more
    // than most tokens are long.
    if (token.contains(':') && token.contains("://"))
        || token.starts_with("www.")
        || token.contains('@')
    {
        return false;
    }
    let t = token.trim_matches(|c: char| !c.is_alphanumeric());
    let ascii_letters = t.chars().any(|c| c.is_ascii_alphabetic());
    if ascii_letters && is_identifier(t) {
        return false;
    }
    let mut has_letter = false;
    for c in token
        .chars()
        .filter(|&c| !c.is_ascii_digit() && !is_token_symbol(c))
    {
        has_letter |= c.is_alphabetic();
        out.push(c);
    }
    has_letter
}

/// snake_case, camelCase, dotted.names, paths and version strings.
fn is_identifier(t: &str) -> bool {
    // All of these are ASCII, so a byte test is exact and avoids the
    // per-character search of a `[char; 14]` pattern.
    if t.bytes().any(|b| {
        matches!(
            b,
            b'_' | b'/'
                | b'\\'
                | b'='
                | b'<'
                | b'>'
                | b'{'
                | b'}'
                | b'|'
                | b'#'
                | b'$'
                | b'%'
                | b'~'
                | b'`'
        )
    }) {
        return true;
    }
    let has_digit = t.chars().any(|c| c.is_ascii_digit());
    let has_alpha = t.chars().any(char::is_alphabetic);
    // "v2", "mp3", "x86_64": letters and digits in one token.
    if has_digit && has_alpha && t.is_ascii() {
        return true;
    }
    // dotted.names and file.ext (but not "z.B." or "e.g.").
    let dotted = t.split('.').filter(|p| !p.is_empty()).count() > 1
        && t.split('.').all(|p| p.chars().count() > 1);
    // camelCase and PascalCase joins: an uppercase letter after a
    // lowercase one ("getUser", "iPhone", "PostDesk").
    let mut prev_lower = false;
    for c in t.chars() {
        if c.is_uppercase() && prev_lower {
            return true;
        }
        prev_lower = c.is_lowercase();
    }
    dotted
}
