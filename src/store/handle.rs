//! The daemon's way to the database: the writer connection on its own
//! thread (tokio-rusqlite), so every write is a closure running a whole
//! transaction there and nothing blocks the async runtime.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::{StoreError, prepare_writer};

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
        handle.call(move |c| prepare_writer(c, &p)).await?;
        Ok(handle)
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
