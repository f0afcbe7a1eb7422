//! Every [`CatalogStore`] operation, written once over [`Backend`]: the statements, the
//! checks and the error mapping are the same on SQLite and PostgreSQL. What differs (write
//! discipline, retries, row and location locks, the change feed, the multi-table commit's
//! lock plan) is behind the trait, in `sqlite.rs` and `postgres.rs`.
//!
//! Write transactions follow one shape: `self.retrying(what, || { begin; ...; commit })`.
//! On PostgreSQL `retrying` re-runs the whole transaction after a serialization failure or
//! a deadlock and `commit` also sends the change notification; on SQLite `begin` takes the
//! writer lock and `BEGIN IMMEDIATE`, and `retrying` runs the transaction once.

use crate::backend::{for_update, Arg, Args, Backend, RowAccess};
use crate::rows::{self, numbered_placeholders};
use crate::{
    AccessKeyRecord, AuditRecord, CatalogStore, Change, ChangeReceiver, CommitOp,
    DeletedTableRecord, EffectivePolicy, EntityKind, ExternalIdentityRecord, GroupRecord,
    NamespaceRecord, Page, PolicyRecord, Result, StoreError, TableRecord, TableSummary, UserRecord,
    ViewRecord, WarehouseRecord,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sluice_core::NamespaceName;
use std::collections::HashMap;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// `t` at the precision the store keeps, so returned records equal what a later read yields.
fn truncate_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// Now, at the precision the store keeps, so values the store generates compare equal after
/// a round trip.
pub(crate) fn now() -> DateTime<Utc> {
    truncate_millis(Utc::now())
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

fn limit_of<B: Backend>(page: &Page) -> Arg<'static> {
    Arg::Int(page.limit.map(i64::from).or(B::NO_LIMIT))
}

fn after_of(page: &Page) -> Arg<'_> {
    // Every stored name is non-empty, so "" sorts before all of them; this keeps the query a
    // plain index range instead of an `? IS NULL OR` the planner cannot use.
    Arg::str(page.after.as_deref().unwrap_or(""))
}

fn table_label(namespace: &NamespaceName, name: &str) -> String {
    format!("table {namespace}.{name}")
}

fn view_label(namespace: &NamespaceName, name: &str) -> String {
    format!("view {namespace}.{name}")
}

fn identity_label(source: &str, subject: &str) -> String {
    format!("external identity {source} {subject}")
}

/// Parses a [`DeletedTableRecord::page_key`] into (deleted_at millis, id text).
fn parse_deleted_page_key(key: &str) -> Result<(i64, String)> {
    key.split_once('/')
        .and_then(|(at, id)| Some((at.parse().ok()?, Uuid::parse_str(id).ok()?.to_string())))
        .ok_or_else(|| StoreError::NotFound(format!("deleted-table page position {key:?}")))
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

async fn fetch_one<B: Backend>(conn: &mut B::Conn, sql: &str, args: Args<'_>) -> Result<B::Row> {
    B::fetch_optional(conn, sql, args)
        .await?
        .ok_or(StoreError::Database(sqlx::Error::RowNotFound))
}

/// The boolean of a one-row query such as `SELECT EXISTS(...)`.
async fn exists<B: Backend>(conn: &mut B::Conn, sql: &str, args: Args<'_>) -> Result<bool> {
    fetch_one::<B>(conn, sql, args).await?.bool_at(0)
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
/// transaction that claims the name, which holds the warehouse's location lock (SQLite: the
/// writer lock), so the answer stays true until it ends.
async fn name_holder<B: Backend>(
    conn: &mut B::Conn,
    namespace_id: &str,
    name: &str,
) -> Result<Option<NameHolder>> {
    let row = fetch_one::<B>(
        conn,
        "SELECT EXISTS(SELECT 1 FROM tables WHERE namespace_id = $1 AND name = $2), \
         EXISTS(SELECT 1 FROM views WHERE namespace_id = $1 AND name = $2)",
        vec![Arg::str(namespace_id), Arg::str(name)],
    )
    .await?;
    Ok(if row.bool_at(0)? {
        Some(NameHolder::Table)
    } else if row.bool_at(1)? {
        Some(NameHolder::View)
    } else {
        None
    })
}

// ---------------------------------------------------------------------------------------
// Queries shared between transactional and plain paths
// ---------------------------------------------------------------------------------------

/// The namespace; with `lock`, row-locked (`FOR UPDATE`) until the transaction ends.
async fn fetch_namespace<B: Backend>(
    conn: &mut B::Conn,
    warehouse_id: Uuid,
    name: &NamespaceName,
    lock: bool,
) -> Result<Option<NamespaceRecord>> {
    let sql = format!(
        "SELECT {} FROM namespaces WHERE warehouse_id = $1 AND name = $2{}",
        rows::NAMESPACES.select_list(""),
        if lock {
            for_update::<B>("")
        } else {
            String::new()
        }
    );
    let args = vec![Arg::uuid(warehouse_id), Arg::string(name.storage_key())];
    let row = B::fetch_optional(conn, &sql, args).await?;
    row.as_ref().map(rows::namespace).transpose()
}

/// Id of the namespace, or NotFound.
async fn namespace_id<B: Backend>(
    conn: &mut B::Conn,
    warehouse_id: Uuid,
    name: &NamespaceName,
) -> Result<String> {
    let sql = "SELECT id FROM namespaces WHERE warehouse_id = $1 AND name = $2";
    let args = vec![Arg::uuid(warehouse_id), Arg::string(name.storage_key())];
    match B::fetch_optional(conn, sql, args).await? {
        Some(row) => row.text("id"),
        None => Err(StoreError::NotFound(format!("namespace {name}"))),
    }
}

/// The table (`kind` Table) or view by name; with `lock`, the row (not its namespace) is
/// locked until the transaction ends, so concurrent drops/renames of it serialize (the loser
/// finds nothing).
async fn fetch_entity<B: Backend>(
    conn: &mut B::Conn,
    kind: EntityKind,
    warehouse_id: Uuid,
    namespace: &NamespaceName,
    name: &str,
    lock: bool,
) -> Result<Option<TableRecord>> {
    let (spec, alias) = match kind {
        EntityKind::Table => (&rows::TABLES, "t"),
        EntityKind::View => (&rows::VIEWS, "v"),
    };
    let sql = format!(
        "{}WHERE n.warehouse_id = $1 AND n.name = $2 AND {alias}.name = $3{}",
        rows::entity_select(spec, alias),
        if lock {
            for_update::<B>(&format!(" OF {alias}"))
        } else {
            String::new()
        }
    );
    let args = vec![
        Arg::uuid(warehouse_id),
        Arg::string(namespace.storage_key()),
        Arg::str(name),
    ];
    let row = B::fetch_optional(conn, &sql, args).await?;
    row.as_ref().map(rows::table).transpose()
}

async fn fetch_entity_by_id<B: Backend>(
    conn: &mut B::Conn,
    kind: EntityKind,
    id: Uuid,
) -> Result<Option<TableRecord>> {
    let (spec, alias) = match kind {
        EntityKind::Table => (&rows::TABLES, "t"),
        EntityKind::View => (&rows::VIEWS, "v"),
    };
    let sql = format!("{}WHERE {alias}.id = $1", rows::entity_select(spec, alias));
    let row = B::fetch_optional(conn, &sql, vec![Arg::uuid(id)]).await?;
    row.as_ref().map(rows::table).transpose()
}

/// Inserts the table or view row; the caller has checked the namespace and the name, so a
/// unique violation here is the id.
async fn insert_entity<B: Backend>(
    conn: &mut B::Conn,
    kind: EntityKind,
    t: &TableRecord,
    namespace: &NamespaceName,
) -> Result<()> {
    let spec = match kind {
        EntityKind::Table => &rows::TABLES,
        EntityKind::View => &rows::VIEWS,
    };
    B::execute(conn, &spec.insert_sql(&[]), rows::table_args(t))
        .await
        .map_err(|e| {
            map_constraint(
                e,
                || format!("{} id {}", kind.as_str(), t.id),
                || format!("namespace {namespace}"),
            )
        })?;
    Ok(())
}

/// Moves a dropped table or view into `deleted_tables` and removes its live row, inside the
/// caller's transaction (which holds the live row locked).
async fn move_to_deleted<B: Backend>(
    conn: &mut B::Conn,
    record: &DeletedTableRecord,
) -> Result<()> {
    let t = &record.table;
    let sql = rows::DELETED_TABLES.insert_sql(&[]);
    B::execute(&mut *conn, &sql, rows::deleted_table_args(record))
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
    B::execute(conn, live, vec![Arg::uuid(t.id)]).await?;
    Ok(())
}

/// The overlap rule, phrased so every branch is an index probe on
/// `tables_by_location` / `deleted_tables_by_location` (warehouse_id, rtrim(location, '/')):
/// - a stored location L equals or contains `loc` iff L is `loc` or one of its '/'-boundary
///   prefixes, so we enumerate those and look them up with IN;
/// - L lies inside `loc` iff L starts with `loc/`, i.e. `loc/` <= L < `loc0` ('0' is the
///   byte after '/'; SQLite compares text bytewise, and every PostgreSQL text column uses
///   the "C" collation).
///
/// Deleted tables (not yet forgotten) count as well: their files are still there.
pub(crate) async fn find_overlap<B: Backend>(
    conn: &mut B::Conn,
    warehouse_id: Uuid,
    location: &str,
    except_table: Option<Uuid>,
) -> Result<Option<String>> {
    let loc = location.trim_end_matches('/');
    let candidates = containing_candidates(loc);

    // Index probes joined with UNION ALL: written as one WHERE with OR, a planner may fall
    // back to scanning every table of the warehouse. $1 warehouse, $2/$3 the range, $4 the
    // excepted table, $5... the candidates.
    let in_list = numbered_placeholders(5, candidates.len());
    let is_not = B::IS_NOT;
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
           WHERE o.id {is_not} $4 \
           UNION ALL \
           SELECT 'deleted table', namespace_name, name, location FROM deleted_tables \
           WHERE warehouse_id = $1 AND rtrim(location, '/') IN ({in_list}) AND id {is_not} $4 \
           UNION ALL \
           SELECT 'deleted table', namespace_name, name, location FROM deleted_tables \
           WHERE warehouse_id = $1 AND rtrim(location, '/') >= $2 \
             AND rtrim(location, '/') < $3 AND id {is_not} $4 \
         ) AS hits LIMIT 1"
    );
    let mut args = vec![
        Arg::uuid(warehouse_id),
        Arg::string(format!("{loc}/")),
        Arg::string(format!("{loc}0")),
        Arg::opt_uuid(except_table),
    ];
    args.extend(candidates.iter().map(|c| Arg::str(c)));
    let row = B::fetch_optional(conn, &sql, args).await?;
    row.map(|r| -> Result<String> {
        let kind = r.text("kind")?;
        let ns = r.text("ns_name")?;
        let other = r.text("location")?;
        let label = table_label(&NamespaceName::from_storage_key(&ns), &r.text("name")?);
        Ok(match kind.as_str() {
            "table" => format!("{label} at {other}"),
            _ => format!("deleted {label} at {other}"),
        })
    })
    .transpose()
}

