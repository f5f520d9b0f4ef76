//! Turning bytes into text: header values and body parts.
//!
//! mail-parser decodes charsets itself and is right for well-labelled mail.
//! Real mail is often labelled wrong, so this module second-guesses it in
//! the three cases where it is wrong in practice, using encoding_rs (which
//! mail-parser itself uses for the multi-byte charsets):
//!
//! * 8-bit bytes with no declared charset (or declared UTF-8) that are not
//!   UTF-8: mail-parser yields U+FFFD; they are windows-1252 (a superset of
//!   ISO-8859-1, the usual culprit);
//! * a legacy charset declared over bytes that are valid UTF-8 (a "Big5" or
//!   "us-ascii" part written by a UTF-8 client): UTF-8 wins;
//! * a charset label mail-parser does not know but encoding_rs does.

use std::borrow::Cow;

use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};
use mail_parser::parsers::MessageStream;
use mail_parser::{Encoding as TransferEncoding, HeaderValue, MessagePart, MimeHeaders, PartType};

/// How far into an HTML part a `<meta charset>` is looked for: browsers
/// stop at 1024 bytes; mail HTML sometimes has a long `<style>` first.
const META_SNIFF_BYTES: usize = 4096;

/// Header bytes as UTF-8: raw 8-bit headers that are not UTF-8 are read as
/// windows-1252 rather than turned into U+FFFD.
pub(super) fn header_bytes_utf8(raw: &[u8]) -> Cow<'_, [u8]> {
    if std::str::from_utf8(raw).is_ok() {
        Cow::Borrowed(raw)
    } else {
        let (text, _) = WINDOWS_1252.decode_without_bom_handling(raw);
        Cow::Owned(text.into_owned().into_bytes())
    }
}

/// A raw header value (the bytes after the colon, folding included)
/// unfolded and RFC 2047-decoded to text. Raw 8-bit bytes that are not
/// UTF-8 are read as windows-1252, unless they sit inside an encoded word
/// that names their charset (which mail-parser honours).
pub(super) fn header_text(raw: &[u8]) -> String {
    let fixed = with_known_charset_labels(raw);
    let direct = unstructured(Cow::Borrowed(fixed.as_ref()));
    if std::str::from_utf8(raw).is_ok() || !direct.contains('\u{FFFD}') {
        return direct;
    }
    unstructured(header_bytes_utf8(&fixed))
}

/// Header bytes mail-parser can decode: charset labels of encoded words
/// that it does not know but encoding_rs or a common alias does (Python's
/// `eucgb2312_cn` and `big5_tw`, `cp932`, `latin_1` …) are replaced by the
/// canonical name. Borrowed when there is nothing to replace.
pub(super) fn with_known_charset_labels(raw: &[u8]) -> Cow<'_, [u8]> {
    let mut replacements: Vec<(usize, usize, &'static str)> = Vec::new();
    for at in memchr::memmem::find_iter(raw, b"=?") {
        let start = at + 2;
        let Some(rest) = raw.get(start..) else {
            continue;
        };
        let Some(len) = rest.iter().take(64).position(|&b| b == b'?') else {
            continue;
        };
        let label = rest.get(..len).unwrap_or_default();
        // RFC 2231 allows `charset*language`.
        let label = label.split(|&b| b == b'*').next().unwrap_or(label);
        let Ok(label) = std::str::from_utf8(label) else {
            continue;
        };
        let lower = label.to_ascii_lowercase();
        if mail_parser::decoders::charsets::map::charset_decoder(lower.as_bytes()).is_some() {
            continue;
        }
        if let Some(encoding) = charset_for_label(&lower)
            && encoding != UTF_8
        {
            replacements.push((start, start + label.len(), encoding.name()));
        }
    }
    if replacements.is_empty() {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len() + 16);
    let mut copied = 0;
    for (start, end, name) in replacements {
        out.extend_from_slice(raw.get(copied..start).unwrap_or_default());
        out.extend_from_slice(name.as_bytes());
        copied = end;
    }
    out.extend_from_slice(raw.get(copied..).unwrap_or_default());
    Cow::Owned(out)
}

