//! Tests of the classify stage, on fixtures under `tests/fixtures/classify/`
//! and on small messages built here.

use super::*;
use crate::mail::ParsedMail;
use crate::parse::parse;

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("../../tests/fixtures/classify/", $name)).as_slice()
    };
}

const OUR_TOKEN: &str = "pdt1.4711.c8j2l5g0qk.5j2o5ad2m96vi7u7@support.example.com";

fn ctx() -> ClassifyContext {
    ClassifyContext {
        own_addresses: vec!["support@support.example.com".to_owned()],
        message_id_domain: "support.example.com".to_owned(),
    }
}

fn mail(bytes: &[u8]) -> ParsedMail {
    match parse(bytes) {
        Ok(mail) => mail,
        Err(e) => panic!("test message must parse: {e}"),
    }
}

fn classified(bytes: &[u8]) -> Classification {
    classify(&mail(bytes), &ctx())
}

fn has_reason(c: &Classification, reason: &str) -> bool {
    c.reasons.iter().any(|r| r == reason)
}

#[test]
fn postfix_dsn_of_our_token_is_a_permanent_bounce_not_a_loop() {
    let c = classified(fixture!("postfix-dsn-token.eml"));
    assert_eq!(c.class, Class::Bounce, "{c:?}");
    assert!(has_reason(&c, "report-type: delivery-status"), "{c:?}");
    let bounce = c.bounce.unwrap_or_default();
    assert_eq!(bounce.original_message_ids, [OUR_TOKEN]);
    assert_eq!(bounce.failed_recipients, ["gone.customer@example.net"]);
    assert!(bounce.permanent);
}

#[test]
fn delay_warning_is_a_bounce_but_not_permanent() {
    let c = classified(fixture!("delay-warning.eml"));
    assert_eq!(c.class, Class::Bounce, "{c:?}");
    let bounce = c.bounce.unwrap_or_default();
    assert!(!bounce.permanent);
    assert_eq!(bounce.failed_recipients, ["slow@example.org"]);
    assert_eq!(
        bounce.original_message_ids,
        ["pdt1.4712.d0k3m6h1rl.7k4q6bd3n07wj8v8@support.example.com"]
    );
}

#[test]
fn qmail_bounce_without_report_is_recognized() {
    let c = classified(fixture!("qmail-bounce.eml"));
    assert_eq!(c.class, Class::Bounce, "{c:?}");
    assert!(
        has_reason(&c, "sender is a mail system") && has_reason(&c, "bounce subject"),
        "{c:?}"
    );
    let bounce = c.bounce.unwrap_or_default();
    assert_eq!(bounce.failed_recipients, ["kijitora@example.ne.jp"]);
    assert_eq!(bounce.original_message_ids, [OUR_TOKEN]);
    assert!(bounce.permanent);
}

#[test]
fn exchange_out_of_office_is_auto_replied() {
    let c = classified(fixture!("exchange-oof.eml"));
    assert_eq!(c.class, Class::AutoReplied, "{c:?}");
    assert!(
        has_reason(&c, "auto-reply subject \"automatic reply\""),
        "{c:?}"
    );
}

#[test]
fn exchange_out_of_office_without_auto_submitted_is_auto_replied() {
    let c = classified(fixture!("exchange-oof-headerless.eml"));
    assert_eq!(c.class, Class::AutoReplied, "{c:?}");
}

#[test]
fn gmail_vacation_is_auto_replied() {
    let c = classified(fixture!("gmail-vacation.eml"));
    assert_eq!(c.class, Class::AutoReplied, "{c:?}");
    assert!(has_reason(&c, "auto-submitted: auto-replied"));
    assert!(has_reason(&c, "precedence: bulk"));
    assert!(has_reason(&c, "x-autoreply present"));
}

#[test]
fn mailing_list_message_is_bulk() {
    let c = classified(fixture!("mailing-list.eml"));
    assert_eq!(c.class, Class::Bulk, "{c:?}");
    assert!(has_reason(&c, "list-id present") && has_reason(&c, "precedence: list"));
}

#[test]
fn newsletter_is_bulk() {
    let c = classified(fixture!("newsletter.eml"));
    assert_eq!(c.class, Class::Bulk, "{c:?}");
    assert!(has_reason(&c, "list-unsubscribe present") && has_reason(&c, "feedback-id present"));
}