/// Checks a new table or view's namespace, name and id and inserts it; the caller's
/// transaction holds the warehouse's location lock.
async fn create_entity<B: Backend>(
    conn: &mut B::Conn,
    kind: EntityKind,
    t: &TableRecord,
) -> Result<()> {
    let ns_name = B::fetch_optional(
        &mut *conn,
        "SELECT name FROM namespaces WHERE id = $1 AND warehouse_id = $2",
        vec![Arg::uuid(t.namespace_id), Arg::uuid(t.warehouse_id)],
    )
    .await?;
    let Some(ns_name) = ns_name else {
        return Err(StoreError::NotFound(format!("namespace {}", t.namespace)));
    };
    let namespace = NamespaceName::from_storage_key(&ns_name.text("name")?);
    if let Some(holder) = name_holder::<B>(conn, &t.namespace_id.to_string(), &t.name).await? {
        return Err(holder.taken(&namespace, &t.name));
    }
    if kind == EntityKind::Table {
        if let Some(other) =
            find_overlap::<B>(conn, t.warehouse_id, &t.location, Some(t.id)).await?
        {
            return Err(StoreError::LocationOverlap(other));
        }
    }
    // Ids are unique across live and deleted entries, or the deleted one could not come back.
    let id_taken = exists::<B>(
        conn,
        "SELECT EXISTS(SELECT 1 FROM deleted_tables WHERE id = $1)",
        vec![Arg::uuid(t.id)],
    )
    .await?;
    if id_taken {
        return Err(StoreError::AlreadyExists(format!(
            "{} id {}",
            kind.as_str(),
            t.id
        )));
    }
    insert_entity::<B>(conn, kind, t, &namespace).await
}

/// One [`CommitOp`] inside the caller's transaction.
pub(crate) async fn apply_op<B: Backend>(conn: &mut B::Conn, op: &CommitOp) -> Result<()> {
    match op {
        CommitOp::Create(t) => {
            B::lock_locations(&mut *conn, t.warehouse_id).await?;
            create_entity::<B>(conn, EntityKind::Table, t).await
        }
        CommitOp::Update {
            table_id,
            expected_metadata_location,
            new_metadata_location,
            new_metadata_json,
            new_location,
        } => {
            let update = EntityUpdate {
                kind: EntityKind::Table,
                id: *table_id,
                expected_metadata_location,
                new_metadata_location,
                new_metadata_json,
                new_location,
            };
            update.apply::<B>(conn).await
        }
    }
}

/// A compare-and-swap of a table's or view's metadata pointer.
struct EntityUpdate<'a> {
    kind: EntityKind,
    id: Uuid,
    expected_metadata_location: &'a str,
    new_metadata_location: &'a str,
    new_metadata_json: &'a str,
    new_location: &'a str,
}

