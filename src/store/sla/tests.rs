//! Response clocks against a real SQLite database, the real pipeline and
//! a clock the tests move: warn → breach → escalation levels, restarts,
//! replies that stop and restart the clock, the reopen window, the agent
//! commands and the SLA queries.

use jiff::{SignedDuration, Timestamp};

use super::*;
use crate::mail::{Direction, Origin, RawMail};
use crate::pipeline::Analyzer;
use crate::plan::Outcome;
use crate::store::Store;
use crate::store::ingest::{IngestItem, IngestReport, SourceEffects, ingest_batch, test_policy};

/// A 24/7 UTC queue: 24 h first response, 8 h next response, warning at
/// 80 %, two escalation levels, a 7-day reopen window.
const QUEUE: &str = r#"
[[queues]]
name = "general"
timezone = "UTC"
hours = "24/7"
first_response = "24h"
next_response = "8h"
warn = "80%"
agents = ["@example.com"]
operator_language = "de"
reopen_within = "7d"
[[queues.escalation]]
after = "0m"
contacts = ["lead@example.com", "deputy@example.com"]
[[queues.escalation]]
after = "4h"
contacts = ["head@example.com"]
"#;

const T0: &str = "2026-11-22T10:00:00Z";

/// A database file, the policy and a clock the test moves.
struct Env {
    dir: tempfile::TempDir,
    store: Store,
    policy: Policy,
    analyzer: Analyzer,
    now: Timestamp,
}

