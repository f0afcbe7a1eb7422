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

use crate::{
    AccessKeyRecord, AuditRecord, CatalogStore, CommitOp, DeletedTableRecord, EffectivePolicy,
    EntityKind, ExternalIdentityRecord, GroupRecord, NamespaceRecord, Page, PolicyRecord, Result,
    StoreError, TableRecord, TableSummary, UserRecord, ViewRecord, WarehouseRecord,
    WarehouseStatus,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sluice_core::NamespaceName;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;
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

    /// A write transaction plus this process's writer lock; hold both until commit.
    async fn write_tx(
        &self,
    ) -> Result<(
        tokio::sync::OwnedMutexGuard<()>,
        Transaction<'static, Sqlite>,
    )> {
        let guard = self.writer.clone().lock_owned().await;
        Ok((guard, self.pool.begin_with("BEGIN IMMEDIATE").await?))
    }

    /// A connection for one autocommit write statement plus this process's writer lock.
    /// Such a statement is safe from SQLITE_BUSY_SNAPSHOT on its own, but outside the lock
    /// it would compete with the lock holder in SQLite's busy handler, which is not fair:
    /// under a steady stream of commits a key-use stamp or audit row could wait out the
    /// whole busy timeout (and a commit could lose that race too). Through the lock, the
    /// busy timeout only ever covers writers in other processes.
    async fn write_conn(
        &self,
    ) -> Result<(
        tokio::sync::OwnedMutexGuard<()>,
        sqlx::pool::PoolConnection<Sqlite>,
    )> {
        let guard = self.writer.clone().lock_owned().await;
        Ok((guard, self.pool.acquire().await?))
    }
}

// ---------------------------------------------------------------------------------------
// Encoding helpers
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

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_millis(v: i64, column: &str) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(v)
        .ok_or_else(|| StoreError::Corrupt(format!("{column}: timestamp {v} out of range")))
}

/// `t` at the precision the store keeps, so returned records equal what a later read yields.
fn truncate_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// Now, at the precision the store keeps, so values the store generates compare equal after
/// a round trip.
fn now() -> DateTime<Utc> {
    truncate_millis(Utc::now())
}

fn get_uuid(row: &SqliteRow, column: &str) -> Result<Uuid> {
    let s: String = row.try_get(column)?;
    Uuid::parse_str(&s).map_err(|e| StoreError::Corrupt(format!("{column} {s:?}: {e}")))
}

fn get_opt_uuid(row: &SqliteRow, column: &str) -> Result<Option<Uuid>> {
    row.try_get::<Option<String>, _>(column)?
        .map(|s| {
            Uuid::parse_str(&s).map_err(|e| StoreError::Corrupt(format!("{column} {s:?}: {e}")))
        })
        .transpose()
}

fn get_time(row: &SqliteRow, column: &str) -> Result<DateTime<Utc>> {
    from_millis(row.try_get(column)?, column)
}

fn get_opt_time(row: &SqliteRow, column: &str) -> Result<Option<DateTime<Utc>>> {
    row.try_get::<Option<i64>, _>(column)?
        .map(|v| from_millis(v, column))
        .transpose()
}

fn get_json<T: serde::de::DeserializeOwned>(row: &SqliteRow, column: &str) -> Result<T> {
    let s: String = row.try_get(column)?;
    serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    // Values and string maps always serialize; the error arm exists only to avoid a panic.
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(format!("serialize: {e}")))
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

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

fn is_fk_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_foreign_key_violation())
}

/// Maps constraint failures of an insert/update to the contract's errors; anything else
/// stays a database error.
fn map_constraint(
    e: sqlx::Error,
    duplicate: impl FnOnce() -> String,
    missing: impl FnOnce() -> String,
) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::AlreadyExists(duplicate())
    } else if is_fk_violation(&e) {
        StoreError::NotFound(missing())
    } else {
        StoreError::Database(e)
    }
}

fn limit_of(page: &Page) -> i64 {
    // SQLite treats a negative LIMIT as "no limit".
    page.limit.map_or(-1, i64::from)
}

fn after_of(page: &Page) -> &str {
    // Every stored name is non-empty, so "" sorts before all of them; this keeps the query a
    // plain index range instead of an `? IS NULL OR` the planner cannot use.
    page.after.as_deref().unwrap_or("")
}

fn table_label(namespace: &NamespaceName, name: &str) -> String {
    format!("table {namespace}.{name}")
}

fn view_label(namespace: &NamespaceName, name: &str) -> String {
    format!("view {namespace}.{name}")
}

/// What holds a name in a namespace: tables and views share one name space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameHolder {
    Table,
    View,
}

impl NameHolder {
    fn taken(self, namespace: &NamespaceName, name: &str) -> StoreError {
        StoreError::AlreadyExists(match self {
            NameHolder::Table => table_label(namespace, name),
            NameHolder::View => view_label(namespace, name),
        })
    }
}

/// Which kind of object holds `name` in the namespace, if any. Run inside the write
/// transaction that claims the name (under the writer lock, so nothing slips in).
async fn name_holder(
    conn: &mut SqliteConnection,
    namespace_id: &str,
    name: &str,
) -> Result<Option<NameHolder>> {
    let (table, view): (bool, bool) = sqlx::query_as(
        "SELECT EXISTS(SELECT 1 FROM tables WHERE namespace_id = ?1 AND name = ?2), \
         EXISTS(SELECT 1 FROM views WHERE namespace_id = ?1 AND name = ?2)",
    )
    .bind(namespace_id)
    .bind(name)
    .fetch_one(conn)
    .await?;
    Ok(if table {
        Some(NameHolder::Table)
    } else if view {
        Some(NameHolder::View)
    } else {
        None
    })
}

// ---------------------------------------------------------------------------------------
// Row decoding
// ---------------------------------------------------------------------------------------

fn user_from_row(r: &SqliteRow) -> Result<UserRecord> {
    Ok(UserRecord {
        id: get_uuid(r, "id")?,
        name: r.try_get("name")?,
        email: r.try_get("email")?,
        friendly_name: r.try_get("friendly_name")?,
        source: r.try_get("source")?,
        created_at: get_time(r, "created_at")?,
    })
}

fn access_key_from_row(r: &SqliteRow) -> Result<AccessKeyRecord> {
    Ok(AccessKeyRecord {
        access_key_id: r.try_get("access_key_id")?,
        user_id: get_uuid(r, "user_id")?,
        secret_ciphertext: r.try_get("secret_ciphertext")?,
        created_at: get_time(r, "created_at")?,
        last_used_at: get_opt_time(r, "last_used_at")?,
    })
}

fn external_identity_from_row(r: &SqliteRow) -> Result<ExternalIdentityRecord> {
    Ok(ExternalIdentityRecord {
        source: r.try_get("source")?,
        subject: r.try_get("subject")?,
        user_id: get_uuid(r, "user_id")?,
        created_at: get_time(r, "created_at")?,
    })
}

fn identity_label(source: &str, subject: &str) -> String {
    format!("external identity {source} {subject}")
}

fn group_from_row(r: &SqliteRow) -> Result<GroupRecord> {
    Ok(GroupRecord {
        id: get_uuid(r, "id")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        created_at: get_time(r, "created_at")?,
    })
}

/// Policy columns of the table aliased `p`, named explicitly so joins and compound
/// SELECTs (whose ORDER BY matches result-column names) see plain names.
macro_rules! policy_columns {
    () => {
        "p.id AS id, p.name AS name, p.description AS description, \
         p.statements_json AS statements_json, p.builtin AS builtin, \
         p.created_at AS created_at, p.updated_at AS updated_at"
    };
}

fn policy_from_row(r: &SqliteRow) -> Result<PolicyRecord> {
    let builtin: i64 = r.try_get("builtin")?;
    Ok(PolicyRecord {
        id: get_uuid(r, "id")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        statements_json: r.try_get("statements_json")?,
        builtin: match builtin {
            0 => false,
            1 => true,
            other => return Err(StoreError::Corrupt(format!("policy builtin flag {other}"))),
        },
        created_at: get_time(r, "created_at")?,
        updated_at: get_time(r, "updated_at")?,
    })
}

fn audit_from_row(r: &SqliteRow) -> Result<AuditRecord> {
    Ok(AuditRecord {
        id: r.try_get("id")?,
        at: get_time(r, "at")?,
        actor_id: get_opt_uuid(r, "actor_id")?,
        actor_name: r.try_get("actor_name")?,
        action: r.try_get("action")?,
        target: r.try_get("target")?,
        result: r.try_get("result")?,
        detail: r.try_get("detail")?,
    })
}

