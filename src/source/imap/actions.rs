//! The server-side post-actions, run only for committed messages: flag
//! `\Seen`, or move to a folder (MOVE, or COPY + STORE `\Deleted` + UID
//! EXPUNGE where the server has no MOVE). Each owed action is a
//! `mailbox_actions` row written in the message's own transaction and
//! deleted once done, so a crash in between repeats the action (all of
//! them are idempotent, except that a repeated COPY can leave a second
//! copy on servers without MOVE) instead of forgetting it.

use futures::StreamExt;

use super::connect::{Capabilities, Connection, Session};
use super::{COMMAND_TIMEOUT, Folder, ImapError, timed, utf7};
use crate::daemon::Shared;
use crate::store::imap_state;

/// `mailbox_actions.action` for "flag \Seen".
pub const SEEN: &str = "seen";
/// `mailbox_actions.action` prefix for "move to the folder after the colon".
pub const MOVE_PREFIX: &str = "move:";
/// UIDs per command: keeps command lines short (servers cap them, Dovecot
/// at 64 KiB) even for non-contiguous UIDs after a long outage.
const UIDS_PER_COMMAND: usize = 500;

/// A parsed `mailbox_actions.action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    Seen,
    Move(&'a str),
}

impl<'a> Action<'a> {
    pub fn parse(s: &'a str) -> Option<Action<'a>> {
        if s == SEEN {
            return Some(Action::Seen);
        }
        s.strip_prefix(MOVE_PREFIX)
            .filter(|f| !f.is_empty())
            .map(Action::Move)
    }
}

/// How a move is done on a given server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveStrategy {
    /// `UID MOVE` (RFC 6851): atomic.
    Move,
    /// `UID COPY`, `UID STORE +FLAGS (\Deleted)`, then `UID EXPUNGE` of just
    /// these UIDs with UIDPLUS; without UIDPLUS the messages stay flagged
    /// `\Deleted` (a plain EXPUNGE would also remove what others flagged).
    CopyDelete { uidplus: bool },
}

impl MoveStrategy {
    pub fn for_server(caps: Capabilities) -> MoveStrategy {
        if caps.r#move {
            MoveStrategy::Move
        } else {
            MoveStrategy::CopyDelete {
                uidplus: caps.uidplus,
            }
        }
    }
}

/// `1:3,5,7:9` for sorted or unsorted UIDs.
pub fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut it = sorted.into_iter().peekable();
    while let Some(start) = it.next() {
        let mut end = start;
        while let Some(&n) = it.peek() {
            if n != end.saturating_add(1) {
                break;
            }
            end = n;
            it.next();
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
    }
    out
}

/// Runs one action for `uids` of the selected folder.
pub async fn apply(
    conn: &mut Connection,
    action: Action<'_>,
    uids: &[u32],
) -> Result<(), ImapError> {
    let strategy = MoveStrategy::for_server(conn.caps);
    for chunk in uids.chunks(UIDS_PER_COMMAND) {
        match action {
            Action::Seen => mark_seen(&mut conn.session, chunk).await?,
            Action::Move(target) => {
                move_messages(&mut conn.session, chunk, target, strategy).await?
            }
        }
        conn.drain_unsolicited();
    }
    Ok(())
}

/// `UID STORE set +FLAGS.SILENT (\Seen)`.
pub async fn mark_seen(session: &mut Session, uids: &[u32]) -> Result<(), ImapError> {
    store_flag(session, uids, "+FLAGS.SILENT (\\Seen)").await
}

async fn store_flag(session: &mut Session, uids: &[u32], query: &str) -> Result<(), ImapError> {
    if uids.is_empty() {
        return Ok(());
    }
    timed("UID STORE", COMMAND_TIMEOUT, async {
        let mut stream = session
            .uid_store(uid_set(uids), query)
            .await
            .map_err(|e| ImapError::protocol("UID STORE", e))?;
        // Drain to the tagged answer, or the next command reads its rest.
        while let Some(r) = stream.next().await {
            r.map_err(|e| ImapError::protocol("UID STORE", e))?;
        }
        Ok(())
    })
    .await
}

/// Moves `uids` to `target` (a UTF-8 folder name). A missing target folder
/// is created once. UIDs that are gone already (moved before a crash) are
/// no error.
pub async fn move_messages(
    session: &mut Session,
    uids: &[u32],
    target: &str,
    strategy: MoveStrategy,
) -> Result<(), ImapError> {
    if uids.is_empty() {
        return Ok(());
    }
    let wire = utf7::encode(target);
    match move_once(session, uids, &wire, strategy).await {
        Err(ImapError::Protocol {
            source: async_imap::error::Error::No(text),
            ..
        }) if is_trycreate(&text) => {
            tracing::info!(
                folder = target,
                "Creating the folder to move ingested mail to."
            );
            timed("CREATE", COMMAND_TIMEOUT, async {
                session
                    .create(&wire)
                    .await
                    .map_err(|e| ImapError::protocol("CREATE", e))
            })
            .await?;
            move_once(session, uids, &wire, strategy).await
        }
        other => other,
    }
}

/// async-imap reports a NO's response code only inside its error text.
fn is_trycreate(text: &str) -> bool {
    text.contains("TryCreate")
}

