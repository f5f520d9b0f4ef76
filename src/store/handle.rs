//! The daemon's way to the database: the writer connection on its own
//! thread (tokio-rusqlite), so every write is a closure running a whole
//! transaction there and nothing blocks the async runtime.
//!
//! Checkpoints are taken off the commit path. SQLite's automatic
//! checkpoint runs inside the commit that crosses 1,000 WAL pages, and a
//! 16 MB checkpoint takes 15-20 ms: while a backlog drains, the batch
//! behind that commit and the analysis threads waiting for it stall
//! (BENCHMARKS.md, "IMAP ingest"). Here the commit only records the WAL's
//! size ([`note_wal_size`]); [`StoreHandle::checkpoint_soon`] queues the
//! checkpoint as a job of its own on the writer thread, after the commit
//! has been answered. A backstop in the hook still checkpoints inline
//! should the WAL grow far past that (nobody asked for a checkpoint).

use std::cell::Cell;
use std::ffi::c_int;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use rusqlite::hooks::{CheckpointMode, Wal};

use super::{StoreError, prepare_writer};

/// WAL pages after which a queued checkpoint runs: SQLite's own default
/// for its automatic checkpoint.
const CHECKPOINT_PAGES: c_int = 1_000;

/// WAL pages after which the commit itself checkpoints, as SQLite's
/// automatic checkpoint would: only reached when no checkpoint was queued
/// (writes other than ingests queue none), so the WAL file stays below
/// about 32 MB.
const BACKSTOP_PAGES: c_int = 2 * CHECKPOINT_PAGES;

thread_local! {
    /// Pages in the WAL after the last commit on this thread's connection.
    /// The writer connection lives on its own thread, so this is its figure.
    static WAL_PAGES: Cell<c_int> = const { Cell::new(0) };
}

/// The writer connection's WAL hook (it replaces SQLite's automatic
/// checkpoint): records the WAL's size, checkpoints only past the
/// backstop. It never fails: an error here would be reported as the
/// failure of a commit that is already durable.
fn note_wal_size(wal: &Wal, pages: c_int) -> rusqlite::Result<()> {
    WAL_PAGES.set(pages);
    if pages >= BACKSTOP_PAGES
        && let Err(e) = wal.checkpoint_v2(CheckpointMode::PASSIVE)
    {
        tracing::debug!(error = %e, "Backstop checkpoint not done; the next one catches up.");
    }
    Ok(())
}

/// Runs a passive checkpoint when the WAL has grown past
/// [`CHECKPOINT_PAGES`]. On the writer thread.
fn checkpoint_if_due(conn: &Connection) -> Result<(), StoreError> {
    if WAL_PAGES.get() >= CHECKPOINT_PAGES {
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        WAL_PAGES.set(0);
    }
    Ok(())
}

/// A cloneable handle to the single writer connection.
#[derive(Clone)]
pub struct StoreHandle {
    conn: tokio_rusqlite::Connection,
    path: PathBuf,
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHandle")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl StoreHandle {
    /// Opens (creating if needed) and migrates the database.
    pub async fn open(path: &Path) -> Result<StoreHandle, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|source| StoreError::CreateDir {
                    path: dir.to_owned(),
                    source,
                })?;
        }
        let conn = tokio_rusqlite::Connection::open(path)
            .await
            .map_err(|source| StoreError::Open {
                path: path.to_owned(),
                source,
            })?;
        let handle = StoreHandle {
            conn,
            path: path.to_owned(),
        };
        let p = path.to_owned();
        handle
            .call(move |c| {
                prepare_writer(c, &p)?;
                c.wal_hook(Some(note_wal_size));
                Ok(())
            })
            .await?;
        Ok(handle)
    }

    /// Queues a checkpoint behind the writes already queued, if the WAL
    /// has grown enough; returns at once. Call it after a write whose
    /// caller should not wait for a checkpoint (see the module docs).
    pub fn checkpoint_soon(&self) {
        let handle = self.clone();
        tokio::spawn(async move {
            if let Err(e) = handle.call(|c| checkpoint_if_due(c)).await {
                tracing::debug!(error = %e, "Checkpoint not done; the next one catches up.");
            }
        });
    }

    /// Pages in the WAL after the writer's last commit (for tests).
    #[cfg(test)]
    pub(crate) async fn wal_pages(&self) -> c_int {
        self.call(|_| Ok(WAL_PAGES.get())).await.unwrap_or(-1)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the writer thread.
    pub async fn call<F, R>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        self.conn.call(f).await.map_err(|e| match e {
            tokio_rusqlite::Error::Error(e) => e,
            tokio_rusqlite::Error::ConnectionClosed => StoreError::Closed,
            tokio_rusqlite::Error::Close((_, e)) => StoreError::Sql(e),
            other => StoreError::Corrupt(format!("{other}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn insert(h: &StoreHandle, sql: impl Into<String>) {
        let sql = sql.into();
        h.call(move |c| {
            let tx = c.transaction()?;
            tx.execute_batch(&sql)?;
            tx.commit()?;
            Ok(())
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn commits_do_not_checkpoint_until_one_is_queued() {
        let dir = tempfile::tempdir().unwrap();
        let h = StoreHandle::open(&dir.path().join("pd.db")).await.unwrap();
        insert(&h, "CREATE TABLE t (b BLOB);").await;
        // 20 MiB in one commit: about 1,300 pages of 16 KiB, past the
        // checkpoint threshold and below the backstop (2,000).
        let twenty = "INSERT INTO t VALUES (zeroblob(1048576));".repeat(20);
        insert(&h, twenty).await;
        let before = h.wal_pages().await;
        assert!(
            (CHECKPOINT_PAGES..BACKSTOP_PAGES).contains(&before),
            "{before}"
        );
        // SQLite's automatic checkpoint would have run here; ours waits.
        insert(&h, "INSERT INTO t VALUES (x'00');").await;
        let grown = h.wal_pages().await;
        assert!(grown > before, "{grown} after {before}");
        h.checkpoint_soon();
        // Once the queued checkpoint has copied everything, the next
        // commit starts the WAL over.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            insert(&h, "INSERT INTO t VALUES (x'01');").await;
            let now = h.wal_pages().await;
            if now < 10 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the WAL never restarted ({now} pages)"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}
