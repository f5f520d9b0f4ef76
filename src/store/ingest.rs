//! Writing what messages cause: one transaction per batch.
//!
//! For each message, inside the writer's transaction: skip it when its
//! origin was already ingested; read what threading and planning need
//! ([`lookup`]); decide with the pure [`crate::thread::decide`] and
//! [`crate::plan::plan`]; write the plan (ticket, message with raw bytes,
//! attachments, participants, events, outbox rows) together with the
//! source's checkpoint and owed mailbox actions. Later messages of a batch
//! see the earlier ones, so a reply in the same batch threads. A crash
//! before COMMIT loses nothing (the source still has the messages); a
//! crash after it replays nothing (origins and checkpoints are in the
//! same commit, and a replay through another path is a Duplicate).

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

use super::{StoreError, from_ms, to_ms};
use crate::mail::{AnalyzedMail, Class, Origin};
use crate::plan::{self, Found, Outcome, Plan, Policy, TicketChange, TicketSnapshot};
use crate::thread::{self, Candidates, TagCandidate, ThreadDecision};

/// How many References are looked up at most: threads deeper than this
/// still match on In-Reply-To and the newest references.
const MAX_REFERENCE_LOOKUPS: usize = 50;

/// A message that could not be processed, kept with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineEntry {
    pub origin: Origin,
    pub mailbox: Option<String>,
    pub reason: String,
    pub size_bytes: usize,
    /// The message, unless it was too large to keep.
    pub raw: Option<Vec<u8>>,
    /// The header section, when `raw` is not kept.
    pub headers: Option<String>,
}

/// The source bookkeeping committed together with a message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceEffects {
    /// Remember the origin so a second pass skips it before parsing (Maildir
    /// files, IMAP UIDs: origins that name one message forever).
    pub remember_origin: bool,
    /// Advance the source's UID checkpoint.
    pub checkpoint: Option<Checkpoint>,
    /// A server-side action owed once this commits.
    pub action: Option<MailboxAction>,
}

/// The highest UID of a folder whose message is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub source: String,
    pub uidvalidity: u32,
    pub uid: u32,
}

/// A flag or move owed on the server for a committed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxAction {
    pub source: String,
    pub uidvalidity: u32,
    pub uid: u32,
    /// `seen` or `move:<folder>`.
    pub action: String,
}

/// What to ingest.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    Mail(Box<AnalyzedMail>),
    Quarantine(QuarantineEntry),
}

/// One message (or quarantine entry) with its source bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestItem {
    pub work: Work,
    pub effects: SourceEffects,
}

impl Work {
    pub fn origin(&self) -> &Origin {
        match self {
            Work::Mail(m) => &m.raw.origin,
            Work::Quarantine(q) => &q.origin,
        }
    }
}

/// What happened to one message: the line of `postdesk ingest --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IngestReport {
    pub origin: String,
    pub message_id: Option<String>,
    pub outcome: Outcome,
    pub ticket: Option<i64>,
    pub class: Option<Class>,
    pub language: Option<String>,
    pub ack: bool,
    pub reason: String,
    /// The stored message's row id.
    #[serde(skip)]
    pub message_row: Option<i64>,
}

/// Ingests a batch in one transaction. With `dry_run` everything is
/// decided exactly as it would be, then rolled back.
pub fn ingest_batch(
    conn: &mut Connection,
    items: &[IngestItem],
    policy: &Policy,
    now: Timestamp,
    dry_run: bool,
) -> Result<Vec<IngestReport>, StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut reports = Vec::with_capacity(items.len());
    for item in items {
        reports.push(ingest_one(&tx, item, policy, now)?);
    }
    if dry_run {
        tx.rollback()?;
    } else {
        tx.commit()?;
    }
    Ok(reports)
}

