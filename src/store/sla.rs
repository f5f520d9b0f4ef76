//! The response clocks in SQLite: starting and stopping them with the
//! changes that cause them, the timer's alerts, the agent commands
//! (`reply`, `note`, `close`, `reopen`) and the SLA queries behind
//! `tickets --due/--breached` and `status`.
//!
//! Every write here runs inside a transaction together with its cause: a
//! clock starts or stops in the same transaction as the message (or the
//! agent command) that started or stopped it, and an alert's outbox row,
//! its event and the clock's bookkeeping commit together. The outbox's
//! UNIQUE `dedup_key` (`warning:<ticket>:<seq>`,
//! `escalation:<ticket>:<seq>:<level>`) makes "each alert once per ticket
//! and clock" a constraint, across restarts too.
//!
//! The decisions are pure ([`crate::sla::clock`]): this module reads, asks,
//! and writes.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde::Serialize;
use serde_json::json;

use super::ingest::insert_event;
use super::{StoreError, from_ms, to_ms};
use crate::config::{Config, QueueConfig, is_plain_address};
use crate::mail::AnalyzedMail;
use crate::notify::template::ReplyContext;
use crate::plan::{self, Plan, Policy};
use crate::sla::calendar::{format_duration, format_local};
use crate::sla::clock::{
    self, Action, Change, Clock, ClockKind, Phase, StopReason, Stopped, Trigger, event,
};
use crate::sla::timer::{self, TicketFacts};

/// At most this many clocks are handled per transaction batch of a timer
/// pass; the pass loops until none is due.
const FIRE_BATCH: usize = 100;

/// A clock row: its id and ticket with the pure state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredClock {
    pub id: i64,
    pub ticket: i64,
    pub clock: Clock,
}

const CLOCK_COLUMNS: &str =
    "id, ticket_id, seq, kind, started_at, target_ms, warn_at, due_at, stopped_at, stop_reason,
                             warned_at, breached_at, escalated, notify";

fn read_clock(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredClock> {
    let kind: String = r.get(3)?;
    let stop_reason: Option<String> = r.get(9)?;
    let stopped = match (r.get::<_, Option<i64>>(8)?, stop_reason) {
        (Some(at), Some(reason)) => Some(Stopped {
            at: from_ms(at),
            // The CHECK constraint allows only the two codes.
            reason: StopReason::parse(&reason).unwrap_or(StopReason::Closed),
        }),
        _ => None,
    };
    Ok(StoredClock {
        id: r.get(0)?,
        ticket: r.get(1)?,
        clock: Clock {
            seq: u32::try_from(r.get::<_, i64>(2)?).unwrap_or(u32::MAX),
            kind: ClockKind::parse(&kind).unwrap_or(ClockKind::Next),
            started_at: from_ms(r.get(4)?),
            target: Duration::from_millis(u64::try_from(r.get::<_, i64>(5)?).unwrap_or(0)),
            warn_at: from_ms(r.get(6)?),
            due_at: from_ms(r.get(7)?),
            stopped,
            warned_at: r.get::<_, Option<i64>>(10)?.map(from_ms),
            breached_at: r.get::<_, Option<i64>>(11)?.map(from_ms),
            escalated: u32::try_from(r.get::<_, i64>(12)?).unwrap_or(0),
            notify: r.get(13)?,
        },
    })
}

/// The newest clock of a ticket.
pub fn latest_clock(conn: &Connection, ticket: i64) -> Result<Option<StoredClock>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {CLOCK_COLUMNS} FROM sla_clocks WHERE ticket_id = ?1 ORDER BY seq DESC LIMIT 1"
        ))?
        .query_row([ticket], read_clock)
        .optional()?)
}

/// Every clock of a ticket, oldest first.
pub fn clocks(conn: &Connection, ticket: i64) -> Result<Vec<StoredClock>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {CLOCK_COLUMNS} FROM sla_clocks WHERE ticket_id = ?1 ORDER BY seq"
    ))?;
    let rows = stmt
        .query_map([ticket], read_clock)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The moment the clock next needs the timer, with the current config.
fn next_at(clock: &Clock, queue: Option<&QueueConfig>, now: Timestamp) -> Option<i64> {
    clock::next_event(clock, &clock::escalation_delays(queue), now).map(|(t, _)| to_ms(t))
}

