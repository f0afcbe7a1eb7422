//! Each stored table's columns, written once: the list (used by the INSERT statements, the
//! SELECT lists, and the export/import dump format in [`crate::transfer`]), and beside it how
//! a record becomes that row ([`Arg`]s in column order) and how a row becomes the record.
//! A column added to a record is added here, in its table's block, and in one migration per
//! backend; `tests::rows_match_their_columns` fails if the list and the encoder disagree.

use crate::backend::{Arg, Args, RowAccess};
use crate::{
    AccessKeyRecord, AuditRecord, DeletedTableRecord, EntityKind, ExternalIdentityRecord,
    GroupRecord, NamespaceRecord, PolicyRecord, Result, StoreError, TableRecord, UserRecord,
    WarehouseRecord, WarehouseStatus,
};
use serde::{Deserialize, Serialize};
use sluice_core::NamespaceName;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    Text,
    /// 64-bit integer (ids of the audit log, unix-millisecond timestamps).
    Int,
    /// Bytes; base64 (standard alphabet, padded) in the dump.
    Blob,
    /// BOOLEAN in PostgreSQL, 0/1 INTEGER in SQLite.
    Bool,
}

use ColumnType::{Blob, Bool, Int, Text};

pub struct TableSpec {
    pub name: &'static str,
    pub columns: &'static [(&'static str, ColumnType)],
    /// Export order. Parents precede children: a namespace's storage key is a prefix of its
    /// children's keys, so (warehouse_id, name) order inserts parents first.
    pub order_by: &'static str,
}

impl TableSpec {
    pub fn column_names(&self) -> impl Iterator<Item = &'static str> {
        self.columns.iter().map(|c| c.0)
    }

    /// `c1, c2, ...`, each prefixed with `alias.` if given.
    pub fn select_list(&self, alias: &str) -> String {
        self.column_names()
            .map(|c| {
                if alias.is_empty() {
                    c.to_string()
                } else {
                    format!("{alias}.{c}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `INSERT INTO t (every column but `skip`) VALUES ($1, ...)`.
    pub fn insert_sql(&self, skip: &[&str]) -> String {
        let cols: Vec<&str> = self.column_names().filter(|c| !skip.contains(c)).collect();
        format!(
            "INSERT INTO {} ({}) VALUES ({})",
            self.name,
            cols.join(", "),
            numbered_placeholders(1, cols.len())
        )
    }
}

/// `UPDATE t SET <every column but `key` and `keep`> WHERE key = ...` for `row` (a whole row
/// in column order, as the table's encoder yields it), with the values it needs.
pub fn update_row<'a>(
    spec: &TableSpec,
    row: Args<'a>,
    key: &str,
    keep: &[&str],
) -> (String, Args<'a>) {
    let mut sets = Vec::new();
    let mut args = Vec::new();
    let mut key_arg = None;
    for ((column, _), arg) in spec.columns.iter().zip(row) {
        if *column == key {
            key_arg = Some(arg);
        } else if !keep.contains(column) {
            args.push(arg);
            sets.push(format!("{column} = ${}", args.len()));
        }
    }
    args.extend(key_arg);
    let sql = format!(
        "UPDATE {} SET {} WHERE {key} = ${}",
        spec.name,
        sets.join(", "),
        args.len()
    );
    (sql, args)
}

/// `$first, $first+1, ...` for `n` numbered parameters.
pub fn numbered_placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn to_json<T: Serialize>(v: &T) -> Result<String> {
    // Values and string maps always serialize; the error arm exists only to avoid a panic.
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(format!("serialize: {e}")))
}

// ---- settings and link tables (no record type) ----

pub const SETTINGS: TableSpec = TableSpec {
    name: "settings",
    columns: &[("key", Text), ("value", Text)],
    order_by: "key",
};

pub const GROUP_MEMBERS: TableSpec = TableSpec {
    name: "group_members",
    columns: &[("group_id", Text), ("user_id", Text)],
    order_by: "group_id, user_id",
};

pub const USER_POLICIES: TableSpec = TableSpec {
    name: "user_policies",
    columns: &[("user_id", Text), ("policy_id", Text)],
    order_by: "user_id, policy_id",
};

pub const GROUP_POLICIES: TableSpec = TableSpec {
    name: "group_policies",
    columns: &[("group_id", Text), ("policy_id", Text)],
    order_by: "group_id, policy_id",
};

// ---- users ----

pub const USERS: TableSpec = TableSpec {
    name: "users",
    columns: &[
        ("id", Text),
        ("name", Text),
        ("email", Text),
        ("friendly_name", Text),
        ("source", Text),
        ("created_at", Int),
    ],
    order_by: "id",
};

pub fn user_args(u: &UserRecord) -> Args<'_> {
    vec![
        Arg::uuid(u.id),
        Arg::str(&u.name),
        Arg::opt_str(u.email.as_deref()),
        Arg::opt_str(u.friendly_name.as_deref()),
        Arg::str(&u.source),
        Arg::time(u.created_at),
    ]
}

pub fn user(r: &impl RowAccess) -> Result<UserRecord> {
    Ok(UserRecord {
        id: r.uuid("id")?,
        name: r.text("name")?,
        email: r.opt_text("email")?,
        friendly_name: r.opt_text("friendly_name")?,
        source: r.text("source")?,
        created_at: r.time("created_at")?,
    })
}

// ---- access keys ----

pub const ACCESS_KEYS: TableSpec = TableSpec {
    name: "access_keys",
    columns: &[
        ("access_key_id", Text),
        ("user_id", Text),
        ("secret_ciphertext", Blob),
        ("created_at", Int),
        ("last_used_at", Int),
    ],
    order_by: "access_key_id",
};

pub fn access_key_args(k: &AccessKeyRecord) -> Args<'_> {
    vec![
        Arg::str(&k.access_key_id),
        Arg::uuid(k.user_id),
        Arg::bytes(&k.secret_ciphertext),
        Arg::time(k.created_at),
        Arg::opt_time(k.last_used_at),
    ]
}

