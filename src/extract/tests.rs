//! Unit tests for `extract`, on messages written for these tests.

use super::*;

/// A `ParsedMail` with only a body: `parse` is another stage, and these
/// tests must not depend on it.
pub(crate) fn mail(text: &str, html: Option<&str>) -> ParsedMail {
    ParsedMail {
        message_id: "test@example.com".to_owned(),
        message_id_synthetic: false,
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
        text_from_html: false,
        attachments: Vec::new(),
        report: None,
        content_hash: String::new(),
        size_bytes: text.len(),
    }
}

#[test]
fn plain_reply_is_kept() {
    let out = extract(&mail("Hello,\n\nmy printer is broken.\n", None));
    assert_eq!(out.text, "Hello,\n\nmy printer is broken.");
    assert!(!out.quote_removed);
}