/// Ingests a batch so that one bad message cannot hold up the others: when
/// the batch's transaction fails, each message is tried alone, and one
/// that fails alone for a reason that will not pass by itself is
/// quarantined with that reason. A transient failure (disk full, database
/// locked) leaves the message's result an error: it stays in its source
/// and is tried again later.
pub fn ingest_resilient(
    conn: &mut Connection,
    items: &[IngestItem],
    policy: &Policy,
    now: Timestamp,
    dry_run: bool,
) -> Vec<Result<IngestReport, StoreError>> {
    match ingest_batch(conn, items, policy, now, dry_run) {
        Ok(reports) => return reports.into_iter().map(Ok).collect(),
        Err(e) if items.len() > 1 => {
            tracing::warn!(error = %e, "Batch failed; retrying its messages one by one.")
        }
        Err(_) => {}
    }
    items
        .iter()
        .map(|item| match ingest_batch(conn, std::slice::from_ref(item), policy, now, dry_run) {
            Ok(mut r) => r.pop().ok_or_else(|| StoreError::Corrupt("an ingest produced no report".into())),
            Err(e) if e.is_transient() => Err(e),
            Err(e) => {
                tracing::error!(origin = %item.work.origin(), error = %e, "Message cannot be stored; quarantining it.");
                let entry = match &item.work {
                    Work::Mail(m) => QuarantineEntry {
                        origin: m.raw.origin.clone(),
                        mailbox: Some(m.mailbox.clone()),
                        reason: format!("cannot be stored: {e}"),
                        size_bytes: m.parsed.size_bytes,
                        // Decoding what analysis encoded moments ago does not
                        // fail; should it, the entry still names the origin
                        // and the reason, and the log says the bytes are lost.
                        raw: m
                            .raw
                            .encoded
                            .decode()
                            .inspect_err(|e| tracing::error!(error = %e, "The quarantined message's bytes are lost."))
                            .ok(),
                        headers: None,
                    },
                    Work::Quarantine(q) => q.clone(),
                };
                let q = IngestItem { work: Work::Quarantine(entry), effects: item.effects.clone() };
                ingest_batch(conn, std::slice::from_ref(&q), policy, now, dry_run)
                    .and_then(|mut r| r.pop().ok_or_else(|| StoreError::Corrupt("no report".into())))
            }
        })
        .collect()
}

fn ingest_one(
    tx: &Transaction<'_>,
    item: &IngestItem,
    policy: &Policy,
    now: Timestamp,
) -> Result<IngestReport, StoreError> {
    let origin_key = item.work.origin().key();
    if item.effects.remember_origin
        && let Some(row) = tx
            .prepare_cached("SELECT message FROM origins WHERE origin = ?1")?
            .query_row([&origin_key], |r| r.get::<_, Option<i64>>(0))
            .optional()?
    {
        apply_effects(tx, &item.effects, &origin_key, row, now)?;
        return Ok(IngestReport {
            origin: origin_key,
            message_id: None,
            outcome: Outcome::Duplicate,
            ticket: None,
            class: None,
            language: None,
            ack: false,
            reason: "this origin was already ingested".into(),
            message_row: row,
        });
    }
    let report = match &item.work {
        Work::Quarantine(q) => quarantine(tx, q, now)?,
        Work::Mail(m) => {
            let found = lookup(tx, m, policy, now)?;
            let plan = plan::plan(m, &found, policy, now);
            apply(tx, m, &plan, policy, now)?
        }
    };
    apply_effects(tx, &item.effects, &origin_key, report.message_row, now)?;
    Ok(report)
}

fn apply_effects(
    tx: &Transaction<'_>,
    effects: &SourceEffects,
    origin_key: &str,
    message_row: Option<i64>,
    now: Timestamp,
) -> Result<(), StoreError> {
    if effects.remember_origin {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO origins (origin, message, at) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![origin_key, message_row, to_ms(now)])?;
    }
    if let Some(c) = &effects.checkpoint {
        tx.prepare_cached(
            "INSERT INTO sources (source, uidvalidity, last_uid, synced_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (source) DO UPDATE SET
               last_uid = CASE WHEN sources.uidvalidity IS excluded.uidvalidity
                               THEN max(coalesce(sources.last_uid, 0), excluded.last_uid)
                               ELSE excluded.last_uid END,
               uidvalidity = excluded.uidvalidity,
               synced_at = excluded.synced_at",
        )?
        .execute(params![c.source, c.uidvalidity, c.uid, to_ms(now)])?;
    }
    if let Some(a) = &effects.action {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO mailbox_actions (source, uidvalidity, uid, action, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            a.source,
            a.uidvalidity,
            a.uid,
            a.action,
            to_ms(now)
        ])?;
    }
    Ok(())
}

