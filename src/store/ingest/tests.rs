//! The ingest contract against a real SQLite database and the real
//! pipeline stages: threading paths, the subject-tag hijack, duplicates,
//! acknowledgement rules, bounces, loops and the reopen window.

use jiff::{SignedDuration, Timestamp};
use rusqlite::params;

use super::*;
use crate::mail::{Direction, RawMail};
use crate::pipeline::Analyzer;
use crate::store::Store;

/// A database, the policy and a clock the test moves.
struct Env {
    store: Store,
    policy: Policy,
    analyzer: Analyzer,
    now: Timestamp,
    _dir: tempfile::TempDir,
}

impl Env {
    fn new(extra: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("pd.db")).unwrap();
        let policy = test_policy(extra);
        let analyzer = Analyzer::new(&policy.config);
        Env {
            store,
            policy,
            analyzer,
            now: "2026-11-22T10:00:00Z".parse().unwrap(),
            _dir: dir,
        }
    }

    fn ingest_as(&mut self, bytes: &str, direction: Direction) -> IngestReport {
        let raw = RawMail {
            origin: Origin::Pipe,
            mailbox: None,
            direction,
            arrived: None,
            bytes: bytes.replace('\n', "\r\n").into_bytes(),
        };
        let item = IngestItem {
            work: self.analyzer.analyze(raw),
            effects: SourceEffects::default(),
        };
        let mut r = ingest_batch(
            &mut self.store.conn,
            std::slice::from_ref(&item),
            &self.policy,
            self.now,
            false,
        )
        .unwrap();
        r.pop().unwrap()
    }

    fn ingest(&mut self, bytes: &str) -> IngestReport {
        self.ingest_as(bytes, Direction::Inbound)
    }

    fn count(&self, sql: &str) -> i64 {
        self.store.conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// The Message-ID of the ack queued for a ticket.
    fn ack_id(&self, ticket: i64) -> String {
        self.store
            .conn
            .query_row(
                "SELECT message_id FROM outbox WHERE kind = 'ack' AND ticket_id = ?1",
                [ticket],
                |r| r.get(0),
            )
            .unwrap()
    }

    fn status(&self, ticket: i64) -> String {
        self.store
            .conn
            .query_row("SELECT status FROM tickets WHERE id = ?1", [ticket], |r| {
                r.get(0)
            })
            .unwrap()
    }

    fn later(&mut self, d: SignedDuration) {
        self.now = self.now.checked_add(d).unwrap();
    }
}

fn mail(from: &str, id: &str, subject: &str, extra_headers: &str, body: &str) -> String {
    format!(
        "From: {from}\nTo: Support <support@example.com>\nSubject: {subject}\nMessage-ID: <{id}>\nDate: Sun, 22 Nov 2026 10:59:00 +0100\n{extra_headers}\n{body}\n"
    )
}

const BODY_EN: &str =
    "Hello, I cannot log in to my account since this morning. Could you please help me reset it?";

