//! Catalog state behind one trait. The SQLite implementation is the embedded default; the
//! PostgreSQL implementation ([`PostgresStore`]) serves scale-out deployments. Stores know rows and transactions only:
//! no HTTP, no policies, no Iceberg metadata semantics (metadata is opaque JSON here).

mod backend;
mod catalog;
mod model;
mod postgres;
mod rows;
mod sqlite;
pub mod transfer;

pub use model::*;
pub use postgres::{PgOptions, PostgresStore, CHANGE_CHANNEL};
pub use sqlite::{is_busy_error, SqliteStore};
/// Re-exported so callers can classify database errors without depending on sqlx.
pub use sqlx::Error as SqlxError;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sluice_core::NamespaceName;
use std::collections::HashMap;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// Compare-and-swap lost: the row changed since the caller read it.
    #[error("commit conflict: {0}")]
    Conflict(String),
    #[error("{0} is not empty")]
    NotEmpty(String),
    /// A table location that equals, contains or lies inside another table's location.
    #[error("location overlaps {0}")]
    LocationOverlap(String),
    #[error("invalid stored data: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A committed change that other processes sharing the database must not keep serving
/// from a cache. Delivered by [`CatalogStore::subscribe_changes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Users, access keys, external identities, groups, memberships, policies or
    /// attachments: anything an authorization decision or a login depends on.
    Identity,
    /// A warehouse was created, updated (profile, credential, name, status) or deleted.
    Warehouse(Uuid),
    /// A table's (or view's) row changed: a commit or register moved its metadata pointer,
    /// or it was renamed, dropped or undropped. Caches of its metadata must go.
    Table(Uuid),
    /// The feed broke (connection to the database lost, or this subscriber fell behind):
    /// changes may have been missed. Drop every cached value and do not rely on the feed
    /// until [`Change::Resumed`].
    Lost,
    /// The feed works again after [`Change::Lost`]; changes made while it was down were not
    /// delivered, so drop every cached value once more.
    Resumed,
}

/// Receives every [`Change`] committed by any process, including this one.
pub type ChangeReceiver = tokio::sync::broadcast::Receiver<Change>;

/// Keyset paging: rows come back ordered by name; `after` is the last name the caller saw.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub after: Option<String>,
    pub limit: Option<u32>,
}

/// One table's part of an atomic (possibly multi-table) commit.
#[derive(Debug, Clone)]
pub enum CommitOp {
    /// Create a table (create-table, or a commit whose requirements assert the table is new).
    /// Fails with AlreadyExists if the name is taken, LocationOverlap if the location
    /// collides, NotFound if the namespace is gone.
    Create(TableRecord),
    /// Compare-and-swap on the metadata location: succeeds only if the table still has
    /// `expected_metadata_location`, otherwise `StoreError::Conflict`.
    Update {
        table_id: Uuid,
        expected_metadata_location: String,
        new_metadata_location: String,
        new_metadata_json: String,
        /// The table's location may change through a `set-location` update.
        new_location: String,
    },
}

impl CommitOp {
    /// The table this op creates or moves.
    pub fn table_id(&self) -> Uuid {
        match self {
            CommitOp::Create(t) => t.id,
            CommitOp::Update { table_id, .. } => *table_id,
        }
    }
}