fn insert_clock(
    conn: &Connection,
    ticket: i64,
    c: &Clock,
    queue: Option<&QueueConfig>,
    now: Timestamp,
) -> Result<i64, StoreError> {
    conn.prepare_cached(
        "INSERT INTO sla_clocks (ticket_id, seq, kind, state, started_at, target_ms, warn_at, due_at, notify, next_at)
         VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        ticket,
        i64::from(c.seq),
        c.kind.as_str(),
        to_ms(c.started_at),
        ms(c.target),
        to_ms(c.warn_at),
        to_ms(c.due_at),
        c.notify,
        next_at(c, queue, now),
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Writes a clock's changing fields back, with its next moment.
fn update_clock(
    conn: &Connection,
    id: i64,
    c: &Clock,
    queue: Option<&QueueConfig>,
    now: Timestamp,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE sla_clocks SET state = ?2, stopped_at = ?3, stop_reason = ?4, warned_at = ?5, breached_at = ?6,
                               escalated = ?7, next_at = ?8
         WHERE id = ?1",
    )?
    .execute(params![
        id,
        if c.is_running() { "running" } else { "stopped" },
        c.stopped.map(|s| to_ms(s.at)),
        c.stopped.map(|s| s.reason.as_str()),
        c.warned_at.map(to_ms),
        c.breached_at.map(to_ms),
        i64::from(c.escalated),
        next_at(c, queue, now),
    ])?;
    Ok(())
}

/// Who or what caused a clock change, for its event.
#[derive(Debug, Clone)]
pub struct Cause {
    /// The stored message that caused it, if any.
    pub message: Option<i64>,
    /// Added to the event's detail: `{"by": …, "via": …}`.
    pub detail: serde_json::Value,
    /// False for a change caused by old mail (an import): a clock started
    /// by it sends no alerts.
    pub notify: bool,
    /// When it happened, if earlier than it is handled: the server's
    /// arrival time of a message ingested late (after an outage, or a
    /// Sent-folder reply synced later). The clock counts from there.
    pub at: Option<Timestamp>,
}

impl Cause {
    /// A cause with this detail, alerts on, no message.
    pub fn new(detail: serde_json::Value) -> Cause {
        Cause {
            message: None,
            detail,
            notify: true,
            at: None,
        }
    }
}

fn merge(mut base: serde_json::Value, extra: &serde_json::Value) -> serde_json::Value {
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    base
}

/// The queue of a ticket.
fn ticket_queue(conn: &Connection, ticket: i64) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT queue FROM tickets WHERE id = ?1")?
        .query_row([ticket], |r| r.get(0))
        .optional()?)
}

/// Applies `trigger` to a ticket's clocks, recording the change as an
/// event. Returns the change made, if any.
pub fn apply_trigger(
    conn: &Connection,
    cfg: &Config,
    ticket: i64,
    trigger: Trigger,
    cause: &Cause,
    now: Timestamp,
) -> Result<Option<Change>, StoreError> {
    let latest = latest_clock(conn, ticket)?;
    let Some(change) = clock::on_trigger(latest.as_ref().map(|s| &s.clock), trigger) else {
        return Ok(None);
    };
    let queue_name = ticket_queue(conn, ticket)?.unwrap_or_default();
    let queue = cfg.queue(&queue_name);
    // The moment the clock changes: when the cause happened, never in the
    // future and never before the ticket's latest clock started or stopped
    // (clocks follow each other).
    let floor = latest
        .as_ref()
        .map(|s| s.clock.stopped.map_or(s.clock.started_at, |st| st.at));
    let at = cause
        .at
        .map_or(now, |t| t.min(now))
        .max(floor.unwrap_or(Timestamp::MIN));
    match change {
        Change::Start { kind, seq } => {
            let mut c = Clock::start(queue, kind, seq, at);
            c.notify = cause.notify;
            insert_clock(conn, ticket, &c, queue, now)?;
            let zone = queue
                .map(|q| q.timezone.clone())
                .unwrap_or(jiff::tz::TimeZone::UTC);
            let detail = json!({
                "clock": kind.as_str(),
                "seq": seq,
                "queue": queue_name,
                "target": humantime::format_duration(c.target).to_string(),
                "warn_at": c.warn_at,
                "due_at": c.due_at,
                "due_local": format_local(c.due_at, &zone),
                "alerts": c.notify,
            });
            insert_event(
                conn,
                now,
                Some(ticket),
                cause.message,
                event::CLOCK_STARTED,
                &merge(detail, &cause.detail),
            )?;
        }
        Change::Stop { seq, reason } => {
            let Some(mut stored) = latest else {
                return Ok(None);
            };
            stored.clock.stop(at, reason);
            update_clock(conn, stored.id, &stored.clock, queue, now)?;
            let c = &stored.clock;
            let used = match queue {
                Some(q) => q.calendar.business_time_between(c.started_at, at),
                None => at.duration_since(c.started_at),
            };
            let detail = json!({
                "clock": c.kind.as_str(),
                "seq": seq,
                "reason": reason.as_str(),
                "met": at <= c.due_at,
                "business_time": format_duration(used),
                "due_at": c.due_at,
            });
            insert_event(
                conn,
                now,
                Some(ticket),
                cause.message,
                event::CLOCK_STOPPED,
                &merge(detail, &cause.detail),
            )?;
        }
    }
    Ok(Some(change))
}