fn warehouse_from_row(r: &SqliteRow) -> Result<WarehouseRecord> {
    let status: String = r.try_get("status")?;
    Ok(WarehouseRecord {
        id: get_uuid(r, "id")?,
        name: r.try_get("name")?,
        storage_profile: get_json(r, "storage_profile")?,
        storage_credential: r.try_get("storage_credential")?,
        delete_profile: get_json(r, "delete_profile")?,
        status: WarehouseStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("warehouse status {status:?}")))?,
        location: r.try_get("location")?,
        created_at: get_time(r, "created_at")?,
        updated_at: get_time(r, "updated_at")?,
    })
}

fn namespace_from_row(r: &SqliteRow) -> Result<NamespaceRecord> {
    let key: String = r.try_get("name")?;
    Ok(NamespaceRecord {
        id: get_uuid(r, "id")?,
        warehouse_id: get_uuid(r, "warehouse_id")?,
        name: NamespaceName::from_storage_key(&key),
        properties: get_json(r, "properties")?,
        created_at: get_time(r, "created_at")?,
        updated_at: get_time(r, "updated_at")?,
    })
}

/// Table queries always join the namespace, because records carry its name.
macro_rules! table_select {
    () => {
        "SELECT t.id, t.warehouse_id, t.namespace_id, n.name AS ns_name, t.name, t.location, \
         t.metadata_location, t.metadata_json, t.created_at, t.updated_at \
         FROM tables t JOIN namespaces n ON n.id = t.namespace_id "
    };
}

fn table_from_row(r: &SqliteRow) -> Result<TableRecord> {
    let ns: String = r.try_get("ns_name")?;
    Ok(TableRecord {
        id: get_uuid(r, "id")?,
        warehouse_id: get_uuid(r, "warehouse_id")?,
        namespace_id: get_uuid(r, "namespace_id")?,
        namespace: NamespaceName::from_storage_key(&ns),
        name: r.try_get("name")?,
        location: r.try_get("location")?,
        metadata_location: r.try_get("metadata_location")?,
        metadata_json: r.try_get("metadata_json")?,
        created_at: get_time(r, "created_at")?,
        updated_at: get_time(r, "updated_at")?,
    })
}

/// Columns of `deleted_tables` that decode with [`deleted_table_from_row`] (the namespace key
/// aliased like `table_select!`'s, so the table part decodes with [`table_from_row`]).
macro_rules! deleted_columns {
    () => {
        "id, warehouse_id, namespace_id, namespace_name AS ns_name, name, location, \
         metadata_location, metadata_json, created_at, updated_at, deleted_at, expires_at, \
         deleted_by, purge_requested, kind"
    };
}

fn deleted_table_from_row(r: &SqliteRow) -> Result<DeletedTableRecord> {
    let kind: String = r.try_get("kind")?;
    Ok(DeletedTableRecord {
        table: table_from_row(r)?,
        kind: EntityKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("deleted entry kind {kind:?}")))?,
        deleted_at: get_time(r, "deleted_at")?,
        expires_at: get_time(r, "expires_at")?,
        deleted_by: r.try_get("deleted_by")?,
        purge_requested: match r.try_get::<i64, _>("purge_requested")? {
            0 => false,
            1 => true,
            other => return Err(StoreError::Corrupt(format!("purge_requested = {other}"))),
        },
    })
}

/// Parses a [`DeletedTableRecord::page_key`] into (deleted_at millis, id text).
fn parse_deleted_page_key(key: &str) -> Result<(i64, String)> {
    key.split_once('/')
        .and_then(|(at, id)| Some((at.parse().ok()?, Uuid::parse_str(id).ok()?.to_string())))
        .ok_or_else(|| StoreError::NotFound(format!("deleted-table page position {key:?}")))
}

// ---------------------------------------------------------------------------------------
// Queries shared between transactional and plain paths
// ---------------------------------------------------------------------------------------

async fn fetch_namespace(
    conn: &mut SqliteConnection,
    warehouse_id: Uuid,
    name: &NamespaceName,
) -> Result<Option<NamespaceRecord>> {
    let row = sqlx::query(
        "SELECT id, warehouse_id, name, properties, created_at, updated_at \
         FROM namespaces WHERE warehouse_id = ? AND name = ?",
    )
    .bind(warehouse_id.to_string())
    .bind(name.storage_key())
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(namespace_from_row).transpose()
}

/// Id of the namespace, or NotFound.
async fn namespace_id(
    conn: &mut SqliteConnection,
    warehouse_id: Uuid,
    name: &NamespaceName,
) -> Result<String> {
    sqlx::query_scalar("SELECT id FROM namespaces WHERE warehouse_id = ? AND name = ?")
        .bind(warehouse_id.to_string())
        .bind(name.storage_key())
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("namespace {name}")))
}

async fn fetch_table(
    conn: &mut SqliteConnection,
    warehouse_id: Uuid,
    namespace: &NamespaceName,
    name: &str,
) -> Result<Option<TableRecord>> {
    let row = sqlx::query(concat!(
        table_select!(),
        "WHERE n.warehouse_id = ? AND n.name = ? AND t.name = ?"
    ))
    .bind(warehouse_id.to_string())
    .bind(namespace.storage_key())
    .bind(name)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(table_from_row).transpose()
}

macro_rules! view_select {
    () => {
        "SELECT v.id, v.warehouse_id, v.namespace_id, n.name AS ns_name, v.name, v.location, \
         v.metadata_location, v.metadata_json, v.created_at, v.updated_at \
         FROM views v JOIN namespaces n ON n.id = v.namespace_id "
    };
}

fn view_from_row(r: &SqliteRow) -> Result<ViewRecord> {
    table_from_row(r).map(Into::into)
}

