//! SQLite implementation of [`CatalogStore`].
//!
//! Every multi-statement write runs under `BEGIN IMMEDIATE`: a deferred transaction that
//! reads and then writes can fail with SQLITE_BUSY(_SNAPSHOT) without ever invoking the busy
//! handler, whereas an immediate one takes the write lock up front and simply waits (up to
//! the busy timeout) behind other writers. Single-statement writes take the write lock
//! before reading, so they are safe in autocommit mode. Every write, transaction or single
//! statement, also holds this process's writer mutex (`write_tx` / `write_conn`), so
//! in-process writers queue fairly and never meet SQLite's busy handler; reads never take
//! the mutex and, under WAL, never wait for a writer.

use crate::backend::{Arg, Args, Backend};
use crate::catalog::apply_op;
use crate::{Change, ChangeReceiver, CommitOp, Result};
use sqlx::pool::PoolConnection;
use sqlx::query::Query;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use std::borrow::Cow;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::OwnedMutexGuard;
use uuid::Uuid;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Long enough to ride out a burst of queued commits; a writer that waits longer than this
/// surfaces SQLITE_BUSY, which the service reports as "unavailable, retry".
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CONNECTIONS: u32 = 8;

/// Cheap to clone: clones share one connection pool.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Serializes this process's write transactions. SQLite allows one writer at a time;
    /// without this, concurrent writers wait in SQLite's busy handler, which sleeps in
    /// growing steps (up to tens of ms) instead of handing over as soon as the lock frees.
    /// Other processes on the same file still fall back to the busy timeout.
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` and runs pending migrations.
    /// Accepts `sqlite:///abs/path.db`, `sqlite://relative.db` and `sqlite::memory:`.
    pub async fn connect(url: &str) -> Result<Self> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(SqliteSynchronous::Normal);
        let pool = if in_memory {
            // An in-memory database lives only as long as a connection to it, and several
            // shared-cache connections would fail with SQLITE_LOCKED (which the busy timeout
            // does not cover). So: exactly one connection, never recycled.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await?
        } else {
            restrict_database_files(options.get_filename()).map_err(sqlx::Error::Io)?;
            SqlitePoolOptions::new()
                .max_connections(MAX_CONNECTIONS)
                .connect_with(options.journal_mode(SqliteJournalMode::Wal))
                .await?
        };
        Self::from_pool(pool).await
    }

    /// Wraps an existing pool (whose connections must have `foreign_keys=ON`) and runs
    /// pending migrations.
    pub async fn from_pool(pool: SqlitePool) -> Result<Self> {
        MIGRATOR.run(&pool).await?;
        Ok(Self {
            pool,
            writer: Default::default(),
        })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
    /// This process's writer lock, taken before every write (see the module comment).
    async fn writer_lock(&self) -> OwnedMutexGuard<()> {
        self.writer.clone().lock_owned().await
    }
}

/// A write transaction (`BEGIN IMMEDIATE`) plus this process's writer lock, held until it
/// ends. The transaction is dropped (rolled back) before the lock is released.
pub struct WriteTx {
    tx: Transaction<'static, Sqlite>,
    _writer: OwnedMutexGuard<()>,
}

/// A connection for one autocommit write statement plus this process's writer lock. Such a
/// statement is safe from SQLITE_BUSY_SNAPSHOT on its own, but outside the lock it would
/// compete with the lock holder in SQLite's busy handler, which is not fair: under a steady
/// stream of commits a key-use stamp or audit row could wait out the whole busy timeout (and
/// a commit could lose that race too). Through the lock, the busy timeout only ever covers
/// writers in other processes.
pub struct WriteConn {
    conn: PoolConnection<Sqlite>,
    _writer: OwnedMutexGuard<()>,
}

impl Deref for WriteTx {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.tx
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }
}

impl Deref for WriteConn {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.conn
    }
}

impl DerefMut for WriteConn {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }
}

// ---------------------------------------------------------------------------------------
// Database files
// ---------------------------------------------------------------------------------------

/// The database holds encrypted key secrets, storage credentials and the audit log:
/// readable by this user only, like the key files. SQLite
/// gives the `-wal` and `-shm` files the database file's mode, so creating the database
/// file 0600 before SQLite does covers all three; files left 0644 by older versions are
/// tightened.
fn restrict_database_files(db: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(db)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            // A missing directory and the like: SQLite reports it in its own words.
            Err(_) => return Ok(()),
        }
        for suffix in ["", "-wal", "-shm"] {
            let mut name = db.as_os_str().to_owned();
            name.push(suffix);
            let path = std::path::PathBuf::from(name);
            if let Ok(meta) = std::fs::metadata(&path) {
                if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
                    tracing::info!(file = %path.display(), "restricted database file to mode 0600");
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = db;
    Ok(())
}

/// Whether `e` means "the database is busy, try again": the pool had no connection in
/// time, or SQLite reported BUSY or LOCKED. sqlx reports SQLite's extended result codes
/// (BUSY_RECOVERY 261, BUSY_SNAPSHOT 517, BUSY_TIMEOUT 773, LOCKED_SHAREDCACHE 262, ...),
/// so the test is on the primary code in the low byte, not on a list of extended ones.
pub fn is_busy_error(e: &sqlx::Error) -> bool {
    const SQLITE_BUSY: i32 = 5;
    const SQLITE_LOCKED: i32 = 6;
    if matches!(e, sqlx::Error::PoolTimedOut) {
        return true;
    }
    e.as_database_error()
        .and_then(|d| d.try_downcast_ref::<sqlx::sqlite::SqliteError>())
        .and_then(sqlx::error::DatabaseError::code)
        .and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| matches!(c & 0xff, SQLITE_BUSY | SQLITE_LOCKED))
}