/// Stores a message that could not be processed, with its reason.
pub fn quarantine(
    tx: &Connection,
    q: &QuarantineEntry,
    now: Timestamp,
) -> Result<IngestReport, StoreError> {
    tx.prepare_cached(
        "INSERT INTO quarantine (origin, mailbox, reason, size_bytes, raw, headers, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        q.origin.key(),
        q.mailbox,
        q.reason,
        q.size_bytes as i64,
        q.raw,
        q.headers,
        to_ms(now)
    ])?;
    let id = tx.last_insert_rowid();
    insert_event(
        tx,
        now,
        None,
        None,
        plan::event::MESSAGE_QUARANTINED,
        &serde_json::json!({ "quarantine": id, "origin": q.origin.key(), "reason": q.reason }),
    )?;
    Ok(IngestReport {
        origin: q.origin.key(),
        message_id: None,
        outcome: Outcome::Quarantined,
        ticket: None,
        class: None,
        language: None,
        ack: false,
        reason: q.reason.clone(),
        message_row: None,
    })
}

/// Reads what [`plan::plan`] needs for one message.
pub fn lookup(
    conn: &Connection,
    m: &AnalyzedMail,
    policy: &Policy,
    now: Timestamp,
) -> Result<Found, StoreError> {
    let cfg = &policy.config;
    let p = &m.parsed;
    let sender = plan::sender(m);
    let mut candidates = Candidates {
        duplicate: conn
            .prepare_cached(
                "SELECT id, ticket_id FROM messages WHERE message_id = ?1 AND content_hash = ?2",
            )?
            .query_row([&p.message_id, &p.content_hash], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?,
        ..Candidates::default()
    };

    if candidates.duplicate.is_none() {
        let mut ids = thread::referenced_ids(p);
        // A bounce names our message in its report, not in its references.
        if let Some(b) = &m.classification.bounce {
            for id in &b.original_message_ids {
                if !ids.contains(id) {
                    ids.push(id.clone());
                }
            }
        }
        ids.truncate(MAX_REFERENCE_LOOKUPS);
        // A reply to one of our warnings or escalations comes from our own
        // team: it belongs on the ticket, but it is not an answer to the
        // customer.
        let mut alert_of = conn.prepare_cached(
            "SELECT ticket_id FROM outbox WHERE message_id = ?1 AND kind IN ('warning', 'escalation') AND ticket_id IS NOT NULL",
        )?;
        for id in &ids {
            if let Some(t) = alert_of
                .query_row([id], |r| r.get::<_, i64>(0))
                .optional()?
            {
                candidates.alert_reply = Some((t, id.clone()));
                break;
            }
        }
        for (ticket, id) in thread::token_tickets(&ids, &policy.key) {
            if ticket_exists(conn, ticket)? {
                candidates.token = Some((ticket, id));
                break;
            }
        }
        if candidates.token.is_none() {
            let mut by_message =
                conn.prepare_cached("SELECT ticket_id FROM messages WHERE message_id = ?1 AND ticket_id IS NOT NULL ORDER BY id DESC LIMIT 1")?;
            let mut by_outbox = conn.prepare_cached(
                "SELECT ticket_id FROM outbox WHERE message_id = ?1 AND ticket_id IS NOT NULL",
            )?;
            for id in &ids {
                let t: Option<i64> = match by_message.query_row([id], |r| r.get(0)).optional()? {
                    Some(t) => Some(t),
                    None => by_outbox.query_row([id], |r| r.get(0)).optional()?,
                };
                if let Some(t) = t {
                    candidates.references = Some((t, id.clone()));
                    break;
                }
            }
        }
        if candidates.token.is_none() && candidates.references.is_none() {
            candidates.subject_tag_number = thread::subject_tag(&p.subject, &cfg.tickets.prefix);
            if let Some(n) = candidates.subject_tag_number
                && let Some(t) = ticket_snapshot(conn, n)?
            {
                let sender_is_agent = cfg.queue(&t.queue).is_some_and(|q| q.is_agent(&sender));
                candidates.subject_tag = Some(TagCandidate {
                    ticket: n,
                    participants: t.participants,
                    sender_is_agent,
                });
            }
        }
    }

    let decision = thread::decide(&sender, &candidates);
    let ticket = match &decision {
        ThreadDecision::Existing { ticket, .. } => ticket_snapshot(conn, *ticket)?,
        _ => None,
    };
    let previous_language = if sender.is_empty() {
        None
    } else {
        conn.prepare_cached(
            "SELECT language FROM tickets WHERE requester = ?1 ORDER BY id DESC LIMIT 1",
        )?
        .query_row([&sender], |r| r.get(0))
        .optional()?
    };
    let hour_ago = to_ms(now) - 3_600_000;
    let recipient = plan::reply_address(m, cfg);
    let (recipient_automatic_last_hour, recipient_bouncing) = match &recipient {
        Some(r) => (
            // Counting stops at the cap: only "below or not" matters.
            conn.prepare_cached(
                "SELECT count(*) FROM (SELECT 1 FROM outbox WHERE to_addr = ?1 AND automatic = 1 AND created_at > ?2 LIMIT ?3)",
            )?
            .query_row(params![r, hour_ago, cfg.acknowledge.per_sender_per_hour], |row| row.get::<_, i64>(0))? as u32,
            is_bouncing(conn, r)?,
        ),
        None => (0, false),
    };
    let automatic_last_hour = conn
        .prepare_cached("SELECT count(*) FROM (SELECT 1 FROM outbox WHERE automatic = 1 AND created_at > ?1 LIMIT ?2)")?
        .query_row(params![hour_ago, cfg.acknowledge.per_hour], |row| row.get::<_, i64>(0))? as u32;
    let sender_bouncing = !sender.is_empty() && is_bouncing(conn, &sender)?;
    Ok(Found {
        decision,
        ticket,
        previous_language,
        recipient_automatic_last_hour,
        automatic_last_hour,
        recipient_bouncing,
        sender_bouncing,
    })
}

fn is_bouncing(conn: &Connection, address: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM address_state WHERE address = ?1 AND bouncing_since IS NOT NULL",
        )?
        .exists([address])?)
}

