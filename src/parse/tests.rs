//! Tests of the parse stage, on fixtures under `tests/fixtures/parse/` and
//! on messages built here.

use super::*;
use crate::mail::Address;

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("../../tests/fixtures/parse/", $name)).as_slice()
    };
}

macro_rules! classify_fixture {
    ($name:literal) => {
        include_bytes!(concat!("../../tests/fixtures/classify/", $name)).as_slice()
    };
}

fn parsed(bytes: &[u8]) -> ParsedMail {
    match parse(bytes) {
        Ok(mail) => mail,
        Err(e) => panic!("fixture must parse: {e}"),
    }
}

#[test]
fn undeclared_8bit_latin1_reads_as_windows_1252() {
    let mail = parsed(fixture!("latin1-undeclared.eml"));
    assert!(
        mail.text
            .contains("Le numéro de TVA sur la facture de février est erroné."),
        "{}",
        mail.text
    );
    assert!(!mail.text.contains('\u{FFFD}'));
    assert_eq!(mail.subject, "Problème de facture");
    assert_eq!(
        mail.from,
        Some(Address {
            name: Some("Marie Dupré".to_owned()),
            email: "marie.dupont@example.fr".to_owned()
        })
    );
}

#[test]
fn iso_2022_jp_decodes_body_subject_and_name() {
    let mail = parsed(fixture!("iso-2022-jp.eml"));
    assert_eq!(mail.subject, "請求書の誤り");
    assert!(
        mail.text.contains("請求書の登録番号が間違っています。"),
        "{}",
        mail.text
    );
    assert_eq!(mail.from.and_then(|a| a.name).as_deref(), Some("山田太郎"));
    assert_eq!(mail.content_language.as_deref(), Some("ja-jp"));
}

#[test]
fn gb2312_base64_decodes() {
    let mail = parsed(fixture!("gb2312.eml"));
    assert_eq!(mail.subject, "无法登录");
    assert!(
        mail.text.contains("从今天早上开始我无法登录我的账户。"),
        "{}",
        mail.text
    );
}

#[test]
fn koi8_r_quoted_printable_decodes_text_and_html() {
    let mail = parsed(fixture!("koi8-r.eml"));
    assert_eq!(mail.subject, "Не могу войти");
    assert!(
        mail.text.starts_with("Добрый день,\nНе могу войти"),
        "{}",
        mail.text
    );
    assert!(!mail.text_from_html);
    let html = mail.html.unwrap_or_default();
    assert!(html.contains("С уважением,"), "{html}");
}

#[test]
fn legacy_label_over_utf8_bytes_prefers_utf8() {
    let mail = parsed(fixture!("big5-really-utf8.eml"));
    assert!(
        mail.text.starts_with("您好！ 上個月的發票統一編號有誤。"),
        "{}",
        mail.text
    );
}

#[test]
fn a_horizontal_rule_ends_the_line_before_it() {
    let html = "Thanks<br>Bob<hr><b>From: </b>bob@example.com<br><b>Sent: </b>Friday<br>";
    let raw = format!(
        "From: a@example.com\r\nSubject: x\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n"
    );
    let mail = parsed(raw.as_bytes());
    assert!(mail.text_from_html);
    assert!(
        mail.text.lines().any(|l| l == "Bob") && mail.text.lines().any(|l| l.starts_with("From: ")),
        "{:?}",
        mail.text
    );
}

#[test]
fn line_breaks_go_before_rule_tags_only() {
    for (html, want) in [
        ("a<hr>b", "a<br><hr>b"),
        ("a<HR/>b<Hr class=x>c", "a<br><HR/>b<br><Hr class=x>c"),
        ("a<hr\n>b<hr", "a<br><hr\n>b<br><hr"),
    ] {
        assert_eq!(line_break_before_rules(html), want, "{html:?}");
    }
    for html in ["<html><h1>x</h1><hro>", "</hr> <br> <h r>", "no tags", ""] {
        assert!(
            matches!(line_break_before_rules(html), Cow::Borrowed(b) if b == html),
            "{html:?}"
        );
    }
}

#[test]
fn html_only_message_is_converted_to_text() {
    let mail = parsed(fixture!("html-only.eml"));
    assert!(mail.text_from_html);
    assert!(
        mail.html
            .as_deref()
            .is_some_and(|h| h.contains("<b>Export</b>"))
    );
    assert!(mail.text.contains("Hi team,"), "{}", mail.text);
    assert!(
        mail.text
            .contains("When I click Export, the page just spins forever."),
        "{}",
        mail.text
    );
    assert!(
        mail.text.contains("Account: ACME\u{a0}Corp") || mail.text.contains("Account: ACME Corp")
    );
    assert!(
        !mail.text.contains("<p>") && !mail.text.contains("margin"),
        "{}",
        mail.text
    );
    assert!(
        mail.attachments.is_empty(),
        "the HTML body is not an attachment"
    );
}