#[test]
fn outlook_mail_with_only_auto_response_suppress_stays_human() {
    let c = classified(fixture!("outlook-human-xars.eml"));
    assert_eq!(c.class, Class::Human, "{c:?}");
    assert!(c.bounce.is_none());
    assert!(
        has_reason(&c, "x-auto-response-suppress: all (not enough alone)"),
        "{c:?}"
    );
}

#[test]
fn customer_reply_about_a_bounce_stays_human() {
    let c = classified(fixture!("human-reply.eml"));
    assert_eq!(c.class, Class::Human, "{c:?}");
    assert!(c.reasons.is_empty(), "{c:?}");
}

#[test]
fn our_own_mail_coming_back_is_a_loop() {
    let c = classified(fixture!("own-mail-loop.eml"));
    assert_eq!(c.class, Class::Loop, "{c:?}");
    assert!(has_reason(
        &c,
        "from is our own address support@support.example.com"
    ));
    assert!(has_reason(&c, "message-id is a postdesk token of ours"));
}

#[test]
fn loop_by_our_token_or_x_loop() {
    let our_token = classified(
        b"From: a@example.org\nMessage-ID: <pdt1.7.abcdefgh.0123456789abcdef@support.example.com>\nSubject: x\n\nx\n",
    );
    assert_eq!(our_token.class, Class::Loop, "{our_token:?}");
    // An agent's mail client also writes Message-IDs at the company domain.
    let agent = classified(
        b"From: agent@example.org\nMessage-ID: <123.abc@support.example.com>\nSubject: x\n\nx\n",
    );
    assert_eq!(agent.class, Class::Human, "{agent:?}");
    // Another company's postdesk writes tokens at its own domain.
    let theirs = classified(
        b"From: a@example.org\nMessage-ID: <pdt1.7.abcdefgh.0123456789abcdef@help.other.test>\nSubject: x\n\nx\n",
    );
    assert_ne!(theirs.class, Class::Loop, "{theirs:?}");
    let by_x_loop = classified(
        b"From: a@example.org\nX-Loop: support@support.example.com\nMessage-ID: <1@example.org>\n\nx\n",
    );
    assert_eq!(by_x_loop.class, Class::Loop, "{by_x_loop:?}");
    let other_x_loop = classified(
        b"From: a@example.org\nX-Loop: lists@example.org\nMessage-ID: <2@example.org>\n\nx\n",
    );
    assert_eq!(other_x_loop.class, Class::Human, "{other_x_loop:?}");
}

#[test]
fn read_receipt_is_auto_generated_not_a_bounce() {
    let c = classified(fixture!("read-receipt.eml"));
    assert_eq!(c.class, Class::AutoGenerated, "{c:?}");
    assert!(has_reason(&c, "report-type: disposition-notification"));
    assert!(c.bounce.is_none());
}

#[test]
fn feedback_report_is_auto_generated() {
    let c = classified(fixture!("arf-complaint.eml"));
    assert_eq!(c.class, Class::AutoGenerated, "{c:?}");
    assert!(has_reason(&c, "report-type: feedback-report"));
}

#[test]
fn auto_submitted_values() {
    let generated =
        classified(b"From: a@example.org\nAuto-Submitted: auto-notified; owner-email=x@y\n\nx\n");
    assert_eq!(generated.class, Class::AutoGenerated);
    assert!(has_reason(&generated, "auto-submitted: auto-notified"));
    let replied = classified(b"From: a@example.org\nAuto-Submitted: Auto-Replied\n\nx\n");
    assert_eq!(replied.class, Class::AutoReplied);
    let no = classified(b"From: a@example.org\nAuto-Submitted: no\nSubject: Automatic reply: hi\nIn-Reply-To: <x@y>\n\nx\n");
    assert_eq!(
        no.class,
        Class::Human,
        "an explicit 'no' overrides subject heuristics: {no:?}"
    );
}

