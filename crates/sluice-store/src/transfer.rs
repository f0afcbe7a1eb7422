//! Moving a whole catalog database between backends (SQLite ⇄ PostgreSQL, or the same
//! backend): `sluice export` / `sluice import`.
//!
//! The dump is JSON Lines: a header (format version, schema version, Sluice version, and the
//! tables with their columns), one line per row of every table in foreign-key order, and an
//! end record (row count per table, the audit-log id high-water mark, a SHA-256 of every line
//! before it). Rows are copied column by column, exactly as stored: secrets stay ciphertext
//! under the master key that wrote them, metadata JSON stays byte for byte.
//!
//! The table list (the store's own column lists, `rows::ALL_TABLES`) is the contract. Export
//! compares it with the database's own catalog (`sqlite_master` / `information_schema`) and
//! refuses a table or column it does not know, so a migration that adds one cannot be
//! silently left out of dumps.
//!
//! Import validates the whole dump before it touches the target, refuses a target that
//! holds any row, migrates it, then loads everything in ONE transaction and checks the row
//! count of every table before committing: all or nothing.

use crate::backend::RowAccess;
use crate::{PostgresStore, SqliteStore, StoreError};
use base64::Engine as _;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// Bumped when the dump layout changes (not when the schema does: that is `schema_version`).
pub const FORMAT_VERSION: u32 = 1;
const FORMAT_NAME: &str = "sluice-dump";

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("reading or writing the dump: {0}")]
    Io(#[from] std::io::Error),
    /// The dump is truncated, corrupt, or not a Sluice dump.
    #[error("invalid dump: {0}")]
    InvalidDump(String),
    /// Dump, source or target are at different schema versions (or an unknown table set).
    #[error("schema mismatch: {0}")]
    SchemaMismatch(String),
    #[error("the target database is not empty: {0}")]
    TargetNotEmpty(String),
    #[error("row count check failed: {0}")]
    CountMismatch(String),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

type Result<T, E = TransferError> = std::result::Result<T, E>;

pub use crate::rows::ColumnType;
use crate::rows::TableSpec;
use ColumnType::{Blob, Bool, Int, Text};

/// Every table of the catalog schema, in an order that satisfies the foreign keys. The
/// column lists are the store's own ([`crate::rows`]): the ones its statements and row
/// decoders use.
const TABLES: &[&TableSpec] = crate::rows::ALL_TABLES;

/// The table whose id counter the dump carries (ids are never reused, even after the
/// newest rows are gone, so the counter can be ahead of max(id)).
const AUDIT_TABLE: &str = "audit_log";

/// The tables a dump holds, with their column names, in dump order.
pub fn dump_tables() -> Vec<(&'static str, Vec<&'static str>)> {
    TABLES
        .iter()
        .map(|t| (t.name, t.columns.iter().map(|c| c.0).collect()))
        .collect()
}

/// The schema version this binary writes into dumps and expects in them: its newest
/// migration on either backend (a backend may have a migration the other does not need, so
/// this names the binary's schema generation, not one backend's).
pub fn schema_version() -> i64 {
    SQLITE_MIGRATOR
        .iter()
        .chain(PG_MIGRATOR.iter())
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// Dump records
// ---------------------------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize)]
struct ColumnHeader {
    name: String,
    #[serde(rename = "type")]
    ty: ColumnType,
}

#[derive(Debug, Serialize, Deserialize)]
struct TableHeader {
    name: String,
    columns: Vec<ColumnHeader>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Record {
    Header {
        format: String,
        format_version: u32,
        schema_version: i64,
        sluice_version: String,
        source_backend: String,
        exported_at: String,
        tables: Vec<TableHeader>,
    },
    Row {
        table: String,
        values: Map<String, Value>,
    },
    End {
        rows: BTreeMap<String, u64>,
        /// Highest audit-log id ever assigned by the source.
        audit_log_last_id: i64,
        /// Lowercase hex SHA-256 of every byte before this line.
        sha256: String,
    },
}

/// What an export or import moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferSummary {
    pub schema_version: i64,
    pub rows: BTreeMap<String, u64>,
}

// ---------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------

#[derive(Clone)]
enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// A plain pool: no migrations run, so an export reads the source exactly as it is, and an
/// import can inspect the target before changing it. `create` lets SQLite create the file.
async fn open(url: &str, create: bool) -> Result<Db> {
    if is_postgres(url) {
        let options = PgConnectOptions::from_str(url)?.application_name("sluice-transfer");
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await?;
        Ok(Db::Postgres(pool))
    } else {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(create)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await?;
        Ok(Db::Sqlite(pool))
    }
}

impl Db {
    fn backend(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    fn binary_version(&self) -> i64 {
        let m = match self {
            Db::Sqlite(_) => &SQLITE_MIGRATOR,
            Db::Postgres(_) => &PG_MIGRATOR,
        };
        m.iter().map(|m| m.version).max().unwrap_or(0)
    }

    async fn close(&self) {
        match self {
            Db::Sqlite(p) => p.close().await,
            Db::Postgres(p) => p.close().await,
        }
    }

    async fn table_exists(&self, table: &str) -> Result<bool> {
        Ok(match self {
            Db::Sqlite(p) => {
                sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
                )
                .bind(table)
                .fetch_one(p)
                .await?
                    > 0
            }
            Db::Postgres(p) => {
                sqlx::query_scalar::<_, bool>(
                    "SELECT EXISTS (SELECT 1 FROM information_schema.tables \
                     WHERE table_schema = current_schema() AND table_name = $1)",
                )
                .bind(table)
                .fetch_one(p)
                .await?
            }
        })
    }

    /// Newest applied migration, None for a database no Sluice has migrated.
    async fn applied_version(&self) -> Result<Option<i64>> {
        if !self.table_exists("_sqlx_migrations").await? {
            return Ok(None);
        }
        let sql = "SELECT max(version) FROM _sqlx_migrations WHERE success";
        Ok(match self {
            Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await?,
            Db::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await?,
        })
    }

    /// Every base table (except sqlx's bookkeeping and SQLite internals) with its columns,
    /// as the database's own catalog reports them.
    async fn catalog(&self) -> Result<BTreeMap<String, BTreeSet<String>>> {
        let mut out = BTreeMap::new();
        match self {
            Db::Sqlite(p) => {
                let names: Vec<String> = sqlx::query_scalar(
                    "SELECT name FROM sqlite_master WHERE type = 'table' \
                     AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> '_sqlx_migrations'",
                )
                .fetch_all(p)
                .await?;
                for t in names {
                    let cols: Vec<String> =
                        sqlx::query_scalar("SELECT name FROM pragma_table_info(?)")
                            .bind(&t)
                            .fetch_all(p)
                            .await?;
                    out.insert(t, cols.into_iter().collect());
                }
            }
            Db::Postgres(p) => {
                let rows: Vec<(String, String)> = sqlx::query_as(
                    "SELECT c.table_name::text, c.column_name::text \
                     FROM information_schema.columns c JOIN information_schema.tables t \
                       ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
                     WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' \
                       AND c.table_name <> '_sqlx_migrations'",
                )
                .fetch_all(p)
                .await?;
                for (t, c) in rows {
                    out.entry(t).or_insert_with(BTreeSet::new).insert(c);
                }
            }
        }
        Ok(out)
    }
}

/// The tables and columns of the database at `url`, from its own catalog (`sqlite_master`
/// and `pragma_table_info`, or `information_schema`), excluding sqlx's migration table.
pub async fn database_tables(url: &str) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let db = open(url, false).await?;
    let out = db.catalog().await;
    db.close().await;
    out
}

/// Differences between the database's catalog and the dump's table list, if any.
async fn check_catalog(db: &Db) -> Result<()> {
    let actual = db.catalog().await?;
    let expected: BTreeMap<String, BTreeSet<String>> = TABLES
        .iter()
        .map(|t| {
            (
                t.name.to_string(),
                t.columns.iter().map(|c| c.0.to_string()).collect(),
            )
        })
        .collect();
    if actual == expected {
        return Ok(());
    }
    let mut problems = vec![];
    for (t, cols) in &actual {
        match expected.get(t) {
            None => problems.push(format!("table {t} is not part of the dump format")),
            Some(want) => {
                for c in cols.difference(want) {
                    problems.push(format!("column {t}.{c} is not part of the dump format"));
                }
                for c in want.difference(cols) {
                    problems.push(format!("column {t}.{c} is missing from the database"));
                }
            }
        }
    }
    for t in expected.keys().filter(|t| !actual.contains_key(*t)) {
        problems.push(format!("table {t} is missing from the database"));
    }
    Err(TransferError::SchemaMismatch(problems.join("; ")))
}

// ---------------------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------------------

fn select_sql(t: &TableSpec) -> String {
    let cols: Vec<&str> = t.columns.iter().map(|c| c.0).collect();
    format!(
        "SELECT {} FROM {} ORDER BY {}",
        cols.join(", "),
        t.name,
        t.order_by
    )
}

/// One stored value as the dump writes it, read like the store's row decoders read it.
fn dump_value(row: &impl RowAccess, t: &TableSpec, i: usize) -> Result<Value> {
    let (column, ty) = t.columns[i];
    let value = match ty {
        Text => row.opt_text(column).map(|v| v.map(Value::from)),
        Int => row.opt_int(column).map(|v| v.map(Value::from)),
        Blob => row
            .opt_blob(column)
            .map(|v| v.map(|b| Value::from(base64::engine::general_purpose::STANDARD.encode(b)))),
        Bool => row.opt_flag(column).map(|v| v.map(Value::Bool)),
    };
    match value {
        Ok(v) => Ok(v.unwrap_or(Value::Null)),
        Err(StoreError::Database(e)) => Err(TransferError::Database(e)),
        Err(StoreError::Corrupt(what)) => Err(TransferError::Store(StoreError::Corrupt(format!(
            "{}.{what}",
            t.name
        )))),
        Err(other) => Err(TransferError::Store(other)),
    }
}

/// Writes lines and hashes exactly the bytes written.
struct HashingWriter<W: Write> {
    out: W,
    hash: Sha256,
}

impl<W: Write> HashingWriter<W> {
    fn line(&mut self, record: &Record) -> Result<()> {
        let mut bytes =
            serde_json::to_vec(record).map_err(|e| TransferError::InvalidDump(e.to_string()))?;
        bytes.push(b'\n');
        self.hash.update(&bytes);
        self.out.write_all(&bytes)?;
        Ok(())
    }
}

fn header(backend: &str, schema_version: i64) -> Record {
    Record::Header {
        format: FORMAT_NAME.to_string(),
        format_version: FORMAT_VERSION,
        schema_version,
        sluice_version: env!("CARGO_PKG_VERSION").to_string(),
        source_backend: backend.to_string(),
        exported_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        tables: TABLES
            .iter()
            .map(|t| TableHeader {
                name: t.name.to_string(),
                columns: t
                    .columns
                    .iter()
                    .map(|(n, ty)| ColumnHeader {
                        name: n.to_string(),
                        ty: *ty,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Streams every row of every table, in catalog order, into the dump and counts them: one
/// loop for both backends, whose transactions and column decoders differ in type only.
macro_rules! dump_rows {
    ($tx:ident, $value:ident, $w:ident, $rows:ident) => {
        for t in TABLES {
            let sql = select_sql(t);
            let mut stream = sqlx::query(&sql).fetch(&mut *$tx);
            let mut n = 0u64;
            while let Some(row) = stream.try_next().await? {
                let mut values = Map::new();
                for (i, (column, _)) in t.columns.iter().enumerate() {
                    values.insert(column.to_string(), $value(&row, t, i)?);
                }
                $w.line(&Record::Row {
                    table: t.name.to_string(),
                    values,
                })?;
                n += 1;
            }
            $rows.insert(t.name.to_string(), n);
        }
    };
}

/// Writes a dump of the database at `url` to `out`. The source must be at this binary's
/// schema version (nothing is migrated: an export never changes its source). All tables are
/// read in one read-only transaction, so the dump is a consistent snapshot even while a
/// server is running.
pub async fn export(url: &str, out: impl Write) -> Result<TransferSummary> {
    let db = open(url, false).await?;
    let result = export_from(&db, out).await;
    db.close().await;
    result
}

async fn export_from(db: &Db, out: impl Write) -> Result<TransferSummary> {
    let version = db.applied_version().await?;
    let want = db.binary_version();
    match version {
        None => {
            return Err(TransferError::SchemaMismatch(
                "the source database has no Sluice schema (nothing to export)".into(),
            ))
        }
        Some(v) if v < want => {
            return Err(TransferError::SchemaMismatch(format!(
                "the source database is at schema version {v}, this sluice writes version {want}: \
                 run `sluice migrate --database-url …` with this version first"
            )))
        }
        Some(v) if v > want => {
            return Err(TransferError::SchemaMismatch(format!(
                "the source database is at schema version {v}, newer than this sluice supports \
                 ({want}): export it with the sluice version that migrated it"
            )))
        }
        Some(_) => {}
    }
    check_catalog(db).await?;

    let mut w = HashingWriter {
        out,
        hash: Sha256::new(),
    };
    w.line(&header(db.backend(), schema_version()))?;
    let mut rows = BTreeMap::new();
    let last_id = match db {
        Db::Sqlite(p) => {
            // A deferred transaction's first read pins a WAL snapshot for all that follow.
            let mut tx = p.begin().await?;
            dump_rows!(tx, dump_value, w, rows);
            // sqlite_sequence exists once an AUTOINCREMENT table does; its row appears with
            // the first insert.
            let seq: Option<i64> =
                sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = ?")
                    .bind(AUDIT_TABLE)
                    .fetch_optional(&mut *tx)
                    .await?;
            tx.commit().await?;
            seq.unwrap_or(0)
        }
        Db::Postgres(p) => {
            let mut tx = p
                .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .await?;
            dump_rows!(tx, dump_value, w, rows);
            // Sequences are outside transactions; this is at least every id in the snapshot.
            let seq: Option<i64> = sqlx::query_scalar(
                "SELECT pg_sequence_last_value(pg_get_serial_sequence('audit_log', 'id')::regclass)",
            )
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            seq.unwrap_or(0)
        }
    };
    let sha256 = sluice_core::hex(&w.hash.clone().finalize());
    w.line(&Record::End {
        rows: rows.clone(),
        audit_log_last_id: last_id,
        sha256,
    })?;
    w.out.flush()?;
    Ok(TransferSummary {
        schema_version: schema_version(),
        rows,
    })
}

// ---------------------------------------------------------------------------------------
// Import
// ---------------------------------------------------------------------------------------

/// One validated value, typed by its column so that NULLs bind with the column's type.
enum Bound {
    Text(Option<String>),
    Int(Option<i64>),
    Blob(Option<Vec<u8>>),
    Bool(Option<bool>),
}

fn table_index(name: &str) -> Option<usize> {
    TABLES.iter().position(|t| t.name == name)
}

/// Checks a row against its table's columns and converts it for binding.
fn bind_values(table: &TableSpec, values: &Map<String, Value>, line: usize) -> Result<Vec<Bound>> {
    let bad =
        |msg: String| TransferError::InvalidDump(format!("line {line}: {}: {msg}", table.name));
    if values.len() != table.columns.len() {
        let extra: Vec<&String> = values
            .keys()
            .filter(|k| !table.columns.iter().any(|c| c.0 == k.as_str()))
            .collect();
        return Err(bad(format!(
            "expected {} columns, got {} (unknown: {extra:?})",
            table.columns.len(),
            values.len()
        )));
    }
    table
        .columns
        .iter()
        .map(|(name, ty)| {
            let v = values
                .get(*name)
                .ok_or_else(|| bad(format!("column {name} missing")))?;
            let mismatch = || bad(format!("column {name}: expected {ty:?}, got {v}"));
            Ok(match (ty, v) {
                (Text, Value::Null) => Bound::Text(None),
                (Int, Value::Null) => Bound::Int(None),
                (Blob, Value::Null) => Bound::Blob(None),
                (Bool, Value::Null) => Bound::Bool(None),
                (Text, Value::String(s)) => Bound::Text(Some(s.clone())),
                (Int, Value::Number(n)) => Bound::Int(Some(n.as_i64().ok_or_else(mismatch)?)),
                (Blob, Value::String(s)) => Bound::Blob(Some(
                    base64::engine::general_purpose::STANDARD
                        .decode(s)
                        .map_err(|e| bad(format!("column {name}: {e}")))?,
                )),
                (Bool, Value::Bool(b)) => Bound::Bool(Some(*b)),
                _ => return Err(mismatch()),
            })
        })
        .collect()
}

/// What the first pass learned about a dump.
struct Validated {
    schema_version: i64,
    rows: BTreeMap<String, u64>,
    audit_log_last_id: i64,
}

fn parse_line(line: &str, n: usize) -> Result<Record> {
    serde_json::from_str(line).map_err(|e| TransferError::InvalidDump(format!("line {n}: {e}")))
}

/// First pass: the whole file, before anything touches the target. Checks the header
/// against this binary, every row against its table, table order, the end record's counts
/// and the checksum over every preceding byte (so truncation or any edit is caught).
fn validate(path: &Path) -> Result<Validated> {
    let mut reader = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut hash = Sha256::new();
    let mut buf = Vec::new();
    let mut n = 0usize;
    let mut seen_version = None;
    let mut counted: BTreeMap<String, u64> =
        TABLES.iter().map(|t| (t.name.to_string(), 0)).collect();
    let mut last_table = 0usize;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            return Err(TransferError::InvalidDump(format!(
                "ends after line {n} without its end record (truncated?)"
            )));
        }
        n += 1;
        if buf.last() != Some(&b'\n') {
            return Err(TransferError::InvalidDump(format!(
                "line {n} is cut off (truncated?)"
            )));
        }
        let text = std::str::from_utf8(&buf[..buf.len() - 1])
            .map_err(|_| TransferError::InvalidDump(format!("line {n} is not UTF-8")))?;
        let record = parse_line(text, n)?;
        match (n, record) {
            (
                1,
                Record::Header {
                    format,
                    format_version,
                    schema_version: v,
                    sluice_version,
                    tables,
                    ..
                },
            ) => {
                if format != FORMAT_NAME {
                    return Err(TransferError::InvalidDump(format!(
                        "not a Sluice dump (format {format:?})"
                    )));
                }
                if format_version != FORMAT_VERSION {
                    return Err(TransferError::InvalidDump(format!(
                        "dump format version {format_version}; this sluice reads version {FORMAT_VERSION}"
                    )));
                }
                let want = schema_version();
                if v != want {
                    let fix = if v < want {
                        format!(
                            "import it with sluice {sluice_version} (which wrote it), then upgrade the \
                             target with `sluice migrate`"
                        )
                    } else {
                        format!("import it with sluice {sluice_version} or newer")
                    };
                    return Err(TransferError::SchemaMismatch(format!(
                        "the dump is at schema version {v}, this sluice is at version {want}: {fix}"
                    )));
                }
                let same = tables.len() == TABLES.len()
                    && tables.iter().zip(TABLES).all(|(h, t)| {
                        h.name == t.name
                            && h.columns.len() == t.columns.len()
                            && h.columns
                                .iter()
                                .zip(t.columns)
                                .all(|(hc, tc)| hc.name == tc.0 && hc.ty == tc.1)
                    });
                if !same {
                    return Err(TransferError::SchemaMismatch(
                        "the dump's table list differs from this sluice's (same schema version, \
                         different tables or columns)"
                            .into(),
                    ));
                }
                seen_version = Some(v);
            }
            (1, _) => {
                return Err(TransferError::InvalidDump(
                    "the first line is not a dump header".into(),
                ))
            }
            (_, Record::Header { .. }) => {
                return Err(TransferError::InvalidDump(format!(
                    "line {n}: a second header"
                )))
            }
            (_, Record::Row { table, values }) => {
                let idx = table_index(&table).ok_or_else(|| {
                    TransferError::InvalidDump(format!("line {n}: unknown table {table:?}"))
                })?;
                if idx < last_table {
                    return Err(TransferError::InvalidDump(format!(
                        "line {n}: {table} row after {} rows (tables out of order)",
                        TABLES[last_table].name
                    )));
                }
                last_table = idx;
                bind_values(TABLES[idx], &values, n)?;
                *counted.entry(table).or_default() += 1;
            }
            (
                _,
                Record::End {
                    rows,
                    audit_log_last_id,
                    sha256,
                },
            ) => {
                if sluice_core::hex(&hash.clone().finalize()) != sha256 {
                    return Err(TransferError::InvalidDump(
                        "checksum mismatch (the dump was modified or damaged)".into(),
                    ));
                }
                if rows != counted {
                    return Err(TransferError::InvalidDump(format!(
                        "the end record lists rows {rows:?} but the dump holds {counted:?}"
                    )));
                }
                let mut rest = Vec::new();
                std::io::Read::read_to_end(&mut reader, &mut rest)?;
                if !rest.iter().all(u8::is_ascii_whitespace) {
                    return Err(TransferError::InvalidDump(format!(
                        "data after the end record (line {n})"
                    )));
                }
                return Ok(Validated {
                    schema_version: seen_version.unwrap_or_default(),
                    rows: counted,
                    audit_log_last_id,
                });
            }
        }
        hash.update(&buf);
    }
}

/// `INSERT INTO t (columns)`, to which the batch's VALUES lists are appended.
fn insert_prefix(t: &TableSpec, postgres: bool) -> String {
    let cols: Vec<&str> = t.columns.iter().map(|c| c.0).collect();
    // The audit log's id is an identity column in PostgreSQL; the dump's ids must be kept
    // (they are paging cursors).
    let overriding = if postgres && t.name == AUDIT_TABLE {
        " OVERRIDING SYSTEM VALUE"
    } else {
        ""
    };
    format!("INSERT INTO {} ({}){overriding} ", t.name, cols.join(", "))
}

/// Refuses a target holding any row of any catalog table (a server that has started on it
/// has bootstrapped already).
async fn check_empty(db: &Db) -> Result<()> {
    for t in TABLES {
        if !db.table_exists(t.name).await? {
            continue;
        }
        let sql = format!("SELECT EXISTS (SELECT 1 FROM {})", t.name);
        let any: bool = match db {
            Db::Sqlite(p) => sqlx::query_scalar(&sql).fetch_one(p).await?,
            Db::Postgres(p) => sqlx::query_scalar(&sql).fetch_one(p).await?,
        };
        if any {
            return Err(TransferError::TargetNotEmpty(format!(
                "table {} has rows; import into a freshly created database that no `sluice serve` \
                 has started on",
                t.name
            )));
        }
    }
    Ok(())
}

/// Loads the dump at `path` into the database at `url`: validates the whole file first,
/// refuses a non-empty target, creates the schema (migrations), loads every row in one
/// transaction, restores the audit-log id counter, and compares every table's row count
/// with the dump before committing.
pub async fn import(url: &str, path: &Path) -> Result<TransferSummary> {
    let validated = validate(path)?;
    let db = open(url, true).await?;
    let result = import_into(&db, path, &validated).await;
    db.close().await;
    result
}

async fn import_into(db: &Db, path: &Path, validated: &Validated) -> Result<TransferSummary> {
    if let Some(v) = db.applied_version().await? {
        if v > db.binary_version() {
            return Err(TransferError::SchemaMismatch(format!(
                "the target database is at schema version {v}, newer than this sluice ({})",
                db.binary_version()
            )));
        }
    }
    check_empty(db).await?;
    // A database that holds someone else's tables is not a fresh catalog database: refuse it
    // before creating anything in it.
    let foreign: Vec<String> = db
        .catalog()
        .await?
        .into_keys()
        .filter(|t| table_index(t).is_none())
        .collect();
    if !foreign.is_empty() {
        return Err(TransferError::TargetNotEmpty(format!(
            "it holds tables that are not Sluice's ({}); import into a freshly created database",
            foreign.join(", ")
        )));
    }
    // Migrating an empty database loses nothing, and the load needs the schema.
    match db {
        Db::Sqlite(p) => drop(SqliteStore::from_pool(p.clone()).await?),
        Db::Postgres(p) => drop(PostgresStore::from_pool(p.clone()).await?),
    }
    check_catalog(db).await?;

    match db {
        Db::Sqlite(p) => {
            let mut tx = p.begin_with("BEGIN IMMEDIATE").await?;
            // Re-checked under the write lock: nothing can have slipped in since.
            check_empty_tx_sqlite(&mut tx).await?;
            let mut rows = RowReader::open(path)?;
            while let Some((t, batch)) = rows.next_batch()? {
                let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(insert_prefix(t, false));
                q.push_values(batch, |mut b, row| {
                    for v in row {
                        match v {
                            Bound::Text(v) => b.push_bind(v),
                            Bound::Int(v) => b.push_bind(v),
                            Bound::Blob(v) => b.push_bind(v),
                            Bound::Bool(v) => b.push_bind(v.map(i64::from)),
                        };
                    }
                });
                q.build().execute(&mut *tx).await?;
            }
            for t in TABLES {
                let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", t.name))
                    .fetch_one(&mut *tx)
                    .await?;
                verify_count(t.name, n, validated)?;
            }
            let last = validated.audit_log_last_id;
            // Explicit ids already raised the counter to max(id); a source whose newest audit
            // rows were removed had it higher still.
            let updated =
                sqlx::query("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?")
                    .bind(last)
                    .bind(AUDIT_TABLE)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            if updated == 0 && last > 0 {
                sqlx::query("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)")
                    .bind(AUDIT_TABLE)
                    .bind(last)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        }
        Db::Postgres(p) => {
            let mut tx = p.begin().await?;
            // Keeps a concurrent writer (a server started too early) out until we commit.
            for t in TABLES {
                sqlx::query(&format!(
                    "LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE",
                    t.name
                ))
                .execute(&mut *tx)
                .await?;
            }
            check_empty_tx_pg(&mut tx).await?;
            let mut rows = RowReader::open(path)?;
            while let Some((t, batch)) = rows.next_batch()? {
                let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(insert_prefix(t, true));
                q.push_values(batch, |mut b, row| {
                    for v in row {
                        match v {
                            Bound::Text(v) => b.push_bind(v),
                            Bound::Int(v) => b.push_bind(v),
                            Bound::Blob(v) => b.push_bind(v),
                            Bound::Bool(v) => b.push_bind(v),
                        };
                    }
                });
                q.build().execute(&mut *tx).await?;
            }
            for t in TABLES {
                let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", t.name))
                    .fetch_one(&mut *tx)
                    .await?;
                verify_count(t.name, n, validated)?;
            }
            // The identity sequence knows nothing of explicitly inserted ids: without this the
            // next audit entry would collide with an imported one.
            let max_id: Option<i64> = sqlx::query_scalar("SELECT max(id) FROM audit_log")
                .fetch_one(&mut *tx)
                .await?;
            let last = validated.audit_log_last_id.max(max_id.unwrap_or(0));
            if last > 0 {
                sqlx::query("SELECT setval(pg_get_serial_sequence('audit_log', 'id'), $1, true)")
                    .bind(last)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        }
    }
    Ok(TransferSummary {
        schema_version: validated.schema_version,
        rows: validated.rows.clone(),
    })
}

fn verify_count(table: &str, n: i64, validated: &Validated) -> Result<()> {
    let want = validated.rows.get(table).copied().unwrap_or(0);
    if u64::try_from(n).ok() != Some(want) {
        return Err(TransferError::CountMismatch(format!(
            "table {table} holds {n} rows after loading, the dump has {want}"
        )));
    }
    Ok(())
}

async fn check_empty_tx_sqlite(tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>) -> Result<()> {
    for t in TABLES {
        let any: bool = sqlx::query_scalar(&format!("SELECT EXISTS (SELECT 1 FROM {})", t.name))
            .fetch_one(&mut **tx)
            .await?;
        if any {
            return Err(TransferError::TargetNotEmpty(format!(
                "table {} gained rows during the import",
                t.name
            )));
        }
    }
    Ok(())
}

async fn check_empty_tx_pg(tx: &mut sqlx::Transaction<'static, sqlx::Postgres>) -> Result<()> {
    for t in TABLES {
        let any: bool = sqlx::query_scalar(&format!("SELECT EXISTS (SELECT 1 FROM {})", t.name))
            .fetch_one(&mut **tx)
            .await?;
        if any {
            return Err(TransferError::TargetNotEmpty(format!(
                "table {} gained rows during the import",
                t.name
            )));
        }
    }
    Ok(())
}

/// Rows per INSERT: few round trips for a long audit log, and at most 500 × 15 bound
/// parameters, far below both backends' limits (PostgreSQL 65535, SQLite 32766).
const BATCH_ROWS: usize = 500;

/// One row ready to bind, with its table.
type TableRow = (&'static TableSpec, Vec<Bound>);
/// Consecutive rows of one table.
type Batch = (&'static TableSpec, Vec<Vec<Bound>>);

/// Second pass over the (already validated) dump, in batches of rows of one table. The file
/// is re-read rather than held in memory: dumps with a long audit log can be large.
struct RowReader {
    lines: std::io::Lines<std::io::BufReader<std::fs::File>>,
    n: usize,
    /// A row read past the end of the previous batch (it belongs to the next table).
    pending: Option<TableRow>,
}

impl RowReader {
    fn open(path: &Path) -> Result<Self> {
        Ok(RowReader {
            lines: std::io::BufReader::new(std::fs::File::open(path)?).lines(),
            n: 0,
            pending: None,
        })
    }

    fn next_row(&mut self) -> Result<Option<TableRow>> {
        if let Some(row) = self.pending.take() {
            return Ok(Some(row));
        }
        for line in self.lines.by_ref() {
            let line = line?;
            self.n += 1;
            if line.trim().is_empty() {
                continue;
            }
            if let Record::Row { table, values } = parse_line(&line, self.n)? {
                let t = table_index(&table).map(|i| TABLES[i]).ok_or_else(|| {
                    TransferError::InvalidDump(format!("line {}: unknown table {table:?}", self.n))
                })?;
                return Ok(Some((t, bind_values(t, &values, self.n)?)));
            }
        }
        Ok(None)
    }

    /// Up to BATCH_ROWS consecutive rows of one table.
    fn next_batch(&mut self) -> Result<Option<Batch>> {
        let Some((table, first)) = self.next_row()? else {
            return Ok(None);
        };
        let mut batch = vec![first];
        while batch.len() < BATCH_ROWS {
            match self.next_row()? {
                Some((t, row)) if t.name == table.name => batch.push(row),
                Some(other) => {
                    self.pending = Some(other);
                    break;
                }
                None => break,
            }
        }
        Ok(Some((table, batch)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_specs_are_consistent() {
        let names: BTreeSet<&str> = TABLES.iter().map(|t| t.name).collect();
        assert_eq!(
            names.len(),
            TABLES.len(),
            "duplicate table in the dump list"
        );
        for t in TABLES {
            let cols: BTreeSet<&str> = t.columns.iter().map(|c| c.0).collect();
            assert_eq!(
                cols.len(),
                t.columns.len(),
                "duplicate column in {}",
                t.name
            );
            for key in t.order_by.split(',') {
                assert!(
                    cols.contains(key.trim()),
                    "{} orders by unknown column {key}",
                    t.name
                );
            }
        }
    }

    #[test]
    fn rows_are_checked_against_their_columns() {
        let t = &TABLES[table_index("settings").unwrap()];
        let ok: Map<String, Value> = serde_json::from_str(r#"{"key":"k","value":"v"}"#).unwrap();
        assert!(bind_values(t, &ok, 2).is_ok());
        for bad in [
            r#"{"key":"k"}"#,
            r#"{"key":"k","value":1}"#,
            r#"{"key":"k","value":"v","x":null}"#,
        ] {
            let m: Map<String, Value> = serde_json::from_str(bad).unwrap();
            assert!(
                matches!(bind_values(t, &m, 2), Err(TransferError::InvalidDump(_))),
                "{bad}"
            );
        }
        let keys = &TABLES[table_index("access_keys").unwrap()];
        let m: Map<String, Value> = serde_json::from_str(
            r#"{"access_key_id":"a","user_id":"u","secret_ciphertext":"not base64!","created_at":1,"last_used_at":null}"#,
        )
        .unwrap();
        assert!(matches!(
            bind_values(keys, &m, 2),
            Err(TransferError::InvalidDump(_))
        ));
    }
}