#[async_trait]
pub trait CatalogStore: Send + Sync + 'static {
    // ---- cross-process change feed ----
    /// Subscribes to changes committed through any process sharing this database, so a
    /// replica can drop what it caches. None when the backend is only ever used by one
    /// process (SQLite): the caller's own writes are all there is, and it knows them.
    async fn subscribe_changes(&self) -> Result<Option<ChangeReceiver>> {
        Ok(None)
    }

    // ---- server settings (small key/value facts such as "bootstrap done") ----
    async fn get_setting(&self, key: &str) -> Result<Option<String>>;
    async fn set_setting(&self, key: &str, value: &str) -> Result<()>;

    // ---- users and access keys ----
    /// AlreadyExists if the name is taken.
    async fn create_user(&self, user: &UserRecord) -> Result<()>;
    async fn get_user(&self, id: Uuid) -> Result<Option<UserRecord>>;
    async fn get_user_by_name(&self, name: &str) -> Result<Option<UserRecord>>;
    async fn list_users(&self) -> Result<Vec<UserRecord>>;
    /// The user must exist (NotFound otherwise); AlreadyExists on a duplicate key id.
    async fn create_access_key(&self, key: &AccessKeyRecord) -> Result<()>;
    async fn get_access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRecord>>;
    async fn list_access_keys(&self, user_id: Uuid) -> Result<Vec<AccessKeyRecord>>;
    async fn touch_access_key(&self, access_key_id: &str, at: DateTime<Utc>) -> Result<()>;
    /// NotFound if absent.
    async fn delete_access_key(&self, access_key_id: &str) -> Result<()>;

    // ---- users (beyond creation) ----
    /// Replaces email, friendly_name and source of the user with `user.id`. NotFound if absent.
    async fn update_user(&self, user: &UserRecord) -> Result<()>;
    /// Deletes the user with its access keys, memberships and policy attachments (one
    /// transaction). NotFound if absent.
    async fn delete_user(&self, id: Uuid) -> Result<()>;

    // ---- external identities ----
    async fn get_external_identity(
        &self,
        source: &str,
        subject: &str,
    ) -> Result<Option<ExternalIdentityRecord>>;
    /// AlreadyExists if (source, subject) is linked already; NotFound if the user is absent.
    async fn create_external_identity(&self, rec: &ExternalIdentityRecord) -> Result<()>;
    /// Links of one user, ordered by (source, subject).
    async fn list_external_identities(&self, user_id: Uuid) -> Result<Vec<ExternalIdentityRecord>>;
    /// NotFound if absent.
    async fn delete_external_identity(&self, source: &str, subject: &str) -> Result<()>;
    /// Creates the user and links the identity in ONE transaction, so two first logins of
    /// the same identity at once end with one user: AlreadyExists (nothing written) if the
    /// identity is linked meanwhile or the user name is taken. Also adds the user to the
    /// given groups (ids), which must exist (NotFound otherwise).
    async fn create_user_with_identity(
        &self,
        user: &UserRecord,
        identity: &ExternalIdentityRecord,
        group_ids: &[Uuid],
    ) -> Result<()>;

    // ---- groups ----
    /// AlreadyExists if the name is taken.
    async fn create_group(&self, group: &GroupRecord) -> Result<()>;
    async fn get_group_by_name(&self, name: &str) -> Result<Option<GroupRecord>>;
    /// Ordered by name.
    async fn list_groups(&self) -> Result<Vec<GroupRecord>>;
    /// Deletes the group with its memberships and attachments. NotFound if absent.
    async fn delete_group(&self, id: Uuid) -> Result<()>;
    /// Idempotent. NotFound if the group or user is absent.
    async fn add_group_member(&self, group_id: Uuid, user_id: Uuid) -> Result<()>;
    /// NotFound if the user is not a member.
    async fn remove_group_member(&self, group_id: Uuid, user_id: Uuid) -> Result<()>;
    /// Ordered by user name.
    async fn list_group_members(&self, group_id: Uuid) -> Result<Vec<UserRecord>>;
    /// Ordered by group name.
    async fn list_user_groups(&self, user_id: Uuid) -> Result<Vec<GroupRecord>>;

    // ---- policies ----
    /// AlreadyExists if the name is taken.
    async fn create_policy(&self, policy: &PolicyRecord) -> Result<()>;
    async fn get_policy_by_name(&self, name: &str) -> Result<Option<PolicyRecord>>;
    /// Ordered by name.
    async fn list_policies(&self) -> Result<Vec<PolicyRecord>>;
    /// Replaces description, statements_json and updated_at of the policy with `policy.id`.
    /// NotFound if absent.
    async fn update_policy(&self, policy: &PolicyRecord) -> Result<()>;
    /// Deletes the policy and every attachment of it. NotFound if absent.
    async fn delete_policy(&self, id: Uuid) -> Result<()>;
    /// Idempotent. NotFound if the user or policy is absent.
    async fn attach_user_policy(&self, user_id: Uuid, policy_id: Uuid) -> Result<()>;
    /// NotFound if not attached.
    async fn detach_user_policy(&self, user_id: Uuid, policy_id: Uuid) -> Result<()>;
    /// Idempotent. NotFound if the group or policy is absent.
    async fn attach_group_policy(&self, group_id: Uuid, policy_id: Uuid) -> Result<()>;
    /// NotFound if not attached.
    async fn detach_group_policy(&self, group_id: Uuid, policy_id: Uuid) -> Result<()>;
    /// Policies attached directly to the user, ordered by name.
    async fn list_user_policies(&self, user_id: Uuid) -> Result<Vec<PolicyRecord>>;
    /// Policies attached to the group, ordered by name.
    async fn list_group_policies(&self, group_id: Uuid) -> Result<Vec<PolicyRecord>>;
    /// Every policy that applies to the user (direct, then via each group), in ONE query.
    /// A policy reachable several ways appears once per way. Ordered by (policy name,
    /// via_group with direct first).
    async fn effective_policies(&self, user_id: Uuid) -> Result<Vec<EffectivePolicy>>;

    // ---- audit log ----
    /// Appends and returns the assigned id (monotonically increasing).
    async fn append_audit(&self, record: &AuditRecord) -> Result<i64>;
    /// Newest first; `before` is an exclusive upper bound on id for paging.
    async fn list_audit(&self, before: Option<i64>, limit: u32) -> Result<Vec<AuditRecord>>;

    // ---- warehouses ----
    /// AlreadyExists if the name is taken.
    async fn create_warehouse(&self, w: &WarehouseRecord) -> Result<()>;
    async fn get_warehouse(&self, id: Uuid) -> Result<Option<WarehouseRecord>>;
    async fn get_warehouse_by_name(&self, name: &str) -> Result<Option<WarehouseRecord>>;
    async fn list_warehouses(&self) -> Result<Vec<WarehouseRecord>>;
    /// Replaces every mutable column of the row with `w` (matched by id). NotFound if
    /// absent, AlreadyExists if a rename collides.
    async fn update_warehouse(&self, w: &WarehouseRecord) -> Result<()>;
    /// NotEmpty while the warehouse holds namespaces or deleted tables not yet forgotten
    /// (checked in the same transaction).
    async fn delete_warehouse(&self, id: Uuid) -> Result<()>;

    // ---- namespaces ----
    /// AlreadyExists if present; NotFound if the parent level does not exist.
    async fn create_namespace(&self, ns: &NamespaceRecord) -> Result<()>;
    async fn get_namespace(
        &self,
        warehouse_id: Uuid,
        name: &NamespaceName,
    ) -> Result<Option<NamespaceRecord>>;
    /// Direct children of `parent` (top-level namespaces when None), ordered by storage key.
    async fn list_namespaces(
        &self,
        warehouse_id: Uuid,
        parent: Option<&NamespaceName>,
        page: &Page,
    ) -> Result<Vec<NamespaceRecord>>;
    /// Applies removals then updates in one transaction and returns the new row.
    async fn update_namespace_properties(
        &self,
        warehouse_id: Uuid,
        name: &NamespaceName,
        removals: &[String],
        updates: &HashMap<String, String>,
    ) -> Result<NamespaceRecord>;
    /// NotFound if absent; NotEmpty if it has child namespaces, tables or views. Soft-deleted tables
    /// of the namespace do not count (undropping them later fails while it is gone).
    async fn drop_namespace(&self, warehouse_id: Uuid, name: &NamespaceName) -> Result<()>;

    // ---- soft deletion ----
    /// Moves the table out of the live catalog into the deleted-tables list in one
    /// transaction (its name becomes free at once; its location stays reserved, so
    /// `location_overlaps` keeps reporting it). NotFound if absent.
    // One row's worth of facts about the drop; a struct would only be unpacked again.
    #[allow(clippy::too_many_arguments)]
    async fn soft_drop_table(
        &self,
        warehouse_id: Uuid,
        namespace: &NamespaceName,
        name: &str,
        deleted_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        deleted_by: Option<&str>,
        purge_requested: bool,
    ) -> Result<DeletedTableRecord>;
    /// [`Self::soft_drop_table`] for a view: it joins the same deleted list (kind
    /// [`EntityKind::View`]), so listing, undrop, claim and purge serve both. NotFound if
    /// absent.
    #[allow(clippy::too_many_arguments)]
    async fn soft_drop_view(
        &self,
        warehouse_id: Uuid,
        namespace: &NamespaceName,
        name: &str,
        deleted_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        deleted_by: Option<&str>,
        purge_requested: bool,
    ) -> Result<DeletedTableRecord>;
    /// Deleted tables and views of a warehouse, newest deletion first (ordered by deleted_at, then id,
    /// both descending). Paging: `page.after` is the [`DeletedTableRecord::page_key`] of the
    /// last row seen; a malformed key is NotFound (a stale or forged page token).
    async fn list_deleted_tables(
        &self,
        warehouse_id: Uuid,
        page: &Page,
    ) -> Result<Vec<DeletedTableRecord>>;
    async fn get_deleted_table(&self, table_id: Uuid) -> Result<Option<DeletedTableRecord>>;
    /// Puts a deleted table (or view, by the entry's kind: the returned record then holds the
    /// view's row) back under its old namespace and name (or `new_name`). NotFound
    /// if it is not in the deleted list, is leased by a purge in progress, or its namespace
    /// is gone (a namespace dropped and recreated under the same name counts as present);
    /// AlreadyExists if the name is taken again.
    async fn undrop_table(&self, table_id: Uuid, new_name: Option<&str>) -> Result<TableRecord>;
    /// Claims up to `limit` deleted tables whose expiry has passed and that no other worker
    /// holds, leasing them until `lease_until` (a crashed worker's lease simply runs out).
    /// Eligible: `expires_at <= now` and no lease or `lease_until <= now`. Atomic: concurrent
    /// claimers never receive the same row. Returned oldest expiry first.
    async fn claim_expired_deleted_tables(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<DeletedTableRecord>>;
    /// Removes a deleted table for good (after its files were purged). NotFound if absent.
    async fn forget_deleted_table(&self, table_id: Uuid) -> Result<()>;
    /// Removes a deleted table for good and appends `audit` in ONE transaction, so the log
    /// records each removal exactly once even if the process dies right after. NotFound
    /// (and nothing appended) if absent, e.g. removed meanwhile by another worker.
    async fn purge_deleted_table(&self, table_id: Uuid, audit: &AuditRecord) -> Result<()>;

    /// The live table whose location equals or contains `location` (any warehouse), for
    /// mapping an object URL back to its table. Compared on '/'-separated prefixes, ignoring
    /// trailing slashes; if legacy overlapping tables both match, the innermost wins.
    async fn table_containing_location(&self, location: &str) -> Result<Option<TableRecord>>;

    // ---- tables ----
    async fn get_table(
        &self,
        warehouse_id: Uuid,
        namespace: &NamespaceName,
        name: &str,
    ) -> Result<Option<TableRecord>>;
    async fn get_table_by_id(&self, table_id: Uuid) -> Result<Option<TableRecord>>;
    /// Tables directly in `namespace`, ordered by name. NotFound if the namespace is absent.
    async fn list_tables(
        &self,
        warehouse_id: Uuid,
        namespace: &NamespaceName,
        page: &Page,
    ) -> Result<Vec<TableSummary>>;
    /// Removes the row and returns it. NotFound if absent.
    async fn drop_table(
        &self,
        warehouse_id: Uuid,
        namespace: &NamespaceName,
        name: &str,
    ) -> Result<TableRecord>;
    /// NotFound if the source table or the destination namespace is absent; AlreadyExists
    /// if the destination name is taken.
    async fn rename_table(
        &self,
        warehouse_id: Uuid,
        from_namespace: &NamespaceName,
        from_name: &str,
        to_namespace: &NamespaceName,
        to_name: &str,
    ) -> Result<()>;
    /// All ops in one database transaction: every op applies or none does.
    async fn commit(&self, ops: &[CommitOp]) -> Result<()>;
    /// Does any table in the warehouse have a location equal to, containing, or inside
    /// `location` (ignoring `except_table`)? Compared on '/'-separated prefixes. Deleted
    /// tables not yet forgotten count too (their files still exist).
    async fn location_overlaps(
        &self,
        warehouse_id: Uuid,
        location: &str,
        except_table: Option<Uuid>,
    ) -> Result<Option<String>>;

    // ---- views ----
    // Views and tables share one name space per namespace: every operation that claims a
    // name (creating or renaming a table or view, undropping either) fails with
    // AlreadyExists if a table OR a view holds it, checked inside its write transaction.

    /// AlreadyExists if the name is taken by a view or a table, or the id by another view
    /// (live or soft-deleted);
    /// NotFound if the namespace is absent.
    async fn create_view(&self, view: &ViewRecord) -> Result<()>;
    async fn get_view(
        &self,
        warehouse_id: Uuid,
        namespace: &NamespaceName,
        name: &str,
    ) -> Result<Option<ViewRecord>>;
    async fn get_view_by_id(&self, view_id: Uuid) -> Result<Option<ViewRecord>>;
    /// Views directly in `namespace`, ordered by name. NotFound if the namespace is absent.
    async fn list_views(
        &self,
        warehouse_id: Uuid,
        namespace: &NamespaceName,
        page: &Page,
    ) -> Result<Vec<TableSummary>>;
    /// Compare-and-swap on the metadata location, like [`CommitOp::Update`] for tables:
    /// Conflict if the view no longer has `expected_metadata_location`, NotFound if absent.
    async fn update_view(
        &self,
        view_id: Uuid,
        expected_metadata_location: &str,
        new_metadata_location: &str,
        new_metadata_json: &str,
        new_location: &str,
    ) -> Result<()>;
    /// Removes the row and returns it. NotFound if absent.
    async fn drop_view(
        &self,
        warehouse_id: Uuid,
        namespace: &NamespaceName,
        name: &str,
    ) -> Result<ViewRecord>;
    /// NotFound if the source view or the destination namespace is absent; AlreadyExists if
    /// a table or view holds the destination name.
    async fn rename_view(
        &self,
        warehouse_id: Uuid,
        from_namespace: &NamespaceName,
        from_name: &str,
        to_namespace: &NamespaceName,
        to_name: &str,
    ) -> Result<()>;
}