impl EntityUpdate<'_> {
    async fn apply<B: Backend>(&self, conn: &mut B::Conn) -> Result<()> {
        let kind = self.kind.as_str();
        let Some(current) = fetch_entity_by_id::<B>(&mut *conn, self.kind, self.id).await? else {
            return Err(StoreError::NotFound(format!("{kind} id {}", self.id)));
        };
        let label = match self.kind {
            EntityKind::Table => table_label(&current.namespace, &current.name),
            EntityKind::View => view_label(&current.namespace, &current.name),
        };
        if current.metadata_location != self.expected_metadata_location {
            return Err(StoreError::Conflict(format!(
                "{label} has metadata {}, expected {}",
                current.metadata_location, self.expected_metadata_location
            )));
        }
        // Only a moved table is checked, so tables that overlapped before this rule existed
        // can still be committed to.
        if self.kind == EntityKind::Table && self.new_location != current.location {
            B::lock_locations(&mut *conn, current.warehouse_id).await?;
            if let Some(other) =
                find_overlap::<B>(conn, current.warehouse_id, self.new_location, Some(self.id))
                    .await?
            {
                return Err(StoreError::LocationOverlap(other));
            }
        }
        // The CAS itself. PostgreSQL (READ COMMITTED): a concurrent commit of the same row
        // makes this UPDATE wait, then re-check the condition against the new version and
        // match nothing; the read above only gives the friendlier message. SQLite: redundant
        // under BEGIN IMMEDIATE, but correct even in a weaker transaction.
        let sql = format!(
            "UPDATE {kind}s SET metadata_location = $1, metadata_json = $2, location = $3, \
             updated_at = $4 WHERE id = $5 AND metadata_location = $6"
        );
        let args = vec![
            Arg::str(self.new_metadata_location),
            Arg::str(self.new_metadata_json),
            Arg::str(self.new_location),
            Arg::time(now()),
            Arg::uuid(self.id),
            Arg::str(self.expected_metadata_location),
        ];
        if B::execute(conn, &sql, args).await? == 0 {
            return Err(StoreError::Conflict(format!(
                "{label} changed concurrently"
            )));
        }
        Ok(())
    }
}