/// An encoding for a charset label: the WHATWG labels encoding_rs knows,
/// plus the aliases mail software really sends (Python's codec names,
/// Windows code page names, underscores for hyphens).
pub(super) fn charset_for_label(label: &str) -> Option<&'static Encoding> {
    let lower = label.trim().trim_matches(['"', '\'']).to_ascii_lowercase();
    if let Some(encoding) = Encoding::for_label(lower.as_bytes()) {
        return Some(encoding);
    }
    let alias = match lower.as_str() {
        "eucgb2312_cn" | "euc-cn" | "euccn" | "euc_cn" | "gb2312_cn" | "ms936" | "cp936" => "gbk",
        "big5_tw" | "big5-tw" | "cp950" | "ms950" | "big5_hkscs" => "big5",
        "cp932" | "ms932" | "mskanji" | "ms_kanji" | "sjis" | "shift-jis" | "s_jis" => "shift_jis",
        "cp949" | "ms949" | "uhc" | "ks_c_5601" | "ksc5601" | "euc_kr" | "euckr" => "euc-kr",
        "euc_jp" | "eucjp" | "ujis" => "euc-jp",
        "iso2022_jp" | "iso2022jp" | "iso-2022-jp-1" | "iso-2022-jp-2" | "iso-2022-jp-3" => {
            "iso-2022-jp"
        }
        "latin_1" | "latin-1" | "l1" | "iso8859_1" | "8859_1" => "iso-8859-1",
        "koi8_r" => "koi8-r",
        "koi8_u" => "koi8-u",
        other => {
            let hyphenated = other.replace('_', "-");
            return Encoding::for_label(hyphenated.as_bytes());
        }
    };
    Encoding::for_label(alias.as_bytes())
}

fn unstructured(bytes: Cow<'_, [u8]>) -> String {
    // mail-parser drops a value that does not end with a line break.
    let bytes = with_final_newline(bytes);
    match MessageStream::new(&bytes).parse_unstructured() {
        HeaderValue::Text(text) => text.trim().to_owned(),
        HeaderValue::TextList(list) => list.join(" ").trim().to_owned(),
        _ => String::new(),
    }
}

/// The bytes with a trailing `\n`, copied only when it is missing.
pub(super) fn with_final_newline(bytes: Cow<'_, [u8]>) -> Cow<'_, [u8]> {
    if bytes.ends_with(b"\n") {
        bytes
    } else {
        let mut owned = bytes.into_owned();
        owned.push(b'\n');
        Cow::Owned(owned)
    }
}

/// What a part's declared charset means for the corrections below.
enum Declared {
    /// No charset parameter.
    Missing,
    /// UTF-8 under one of its names.
    Utf8,
    /// UTF-16/32/7: never second-guessed (their bytes are not comparable).
    Wide,
    /// A legacy charset mail-parser decodes itself.
    Legacy,
    /// A label mail-parser does not know; encoding_rs may.
    Unknown(&'static Encoding),
    /// A label nobody knows: best effort as UTF-8.
    Unrecognized,
}

fn declared(charset: Option<&str>) -> Declared {
    let Some(label) = charset.map(str::trim).filter(|l| !l.is_empty()) else {
        return Declared::Missing;
    };
    let lower = label.to_ascii_lowercase();
    let lower = lower.trim_matches(['"', '\'']);
    if lower.starts_with("utf-16")
        || lower.starts_with("utf-32")
        || lower.starts_with("utf-7")
        || lower.starts_with("ucs-")
        || lower.starts_with("iso-10646-ucs")
        || matches!(
            lower,
            "unicode" | "unicodefffe" | "unicodefeff" | "csunicode"
        )
    {
        return Declared::Wide;
    }
    if mail_parser::decoders::charsets::map::charset_decoder(lower.as_bytes()).is_some() {
        return Declared::Legacy;
    }
    match charset_for_label(lower) {
        Some(enc) if enc == UTF_8 => Declared::Utf8,
        Some(enc) => Declared::Unknown(enc),
        None => Declared::Unrecognized,
    }
}

/// The text of a text/* part, with mail-parser's charset decoding checked
/// and corrected. `decoded` is what mail-parser produced; `raw_message` is
/// the buffer the part's offsets point into. Borrows `decoded` whenever it
/// is right, which is nearly always.
pub(super) fn part_text<'a>(
    decoded: &'a str,
    part: &MessagePart<'_>,
    raw_message: &[u8],
) -> Cow<'a, str> {
    let charset = part.content_type().and_then(|ct| ct.attribute("charset"));
    let is_html = matches!(part.body, PartType::Html(_));
    match declared(charset) {
        Declared::Wide => Cow::Borrowed(decoded),
        Declared::Legacy => {
            // A legacy decoder only yields non-ASCII from non-ASCII input
            // (or ISO-2022 escapes, which are 7-bit and excluded below).
            if decoded.is_ascii() {
                return Cow::Borrowed(decoded);
            }
            let single_byte = charset
                .and_then(charset_for_label)
                .is_some_and(Encoding::is_single_byte);
            if (single_byte && has_isolated_non_ascii(decoded)) || !may_be_utf8(part, raw_message) {
                return Cow::Borrowed(decoded);
            }
            let bytes = transfer_decoded(part, raw_message);
            if !bytes.is_ascii()
                && let Ok(utf8) = std::str::from_utf8(&bytes)
            {
                // Valid UTF-8 with non-ASCII content is, in practice, never
                // a legacy charset: the label is wrong.
                return Cow::Owned(utf8.to_owned());
            }
            Cow::Borrowed(decoded)
        }
        Declared::Unknown(encoding) => {
            let bytes = transfer_decoded(part, raw_message);
            if std::str::from_utf8(&bytes).is_ok() {
                return Cow::Borrowed(decoded);
            }
            Cow::Owned(encoding.decode_without_bom_handling(&bytes).0.into_owned())
        }
        Declared::Missing | Declared::Utf8 | Declared::Unrecognized => {
            if !decoded.contains('\u{FFFD}') {
                return Cow::Borrowed(decoded);
            }
            let bytes = transfer_decoded(part, raw_message);
            if std::str::from_utf8(&bytes).is_ok() {
                // The replacement characters were in the message itself.
                return Cow::Borrowed(decoded);
            }
            if is_html
                && matches!(declared(charset), Declared::Missing)
                && let Some(encoding) = sniff_meta_charset(&bytes)
                && encoding != UTF_8
            {
                return Cow::Owned(encoding.decode_without_bom_handling(&bytes).0.into_owned());
            }
            if mostly_legacy_8bit(&bytes) {
                Cow::Owned(
                    WINDOWS_1252
                        .decode_without_bom_handling(&bytes)
                        .0
                        .into_owned(),
                )
            } else {
                Cow::Borrowed(decoded)
            }
        }
    }
}

