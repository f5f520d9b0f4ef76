//! The quarantine: messages that could not be processed, kept with the
//! reason, until an operator replays or drops them.

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{StoreError, from_ms, to_ms};

/// One quarantined message, without its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuarantinedMail {
    pub id: i64,
    pub origin: String,
    pub mailbox: Option<String>,
    pub reason: String,
    pub size_bytes: i64,
    /// False when the message was too large to keep (headers only).
    pub has_raw: bool,
    pub received_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
    pub resolution: Option<String>,
}

const COLUMNS: &str = "id, origin, mailbox, reason, size_bytes, raw IS NOT NULL, received_at, resolved_at, resolution";

fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<QuarantinedMail> {
    Ok(QuarantinedMail {
        id: r.get(0)?,
        origin: r.get(1)?,
        mailbox: r.get(2)?,
        reason: r.get(3)?,
        size_bytes: r.get(4)?,
        has_raw: r.get(5)?,
        received_at: from_ms(r.get(6)?),
        resolved_at: r.get::<_, Option<i64>>(7)?.map(from_ms),
        resolution: r.get(8)?,
    })
}

/// Quarantined messages, oldest first; resolved ones only with `all`.
pub fn list(conn: &Connection, all: bool) -> Result<Vec<QuarantinedMail>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM quarantine WHERE ?1 OR resolved_at IS NULL ORDER BY id"
    ))?;
    let rows = stmt
        .query_map([all], read)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// A quarantined message with what was kept of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedBytes {
    pub entry: QuarantinedMail,
    /// The message; `None` when it was too large to keep (or was dropped).
    pub raw: Option<Vec<u8>>,
    /// The header section, kept when `raw` was not.
    pub headers: Option<String>,
}

/// One entry with its bytes (or headers when the bytes were not kept).
pub fn get(conn: &Connection, id: i64) -> Result<Option<QuarantinedBytes>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS}, raw, headers FROM quarantine WHERE id = ?1"
        ))?
        .query_row([id], |r| {
            Ok(QuarantinedBytes {
                entry: read(r)?,
                raw: r.get(9)?,
                headers: r.get(10)?,
            })
        })
        .optional()?)
}

/// Marks an entry replayed or dropped. Dropping also discards its bytes.
pub fn resolve(
    conn: &Connection,
    id: i64,
    resolution: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "UPDATE quarantine SET resolved_at = ?2, resolution = ?3,
                    raw = CASE WHEN ?3 = 'dropped' THEN NULL ELSE raw END
             WHERE id = ?1 AND resolved_at IS NULL",
        )?
        .execute(params![id, to_ms(now), resolution])?;
    if n == 1 {
        super::ingest::insert_event(
            conn,
            now,
            None,
            None,
            if resolution == "dropped" {
                "quarantine.dropped"
            } else {
                "quarantine.replayed"
            },
            &serde_json::json!({ "quarantine": id }),
        )?;
    }
    Ok(n == 1)
}

/// Records why a replay failed again.
pub fn set_reason(conn: &Connection, id: i64, reason: &str) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE quarantine SET reason = ?2 WHERE id = ?1")?
        .execute(params![id, reason])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::Origin;
    use crate::store::Store;
    use crate::store::ingest::{QuarantineEntry, quarantine};

    #[test]
    fn list_resolve_drop() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("pd.db")).unwrap();
        let now = Timestamp::now();
        let entry = QuarantineEntry {
            origin: Origin::Pipe,
            mailbox: None,
            reason: "cannot parse".into(),
            size_bytes: 3,
            raw: Some(b"abc".to_vec()),
            headers: None,
        };
        quarantine(&s.conn, &entry, now).unwrap();
        quarantine(&s.conn, &entry, now).unwrap();
        assert_eq!(list(&s.conn, false).unwrap().len(), 2);
        assert!(resolve(&s.conn, 1, "dropped", now).unwrap());
        assert!(
            !resolve(&s.conn, 1, "replayed", now).unwrap(),
            "resolved once"
        );
        assert_eq!(list(&s.conn, false).unwrap().len(), 1);
        assert_eq!(list(&s.conn, true).unwrap().len(), 2);
        let q = get(&s.conn, 1).unwrap().unwrap();
        assert_eq!(
            (q.entry.resolution.as_deref(), q.raw),
            (Some("dropped"), None),
            "dropping discards the bytes"
        );
        assert_eq!(
            get(&s.conn, 2).unwrap().unwrap().raw.as_deref(),
            Some(&b"abc"[..])
        );
    }
}
