//! `transfer` (export/import) across SQLite and a real PostgreSQL 15: the dump covers every
//! table the migrations create, rows survive SQLite → PostgreSQL → SQLite byte for byte, and
//! bad dumps or non-empty targets are refused without writing anything.

use crate::pg_cluster;

use chrono::{DateTime, Duration, Utc};
use sluice_core::NamespaceName;
use sluice_store::transfer::{self, TransferError};
use sluice_store::{
    AccessKeyRecord, AuditRecord, CatalogStore, CommitOp, ExternalIdentityRecord, GroupRecord,
    NamespaceRecord, PolicyRecord, PostgresStore, SqliteStore, TableRecord, UserRecord, ViewRecord,
    WarehouseRecord, WarehouseStatus,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use uuid::Uuid;

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap()
}

fn ns(dotted: &str) -> NamespaceName {
    NamespaceName::new(dotted.split('.').map(str::to_string).collect()).unwrap()
}

fn sqlite_url(dir: &Path, name: &str) -> String {
    format!("sqlite://{}", dir.join(name).display())
}

fn expected_tables() -> BTreeMap<String, BTreeSet<String>> {
    transfer::dump_tables()
        .into_iter()
        .map(|(t, cols)| {
            (
                t.to_string(),
                cols.into_iter().map(str::to_string).collect(),
            )
        })
        .collect()
}

/// The guard against a future migration adding a table (or column) that dumps would miss:
/// what the migrations create, per the database's own catalog, must be exactly the dump's
/// table list, on both backends.
#[tokio::test]
async fn dump_covers_every_table_the_migrations_create() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path(), "c.db");
    drop(SqliteStore::connect(&url).await.unwrap());
    assert_eq!(
        transfer::database_tables(&url).await.unwrap(),
        expected_tables(),
        "SQLite"
    );

    let pg = pg_cluster::fresh_database().await;
    drop(PostgresStore::connect(&pg).await.unwrap());
    assert_eq!(
        transfer::database_tables(&pg).await.unwrap(),
        expected_tables(),
        "PostgreSQL"
    );
}