/// True when a non-ASCII character stands between ASCII characters (or
/// the text's ends). Text a single-byte decoder produced maps each byte to
/// one character, so such a character was a lone high byte: the bytes
/// cannot be UTF-8, which needs two or more high bytes in a row. Exact, and
/// far cheaper than decoding the part again; it settles most Western and
/// Central European legacy text ("déjà vu", "Straße").
fn has_isolated_non_ascii(decoded: &str) -> bool {
    let mut previous_ascii = true;
    let mut chars = decoded.chars().peekable();
    while let Some(c) = chars.next() {
        let next_ascii = chars.peek().is_none_or(char::is_ascii);
        if !c.is_ascii() && previous_ascii && next_ascii {
            return true;
        }
        previous_ascii = c.is_ascii();
    }
    false
}

/// How much of an encoded part is decoded to test whether it is UTF-8
/// before the whole part is: legacy text shows non-UTF-8 bytes early.
const UTF8_PROBE_BYTES: usize = 8 * 1024;

/// A cheap first test for [`part_text`]: false when the start of the part
/// already shows bytes that are not UTF-8, so a legacy part (the common
/// case) is not decoded twice.
fn may_be_utf8(part: &MessagePart<'_>, raw_message: &[u8]) -> bool {
    let start = usize::try_from(part.offset_body).unwrap_or(usize::MAX);
    let end = usize::try_from(part.offset_end).unwrap_or(usize::MAX);
    let Some(raw) = raw_message.get(start..end.max(start)) else {
        return false;
    };
    if part.encoding == TransferEncoding::None || raw.len() <= UTF8_PROBE_BYTES {
        return true;
    }
    // Cut the probe at a line end so no encoded unit is split.
    let probe = raw.get(..UTF8_PROBE_BYTES).unwrap_or(raw);
    let probe = match memchr::memrchr(b'\n', probe) {
        Some(nl) => probe.get(..nl + 1).unwrap_or(probe),
        None => return true,
    };
    let (end, bytes) = match part.encoding {
        TransferEncoding::Base64 => MessageStream::new(probe).decode_base64_mime(b""),
        _ => MessageStream::new(probe).decode_quoted_printable_mime(b""),
    };
    if end == usize::MAX || bytes.is_ascii() {
        return true; // inconclusive: test the whole part
    }
    match std::str::from_utf8(&bytes) {
        Ok(_) => true,
        // Only a character cut at the end of the probe is allowed.
        Err(e) => e.error_len().is_none(),
    }
}