pub fn access_key(r: &impl RowAccess) -> Result<AccessKeyRecord> {
    Ok(AccessKeyRecord {
        access_key_id: r.text("access_key_id")?,
        user_id: r.uuid("user_id")?,
        secret_ciphertext: r.blob("secret_ciphertext")?,
        created_at: r.time("created_at")?,
        last_used_at: r.opt_time("last_used_at")?,
    })
}

// ---- external identities ----

pub const EXTERNAL_IDENTITIES: TableSpec = TableSpec {
    name: "external_identities",
    columns: &[
        ("source", Text),
        ("subject", Text),
        ("user_id", Text),
        ("created_at", Int),
    ],
    order_by: "source, subject",
};

pub fn external_identity_args(rec: &ExternalIdentityRecord) -> Args<'_> {
    vec![
        Arg::str(&rec.source),
        Arg::str(&rec.subject),
        Arg::uuid(rec.user_id),
        Arg::time(rec.created_at),
    ]
}

pub fn external_identity(r: &impl RowAccess) -> Result<ExternalIdentityRecord> {
    Ok(ExternalIdentityRecord {
        source: r.text("source")?,
        subject: r.text("subject")?,
        user_id: r.uuid("user_id")?,
        created_at: r.time("created_at")?,
    })
}

// ---- groups ----

pub const GROUPS: TableSpec = TableSpec {
    name: "groups",
    columns: &[
        ("id", Text),
        ("name", Text),
        ("description", Text),
        ("created_at", Int),
    ],
    order_by: "id",
};

pub fn group_args(g: &GroupRecord) -> Args<'_> {
    vec![
        Arg::uuid(g.id),
        Arg::str(&g.name),
        Arg::opt_str(g.description.as_deref()),
        Arg::time(g.created_at),
    ]
}

pub fn group(r: &impl RowAccess) -> Result<GroupRecord> {
    Ok(GroupRecord {
        id: r.uuid("id")?,
        name: r.text("name")?,
        description: r.opt_text("description")?,
        created_at: r.time("created_at")?,
    })
}

// ---- policies ----

pub const POLICIES: TableSpec = TableSpec {
    name: "policies",
    columns: &[
        ("id", Text),
        ("name", Text),
        ("description", Text),
        ("statements_json", Text),
        ("builtin", Bool),
        ("created_at", Int),
        ("updated_at", Int),
    ],
    order_by: "id",
};