/// Inserts the view row; the caller has checked the namespace and the name.
async fn insert_view(
    conn: &mut SqliteConnection,
    v: &ViewRecord,
    namespace: &NamespaceName,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO views (id, warehouse_id, namespace_id, name, location, metadata_location, \
         metadata_json, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(v.id.to_string())
    .bind(v.warehouse_id.to_string())
    .bind(v.namespace_id.to_string())
    .bind(&v.name)
    .bind(&v.location)
    .bind(&v.metadata_location)
    .bind(&v.metadata_json)
    .bind(millis(v.created_at))
    .bind(millis(v.updated_at))
    .execute(conn)
    .await
    .map_err(|e| {
        map_constraint(
            e,
            || format!("view id {}", v.id),
            || format!("namespace {namespace}"),
        )
    })?;
    Ok(())
}

/// Moves a dropped table or view into `deleted_tables` and removes its live row, inside the
/// caller's write transaction.
async fn move_to_deleted(conn: &mut SqliteConnection, record: &DeletedTableRecord) -> Result<()> {
    let t = &record.table;
    sqlx::query(
        "INSERT INTO deleted_tables (id, warehouse_id, namespace_id, namespace_name, name, \
         location, metadata_location, metadata_json, created_at, updated_at, deleted_at, \
         expires_at, deleted_by, purge_requested, lease_until, kind) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)",
    )
    .bind(t.id.to_string())
    .bind(t.warehouse_id.to_string())
    .bind(t.namespace_id.to_string())
    .bind(t.namespace.storage_key())
    .bind(&t.name)
    .bind(&t.location)
    .bind(&t.metadata_location)
    .bind(&t.metadata_json)
    .bind(millis(t.created_at))
    .bind(millis(t.updated_at))
    .bind(millis(record.deleted_at))
    .bind(millis(record.expires_at))
    .bind(&record.deleted_by)
    .bind(i64::from(record.purge_requested))
    .bind(record.kind.as_str())
    .execute(&mut *conn)
    .await
    .map_err(|e| {
        map_constraint(
            e,
            || format!("deleted {} id {}", record.kind.as_str(), t.id),
            || format!("warehouse {}", t.warehouse_id),
        )
    })?;
    let live = match record.kind {
        EntityKind::Table => "DELETE FROM tables WHERE id = ?",
        EntityKind::View => "DELETE FROM views WHERE id = ?",
    };
    sqlx::query(live)
        .bind(t.id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

async fn fetch_view(
    conn: &mut SqliteConnection,
    warehouse_id: Uuid,
    namespace: &NamespaceName,
    name: &str,
) -> Result<Option<ViewRecord>> {
    let row = sqlx::query(concat!(
        view_select!(),
        "WHERE n.warehouse_id = ? AND n.name = ? AND v.name = ?"
    ))
    .bind(warehouse_id.to_string())
    .bind(namespace.storage_key())
    .bind(name)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(view_from_row).transpose()
}

async fn fetch_table_by_id(
    conn: &mut SqliteConnection,
    table_id: Uuid,
) -> Result<Option<TableRecord>> {
    let row = sqlx::query(concat!(table_select!(), "WHERE t.id = ?"))
        .bind(table_id.to_string())
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(table_from_row).transpose()
}

/// Every '/'-boundary prefix of `loc` (which has no trailing slash) and `loc` itself: the
/// stored locations (rtrimmed) that equal or contain `loc`.
fn containing_candidates(loc: &str) -> Vec<&str> {
    let mut candidates: Vec<&str> = loc
        .match_indices('/')
        .map(|(i, _)| &loc[..i])
        .filter(|p| !p.is_empty())
        .collect();
    candidates.push(loc);
    candidates
}

/// `?first, ?first+1, ...` for `n` numbered parameters.
fn numbered_placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The overlap rule, phrased so every branch is an index probe on
/// `tables_by_location` / `deleted_tables_by_location` (warehouse_id, rtrim(location, '/')):
/// - a stored location L equals or contains `loc` iff L is `loc` or one of its '/'-boundary
///   prefixes, so we enumerate those and look them up with IN;
/// - L lies inside `loc` iff L starts with `loc/`, i.e. `loc/` <= L < `loc0` ('0' is the
///   byte after '/'; SQLite compares text bytewise).
///
/// Deleted tables (not yet forgotten) count as well: their files are still there.
async fn find_overlap(
    conn: &mut SqliteConnection,
    warehouse_id: Uuid,
    location: &str,
    except_table: Option<Uuid>,
) -> Result<Option<String>> {
    let loc = location.trim_end_matches('/');
    let candidates = containing_candidates(loc);

    // Index probes joined with UNION ALL: written as one WHERE with OR, SQLite falls back to
    // scanning every table of the warehouse. ?1 warehouse, ?2/?3 the range, ?4 the excepted
    // table, ?5... the candidates.
    let in_list = numbered_placeholders(5, candidates.len());
    let sql = format!(
        "SELECT kind, ns_name, name, location FROM ( \
           SELECT 'table' AS kind, n.name AS ns_name, o.name AS name, o.location AS location \
           FROM ( \
             SELECT id, namespace_id, name, location FROM tables \
             WHERE warehouse_id = ?1 AND rtrim(location, '/') IN ({in_list}) \
             UNION ALL \
             SELECT id, namespace_id, name, location FROM tables \
             WHERE warehouse_id = ?1 AND rtrim(location, '/') >= ?2 \
               AND rtrim(location, '/') < ?3 \
           ) o JOIN namespaces n ON n.id = o.namespace_id \
           WHERE o.id IS NOT ?4 \
           UNION ALL \
           SELECT 'deleted table', namespace_name, name, location FROM deleted_tables \
           WHERE warehouse_id = ?1 AND rtrim(location, '/') IN ({in_list}) AND id IS NOT ?4 \
           UNION ALL \
           SELECT 'deleted table', namespace_name, name, location FROM deleted_tables \
           WHERE warehouse_id = ?1 AND rtrim(location, '/') >= ?2 \
             AND rtrim(location, '/') < ?3 AND id IS NOT ?4 \
         ) LIMIT 1"
    );

    let mut q = sqlx::query(&sql)
        .bind(warehouse_id.to_string())
        .bind(format!("{loc}/"))
        .bind(format!("{loc}0"))
        .bind(except_table.map(|id| id.to_string()));
    for c in &candidates {
        q = q.bind(*c);
    }
    let row = q.fetch_optional(conn).await?;
    row.map(|r| -> Result<String> {
        let kind: String = r.try_get("kind")?;
        let ns: String = r.try_get("ns_name")?;
        let name: String = r.try_get("name")?;
        let other: String = r.try_get("location")?;
        let label = table_label(&NamespaceName::from_storage_key(&ns), &name);
        Ok(match kind.as_str() {
            "table" => format!("{label} at {other}"),
            _ => format!("deleted {label} at {other}"),
        })
    })
    .transpose()
}

async fn apply_create(conn: &mut SqliteConnection, t: &TableRecord) -> Result<()> {
    let ns_name: Option<String> =
        sqlx::query_scalar("SELECT name FROM namespaces WHERE id = ? AND warehouse_id = ?")
            .bind(t.namespace_id.to_string())
            .bind(t.warehouse_id.to_string())
            .fetch_optional(&mut *conn)
            .await?;
    let Some(ns_name) = ns_name else {
        return Err(StoreError::NotFound(format!("namespace {}", t.namespace)));
    };
    let namespace = NamespaceName::from_storage_key(&ns_name);
    if let Some(holder) = name_holder(conn, &t.namespace_id.to_string(), &t.name).await? {
        return Err(holder.taken(&namespace, &t.name));
    }
    if let Some(other) = find_overlap(conn, t.warehouse_id, &t.location, Some(t.id)).await? {
        return Err(StoreError::LocationOverlap(other));
    }
    // Ids are unique across live and deleted tables, or the deleted one could not come back.
    let id_taken: bool =
        sqlx::query_scalar("SELECT EXISTS(SELECT 1 FROM deleted_tables WHERE id = ?)")
            .bind(t.id.to_string())
            .fetch_one(&mut *conn)
            .await?;
    if id_taken {
        return Err(StoreError::AlreadyExists(format!("table id {}", t.id)));
    }
    insert_table(conn, t, &namespace).await
}

/// Inserts the row; the caller has checked the namespace and the name.
async fn insert_table(
    conn: &mut SqliteConnection,
    t: &TableRecord,
    namespace: &NamespaceName,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO tables (id, warehouse_id, namespace_id, name, location, metadata_location, \
         metadata_json, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(t.id.to_string())
    .bind(t.warehouse_id.to_string())
    .bind(t.namespace_id.to_string())
    .bind(&t.name)
    .bind(&t.location)
    .bind(&t.metadata_location)
    .bind(&t.metadata_json)
    .bind(millis(t.created_at))
    .bind(millis(t.updated_at))
    .execute(conn)
    .await
    .map_err(|e| {
        // The caller checked the name, so a unique violation here is the id.
        map_constraint(
            e,
            || format!("table id {}", t.id),
            || format!("namespace {namespace}"),
        )
    })?;
    Ok(())
}

async fn apply_update(
    conn: &mut SqliteConnection,
    table_id: Uuid,
    expected_metadata_location: &str,
    new_metadata_location: &str,
    new_metadata_json: &str,
    new_location: &str,
) -> Result<()> {
    let Some(current) = fetch_table_by_id(conn, table_id).await? else {
        return Err(StoreError::NotFound(format!("table id {table_id}")));
    };
    let label = table_label(&current.namespace, &current.name);
    if current.metadata_location != expected_metadata_location {
        return Err(StoreError::Conflict(format!(
            "{label} has metadata {}, expected {expected_metadata_location}",
            current.metadata_location
        )));
    }
    // Only a moved table is checked, so tables that overlapped before this rule existed can
    // still be committed to.
    if new_location != current.location {
        if let Some(other) =
            find_overlap(conn, current.warehouse_id, new_location, Some(table_id)).await?
        {
            return Err(StoreError::LocationOverlap(other));
        }
    }
    // The CAS condition is redundant under BEGIN IMMEDIATE but keeps the write correct even
    // if this ever runs in a weaker transaction.
    let done = sqlx::query(
        "UPDATE tables SET metadata_location = ?, metadata_json = ?, location = ?, updated_at = ? \
         WHERE id = ? AND metadata_location = ?",
    )
    .bind(new_metadata_location)
    .bind(new_metadata_json)
    .bind(new_location)
    .bind(millis(now()))
    .bind(table_id.to_string())
    .bind(expected_metadata_location)
    .execute(conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Conflict(format!(
            "{label} changed concurrently"
        )));
    }
    Ok(())
}

/// Applies a commit's operations inside the caller's write transaction.
async fn apply_ops(conn: &mut SqliteConnection, ops: &[CommitOp]) -> Result<()> {
    for op in ops {
        match op {
            CommitOp::Create(t) => apply_create(conn, t).await?,
            CommitOp::Update {
                table_id,
                expected_metadata_location,
                new_metadata_location,
                new_metadata_json,
                new_location,
            } => {
                apply_update(
                    conn,
                    *table_id,
                    expected_metadata_location,
                    new_metadata_location,
                    new_metadata_json,
                    new_location,
                )
                .await?
            }
        }
    }
    Ok(())
}

async fn insert_user<'c>(
    conn: impl sqlx::Executor<'c, Database = Sqlite>,
    user: &UserRecord,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO users (id, name, email, friendly_name, source, created_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(user.id.to_string())
    .bind(&user.name)
    .bind(&user.email)
    .bind(&user.friendly_name)
    .bind(&user.source)
    .bind(millis(user.created_at))
    .execute(conn)
    .await
    .map_err(|e| {
        map_constraint(
            e,
            || format!("user {}", user.name),
            || format!("user {}", user.name),
        )
    })?;
    Ok(())
}

/// Inserts the link of `rec`'s (source, subject) to `user_id`: AlreadyExists if the identity
/// is linked already, NotFound if the user is absent.
async fn insert_external_identity<'c>(
    conn: impl sqlx::Executor<'c, Database = Sqlite>,
    rec: &ExternalIdentityRecord,
    user_id: Uuid,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO external_identities (source, subject, user_id, created_at) \
         VALUES (?, ?, ?, ?)",
    )
    .bind(&rec.source)
    .bind(&rec.subject)
    .bind(user_id.to_string())
    .bind(millis(rec.created_at))
    .execute(conn)
    .await
    .map_err(|e| {
        map_constraint(
            e,
            || identity_label(&rec.source, &rec.subject),
            || format!("user {user_id}"),
        )
    })?;
    Ok(())
}

/// One end of a membership or attachment: the parent table and how errors name the row.
struct LinkEnd {
    table: &'static str,
    label: &'static str,
    id: Uuid,
}

impl LinkEnd {
    fn user(id: Uuid) -> Self {
        LinkEnd {
            table: "users",
            label: "user",
            id,
        }
    }
    fn group(id: Uuid) -> Self {
        LinkEnd {
            table: "groups",
            label: "group",
            id,
        }
    }
    fn policy(id: Uuid) -> Self {
        LinkEnd {
            table: "policies",
            label: "policy",
            id,
        }
    }
    fn subject(&self) -> String {
        format!("{} {}", self.label, self.id)
    }
}

impl SqliteStore {
    /// Idempotently inserts the link row (`a`, `b`) into `link_table`. Both ends are checked
    /// under the write lock first, so the NotFound names the missing end (a foreign-key
    /// failure would not say which end it was; INSERT OR IGNORE does not ignore those).
    async fn link(
        &self,
        link_table: &'static str,
        columns: (&'static str, &'static str),
        a: LinkEnd,
        b: LinkEnd,
    ) -> Result<()> {
        let (_writer, mut tx) = self.write_tx().await?;
        for end in [&a, &b] {
            let exists: bool = sqlx::query_scalar(&format!(
                "SELECT EXISTS(SELECT 1 FROM {} WHERE id = ?)",
                end.table
            ))
            .bind(end.id.to_string())
            .fetch_one(&mut *tx)
            .await?;
            if !exists {
                return Err(StoreError::NotFound(end.subject()));
            }
        }
        sqlx::query(&format!(
            "INSERT OR IGNORE INTO {link_table} ({}, {}) VALUES (?, ?)",
            columns.0, columns.1
        ))
        .bind(a.id.to_string())
        .bind(b.id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            map_constraint(
                e,
                || format!("{} in {}", b.subject(), a.subject()),
                || format!("{} or {}", a.subject(), b.subject()),
            )
        })?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes the link row (`a`, `b`); NotFound naming `missing` if there was none.
    async fn unlink(
        &self,
        link_table: &'static str,
        columns: (&'static str, &'static str),
        a: Uuid,
        b: Uuid,
        missing: impl FnOnce() -> String,
    ) -> Result<()> {
        let (_writer, mut conn) = self.write_conn().await?;
        let done = sqlx::query(&format!(
            "DELETE FROM {link_table} WHERE {} = ? AND {} = ?",
            columns.0, columns.1
        ))
        .bind(a.to_string())
        .bind(b.to_string())
        .execute(&mut *conn)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(missing()));
        }
        Ok(())
    }

    /// Deletes the row `id` of `table`; its dependents go with it through ON DELETE CASCADE,
    /// in the same (single-statement) transaction. `changes()` counts only the row itself.
    async fn delete_by_id(&self, table: &'static str, label: &'static str, id: Uuid) -> Result<()> {
        let (_writer, mut conn) = self.write_conn().await?;
        let done = sqlx::query(&format!("DELETE FROM {table} WHERE id = ?"))
            .bind(id.to_string())
            .execute(&mut *conn)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("{label} {id}")));
        }
        Ok(())
    }
}

