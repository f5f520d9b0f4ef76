//! What the IMAP source keeps in the database between connections.
//!
//! Per folder (a source named `imap:<mailbox>/<folder>`), the `sources`
//! row holds the folder's UIDVALIDITY and the highest UID whose message is
//! committed: what is new is decided by these two numbers, never by
//! `\Seen`. The row is advanced by the ingest transaction itself
//! ([`super::ingest::Checkpoint`]); this module reads it and handles the
//! events around it: first contact, a UIDVALIDITY change, a rewind after a
//! failed message, the server-side actions (`mailbox_actions`) owed for
//! committed messages.
//!
//! First contact with `backlog = "unseen"` must skip the messages already
//! seen then, also after a crash halfway through that backlog; the UID
//! where the backlog ends is kept in `settings` under
//! `imap.backlog_end:<source>` until the backlog is done.

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

use super::{StoreError, to_ms};

/// Where ingestion of one IMAP folder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolderState {
    pub uidvalidity: u32,
    /// Highest UID whose message is committed (0: none yet).
    pub last_uid: u32,
    /// While a first-contact "unseen" backlog drains: the folder's UIDNEXT
    /// at first contact. Below it only messages unseen on the server are
    /// new; from it on, everything is.
    pub backlog_end: Option<u32>,
}

/// A server-side action owed for a committed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingAction {
    pub uidvalidity: u32,
    pub uid: u32,
    /// `seen` or `move:<folder>` (see [`super::ingest::MailboxAction`]).
    pub action: String,
}

fn backlog_key(source: &str) -> String {
    format!("imap.backlog_end:{source}")
}

/// The folder's state, or `None` before first contact.
pub fn folder_state(conn: &Connection, source: &str) -> Result<Option<FolderState>, StoreError> {
    let row: Option<(u32, u32)> = conn
        .prepare_cached(
            "SELECT uidvalidity, coalesce(last_uid, 0) FROM sources
             WHERE source = ?1 AND uidvalidity IS NOT NULL",
        )?
        .query_row([source], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((uidvalidity, last_uid)) = row else {
        return Ok(None);
    };
    let backlog: Option<Vec<u8>> = conn
        .prepare_cached("SELECT value FROM settings WHERE key = ?1")?
        .query_row([backlog_key(source)], |r| r.get(0))
        .optional()?;
    let backlog_end = backlog
        .and_then(|v| parse_backlog(&v))
        .filter(|(v, _)| *v == uidvalidity)
        .map(|(_, end)| end);
    Ok(Some(FolderState {
        uidvalidity,
        last_uid,
        backlog_end,
    }))
}

fn parse_backlog(value: &[u8]) -> Option<(u32, u32)> {
    let text = std::str::from_utf8(value).ok()?;
    let (v, end) = text.split_once(':')?;
    Some((v.parse().ok()?, end.parse().ok()?))
}

/// Records first contact with a folder: its UIDVALIDITY, the UID below
/// which nothing is to be ingested (`last_uid`), and for an "unseen"
/// backlog where it ends. One transaction.
pub fn first_contact(
    conn: &mut Connection,
    source: &str,
    state: FolderState,
    now: Timestamp,
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    tx.prepare_cached(
        "INSERT INTO sources (source, uidvalidity, last_uid, synced_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (source) DO UPDATE SET uidvalidity = excluded.uidvalidity,
                                            last_uid = excluded.last_uid",
    )?
    .execute(params![
        source,
        state.uidvalidity,
        state.last_uid,
        to_ms(now)
    ])?;
    set_backlog(&tx, source, state.uidvalidity, state.backlog_end)?;
    tx.commit()?;
    Ok(())
}

fn set_backlog(
    conn: &Connection,
    source: &str,
    uidvalidity: u32,
    end: Option<u32>,
) -> Result<(), StoreError> {
    match end {
        Some(end) => conn
            .prepare_cached(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![
                backlog_key(source),
                format!("{uidvalidity}:{end}").into_bytes()
            ])?,
        None => conn
            .prepare_cached("DELETE FROM settings WHERE key = ?1")?
            .execute([backlog_key(source)])?,
    };
    Ok(())
}

/// The folder's UIDVALIDITY changed: every UID we knew is void. Starts the
/// folder over from UID 0 under the new UIDVALIDITY (the rescan skips
/// known messages as duplicates by Message-ID and content hash) and drops
/// the actions owed under the old one. Returns how many were dropped.
pub fn uidvalidity_changed(
    conn: &mut Connection,
    source: &str,
    uidvalidity: u32,
) -> Result<usize, StoreError> {
    let tx = conn.transaction()?;
    tx.prepare_cached("UPDATE sources SET uidvalidity = ?2, last_uid = 0 WHERE source = ?1")?
        .execute(params![source, uidvalidity])?;
    let dropped = tx
        .prepare_cached("DELETE FROM mailbox_actions WHERE source = ?1 AND uidvalidity != ?2")?
        .execute(params![source, uidvalidity])?;
    set_backlog(&tx, source, uidvalidity, None)?;
    tx.commit()?;
    Ok(dropped)
}

/// Moves the checkpoint back to `uid` (never forward), after a message
/// above it could not be stored: the next sync fetches from there again;
/// messages already committed above it are skipped by their origin.
pub fn rewind(
    conn: &Connection,
    source: &str,
    uidvalidity: u32,
    uid: u32,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE sources SET last_uid = min(coalesce(last_uid, 0), ?3)
         WHERE source = ?1 AND uidvalidity = ?2",
    )?
    .execute(params![source, uidvalidity, uid])?;
    Ok(())
}

