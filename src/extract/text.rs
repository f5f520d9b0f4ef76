//! Quote and signature removal on plain text, line by line.
//!
//! One pass classifies lines and finds the first quote separator; a
//! second pass over the kept lines finds the signature. Each line is
//! looked at a bounded number of times (attribution windows span at most
//! three lines), so the cost is linear in the text length.

use std::borrow::Cow;

use super::patterns::{
    ATTRIBUTION_DATE_FIRST, ATTRIBUTION_GENERIC, ATTRIBUTION_STRONG, ATTRIBUTION_WEAK,
    DEVICE_WORDS, FORWARD_MARKER, HEADER_FROM, HEADER_OTHER, MAX_WINDOW_CHARS, MAX_WINDOW_LINES,
    MOBILE_SIGNATURE, MOBILE_SIGNATURE_LOOSE, ORIGINAL_MESSAGE, looks_like_attribution_evidence,
    may_be_forward_marker, may_be_header_line,
};

/// How deep forwarded messages are unpacked: a forward of a forward is
/// still the request, but hostile nesting must not recurse without end.
const MAX_FORWARD_DEPTH: u8 = 2;

/// A header block needs this many header lines after "From:" within the
/// next [`HEADER_BLOCK_SPAN`] lines; two rule out a customer's own
/// "From: …" sentence.
const HEADER_BLOCK_MIN_OTHERS: usize = 2;
const HEADER_BLOCK_SPAN: usize = 7;

/// Characters above an attribution that make a reply top-posted.
const TOP_POST_MIN_CHARS: usize = 20;

/// What the text rules made of one body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TextParts {
    /// The customer's words, signature and quotes removed, trimmed.
    pub reply: String,
    /// The signature block cut from the end of the reply, if any.
    pub signature: Option<String>,
    /// The quoted lines and everything after the quote separator.
    pub quoted: String,
    /// True when the body was a forward with nothing written above it,
    /// so `reply` is the forwarded message.
    pub forwarded: bool,
}

/// A quote separator found at some line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Separator {
    /// "On … wrote:" spanning this many lines.
    Attribution { lines: usize },
    /// An Outlook header block or "-----Original Message-----": the rest
    /// of the body is the previous message.
    Block,
    /// A forwarded-message marker spanning this many lines.
    Forward { lines: usize },
}

/// Splits `text` into reply, signature and quote. `forward_subject` says
/// the subject marks a forward (so an Outlook header block is a forward
/// header, not a reply's quote).
pub(crate) fn split(text: &str, forward_subject: bool) -> TextParts {
    split_at_depth(text, forward_subject, 0)
}

