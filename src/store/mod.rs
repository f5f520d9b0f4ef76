//! The I/O edge to SQLite: the only code that touches the database.
//!
//! One writer connection does every write, each a whole transaction; in
//! the daemon it lives on its own thread (tokio-rusqlite), so nothing
//! blocks the runtime and mailboxes never race each other. Readers (the
//! CLI, `postdesk status` while the daemon runs) open read-only
//! connections; WAL lets them read while the writer writes.
//!
//! Durability is chosen on purpose: `journal_mode=WAL` with
//! `synchronous=FULL`. A committed message must survive power loss
//! because right after the commit the IMAP source flags, moves or deletes
//! it on the server, and then the database is its only copy. FULL costs
//! one fsync per commit; sources commit several messages per transaction
//! while a backlog drains, so the cost is paid per batch (BENCHMARKS.md
//! has the figures).

pub mod handle;
pub mod imap_state;
pub mod ingest;
pub mod outbox;
pub mod quarantine;
pub mod query;
pub mod raw;
pub mod sla;

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use rusqlite_migration::{M, Migrations};

use crate::config::Config;
use crate::secret::SecretError;
use crate::token::{MIN_SECRET_BYTES, TokenKey};

/// The schema, one migration per file; each runs in its own transaction
/// with its version bump (`PRAGMA user_version`).
const MIGRATION_FILES: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_sla.sql"),
    include_str!("migrations/0003_unused_indexes.sql"),
    include_str!("migrations/0004_raw_encoding.sql"),
];

static MIGRATIONS: LazyLock<Migrations<'static>> =
    LazyLock::new(|| Migrations::new(MIGRATION_FILES.iter().map(|sql| M::up(sql)).collect()));

/// Why a store operation failed. Callers decide between retrying (the
/// message stays in its source) and giving up.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot open the database {path}: {source}; check that the folder exists and postdesk may write to it"
    )]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot create the database folder {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot migrate the database schema: {0}")]
    Migrate(#[source] rusqlite_migration::Error),
    #[error(
        "the database {path} was written by a newer postdesk (schema {found}, this one knows {known}); upgrade postdesk"
    )]
    TooNew {
        path: PathBuf,
        found: usize,
        known: usize,
    },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("cannot read the token secret: {0}")]
    Secret(#[from] SecretError),
    #[error(
        "the token secret is {0} bytes long; use at least {MIN_SECRET_BYTES} random bytes (e.g. `head -c 32 /dev/urandom | base64`)"
    )]
    WeakSecret(usize),
    #[error("the database connection is closed (postdesk is shutting down)")]
    Closed,
    #[error("the database cannot be reached right now: {0}")]
    Unavailable(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("stored data is not what this postdesk expects: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// True for failures that may pass (a locked or full database, I/O):
    /// the message should stay in its source and be tried again.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Sql(e) => !matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::ConstraintViolation)
                    | Some(rusqlite::ErrorCode::TypeMismatch)
            ),
            StoreError::Open { .. }
            | StoreError::CreateDir { .. }
            | StoreError::Closed
            | StoreError::Unavailable(_) => true,
            _ => false,
        }
    }
}