/// The first-contact backlog is done: the checkpoint jumps to just below
/// its end (the messages skipped in it were seen already) and the marker
/// goes.
pub fn finish_backlog(
    conn: &mut Connection,
    source: &str,
    uidvalidity: u32,
    end: u32,
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    tx.prepare_cached(
        "UPDATE sources SET last_uid = max(coalesce(last_uid, 0), ?3)
         WHERE source = ?1 AND uidvalidity = ?2",
    )?
    .execute(params![source, uidvalidity, end.saturating_sub(1)])?;
    set_backlog(&tx, source, uidvalidity, None)?;
    tx.commit()?;
    Ok(())
}

/// Actions owed for committed messages of this source, by UID.
pub fn pending_actions(conn: &Connection, source: &str) -> Result<Vec<PendingAction>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT uidvalidity, uid, action FROM mailbox_actions WHERE source = ?1 ORDER BY uid",
    )?;
    let rows = stmt
        .query_map([source], |r| {
            Ok(PendingAction {
                uidvalidity: r.get(0)?,
                uid: r.get(1)?,
                action: r.get(2)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Drops actions owed under another UIDVALIDITY (their UIDs now name
/// other messages, or none). Returns how many.
pub fn drop_stale_actions(
    conn: &Connection,
    source: &str,
    uidvalidity: u32,
) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached("DELETE FROM mailbox_actions WHERE source = ?1 AND uidvalidity != ?2")?
        .execute(params![source, uidvalidity])?)
}

/// The actions of these UIDs were carried out on the server.
pub fn actions_done(
    conn: &mut Connection,
    source: &str,
    uidvalidity: u32,
    uids: &[u32],
) -> Result<usize, StoreError> {
    let tx = conn.transaction()?;
    let mut n = 0;
    {
        let mut stmt = tx.prepare_cached(
            "DELETE FROM mailbox_actions WHERE source = ?1 AND uidvalidity = ?2 AND uid = ?3",
        )?;
        for uid in uids {
            n += stmt.execute(params![source, uidvalidity, uid])?;
        }
    }
    tx.commit()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    const SRC: &str = "imap:support/INBOX";

    fn store() -> Store {
        Store::open_in_memory().unwrap()
    }

    fn add_action(conn: &Connection, uidvalidity: u32, uid: u32) {
        conn.execute(
            "INSERT INTO mailbox_actions (source, uidvalidity, uid, action, created_at)
             VALUES (?1, ?2, ?3, 'seen', 0)",
            params![SRC, uidvalidity, uid],
        )
        .unwrap();
    }

    #[test]
    fn unknown_folder_has_no_state_even_with_an_error_row() {
        let s = store();
        assert_eq!(folder_state(&s.conn, SRC).unwrap(), None);
        crate::store::ingest::mark_source_error(&s.conn, SRC, "down", Timestamp::now()).unwrap();
        assert_eq!(folder_state(&s.conn, SRC).unwrap(), None);
    }

    #[test]
    fn first_contact_then_backlog_finishes() {
        let mut s = store();
        let st = FolderState {
            uidvalidity: 7,
            last_uid: 0,
            backlog_end: Some(40),
        };
        first_contact(&mut s.conn, SRC, st, Timestamp::now()).unwrap();
        assert_eq!(folder_state(&s.conn, SRC).unwrap(), Some(st));
        finish_backlog(&mut s.conn, SRC, 7, 40).unwrap();
        assert_eq!(
            folder_state(&s.conn, SRC).unwrap(),
            Some(FolderState {
                uidvalidity: 7,
                last_uid: 39,
                backlog_end: None
            })
        );
    }

    #[test]
    fn uidvalidity_change_starts_over_and_drops_stale_actions() {
        let mut s = store();
        let st = FolderState {
            uidvalidity: 7,
            last_uid: 12,
            backlog_end: Some(20),
        };
        first_contact(&mut s.conn, SRC, st, Timestamp::now()).unwrap();
        add_action(&s.conn, 7, 3);
        add_action(&s.conn, 7, 4);
        assert_eq!(uidvalidity_changed(&mut s.conn, SRC, 99).unwrap(), 2);
        assert_eq!(
            folder_state(&s.conn, SRC).unwrap(),
            Some(FolderState {
                uidvalidity: 99,
                last_uid: 0,
                backlog_end: None
            })
        );
        assert!(pending_actions(&s.conn, SRC).unwrap().is_empty());
    }

    #[test]
    fn rewind_only_goes_back() {
        let mut s = store();
        let st = FolderState {
            uidvalidity: 1,
            last_uid: 10,
            backlog_end: None,
        };
        first_contact(&mut s.conn, SRC, st, Timestamp::now()).unwrap();
        rewind(&s.conn, SRC, 1, 20).unwrap();
        assert_eq!(folder_state(&s.conn, SRC).unwrap().unwrap().last_uid, 10);
        rewind(&s.conn, SRC, 1, 4).unwrap();
        assert_eq!(folder_state(&s.conn, SRC).unwrap().unwrap().last_uid, 4);
        rewind(&s.conn, SRC, 2, 1).unwrap();
        assert_eq!(
            folder_state(&s.conn, SRC).unwrap().unwrap().last_uid,
            4,
            "another UIDVALIDITY is not touched"
        );
    }

    #[test]
    fn actions_are_listed_and_removed() {
        let mut s = store();
        add_action(&s.conn, 5, 9);
        add_action(&s.conn, 5, 2);
        add_action(&s.conn, 4, 1);
        let p = pending_actions(&s.conn, SRC).unwrap();
        assert_eq!(p.iter().map(|a| a.uid).collect::<Vec<_>>(), vec![1, 2, 9]);
        assert_eq!(drop_stale_actions(&s.conn, SRC, 5).unwrap(), 1);
        assert_eq!(actions_done(&mut s.conn, SRC, 5, &[2, 9, 77]).unwrap(), 2);
        assert!(pending_actions(&s.conn, SRC).unwrap().is_empty());
    }
}