async fn move_once(
    session: &mut Session,
    uids: &[u32],
    wire_target: &str,
    strategy: MoveStrategy,
) -> Result<(), ImapError> {
    let set = uid_set(uids);
    match strategy {
        MoveStrategy::Move => {
            timed("UID MOVE", COMMAND_TIMEOUT, async {
                session
                    .uid_mv(&set, wire_target)
                    .await
                    .map_err(|e| ImapError::protocol("UID MOVE", e))
            })
            .await
        }
        MoveStrategy::CopyDelete { uidplus } => {
            timed("UID COPY", COMMAND_TIMEOUT, async {
                session
                    .uid_copy(&set, wire_target)
                    .await
                    .map_err(|e| ImapError::protocol("UID COPY", e))
            })
            .await?;
            store_flag(session, uids, "+FLAGS.SILENT (\\Deleted)").await?;
            if uidplus {
                timed("UID EXPUNGE", COMMAND_TIMEOUT, async {
                    let stream = session
                        .uid_expunge(&set)
                        .await
                        .map_err(|e| ImapError::protocol("UID EXPUNGE", e))?;
                    let mut stream = std::pin::pin!(stream);
                    while let Some(r) = stream.next().await {
                        r.map_err(|e| ImapError::protocol("UID EXPUNGE", e))?;
                    }
                    Ok(())
                })
                .await?;
            }
            Ok(())
        }
    }
}

/// On (re)connect, before anything is fetched: carries out the actions
/// owed for messages committed before a crash or a lost connection. Rows
/// from another UIDVALIDITY are void (their UIDs name other messages now)
/// and dropped; rows with an action this postdesk does not know are
/// dropped with a warning rather than blocking the folder forever.
pub async fn run_pending(
    shared: &Shared,
    conn: &mut Connection,
    folder: &Folder,
    uidvalidity: u32,
) -> Result<(), ImapError> {
    let source = folder.source();
    let s = source.clone();
    let pending = shared
        .store
        .call(move |c| imap_state::pending_actions(c, &s))
        .await
        .map_err(ImapError::Store)?;
    if pending.is_empty() {
        return Ok(());
    }
    if pending.iter().any(|a| a.uidvalidity != uidvalidity) {
        let s = source.clone();
        let dropped = shared
            .store
            .call(move |c| imap_state::drop_stale_actions(c, &s, uidvalidity))
            .await
            .map_err(ImapError::Store)?;
        tracing::warn!(
            dropped,
            "Dropped owed actions of a previous UIDVALIDITY; those messages are flagged or moved no more."
        );
    }
    let mut groups: Vec<(String, Vec<u32>)> = Vec::new();
    for a in pending.into_iter().filter(|a| a.uidvalidity == uidvalidity) {
        match groups.iter_mut().find(|(action, _)| *action == a.action) {
            Some((_, uids)) => uids.push(a.uid),
            None => groups.push((a.action, vec![a.uid])),
        }
    }
    for (action, uids) in groups {
        match Action::parse(&action) {
            Some(parsed) => {
                tracing::info!(
                    action = %action,
                    messages = uids.len(),
                    "Carrying out actions owed from before the last disconnect."
                );
                apply(conn, parsed, &uids).await?;
            }
            None => {
                tracing::warn!(action = %action, messages = uids.len(), "Unknown owed action dropped.")
            }
        }
        done(shared, &source, uidvalidity, uids).await?;
    }
    Ok(())
}

/// Forgets the owed actions of `uids`: they were carried out.
pub async fn done(
    shared: &Shared,
    source: &str,
    uidvalidity: u32,
    uids: Vec<u32>,
) -> Result<(), ImapError> {
    if uids.is_empty() {
        return Ok(());
    }
    let s = source.to_owned();
    shared
        .store
        .call(move |c| imap_state::actions_done(c, &s, uidvalidity, &uids))
        .await
        .map(|_| ())
        .map_err(ImapError::Store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_compress_runs() {
        assert_eq!(uid_set(&[]), "");
        assert_eq!(uid_set(&[5]), "5");
        assert_eq!(uid_set(&[3, 1, 2, 5, 7, 8, 9, 9]), "1:3,5,7:9");
        assert_eq!(
            uid_set(&[u32::MAX - 1, u32::MAX]),
            format!("{}:{}", u32::MAX - 1, u32::MAX)
        );
    }

    #[test]
    fn actions_parse() {
        assert_eq!(Action::parse("seen"), Some(Action::Seen));
        assert_eq!(
            Action::parse("move:Archive/2024"),
            Some(Action::Move("Archive/2024"))
        );
        assert_eq!(Action::parse("move:"), None);
        assert_eq!(Action::parse("delete"), None);
    }

    #[test]
    fn strategy_follows_capabilities() {
        let caps = |m, u| Capabilities {
            idle: true,
            r#move: m,
            uidplus: u,
        };
        assert_eq!(
            MoveStrategy::for_server(caps(true, false)),
            MoveStrategy::Move
        );
        assert_eq!(
            MoveStrategy::for_server(caps(false, true)),
            MoveStrategy::CopyDelete { uidplus: true }
        );
    }
}