fn split_at_depth(text: &str, forward_subject: bool, depth: u8) -> TextParts {
    let lines = split_lines(text);
    let mut keep = vec![true; lines.len()];
    let mut quoted: Vec<&str> = Vec::new();
    let mut cut: Option<usize> = None;
    // What the customer wrote above line `counted`, kept incrementally so
    // the top-post check stays linear however many attributions follow.
    let mut top = TopCount::default();
    // Whether the customer wrote anything above line `i`, kept the same way.
    let mut content = ContentAbove::default();
    // Per line: could it end an attribution window (see `LineEnd`).
    let mut ends = vec![LineEnd::Unknown; lines.len()];

    let mut i = 0;
    while let Some(&line) = lines.get(i) {
        if is_blank(line) {
            i += 1;
            continue;
        }
        if is_quoted(line) {
            // Apple Mail quotes a forward: "> Begin forwarded message:".
            // The cheap conditions first: once the customer has written
            // something, no quoted line can be a forward to unpack.
            if depth < MAX_FORWARD_DEPTH
                && !content.found(&lines, &keep, i)
                && may_be_forward_marker(line)
                && FORWARD_MARKER.is_match(line)
            {
                return unpack_forward(&lines, i + 1, depth);
            }
            set(&mut keep, i, false);
            quoted.push(line);
            i += 1;
            continue;
        }
        if let Some(run_end) = wrapped_quote_run(&lines, i) {
            // Lines a client wrapped out of a `>` quote: still the quote.
            for k in i..run_end {
                set(&mut keep, k, false);
                if let Some(l) = lines.get(k) {
                    quoted.push(l);
                }
            }
            i = run_end;
            continue;
        }
        match separator_at(&lines, i, forward_subject, &mut ends) {
            None => i += 1,
            Some(Separator::Forward { lines: n }) => {
                if depth < MAX_FORWARD_DEPTH && !content.found(&lines, &keep, i) {
                    return unpack_forward(&lines, i + n, depth);
                }
                cut = Some(extend_back(&lines, i));
                break;
            }
            Some(Separator::Block) => {
                cut = Some(extend_back(&lines, i));
                break;
            }
            Some(Separator::Attribution { lines: n }) => {
                let next = next_nonblank(&lines, i + n);
                let unprefixed = next
                    .and_then(|j| lines.get(j))
                    .is_some_and(|l| !is_quoted(l));
                if unprefixed && top.advance(&lines, &keep, i) >= TOP_POST_MIN_CHARS {
                    // A reply above an unprefixed quote (Outlook-style
                    // clients): everything from here on is the history.
                    cut = Some(extend_back(&lines, i));
                    break;
                }
                // Above `>` lines, at the end, or with nothing written
                // above: drop the attribution and go on; `>` lines are
                // dropped, answers between them kept.
                for k in i..i + n {
                    set(&mut keep, k, false);
                    if let Some(l) = lines.get(k) {
                        quoted.push(l);
                    }
                }
                i += n;
            }
        }
    }

    let end = cut.unwrap_or(lines.len());
    let kept: Vec<&str> = lines
        .get(..end)
        .unwrap_or_default()
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(l, _)| *l)
        .collect();
    let (body, signature) = split_signature(&kept);
    TextParts {
        reply: join_trimmed(body),
        signature: signature
            .map(|s| s.join("\n").trim().to_owned())
            .filter(|s| !s.is_empty()),
        quoted: join_quoted(&quoted, text, lines.get(end)),
        forwarded: false,
    }
}

/// The quoted lines and, from `tail` (the first line after a cut) on,
/// the rest of the text, joined by LF: the tail is taken as one slice of
/// `text` with its line breaks normalized, instead of line by line (the
/// lines are slices of `text` between line breaks, so joining them by LF
/// gives the same).
fn join_quoted(quoted: &[&str], text: &str, tail: Option<&&str>) -> String {
    let mut out = quoted.join("\n");
    let Some(tail) = tail else {
        return out;
    };
    let rest = (tail.as_ptr() as usize)
        .checked_sub(text.as_ptr() as usize)
        .and_then(|start| text.get(start..));
    if !quoted.is_empty() {
        out.push('\n');
    }
    match rest {
        Some(rest) => out.push_str(&normalize_newlines(rest)),
        // Not reached: every line is a slice of `text`.
        None => out.push_str(tail),
    }
    out
}

/// Unquoted lines sandwiched between `>` lines with no blank line on
/// either side are a long quoted line the sender's client wrapped
/// without repeating the `>`. Returns the end of the run.
fn wrapped_quote_run(lines: &[&str], i: usize) -> Option<usize> {
    let prev = lines.get(i.checked_sub(1)?)?;
    if !is_quoted(prev) || is_blank(strip_one_quote_level(prev)) {
        return None;
    }
    let mut j = i;
    while let Some(l) = lines.get(j) {
        work(l.len());
        if is_blank(l) {
            return None;
        }
        if is_quoted(l) {
            return Some(j);
        }
        j += 1;
    }
    None
}