#[test]
fn missing_closing_boundary_keeps_what_arrived() {
    let mail = parsed(fixture!("missing-closing-boundary.eml"));
    assert!(mail.text.starts_with("The import fails"), "{}", mail.text);
    let log = mail.attachments.first();
    assert_eq!(log.and_then(|a| a.name.as_deref()), Some("import.log"));
    assert!(
        log.is_some_and(|a| String::from_utf8_lossy(&a.content).contains("row 17: invalid date")),
        "{log:?}"
    );
}

#[test]
fn broken_base64_is_best_effort() {
    let mail = parsed(fixture!("broken-base64.eml"));
    assert_eq!(mail.text, "Hello, the screenshot is attached.");
    assert_eq!(mail.attachments.len(), 1, "{:?}", mail.attachments);
}

#[test]
fn rfc2231_file_name_and_inline_image_are_attachments() {
    let mail = parsed(fixture!("rfc2231-filename.eml"));
    // Raw UTF-8 in a header works.
    assert_eq!(
        mail.from.as_ref().and_then(|a| a.name.as_deref()),
        Some("Jürgen Weiß")
    );
    let names: Vec<_> = mail.attachments.iter().map(|a| a.name.clone()).collect();
    assert_eq!(
        names,
        vec![None, Some("Rechnung März 2024 – Größe.pdf".to_owned())],
        "{:?}",
        mail.attachments
    );
    let image = mail.attachments.first();
    assert_eq!(image.map(|a| a.content_type.as_str()), Some("image/png"));
    assert!(image.is_some_and(|a| a.content.starts_with(b"\x89PNG")));
    let pdf = mail.attachments.get(1);
    assert_eq!(
        pdf.map(|a| a.content_type.as_str()),
        Some("application/pdf")
    );
    let expected_sha = pdf.map(|a| HEXLOWER.encode(&Sha256::digest(&a.content)));
    assert_eq!(pdf.map(|a| a.sha256.clone()), expected_sha);
    assert_eq!(pdf.map(|a| a.size_bytes), pdf.map(|a| a.content.len()));
    assert!(mail.html.is_some() && mail.text_from_html);
}

#[test]
fn missing_message_id_is_synthetic_and_stable_across_redeliveries() {
    let first = parsed(fixture!("no-message-id.eml"));
    assert!(first.message_id_synthetic);
    assert!(
        first.message_id.ends_with("@synthetic.postdesk.invalid"),
        "{}",
        first.message_id
    );
    assert_eq!(first.message_id.split('@').next().map(str::len), Some(32));

    // The same message delivered again: other trace fields, CRLF endings.
    let text = String::from_utf8_lossy(fixture!("no-message-id.eml"))
        .replace("Delivered-To: support@support.example.com\n", "X-Original-To: help@support.example.com\n")
        .replace("ESMTPS id 1111111111", "ESMTPS id 2222222222")
        .replace("09:00:05 +0000", "09:07:41 +0000")
        .replace("Return-Path: <kim@example.org>\n", "Return-Path: <kim+bounce@example.org>\nReceived: from relay.example.net by mx2; Thu, 21 Mar 2024 09:07:40 +0000\n")
        .replace('\n', "\r\n");
    let again = parsed(text.as_bytes());
    assert_eq!(again.message_id, first.message_id);
    assert_eq!(again.content_hash, first.content_hash);

    let edited =
        String::from_utf8_lossy(fixture!("no-message-id.eml")).replace("sends no", "never sends a");
    assert_ne!(parsed(edited.as_bytes()).message_id, first.message_id);
}

