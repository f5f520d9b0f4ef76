//! Delivery reports: what a bounce says about the message it returns.
//!
//! Standard reports (RFC 3464 `message/delivery-status`, RFC 8098
//! disposition notifications, RFC 5965 feedback reports) are read field by
//! field. Non-standard bounces (qmail, old Exim, Exchange and friends in
//! plain text) are read with a few layout rules that hold across MTAs: the
//! returned message follows a marker line, its headers carry a
//! `Message-ID:`, and the failed addresses stand at the start of a line
//! above it. Parse only extracts; `classify` decides what is a bounce.
//!
//! Hand-written: mail-parser has no report parser and no maintained crate
//! reads RFC 3464 plus the legacy layouts.

use std::borrow::Cow;

use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders, PartType};

use super::text::{bytes_to_text, transfer_decoded};
use crate::mail::{Address, DeliveryReport, HeaderField, ReportRecipient};

/// Text parts longer than this are only read up to here when looking for
/// returned headers: a bounce's report and returned headers come first.
const SCAN_LIMIT: usize = 256 * 1024;
/// At most this many addresses are taken from free text, so a pasted
/// address book cannot flood the bounce record.
const MAX_TEXT_RECIPIENTS: usize = 20;

/// Lines that introduce the returned message in non-standard bounces,
/// lowercased. Everything after one is the returned message, not the report.
const RETURNED_MARKERS: &[&str] = &[
    "below this line is a copy of the message",
    "this is a copy of the message",
    "original message follows",
    "original message as received",
    "original message header",
    "original message headers",
    "original message --",
    "returned message",
    "unsent message below",
    "message header follows",
    "message headers follow",
    "original message header follows",
    "attachment is a copy of the message",
    "headers of the original message",
    "here is a copy of the first part of the message",
    "this is a copy of the headers",
    "message text follows",
    "text of the returned message",
    "undelivered message follows",
    "--- original message",
    "----- original message",
    "------ original message",
    "copy of the original message",
];

/// Words of delay warnings (the MTA keeps trying), lowercased.
const DELAY_WORDS: &[&str] = &[
    "delayed",
    "will retry",
    "will be retried",
    "still trying",
    "still being retried",
    "not yet been delivered",
    "delivery attempts will continue",
    "will continue to try",
    "this is a warning",
    "warning only",
];

/// Local parts of the addresses mail systems send bounces from.
pub(crate) const DAEMON_LOCAL_PARTS: &[&str] = &[
    "mailer-daemon",
    "mailer_daemon",
    "mailerdaemon",
    "mail-daemon",
    "maildaemon",
    "postmaster",
    "post_master",
    "mdaemon",
    "mail.delivery.system",
    "mail-delivery-system",
    "mailerd",
    "mmdf",
];

/// Subjects mail systems give bounces and delay warnings, lowercased.
/// Matched at the start of the subject (after a list tag such as
/// `[list]`), never after a `Fwd:` or `Re:`: a person forwarding a bounce
/// or discussing one is not a bounce.
const BOUNCE_SUBJECT_PREFIXES: &[&str] = &[
    "undelivered mail",
    "undeliverable",
    "undelivered",
    "non-delivery",
    "non delivery",
    "nondeliverable",
    "delivery status notification",
    "delivery notification",
    "delivery failure",
    "delivery failed",
    "delivery problem",
    "delivery report",
    "delivery status",
    "delivery delayed",
    "delivery has failed",
    "delivery warning",
    "failure notice",
    "failure delivery",
    "failed mail",
    "failed delivery",
    "mail delivery",
    "mail could not be delivered",
    "mail not delivered",
    "mail system error",
    "mail error",
    "mail failed",
    "mail returned",
    "message not delivered",
    "message delivery",
    "message delayed",
    "message undeliverable",
    "delayed mail",
    "returned mail",
    "returned message",
    "return to sender",
    "returned to sender",
    "notice of delivery failure",
    "permanent delivery failure",
    "permanent error",
    "warning: could not send message",
    "warning: message",
    "could not send message",
    "unable to deliver",
    "email bounce",
    "bounce notification",
    "unzustellbar",
    "nicht zustellbar",
    "non remis",
    "non recapitable",
    "no se puede entregar",
    "onbestelbaar",
    "impossibile recapitare",
    "there was an error sending your mail",
    "mail delivery failure",
    "メールエラー",
    "配信エラー",
    "配送エラー",
    "送信エラー",
    "不達",
    "未達",
    "エラーメール",
    "退信",
    "系统退信",
    "投递失败",
    "邮件退回",
    "반송",
    "недоставленное",
    "не доставлено",
    "сообщение не доставлено",
];

