//! The timer task on a real database with targets of milliseconds: a
//! ticket goes through warning, breach and both escalation levels in well
//! under a second. Waits are deadlines on observable state, never fixed
//! sleeps; what is asserted is order, exactly-once and "never early", not
//! how fast the machine is. (Paused tokio time would need tokio's
//! `test-util` feature, which this crate does not enable.)

use std::path::Path;

use rusqlite::Connection;

use super::*;
use crate::health::Health;
use crate::mail::{Direction, Origin, RawMail};
use crate::pipeline::Analyzer;
use crate::store::ingest::{IngestItem, SourceEffects, ingest_batch, test_policy};

/// A 24/7 queue whose targets are fractions of a second: warning at
/// 200 ms, due at 400 ms, level 1 at once, level 2 200 ms later.
const FAST: &str = r#"
[[queues]]
name = "general"
timezone = "Europe/Berlin"
hours = "24/7"
first_response = "400ms"
next_response = "400ms"
warn = "50%"
[[queues.escalation]]
after = "0s"
contacts = ["lead@example.com"]
[[queues.escalation]]
after = "200ms"
contacts = ["head@example.com"]
"#;

/// How long a test waits for something that takes milliseconds.
const DEADLINE: Duration = Duration::from_secs(20);

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

/// A customer's message written just now. The Date must be recent: mail
/// older than `acknowledge.max_age` is an old import, whose clock sends no
/// alerts (a fixed date here made these tests fail once it was 3 days old).
fn mail(id: &str) -> RawMail {
    let date = Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%a, %d %b %Y %H:%M:%S +0000");
    let text = format!(
        "From: Ann <ann@customer.test>\nTo: support@example.com\nSubject: Cannot log in\nMessage-ID: <{id}>\nDate: {date}\n\nHello, I cannot log in to my account since this morning. Could you please help me?\n"
    );
    RawMail {
        origin: Origin::Pipe,
        mailbox: None,
        direction: Direction::Inbound,
        arrived: None,
        bytes: text.replace('\n', "\r\n").into_bytes(),
    }
}

/// Ingests one message on the writer thread, now.
async fn ingest(store: &StoreHandle, policy: &Arc<Policy>, raw: RawMail) {
    let analyzer = Analyzer::new(&policy.config);
    let item = IngestItem {
        work: analyzer.analyze(raw),
        effects: SourceEffects::default(),
    };
    let policy = policy.clone();
    store
        .call(move |c| ingest_batch(c, &[item], &policy, Timestamp::now(), false))
        .await
        .expect("ingest");
}

/// An alert event: its kind, when it happened, when it was scheduled.
#[derive(Debug)]
struct Seen {
    kind: String,
    at: Timestamp,
    scheduled_for: Option<Timestamp>,
    due_at: Option<Timestamp>,
}