#[test]
fn precedence_auto_reply_and_vendor_headers() {
    for header in [
        "Precedence: auto_reply",
        "X-Autoreply: yes",
        "X-Autorespond: yes",
        "X-AutoReply-From: a@example.org",
        "X-Mail-Autoreply: yes",
        "X-Autogenerated: Reply",
    ] {
        let raw = format!("From: a@example.org\n{header}\n\nx\n");
        assert_eq!(
            classified(raw.as_bytes()).class,
            Class::AutoReplied,
            "{header}"
        );
    }
    for header in ["X-Autogenerated: Forward", "X-FC-MachineGenerated: true"] {
        let raw = format!("From: a@example.org\n{header}\n\nx\n");
        assert_eq!(
            classified(raw.as_bytes()).class,
            Class::AutoGenerated,
            "{header}"
        );
    }
    for header in [
        "Precedence: junk",
        "Precedence: list",
        "List-Post: <mailto:l@example.org>",
    ] {
        let raw = format!("From: a@example.org\n{header}\n\nx\n");
        assert_eq!(classified(raw.as_bytes()).class, Class::Bulk, "{header}");
    }
}

#[test]
fn subject_prefix_alone_does_not_decide() {
    for subject in [
        "Out of office question",
        "Automatic reply: is this supported?",
        "Auto: my car insurance claim",
        "Undeliverable parcel",
        "Mail delivery failed for my order confirmation",
        "Re: Undelivered Mail Returned to Sender",
        "Fwd: Delivery Status Notification (Failure)",
    ] {
        let raw = format!(
            "From: Customer <c@example.org>\nSubject: {subject}\nMessage-ID: <{}@example.org>\n\n\
             Hello, my message could not be delivered to your sales team. Can you help?\n",
            subject.len()
        );
        let c = classified(raw.as_bytes());
        assert_eq!(c.class, Class::Human, "{subject}: {c:?}");
    }
}

#[test]
fn auto_reply_subjects_in_other_languages_with_support() {
    for subject in [
        "Abwesenheitsnotiz: Ihre Anfrage",
        "Réponse automatique : votre demande",
        "Respuesta automática: su solicitud",
        "自動返信: お問い合わせ",
        "Автоответ: ваш запрос",
    ] {
        let raw = format!(
            "From: a@example.org\nSubject: {subject}\nIn-Reply-To: <{OUR_TOKEN}>\n\nIch bin nicht im Büro.\n"
        );
        let c = classified(raw.as_bytes());
        assert_eq!(c.class, Class::AutoReplied, "{subject}: {c:?}");
    }
}

#[test]
fn bounce_wins_over_auto_replied_and_loop() {
    // A bounce sent by our own MTA: From our domain's mailer-daemon is not
    // one of our addresses, but the DSN names our token. Still a bounce.
    let raw = format!(
        "From: MAILER-DAEMON@support.example.com\nTo: support@support.example.com\nReturn-Path: <>\n\
         Subject: Undelivered Mail Returned to Sender\nAuto-Submitted: auto-replied\n\
         Message-ID: <bounce-1@support.example.com>\nX-Failed-Recipients: x@example.net\n\n\
         This is the mail system at host mx.\n\nMessage-ID: <{OUR_TOKEN}>\n"
    );
    let c = classified(raw.as_bytes());
    assert_eq!(c.class, Class::Bounce, "{c:?}");
    let bounce = c.bounce.unwrap_or_default();
    assert_eq!(bounce.failed_recipients, ["x@example.net"]);
    assert_eq!(bounce.original_message_ids, [OUR_TOKEN]);
}

#[test]
fn successful_delivery_report_is_not_a_bounce() {
    let raw = b"From: MAILER-DAEMON@mx.example.org\nSubject: Successful Mail Delivery Report\n\
        Content-Type: multipart/report; report-type=delivery-status; boundary=\"r\"\n\n\
        --r\nContent-Type: text/plain\n\nYour message was delivered.\n\
        --r\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx\n\n\
        Final-Recipient: rfc822; ok@example.net\nAction: delivered\nStatus: 2.0.0\n--r--\n";
    let c = classified(raw);
    assert_eq!(c.class, Class::AutoGenerated, "{c:?}");
    assert!(has_reason(&c, "delivery-status: delivered"));
}

#[test]
fn plain_customer_mail_is_human_with_no_reasons() {
    let c = classified(
        b"From: Customer <c@example.org>\nTo: support@support.example.com\nSubject: Invoice\n\
          Message-ID: <1@example.org>\nX-Mailer: Microsoft Outlook 16.0\n\nHello, where is my invoice?\n",
    );
    assert_eq!(
        c,
        Classification {
            class: Class::Human,
            reasons: Vec::new(),
            bounce: None
        }
    );
}