/// One row in every table, with NULLs and non-NULLs, binary ciphertext, a nested namespace,
/// a soft-dropped table under a lease, a builtin policy and a gap in the audit-log ids.
async fn populate(store: &dyn CatalogStore) -> Uuid {
    let t = now();
    store.set_setting("bootstrap_done", "true").await.unwrap();
    let alice = UserRecord {
        id: Uuid::new_v4(),
        name: "alice".into(),
        email: Some("alice@example.org".into()),
        friendly_name: Some("Alice Ünïcode \u{1f}".into()),
        source: "builtin".into(),
        created_at: t,
    };
    let bob = UserRecord {
        id: Uuid::new_v4(),
        name: "bob".into(),
        email: None,
        friendly_name: None,
        source: "oidc".into(),
        created_at: t,
    };
    store.create_user(&alice).await.unwrap();
    store
        .create_access_key(&AccessKeyRecord {
            access_key_id: "AKIAEXPORT0000000001".into(),
            user_id: alice.id,
            secret_ciphertext: vec![0, 1, 2, 254, 255, 10, 13],
            created_at: t,
            last_used_at: Some(t),
        })
        .await
        .unwrap();
    let g = GroupRecord {
        id: Uuid::new_v4(),
        name: "Developers".into(),
        description: Some("devs".into()),
        created_at: t,
    };
    store.create_group(&g).await.unwrap();
    store
        .create_user_with_identity(
            &bob,
            &ExternalIdentityRecord {
                source: "oidc".into(),
                subject: "https://idp#bob".into(),
                user_id: bob.id,
                created_at: t,
            },
            &[g.id],
        )
        .await
        .unwrap();
    store.add_group_member(g.id, alice.id).await.unwrap();
    let p = PolicyRecord {
        id: Uuid::new_v4(),
        name: "ReadAll".into(),
        description: None,
        statements_json: r#"[{"effect":"allow","action":["catalog:*"],"resource":"*"}]"#.into(),
        builtin: true,
        created_at: t,
        updated_at: t,
    };
    store.create_policy(&p).await.unwrap();
    store.attach_group_policy(g.id, p.id).await.unwrap();
    store.attach_user_policy(alice.id, p.id).await.unwrap();
    for i in 0..3 {
        store
            .append_audit(&AuditRecord {
                id: 0,
                at: t,
                actor_id: (i != 1).then_some(alice.id),
                actor_name: "alice".into(),
                action: "auth:CreateUser".into(),
                target: format!("sluice:auth:::user/u{i}"),
                result: "success".into(),
                detail: (i == 2).then(|| "detail".to_string()),
            })
            .await
            .unwrap();
    }
    let w = WarehouseRecord {
        id: Uuid::new_v4(),
        name: "wh".into(),
        storage_profile: serde_json::json!({"type": "file", "root": "/data/wh"}),
        storage_credential: Some(vec![9, 8, 7]),
        delete_profile: serde_json::json!({"type": "soft", "expiration-seconds": 3600}),
        status: WarehouseStatus::Active,
        location: "file:///data/wh".into(),
        created_at: t,
        updated_at: t,
    };
    store.create_warehouse(&w).await.unwrap();
    for name in ["a", "a.b", "a.b.c", "z"] {
        store
            .create_namespace(&NamespaceRecord {
                id: Uuid::new_v4(),
                warehouse_id: w.id,
                name: ns(name),
                properties: HashMap::from([("owner".to_string(), "alice".to_string())]),
                created_at: t,
                updated_at: t,
            })
            .await
            .unwrap();
    }
    let a_b = store
        .get_namespace(w.id, &ns("a.b"))
        .await
        .unwrap()
        .unwrap();
    for name in ["t1", "gone"] {
        let loc = format!("file:///data/wh/a/b/{name}");
        store
            .commit(&[CommitOp::Create(TableRecord {
                id: Uuid::new_v4(),
                warehouse_id: w.id,
                namespace_id: a_b.id,
                namespace: a_b.name.clone(),
                name: name.into(),
                location: loc.clone(),
                metadata_location: format!("{loc}/metadata/00000.metadata.json"),
                metadata_json: format!(r#"{{"format-version":2,"location":"{loc}","x":"é\n"}}"#),
                created_at: t,
                updated_at: t,
            })])
            .await
            .unwrap();
    }
    let view_loc = "file:///data/wh/a/b/v1";
    store
        .create_view(&ViewRecord {
            id: Uuid::new_v4(),
            warehouse_id: w.id,
            namespace_id: a_b.id,
            namespace: a_b.name.clone(),
            name: "v1".into(),
            location: view_loc.into(),
            metadata_location: format!("{view_loc}/metadata/00000.metadata.json"),
            metadata_json: format!(r#"{{"format-version":1,"location":"{view_loc}"}}"#),
            created_at: t,
            updated_at: t,
        })
        .await
        .unwrap();
    store
        .soft_drop_table(
            w.id,
            &ns("a.b"),
            "gone",
            t,
            t - Duration::seconds(1),
            Some("alice"),
            true,
        )
        .await
        .unwrap();
    // Leased by a (pretend) purge worker; the lease must survive the move.
    let claimed = store
        .claim_expired_deleted_tables(t, t + Duration::seconds(60), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    w.id
}

async fn export_to(url: &str, path: &Path) -> transfer::TransferSummary {
    let f = std::fs::File::create(path).unwrap();
    transfer::export(url, std::io::BufWriter::new(f))
        .await
        .unwrap()
}

/// The row lines of a dump (header and end record differ by source and time).
fn row_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| l.contains(r#""kind":"row""#))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn sqlite_to_postgres_to_sqlite_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let src = sqlite_url(dir.path(), "src.db");
    let store = SqliteStore::connect(&src).await.unwrap();
    let wh = populate(&store).await;
    // Deleting the newest audit rows leaves the counter ahead of max(id): it must carry over.
    sqlx::query("DELETE FROM audit_log WHERE id = 3")
        .execute(store.pool())
        .await
        .unwrap();
    store.pool().close().await;

    let dump1 = dir.path().join("1.jsonl");
    let summary = export_to(&src, &dump1).await;
    assert_eq!(summary.schema_version, transfer::schema_version());
    assert!(
        summary.rows.values().all(|n| *n > 0),
        "every table has a row: {:?}",
        summary.rows
    );
    assert_eq!(summary.rows.len(), expected_tables().len());

    let pg = pg_cluster::fresh_database().await;
    let imported = transfer::import(&pg, &dump1).await.unwrap();
    assert_eq!(imported.rows, summary.rows);

    // Through the store API on the new backend.
    let p = PostgresStore::connect(&pg).await.unwrap();
    assert_eq!(
        p.get_setting("bootstrap_done").await.unwrap().as_deref(),
        Some("true")
    );
    let key = p
        .get_access_key("AKIAEXPORT0000000001")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(key.secret_ciphertext, vec![0, 1, 2, 254, 255, 10, 13]);
    let t1 = p.get_table(wh, &ns("a.b"), "t1").await.unwrap().unwrap();
    assert!(t1.metadata_json.contains("\"x\":\"é\\n\""));
    let deleted = p
        .list_deleted_tables(wh, &Default::default())
        .await
        .unwrap();
    assert_eq!(deleted.len(), 1);
    assert!(deleted[0].purge_requested);
    // Still leased: no one else may claim it.
    assert!(p
        .claim_expired_deleted_tables(now(), now(), 10)
        .await
        .unwrap()
        .is_empty());
    let alice = p.get_user_by_name("alice").await.unwrap().unwrap();
    assert_eq!(p.effective_policies(alice.id).await.unwrap().len(), 2);
    let bob = p.get_user_by_name("bob").await.unwrap().unwrap();
    assert_eq!(p.list_external_identities(bob.id).await.unwrap().len(), 1);
    let audit = p.list_audit(None, 10).await.unwrap();
    assert_eq!(audit.iter().map(|a| a.id).collect::<Vec<_>>(), vec![2, 1]);
    // The identity sequence continues after the source's counter, not after max(id).
    let next = p
        .append_audit(&AuditRecord {
            id: 0,
            at: now(),
            actor_id: None,
            actor_name: "x".into(),
            action: "a".into(),
            target: "t".into(),
            result: "success".into(),
            detail: None,
        })
        .await
        .unwrap();
    assert_eq!(next, 4);
    sqlx::query("DELETE FROM audit_log WHERE id = 4")
        .execute(p.pool())
        .await
        .unwrap();
    p.pool().close().await;

    // PostgreSQL → SQLite and SQLite → SQLite: the same code path, byte-identical rows.
    let dump2 = dir.path().join("2.jsonl");
    export_to(&pg, &dump2).await;
    assert_eq!(
        row_lines(&dump1),
        row_lines(&dump2),
        "rows differ after SQLite → PostgreSQL"
    );
    let back = sqlite_url(dir.path(), "back.db");
    transfer::import(&back, &dump2).await.unwrap();
    let dump3 = dir.path().join("3.jsonl");
    export_to(&back, &dump3).await;
    assert_eq!(
        row_lines(&dump1),
        row_lines(&dump3),
        "rows differ after PostgreSQL → SQLite"
    );
    let s = SqliteStore::connect(&back).await.unwrap();
    let next = s
        .append_audit(&AuditRecord {
            id: 0,
            at: now(),
            actor_id: None,
            actor_name: "x".into(),
            action: "a".into(),
            target: "t".into(),
            result: "success".into(),
            detail: None,
        })
        .await
        .unwrap();
    assert_eq!(
        next, 5,
        "SQLite's AUTOINCREMENT counter carried the PostgreSQL sequence"
    );
}

#[tokio::test]
async fn refuses_non_empty_target_and_bad_dumps_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let src = sqlite_url(dir.path(), "src.db");
    let store = SqliteStore::connect(&src).await.unwrap();
    populate(&store).await;
    store.pool().close().await;
    let dump = dir.path().join("d.jsonl");
    export_to(&src, &dump).await;

    // Non-empty target (the source itself, and a PostgreSQL database with one user).
    let err = transfer::import(&src, &dump).await.unwrap_err();
    assert!(matches!(err, TransferError::TargetNotEmpty(_)), "{err}");
    let pg = pg_cluster::fresh_database().await;
    let p = PostgresStore::connect(&pg).await.unwrap();
    p.set_setting("k", "v").await.unwrap();
    let err = transfer::import(&pg, &dump).await.unwrap_err();
    assert!(err.to_string().contains("settings"), "{err}");
    assert!(p.get_user_by_name("alice").await.unwrap().is_none());
    p.pool().close().await;
    // Someone else's database: refused before the schema is created in it.
    let other = pg_cluster::fresh_database().await;
    {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&other).await.unwrap();
        sqlx::query("CREATE TABLE invoices (id int)")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    }
    let err = transfer::import(&other, &dump).await.unwrap_err();
    assert!(
        matches!(err, TransferError::TargetNotEmpty(_)) && err.to_string().contains("invoices"),
        "{err}"
    );
    assert_eq!(
        transfer::database_tables(&other).await.unwrap().len(),
        1,
        "schema created in a foreign database"
    );

    let text = std::fs::read_to_string(&dump).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let cases: Vec<(&str, String)> = vec![
        (
            "truncated at a line boundary",
            lines[..lines.len() - 1].join("\n") + "\n",
        ),
        ("truncated mid-line", text[..text.len() - 20].to_string()),
        (
            "a value edited",
            text.replacen("alice@example.org", "mallory@example.org", 1),
        ),
        ("a row dropped", {
            let mut l = lines.clone();
            l.remove(3);
            l.join("\n") + "\n"
        }),
        ("not JSON", "hello\n".into()),
        ("empty", String::new()),
        (
            "other schema version",
            text.replacen(
                &format!("\"schema_version\":{}", transfer::schema_version()),
                "\"schema_version\":1",
                1,
            ),
        ),
    ];
    for (what, content) in cases {
        let bad = dir.path().join("bad.jsonl");
        std::fs::write(&bad, &content).unwrap();
        // SQLite: the target file is not even created.
        let target = dir.path().join("never.db");
        let err = transfer::import(&sqlite_url(dir.path(), "never.db"), &bad)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                TransferError::InvalidDump(_) | TransferError::SchemaMismatch(_)
            ),
            "{what}: {err}"
        );
        assert!(!target.exists(), "{what}: the target was created");
        if what == "other schema version" {
            assert!(err.to_string().contains("schema version 1"), "{err}");
        }
        // PostgreSQL: not even the schema.
        let pg = pg_cluster::fresh_database().await;
        transfer::import(&pg, &bad).await.unwrap_err();
        assert!(
            transfer::database_tables(&pg).await.unwrap().is_empty(),
            "{what}: schema written"
        );
    }
}