/// Characters the customer wrote above some line, counted once per line.
/// A reply is top-posted above an unprefixed quote when this reaches
/// [`TOP_POST_MIN_CHARS`] (a lone "Hi," starts a bottom-posted reply).
#[derive(Debug, Default)]
struct TopCount {
    counted: usize,
    chars: usize,
}

impl TopCount {
    /// Counts kept lines up to (not including) `i`; lines above the scan
    /// position never change their `keep` flag again.
    fn advance(&mut self, lines: &[&str], keep: &[bool], i: usize) -> usize {
        // Only "at least TOP_POST_MIN_CHARS" is ever asked: stop counting there.
        if self.chars >= TOP_POST_MIN_CHARS {
            self.counted = self.counted.max(i);
            return self.chars;
        }
        for (l, k) in lines.iter().zip(keep).take(i).skip(self.counted) {
            if *k && !is_blank(l) && !is_mobile_signature(l) {
                work(l.len());
                self.chars += l.trim().chars().count();
            }
        }
        self.counted = self.counted.max(i);
        self.chars
    }
}

/// The forwarded message after a marker at `start`: its header block is
/// skipped, one level of `>` removed (Apple Mail quotes forwards), and the
/// result split again, so the old thread inside it is dropped too.
fn unpack_forward(lines: &[&str], start: usize, depth: u8) -> TextParts {
    let rest = lines.get(start..).unwrap_or_default();
    let unquoted: Vec<&str> = rest.iter().map(|l| strip_one_quote_level(l)).collect();
    // The header block runs to the first blank line after a header
    // line; continuation lines of a long subject belong to it.
    let mut body_start = 0;
    let mut in_headers = false;
    for (k, l) in unquoted.iter().enumerate() {
        if is_blank(l) {
            body_start = k + 1;
            if in_headers {
                break;
            }
        } else if HEADER_OTHER.is_match(l) || in_headers {
            in_headers = true;
            body_start = k + 1;
        } else {
            break;
        }
    }
    let body = unquoted.get(body_start..).unwrap_or_default().join("\n");
    let mut parts = split_at_depth(&body, false, depth + 1);
    parts.forwarded = true;
    parts
}

/// Which separator, if any, starts at line `i` (a non-blank, unquoted line).
fn separator_at(
    lines: &[&str],
    i: usize,
    forward_subject: bool,
    ends: &mut [LineEnd],
) -> Option<Separator> {
    let line = lines.get(i)?.trim();
    work(line.len());
    if may_be_forward_marker(line) && FORWARD_MARKER.is_match(line) {
        return Some(Separator::Forward { lines: 1 });
    }
    // Every separator line has a run of dashes: most lines are decided by
    // a memchr scan instead of a regex search.
    if has_double_dash(line) && ORIGINAL_MESSAGE.is_match(line) {
        return Some(Separator::Block);
    }
    if is_header_block(lines, i) {
        return Some(if forward_subject {
            Separator::Forward { lines: 0 }
        } else {
            Separator::Block
        });
    }
    if (is_rule(line) || is_dash_phrase(line))
        && next_nonblank(lines, i + 1).is_some_and(|j| is_header_block(lines, j))
    {
        return Some(Separator::Block);
    }
    attribution_at(lines, i, ends)
}

/// "On … wrote:" starting at line `i`, possibly wrapped over up to three
/// lines. Only windows whose last line ends like an attribution are
/// matched, which keeps the regex work to a few short lines.
fn attribution_at(lines: &[&str], i: usize, ends: &mut [LineEnd]) -> Option<Separator> {
    attribution_len(lines, i, ends).map(|lines| Separator::Attribution { lines })
}