fn alerts(path: &Path) -> Vec<Seen> {
    let conn = Connection::open(path).expect("read connection");
    let mut stmt = conn
        .prepare("SELECT kind, at, detail FROM events WHERE kind IN ('sla.warning', 'sla.breached', 'sla.escalated') ORDER BY id")
        .expect("prepare");
    let time = |d: &serde_json::Value, k: &str| {
        d.get(k)
            .and_then(|v| serde_json::from_value::<Timestamp>(v.clone()).ok())
    };
    stmt.query_map([], |r| {
        let detail: String = r.get(2)?;
        let detail: serde_json::Value = serde_json::from_str(&detail).unwrap_or_default();
        Ok(Seen {
            kind: r.get(0)?,
            at: crate::store::from_ms(r.get(1)?),
            scheduled_for: time(&detail, "scheduled_for"),
            due_at: time(&detail, "due_at"),
        })
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

fn outbox_keys(path: &Path) -> Vec<String> {
    let conn = Connection::open(path).expect("read connection");
    let mut stmt = conn
        .prepare("SELECT dedup_key FROM outbox WHERE kind IN ('warning', 'escalation') ORDER BY id")
        .expect("prepare");
    stmt.query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// Waits until `done` holds, polling; panics with `what` at the deadline.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A timer task under test and its handles.
struct Running {
    stop: CancellationToken,
    wake: Arc<Notify>,
    outbox_wake: Arc<Notify>,
    policy: watch::Sender<Arc<Policy>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("the timer ends when stopped")
            .expect("the timer does not panic");
    }
}

fn start(store: &StoreHandle, policy: &Arc<Policy>, step: Duration) -> Running {
    let (tx, rx) = watch::channel(policy.clone());
    let stop = CancellationToken::new();
    let wake = Arc::new(Notify::new());
    let outbox_wake = Arc::new(Notify::new());
    let timer = Timer {
        store: store.clone(),
        policy: rx,
        wake: wake.clone(),
        outbox_wake: outbox_wake.clone(),
        heartbeat: Health::new().register("sla-timer"),
        stop: stop.clone(),
        step,
    };
    Running {
        stop,
        wake,
        outbox_wake,
        policy: tx,
        task: tokio::spawn(run(timer, Timestamp::now)),
    }
}

async fn open(dir: &tempfile::TempDir) -> (StoreHandle, std::path::PathBuf) {
    let path = dir.path().join("pd.db");
    (StoreHandle::open(&path).await.expect("store"), path)
}

#[tokio::test]
async fn warn_breach_and_level_2_in_milliseconds_each_once_never_early() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, path) = open(&dir).await;
    let policy = Arc::new(test_policy(FAST));
    ingest(&store, &policy, mail("a1@customer.test")).await;
    let running = start(&store, &policy, Duration::from_millis(50));

    until("escalation level 2", || outbox_keys(&path).len() == 3).await;
    assert_eq!(
        outbox_keys(&path),
        vec!["warning:1:1", "escalation:1:1:1", "escalation:1:1:2"]
    );
    let seen = alerts(&path);
    let kinds: Vec<&str> = seen.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            "sla.warning",
            "sla.breached",
            "sla.escalated",
            "sla.escalated"
        ]
    );
    for s in &seen {
        let scheduled = s.scheduled_for.or(s.due_at).expect("a scheduled time");
        // Stored times are whole milliseconds.
        assert!(
            s.at.as_millisecond() >= scheduled.as_millisecond(),
            "{s:?} fired early"
        );
    }
    let due = seen[1].due_at.expect("due");
    assert_eq!(
        seen[3].scheduled_for.map(|t| t.duration_since(due)),
        Some(jiff::SignedDuration::from_millis(200)),
        "level 2 is 200 ms after the due time"
    );
    running.stop().await;
}

#[tokio::test]
async fn a_wake_up_brings_in_a_new_clock_and_a_restart_repeats_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, path) = open(&dir).await;
    let slow = FAST
        .replace("first_response = \"400ms\"", "first_response = \"3s\"")
        .replace("warn = \"50%\"", "warn = \"10%\"");
    let policy = Arc::new(test_policy(&slow));
    // With no clock and an hour between looks, only a wake-up can make the
    // timer notice the new ticket in time.
    let running = start(&store, &policy, Duration::from_secs(3600));
    ingest(&store, &policy, mail("a1@customer.test")).await;
    running.wake.notify_one();
    until("the warning", || outbox_keys(&path).len() == 1).await;
    // The queued mail woke the outbox sender.
    tokio::time::timeout(DEADLINE, running.outbox_wake.notified())
        .await
        .expect("the outbox sender is woken");

    // A restart (most likely between warning and breach): nothing is
    // queued twice, and the rest still comes.
    running.stop().await;
    let running = start(&store, &policy, Duration::from_millis(50));
    until("escalation level 2", || outbox_keys(&path).len() >= 3).await;
    assert_eq!(
        outbox_keys(&path),
        vec!["warning:1:1", "escalation:1:1:1", "escalation:1:1:2"]
    );
    assert_eq!(
        alerts(&path)
            .iter()
            .filter(|s| s.kind == "sla.warning")
            .count(),
        1
    );
    running.stop().await;
}