#[test]
fn new_request_creates_a_ticket_and_queues_one_ack() {
    let mut e = Env::new("");
    let r = e.ingest(&mail(
        "Ann <ann@customer.test>",
        "a1@customer.test",
        "Cannot log in",
        "",
        BODY_EN,
    ));
    assert_eq!(r.outcome, Outcome::Created, "{r:?}");
    assert_eq!(r.ticket, Some(1));
    assert_eq!(r.class, Some(Class::Human));
    assert_eq!(r.language.as_deref(), Some("en"));
    assert!(r.ack);
    let ack = e.ack_id(1);
    assert_eq!(
        e.policy.key.verify(&ack),
        Some(1),
        "the ack's Message-ID is a signed token for the ticket"
    );
    let (to, irt): (String, Option<String>) = e
        .store
        .conn
        .query_row("SELECT to_addr, in_reply_to FROM outbox", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(
        (to.as_str(), irt.as_deref()),
        ("ann@customer.test", Some("a1@customer.test"))
    );
    assert_eq!(
        e.count("SELECT count(*) FROM message_raw"),
        1,
        "raw bytes are kept"
    );
    assert_eq!(
        e.count("SELECT count(*) FROM participants WHERE role = 'requester'"),
        1
    );
    assert!(
        e.count("SELECT count(*) FROM events WHERE kind = 'ticket.created' AND ticket_id = 1") == 1
    );
}

#[test]
fn the_original_bytes_are_kept_compressed_and_read_back_exactly() {
    let mut e = Env::new("");
    let body = BODY_EN.repeat(40);
    let sent = mail(
        "Ann <ann@customer.test>",
        "raw1@customer.test",
        "Log in",
        "",
        &body,
    );
    let r = e.ingest(&sent);
    let row = r.message_row.unwrap();
    let (encoding, stored_len): (String, i64) = e
        .store
        .conn
        .query_row(
            "SELECT encoding, length(raw) FROM message_raw WHERE message = ?1",
            [row],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let original = sent.replace('\n', "\r\n").into_bytes();
    assert_eq!(encoding, "lz4");
    assert!(
        stored_len * 4 < original.len() as i64,
        "{stored_len} of {}",
        original.len()
    );
    let back = crate::store::raw::read(&e.store.conn, row)
        .unwrap()
        .unwrap();
    assert!(back == original, "not the bytes that came in");
    // a row written before compression existed reads back as it is
    e.store
        .conn
        .execute(
            "UPDATE message_raw SET raw = CAST('plain' AS BLOB), encoding = 'identity'",
            [],
        )
        .unwrap();
    assert_eq!(
        crate::store::raw::read(&e.store.conn, row)
            .unwrap()
            .unwrap(),
        b"plain"
    );
    assert_eq!(
        crate::store::raw::read(&e.store.conn, row + 1).unwrap(),
        None
    );
}

#[test]
fn a_message_the_store_refuses_is_quarantined_with_its_original_bytes() {
    let mut e = Env::new("");
    // One message of the batch cannot be stored (a constraint fails for it
    // alone): the batch is retried one by one, the others are stored, and
    // the refused one is quarantined with the bytes it arrived with, decoded
    // from the compressed copy analysis made.
    e.store
        .conn
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON messages WHEN NEW.message_id = 'bad@customer.test'
             BEGIN SELECT RAISE(ABORT, 'refused for the test'); END;",
        )
        .unwrap();
    let body = BODY_EN.repeat(20);
    let texts = [
        mail(
            "Ann <ann@customer.test>",
            "good@customer.test",
            "Log in",
            "",
            &body,
        ),
        mail(
            "Bob <bob@customer.test>",
            "bad@customer.test",
            "Export",
            "",
            &body,
        ),
    ];
    let items: Vec<IngestItem> = texts
        .iter()
        .map(|t| IngestItem {
            work: e.analyzer.analyze(RawMail {
                origin: Origin::Pipe,
                mailbox: None,
                direction: Direction::Inbound,
                arrived: None,
                bytes: t.replace('\n', "\r\n").into_bytes(),
            }),
            effects: SourceEffects::default(),
        })
        .collect();
    let results = ingest_resilient(&mut e.store.conn, &items, &e.policy, e.now, false);
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].as_ref().unwrap().outcome, Outcome::Created);
    assert_eq!(results[1].as_ref().unwrap().outcome, Outcome::Quarantined);
    let (reason, raw, size): (String, Vec<u8>, i64) = e
        .store
        .conn
        .query_row("SELECT reason, raw, size_bytes FROM quarantine", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    let original = texts[1].replace('\n', "\r\n").into_bytes();
    assert!(reason.contains("refused for the test"), "{reason}");
    assert!(
        raw == original,
        "the quarantined bytes differ from what came in"
    );
    assert_eq!(size, original.len() as i64);
    assert_eq!(e.count("SELECT count(*) FROM messages"), 1);
}