fn ticket_exists(conn: &Connection, id: i64) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM tickets WHERE id = ?1")?
        .exists([id])?)
}

/// The ticket with its participants, if it exists.
pub fn ticket_snapshot(conn: &Connection, id: i64) -> Result<Option<TicketSnapshot>, StoreError> {
    let row = conn
        .prepare_cached("SELECT status, queue, mailbox, language, requester, closed_at FROM tickets WHERE id = ?1")?
        .query_row([id], |r| {
            Ok(TicketSnapshot {
                id,
                status: r.get(0)?,
                queue: r.get(1)?,
                mailbox: r.get(2)?,
                language: r.get(3)?,
                requester: r.get(4)?,
                closed_at: r.get::<_, Option<i64>>(5)?.map(from_ms),
                participants: Vec::new(),
            })
        })
        .optional()?;
    let Some(mut t) = row else { return Ok(None) };
    let mut stmt = conn.prepare_cached("SELECT address FROM participants WHERE ticket_id = ?1")?;
    t.participants = stmt
        .query_map([id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(Some(t))
}

/// Writes a plan. Returns the report line.
fn apply(
    tx: &Transaction<'_>,
    m: &AnalyzedMail,
    plan: &Plan,
    policy: &Policy,
    now: Timestamp,
) -> Result<IngestReport, StoreError> {
    let cfg = &policy.config;
    let now_ms = to_ms(now);
    let ticket_id = match &plan.ticket {
        TicketChange::None => None,
        TicketChange::Create(t) => {
            tx.prepare_cached(
                "INSERT INTO tickets (subject, status, mailbox, queue, language, language_confidence, language_source,
                                      requester, requester_name, reply_to, linked_ticket, created_at, updated_at)
                 VALUES (?1, 'open', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)",
            )?
            .execute(params![
                t.subject,
                t.mailbox,
                t.queue,
                t.language.code,
                t.language.confidence,
                t.language.source.as_str(),
                t.requester,
                t.requester_name,
                t.reply_to,
                t.linked_ticket,
                now_ms
            ])?;
            Some(tx.last_insert_rowid())
        }
        TicketChange::Update { id, status } => {
            match status {
                Some(s) => tx
                    .prepare_cached(
                        "UPDATE tickets SET status = ?2, updated_at = ?3,
                           closed_at = CASE WHEN ?2 = 'closed' THEN ?3 ELSE NULL END WHERE id = ?1",
                    )?
                    .execute(params![id, s, now_ms])?,
                None if plan.store_message => tx
                    .prepare_cached("UPDATE tickets SET updated_at = ?2 WHERE id = ?1")?
                    .execute(params![id, now_ms])?,
                None => 0,
            };
            Some(*id)
        }
    };

    let message_row = if plan.store_message {
        Some(insert_message(tx, m, plan, ticket_id, now)?)
    } else {
        None
    };

    if let Some(t) = ticket_id {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO participants (ticket_id, address, role, name) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (ticket_id, address) DO NOTHING",
        )?;
        for (address, role, name) in &plan.participants {
            stmt.execute(params![t, address, role, name])?;
        }
    }
    for e in &plan.events {
        insert_event(tx, now, ticket_id, message_row, e.kind, &e.detail)?;
    }
    // The response clock follows the events, in the same transaction.
    if let Some(t) = ticket_id {
        super::sla::on_ingest(tx, cfg, t, plan, m, message_row, now)?;
    }
    for d in &plan.outbox {
        let Some(t) = ticket_id else { continue };
        if d.automatic {
            // Loop brake: robots on both sides of one ticket stop after
            // acknowledge.max_auto_per_ticket automatic mails, whatever
            // headers the other side forgot to set.
            let exchanged = automatic_exchanges(tx, t)?;
            if exchanged >= i64::from(cfg.acknowledge.max_auto_per_ticket) {
                tracing::warn!(ticket = t, exchanged, to = %d.to, "Automatic mail stopped: too many automatic messages on this ticket.");
                insert_event(
                    tx,
                    now,
                    Some(t),
                    message_row,
                    "loop.stopped",
                    &serde_json::json!({ "kind": d.kind, "to": d.to, "automatic_messages": exchanged }),
                )?;
                continue;
            }
        }
        let mut context = d.context.clone();
        if let Some(obj) = context.as_object_mut() {
            obj.insert("ticket".into(), cfg.ticket_ref(t).into());
        }
        super::outbox::insert(
            tx,
            &super::outbox::NewRow {
                kind: d.kind,
                dedup_key: format!("{}:{t}{}", d.kind, d.dedup_suffix),
                ticket_id: Some(t),
                mailbox: m.mailbox.clone(),
                message_id: policy.key.mint(t, &cfg.security.message_id_domain),
                to_addr: d.to.clone(),
                cc_addrs: Vec::new(),
                language: d.language.clone(),
                context,
                in_reply_to: d.in_reply_to.clone(),
                references: d.references.clone(),
                automatic: d.automatic,
                due_at: now,
            },
            now,
        )?;
    }
    for (address, reason) in &plan.mark_bouncing {
        super::outbox::mark_bouncing(tx, address, reason, now)?;
    }
    if let Some(address) = &plan.clear_bouncing {
        tx.prepare_cached("UPDATE address_state SET bouncing_since = NULL, bounce_reason = NULL WHERE address = ?1")?
            .execute([address])?;
    }
    Ok(IngestReport {
        origin: m.raw.origin.key(),
        message_id: Some(m.parsed.message_id.clone()),
        outcome: plan.outcome,
        ticket: ticket_id,
        class: Some(m.classification.class),
        language: plan.language.as_ref().map(|l| l.code.clone()),
        ack: plan.ack,
        reason: plan.reason.clone(),
        message_row,
    })
}