#[test]
fn header_fields_are_kept_in_order_decoded() {
    let raw = b"Received: from a by b; Mon, 1 Apr 2024 10:00:00 +0000\n\
        Received: from c by d; Mon, 1 Apr 2024 09:59:00 +0000\n\
        X-Custom-Thing: =?utf-8?q?gr=C3=BC=C3=9Fe?= and\n  more\n\
        Subject: =?UTF-8?B?w4Rwb2ZlbA==?= =?UTF-8?B?IGdlbHV0c2NodA==?=\n\
        Message-ID:   <  abc@example.com >  \n\
        In-Reply-To: Your message of \"Mon, 1 Apr\" <parent@example.com>\n\
        References: <r1@example.com> (garbage) <r2@example.com>\n  junk <parent@example.com>\n\
        Return-Path: <>\n\
        From: \"Doe, Jane\" <jane@example.com>\n\
        To: undisclosed-recipients:;\n\
        Cc: team: a@example.com, b@example.com;, c@example.com\n\
        Reply-To: help@example.com\n\
        Date: Mon, 1 Apr 2024 12:00:00 +0200\n\
        Content-Language: de-CH, en\n\
        \n\
        body\n";
    let mail = parsed(raw);
    let names: Vec<&str> = mail.headers.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Received",
            "Received",
            "X-Custom-Thing",
            "Subject",
            "Message-ID",
            "In-Reply-To",
            "References",
            "Return-Path",
            "From",
            "To",
            "Cc",
            "Reply-To",
            "Date",
            "Content-Language"
        ]
    );
    assert_eq!(mail.header("x-custom-thing"), Some("grüße and more"));
    assert_eq!(mail.subject, "Äpofel gelutscht");
    assert_eq!(mail.message_id, "abc@example.com");
    assert!(!mail.message_id_synthetic);
    assert_eq!(mail.in_reply_to, ["parent@example.com"]);
    assert_eq!(
        mail.references,
        ["r1@example.com", "r2@example.com", "parent@example.com"]
    );
    assert_eq!(mail.return_path.as_deref(), Some(""));
    assert_eq!(
        mail.from.as_ref().and_then(|a| a.name.as_deref()),
        Some("Doe, Jane")
    );
    assert!(mail.to.is_empty());
    let cc: Vec<String> = mail.cc.iter().map(Address::key).collect();
    assert_eq!(cc, ["a@example.com", "b@example.com", "c@example.com"]);
    assert_eq!(
        mail.reply_address().map(Address::key).as_deref(),
        Some("help@example.com")
    );
    assert_eq!(mail.date.map(|d| d.as_second()), Some(1_711_965_600));
    assert_eq!(mail.content_language.as_deref(), Some("de-ch"));
    assert_eq!(mail.text, "body\n");
    assert_eq!(mail.size_bytes, raw.len());
}

#[test]
fn absent_fields_are_empty_not_errors() {
    let mail = parsed(b"From: someone@example.com\nDate: not a date at all\n\nhi\n");
    assert_eq!(mail.subject, "");
    assert_eq!(mail.return_path, None);
    assert_eq!(mail.date, None);
    assert_eq!(mail.content_language, None);
    assert!(mail.in_reply_to.is_empty() && mail.references.is_empty());
    assert!(mail.message_id_synthetic);
}

