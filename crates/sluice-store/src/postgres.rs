//! PostgreSQL implementation of [`CatalogStore`] (the scale-out backend: several server
//! replicas may share one database).
//!
//! Same schema shape and semantics as the SQLite store (see `migrations/postgres`). Writes run
//! in READ COMMITTED transactions; correctness under concurrent replicas comes from:
//! - compare-and-swap commits as a conditional `UPDATE ... WHERE metadata_location = $n`
//!   (under READ COMMITTED the condition is re-checked against the newest row version after
//!   waiting for a concurrent writer, so exactly one of two racing commits wins);
//! - a transaction-level advisory lock per warehouse (`pg_advisory_xact_lock`) around the
//!   location-overlap check and the insert/move it guards;
//! - `SELECT ... FOR UPDATE` on the parent row for "delete if empty" checks (namespace,
//!   warehouse): inserting a child takes `FOR KEY SHARE` on the parent through its foreign
//!   key, which conflicts, so no child can slip in between the check and the delete;
//! - unique and foreign-key constraints (SQLSTATE 23505 / 23503), mapped to AlreadyExists /
//!   NotFound exactly as the SQLite store maps its constraint failures;
//! - `FOR UPDATE SKIP LOCKED` for claiming expired deleted tables across processes;
//! - a fixed lock order in multi-table commits (location locks by warehouse id, then table
//!   rows by id), so two commits touching the same tables in opposite orders cannot deadlock;
//! - retry of whole transactions that fail with a serialization failure or a deadlock
//!   (SQLSTATE 40001 / 40P01), with jittered exponential backoff.
//!
//! Every write that can change an authorization decision, a login, or a warehouse's storage
//! settings also sends `NOTIFY` on [`CHANGE_CHANNEL`] inside its transaction, so the
//! notification goes out exactly when (and only if) the change commits. Each replica
//! `LISTEN`s through [`CatalogStore::subscribe_changes`] and drops what it caches.

use crate::{
    AccessKeyRecord, AuditRecord, CatalogStore, Change, ChangeReceiver, CommitOp,
    DeletedTableRecord, EffectivePolicy, EntityKind, ExternalIdentityRecord, GroupRecord,
    NamespaceRecord, Page, PolicyRecord, Result, StoreError, TableRecord, TableSummary, UserRecord,
    ViewRecord, WarehouseRecord, WarehouseStatus,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sluice_core::NamespaceName;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row};
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, oneshot};
use uuid::Uuid;

/// The `LISTEN`/`NOTIFY` channel of the change feed. Payloads: `identity`, or
/// `warehouse:<uuid>`.
pub const CHANGE_CHANNEL: &str = "sluice_changes";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connection settings for [`PostgresStore::connect_with`].
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Pool size (default 10).
    pub max_connections: u32,
    /// How long to wait for a free pooled connection (default 30 s).
    pub acquire_timeout: Duration,
    /// Server-side `statement_timeout` for every connection; None leaves the server default.
    pub statement_timeout: Option<Duration>,
    /// Run pending migrations on connect (default true). When false, the schema version is
    /// still checked: a database newer than this binary is refused either way.
    pub run_migrations: bool,
    /// How many times a write transaction is tried when PostgreSQL aborts it with a
    /// serialization failure or a deadlock (default 5; 1 = no retry).
    pub retry_attempts: u32,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(30),
            statement_timeout: None,
            run_migrations: true,
            retry_attempts: 5,
        }
    }
}

/// Cheap to clone: clones share one connection pool and one change feed.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    retry_attempts: u32,
    /// Where the change feed's `LISTEN` connection comes from: a pool of its own, so the
    /// feed never takes one of the request pool's connections.
    listen_pool: PgPool,
    feed: Arc<tokio::sync::Mutex<Option<Feed>>>,
}