fn insert_message(
    tx: &Transaction<'_>,
    m: &AnalyzedMail,
    plan: &Plan,
    ticket_id: Option<i64>,
    now: Timestamp,
) -> Result<i64, StoreError> {
    let p = &m.parsed;
    let outcome = match plan.outcome {
        Outcome::Created => "created",
        Outcome::Threaded => "threaded",
        _ => "ignored",
    };
    let lang = plan.language.as_ref();
    // A message's own language: the ticket's resolution for new tickets;
    // the reliable detection (or nothing) for replies.
    let (language, confidence, source) = match (lang, &m.detection) {
        (Some(l), _) => (
            Some(l.code.clone()),
            Some(l.confidence),
            Some(l.source.as_str()),
        ),
        (None, Some(d)) if d.reliable => (
            Some(d.language.clone()),
            Some(d.confidence),
            Some("detected"),
        ),
        _ => (None, None, None),
    };
    let headers: Vec<(&str, &str)> = p
        .headers
        .iter()
        .map(|h| (h.name.as_str(), h.value.as_str()))
        .collect();
    let to: Vec<String> = p.to.iter().map(|a| a.key()).collect();
    let cc: Vec<String> = p.cc.iter().map(|a| a.key()).collect();
    tx.prepare_cached(
        "INSERT INTO messages (ticket_id, message_id, content_hash, direction, class, outcome, origin, mailbox,
                               from_addr, from_name, to_addrs, cc_addrs, subject, date, received_at, in_reply_to, refs,
                               headers, extracted_text, language, language_confidence, language_source,
                               classification, size_bytes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22,
                 ?23, ?24)",
    )?
    .execute(params![
        ticket_id,
        p.message_id,
        p.content_hash,
        m.raw.direction.as_str(),
        m.classification.class.as_str(),
        outcome,
        m.raw.origin.key(),
        m.mailbox,
        p.from.as_ref().map(|a| a.key()),
        p.from.as_ref().and_then(|a| a.name.clone()),
        json(&to),
        json(&cc),
        p.subject,
        p.date.map(to_ms),
        to_ms(now),
        json(&p.in_reply_to),
        json(&p.references),
        json(&headers),
        m.customer_text.text,
        language,
        confidence,
        source,
        json(&m.classification),
        p.size_bytes as i64,
    ])?;
    let row = tx.last_insert_rowid();
    super::raw::insert(tx, row, &m.raw.encoded)?;
    for a in &p.attachments {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO blobs (sha256, size_bytes, content) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![a.sha256, a.size_bytes as i64, a.content])?;
        tx.prepare_cached(
            "INSERT INTO attachments (message, name, content_type, size_bytes, sha256) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![row, a.name, a.content_type, a.size_bytes as i64, a.sha256])?;
    }
    Ok(row)
}