// ---------------------------------------------------------------------------------------
// The backend
// ---------------------------------------------------------------------------------------

fn bind<'q>(
    mut q: Query<'q, Sqlite, SqliteArguments<'q>>,
    args: Args<'q>,
) -> Query<'q, Sqlite, SqliteArguments<'q>> {
    for a in args {
        q = match a {
            Arg::Text(v) => q.bind(v),
            Arg::Int(v) => q.bind(v),
            Arg::Blob(None) => q.bind(None::<&[u8]>),
            Arg::Blob(Some(Cow::Borrowed(b))) => q.bind(b),
            Arg::Blob(Some(Cow::Owned(b))) => q.bind(b),
            // Flags are 0/1 INTEGER columns.
            Arg::Flag(v) => q.bind(v.map(i64::from)),
        };
    }
    q
}

impl Backend for SqliteStore {
    type Conn = SqliteConnection;
    type Row = SqliteRow;
    type ReadConn = PoolConnection<Sqlite>;
    type WriteConn = WriteConn;
    type Tx = WriteTx;

    // SQLite treats a negative LIMIT as "no limit".
    const NO_LIMIT: Option<i64> = Some(-1);
    const IS_NOT: &'static str = "IS NOT";
    const ROW_LOCKS: bool = false;

    async fn read(&self) -> Result<Self::ReadConn> {
        Ok(self.pool.acquire().await?)
    }

    async fn write_conn(&self) -> Result<WriteConn> {
        let writer = self.writer_lock().await;
        Ok(WriteConn {
            conn: self.pool.acquire().await?,
            _writer: writer,
        })
    }

    async fn begin(&self) -> Result<WriteTx> {
        let writer = self.writer_lock().await;
        Ok(WriteTx {
            tx: self.pool.begin_with("BEGIN IMMEDIATE").await?,
            _writer: writer,
        })
    }

    /// No other process listens: there is no change feed to announce `change` to.
    async fn commit(tx: WriteTx, _change: Option<Change>) -> Result<()> {
        let WriteTx { tx, _writer } = tx;
        tx.commit().await?;
        Ok(())
    }

    /// BEGIN IMMEDIATE waits for the write lock instead of failing a read-then-write
    /// transaction with SQLITE_BUSY_SNAPSHOT, so there is nothing to retry.
    async fn retrying<T, F, Fut>(&self, _what: &'static str, mut op: F) -> Result<T>
    where
        T: Send,
        F: FnMut() -> Fut + Send,
        Fut: Future<Output = Result<T>> + Send,
    {
        op().await
    }

    async fn write_one<'a>(
        &'a self,
        _what: &'static str,
        _change: Option<Change>,
        sql: &'a str,
        args: Args<'a>,
    ) -> Result<u64> {
        let mut conn = self.write_conn().await?;
        Ok(Self::execute(&mut conn, sql, args).await?)
    }

    /// The writer lock already serializes every name claim and overlap check.
    async fn lock_locations(_conn: &mut SqliteConnection, _warehouse_id: Uuid) -> Result<()> {
        Ok(())
    }