#[tokio::test]
async fn export_refuses_unknown_tables_and_missing_schema() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path(), "x.db");
    let store = SqliteStore::connect(&url).await.unwrap();
    sqlx::query("CREATE TABLE surprise (id INTEGER)")
        .execute(store.pool())
        .await
        .unwrap();
    store.pool().close().await;
    let err = transfer::export(&url, std::io::sink()).await.unwrap_err();
    assert!(
        matches!(err, TransferError::SchemaMismatch(_)) && err.to_string().contains("surprise"),
        "{err}"
    );

    // A source at another schema version says what to do.
    let url = sqlite_url(dir.path(), "old.db");
    let store = SqliteStore::connect(&url).await.unwrap();
    let newest = transfer::schema_version();
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = ?")
        .bind(newest)
        .execute(store.pool())
        .await
        .unwrap();
    let err = transfer::export(&url, std::io::sink()).await.unwrap_err();
    assert!(
        matches!(err, TransferError::SchemaMismatch(_))
            && err.to_string().contains("sluice migrate"),
        "{err}"
    );
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'future', 1, x'00', 0)",
    )
    .execute(store.pool())
    .await
    .unwrap();
    store.pool().close().await;
    let err = transfer::export(&url, std::io::sink()).await.unwrap_err();
    assert!(
        matches!(err, TransferError::SchemaMismatch(_)) && err.to_string().contains("newer"),
        "{err}"
    );

    let pg = pg_cluster::fresh_database().await;
    let err = transfer::export(&pg, std::io::sink()).await.unwrap_err();
    assert!(matches!(err, TransferError::SchemaMismatch(_)), "{err}");
    let err = transfer::export(&sqlite_url(dir.path(), "missing.db"), std::io::sink())
        .await
        .unwrap_err();
    assert!(matches!(err, TransferError::Database(_)), "{err}");
    assert!(!dir.path().join("missing.db").exists());
}

/// More rows than one INSERT batch carries, with the table boundary inside a batch.
#[tokio::test]
async fn long_audit_log_moves_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let src = sqlite_url(dir.path(), "big.db");
    let store = SqliteStore::connect(&src).await.unwrap();
    populate(&store).await;
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1234) \
         INSERT INTO audit_log (at, actor_name, action, target, result, detail) \
         SELECT i, 'bulk', 'auth:Test', 'sluice:auth:::user/u' || i, 'success', NULL FROM n",
    )
    .execute(store.pool())
    .await
    .unwrap();
    store.pool().close().await;
    let dump = dir.path().join("big.jsonl");
    let summary = export_to(&src, &dump).await;
    assert_eq!(summary.rows["audit_log"], 1237);

    let pg = pg_cluster::fresh_database().await;
    assert_eq!(
        transfer::import(&pg, &dump).await.unwrap().rows,
        summary.rows
    );
    let again = dir.path().join("again.jsonl");
    export_to(&pg, &again).await;
    assert_eq!(row_lines(&dump), row_lines(&again));
}
