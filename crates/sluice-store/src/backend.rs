//! What a database backend must provide so that [`crate::catalog`] can implement every
//! [`crate::CatalogStore`] operation once for both: running a statement, decoding a row, and
//! the few things that really differ (how a write transaction is begun, committed and
//! retried, row and location locks, the change feed, the multi-table commit).
//!
//! Statements are written with numbered `$N` placeholders, which PostgreSQL uses natively and
//! SQLite accepts as well (sqlx binds `$N` there by its number), so one SQL text serves both.

use crate::{Change, ChangeReceiver, CommitOp, Result, StoreError};
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::borrow::Cow;
use std::future::Future;
use std::ops::DerefMut;
use uuid::Uuid;

/// One bound parameter, typed by its column's kind so NULLs bind with the right type. The
/// backend turns it into its own encoding (a flag is BOOLEAN in PostgreSQL, 0/1 in SQLite).
#[derive(Debug, Clone)]
pub enum Arg<'a> {
    Text(Option<Cow<'a, str>>),
    Int(Option<i64>),
    Blob(Option<Cow<'a, [u8]>>),
    Flag(Option<bool>),
}

pub type Args<'a> = Vec<Arg<'a>>;

impl<'a> Arg<'a> {
    pub fn str(s: &'a str) -> Self {
        Arg::Text(Some(Cow::Borrowed(s)))
    }
    pub fn opt_str(s: Option<&'a str>) -> Self {
        Arg::Text(s.map(Cow::Borrowed))
    }
    pub fn string(s: String) -> Self {
        Arg::Text(Some(Cow::Owned(s)))
    }
    pub fn uuid(id: Uuid) -> Self {
        Arg::string(id.to_string())
    }
    pub fn opt_uuid(id: Option<Uuid>) -> Self {
        Arg::Text(id.map(|id| Cow::Owned(id.to_string())))
    }
    /// Timestamps are stored as unix milliseconds.
    pub fn time(t: DateTime<Utc>) -> Self {
        Arg::Int(Some(t.timestamp_millis()))
    }
    pub fn opt_time(t: Option<DateTime<Utc>>) -> Self {
        Arg::Int(t.map(|t| t.timestamp_millis()))
    }
    pub fn int(v: i64) -> Self {
        Arg::Int(Some(v))
    }
    pub fn bytes(b: &'a [u8]) -> Self {
        Arg::Blob(Some(Cow::Borrowed(b)))
    }
    pub fn opt_bytes(b: Option<&'a [u8]>) -> Self {
        Arg::Blob(b.map(Cow::Borrowed))
    }
    pub fn flag(b: bool) -> Self {
        Arg::Flag(Some(b))
    }
}

/// Typed reads of one result row, by column name (or position, for unnamed expressions).
/// The primitives are the same on both backends except for flags; the rest builds on them.
pub trait RowAccess {
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>>;
    fn opt_blob(&self, col: &str) -> Result<Option<Vec<u8>>>;
    /// A stored flag: strictly false/true (SQLite: 0/1; anything else is corrupt data).
    fn opt_flag(&self, col: &str) -> Result<Option<bool>>;
    /// The boolean value of the expression at `index` (e.g. an `EXISTS(...)`).
    fn bool_at(&self, index: usize) -> Result<bool>;

    fn text(&self, col: &str) -> Result<String> {
        self.opt_text(col)?.ok_or_else(|| null(col))
    }
    fn int(&self, col: &str) -> Result<i64> {
        self.opt_int(col)?.ok_or_else(|| null(col))
    }
    fn blob(&self, col: &str) -> Result<Vec<u8>> {
        self.opt_blob(col)?.ok_or_else(|| null(col))
    }
    fn flag(&self, col: &str) -> Result<bool> {
        self.opt_flag(col)?.ok_or_else(|| null(col))
    }
    fn uuid(&self, col: &str) -> Result<Uuid> {
        parse_uuid(col, &self.text(col)?)
    }
    fn opt_uuid(&self, col: &str) -> Result<Option<Uuid>> {
        self.opt_text(col)?.map(|s| parse_uuid(col, &s)).transpose()
    }
    fn time(&self, col: &str) -> Result<DateTime<Utc>> {
        from_millis(self.int(col)?, col)
    }
    fn opt_time(&self, col: &str) -> Result<Option<DateTime<Utc>>> {
        self.opt_int(col)?.map(|v| from_millis(v, col)).transpose()
    }
    fn json<T: serde::de::DeserializeOwned>(&self, col: &str) -> Result<T> {
        serde_json::from_str(&self.text(col)?)
            .map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
    }
}

/// A NOT NULL column read as NULL: sqlx reports the same as an unexpected-null decode error.
fn null(col: &str) -> StoreError {
    StoreError::Database(sqlx::Error::ColumnDecode {
        index: col.to_string(),
        source: "unexpected null".into(),
    })
}

fn parse_uuid(col: &str, s: &str) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|e| StoreError::Corrupt(format!("{col} {s:?}: {e}")))
}

pub fn from_millis(v: i64, column: &str) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(v)
        .ok_or_else(|| StoreError::Corrupt(format!("{column}: timestamp {v} out of range")))
}