async fn insert_user<B: Backend>(conn: &mut B::Conn, user: &UserRecord) -> Result<()> {
    B::execute(conn, &rows::USERS.insert_sql(&[]), rows::user_args(user))
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

/// Inserts the link of `rec`'s (source, subject) to `rec.user_id`: AlreadyExists if the
/// identity is linked already, NotFound if the user is absent.
async fn insert_external_identity<B: Backend>(
    conn: &mut B::Conn,
    rec: &ExternalIdentityRecord,
) -> Result<()> {
    let sql = rows::EXTERNAL_IDENTITIES.insert_sql(&[]);
    B::execute(conn, &sql, rows::external_identity_args(rec))
        .await
        .map_err(|e| {
            map_constraint(
                e,
                || identity_label(&rec.source, &rec.subject),
                || format!("user {}", rec.user_id),
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

/// A link table (membership or attachment) and its two columns.
struct LinkTable {
    spec: &'static rows::TableSpec,
}

const MEMBERS: LinkTable = LinkTable {
    spec: &rows::GROUP_MEMBERS,
};
const USER_ATTACHMENTS: LinkTable = LinkTable {
    spec: &rows::USER_POLICIES,
};
const GROUP_ATTACHMENTS: LinkTable = LinkTable {
    spec: &rows::GROUP_POLICIES,
};

impl LinkTable {
    fn columns(&self) -> (&'static str, &'static str) {
        (self.spec.columns[0].0, self.spec.columns[1].0)
    }
}

/// Idempotently inserts the link row (`a`, `b`) inside the caller's transaction. Both ends
/// are checked first, so the NotFound names the missing end (a foreign-key failure would not
/// say which end it was; ON CONFLICT DO NOTHING does not ignore those).
async fn insert_link<B: Backend>(
    conn: &mut B::Conn,
    link: &LinkTable,
    a: &LinkEnd,
    b: &LinkEnd,
) -> Result<()> {
    for end in [a, b] {
        let sql = format!("SELECT EXISTS(SELECT 1 FROM {} WHERE id = $1)", end.table);
        if !exists::<B>(&mut *conn, &sql, vec![Arg::uuid(end.id)]).await? {
            return Err(StoreError::NotFound(end.subject()));
        }
    }
    let (ca, cb) = link.columns();
    let sql = format!(
        "INSERT INTO {} ({ca}, {cb}) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        link.spec.name
    );
    B::execute(conn, &sql, vec![Arg::uuid(a.id), Arg::uuid(b.id)])
        .await
        .map_err(|e| {
            map_constraint(
                e,
                || format!("{} in {}", b.subject(), a.subject()),
                || format!("{} or {}", a.subject(), b.subject()),
            )
        })?;
    Ok(())
}

/// Deletes the row `id` of `table`; its dependents go with it through ON DELETE CASCADE,
/// in the same statement, which also announces `change` (if any).
async fn delete_by_id<B: Backend>(
    store: &B,
    table: &'static str,
    label: &'static str,
    id: Uuid,
    change: Option<Change>,
) -> Result<()> {
    let sql = format!("DELETE FROM {table} WHERE id = $1");
    let deleted = store
        .write_one("delete", change, &sql, vec![Arg::uuid(id)])
        .await?;
    if deleted == 0 {
        return Err(StoreError::NotFound(format!("{label} {id}")));
    }
    Ok(())
}

async fn link<B: Backend>(store: &B, link: LinkTable, a: LinkEnd, b: LinkEnd) -> Result<()> {
    let (link, a, b) = (&link, &a, &b);
    store
        .retrying("link", move || async move {
            let mut tx = store.begin().await?;
            insert_link::<B>(&mut tx, link, a, b).await?;
            B::commit(tx, Some(Change::Identity)).await
        })
        .await
}

/// Deletes the link row (`a`, `b`); NotFound naming `missing` if there was none.
async fn unlink<B: Backend>(
    store: &B,
    link: LinkTable,
    a: Uuid,
    b: Uuid,
    missing: impl FnOnce() -> String + Send,
) -> Result<()> {
    let (ca, cb) = link.columns();
    let sql = format!(
        "DELETE FROM {} WHERE {ca} = $1 AND {cb} = $2",
        link.spec.name
    );
    let args = vec![Arg::uuid(a), Arg::uuid(b)];
    if store
        .write_one("unlink", Some(Change::Identity), &sql, args)
        .await?
        == 0
    {
        return Err(StoreError::NotFound(missing()));
    }
    Ok(())
}

async fn read_all<B: Backend, T: Send>(
    store: &B,
    sql: &str,
    args: Args<'_>,
    decode: impl Fn(&B::Row) -> Result<T> + Send,
) -> Result<Vec<T>> {
    let mut conn = store.read().await?;
    let rows = B::fetch_all(&mut conn, sql, args).await?;
    rows.iter().map(decode).collect()
}

async fn read_one<B: Backend, T: Send>(
    store: &B,
    sql: &str,
    args: Args<'_>,
    decode: impl Fn(&B::Row) -> Result<T> + Send,
) -> Result<Option<T>> {
    let mut conn = store.read().await?;
    let row = B::fetch_optional(&mut conn, sql, args).await?;
    row.as_ref().map(decode).transpose()
}

#[allow(clippy::too_many_arguments)]
async fn soft_drop<B: Backend>(
    store: &B,
    kind: EntityKind,
    warehouse_id: Uuid,
    namespace: &NamespaceName,
    name: &str,
    deleted_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    deleted_by: Option<&str>,
    purge_requested: bool,
) -> Result<DeletedTableRecord> {
    store
        .retrying("soft_drop", move || async move {
            let mut tx = store.begin().await?;
            let Some(table) =
                fetch_entity::<B>(&mut tx, kind, warehouse_id, namespace, name, true).await?
            else {
                return Err(StoreError::NotFound(match kind {
                    EntityKind::Table => table_label(namespace, name),
                    EntityKind::View => view_label(namespace, name),
                }));
            };
            let record = DeletedTableRecord {
                table,
                kind,
                deleted_at: truncate_millis(deleted_at),
                expires_at: truncate_millis(expires_at),
                deleted_by: deleted_by.map(str::to_string),
                purge_requested,
            };
            move_to_deleted::<B>(&mut tx, &record).await?;
            B::commit(tx, Some(Change::Table(record.table.id))).await?;
            Ok(record)
        })
        .await
}

async fn list_entities<B: Backend>(
    store: &B,
    kind: EntityKind,
    warehouse_id: Uuid,
    namespace: &NamespaceName,
    page: &Page,
) -> Result<Vec<TableSummary>> {
    let mut conn = store.read().await?;
    let ns_id = namespace_id::<B>(&mut conn, warehouse_id, namespace).await?;
    let sql = format!(
        "SELECT id, name FROM {}s WHERE namespace_id = $1 AND name > $2 \
             ORDER BY name LIMIT $3",
        kind.as_str()
    );
    let args = vec![Arg::string(ns_id), after_of(page), limit_of::<B>(page)];
    let rows = B::fetch_all(&mut conn, &sql, args).await?;
    rows.iter()
        .map(|r| {
            Ok(TableSummary {
                id: r.uuid("id")?,
                namespace: namespace.clone(),
                name: r.text("name")?,
            })
        })
        .collect()
}

async fn drop_entity<B: Backend>(
    store: &B,
    kind: EntityKind,
    warehouse_id: Uuid,
    namespace: &NamespaceName,
    name: &str,
) -> Result<TableRecord> {
    store
        .retrying("drop", move || async move {
            let mut tx = store.begin().await?;
            let Some(entity) =
                fetch_entity::<B>(&mut tx, kind, warehouse_id, namespace, name, true).await?
            else {
                return Err(StoreError::NotFound(match kind {
                    EntityKind::Table => table_label(namespace, name),
                    EntityKind::View => view_label(namespace, name),
                }));
            };
            let sql = format!("DELETE FROM {}s WHERE id = $1", kind.as_str());
            B::execute(&mut tx, &sql, vec![Arg::uuid(entity.id)]).await?;
            B::commit(tx, Some(Change::Table(entity.id))).await?;
            Ok(entity)
        })
        .await
}

async fn rename_entity<B: Backend>(
    store: &B,
    kind: EntityKind,
    warehouse_id: Uuid,
    from_namespace: &NamespaceName,
    from_name: &str,
    to_namespace: &NamespaceName,
    to_name: &str,
) -> Result<()> {
    let (label, other): (fn(&NamespaceName, &str) -> String, _) = match kind {
        EntityKind::Table => (table_label, NameHolder::View),
        EntityKind::View => (view_label, NameHolder::Table),
    };
    store
        .retrying("rename", move || async move {
            let mut tx = store.begin().await?;
            // The name lock before the row lock: the order a commit that moves a table takes
            // them.
            B::lock_locations(&mut tx, warehouse_id).await?;
            let Some(entity) =
                fetch_entity::<B>(&mut tx, kind, warehouse_id, from_namespace, from_name, true)
                    .await?
            else {
                return Err(StoreError::NotFound(label(from_namespace, from_name)));
            };
            let to_ns_id = namespace_id::<B>(&mut tx, warehouse_id, to_namespace).await?;
            // The same kind holding that name is left to the UNIQUE constraint (it may be
            // this very entry).
            if name_holder::<B>(&mut tx, &to_ns_id, to_name).await? == Some(other) {
                return Err(other.taken(to_namespace, to_name));
            }
            let sql = format!(
                "UPDATE {}s SET namespace_id = $1, name = $2, updated_at = $3 WHERE id = $4",
                kind.as_str()
            );
            let args = vec![
                Arg::string(to_ns_id),
                Arg::str(to_name),
                Arg::time(now()),
                Arg::uuid(entity.id),
            ];
            B::execute(&mut tx, &sql, args).await.map_err(|e| {
                map_constraint(
                    e,
                    || label(to_namespace, to_name),
                    || format!("namespace {to_namespace}"),
                )
            })?;
            B::commit(tx, Some(Change::Table(entity.id))).await
        })
        .await
}

#[async_trait]
impl<B: Backend> CatalogStore for B {
    async fn subscribe_changes(&self) -> Result<Option<ChangeReceiver>> {
        self.subscribe().await
    }

    // ---- settings ----

    async fn get_setting(&self, key: &str) -> Result<Option<String>> {
        let sql = "SELECT value FROM settings WHERE key = $1";
        read_one(self, sql, vec![Arg::str(key)], |r| r.text("value")).await
    }

    async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        let mut conn = self.write_conn().await?;
        let sql = "INSERT INTO settings (key, value) VALUES ($1, $2) \
                   ON CONFLICT (key) DO UPDATE SET value = excluded.value";
        B::execute(&mut conn, sql, vec![Arg::str(key), Arg::str(value)]).await?;
        Ok(())
    }

    // ---- users and access keys ----

    async fn create_user(&self, user: &UserRecord) -> Result<()> {
        let sql = rows::USERS.insert_sql(&[]);
        self.write_one(
            "create_user",
            Some(Change::Identity),
            &sql,
            rows::user_args(user),
        )
        .await
        .map_err(|e| {
            map_store_constraint(
                e,
                || format!("user {}", user.name),
                || format!("user {}", user.name),
            )
        })?;
        Ok(())
    }

    async fn get_user(&self, id: Uuid) -> Result<Option<UserRecord>> {
        let sql = "SELECT * FROM users WHERE id = $1";
        read_one(self, sql, vec![Arg::uuid(id)], rows::user).await
    }

    async fn get_user_by_name(&self, name: &str) -> Result<Option<UserRecord>> {
        let sql = "SELECT * FROM users WHERE name = $1";
        read_one(self, sql, vec![Arg::str(name)], rows::user).await
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>> {
        read_all(
            self,
            "SELECT * FROM users ORDER BY name",
            vec![],
            rows::user,
        )
        .await
    }

    async fn create_access_key(&self, key: &AccessKeyRecord) -> Result<()> {
        let sql = rows::ACCESS_KEYS.insert_sql(&[]);
        let args = rows::access_key_args(key);
        self.write_one("create_access_key", Some(Change::Identity), &sql, args)
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
        let sql = "SELECT * FROM access_keys WHERE access_key_id = $1";
        read_one(self, sql, vec![Arg::str(access_key_id)], rows::access_key).await
    }

    async fn list_access_keys(&self, user_id: Uuid) -> Result<Vec<AccessKeyRecord>> {
        let sql = "SELECT * FROM access_keys WHERE user_id = $1 ORDER BY created_at, access_key_id";
        read_all(self, sql, vec![Arg::uuid(user_id)], rows::access_key).await
    }

    async fn touch_access_key(&self, access_key_id: &str, at: DateTime<Utc>) -> Result<()> {
        let mut conn = self.write_conn().await?;
        let sql = "UPDATE access_keys SET last_used_at = $1 WHERE access_key_id = $2";
        B::execute(&mut conn, sql, vec![Arg::time(at), Arg::str(access_key_id)]).await?;
        Ok(())
    }

    async fn delete_access_key(&self, access_key_id: &str) -> Result<()> {
        let sql = "DELETE FROM access_keys WHERE access_key_id = $1";
        let args = vec![Arg::str(access_key_id)];
        let done = self
            .write_one("delete_access_key", Some(Change::Identity), sql, args)
            .await?;
        if done == 0 {
            return Err(StoreError::NotFound(format!("access key {access_key_id}")));
        }
        Ok(())
    }

    // ---- users (beyond creation) ----

    async fn update_user(&self, user: &UserRecord) -> Result<()> {
        let sql = "UPDATE users SET email = $1, friendly_name = $2, source = $3 WHERE id = $4";
        let args = vec![
            Arg::opt_str(user.email.as_deref()),
            Arg::opt_str(user.friendly_name.as_deref()),
            Arg::str(&user.source),
            Arg::uuid(user.id),
        ];
        let done = self
            .write_one("update_user", Some(Change::Identity), sql, args)
            .await?;
        if done == 0 {
            return Err(StoreError::NotFound(format!("user {}", user.id)));
        }
        Ok(())
    }

    async fn delete_user(&self, id: Uuid) -> Result<()> {
        // Cascades to access_keys, group_members, user_policies and external_identities.
        delete_by_id(self, "users", "user", id, Some(Change::Identity)).await
    }

    // ---- external identities ----

    async fn get_external_identity(
        &self,
        source: &str,
        subject: &str,
    ) -> Result<Option<ExternalIdentityRecord>> {
        let sql = format!(
            "SELECT {} FROM external_identities WHERE source = $1 AND subject = $2",
            rows::EXTERNAL_IDENTITIES.select_list("")
        );
        let args = vec![Arg::str(source), Arg::str(subject)];
        read_one(self, &sql, args, rows::external_identity).await
    }

    async fn create_external_identity(&self, rec: &ExternalIdentityRecord) -> Result<()> {
        // One statement: the foreign key checks the user.
        let sql = rows::EXTERNAL_IDENTITIES.insert_sql(&[]);
        let args = rows::external_identity_args(rec);
        self.write_one(
            "create_external_identity",
            Some(Change::Identity),
            &sql,
            args,
        )
        .await
        .map_err(|e| {
            map_store_constraint(
                e,
                || identity_label(&rec.source, &rec.subject),
                || format!("user {}", rec.user_id),
            )
        })?;
        Ok(())
    }

    async fn list_external_identities(&self, user_id: Uuid) -> Result<Vec<ExternalIdentityRecord>> {
        let sql = format!(
            "SELECT {} FROM external_identities WHERE user_id = $1 ORDER BY source, subject",
            rows::EXTERNAL_IDENTITIES.select_list("")
        );
        read_all(
            self,
            &sql,
            vec![Arg::uuid(user_id)],
            rows::external_identity,
        )
        .await
    }

    async fn delete_external_identity(&self, source: &str, subject: &str) -> Result<()> {
        let sql = "DELETE FROM external_identities WHERE source = $1 AND subject = $2";
        let args = vec![Arg::str(source), Arg::str(subject)];
        let done = self
            .write_one(
                "delete_external_identity",
                Some(Change::Identity),
                sql,
                args,
            )
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
        // Racing first logins serialize on the identity's primary key: the loser's insert
        // fails and its dropped transaction rolls back its user row too.
        // The identity is linked to the user created here, whatever `identity.user_id` says.
        let identity = &ExternalIdentityRecord {
            user_id: user.id,
            ..identity.clone()
        };
        self.retrying("create_user_with_identity", move || async move {
            let mut tx = self.begin().await?;
            insert_user::<B>(&mut tx, user).await?;
            insert_external_identity::<B>(&mut tx, identity).await?;
            for group_id in group_ids {
                let group = LinkEnd::group(*group_id);
                let member = LinkEnd::user(user.id);
                // A group listed twice is one membership.
                insert_link::<B>(&mut tx, &MEMBERS, &group, &member)
                    .await
                    .map_err(|e| match e {
                        StoreError::NotFound(_) => {
                            StoreError::NotFound(format!("group {group_id}"))
                        }
                        other => other,
                    })?;
            }
            B::commit(tx, Some(Change::Identity)).await
        })
        .await
    }

    // ---- groups ----

    async fn create_group(&self, group: &GroupRecord) -> Result<()> {
        let sql = rows::GROUPS.insert_sql(&[]);
        let args = rows::group_args(group);
        self.write_one("create_group", Some(Change::Identity), &sql, args)
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
        let sql = format!(
            "SELECT {} FROM groups WHERE name = $1",
            rows::GROUPS.select_list("")
        );
        read_one(self, &sql, vec![Arg::str(name)], rows::group).await
    }

    async fn list_groups(&self) -> Result<Vec<GroupRecord>> {
        let sql = format!(
            "SELECT {} FROM groups ORDER BY name",
            rows::GROUPS.select_list("")
        );
        read_all(self, &sql, vec![], rows::group).await
    }

    async fn delete_group(&self, id: Uuid) -> Result<()> {
        // Cascades to group_members and group_policies.
        delete_by_id(self, "groups", "group", id, Some(Change::Identity)).await
    }

    async fn add_group_member(&self, group_id: Uuid, user_id: Uuid) -> Result<()> {
        link(
            self,
            MEMBERS,
            LinkEnd::group(group_id),
            LinkEnd::user(user_id),
        )
        .await
    }

    async fn remove_group_member(&self, group_id: Uuid, user_id: Uuid) -> Result<()> {
        unlink(self, MEMBERS, group_id, user_id, || {
            format!("membership of user {user_id} in group {group_id}")
        })
        .await
    }

    async fn list_group_members(&self, group_id: Uuid) -> Result<Vec<UserRecord>> {
        let sql = format!(
            "SELECT {} FROM group_members m JOIN users u ON u.id = m.user_id \
             WHERE m.group_id = $1 ORDER BY u.name",
            rows::USERS.select_list("u")
        );
        read_all(self, &sql, vec![Arg::uuid(group_id)], rows::user).await
    }

    async fn list_user_groups(&self, user_id: Uuid) -> Result<Vec<GroupRecord>> {
        let sql = format!(
            "SELECT {} FROM group_members m JOIN groups g ON g.id = m.group_id \
             WHERE m.user_id = $1 ORDER BY g.name",
            rows::GROUPS.select_list("g")
        );
        read_all(self, &sql, vec![Arg::uuid(user_id)], rows::group).await
    }

    // ---- policies ----

    async fn create_policy(&self, policy: &PolicyRecord) -> Result<()> {
        let sql = rows::POLICIES.insert_sql(&[]);
        let args = rows::policy_args(policy);
        self.write_one("create_policy", Some(Change::Identity), &sql, args)
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
        let sql = format!(
            "SELECT {} FROM policies p WHERE p.name = $1",
            rows::policy_columns()
        );
        read_one(self, &sql, vec![Arg::str(name)], rows::policy).await
    }

    async fn list_policies(&self) -> Result<Vec<PolicyRecord>> {
        let sql = format!(
            "SELECT {} FROM policies p ORDER BY p.name",
            rows::policy_columns()
        );
        read_all(self, &sql, vec![], rows::policy).await
    }

    async fn update_policy(&self, policy: &PolicyRecord) -> Result<()> {
        let sql = "UPDATE policies SET description = $1, statements_json = $2, updated_at = $3 \
                   WHERE id = $4";
        let args = vec![
            Arg::opt_str(policy.description.as_deref()),
            Arg::str(&policy.statements_json),
            Arg::time(policy.updated_at),
            Arg::uuid(policy.id),
        ];
        let done = self
            .write_one("update_policy", Some(Change::Identity), sql, args)
            .await?;
        if done == 0 {
            return Err(StoreError::NotFound(format!("policy {}", policy.id)));
        }
        Ok(())
    }

    async fn delete_policy(&self, id: Uuid) -> Result<()> {
        // Cascades to user_policies and group_policies.
        delete_by_id(self, "policies", "policy", id, Some(Change::Identity)).await
    }

    async fn attach_user_policy(&self, user_id: Uuid, policy_id: Uuid) -> Result<()> {
        let (user, policy) = (LinkEnd::user(user_id), LinkEnd::policy(policy_id));
        link(self, USER_ATTACHMENTS, user, policy).await
    }

    async fn detach_user_policy(&self, user_id: Uuid, policy_id: Uuid) -> Result<()> {
        unlink(self, USER_ATTACHMENTS, user_id, policy_id, || {
            format!("attachment of policy {policy_id} to user {user_id}")
        })
        .await
    }

    async fn attach_group_policy(&self, group_id: Uuid, policy_id: Uuid) -> Result<()> {
        let (group, policy) = (LinkEnd::group(group_id), LinkEnd::policy(policy_id));
        link(self, GROUP_ATTACHMENTS, group, policy).await
    }

    async fn detach_group_policy(&self, group_id: Uuid, policy_id: Uuid) -> Result<()> {
        unlink(self, GROUP_ATTACHMENTS, group_id, policy_id, || {
            format!("attachment of policy {policy_id} to group {group_id}")
        })
        .await
    }

    async fn list_user_policies(&self, user_id: Uuid) -> Result<Vec<PolicyRecord>> {
        let sql = format!(
            "SELECT {} FROM user_policies a JOIN policies p ON p.id = a.policy_id \
             WHERE a.user_id = $1 ORDER BY p.name",
            rows::policy_columns()
        );
        read_all(self, &sql, vec![Arg::uuid(user_id)], rows::policy).await
    }

    async fn list_group_policies(&self, group_id: Uuid) -> Result<Vec<PolicyRecord>> {
        let sql = format!(
            "SELECT {} FROM group_policies a JOIN policies p ON p.id = a.policy_id \
             WHERE a.group_id = $1 ORDER BY p.name",
            rows::policy_columns()
        );
        read_all(self, &sql, vec![Arg::uuid(group_id)], rows::policy).await
    }

    async fn effective_policies(&self, user_id: Uuid) -> Result<Vec<EffectivePolicy>> {
        // One statement, so both halves read the same snapshot. Each (policy, way) pair is
        // unique by the link tables' primary keys, so the order is total. A compound
        // SELECT's ORDER BY may only name result columns, hence NULLS FIRST rather than an
        // `IS NULL` expression (SQLite sorts NULL first anyway; PostgreSQL needs it spelled).
        let columns = rows::policy_columns();
        let sql = format!(
            "SELECT {columns}, NULL AS via_group \
             FROM user_policies up JOIN policies p ON p.id = up.policy_id \
             WHERE up.user_id = $1 \
             UNION ALL \
             SELECT {columns}, g.name AS via_group \
             FROM group_members m \
             JOIN groups g ON g.id = m.group_id \
             JOIN group_policies gp ON gp.group_id = m.group_id \
             JOIN policies p ON p.id = gp.policy_id \
             WHERE m.user_id = $1 \
             ORDER BY name, via_group NULLS FIRST"
        );
        read_all(self, &sql, vec![Arg::uuid(user_id)], |r| {
            Ok(EffectivePolicy {
                policy: rows::policy(r)?,
                via_group: r.opt_text("via_group")?,
            })
        })
        .await
    }

    // ---- audit log ----

    async fn append_audit(&self, record: &AuditRecord) -> Result<i64> {
        let mut conn = self.write_conn().await?;
        let sql = format!(
            "{} RETURNING id",
            rows::AUDIT_LOG.insert_sql(rows::AUDIT_GENERATED)
        );
        fetch_one::<B>(&mut conn, &sql, rows::audit_args(record))
            .await?
            .int("id")
    }

    async fn list_audit(&self, before: Option<i64>, limit: u32) -> Result<Vec<AuditRecord>> {
        // Like `after_of`: a sentinel instead of `? IS NULL OR`, so the query stays a plain
        // backwards range scan of the id index.
        let sql = format!(
            "SELECT {} FROM audit_log WHERE id < $1 ORDER BY id DESC LIMIT $2",
            rows::AUDIT_LOG.select_list("")
        );
        let args = vec![
            Arg::int(before.unwrap_or(i64::MAX)),
            Arg::int(i64::from(limit)),
        ];
        read_all(self, &sql, args, rows::audit).await
    }

    // ---- warehouses ----

    async fn create_warehouse(&self, w: &WarehouseRecord) -> Result<()> {
        let sql = rows::WAREHOUSES.insert_sql(&[]);
        let args = rows::warehouse_args(w)?;
        self.write_one(
            "create_warehouse",
            Some(Change::Warehouse(w.id)),
            &sql,
            args,
        )
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
        let sql = "SELECT * FROM warehouses WHERE id = $1";
        read_one(self, sql, vec![Arg::uuid(id)], rows::warehouse).await
    }

    async fn get_warehouse_by_name(&self, name: &str) -> Result<Option<WarehouseRecord>> {
        let sql = "SELECT * FROM warehouses WHERE name = $1";
        read_one(self, sql, vec![Arg::str(name)], rows::warehouse).await
    }

    async fn list_warehouses(&self) -> Result<Vec<WarehouseRecord>> {
        let sql = "SELECT * FROM warehouses ORDER BY name";
        read_all(self, sql, vec![], rows::warehouse).await
    }

    async fn update_warehouse(&self, w: &WarehouseRecord) -> Result<()> {
        // Every column but the id and created_at.
        let (sql, args) = rows::update_row(
            &rows::WAREHOUSES,
            rows::warehouse_args(w)?,
            "id",
            &["created_at"],
        );
        let done = self
            .write_one(
                "update_warehouse",
                Some(Change::Warehouse(w.id)),
                &sql,
                args,
            )
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
            let mut tx = self.begin().await?;
            // FOR UPDATE: conflicts with the FOR KEY SHARE lock that inserting a namespace or
            // a deleted table takes through its foreign key.
            let sql = format!(
                "SELECT name FROM warehouses WHERE id = $1{}",
                for_update::<B>("")
            );
            let Some(row) = B::fetch_optional(&mut tx, &sql, vec![Arg::uuid(id)]).await? else {
                return Err(StoreError::NotFound(format!("warehouse {id}")));
            };
            let name = row.text("name")?;
            // Deleted tables count: their files still live under the warehouse until purged.
            let busy = exists::<B>(
                &mut tx,
                "SELECT EXISTS(SELECT 1 FROM namespaces WHERE warehouse_id = $1) \
                 OR EXISTS(SELECT 1 FROM deleted_tables WHERE warehouse_id = $1)",
                vec![Arg::uuid(id)],
            )
            .await?;
            if busy {
                return Err(StoreError::NotEmpty(format!("warehouse {name}")));
            }
            let sql = "DELETE FROM warehouses WHERE id = $1";
            B::execute(&mut tx, sql, vec![Arg::uuid(id)]).await?;
            B::commit(tx, Some(Change::Warehouse(id))).await
        })
        .await
    }

    // ---- namespaces ----

    async fn create_namespace(&self, ns: &NamespaceRecord) -> Result<()> {
        self.retrying("create_namespace", move || async move {
            let mut tx = self.begin().await?;
            let parent_id = match ns.name.parent() {
                Some(parent) => Some(
                    namespace_id::<B>(&mut tx, ns.warehouse_id, &parent)
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
            let sql = rows::NAMESPACES.insert_sql(&[]);
            let args = rows::namespace_args(ns, parent_id)?;
            B::execute(&mut tx, &sql, args).await.map_err(|e| {
                map_constraint(
                    e,
                    || format!("namespace {}", ns.name),
                    || format!("warehouse {}", ns.warehouse_id),
                )
            })?;
            B::commit(tx, None).await
        })
        .await
    }

    async fn get_namespace(
        &self,
        warehouse_id: Uuid,
        name: &NamespaceName,
    ) -> Result<Option<NamespaceRecord>> {
        let mut conn = self.read().await?;
        fetch_namespace::<B>(&mut conn, warehouse_id, name, false).await
    }

    async fn list_namespaces(
        &self,
        warehouse_id: Uuid,
        parent: Option<&NamespaceName>,
        page: &Page,
    ) -> Result<Vec<NamespaceRecord>> {
        let mut conn = self.read().await?;
        let columns = rows::NAMESPACES.select_list("");
        let (sql, first) = match parent {
            None => (
                format!(
                    "SELECT {columns} FROM namespaces \
                     WHERE warehouse_id = $1 AND parent_id IS NULL AND name > $2 \
                     ORDER BY name LIMIT $3"
                ),
                Arg::uuid(warehouse_id),
            ),
            Some(parent) => (
                format!(
                    "SELECT {columns} FROM namespaces \
                     WHERE parent_id = $1 AND name > $2 ORDER BY name LIMIT $3"
                ),
                Arg::string(namespace_id::<B>(&mut conn, warehouse_id, parent).await?),
            ),
        };
        let args = vec![first, after_of(page), limit_of::<B>(page)];
        let rows = B::fetch_all(&mut conn, &sql, args).await?;
        rows.iter().map(rows::namespace).collect()
    }

    async fn update_namespace_properties(
        &self,
        warehouse_id: Uuid,
        name: &NamespaceName,
        removals: &[String],
        updates: &HashMap<String, String>,
    ) -> Result<NamespaceRecord> {
        self.retrying("update_namespace_properties", move || async move {
            let mut tx = self.begin().await?;
            let Some(mut ns) = fetch_namespace::<B>(&mut tx, warehouse_id, name, true).await?
            else {
                return Err(StoreError::NotFound(format!("namespace {name}")));
            };
            for k in removals {
                ns.properties.remove(k);
            }
            ns.properties
                .extend(updates.iter().map(|(k, v)| (k.clone(), v.clone())));
            ns.updated_at = now();
            let sql = "UPDATE namespaces SET properties = $1, updated_at = $2 WHERE id = $3";
            let args = vec![
                Arg::string(rows::to_json(&ns.properties)?),
                Arg::time(ns.updated_at),
                Arg::uuid(ns.id),
            ];
            B::execute(&mut tx, sql, args).await?;
            B::commit(tx, None).await?;
            Ok(ns)
        })
        .await
    }

    async fn drop_namespace(&self, warehouse_id: Uuid, name: &NamespaceName) -> Result<()> {
        self.retrying("drop_namespace", move || async move {
            let mut tx = self.begin().await?;
            // The row lock conflicts with the FOR KEY SHARE lock a child insert takes through
            // its foreign key, so no child namespace or table can appear between check and
            // delete (SQLite: the writer lock).
            let Some(ns) = fetch_namespace::<B>(&mut tx, warehouse_id, name, true).await? else {
                return Err(StoreError::NotFound(format!("namespace {name}")));
            };
            let id = ns.id.to_string();
            let busy = exists::<B>(
                &mut tx,
                "SELECT EXISTS(SELECT 1 FROM namespaces WHERE parent_id = $1) \
                 OR EXISTS(SELECT 1 FROM tables WHERE namespace_id = $1) \
                 OR EXISTS(SELECT 1 FROM views WHERE namespace_id = $1)",
                vec![Arg::str(&id)],
            )
            .await?;
            if busy {
                return Err(StoreError::NotEmpty(format!("namespace {name}")));
            }
            let sql = "DELETE FROM namespaces WHERE id = $1";
            B::execute(&mut tx, sql, vec![Arg::str(&id)]).await?;
            B::commit(tx, None).await
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
        let kind = EntityKind::Table;
        soft_drop(
            self,
            kind,
            warehouse_id,
            namespace,
            name,
            deleted_at,
            expires_at,
            deleted_by,
            purge_requested,
        )
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
        let kind = EntityKind::View;
        soft_drop(
            self,
            kind,
            warehouse_id,
            namespace,
            name,
            deleted_at,
            expires_at,
            deleted_by,
            purge_requested,
        )
        .await
    }

    async fn list_deleted_tables(
        &self,
        warehouse_id: Uuid,
        page: &Page,
    ) -> Result<Vec<DeletedTableRecord>> {
        // Keyset paging on (deleted_at, id), both descending: a backwards range scan of
        // deleted_tables_by_deletion. The row-value comparison keeps it a single range.
        let columns = rows::deleted_columns();
        let (sql, args) = match page.after.as_deref() {
            None => (
                format!(
                    "SELECT {columns} FROM deleted_tables WHERE warehouse_id = $1 \
                     ORDER BY deleted_at DESC, id DESC LIMIT $2"
                ),
                vec![Arg::uuid(warehouse_id), limit_of::<B>(page)],
            ),
            Some(after) => {
                let (at, id) = parse_deleted_page_key(after)?;
                (
                    format!(
                        "SELECT {columns} FROM deleted_tables \
                         WHERE warehouse_id = $1 AND (deleted_at, id) < ($2, $3) \
                         ORDER BY deleted_at DESC, id DESC LIMIT $4"
                    ),
                    vec![
                        Arg::uuid(warehouse_id),
                        Arg::int(at),
                        Arg::string(id),
                        limit_of::<B>(page),
                    ],
                )
            }
        };
        read_all(self, &sql, args, rows::deleted_table).await
    }

    async fn get_deleted_table(&self, table_id: Uuid) -> Result<Option<DeletedTableRecord>> {
        let sql = format!(
            "SELECT {} FROM deleted_tables WHERE id = $1",
            rows::deleted_columns()
        );
        read_one(self, &sql, vec![Arg::uuid(table_id)], rows::deleted_table).await
    }

    async fn undrop_table(&self, table_id: Uuid, new_name: Option<&str>) -> Result<TableRecord> {
        self.retrying("undrop_table", move || async move {
            let mut tx = self.begin().await?;
            let sql = format!(
                "SELECT {}, lease_until FROM deleted_tables WHERE id = $1{}",
                rows::deleted_columns(),
                for_update::<B>("")
            );
            let row = B::fetch_optional(&mut tx, &sql, vec![Arg::uuid(table_id)]).await?;
            let Some(row) = row else {
                return Err(StoreError::NotFound(format!("deleted table {table_id}")));
            };
            let deleted = rows::deleted_table(&row)?;
            let old = &deleted.table;
            // A purge worker holds the row and may already be deleting its files.
            let lease_until = row.opt_int("lease_until")?;
            if lease_until.is_some_and(|l| l > millis(now())) {
                return Err(StoreError::NotFound(format!(
                    "deleted {} (a purge is in progress)",
                    table_label(&old.namespace, &old.name)
                )));
            }
            // By name, not by the stored id: the namespace may have been dropped and recreated.
            let Some(ns) =
                fetch_namespace::<B>(&mut tx, old.warehouse_id, &old.namespace, false).await?
            else {
                return Err(StoreError::NotFound(format!("namespace {}", old.namespace)));
            };
            let name = new_name.unwrap_or(&old.name);
            B::lock_locations(&mut tx, old.warehouse_id).await?;
            if let Some(holder) = name_holder::<B>(&mut tx, &ns.id.to_string(), name).await? {
                return Err(holder.taken(&ns.name, name));
            }
            // No overlap check: the location stayed reserved while the table was deleted, so
            // nothing can have been created over it since (like an update, which only checks
            // a moved table). The rest of the row comes back exactly as it was dropped.
            let table = TableRecord {
                namespace_id: ns.id,
                namespace: ns.name,
                name: name.to_string(),
                ..deleted.table
            };
            insert_entity::<B>(&mut tx, deleted.kind, &table, &table.namespace).await?;
            let sql = "DELETE FROM deleted_tables WHERE id = $1";
            B::execute(&mut tx, sql, vec![Arg::uuid(table_id)]).await?;
            B::commit(tx, Some(Change::Table(table_id))).await?;
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
        // One statement. SQLite: one write transaction that takes the write lock before
        // reading, so a concurrent claimer's UPDATE runs entirely before or after this one and
        // skips the rows leased here. PostgreSQL: rows another claimer holds (row-locked by
        // its in-flight UPDATE) are skipped rather than waited for; rows it claimed and
        // committed meanwhile are re-checked against their new version by FOR UPDATE and fail
        // the lease condition. Either way concurrent claimers never receive the same row.
        let sql = format!(
            "UPDATE deleted_tables SET lease_until = $1 WHERE id IN ( \
               SELECT id FROM deleted_tables \
               WHERE expires_at <= $2 AND (lease_until IS NULL OR lease_until <= $2) \
               ORDER BY expires_at, id LIMIT $3{} \
             ) RETURNING {}",
            if B::ROW_LOCKS {
                " FOR UPDATE SKIP LOCKED"
            } else {
                ""
            },
            rows::deleted_columns()
        );
        let args = vec![
            Arg::time(lease_until),
            Arg::time(now),
            Arg::int(i64::from(limit)),
        ];
        let mut conn = self.write_conn().await?;
        let rows = B::fetch_all(&mut conn, &sql, args).await?;
        let mut claimed = rows
            .iter()
            .map(rows::deleted_table)
            .collect::<Result<Vec<_>>>()?;
        // RETURNING has no defined order.
        claimed.sort_by_key(|d| (d.expires_at, d.table.id));
        Ok(claimed)
    }

    async fn forget_deleted_table(&self, table_id: Uuid) -> Result<()> {
        delete_by_id(self, "deleted_tables", "deleted table", table_id, None).await
    }

    async fn purge_deleted_table(&self, table_id: Uuid, audit: &AuditRecord) -> Result<()> {
        let deleted = self
            .retrying("purge_deleted_table", move || async move {
                let mut tx = self.begin().await?;
                let sql = "DELETE FROM deleted_tables WHERE id = $1";
                if B::execute(&mut tx, sql, vec![Arg::uuid(table_id)]).await? == 0 {
                    return Ok(false);
                }
                let sql = rows::AUDIT_LOG.insert_sql(rows::AUDIT_GENERATED);
                B::execute(&mut tx, &sql, rows::audit_args(audit)).await?;
                B::commit(tx, None).await?;
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
            rows::entity_select(&rows::TABLES, "t"),
            numbered_placeholders(1, candidates.len()),
        );
        let args = candidates.iter().map(|c| Arg::str(c)).collect();
        read_one(self, &sql, args, rows::table).await
    }

    // ---- tables ----

    async fn get_table(
        &self,
        warehouse_id: Uuid,
        namespace: &NamespaceName,
        name: &str,
    ) -> Result<Option<TableRecord>> {
        let mut conn = self.read().await?;
        let kind = EntityKind::Table;
        fetch_entity::<B>(&mut conn, kind, warehouse_id, namespace, name, false).await
    }

    async fn get_table_by_id(&self, table_id: Uuid) -> Result<Option<TableRecord>> {
        let mut conn = self.read().await?;
        fetch_entity_by_id::<B>(&mut conn, EntityKind::Table, table_id).await
    }

    async fn list_tables(
        &self,
        warehouse_id: Uuid,
        namespace: &NamespaceName,
        page: &Page,
    ) -> Result<Vec<TableSummary>> {
        list_entities(self, EntityKind::Table, warehouse_id, namespace, page).await
    }

    async fn drop_table(
        &self,
        warehouse_id: Uuid,
        namespace: &NamespaceName,
        name: &str,
    ) -> Result<TableRecord> {
        drop_entity(self, EntityKind::Table, warehouse_id, namespace, name).await
    }

    async fn rename_table(
        &self,
        warehouse_id: Uuid,
        from_namespace: &NamespaceName,
        from_name: &str,
        to_namespace: &NamespaceName,
        to_name: &str,
    ) -> Result<()> {
        let kind = EntityKind::Table;
        rename_entity(
            self,
            kind,
            warehouse_id,
            from_namespace,
            from_name,
            to_namespace,
            to_name,
        )
        .await
    }

    async fn commit(&self, ops: &[CommitOp]) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        self.commit_ops(ops).await
    }

    async fn location_overlaps(
        &self,
        warehouse_id: Uuid,
        location: &str,
        except_table: Option<Uuid>,
    ) -> Result<Option<String>> {
        let mut conn = self.read().await?;
        find_overlap::<B>(&mut conn, warehouse_id, location, except_table).await
    }

    // ---- views ----

    async fn create_view(&self, v: &ViewRecord) -> Result<()> {
        let t = &TableRecord::from(v.clone());
        self.retrying("create_view", move || async move {
            let mut tx = self.begin().await?;
            B::lock_locations(&mut tx, t.warehouse_id).await?;
            create_entity::<B>(&mut tx, EntityKind::View, t).await?;
            B::commit(tx, None).await
        })
        .await
    }

    async fn get_view(
        &self,
        warehouse_id: Uuid,
        namespace: &NamespaceName,
        name: &str,
    ) -> Result<Option<ViewRecord>> {
        let mut conn = self.read().await?;
        let kind = EntityKind::View;
        let view = fetch_entity::<B>(&mut conn, kind, warehouse_id, namespace, name, false);
        Ok(view.await?.map(Into::into))
    }

    async fn get_view_by_id(&self, view_id: Uuid) -> Result<Option<ViewRecord>> {
        let mut conn = self.read().await?;
        let view = fetch_entity_by_id::<B>(&mut conn, EntityKind::View, view_id).await?;
        Ok(view.map(Into::into))
    }

    async fn list_views(
        &self,
        warehouse_id: Uuid,
        namespace: &NamespaceName,
        page: &Page,
    ) -> Result<Vec<TableSummary>> {
        list_entities(self, EntityKind::View, warehouse_id, namespace, page).await
    }

    async fn update_view(
        &self,
        view_id: Uuid,
        expected_metadata_location: &str,
        new_metadata_location: &str,
        new_metadata_json: &str,
        new_location: &str,
    ) -> Result<()> {
        let update = &EntityUpdate {
            kind: EntityKind::View,
            id: view_id,
            expected_metadata_location,
            new_metadata_location,
            new_metadata_json,
            new_location,
        };
        self.retrying("update_view", move || async move {
            let mut tx = self.begin().await?;
            update.apply::<B>(&mut tx).await?;
            B::commit(tx, None).await
        })
        .await
    }

    async fn drop_view(
        &self,
        warehouse_id: Uuid,
        namespace: &NamespaceName,
        name: &str,
    ) -> Result<ViewRecord> {
        let view = drop_entity(self, EntityKind::View, warehouse_id, namespace, name);
        Ok(view.await?.into())
    }

    async fn rename_view(
        &self,
        warehouse_id: Uuid,
        from_namespace: &NamespaceName,
        from_name: &str,
        to_namespace: &NamespaceName,
        to_name: &str,
    ) -> Result<()> {
        let kind = EntityKind::View;
        rename_entity(
            self,
            kind,
            warehouse_id,
            from_namespace,
            from_name,
            to_namespace,
            to_name,
        )
        .await
    }
}
