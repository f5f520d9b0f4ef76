//! Stage 1: raw RFC 5322 bytes → [`ParsedMail`].
//!
//! mail-parser does the MIME work; this module decides what the later
//! stages see: header text decoded even when the sender put raw 8-bit bytes
//! in it, body text whose charset label was wrong, attachments with their
//! hashes, the delivery report of a bounce, and a content hash that is the
//! same for every delivery of one message. Every byte is hostile: nothing
//! here indexes or slices mail data, and a panic inside mail-parser (it has
//! had some on fuzzed input) becomes [`ParseError::Panicked`].

mod headers;
mod report;
mod text;

#[cfg(test)]
mod tests;

use std::borrow::Cow;

use data_encoding::HEXLOWER;
use mail_parser::{HeaderName, Message, MessageParser, MessagePart, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

use crate::mail::{Attachment, HeaderField, ParsedMail};

pub(crate) use report::{is_bounce_subject, is_daemon_address, starts_with_reply_prefix};

/// Domain of synthetic Message-IDs: `.invalid` (RFC 2606) can never clash
/// with a real one.
pub const SYNTHETIC_ID_DOMAIN: &str = "synthetic.postdesk.invalid";

/// Lines are wrapped only when very long when HTML is turned into text:
/// the quote and signature stages work on the lines the sender wrote.
/// (html2text is slowest at narrow widths, where it wraps everything.)
const HTML_TEXT_WIDTH: usize = 1_000;

/// Beyond this nesting depth html2text gets slow (its layout is
/// super-linear in depth); real mail HTML stays far below it.
const HTML2TEXT_MAX_DEPTH: usize = 200;

/// Beyond this size html2text is not worth its time: it runs at 2-40 MB/s
/// depending on the markup.
const HTML2TEXT_MAX_BYTES: usize = 1024 * 1024;

/// The header fields that make two deliveries "the same message", in the
/// order they enter the content hash. Trace fields (Received,
/// Return-Path, Delivered-To, X-Original-To) differ per delivery and are
/// left out on purpose.
const IDENTITY_FIELDS: [&str; 6] = ["message-id", "from", "to", "cc", "subject", "date"];

/// How many CR-free body bytes [`content_hash`] gathers before it hands
/// them to SHA-256: large enough that the per-call cost vanishes, small
/// enough to stay in the L1/L2 cache.
const HASH_CHUNK_BYTES: usize = 16 * 1024;

/// Why a message could not be parsed; the message is quarantined with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the message is empty; there is nothing to import")]
    Empty,
    #[error(
        "the message has no header section; it is not RFC 5322 mail (check that the source delivers whole messages)"
    )]
    NotMail,
    #[error(
        "the MIME parser crashed on this message ({0}); it stays quarantined until a fixed parser replays it"
    )]
    Panicked(String),
}

/// Parses one message. Never panics: a panic inside mail-parser (or the
/// HTML converter) is caught and returned as [`ParseError::Panicked`].
pub fn parse(bytes: &[u8]) -> Result<ParsedMail, ParseError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty);
    }
    let start = header_start(bytes).ok_or(ParseError::NotMail)?;
    let message = bytes.get(start..).unwrap_or_default();
    guard::catch(|| parse_message(message, bytes.len())).map_err(ParseError::Panicked)?
}

/// Where the header section starts: after a UTF-8 byte order mark, blank
/// lines and an mbox `From ` separator line, none of which belong to the
/// message. `None` when the first line is not a header field.
fn header_start(bytes: &[u8]) -> Option<usize> {
    let mut start = 0;
    if bytes.starts_with(b"\xef\xbb\xbf") {
        start = 3;
    }
    while let Some(b'\r' | b'\n') = bytes.get(start) {
        start += 1;
    }
    let line_end = |from: usize| {
        bytes
            .get(from..)
            .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
            .map_or(bytes.len(), |pos| from + pos + 1)
    };
    if bytes.get(start..)?.starts_with(b"From ") {
        start = line_end(start);
    }
    let first_line = bytes.get(start..line_end(start))?;
    let colon = first_line.iter().position(|&b| b == b':')?;
    let name = first_line.get(..colon)?.trim_ascii_end();
    let is_field_name = !name.is_empty() && name.iter().all(|&b| b.is_ascii_graphic() && b != b':');
    is_field_name.then_some(start)
}