/// The number of lines of the attribution window starting at `i`.
///
/// A wrapped window's first line must not end a sentence, and unless the
/// window starts with a known word ("On", "Am", "Le", a date) it must hold
/// a date, an address or a quoted name: "Hello" above "Ana <a@b.c>
/// wrote:" is the customer's, not part of the attribution.
fn attribution_len(lines: &[&str], i: usize, ends: &mut [LineEnd]) -> Option<usize> {
    // A window matches only if its last line ends like an attribution (or
    // is all decoration, which exposes the end of the line above), and a
    // blank line ends the search. Most lines are prose: decide them here
    // without building a window.
    // Each line is classified once (`ends`), not once per window it is in.
    let mut plausible = false;
    for k in i..(i + MAX_WINDOW_LINES).min(lines.len()) {
        match line_end(lines, ends, k) {
            LineEnd::Blank => break,
            LineEnd::Plausible => {
                plausible = true;
                break;
            }
            LineEnd::Unknown | LineEnd::Other => {}
        }
    }
    if !plausible {
        return None;
    }
    let first = lines.get(i)?.trim_end();
    let first_can_wrap = !ends_sentence(first);
    let first_has_evidence = first.contains(|c: char| c.is_ascii_digit() || "@<\"".contains(c));
    let mut window = String::new();
    for n in 1..=MAX_WINDOW_LINES {
        let line = lines.get(i + n - 1)?;
        // A wrapped "<address\n>:" puts the end on a line of its own that
        // looks quoted.
        let continuation = n > 1 && is_bracket_colon(line);
        if is_blank(line) || (is_quoted(line) && !continuation) {
            return None;
        }
        if !window.is_empty() && !continuation {
            window.push(' ');
        }
        window.push_str(line.trim());
        // Bytes bound characters from above: count only when it can matter.
        if window.len() > MAX_WINDOW_CHARS && window.chars().count() > MAX_WINDOW_CHARS {
            return None;
        }
        let candidate = strip_decoration(&window);
        work(candidate.len());
        if !ends_like_attribution(candidate) {
            continue;
        }
        if n > 1 && !first_can_wrap {
            return None;
        }
        if ATTRIBUTION_STRONG.is_match(candidate) || ATTRIBUTION_DATE_FIRST.is_match(candidate) {
            return Some(n);
        }
        if (n == 1 || first_has_evidence)
            && (ATTRIBUTION_WEAK.is_match(candidate)
                || (ATTRIBUTION_GENERIC.is_match(candidate)
                    && looks_like_attribution_evidence(candidate)))
        {
            return Some(n);
        }
    }
    None
}

/// What a line means for the attribution prefilter, computed once per
/// line: each line is in up to [`MAX_WINDOW_LINES`] windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineEnd {
    /// Not classified yet.
    Unknown,
    /// A blank line: it ends the search.
    Blank,
    /// Ends like an attribution, or is all decoration.
    Plausible,
    /// Anything else.
    Other,
}

/// The [`LineEnd`] of line `k`, classified on first use.
fn line_end(lines: &[&str], ends: &mut [LineEnd], k: usize) -> LineEnd {
    let known = ends.get(k).copied().unwrap_or(LineEnd::Blank);
    if known != LineEnd::Unknown {
        return known;
    }
    let Some(l) = lines.get(k) else {
        return LineEnd::Blank;
    };
    let class = if is_blank(l) {
        LineEnd::Blank
    } else {
        let s = strip_decoration(l);
        if s.is_empty() || ends_like_attribution(s) {
            LineEnd::Plausible
        } else {
            LineEnd::Other
        }
    };
    if let Some(e) = ends.get_mut(k) {
        *e = class;
    }
    class
}

/// A line that ends a sentence ("…then.", "Thanks!") rather than an
/// abbreviation or a date ("28.", "Apr.", "janv.") an attribution wraps at.
fn ends_sentence(line: &str) -> bool {
    if line.ends_with(['!', '?', '…']) || line.ends_with("..") {
        return true;
    }
    let Some(rest) = line.strip_suffix('.') else {
        return false;
    };
    let word: Vec<char> = rest
        .chars()
        .rev()
        .take_while(|c| c.is_alphabetic())
        .collect();
    word.len() >= 4 && word.iter().all(|c| c.is_lowercase())
}