/// The clock changes one ingested message causes, from the planner's
/// events; called by the ingest transaction right after it wrote them.
/// Returns true when a clock changed (the timer should look again).
pub fn on_ingest(
    tx: &Transaction<'_>,
    cfg: &Config,
    ticket: i64,
    plan: &Plan,
    mail: &AnalyzedMail,
    message: Option<i64>,
    now: Timestamp,
) -> Result<bool, StoreError> {
    // Old mail (an import of an old inbox) gets a clock that shows in
    // status but mails nobody, as it gets no acknowledgement.
    let written = mail
        .raw
        .arrived
        .or(mail.parsed.date.filter(|d| *d <= now))
        .unwrap_or(now);
    let fresh = now.duration_since(written)
        <= SignedDuration::try_from(cfg.acknowledge.max_age).unwrap_or(SignedDuration::MAX);
    let mut changed = false;
    for e in &plan.events {
        let trigger = match e.kind {
            plan::event::TICKET_CREATED => Trigger::Created,
            plan::event::TICKET_REOPENED => Trigger::Reopened,
            plan::event::CUSTOMER_REPLIED => Trigger::CustomerWrote,
            plan::event::AGENT_RESPONDED => Trigger::AgentResponded,
            _ => continue,
        };
        let mut detail = json!({ "cause": e.kind, "direction": mail.raw.direction.as_str() });
        if !fresh && let Some(o) = detail.as_object_mut() {
            o.insert(
                "alerts_off".into(),
                format!(
                    "the message is older than acknowledge.max_age ({})",
                    humantime::format_duration(cfg.acknowledge.max_age)
                )
                .into(),
            );
        }
        let cause = Cause {
            message,
            detail,
            notify: fresh,
            // Fresh mail counts from its arrival at the server; old mail
            // (an import) from now, so it does not breach on arrival.
            at: mail.raw.arrived.filter(|_| fresh),
        };
        let change = apply_trigger(tx, cfg, ticket, trigger, &cause, now)?;
        changed |= change.is_some();
        if let (Some(Change::Stop { .. }), Trigger::AgentResponded, Some(at)) =
            (change, trigger, cause.at)
        {
            changed |= restart_for_later_customer_mail(tx, cfg, ticket, at, fresh, now)?;
        }
    }
    Ok(changed)
}

/// An answer ingested late (the Sent folder synced after the inbox) stops
/// the clock at the time it was sent; a customer message that arrived after
/// that, already on the ticket, is not answered by it: the next clock
/// starts from that message, and the ticket waits on us again.
fn restart_for_later_customer_mail(
    tx: &Transaction<'_>,
    cfg: &Config,
    ticket: i64,
    answered_at: Timestamp,
    notify: bool,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let later: Option<(i64, Option<i64>)> = tx
        .prepare_cached(
            "SELECT json_extract(detail, '$.arrived_ms') AS arrived, message FROM events
             WHERE ticket_id = ?1 AND kind = ?2 AND json_extract(detail, '$.arrived_ms') > ?3
             ORDER BY arrived LIMIT 1",
        )?
        .query_row(
            params![ticket, plan::event::CUSTOMER_REPLIED, to_ms(answered_at)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((arrived_ms, message)) = later else {
        return Ok(false);
    };
    let arrived = from_ms(arrived_ms);
    let cause = Cause {
        message,
        detail: json!({
            "cause": plan::event::CUSTOMER_REPLIED,
            "why": "the customer wrote again after the answer, which was found later",
        }),
        notify,
        at: Some(arrived),
    };
    if apply_trigger(tx, cfg, ticket, Trigger::CustomerWrote, &cause, now)?.is_none() {
        return Ok(false);
    }
    // The answer set the ticket waiting on the customer; it waits on us.
    set_status(tx, ticket, "open", now)?;
    Ok(true)
}

// ---------------------------------------------------------------------------
// The timer's work.

/// One alert or clock event the timer handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    pub ticket: i64,
    pub seq: u32,
    pub action: Action,
    /// The outbox row queued, when a mail was.
    pub outbox: Option<i64>,
}

/// What a timer pass did and when the next one is due.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FireReport {
    pub fired: Vec<Fired>,
    /// The earliest moment any clock needs the timer again.
    pub next: Option<Timestamp>,
}

impl FireReport {
    /// Mails queued by this pass.
    pub fn queued(&self) -> usize {
        self.fired.iter().filter(|f| f.outbox.is_some()).count()
    }
}

/// The earliest moment any clock needs the timer.
pub fn next_due(conn: &Connection) -> Result<Option<Timestamp>, StoreError> {
    let ms: Option<i64> = conn
        .prepare_cached("SELECT min(next_at) FROM sla_clocks WHERE next_at IS NOT NULL")?
        .query_row([], |r| r.get(0))?;
    Ok(ms.map(from_ms))
}