#[async_trait]
impl CatalogStore for SqliteStore {
    // ---- settings ----

    async fn get_setting(&self, key: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        let (_writer, mut conn) = self.write_conn().await?;
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES (?, ?) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    // ---- users and access keys ----

    async fn create_user(&self, user: &UserRecord) -> Result<()> {
        let (_writer, mut conn) = self.write_conn().await?;
        insert_user(&mut *conn, user).await
    }

    async fn get_user(&self, id: Uuid) -> Result<Option<UserRecord>> {
        let row = sqlx::query("SELECT * FROM users WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn get_user_by_name(&self, name: &str) -> Result<Option<UserRecord>> {
        let row = sqlx::query("SELECT * FROM users WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>> {
        sqlx::query("SELECT * FROM users ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(user_from_row)
            .collect()
    }

    async fn create_access_key(&self, key: &AccessKeyRecord) -> Result<()> {
        let (_writer, mut conn) = self.write_conn().await?;
        sqlx::query(
            "INSERT INTO access_keys (access_key_id, user_id, secret_ciphertext, created_at, \
             last_used_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&key.access_key_id)
        .bind(key.user_id.to_string())
        .bind(&key.secret_ciphertext)
        .bind(millis(key.created_at))
        .bind(key.last_used_at.map(millis))
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            map_constraint(
                e,
                || format!("access key {}", key.access_key_id),
                || format!("user {}", key.user_id),
            )
        })?;
        Ok(())
    }

    async fn get_access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRecord>> {
        let row = sqlx::query("SELECT * FROM access_keys WHERE access_key_id = ?")
            .bind(access_key_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(access_key_from_row).transpose()
    }

    async fn list_access_keys(&self, user_id: Uuid) -> Result<Vec<AccessKeyRecord>> {
        sqlx::query(
            "SELECT * FROM access_keys WHERE user_id = ? ORDER BY created_at, access_key_id",
        )
        .bind(user_id.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(access_key_from_row)
        .collect()
    }

    async fn touch_access_key(&self, access_key_id: &str, at: DateTime<Utc>) -> Result<()> {
        let (_writer, mut conn) = self.write_conn().await?;
        sqlx::query("UPDATE access_keys SET last_used_at = ? WHERE access_key_id = ?")
            .bind(millis(at))
            .bind(access_key_id)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn delete_access_key(&self, access_key_id: &str) -> Result<()> {
        let (_writer, mut conn) = self.write_conn().await?;
        let done = sqlx::query("DELETE FROM access_keys WHERE access_key_id = ?")
            .bind(access_key_id)
            .execute(&mut *conn)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("access key {access_key_id}")));
        }
        Ok(())
    }

    // ---- users (beyond creation) ----

    async fn update_user(&self, user: &UserRecord) -> Result<()> {
        let (_writer, mut conn) = self.write_conn().await?;
        let done =
            sqlx::query("UPDATE users SET email = ?, friendly_name = ?, source = ? WHERE id = ?")
                .bind(&user.email)
                .bind(&user.friendly_name)
                .bind(&user.source)
                .bind(user.id.to_string())
                .execute(&mut *conn)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user {}", user.id)));
        }
        Ok(())
    }

    async fn delete_user(&self, id: Uuid) -> Result<()> {
        // Cascades to access_keys, group_members, user_policies and external_identities.
        self.delete_by_id("users", "user", id).await
    }

    // ---- external identities ----

    async fn get_external_identity(
        &self,
        source: &str,
        subject: &str,
    ) -> Result<Option<ExternalIdentityRecord>> {
        let row = sqlx::query(
            "SELECT source, subject, user_id, created_at FROM external_identities \
             WHERE source = ? AND subject = ?",
        )
        .bind(source)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(external_identity_from_row).transpose()
    }

    async fn create_external_identity(&self, rec: &ExternalIdentityRecord) -> Result<()> {
        let (_writer, mut conn) = self.write_conn().await?;
        // One statement: the foreign key checks the user under the same write lock.
        insert_external_identity(&mut *conn, rec, rec.user_id).await
    }

    async fn list_external_identities(&self, user_id: Uuid) -> Result<Vec<ExternalIdentityRecord>> {
        sqlx::query(
            "SELECT source, subject, user_id, created_at FROM external_identities \
             WHERE user_id = ? ORDER BY source, subject",
        )
        .bind(user_id.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(external_identity_from_row)
        .collect()
    }

    async fn delete_external_identity(&self, source: &str, subject: &str) -> Result<()> {
        let (_writer, mut conn) = self.write_conn().await?;
        let done = sqlx::query("DELETE FROM external_identities WHERE source = ? AND subject = ?")
            .bind(source)
            .bind(subject)
            .execute(&mut *conn)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(identity_label(source, subject)));
        }
        Ok(())
    }

    async fn create_user_with_identity(
        &self,
        user: &UserRecord,
        identity: &ExternalIdentityRecord,
        group_ids: &[Uuid],
    ) -> Result<()> {
        // BEGIN IMMEDIATE plus the writer lock serialize racing first logins; the loser's
        // identity insert hits the primary key and the dropped transaction rolls back its
        // user row too.
        let (_writer, mut tx) = self.write_tx().await?;
        insert_user(&mut *tx, user).await?;
        // The identity is linked to the user created here, whatever `identity.user_id` says.
        insert_external_identity(&mut *tx, identity, user.id).await?;
        for group_id in group_ids {
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS(SELECT 1 FROM groups WHERE id = ?)")
                    .bind(group_id.to_string())
                    .fetch_one(&mut *tx)
                    .await?;
            if !exists {
                return Err(StoreError::NotFound(format!("group {group_id}")));
            }
            // OR IGNORE: a group listed twice is one membership.
            sqlx::query("INSERT OR IGNORE INTO group_members (group_id, user_id) VALUES (?, ?)")
                .bind(group_id.to_string())
                .bind(user.id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    map_constraint(
                        e,
                        || format!("user {} in group {group_id}", user.id),
                        || format!("group {group_id}"),
                    )
                })?;
        }
        tx.commit().await?;
        Ok(())
    }