/// ">:" alone on a line: the end of an address wrapped by the client.
fn is_bracket_colon(line: &str) -> bool {
    matches!(line.trim(), ">:" | "> :" | ">：")
}

/// Zoho writes "---- On … wrote ----"; HTML conversions add `*bold*`.
fn strip_decoration(s: &str) -> &str {
    s.trim_matches(|c: char| c == '-' || c == '*' || c == '_' || c.is_whitespace())
}

/// Cheap filter before the regexes: every attribution ends with a colon
/// or the English verb (Zoho and some mobile clients drop the colon).
fn ends_like_attribution(s: &str) -> bool {
    s.ends_with(':')
        || s.ends_with('：')
        || s.ends_with('>')
        || s.len()
            .checked_sub(5)
            .and_then(|i| s.get(i..))
            .is_some_and(|end| end.eq_ignore_ascii_case("wrote"))
}

/// "From: …" followed closely by at least two more header lines.
fn is_header_block(lines: &[&str], i: usize) -> bool {
    let Some(first) = lines.get(i) else {
        return false;
    };
    if !may_be_header_line(first) || !HEADER_FROM.is_match(first) {
        return false;
    }
    let mut others = 0;
    let mut blanks = 0;
    for l in lines.iter().skip(i + 1).take(HEADER_BLOCK_SPAN) {
        work(l.len());
        if is_blank(l) {
            blanks += 1;
            if blanks > 1 {
                break;
            }
            continue;
        }
        if may_be_header_line(l) && HEADER_OTHER.is_match(l) {
            others += 1;
            if others >= HEADER_BLOCK_MIN_OTHERS {
                return true;
            }
        }
    }
    false
}

/// True when `line` has "--" somewhere. A memchr for the first dash of
/// each pair: lines have few dashes, and `memmem::find` (or `str::contains`)
/// pays a searcher setup per call that costs more than a line is long.
fn has_double_dash(line: &str) -> bool {
    let bytes = line.as_bytes();
    memchr::memchr_iter(b'-', bytes).any(|i| bytes.get(i + 1) == Some(&b'-'))
}

/// Moves a cut up over the blank lines and rules ("______", "-----")
/// that introduce a quoted header block, so they do not end the reply.
fn extend_back(lines: &[&str], mut i: usize) -> usize {
    while i > 0 {
        match lines.get(i - 1) {
            Some(l) if is_blank(l) || is_rule(l.trim()) || HEADER_OTHER.is_match(l) => i -= 1,
            _ => break,
        }
    }
    i
}

/// Splits the kept lines into body and signature: the signature starts at
/// an RFC 3676 "-- " delimiter or a mobile-client line ("Sent from my
/// iPhone"). Closing formulas ("Best regards, Ana") are not signatures
/// here: they are the customer's words and harmless.
fn split_signature<'s, 'a>(kept: &'s [&'a str]) -> (&'s [&'a str], Option<&'s [&'a str]>) {
    let split = (0..kept.len())
        .find(|&k| is_signature_start(kept, k))
        .and_then(|s| kept.split_at_checked(s));
    match split {
        Some((body, sig)) => (body, Some(sig)),
        None => (kept, None),
    }
}

/// Whether the signature starts at `kept[k]`: an RFC 3676 "-- " line, a
/// mobile-client line, or a mailing-list footer ("____" over "… mailing
/// list").
fn is_signature_start(kept: &[&str], k: usize) -> bool {
    let Some(line) = kept.get(k) else {
        return false;
    };
    if line.trim_end() == "--" {
        return true;
    }
    if is_rule(line) && line.trim_start().starts_with('_') {
        return kept.iter().skip(k + 1).take(3).any(|l| {
            let l = l.to_lowercase();
            l.contains("mailing list") || l.contains("listinfo")
        });
    }
    is_mobile_signature(line)
}