/// Does everything due at `now`: warnings, breaches, escalations. One
/// transaction per clock; safe to repeat (a clock's bookkeeping and the
/// outbox dedup keys make a second pass at the same `now` do nothing).
pub fn fire_due(
    conn: &mut Connection,
    policy: &Policy,
    now: Timestamp,
) -> Result<FireReport, StoreError> {
    let mut report = FireReport::default();
    loop {
        let ids: Vec<i64> = conn
            .prepare_cached(
                "SELECT id FROM sla_clocks WHERE next_at IS NOT NULL AND next_at <= ?1
                 ORDER BY next_at, id LIMIT ?2",
            )?
            .query_map(params![to_ms(now), FIRE_BATCH as i64], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if ids.is_empty() {
            break;
        }
        for id in ids {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            fire_one(&tx, policy, id, now, &mut report.fired)?;
            tx.commit()?;
        }
    }
    report.next = next_due(conn)?;
    Ok(report)
}

fn fire_one(
    tx: &Transaction<'_>,
    policy: &Policy,
    id: i64,
    now: Timestamp,
    fired: &mut Vec<Fired>,
) -> Result<(), StoreError> {
    let cfg = &policy.config;
    let Some(mut stored) = tx
        .prepare_cached(&format!(
            "SELECT {CLOCK_COLUMNS} FROM sla_clocks WHERE id = ?1"
        ))?
        .query_row([id], read_clock)
        .optional()?
    else {
        return Ok(());
    };
    let Some(facts) = ticket_facts(tx, cfg, stored.ticket)? else {
        // The ticket is gone; nothing to alert about any more.
        tx.prepare_cached("UPDATE sla_clocks SET next_at = NULL WHERE id = ?1")?
            .execute([id])?;
        return Ok(());
    };
    let queue = cfg.queue(&facts.queue);
    let escalation = clock::escalation_delays(queue);
    for action in clock::due_actions(&stored.clock, &escalation, now) {
        let outbox = perform(tx, policy, &stored, &facts, action, now)?;
        stored.clock.record(action, now);
        fired.push(Fired {
            ticket: stored.ticket,
            seq: stored.clock.seq,
            action,
            outbox,
        });
    }
    update_clock(tx, id, &stored.clock, queue, now)
}

/// Does one action: the event, and for alerts the outbox row.
fn perform(
    tx: &Transaction<'_>,
    policy: &Policy,
    stored: &StoredClock,
    facts: &TicketFacts,
    action: Action,
    now: Timestamp,
) -> Result<Option<i64>, StoreError> {
    let cfg = &policy.config;
    let c = &stored.clock;
    let t = stored.ticket;
    let queue = cfg.queue(&facts.queue);
    let base = json!({
        "clock": c.kind.as_str(),
        "seq": c.seq,
        "due_at": c.due_at,
        "warn_at": c.warn_at,
    });
    let (kind, level, dedup_key, scheduled, event_kind) = match action {
        Action::SkipWarning => {
            insert_event(
                tx,
                now,
                Some(t),
                None,
                event::WARNING_SKIPPED,
                &merge(
                    base,
                    &json!({ "reason": "the warning point and the due time passed while no timer ran (postdesk was stopped); the escalation follows" }),
                ),
            )?;
            return Ok(None);
        }
        Action::Breach => {
            insert_event(
                tx,
                now,
                Some(t),
                None,
                event::BREACHED,
                &merge(
                    base,
                    &json!({ "late_by": format_duration(now.duration_since(c.due_at)) }),
                ),
            )?;
            return Ok(None);
        }
        Action::Warn => (
            "warning",
            0,
            format!("warning:{t}:{}", c.seq),
            c.warn_at,
            event::WARNING,
        ),
        Action::Escalate(level) => (
            "escalation",
            level,
            format!("escalation:{t}:{}:{level}", c.seq),
            clock::escalation_at(c.due_at, &clock::escalation_delays(queue), level).unwrap_or(now),
            event::ESCALATED,
        ),
    };
    // Warnings go to the level-1 contacts; level n to level n's.
    let contacts: Vec<String> = queue
        .and_then(|q| {
            q.escalation
                .get(usize::try_from(level.max(1) - 1).unwrap_or(usize::MAX))
        })
        .map(|e| e.contacts.clone())
        .unwrap_or_default();
    let mut detail = merge(
        base,
        &json!({ "level": level, "scheduled_for": scheduled, "to": contacts }),
    );
    let mut outbox = None;
    let why_not = if !c.notify {
        Some(
            "alerts are off for this clock: it was started by mail older than acknowledge.max_age"
                .to_owned(),
        )
    } else if contacts.is_empty() {
        Some(match queue {
            Some(_) => format!(
                "queue {:?} has no contacts for level {}; add [[queues.escalation]] with contacts to mail someone",
                facts.queue,
                level.max(1)
            ),
            None => format!(
                "queue {:?} is no longer configured; the ticket's alerts go nowhere",
                facts.queue
            ),
        })
    } else {
        None
    };
    match why_not {
        Some(why) => {
            if let Some(o) = detail.as_object_mut() {
                o.insert("queued".into(), false.into());
                o.insert("reason".into(), why.into());
            }
        }
        None => {
            let context = timer::alert_context(facts, c, level, queue, now);
            let language = queue
                .map(|q| q.operator_language.clone())
                .unwrap_or_else(|| "en".to_owned());
            let mut contacts = contacts.into_iter();
            let to = contacts.next().unwrap_or_default();
            let row = super::outbox::NewRow {
                kind,
                dedup_key: dedup_key.clone(),
                ticket_id: Some(t),
                mailbox: facts.mailbox.clone(),
                message_id: policy.key.mint(t, &cfg.security.message_id_domain),
                to_addr: to,
                cc_addrs: contacts.collect(),
                language,
                context: plan::with_queue(
                    serde_json::to_value(&context).unwrap_or_default(),
                    &facts.queue,
                ),
                in_reply_to: None,
                references: Vec::new(),
                automatic: true,
                due_at: now,
            };
            outbox = super::outbox::insert(tx, &row, now)?;
            if let Some(o) = detail.as_object_mut() {
                o.insert("queued".into(), true.into());
                o.insert("dedup_key".into(), dedup_key.into());
                o.insert("outbox".into(), outbox.into());
                if outbox.is_none() {
                    o.insert(
                        "reason".into(),
                        "already queued (same dedup key); not queued again".into(),
                    );
                }
            }
        }
    }
    insert_event(tx, now, Some(t), None, event_kind, &detail)?;
    Ok(outbox)
}

/// What an alert says about a ticket, read inside the timer's transaction.
fn ticket_facts(
    conn: &Connection,
    cfg: &Config,
    ticket: i64,
) -> Result<Option<TicketFacts>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT subject, queue, mailbox, language, requester, requester_name, created_at
             FROM tickets WHERE id = ?1",
        )?
        .query_row([ticket], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })
        .optional()?;
    let Some((subject, queue, mailbox, language, requester, requester_name, created_at)) = row
    else {
        return Ok(None);
    };
    // The customer's latest words: the newest human inbound message not
    // written by one of the queue's agents.
    let q = cfg.queue(&queue);
    let mut stmt = conn.prepare_cached(
        "SELECT from_addr, extracted_text FROM messages
         WHERE ticket_id = ?1 AND direction = 'inbound' AND class = 'human'
         ORDER BY received_at DESC, id DESC LIMIT 20",
    )?;
    let recent = stmt
        .query_map([ticket], |r| {
            Ok((r.get::<_, Option<String>>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let excerpt = recent
        .into_iter()
        .find(|(from, _)| {
            !from
                .as_deref()
                .is_some_and(|f| q.is_some_and(|q| q.is_agent(f)))
        })
        .map(|(_, text)| text)
        .unwrap_or_default();
    let mailbox_address = cfg
        .mailbox(&mailbox)
        .or(cfg.mailboxes.first())
        .map(|m| m.address.clone())
        .unwrap_or_default();
    Ok(Some(TicketFacts {
        ticket_ref: cfg.ticket_ref(ticket),
        subject,
        queue,
        mailbox,
        mailbox_address,
        language,
        requester,
        requester_name,
        created_at: from_ms(created_at),
        excerpt,
    }))
}

/// Brings the clocks in line with the tickets and the current config; the
/// timer runs it at start and after a config change:
///
/// * an open ticket without a running clock (created before the clock
///   existed) gets one, started now;
/// * a running clock on a ticket that is not open is stopped;
/// * every running clock's next moment is recomputed (escalation levels
///   may have changed).
///
/// Returns how many clocks were started or stopped.
pub fn reconcile(conn: &mut Connection, cfg: &Config, now: Timestamp) -> Result<usize, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut changed = 0;
    let orphans: Vec<i64> = tx
        .prepare_cached(
            "SELECT t.id FROM tickets t WHERE t.status = 'open'
               AND NOT EXISTS (SELECT 1 FROM sla_clocks c WHERE c.ticket_id = t.id AND c.state = 'running')",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let cause = Cause::new(json!({
        "cause": event::CLOCK_RECONCILED,
        "reason": "the ticket is open but had no running clock (it was created before postdesk kept response clocks)",
    }));
    for t in orphans {
        changed +=
            usize::from(apply_trigger(&tx, cfg, t, Trigger::Reopened, &cause, now)?.is_some());
    }
    let stray: Vec<(i64, String)> = tx
        .prepare_cached(
            "SELECT c.ticket_id, t.status FROM sla_clocks c JOIN tickets t ON t.id = c.ticket_id
             WHERE c.state = 'running' AND t.status != 'open'",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (t, status) in stray {
        let trigger = if status == "closed" {
            Trigger::Closed
        } else {
            Trigger::AgentResponded
        };
        let cause = Cause::new(json!({
            "cause": event::CLOCK_RECONCILED,
            "reason": format!("the ticket is {status} but its clock was running"),
        }));
        changed += usize::from(apply_trigger(&tx, cfg, t, trigger, &cause, now)?.is_some());
    }
    let running: Vec<(StoredClock, String)> = tx
        .prepare_cached(&format!(
            "SELECT {}, t.queue FROM sla_clocks c JOIN tickets t ON t.id = c.ticket_id WHERE c.state = 'running'",
            CLOCK_COLUMNS
                .split(',')
                .map(|c| format!("c.{}", c.trim()))
                .collect::<Vec<_>>()
                .join(", ")
        ))?
        .query_map([], |r| Ok((read_clock(r)?, r.get(14)?)))?
        .collect::<Result<_, _>>()?;
    for (s, queue) in running {
        tx.prepare_cached("UPDATE sla_clocks SET next_at = ?2 WHERE id = ?1")?
            .execute(params![s.id, next_at(&s.clock, cfg.queue(&queue), now)])?;
    }
    tx.commit()?;
    Ok(changed)
}