/// Phrases that mark a bounce anywhere in its subject, lowercased.
const BOUNCE_SUBJECT_PHRASES: &[&str] = &[
    "could not be delivered",
    "couldn't be delivered",
    "was not delivered",
    "has not yet been delivered",
    "delivery status notification",
    "undeliverable mail",
    "returned mail",
    "failure notice",
];

/// True when a subject is one mail systems give to bounces.
pub(crate) fn is_bounce_subject(subject: &str) -> bool {
    let lower = subject.trim().to_lowercase();
    // Skip a list tag such as "[support] " that a list put in front.
    let lower = match lower.strip_prefix('[').and_then(|r| r.split_once(']')) {
        Some((_, rest)) => rest.trim_start().to_owned(),
        None => lower,
    };
    BOUNCE_SUBJECT_PREFIXES.iter().any(|p| lower.starts_with(p))
        || (!starts_with_reply_prefix(&lower)
            && BOUNCE_SUBJECT_PHRASES.iter().any(|p| lower.contains(p)))
}

/// True for subjects of replies and forwards ("Re:", "Fwd:", "AW:", …).
pub(crate) fn starts_with_reply_prefix(lower: &str) -> bool {
    let Some((head, _)) = lower.split_once(':') else {
        return false;
    };
    matches!(
        head.trim(),
        "re" | "fw"
            | "fwd"
            | "aw"
            | "wg"
            | "sv"
            | "vs"
            | "tr"
            | "rif"
            | "r"
            | "i"
            | "enc"
            | "odp"
            | "antw"
            | "doorst"
            | "ynt"
            | "res"
            | "rv"
            | "回复"
            | "答复"
            | "转发"
            | "返信"
            | "転送"
    )
}

/// What the report extraction needs from the already parsed top level.
pub(super) struct Envelope<'a> {
    pub fields: &'a [HeaderField],
    pub from: Option<&'a Address>,
    pub sender: Option<&'a Address>,
    pub to: &'a [Address],
    pub return_path: Option<&'a str>,
    pub subject: &'a str,
}

/// True when the address's local part is one mail systems bounce from.
pub(crate) fn is_daemon_address(email: &str) -> bool {
    let local = email
        .rsplit_once('@')
        .map_or(email, |(local, _)| local)
        .trim()
        .trim_matches(['"', '<', '>'])
        .to_ascii_lowercase();
    DAEMON_LOCAL_PARTS.contains(&local.as_str())
}