    // ---- groups ----

    async fn create_group(&self, group: &GroupRecord) -> Result<()> {
        let (_writer, mut conn) = self.write_conn().await?;
        sqlx::query("INSERT INTO groups (id, name, description, created_at) VALUES (?, ?, ?, ?)")
            .bind(group.id.to_string())
            .bind(&group.name)
            .bind(&group.description)
            .bind(millis(group.created_at))
            .execute(&mut *conn)
            .await
            .map_err(|e| {
                map_constraint(
                    e,
                    || format!("group {}", group.name),
                    || format!("group {}", group.name),
                )
            })?;
        Ok(())
    }

    async fn get_group_by_name(&self, name: &str) -> Result<Option<GroupRecord>> {
        let row =
            sqlx::query("SELECT id, name, description, created_at FROM groups WHERE name = ?")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(group_from_row).transpose()
    }

    async fn list_groups(&self) -> Result<Vec<GroupRecord>> {
        sqlx::query("SELECT id, name, description, created_at FROM groups ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(group_from_row)
            .collect()
    }

    async fn delete_group(&self, id: Uuid) -> Result<()> {
        // Cascades to group_members and group_policies.
        self.delete_by_id("groups", "group", id).await
    }

    async fn add_group_member(&self, group_id: Uuid, user_id: Uuid) -> Result<()> {
        self.link(
            "group_members",
            ("group_id", "user_id"),
            LinkEnd::group(group_id),
            LinkEnd::user(user_id),
        )
        .await
    }

    async fn remove_group_member(&self, group_id: Uuid, user_id: Uuid) -> Result<()> {
        self.unlink(
            "group_members",
            ("group_id", "user_id"),
            group_id,
            user_id,
            || format!("membership of user {user_id} in group {group_id}"),
        )
        .await
    }

    async fn list_group_members(&self, group_id: Uuid) -> Result<Vec<UserRecord>> {
        sqlx::query(
            "SELECT u.id, u.name, u.email, u.friendly_name, u.source, u.created_at \
             FROM group_members m JOIN users u ON u.id = m.user_id \
             WHERE m.group_id = ? ORDER BY u.name",
        )
        .bind(group_id.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(user_from_row)
        .collect()
    }

    async fn list_user_groups(&self, user_id: Uuid) -> Result<Vec<GroupRecord>> {
        sqlx::query(
            "SELECT g.id, g.name, g.description, g.created_at \
             FROM group_members m JOIN groups g ON g.id = m.group_id \
             WHERE m.user_id = ? ORDER BY g.name",
        )
        .bind(user_id.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(group_from_row)
        .collect()
    }

    // ---- policies ----

    async fn create_policy(&self, policy: &PolicyRecord) -> Result<()> {
        let (_writer, mut conn) = self.write_conn().await?;
        sqlx::query(
            "INSERT INTO policies (id, name, description, statements_json, builtin, created_at, \
             updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(policy.id.to_string())
        .bind(&policy.name)
        .bind(&policy.description)
        .bind(&policy.statements_json)
        .bind(i64::from(policy.builtin))
        .bind(millis(policy.created_at))
        .bind(millis(policy.updated_at))
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            map_constraint(
                e,
                || format!("policy {}", policy.name),
                || format!("policy {}", policy.name),
            )
        })?;
        Ok(())
    }

    async fn get_policy_by_name(&self, name: &str) -> Result<Option<PolicyRecord>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            policy_columns!(),
            " FROM policies p WHERE p.name = ?"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(policy_from_row).transpose()
    }

    async fn list_policies(&self) -> Result<Vec<PolicyRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            policy_columns!(),
            " FROM policies p ORDER BY p.name"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(policy_from_row)
        .collect()
    }