#[test]
fn a_second_delivery_is_a_duplicate_stored_once() {
    let mut e = Env::new("");
    let m = mail(
        "ann@customer.test",
        "a1@customer.test",
        "Cannot log in",
        "",
        BODY_EN,
    );
    e.ingest(&m);
    // The same message through another route: different trace headers.
    let again = format!(
        "Received: from mx2.example.com by mx.example.com; Sun, 22 Nov 2026 11:00:00 +0100\nDelivered-To: support@example.com\n{m}"
    );
    let r = e.ingest(&again);
    assert_eq!(r.outcome, Outcome::Duplicate, "{r:?}");
    assert_eq!(r.ticket, Some(1));
    assert!(!r.ack);
    assert_eq!(e.count("SELECT count(*) FROM messages"), 1);
    assert_eq!(e.count("SELECT count(*) FROM outbox"), 1);
}

#[test]
fn a_reply_to_our_ack_threads_by_its_token() {
    let mut e = Env::new("");
    e.ingest(&mail(
        "ann@customer.test",
        "a1@customer.test",
        "Cannot log in",
        "",
        BODY_EN,
    ));
    let ack = e.ack_id(1);
    // A reply from another address of the customer, with a new subject:
    // only the token links it.
    let r = e.ingest(&mail(
        "ann.private@elsewhere.test",
        "a2@elsewhere.test",
        "Something else",
        &format!("In-Reply-To: <{ack}>\nReferences: <a1@customer.test> <{ack}>\n"),
        "It works again, thanks. You can close the ticket now.",
    ));
    assert_eq!((r.outcome, r.ticket), (Outcome::Threaded, Some(1)), "{r:?}");
    assert!(r.reason.contains("token"), "{}", r.reason);
    assert!(!r.ack, "replies are not acknowledged");
}

#[test]
fn a_forged_token_does_not_thread() {
    let mut e = Env::new("");
    e.ingest(&mail(
        "ann@customer.test",
        "a1@customer.test",
        "Cannot log in",
        "",
        BODY_EN,
    ));
    let forged = crate::token::TokenKey::new(b"not the secret, but long enough".to_vec())
        .mint(1, "example.com");
    let r = e.ingest(&mail(
        "mallory@evil.test",
        "m1@evil.test",
        "Hi",
        &format!("In-Reply-To: <{forged}>\n"),
        BODY_EN,
    ));
    assert_eq!((r.outcome, r.ticket), (Outcome::Created, Some(2)), "{r:?}");
}

#[test]
fn a_reply_threads_by_references_to_a_stored_message() {
    let mut e = Env::new("");
    e.ingest(&mail(
        "ann@customer.test",
        "a1@customer.test",
        "Cannot log in",
        "",
        BODY_EN,
    ));
    // A colleague on Cc replies to the customer's original (no token).
    let r = e.ingest(&mail(
        "bob@customer.test",
        "b1@customer.test",
        "AW: Cannot log in",
        "In-Reply-To: <a1@customer.test>\nReferences: <a1@customer.test>\n",
        "Same problem here on my account, please look at both.",
    ));
    assert_eq!((r.outcome, r.ticket), (Outcome::Threaded, Some(1)), "{r:?}");
    assert!(r.reason.contains("references"), "{}", r.reason);
    assert_eq!(e.count("SELECT count(*) FROM participants WHERE ticket_id = 1 AND address = 'bob@customer.test'"), 1);
}