// ---------------------------------------------------------------------------
// Agent commands.

/// Why an agent command was refused. Each says what to do instead.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("there is no ticket {0}; list them with `postdesk tickets`")]
    NoTicket(String),
    #[error("{0} is closed; run `postdesk reopen {0}` first if the conversation goes on")]
    Closed(String),
    #[error("{0} is not closed (it is {1}); only a closed ticket can be reopened")]
    NotClosed(String, String),
    #[error(
        "{0} has no address to answer: its requester {1:?} is not a plain e-mail address; answer from a mail client"
    )]
    NoAddress(String, String),
    #[error("the text is empty; write it to a file and pass --file, or pipe it on stdin")]
    Empty,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for AgentError {
    fn from(e: rusqlite::Error) -> Self {
        AgentError::Store(StoreError::Sql(e))
    }
}

/// Who runs an agent command, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// The login name running the command, when known.
    pub user: Option<String>,
    /// The agent's display name for the reply's signature.
    pub name: Option<String>,
}

impl Agent {
    fn detail(&self, via: &str) -> serde_json::Value {
        json!({ "by": self.user, "via": via })
    }
}

/// The ticket fields the agent commands need.
struct TicketRow {
    status: String,
    subject: String,
    mailbox: String,
    language: String,
    requester: String,
    reply_to: Option<String>,
}