impl Env {
    fn new(extra: &str) -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("pd.db")).expect("open store");
        let policy = test_policy(extra);
        let analyzer = Analyzer::new(&policy.config);
        Env {
            dir,
            store,
            policy,
            analyzer,
            now: T0.parse().expect("timestamp"),
        }
    }

    fn cfg(&self) -> &Config {
        &self.policy.config
    }

    /// Closes the database and opens it again: a daemon restart.
    fn restart(&mut self) {
        let path = self.dir.path().join("pd.db");
        self.store = Store::open(&path).expect("reopen store");
    }

    fn at(&mut self, t: &str) {
        self.now = t.parse().expect("timestamp");
    }

    fn later(&mut self, d: SignedDuration) {
        self.now = self.now.checked_add(d).expect("in range");
    }

    fn ingest_as(&mut self, bytes: &str, direction: Direction) -> IngestReport {
        self.ingest_arrived(bytes, direction, None)
    }

    /// Ingests mail the server says arrived at `arrived` (IMAP's
    /// INTERNALDATE, a Maildir file's time).
    fn ingest_arrived(
        &mut self,
        bytes: &str,
        direction: Direction,
        arrived: Option<Timestamp>,
    ) -> IngestReport {
        let raw = RawMail {
            origin: Origin::Pipe,
            mailbox: None,
            direction,
            arrived,
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
        .expect("ingest");
        r.pop().expect("one report")
    }

    fn ingest(&mut self, bytes: &str) -> IngestReport {
        self.ingest_as(bytes, Direction::Inbound)
    }

    fn fire(&mut self) -> FireReport {
        fire_due(&mut self.store.conn, &self.policy, self.now).expect("fire")
    }

    fn count(&self, sql: &str) -> i64 {
        self.store
            .conn
            .query_row(sql, [], |r| r.get(0))
            .expect("count")
    }

    fn clocks(&self, ticket: i64) -> Vec<Clock> {
        clocks(&self.store.conn, ticket)
            .expect("clocks")
            .into_iter()
            .map(|s| s.clock)
            .collect()
    }

    fn status(&self, ticket: i64) -> String {
        self.store
            .conn
            .query_row("SELECT status FROM tickets WHERE id = ?1", [ticket], |r| {
                r.get(0)
            })
            .expect("ticket")
    }

    /// Event kinds of a ticket that start with `sla.`, in order.
    fn sla_events(&self, ticket: i64) -> Vec<String> {
        let mut stmt = self
            .store
            .conn
            .prepare(
                "SELECT kind FROM events WHERE ticket_id = ?1 AND kind LIKE 'sla.%' ORDER BY id",
            )
            .expect("prepare");
        stmt.query_map([ticket], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    fn agent() -> Agent {
        Agent {
            user: Some("alice".into()),
            name: None,
        }
    }
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn mail(from: &str, id: &str, subject: &str, extra_headers: &str, body: &str) -> String {
    format!(
        "From: {from}\nTo: Support <support@example.com>\nSubject: {subject}\nMessage-ID: <{id}>\nDate: Sun, 22 Nov 2026 10:59:00 +0100\n{extra_headers}\n{body}\n"
    )
}

const BODY: &str =
    "Hello, I cannot log in to my account since this morning. Could you please help me reset it?";
const FOLLOW_UP: &str =
    "Thank you, but the reset link you sent does not work either. What else can I try?";

/// A new ticket from ann@customer.test; returns its number.
fn new_ticket(e: &mut Env) -> i64 {
    new_ticket_arrived(e, None)
}

/// The same, for mail the server says arrived at `arrived`.
fn new_ticket_arrived(e: &mut Env, arrived: Option<Timestamp>) -> i64 {
    let r = e.ingest_arrived(
        &mail(
            "Ann <ann@customer.test>",
            "a1@customer.test",
            "Cannot log in",
            "",
            BODY,
        ),
        Direction::Inbound,
        arrived,
    );
    assert_eq!(r.outcome, Outcome::Created, "{r:?}");
    r.ticket.expect("ticket")
}

#[test]
fn a_new_ticket_starts_the_first_response_clock() {
    let mut e = Env::new(QUEUE);
    let t = new_ticket(&mut e);
    let c = e.clocks(t);
    assert_eq!(c.len(), 1);
    let c = &c[0];
    assert_eq!((c.seq, c.kind), (1, ClockKind::First));
    assert_eq!(c.started_at, ts(T0));
    assert_eq!(c.warn_at, ts("2026-11-23T05:12:00Z"));
    assert_eq!(c.due_at, ts("2026-11-23T10:00:00Z"));
    assert!(c.is_running() && c.notify);
    assert_eq!(e.sla_events(t), vec![event::CLOCK_STARTED]);
    assert_eq!(
        next_due(&e.store.conn).expect("next"),
        Some(ts("2026-11-23T05:12:00Z"))
    );
}

#[test]
fn warn_then_breach_then_level_2_each_once() {
    let mut e = Env::new(QUEUE);
    let t = new_ticket(&mut e);

    e.at("2026-11-22T11:00:00Z");
    let r = e.fire();
    assert!(r.fired.is_empty());
    assert_eq!(r.next, Some(ts("2026-11-23T05:12:00Z")));

    e.at("2026-11-23T05:12:00Z");
    let r = e.fire();
    assert_eq!(r.fired.len(), 1);
    assert_eq!(r.fired[0].action, Action::Warn);
    assert_eq!(r.queued(), 1);
    assert_eq!(r.next, Some(ts("2026-11-23T10:00:00Z")));
    let (to, cc, lang, ctx, automatic): (String, String, String, String, bool) = e
        .store
        .conn
        .query_row(
            "SELECT to_addr, cc_addrs, language, context, automatic FROM outbox WHERE dedup_key = ?1",
            [format!("warning:{t}:1")],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .expect("warning row");
    assert_eq!(to, "lead@example.com");
    assert_eq!(cc, r#"["deputy@example.com"]"#);
    assert_eq!(lang, "de", "the queue's operator language");
    assert!(automatic);
    let ctx: serde_json::Value = serde_json::from_str(&ctx).expect("json");
    assert_eq!(ctx["ticket"], "PD-1");
    assert_eq!(ctx["queue"], "general");
    assert_eq!(ctx["clock"], "first-response");
    assert_eq!(ctx["level"], 0);
    assert_eq!(ctx["customer_address"], "ann@customer.test");
    assert_eq!(ctx["customer_name"], "Ann");
    assert_eq!(ctx["language"], "en");
    assert_eq!(ctx["age"], "19 h 12 min");
    assert_eq!(ctx["due_local"], "Mon 2026-11-23 10:00 UTC");
    assert_eq!(ctx["due_utc"], "Mon 2026-11-23 10:00");
    assert_eq!(ctx["mailbox_address"], "support@example.com");
    assert!(
        ctx["excerpt"]
            .as_str()
            .is_some_and(|x| x.contains("cannot log in")),
        "{ctx}"
    );

    // The same moment again: nothing new.
    assert!(e.fire().fired.is_empty());

    e.at("2026-11-23T10:00:00Z");
    let r = e.fire();
    assert_eq!(
        r.fired.iter().map(|f| f.action).collect::<Vec<_>>(),
        vec![Action::Breach, Action::Escalate(1)]
    );
    assert_eq!(r.next, Some(ts("2026-11-23T14:00:00Z")));

    e.at("2026-11-23T14:00:00Z");
    let r = e.fire();
    assert_eq!(
        r.fired.iter().map(|f| f.action).collect::<Vec<_>>(),
        vec![Action::Escalate(2)]
    );
    assert_eq!(r.next, None, "nothing after the last level");
    let head: String = e
        .store
        .conn
        .query_row(
            "SELECT to_addr FROM outbox WHERE dedup_key = ?1",
            [format!("escalation:{t}:1:2")],
            |r| r.get(0),
        )
        .expect("level 2 row");
    assert_eq!(head, "head@example.com");

    e.at("2026-11-30T00:00:00Z");
    assert!(e.fire().fired.is_empty());
    assert_eq!(
        e.count("SELECT count(*) FROM outbox WHERE kind IN ('warning', 'escalation')"),
        3
    );
    assert_eq!(
        e.sla_events(t),
        vec![
            event::CLOCK_STARTED,
            event::WARNING,
            event::BREACHED,
            event::ESCALATED,
            event::ESCALATED
        ]
    );
    // Alerts to our own team do not count towards the customer loop brake.
    assert_eq!(e.count("SELECT count(*) FROM outbox WHERE kind = 'ack'"), 1);
}

#[test]
fn a_restart_between_warning_and_breach_sends_nothing_twice() {
    let mut e = Env::new(QUEUE);
    let t = new_ticket(&mut e);
    e.at("2026-11-23T06:00:00Z");
    assert_eq!(e.fire().queued(), 1);

    e.restart();
    e.later(SignedDuration::from_mins(1));
    assert!(e.fire().fired.is_empty(), "the warning is done");

    // Even with the bookkeeping lost, the outbox's dedup key holds.
    e.store
        .conn
        .execute(
            "UPDATE sla_clocks SET warned_at = NULL, next_at = ?1 WHERE ticket_id = ?2",
            params![to_ms(ts("2026-11-23T05:12:00Z")), t],
        )
        .expect("forget");
    let r = e.fire();
    assert_eq!(r.fired.len(), 1);
    assert_eq!(r.queued(), 0, "already queued");
    assert_eq!(
        e.count("SELECT count(*) FROM outbox WHERE kind = 'warning'"),
        1
    );

    e.restart();
    e.at("2026-11-23T10:00:01Z");
    assert_eq!(e.fire().queued(), 1);
    e.restart();
    assert_eq!(e.fire().queued(), 0);
    assert_eq!(
        e.count("SELECT count(*) FROM outbox WHERE kind = 'escalation'"),
        1
    );
}

#[test]
fn a_timer_down_past_the_due_time_skips_the_warning() {
    let mut e = Env::new(QUEUE);
    let t = new_ticket(&mut e);
    e.at("2026-11-24T00:00:00Z");
    let r = e.fire();
    assert_eq!(
        r.fired.iter().map(|f| f.action).collect::<Vec<_>>(),
        vec![
            Action::SkipWarning,
            Action::Breach,
            Action::Escalate(1),
            Action::Escalate(2)
        ]
    );
    assert_eq!(
        e.count("SELECT count(*) FROM outbox WHERE kind = 'warning'"),
        0
    );
    assert_eq!(
        e.count("SELECT count(*) FROM outbox WHERE kind = 'escalation'"),
        2
    );
    assert_eq!(
        e.sla_events(t).get(1).map(String::as_str),
        Some(event::WARNING_SKIPPED)
    );
}

#[test]
fn a_cli_reply_stops_the_clock_and_a_customer_reply_starts_the_next() {
    let mut e = Env::new(QUEUE);
    let t = new_ticket(&mut e);
    e.at("2026-11-22T12:00:00Z");
    let q = queue_reply(
        &mut e.store.conn,
        &e.policy,
        t,
        "Hello Ann,\n\nplease try the link below.\n",
        &Env::agent(),
        e.now,
    )
    .expect("reply");
    assert_eq!(q.to, "ann@customer.test");
    assert_eq!(q.in_reply_to.as_deref(), Some("a1@customer.test"));
    assert_eq!(q.stopped_clock, Some(1));
    assert_eq!(e.status(t), "waiting");
    let (kind, refs, automatic, ctx): (String, String, bool, String) = e
        .store
        .conn
        .query_row(
            "SELECT kind, refs, automatic, context FROM outbox WHERE id = ?1",
            [q.outbox],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .expect("reply row");
    assert_eq!(kind, "reply");
    assert_eq!(refs, r#"["a1@customer.test"]"#);
    assert!(!automatic, "an agent's reply is not robot mail");
    let ctx: serde_json::Value = serde_json::from_str(&ctx).expect("json");
    assert_eq!(ctx["ticket"], "PD-1");
    assert_eq!(ctx["subject"], "Cannot log in");
    assert_eq!(e.policy.key.verify(&q.message_id), Some(t));

    let c = e.clocks(t);
    let stopped = c[0].stopped.expect("stopped");
    assert_eq!((stopped.at, stopped.reason), (e.now, StopReason::Responded));
    assert_eq!(next_due(&e.store.conn).expect("next"), None);

    // Nothing fires while the ticket waits on the customer.
    e.at("2026-11-25T00:00:00Z");
    assert!(e.fire().fired.is_empty());

    // The customer answers our reply: the next-response clock (8 h) starts.
    let r = e.ingest(&mail(
        "Ann <ann@customer.test>",
        "a2@customer.test",
        "Re: [PD-1] Cannot log in",
        &format!("In-Reply-To: <{}>", q.message_id),
        FOLLOW_UP,
    ));
    assert_eq!((r.outcome, r.ticket), (Outcome::Threaded, Some(t)), "{r:?}");
    assert_eq!(e.status(t), "open");
    let c = e.clocks(t);
    assert_eq!(c.len(), 2);
    assert_eq!((c[1].seq, c[1].kind), (2, ClockKind::Next));
    assert_eq!(c[1].due_at, ts("2026-11-25T08:00:00Z"));
    // Writing again while we owe the answer changes nothing.
    e.later(SignedDuration::from_hours(1));
    e.ingest(&mail(
        "Ann <ann@customer.test>",
        "a3@customer.test",
        "Re: [PD-1] Cannot log in",
        &format!("In-Reply-To: <{}>", q.message_id),
        "One more detail: I use the mobile app on Android.",
    ));
    assert_eq!(e.clocks(t).len(), 2);

    // Its alerts carry the new clock's sequence number.
    e.at("2026-11-25T08:00:00Z");
    e.fire();
    assert_eq!(
        e.count(&format!(
            "SELECT count(*) FROM outbox WHERE dedup_key = 'escalation:{t}:2:1'"
        )),
        1
    );
}

#[test]
fn agent_mail_and_sent_folder_copies_stop_the_clock() {
    // Our Message-IDs in their own domain: an agent's mail client names
    // its messages after the company domain, and mail with a Message-ID in
    // postdesk's own domain counts as our own mail coming back.
    let mut e = Env::new(&format!(
        "[security]\nmessage_id_domain = \"postdesk.example.com\"\n{QUEUE}"
    ));
    let t = new_ticket(&mut e);
    e.later(SignedDuration::from_hours(1));
    // An agent answers from their own client, copying the support address.
    let r = e.ingest(&mail(
        "Bob <bob@example.com>",
        "b1@example.com",
        "Re: Cannot log in",
        "In-Reply-To: <a1@customer.test>",
        "Hi Ann, we reset your password. Please check your inbox.",
    ));
    assert_eq!(r.outcome, Outcome::Threaded, "{r:?}");
    assert_eq!(e.status(t), "waiting");
    let c = e.clocks(t);
    assert_eq!(c[0].stopped.map(|s| s.reason), Some(StopReason::Responded));

    // The customer writes again; then the shared mailbox's Sent folder
    // shows our answer (an outbound message): the clock stops again.
    e.later(SignedDuration::from_hours(1));
    e.ingest(&mail(
        "Ann <ann@customer.test>",
        "a2@customer.test",
        "Re: Cannot log in",
        "In-Reply-To: <b1@example.com>",
        FOLLOW_UP,
    ));
    assert!(e.clocks(t)[1].is_running());
    e.later(SignedDuration::from_hours(1));
    let sent = "From: Support <support@example.com>\nTo: ann@customer.test\nSubject: Re: [PD-1] Cannot log in\nMessage-ID: <s1@example.com>\nIn-Reply-To: <a2@customer.test>\nDate: Sun, 22 Nov 2026 13:00:00 +0000\n\nHi Ann, the new link is valid for a day.\n";
    let r = e.ingest_as(sent, Direction::Outbound);
    assert_eq!(r.outcome, Outcome::Threaded, "{r:?}");
    let c = e.clocks(t);
    assert_eq!(c.len(), 2);
    assert_eq!(c[1].stopped.map(|s| s.at), Some(e.now));
    assert_eq!(e.status(t), "waiting");
}

#[test]
fn a_reply_to_a_closed_ticket_within_the_window_reopens_it() {
    let mut e = Env::new(QUEUE);
    let t = new_ticket(&mut e);
    e.later(SignedDuration::from_hours(1));
    assert_eq!(
        close(&mut e.store.conn, &e.policy.config, t, &Env::agent(), e.now).expect("close"),
        StatusChange::Done { clock: Some(1) }
    );
    assert_eq!(
        e.clocks(t)[0].stopped.map(|s| s.reason),
        Some(StopReason::Closed)
    );
    // Six days later (window: 7 days) the customer writes again.
    e.later(SignedDuration::from_hours(6 * 24));
    let r = e.ingest(&mail(
        "Ann <ann@customer.test>",
        "a2@customer.test",
        "Re: Cannot log in",
        "In-Reply-To: <a1@customer.test>",
        FOLLOW_UP,
    ));
    assert_eq!((r.outcome, r.ticket), (Outcome::Threaded, Some(t)), "{r:?}");
    assert_eq!(e.status(t), "open");
    let c = e.clocks(t);
    assert_eq!(c.len(), 2);
    assert_eq!((c[1].kind, c[1].started_at), (ClockKind::Next, e.now));
    assert!(c[1].is_running());
}

#[test]
fn a_reply_after_the_window_opens_a_new_linked_ticket_with_its_own_clock() {
    let mut e = Env::new(QUEUE);
    let t = new_ticket(&mut e);
    e.later(SignedDuration::from_hours(1));
    close(&mut e.store.conn, &e.policy.config, t, &Env::agent(), e.now).expect("close");
    e.later(SignedDuration::from_hours(8 * 24));
    let r = e.ingest(&mail(
        "Ann <ann@customer.test>",
        "a2@customer.test",
        "Re: Cannot log in",
        "In-Reply-To: <a1@customer.test>",
        FOLLOW_UP,
    ));
    assert_eq!(r.outcome, Outcome::Created, "{r:?}");
    let new = r.ticket.expect("ticket");
    assert_ne!(new, t);
    assert_eq!(e.status(t), "closed");
    assert_eq!(e.clocks(t).len(), 1, "the old ticket's clock stays stopped");
    let c = e.clocks(new);
    assert_eq!(c.len(), 1);
    assert_eq!((c[0].kind, c[0].started_at), (ClockKind::First, e.now));
}

#[test]
fn agent_commands_change_status_and_clock_in_one_go() {
    let mut e = Env::new(QUEUE);
    let t = new_ticket(&mut e);
    let cfg = e.cfg().clone();
    let a = Env::agent();

    add_note(
        &mut e.store.conn,
        &cfg,
        t,
        "Called her back, no answer.",
        &a,
        e.now,
    )
    .expect("note");
    assert!(e.clocks(t)[0].is_running(), "a note is not a response");
    assert_eq!(
        e.count(
            "SELECT count(*) FROM events WHERE kind = 'ticket.note' AND detail LIKE '%no answer%'"
        ),
        1
    );
    assert_eq!(
        e.count("SELECT count(*) FROM outbox WHERE kind != 'ack'"),
        0
    );
    assert!(matches!(
        add_note(&mut e.store.conn, &cfg, t, "  \n", &a, e.now),
        Err(AgentError::Empty)
    ));
    assert!(matches!(
        add_note(&mut e.store.conn, &cfg, 99, "x", &a, e.now),
        Err(AgentError::NoTicket(_))
    ));

    assert_eq!(
        reopen(&mut e.store.conn, &cfg, t, &a, e.now).expect("reopen"),
        StatusChange::Already
    );
    close(&mut e.store.conn, &cfg, t, &a, e.now).expect("close");
    assert_eq!(
        close(&mut e.store.conn, &cfg, t, &a, e.now).expect("close"),
        StatusChange::Already
    );
    let err = queue_reply(&mut e.store.conn, &e.policy, t, "Hi", &a, e.now).unwrap_err();
    assert!(err.to_string().contains("postdesk reopen PD-1"), "{err}");

    e.later(SignedDuration::from_hours(1));
    assert_eq!(
        reopen(&mut e.store.conn, &cfg, t, &a, e.now).expect("reopen"),
        StatusChange::Done { clock: Some(2) }
    );
    assert_eq!(e.status(t), "open");
    assert!(e.clocks(t)[1].is_running());
    assert_eq!(
        e.clocks(t)[1].due_at,
        ts("2026-11-22T19:00:00Z"),
        "8 h next response"
    );

    queue_reply(&mut e.store.conn, &e.policy, t, "Done.", &a, e.now).expect("reply");
    let err = reopen(&mut e.store.conn, &cfg, t, &a, e.now).unwrap_err();
    assert!(err.to_string().contains("is waiting"), "{err}");
}

#[test]
fn old_mail_gets_a_clock_but_no_alert_mails() {
    let mut e = Env::new(&format!("{QUEUE}\n[acknowledge]\nmax_age = \"3d\"\n"));
    let old = "From: Old <old@customer.test>\nTo: support@example.com\nSubject: Printer\nMessage-ID: <o1@customer.test>\nDate: Mon, 02 Mar 2020 10:00:00 +0000\n\nThe printer on floor two is jammed again, can someone come and look at it?\n";
    let r = e.ingest(old);
    let t = r.ticket.expect("ticket");
    let c = e.clocks(t);
    assert!(!c[0].notify);
    e.at("2026-11-24T00:00:00Z");
    let r = e.fire();
    assert_eq!(r.fired.len(), 4);
    assert_eq!(r.queued(), 0);
    assert_eq!(
        e.count("SELECT count(*) FROM outbox WHERE kind IN ('warning', 'escalation')"),
        0
    );
    assert_eq!(
        e.count("SELECT count(*) FROM events WHERE kind = 'sla.escalated' AND detail LIKE '%acknowledge.max_age%'"),
        2
    );
}

#[test]
fn a_queue_without_contacts_records_alerts_without_mail() {
    let mut e = Env::new("");
    let t = new_ticket(&mut e);
    e.at("2026-11-23T06:00:00Z");
    let r = e.fire();
    assert_eq!((r.fired.len(), r.queued()), (1, 0));
    let detail: String = e
        .store
        .conn
        .query_row(
            "SELECT detail FROM events WHERE kind = 'sla.warning' AND ticket_id = ?1",
            [t],
            |r| r.get(0),
        )
        .expect("event");
    assert!(detail.contains("[[queues.escalation]]"), "{detail}");
    e.at("2026-11-23T10:00:00Z");
    assert_eq!(
        e.fire().fired.iter().map(|f| f.action).collect::<Vec<_>>(),
        vec![Action::Breach]
    );
}

#[test]
fn reconcile_gives_open_tickets_a_clock_and_follows_config_changes() {
    let mut e = Env::new(QUEUE);
    let t = new_ticket(&mut e);
    // A ticket from before the clock existed.
    e.store
        .conn
        .execute("DELETE FROM sla_clocks", [])
        .expect("delete");
    e.later(SignedDuration::from_hours(2));
    assert_eq!(
        reconcile(&mut e.store.conn, &e.policy.config, e.now).expect("reconcile"),
        1
    );
    let c = e.clocks(t);
    assert_eq!(
        (c.len(), c[0].kind, c[0].started_at),
        (1, ClockKind::First, e.now)
    );
    assert_eq!(
        reconcile(&mut e.store.conn, &e.policy.config, e.now).expect("reconcile"),
        0,
        "idempotent"
    );

    // After the breach and level 1, the operator removes level 2: the
    // clock has nothing more to do.
    e.at("2026-11-23T12:00:00Z");
    e.fire();
    assert!(next_due(&e.store.conn).expect("next").is_some());
    let less = test_policy(&QUEUE.replace(
        "[[queues.escalation]]\nafter = \"4h\"\ncontacts = [\"head@example.com\"]\n",
        "",
    ));
    reconcile(&mut e.store.conn, &less.config, e.now).expect("reconcile");
    assert_eq!(next_due(&e.store.conn).expect("next"), None);

    // A running clock on a ticket that is no longer open is stopped.
    e.store
        .conn
        .execute("UPDATE tickets SET status = 'waiting' WHERE id = ?1", [t])
        .expect("update");
    assert_eq!(
        reconcile(&mut e.store.conn, &e.policy.config, e.now).expect("reconcile"),
        1
    );
    assert!(!e.clocks(t)[0].is_running());
}

#[test]
fn running_clocks_and_queue_figures() {
    let mut e = Env::new(QUEUE);
    let first = new_ticket(&mut e);
    e.at("2026-11-22T20:00:00Z");
    let r = e.ingest(&mail(
        "Carl <carl@customer.test>",
        "c1@customer.test",
        "Invoice wrong",
        "",
        "Hello, the invoice for November lists two licences but we only have one. Please fix it.",
    ));
    let second = r.ticket.expect("ticket");
    e.at("2026-11-23T06:00:00Z");
    let rows = running_clocks(&e.store.conn, None, e.now).expect("rows");
    assert_eq!(
        rows.iter().map(|r| (r.ticket, r.phase)).collect::<Vec<_>>(),
        vec![(first, Phase::DueSoon), (second, Phase::Running)]
    );
    e.at("2026-11-23T18:00:00Z");
    let figures = queue_sla(&e.store.conn, e.now).expect("figures");
    assert_eq!(
        figures,
        vec![QueueSla {
            queue: "general".into(),
            due_soon: 1,
            breached: 1,
            oldest_unanswered: Some(first),
            oldest_unanswered_since: Some(ts(T0)),
        }]
    );
    assert!(
        running_clocks(&e.store.conn, Some("other"), e.now)
            .expect("rows")
            .is_empty()
    );
}

#[test]
fn reply_subjects_lose_prefixes_and_our_tag() {
    assert_eq!(base_subject("Re: AW: [PD-4] Re: Login", "PD-4"), "Login");
    assert_eq!(base_subject("Login", "PD-4"), "Login");
    assert_eq!(base_subject("Report: numbers", "PD-4"), "Report: numbers");
    assert_eq!(base_subject("re:", "PD-4"), "");
}

#[test]
fn mail_ingested_late_counts_from_its_arrival_at_the_server() {
    let mut e = Env::new(QUEUE);
    // postdesk was down: the customer's mail reached the server at T0 and
    // is ingested three hours later. The customer has waited since T0.
    e.later(SignedDuration::from_hours(3));
    let t = new_ticket_arrived(&mut e, Some(ts(T0)));
    let c = &e.clocks(t)[0];
    assert_eq!(c.started_at, ts(T0));
    assert_eq!(c.due_at, ts("2026-11-23T10:00:00Z"));

    // An agent answered from the shared mailbox at T0 + 20 h; the Sent
    // folder is synced only after the due time. The answer was in time.
    e.at("2026-11-23T12:00:00Z");
    let sent = "From: Support <support@example.com>\nTo: ann@customer.test\nSubject: Re: [PD-1] Cannot log in\nMessage-ID: <s1@example.com>\nIn-Reply-To: <a1@customer.test>\nDate: Mon, 23 Nov 2026 06:00:00 +0000\n\nHi Ann, we reset your password.\n";
    let r = e.ingest_arrived(sent, Direction::Outbound, Some(ts("2026-11-23T06:00:00Z")));
    assert_eq!(r.outcome, Outcome::Threaded, "{r:?}");
    let c = &e.clocks(t)[0];
    assert_eq!(c.stopped.map(|s| s.at), Some(ts("2026-11-23T06:00:00Z")));
    assert_eq!(c.phase(e.now), Phase::Met);

    // A time from the server never moves a clock before the one it
    // follows, nor into the future.
    e.at("2026-11-23T14:00:00Z");
    e.ingest_arrived(
        &mail(
            "Ann <ann@customer.test>",
            "a2@customer.test",
            "Re: Cannot log in",
            "In-Reply-To: <s1@example.com>",
            FOLLOW_UP,
        ),
        Direction::Inbound,
        Some(ts("2026-11-23T01:00:00Z")),
    );
    let c = e.clocks(t);
    assert_eq!(c[1].started_at, ts("2026-11-23T06:00:00Z"));
    let r = e.ingest_arrived(
        &mail(
            "Ann <ann@customer.test>",
            "a3@customer.test",
            "Another question",
            "",
            "And how do I change the e-mail address of my account, please?",
        ),
        Direction::Inbound,
        Some(ts("2026-12-01T00:00:00Z")),
    );
    let c = &e.clocks(r.ticket.expect("ticket"))[0];
    assert_eq!(c.started_at, e.now);

    // Old mail (older than acknowledge.max_age) counts from now: an
    // import of an old inbox must not breach on arrival.
    let r = e.ingest_arrived(
        &mail(
            "Bo <bo@customer.test>",
            "b9@customer.test",
            "Invoice question",
            "",
            "Could you send me the invoice for October again, please?",
        ),
        Direction::Inbound,
        Some(ts("2026-11-01T00:00:00Z")),
    );
    let c = &e.clocks(r.ticket.expect("ticket"))[0];
    assert_eq!(c.started_at, e.now);
    assert!(!c.notify);
}

#[test]
fn an_answer_found_late_does_not_swallow_the_customer_mail_after_it() {
    let mut e = Env::new(QUEUE);
    let t = new_ticket_arrived(&mut e, Some(ts(T0)));
    // The agent answered at T0 + 1 h; Ann wrote again at T0 + 2 h. The inbox
    // is synced first, the Sent folder an hour later.
    e.at("2026-11-22T12:00:00Z");
    e.ingest_arrived(
        &mail(
            "Ann <ann@customer.test>",
            "a2@customer.test",
            "Re: Cannot log in",
            "In-Reply-To: <a1@customer.test>",
            FOLLOW_UP,
        ),
        Direction::Inbound,
        Some(ts("2026-11-22T12:00:00Z")),
    );
    assert_eq!(e.clocks(t).len(), 1, "one answer is owed, one clock runs");
    e.at("2026-11-22T13:00:00Z");
    let sent = "From: Support <support@example.com>\nTo: ann@customer.test\nSubject: Re: [PD-1] Cannot log in\nMessage-ID: <s1@example.com>\nIn-Reply-To: <a1@customer.test>\nDate: Sun, 22 Nov 2026 11:00:00 +0000\n\nHi Ann, we reset your password.\n";
    let r = e.ingest_arrived(sent, Direction::Outbound, Some(ts("2026-11-22T11:00:00Z")));
    assert_eq!(r.outcome, Outcome::Threaded, "{r:?}");
    let c = e.clocks(t);
    assert_eq!(c.len(), 2, "{c:?}");
    assert_eq!(c[0].stopped.map(|s| s.at), Some(ts("2026-11-22T11:00:00Z")));
    assert_eq!(
        (c[1].kind, c[1].started_at),
        (ClockKind::Next, ts("2026-11-22T12:00:00Z"))
    );
    assert!(c[1].is_running());
    assert_eq!(e.status(t), "open", "the ticket waits on us, not on Ann");

    // An answer that is found in time changes nothing of the kind.
    e.at("2026-11-22T14:00:00Z");
    let sent = "From: Support <support@example.com>\nTo: ann@customer.test\nSubject: Re: [PD-1] Cannot log in\nMessage-ID: <s2@example.com>\nIn-Reply-To: <a2@customer.test>\nDate: Sun, 22 Nov 2026 14:00:00 +0000\n\nHi Ann, here is a new link.\n";
    e.ingest_arrived(sent, Direction::Outbound, Some(ts("2026-11-22T14:00:00Z")));
    let c = e.clocks(t);
    assert_eq!(c.len(), 2);
    assert!(!c[1].is_running());
    assert_eq!(e.status(t), "waiting");
}