#[test]
fn a_subject_tag_threads_only_for_participants() {
    let mut e = Env::new("[[queues]]\nname = \"general\"\nagents = [\"@example.com\"]\n");
    e.ingest(&mail(
        "ann@customer.test",
        "a1@customer.test",
        "Order problem",
        "",
        BODY_EN,
    ));
    // The requester writes a fresh mail with the tag: threads.
    let r = e.ingest(&mail(
        "ann@customer.test",
        "a2@customer.test",
        "[PD-1] one more thing",
        "",
        "I forgot to mention the order number 12345.",
    ));
    assert_eq!((r.outcome, r.ticket), (Outcome::Threaded, Some(1)), "{r:?}");
    // A stranger uses the same tag: refused, new ticket, reason in the log.
    let r = e.ingest(&mail(
        "mallory@evil.test",
        "m1@evil.test",
        "Re: [PD-1] Order problem",
        "",
        "Please send the invoice to my address instead.",
    ));
    assert_eq!((r.outcome, r.ticket), (Outcome::Created, Some(2)), "{r:?}");
    assert!(r.reason.contains("does not take part"), "{}", r.reason);
    assert_eq!(
        e.count("SELECT count(*) FROM messages WHERE ticket_id = 1"),
        2,
        "nothing of the stranger's on ticket 1"
    );
    // An agent of the ticket's queue may use the tag.
    let r = e.ingest(&mail(
        "agent@example.com",
        "g1@example.com",
        "[PD-1] status",
        "",
        "We are looking into the order now.",
    ));
    assert_eq!((r.outcome, r.ticket), (Outcome::Threaded, Some(1)), "{r:?}");
    assert_eq!(
        e.status(1),
        "waiting",
        "an agent's answer puts the ticket on the customer"
    );
}

#[test]
fn two_customers_with_the_same_subject_get_two_tickets() {
    let mut e = Env::new("");
    let a = e.ingest(&mail(
        "ann@customer.test",
        "a1@customer.test",
        "Order problem",
        "",
        BODY_EN,
    ));
    let b = e.ingest(&mail(
        "bob@other.test",
        "b1@other.test",
        "Order problem",
        "",
        BODY_EN,
    ));
    assert_eq!((a.ticket, b.ticket), (Some(1), Some(2)));
}

#[test]
fn an_out_of_office_reply_to_our_ack_threads_without_an_ack() {
    let mut e = Env::new("");
    e.ingest(&mail(
        "ann@customer.test",
        "a1@customer.test",
        "Cannot log in",
        "",
        BODY_EN,
    ));
    let ack = e.ack_id(1);
    let r = e.ingest(&mail(
        "ann@customer.test",
        "ooo1@customer.test",
        "Automatic reply: [PD-1] We received your request",
        &format!(
            "In-Reply-To: <{ack}>\nAuto-Submitted: auto-replied\nX-Auto-Response-Suppress: All\n"
        ),
        "I am out of the office until Monday and will reply when I am back.",
    ));
    assert_eq!(
        (r.outcome, r.ticket, r.class),
        (Outcome::Threaded, Some(1), Some(Class::AutoReplied)),
        "{r:?}"
    );
    assert!(!r.ack);
    assert_eq!(
        e.count("SELECT count(*) FROM outbox"),
        1,
        "no mail goes back to a robot"
    );
    assert_eq!(
        e.status(1),
        "open",
        "an auto-reply does not change the ticket's state"
    );
}

#[test]
fn an_unthreaded_auto_reply_opens_no_ticket_but_is_kept() {
    let mut e = Env::new("");
    let r = e.ingest(&mail(
        "someone@customer.test",
        "ooo@customer.test",
        "Out of Office",
        "Auto-Submitted: auto-replied\n",
        "I am out of the office until Monday.",
    ));
    assert_eq!(
        (r.outcome, r.ticket, r.class),
        (Outcome::Ignored, None, Some(Class::AutoReplied)),
        "{r:?}"
    );
    assert_eq!(
        e.count("SELECT count(*) FROM messages WHERE ticket_id IS NULL AND outcome = 'ignored'"),
        1
    );
}