fn ticket_row(conn: &Connection, cfg: &Config, ticket: i64) -> Result<TicketRow, AgentError> {
    conn.prepare_cached(
        "SELECT status, subject, mailbox, language, requester, reply_to FROM tickets WHERE id = ?1",
    )?
    .query_row([ticket], |r| {
        Ok(TicketRow {
            status: r.get(0)?,
            subject: r.get(1)?,
            mailbox: r.get(2)?,
            language: r.get(3)?,
            requester: r.get(4)?,
            reply_to: r.get(5)?,
        })
    })
    .optional()?
    .ok_or_else(|| AgentError::NoTicket(cfg.ticket_ref(ticket)))
}

fn set_status(
    conn: &Connection,
    ticket: i64,
    status: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE tickets SET status = ?2, updated_at = ?3,
           closed_at = CASE WHEN ?2 = 'closed' THEN ?3 ELSE NULL END WHERE id = ?1",
    )?
    .execute(params![ticket, status, to_ms(now)])?;
    Ok(())
}

/// A reply queued by [`queue_reply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplyQueued {
    pub outbox: i64,
    pub to: String,
    pub message_id: String,
    pub in_reply_to: Option<String>,
    /// The clock the reply stopped, if one ran.
    pub stopped_clock: Option<u32>,
}

/// The subject without reply prefixes and our ticket tag: the reply
/// template adds `[PD-42] Re:` itself.
fn base_subject(subject: &str, ticket_ref: &str) -> String {
    let tag = format!("[{ticket_ref}]");
    let mut s = subject.trim().to_owned();
    loop {
        let before = s.len();
        if let Some(rest) = s.strip_prefix(tag.as_str()) {
            s = rest.trim_start().to_owned();
        }
        let lower = s.to_lowercase();
        for p in [
            "re:", "aw:", "sv:", "vs:", "antw:", "fw:", "fwd:", "wg:", "tr:",
        ] {
            if lower.starts_with(p)
                && let Some(rest) = s.get(p.len()..)
            {
                s = rest.trim_start().to_owned();
                break;
            }
        }
        if s.len() == before {
            return s;
        }
    }
}