/// "Sent from my iPhone" and friends: short lines only, and for the
/// English "Sent from my X" only when X names a device or is a bare
/// name ("Sent from my TI-85"), so "Sent from my desk, which is easier"
/// stays.
pub(crate) fn is_mobile_signature(line: &str) -> bool {
    let t = line
        .trim()
        .trim_start_matches(['(', '<', '[', '*', '_', '>'])
        .trim_end_matches([')', '>', ']', '*', '_']);
    // Called for every line: decide long lines by their byte length first
    // (100 characters are at most 400 bytes), and compare without
    // allocating a lowercase copy.
    if t.is_empty() || t.len() > 400 || (t.len() > 100 && t.chars().count() > 100) {
        return false;
    }
    // Word counts stop where the answer is known: only "more than 12",
    // "at most 10" and "at most 5" are asked.
    if let Some(rest) = t
        .get(..13)
        .filter(|h| h.eq_ignore_ascii_case("sent from my "))
        .and_then(|_| t.get(13..))
    {
        if t.split_whitespace().take(13).count() > 12 {
            return false;
        }
        let mut rest_words = rest.split_whitespace();
        let device = rest_words.by_ref().take(4).any(|w| {
            let w = w.trim_matches(|c: char| !c.is_alphanumeric());
            DEVICE_WORDS.iter().any(|d| d.eq_ignore_ascii_case(w))
        });
        return device
            || (rest.split_whitespace().take(6).count() <= 5
                && !rest.contains(',')
                && !rest.contains(". "));
    }
    // The loose pattern rejects nearly every line at DFA speed; the word
    // count and the strict pattern run only for the few it lets through.
    MOBILE_SIGNATURE_LOOSE.is_match(t)
        && t.split_whitespace().take(11).count() <= 10
        && MOBILE_SIGNATURE.is_match(t)
}

/// Whether a kept, non-blank line that is not a mobile signature exists
/// above some line, counted once per line: asked for every quoted line
/// that could start a forward, scanning from the top each time would be
/// quadratic. Lines above the scan position never change their `keep`
/// flag again, and once found the answer stays true.
#[derive(Debug, Default)]
struct ContentAbove {
    counted: usize,
    found: bool,
}

impl ContentAbove {
    /// True when such a line exists in `lines[..i]`.
    fn found(&mut self, lines: &[&str], keep: &[bool], i: usize) -> bool {
        if self.found {
            return true;
        }
        for (l, k) in lines.iter().zip(keep).take(i).skip(self.counted) {
            if *k && !is_blank(l) && !is_mobile_signature(l) {
                self.found = true;
                break;
            }
        }
        self.counted = self.counted.max(i);
        self.found
    }
}

fn next_nonblank(lines: &[&str], from: usize) -> Option<usize> {
    lines
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, l)| !is_blank(l))
        .map(|(j, _)| j)
}

fn set(keep: &mut [bool], i: usize, value: bool) {
    if let Some(k) = keep.get_mut(i) {
        *k = value;
    }
}

pub(crate) fn is_blank(line: &str) -> bool {
    line.chars().all(|c| c.is_whitespace() || is_invisible(c))
}

/// Zero-width and tracking characters clients leave on otherwise empty
/// lines (Gmail's "ᐧ" read-receipt marker among them).
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200b}'
            | '\u{200c}'
            | '\u{200d}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{2060}'
            | '\u{feff}'
            | '\u{1427}'
    )
}

/// A `>`-quoted line (any depth, leading spaces allowed).
pub(crate) fn is_quoted(line: &str) -> bool {
    line.trim_start().starts_with('>')
}

fn strip_one_quote_level(line: &str) -> &str {
    match line.trim_start().strip_prefix('>') {
        Some(rest) => rest.strip_prefix(' ').unwrap_or(rest),
        None => line,
    }
}