    async fn update_policy(&self, policy: &PolicyRecord) -> Result<()> {
        let (_writer, mut conn) = self.write_conn().await?;
        let done = sqlx::query(
            "UPDATE policies SET description = ?, statements_json = ?, updated_at = ? \
             WHERE id = ?",
        )
        .bind(&policy.description)
        .bind(&policy.statements_json)
        .bind(millis(policy.updated_at))
        .bind(policy.id.to_string())
        .execute(&mut *conn)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("policy {}", policy.id)));
        }
        Ok(())
    }

    async fn delete_policy(&self, id: Uuid) -> Result<()> {
        // Cascades to user_policies and group_policies.
        self.delete_by_id("policies", "policy", id).await
    }

    async fn attach_user_policy(&self, user_id: Uuid, policy_id: Uuid) -> Result<()> {
        self.link(
            "user_policies",
            ("user_id", "policy_id"),
            LinkEnd::user(user_id),
            LinkEnd::policy(policy_id),
        )
        .await
    }

    async fn detach_user_policy(&self, user_id: Uuid, policy_id: Uuid) -> Result<()> {
        self.unlink(
            "user_policies",
            ("user_id", "policy_id"),
            user_id,
            policy_id,
            || format!("attachment of policy {policy_id} to user {user_id}"),
        )
        .await
    }

    async fn attach_group_policy(&self, group_id: Uuid, policy_id: Uuid) -> Result<()> {
        self.link(
            "group_policies",
            ("group_id", "policy_id"),
            LinkEnd::group(group_id),
            LinkEnd::policy(policy_id),
        )
        .await
    }

    async fn detach_group_policy(&self, group_id: Uuid, policy_id: Uuid) -> Result<()> {
        self.unlink(
            "group_policies",
            ("group_id", "policy_id"),
            group_id,
            policy_id,
            || format!("attachment of policy {policy_id} to group {group_id}"),
        )
        .await
    }

    async fn list_user_policies(&self, user_id: Uuid) -> Result<Vec<PolicyRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            policy_columns!(),
            " FROM user_policies a JOIN policies p ON p.id = a.policy_id \
             WHERE a.user_id = ? ORDER BY p.name"
        ))
        .bind(user_id.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(policy_from_row)
        .collect()
    }

    async fn list_group_policies(&self, group_id: Uuid) -> Result<Vec<PolicyRecord>> {
        sqlx::query(concat!(
            "SELECT ",
            policy_columns!(),
            " FROM group_policies a JOIN policies p ON p.id = a.policy_id \
             WHERE a.group_id = ? ORDER BY p.name"
        ))
        .bind(group_id.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(policy_from_row)
        .collect()
    }

    async fn effective_policies(&self, user_id: Uuid) -> Result<Vec<EffectivePolicy>> {
        // One statement, so both halves read the same snapshot. Each (policy, way) pair is
        // unique by the link tables' primary keys, so the order is total. A compound
        // SELECT's ORDER BY may only name result columns, hence NULLS FIRST rather than an
        // `IS NULL` expression (SQLite sorts NULL first anyway; PostgreSQL needs it spelled).
        let rows = sqlx::query(concat!(
            "SELECT ",
            policy_columns!(),
            ", NULL AS via_group \
             FROM user_policies up JOIN policies p ON p.id = up.policy_id \
             WHERE up.user_id = ?1 \
             UNION ALL \
             SELECT ",
            policy_columns!(),
            ", g.name AS via_group \
             FROM group_members m \
             JOIN groups g ON g.id = m.group_id \
             JOIN group_policies gp ON gp.group_id = m.group_id \
             JOIN policies p ON p.id = gp.policy_id \
             WHERE m.user_id = ?1 \
             ORDER BY name, via_group NULLS FIRST"
        ))
        .bind(user_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EffectivePolicy {
                    policy: policy_from_row(r)?,
                    via_group: r.try_get("via_group")?,
                })
            })
            .collect()
    }

    // ---- audit log ----

    async fn append_audit(&self, record: &AuditRecord) -> Result<i64> {
        let (_writer, mut conn) = self.write_conn().await?;
        Ok(sqlx::query_scalar(
            "INSERT INTO audit_log (at, actor_id, actor_name, action, target, result, detail) \
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(millis(record.at))
        .bind(record.actor_id.map(|id| id.to_string()))
        .bind(&record.actor_name)
        .bind(&record.action)
        .bind(&record.target)
        .bind(&record.result)
        .bind(&record.detail)
        .fetch_one(&mut *conn)
        .await?)
    }

    async fn list_audit(&self, before: Option<i64>, limit: u32) -> Result<Vec<AuditRecord>> {
        // Like `after_of`: a sentinel instead of `? IS NULL OR`, so the query stays a plain
        // backwards range scan of the rowid b-tree.
        sqlx::query(
            "SELECT id, at, actor_id, actor_name, action, target, result, detail \
             FROM audit_log WHERE id < ? ORDER BY id DESC LIMIT ?",
        )
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(audit_from_row)
        .collect()
    }

    // ---- warehouses ----

    async fn create_warehouse(&self, w: &WarehouseRecord) -> Result<()> {
        let (_writer, mut conn) = self.write_conn().await?;
        sqlx::query(
            "INSERT INTO warehouses (id, name, storage_profile, storage_credential, \
             delete_profile, status, location, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(w.id.to_string())
        .bind(&w.name)
        .bind(to_json(&w.storage_profile)?)
        .bind(&w.storage_credential)
        .bind(to_json(&w.delete_profile)?)
        .bind(w.status.as_str())
        .bind(&w.location)
        .bind(millis(w.created_at))
        .bind(millis(w.updated_at))
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            map_constraint(
                e,
                || format!("warehouse {}", w.name),
                || format!("warehouse {}", w.name),
            )
        })?;
        Ok(())
    }

    async fn get_warehouse(&self, id: Uuid) -> Result<Option<WarehouseRecord>> {
        let row = sqlx::query("SELECT * FROM warehouses WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(warehouse_from_row).transpose()
    }

    async fn get_warehouse_by_name(&self, name: &str) -> Result<Option<WarehouseRecord>> {
        let row = sqlx::query("SELECT * FROM warehouses WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(warehouse_from_row).transpose()
    }

    async fn list_warehouses(&self) -> Result<Vec<WarehouseRecord>> {
        sqlx::query("SELECT * FROM warehouses ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(warehouse_from_row)
            .collect()
    }

    async fn update_warehouse(&self, w: &WarehouseRecord) -> Result<()> {
        let (_writer, mut conn) = self.write_conn().await?;
        let done = sqlx::query(
            "UPDATE warehouses SET name = ?, storage_profile = ?, storage_credential = ?, \
             delete_profile = ?, status = ?, location = ?, updated_at = ? WHERE id = ?",
        )
        .bind(&w.name)
        .bind(to_json(&w.storage_profile)?)
        .bind(&w.storage_credential)
        .bind(to_json(&w.delete_profile)?)
        .bind(w.status.as_str())
        .bind(&w.location)
        .bind(millis(w.updated_at))
        .bind(w.id.to_string())
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            map_constraint(
                e,
                || format!("warehouse {}", w.name),
                || format!("warehouse {}", w.id),
            )
        })?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("warehouse {}", w.id)));
        }
        Ok(())
    }

    async fn delete_warehouse(&self, id: Uuid) -> Result<()> {
        let (_writer, mut tx) = self.write_tx().await?;
        let name: Option<String> = sqlx::query_scalar("SELECT name FROM warehouses WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(name) = name else {
            return Err(StoreError::NotFound(format!("warehouse {id}")));
        };
        // Deleted tables count: their files still live under the warehouse until purged.
        let busy: bool = sqlx::query_scalar(
            "SELECT EXISTS(SELECT 1 FROM namespaces WHERE warehouse_id = ?1) \
             OR EXISTS(SELECT 1 FROM deleted_tables WHERE warehouse_id = ?1)",
        )
        .bind(id.to_string())
        .fetch_one(&mut *tx)
        .await?;
        if busy {
            return Err(StoreError::NotEmpty(format!("warehouse {name}")));
        }
        sqlx::query("DELETE FROM warehouses WHERE id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- namespaces ----

    async fn create_namespace(&self, ns: &NamespaceRecord) -> Result<()> {
        let (_writer, mut tx) = self.write_tx().await?;
        let parent_id = match ns.name.parent() {
            Some(parent) => Some(
                namespace_id(&mut tx, ns.warehouse_id, &parent)
                    .await
                    .map_err(|e| match e {
                        StoreError::NotFound(_) => {
                            StoreError::NotFound(format!("parent namespace {parent}"))
                        }
                        other => other,
                    })?,
            ),
            None => None,
        };
        sqlx::query(
            "INSERT INTO namespaces (id, warehouse_id, name, parent_id, properties, created_at, \
             updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(ns.id.to_string())
        .bind(ns.warehouse_id.to_string())
        .bind(ns.name.storage_key())
        .bind(parent_id)
        .bind(to_json(&ns.properties)?)
        .bind(millis(ns.created_at))
        .bind(millis(ns.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            map_constraint(
                e,
                || format!("namespace {}", ns.name),
                || format!("warehouse {}", ns.warehouse_id),
            )
        })?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_namespace(
        &self,
        warehouse_id: Uuid,
        name: &NamespaceName,
    ) -> Result<Option<NamespaceRecord>> {
        let mut conn = self.pool.acquire().await?;
        fetch_namespace(&mut conn, warehouse_id, name).await
    }

    async fn list_namespaces(
        &self,
        warehouse_id: Uuid,
        parent: Option<&NamespaceName>,
        page: &Page,
    ) -> Result<Vec<NamespaceRecord>> {
        let mut conn = self.pool.acquire().await?;
        let rows = match parent {
            None => {
                sqlx::query(
                    "SELECT id, warehouse_id, name, properties, created_at, updated_at \
                     FROM namespaces WHERE warehouse_id = ? AND parent_id IS NULL AND name > ? \
                     ORDER BY name LIMIT ?",
                )
                .bind(warehouse_id.to_string())
                .bind(after_of(page))
                .bind(limit_of(page))
                .fetch_all(&mut *conn)
                .await?
            }
            Some(parent) => {
                let parent_id = namespace_id(&mut conn, warehouse_id, parent).await?;
                sqlx::query(
                    "SELECT id, warehouse_id, name, properties, created_at, updated_at \
                     FROM namespaces WHERE parent_id = ? AND name > ? ORDER BY name LIMIT ?",
                )
                .bind(parent_id)
                .bind(after_of(page))
                .bind(limit_of(page))
                .fetch_all(&mut *conn)
                .await?
            }
        };
        rows.iter().map(namespace_from_row).collect()
    }

    async fn update_namespace_properties(
        &self,
        warehouse_id: Uuid,
        name: &NamespaceName,
        removals: &[String],
        updates: &HashMap<String, String>,
    ) -> Result<NamespaceRecord> {
        let (_writer, mut tx) = self.write_tx().await?;
        let Some(mut ns) = fetch_namespace(&mut tx, warehouse_id, name).await? else {
            return Err(StoreError::NotFound(format!("namespace {name}")));
        };
        for k in removals {
            ns.properties.remove(k);
        }
        ns.properties
            .extend(updates.iter().map(|(k, v)| (k.clone(), v.clone())));
        ns.updated_at = now();
        sqlx::query("UPDATE namespaces SET properties = ?, updated_at = ? WHERE id = ?")
            .bind(to_json(&ns.properties)?)
            .bind(millis(ns.updated_at))
            .bind(ns.id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(ns)
    }

    async fn drop_namespace(&self, warehouse_id: Uuid, name: &NamespaceName) -> Result<()> {
        let (_writer, mut tx) = self.write_tx().await?;
        let id = namespace_id(&mut tx, warehouse_id, name).await?;
        let busy: bool = sqlx::query_scalar(
            "SELECT EXISTS(SELECT 1 FROM namespaces WHERE parent_id = ?1) \
             OR EXISTS(SELECT 1 FROM tables WHERE namespace_id = ?1) \
             OR EXISTS(SELECT 1 FROM views WHERE namespace_id = ?1)",
        )
        .bind(&id)
        .fetch_one(&mut *tx)
        .await?;
        if busy {
            return Err(StoreError::NotEmpty(format!("namespace {name}")));
        }
        sqlx::query("DELETE FROM namespaces WHERE id = ?")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- soft deletion ----

    async fn soft_drop_table(
        &self,
        warehouse_id: Uuid,
        namespace: &NamespaceName,
        name: &str,
        deleted_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        deleted_by: Option<&str>,
        purge_requested: bool,
    ) -> Result<DeletedTableRecord> {
        let (_writer, mut tx) = self.write_tx().await?;
        let Some(table) = fetch_table(&mut tx, warehouse_id, namespace, name).await? else {
            return Err(StoreError::NotFound(table_label(namespace, name)));
        };
        let record = DeletedTableRecord {
            table,
            kind: EntityKind::Table,
            deleted_at: truncate_millis(deleted_at),
            expires_at: truncate_millis(expires_at),
            deleted_by: deleted_by.map(str::to_string),
            purge_requested,
        };
        move_to_deleted(&mut tx, &record).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn soft_drop_view(
        &self,
        warehouse_id: Uuid,
        namespace: &NamespaceName,
        name: &str,
        deleted_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        deleted_by: Option<&str>,
        purge_requested: bool,
    ) -> Result<DeletedTableRecord> {
        let (_writer, mut tx) = self.write_tx().await?;
        let Some(view) = fetch_view(&mut tx, warehouse_id, namespace, name).await? else {
            return Err(StoreError::NotFound(view_label(namespace, name)));
        };
        let record = DeletedTableRecord {
            table: view.into(),
            kind: EntityKind::View,
            deleted_at: truncate_millis(deleted_at),
            expires_at: truncate_millis(expires_at),
            deleted_by: deleted_by.map(str::to_string),
            purge_requested,
        };
        move_to_deleted(&mut tx, &record).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn list_deleted_tables(
        &self,
        warehouse_id: Uuid,
        page: &Page,
    ) -> Result<Vec<DeletedTableRecord>> {
        // Keyset paging on (deleted_at, id), both descending: a backwards range scan of
        // deleted_tables_by_deletion. The row-value comparison keeps it a single range.
        let rows = match page.after.as_deref() {
            None => {
                sqlx::query(concat!(
                    "SELECT ",
                    deleted_columns!(),
                    " FROM deleted_tables WHERE warehouse_id = ? \
                     ORDER BY deleted_at DESC, id DESC LIMIT ?"
                ))
                .bind(warehouse_id.to_string())
                .bind(limit_of(page))
                .fetch_all(&self.pool)
                .await?
            }
            Some(after) => {
                let (at, id) = parse_deleted_page_key(after)?;
                sqlx::query(concat!(
                    "SELECT ",
                    deleted_columns!(),
                    " FROM deleted_tables WHERE warehouse_id = ? AND (deleted_at, id) < (?, ?) \
                     ORDER BY deleted_at DESC, id DESC LIMIT ?"
                ))
                .bind(warehouse_id.to_string())
                .bind(at)
                .bind(id)
                .bind(limit_of(page))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(deleted_table_from_row).collect()
    }

    async fn get_deleted_table(&self, table_id: Uuid) -> Result<Option<DeletedTableRecord>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            deleted_columns!(),
            " FROM deleted_tables WHERE id = ?"
        ))
        .bind(table_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(deleted_table_from_row).transpose()
    }

    async fn undrop_table(&self, table_id: Uuid, new_name: Option<&str>) -> Result<TableRecord> {
        let (_writer, mut tx) = self.write_tx().await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            deleted_columns!(),
            ", lease_until FROM deleted_tables WHERE id = ?"
        ))
        .bind(table_id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::NotFound(format!("deleted table {table_id}")));
        };
        let deleted = deleted_table_from_row(&row)?;
        let old = &deleted.table;
        // A purge worker holds the row and may already be deleting its files.
        let lease_until: Option<i64> = row.try_get("lease_until")?;
        if lease_until.is_some_and(|l| l > millis(now())) {
            return Err(StoreError::NotFound(format!(
                "deleted {} (a purge is in progress)",
                table_label(&old.namespace, &old.name)
            )));
        }
        // By name, not by the stored id: the namespace may have been dropped and recreated.
        let Some(ns) = fetch_namespace(&mut tx, old.warehouse_id, &old.namespace).await? else {
            return Err(StoreError::NotFound(format!("namespace {}", old.namespace)));
        };
        let name = new_name.unwrap_or(&old.name);
        if let Some(holder) = name_holder(&mut tx, &ns.id.to_string(), name).await? {
            return Err(holder.taken(&ns.name, name));
        }
        // No overlap check: the location stayed reserved while the table was deleted, so
        // nothing can have been created over it since (like `apply_update`, which only checks
        // a moved table). The rest of the row comes back exactly as it was dropped.
        let table = TableRecord {
            namespace_id: ns.id,
            namespace: ns.name,
            name: name.to_string(),
            ..deleted.table
        };
        match deleted.kind {
            EntityKind::Table => insert_table(&mut tx, &table, &table.namespace).await?,
            EntityKind::View => {
                insert_view(&mut tx, &table.clone().into(), &table.namespace).await?
            }
        }
        sqlx::query("DELETE FROM deleted_tables WHERE id = ?")
            .bind(table_id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(table)
    }

    async fn claim_expired_deleted_tables(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<DeletedTableRecord>> {
        let (_writer, mut conn) = self.write_conn().await?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        // One statement, so one write transaction: it takes the write lock before reading,
        // and a concurrent claimer's UPDATE runs entirely before or after this one, so it
        // sees these leases and skips the rows.
        let rows = sqlx::query(concat!(
            "UPDATE deleted_tables SET lease_until = ?1 WHERE id IN ( \
               SELECT id FROM deleted_tables \
               WHERE expires_at <= ?2 AND (lease_until IS NULL OR lease_until <= ?2) \
               ORDER BY expires_at, id LIMIT ?3 \
             ) RETURNING ",
            deleted_columns!()
        ))
        .bind(millis(lease_until))
        .bind(millis(now))
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
        let mut claimed = rows
            .iter()
            .map(deleted_table_from_row)
            .collect::<Result<Vec<_>>>()?;
        // RETURNING has no defined order.
        claimed.sort_by_key(|d| (d.expires_at, d.table.id));
        Ok(claimed)
    }

    async fn forget_deleted_table(&self, table_id: Uuid) -> Result<()> {
        self.delete_by_id("deleted_tables", "deleted table", table_id)
            .await
    }

    async fn purge_deleted_table(&self, table_id: Uuid, audit: &AuditRecord) -> Result<()> {
        let (_writer, mut tx) = self.write_tx().await?;
        let done = sqlx::query("DELETE FROM deleted_tables WHERE id = ?")
            .bind(table_id.to_string())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("deleted table {table_id}")));
        }
        sqlx::query(
            "INSERT INTO audit_log (at, actor_id, actor_name, action, target, result, detail) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(millis(audit.at))
        .bind(audit.actor_id.map(|id| id.to_string()))
        .bind(&audit.actor_name)
        .bind(&audit.action)
        .bind(&audit.target)
        .bind(&audit.result)
        .bind(&audit.detail)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn table_containing_location(&self, location: &str) -> Result<Option<TableRecord>> {
        // Equality probes on tables_by_location_any, one per '/'-prefix of the location. The
        // catalog keeps locations from overlapping, so at most one matches; should tables
        // from before that rule overlap, the innermost (longest location) wins.
        let loc = location.trim_end_matches('/');
        let candidates = containing_candidates(loc);
        let sql = format!(
            "{}WHERE rtrim(t.location, '/') IN ({}) \
             ORDER BY length(rtrim(t.location, '/')) DESC, t.id LIMIT 1",
            table_select!(),
            numbered_placeholders(1, candidates.len()),
        );
        let mut q = sqlx::query(&sql);
        for c in &candidates {
            q = q.bind(*c);
        }
        let row = q.fetch_optional(&self.pool).await?;
        row.as_ref().map(table_from_row).transpose()
    }

    // ---- tables ----

    async fn get_table(
        &self,
        warehouse_id: Uuid,
        namespace: &NamespaceName,
        name: &str,
    ) -> Result<Option<TableRecord>> {
        let mut conn = self.pool.acquire().await?;
        fetch_table(&mut conn, warehouse_id, namespace, name).await
    }

    async fn get_table_by_id(&self, table_id: Uuid) -> Result<Option<TableRecord>> {
        let mut conn = self.pool.acquire().await?;
        fetch_table_by_id(&mut conn, table_id).await
    }

    async fn list_tables(
        &self,
        warehouse_id: Uuid,
        namespace: &NamespaceName,
        page: &Page,
    ) -> Result<Vec<TableSummary>> {
        let mut conn = self.pool.acquire().await?;
        let ns_id = namespace_id(&mut conn, warehouse_id, namespace).await?;
        let rows = sqlx::query(
            "SELECT id, name FROM tables WHERE namespace_id = ? AND name > ? \
             ORDER BY name LIMIT ?",
        )
        .bind(ns_id)
        .bind(after_of(page))
        .bind(limit_of(page))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TableSummary {
                    id: get_uuid(r, "id")?,
                    namespace: namespace.clone(),
                    name: r.try_get("name")?,
                })
            })
            .collect()
    }

    async fn drop_table(
        &self,
        warehouse_id: Uuid,
        namespace: &NamespaceName,
        name: &str,
    ) -> Result<TableRecord> {
        let (_writer, mut tx) = self.write_tx().await?;
        let Some(table) = fetch_table(&mut tx, warehouse_id, namespace, name).await? else {
            return Err(StoreError::NotFound(table_label(namespace, name)));
        };
        sqlx::query("DELETE FROM tables WHERE id = ?")
            .bind(table.id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(table)
    }

    async fn rename_table(
        &self,
        warehouse_id: Uuid,
        from_namespace: &NamespaceName,
        from_name: &str,
        to_namespace: &NamespaceName,
        to_name: &str,
    ) -> Result<()> {
        let (_writer, mut tx) = self.write_tx().await?;
        let Some(table) = fetch_table(&mut tx, warehouse_id, from_namespace, from_name).await?
        else {
            return Err(StoreError::NotFound(table_label(from_namespace, from_name)));
        };
        let to_ns_id = namespace_id(&mut tx, warehouse_id, to_namespace).await?;
        // A table with that name is left to the UNIQUE constraint (it may be this table).
        if name_holder(&mut tx, &to_ns_id, to_name).await? == Some(NameHolder::View) {
            return Err(NameHolder::View.taken(to_namespace, to_name));
        }
        sqlx::query("UPDATE tables SET namespace_id = ?, name = ?, updated_at = ? WHERE id = ?")
            .bind(to_ns_id)
            .bind(to_name)
            .bind(millis(now()))
            .bind(table.id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                map_constraint(
                    e,
                    || table_label(to_namespace, to_name),
                    || format!("namespace {to_namespace}"),
                )
            })?;
        tx.commit().await?;
        Ok(())
    }

    async fn commit(&self, ops: &[CommitOp]) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        let (_writer, mut tx) = self.write_tx().await?;
        let applied = apply_ops(&mut tx, ops).await;
        if let Err(e) = applied {
            // Roll back before the writer lock goes: dropping `tx` would only queue the
            // rollback, and the next writer's BEGIN IMMEDIATE would find the write lock still
            // held and sleep in the busy handler. A lost CAS is the common case here.
            if let Err(rb) = tx.rollback().await {
                tracing::warn!(error = %rb, "rollback after a failed commit failed");
            }
            return Err(e);
        }
        tx.commit().await?;
        Ok(())
    }

    async fn location_overlaps(
        &self,
        warehouse_id: Uuid,
        location: &str,
        except_table: Option<Uuid>,
    ) -> Result<Option<String>> {
        let mut conn = self.pool.acquire().await?;
        find_overlap(&mut conn, warehouse_id, location, except_table).await
    }

    // ---- views ----

    async fn create_view(&self, v: &ViewRecord) -> Result<()> {
        let (_writer, mut tx) = self.write_tx().await?;
        let ns_name: Option<String> =
            sqlx::query_scalar("SELECT name FROM namespaces WHERE id = ? AND warehouse_id = ?")
                .bind(v.namespace_id.to_string())
                .bind(v.warehouse_id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        let Some(ns_name) = ns_name else {
            return Err(StoreError::NotFound(format!("namespace {}", v.namespace)));
        };
        let namespace = NamespaceName::from_storage_key(&ns_name);
        if let Some(holder) = name_holder(&mut tx, &v.namespace_id.to_string(), &v.name).await? {
            return Err(holder.taken(&namespace, &v.name));
        }
        // Ids are unique across live and deleted entries, or the deleted one could not come back.
        let id_taken: bool =
            sqlx::query_scalar("SELECT EXISTS(SELECT 1 FROM deleted_tables WHERE id = ?)")
                .bind(v.id.to_string())
                .fetch_one(&mut *tx)
                .await?;
        if id_taken {
            return Err(StoreError::AlreadyExists(format!("view id {}", v.id)));
        }
        insert_view(&mut tx, v, &namespace).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_view(
        &self,
        warehouse_id: Uuid,
        namespace: &NamespaceName,
        name: &str,
    ) -> Result<Option<ViewRecord>> {
        let mut conn = self.pool.acquire().await?;
        fetch_view(&mut conn, warehouse_id, namespace, name).await
    }

    async fn get_view_by_id(&self, view_id: Uuid) -> Result<Option<ViewRecord>> {
        let row = sqlx::query(concat!(view_select!(), "WHERE v.id = ?"))
            .bind(view_id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(view_from_row).transpose()
    }

    async fn list_views(
        &self,
        warehouse_id: Uuid,
        namespace: &NamespaceName,
        page: &Page,
    ) -> Result<Vec<TableSummary>> {
        let mut conn = self.pool.acquire().await?;
        let ns_id = namespace_id(&mut conn, warehouse_id, namespace).await?;
        let rows = sqlx::query(
            "SELECT id, name FROM views WHERE namespace_id = ? AND name > ? ORDER BY name LIMIT ?",
        )
        .bind(ns_id)
        .bind(after_of(page))
        .bind(limit_of(page))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TableSummary {
                    id: get_uuid(r, "id")?,
                    namespace: namespace.clone(),
                    name: r.try_get("name")?,
                })
            })
            .collect()
    }

    async fn update_view(
        &self,
        view_id: Uuid,
        expected_metadata_location: &str,
        new_metadata_location: &str,
        new_metadata_json: &str,
        new_location: &str,
    ) -> Result<()> {
        let (_writer, mut tx) = self.write_tx().await?;
        let row = sqlx::query(concat!(view_select!(), "WHERE v.id = ?"))
            .bind(view_id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(current) = row.as_ref().map(view_from_row).transpose()? else {
            return Err(StoreError::NotFound(format!("view id {view_id}")));
        };
        let label = view_label(&current.namespace, &current.name);
        if current.metadata_location != expected_metadata_location {
            return Err(StoreError::Conflict(format!(
                "{label} has metadata {}, expected {expected_metadata_location}",
                current.metadata_location
            )));
        }
        let done = sqlx::query(
            "UPDATE views SET metadata_location = ?, metadata_json = ?, location = ?, updated_at = ? \
             WHERE id = ? AND metadata_location = ?",
        )
        .bind(new_metadata_location)
        .bind(new_metadata_json)
        .bind(new_location)
        .bind(millis(now()))
        .bind(view_id.to_string())
        .bind(expected_metadata_location)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "{label} changed concurrently"
            )));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn drop_view(
        &self,
        warehouse_id: Uuid,
        namespace: &NamespaceName,
        name: &str,
    ) -> Result<ViewRecord> {
        let (_writer, mut tx) = self.write_tx().await?;
        let Some(view) = fetch_view(&mut tx, warehouse_id, namespace, name).await? else {
            return Err(StoreError::NotFound(view_label(namespace, name)));
        };
        sqlx::query("DELETE FROM views WHERE id = ?")
            .bind(view.id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(view)
    }

    async fn rename_view(
        &self,
        warehouse_id: Uuid,
        from_namespace: &NamespaceName,
        from_name: &str,
        to_namespace: &NamespaceName,
        to_name: &str,
    ) -> Result<()> {
        let (_writer, mut tx) = self.write_tx().await?;
        let Some(view) = fetch_view(&mut tx, warehouse_id, from_namespace, from_name).await? else {
            return Err(StoreError::NotFound(view_label(from_namespace, from_name)));
        };
        let to_ns_id = namespace_id(&mut tx, warehouse_id, to_namespace).await?;
        // A view with that name is left to the UNIQUE constraint (it may be this view).
        if name_holder(&mut tx, &to_ns_id, to_name).await? == Some(NameHolder::Table) {
            return Err(NameHolder::Table.taken(to_namespace, to_name));
        }
        sqlx::query("UPDATE views SET namespace_id = ?, name = ?, updated_at = ? WHERE id = ?")
            .bind(to_ns_id)
            .bind(to_name)
            .bind(millis(now()))
            .bind(view.id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                map_constraint(
                    e,
                    || view_label(to_namespace, to_name),
                    || format!("namespace {to_namespace}"),
                )
            })?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