#[test]
fn a_bounce_of_our_ack_attaches_and_stops_automatic_mail() {
    let mut e = Env::new("");
    e.ingest(&mail(
        "ann@customer.test",
        "a1@customer.test",
        "Cannot log in",
        "",
        BODY_EN,
    ));
    let ack = e.ack_id(1);
    let dsn = format!(
        "From: MAILER-DAEMON@mx.example.com (Mail Delivery System)\nTo: support@example.com\nSubject: Undelivered Mail Returned to Sender\nMessage-ID: <dsn1@mx.example.com>\nReturn-Path: <>\nMIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n\n--B\nContent-Type: text/plain\n\nI'm sorry to have to inform you that your message could not be delivered.\n\n--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.com\n\nFinal-Recipient: rfc822; ann@customer.test\nAction: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\n\n--B\nContent-Type: text/rfc822-headers\n\nFrom: support@example.com\nTo: ann@customer.test\nSubject: [PD-1] We received your request\nMessage-ID: <{ack}>\n\n--B--\n"
    );
    let r = e.ingest(&dsn);
    assert_eq!(
        (r.outcome, r.ticket, r.class),
        (Outcome::Threaded, Some(1), Some(Class::Bounce)),
        "{r:?}"
    );
    assert_eq!(e.count("SELECT count(*) FROM address_state WHERE address = 'ann@customer.test' AND bouncing_since IS NOT NULL"), 1);
    // An automatic mail to a bouncing address is not queued...
    e.later(SignedDuration::from_hours(2));
    let forwarded = e.ingest(&mail(
        "Help <help@partner.test>",
        "f1@partner.test",
        "Forwarded request",
        "Reply-To: ann@customer.test\n",
        BODY_EN,
    ));
    assert_eq!(forwarded.outcome, Outcome::Created);
    assert!(!forwarded.ack, "{forwarded:?}");
    assert!(forwarded.reason.contains("bounced"), "{}", forwarded.reason);
    // ...until a human message from it proves it works again.
    let back = e.ingest(&mail(
        "ann@customer.test",
        "a9@customer.test",
        "New question",
        "",
        BODY_EN,
    ));
    assert!(back.ack, "{back:?}");
    assert_eq!(
        e.count("SELECT count(*) FROM address_state WHERE bouncing_since IS NOT NULL"),
        0
    );
}

#[test]
fn acknowledgements_are_rate_limited_per_sender() {
    let mut e = Env::new("[acknowledge]\nper_sender_per_hour = 2\n");
    let acks: Vec<bool> = (0..3)
        .map(|i| {
            e.ingest(&mail(
                "ann@customer.test",
                &format!("a{i}@customer.test"),
                &format!("Question {i}"),
                "",
                BODY_EN,
            ))
            .ack
        })
        .collect();
    assert_eq!(acks, vec![true, true, false]);
    e.later(SignedDuration::from_mins(61));
    assert!(
        e.ingest(&mail(
            "ann@customer.test",
            "a9@customer.test",
            "Question 9",
            "",
            BODY_EN
        ))
        .ack,
        "the window slides"
    );
}

#[test]
fn no_ack_for_old_mail_our_own_addresses_or_lists() {
    let mut e = Env::new("");
    let old = format!(
        "From: ann@customer.test\nTo: support@example.com\nSubject: Old\nMessage-ID: <old@customer.test>\nDate: Mon, 16 Nov 2026 10:00:00 +0000\n\n{BODY_EN}\n"
    );
    let r = e.ingest(&old);
    assert_eq!(r.outcome, Outcome::Created);
    assert!(!r.ack && r.reason.contains("acknowledge.max_age"), "{r:?}");

    let list = mail(
        "news@shop.test",
        "n1@shop.test",
        "Our November newsletter",
        "List-Id: <news.shop.test>\nList-Unsubscribe: <mailto:unsub@shop.test>\nPrecedence: bulk\n",
        "Big sale this week on all products in our store.",
    );
    let r = e.ingest(&list);
    assert_eq!(
        (r.outcome, r.class),
        (Outcome::Created, Some(Class::Bulk)),
        "{r:?}"
    );
    assert!(!r.ack);

    let own = mail(
        "support@example.com",
        "pdt-own@example.com",
        "Loop?",
        "",
        BODY_EN,
    );
    let r = e.ingest(&own);
    assert_eq!(
        (r.outcome, r.class, r.ticket),
        (Outcome::Ignored, Some(Class::Loop), None),
        "{r:?}"
    );
}