fn parse_message(message: &[u8], size_bytes: usize) -> Result<ParsedMail, ParseError> {
    // mail-parser drops the last header of a header-only message that does
    // not end with a line break; such messages are tiny, so copy and fix.
    let input: Cow<'_, [u8]> = if message.ends_with(b"\n") || has_body_separator(message) {
        Cow::Borrowed(message)
    } else {
        let mut owned = message.to_vec();
        owned.extend_from_slice(b"\n");
        Cow::Owned(owned)
    };
    let raw: &[u8] = &input;
    let mut msg = MessageParser::default()
        .parse(raw)
        .ok_or(ParseError::NotMail)?;
    let root = msg.root_part();
    let root_headers = &root.headers;

    let fields = headers::fields(root_headers, raw);
    let from = headers::addresses(root_headers, raw, &HeaderName::From)
        .into_iter()
        .next();
    let sender = headers::addresses(root_headers, raw, &HeaderName::Sender)
        .into_iter()
        .next();
    let reply_to = headers::addresses(root_headers, raw, &HeaderName::ReplyTo);
    let to = headers::addresses(root_headers, raw, &HeaderName::To);
    let cc = headers::addresses(root_headers, raw, &HeaderName::Cc);
    let return_path = headers::return_path(&fields);
    let subject = field(&fields, "subject").unwrap_or_default().to_owned();
    let message_id = headers::id_header(root_headers, &HeaderName::MessageId)
        .into_iter()
        .next();
    let in_reply_to = headers::id_header(root_headers, &HeaderName::InReplyTo);
    let references = headers::id_header(root_headers, &HeaderName::References);
    let date = headers::date(msg.header(HeaderName::Date));
    let content_language = headers::content_language(&fields);
    let body_offset = usize::try_from(root.offset_body).unwrap_or(usize::MAX);

    // The report is read first, while every part still holds its text:
    // `bodies` then moves the body texts out instead of copying them.
    let report = report::extract(
        &msg,
        raw,
        &report::Envelope {
            fields: &fields,
            from: from.as_ref(),
            sender: sender.as_ref(),
            to: &to,
            return_path: return_path.as_deref(),
            subject: &subject,
        },
    );

    let (text_body, html) = match bodies(&mut msg, raw) {
        (None, None) => repaired_bodies(&msg, raw),
        found => found,
    };
    let (text, text_from_html) = match (text_body, &html) {
        (Some(text), _) => (text, false),
        (None, Some(html)) => (html_to_text(html), true),
        (None, None) => (String::new(), false),
    };

    let content_hash = content_hash(&fields, raw.get(body_offset..).unwrap_or_default());
    let (message_id, message_id_synthetic) = match message_id {
        Some(id) => (id, false),
        None => (synthetic_message_id(&content_hash), true),
    };
    let attachments = take_attachments(&mut msg, raw);

    Ok(ParsedMail {
        message_id,
        message_id_synthetic,
        in_reply_to,
        references,
        from,
        sender,
        reply_to,
        to,
        cc,
        return_path,
        subject,
        date,
        content_language,
        headers: fields,
        text,
        html,
        text_from_html,
        attachments,
        report,
        content_hash,
        size_bytes,
    })
}

/// True when the bytes contain an empty line (the header/body separator).
fn has_body_separator(bytes: &[u8]) -> bool {
    memchr::memmem::find(bytes, b"\n\n").is_some()
        || memchr::memmem::find(bytes, b"\n\r\n").is_some()
}

/// The first value of a header field, by lowercase name.
fn field<'f>(fields: &'f [HeaderField], name: &str) -> Option<&'f str> {
    fields
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case(name))
        .map(|f| f.value.as_str())
}

/// The first text/plain and the first text/html body part, charset-checked.
/// mail-parser lists an HTML part among the text bodies when it is the only
/// alternative (and inline images among both); only real text/plain
/// counts as text here.
///
/// The texts are moved out of the parsed message, not copied (bodies run
/// to megabytes): the parts stay text parts with empty text, so
/// [`take_attachments`] still recognizes and skips them. Nothing reads a
/// body part's text after this.
fn bodies(msg: &mut Message<'_>, raw: &[u8]) -> (Option<String>, Option<String>) {
    let text = take_body_text(&mut msg.parts, &msg.text_body, false, raw);
    let html = take_body_text(&mut msg.parts, &msg.html_body, true, raw);
    (text, html)
}