/// Automatic messages with the customer on a ticket, in both directions:
/// what we queued automatically for them (not alerts to our own team), and
/// automatic mail (auto-replies, bounces, robots) that came in on it.
fn automatic_exchanges(conn: &Connection, ticket: i64) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT (SELECT count(*) FROM outbox WHERE ticket_id = ?1 AND automatic = 1
                                                    AND kind NOT IN ('warning', 'escalation'))
                  + (SELECT count(*) FROM messages WHERE ticket_id = ?1 AND direction = 'inbound'
                                                     AND class IN ('auto-replied', 'auto-generated', 'bounce'))",
        )?
        .query_row([ticket], |r| r.get(0))?)
}

/// Records a successful pass over a source.
pub fn mark_source_synced(
    conn: &Connection,
    source: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO sources (source, synced_at) VALUES (?1, ?2)
         ON CONFLICT (source) DO UPDATE SET synced_at = excluded.synced_at",
    )?
    .execute(params![source, to_ms(now)])?;
    Ok(())
}

/// Records why a source could not be read.
pub fn mark_source_error(
    conn: &Connection,
    source: &str,
    error: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO sources (source, last_error, last_error_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (source) DO UPDATE SET last_error = excluded.last_error, last_error_at = excluded.last_error_at",
    )?
    .execute(params![source, error, to_ms(now)])?;
    Ok(())
}

/// Appends to the audit trail.
pub fn insert_event(
    conn: &Connection,
    now: Timestamp,
    ticket: Option<i64>,
    message: Option<i64>,
    kind: &str,
    detail: &serde_json::Value,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO events (at, ticket_id, message, kind, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        to_ms(now),
        ticket,
        message,
        kind,
        detail.to_string()
    ])?;
    Ok(())
}

/// JSON for the small values postdesk writes itself (lists of strings,
/// the classification): serializing them cannot fail, and an empty array
/// is the safe stand-in if it ever did.
fn json<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".to_owned())
}

/// The config a store-only test needs.
#[cfg(test)]
pub(crate) fn test_policy(extra: &str) -> Policy {
    let text = format!(
        "[tickets]\nprefix = \"PD\"\n[[mailboxes]]\nname = \"support\"\naddress = \"support@example.com\"\ndisplay_name = \"Example Support\"\n{extra}"
    );
    let config =
        crate::config::Config::from_str(&text, std::path::Path::new("/test/postdesk.toml"))
            .expect("test config");
    Policy {
        config,
        key: crate::token::TokenKey::new(b"test key, at least sixteen bytes".to_vec()),
    }
}

#[cfg(test)]
mod tests;
