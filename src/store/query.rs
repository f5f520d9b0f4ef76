//! Read-only queries behind `postdesk tickets`, `show` and `status`.
//! They run on read-only connections, also while the daemon writes.

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{StoreError, from_ms};

/// Which tickets `postdesk tickets` lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketFilter {
    pub status: Option<String>,
    pub queue: Option<String>,
    pub limit: usize,
}

/// One line of the ticket list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TicketSummary {
    pub id: i64,
    pub subject: String,
    pub status: String,
    pub queue: String,
    pub mailbox: String,
    pub language: String,
    pub language_confidence: f64,
    pub language_source: String,
    pub requester: String,
    pub requester_name: Option<String>,
    pub linked_ticket: Option<i64>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub closed_at: Option<Timestamp>,
    pub messages: i64,
}

const SUMMARY_COLUMNS: &str = "t.id, t.subject, t.status, t.queue, t.mailbox, t.language, t.language_confidence,
    t.language_source, t.requester, t.requester_name, t.linked_ticket, t.created_at, t.updated_at, t.closed_at,
    (SELECT count(*) FROM messages m WHERE m.ticket_id = t.id)";

fn read_summary(r: &rusqlite::Row<'_>) -> rusqlite::Result<TicketSummary> {
    Ok(TicketSummary {
        id: r.get(0)?,
        subject: r.get(1)?,
        status: r.get(2)?,
        queue: r.get(3)?,
        mailbox: r.get(4)?,
        language: r.get(5)?,
        language_confidence: r.get(6)?,
        language_source: r.get(7)?,
        requester: r.get(8)?,
        requester_name: r.get(9)?,
        linked_ticket: r.get(10)?,
        created_at: from_ms(r.get(11)?),
        updated_at: from_ms(r.get(12)?),
        closed_at: r.get::<_, Option<i64>>(13)?.map(from_ms),
        messages: r.get(14)?,
    })
}

/// Tickets matching `f`, newest first.
pub fn list_tickets(conn: &Connection, f: &TicketFilter) -> Result<Vec<TicketSummary>, StoreError> {
    let limit = if f.limit == 0 {
        i64::MAX
    } else {
        f.limit as i64
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SUMMARY_COLUMNS} FROM tickets t
         WHERE (?1 IS NULL OR t.status = ?1) AND (?2 IS NULL OR t.queue = ?2)
         ORDER BY t.id DESC LIMIT ?3"
    ))?;
    let rows = stmt
        .query_map(params![f.status, f.queue, limit], read_summary)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// One message of a ticket, as `postdesk show` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageView {
    pub id: i64,
    pub message_id: String,
    pub direction: String,
    pub class: String,
    pub from: Option<String>,
    pub from_name: Option<String>,
    pub subject: String,
    pub date: Option<Timestamp>,
    pub received_at: Timestamp,
    pub language: Option<String>,
    pub language_confidence: Option<f64>,
    pub extracted_text: String,
    pub attachments: Vec<AttachmentView>,
}

/// An attachment's metadata.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttachmentView {
    pub name: Option<String>,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
}

/// The decoded content of an attachment, stored once per SHA-256.
pub fn attachment_content(conn: &Connection, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT content FROM blobs WHERE sha256 = ?1")?
        .query_row([sha256], |r| r.get(0))
        .optional()?)
}

/// An audit event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventView {
    pub at: Timestamp,
    pub kind: String,
    pub message: Option<i64>,
    pub detail: serde_json::Value,
}

/// A participant of a ticket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParticipantView {
    pub address: String,
    pub role: String,
    pub name: Option<String>,
}

/// Everything `postdesk show` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TicketDetail {
    #[serde(flatten)]
    pub ticket: TicketSummary,
    pub reply_to: Option<String>,
    pub participants: Vec<ParticipantView>,
    pub messages: Vec<MessageView>,
    pub events: Vec<EventView>,
}