#[tokio::test]
async fn a_new_config_is_applied_to_running_clocks() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, path) = open(&dir).await;
    let long_level_2 = FAST.replace("after = \"200ms\"", "after = \"1h\"");
    let policy = Arc::new(test_policy(&long_level_2));
    ingest(&store, &policy, mail("a1@customer.test")).await;
    let running = start(&store, &policy, Duration::from_secs(3600));
    until("escalation level 1", || outbox_keys(&path).len() == 2).await;
    // Level 2 (an hour away) is removed from the config.
    let without = test_policy(&long_level_2.replace(
        "[[queues.escalation]]\nafter = \"1h\"\ncontacts = [\"head@example.com\"]\n",
        "",
    ));
    running
        .policy
        .send(Arc::new(without))
        .expect("the timer listens");
    let mut next = Some(Timestamp::MAX);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while next.is_some() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
        next = store.call(|c| sla::next_due(c)).await.expect("next");
    }
    assert_eq!(next, None, "nothing is left to do");
    running.stop().await;
}

#[test]
fn waits_are_capped_by_the_step() {
    let now = ts("2026-11-22T10:00:00Z");
    let step = Duration::from_secs(5);
    assert_eq!(wait_for(None, now, step), step);
    assert_eq!(
        wait_for(Some(ts("2026-11-22T10:00:02Z")), now, step),
        Duration::from_secs(2)
    );
    assert_eq!(wait_for(Some(ts("2026-11-22T11:00:00Z")), now, step), step);
    assert_eq!(
        wait_for(Some(ts("2026-11-22T09:00:00Z")), now, step),
        Duration::ZERO
    );
}

#[test]
fn excerpts_are_cut_on_characters() {
    assert_eq!(excerpt("  short  ", 10), "short");
    assert_eq!(excerpt("äöüäöüäöüäöü", 5), "äöüä…");
    assert_eq!(excerpt("one two three", 5), "one…");
}

#[test]
fn alert_times_are_in_the_queue_zone_and_utc() {
    let policy = test_policy(
        "[[queues]]\nname = \"general\"\ntimezone = \"Europe/Berlin\"\nhours = \"24/7\"\n",
    );
    let q = policy.config.queue("general");
    let clock = Clock::start(
        q,
        crate::sla::clock::ClockKind::Next,
        2,
        ts("2026-11-22T10:00:00Z"),
    );
    let facts = TicketFacts {
        ticket_ref: "PD-7".into(),
        subject: "Login".into(),
        queue: "general".into(),
        mailbox: "support".into(),
        mailbox_address: "support@example.com".into(),
        language: "de".into(),
        requester: "ann@customer.test".into(),
        requester_name: None,
        created_at: ts("2026-11-20T10:00:00Z"),
        excerpt: "Hallo, der Login geht nicht.".into(),
    };
    let ctx = alert_context(&facts, &clock, 1, q, ts("2026-11-23T11:30:00Z"));
    assert_eq!(ctx.due_local, "Mon 2026-11-23 11:00 CET");
    assert_eq!(ctx.due_utc, "Mon 2026-11-23 10:00");
    assert_eq!(ctx.timezone, "Europe/Berlin");
    assert_eq!(ctx.age, "25 h 30 min");
    assert_eq!(ctx.level, 1);
    assert_eq!(ctx.clock, crate::notify::template::Clock::NextResponse);
    // The shipped templates render it, in the operator language.
    let templates = crate::notify::template::Templates::load(None).expect("templates");
    let r = templates
        .render(
            crate::notify::template::TemplateKind::Escalation,
            "de",
            "en",
            &crate::plan::with_queue(serde_json::to_value(&ctx).expect("json"), "general"),
        )
        .expect("render");
    assert!(r.subject.contains("PD-7"), "{}", r.subject);
    assert!(r.text.contains("Europe/Berlin"), "{}", r.text);
    assert!(r.text.contains("der Login geht nicht"), "{}", r.text);
}