/// A writer (or read-only) connection with postdesk's settings applied.
pub struct Store {
    pub conn: Connection,
    pub path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Settings every connection needs.
fn configure(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // Plans must not depend on bound values, or the statement cache is
    // useless: SQLite plans `LIMIT ?` (and `LIKE ?`, or a `?` that could
    // match a partial index) with the value bound at the time, and then
    // re-prepares the statement every time that parameter is bound again.
    // The ingest's hourly caps (`LIMIT ?`) were parsed and planned anew for
    // every message. With the query planner stability guarantee a cached
    // statement is planned once; no query here needs a value-specific plan.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

/// Settings of the writer connection; see the module docs for why FULL.
fn configure_writer(conn: &Connection) -> Result<(), rusqlite::Error> {
    configure(conn)?;
    // 16 KiB pages for a new database: messages are kilobytes to megabytes,
    // and bigger pages mean fewer page writes per message. (It only takes
    // effect before the first table exists; existing databases keep theirs.)
    conn.pragma_update(None, "page_size", 16_384)?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(
            mode,
            "SQLite refused WAL mode; readers will block the writer"
        );
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    // A small page cache (1 MB): the writer mostly appends, and a larger
    // cache only raised the daemon's resident memory (BENCHMARKS.md; 2 MB
    // cost 1 MB more at the peak and was not measurably faster).
    conn.pragma_update(None, "cache_size", -1_000)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Brings a writer connection's schema up to date; shared by the sync
/// [`Store`] and the daemon's async handle.
pub fn prepare_writer(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    configure_writer(conn).map_err(|source| StoreError::Open {
        path: path.to_owned(),
        source,
    })?;
    let known = MIGRATIONS_COUNT;
    let found: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map(|v| v.max(0) as usize)?;
    if found > known {
        return Err(StoreError::TooNew {
            path: path.to_owned(),
            found,
            known,
        });
    }
    MIGRATIONS.to_latest(conn).map_err(StoreError::Migrate)
}

/// How many migrations this build knows.
const MIGRATIONS_COUNT: usize = MIGRATION_FILES.len();

impl Store {
    /// Opens (creating if needed) the database as the writer.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        }
        let mut conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })?;
        prepare_writer(&mut conn, path)?;
        Ok(Store {
            conn,
            path: path.to_owned(),
        })
    }

    /// Opens an existing database for reading only; safe while the daemon
    /// writes.
    pub fn open_readonly(path: &Path) -> Result<Store, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(path, flags).map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })?;
        configure(&conn).map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version == 0 {
            return Err(StoreError::NotFound(format!(
                "a postdesk database at {} (run `postdesk ingest` or `postdesk run` first)",
                path.display()
            )));
        }
        Ok(Store {
            conn,
            path: path.to_owned(),
        })
    }

    /// A throwaway database with the schema, for dry runs without one.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let path = PathBuf::from(":memory:");
        let mut conn = Connection::open_in_memory().map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        prepare_writer(&mut conn, &path)?;
        Ok(Store { conn, path })
    }

    /// The reply-token key: from config when set, else generated once and
    /// kept in the database.
    pub fn token_key(&mut self, cfg: &Config) -> Result<TokenKey, StoreError> {
        token_key(&self.conn, cfg)
    }

    /// Like [`Store::token_key`]; with `persist = false` (a dry run) a key
    /// that does not exist yet is made up but not stored.
    pub fn token_key_for(&mut self, cfg: &Config, persist: bool) -> Result<TokenKey, StoreError> {
        if persist || cfg.security.token_secret.is_some() {
            return token_key(&self.conn, cfg);
        }
        let existing: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT value FROM settings WHERE key = 'token_key'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(TokenKey::new(
            existing.unwrap_or_else(|| rand::random::<[u8; 32]>().to_vec()),
        ))
    }
}

/// See [`Store::token_key`]. Blocking (a secret command may run).
pub fn token_key(conn: &Connection, cfg: &Config) -> Result<TokenKey, StoreError> {
    if let Some(src) = &cfg.security.token_secret {
        let s = src.read()?;
        let len = s.expose().len();
        if len < MIN_SECRET_BYTES {
            return Err(StoreError::WeakSecret(len));
        }
        return Ok(TokenKey::new(s.expose().as_bytes().to_vec()));
    }
    let existing: Option<Vec<u8>> = conn
        .query_row(
            "SELECT value FROM settings WHERE key = 'token_key'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(k) = existing {
        return Ok(TokenKey::new(k));
    }
    let fresh: [u8; 32] = rand::random();
    conn.execute(
        "INSERT OR IGNORE INTO settings (key, value) VALUES ('token_key', ?1)",
        [fresh.as_slice()],
    )?;
    let stored: Vec<u8> = conn.query_row(
        "SELECT value FROM settings WHERE key = 'token_key'",
        [],
        |r| r.get(0),
    )?;
    Ok(TokenKey::new(stored))
}