/// The delivery report of a message, if it has the shape of one.
pub(super) fn extract(msg: &Message<'_>, raw: &[u8], env: &Envelope<'_>) -> Option<DeliveryReport> {
    let mut report = DeliveryReport::default();
    let root_type = msg.root_part().content_type();
    let is_report = root_type.is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
    });
    if is_report {
        report.report_type = root_type
            .and_then(|ct| ct.attribute("report-type"))
            .map(|t| t.trim().to_ascii_lowercase())
            .unwrap_or_default();
    }

    let mut saw_report_part = false;
    for part in &msg.parts {
        let Some(kind) = report_part_kind(part) else {
            continue;
        };
        saw_report_part = true;
        if report.report_type.is_empty() {
            report.report_type = kind.to_owned();
        }
        let bytes = part_bytes(part, raw);
        read_status_fields(&bytes_to_text(&bytes), &mut report);
    }

    let failed_header = env
        .fields
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case("x-failed-recipients"))
        .map(|f| f.value.as_str())
        .collect::<Vec<_>>();

    // An SES notification is recognized by its body alone: SNS sends it
    // from an ordinary address with an ordinary subject.
    let first_plain = msg.parts.iter().find_map(|p| match &p.body {
        PartType::Text(t) => Some(t.as_ref()),
        _ => None,
    });
    if let Some(ses) = first_plain.and_then(ses_notification) {
        return Some(ses);
    }

    // The shape of a bounce is in the envelope and headers; a body marker
    // alone would also match every Outlook reply ("-----Original
    // Message-----").
    let bounce_shaped = is_report
        || saw_report_part
        || !failed_header.is_empty()
        || env.return_path == Some("")
        || env.from.is_some_and(|a| is_daemon_address(&a.email))
        || env.sender.is_some_and(|a| is_daemon_address(&a.email))
        || is_bounce_subject(env.subject);
    if !bounce_shaped {
        return None;
    }

    returned_message_ids(msg, raw, &mut report);

    if report.recipients.is_empty() {
        nested_report(msg, &mut report);
    }
    let first_text = first_text_part(msg, raw);
    if report.recipients.is_empty()
        && let Some(text) = first_text.as_deref()
        && (contains_ignore_case(text, "final-recipient:")
            || contains_ignore_case(text, "original-recipient:"))
    {
        // Some MTAs put the RFC 3464 fields in the plain-text part.
        read_status_fields(text, &mut report);
    }
    if report.recipients.is_empty() {
        let mut from_text = DeliveryReport::default();
        if let Some(text) = first_text.as_deref() {
            recipients_from_text(before_returned_message(text), env, &mut from_text);
        }
        let listed: Vec<&str> = failed_header
            .iter()
            .flat_map(|v| v.split([',', ';', ' ']))
            .map(|a| a.trim().trim_matches(['<', '>']))
            .filter(|a| a.contains('@'))
            .collect();
        if listed.is_empty() {
            report.recipients = from_text.recipients;
        } else {
            // X-Failed-Recipients is authoritative for who failed; the text
            // may still say how.
            for address in listed {
                match from_text
                    .recipients
                    .iter()
                    .find(|r| r.address.eq_ignore_ascii_case(address))
                {
                    Some(r) => push_recipient(
                        &mut report,
                        address,
                        &r.action,
                        &r.status,
                        r.diagnostic.clone(),
                    ),
                    None => push_recipient(&mut report, address, "failed", "", None),
                }
            }
        }
    }
    if report.original_message_ids.is_empty() {
        for text in text_parts(msg, raw) {
            message_id_lines(&text, &mut report.original_message_ids);
        }
    }

    let found = !report.recipients.is_empty() || !report.original_message_ids.is_empty();
    (is_report || saw_report_part || found).then_some(report)
}

/// An Amazon SES bounce notification delivered by SNS e-mail: a JSON
/// document instead of a report. Sisimai and others treat it as a bounce
/// format; the JSON states recipients, actions and statuses exactly.
fn ses_notification(text: &str) -> Option<DeliveryReport> {
    let head = text.trim_start();
    if !head.starts_with('{') || !head.contains("notificationType") {
        return None;
    }
    let value: serde_json::Value = serde_json::Deserializer::from_str(head)
        .into_iter::<serde_json::Value>()
        .next()?
        .ok()?;
    // SNS may wrap the SES document as a JSON string in "Message".
    let value = match value.get("Message").and_then(|m| m.as_str()) {
        Some(inner) => serde_json::from_str::<serde_json::Value>(inner).ok()?,
        None => value,
    };
    if value.get("notificationType")?.as_str()? != "Bounce" {
        return None;
    }
    let mut report = DeliveryReport::default();
    let str_of = |v: &serde_json::Value, key: &str| {
        v.get(key)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let recipients = value
        .get("bounce")
        .and_then(|b| b.get("bouncedRecipients"))
        .and_then(|r| r.as_array());
    for r in recipients.into_iter().flatten() {
        let address = str_of(r, "emailAddress");
        let diagnostic = strip_type(&str_of(r, "diagnosticCode"));
        let action = match str_of(r, "action") {
            a if a.is_empty() => "failed".to_owned(),
            a => a.to_ascii_lowercase(),
        };
        push_recipient(
            &mut report,
            &address,
            &action,
            &str_of(r, "status"),
            (!diagnostic.is_empty()).then_some(diagnostic),
        );
    }
    let common_id = value
        .get("mail")
        .and_then(|m| m.get("commonHeaders"))
        .map(|h| str_of(h, "messageId"))
        .unwrap_or_default();
    push_unique(&mut report.original_message_ids, clean_id(&common_id));
    Some(report)
}

/// A report wrapped in a message/rfc822 part (some gateways forward the
/// DSN as an attachment of a plain message): its recipients and ids.
fn nested_report(msg: &Message<'_>, report: &mut DeliveryReport) {
    for part in &msg.parts {
        let PartType::Message(nested) = &part.body else {
            continue;
        };
        let nested_raw = nested.raw_message.as_ref();
        for inner in &nested.parts {
            if report_part_kind(inner).is_some() {
                let bytes = part_bytes(inner, nested_raw);
                read_status_fields(&bytes_to_text(&bytes), report);
            }
        }
        if !report.recipients.is_empty() {
            // The wrapper's own returned message is the report itself.
            if let Some(own) = nested.message_id().map(clean_id) {
                report.original_message_ids.retain(|id| *id != own);
            }
            returned_message_ids(nested, nested_raw, report);
            return;
        }
    }
}

/// The report type a part carries, when it is the machine-readable part of
/// a report.
fn report_part_kind(part: &MessagePart<'_>) -> Option<&'static str> {
    let ct = part.content_type()?;
    if !ct.ctype().eq_ignore_ascii_case("message") {
        return None;
    }
    let sub = ct.subtype()?.to_ascii_lowercase();
    match sub.as_str() {
        "delivery-status" | "global-delivery-status" => Some("delivery-status"),
        "disposition-notification" | "global-disposition-notification" => {
            Some("disposition-notification")
        }
        "feedback-report" => Some("feedback-report"),
        _ => None,
    }
}

/// A part's content as bytes, whatever mail-parser made of it.
fn part_bytes<'p>(part: &'p MessagePart<'_>, raw: &'p [u8]) -> Cow<'p, [u8]> {
    match &part.body {
        PartType::Text(t) | PartType::Html(t) => Cow::Borrowed(t.as_bytes()),
        PartType::Binary(b) | PartType::InlineBinary(b) => Cow::Borrowed(b.as_ref()),
        PartType::Message(_) | PartType::Multipart(_) => transfer_decoded(part, raw),
    }
}

