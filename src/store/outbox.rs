//! The outbox table: mail waiting to be sent, and its delivery state.
//!
//! Rows are written by the transaction that causes them (a new ticket's
//! ack, an SLA warning, an agent's reply). The sender claims due rows with
//! a lease and bumps `attempts` *before* trying, so a row that crashes the
//! sender every time still runs out of attempts instead of blocking the
//! queue. Each row's Message-ID was fixed at insert time: a resend after a
//! crash is the same message, which receivers deduplicate.

use std::time::Duration;

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{StoreError, from_ms, to_ms};

/// A row to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRow {
    pub kind: &'static str,
    /// Unique per intended mail, e.g. `ack:42` or `warning:42:first:1`: a
    /// second insert with the same key is ignored.
    pub dedup_key: String,
    pub ticket_id: Option<i64>,
    pub mailbox: String,
    pub message_id: String,
    pub to_addr: String,
    pub cc_addrs: Vec<String>,
    pub language: String,
    pub context: serde_json::Value,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub automatic: bool,
    /// When it may first be sent.
    pub due_at: Timestamp,
}

/// Inserts a row unless one with the same dedup key exists. Returns the
/// new row id, or `None` when it was already queued.
pub fn insert(conn: &Connection, row: &NewRow, now: Timestamp) -> Result<Option<i64>, StoreError> {
    let n = conn
        .prepare_cached(
            "INSERT INTO outbox (kind, dedup_key, ticket_id, mailbox, message_id, to_addr, cc_addrs, language, context,
                                 in_reply_to, refs, automatic, next_attempt_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT (dedup_key) DO NOTHING",
        )?
        .execute(params![
            row.kind,
            row.dedup_key,
            row.ticket_id,
            row.mailbox,
            row.message_id,
            row.to_addr,
            serde_json::to_string(&row.cc_addrs).unwrap_or_else(|_| "[]".into()),
            row.language,
            row.context.to_string(),
            row.in_reply_to,
            serde_json::to_string(&row.references).unwrap_or_else(|_| "[]".into()),
            row.automatic,
            to_ms(row.due_at),
            to_ms(now),
        ])?;
    Ok((n == 1).then(|| conn.last_insert_rowid()))
}

/// A queued mail as the sender sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxRow {
    pub id: i64,
    pub kind: String,
    pub dedup_key: String,
    pub ticket_id: Option<i64>,
    pub mailbox: String,
    pub message_id: String,
    pub to_addr: String,
    pub cc_addrs: Vec<String>,
    pub language: String,
    pub context: serde_json::Value,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub automatic: bool,
    pub status: String,
    /// Attempts so far, including the one this claim starts.
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
}

const ROW_COLUMNS: &str =
    "id, kind, dedup_key, ticket_id, mailbox, message_id, to_addr, cc_addrs, language, context,
                           in_reply_to, refs, automatic, status, attempts, last_error, created_at";

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRow> {
    let list = |s: String| serde_json::from_str::<Vec<String>>(&s).unwrap_or_default();
    Ok(OutboxRow {
        id: r.get(0)?,
        kind: r.get(1)?,
        dedup_key: r.get(2)?,
        ticket_id: r.get(3)?,
        mailbox: r.get(4)?,
        message_id: r.get(5)?,
        to_addr: r.get(6)?,
        cc_addrs: list(r.get(7)?),
        language: r.get(8)?,
        context: serde_json::from_str(&r.get::<_, String>(9)?).unwrap_or(serde_json::Value::Null),
        in_reply_to: r.get(10)?,
        references: list(r.get(11)?),
        automatic: r.get(12)?,
        status: r.get(13)?,
        attempts: r.get::<_, i64>(14)?.clamp(0, i64::from(u32::MAX)) as u32,
        last_error: r.get(15)?,
        created_at: from_ms(r.get(16)?),
    })
}

/// Claims up to `limit` due rows for `lease`, counting the attempt now.
pub fn claim_due(
    conn: &mut Connection,
    now: Timestamp,
    lease: Duration,
    limit: usize,
) -> Result<Vec<OutboxRow>, StoreError> {
    let now_ms = to_ms(now);
    let lease_until = now_ms + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let rows = {
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT {ROW_COLUMNS} FROM outbox
             WHERE status = 'pending' AND next_attempt_at <= ?1 AND (lease_until IS NULL OR lease_until <= ?1)
             ORDER BY next_attempt_at, id LIMIT ?2"
        ))?;
        stmt.query_map(params![now_ms, limit as i64], read_row)?
            .collect::<Result<Vec<_>, _>>()?
    };
    {
        let mut claim = tx.prepare_cached(
            "UPDATE outbox SET lease_until = ?2, attempts = attempts + 1 WHERE id = ?1",
        )?;
        for r in &rows {
            claim.execute(params![r.id, lease_until])?;
        }
    }
    tx.commit()?;
    Ok(rows
        .into_iter()
        .map(|mut r| {
            r.attempts += 1;
            r
        })
        .collect())
}