/// The charset-checked text of the first part among `ids` that is text/plain
/// (or text/html when `html`), moved out of the part when mail-parser's
/// decoding was right and only the corrected copy is new otherwise.
fn take_body_text(
    parts: &mut [MessagePart<'_>],
    ids: &[u32],
    html: bool,
    raw: &[u8],
) -> Option<String> {
    let wanted = |part: &MessagePart<'_>| match part.body {
        PartType::Text(_) => !html,
        PartType::Html(_) => html,
        _ => false,
    };
    let index = ids
        .iter()
        .filter_map(|&id| usize::try_from(id).ok())
        .find(|&i| parts.get(i).is_some_and(wanted))?;
    let part = parts.get_mut(index)?;
    let corrected = match &part.body {
        PartType::Text(t) | PartType::Html(t) => match text::part_text(t, part, raw) {
            Cow::Owned(fixed) => Some(fixed),
            Cow::Borrowed(_) => None,
        },
        _ => return None,
    };
    match (corrected, &mut part.body) {
        (Some(fixed), _) => Some(fixed),
        (None, PartType::Text(t) | PartType::Html(t)) => Some(std::mem::take(t).into_owned()),
        (None, _) => None,
    }
}

/// Bodies from a multipart part whose boundary parameter is missing or
/// lost (a header folded without indentation): mail-parser keeps such a
/// part as one opaque blob. The first `--` line inside is taken as the
/// boundary and the part parsed again with it. Only tried when the message
/// yielded no body at all.
fn repaired_bodies(msg: &Message<'_>, raw: &[u8]) -> (Option<String>, Option<String>) {
    for part in &msg.parts {
        let is_multipart = part
            .content_type()
            .is_some_and(|ct| ct.ctype().eq_ignore_ascii_case("multipart"));
        if !is_multipart || matches!(part.body, PartType::Multipart(_) | PartType::Message(_)) {
            continue;
        }
        let bytes = text::transfer_decoded(part, raw);
        let Some(boundary) = bytes
            .split(|&b| b == b'\n')
            .map(<[u8]>::trim_ascii)
            .find(|line| line.len() > 2 && line.starts_with(b"--") && !line.contains(&b' '))
            .and_then(|line| line.get(2..))
        else {
            continue;
        };
        let mut repaired = b"Content-Type: multipart/mixed; boundary=\"".to_vec();
        repaired.extend_from_slice(boundary.strip_suffix(b"--").unwrap_or(boundary));
        repaired.extend_from_slice(b"\"\n\n");
        repaired.extend_from_slice(&bytes);
        if let Some(mut inner) = MessageParser::default().parse(&repaired) {
            let found = bodies(&mut inner, &repaired);
            if found.0.is_some() || found.1.is_some() {
                return found;
            }
        }
    }
    (None, None)
}

/// Readable text from HTML, for messages without a text/plain part.
/// html2text handles tables, lists and entities; mail-parser's own
/// converter is the fallback should it fail.
fn html_to_text(html: &str) -> String {
    // html2text is super-linear in nesting depth (100,000 nested <div>s
    // take minutes): hostile or huge HTML gets mail-parser's linear
    // converter instead.
    let converted = if html.len() > HTML2TEXT_MAX_BYTES || nesting_depth(html) > HTML2TEXT_MAX_DEPTH
    {
        mail_parser::decoders::html::html_to_text(html)
    } else {
        html2text::config::plain_no_decorate()
            .string_from_read(line_break_before_rules(html).as_bytes(), HTML_TEXT_WIDTH)
            .unwrap_or_else(|_| mail_parser::decoders::html::html_to_text(html))
    };
    // html2text pads lines of table cells and block ends with spaces.
    let mut out = String::with_capacity(converted.len());
    for line in converted.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let trimmed_len = out.trim_end().len();
    out.truncate(trimmed_len);
    out
}