/// Reads RFC 3464 / RFC 8098 fields: one block per recipient, blank lines
/// between blocks, continuation lines folded.
fn read_status_fields(text: &str, report: &mut DeliveryReport) {
    /// The recipient block being read: RFC 3464 allows the fields in any
    /// order, so the recipient is pushed only at the block's end.
    #[derive(Default)]
    struct Pending {
        original: Option<String>,
        final_: Option<String>,
        action: String,
        status: String,
        diagnostic: Option<String>,
    }
    fn flush(pending: &mut Pending, report: &mut DeliveryReport) {
        let p = std::mem::take(pending);
        // Final-Recipient is the address the MTA tried; when it is not an
        // Internet address (X.400, a gateway's local name), the original
        // one is what our side knows.
        let address = match (p.final_, p.original) {
            (Some(f), Some(o)) if !is_email(&f) && is_email(&o) => o,
            (Some(f), _) => f,
            (None, Some(o)) => o,
            (None, None) => String::new(),
        };
        if !address.is_empty() {
            push_recipient(report, &address, &p.action, &p.status, p.diagnostic);
        }
    }

    let mut pending = Pending::default();
    for (name, value) in unfolded_fields(text) {
        let Some(name) = name else {
            flush(&mut pending, report);
            continue;
        };
        match name.to_ascii_lowercase().as_str() {
            // Either order occurs (RFC 3464 puts Original first, Postfix
            // Final first); a repeated field starts the next recipient.
            "original-recipient" | "x-actual-recipient" => {
                if pending.original.is_some() {
                    flush(&mut pending, report);
                }
                pending.original = Some(strip_type(&value));
            }
            "final-recipient" => {
                if pending.final_.is_some() {
                    flush(&mut pending, report);
                }
                pending.final_ = Some(strip_type(&value));
            }
            "action" => pending.action = value.trim().to_ascii_lowercase(),
            "status" => {
                pending.status = value
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .trim_matches(['(', ')', ';'])
                    .to_owned();
            }
            "diagnostic-code" => {
                let diagnostic = strip_type(&value);
                pending.diagnostic = (!diagnostic.is_empty()).then_some(diagnostic);
            }
            "original-message-id" | "x-original-message-id" => {
                for id in ids_in(&value) {
                    push_unique(&mut report.original_message_ids, id);
                }
            }
            _ => {}
        }
    }
    flush(&mut pending, report);
}

/// `(Some(name), value)` per field and `(None, "")` per blank line, with
/// continuation lines joined to their field.
fn unfolded_fields(text: &str) -> Vec<(Option<String>, String)> {
    let mut out: Vec<(Option<String>, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            out.push((None, String::new()));
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((Some(_), value)) = out.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        match line.split_once(':') {
            Some((name, value))
                if !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                out.push((Some(name.to_owned()), value.trim().to_owned()));
            }
            // Free text inside the fields (some MTAs add it): not a field,
            // and not a block separator either.
            _ => {}
        }
    }
    out
}

