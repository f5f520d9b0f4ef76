//! Top-level header fields: the ordered list, addresses, ids and dates.

use mail_parser::parsers::MessageStream;
use mail_parser::{Addr, Header, HeaderName, HeaderValue};

use std::borrow::Cow;

use super::text::{header_bytes_utf8, header_text, with_final_newline, with_known_charset_labels};
use crate::mail::{Address, HeaderField};

/// The raw bytes of a header's value (after the colon, up to and including
/// the line break), or empty when the offsets are out of range.
fn value_bytes<'r>(header: &Header<'_>, raw: &'r [u8]) -> &'r [u8] {
    let start = usize::try_from(header.offset_start).unwrap_or(usize::MAX);
    let end = usize::try_from(header.offset_end).unwrap_or(usize::MAX);
    raw.get(start..end.max(start)).unwrap_or(&[])
}

/// Every header as written (name) and decoded (value), in order.
pub(super) fn fields(headers: &[Header<'_>], raw: &[u8]) -> Vec<HeaderField> {
    headers
        .iter()
        .map(|h| {
            let start = usize::try_from(h.offset_field).unwrap_or(usize::MAX);
            let end = usize::try_from(h.offset_start).unwrap_or(usize::MAX);
            let name = raw
                .get(start..end.max(start))
                .map(|b| b.strip_suffix(b":").unwrap_or(b))
                .map(|b| String::from_utf8_lossy(b).trim().to_owned())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| h.name.as_str().to_owned());
            HeaderField {
                name,
                value: header_text(value_bytes(h, raw)),
            }
        })
        .collect()
}

/// The addresses of every header called `name`, groups flattened. Values
/// with raw 8-bit bytes that are not UTF-8 are parsed again as
/// windows-1252, so a Latin-1 display name survives.
pub(super) fn addresses(headers: &[Header<'_>], raw: &[u8], name: &HeaderName<'_>) -> Vec<Address> {
    let mut out = Vec::new();
    for header in headers.iter().filter(|h| &h.name == name) {
        let bytes = value_bytes(header, raw);
        let garbled = header.value.as_address().is_some_and(|a| {
            a.iter().any(|addr| {
                addr.name.as_deref().is_some_and(|n| n.contains('\u{FFFD}'))
                    || addr
                        .address
                        .as_deref()
                        .is_some_and(|e| e.contains('\u{FFFD}'))
            })
        });
        if garbled {
            let labelled = with_known_charset_labels(bytes);
            let fixed = with_final_newline(Cow::Owned(header_bytes_utf8(&labelled).into_owned()));
            let value = MessageStream::new(&fixed).parse_address();
            push_addresses(&value, &mut out);
        } else {
            push_addresses(&header.value, &mut out);
        }
    }
    out
}

fn push_addresses(value: &HeaderValue<'_>, out: &mut Vec<Address>) {
    let Some(address) = value.as_address() else {
        return;
    };
    out.extend(address.iter().filter_map(to_address));
}

fn to_address(addr: &Addr<'_>) -> Option<Address> {
    let email = match addr
        .address
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        Some(email) => email,
        // A bare local name (`From: mailer-daemon`, legal in RFC 822) is
        // read by mail-parser as a display name; it is the address.
        None => addr
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty() && !n.contains(char::is_whitespace))?,
    };
    let name = addr
        .name
        .as_deref()
        .map(|n| n.trim().trim_matches('"').trim())
        .filter(|n| !n.is_empty() && *n != email)
        .map(str::to_owned);
    Some(Address {
        name,
        email: email.to_owned(),
    })
}

/// Message ids from an id header (Message-ID, In-Reply-To, References) as
/// mail-parser read them: without angle brackets, with the garbage some
/// clients put between ids skipped.
pub(super) fn ids(value: Option<&HeaderValue<'_>>) -> Vec<String> {
    let clean = |id: &str| -> Option<String> {
        let id = id
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .trim();
        (!id.is_empty()).then(|| id.to_owned())
    };
    match value {
        Some(HeaderValue::Text(id)) => clean(id).into_iter().collect(),
        Some(HeaderValue::TextList(list)) => list.iter().filter_map(|id| clean(id)).collect(),
        _ => Vec::new(),
    }
}

/// The ids of the first header called `name`.
pub(super) fn id_header(headers: &[Header<'_>], name: &HeaderName<'_>) -> Vec<String> {
    ids(headers.iter().find(|h| &h.name == name).map(|h| &h.value))
}

/// Return-Path: `None` when absent, `Some("")` for the null path `<>`, the
/// address otherwise. The first one counts: the final MTA puts it on top.
pub(super) fn return_path(fields: &[HeaderField]) -> Option<String> {
    let value = fields
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case("return-path"))?
        .value
        .trim();
    let inner = match value.split_once('<') {
        Some((_, rest)) => rest.split_once('>').map_or(rest, |(inner, _)| inner),
        None => value,
    };
    // A source route (`<@relay:user@host>`) ends with the address.
    let inner = inner.rsplit_once(':').map_or(inner, |(_, addr)| addr);
    Some(inner.trim().to_owned())
}

/// The Date header as a timestamp; `None` when absent or not a real date.
pub(super) fn date(value: Option<&HeaderValue<'_>>) -> Option<jiff::Timestamp> {
    let dt = value?.as_datetime()?;
    if !dt.is_valid() {
        return None;
    }
    jiff::Timestamp::from_second(dt.to_timestamp()).ok()
}

/// The first language tag of Content-Language, lowercased.
pub(super) fn content_language(fields: &[HeaderField]) -> Option<String> {
    let value = &fields
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case("content-language"))?
        .value;
    value
        .split([',', ' ', ';'])
        .map(str::trim)
        .find(|tag| !tag.is_empty())
        .filter(|tag| tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .map(str::to_ascii_lowercase)
}