#[test]
fn reply_to_a_closed_ticket_reopens_within_the_window_else_follows_up() {
    let mut e = Env::new("[[queues]]\nname = \"general\"\nreopen_within = \"7d\"\n");
    e.ingest(&mail(
        "ann@customer.test",
        "a1@customer.test",
        "Cannot log in",
        "",
        BODY_EN,
    ));
    let ack = e.ack_id(1);
    let close = |e: &Env| {
        e.store
            .conn
            .execute(
                "UPDATE tickets SET status = 'closed', closed_at = ?1 WHERE id = 1",
                params![to_ms(e.now)],
            )
            .unwrap();
    };
    close(&e);
    e.later(SignedDuration::from_hours(24 * 3));
    let r = e.ingest(&mail(
        "ann@customer.test",
        "a2@customer.test",
        "Re: x",
        &format!("In-Reply-To: <{ack}>\n"),
        "It broke again today.",
    ));
    assert_eq!((r.outcome, r.ticket), (Outcome::Threaded, Some(1)), "{r:?}");
    assert!(r.reason.contains("reopened"), "{}", r.reason);
    assert_eq!(e.status(1), "open");

    close(&e);
    e.later(SignedDuration::from_hours(24 * 8));
    let r = e.ingest(&mail(
        "ann@customer.test",
        "a3@customer.test",
        "Re: x",
        &format!("In-Reply-To: <{ack}>\n"),
        "And again, sorry.",
    ));
    assert_eq!((r.outcome, r.ticket), (Outcome::Created, Some(2)), "{r:?}");
    assert_eq!(e.count("SELECT linked_ticket FROM tickets WHERE id = 2"), 1);
    assert_eq!(e.status(1), "closed");
}

#[test]
fn outbound_mail_from_the_sent_folder_threads_as_an_agent_response() {
    let mut e = Env::new("");
    e.ingest(&mail(
        "ann@customer.test",
        "a1@customer.test",
        "Cannot log in",
        "",
        BODY_EN,
    ));
    let sent = "From: Support <support@example.com>\nTo: ann@customer.test\nSubject: Re: Cannot log in\nMessage-ID: <s1@example.com>\nIn-Reply-To: <a1@customer.test>\nReferences: <a1@customer.test>\n\nWe reset your password; please try again.\n";
    let r = e.ingest_as(sent, Direction::Outbound);
    assert_eq!((r.outcome, r.ticket), (Outcome::Threaded, Some(1)), "{r:?}");
    assert_eq!(e.status(1), "waiting");
    assert_eq!(
        e.count("SELECT count(*) FROM messages WHERE direction = 'outbound' AND ticket_id = 1"),
        1
    );
    let unrelated = "From: support@example.com\nTo: x@y.test\nSubject: hello\nMessage-ID: <s2@example.com>\n\nhi\n";
    assert_eq!(
        e.ingest_as(unrelated, Direction::Outbound).outcome,
        Outcome::Ignored
    );
}