/// `rfc822; user@example.com` → `user@example.com`; `smtp; 550 …` → `550 …`.
fn strip_type(value: &str) -> String {
    let value = value.trim();
    let rest = match value.split_once(';') {
        Some((kind, rest)) if !kind.contains(' ') && kind.len() <= 16 => rest,
        _ => value,
    };
    rest.trim().trim_matches(['<', '>']).trim().to_owned()
}

fn push_recipient(
    report: &mut DeliveryReport,
    address: &str,
    action: &str,
    status: &str,
    diagnostic: Option<String>,
) {
    let address = address.trim();
    if report
        .recipients
        .iter()
        .any(|r| r.address.eq_ignore_ascii_case(address))
    {
        return;
    }
    report.recipients.push(ReportRecipient {
        address: address.to_owned(),
        action: action.to_owned(),
        status: status.to_owned(),
        diagnostic,
    });
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if !item.is_empty() && !list.contains(&item) {
        list.push(item);
    }
}

/// Message-IDs of returned messages: message/rfc822 parts and header-only
/// parts (text/rfc822-headers and friends).
fn returned_message_ids(msg: &Message<'_>, raw: &[u8], report: &mut DeliveryReport) {
    for part in &msg.parts {
        if let PartType::Message(nested) = &part.body {
            if let Some(id) = nested.message_id() {
                push_unique(&mut report.original_message_ids, clean_id(id));
            }
            continue;
        }
        let Some(ct) = part.content_type() else {
            continue;
        };
        let sub = ct.subtype().unwrap_or_default().to_ascii_lowercase();
        let header_only =
            matches!(
                sub.as_str(),
                "rfc822-headers" | "global-headers" | "rfc822" | "global"
            ) && matches!(ct.ctype().to_ascii_lowercase().as_str(), "text" | "message");
        if !header_only {
            continue;
        }
        let bytes = part_bytes(part, raw);
        if let Some(id) = MessageParser::new()
            .parse_headers(bytes.as_ref())
            .and_then(|m| m.message_id().map(clean_id))
        {
            push_unique(&mut report.original_message_ids, id);
        }
    }
}

fn clean_id(id: &str) -> String {
    id.trim().trim_matches(['<', '>']).trim().to_owned()
}

/// Ids in angle brackets, or the bare token when there are none.
fn ids_in(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some((_, after)) = rest.split_once('<') {
        let Some((inner, tail)) = after.split_once('>') else {
            break;
        };
        let inner = inner.trim();
        if !inner.is_empty() && !inner.contains(char::is_whitespace) {
            out.push(inner.to_owned());
        }
        rest = tail;
    }
    if out.is_empty() {
        let token = value.trim();
        if token.contains('@') && !token.contains(char::is_whitespace) {
            out.push(token.to_owned());
        }
    }
    out
}

/// The decoded text of the top-level text/plain parts (not of nested
/// messages), up to [`SCAN_LIMIT`] bytes each.
fn text_parts<'m>(msg: &'m Message<'_>, raw: &'m [u8]) -> impl Iterator<Item = Cow<'m, str>> + 'm {
    msg.parts.iter().filter_map(move |part| match &part.body {
        PartType::Text(text) => {
            let text = super::text::part_text(text, part, raw);
            Some(truncate(text, SCAN_LIMIT))
        }
        _ => None,
    })
}

/// The first text/plain part, or the first HTML part as rough text for
/// bounces that only have HTML (Exchange 5.5, some Chinese MTAs).
fn first_text_part<'m>(msg: &'m Message<'_>, raw: &'m [u8]) -> Option<Cow<'m, str>> {
    text_parts(msg, raw).next().or_else(|| {
        msg.parts.iter().find_map(|part| match &part.body {
            PartType::Html(html) => {
                let html = super::text::part_text(html, part, raw);
                let html = truncate(html, SCAN_LIMIT);
                // mail-parser's converter: fast, and tags are all that
                // must go for the line rules below.
                Some(Cow::Owned(mail_parser::decoders::html::html_to_text(&html)))
            }
            _ => None,
        })
    })
}