/// Policy columns of the table aliased `p`, named explicitly (`p.x AS x`) so joins and
/// compound SELECTs (whose ORDER BY matches result-column names) see plain names.
pub fn policy_columns() -> String {
    POLICIES
        .column_names()
        .map(|c| format!("p.{c} AS {c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn policy_args(p: &PolicyRecord) -> Args<'_> {
    vec![
        Arg::uuid(p.id),
        Arg::str(&p.name),
        Arg::opt_str(p.description.as_deref()),
        Arg::str(&p.statements_json),
        Arg::flag(p.builtin),
        Arg::time(p.created_at),
        Arg::time(p.updated_at),
    ]
}

pub fn policy(r: &impl RowAccess) -> Result<PolicyRecord> {
    Ok(PolicyRecord {
        id: r.uuid("id")?,
        name: r.text("name")?,
        description: r.opt_text("description")?,
        statements_json: r.text("statements_json")?,
        builtin: r.flag("builtin")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

// ---- audit log ----

pub const AUDIT_LOG: TableSpec = TableSpec {
    name: "audit_log",
    columns: &[
        ("id", Int),
        ("at", Int),
        ("actor_id", Text),
        ("actor_name", Text),
        ("action", Text),
        ("target", Text),
        ("result", Text),
        ("detail", Text),
    ],
    order_by: "id",
};

/// The store assigns the id (identity column / AUTOINCREMENT), so it is not inserted.
pub const AUDIT_GENERATED: &[&str] = &["id"];

/// Every column but the generated id.
pub fn audit_args(a: &AuditRecord) -> Args<'_> {
    vec![
        Arg::time(a.at),
        Arg::opt_uuid(a.actor_id),
        Arg::str(&a.actor_name),
        Arg::str(&a.action),
        Arg::str(&a.target),
        Arg::str(&a.result),
        Arg::opt_str(a.detail.as_deref()),
    ]
}

pub fn audit(r: &impl RowAccess) -> Result<AuditRecord> {
    Ok(AuditRecord {
        id: r.int("id")?,
        at: r.time("at")?,
        actor_id: r.opt_uuid("actor_id")?,
        actor_name: r.text("actor_name")?,
        action: r.text("action")?,
        target: r.text("target")?,
        result: r.text("result")?,
        detail: r.opt_text("detail")?,
    })
}

// ---- warehouses ----

pub const WAREHOUSES: TableSpec = TableSpec {
    name: "warehouses",
    columns: &[
        ("id", Text),
        ("name", Text),
        ("storage_profile", Text),
        ("storage_credential", Blob),
        ("delete_profile", Text),
        ("status", Text),
        ("location", Text),
        ("created_at", Int),
        ("updated_at", Int),
    ],
    order_by: "id",
};

pub fn warehouse_args(w: &WarehouseRecord) -> Result<Args<'_>> {
    Ok(vec![
        Arg::uuid(w.id),
        Arg::str(&w.name),
        Arg::string(to_json(&w.storage_profile)?),
        Arg::opt_bytes(w.storage_credential.as_deref()),
        Arg::string(to_json(&w.delete_profile)?),
        Arg::str(w.status.as_str()),
        Arg::str(&w.location),
        Arg::time(w.created_at),
        Arg::time(w.updated_at),
    ])
}

pub fn warehouse(r: &impl RowAccess) -> Result<WarehouseRecord> {
    let status = r.text("status")?;
    Ok(WarehouseRecord {
        id: r.uuid("id")?,
        name: r.text("name")?,
        storage_profile: r.json("storage_profile")?,
        storage_credential: r.opt_blob("storage_credential")?,
        delete_profile: r.json("delete_profile")?,
        status: WarehouseStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("warehouse status {status:?}")))?,
        location: r.text("location")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

// ---- namespaces ----

/// `name` is the full storage key (levels joined by U+001F); `parent_id` is not part of
/// the record (it follows from the name) but is stored for listing children.
pub const NAMESPACES: TableSpec = TableSpec {
    name: "namespaces",
    columns: &[
        ("id", Text),
        ("warehouse_id", Text),
        ("name", Text),
        ("parent_id", Text),
        ("properties", Text),
        ("created_at", Int),
        ("updated_at", Int),
    ],
    order_by: "warehouse_id, name",
};

pub fn namespace_args(ns: &NamespaceRecord, parent_id: Option<String>) -> Result<Args<'_>> {
    Ok(vec![
        Arg::uuid(ns.id),
        Arg::uuid(ns.warehouse_id),
        Arg::string(ns.name.storage_key()),
        Arg::Text(parent_id.map(Into::into)),
        Arg::string(to_json(&ns.properties)?),
        Arg::time(ns.created_at),
        Arg::time(ns.updated_at),
    ])
}

pub fn namespace(r: &impl RowAccess) -> Result<NamespaceRecord> {
    Ok(NamespaceRecord {
        id: r.uuid("id")?,
        warehouse_id: r.uuid("warehouse_id")?,
        name: NamespaceName::from_storage_key(&r.text("name")?),
        properties: r.json("properties")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

// ---- tables and views (the same columns) ----

pub const TABLES: TableSpec = TableSpec {
    name: "tables",
    columns: ENTITY_COLUMNS,
    order_by: "id",
};

pub const VIEWS: TableSpec = TableSpec {
    name: "views",
    columns: ENTITY_COLUMNS,
    order_by: "id",
};

const ENTITY_COLUMNS: &[(&str, ColumnType)] = &[
    ("id", Text),
    ("warehouse_id", Text),
    ("namespace_id", Text),
    ("name", Text),
    ("location", Text),
    ("metadata_location", Text),
    ("metadata_json", Text),
    ("created_at", Int),
    ("updated_at", Int),
];

/// Table and view queries always join the namespace (aliased `n`), because records carry
/// its name: `SELECT <columns of alias>, n.name AS ns_name FROM <table> <alias> JOIN ...`.
pub fn entity_select(spec: &TableSpec, alias: &str) -> String {
    format!(
        "SELECT {}, n.name AS ns_name FROM {} {alias} JOIN namespaces n ON n.id = {alias}.namespace_id ",
        spec.select_list(alias),
        spec.name
    )
}

pub fn table_args(t: &TableRecord) -> Args<'_> {
    vec![
        Arg::uuid(t.id),
        Arg::uuid(t.warehouse_id),
        Arg::uuid(t.namespace_id),
        Arg::str(&t.name),
        Arg::str(&t.location),
        Arg::str(&t.metadata_location),
        Arg::str(&t.metadata_json),
        Arg::time(t.created_at),
        Arg::time(t.updated_at),
    ]
}

/// A table (or view) row with its namespace's storage key as `ns_name`.
pub fn table(r: &impl RowAccess) -> Result<TableRecord> {
    Ok(TableRecord {
        id: r.uuid("id")?,
        warehouse_id: r.uuid("warehouse_id")?,
        namespace_id: r.uuid("namespace_id")?,
        namespace: NamespaceName::from_storage_key(&r.text("ns_name")?),
        name: r.text("name")?,
        location: r.text("location")?,
        metadata_location: r.text("metadata_location")?,
        metadata_json: r.text("metadata_json")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

// ---- deleted tables and views ----

pub const DELETED_TABLES: TableSpec = TableSpec {
    name: "deleted_tables",
    columns: &[
        ("id", Text),
        ("warehouse_id", Text),
        ("namespace_id", Text),
        ("namespace_name", Text),
        ("name", Text),
        ("location", Text),
        ("metadata_location", Text),
        ("metadata_json", Text),
        ("created_at", Int),
        ("updated_at", Int),
        ("deleted_at", Int),
        ("expires_at", Int),
        ("deleted_by", Text),
        ("purge_requested", Bool),
        ("lease_until", Int),
        ("kind", Text),
    ],
    order_by: "id",
};

/// Columns of `deleted_tables` that [`deleted_table`] decodes (the namespace key aliased
/// `ns_name` like [`entity_select`]'s, so the table part decodes with [`table`]).
pub fn deleted_columns() -> String {
    DELETED_TABLES
        .column_names()
        .filter(|c| *c != "lease_until")
        .map(|c| match c {
            "namespace_name" => "namespace_name AS ns_name".to_string(),
            c => c.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A fresh entry: no lease yet.
pub fn deleted_table_args(d: &DeletedTableRecord) -> Args<'_> {
    let t = &d.table;
    vec![
        Arg::uuid(t.id),
        Arg::uuid(t.warehouse_id),
        Arg::uuid(t.namespace_id),
        Arg::string(t.namespace.storage_key()),
        Arg::str(&t.name),
        Arg::str(&t.location),
        Arg::str(&t.metadata_location),
        Arg::str(&t.metadata_json),
        Arg::time(t.created_at),
        Arg::time(t.updated_at),
        Arg::time(d.deleted_at),
        Arg::time(d.expires_at),
        Arg::opt_str(d.deleted_by.as_deref()),
        Arg::flag(d.purge_requested),
        Arg::Int(None),
        Arg::str(d.kind.as_str()),
    ]
}

pub fn deleted_table(r: &impl RowAccess) -> Result<DeletedTableRecord> {
    let kind = r.text("kind")?;
    Ok(DeletedTableRecord {
        table: table(r)?,
        kind: EntityKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("deleted entry kind {kind:?}")))?,
        deleted_at: r.time("deleted_at")?,
        expires_at: r.time("expires_at")?,
        deleted_by: r.opt_text("deleted_by")?,
        purge_requested: r.flag("purge_requested")?,
    })
}

/// Every table of the catalog schema, in an order that satisfies the foreign keys: the
/// dump format of [`crate::transfer`].
pub const ALL_TABLES: &[&TableSpec] = &[
    &SETTINGS,
    &USERS,
    &ACCESS_KEYS,
    &WAREHOUSES,
    &NAMESPACES,
    &TABLES,
    &DELETED_TABLES,
    &VIEWS,
    &GROUPS,
    &GROUP_MEMBERS,
    &POLICIES,
    &USER_POLICIES,
    &GROUP_POLICIES,
    &AUDIT_LOG,
    &EXTERNAL_IDENTITIES,
];

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use uuid::Uuid;

    fn types(args: &Args<'_>) -> Vec<ColumnType> {
        args.iter()
            .map(|a| match a {
                Arg::Text(_) => Text,
                Arg::Int(_) => Int,
                Arg::Blob(_) => Blob,
                Arg::Flag(_) => Bool,
            })
            .collect()
    }

    fn columns(spec: &TableSpec, skip: &[&str]) -> Vec<ColumnType> {
        spec.columns
            .iter()
            .filter(|c| !skip.contains(&c.0))
            .map(|c| c.1)
            .collect()
    }

    /// Each encoder yields one value per column, in the list's order and of its type, so a
    /// column added to one and not the other cannot go unnoticed.
    #[test]
    fn rows_match_their_columns() {
        let now = Utc::now();
        let id = Uuid::new_v4();
        let ns = NamespaceName::new(vec!["a".to_string()]).unwrap();
        let table = TableRecord {
            id,
            warehouse_id: id,
            namespace_id: id,
            namespace: ns.clone(),
            name: "t".into(),
            location: "l".into(),
            metadata_location: "m".into(),
            metadata_json: "{}".into(),
            created_at: now,
            updated_at: now,
        };
        let user = UserRecord {
            id,
            name: "u".into(),
            email: None,
            friendly_name: None,
            source: "builtin".into(),
            created_at: now,
        };
        assert_eq!(types(&user_args(&user)), columns(&USERS, &[]));
        let key = AccessKeyRecord {
            access_key_id: "k".into(),
            user_id: id,
            secret_ciphertext: vec![1],
            created_at: now,
            last_used_at: None,
        };
        assert_eq!(types(&access_key_args(&key)), columns(&ACCESS_KEYS, &[]));
        let ext = ExternalIdentityRecord {
            source: "oidc".into(),
            subject: "s".into(),
            user_id: id,
            created_at: now,
        };
        assert_eq!(
            types(&external_identity_args(&ext)),
            columns(&EXTERNAL_IDENTITIES, &[])
        );
        let group = GroupRecord {
            id,
            name: "g".into(),
            description: None,
            created_at: now,
        };
        assert_eq!(types(&group_args(&group)), columns(&GROUPS, &[]));
        let policy = PolicyRecord {
            id,
            name: "p".into(),
            description: None,
            statements_json: "[]".into(),
            builtin: false,
            created_at: now,
            updated_at: now,
        };
        assert_eq!(types(&policy_args(&policy)), columns(&POLICIES, &[]));
        let audit_rec = AuditRecord {
            id: 0,
            at: now,
            actor_id: None,
            actor_name: "a".into(),
            action: "x".into(),
            target: "y".into(),
            result: "success".into(),
            detail: None,
        };
        assert_eq!(
            types(&audit_args(&audit_rec)),
            columns(&AUDIT_LOG, AUDIT_GENERATED)
        );
        let wh = WarehouseRecord {
            id,
            name: "w".into(),
            storage_profile: serde_json::json!({}),
            storage_credential: None,
            delete_profile: serde_json::json!({}),
            status: WarehouseStatus::Active,
            location: "l".into(),
            created_at: now,
            updated_at: now,
        };
        assert_eq!(
            types(&warehouse_args(&wh).unwrap()),
            columns(&WAREHOUSES, &[])
        );
        let namespace = NamespaceRecord {
            id,
            warehouse_id: id,
            name: ns,
            properties: Default::default(),
            created_at: now,
            updated_at: now,
        };
        assert_eq!(
            types(&namespace_args(&namespace, None).unwrap()),
            columns(&NAMESPACES, &[])
        );
        assert_eq!(types(&table_args(&table)), columns(&TABLES, &[]));
        assert_eq!(types(&table_args(&table)), columns(&VIEWS, &[]));
        let deleted = DeletedTableRecord {
            table,
            kind: EntityKind::Table,
            deleted_at: now,
            expires_at: now,
            deleted_by: None,
            purge_requested: false,
        };
        assert_eq!(
            types(&deleted_table_args(&deleted)),
            columns(&DELETED_TABLES, &[])
        );
    }
}