/// Records a delivery.
pub fn mark_sent(
    conn: &Connection,
    id: i64,
    now: Timestamp,
    server_reply: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE outbox SET status = 'sent', sent_at = ?2, server_reply = ?3, lease_until = NULL, last_error = NULL WHERE id = ?1",
    )?
    .execute(params![id, to_ms(now), server_reply])?;
    Ok(())
}

/// What a sent mail looked like, for the ticket's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMail<'a> {
    pub from: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    pub language: &'a str,
    pub bytes: &'a [u8],
    pub server_reply: &'a str,
}

/// Records a delivery: marks the row sent and, for mail to the customer
/// (acks, replies), adds it to the ticket as an outbound message, so the
/// conversation shows what the customer received and replies to it thread
/// by reference. One transaction; a second call for the same row is a
/// no-op for the message.
pub fn record_sent(
    conn: &mut Connection,
    row: &OutboxRow,
    sent: &SentMail<'_>,
    now: Timestamp,
) -> Result<(), StoreError> {
    use sha2::Digest;
    let tx = conn.transaction()?;
    mark_sent(&tx, row.id, now, sent.server_reply)?;
    let class = match row.kind.as_str() {
        "ack" => Some("auto-replied"),
        "reply" => Some("human"),
        _ => None,
    };
    let mut message = None;
    if let (Some(class), Some(ticket)) = (class, row.ticket_id) {
        let hash = data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(sent.bytes));
        let n = tx
            .prepare_cached(
                "INSERT INTO messages (ticket_id, message_id, content_hash, direction, class, outcome, origin, mailbox,
                                       from_addr, to_addrs, subject, date, received_at, in_reply_to, refs,
                                       extracted_text, language, language_confidence, language_source, size_bytes)
                 VALUES (?1, ?2, ?3, 'outbound', ?4, 'threaded', ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?12, ?13, ?14, 1.0,
                         'detected', ?15)
                 ON CONFLICT (message_id, content_hash) DO NOTHING",
            )?
            .execute(params![
                ticket,
                row.message_id,
                hash,
                class,
                format!("outbox:{}", row.id),
                row.mailbox,
                sent.from,
                serde_json::to_string(&[&row.to_addr]).unwrap_or_else(|_| "[]".into()),
                sent.subject,
                to_ms(now),
                serde_json::to_string(&row.in_reply_to.iter().collect::<Vec<_>>()).unwrap_or_else(|_| "[]".into()),
                serde_json::to_string(&row.references).unwrap_or_else(|_| "[]".into()),
                sent.text,
                sent.language,
                sent.bytes.len() as i64,
            ])?;
        if n == 1 {
            let id = tx.last_insert_rowid();
            super::raw::insert(
                &tx,
                id,
                &super::raw::EncodedRaw::encode(sent.bytes.to_vec()),
            )?;
            message = Some(id);
        }
    }
    super::ingest::insert_event(
        &tx,
        now,
        row.ticket_id,
        message,
        "outbox.sent",
        &serde_json::json!({ "kind": row.kind, "to": row.to_addr, "message_id": row.message_id, "reply": sent.server_reply }),
    )?;
    tx.commit()?;
    Ok(())
}

/// Records a temporary failure; the row is tried again at `next_at`.
pub fn mark_retry(
    conn: &Connection,
    id: i64,
    next_at: Timestamp,
    error: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE outbox SET next_attempt_at = ?2, last_error = ?3, lease_until = NULL WHERE id = ?1",
    )?
    .execute(params![id, to_ms(next_at), error])?;
    Ok(())
}

/// Records a permanent failure; the row is not tried again.
pub fn mark_failed(
    conn: &Connection,
    id: i64,
    now: Timestamp,
    error: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE outbox SET status = 'failed', last_error = ?3, lease_until = NULL, sent_at = NULL,
                           next_attempt_at = ?2 WHERE id = ?1",
    )?
    .execute(params![id, to_ms(now), error])?;
    Ok(())
}

/// Marks an address as bouncing (our mail to it cannot be delivered); no
/// automatic mail goes to it until a human message arrives from it.
pub fn mark_bouncing(
    conn: &Connection,
    address: &str,
    reason: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO address_state (address, bouncing_since, bounce_reason) VALUES (?1, ?2, ?3)
         ON CONFLICT (address) DO UPDATE SET bouncing_since = coalesce(address_state.bouncing_since, excluded.bouncing_since),
                                             bounce_reason = excluded.bounce_reason",
    )?
    .execute(params![address, to_ms(now), reason])?;
    Ok(())
}

/// When the next pending row becomes due (or its lease ends), if any.
pub fn next_due(conn: &Connection) -> Result<Option<Timestamp>, StoreError> {
    let ms: Option<i64> = conn
        .prepare_cached("SELECT min(max(next_attempt_at, coalesce(lease_until, 0))) FROM outbox WHERE status = 'pending'")?
        .query_row([], |r| r.get(0))
        .optional()?
        .flatten();
    Ok(ms.map(from_ms))
}

/// One row by id.
pub fn get(conn: &Connection, id: i64) -> Result<Option<OutboxRow>, StoreError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {ROW_COLUMNS} FROM outbox WHERE id = ?1"))?
        .query_row([id], read_row)
        .optional()?)
}