#[test]
fn input_that_is_not_mail_is_an_error() {
    assert_eq!(parse(b""), Err(ParseError::Empty));
    assert_eq!(parse(b" \r\n\n"), Err(ParseError::Empty));
    assert_eq!(
        parse(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
        Err(ParseError::NotMail)
    );
    assert_eq!(
        parse(b"Hello, this is just text.\nNo headers.\n"),
        Err(ParseError::NotMail)
    );
    assert_eq!(parse(b"\0\0\0\0"), Err(ParseError::NotMail));
    let text = ParseError::NotMail.to_string();
    assert!(
        text.starts_with("the message has no header section"),
        "{text}"
    );
}

#[test]
fn mbox_separator_and_header_only_message() {
    let mail =
        parsed(b"From MAILER-DAEMON Fri Jul  5 10:00:00 2024\nSubject: hi\nFrom: x@example.com");
    assert_eq!(mail.subject, "hi");
    assert_eq!(mail.from.map(|a| a.email).as_deref(), Some("x@example.com"));
    assert_eq!(mail.text, "");
}

#[test]
fn multipart_without_boundary_parameter_is_repaired() {
    let raw = b"From: post_master@vtext.example.com\nSubject: Re: test\n\
        Content-Type: multipart/mixed; boundary=\"outer\"\n\n\
        --outer\nContent-Type: multipart/alternative;\nboundary=\"inner\"\n\n\
        --inner\nContent-Type: text/plain; charset=us-ascii\n\n\
        Error: Invalid user address\n\n--inner--\n\n--outer--\n";
    let mail = parsed(raw);
    assert!(
        mail.text.starts_with("Error: Invalid user address"),
        "{:?}",
        mail.text
    );
}

#[test]
fn postfix_dsn_report_is_read() {
    let mail = parsed(classify_fixture!("postfix-dsn-token.eml"));
    let report = mail.report.unwrap_or_default();
    assert_eq!(report.report_type, "delivery-status");
    assert_eq!(report.recipients.len(), 1, "{report:?}");
    let r = report.recipients.first().cloned().unwrap_or_default();
    assert_eq!(r.address, "Gone.Customer@example.net");
    assert_eq!((r.action.as_str(), r.status.as_str()), ("failed", "5.1.1"));
    assert!(
        r.diagnostic
            .is_some_and(|d| d.starts_with("550 5.1.1 <gone.customer@example.net>"))
    );
    assert_eq!(
        report.original_message_ids,
        ["pdt1.4711.c8j2l5g0qk.5j2o5ad2m96vi7u7@support.example.com"]
    );
    let types: Vec<&str> = mail
        .attachments
        .iter()
        .map(|a| a.content_type.as_str())
        .collect();
    assert_eq!(types, ["message/delivery-status", "message/rfc822"]);
}

#[test]
fn non_standard_bounce_report_is_read_from_text() {
    let mail = parsed(classify_fixture!("qmail-bounce.eml"));
    let report = mail.report.unwrap_or_default();
    assert_eq!(report.report_type, "");
    let addresses: Vec<&str> = report
        .recipients
        .iter()
        .map(|r| r.address.as_str())
        .collect();
    assert_eq!(addresses, ["kijitora@example.ne.jp"]);
    assert_eq!(
        report.recipients.first().map(|r| r.status.as_str()),
        Some("5.1.1")
    );
    assert_eq!(
        report.original_message_ids,
        ["pdt1.4711.c8j2l5g0qk.5j2o5ad2m96vi7u7@support.example.com"]
    );
}

#[test]
fn a_forwarded_message_in_human_mail_is_no_report() {
    let raw = b"From: Pat <pat@example.com>\nTo: support@support.example.com\nSubject: Fwd: invoice\n\
        Content-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\n\
        See the attached mail.\n-----Original Message-----\nFrom: billing@example.org\n\n\
        --b\nContent-Type: message/rfc822\n\nFrom: billing@example.org\nMessage-ID: <inv-1@example.org>\n\
        Subject: invoice\n\nPay now.\n--b--\n";
    let mail = parsed(raw);
    assert_eq!(mail.report, None);
    assert_eq!(
        mail.attachments.first().map(|a| a.content_type.as_str()),
        Some("message/rfc822")
    );
}

#[test]
fn thirty_megabyte_message_parses_within_a_few_times_its_size() {
    // 6 MB of text and a 17.5 MB binary attachment (23.6 MB as base64).
    let text_line = "Log line 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ\n";
    let blob: Vec<u8> = (0..17_500_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let mut raw = Vec::with_capacity(31_000_000);
    raw.extend_from_slice(
        b"From: big@example.com\nTo: support@support.example.com\nSubject: big\n\
          Message-ID: <big@example.com>\nContent-Type: multipart/mixed; boundary=\"big\"\n\n\
          --big\nContent-Type: text/plain; charset=utf-8\n\n",
    );
    while raw.len() < 6_000_000 {
        raw.extend_from_slice(text_line.as_bytes());
    }
    raw.extend_from_slice(
        b"\n--big\nContent-Type: application/octet-stream; name=\"dump.bin\"\n\
          Content-Transfer-Encoding: base64\n\n",
    );
    let encoded = data_encoding::BASE64.encode(&blob);
    for chunk in encoded.as_bytes().chunks(76) {
        raw.extend_from_slice(chunk);
        raw.push(b'\n');
    }
    raw.extend_from_slice(b"--big--\n");
    drop(encoded);
    assert!(raw.len() > 29_000_000, "{}", raw.len());

    let before = peak_rss_bytes();
    let mail = parsed(&raw);
    let after = peak_rss_bytes();
    assert_eq!(mail.attachments.len(), 1);
    let attachment = mail.attachments.first();
    assert_eq!(attachment.map(|a| a.size_bytes), Some(blob.len()));
    assert!(attachment.is_some_and(|a| a.content == blob));
    assert!(mail.text.len() > 5_900_000);
    if let (Some(before), Some(after)) = (before, after) {
        let grown = after.saturating_sub(before);
        assert!(
            grown < 5 * raw.len(),
            "peak memory grew by {grown} bytes for a {} byte message",
            raw.len()
        );
    }
}

/// The process's peak resident set size (Linux), for the memory test.
fn peak_rss_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[test]
fn deeply_nested_html_does_not_reach_html2text() {
    let html = format!("{}x", "<div>".repeat(300));
    assert!(nesting_depth(&html) >= 300, "{}", nesting_depth(&html));
    assert_eq!(
        nesting_depth("<p>a<br>b<img src=x/></p><!-- c --><div><span>d</span></div>"),
        2
    );
}