fn truncate(text: Cow<'_, str>, limit: usize) -> Cow<'_, str> {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    match text {
        Cow::Borrowed(s) => Cow::Borrowed(s.get(..end).unwrap_or(s)),
        Cow::Owned(s) => Cow::Owned(s.get(..end).unwrap_or(&s).to_owned()),
    }
}

/// The text before the returned message: up to a marker line, or up to
/// the first unindented header line that starts a header block.
fn before_returned_message(text: &str) -> &str {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let lower = line.trim().to_ascii_lowercase();
        let is_marker = RETURNED_MARKERS.iter().any(|m| lower.contains(m));
        let starts_headers = [
            "return-path:",
            "received:",
            "message-id:",
            "dkim-signature:",
        ]
        .iter()
        .any(|h| lower.starts_with(h))
            && !line.starts_with([' ', '\t'])
            && offset > 0;
        if is_marker || starts_headers {
            return text.get(..offset).unwrap_or(text);
        }
        offset += line.len();
    }
    text
}

/// `Message-ID:` lines (also quoted with `>`) anywhere in the text.
fn message_id_lines(text: &str, ids: &mut Vec<String>) {
    for line in text.lines() {
        let line = line.trim_start_matches(|c: char| c == '>' || c.is_whitespace());
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("message-id") {
            for id in ids_in(value) {
                push_unique(ids, id);
            }
        }
    }
}

/// Failed addresses named at the start of a line in the report text, or in
/// an SMTP transcript's `RCPT TO:`. Falls back to any address in the report
/// text that is not the bounce's own sender or recipient.
fn recipients_from_text(section: &str, env: &Envelope<'_>, report: &mut DeliveryReport) {
    let own: Vec<String> = env
        .from
        .into_iter()
        .chain(env.sender)
        .chain(env.to.iter())
        .map(Address::key)
        .chain(env.return_path.map(str::to_ascii_lowercase))
        .collect();
    let wanted = |addr: &str| {
        let key = addr.to_ascii_lowercase();
        !own.contains(&key) && !is_daemon_address(&key)
    };
    let lower_all = section.to_ascii_lowercase();
    let subject = env.subject.to_ascii_lowercase();
    let delayed = DELAY_WORDS.iter().any(|w| lower_all.contains(w)) || subject.contains("delay");
    let action = if delayed { "delayed" } else { "failed" };

    let lines: Vec<&str> = section.lines().collect();
    let mut strong: Vec<(String, usize)> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim();
        let lower = trimmed.to_ascii_lowercase();
        let candidate = if let Some(at) = lower.find("rcpt to:") {
            trimmed
                .get(at + "rcpt to:".len()..)
                .and_then(|rest| emails_in(rest).into_iter().next())
        } else {
            first_token_email(trimmed)
        };
        if let Some(addr) = candidate
            && wanted(&addr)
            && !strong.iter().any(|(a, _)| a.eq_ignore_ascii_case(&addr))
        {
            strong.push((addr, i));
        }
    }
    if strong.is_empty() {
        for (i, line) in lines.iter().enumerate() {
            // Exchange repeats the original's To/Cc/From above the failure.
            let first = line
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            if matches!(
                first.as_str(),
                "to:"
                    | "cc:"
                    | "bcc:"
                    | "from:"
                    | "sent:"
                    | "subject:"
                    | "date:"
                    | "mail"
                    | "mail from:"
            ) {
                continue;
            }
            for addr in emails_in(line) {
                if wanted(&addr) && !strong.iter().any(|(a, _)| a.eq_ignore_ascii_case(&addr)) {
                    strong.push((addr, i));
                }
            }
        }
    }
    for (addr, i) in strong.into_iter().take(MAX_TEXT_RECIPIENTS) {
        let context: Vec<&str> = lines.iter().skip(i).take(6).copied().collect();
        let status = context
            .iter()
            .find_map(|l| status_code_in(l))
            .unwrap_or_default();
        let diagnostic = lines
            .iter()
            .skip(i)
            .take(4)
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let diagnostic = (!diagnostic.is_empty()).then_some(diagnostic);
        push_recipient(report, &addr, action, &status, diagnostic);
    }
}

/// The address a line starts with (`<a@b>:`, `a@b:`, `a@b on <date>`).
fn first_token_email(line: &str) -> Option<String> {
    let first = line.split_whitespace().next()?;
    let token = first.trim_end_matches([':', ',', ';', '.']);
    let token = token
        .strip_prefix('<')
        .map_or(token, |t| t.trim_end_matches('>'));
    let token = token.trim_matches(['"', '\'']);
    is_email(token).then(|| token.to_owned())
}