/// The HTML with a `<br>` before every `<hr>`. html2text drops `<hr>`
/// without even a line break, so the text before a horizontal rule runs
/// into the line after it: "Thanks, Bob" + `<hr>` + "From: … Sent: …"
/// (an Outlook Web reply) became one line, and the reply header that the
/// quote rules look for at a line's start was lost in it. Scanned by hand
/// because it is one tag name; a tag inside a comment or an attribute
/// value gains a harmless line break at most.
pub(crate) fn line_break_before_rules(html: &str) -> Cow<'_, str> {
    let bytes = html.as_bytes();
    let is_rule = |at: usize| {
        bytes
            .get(at + 1..at + 3)
            .is_some_and(|n| n.eq_ignore_ascii_case(b"hr"))
            && bytes
                .get(at + 3)
                .is_none_or(|c| matches!(c, b'>' | b'/') || c.is_ascii_whitespace())
    };
    let mut rules = memchr::memchr_iter(b'<', bytes)
        .filter(|&at| is_rule(at))
        .peekable();
    if rules.peek().is_none() {
        return Cow::Borrowed(html);
    }
    let mut out = String::with_capacity(html.len() + 64);
    let mut done = 0;
    for at in rules {
        out.push_str(html.get(done..at).unwrap_or_default());
        out.push_str("<br>");
        done = at;
    }
    out.push_str(html.get(done..).unwrap_or_default());
    Cow::Owned(out)
}

/// The deepest element nesting of an HTML document, estimated in one
/// pass: an opening tag adds one (void and self-closing elements do not),
/// a closing tag subtracts one. Elements closed implicitly (`<p>`, `<li>`)
/// make it an overestimate, which only errs toward the safe converter.
fn nesting_depth(html: &str) -> usize {
    const VOID: &[&str] = &[
        "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
        "source", "track", "wbr", "!--", "!doctype", "?xml",
    ];
    let bytes = html.as_bytes();
    let (mut depth, mut deepest) = (0usize, 0usize);
    for at in memchr::memchr_iter(b'<', bytes) {
        let rest = bytes.get(at + 1..).unwrap_or_default();
        match rest.first() {
            Some(b'/') => depth = depth.saturating_sub(1),
            Some(c) if c.is_ascii_alphabetic() => {
                let name_len = rest
                    .iter()
                    .position(|b| !b.is_ascii_alphanumeric())
                    .unwrap_or(rest.len());
                let name = rest.get(..name_len).unwrap_or_default();
                let is_void = VOID.iter().any(|v| v.as_bytes().eq_ignore_ascii_case(name));
                let self_closing = memchr::memchr(b'>', rest)
                    .and_then(|end| rest.get(..end))
                    .is_some_and(|tag| tag.ends_with(b"/"));
                if !is_void && !self_closing {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
            }
            _ => {}
        }
    }
    deepest
}

/// Every attachment in message order: files, inline images, returned
/// messages, report parts; not the text/html bodies. Bodies are moved out
/// of the parsed message, not copied, so a 30 MB attachment exists once.
fn take_attachments(msg: &mut Message<'_>, raw: &[u8]) -> Vec<Attachment> {
    let body_ids: Vec<u32> = msg
        .text_body
        .iter()
        .chain(&msg.html_body)
        .copied()
        .collect();
    let ids = msg.attachments.clone();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(part) = usize::try_from(id).ok().and_then(|i| msg.parts.get_mut(i)) else {
            continue;
        };
        let is_text = matches!(part.body, PartType::Text(_) | PartType::Html(_));
        if is_text && body_ids.contains(&id) {
            continue;
        }
        let name = part
            .attachment_name()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
        let content_type = part
            .content_type()
            .map(|ct| match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
                None => ct.ctype().to_ascii_lowercase(),
            })
            .unwrap_or_else(|| {
                match part.body {
                    PartType::Text(_) => "text/plain",
                    PartType::Html(_) => "text/html",
                    PartType::Message(_) => "message/rfc822",
                    _ => "application/octet-stream",
                }
                .to_owned()
            });
        let content = match std::mem::take(&mut part.body) {
            PartType::Binary(bytes) | PartType::InlineBinary(bytes) => bytes.into_owned(),
            // The bytes as sent, before charset decoding: a CSV in Latin-1
            // stays the file its sender attached.
            PartType::Text(_) | PartType::Html(_) => text::transfer_decoded(part, raw).into_owned(),
            PartType::Message(nested) => {
                if part.encoding == mail_parser::Encoding::None {
                    let start = usize::try_from(part.offset_body).unwrap_or(usize::MAX);
                    let end = usize::try_from(part.offset_end).unwrap_or(usize::MAX);
                    raw.get(start..end.max(start)).unwrap_or_default().to_vec()
                } else {
                    nested.raw_message.into_owned()
                }
            }
            PartType::Multipart(_) => continue,
        };
        out.push(Attachment {
            name,
            content_type,
            size_bytes: content.len(),
            sha256: HEXLOWER.encode(&Sha256::digest(&content)),
            content,
        });
    }
    out
}