/// A horizontal rule made of one repeated symbol: "_____", "-----",
/// "=====", "*****", "#####", "~~~~", "++++".
fn is_rule(line: &str) -> bool {
    let t = line.trim();
    let mut chars = t.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    matches!(first, '-' | '_' | '=' | '*' | '#' | '~' | '+')
        && t.chars().count() >= 2
        && chars.all(|c| c == first || c == ' ')
}

/// "-------- Some words --------": a separator in a language we do not
/// list, recognised by the header block that follows it.
fn is_dash_phrase(line: &str) -> bool {
    let t = line.trim();
    t.starts_with("---") && t.ends_with("---") && t.chars().count() <= 80
}

/// Joins lines, dropping leading and trailing blank lines and trailing
/// rules (a reply often ends with the rule that introduced the quote).
fn join_trimmed(lines: &[&str]) -> String {
    let mut end = lines.len();
    while end > 0 {
        match lines.get(end - 1) {
            Some(l) if is_blank(l) || is_rule(l) => end -= 1,
            _ => break,
        }
    }
    let start = lines
        .iter()
        .take(end)
        .position(|l| !is_blank(l))
        .unwrap_or(end);
    // Removed quotes leave runs of blank lines; one is enough.
    let mut out: Vec<&str> = Vec::new();
    let mut previous_blank = false;
    for l in lines.get(start..end).unwrap_or_default() {
        let blank = is_blank(l);
        if !(blank && previous_blank) {
            out.push(if blank { "" } else { l.trim_end() });
        }
        previous_blank = blank;
    }
    out.join("\n")
}

#[cfg(test)]
thread_local! {
    /// Bytes handed to the line rules (and their regexes) on this thread:
    /// the tests assert it grows linearly with the input, without timing.
    pub(crate) static WORK: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Records `bytes` of rule work (tests only; free otherwise).
fn work(bytes: usize) {
    #[cfg(test)]
    WORK.with(|w| w.set(w.get() + bytes));
    #[cfg(not(test))]
    let _ = bytes;
}

/// CRLF and lone CR become LF, so every rule sees the same lines.
///
/// One memchr pass that borrows the text when it has no CR (no copy) and
/// otherwise copies the runs between CRs: the same result as
/// `replace("\r\n", "\n").replace('\r', "\n")`, which scans twice with
/// a substring searcher and allocates twice.
pub(crate) fn normalize_newlines(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut crs = memchr::memchr_iter(b'\r', bytes).peekable();
    if crs.peek().is_none() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut start = 0;
    for cr in crs {
        // `start` and `cr` sit next to ASCII bytes, so both are character
        // boundaries and `get` never fails.
        out.push_str(text.get(start..cr).unwrap_or_default());
        out.push('\n');
        start = if bytes.get(cr + 1) == Some(&b'\n') {
            cr + 2
        } else {
            cr + 1
        };
    }
    out.push_str(text.get(start..).unwrap_or_default());
    Cow::Owned(out)
}

/// The lines of `text` as `normalize_newlines(text).split('\n')` gives
/// them (CRLF, lone CR and LF each end a line; a final line break yields
/// a last empty line), borrowed from `text` itself: a CRLF body (most
/// mail) is not copied just to be split. Found with memchr's vectorized
/// search: this runs over every byte of every body.
pub(crate) fn split_lines(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut lines = Vec::with_capacity(memchr::memchr_iter(b'\n', bytes).count() + 1);
    let mut start = 0;
    for brk in memchr::memchr2_iter(b'\r', b'\n', bytes) {
        // The LF of a CRLF, already consumed with its CR.
        if brk < start {
            continue;
        }
        // `start` and `brk` sit next to ASCII bytes: character boundaries.
        lines.push(text.get(start..brk).unwrap_or_default());
        start = if bytes.get(brk) == Some(&b'\r') && bytes.get(brk + 1) == Some(&b'\n') {
            brk + 2
        } else {
            brk + 1
        };
    }
    lines.push(text.get(start..).unwrap_or_default());
    lines
}