/// A ticket with its messages in order, or `None`.
pub fn show_ticket(conn: &Connection, id: i64) -> Result<Option<TicketDetail>, StoreError> {
    let ticket = conn
        .prepare_cached(&format!(
            "SELECT {SUMMARY_COLUMNS}, t.reply_to FROM tickets t WHERE t.id = ?1"
        ))?
        .query_row([id], |r| {
            Ok((read_summary(r)?, r.get::<_, Option<String>>(15)?))
        })
        .optional()?;
    let Some((ticket, reply_to)) = ticket else {
        return Ok(None);
    };

    let participants = conn
        .prepare_cached("SELECT address, role, name FROM participants WHERE ticket_id = ?1 ORDER BY role DESC, address")?
        .query_map([id], |r| Ok(ParticipantView { address: r.get(0)?, role: r.get(1)?, name: r.get(2)? }))?
        .collect::<Result<Vec<_>, _>>()?;

    let mut attachments_of = conn.prepare_cached(
        "SELECT name, content_type, size_bytes, sha256 FROM attachments WHERE message = ?1 ORDER BY id",
    )?;
    let mut messages = conn
        .prepare_cached(
            "SELECT id, message_id, direction, class, from_addr, from_name, subject, date, received_at, language,
                    language_confidence, extracted_text
             FROM messages WHERE ticket_id = ?1 ORDER BY received_at, id",
        )?
        .query_map([id], |r| {
            Ok(MessageView {
                id: r.get(0)?,
                message_id: r.get(1)?,
                direction: r.get(2)?,
                class: r.get(3)?,
                from: r.get(4)?,
                from_name: r.get(5)?,
                subject: r.get(6)?,
                date: r.get::<_, Option<i64>>(7)?.map(from_ms),
                received_at: from_ms(r.get(8)?),
                language: r.get(9)?,
                language_confidence: r.get(10)?,
                extracted_text: r.get(11)?,
                attachments: Vec::new(),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    for m in &mut messages {
        m.attachments = attachments_of
            .query_map([m.id], |r| {
                Ok(AttachmentView {
                    name: r.get(0)?,
                    content_type: r.get(1)?,
                    size_bytes: r.get(2)?,
                    sha256: r.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
    }
    let events = conn
        .prepare_cached(
            "SELECT at, kind, message, detail FROM events WHERE ticket_id = ?1 ORDER BY id",
        )?
        .query_map([id], |r| {
            Ok(EventView {
                at: from_ms(r.get(0)?),
                kind: r.get(1)?,
                message: r.get(2)?,
                detail: serde_json::from_str(&r.get::<_, String>(3)?)
                    .unwrap_or(serde_json::Value::Null),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(TicketDetail {
        ticket,
        reply_to,
        participants,
        messages,
        events,
    }))
}

/// Ticket counts of one queue.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct QueueCounts {
    pub queue: String,
    pub open: u64,
    pub waiting: u64,
    pub closed: u64,
}

/// Ticket counts per queue (queues without tickets are absent).
pub fn queue_counts(conn: &Connection) -> Result<Vec<QueueCounts>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT queue, sum(status = 'open'), sum(status = 'waiting'), sum(status = 'closed')
         FROM tickets GROUP BY queue ORDER BY queue",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(QueueCounts {
                queue: r.get(0)?,
                open: r.get::<_, i64>(1)?.max(0) as u64,
                waiting: r.get::<_, i64>(2)?.max(0) as u64,
                closed: r.get::<_, i64>(3)?.max(0) as u64,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Where a source's ingestion stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceState {
    pub source: String,
    pub uidvalidity: Option<i64>,
    pub last_uid: Option<i64>,
    pub synced_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub last_error_at: Option<Timestamp>,
}

pub fn sources(conn: &Connection) -> Result<Vec<SourceState>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT source, uidvalidity, last_uid, synced_at, last_error, last_error_at FROM sources ORDER BY source",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(SourceState {
                source: r.get(0)?,
                uidvalidity: r.get(1)?,
                last_uid: r.get(2)?,
                synced_at: r.get::<_, Option<i64>>(3)?.map(from_ms),
                last_error: r.get(4)?,
                last_error_at: r.get::<_, Option<i64>>(5)?.map(from_ms),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Quarantined messages not yet replayed or dropped.
pub fn quarantine_open(conn: &Connection) -> Result<u64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT count(*) FROM quarantine WHERE resolved_at IS NULL")?
        .query_row([], |r| r.get::<_, i64>(0))?
        .max(0) as u64)
}

/// Messages stored, by class.
pub fn message_counts(conn: &Connection) -> Result<Vec<(String, u64)>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT class, count(*) FROM messages GROUP BY class ORDER BY class")?;
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}