/// The part's body bytes after the transfer encoding is undone, before any
/// charset decoding: mail-parser keeps only the decoded text of text
/// parts, so the bytes are decoded again from the raw message with
/// mail-parser's own decoders. Falls back to the raw bytes when the
/// encoding is broken, as mail-parser itself does.
pub(super) fn transfer_decoded<'r>(part: &MessagePart<'_>, raw_message: &'r [u8]) -> Cow<'r, [u8]> {
    let start = usize::try_from(part.offset_body).unwrap_or(usize::MAX);
    let end = usize::try_from(part.offset_end).unwrap_or(usize::MAX);
    let Some(raw) = raw_message.get(start..end.max(start)) else {
        return Cow::Borrowed(&[]);
    };
    let (end, bytes) = match part.encoding {
        TransferEncoding::Base64 => MessageStream::new(raw).decode_base64_mime(b""),
        TransferEncoding::QuotedPrintable => {
            MessageStream::new(raw).decode_quoted_printable_mime(b"")
        }
        TransferEncoding::None => return Cow::Borrowed(raw),
    };
    if end == usize::MAX {
        Cow::Borrowed(raw)
    } else {
        bytes
    }
}

/// True when invalid UTF-8 sequences are at least as common as valid
/// multi-byte ones: the text is 8-bit legacy, not UTF-8 with a few broken
/// bytes (which would turn into mojibake if read as windows-1252).
pub(super) fn mostly_legacy_8bit(bytes: &[u8]) -> bool {
    let mut valid_multibyte = 0usize;
    let mut invalid = 0usize;
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(tail) => {
                valid_multibyte += tail.chars().filter(|c| !c.is_ascii()).count();
                break;
            }
            Err(err) => {
                let (good, bad) = rest.split_at(err.valid_up_to());
                valid_multibyte += std::str::from_utf8(good)
                    .map(|s| s.chars().filter(|c| !c.is_ascii()).count())
                    .unwrap_or(0);
                invalid += 1;
                let skip = err.error_len().unwrap_or(bad.len()).max(1);
                rest = bad.get(skip..).unwrap_or(&[]);
            }
        }
    }
    invalid >= valid_multibyte
}

/// Bytes of unknown charset as text: UTF-8 when they are (mostly) UTF-8,
/// windows-1252 otherwise. For free text such as a returned message.
pub(super) fn bytes_to_text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) if mostly_legacy_8bit(bytes) => WINDOWS_1252.decode_without_bom_handling(bytes).0,
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// The charset named by a `<meta charset=…>` or `<meta http-equiv
/// content="…; charset=…">` near the start of an HTML document.
fn sniff_meta_charset(html: &[u8]) -> Option<&'static Encoding> {
    let head = html.get(..META_SNIFF_BYTES).unwrap_or(html);
    let lower = head.to_ascii_lowercase();
    let needle = b"charset=";
    let at = lower.windows(needle.len()).position(|w| w == needle)?;
    let rest = lower.get(at + needle.len()..)?;
    let rest = rest
        .strip_prefix(b"\"")
        .or_else(|| rest.strip_prefix(b"'"))
        .unwrap_or(rest);
    let label: Vec<u8> = rest
        .iter()
        .copied()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        .collect();
    Encoding::for_label(&label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_unfolds_and_decodes() {
        assert_eq!(
            header_text(b" =?utf-8?q?J=C3=B6rg?= folded\r\n  line\r\n"),
            "Jörg folded line"
        );
        assert_eq!(header_text(b" Gr\xfc\xdfe\n"), "Grüße");
        assert_eq!(header_text(b" no newline at end"), "no newline at end");
        assert_eq!(
            header_text(b" raw UTF-8 \xc3\xa9t\xc3\xa9\n"),
            "raw UTF-8 été"
        );
    }

    #[test]
    fn legacy_detection_tolerates_a_broken_byte_in_utf8() {
        assert!(mostly_legacy_8bit(b"caf\xe9 cr\xe8me"));
        assert!(!mostly_legacy_8bit("café crème déjà vu ".as_bytes()));
        let mut mixed = "café crème déjà vu ".as_bytes().to_vec();
        mixed.push(0xff);
        assert!(!mostly_legacy_8bit(&mixed));
    }

    #[test]
    fn isolated_high_characters_rule_out_utf8() {
        assert!(has_isolated_non_ascii("déjà vu"));
        assert!(has_isolated_non_ascii("é"));
        // Two high characters in a row could be UTF-8: inconclusive.
        assert!(!has_isolated_non_ascii("Grüße"));
        assert!(!has_isolated_non_ascii("GrÃ¼ÃŸe")); // UTF-8 read as windows-1252
        assert!(!has_isolated_non_ascii("plain ASCII"));
    }

    #[test]
    fn meta_charset_is_sniffed() {
        let html = b"<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=KOI8-R\"></head>";
        assert_eq!(sniff_meta_charset(html), Some(encoding_rs::KOI8_R));
        assert_eq!(sniff_meta_charset(b"<p>no meta</p>"), None);
    }
}