#[test]
fn a_batch_is_one_transaction_and_sees_its_own_writes() {
    let mut e = Env::new("");
    let first = mail(
        "ann@customer.test",
        "a1@customer.test",
        "Cannot log in",
        "",
        BODY_EN,
    );
    let reply = mail(
        "ann@customer.test",
        "a2@customer.test",
        "Re: Cannot log in",
        "In-Reply-To: <a1@customer.test>\n",
        "Also the app shows error 42.",
    );
    let items: Vec<IngestItem> = [first, reply]
        .iter()
        .map(|m| IngestItem {
            work: e.analyzer.analyze(RawMail {
                origin: Origin::Pipe,
                mailbox: None,
                direction: Direction::Inbound,
                arrived: None,
                bytes: m.replace('\n', "\r\n").into_bytes(),
            }),
            effects: SourceEffects::default(),
        })
        .collect();
    let dry = ingest_batch(&mut e.store.conn, &items, &e.policy, e.now, true).unwrap();
    assert_eq!(
        dry.iter().map(|r| r.outcome).collect::<Vec<_>>(),
        vec![Outcome::Created, Outcome::Threaded]
    );
    assert_eq!(
        e.count("SELECT count(*) FROM messages"),
        0,
        "a dry run writes nothing"
    );
    let real = ingest_batch(&mut e.store.conn, &items, &e.policy, e.now, false).unwrap();
    assert_eq!(
        real.iter().map(|r| r.ticket).collect::<Vec<_>>(),
        vec![Some(1), Some(1)]
    );
}

#[test]
fn origins_are_skipped_before_parsing_and_checkpoints_advance() {
    let mut e = Env::new("");
    let raw = RawMail {
        origin: Origin::Imap {
            mailbox: "support".into(),
            folder: "INBOX".into(),
            uidvalidity: 7,
            uid: 3,
        },
        mailbox: None,
        direction: Direction::Inbound,
        arrived: None,
        bytes: mail("ann@customer.test", "a1@customer.test", "x", "", BODY_EN).into_bytes(),
    };
    let effects = SourceEffects {
        remember_origin: true,
        checkpoint: Some(Checkpoint {
            source: "imap:support/INBOX".into(),
            uidvalidity: 7,
            uid: 3,
        }),
        action: Some(MailboxAction {
            source: "imap:support/INBOX".into(),
            uidvalidity: 7,
            uid: 3,
            action: "seen".into(),
        }),
    };
    let item = IngestItem {
        work: e.analyzer.analyze(raw),
        effects,
    };
    ingest_batch(
        &mut e.store.conn,
        std::slice::from_ref(&item),
        &e.policy,
        e.now,
        false,
    )
    .unwrap();
    let again = ingest_batch(
        &mut e.store.conn,
        std::slice::from_ref(&item),
        &e.policy,
        e.now,
        false,
    )
    .unwrap();
    assert_eq!(again[0].outcome, Outcome::Duplicate);
    assert_eq!(
        e.count("SELECT last_uid FROM sources WHERE source = 'imap:support/INBOX'"),
        3
    );
    assert_eq!(e.count("SELECT count(*) FROM mailbox_actions"), 1);
    assert_eq!(e.count("SELECT count(*) FROM messages"), 1);
}

#[test]
fn unparseable_mail_is_quarantined_with_its_reason() {
    let mut e = Env::new("");
    let r = e.ingest("");
    assert_eq!(r.outcome, Outcome::Quarantined);
    assert_eq!(
        e.count("SELECT count(*) FROM quarantine WHERE raw IS NOT NULL"),
        1
    );
    assert_eq!(
        e.count("SELECT count(*) FROM events WHERE kind = 'message.quarantined'"),
        1
    );
}