/// Every e-mail address in a line of text.
fn emails_in(line: &str) -> Vec<String> {
    let is_local = |c: char| c.is_ascii_alphanumeric() || "._%+-=!#$&'*/?^`{|}~".contains(c);
    let is_domain = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-';
    let mut out = Vec::new();
    for (at, _) in line.match_indices('@') {
        let (Some(before), Some(after)) = (line.get(..at), line.get(at + 1..)) else {
            continue;
        };
        let local_len = before
            .chars()
            .rev()
            .take_while(|&c| is_local(c))
            .map(char::len_utf8)
            .sum::<usize>();
        let domain_len = after
            .chars()
            .take_while(|&c| is_domain(c))
            .map(char::len_utf8)
            .sum::<usize>();
        let local = before.get(before.len() - local_len..).unwrap_or_default();
        let domain = after.get(..domain_len).unwrap_or_default();
        // Gateways write `SMTP=user@host` or `rfc822=user@host`.
        let local = match local.rsplit_once('=') {
            Some((kind, addr)) if kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => {
                addr
            }
            _ => local,
        };
        let local = local.trim_start_matches(['.', '=', '\'', '/']);
        let domain = domain.trim_end_matches(['.', '-']);
        let addr = format!("{local}@{domain}");
        if is_email(&addr) && !out.contains(&addr) {
            out.push(addr);
        }
    }
    out
}

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !local.contains(char::is_whitespace)
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

/// An enhanced status code (`5.1.1`, `#4.4.1`) in a line.
pub(crate) fn status_code_in(line: &str) -> Option<String> {
    line.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map(|t| t.trim_matches('.'))
        .find(|t| {
            let mut parts = t.split('.');
            let (Some(class), Some(subject), Some(detail), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return false;
            };
            matches!(class, "2" | "4" | "5")
                && (1..=3).contains(&subject.len())
                && (1..=3).contains(&detail.len())
        })
        .map(str::to_owned)
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_per_recipient() {
        let text = "Reporting-MTA: dns; mx.example.net\n\
                    Arrival-Date: Mon, 1 Jan 2024 00:00:00 +0000\n\
                    \n\
                    Final-Recipient: rfc822; gone@example.org\n\
                    Original-Recipient: rfc822;Gone@Example.org\n\
                    Action: failed\n\
                    Status: 5.1.1\n\
                    Diagnostic-Code: smtp; 550 5.1.1 <gone@example.org>: Recipient\n  address rejected\n\
                    \n\
                    Final-Recipient: rfc822; slow@example.org\n\
                    Action: delayed\n\
                    Status: 4.4.1 (connection timed out)\n";
        let mut report = DeliveryReport::default();
        read_status_fields(text, &mut report);
        assert_eq!(report.recipients.len(), 2, "{report:?}");
        let first = report.recipients.first().cloned().unwrap_or_default();
        assert_eq!(first.address, "gone@example.org");
        assert_eq!(first.action, "failed");
        assert_eq!(first.status, "5.1.1");
        assert_eq!(
            first.diagnostic.as_deref(),
            Some("550 5.1.1 <gone@example.org>: Recipient address rejected")
        );
        let second = report.recipients.get(1).cloned().unwrap_or_default();
        assert_eq!(
            (second.action.as_str(), second.status.as_str()),
            ("delayed", "4.4.1")
        );
    }

    #[test]
    fn status_codes_are_found_in_text() {
        assert_eq!(status_code_in(". (#5.5.0)").as_deref(), Some("5.5.0"));
        assert_eq!(
            status_code_in("550 5.1.1 user unknown").as_deref(),
            Some("5.1.1")
        );
        assert_eq!(status_code_in("version 1.2.3 of 10.0.0.1"), None);
    }

    #[test]
    fn addresses_are_found_in_free_text() {
        assert_eq!(
            first_token_email("<kijitora@example.ne.jp>:").as_deref(),
            Some("kijitora@example.ne.jp")
        );
        assert_eq!(
            first_token_email("MDMOORE@BALL.COM on Fri, 18 Oct 2002").as_deref(),
            Some("MDMOORE@BALL.COM")
        );
        assert_eq!(
            emails_in("to <a.b@example.com>, and c@d.example."),
            vec!["a.b@example.com".to_owned(), "c@d.example".to_owned()]
        );
        assert!(emails_in("no address @ here").is_empty());
    }
}
