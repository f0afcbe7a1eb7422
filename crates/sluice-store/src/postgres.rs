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

use crate::backend::{Arg, Args, Backend, RowAccess};
use crate::catalog::apply_op;
use crate::{Change, ChangeReceiver, CommitOp, Result, StoreError};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{
    PgArguments, PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions, PgRow,
};
use sqlx::query::Query;
use sqlx::{Postgres, Transaction};
use std::borrow::Cow;
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
        Change::Table(id) => Some(format!("table:{id}")),
        // Local to one subscriber; never sent through the database.
        Change::Lost | Change::Resumed => None,
    }
}

fn parse_change(payload: &str) -> Option<Change> {
    match payload.split_once(':') {
        None if payload == "identity" => Some(Change::Identity),
        Some(("warehouse", id)) => Uuid::parse_str(id).ok().map(Change::Warehouse),
        Some(("table", id)) => Uuid::parse_str(id).ok().map(Change::Table),
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
    async fn run_retrying<T, F, Fut>(&self, what: &'static str, mut op: F) -> Result<T>
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
                r.uuid("id")?,
                (r.uuid("warehouse_id")?, r.text("location")?),
            ))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The backend
// ---------------------------------------------------------------------------------------

fn bind<'q>(
    mut q: Query<'q, Postgres, PgArguments>,
    args: Args<'q>,
) -> Query<'q, Postgres, PgArguments> {
    for a in args {
        q = match a {
            Arg::Text(v) => q.bind(v),
            Arg::Int(v) => q.bind(v),
            Arg::Blob(None) => q.bind(None::<&[u8]>),
            Arg::Blob(Some(Cow::Borrowed(b))) => q.bind(b),
            Arg::Blob(Some(Cow::Owned(b))) => q.bind(b),
            Arg::Flag(v) => q.bind(v),
        };
    }
    q
}

impl Backend for PostgresStore {
    type Conn = PgConnection;
    type Row = PgRow;
    type ReadConn = PoolConnection<Postgres>;
    type WriteConn = PoolConnection<Postgres>;
    type Tx = Transaction<'static, Postgres>;

    // PostgreSQL treats `LIMIT NULL` as "no limit".
    const NO_LIMIT: Option<i64> = None;
    const IS_NOT: &'static str = "IS DISTINCT FROM";
    const ROW_LOCKS: bool = true;

    async fn read(&self) -> Result<Self::ReadConn> {
        Ok(self.pool.acquire().await?)
    }

    async fn write_conn(&self) -> Result<Self::WriteConn> {
        Ok(self.pool.acquire().await?)
    }

    async fn begin(&self) -> Result<Self::Tx> {
        Ok(self.pool.begin().await?)
    }

    async fn commit(mut tx: Self::Tx, change: Option<Change>) -> Result<()> {
        if let Some(change) = change {
            notify(&mut tx, change).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn retrying<T, F, Fut>(&self, what: &'static str, op: F) -> Result<T>
    where
        T: Send,
        F: FnMut() -> Fut + Send,
        Fut: Future<Output = Result<T>> + Send,
    {
        self.run_retrying(what, op).await
    }

    async fn write_one<'a>(
        &'a self,
        what: &'static str,
        change: Option<Change>,
        sql: &'a str,
        args: Args<'a>,
    ) -> Result<u64> {
        self.run_retrying(what, || {
            let (change, args) = (change.clone(), args.clone());
            async move {
                let mut tx = self.pool.begin().await?;
                let done = bind(sqlx::query(sql), args).execute(&mut *tx).await?;
                Self::commit(tx, change).await?;
                Ok(done.rows_affected())
            }
        })
        .await
    }

    async fn lock_locations(conn: &mut PgConnection, warehouse_id: Uuid) -> Result<()> {
        lock_warehouse_locations(conn, warehouse_id).await
    }

    async fn commit_ops<'a>(&'a self, ops: &'a [CommitOp]) -> Result<()> {
        self.run_retrying("commit", move || async move {
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
                    apply_op::<Self>(&mut tx, op).await?;
                    notify(&mut tx, Change::Table(op.table_id())).await?;
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

    async fn subscribe(&self) -> Result<Option<ChangeReceiver>> {
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

    async fn execute<'c>(
        conn: &'c mut PgConnection,
        sql: &'c str,
        args: Args<'c>,
    ) -> Result<u64, sqlx::Error> {
        Ok(bind(sqlx::query(sql), args)
            .execute(conn)
            .await?
            .rows_affected())
    }

    async fn fetch_optional<'c>(
        conn: &'c mut PgConnection,
        sql: &'c str,
        args: Args<'c>,
    ) -> Result<Option<PgRow>, sqlx::Error> {
        bind(sqlx::query(sql), args).fetch_optional(conn).await
    }

    async fn fetch_all<'c>(
        conn: &'c mut PgConnection,
        sql: &'c str,
        args: Args<'c>,
    ) -> Result<Vec<PgRow>, sqlx::Error> {
        bind(sqlx::query(sql), args).fetch_all(conn).await
    }
}