#[test]
fn automatic_mail_on_one_ticket_stops_after_the_cap() {
    let mut e = Env::new("[acknowledge]\nmax_auto_per_ticket = 2\n");
    e.ingest(&mail(
        "ann@customer.test",
        "a1@customer.test",
        "Cannot log in",
        "",
        BODY_EN,
    ));
    let ack = e.ack_id(1);
    // The customer's robot answers our ack: one automatic message each way.
    e.ingest(&mail(
        "ann@customer.test",
        "ooo1@customer.test",
        "Auto: x",
        &format!("In-Reply-To: <{ack}>\nAuto-Submitted: auto-replied\n"),
        "Out of office.",
    ));
    // Any further automatic mail to the customer on this ticket is refused.
    let m = e.analyzer.analyze(RawMail {
        origin: Origin::Pipe,
        mailbox: None,
        direction: Direction::Inbound,
        arrived: None,
        bytes: mail("ann@customer.test", "a2@customer.test", "x", "", BODY_EN).into_bytes(),
    });
    let Work::Mail(m) = m else {
        panic!("not analyzed")
    };
    let mut plan = Plan {
        outcome: Outcome::Threaded,
        ticket: TicketChange::Update {
            id: 1,
            status: None,
        },
        store_message: true,
        language: None,
        participants: vec![],
        events: vec![],
        outbox: vec![plan::OutboxDraft {
            kind: "notice",
            dedup_suffix: ":reopened".into(),
            to: "ann@customer.test".into(),
            language: "en".into(),
            context: serde_json::json!({}),
            in_reply_to: None,
            references: vec![],
            automatic: true,
        }],
        mark_bouncing: vec![],
        clear_bouncing: None,
        ack: false,
        reason: String::new(),
    };
    let tx = e.store.conn.transaction().unwrap();
    apply(&tx, &m, &plan, &e.policy, e.now).unwrap();
    tx.commit().unwrap();
    assert_eq!(
        e.count("SELECT count(*) FROM outbox"),
        1,
        "only the first ack"
    );
    assert_eq!(
        e.count("SELECT count(*) FROM events WHERE kind = 'loop.stopped' AND ticket_id = 1"),
        1
    );
    // A person's mail is never braked.
    plan.outbox[0].automatic = false;
    plan.store_message = false;
    let tx = e.store.conn.transaction().unwrap();
    apply(&tx, &m, &plan, &e.policy, e.now).unwrap();
    tx.commit().unwrap();
    assert_eq!(e.count("SELECT count(*) FROM outbox"), 2);
}

#[test]
fn a_reply_to_our_alert_is_internal_and_leaves_the_ticket_alone() {
    let mut e = Env::new(
        "[[queues]]\nname = \"general\"\n[[queues.escalation]]\ncontacts = [\"lead@example.com\"]\n",
    );
    e.ingest(&mail(
        "ann@customer.test",
        "a1@customer.test",
        "Cannot log in",
        "",
        BODY_EN,
    ));
    // An escalation mail about ticket 1, as the SLA timer queues it.
    let alert_id = e.policy.key.mint(1, "example.com");
    crate::store::outbox::insert(
        &e.store.conn,
        &crate::store::outbox::NewRow {
            kind: "escalation",
            dedup_key: "escalation:1:1:1".into(),
            ticket_id: Some(1),
            mailbox: "support".into(),
            message_id: alert_id.clone(),
            to_addr: "lead@example.com".into(),
            cc_addrs: vec![],
            language: "en".into(),
            context: serde_json::json!({}),
            in_reply_to: None,
            references: vec![],
            automatic: true,
            due_at: e.now,
        },
        e.now,
    )
    .unwrap();
    let r = e.ingest(&mail(
        "lead@example.com",
        "lead-1@example.com",
        "Re: [PD-1] Escalation",
        &format!("In-Reply-To: <{alert_id}>\n"),
        "I am taking this one myself.",
    ));
    assert_eq!((r.outcome, r.ticket), (Outcome::Threaded, Some(1)), "{r:?}");
    assert!(r.reason.starts_with("internal"), "{}", r.reason);
    assert_eq!(
        e.status(1),
        "open",
        "the customer still waits for an answer"
    );
    assert_eq!(
        e.count("SELECT count(*) FROM events WHERE kind = 'agent.responded'"),
        0
    );
    assert_eq!(
        e.count("SELECT count(*) FROM events WHERE kind = 'alert.replied' AND ticket_id = 1"),
        1
    );
}