/// Queues an agent's answer to the customer (`postdesk reply`): an outbox
/// row of kind `reply` to the ticket's reply address, threaded onto the
/// customer's latest message (In-Reply-To, References) with the ticket's
/// tag in the subject; records it as the agent's response (the running
/// clock stops, the ticket waits on the customer). One transaction.
pub fn queue_reply(
    conn: &mut Connection,
    policy: &Policy,
    ticket: i64,
    text: &str,
    agent: &Agent,
    now: Timestamp,
) -> Result<ReplyQueued, AgentError> {
    let cfg = &policy.config;
    if text.trim().is_empty() {
        return Err(AgentError::Empty);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let t = ticket_row(&tx, cfg, ticket)?;
    let ticket_ref = cfg.ticket_ref(ticket);
    if t.status == "closed" {
        return Err(AgentError::Closed(ticket_ref));
    }
    let to = t.reply_to.clone().unwrap_or_else(|| t.requester.clone());
    if !is_plain_address(&to) {
        return Err(AgentError::NoAddress(ticket_ref, to));
    }
    // The customer's latest message: what the reply answers.
    let last: Option<(String, String)> = tx
        .prepare_cached(
            "SELECT message_id, refs FROM messages WHERE ticket_id = ?1 AND direction = 'inbound'
             ORDER BY received_at DESC, id DESC LIMIT 1",
        )?
        .query_row([ticket], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (in_reply_to, references) = match last {
        Some((id, refs)) => {
            let mut references: Vec<String> = serde_json::from_str(&refs).unwrap_or_default();
            let real = !id.ends_with(crate::parse::SYNTHETIC_ID_DOMAIN);
            if real {
                references.push(id.clone());
            }
            (real.then_some(id), references)
        }
        None => (None, Vec::new()),
    };
    let mailbox = cfg.mailbox(&t.mailbox).or(cfg.mailboxes.first());
    let team_name = mailbox
        .map(|m| m.display_name.clone().unwrap_or_else(|| m.name.clone()))
        .unwrap_or_default();
    let queue = ticket_queue(&tx, ticket)?.unwrap_or_default();
    let context = ReplyContext {
        ticket: ticket_ref.clone(),
        subject: base_subject(&t.subject, &ticket_ref),
        body: text.to_owned(),
        team_name,
        agent_name: agent.name.clone(),
    };
    let message_id = policy.key.mint(ticket, &cfg.security.message_id_domain);
    let row = super::outbox::NewRow {
        kind: "reply",
        dedup_key: format!("reply:{ticket}:{message_id}"),
        ticket_id: Some(ticket),
        mailbox: t.mailbox.clone(),
        message_id: message_id.clone(),
        to_addr: to.clone(),
        cc_addrs: Vec::new(),
        language: t.language.clone(),
        context: plan::with_queue(serde_json::to_value(&context).unwrap_or_default(), &queue),
        in_reply_to: in_reply_to.clone(),
        references,
        automatic: false,
        due_at: now,
    };
    let outbox = super::outbox::insert(&tx, &row, now)?
        .ok_or_else(|| StoreError::Corrupt(format!("reply {message_id} was already queued")))?;
    insert_event(
        &tx,
        now,
        Some(ticket),
        None,
        plan::event::AGENT_RESPONDED,
        &merge(
            agent.detail("postdesk reply"),
            &json!({ "direction": "outbound", "outbox": outbox, "to": to, "message_id": message_id }),
        ),
    )?;
    let change = apply_trigger(
        &tx,
        cfg,
        ticket,
        Trigger::AgentResponded,
        &Cause::new(agent.detail("postdesk reply")),
        now,
    )?;
    set_status(&tx, ticket, "waiting", now)?;
    tx.commit()?;
    Ok(ReplyQueued {
        outbox,
        to,
        message_id,
        in_reply_to,
        stopped_clock: match change {
            Some(Change::Stop { seq, .. }) => Some(seq),
            _ => None,
        },
    })
}

/// Adds an internal note (`postdesk note`): an event, never a mail; the
/// clock does not change.
pub fn add_note(
    conn: &mut Connection,
    cfg: &Config,
    ticket: i64,
    text: &str,
    agent: &Agent,
    now: Timestamp,
) -> Result<(), AgentError> {
    if text.trim().is_empty() {
        return Err(AgentError::Empty);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    ticket_row(&tx, cfg, ticket)?;
    insert_event(
        &tx,
        now,
        Some(ticket),
        None,
        event::NOTE_ADDED,
        &merge(agent.detail("postdesk note"), &json!({ "text": text })),
    )?;
    tx.prepare_cached("UPDATE tickets SET updated_at = ?2 WHERE id = ?1")?
        .execute(params![ticket, to_ms(now)])?;
    tx.commit()?;
    Ok(())
}

/// What `close` or `reopen` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusChange {
    /// The status changed; the clock with this seq stopped or started.
    Done { clock: Option<u32> },
    /// It already was in that status; nothing was written.
    Already,
}

/// Closes a ticket (`postdesk close`): every clock stops.
pub fn close(
    conn: &mut Connection,
    cfg: &Config,
    ticket: i64,
    agent: &Agent,
    now: Timestamp,
) -> Result<StatusChange, AgentError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let t = ticket_row(&tx, cfg, ticket)?;
    if t.status == "closed" {
        return Ok(StatusChange::Already);
    }
    set_status(&tx, ticket, "closed", now)?;
    insert_event(
        &tx,
        now,
        Some(ticket),
        None,
        event::TICKET_CLOSED,
        &merge(agent.detail("postdesk close"), &json!({ "was": t.status })),
    )?;
    let change = apply_trigger(
        &tx,
        cfg,
        ticket,
        Trigger::Closed,
        &Cause::new(agent.detail("postdesk close")),
        now,
    )?;
    tx.commit()?;
    Ok(StatusChange::Done {
        clock: match change {
            Some(Change::Stop { seq, .. }) => Some(seq),
            _ => None,
        },
    })
}

/// Reopens a closed ticket (`postdesk reopen`): it is open again and a
/// next-response clock starts.
pub fn reopen(
    conn: &mut Connection,
    cfg: &Config,
    ticket: i64,
    agent: &Agent,
    now: Timestamp,
) -> Result<StatusChange, AgentError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let t = ticket_row(&tx, cfg, ticket)?;
    match t.status.as_str() {
        "closed" => {}
        "open" => return Ok(StatusChange::Already),
        other => {
            return Err(AgentError::NotClosed(
                cfg.ticket_ref(ticket),
                other.to_owned(),
            ));
        }
    }
    set_status(&tx, ticket, "open", now)?;
    insert_event(
        &tx,
        now,
        Some(ticket),
        None,
        plan::event::TICKET_REOPENED,
        &agent.detail("postdesk reopen"),
    )?;
    let change = apply_trigger(
        &tx,
        cfg,
        ticket,
        Trigger::Reopened,
        &Cause::new(agent.detail("postdesk reopen")),
        now,
    )?;
    tx.commit()?;
    Ok(StatusChange::Done {
        clock: match change {
            Some(Change::Start { seq, .. }) => Some(seq),
            _ => None,
        },
    })
}