/// Strict 0/1 for SQLite's INTEGER flags (the CHECK constraint is not trusted).
fn int_flag(col: &str, v: Option<i64>) -> Result<Option<bool>> {
    match v {
        None => Ok(None),
        Some(0) => Ok(Some(false)),
        Some(1) => Ok(Some(true)),
        Some(other) => Err(StoreError::Corrupt(format!("{col}: flag {other}"))),
    }
}

impl RowAccess for sqlx::postgres::PgRow {
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        Ok(self.try_get(col)?)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        Ok(self.try_get(col)?)
    }
    fn opt_blob(&self, col: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.try_get(col)?)
    }
    fn opt_flag(&self, col: &str) -> Result<Option<bool>> {
        Ok(self.try_get(col)?)
    }
    fn bool_at(&self, index: usize) -> Result<bool> {
        Ok(self.try_get(index)?)
    }
}

impl RowAccess for sqlx::sqlite::SqliteRow {
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        Ok(self.try_get(col)?)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        Ok(self.try_get(col)?)
    }
    fn opt_blob(&self, col: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.try_get(col)?)
    }
    fn opt_flag(&self, col: &str) -> Result<Option<bool>> {
        int_flag(col, self.try_get(col)?)
    }
    fn bool_at(&self, index: usize) -> Result<bool> {
        Ok(self.try_get(index)?)
    }
}

/// A backend: its connection and row types, how statements run, and what differs.
/// Implemented by [`crate::PostgresStore`] and [`crate::SqliteStore`]; every
/// [`crate::CatalogStore`] method is written once over it in [`crate::catalog`].
pub trait Backend: Send + Sync + 'static {
    type Conn: Send;
    type Row: RowAccess + Send + Sync + 'static;
    /// A pooled connection for reads.
    type ReadConn: DerefMut<Target = Self::Conn> + Send;
    /// A connection for one autocommit write statement (SQLite: with the writer lock).
    type WriteConn: DerefMut<Target = Self::Conn> + Send;
    /// A write transaction (SQLite: `BEGIN IMMEDIATE` with the writer lock).
    type Tx: DerefMut<Target = Self::Conn> + Send;

    /// What `LIMIT $n` is bound to when the page has no limit.
    const NO_LIMIT: Option<i64>;
    /// Null-safe "differs from" (`IS DISTINCT FROM` / `IS NOT`).
    const IS_NOT: &'static str;
    /// Whether `SELECT ... FOR UPDATE` row locks exist (SQLite's writer lock covers it).
    const ROW_LOCKS: bool;

    fn read(&self) -> impl Future<Output = Result<Self::ReadConn>> + Send;
    fn write_conn(&self) -> impl Future<Output = Result<Self::WriteConn>> + Send;
    fn begin(&self) -> impl Future<Output = Result<Self::Tx>> + Send;
    /// Commits, announcing `change` to other processes with the commit where there is a feed.
    fn commit(tx: Self::Tx, change: Option<Change>) -> impl Future<Output = Result<()>> + Send;
    /// Runs `op` (one whole transaction) again while it fails in a way that a fresh attempt
    /// can fix (PostgreSQL serialization failures and deadlocks); SQLite runs it once.
    fn retrying<T, F, Fut>(
        &self,
        what: &'static str,
        op: F,
    ) -> impl Future<Output = Result<T>> + Send
    where
        T: Send,
        F: FnMut() -> Fut + Send,
        Fut: Future<Output = Result<T>> + Send;
    /// One write statement with the backend's write discipline: PostgreSQL runs it in a
    /// retried transaction that also announces `change`; SQLite as an autocommit statement
    /// under the writer lock. Returns the rows affected.
    fn write_one<'a>(
        &'a self,
        what: &'static str,
        change: Option<Change>,
        sql: &'a str,
        args: Args<'a>,
    ) -> impl Future<Output = Result<u64>> + Send + 'a;
    /// Serializes location-overlap checks and name claims within one warehouse until the
    /// transaction ends (PostgreSQL: an advisory lock; SQLite: the writer lock does it).
    fn lock_locations(
        conn: &mut Self::Conn,
        warehouse_id: Uuid,
    ) -> impl Future<Output = Result<()>> + Send;
    /// The atomic multi-table commit (its lock plan is backend-specific).
    fn commit_ops<'a>(
        &'a self,
        ops: &'a [CommitOp],
    ) -> impl Future<Output = Result<()>> + Send + 'a;
    /// The cross-process change feed, where the backend has one.
    fn subscribe(&self) -> impl Future<Output = Result<Option<ChangeReceiver>>> + Send;

    fn execute<'c>(
        conn: &'c mut Self::Conn,
        sql: &'c str,
        args: Args<'c>,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'c;
    fn fetch_optional<'c>(
        conn: &'c mut Self::Conn,
        sql: &'c str,
        args: Args<'c>,
    ) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>> + Send + 'c;
    fn fetch_all<'c>(
        conn: &'c mut Self::Conn,
        sql: &'c str,
        args: Args<'c>,
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send + 'c;
}

/// `" FOR UPDATE{of}"` where the backend has row locks, else nothing.
pub fn for_update<B: Backend>(of: &str) -> String {
    if B::ROW_LOCKS {
        format!(" FOR UPDATE{of}")
    } else {
        String::new()
    }
}