/// The running change-feed task of one store (shared by its clones).
#[derive(Debug)]
struct Feed {
    tx: broadcast::Sender<Change>,
    task: tokio::task::JoinHandle<()>,
    /// Dropped with the last clone of the store, which stops the task.
    _stop: oneshot::Sender<()>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:pass@host:port/db?...`) with default
    /// [`PgOptions`] and runs pending migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, PgOptions::default()).await
    }

    /// Connects with explicit pool settings; runs pending migrations unless disabled.
    pub async fn connect_with(url: &str, opts: PgOptions) -> Result<Self> {
        let mut options = PgConnectOptions::from_str(url)?.application_name("sluice");
        if let Some(t) = opts.statement_timeout {
            options = options.options([("statement_timeout", format!("{}", t.as_millis()))]);
        }
        // One direct connection first: the pool reports every failure to connect as a
        // timeout, while this says what went wrong (refused, unknown host, password, database).
        let first = tokio::time::timeout(
            opts.acquire_timeout,
            <PgConnection as sqlx::Connection>::connect_with(&options),
        )
        .await
        .map_err(|_| {
            sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "no answer from PostgreSQL within {}s",
                    opts.acquire_timeout.as_secs()
                ),
            ))
        })??;
        let _ = sqlx::Connection::close(first).await;
        let pool = PgPoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            .acquire_timeout(opts.acquire_timeout)
            .connect_with(options)
            .await?;
        if opts.run_migrations {
            run_migrations(&pool).await?;
        } else {
            check_schema_version(&pool).await?;
        }
        Ok(Self::wrap(pool, opts.retry_attempts))
    }

    /// Wraps an existing pool and runs pending migrations (refusing a newer schema).
    pub async fn from_pool(pool: PgPool) -> Result<Self> {
        run_migrations(&pool).await?;
        Ok(Self::wrap(pool, PgOptions::default().retry_attempts))
    }

    fn wrap(pool: PgPool, retry_attempts: u32) -> Self {
        // The feed's connection: same server and credentials, its own name so operators
        // (and tests) can tell it apart in pg_stat_activity. Connected only on subscribe.
        let listen_options = pool
            .connect_options()
            .as_ref()
            .clone()
            .application_name("sluice-listener");
        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(listen_options);
        PostgresStore {
            pool,
            retry_attempts: retry_attempts.max(1),
            listen_pool,
            feed: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

async fn run_migrations(pool: &PgPool) -> Result<()> {
    check_schema_version(pool).await?;
    MIGRATOR.run(pool).await.map_err(|e| match e {
        sqlx::migrate::MigrateError::VersionMissing(v) => schema_too_new(v),
        other => StoreError::Migrate(other),
    })?;
    Ok(())
}

fn binary_schema_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

fn schema_too_new(db_version: i64) -> StoreError {
    StoreError::Corrupt(format!(
        "database schema version {db_version} is newer than this binary supports (up to {}); \
         upgrade sluice (or point it at a database migrated by this version) instead of \
         running an older binary against it",
        binary_schema_version()
    ))
}

/// Refuses a database migrated by a newer binary (an applied migration this binary does
/// not know), before touching anything.
async fn check_schema_version(pool: &PgPool) -> Result<()> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !exists {
        return Ok(());
    }
    let newest: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await?;
    match newest {
        Some(v) if v > binary_schema_version() => Err(schema_too_new(v)),
        _ => Ok(()),
    }
}

/// Serializes location-overlap checks (and the writes they guard) within one warehouse
/// across all replicas, until the transaction ends. Every claim of a table or view name
/// takes it too: tables and views share one name space, which no UNIQUE constraint spans.
async fn lock_warehouse_locations(conn: &mut PgConnection, warehouse_id: Uuid) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!("sluice:locations:{warehouse_id}"))
        .execute(conn)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Change feed (NOTIFY on write, LISTEN per replica)
// ---------------------------------------------------------------------------------------

fn change_payload(c: &Change) -> Option<String> {
    match c {
        Change::Identity => Some("identity".into()),
        Change::Warehouse(id) => Some(format!("warehouse:{id}")),
        // Local to one subscriber; never sent through the database.
        Change::Lost | Change::Resumed => None,
    }
}

fn parse_change(payload: &str) -> Option<Change> {
    match payload.split_once(':') {
        None if payload == "identity" => Some(Change::Identity),
        Some(("warehouse", id)) => Uuid::parse_str(id).ok().map(Change::Warehouse),
        _ => None,
    }
}

/// Queues the notification in the caller's transaction: PostgreSQL delivers it on commit
/// and drops it on rollback, so listeners never hear of a change that did not happen.
async fn notify(conn: &mut PgConnection, change: Change) -> Result<()> {
    if let Some(payload) = change_payload(&change) {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANGE_CHANNEL)
            .bind(payload)
            .execute(conn)
            .await?;
    }
    Ok(())
}

const FEED_BACKOFF_START: Duration = Duration::from_millis(100);
const FEED_BACKOFF_MAX: Duration = Duration::from_secs(30);

async fn listen(pool: &PgPool) -> std::result::Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // Reconnecting is ours to do (with backoff, and telling subscribers), not sqlx's.
    listener.eager_reconnect(false);
    listener.listen(CHANGE_CHANNEL).await?;
    Ok(listener)
}

/// Forwards notifications to the subscribers until the store is dropped. A lost connection
/// (or any error on it) becomes `Change::Lost`; the task then reconnects with exponential
/// backoff and announces `Change::Resumed` once it listens again.
async fn run_feed(
    mut listener: PgListener,
    pool: PgPool,
    tx: broadcast::Sender<Change>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        let received = tokio::select! {
            _ = &mut stop => return,
            r = listener.try_recv() => r,
        };
        match received {
            Ok(Some(n)) => match parse_change(n.payload()) {
                Some(c) => {
                    let _ = tx.send(c);
                }
                None => {
                    // From a newer release, perhaps: whatever it means, dropping every
                    // cached value is always safe.
                    tracing::warn!(
                        payload = n.payload(),
                        "unknown change notification; clearing caches"
                    );
                    let _ = tx.send(Change::Lost);
                    let _ = tx.send(Change::Resumed);
                }
            },
            Ok(None) | Err(_) => {
                match received {
                    Err(e) => {
                        tracing::warn!(error = %e, "change feed failed; clearing caches and reconnecting")
                    }
                    _ => tracing::warn!(
                        "change feed connection lost; clearing caches and reconnecting"
                    ),
                }
                let _ = tx.send(Change::Lost);
                drop(listener);
                let mut backoff = FEED_BACKOFF_START;
                listener = loop {
                    tokio::select! {
                        _ = &mut stop => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    match listen(&pool).await {
                        Ok(l) => break l,
                        Err(e) => {
                            tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "change feed reconnect failed");
                            backoff = (backoff * 2).min(FEED_BACKOFF_MAX);
                        }
                    }
                };
                tracing::info!("change feed reconnected");
                let _ = tx.send(Change::Resumed);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Retry of serialization failures and deadlocks
// ---------------------------------------------------------------------------------------

/// SQLSTATE 40001 (serialization_failure) or 40P01 (deadlock_detected): PostgreSQL rolled
/// the whole transaction back, so running it again from the start is safe.
fn is_retryable(e: &StoreError) -> bool {
    match e {
        StoreError::Database(d) => d
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|c| c == "40001" || c == "40P01"),
        _ => false,
    }
}

/// Backoff before attempt `attempt + 1`: exponential from 10 ms, capped at 1 s, with full
/// jitter in its upper half so replicas that collided once do not collide again in step.
fn retry_backoff(attempt: u32) -> Duration {
    use rand::Rng;
    let cap = Duration::from_millis(10u64.saturating_mul(1 << attempt.min(7)))
        .min(Duration::from_secs(1));
    cap.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
}

impl PostgresStore {
    /// Runs `op` (one whole transaction) up to `retry_attempts` times while it fails with a
    /// retryable error.
    async fn retrying<T, F, Fut>(&self, what: &'static str, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 1;
        loop {
            match op().await {
                Err(e) if attempt < self.retry_attempts && is_retryable(&e) => {
                    let wait = retry_backoff(attempt);
                    tracing::debug!(operation = what, attempt, error = %e, wait_ms = wait.as_millis() as u64, "retrying transaction");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Encoding helpers
// ---------------------------------------------------------------------------------------

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

fn get_uuid(row: &PgRow, column: &str) -> Result<Uuid> {
    let s: String = row.try_get(column)?;
    Uuid::parse_str(&s).map_err(|e| StoreError::Corrupt(format!("{column} {s:?}: {e}")))
}

fn get_opt_uuid(row: &PgRow, column: &str) -> Result<Option<Uuid>> {
    row.try_get::<Option<String>, _>(column)?
        .map(|s| {
            Uuid::parse_str(&s).map_err(|e| StoreError::Corrupt(format!("{column} {s:?}: {e}")))
        })
        .transpose()
}

fn get_time(row: &PgRow, column: &str) -> Result<DateTime<Utc>> {
    from_millis(row.try_get(column)?, column)
}

fn get_opt_time(row: &PgRow, column: &str) -> Result<Option<DateTime<Utc>>> {
    row.try_get::<Option<i64>, _>(column)?
        .map(|v| from_millis(v, column))
        .transpose()
}

fn get_json<T: serde::de::DeserializeOwned>(row: &PgRow, column: &str) -> Result<T> {
    let s: String = row.try_get(column)?;
    serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    // Values and string maps always serialize; the error arm exists only to avoid a panic.
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(format!("serialize: {e}")))
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

fn is_fk_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_foreign_key_violation())
}

/// [`map_constraint`] for an error that already became a [`StoreError`].
fn map_store_constraint(
    e: StoreError,
    duplicate: impl FnOnce() -> String,
    missing: impl FnOnce() -> String,
) -> StoreError {
    match e {
        StoreError::Database(e) => map_constraint(e, duplicate, missing),
        other => other,
    }
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

fn limit_of(page: &Page) -> Option<i64> {
    // PostgreSQL treats `LIMIT NULL` as "no limit".
    page.limit.map(i64::from)
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

/// Which kind of object holds `name` in the namespace, if any. The caller holds the
/// warehouse's location lock, which every name claim takes, so the answer stays true until
/// its transaction ends.
async fn name_holder(
    conn: &mut PgConnection,
    namespace_id: &str,
    name: &str,
) -> Result<Option<NameHolder>> {
    let (table, view): (bool, bool) = sqlx::query_as(
        "SELECT EXISTS(SELECT 1 FROM tables WHERE namespace_id = $1 AND name = $2), \
         EXISTS(SELECT 1 FROM views WHERE namespace_id = $1 AND name = $2)",
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

fn user_from_row(r: &PgRow) -> Result<UserRecord> {
    Ok(UserRecord {
        id: get_uuid(r, "id")?,
        name: r.try_get("name")?,
        email: r.try_get("email")?,
        friendly_name: r.try_get("friendly_name")?,
        source: r.try_get("source")?,
        created_at: get_time(r, "created_at")?,
    })
}

fn access_key_from_row(r: &PgRow) -> Result<AccessKeyRecord> {
    Ok(AccessKeyRecord {
        access_key_id: r.try_get("access_key_id")?,
        user_id: get_uuid(r, "user_id")?,
        secret_ciphertext: r.try_get("secret_ciphertext")?,
        created_at: get_time(r, "created_at")?,
        last_used_at: get_opt_time(r, "last_used_at")?,
    })
}

fn external_identity_from_row(r: &PgRow) -> Result<ExternalIdentityRecord> {
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

fn group_from_row(r: &PgRow) -> Result<GroupRecord> {
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

fn policy_from_row(r: &PgRow) -> Result<PolicyRecord> {
    Ok(PolicyRecord {
        id: get_uuid(r, "id")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        statements_json: r.try_get("statements_json")?,
        builtin: r.try_get("builtin")?,
        created_at: get_time(r, "created_at")?,
        updated_at: get_time(r, "updated_at")?,
    })
}

fn audit_from_row(r: &PgRow) -> Result<AuditRecord> {
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

fn warehouse_from_row(r: &PgRow) -> Result<WarehouseRecord> {
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

fn namespace_from_row(r: &PgRow) -> Result<NamespaceRecord> {
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

fn table_from_row(r: &PgRow) -> Result<TableRecord> {
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

fn deleted_table_from_row(r: &PgRow) -> Result<DeletedTableRecord> {
    let kind: String = r.try_get("kind")?;
    Ok(DeletedTableRecord {
        table: table_from_row(r)?,
        kind: EntityKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("deleted entry kind {kind:?}")))?,
        deleted_at: get_time(r, "deleted_at")?,
        expires_at: get_time(r, "expires_at")?,
        deleted_by: r.try_get("deleted_by")?,
        purge_requested: r.try_get("purge_requested")?,
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
    conn: &mut PgConnection,
    warehouse_id: Uuid,
    name: &NamespaceName,
) -> Result<Option<NamespaceRecord>> {
    fetch_namespace_with(conn, warehouse_id, name, "").await
}

/// Like [`fetch_namespace`], locking the row (`FOR UPDATE`) until the transaction ends.
async fn fetch_namespace_for_update(
    conn: &mut PgConnection,
    warehouse_id: Uuid,
    name: &NamespaceName,
) -> Result<Option<NamespaceRecord>> {
    fetch_namespace_with(conn, warehouse_id, name, " FOR UPDATE").await
}

async fn fetch_namespace_with(
    conn: &mut PgConnection,
    warehouse_id: Uuid,
    name: &NamespaceName,
    lock: &str,
) -> Result<Option<NamespaceRecord>> {
    let sql = format!(
        "SELECT id, warehouse_id, name, properties, created_at, updated_at \
         FROM namespaces WHERE warehouse_id = $1 AND name = $2{lock}"
    );
    let row = sqlx::query(&sql)
        .bind(warehouse_id.to_string())
        .bind(name.storage_key())
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(namespace_from_row).transpose()
}

/// Id of the namespace, or NotFound.
async fn namespace_id(
    conn: &mut PgConnection,
    warehouse_id: Uuid,
    name: &NamespaceName,
) -> Result<String> {
    sqlx::query_scalar("SELECT id FROM namespaces WHERE warehouse_id = $1 AND name = $2")
        .bind(warehouse_id.to_string())
        .bind(name.storage_key())
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("namespace {name}")))
}

async fn fetch_table(
    conn: &mut PgConnection,
    warehouse_id: Uuid,
    namespace: &NamespaceName,
    name: &str,
) -> Result<Option<TableRecord>> {
    fetch_table_with(conn, warehouse_id, namespace, name, "").await
}

/// Like [`fetch_table`], locking the table row (not its namespace) until the transaction
/// ends, so concurrent drops/renames of the same table serialize (the loser finds nothing).
async fn fetch_table_for_update(
    conn: &mut PgConnection,
    warehouse_id: Uuid,
    namespace: &NamespaceName,
    name: &str,
) -> Result<Option<TableRecord>> {
    fetch_table_with(conn, warehouse_id, namespace, name, " FOR UPDATE OF t").await
}

async fn fetch_table_with(
    conn: &mut PgConnection,
    warehouse_id: Uuid,
    namespace: &NamespaceName,
    name: &str,
    lock: &str,
) -> Result<Option<TableRecord>> {
    let sql = format!(
        "{}WHERE n.warehouse_id = $1 AND n.name = $2 AND t.name = $3{lock}",
        table_select!()
    );
    let row = sqlx::query(&sql)
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

fn view_from_row(r: &PgRow) -> Result<ViewRecord> {
    table_from_row(r).map(Into::into)
}

/// Inserts the view row; the caller has checked the namespace and the name.
async fn insert_view(
    conn: &mut PgConnection,
    v: &ViewRecord,
    namespace: &NamespaceName,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO views (id, warehouse_id, namespace_id, name, location, metadata_location, \
         metadata_json, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
/// caller's transaction (which holds the live row locked).
async fn move_to_deleted(conn: &mut PgConnection, record: &DeletedTableRecord) -> Result<()> {
    let t = &record.table;
    sqlx::query(
        "INSERT INTO deleted_tables (id, warehouse_id, namespace_id, namespace_name, name, \
         location, metadata_location, metadata_json, created_at, updated_at, deleted_at, \
         expires_at, deleted_by, purge_requested, lease_until, kind) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, NULL, $15)",
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
    .bind(record.purge_requested)
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
        EntityKind::Table => "DELETE FROM tables WHERE id = $1",
        EntityKind::View => "DELETE FROM views WHERE id = $1",
    };
    sqlx::query(live)
        .bind(t.id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// The view, optionally row-locked (`lock` = `" FOR UPDATE OF v"`) until the transaction ends.
async fn fetch_view_with(
    conn: &mut PgConnection,
    warehouse_id: Uuid,
    namespace: &NamespaceName,
    name: &str,
    lock: &str,
) -> Result<Option<ViewRecord>> {
    let sql = format!(
        "{}WHERE n.warehouse_id = $1 AND n.name = $2 AND v.name = $3{lock}",
        view_select!()
    );
    let row = sqlx::query(&sql)
        .bind(warehouse_id.to_string())
        .bind(namespace.storage_key())
        .bind(name)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(view_from_row).transpose()
}

async fn fetch_table_by_id(conn: &mut PgConnection, table_id: Uuid) -> Result<Option<TableRecord>> {
    let row = sqlx::query(concat!(table_select!(), "WHERE t.id = $1"))
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
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The overlap rule, phrased so every branch is an index probe on
/// `tables_by_location` / `deleted_tables_by_location` (warehouse_id, rtrim(location, '/')):
/// - a stored location L equals or contains `loc` iff L is `loc` or one of its '/'-boundary
///   prefixes, so we enumerate those and look them up with IN;
/// - L lies inside `loc` iff L starts with `loc/`, i.e. `loc/` <= L < `loc0` ('0' is the
///   byte after '/'; every text column uses the "C" collation, so comparison is bytewise).
///
/// Deleted tables (not yet forgotten) count as well: their files are still there.
async fn find_overlap(
    conn: &mut PgConnection,
    warehouse_id: Uuid,
    location: &str,
    except_table: Option<Uuid>,
) -> Result<Option<String>> {
    let loc = location.trim_end_matches('/');
    let candidates = containing_candidates(loc);

    // Index probes joined with UNION ALL: written as one WHERE with OR, a planner may fall back to
    // scanning every table of the warehouse. ?1 warehouse, ?2/?3 the range, ?4 the excepted
    // table, ?5... the candidates.
    let in_list = numbered_placeholders(5, candidates.len());
    let sql = format!(
        "SELECT kind, ns_name, name, location FROM ( \
           SELECT 'table' AS kind, n.name AS ns_name, o.name AS name, o.location AS location \
           FROM ( \
             SELECT id, namespace_id, name, location FROM tables \
             WHERE warehouse_id = $1 AND rtrim(location, '/') IN ({in_list}) \
             UNION ALL \
             SELECT id, namespace_id, name, location FROM tables \
             WHERE warehouse_id = $1 AND rtrim(location, '/') >= $2 \
               AND rtrim(location, '/') < $3 \
           ) o JOIN namespaces n ON n.id = o.namespace_id \
           WHERE o.id IS DISTINCT FROM $4 \
           UNION ALL \
           SELECT 'deleted table', namespace_name, name, location FROM deleted_tables \
           WHERE warehouse_id = $1 AND rtrim(location, '/') IN ({in_list}) AND id IS DISTINCT FROM $4 \
           UNION ALL \
           SELECT 'deleted table', namespace_name, name, location FROM deleted_tables \
           WHERE warehouse_id = $1 AND rtrim(location, '/') >= $2 \
             AND rtrim(location, '/') < $3 AND id IS DISTINCT FROM $4 \
         ) AS hits LIMIT 1"
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

async fn apply_create(conn: &mut PgConnection, t: &TableRecord) -> Result<()> {
    lock_warehouse_locations(&mut *conn, t.warehouse_id).await?;
    let ns_name: Option<String> =
        sqlx::query_scalar("SELECT name FROM namespaces WHERE id = $1 AND warehouse_id = $2")
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
        sqlx::query_scalar("SELECT EXISTS(SELECT 1 FROM deleted_tables WHERE id = $1)")
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
    conn: &mut PgConnection,
    t: &TableRecord,
    namespace: &NamespaceName,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO tables (id, warehouse_id, namespace_id, name, location, metadata_location, \
         metadata_json, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
    conn: &mut PgConnection,
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
        lock_warehouse_locations(&mut *conn, current.warehouse_id).await?;
        if let Some(other) =
            find_overlap(conn, current.warehouse_id, new_location, Some(table_id)).await?
        {
            return Err(StoreError::LocationOverlap(other));
        }
    }
    // The CAS itself: under READ COMMITTED a concurrent commit of the same row makes this
    // UPDATE wait, then re-check the condition against the new version and match nothing.
    // (The read above only gives the friendlier error message.)
    let done = sqlx::query(
        "UPDATE tables SET metadata_location = $1, metadata_json = $2, location = $3, updated_at = $4 \
         WHERE id = $5 AND metadata_location = $6",
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

/// Takes every lock a commit will need, in one global order, before applying any op:
/// first the location locks of the warehouses where a table is created or moved (by
/// warehouse id), then the rows of the updated tables (by table id). Two multi-table
/// commits over the same tables, listed in any order, thus wait for each other instead of
/// deadlocking. The ops re-take only locks already held (advisory locks are re-entrant).
///
/// Returns false if a table's location changed between planning and locking (a move
/// committed concurrently), so that the plan may be missing a warehouse lock: the caller
/// rolls back and plans again.
async fn lock_commit_targets(conn: &mut PgConnection, ops: &[CommitOp]) -> Result<bool> {
    let updated: BTreeSet<String> = ops
        .iter()
        .filter_map(|op| match op {
            CommitOp::Update { table_id, .. } => Some(table_id.to_string()),
            CommitOp::Create(_) => None,
        })
        .collect();
    let updated: Vec<String> = updated.into_iter().collect();
    // Where each updated table is now (unlocked read; only used to plan).
    let planned = table_locations(&mut *conn, &updated, false).await?;
    let mut warehouses = BTreeSet::new();
    for op in ops {
        match op {
            CommitOp::Create(t) => {
                warehouses.insert(t.warehouse_id);
            }
            CommitOp::Update {
                table_id,
                new_location,
                ..
            } => {
                if let Some((wh, loc)) = planned.get(table_id) {
                    if loc != new_location {
                        warehouses.insert(*wh);
                    }
                }
            }
        }
    }
    for wh in &warehouses {
        lock_warehouse_locations(&mut *conn, *wh).await?;
    }
    let locked = table_locations(&mut *conn, &updated, true).await?;
    for op in ops {
        if let CommitOp::Update {
            table_id,
            new_location,
            ..
        } = op
        {
            if let Some((wh, loc)) = locked.get(table_id) {
                if loc != new_location && !warehouses.contains(wh) {
                    return Ok(false);
                }
            }
        }
    }
    Ok(true)
}

/// (warehouse, location) of each of the tables `ids` (sorted, distinct) that exists;
/// with `lock`, row-locks them in id order.
async fn table_locations(
    conn: &mut PgConnection,
    ids: &[String],
    lock: bool,
) -> Result<HashMap<Uuid, (Uuid, String)>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    // LockRows runs above the sort, so rows are locked in id order.
    let sql = if lock {
        "SELECT id, warehouse_id, location FROM tables WHERE id = ANY($1) ORDER BY id FOR UPDATE"
    } else {
        "SELECT id, warehouse_id, location FROM tables WHERE id = ANY($1)"
    };
    let rows = sqlx::query(sql).bind(ids).fetch_all(conn).await?;
    rows.iter()
        .map(|r| {
            Ok((
                get_uuid(r, "id")?,
                (get_uuid(r, "warehouse_id")?, r.try_get("location")?),
            ))
        })
        .collect()
}

async fn insert_user<'c>(
    conn: impl sqlx::Executor<'c, Database = Postgres>,
    user: &UserRecord,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO users (id, name, email, friendly_name, source, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
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
    conn: impl sqlx::Executor<'c, Database = Postgres>,
    rec: &ExternalIdentityRecord,
    user_id: Uuid,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO external_identities (source, subject, user_id, created_at) \
         VALUES ($1, $2, $3, $4)",
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

impl PostgresStore {
    /// Idempotently inserts the link row (`a`, `b`) into `link_table`. Both ends are checked
    /// first, so the NotFound names the missing end (a foreign-key
    /// failure would not say which end it was; INSERT OR IGNORE does not ignore those).
    async fn link(
        &self,
        link_table: &'static str,
        columns: (&'static str, &'static str),
        a: LinkEnd,
        b: LinkEnd,
    ) -> Result<()> {
        self.retrying("link", || self.link_once(link_table, columns, &a, &b))
            .await
    }

    async fn link_once(
        &self,
        link_table: &'static str,
        columns: (&'static str, &'static str),
        a: &LinkEnd,
        b: &LinkEnd,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for end in [a, b] {
            let exists: bool = sqlx::query_scalar(&format!(
                "SELECT EXISTS(SELECT 1 FROM {} WHERE id = $1)",
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
            "INSERT INTO {link_table} ({}, {}) VALUES ($1, $2) ON CONFLICT DO NOTHING",
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
        notify(&mut tx, Change::Identity).await?;
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
        let deleted = self
            .retrying("unlink", || async move {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(&format!(
                    "DELETE FROM {link_table} WHERE {} = $1 AND {} = $2",
                    columns.0, columns.1
                ))
                .bind(a.to_string())
                .bind(b.to_string())
                .execute(&mut *tx)
                .await?;
                notify(&mut tx, Change::Identity).await?;
                tx.commit().await?;
                Ok(done.rows_affected())
            })
            .await?;
        if deleted == 0 {
            return Err(StoreError::NotFound(missing()));
        }
        Ok(())
    }

    /// Deletes the row `id` of `table`; its dependents go with it through ON DELETE CASCADE,
    /// in the same transaction, which also announces `change` (if any).
    async fn delete_by_id(
        &self,
        table: &'static str,
        label: &'static str,
        id: Uuid,
        change: Option<Change>,
    ) -> Result<()> {
        let deleted = self
            .retrying("delete", || {
                let change = change.clone();
                async move {
                    let mut tx = self.pool.begin().await?;
                    let done = sqlx::query(&format!("DELETE FROM {table} WHERE id = $1"))
                        .bind(id.to_string())
                        .execute(&mut *tx)
                        .await?;
                    if let Some(c) = change {
                        notify(&mut tx, c).await?;
                    }
                    tx.commit().await?;
                    Ok(done.rows_affected())
                }
            })
            .await?;
        if deleted == 0 {
            return Err(StoreError::NotFound(format!("{label} {id}")));
        }
        Ok(())
    }

    /// Runs one statement in a transaction that also announces `change`.
    async fn write_notifying<'q>(
        &self,
        what: &'static str,
        change: Change,
        query: impl Fn() -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    ) -> std::result::Result<u64, StoreError> {
        self.retrying(what, || {
            let change = change.clone();
            let q = query();
            async move {
                let mut tx = self.pool.begin().await?;
                let done = q.execute(&mut *tx).await?;
                notify(&mut tx, change).await?;
                tx.commit().await?;
                Ok(done.rows_affected())
            }
        })
        .await
    }
}

impl PostgresStore {
    async fn create_user_with_identity_once(
        &self,
        user: &UserRecord,
        identity: &ExternalIdentityRecord,
        group_ids: &[Uuid],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_user(&mut *tx, user).await?;
        // The identity is linked to the user created here, whatever `identity.user_id` says.
        insert_external_identity(&mut *tx, identity, user.id).await?;
        for group_id in group_ids {
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS(SELECT 1 FROM groups WHERE id = $1)")
                    .bind(group_id.to_string())
                    .fetch_one(&mut *tx)
                    .await?;
            if !exists {
                return Err(StoreError::NotFound(format!("group {group_id}")));
            }
            // OR IGNORE: a group listed twice is one membership.
            sqlx::query("INSERT INTO group_members (group_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
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
        notify(&mut tx, Change::Identity).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl CatalogStore for PostgresStore {
    async fn subscribe_changes(&self) -> Result<Option<ChangeReceiver>> {
        let mut feed = self.feed.lock().await;
        if let Some(f) = feed.as_ref() {
            if !f.task.is_finished() {
                return Ok(Some(f.tx.subscribe()));
            }
        }
        // LISTEN before returning, so the subscriber hears every change committed after
        // this call; a database that cannot be listened to is an error now, not a silent
        // cache that never clears.
        let listener = listen(&self.listen_pool).await?;
        let (tx, rx) = broadcast::channel(1024);
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(run_feed(
            listener,
            self.listen_pool.clone(),
            tx.clone(),
            stop_rx,
        ));
        *feed = Some(Feed {
            tx,
            task,
            _stop: stop_tx,
        });
        Ok(Some(rx))
    }

    // ---- settings ----

    async fn get_setting(&self, key: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ---- users and access keys ----

    async fn create_user(&self, user: &UserRecord) -> Result<()> {
        self.retrying("create_user", || async move {
            let mut tx = self.pool.begin().await?;
            insert_user(&mut *tx, user).await?;
            notify(&mut tx, Change::Identity).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn get_user(&self, id: Uuid) -> Result<Option<UserRecord>> {
        let row = sqlx::query("SELECT * FROM users WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn get_user_by_name(&self, name: &str) -> Result<Option<UserRecord>> {
        let row = sqlx::query("SELECT * FROM users WHERE name = $1")
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
        self.write_notifying("create_access_key", Change::Identity, || {
            sqlx::query(
                "INSERT INTO access_keys (access_key_id, user_id, secret_ciphertext, created_at, \
                 last_used_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&key.access_key_id)
            .bind(key.user_id.to_string())
            .bind(&key.secret_ciphertext)
            .bind(millis(key.created_at))
            .bind(key.last_used_at.map(millis))
        })
        .await
        .map_err(|e| {
            map_store_constraint(
                e,
                || format!("access key {}", key.access_key_id),
                || format!("user {}", key.user_id),
            )
        })?;
        Ok(())
    }

    async fn get_access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRecord>> {
        let row = sqlx::query("SELECT * FROM access_keys WHERE access_key_id = $1")
            .bind(access_key_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(access_key_from_row).transpose()
    }

    async fn list_access_keys(&self, user_id: Uuid) -> Result<Vec<AccessKeyRecord>> {
        sqlx::query(
            "SELECT * FROM access_keys WHERE user_id = $1 ORDER BY created_at, access_key_id",
        )
        .bind(user_id.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(access_key_from_row)
        .collect()
    }

    async fn touch_access_key(&self, access_key_id: &str, at: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE access_keys SET last_used_at = $1 WHERE access_key_id = $2")
            .bind(millis(at))
            .bind(access_key_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_access_key(&self, access_key_id: &str) -> Result<()> {
        let done = self
            .write_notifying("delete_access_key", Change::Identity, || {
                sqlx::query("DELETE FROM access_keys WHERE access_key_id = $1").bind(access_key_id)
            })
            .await?;
        if done == 0 {
            return Err(StoreError::NotFound(format!("access key {access_key_id}")));
        }
        Ok(())
    }

    // ---- users (beyond creation) ----

    async fn update_user(&self, user: &UserRecord) -> Result<()> {
        let done = self
            .write_notifying("update_user", Change::Identity, || {
                sqlx::query(
                    "UPDATE users SET email = $1, friendly_name = $2, source = $3 WHERE id = $4",
                )
                .bind(&user.email)
                .bind(&user.friendly_name)
                .bind(&user.source)
                .bind(user.id.to_string())
            })
            .await?;
        if done == 0 {
            return Err(StoreError::NotFound(format!("user {}", user.id)));
        }
        Ok(())
    }

    async fn delete_user(&self, id: Uuid) -> Result<()> {
        // Cascades to access_keys, group_members, user_policies and external_identities.
        self.delete_by_id("users", "user", id, Some(Change::Identity))
            .await
    }

    // ---- external identities ----

    async fn get_external_identity(
        &self,
        source: &str,
        subject: &str,
    ) -> Result<Option<ExternalIdentityRecord>> {
        let row = sqlx::query(
            "SELECT source, subject, user_id, created_at FROM external_identities \
             WHERE source = $1 AND subject = $2",
        )
        .bind(source)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(external_identity_from_row).transpose()
    }

    async fn create_external_identity(&self, rec: &ExternalIdentityRecord) -> Result<()> {
        // One statement: the foreign key checks the user.
        self.retrying("create_external_identity", || async move {
            let mut tx = self.pool.begin().await?;
            insert_external_identity(&mut *tx, rec, rec.user_id).await?;
            notify(&mut tx, Change::Identity).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn list_external_identities(&self, user_id: Uuid) -> Result<Vec<ExternalIdentityRecord>> {
        sqlx::query(
            "SELECT source, subject, user_id, created_at FROM external_identities \
             WHERE user_id = $1 ORDER BY source, subject",
        )
        .bind(user_id.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(external_identity_from_row)
        .collect()
    }

    async fn delete_external_identity(&self, source: &str, subject: &str) -> Result<()> {
        let done = self
            .write_notifying("delete_external_identity", Change::Identity, || {
                sqlx::query("DELETE FROM external_identities WHERE source = $1 AND subject = $2")
                    .bind(source)
                    .bind(subject)
            })
            .await?;
        if done == 0 {
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
        // Racing first logins: the loser's
        // identity insert hits the primary key and the dropped transaction rolls back its
        // user row too.
        self.retrying("create_user_with_identity", || {
            self.create_user_with_identity_once(user, identity, group_ids)
        })
        .await
    }

    // ---- groups ----

    async fn create_group(&self, group: &GroupRecord) -> Result<()> {
        self.write_notifying("create_group", Change::Identity, || {
            sqlx::query(
                "INSERT INTO groups (id, name, description, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(group.id.to_string())
            .bind(&group.name)
            .bind(&group.description)
            .bind(millis(group.created_at))
        })
        .await
        .map_err(|e| {
            map_store_constraint(
                e,
                || format!("group {}", group.name),
                || format!("group {}", group.name),
            )
        })?;
        Ok(())
    }

    async fn get_group_by_name(&self, name: &str) -> Result<Option<GroupRecord>> {
        let row =
            sqlx::query("SELECT id, name, description, created_at FROM groups WHERE name = $1")
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
        self.delete_by_id("groups", "group", id, Some(Change::Identity))
            .await
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
             WHERE m.group_id = $1 ORDER BY u.name",
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
             WHERE m.user_id = $1 ORDER BY g.name",
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
        self.write_notifying("create_policy", Change::Identity, || {
            sqlx::query(
                "INSERT INTO policies (id, name, description, statements_json, builtin, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(policy.id.to_string())
            .bind(&policy.name)
            .bind(&policy.description)
            .bind(&policy.statements_json)
            .bind(policy.builtin)
            .bind(millis(policy.created_at))
            .bind(millis(policy.updated_at))
        })
        .await
        .map_err(|e| {
            map_store_constraint(
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
            " FROM policies p WHERE p.name = $1"
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
        let done = self
            .write_notifying("update_policy", Change::Identity, || {
                sqlx::query(
                    "UPDATE policies SET description = $1, statements_json = $2, updated_at = $3 \
                     WHERE id = $4",
                )
                .bind(&policy.description)
                .bind(&policy.statements_json)
                .bind(millis(policy.updated_at))
                .bind(policy.id.to_string())
            })
            .await?;
        if done == 0 {
            return Err(StoreError::NotFound(format!("policy {}", policy.id)));
        }
        Ok(())
    }

    async fn delete_policy(&self, id: Uuid) -> Result<()> {
        // Cascades to user_policies and group_policies.
        self.delete_by_id("policies", "policy", id, Some(Change::Identity))
            .await
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
             WHERE a.user_id = $1 ORDER BY p.name"
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
             WHERE a.group_id = $1 ORDER BY p.name"
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
             WHERE up.user_id = $1 \
             UNION ALL \
             SELECT ",
            policy_columns!(),
            ", g.name AS via_group \
             FROM group_members m \
             JOIN groups g ON g.id = m.group_id \
             JOIN group_policies gp ON gp.group_id = m.group_id \
             JOIN policies p ON p.id = gp.policy_id \
             WHERE m.user_id = $1 \
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
        Ok(sqlx::query_scalar(
            "INSERT INTO audit_log (at, actor_id, actor_name, action, target, result, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(millis(record.at))
        .bind(record.actor_id.map(|id| id.to_string()))
        .bind(&record.actor_name)
        .bind(&record.action)
        .bind(&record.target)
        .bind(&record.result)
        .bind(&record.detail)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn list_audit(&self, before: Option<i64>, limit: u32) -> Result<Vec<AuditRecord>> {
        // Like `after_of`: a sentinel instead of `? IS NULL OR`, so the query stays a plain
        // backwards range scan of the rowid b-tree.
        sqlx::query(
            "SELECT id, at, actor_id, actor_name, action, target, result, detail \
             FROM audit_log WHERE id < $1 ORDER BY id DESC LIMIT $2",
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
        let (profile, delete_profile) = (to_json(&w.storage_profile)?, to_json(&w.delete_profile)?);
        self.write_notifying("create_warehouse", Change::Warehouse(w.id), || {
            sqlx::query(
                "INSERT INTO warehouses (id, name, storage_profile, storage_credential, \
                 delete_profile, status, location, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(w.id.to_string())
            .bind(&w.name)
            .bind(&profile)
            .bind(&w.storage_credential)
            .bind(&delete_profile)
            .bind(w.status.as_str())
            .bind(&w.location)
            .bind(millis(w.created_at))
            .bind(millis(w.updated_at))
        })
        .await
        .map_err(|e| {
            map_store_constraint(
                e,
                || format!("warehouse {}", w.name),
                || format!("warehouse {}", w.name),
            )
        })?;
        Ok(())
    }

    async fn get_warehouse(&self, id: Uuid) -> Result<Option<WarehouseRecord>> {
        let row = sqlx::query("SELECT * FROM warehouses WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(warehouse_from_row).transpose()
    }

    async fn get_warehouse_by_name(&self, name: &str) -> Result<Option<WarehouseRecord>> {
        let row = sqlx::query("SELECT * FROM warehouses WHERE name = $1")
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
        let (profile, delete_profile) = (to_json(&w.storage_profile)?, to_json(&w.delete_profile)?);
        let done = self
            .write_notifying("update_warehouse", Change::Warehouse(w.id), || {
                sqlx::query(
                    "UPDATE warehouses SET name = $1, storage_profile = $2, storage_credential = $3, \
                     delete_profile = $4, status = $5, location = $6, updated_at = $7 WHERE id = $8",
                )
                .bind(&w.name)
                .bind(&profile)
                .bind(&w.storage_credential)
                .bind(&delete_profile)
                .bind(w.status.as_str())
                .bind(&w.location)
                .bind(millis(w.updated_at))
                .bind(w.id.to_string())
            })
            .await
            .map_err(|e| {
                map_store_constraint(
                    e,
                    || format!("warehouse {}", w.name),
                    || format!("warehouse {}", w.id),
                )
            })?;
        if done == 0 {
            return Err(StoreError::NotFound(format!("warehouse {}", w.id)));
        }
        Ok(())
    }

    async fn delete_warehouse(&self, id: Uuid) -> Result<()> {
        self.retrying("delete_warehouse", move || async move {
            let mut tx = self.pool.begin().await?;
            let name: Option<String> = // FOR UPDATE: conflicts with the FOR KEY SHARE lock that inserting a namespace or a
        // deleted table takes through its foreign key.
        sqlx::query_scalar("SELECT name FROM warehouses WHERE id = $1 FOR UPDATE")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
            let Some(name) = name else {
                return Err(StoreError::NotFound(format!("warehouse {id}")));
            };
            // Deleted tables count: their files still live under the warehouse until purged.
            let busy: bool = sqlx::query_scalar(
                "SELECT EXISTS(SELECT 1 FROM namespaces WHERE warehouse_id = $1) \
             OR EXISTS(SELECT 1 FROM deleted_tables WHERE warehouse_id = $1)",
            )
            .bind(id.to_string())
            .fetch_one(&mut *tx)
            .await?;
            if busy {
                return Err(StoreError::NotEmpty(format!("warehouse {name}")));
            }
            sqlx::query("DELETE FROM warehouses WHERE id = $1")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            notify(&mut tx, Change::Warehouse(id)).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    // ---- namespaces ----

    async fn create_namespace(&self, ns: &NamespaceRecord) -> Result<()> {
        self.retrying("create_namespace", move || async move {
            let mut tx = self.pool.begin().await?;
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
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
        })
        .await
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
                     FROM namespaces WHERE warehouse_id = $1 AND parent_id IS NULL AND name > $2 \
                     ORDER BY name LIMIT $3",
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
                     FROM namespaces WHERE parent_id = $1 AND name > $2 ORDER BY name LIMIT $3",
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
        self.retrying("update_namespace_properties", move || async move {
            let mut tx = self.pool.begin().await?;
            let Some(mut ns) = fetch_namespace_for_update(&mut tx, warehouse_id, name).await?
            else {
                return Err(StoreError::NotFound(format!("namespace {name}")));
            };
            for k in removals {
                ns.properties.remove(k);
            }
            ns.properties
                .extend(updates.iter().map(|(k, v)| (k.clone(), v.clone())));
            ns.updated_at = now();
            sqlx::query("UPDATE namespaces SET properties = $1, updated_at = $2 WHERE id = $3")
                .bind(to_json(&ns.properties)?)
                .bind(millis(ns.updated_at))
                .bind(ns.id.to_string())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(ns)
        })
        .await
    }

    async fn drop_namespace(&self, warehouse_id: Uuid, name: &NamespaceName) -> Result<()> {
        self.retrying("drop_namespace", move || async move {
            let mut tx = self.pool.begin().await?;
            // The row lock conflicts with the FOR KEY SHARE lock a child insert takes through its
            // foreign key, so no child namespace or table can appear between check and delete.
            let Some(ns) = fetch_namespace_for_update(&mut tx, warehouse_id, name).await? else {
                return Err(StoreError::NotFound(format!("namespace {name}")));
            };
            let id = ns.id.to_string();
            let busy: bool = sqlx::query_scalar(
                "SELECT EXISTS(SELECT 1 FROM namespaces WHERE parent_id = $1) \
             OR EXISTS(SELECT 1 FROM tables WHERE namespace_id = $1) \
             OR EXISTS(SELECT 1 FROM views WHERE namespace_id = $1)",
            )
            .bind(&id)
            .fetch_one(&mut *tx)
            .await?;
            if busy {
                return Err(StoreError::NotEmpty(format!("namespace {name}")));
            }
            sqlx::query("DELETE FROM namespaces WHERE id = $1")
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
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
        self.retrying("soft_drop_table", move || async move {
            let mut tx = self.pool.begin().await?;
            let Some(table) =
                fetch_table_for_update(&mut tx, warehouse_id, namespace, name).await?
            else {
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
        })
        .await
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
        self.retrying("soft_drop_view", move || async move {
            let mut tx = self.pool.begin().await?;
            let Some(view) =
                fetch_view_with(&mut tx, warehouse_id, namespace, name, " FOR UPDATE OF v").await?
            else {
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
        })
        .await
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
                    " FROM deleted_tables WHERE warehouse_id = $1 \
                     ORDER BY deleted_at DESC, id DESC LIMIT $2"
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
                    " FROM deleted_tables WHERE warehouse_id = $1 AND (deleted_at, id) < ($2, $3) \
                     ORDER BY deleted_at DESC, id DESC LIMIT $4"
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
            " FROM deleted_tables WHERE id = $1"
        ))
        .bind(table_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(deleted_table_from_row).transpose()
    }

    async fn undrop_table(&self, table_id: Uuid, new_name: Option<&str>) -> Result<TableRecord> {
        self.retrying("undrop_table", move || async move {
            let mut tx = self.pool.begin().await?;
            let row = sqlx::query(concat!(
                "SELECT ",
                deleted_columns!(),
                ", lease_until FROM deleted_tables WHERE id = $1 FOR UPDATE"
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
            lock_warehouse_locations(&mut tx, old.warehouse_id).await?;
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
            sqlx::query("DELETE FROM deleted_tables WHERE id = $1")
                .bind(table_id.to_string())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(table)
        })
        .await
    }

    async fn claim_expired_deleted_tables(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<DeletedTableRecord>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // One statement. Rows another claimer holds (row-locked by its in-flight UPDATE) are
        // skipped rather than waited for; rows it claimed and committed meanwhile are
        // re-checked against their new version by FOR UPDATE and fail the lease condition.
        // So concurrent claimers, in any process, never receive the same row.
        let rows = sqlx::query(concat!(
            "UPDATE deleted_tables SET lease_until = $1 WHERE id IN ( \
               SELECT id FROM deleted_tables \
               WHERE expires_at <= $2 AND (lease_until IS NULL OR lease_until <= $2) \
               ORDER BY expires_at, id LIMIT $3 \
               FOR UPDATE SKIP LOCKED \
             ) RETURNING ",
            deleted_columns!()
        ))
        .bind(millis(lease_until))
        .bind(millis(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
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
        self.delete_by_id("deleted_tables", "deleted table", table_id, None)
            .await
    }

    async fn purge_deleted_table(&self, table_id: Uuid, audit: &AuditRecord) -> Result<()> {
        let deleted = self
            .retrying("purge_deleted_table", move || async move {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query("DELETE FROM deleted_tables WHERE id = $1")
                    .bind(table_id.to_string())
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                sqlx::query(
                    "INSERT INTO audit_log (at, actor_id, actor_name, action, target, result, detail) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
                Ok(true)
            })
            .await?;
        if !deleted {
            return Err(StoreError::NotFound(format!("deleted table {table_id}")));
        }
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
            "SELECT id, name FROM tables WHERE namespace_id = $1 AND name > $2 \
             ORDER BY name LIMIT $3",
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
        self.retrying("drop_table", move || async move {
            let mut tx = self.pool.begin().await?;
            let Some(table) =
                fetch_table_for_update(&mut tx, warehouse_id, namespace, name).await?
            else {
                return Err(StoreError::NotFound(table_label(namespace, name)));
            };
            sqlx::query("DELETE FROM tables WHERE id = $1")
                .bind(table.id.to_string())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(table)
        })
        .await
    }

    async fn rename_table(
        &self,
        warehouse_id: Uuid,
        from_namespace: &NamespaceName,
        from_name: &str,
        to_namespace: &NamespaceName,
        to_name: &str,
    ) -> Result<()> {
        self.retrying("rename_table", move || async move {
            let mut tx = self.pool.begin().await?;
            // The name lock before the row lock: the order a commit that moves a table takes them.
            lock_warehouse_locations(&mut tx, warehouse_id).await?;
            let Some(table) =
                fetch_table_for_update(&mut tx, warehouse_id, from_namespace, from_name).await?
            else {
                return Err(StoreError::NotFound(table_label(from_namespace, from_name)));
            };
            let to_ns_id = namespace_id(&mut tx, warehouse_id, to_namespace).await?;
            // A table with that name is left to the UNIQUE constraint (it may be this table).
            if name_holder(&mut tx, &to_ns_id, to_name).await? == Some(NameHolder::View) {
                return Err(NameHolder::View.taken(to_namespace, to_name));
            }
            sqlx::query(
                "UPDATE tables SET namespace_id = $1, name = $2, updated_at = $3 WHERE id = $4",
            )
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
        })
        .await
    }

    async fn commit(&self, ops: &[CommitOp]) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        self.retrying("commit", move || async move {
            // A concurrent move of a table can (rarely) invalidate the lock plan between
            // planning and locking; then plan again. Bounded, and each round means another
            // commit to one of our tables won, so the CAS is about to fail anyway.
            for _ in 0..10 {
                let mut tx = self.pool.begin().await?;
                // One op takes its locks in the same order on its own (location lock, then
                // the row), so only multi-table commits need the plan and its extra reads.
                if ops.len() > 1 && !lock_commit_targets(&mut tx, ops).await? {
                    continue;
                }
                for op in ops {
                    // An early return drops `tx`, which rolls back everything applied so far.
                    match op {
                        CommitOp::Create(t) => apply_create(&mut tx, t).await?,
                        CommitOp::Update {
                            table_id,
                            expected_metadata_location,
                            new_metadata_location,
                            new_metadata_json,
                            new_location,
                        } => {
                            apply_update(
                                &mut tx,
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
                tx.commit().await?;
                return Ok(());
            }
            Err(StoreError::Conflict(
                "tables moved concurrently while committing".into(),
            ))
        })
        .await
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
        self.retrying("create_view", move || async move {
            let mut tx = self.pool.begin().await?;
            lock_warehouse_locations(&mut tx, v.warehouse_id).await?;
            let ns_name: Option<String> = sqlx::query_scalar(
                "SELECT name FROM namespaces WHERE id = $1 AND warehouse_id = $2",
            )
            .bind(v.namespace_id.to_string())
            .bind(v.warehouse_id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
            let Some(ns_name) = ns_name else {
                return Err(StoreError::NotFound(format!("namespace {}", v.namespace)));
            };
            let namespace = NamespaceName::from_storage_key(&ns_name);
            if let Some(holder) = name_holder(&mut tx, &v.namespace_id.to_string(), &v.name).await?
            {
                return Err(holder.taken(&namespace, &v.name));
            }
            // Ids are unique across live and deleted entries, or the deleted one could not come back.
            let id_taken: bool =
                sqlx::query_scalar("SELECT EXISTS(SELECT 1 FROM deleted_tables WHERE id = $1)")
                    .bind(v.id.to_string())
                    .fetch_one(&mut *tx)
                    .await?;
            if id_taken {
                return Err(StoreError::AlreadyExists(format!("view id {}", v.id)));
            }
            insert_view(&mut tx, v, &namespace).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn get_view(
        &self,
        warehouse_id: Uuid,
        namespace: &NamespaceName,
        name: &str,
    ) -> Result<Option<ViewRecord>> {
        let mut conn = self.pool.acquire().await?;
        fetch_view_with(&mut conn, warehouse_id, namespace, name, "").await
    }

    async fn get_view_by_id(&self, view_id: Uuid) -> Result<Option<ViewRecord>> {
        let row = sqlx::query(concat!(view_select!(), "WHERE v.id = $1"))
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
            "SELECT id, name FROM views WHERE namespace_id = $1 AND name > $2 ORDER BY name LIMIT $3",
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
        self.retrying("update_view", move || async move {
            let mut tx = self.pool.begin().await?;
            let row = sqlx::query(concat!(view_select!(), "WHERE v.id = $1"))
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
            // The CAS itself, as for tables: a racing commit of the same row makes this wait,
            // then match nothing.
            let done = sqlx::query(
                "UPDATE views SET metadata_location = $1, metadata_json = $2, location = $3, updated_at = $4 \
                 WHERE id = $5 AND metadata_location = $6",
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
                return Err(StoreError::Conflict(format!("{label} changed concurrently")));
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn drop_view(
        &self,
        warehouse_id: Uuid,
        namespace: &NamespaceName,
        name: &str,
    ) -> Result<ViewRecord> {
        self.retrying("drop_view", move || async move {
            let mut tx = self.pool.begin().await?;
            let Some(view) =
                fetch_view_with(&mut tx, warehouse_id, namespace, name, " FOR UPDATE OF v").await?
            else {
                return Err(StoreError::NotFound(view_label(namespace, name)));
            };
            sqlx::query("DELETE FROM views WHERE id = $1")
                .bind(view.id.to_string())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(view)
        })
        .await
    }

    async fn rename_view(
        &self,
        warehouse_id: Uuid,
        from_namespace: &NamespaceName,
        from_name: &str,
        to_namespace: &NamespaceName,
        to_name: &str,
    ) -> Result<()> {
        self.retrying("rename_view", move || async move {
            let mut tx = self.pool.begin().await?;
            lock_warehouse_locations(&mut tx, warehouse_id).await?;
            let Some(view) = fetch_view_with(
                &mut tx,
                warehouse_id,
                from_namespace,
                from_name,
                " FOR UPDATE OF v",
            )
            .await?
            else {
                return Err(StoreError::NotFound(view_label(from_namespace, from_name)));
            };
            let to_ns_id = namespace_id(&mut tx, warehouse_id, to_namespace).await?;
            // A view with that name is left to the UNIQUE constraint (it may be this view).
            if name_holder(&mut tx, &to_ns_id, to_name).await? == Some(NameHolder::Table) {
                return Err(NameHolder::Table.taken(to_namespace, to_name));
            }
            sqlx::query(
                "UPDATE views SET namespace_id = $1, name = $2, updated_at = $3 WHERE id = $4",
            )
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
        })
        .await
    }
}