// ---------------------------------------------------------------------------
// Queries.

/// Fails with what to do when the database predates response clocks (a
/// read-only connection does not migrate).
pub fn ensure_schema(conn: &Connection) -> Result<(), StoreError> {
    let exists = conn
        .prepare_cached("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sla_clocks'")?
        .exists([])?;
    if exists {
        Ok(())
    } else {
        Err(StoreError::NotFound(
            "response clocks in this database (it was written by an older postdesk); run `postdesk run --once` to upgrade it".into(),
        ))
    }
}

/// A ticket with a running clock, for `tickets --due/--breached`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunningClock {
    /// The ticket number; `--json` adds the `ticket` reference (`PD-42`).
    #[serde(rename = "id")]
    pub ticket: i64,
    pub subject: String,
    pub status: String,
    pub queue: String,
    pub language: String,
    pub requester: String,
    pub clock: ClockKind,
    pub seq: u32,
    pub started_at: Timestamp,
    pub warn_at: Timestamp,
    pub due_at: Timestamp,
    pub phase: Phase,
}

/// Every running clock (optionally of one queue), soonest due first.
pub fn running_clocks(
    conn: &Connection,
    queue: Option<&str>,
    now: Timestamp,
) -> Result<Vec<RunningClock>, StoreError> {
    let prefixed = CLOCK_COLUMNS
        .split(',')
        .map(|c| format!("c.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {prefixed}, t.subject, t.status, t.queue, t.language, t.requester
         FROM sla_clocks c JOIN tickets t ON t.id = c.ticket_id
         WHERE c.state = 'running' AND (?1 IS NULL OR t.queue = ?1)
         ORDER BY c.due_at, c.ticket_id"
    ))?;
    let rows = stmt
        .query_map([queue], |r| {
            let s = read_clock(r)?;
            Ok(RunningClock {
                ticket: s.ticket,
                subject: r.get(14)?,
                status: r.get(15)?,
                queue: r.get(16)?,
                language: r.get(17)?,
                requester: r.get(18)?,
                clock: s.clock.kind,
                seq: s.clock.seq,
                started_at: s.clock.started_at,
                warn_at: s.clock.warn_at,
                due_at: s.clock.due_at,
                phase: s.clock.phase(now),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The SLA figures of one queue for `postdesk status`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct QueueSla {
    pub queue: String,
    /// Running clocks inside the warning window.
    pub due_soon: u64,
    /// Running clocks past their due time.
    pub breached: u64,
    /// The ticket waiting longest for an answer, and since when.
    pub oldest_unanswered: Option<i64>,
    pub oldest_unanswered_since: Option<Timestamp>,
}

/// SLA figures per queue that has a running clock.
pub fn queue_sla(conn: &Connection, now: Timestamp) -> Result<Vec<QueueSla>, StoreError> {
    let mut out: Vec<QueueSla> = Vec::new();
    for c in running_clocks(conn, None, now)? {
        let pos = match out.iter().position(|q| q.queue == c.queue) {
            Some(p) => p,
            None => {
                out.push(QueueSla {
                    queue: c.queue.clone(),
                    ..QueueSla::default()
                });
                out.len() - 1
            }
        };
        let Some(q) = out.get_mut(pos) else { continue };
        match c.phase {
            Phase::DueSoon => q.due_soon += 1,
            Phase::Breached => q.breached += 1,
            _ => {}
        }
        if q.oldest_unanswered_since.is_none_or(|s| c.started_at < s) {
            q.oldest_unanswered = Some(c.ticket);
            q.oldest_unanswered_since = Some(c.started_at);
        }
    }
    out.sort_by(|a, b| a.queue.cmp(&b.queue));
    Ok(out)
}

#[cfg(test)]
mod tests;