/// Rows in a status, newest first.
pub fn list(conn: &Connection, status: &str, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ROW_COLUMNS} FROM outbox WHERE status = ?1 ORDER BY id DESC LIMIT ?2"
    ))?;
    let rows = stmt
        .query_map(params![status, limit as i64], read_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Pending rows that failed at least `min_attempts` times: mail that
/// keeps failing (a refused login, an unreachable relay), with the most
/// recent error.
pub fn stuck(conn: &Connection, min_attempts: u32) -> Result<(u64, Option<String>), StoreError> {
    let n: i64 = conn
        .prepare_cached("SELECT count(*) FROM outbox WHERE status = 'pending' AND attempts >= ?1 AND last_error IS NOT NULL")?
        .query_row([min_attempts], |r| r.get(0))?;
    let last: Option<String> = conn
        .prepare_cached(
            "SELECT last_error FROM outbox WHERE status = 'pending' AND attempts >= ?1 AND last_error IS NOT NULL
             ORDER BY next_attempt_at DESC LIMIT 1",
        )?
        .query_row([min_attempts], |r| r.get(0))
        .optional()?;
    Ok((n.max(0) as u64, last))
}

/// Outbox totals for status displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct OutboxCounts {
    pub pending: u64,
    pub failed: u64,
    pub sent: u64,
}

pub fn counts(conn: &Connection) -> Result<OutboxCounts, StoreError> {
    let mut c = OutboxCounts::default();
    let mut stmt = conn.prepare_cached("SELECT status, count(*) FROM outbox GROUP BY status")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (status, n) = row?;
        let n = n.max(0) as u64;
        match status.as_str() {
            "pending" => c.pending = n,
            "failed" => c.failed = n,
            "sent" => c.sent = n,
            _ => {}
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn row(key: &str, msgid: &str) -> NewRow {
        NewRow {
            kind: "ack",
            dedup_key: key.into(),
            ticket_id: None,
            mailbox: "support".into(),
            message_id: msgid.into(),
            to_addr: "c@example.org".into(),
            cc_addrs: vec![],
            language: "en".into(),
            context: serde_json::json!({"x": 1}),
            in_reply_to: None,
            references: vec!["a@b".into()],
            automatic: true,
            due_at: Timestamp::from_second(1000).unwrap(),
        }
    }

    #[test]
    fn dedup_claim_retry_sent() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("pd.db")).unwrap();
        let t0 = Timestamp::from_second(1000).unwrap();
        let id = insert(&s.conn, &row("ack:1", "m1@x"), t0).unwrap().unwrap();
        assert_eq!(
            insert(&s.conn, &row("ack:1", "m2@x"), t0).unwrap(),
            None,
            "same dedup key is queued once"
        );

        let claimed = claim_due(&mut s.conn, t0, Duration::from_secs(60), 10).unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].attempts, 1);
        assert_eq!(claimed[0].references, vec!["a@b"]);
        assert!(
            claim_due(&mut s.conn, t0, Duration::from_secs(60), 10)
                .unwrap()
                .is_empty(),
            "leased"
        );

        let later = Timestamp::from_second(1100).unwrap();
        mark_retry(&s.conn, id, later, "421 try later").unwrap();
        assert_eq!(next_due(&s.conn).unwrap(), Some(later));
        assert!(
            claim_due(&mut s.conn, t0, Duration::from_secs(60), 10)
                .unwrap()
                .is_empty(),
            "not due yet"
        );
        let again = claim_due(&mut s.conn, later, Duration::from_secs(60), 10).unwrap();
        assert_eq!(again[0].attempts, 2);
        assert_eq!(again[0].last_error.as_deref(), Some("421 try later"));

        mark_sent(&s.conn, id, later, "250 2.0.0 Ok").unwrap();
        assert_eq!(
            counts(&s.conn).unwrap(),
            OutboxCounts {
                pending: 0,
                failed: 0,
                sent: 1
            }
        );
        assert_eq!(next_due(&s.conn).unwrap(), None);
    }

    #[test]
    fn an_expired_lease_is_claimable_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("pd.db")).unwrap();
        let t0 = Timestamp::from_second(1000).unwrap();
        let id = insert(&s.conn, &row("ack:1", "m1@x"), t0).unwrap().unwrap();
        claim_due(&mut s.conn, t0, Duration::from_secs(60), 10).unwrap();
        // The sender died holding the lease; after it ends the row comes back.
        let after = Timestamp::from_second(1061).unwrap();
        let again = claim_due(&mut s.conn, after, Duration::from_secs(60), 10).unwrap();
        assert_eq!(again.len(), 1);
        mark_failed(&s.conn, id, after, "550 5.1.1 no such user").unwrap();
        assert_eq!(counts(&s.conn).unwrap().failed, 1);
        assert_eq!(
            list(&s.conn, "failed", 10).unwrap()[0]
                .last_error
                .as_deref(),
            Some("550 5.1.1 no such user")
        );
    }
}