    async fn commit_ops<'a>(&'a self, ops: &'a [CommitOp]) -> Result<()> {
        let mut tx = self.begin().await?;
        let mut applied = Ok(());
        for op in ops {
            applied = apply_op::<Self>(&mut tx, op).await;
            if applied.is_err() {
                break;
            }
        }
        if let Err(e) = applied {
            // Roll back before the writer lock goes: dropping `tx` would only queue the
            // rollback, and the next writer's BEGIN IMMEDIATE would find the write lock still
            // held and sleep in the busy handler. A lost CAS is the common case here.
            let WriteTx { tx, _writer } = tx;
            if let Err(rb) = tx.rollback().await {
                tracing::warn!(error = %rb, "rollback after a failed commit failed");
            }
            return Err(e);
        }
        Self::commit(tx, None).await
    }

    /// One process only: the caller's own writes are all there is, and it knows them.
    async fn subscribe(&self) -> Result<Option<ChangeReceiver>> {
        Ok(None)
    }

    async fn execute<'c>(
        conn: &'c mut SqliteConnection,
        sql: &'c str,
        args: Args<'c>,
    ) -> Result<u64, sqlx::Error> {
        Ok(bind(sqlx::query(sql), args)
            .execute(conn)
            .await?
            .rows_affected())
    }

    async fn fetch_optional<'c>(
        conn: &'c mut SqliteConnection,
        sql: &'c str,
        args: Args<'c>,
    ) -> Result<Option<SqliteRow>, sqlx::Error> {
        bind(sqlx::query(sql), args).fetch_optional(conn).await
    }

    async fn fetch_all<'c>(
        conn: &'c mut SqliteConnection,
        sql: &'c str,
        args: Args<'c>,
    ) -> Result<Vec<SqliteRow>, sqlx::Error> {
        bind(sqlx::query(sql), args).fetch_all(conn).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::now;
    use crate::{AuditRecord, CatalogStore};
    use sqlx::{Connection, Executor};

    #[cfg(unix)]
    #[tokio::test]
    async fn database_and_wal_files_are_created_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("sluice.db");
        let store = SqliteStore::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        store.set_setting("k", "v").await.unwrap();
        for f in ["sluice.db", "sluice.db-wal", "sluice.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
    }

    async fn file_store(dir: &tempfile::TempDir) -> (SqliteStore, String) {
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        (SqliteStore::connect(&url).await.unwrap(), url)
    }

    fn audit(action: &str) -> AuditRecord {
        AuditRecord {
            id: 0,
            at: now(),
            actor_id: None,
            actor_name: "t".into(),
            action: action.into(),
            target: "x".into(),
            result: "success".into(),
            detail: None,
        }
    }

    /// A second connection standing in for another process, with no busy timeout so a
    /// lock conflict surfaces at once.
    async fn impatient(url: &str) -> SqliteConnection {
        let opts = SqliteConnectOptions::from_str(url)
            .unwrap()
            .busy_timeout(Duration::ZERO);
        SqliteConnection::connect_with(&opts).await.unwrap()
    }

    #[tokio::test]
    async fn busy_and_locked_are_recognized_in_their_extended_forms() {
        let dir = tempfile::tempdir().unwrap();
        let (store, url) = file_store(&dir).await;
        store.set_setting("k", "0").await.unwrap();

        // Plain SQLITE_BUSY (5): the write lock is held elsewhere.
        let mut holder = impatient(&url).await;
        holder.execute("BEGIN IMMEDIATE").await.unwrap();
        let mut other = impatient(&url).await;
        let e = other.execute("BEGIN IMMEDIATE").await.unwrap_err();
        assert_eq!(e.as_database_error().unwrap().code().as_deref(), Some("5"));
        assert!(is_busy_error(&e), "{e}");
        holder.execute("ROLLBACK").await.unwrap();

        // SQLITE_BUSY_SNAPSHOT (517): a deferred transaction read, someone else committed,
        // then it tried to write.
        let mut reader = impatient(&url).await;
        reader.execute("BEGIN").await.unwrap();
        reader.execute("SELECT value FROM settings").await.unwrap();
        store.set_setting("k", "1").await.unwrap();
        let e = reader
            .execute("UPDATE settings SET value = '2'")
            .await
            .unwrap_err();
        assert_eq!(
            e.as_database_error().unwrap().code().as_deref(),
            Some("517")
        );
        assert!(is_busy_error(&e), "{e}");
        reader.execute("ROLLBACK").await.unwrap();

        // And the codes of a different database are not mistaken for SQLite's.
        assert!(is_busy_error(&sqlx::Error::PoolTimedOut));
        assert!(!is_busy_error(&sqlx::Error::RowNotFound));
    }

    /// Every write statement queues on the in-process writer lock: while it is held, none
    /// of them may reach SQLite (where they would fight the holder in the busy handler).
    #[tokio::test]
    async fn single_statement_writes_wait_for_the_writer_lock() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = file_store(&dir).await;
        let guard = store.writer.clone().lock_owned().await;
        let s = store.clone();
        let mut pending = tokio::spawn(async move {
            s.append_audit(&audit("a")).await.unwrap();
            s.set_setting("k", "v").await.unwrap();
        });
        // Not a timing assertion on speed: with the lock held this can never finish, so
        // the wait only bounds how long a regression gets to show itself.
        let early = tokio::time::timeout(Duration::from_millis(300), &mut pending).await;
        assert!(
            early.is_err(),
            "a write went through while the writer lock was held"
        );
        assert!(
            store.list_audit(None, 10).await.unwrap().is_empty(),
            "reads must not wait for the lock"
        );
        drop(guard);
        pending.await.unwrap();
        assert_eq!(store.list_audit(None, 10).await.unwrap().len(), 1);
        assert_eq!(store.get_setting("k").await.unwrap().as_deref(), Some("v"));
    }

    /// With the write lock held by another process, an in-process writer waits in the busy
    /// handler (busy_timeout is set on every pooled connection) instead of failing at once.
    #[tokio::test]
    async fn writers_wait_out_a_foreign_write_lock() {
        let dir = tempfile::tempdir().unwrap();
        let (store, url) = file_store(&dir).await;
        let mut foreign = impatient(&url).await;
        foreign.execute("BEGIN IMMEDIATE").await.unwrap();
        let s = store.clone();
        let writer = tokio::spawn(async move { s.append_audit(&audit("b")).await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        foreign.execute("COMMIT").await.unwrap();
        writer.await.unwrap().unwrap();
        let timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(timeout, BUSY_TIMEOUT.as_millis() as i64);
    }
}