/// Milliseconds since the epoch, the unit of every time column.
pub fn to_ms(t: jiff::Timestamp) -> i64 {
    t.as_millisecond()
}

/// The inverse of [`to_ms`]; out-of-range values clamp.
pub fn from_ms(ms: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        jiff::Timestamp::MIN
    } else {
        jiff::Timestamp::MAX
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_migrates_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/pd.db");
        let s = Store::open(&path).unwrap();
        let v: i64 = s
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v as usize, MIGRATIONS_COUNT);
        let mode: String = s
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = s
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous must be FULL");
        drop(s);
        Store::open(&path).unwrap();
        Store::open_readonly(&path).unwrap();
    }

    #[test]
    fn cached_statements_are_not_prepared_again_for_new_values() {
        let s = Store::open_in_memory().unwrap();
        // The shape of the ingest's hourly caps: a bound LIMIT.
        let sql = "SELECT count(*) FROM (SELECT 1 FROM outbox WHERE automatic = 1 AND created_at > ?1 LIMIT ?2)";
        for limit in [5_i64, 50, 500, 5] {
            let n: i64 = s
                .conn
                .prepare_cached(sql)
                .unwrap()
                .query_row([0, limit], |r| r.get(0))
                .unwrap();
            assert_eq!(n, 0);
        }
        let stmt = s.conn.prepare_cached(sql).unwrap();
        assert_eq!(
            stmt.get_status(rusqlite::StatementStatus::RePrepare),
            0,
            "rebinding a parameter made SQLite prepare the statement again"
        );
    }

    #[test]
    fn a_version_2_database_loses_only_the_unused_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pd.db");
        let mut conn = Connection::open(&path).unwrap();
        MIGRATIONS.to_version(&mut conn, 2).unwrap();
        conn.execute(
            "INSERT INTO settings (key, value) VALUES ('kept', x'01')",
            [],
        )
        .unwrap();
        drop(conn);
        let s = Store::open(&path).unwrap();
        let index = |name: &str| -> i64 {
            s.conn
                .query_row(
                    "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = ?1",
                    [name],
                    |r| r.get(0),
                )
                .unwrap()
        };
        for gone in ["events_kind", "messages_from", "participants_address"] {
            assert_eq!(index(gone), 0, "{gone}");
        }
        assert_eq!(index("events_ticket"), 1);
        let kept: Vec<u8> = s
            .conn
            .query_row("SELECT value FROM settings WHERE key = 'kept'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(kept, vec![1]);
    }

    #[test]
    fn migrations_are_valid() {
        MIGRATIONS.validate().unwrap();
        assert_eq!(
            MIGRATIONS_COUNT,
            MIGRATIONS
                .pending_migrations(&Connection::open_in_memory().unwrap())
                .unwrap() as usize
        );
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pd.db");
        let s = Store::open(&path).unwrap();
        s.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(s);
        let e = Store::open(&path).unwrap_err().to_string();
        assert!(e.contains("newer postdesk"), "{e}");
    }

    #[test]
    fn generated_token_key_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pd.db");
        let cfg = crate::config::Config::from_str(
            "[[mailboxes]]\nname = \"s\"\naddress = \"s@example.com\"\n",
            Path::new("/x.toml"),
        )
        .unwrap();
        let mut s = Store::open(&path).unwrap();
        let k1 = s.token_key(&cfg).unwrap();
        let k2 = Store::open(&path).unwrap().token_key(&cfg).unwrap();
        let id = k1.mint(5, "example.com");
        assert_eq!(k2.verify(&id), Some(5));
    }

    #[test]
    fn readonly_open_of_a_missing_database_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let e = Store::open_readonly(&dir.path().join("none.db"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cannot open") || e.contains("run `postdesk"),
            "{e}"
        );
    }
}