/// SHA-256 over the identity fields and the body. Line endings are
/// normalized (CR dropped) and trailing white space ignored, because the
/// same message arrives with CRLF over IMAP and LF from a Maildir.
fn content_hash(fields: &[HeaderField], body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    for name in IDENTITY_FIELDS {
        hasher.update(name.as_bytes());
        hasher.update(b":");
        if let Some(value) = field(fields, name) {
            hasher.update(value.as_bytes());
        }
        hasher.update(b"\n");
    }
    hasher.update(b"\n");
    let body = body.trim_ascii_end();
    if memchr::memchr(b'\r', body).is_none() {
        hasher.update(body);
        return HEXLOWER.encode(&hasher.finalize());
    }
    // CRLF mail: one `update` per line costs more than the hashing of the
    // line itself (a SHA call per block, buffering per call), so the lines
    // are gathered without their CRs into large chunks first. The digest
    // is the same: SHA-256 only sees the concatenated bytes.
    let mut chunk: Vec<u8> = Vec::with_capacity(HASH_CHUNK_BYTES.min(body.len()));
    let mut start = 0;
    for cr in memchr::memchr_iter(b'\r', body).chain(std::iter::once(body.len())) {
        let segment = body.get(start..cr).unwrap_or_default();
        start = cr + 1;
        if chunk.len() + segment.len() > HASH_CHUNK_BYTES {
            hasher.update(&chunk);
            chunk.clear();
        }
        if segment.len() >= HASH_CHUNK_BYTES {
            hasher.update(segment);
        } else {
            chunk.extend_from_slice(segment);
        }
    }
    hasher.update(&chunk);
    HEXLOWER.encode(&hasher.finalize())
}

/// `<first 32 hex digits of the content hash>@synthetic.postdesk.invalid`:
/// stable across redeliveries, unique per content.
fn synthetic_message_id(content_hash: &str) -> String {
    let prefix = content_hash.get(..32).unwrap_or(content_hash);
    format!("{prefix}@{SYNTHETIC_ID_DOMAIN}")
}

/// Contains panics from the parser libraries.
///
/// The default panic hook prints every panic to stderr, which would spill
/// hostile-input noise into the daemon's log. A hook installed once wraps
/// whatever hook was there and stays silent only while *this thread* is
/// inside [`guard::catch`] (a thread-local flag), so other threads' panics
/// are reported as before and nothing races on swapping hooks. The panic
/// message and location become the error text instead.
mod guard {
    use std::cell::{Cell, RefCell};
    use std::panic::{self, AssertUnwindSafe};
    use std::sync::Once;

    thread_local! {
        static QUIET: Cell<bool> = const { Cell::new(false) };
        static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
    }

    static INSTALL: Once = Once::new();

    fn install_hook() {
        INSTALL.call_once(|| {
            let previous = panic::take_hook();
            panic::set_hook(Box::new(move |info| {
                if QUIET.with(Cell::get) {
                    let location = info
                        .location()
                        .map(|l| format!("{}:{}", l.file(), l.line()));
                    LOCATION.with(|cell| *cell.borrow_mut() = location);
                } else {
                    previous(info);
                }
            }));
        });
    }

    /// Runs `f`, turning a panic into its message.
    pub(super) fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
        install_hook();
        let was_quiet = QUIET.with(|q| q.replace(true));
        let result = panic::catch_unwind(AssertUnwindSafe(f));
        QUIET.with(|q| q.set(was_quiet));
        result.map_err(|payload| {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            match LOCATION.with(|cell| cell.borrow_mut().take()) {
                Some(location) => format!("{message} at {location}"),
                None => message,
            }
        })
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn a_panic_becomes_an_error_with_its_location() {
            let result: Result<(), String> = super::catch(|| panic!("boom"));
            let err = result.err().unwrap_or_default();
            assert!(err.starts_with("boom at "), "{err}");
            assert_eq!(super::catch(|| 7), Ok(7));
        }
    }
}
