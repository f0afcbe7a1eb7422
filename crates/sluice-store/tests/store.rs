//! Behavioural suite for `CatalogStore`. Every check takes the store as a trait object so
//! every implementation runs the same functions; the bindings are generated at the bottom by
//! `sqlite_suite!` and `postgres_suite!` (a real PostgreSQL 15 cluster started by this test
//! binary, one fresh database per test).

use chrono::{DateTime, Duration, Utc};
use sluice_core::NamespaceName;
use sluice_store::{
    AccessKeyRecord, AuditRecord, CatalogStore, CommitOp, DeletedTableRecord, EffectivePolicy,
    EntityKind, ExternalIdentityRecord, GroupRecord, NamespaceRecord, Page, PolicyRecord,
    PostgresStore, SqliteStore, StoreError, TableRecord, UserRecord, ViewRecord, WarehouseRecord,
    WarehouseStatus,
};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

/// Stores keep millisecond precision; fixtures use it so records compare equal after a
/// round trip.
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap()
}

fn ns(dotted: &str) -> NamespaceName {
    NamespaceName::new(dotted.split('.').map(str::to_string).collect()).unwrap()
}

fn page(after: Option<&str>, limit: Option<u32>) -> Page {
    Page {
        after: after.map(str::to_string),
        limit,
    }
}

fn user(name: &str) -> UserRecord {
    UserRecord {
        id: Uuid::new_v4(),
        name: name.to_string(),
        email: Some(format!("{name}@example.com")),
        friendly_name: None,
        source: "builtin".into(),
        created_at: now(),
    }
}

fn warehouse(name: &str) -> WarehouseRecord {
    let t = now();
    WarehouseRecord {
        id: Uuid::new_v4(),
        name: name.to_string(),
        storage_profile: serde_json::json!({"type": "s3", "bucket": name, "region": "eu-1"}),
        storage_credential: Some(vec![1, 2, 3, 0, 255]),
        delete_profile: serde_json::json!({"type": "hard"}),
        status: WarehouseStatus::Active,
        location: format!("s3://{name}"),
        created_at: t,
        updated_at: t,
    }
}

async fn new_warehouse(store: &dyn CatalogStore, name: &str) -> WarehouseRecord {
    let w = warehouse(name);
    store.create_warehouse(&w).await.unwrap();
    w
}

fn namespace(wh: Uuid, dotted: &str) -> NamespaceRecord {
    let t = now();
    NamespaceRecord {
        id: Uuid::new_v4(),
        warehouse_id: wh,
        name: ns(dotted),
        properties: HashMap::from([("owner".to_string(), "alice".to_string())]),
        created_at: t,
        updated_at: t,
    }
}

async fn new_namespace(store: &dyn CatalogStore, wh: Uuid, dotted: &str) -> NamespaceRecord {
    let n = namespace(wh, dotted);
    store.create_namespace(&n).await.unwrap();
    n
}

fn table(n: &NamespaceRecord, name: &str, location: &str) -> TableRecord {
    let t = now();
    TableRecord {
        id: Uuid::new_v4(),
        warehouse_id: n.warehouse_id,
        namespace_id: n.id,
        namespace: n.name.clone(),
        name: name.to_string(),
        location: location.to_string(),
        metadata_location: format!("{location}/metadata/00000-{}.metadata.json", Uuid::new_v4()),
        metadata_json: format!(r#"{{"format-version":2,"location":"{location}"}}"#),
        created_at: t,
        updated_at: t,
    }
}

async fn new_table(
    store: &dyn CatalogStore,
    n: &NamespaceRecord,
    name: &str,
    location: &str,
) -> TableRecord {
    let t = table(n, name, location);
    store.commit(&[CommitOp::Create(t.clone())]).await.unwrap();
    t
}

fn update_op(t: &TableRecord, expected: &str, new: &str) -> CommitOp {
    CommitOp::Update {
        table_id: t.id,
        expected_metadata_location: expected.to_string(),
        new_metadata_location: new.to_string(),
        new_metadata_json: format!(r#"{{"metadata":"{new}"}}"#),
        new_location: t.location.clone(),
    }
}

fn names(v: &[NamespaceRecord]) -> Vec<String> {
    v.iter().map(|n| n.name.to_string()).collect()
}

async fn new_user(store: &dyn CatalogStore, name: &str) -> UserRecord {
    let u = user(name);
    store.create_user(&u).await.unwrap();
    u
}

fn group(name: &str) -> GroupRecord {
    GroupRecord {
        id: Uuid::new_v4(),
        name: name.to_string(),
        description: Some(format!("the {name} group")),
        created_at: now(),
    }
}

async fn new_group(store: &dyn CatalogStore, name: &str) -> GroupRecord {
    let g = group(name);
    store.create_group(&g).await.unwrap();
    g
}

fn policy(name: &str) -> PolicyRecord {
    let t = now();
    PolicyRecord {
        id: Uuid::new_v4(),
        name: name.to_string(),
        description: None,
        statements_json: format!(
            r#"[{{"effect":"allow","actions":["catalog:*"],"resources":["{name}"]}}]"#
        ),
        builtin: false,
        created_at: t,
        updated_at: t,
    }
}

async fn new_policy(store: &dyn CatalogStore, name: &str) -> PolicyRecord {
    let p = policy(name);
    store.create_policy(&p).await.unwrap();
    p
}

fn user_names(v: &[UserRecord]) -> Vec<&str> {
    v.iter().map(|u| u.name.as_str()).collect()
}

fn group_names(v: &[GroupRecord]) -> Vec<&str> {
    v.iter().map(|g| g.name.as_str()).collect()
}

fn policy_names(v: &[PolicyRecord]) -> Vec<&str> {
    v.iter().map(|p| p.name.as_str()).collect()
}

/// (policy name, via_group) pairs, in the order returned.
fn ways(v: &[EffectivePolicy]) -> Vec<(&str, Option<&str>)> {
    v.iter()
        .map(|e| (e.policy.name.as_str(), e.via_group.as_deref()))
        .collect()
}

async fn effective(store: &dyn CatalogStore, user: Uuid) -> Vec<(String, Option<String>)> {
    ways(&store.effective_policies(user).await.unwrap())
        .into_iter()
        .map(|(p, g)| (p.to_string(), g.map(str::to_string)))
        .collect()
}

fn audit(action: &str, actor: Option<Uuid>, detail: Option<&str>) -> AuditRecord {
    AuditRecord {
        id: 0,
        at: now(),
        actor_id: actor,
        actor_name: actor.map_or("anonymous".to_string(), |_| "alice".to_string()),
        action: action.to_string(),
        target: format!("sluice:auth:::user/{action}"),
        result: if detail.is_some() {
            "failure"
        } else {
            "success"
        }
        .to_string(),
        detail: detail.map(str::to_string),
    }
}

macro_rules! assert_err {
    ($e:expr, $pat:pat) => {
        match $e {
            Err($pat) => {}
            other => panic!("expected {}, got {:?}", stringify!($pat), other),
        }
    };
}

// ---------------------------------------------------------------------------------------
// Suite
// ---------------------------------------------------------------------------------------

pub async fn settings(store: &dyn CatalogStore) {
    assert_eq!(store.get_setting("bootstrap").await.unwrap(), None);
    store.set_setting("bootstrap", "done").await.unwrap();
    assert_eq!(
        store.get_setting("bootstrap").await.unwrap().as_deref(),
        Some("done")
    );
    store.set_setting("bootstrap", "again").await.unwrap();
    assert_eq!(
        store.get_setting("bootstrap").await.unwrap().as_deref(),
        Some("again")
    );
    assert_eq!(store.get_setting("other").await.unwrap(), None);
}

pub async fn users(store: &dyn CatalogStore) {
    let bob = user("bob");
    let alice = UserRecord {
        friendly_name: Some("Alice A.".into()),
        email: None,
        ..user("alice")
    };
    store.create_user(&bob).await.unwrap();
    store.create_user(&alice).await.unwrap();

    assert_eq!(store.get_user(bob.id).await.unwrap(), Some(bob.clone()));
    assert_eq!(
        store.get_user_by_name("alice").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(store.get_user(Uuid::new_v4()).await.unwrap(), None);
    assert_eq!(store.get_user_by_name("carol").await.unwrap(), None);
    assert_eq!(
        store.list_users().await.unwrap(),
        vec![alice.clone(), bob.clone()]
    );

    let dup = user("bob");
    assert_err!(store.create_user(&dup).await, StoreError::AlreadyExists(_));
    assert_eq!(store.list_users().await.unwrap().len(), 2);
}

pub async fn access_keys(store: &dyn CatalogStore) {
    let u = user("keyholder");
    store.create_user(&u).await.unwrap();
    let k1 = AccessKeyRecord {
        access_key_id: "AKIA0000000000000001".into(),
        user_id: u.id,
        secret_ciphertext: vec![9, 8, 7, 0, 1],
        created_at: now() - Duration::seconds(5),
        last_used_at: None,
    };
    let k2 = AccessKeyRecord {
        access_key_id: "AKIA0000000000000002".into(),
        created_at: now(),
        ..k1.clone()
    };
    store.create_access_key(&k1).await.unwrap();
    store.create_access_key(&k2).await.unwrap();
    assert_err!(
        store.create_access_key(&k1).await,
        StoreError::AlreadyExists(_)
    );
    let orphan = AccessKeyRecord {
        access_key_id: "AKIA0000000000000003".into(),
        user_id: Uuid::new_v4(),
        ..k1.clone()
    };
    assert_err!(
        store.create_access_key(&orphan).await,
        StoreError::NotFound(_)
    );

    assert_eq!(
        store.get_access_key(&k1.access_key_id).await.unwrap(),
        Some(k1.clone())
    );
    assert_eq!(store.get_access_key("nope").await.unwrap(), None);
    assert_eq!(
        store.list_access_keys(u.id).await.unwrap(),
        vec![k1.clone(), k2.clone()]
    );
    assert_eq!(
        store.list_access_keys(Uuid::new_v4()).await.unwrap(),
        vec![]
    );

    let used = now() + Duration::milliseconds(1234);
    store
        .touch_access_key(&k1.access_key_id, used)
        .await
        .unwrap();
    let got = store
        .get_access_key(&k1.access_key_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.last_used_at, Some(used));
    // Touching an unknown key is not an error: the caller already authenticated it.
    store.touch_access_key("nope", used).await.unwrap();

    store.delete_access_key(&k1.access_key_id).await.unwrap();
    assert_eq!(store.get_access_key(&k1.access_key_id).await.unwrap(), None);
    assert_err!(
        store.delete_access_key(&k1.access_key_id).await,
        StoreError::NotFound(_)
    );
    assert_eq!(store.list_access_keys(u.id).await.unwrap(), vec![k2]);
}

pub async fn warehouses(store: &dyn CatalogStore) {
    let b = new_warehouse(store, "wh-b").await;
    let a = WarehouseRecord {
        storage_credential: None,
        ..warehouse("wh-a")
    };
    store.create_warehouse(&a).await.unwrap();
    assert_err!(
        store.create_warehouse(&warehouse("wh-a")).await,
        StoreError::AlreadyExists(_)
    );

    assert_eq!(store.get_warehouse(b.id).await.unwrap(), Some(b.clone()));
    assert_eq!(
        store.get_warehouse_by_name("wh-a").await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(store.get_warehouse(Uuid::new_v4()).await.unwrap(), None);
    assert_eq!(store.get_warehouse_by_name("zzz").await.unwrap(), None);
    assert_eq!(
        store.list_warehouses().await.unwrap(),
        vec![a.clone(), b.clone()]
    );

    let renamed = WarehouseRecord {
        name: "wh-c".into(),
        storage_profile: serde_json::json!({"type": "s3", "bucket": "other"}),
        storage_credential: Some(vec![42]),
        delete_profile: serde_json::json!({"type": "soft", "seconds": 3600}),
        status: WarehouseStatus::Inactive,
        location: "s3://other/prefix".into(),
        updated_at: now() + Duration::seconds(1),
        // created_at is immutable; a different value here must not be written.
        created_at: now() + Duration::days(1),
        ..b.clone()
    };
    store.update_warehouse(&renamed).await.unwrap();
    let got = store.get_warehouse(b.id).await.unwrap().unwrap();
    assert_eq!(
        got,
        WarehouseRecord {
            created_at: b.created_at,
            ..renamed.clone()
        }
    );
    assert_eq!(store.get_warehouse_by_name("wh-b").await.unwrap(), None);

    let collide = WarehouseRecord {
        name: "wh-a".into(),
        ..renamed.clone()
    };
    assert_err!(
        store.update_warehouse(&collide).await,
        StoreError::AlreadyExists(_)
    );
    let ghost = warehouse("ghost");
    assert_err!(
        store.update_warehouse(&ghost).await,
        StoreError::NotFound(_)
    );

    // Not empty while a namespace exists.
    let n = new_namespace(store, a.id, "ns").await;
    assert_err!(store.delete_warehouse(a.id).await, StoreError::NotEmpty(_));
    store.drop_namespace(a.id, &n.name).await.unwrap();
    store.delete_warehouse(a.id).await.unwrap();
    assert_eq!(store.get_warehouse(a.id).await.unwrap(), None);
    assert_err!(store.delete_warehouse(a.id).await, StoreError::NotFound(_));
    assert_eq!(store.list_warehouses().await.unwrap().len(), 1);
}

pub async fn namespaces(store: &dyn CatalogStore) {
    let w = new_warehouse(store, "wh").await;
    let other = new_warehouse(store, "other").await;
    let a = new_namespace(store, w.id, "a").await;
    let ab = new_namespace(store, w.id, "a.b").await;
    let abc = new_namespace(store, w.id, "a.b.c").await;
    new_namespace(store, w.id, "a.b2").await;
    new_namespace(store, w.id, "z").await;
    // The same name in another warehouse is a different namespace.
    new_namespace(store, other.id, "a").await;

    assert_eq!(
        store.get_namespace(w.id, &ns("a.b")).await.unwrap(),
        Some(ab.clone())
    );
    assert_eq!(
        store.get_namespace(w.id, &ns("a.b.c")).await.unwrap(),
        Some(abc)
    );
    assert_eq!(store.get_namespace(w.id, &ns("b")).await.unwrap(), None);
    assert_eq!(
        store.get_namespace(Uuid::new_v4(), &ns("a")).await.unwrap(),
        None
    );

    assert_err!(
        store.create_namespace(&namespace(w.id, "a")).await,
        StoreError::AlreadyExists(_)
    );
    assert_err!(
        store.create_namespace(&namespace(w.id, "a.b")).await,
        StoreError::AlreadyExists(_)
    );
    match store.create_namespace(&namespace(w.id, "x.y")).await {
        Err(StoreError::NotFound(m)) => assert!(m.contains("parent"), "{m}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_err!(
        store.create_namespace(&namespace(w.id, "a.x.y")).await,
        StoreError::NotFound(_)
    );
    assert_err!(
        store
            .create_namespace(&namespace(Uuid::new_v4(), "a"))
            .await,
        StoreError::NotFound(_)
    );

    // Direct children only.
    let top = store
        .list_namespaces(w.id, None, &Page::default())
        .await
        .unwrap();
    assert_eq!(names(&top), ["a", "z"]);
    assert_eq!(top[0], a);
    let kids = store
        .list_namespaces(w.id, Some(&ns("a")), &Page::default())
        .await
        .unwrap();
    assert_eq!(names(&kids), ["a.b", "a.b2"]);
    let grandkids = store
        .list_namespaces(w.id, Some(&ns("a.b")), &Page::default())
        .await
        .unwrap();
    assert_eq!(names(&grandkids), ["a.b.c"]);
    assert!(store
        .list_namespaces(w.id, Some(&ns("z")), &Page::default())
        .await
        .unwrap()
        .is_empty());
    assert_err!(
        store
            .list_namespaces(w.id, Some(&ns("nope")), &Page::default())
            .await,
        StoreError::NotFound(_)
    );
    assert_eq!(
        names(
            &store
                .list_namespaces(other.id, None, &Page::default())
                .await
                .unwrap()
        ),
        ["a"]
    );
}

pub async fn namespace_paging(store: &dyn CatalogStore) {
    let w = new_warehouse(store, "wh").await;
    new_namespace(store, w.id, "p").await;
    let all: Vec<String> = (0..7).map(|i| format!("n{i}")).collect();
    // Insert out of order: results must come back sorted regardless.
    for n in all.iter().rev() {
        new_namespace(store, w.id, n).await;
        new_namespace(store, w.id, &format!("p.{n}")).await;
    }
    // A grandchild must not leak into its grandparent's listing.
    new_namespace(store, w.id, "p.n0.deep").await;

    for parent in [None, Some(ns("p"))] {
        let prefix = parent.as_ref().map(|p| format!("{p}.")).unwrap_or_default();
        let expected: Vec<String> = all.iter().map(|n| format!("{prefix}{n}")).collect();
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let got = store
                .list_namespaces(
                    w.id,
                    parent.as_ref(),
                    &Page {
                        after: after.clone(),
                        limit: Some(3),
                    },
                )
                .await
                .unwrap();
            assert!(got.len() <= 3);
            if got.is_empty() {
                break;
            }
            after = Some(got.last().unwrap().name.storage_key());
            seen.extend(names(&got));
        }
        let mut expected_all = expected.clone();
        if parent.is_none() {
            expected_all.push("p".into());
        }
        assert_eq!(seen, expected_all);

        let unlimited = store
            .list_namespaces(w.id, parent.as_ref(), &page(None, None))
            .await
            .unwrap();
        assert_eq!(names(&unlimited), expected_all);
        let zero = store
            .list_namespaces(w.id, parent.as_ref(), &page(None, Some(0)))
            .await
            .unwrap();
        assert!(zero.is_empty());
    }

    // Paging on a nested parent uses the child's full storage key as the cursor.
    let after = ns("p.n4").storage_key();
    let got = store
        .list_namespaces(w.id, Some(&ns("p")), &page(Some(&after), None))
        .await
        .unwrap();
    assert_eq!(names(&got), ["p.n5", "p.n6"]);
}

pub async fn namespace_properties(store: &dyn CatalogStore) {
    let w = new_warehouse(store, "wh").await;
    let mut n = namespace(w.id, "props");
    n.properties = HashMap::from([
        ("a".to_string(), "1".to_string()),
        ("b".to_string(), "2".to_string()),
        ("c".to_string(), "3".to_string()),
    ]);
    store.create_namespace(&n).await.unwrap();

    let updated = store
        .update_namespace_properties(
            w.id,
            &n.name,
            &["a".to_string(), "missing".to_string(), "c".to_string()],
            &HashMap::from([
                ("c".to_string(), "30".to_string()),
                ("d".to_string(), "4".to_string()),
            ]),
        )
        .await
        .unwrap();
    let expected = HashMap::from([
        ("b".to_string(), "2".to_string()),
        ("c".to_string(), "30".to_string()),
        ("d".to_string(), "4".to_string()),
    ]);
    assert_eq!(updated.properties, expected);
    assert_eq!(updated.id, n.id);
    assert_eq!(updated.created_at, n.created_at);
    assert!(updated.updated_at >= n.updated_at);
    assert_eq!(
        store.get_namespace(w.id, &n.name).await.unwrap(),
        Some(updated)
    );

    assert_err!(
        store
            .update_namespace_properties(w.id, &ns("ghost"), &[], &HashMap::new())
            .await,
        StoreError::NotFound(_)
    );
}

pub async fn drop_namespace(store: &dyn CatalogStore) {
    let w = new_warehouse(store, "wh").await;
    new_namespace(store, w.id, "a").await;
    let ab = new_namespace(store, w.id, "a.b").await;
    let t = new_table(store, &ab, "t", "s3://wh/a/b/t").await;

    assert_err!(
        store.drop_namespace(w.id, &ns("a")).await,
        StoreError::NotEmpty(_)
    );
    assert_err!(
        store.drop_namespace(w.id, &ns("a.b")).await,
        StoreError::NotEmpty(_)
    );
    assert_err!(
        store.drop_namespace(w.id, &ns("nope")).await,
        StoreError::NotFound(_)
    );

    store.drop_table(w.id, &ab.name, &t.name).await.unwrap();
    store.drop_namespace(w.id, &ns("a.b")).await.unwrap();
    assert_eq!(store.get_namespace(w.id, &ns("a.b")).await.unwrap(), None);
    store.drop_namespace(w.id, &ns("a")).await.unwrap();
    assert_err!(
        store.drop_namespace(w.id, &ns("a")).await,
        StoreError::NotFound(_)
    );
    assert!(store
        .list_namespaces(w.id, None, &Page::default())
        .await
        .unwrap()
        .is_empty());
}

pub async fn tables(store: &dyn CatalogStore) {
    let w = new_warehouse(store, "wh").await;
    let n = new_namespace(store, w.id, "db").await;
    let nested = new_namespace(store, w.id, "db.inner").await;
    let t = new_table(store, &n, "events", "s3://wh/db/events").await;
    let inner = new_table(store, &nested, "events", "s3://wh/db/inner/events").await;

    assert_eq!(
        store.get_table(w.id, &n.name, "events").await.unwrap(),
        Some(t.clone())
    );
    assert_eq!(
        store.get_table(w.id, &nested.name, "events").await.unwrap(),
        Some(inner.clone())
    );
    assert_eq!(store.get_table_by_id(t.id).await.unwrap(), Some(t.clone()));
    assert_eq!(store.get_table_by_id(Uuid::new_v4()).await.unwrap(), None);
    assert_eq!(store.get_table(w.id, &n.name, "nope").await.unwrap(), None);
    assert_eq!(
        store.get_table(w.id, &ns("ghost"), "events").await.unwrap(),
        None
    );
    assert_eq!(
        store
            .get_table(Uuid::new_v4(), &n.name, "events")
            .await
            .unwrap(),
        None
    );

    // Tables directly in the namespace only.
    let listed = store
        .list_tables(w.id, &n.name, &Page::default())
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].id, &listed[0].name, &listed[0].namespace),
        (t.id, &t.name, &n.name)
    );
    assert_err!(
        store
            .list_tables(w.id, &ns("ghost"), &Page::default())
            .await,
        StoreError::NotFound(_)
    );

    let dropped = store.drop_table(w.id, &n.name, "events").await.unwrap();
    assert_eq!(dropped, t);
    assert_eq!(store.get_table_by_id(t.id).await.unwrap(), None);
    assert_err!(
        store.drop_table(w.id, &n.name, "events").await,
        StoreError::NotFound(_)
    );
    assert_err!(
        store.drop_table(w.id, &ns("ghost"), "events").await,
        StoreError::NotFound(_)
    );
    // The location is free again once the table is gone.
    new_table(store, &n, "events2", "s3://wh/db/events").await;
}

pub async fn table_paging(store: &dyn CatalogStore) {
    let w = new_warehouse(store, "wh").await;
    let n = new_namespace(store, w.id, "db").await;
    let mut expected: Vec<String> = (0..10).map(|i| format!("t{i:02}")).collect();
    for name in expected.iter().rev() {
        new_table(store, &n, name, &format!("s3://wh/db/{name}")).await;
    }
    expected.sort();

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let got = store
            .list_tables(
                w.id,
                &n.name,
                &Page {
                    after: after.clone(),
                    limit: Some(4),
                },
            )
            .await
            .unwrap();
        assert!(got.len() <= 4);
        match got.last() {
            None => break,
            Some(last) => after = Some(last.name.clone()),
        }
        seen.extend(got.into_iter().map(|s| s.name));
    }
    assert_eq!(seen, expected);
    let tail = store
        .list_tables(w.id, &n.name, &page(Some("t07"), None))
        .await
        .unwrap();
    assert_eq!(
        tail.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["t08", "t09"]
    );
    let empty = new_namespace(store, w.id, "empty").await;
    assert!(store
        .list_tables(w.id, &empty.name, &Page::default())
        .await
        .unwrap()
        .is_empty());
}

pub async fn rename_table(store: &dyn CatalogStore) {
    let w = new_warehouse(store, "wh").await;
    let src = new_namespace(store, w.id, "src").await;
    let dst = new_namespace(store, w.id, "dst").await;
    let t = new_table(store, &src, "t", "s3://wh/src/t").await;
    let other = new_table(store, &dst, "taken", "s3://wh/dst/taken").await;

    store
        .rename_table(w.id, &src.name, "t", &src.name, "t2")
        .await
        .unwrap();
    assert_eq!(store.get_table(w.id, &src.name, "t").await.unwrap(), None);
    let got = store
        .get_table(w.id, &src.name, "t2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.id, got.location.as_str()), (t.id, t.location.as_str()));

    // Across namespaces.
    store
        .rename_table(w.id, &src.name, "t2", &dst.name, "moved")
        .await
        .unwrap();
    let got = store
        .get_table(w.id, &dst.name, "moved")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.id, got.namespace_id, &got.namespace),
        (t.id, dst.id, &dst.name)
    );
    assert_eq!(got.metadata_location, t.metadata_location);
    assert!(store
        .list_tables(w.id, &src.name, &Page::default())
        .await
        .unwrap()
        .is_empty());

    assert_err!(
        store
            .rename_table(w.id, &dst.name, "moved", &dst.name, "taken")
            .await,
        StoreError::AlreadyExists(_)
    );
    assert_err!(
        store
            .rename_table(w.id, &dst.name, "ghost", &dst.name, "x")
            .await,
        StoreError::NotFound(_)
    );
    assert_err!(
        store
            .rename_table(w.id, &dst.name, "moved", &ns("ghost"), "x")
            .await,
        StoreError::NotFound(_)
    );
    // Failed renames leave both tables untouched.
    assert_eq!(
        store.get_table(w.id, &dst.name, "taken").await.unwrap(),
        Some(other)
    );
    assert!(store
        .get_table(w.id, &dst.name, "moved")
        .await
        .unwrap()
        .is_some());
}

pub async fn location_overlap(store: &dyn CatalogStore) {
    let w = new_warehouse(store, "wh").await;
    let w2 = new_warehouse(store, "wh2").await;
    let n = new_namespace(store, w.id, "db").await;
    let t1 = new_table(store, &n, "t1", "s3://b/data/t1").await;

    let overlaps = |loc: &'static str| {
        let w = w.id;
        async move { store.location_overlaps(w, loc, None).await.unwrap() }
    };
    // Equal (either side may carry a trailing slash).
    let hit = overlaps("s3://b/data/t1")
        .await
        .expect("equal must overlap");
    assert!(
        hit.contains("db.t1") && hit.contains("s3://b/data/t1"),
        "{hit}"
    );
    assert!(overlaps("s3://b/data/t1/").await.is_some());
    // Inside the table, and containing it.
    assert!(overlaps("s3://b/data/t1/sub").await.is_some());
    assert!(overlaps("s3://b/data/t1/sub/deeper/").await.is_some());
    assert!(overlaps("s3://b/data").await.is_some());
    assert!(overlaps("s3://b/data/").await.is_some());
    assert!(overlaps("s3://b").await.is_some());
    // Shared string prefix without a '/' boundary is a sibling, not an overlap.
    assert!(overlaps("s3://b/data/t10").await.is_none());
    assert!(overlaps("s3://b/data/t").await.is_none());
    assert!(overlaps("s3://b/dat").await.is_none());
    assert!(overlaps("s3://b/data/t2").await.is_none());
    assert!(overlaps("s3://b/data/t1.backup").await.is_none());
    assert!(overlaps("s3://c/data/t1").await.is_none());
    // Scoped to the warehouse, and the table itself can be excluded.
    assert!(store
        .location_overlaps(w2.id, "s3://b/data/t1", None)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .location_overlaps(w.id, "s3://b/data/t1", Some(t1.id))
        .await
        .unwrap()
        .is_none());

    // A stored location with a trailing slash is normalized too.
    new_table(store, &n, "t10", "s3://b/data/t10/").await;
    assert!(overlaps("s3://b/data/t10").await.is_some());
    assert!(overlaps("s3://b/data/t10/x").await.is_some());
    assert!(overlaps("s3://b/data/t100").await.is_none());

    // Create enforces it.
    let clash = table(&n, "inside", "s3://b/data/t1/inner");
    assert_err!(
        store.commit(&[CommitOp::Create(clash)]).await,
        StoreError::LocationOverlap(_)
    );
    let clash = table(&n, "outer", "s3://b/data");
    assert_err!(
        store.commit(&[CommitOp::Create(clash)]).await,
        StoreError::LocationOverlap(_)
    );
    new_table(store, &n, "t11", "s3://b/data/t11").await;
}

pub async fn commit_create(store: &dyn CatalogStore) {
    let w = new_warehouse(store, "wh").await;
    let n = new_namespace(store, w.id, "db").await;
    let t = new_table(store, &n, "t", "s3://wh/db/t").await;
    assert_eq!(store.get_table_by_id(t.id).await.unwrap(), Some(t.clone()));

    let dup = table(&n, "t", "s3://wh/db/elsewhere");
    assert_err!(
        store.commit(&[CommitOp::Create(dup)]).await,
        StoreError::AlreadyExists(_)
    );

    let mut gone = table(&n, "x", "s3://wh/gone/x");
    gone.namespace_id = Uuid::new_v4();
    assert_err!(
        store.commit(&[CommitOp::Create(gone)]).await,
        StoreError::NotFound(_)
    );
    // A namespace of another warehouse does not count.
    let w2 = new_warehouse(store, "wh2").await;
    let mut cross = table(&n, "x", "s3://wh2/x");
    cross.warehouse_id = w2.id;
    assert_err!(
        store.commit(&[CommitOp::Create(cross)]).await,
        StoreError::NotFound(_)
    );

    // Two creates in one commit see each other.
    let a = table(&n, "a", "s3://wh/db/pair");
    let b = table(&n, "b", "s3://wh/db/pair/b");
    assert_err!(
        store
            .commit(&[CommitOp::Create(a.clone()), CommitOp::Create(b)])
            .await,
        StoreError::LocationOverlap(_)
    );
    assert_eq!(store.get_table_by_id(a.id).await.unwrap(), None);
    store.commit(&[]).await.unwrap();
}

pub async fn commit_update(store: &dyn CatalogStore) {
    let w = new_warehouse(store, "wh").await;
    let n = new_namespace(store, w.id, "db").await;
    let t = new_table(store, &n, "t", "s3://wh/db/t").await;
    let neighbour = new_table(store, &n, "n", "s3://wh/db/n").await;

    let v1 = "s3://wh/db/t/metadata/00001.metadata.json";
    store
        .commit(&[update_op(&t, &t.metadata_location, v1)])
        .await
        .unwrap();
    let got = store.get_table_by_id(t.id).await.unwrap().unwrap();
    assert_eq!(got.metadata_location, v1);
    assert_eq!(got.metadata_json, format!(r#"{{"metadata":"{v1}"}}"#));
    assert_eq!(got.created_at, t.created_at);
    assert!(got.updated_at >= t.updated_at);

    // Stale expectation.
    assert_err!(
        store
            .commit(&[update_op(&t, &t.metadata_location, "s3://wh/db/t/m2")])
            .await,
        StoreError::Conflict(_)
    );
    assert_eq!(
        store
            .get_table_by_id(t.id)
            .await
            .unwrap()
            .unwrap()
            .metadata_location,
        v1
    );

    // Unknown table.
    let ghost = TableRecord {
        id: Uuid::new_v4(),
        ..t.clone()
    };
    assert_err!(
        store.commit(&[update_op(&ghost, v1, "x")]).await,
        StoreError::NotFound(_)
    );

    // set-location: moving the table is allowed, onto a neighbour is not.
    let v2 = "s3://wh/db/t-moved/metadata/00002.metadata.json";
    let moved = CommitOp::Update {
        table_id: t.id,
        expected_metadata_location: v1.into(),
        new_metadata_location: v2.into(),
        new_metadata_json: "{}".into(),
        new_location: "s3://wh/db/t-moved".into(),
    };
    store.commit(&[moved]).await.unwrap();
    let got = store.get_table_by_id(t.id).await.unwrap().unwrap();
    assert_eq!(got.location, "s3://wh/db/t-moved");
    let onto = CommitOp::Update {
        table_id: t.id,
        expected_metadata_location: v2.into(),
        new_metadata_location: "s3://wh/db/n/x.json".into(),
        new_metadata_json: "{}".into(),
        new_location: format!("{}/sub", neighbour.location),
    };
    assert_err!(store.commit(&[onto]).await, StoreError::LocationOverlap(_));
    assert_eq!(
        store
            .get_table_by_id(t.id)
            .await
            .unwrap()
            .unwrap()
            .metadata_location,
        v2
    );
}

pub async fn commit_atomicity(store: &dyn CatalogStore) {
    let w = new_warehouse(store, "wh").await;
    let n = new_namespace(store, w.id, "db").await;
    let a = new_table(store, &n, "a", "s3://wh/db/a").await;
    let b = new_table(store, &n, "b", "s3://wh/db/b").await;

    // Second op conflicts: the first must not be applied.
    let ok = update_op(&a, &a.metadata_location, "s3://wh/db/a/m1");
    let stale = update_op(&b, "s3://wh/db/b/not-current", "s3://wh/db/b/m1");
    assert_err!(
        store.commit(&[ok.clone(), stale]).await,
        StoreError::Conflict(_)
    );
    assert_eq!(store.get_table_by_id(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(store.get_table_by_id(b.id).await.unwrap(), Some(b.clone()));

    // A create followed by a failing op is rolled back as well.
    let c = table(&n, "c", "s3://wh/db/c");
    let dup = table(&n, "a", "s3://wh/db/a2");
    assert_err!(
        store
            .commit(&[
                CommitOp::Create(c.clone()),
                ok.clone(),
                CommitOp::Create(dup)
            ])
            .await,
        StoreError::AlreadyExists(_)
    );
    assert_eq!(store.get_table_by_id(c.id).await.unwrap(), None);
    assert_eq!(store.get_table_by_id(a.id).await.unwrap(), Some(a.clone()));

    // Multi-table success applies everything.
    let ok_b = update_op(&b, &b.metadata_location, "s3://wh/db/b/m1");
    store
        .commit(&[CommitOp::Create(c.clone()), ok, ok_b])
        .await
        .unwrap();
    assert_eq!(store.get_table_by_id(c.id).await.unwrap(), Some(c));
    assert_eq!(
        store
            .get_table_by_id(a.id)
            .await
            .unwrap()
            .unwrap()
            .metadata_location,
        "s3://wh/db/a/m1"
    );
    assert_eq!(
        store
            .get_table_by_id(b.id)
            .await
            .unwrap()
            .unwrap()
            .metadata_location,
        "s3://wh/db/b/m1"
    );
}

/// 16 writers per round read the same metadata location and race a CAS from it: exactly
/// one wins, the rest see Conflict (never a leaked SQLITE_BUSY).
pub async fn concurrent_cas(store: Arc<dyn CatalogStore>) {
    const WRITERS: usize = 16;
    const ROUNDS: usize = 5;
    let w = new_warehouse(&*store, "wh").await;
    let n = new_namespace(&*store, w.id, "db").await;
    let t = new_table(&*store, &n, "hot", "s3://wh/db/hot").await;

    for round in 0..ROUNDS {
        let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS));
        let mut tasks = tokio::task::JoinSet::new();
        for writer in 0..WRITERS {
            let store = store.clone();
            let barrier = barrier.clone();
            let id = t.id;
            tasks.spawn(async move {
                let current = store.get_table_by_id(id).await.unwrap().unwrap();
                // Everyone holds the same snapshot before anyone commits.
                barrier.wait().await;
                let new = format!("s3://wh/db/hot/metadata/{round}-{writer}.json");
                let op = CommitOp::Update {
                    table_id: id,
                    expected_metadata_location: current.metadata_location.clone(),
                    new_metadata_location: new.clone(),
                    new_metadata_json: "{}".into(),
                    new_location: current.location.clone(),
                };
                (store.commit(&[op]).await, new)
            });
        }
        let mut winners = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined.unwrap() {
                (Ok(()), new) => winners.push(new),
                (Err(StoreError::Conflict(_)), _) => {}
                (Err(e), _) => panic!("round {round}: unexpected error {e:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let now = store.get_table_by_id(t.id).await.unwrap().unwrap();
        assert_eq!(now.metadata_location, winners[0]);
    }
}

pub async fn update_user(store: &dyn CatalogStore) {
    let u = new_user(store, "upd").await;
    let changed = UserRecord {
        email: None,
        friendly_name: Some("Up D.".into()),
        source: "ldap".into(),
        // Name and creation time are not updatable; different values must not be written.
        name: "renamed".into(),
        created_at: now() + Duration::days(1),
        ..u.clone()
    };
    store.update_user(&changed).await.unwrap();
    assert_eq!(
        store.get_user(u.id).await.unwrap(),
        Some(UserRecord {
            name: u.name.clone(),
            created_at: u.created_at,
            ..changed
        })
    );
    assert_eq!(store.get_user_by_name("renamed").await.unwrap(), None);
    match store.update_user(&user("ghost")).await {
        Err(StoreError::NotFound(m)) => assert!(m.starts_with("user "), "{m}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

pub async fn delete_user(store: &dyn CatalogStore) {
    let doomed = new_user(store, "doomed").await;
    let keeper = new_user(store, "keeper").await;
    let g = new_group(store, "team").await;
    let p = new_policy(store, "p").await;
    for u in [&doomed, &keeper] {
        store.add_group_member(g.id, u.id).await.unwrap();
        store.attach_user_policy(u.id, p.id).await.unwrap();
    }
    store.attach_group_policy(g.id, p.id).await.unwrap();
    let key = |id: &str, user_id| AccessKeyRecord {
        access_key_id: id.into(),
        user_id,
        secret_ciphertext: vec![1],
        created_at: now(),
        last_used_at: None,
    };
    store
        .create_access_key(&key("AKDOOMED", doomed.id))
        .await
        .unwrap();
    store
        .create_access_key(&key("AKKEEPER", keeper.id))
        .await
        .unwrap();

    store.delete_user(doomed.id).await.unwrap();
    assert_eq!(store.get_user(doomed.id).await.unwrap(), None);
    assert_eq!(store.get_access_key("AKDOOMED").await.unwrap(), None);
    assert!(store.list_access_keys(doomed.id).await.unwrap().is_empty());
    assert!(store.list_user_groups(doomed.id).await.unwrap().is_empty());
    assert!(store
        .list_user_policies(doomed.id)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .effective_policies(doomed.id)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        user_names(&store.list_group_members(g.id).await.unwrap()),
        ["keeper"]
    );
    // The link rows are gone, not merely hidden by the joins.
    assert_err!(
        store.remove_group_member(g.id, doomed.id).await,
        StoreError::NotFound(_)
    );
    assert_err!(
        store.detach_user_policy(doomed.id, p.id).await,
        StoreError::NotFound(_)
    );

    // Everything else is untouched.
    assert!(store.get_access_key("AKKEEPER").await.unwrap().is_some());
    assert_eq!(
        store.get_group_by_name("team").await.unwrap(),
        Some(g.clone())
    );
    assert_eq!(
        store.get_policy_by_name("p").await.unwrap(),
        Some(p.clone())
    );
    assert_eq!(
        effective(store, keeper.id).await,
        [("p".into(), None), ("p".into(), Some("team".into()))]
    );

    assert_err!(store.delete_user(doomed.id).await, StoreError::NotFound(_));
    // The name is free again, and the new user inherits nothing.
    let again = new_user(store, "doomed").await;
    assert!(store.effective_policies(again.id).await.unwrap().is_empty());
    assert!(store.list_access_keys(again.id).await.unwrap().is_empty());
}

pub async fn groups(store: &dyn CatalogStore) {
    let b = new_group(store, "g-b").await;
    let a = GroupRecord {
        description: None,
        ..group("g-a")
    };
    store.create_group(&a).await.unwrap();
    match store.create_group(&group("g-b")).await {
        Err(StoreError::AlreadyExists(m)) => assert!(m.contains("g-b"), "{m}"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        store.get_group_by_name("g-a").await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        store.get_group_by_name("g-b").await.unwrap(),
        Some(b.clone())
    );
    assert_eq!(store.get_group_by_name("g-c").await.unwrap(), None);
    assert_eq!(
        store.list_groups().await.unwrap(),
        vec![a.clone(), b.clone()]
    );

    store.delete_group(b.id).await.unwrap();
    assert_eq!(store.get_group_by_name("g-b").await.unwrap(), None);
    assert_eq!(store.list_groups().await.unwrap(), vec![a]);
    assert_err!(store.delete_group(b.id).await, StoreError::NotFound(_));
    assert_err!(
        store.delete_group(Uuid::new_v4()).await,
        StoreError::NotFound(_)
    );
}

pub async fn group_members(store: &dyn CatalogStore) {
    let g = new_group(store, "devs").await;
    let other = new_group(store, "admins").await;
    let zed = new_user(store, "zed").await;
    let amy = new_user(store, "amy").await;
    let loner = new_user(store, "loner").await;

    store.add_group_member(g.id, zed.id).await.unwrap();
    store.add_group_member(g.id, amy.id).await.unwrap();
    // Idempotent.
    store.add_group_member(g.id, amy.id).await.unwrap();
    store.add_group_member(other.id, amy.id).await.unwrap();

    assert_eq!(
        store.list_group_members(g.id).await.unwrap(),
        vec![amy.clone(), zed.clone()]
    );
    assert_eq!(
        store.list_user_groups(amy.id).await.unwrap(),
        vec![other.clone(), g.clone()]
    );
    assert_eq!(
        group_names(&store.list_user_groups(zed.id).await.unwrap()),
        ["devs"]
    );
    assert!(store.list_user_groups(loner.id).await.unwrap().is_empty());
    assert!(store
        .list_group_members(Uuid::new_v4())
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .list_user_groups(Uuid::new_v4())
        .await
        .unwrap()
        .is_empty());

    // Either side missing is NotFound, naming that side.
    let ghost = Uuid::new_v4();
    match store.add_group_member(ghost, amy.id).await {
        Err(StoreError::NotFound(m)) => assert_eq!(m, format!("group {ghost}")),
        other => panic!("expected NotFound, got {other:?}"),
    }
    match store.add_group_member(g.id, ghost).await {
        Err(StoreError::NotFound(m)) => assert_eq!(m, format!("user {ghost}")),
        other => panic!("expected NotFound, got {other:?}"),
    }

    store.remove_group_member(g.id, amy.id).await.unwrap();
    assert_eq!(
        user_names(&store.list_group_members(g.id).await.unwrap()),
        ["zed"]
    );
    assert_eq!(
        group_names(&store.list_user_groups(amy.id).await.unwrap()),
        ["admins"]
    );
    assert_err!(
        store.remove_group_member(g.id, amy.id).await,
        StoreError::NotFound(_)
    );
    assert_err!(
        store.remove_group_member(g.id, loner.id).await,
        StoreError::NotFound(_)
    );
    assert_err!(
        store.remove_group_member(ghost, zed.id).await,
        StoreError::NotFound(_)
    );
    // Re-adding after removal works.
    store.add_group_member(g.id, amy.id).await.unwrap();
    assert_eq!(
        user_names(&store.list_group_members(g.id).await.unwrap()),
        ["amy", "zed"]
    );
}

pub async fn policies(store: &dyn CatalogStore) {
    let b = new_policy(store, "read-b").await;
    let a = PolicyRecord {
        description: Some("admin access".into()),
        builtin: true,
        ..policy("admin-a")
    };
    store.create_policy(&a).await.unwrap();
    match store.create_policy(&policy("read-b")).await {
        Err(StoreError::AlreadyExists(m)) => assert!(m.contains("read-b"), "{m}"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        store.get_policy_by_name("admin-a").await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        store.get_policy_by_name("read-b").await.unwrap(),
        Some(b.clone())
    );
    assert_eq!(store.get_policy_by_name("nope").await.unwrap(), None);
    assert_eq!(
        store.list_policies().await.unwrap(),
        vec![a.clone(), b.clone()]
    );

    let changed = PolicyRecord {
        description: Some("now described".into()),
        statements_json: r#"[{"effect":"deny","actions":["*"],"resources":["*"]}]"#.into(),
        updated_at: now() + Duration::seconds(3),
        // Only description, statements and updated_at are replaced.
        name: "renamed".into(),
        builtin: true,
        created_at: now() + Duration::days(1),
        ..b.clone()
    };
    store.update_policy(&changed).await.unwrap();
    assert_eq!(
        store.get_policy_by_name("read-b").await.unwrap(),
        Some(PolicyRecord {
            name: b.name.clone(),
            builtin: false,
            created_at: b.created_at,
            ..changed
        })
    );
    assert_eq!(store.get_policy_by_name("renamed").await.unwrap(), None);
    assert_err!(
        store.update_policy(&policy("ghost")).await,
        StoreError::NotFound(_)
    );

    store.delete_policy(b.id).await.unwrap();
    assert_eq!(store.get_policy_by_name("read-b").await.unwrap(), None);
    assert_eq!(store.list_policies().await.unwrap(), vec![a]);
    assert_err!(store.delete_policy(b.id).await, StoreError::NotFound(_));
}

pub async fn policy_attachments(store: &dyn CatalogStore) {
    let u = new_user(store, "u").await;
    let g = new_group(store, "g").await;
    let p2 = new_policy(store, "p2").await;
    let p1 = new_policy(store, "p1").await;
    let unused = new_policy(store, "unused").await;

    store.attach_user_policy(u.id, p2.id).await.unwrap();
    store.attach_user_policy(u.id, p1.id).await.unwrap();
    store.attach_user_policy(u.id, p1.id).await.unwrap();
    store.attach_group_policy(g.id, p2.id).await.unwrap();
    store.attach_group_policy(g.id, p2.id).await.unwrap();

    assert_eq!(
        store.list_user_policies(u.id).await.unwrap(),
        vec![p1.clone(), p2.clone()]
    );
    assert_eq!(
        store.list_group_policies(g.id).await.unwrap(),
        vec![p2.clone()]
    );
    assert!(store
        .list_user_policies(Uuid::new_v4())
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .list_group_policies(Uuid::new_v4())
        .await
        .unwrap()
        .is_empty());

    let ghost = Uuid::new_v4();
    match store.attach_user_policy(ghost, p1.id).await {
        Err(StoreError::NotFound(m)) => assert_eq!(m, format!("user {ghost}")),
        other => panic!("expected NotFound, got {other:?}"),
    }
    match store.attach_user_policy(u.id, ghost).await {
        Err(StoreError::NotFound(m)) => assert_eq!(m, format!("policy {ghost}")),
        other => panic!("expected NotFound, got {other:?}"),
    }
    match store.attach_group_policy(ghost, p1.id).await {
        Err(StoreError::NotFound(m)) => assert_eq!(m, format!("group {ghost}")),
        other => panic!("expected NotFound, got {other:?}"),
    }
    match store.attach_group_policy(g.id, ghost).await {
        Err(StoreError::NotFound(m)) => assert_eq!(m, format!("policy {ghost}")),
        other => panic!("expected NotFound, got {other:?}"),
    }
    // A user id is not a group id (and vice versa).
    assert_err!(
        store.attach_group_policy(u.id, p1.id).await,
        StoreError::NotFound(_)
    );
    assert_err!(
        store.attach_user_policy(g.id, p1.id).await,
        StoreError::NotFound(_)
    );

    store.detach_user_policy(u.id, p1.id).await.unwrap();
    assert_eq!(
        policy_names(&store.list_user_policies(u.id).await.unwrap()),
        ["p2"]
    );
    assert_err!(
        store.detach_user_policy(u.id, p1.id).await,
        StoreError::NotFound(_)
    );
    assert_err!(
        store.detach_user_policy(u.id, unused.id).await,
        StoreError::NotFound(_)
    );
    assert_err!(
        store.detach_user_policy(ghost, p2.id).await,
        StoreError::NotFound(_)
    );
    // A group attachment is not a user attachment.
    store.detach_group_policy(g.id, p2.id).await.unwrap();
    assert!(store.list_group_policies(g.id).await.unwrap().is_empty());
    assert_err!(
        store.detach_group_policy(g.id, p2.id).await,
        StoreError::NotFound(_)
    );
    assert_err!(
        store.detach_group_policy(g.id, p1.id).await,
        StoreError::NotFound(_)
    );
    assert_eq!(
        policy_names(&store.list_user_policies(u.id).await.unwrap()),
        ["p2"]
    );
}

pub async fn effective_policies(store: &dyn CatalogStore) {
    let u = new_user(store, "u").await;
    let other = new_user(store, "other").await;
    // Created in non-sorted order, so the result order comes from the query.
    let gb = new_group(store, "g-b").await;
    let ga = new_group(store, "g-a").await;
    let outsider = new_group(store, "g-outsider").await;
    let gamma = new_policy(store, "gamma").await;
    let alpha = new_policy(store, "alpha").await;
    let beta = new_policy(store, "beta").await;
    let foreign = new_policy(store, "foreign").await;

    assert!(store.effective_policies(u.id).await.unwrap().is_empty());
    assert!(store
        .effective_policies(Uuid::new_v4())
        .await
        .unwrap()
        .is_empty());

    store.add_group_member(gb.id, u.id).await.unwrap();
    store.add_group_member(ga.id, u.id).await.unwrap();
    store.add_group_member(outsider.id, other.id).await.unwrap();
    // alpha: via g-b, directly and via g-a (attached in that order).
    store.attach_group_policy(gb.id, alpha.id).await.unwrap();
    store.attach_user_policy(u.id, alpha.id).await.unwrap();
    store.attach_group_policy(ga.id, alpha.id).await.unwrap();
    // beta: only via g-b. gamma: only directly.
    store.attach_group_policy(gb.id, beta.id).await.unwrap();
    store.attach_user_policy(u.id, gamma.id).await.unwrap();
    // Not reachable by u.
    store
        .attach_user_policy(other.id, foreign.id)
        .await
        .unwrap();
    store
        .attach_group_policy(outsider.id, foreign.id)
        .await
        .unwrap();

    let got = store.effective_policies(u.id).await.unwrap();
    assert_eq!(
        ways(&got),
        [
            ("alpha", None),
            ("alpha", Some("g-a")),
            ("alpha", Some("g-b")),
            ("beta", Some("g-b")),
            ("gamma", None),
        ]
    );
    // Whole records come back.
    assert_eq!(got[0].policy, alpha);
    assert_eq!(got[3].policy, beta);
    assert_eq!(got[4].policy, gamma);
    assert_eq!(
        effective(store, other.id).await,
        [
            ("foreign".into(), None),
            ("foreign".into(), Some("g-outsider".into()))
        ]
    );

    // Leaving a group drops exactly that way.
    store.remove_group_member(gb.id, u.id).await.unwrap();
    assert_eq!(
        effective(store, u.id).await,
        [
            ("alpha".into(), None),
            ("alpha".into(), Some("g-a".into())),
            ("gamma".into(), None)
        ]
    );
    // An edited policy is seen through every way.
    let edited = PolicyRecord {
        statements_json: "[]".into(),
        updated_at: now() + Duration::seconds(1),
        ..alpha.clone()
    };
    store.update_policy(&edited).await.unwrap();
    let got = store.effective_policies(u.id).await.unwrap();
    assert_eq!(got[0].policy, edited);
    assert_eq!(got[1].policy, edited);
}

pub async fn delete_group(store: &dyn CatalogStore) {
    let u = new_user(store, "u").await;
    let doomed = new_group(store, "doomed").await;
    let kept = new_group(store, "kept").await;
    let via_doomed = new_policy(store, "via-doomed").await;
    let via_kept = new_policy(store, "via-kept").await;
    for g in [&doomed, &kept] {
        store.add_group_member(g.id, u.id).await.unwrap();
    }
    store
        .attach_group_policy(doomed.id, via_doomed.id)
        .await
        .unwrap();
    store
        .attach_group_policy(doomed.id, via_kept.id)
        .await
        .unwrap();
    store
        .attach_group_policy(kept.id, via_kept.id)
        .await
        .unwrap();
    assert_eq!(store.effective_policies(u.id).await.unwrap().len(), 3);

    store.delete_group(doomed.id).await.unwrap();
    assert_eq!(
        effective(store, u.id).await,
        [("via-kept".into(), Some("kept".into()))]
    );
    assert_eq!(
        group_names(&store.list_user_groups(u.id).await.unwrap()),
        ["kept"]
    );
    assert!(store
        .list_group_members(doomed.id)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .list_group_policies(doomed.id)
        .await
        .unwrap()
        .is_empty());
    // Users and policies survive.
    assert!(store.get_user(u.id).await.unwrap().is_some());
    assert_eq!(store.list_policies().await.unwrap().len(), 2);
    assert_err!(
        store.add_group_member(doomed.id, u.id).await,
        StoreError::NotFound(_)
    );
    assert_err!(
        store.attach_group_policy(doomed.id, via_doomed.id).await,
        StoreError::NotFound(_)
    );

    // A new group under the old name starts empty.
    let reborn = new_group(store, "doomed").await;
    assert!(store
        .list_group_members(reborn.id)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .list_group_policies(reborn.id)
        .await
        .unwrap()
        .is_empty());
}

pub async fn delete_policy(store: &dyn CatalogStore) {
    let u = new_user(store, "u").await;
    let g = new_group(store, "g").await;
    let doomed = new_policy(store, "doomed").await;
    let kept = new_policy(store, "kept").await;
    store.add_group_member(g.id, u.id).await.unwrap();
    for p in [&doomed, &kept] {
        store.attach_user_policy(u.id, p.id).await.unwrap();
        store.attach_group_policy(g.id, p.id).await.unwrap();
    }

    store.delete_policy(doomed.id).await.unwrap();
    assert_eq!(
        policy_names(&store.list_user_policies(u.id).await.unwrap()),
        ["kept"]
    );
    assert_eq!(
        policy_names(&store.list_group_policies(g.id).await.unwrap()),
        ["kept"]
    );
    assert_eq!(
        effective(store, u.id).await,
        [("kept".into(), None), ("kept".into(), Some("g".into()))]
    );
    assert_err!(
        store.detach_user_policy(u.id, doomed.id).await,
        StoreError::NotFound(_)
    );
    assert_err!(
        store.detach_group_policy(g.id, doomed.id).await,
        StoreError::NotFound(_)
    );
    assert_err!(
        store.attach_user_policy(u.id, doomed.id).await,
        StoreError::NotFound(_)
    );
    // Members and groups survive.
    assert_eq!(
        user_names(&store.list_group_members(g.id).await.unwrap()),
        ["u"]
    );
}

pub async fn audit_log(store: &dyn CatalogStore) {
    assert!(store.list_audit(None, 10).await.unwrap().is_empty());

    let actor = Uuid::new_v4();
    let mut appended = Vec::new();
    for i in 0..7 {
        let mut r = match i % 3 {
            0 => audit(&format!("auth:Action{i}"), Some(actor), None),
            1 => audit(&format!("auth:Action{i}"), None, Some("denied: no policy")),
            _ => audit(&format!("auth:Action{i}"), Some(actor), Some("")),
        };
        // The input id is ignored.
        r.id = 999;
        r.at = now() + Duration::milliseconds(i);
        let id = store.append_audit(&r).await.unwrap();
        if let Some(prev) = appended.last().map(|p: &AuditRecord| p.id) {
            assert!(id > prev, "{id} after {prev}");
        }
        r.id = id;
        appended.push(r);
    }
    let newest_first: Vec<AuditRecord> = appended.iter().rev().cloned().collect();

    assert_eq!(store.list_audit(None, 100).await.unwrap(), newest_first);
    assert_eq!(store.list_audit(None, 3).await.unwrap(), newest_first[..3]);
    assert!(store.list_audit(None, 0).await.unwrap().is_empty());

    // Page through with `before` = the last id seen.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let got = store.list_audit(before, 3).await.unwrap();
        assert!(got.len() <= 3);
        let Some(last) = got.last() else { break };
        before = Some(last.id);
        seen.extend(got);
    }
    assert_eq!(seen, newest_first);

    // `before` is exclusive.
    let third = newest_first[2].id;
    assert_eq!(
        store.list_audit(Some(third), 100).await.unwrap(),
        newest_first[3..]
    );
    assert!(store
        .list_audit(Some(appended[0].id), 100)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.list_audit(Some(i64::MAX), 1).await.unwrap(),
        newest_first[..1]
    );
}

/// Soft-drops `t` (by "alice") and returns the record.
async fn soft_drop(
    store: &dyn CatalogStore,
    t: &TableRecord,
    deleted_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> DeletedTableRecord {
    store
        .soft_drop_table(
            t.warehouse_id,
            &t.namespace,
            &t.name,
            deleted_at,
            expires_at,
            Some("alice"),
            false,
        )
        .await
        .unwrap()
}

/// The final removal of a deleted table writes its audit entry in the same transaction:
/// exactly one entry per removal, none for a table that is already gone.
async fn purge_deleted_table(store: &dyn CatalogStore) {
    let w = new_warehouse(store, "wh").await;
    let n = new_namespace(store, w.id, "db").await;
    let t = new_table(store, &n, "t", "s3://wh/db/t").await;
    soft_drop(store, &t, now(), now()).await;
    let mut rec = audit("catalog:PurgeDeletedTable", None, Some("purged"));
    rec.target = t.id.to_string();
    store.purge_deleted_table(t.id, &rec).await.unwrap();
    assert!(store.get_deleted_table(t.id).await.unwrap().is_none());
    assert_err!(
        store.purge_deleted_table(t.id, &rec).await,
        StoreError::NotFound(_)
    );
    let entries = store.list_audit(None, 100).await.unwrap();
    let mine: Vec<_> = entries
        .iter()
        .filter(|e| e.target == t.id.to_string())
        .collect();
    assert_eq!(mine.len(), 1, "{entries:?}");
    assert_eq!(mine[0].action, "catalog:PurgeDeletedTable");
    assert_eq!(mine[0].detail.as_deref(), Some("purged"));
}

fn deleted_ids(v: &[DeletedTableRecord]) -> Vec<Uuid> {
    v.iter().map(|d| d.table.id).collect()
}

pub async fn soft_drop_table(store: &dyn CatalogStore) {
    let w = new_warehouse(store, "wh").await;
    let w2 = new_warehouse(store, "wh2").await;
    let n = new_namespace(store, w.id, "db").await;
    let t = new_table(store, &n, "t", "s3://wh/db/t").await;
    let keep = new_table(store, &n, "keep", "s3://wh/db/keep").await;

    let deleted_at = now();
    let expires_at = deleted_at + Duration::days(7);
    let d = store
        .soft_drop_table(
            w.id,
            &n.name,
            "t",
            deleted_at,
            expires_at,
            Some("alice"),
            true,
        )
        .await
        .unwrap();
    assert_eq!(
        d,
        DeletedTableRecord {
            table: t.clone(),
            kind: EntityKind::Table,
            deleted_at,
            expires_at,
            deleted_by: Some("alice".into()),
            purge_requested: true,
        }
    );
    assert_eq!(
        store.get_deleted_table(t.id).await.unwrap(),
        Some(d.clone())
    );
    assert_eq!(store.get_deleted_table(keep.id).await.unwrap(), None);
    assert_eq!(store.get_deleted_table(Uuid::new_v4()).await.unwrap(), None);

    // Gone from the live catalog.
    assert_eq!(store.get_table(w.id, &n.name, "t").await.unwrap(), None);
    assert_eq!(store.get_table_by_id(t.id).await.unwrap(), None);
    let listed = store
        .list_tables(w.id, &n.name, &Page::default())
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![keep.id]
    );
    assert_err!(
        store
            .soft_drop_table(w.id, &n.name, "t", deleted_at, expires_at, None, false)
            .await,
        StoreError::NotFound(_)
    );
    assert_err!(
        store
            .soft_drop_table(
                w.id,
                &ns("ghost"),
                "keep",
                deleted_at,
                expires_at,
                None,
                false
            )
            .await,
        StoreError::NotFound(_)
    );
    assert_err!(
        store
            .soft_drop_table(w2.id, &n.name, "keep", deleted_at, expires_at, None, false)
            .await,
        StoreError::NotFound(_)
    );

    // The location stays reserved: equal, inside and containing all overlap.
    let hit = store
        .location_overlaps(w.id, "s3://wh/db/t/", None)
        .await
        .unwrap()
        .expect("a deleted table's location stays reserved");
    assert_eq!(hit, "deleted table db.t at s3://wh/db/t");
    let inside = store
        .location_overlaps(w.id, "s3://wh/db/t/sub", None)
        .await
        .unwrap()
        .unwrap();
    assert!(inside.starts_with("deleted table db.t"), "{inside}");
    assert!(store
        .location_overlaps(w.id, "s3://wh/db", Some(keep.id))
        .await
        .unwrap()
        .is_some());
    assert!(store
        .location_overlaps(w.id, "s3://wh/db/t2", None)
        .await
        .unwrap()
        .is_none());
    // except_table applies to deleted tables too; other warehouses are unaffected.
    assert!(store
        .location_overlaps(w.id, "s3://wh/db/t", Some(t.id))
        .await
        .unwrap()
        .is_none());
    assert!(store
        .location_overlaps(w2.id, "s3://wh/db/t", None)
        .await
        .unwrap()
        .is_none());
    // Create and set-location enforce it.
    assert_err!(
        store
            .commit(&[CommitOp::Create(table(&n, "inner", "s3://wh/db/t/inner"))])
            .await,
        StoreError::LocationOverlap(_)
    );
    let onto = CommitOp::Update {
        table_id: keep.id,
        expected_metadata_location: keep.metadata_location.clone(),
        new_metadata_location: "s3://wh/db/t/m.json".into(),
        new_metadata_json: "{}".into(),
        new_location: "s3://wh/db/t".into(),
    };
    assert_err!(store.commit(&[onto]).await, StoreError::LocationOverlap(_));
    // A live table cannot take the deleted table's id either (it could never come back).
    let same_id = TableRecord {
        id: t.id,
        ..table(&n, "clone", "s3://wh/db/clone")
    };
    assert_err!(
        store.commit(&[CommitOp::Create(same_id)]).await,
        StoreError::AlreadyExists(_)
    );

    // The name is free at once.
    let reborn = new_table(store, &n, "t", "s3://wh/db/t-reborn").await;
    assert_eq!(
        store.get_table(w.id, &n.name, "t").await.unwrap(),
        Some(reborn.clone())
    );
    // ...so undropping under the old name collides, and a new name works.
    assert_err!(
        store.undrop_table(t.id, None).await,
        StoreError::AlreadyExists(_)
    );
    assert_err!(
        store.undrop_table(t.id, Some("keep")).await,
        StoreError::AlreadyExists(_)
    );
    assert_eq!(store.get_deleted_table(t.id).await.unwrap(), Some(d));
    let restored = store.undrop_table(t.id, Some("t_restored")).await.unwrap();
    assert_eq!(
        restored,
        TableRecord {
            name: "t_restored".into(),
            ..t.clone()
        }
    );
    assert_eq!(
        store.get_table(w.id, &n.name, "t_restored").await.unwrap(),
        Some(restored.clone())
    );
    assert_eq!(store.get_deleted_table(t.id).await.unwrap(), None);
    assert_err!(
        store.undrop_table(t.id, None).await,
        StoreError::NotFound(_)
    );
    // Live again: overlaps are now reported as the live table.
    let hit = store
        .location_overlaps(w.id, "s3://wh/db/t", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hit, "table db.t_restored at s3://wh/db/t");
    assert_eq!(
        store.get_table(w.id, &n.name, "t").await.unwrap(),
        Some(reborn)
    );
}

pub async fn undrop_table(store: &dyn CatalogStore) {
    let w = new_warehouse(store, "wh").await;
    let n = new_namespace(store, w.id, "db").await;
    let t = new_table(store, &n, "t", "s3://wh/db/t").await;
    let d = soft_drop(store, &t, now(), now() + Duration::days(1)).await;

    // Round trip: the table comes back exactly as it was.
    assert_eq!(store.undrop_table(t.id, None).await.unwrap(), t);
    assert_eq!(store.get_table_by_id(t.id).await.unwrap(), Some(t.clone()));
    assert!(store
        .list_deleted_tables(w.id, &Page::default())
        .await
        .unwrap()
        .is_empty());
    assert_err!(
        store.undrop_table(Uuid::new_v4(), None).await,
        StoreError::NotFound(_)
    );
    // Dropped again later: a fresh deleted record.
    let d2 = soft_drop(
        store,
        &t,
        now() + Duration::seconds(1),
        now() + Duration::days(2),
    )
    .await;
    assert_ne!(d2, d);

    // Soft-deleted tables do not block dropping their namespace (nested one included).
    new_namespace(store, w.id, "a").await;
    let ab = new_namespace(store, w.id, "a.b").await;
    let g = new_table(store, &ab, "g", "s3://wh/a/b/g").await;
    soft_drop(store, &g, now(), now() + Duration::days(1)).await;
    store.drop_namespace(w.id, &ns("a.b")).await.unwrap();
    store.drop_namespace(w.id, &ns("a")).await.unwrap();
    // Undrop then fails while the namespace is gone, and keeps the record.
    assert_err!(
        store.undrop_table(g.id, None).await,
        StoreError::NotFound(_)
    );
    assert!(store.get_deleted_table(g.id).await.unwrap().is_some());
    // A namespace recreated under the same name (new id) takes it back.
    new_namespace(store, w.id, "a").await;
    let ab2 = new_namespace(store, w.id, "a.b").await;
    assert_ne!(ab2.id, ab.id);
    let back = store.undrop_table(g.id, None).await.unwrap();
    assert_eq!(
        back,
        TableRecord {
            namespace_id: ab2.id,
            ..g.clone()
        }
    );
    assert_eq!(
        store.get_table(w.id, &ns("a.b"), "g").await.unwrap(),
        Some(back)
    );

    // Not while a purge holds the row.
    let base = now();
    let x = new_table(store, &n, "x", "s3://wh/db/x").await;
    soft_drop(
        store,
        &x,
        base - Duration::hours(2),
        base - Duration::hours(1),
    )
    .await;
    let claimed = store
        .claim_expired_deleted_tables(base, base + Duration::hours(1), 10)
        .await
        .unwrap();
    assert_eq!(deleted_ids(&claimed), vec![x.id]);
    assert_err!(
        store.undrop_table(x.id, None).await,
        StoreError::NotFound(_)
    );
    assert!(store.get_deleted_table(x.id).await.unwrap().is_some());
    // Once a (crashed) worker's lease has run out, it can be undropped again.
    let y = new_table(store, &n, "y", "s3://wh/db/y").await;
    soft_drop(
        store,
        &y,
        base - Duration::hours(2),
        base - Duration::hours(1),
    )
    .await;
    let claimed = store
        .claim_expired_deleted_tables(
            base - Duration::minutes(30),
            base - Duration::minutes(1),
            10,
        )
        .await
        .unwrap();
    assert_eq!(deleted_ids(&claimed), vec![y.id]);
    assert_eq!(store.undrop_table(y.id, None).await.unwrap(), y);
}

pub async fn deleted_table_listing(store: &dyn CatalogStore) {
    let w = new_warehouse(store, "wh").await;
    let w2 = new_warehouse(store, "wh2").await;
    let n = new_namespace(store, w.id, "db").await;
    let other_ns = new_namespace(store, w.id, "other").await;
    let n2 = new_namespace(store, w2.id, "db").await;
    assert!(store
        .list_deleted_tables(w.id, &Page::default())
        .await
        .unwrap()
        .is_empty());

    let base = now();
    let mut dropped = Vec::new();
    for i in 0..7i64 {
        let home = if i % 2 == 0 { &n } else { &other_ns };
        let t = new_table(store, home, &format!("t{i}"), &format!("s3://wh/t{i}")).await;
        // Pairs share a deletion time, so the id tie-break matters.
        let at = base + Duration::seconds(i / 2);
        dropped.push(soft_drop(store, &t, at, at + Duration::days(1)).await);
    }
    let elsewhere = new_table(store, &n2, "t0", "s3://wh2/t0").await;
    soft_drop(store, &elsewhere, base, base + Duration::days(1)).await;

    // Newest deletion first; ties by id, descending.
    let mut expected = dropped.clone();
    expected.sort_by_key(|d| std::cmp::Reverse((d.deleted_at, d.table.id)));
    assert_eq!(
        store
            .list_deleted_tables(w.id, &Page::default())
            .await
            .unwrap(),
        expected
    );
    assert_eq!(
        store
            .list_deleted_tables(w2.id, &Page::default())
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .list_deleted_tables(w.id, &page(None, Some(3)))
            .await
            .unwrap(),
        expected[..3]
    );

    // Page through with `after` = the page key of the last row seen.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let got = store
            .list_deleted_tables(
                w.id,
                &Page {
                    after: after.clone(),
                    limit: Some(2),
                },
            )
            .await
            .unwrap();
        assert!(got.len() <= 2);
        let Some(last) = got.last() else { break };
        after = Some(last.page_key());
        seen.extend(got);
    }
    assert_eq!(seen, expected);

    // The key stays valid after its row leaves the list (undropped or purged).
    let first = store
        .list_deleted_tables(w.id, &page(None, Some(3)))
        .await
        .unwrap();
    let key = first[2].page_key();
    store.undrop_table(first[2].table.id, None).await.unwrap();
    store.forget_deleted_table(first[1].table.id).await.unwrap();
    assert_eq!(
        store
            .list_deleted_tables(w.id, &page(Some(&key), None))
            .await
            .unwrap(),
        expected[3..]
    );
    assert!(store
        .list_deleted_tables(w.id, &page(Some(&expected[6].page_key()), None))
        .await
        .unwrap()
        .is_empty());
    for bad in ["garbage", "12", "x/y", &format!("abc/{}", Uuid::new_v4())] {
        assert_err!(
            store
                .list_deleted_tables(w.id, &page(Some(bad), None))
                .await,
            StoreError::NotFound(_)
        );
    }
}

pub async fn claim_expired_deleted_tables(store: &dyn CatalogStore) {
    let w = new_warehouse(store, "wh").await;
    let w2 = new_warehouse(store, "wh2").await;
    let n = new_namespace(store, w.id, "db").await;
    let n2 = new_namespace(store, w2.id, "db").await;
    let base = now();
    let lease = |d: Duration| base + d;

    let a = new_table(store, &n, "a", "s3://wh/db/a").await;
    let b = new_table(store, &n2, "b", "s3://wh2/db/b").await;
    let c = new_table(store, &n, "c", "s3://wh/db/c").await;
    let da = soft_drop(
        store,
        &a,
        base - Duration::days(1),
        base - Duration::seconds(10),
    )
    .await;
    let db = soft_drop(
        store,
        &b,
        base - Duration::days(1),
        base - Duration::seconds(5),
    )
    .await;
    let dc = soft_drop(store, &c, base, base + Duration::hours(1)).await;

    assert!(store
        .claim_expired_deleted_tables(base, lease(Duration::minutes(1)), 0)
        .await
        .unwrap()
        .is_empty());
    // Only expired rows (any warehouse), oldest expiry first, returned as stored.
    let claimed = store
        .claim_expired_deleted_tables(base, lease(Duration::minutes(1)), 10)
        .await
        .unwrap();
    assert_eq!(claimed, vec![da.clone(), db.clone()]);
    // Leased rows are not claimed again until the lease has passed.
    assert!(store
        .claim_expired_deleted_tables(base, lease(Duration::minutes(5)), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .claim_expired_deleted_tables(
            base + Duration::seconds(59),
            lease(Duration::minutes(5)),
            10
        )
        .await
        .unwrap()
        .is_empty());
    // Held while now < lease_until: at lease_until it is free. `limit` caps the batch.
    let at = base + Duration::minutes(1);
    assert_eq!(
        store
            .claim_expired_deleted_tables(at, lease(Duration::minutes(3)), 1)
            .await
            .unwrap(),
        vec![da.clone()]
    );
    assert_eq!(
        store
            .claim_expired_deleted_tables(at, lease(Duration::minutes(3)), 1)
            .await
            .unwrap(),
        vec![db.clone()]
    );
    assert!(store
        .claim_expired_deleted_tables(at, lease(Duration::minutes(3)), 1)
        .await
        .unwrap()
        .is_empty());
    // Later, everything has expired and every lease has run out.
    let later = base + Duration::hours(2);
    assert_eq!(
        store
            .claim_expired_deleted_tables(later, later + Duration::minutes(1), 10)
            .await
            .unwrap(),
        vec![da, db, dc.clone()]
    );
    // Claiming leaves the records listed.
    assert_eq!(
        store
            .list_deleted_tables(w.id, &Page::default())
            .await
            .unwrap()
            .len(),
        2
    );

    // Forget removes for good.
    store.forget_deleted_table(a.id).await.unwrap();
    assert_eq!(store.get_deleted_table(a.id).await.unwrap(), None);
    assert_err!(
        store.forget_deleted_table(a.id).await,
        StoreError::NotFound(_)
    );
    assert_err!(
        store.forget_deleted_table(Uuid::new_v4()).await,
        StoreError::NotFound(_)
    );
    assert_err!(
        store.undrop_table(a.id, None).await,
        StoreError::NotFound(_)
    );
    assert_eq!(
        deleted_ids(
            &store
                .list_deleted_tables(w.id, &Page::default())
                .await
                .unwrap()
        ),
        vec![c.id]
    );
    // ...and frees the location.
    assert!(store
        .location_overlaps(w.id, "s3://wh/db/a", None)
        .await
        .unwrap()
        .is_none());
    new_table(store, &n, "a2", "s3://wh/db/a").await;
    let much_later = base + Duration::days(1);
    assert_eq!(
        deleted_ids(
            &store
                .claim_expired_deleted_tables(much_later, much_later, 10)
                .await
                .unwrap()
        ),
        vec![b.id, c.id]
    );
}

pub async fn deleted_tables_block_warehouse_delete(store: &dyn CatalogStore) {
    let w = new_warehouse(store, "wh").await;
    let n = new_namespace(store, w.id, "db").await;
    let t = new_table(store, &n, "t", "s3://wh/db/t").await;
    soft_drop(store, &t, now(), now() + Duration::days(1)).await;
    store.drop_namespace(w.id, &n.name).await.unwrap();
    assert_err!(store.delete_warehouse(w.id).await, StoreError::NotEmpty(_));
    assert!(store.get_warehouse(w.id).await.unwrap().is_some());
    store.forget_deleted_table(t.id).await.unwrap();
    store.delete_warehouse(w.id).await.unwrap();
    assert_eq!(store.get_warehouse(w.id).await.unwrap(), None);
}

pub async fn table_containing_location(store: &dyn CatalogStore) {
    let w = new_warehouse(store, "wh").await;
    let w2 = new_warehouse(store, "wh2").await;
    let n = new_namespace(store, w.id, "db").await;
    let n2 = new_namespace(store, w2.id, "db").await;
    let t1 = new_table(store, &n, "t1", "s3://b/data/t1").await;
    let t10 = new_table(store, &n, "t10", "s3://b/data/t10/").await;
    let other = new_table(store, &n2, "x", "s3://c/x").await;

    let find = |loc: &'static str| async move {
        store
            .table_containing_location(loc)
            .await
            .unwrap()
            .map(|t| t.id)
    };
    // Exact, with or without trailing slashes on either side.
    assert_eq!(
        store
            .table_containing_location("s3://b/data/t1")
            .await
            .unwrap(),
        Some(t1.clone())
    );
    assert_eq!(find("s3://b/data/t1/").await, Some(t1.id));
    assert_eq!(find("s3://b/data/t10").await, Some(t10.id));
    assert_eq!(find("s3://b/data/t10//").await, Some(t10.id));
    // Nested files.
    assert_eq!(
        find("s3://b/data/t1/data/00000-0-abc.parquet").await,
        Some(t1.id)
    );
    assert_eq!(find("s3://b/data/t10/metadata/v1.json").await, Some(t10.id));
    // Any warehouse.
    assert_eq!(find("s3://c/x/data/f.parquet").await, Some(other.id));
    // Sibling string prefixes, containing locations and strangers do not match.
    assert_eq!(find("s3://b/data/t100/f").await, None);
    assert_eq!(find("s3://b/data/t").await, None);
    assert_eq!(find("s3://b/data/t1.backup/f").await, None);
    assert_eq!(find("s3://b/data").await, None);
    assert_eq!(find("s3://b").await, None);
    assert_eq!(find("s3://z/data/t1").await, None);
    assert_eq!(find("").await, None);
    assert_eq!(find("/").await, None);

    // Follows renames and moves; soft-deleted tables are not live.
    store
        .rename_table(w.id, &n.name, "t1", &n.name, "renamed")
        .await
        .unwrap();
    assert_eq!(
        store
            .table_containing_location("s3://b/data/t1/f")
            .await
            .unwrap()
            .map(|t| t.name),
        Some("renamed".to_string())
    );
    let moved = CommitOp::Update {
        table_id: t10.id,
        expected_metadata_location: t10.metadata_location.clone(),
        new_metadata_location: "s3://b/moved/t10/m.json".into(),
        new_metadata_json: "{}".into(),
        new_location: "s3://b/moved/t10".into(),
    };
    store.commit(&[moved]).await.unwrap();
    assert_eq!(find("s3://b/data/t10/f").await, None);
    assert_eq!(find("s3://b/moved/t10/f").await, Some(t10.id));
    store
        .soft_drop_table(w.id, &n.name, "renamed", now(), now(), None, false)
        .await
        .unwrap();
    assert_eq!(find("s3://b/data/t1/f").await, None);
    store.undrop_table(t1.id, None).await.unwrap();
    assert_eq!(find("s3://b/data/t1/f").await, Some(t1.id));
}

/// Purge workers racing for the same expired rows: every row is claimed exactly once, and
/// no claimer sees a database error.
pub async fn concurrent_claims(store: Arc<dyn CatalogStore>) {
    const ROWS: usize = 60;
    const WORKERS: usize = 8;
    let w = new_warehouse(&*store, "wh").await;
    let n = new_namespace(&*store, w.id, "db").await;
    let base = now();
    let mut all = Vec::new();
    for i in 0..ROWS {
        let t = new_table(&*store, &n, &format!("t{i}"), &format!("s3://wh/db/t{i}")).await;
        soft_drop(
            &*store,
            &t,
            base - Duration::hours(2),
            base - Duration::hours(1),
        )
        .await;
        all.push(t.id);
    }

    let barrier = Arc::new(tokio::sync::Barrier::new(WORKERS));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let store = store.clone();
        let barrier = barrier.clone();
        tasks.spawn(async move {
            barrier.wait().await;
            let mut mine = Vec::new();
            loop {
                let got = store
                    .claim_expired_deleted_tables(base, base + Duration::hours(1), 3)
                    .await
                    .unwrap();
                if got.is_empty() {
                    break mine;
                }
                assert!(got.len() <= 3);
                mine.extend(deleted_ids(&got));
                tokio::task::yield_now().await;
            }
        });
    }
    let mut claimed = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        claimed.extend(joined.unwrap());
    }
    claimed.sort();
    all.sort();
    assert_eq!(claimed, all, "each row claimed exactly once");
}

// ---- external identities ----

fn identity(source: &str, subject: &str, user_id: Uuid) -> ExternalIdentityRecord {
    ExternalIdentityRecord {
        source: source.to_string(),
        subject: subject.to_string(),
        user_id,
        created_at: now(),
    }
}

/// (source, subject) pairs, in the order returned.
fn identity_keys(v: &[ExternalIdentityRecord]) -> Vec<(&str, &str)> {
    v.iter()
        .map(|i| (i.source.as_str(), i.subject.as_str()))
        .collect()
}

pub async fn external_identities(store: &dyn CatalogStore) {
    let alice = new_user(store, "alice").await;
    let bob = new_user(store, "bob").await;
    let oidc = identity("oidc", "https://idp.example.com#alice", alice.id);
    let ldap = identity("ldap", "uid=alice,ou=people,dc=example,dc=com", alice.id);
    let web = identity("web-identity", "alice-web", alice.id);
    let bob_arn = identity("aws-iam", "arn:aws:iam::123456789012:user/bob", bob.id);
    for rec in [&web, &oidc, &ldap, &bob_arn] {
        store.create_external_identity(rec).await.unwrap();
    }

    assert_eq!(
        store
            .get_external_identity("oidc", "https://idp.example.com#alice")
            .await
            .unwrap(),
        Some(oidc.clone())
    );
    // Both parts of the key matter.
    assert_eq!(
        store
            .get_external_identity("ldap", "https://idp.example.com#alice")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.get_external_identity("oidc", "nobody").await.unwrap(),
        None
    );
    assert_eq!(
        store.list_external_identities(alice.id).await.unwrap(),
        vec![ldap.clone(), oidc.clone(), web.clone()]
    );
    assert_eq!(
        store.list_external_identities(bob.id).await.unwrap(),
        vec![bob_arn.clone()]
    );
    assert!(store
        .list_external_identities(Uuid::new_v4())
        .await
        .unwrap()
        .is_empty());

    // An identity links to one user only: a duplicate for anyone is AlreadyExists, and the
    // existing link is unchanged.
    assert_err!(
        store.create_external_identity(&oidc).await,
        StoreError::AlreadyExists(_)
    );
    let stolen = identity("oidc", "https://idp.example.com#alice", bob.id);
    match store.create_external_identity(&stolen).await {
        Err(StoreError::AlreadyExists(what)) => {
            assert!(what.contains("https://idp.example.com#alice"), "{what}")
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        store
            .get_external_identity("oidc", "https://idp.example.com#alice")
            .await
            .unwrap()
            .map(|i| i.user_id),
        Some(alice.id)
    );
    // The same subject under another source is a different identity.
    let other_source = identity("web-identity", "https://idp.example.com#alice", bob.id);
    store.create_external_identity(&other_source).await.unwrap();

    // The user must exist.
    let ghost = Uuid::new_v4();
    match store
        .create_external_identity(&identity("oidc", "ghost", ghost))
        .await
    {
        Err(StoreError::NotFound(what)) => assert!(what.contains(&ghost.to_string()), "{what}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(
        store.get_external_identity("oidc", "ghost").await.unwrap(),
        None
    );

    store
        .delete_external_identity("ldap", "uid=alice,ou=people,dc=example,dc=com")
        .await
        .unwrap();
    assert_eq!(
        identity_keys(&store.list_external_identities(alice.id).await.unwrap()),
        [
            ("oidc", "https://idp.example.com#alice"),
            ("web-identity", "alice-web")
        ]
    );
    assert_err!(
        store
            .delete_external_identity("ldap", "uid=alice,ou=people,dc=example,dc=com")
            .await,
        StoreError::NotFound(_)
    );
    assert_err!(
        store.delete_external_identity("oidc", "nobody").await,
        StoreError::NotFound(_)
    );
    // Deleting a link leaves the user, and the identity can be linked again.
    assert!(store.get_user(alice.id).await.unwrap().is_some());
    store.create_external_identity(&ldap).await.unwrap();
    assert_eq!(
        store
            .list_external_identities(alice.id)
            .await
            .unwrap()
            .len(),
        3
    );
}

pub async fn delete_user_removes_identities(store: &dyn CatalogStore) {
    let doomed = new_user(store, "doomed").await;
    let keeper = new_user(store, "keeper").await;
    store
        .create_external_identity(&identity("oidc", "doomed", doomed.id))
        .await
        .unwrap();
    store
        .create_external_identity(&identity("ldap", "cn=doomed", doomed.id))
        .await
        .unwrap();
    let kept = identity("oidc", "keeper", keeper.id);
    store.create_external_identity(&kept).await.unwrap();

    store.delete_user(doomed.id).await.unwrap();
    assert_eq!(
        store.get_external_identity("oidc", "doomed").await.unwrap(),
        None
    );
    assert_eq!(
        store
            .get_external_identity("ldap", "cn=doomed")
            .await
            .unwrap(),
        None
    );
    assert!(store
        .list_external_identities(doomed.id)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.list_external_identities(keeper.id).await.unwrap(),
        vec![kept]
    );
    // The rows are gone, not merely orphaned: the identity is free for a new user.
    assert_err!(
        store.delete_external_identity("oidc", "doomed").await,
        StoreError::NotFound(_)
    );
    let successor = new_user(store, "successor").await;
    store
        .create_external_identity(&identity("oidc", "doomed", successor.id))
        .await
        .unwrap();
}

pub async fn create_user_with_identity(store: &dyn CatalogStore) {
    let readers = new_group(store, "readers").await;
    let writers = new_group(store, "writers").await;
    let other = new_group(store, "other").await;

    // Success: user, link and memberships all written. A group listed twice is one
    // membership.
    let carol = UserRecord {
        source: "oidc".into(),
        ..user("carol")
    };
    let carol_id = identity("oidc", "idp#carol", carol.id);
    store
        .create_user_with_identity(&carol, &carol_id, &[writers.id, readers.id, writers.id])
        .await
        .unwrap();
    assert_eq!(store.get_user(carol.id).await.unwrap(), Some(carol.clone()));
    assert_eq!(
        store
            .get_external_identity("oidc", "idp#carol")
            .await
            .unwrap(),
        Some(carol_id.clone())
    );
    assert_eq!(
        group_names(&store.list_user_groups(carol.id).await.unwrap()),
        ["readers", "writers"]
    );
    assert!(store.list_group_members(other.id).await.unwrap().is_empty());

    // No groups at all.
    let dave = user("dave");
    store
        .create_user_with_identity(&dave, &identity("ldap", "cn=dave", dave.id), &[])
        .await
        .unwrap();
    assert!(store.list_user_groups(dave.id).await.unwrap().is_empty());
    assert_eq!(
        identity_keys(&store.list_external_identities(dave.id).await.unwrap()),
        [("ldap", "cn=dave")]
    );

    let users_before = store.list_users().await.unwrap();

    // Name taken: nothing written, in particular no link and no membership.
    let impostor = user("carol");
    match store
        .create_user_with_identity(
            &impostor,
            &identity("oidc", "idp#carol-2", impostor.id),
            &[other.id],
        )
        .await
    {
        Err(StoreError::AlreadyExists(what)) => assert_eq!(what, "user carol"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        store
            .get_external_identity("oidc", "idp#carol-2")
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.get_user(impostor.id).await.unwrap(), None);
    assert!(store.list_group_members(other.id).await.unwrap().is_empty());

    // Identity linked already: no user created, the link still points at carol.
    let erin = user("erin");
    match store
        .create_user_with_identity(&erin, &identity("oidc", "idp#carol", erin.id), &[other.id])
        .await
    {
        Err(StoreError::AlreadyExists(what)) => {
            assert_eq!(what, "external identity oidc idp#carol")
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(store.get_user(erin.id).await.unwrap(), None);
    assert_eq!(store.get_user_by_name("erin").await.unwrap(), None);
    assert_eq!(
        store
            .get_external_identity("oidc", "idp#carol")
            .await
            .unwrap(),
        Some(carol_id.clone())
    );
    assert!(store.list_group_members(other.id).await.unwrap().is_empty());

    // A missing group (after an existing one): nothing written at all.
    let frank = user("frank");
    let missing = Uuid::new_v4();
    match store
        .create_user_with_identity(
            &frank,
            &identity("oidc", "idp#frank", frank.id),
            &[other.id, missing],
        )
        .await
    {
        Err(StoreError::NotFound(what)) => assert_eq!(what, format!("group {missing}")),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(store.get_user(frank.id).await.unwrap(), None);
    assert_eq!(store.get_user_by_name("frank").await.unwrap(), None);
    assert_eq!(
        store
            .get_external_identity("oidc", "idp#frank")
            .await
            .unwrap(),
        None
    );
    assert!(store.list_group_members(other.id).await.unwrap().is_empty());

    assert_eq!(store.list_users().await.unwrap(), users_before);

    // Every failure left the names and identities free: retrying correctly succeeds.
    store
        .create_user_with_identity(
            &frank,
            &identity("oidc", "idp#frank", frank.id),
            &[other.id],
        )
        .await
        .unwrap();
    assert_eq!(
        user_names(&store.list_group_members(other.id).await.unwrap()),
        ["frank"]
    );
}

/// Racing first logins of the same identity under different user names: exactly one
/// creates its user, the rest see AlreadyExists (never a leaked SQLITE_BUSY), and no
/// stray user is left behind.
pub async fn concurrent_user_with_identity(store: Arc<dyn CatalogStore>) {
    const LOGINS: usize = 8;
    let g = new_group(&*store, "everyone").await;
    let barrier = Arc::new(tokio::sync::Barrier::new(LOGINS));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..LOGINS {
        let store = store.clone();
        let barrier = barrier.clone();
        let group_id = g.id;
        tasks.spawn(async move {
            let u = user(&format!("login-{i}"));
            let link = identity("oidc", "https://idp.example.com#same", u.id);
            barrier.wait().await;
            (
                store
                    .create_user_with_identity(&u, &link, &[group_id])
                    .await,
                u,
            )
        });
    }
    let mut winners = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap() {
            (Ok(()), u) => winners.push(u),
            (Err(StoreError::AlreadyExists(_)), _) => {}
            (Err(e), u) => panic!("{}: unexpected error {e:?}", u.name),
        }
    }
    assert_eq!(winners.len(), 1, "winners {:?}", user_names(&winners));
    let winner = &winners[0];
    assert_eq!(store.list_users().await.unwrap(), vec![winner.clone()]);
    assert_eq!(
        store
            .get_external_identity("oidc", "https://idp.example.com#same")
            .await
            .unwrap()
            .map(|i| i.user_id),
        Some(winner.id)
    );
    assert_eq!(
        user_names(&store.list_group_members(g.id).await.unwrap()),
        [winner.name.as_str()]
    );
}

// ---------------------------------------------------------------------------------------
// SQLite bindings
// ---------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------
// Views
// ---------------------------------------------------------------------------------------

fn view(n: &NamespaceRecord, name: &str) -> ViewRecord {
    let t = now();
    let location = format!("s3://wh/{}/{name}", n.name);
    ViewRecord {
        id: Uuid::new_v4(),
        warehouse_id: n.warehouse_id,
        namespace_id: n.id,
        namespace: n.name.clone(),
        name: name.to_string(),
        metadata_location: format!("{location}/metadata/00000-{}.metadata.json", Uuid::new_v4()),
        metadata_json: format!(r#"{{"format-version":1,"location":"{location}"}}"#),
        location,
        created_at: t,
        updated_at: t,
    }
}

async fn new_view(store: &dyn CatalogStore, n: &NamespaceRecord, name: &str) -> ViewRecord {
    let v = view(n, name);
    store.create_view(&v).await.unwrap();
    v
}

fn summary_names(v: &[sluice_store::TableSummary]) -> Vec<&str> {
    v.iter().map(|s| s.name.as_str()).collect()
}

pub async fn views(store: &dyn CatalogStore) {
    let w = new_warehouse(store, "wh").await;
    let n = new_namespace(store, w.id, "db").await;
    let other = new_namespace(store, w.id, "other").await;
    let v = new_view(store, &n, "v").await;
    assert_eq!(
        store.get_view(w.id, &n.name, "v").await.unwrap(),
        Some(v.clone())
    );
    assert_eq!(store.get_view_by_id(v.id).await.unwrap(), Some(v.clone()));
    assert_eq!(store.get_view(w.id, &other.name, "v").await.unwrap(), None);
    // Views are not tables.
    assert_eq!(store.get_table(w.id, &n.name, "v").await.unwrap(), None);
    assert!(store
        .list_tables(w.id, &n.name, &page(None, None))
        .await
        .unwrap()
        .is_empty());

    assert_err!(
        store.create_view(&view(&n, "v")).await,
        StoreError::AlreadyExists(_)
    );
    assert_err!(
        store
            .create_view(&ViewRecord {
                name: "w".into(),
                ..v.clone()
            })
            .await,
        StoreError::AlreadyExists(_)
    );
    let mut orphan = view(&n, "x");
    orphan.namespace_id = Uuid::new_v4();
    assert_err!(store.create_view(&orphan).await, StoreError::NotFound(_));

    for name in ["c", "a", "b"] {
        new_view(store, &n, name).await;
    }
    let all = store
        .list_views(w.id, &n.name, &page(None, None))
        .await
        .unwrap();
    assert_eq!(summary_names(&all), ["a", "b", "c", "v"]);
    let first = store
        .list_views(w.id, &n.name, &page(None, Some(2)))
        .await
        .unwrap();
    assert_eq!(summary_names(&first), ["a", "b"]);
    let rest = store
        .list_views(w.id, &n.name, &page(Some("b"), Some(2)))
        .await
        .unwrap();
    assert_eq!(summary_names(&rest), ["c", "v"]);
    assert!(store
        .list_views(w.id, &other.name, &page(None, None))
        .await
        .unwrap()
        .is_empty());
    assert_err!(
        store
            .list_views(w.id, &ns("missing"), &page(None, None))
            .await,
        StoreError::NotFound(_)
    );

    // Compare-and-swap on the metadata location.
    let next = "s3://wh/db/v/metadata/00001-x.metadata.json";
    store
        .update_view(v.id, &v.metadata_location, next, r#"{"n":1}"#, &v.location)
        .await
        .unwrap();
    assert_err!(
        store
            .update_view(
                v.id,
                &v.metadata_location,
                "s3://wh/db/v/metadata/00001-y.metadata.json",
                "{}",
                &v.location
            )
            .await,
        StoreError::Conflict(_)
    );
    let got = store.get_view(w.id, &n.name, "v").await.unwrap().unwrap();
    assert_eq!(
        (got.metadata_location.as_str(), got.metadata_json.as_str()),
        (next, r#"{"n":1}"#)
    );
    assert_err!(
        store
            .update_view(Uuid::new_v4(), next, next, "{}", "s3://x")
            .await,
        StoreError::NotFound(_)
    );

    let dropped = store.drop_view(w.id, &n.name, "v").await.unwrap();
    assert_eq!(dropped.id, v.id);
    assert_eq!(store.get_view(w.id, &n.name, "v").await.unwrap(), None);
    assert_err!(
        store.drop_view(w.id, &n.name, "v").await,
        StoreError::NotFound(_)
    );
}

pub async fn rename_view(store: &dyn CatalogStore) {
    let w = new_warehouse(store, "wh").await;
    let n = new_namespace(store, w.id, "db").await;
    let other = new_namespace(store, w.id, "other").await;
    let v = new_view(store, &n, "v").await;
    new_view(store, &n, "taken").await;
    store
        .rename_view(w.id, &n.name, "v", &other.name, "moved")
        .await
        .unwrap();
    let got = store
        .get_view(w.id, &other.name, "moved")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.id, got.namespace_id, &got.namespace),
        (v.id, other.id, &other.name)
    );
    assert_eq!(store.get_view(w.id, &n.name, "v").await.unwrap(), None);
    assert_err!(
        store.rename_view(w.id, &n.name, "v", &n.name, "v2").await,
        StoreError::NotFound(_)
    );
    assert_err!(
        store
            .rename_view(w.id, &other.name, "moved", &ns("missing"), "x")
            .await,
        StoreError::NotFound(_)
    );
    assert_err!(
        store
            .rename_view(w.id, &other.name, "moved", &n.name, "taken")
            .await,
        StoreError::AlreadyExists(_)
    );
    assert!(store
        .get_view(w.id, &other.name, "moved")
        .await
        .unwrap()
        .is_some());
}

/// Tables and views share one name space per namespace, whichever claims the name and
/// however (create, rename, undrop).
pub async fn views_and_tables_share_names(store: &dyn CatalogStore) {
    let w = new_warehouse(store, "wh").await;
    let n = new_namespace(store, w.id, "db").await;
    let t = new_table(store, &n, "t", "s3://wh/db/t").await;
    let v = new_view(store, &n, "v").await;

    match store.create_view(&view(&n, "t")).await {
        Err(StoreError::AlreadyExists(m)) => assert!(m.starts_with("table "), "{m}"),
        other => panic!("view over a table: {other:?}"),
    }
    match store
        .commit(&[CommitOp::Create(table(&n, "v", "s3://wh/db/tv"))])
        .await
    {
        Err(StoreError::AlreadyExists(m)) => assert!(m.starts_with("view "), "{m}"),
        other => panic!("table over a view: {other:?}"),
    }
    assert_err!(
        store.rename_table(w.id, &n.name, "t", &n.name, "v").await,
        StoreError::AlreadyExists(_)
    );
    assert_err!(
        store.rename_view(w.id, &n.name, "v", &n.name, "t").await,
        StoreError::AlreadyExists(_)
    );
    assert_eq!(
        store
            .get_table(w.id, &n.name, "t")
            .await
            .unwrap()
            .unwrap()
            .id,
        t.id
    );
    assert_eq!(
        store
            .get_view(w.id, &n.name, "v")
            .await
            .unwrap()
            .unwrap()
            .id,
        v.id
    );

    // A soft-deleted table frees its name; a view may take it, and then undrop cannot.
    let at = now();
    store
        .soft_drop_table(w.id, &n.name, "t", at, at + Duration::days(1), None, false)
        .await
        .unwrap();
    new_view(store, &n, "t").await;
    assert_err!(
        store.undrop_table(t.id, None).await,
        StoreError::AlreadyExists(_)
    );
    store.undrop_table(t.id, Some("t2")).await.unwrap();

    // A namespace holding only a view is not empty.
    let lone = new_namespace(store, w.id, "lone").await;
    new_view(store, &lone, "only").await;
    assert_err!(
        store.drop_namespace(w.id, &lone.name).await,
        StoreError::NotEmpty(_)
    );
    store.drop_view(w.id, &lone.name, "only").await.unwrap();
    store.drop_namespace(w.id, &lone.name).await.unwrap();
}

/// A soft-dropped view joins the deleted list (kind view): its name is free at once, undrop
/// brings it back as a view (unless a table or view took the name), its id stays reserved,
/// and the leased claim and purge handle it like a table.
pub async fn soft_drop_view(store: &dyn CatalogStore) {
    let w = new_warehouse(store, "wh").await;
    let n = new_namespace(store, w.id, "db").await;
    let v = new_view(store, &n, "v").await;
    new_table(store, &n, "t", "s3://wh/db/t").await;

    let at = now();
    let d = store
        .soft_drop_view(
            w.id,
            &n.name,
            "v",
            at,
            at + Duration::days(1),
            Some("alice"),
            true,
        )
        .await
        .unwrap();
    assert_eq!(
        d,
        DeletedTableRecord {
            table: v.clone().into(),
            kind: EntityKind::View,
            deleted_at: at,
            expires_at: at + Duration::days(1),
            deleted_by: Some("alice".into()),
            purge_requested: true,
        }
    );
    assert_eq!(
        store.get_deleted_table(v.id).await.unwrap(),
        Some(d.clone())
    );
    assert_eq!(
        store
            .list_deleted_tables(w.id, &page(None, None))
            .await
            .unwrap(),
        vec![d.clone()]
    );
    assert_eq!(store.get_view(w.id, &n.name, "v").await.unwrap(), None);
    assert_eq!(store.get_view_by_id(v.id).await.unwrap(), None);
    assert_err!(
        store
            .soft_drop_view(w.id, &n.name, "v", at, at, None, false)
            .await,
        StoreError::NotFound(_)
    );
    // A table is not a view.
    assert_err!(
        store
            .soft_drop_view(w.id, &n.name, "t", at, at, None, false)
            .await,
        StoreError::NotFound(_)
    );
    assert!(store.get_table(w.id, &n.name, "t").await.unwrap().is_some());
    // The id stays reserved while the view is in the deleted list.
    assert_err!(
        store
            .create_view(&ViewRecord {
                name: "other".into(),
                ..v.clone()
            })
            .await,
        StoreError::AlreadyExists(_)
    );

    // The name is free again: a table takes it, and undrop under that name is refused...
    let t = new_table(store, &n, "v", "s3://wh/db/tv").await;
    match store.undrop_table(v.id, None).await {
        Err(StoreError::AlreadyExists(m)) => assert!(m.starts_with("table "), "{m}"),
        other => panic!("undrop over a table: {other:?}"),
    }
    // ...as it is when a view holds it.
    store.drop_table(w.id, &n.name, "v").await.unwrap();
    let other = new_view(store, &n, "v").await;
    match store.undrop_table(v.id, None).await {
        Err(StoreError::AlreadyExists(m)) => assert!(m.starts_with("view "), "{m}"),
        other => panic!("undrop over a view: {other:?}"),
    }
    assert_eq!(
        store.get_deleted_table(v.id).await.unwrap(),
        Some(d.clone())
    );
    assert_eq!(store.get_table_by_id(t.id).await.unwrap(), None);

    // Undropped under a new name, it is a view again with everything else as it was.
    let back = store.undrop_table(v.id, Some("v2")).await.unwrap();
    let restored = ViewRecord {
        name: "v2".into(),
        ..v.clone()
    };
    assert_eq!(ViewRecord::from(back), restored);
    assert_eq!(
        store.get_view(w.id, &n.name, "v2").await.unwrap(),
        Some(restored)
    );
    assert_eq!(store.get_table(w.id, &n.name, "v2").await.unwrap(), None);
    assert_eq!(store.get_deleted_table(v.id).await.unwrap(), None);
    assert_eq!(
        store
            .get_view(w.id, &n.name, "v")
            .await
            .unwrap()
            .unwrap()
            .id,
        other.id
    );

    // Expired, it is claimed and purged like a table.
    let past = now() - Duration::hours(1);
    store
        .soft_drop_view(w.id, &n.name, "v2", past, past, None, false)
        .await
        .unwrap();
    let claimed = store
        .claim_expired_deleted_tables(now(), now() + Duration::minutes(10), 10)
        .await
        .unwrap();
    assert_eq!(
        claimed
            .iter()
            .map(|c| (c.table.id, c.kind))
            .collect::<Vec<_>>(),
        [(v.id, EntityKind::View)]
    );
    let mut rec = audit("catalog:PurgeDeletedView", None, None);
    rec.target = v.id.to_string();
    store.purge_deleted_table(v.id, &rec).await.unwrap();
    assert_eq!(store.get_deleted_table(v.id).await.unwrap(), None);
    assert_eq!(store.get_view_by_id(v.id).await.unwrap(), None);
    // Once forgotten, the id may be used again.
    store
        .create_view(&ViewRecord {
            name: "v3".into(),
            ..v.clone()
        })
        .await
        .unwrap();
}

/// Racing creates of a table and a view with the same name: exactly one wins per round.
pub async fn concurrent_view_table_name_claims(store: Arc<dyn CatalogStore>) {
    let w = new_warehouse(&*store, "wh").await;
    let n = new_namespace(&*store, w.id, "db").await;
    for round in 0..8 {
        let name = format!("x{round}");
        let barrier = Arc::new(tokio::sync::Barrier::new(4));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..4 {
            let (store, barrier, n, name) =
                (store.clone(), barrier.clone(), n.clone(), name.clone());
            tasks.spawn(async move {
                barrier.wait().await;
                if i % 2 == 0 {
                    let t = table(&n, &name, &format!("s3://wh/db/{name}-{i}"));
                    store.commit(&[CommitOp::Create(t)]).await
                } else {
                    store.create_view(&view(&n, &name)).await
                }
            });
        }
        let mut won = 0;
        while let Some(r) = tasks.join_next().await {
            match r.unwrap() {
                Ok(()) => won += 1,
                Err(StoreError::AlreadyExists(_)) => {}
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        assert_eq!(won, 1, "round {round}");
        let t = store
            .get_table(w.id, &n.name, &name)
            .await
            .unwrap()
            .is_some();
        let v = store
            .get_view(w.id, &n.name, &name)
            .await
            .unwrap()
            .is_some();
        assert!(t ^ v, "round {round}: table {t}, view {v}");
    }
}

async fn sqlite_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sluice.db").display());
    let store = SqliteStore::connect(&url).await.unwrap();
    (dir, store)
}

macro_rules! sqlite_suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let (_dir, store) = super::sqlite_store().await;
                    super::$name(&store).await;
                }
            )*
        }
    };
}

/// Every backend-agnostic suite function, handed to a backend's binding macro.
macro_rules! with_suite_functions {
    ($bind:ident) => {
        $bind!(
            settings,
            users,
            access_keys,
            warehouses,
            namespaces,
            namespace_paging,
            namespace_properties,
            drop_namespace,
            tables,
            table_paging,
            rename_table,
            location_overlap,
            commit_create,
            commit_update,
            commit_atomicity,
            update_user,
            delete_user,
            groups,
            group_members,
            policies,
            policy_attachments,
            effective_policies,
            delete_group,
            delete_policy,
            audit_log,
            soft_drop_table,
            undrop_table,
            deleted_table_listing,
            claim_expired_deleted_tables,
            deleted_tables_block_warehouse_delete,
            table_containing_location,
            external_identities,
            delete_user_removes_identities,
            create_user_with_identity,
            purge_deleted_table,
            views,
            rename_view,
            views_and_tables_share_names,
            soft_drop_view,
        );
    };
}

with_suite_functions!(sqlite_suite);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_view_table_name_claims() {
    let (_dir, store) = sqlite_store().await;
    concurrent_view_table_name_claims(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_cas() {
    let (_dir, store) = sqlite_store().await;
    concurrent_cas(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_claims() {
    let (_dir, store) = sqlite_store().await;
    concurrent_claims(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_user_with_identity() {
    let (_dir, store) = sqlite_store().await;
    concurrent_user_with_identity(Arc::new(store)).await;
}

#[tokio::test]
async fn sqlite_in_memory() {
    let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
    // Every pooled call must see the same database.
    let w = new_warehouse(&store, "mem").await;
    let n = new_namespace(&store, w.id, "db").await;
    new_table(&store, &n, "t", "s3://mem/db/t").await;
    assert_eq!(
        store
            .list_tables(w.id, &n.name, &Page::default())
            .await
            .unwrap()
            .len(),
        1
    );
    // Separate `:memory:` stores are separate databases.
    let other = SqliteStore::connect("sqlite::memory:").await.unwrap();
    assert!(other.list_warehouses().await.unwrap().is_empty());
}

#[tokio::test]
async fn sqlite_reopen_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested-missing-file.db");
    let url = format!("sqlite://{}", path.display());
    let w = {
        let store = SqliteStore::connect(&url).await.unwrap();
        let w = new_warehouse(&store, "persist").await;
        store.set_setting("k", "v").await.unwrap();
        store.pool().close().await;
        w
    };
    assert!(path.exists());
    // Migrations are already applied; reconnecting must not re-run or fail them.
    let store = SqliteStore::connect(&url).await.unwrap();
    assert_eq!(store.get_warehouse(w.id).await.unwrap(), Some(w));
    assert_eq!(store.get_setting("k").await.unwrap().as_deref(), Some("v"));
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(mode.to_lowercase(), "wal");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(fk, 1);
}

#[tokio::test]
async fn sqlite_corrupt_rows_are_errors_not_panics() {
    let (_dir, store) = sqlite_store().await;
    let w = new_warehouse(&store, "wh").await;
    let n = new_namespace(&store, w.id, "db").await;
    let t = new_table(&store, &n, "t", "s3://wh/db/t").await;

    sqlx::query("UPDATE namespaces SET properties = 'not json' WHERE id = ?")
        .bind(n.id.to_string())
        .execute(store.pool())
        .await
        .unwrap();
    assert_err!(
        store.get_namespace(w.id, &n.name).await,
        StoreError::Corrupt(_)
    );
    assert_err!(
        store.list_namespaces(w.id, None, &Page::default()).await,
        StoreError::Corrupt(_)
    );

    sqlx::query("UPDATE warehouses SET status = 'melting', storage_profile = '[' WHERE id = ?")
        .bind(w.id.to_string())
        .execute(store.pool())
        .await
        .unwrap();
    assert_err!(store.get_warehouse(w.id).await, StoreError::Corrupt(_));

    sqlx::query("UPDATE tables SET created_at = 9223372036854775807 WHERE id = ?")
        .bind(t.id.to_string())
        .execute(store.pool())
        .await
        .unwrap();
    assert_err!(store.get_table_by_id(t.id).await, StoreError::Corrupt(_));
}

#[tokio::test]
async fn sqlite_corrupt_deleted_rows_are_errors_not_panics() {
    let (_dir, store) = sqlite_store().await;
    let w = new_warehouse(&store, "wh").await;
    let n = new_namespace(&store, w.id, "db").await;
    let t = new_table(&store, &n, "t", "s3://wh/db/t").await;
    let base = now();
    soft_drop(&store, &t, base, base).await;

    sqlx::query("UPDATE deleted_tables SET deleted_at = 9223372036854775807")
        .execute(store.pool())
        .await
        .unwrap();
    assert_err!(store.get_deleted_table(t.id).await, StoreError::Corrupt(_));
    assert_err!(
        store.list_deleted_tables(w.id, &Page::default()).await,
        StoreError::Corrupt(_)
    );
    assert_err!(
        store.claim_expired_deleted_tables(base, base, 10).await,
        StoreError::Corrupt(_)
    );
    // The warehouse reference is enforced; the namespace one deliberately is not.
    sqlx::query("UPDATE deleted_tables SET deleted_at = 0, warehouse_id = 'nope'")
        .execute(store.pool())
        .await
        .unwrap_err();
    sqlx::query("UPDATE deleted_tables SET deleted_at = 0, namespace_id = 'nope'")
        .execute(store.pool())
        .await
        .unwrap();
    assert_err!(store.undrop_table(t.id, None).await, StoreError::Corrupt(_));
    assert!(store.get_table_by_id(t.id).await.unwrap().is_none());
}

#[tokio::test]
async fn sqlite_corrupt_auth_rows_are_errors_not_panics() {
    let (_dir, store) = sqlite_store().await;
    let u = new_user(&store, "u").await;
    let g = new_group(&store, "g").await;
    let p = new_policy(&store, "p").await;
    store.add_group_member(g.id, u.id).await.unwrap();
    store.attach_group_policy(g.id, p.id).await.unwrap();
    store
        .append_audit(&audit("auth:X", Some(u.id), None))
        .await
        .unwrap();

    // The CHECK constraint keeps the flag 0/1; bypass it (on one connection) to prove the
    // decoder does not trust it either.
    let mut conn = store.pool().acquire().await.unwrap();
    for sql in [
        "PRAGMA ignore_check_constraints = ON",
        "UPDATE policies SET builtin = 7",
        "PRAGMA ignore_check_constraints = OFF",
    ] {
        sqlx::query(sql).execute(&mut *conn).await.unwrap();
    }
    drop(conn);
    assert_err!(store.get_policy_by_name("p").await, StoreError::Corrupt(_));
    assert_err!(store.effective_policies(u.id).await, StoreError::Corrupt(_));

    sqlx::query("UPDATE policies SET builtin = 1, updated_at = 9223372036854775807")
        .execute(store.pool())
        .await
        .unwrap();
    assert_err!(store.list_policies().await, StoreError::Corrupt(_));
    assert_err!(
        store.list_group_policies(g.id).await,
        StoreError::Corrupt(_)
    );

    sqlx::query("UPDATE groups SET created_at = -9223372036854775807")
        .execute(store.pool())
        .await
        .unwrap();
    assert_err!(store.get_group_by_name("g").await, StoreError::Corrupt(_));
    assert_err!(store.list_user_groups(u.id).await, StoreError::Corrupt(_));

    sqlx::query("UPDATE audit_log SET actor_id = 'not-a-uuid'")
        .execute(store.pool())
        .await
        .unwrap();
    assert_err!(store.list_audit(None, 10).await, StoreError::Corrupt(_));
}

#[tokio::test]
async fn sqlite_corrupt_identity_rows_are_errors_not_panics() {
    let (_dir, store) = sqlite_store().await;
    let u = new_user(&store, "u").await;
    store
        .create_external_identity(&identity("oidc", "s", u.id))
        .await
        .unwrap();
    sqlx::query("UPDATE external_identities SET created_at = 9223372036854775807")
        .execute(store.pool())
        .await
        .unwrap();
    assert_err!(
        store.get_external_identity("oidc", "s").await,
        StoreError::Corrupt(_)
    );
    assert_err!(
        store.list_external_identities(u.id).await,
        StoreError::Corrupt(_)
    );
    // A user id that is not a UUID (bypassing the foreign key on one connection).
    let mut conn = store.pool().acquire().await.unwrap();
    for sql in [
        "PRAGMA foreign_keys = OFF",
        "UPDATE external_identities SET created_at = 0, user_id = 'not-a-uuid'",
        "PRAGMA foreign_keys = ON",
    ] {
        sqlx::query(sql).execute(&mut *conn).await.unwrap();
    }
    drop(conn);
    assert_err!(
        store.get_external_identity("oidc", "s").await,
        StoreError::Corrupt(_)
    );
}

#[test]
fn sqlite_store_is_shareable() {
    fn assert_traits<T: Clone + Send + Sync + 'static>() {}
    assert_traits::<SqliteStore>();
}

// ---------------------------------------------------------------------------------------
// PostgreSQL bindings: one throwaway cluster per test binary, one database per test
// ---------------------------------------------------------------------------------------

use crate::pg_cluster;

async fn postgres_store() -> PostgresStore {
    let url = pg_cluster::fresh_database().await;
    PostgresStore::connect(&url).await.unwrap()
}

macro_rules! postgres_suite {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let store = super::postgres_store().await;
                    super::$name(&store).await;
                }
            )*
        }
    };
}

with_suite_functions!(postgres_suite);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_view_table_name_claims() {
    concurrent_view_table_name_claims(Arc::new(postgres_store().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_cas() {
    concurrent_cas(Arc::new(postgres_store().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_claims() {
    concurrent_claims(Arc::new(postgres_store().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_user_with_identity() {
    concurrent_user_with_identity(Arc::new(postgres_store().await)).await;
}

/// Two stores (as two replicas would) claiming from the same database never share a row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_claims_across_stores() {
    let url = pg_cluster::fresh_database().await;
    let a = PostgresStore::connect(&url).await.unwrap();
    let b = PostgresStore::connect(&url).await.unwrap();
    let w = new_warehouse(&a, "wh").await;
    let n = namespace(w.id, "db");
    a.create_namespace(&n).await.unwrap();
    let past = now() - Duration::hours(1);
    for i in 0..20 {
        new_table(&a, &n, &format!("t{i}"), &format!("s3://wh/db/t{i}")).await;
        a.soft_drop_table(w.id, &ns("db"), &format!("t{i}"), past, past, None, true)
            .await
            .unwrap();
    }
    let lease = now() + Duration::minutes(5);
    let mut seen = std::collections::HashSet::new();
    let (ra, rb) = tokio::join!(
        async {
            let mut got = Vec::new();
            for _ in 0..10 {
                got.extend(
                    a.claim_expired_deleted_tables(now(), lease, 2)
                        .await
                        .unwrap(),
                );
            }
            got
        },
        async {
            let mut got = Vec::new();
            for _ in 0..10 {
                got.extend(
                    b.claim_expired_deleted_tables(now(), lease, 2)
                        .await
                        .unwrap(),
                );
            }
            got
        }
    );
    for d in ra.iter().chain(rb.iter()) {
        assert!(seen.insert(d.table.id), "row {} claimed twice", d.table.id);
    }
    assert_eq!(seen.len(), 20);
}

#[tokio::test]
async fn postgres_migrations_are_idempotent() {
    let url = pg_cluster::fresh_database().await;
    let store = PostgresStore::connect(&url).await.unwrap();
    let w = new_warehouse(&store, "wh").await;
    drop(store);
    let again = PostgresStore::connect(&url).await.unwrap();
    assert_eq!(again.get_warehouse(w.id).await.unwrap().unwrap().name, "wh");
}

#[tokio::test]
async fn postgres_refuses_newer_schema() {
    let url = pg_cluster::fresh_database().await;
    let store = PostgresStore::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990101, 'from the future', TRUE, '\\x00'::bytea, 0)",
    )
    .execute(store.pool())
    .await
    .unwrap();
    drop(store);
    let err = PostgresStore::connect(&url).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("99990101") && msg.contains("newer"), "{msg}");
}

#[test]
fn postgres_store_is_shareable() {
    fn assert_traits<T: Clone + Send + Sync + 'static>() {}
    assert_traits::<PostgresStore>();
}

// ---------------------------------------------------------------------------------------
// PostgreSQL: change feed, retry of aborted transactions, lock order of multi-table commits
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn sqlite_has_no_change_feed() {
    let (_dir, store) = sqlite_store().await;
    assert!(store.subscribe_changes().await.unwrap().is_none());
}

async fn next_change(rx: &mut sluice_store::ChangeReceiver) -> sluice_store::Change {
    tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .expect("no change notification within 10 s")
        .unwrap()
}

/// A write through one store (replica) is announced to a subscriber of another, once it
/// commits; a write that fails (rolled back) announces nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_change_feed_announces_committed_writes_only() {
    use sluice_store::Change;
    let url = pg_cluster::fresh_database().await;
    let writer = PostgresStore::connect(&url).await.unwrap();
    let reader = PostgresStore::connect(&url).await.unwrap();
    let mut rx = reader
        .subscribe_changes()
        .await
        .unwrap()
        .expect("PostgreSQL has a feed");

    let g = new_group(&writer, "analysts").await;
    assert_eq!(next_change(&mut rx).await, Change::Identity);
    let u = new_user(&writer, "ann").await;
    assert_eq!(next_change(&mut rx).await, Change::Identity);
    writer.add_group_member(g.id, u.id).await.unwrap();
    assert_eq!(next_change(&mut rx).await, Change::Identity);
    let p = new_policy(&writer, "p").await;
    assert_eq!(next_change(&mut rx).await, Change::Identity);
    writer.attach_group_policy(g.id, p.id).await.unwrap();
    assert_eq!(next_change(&mut rx).await, Change::Identity);
    writer.detach_group_policy(g.id, p.id).await.unwrap();
    assert_eq!(next_change(&mut rx).await, Change::Identity);

    // Fails (the name is taken): rolled back, so no notification.
    assert_err!(
        writer.create_group(&group("analysts")).await,
        StoreError::AlreadyExists(_)
    );
    let w = new_warehouse(&writer, "wh").await;
    assert_eq!(next_change(&mut rx).await, Change::Warehouse(w.id));
    let mut w2 = w.clone();
    w2.storage_credential = None;
    writer.update_warehouse(&w2).await.unwrap();
    assert_eq!(next_change(&mut rx).await, Change::Warehouse(w.id));
    writer.delete_warehouse(w.id).await.unwrap();
    assert_eq!(next_change(&mut rx).await, Change::Warehouse(w.id));

    // Namespace writes are not announced: nothing cached depends on them. Every change of a
    // table's row is (the table cache keeps its metadata), and a lost CAS is not.
    let w3 = new_warehouse(&writer, "wh3").await;
    assert_eq!(next_change(&mut rx).await, Change::Warehouse(w3.id));
    let n = new_namespace(&writer, w3.id, "db").await;
    let t = new_table(&writer, &n, "t", "s3://wh3/db/t").await;
    assert_eq!(next_change(&mut rx).await, Change::Table(t.id));
    let next = "s3://wh3/db/t/metadata/00001.metadata.json";
    writer
        .commit(&[update_op(&t, &t.metadata_location, next)])
        .await
        .unwrap();
    assert_eq!(next_change(&mut rx).await, Change::Table(t.id));
    assert_err!(
        writer
            .commit(&[update_op(&t, &t.metadata_location, "s3://wh3/db/t/x.json")])
            .await,
        StoreError::Conflict(_)
    );
    writer
        .rename_table(w3.id, &n.name, "t", &n.name, "t2")
        .await
        .unwrap();
    assert_eq!(next_change(&mut rx).await, Change::Table(t.id));
    let n_at = now();
    writer
        .soft_drop_table(w3.id, &n.name, "t2", n_at, n_at, None, false)
        .await
        .unwrap();
    assert_eq!(next_change(&mut rx).await, Change::Table(t.id));
    writer.undrop_table(t.id, None).await.unwrap();
    assert_eq!(next_change(&mut rx).await, Change::Table(t.id));
    writer.drop_table(w3.id, &n.name, "t2").await.unwrap();
    assert_eq!(next_change(&mut rx).await, Change::Table(t.id));
    writer.delete_user(u.id).await.unwrap();
    assert_eq!(next_change(&mut rx).await, Change::Identity);
}

/// Killing the feed's connection reports `Lost`, then `Resumed` once it listens again, and
/// changes flow again afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_change_feed_survives_a_killed_connection() {
    use sluice_store::Change;
    let url = pg_cluster::fresh_database().await;
    let store = PostgresStore::connect(&url).await.unwrap();
    let mut rx = store.subscribe_changes().await.unwrap().unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'sluice-listener' AND datname = current_database()",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(killed, vec![true]);
    assert_eq!(next_change(&mut rx).await, Change::Lost);
    assert_eq!(next_change(&mut rx).await, Change::Resumed);
    new_group(&store, "g").await;
    assert_eq!(next_change(&mut rx).await, Change::Identity);
}

async fn postgres_store_with(url: &str, retry_attempts: u32) -> PostgresStore {
    PostgresStore::connect_with(
        url,
        sluice_store::PgOptions {
            retry_attempts,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

/// Waits until some connection of the store under test (application "sluice") is blocked
/// on a lock.
async fn wait_until_store_blocks(admin: &mut sqlx::PgConnection) {
    let start = std::time::Instant::now();
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sluice' \
             AND datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut *admin)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "the commit never blocked"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// PostgreSQL checks for a deadlock once per lock wait, `deadlock_timeout` after the wait
/// began, so the store's one check must come after the other session has closed the cycle,
/// however long a loaded machine takes to see the store blocked and send the other
/// session's statement. With the default (1 s), a late other session meant the store's
/// check found no cycle and the other session was aborted instead. Each deadlock test
/// waits this long.
const STORE_DEADLOCK_TIMEOUT: &str = "10s";

/// Forces a deadlock between a two-table commit and another session, arranged so that
/// PostgreSQL picks the commit as the victim (its `deadlock_timeout` fires first), and
/// returns what the commit returned.
async fn commit_into_deadlock(
    url: &str,
    retry_attempts: u32,
) -> (Result<(), StoreError>, PostgresStore, [TableRecord; 2]) {
    use sqlx::Connection;
    let store_url = format!("{url}?options[deadlock_timeout]={STORE_DEADLOCK_TIMEOUT}");
    let store = postgres_store_with(&store_url, retry_attempts).await;
    let timeout: String = sqlx::query_scalar("SHOW deadlock_timeout")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(
        timeout, STORE_DEADLOCK_TIMEOUT,
        "the store's sessions took the setting"
    );
    let w = new_warehouse(&store, &format!("wh{retry_attempts}")).await;
    let n = new_namespace(&store, w.id, "db").await;
    let mut t = [
        new_table(&store, &n, "a", &format!("s3://wh{retry_attempts}/db/a")).await,
        new_table(&store, &n, "b", &format!("s3://wh{retry_attempts}/db/b")).await,
    ];
    t.sort_by_key(|t| t.id.to_string());
    let [lo, hi] = t.clone();

    let mut other = sqlx::PgConnection::connect(url).await.unwrap();
    let mut admin = sqlx::PgConnection::connect(url).await.unwrap();
    // The other session checks for a deadlock long after the store's sessions do, so the
    // store's transaction is the one PostgreSQL aborts.
    sqlx::query("SET deadlock_timeout = '10min'")
        .execute(&mut other)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut other).await.unwrap();
    sqlx::query("SELECT 1 FROM tables WHERE id = $1 FOR UPDATE")
        .bind(hi.id.to_string())
        .execute(&mut other)
        .await
        .unwrap();
    let ops = [
        update_op(&lo, &lo.metadata_location, "s3://x/lo-2.json"),
        update_op(&hi, &hi.metadata_location, "s3://x/hi-2.json"),
    ];
    let committing = {
        let store = store.clone();
        tokio::spawn(async move { store.commit(&ops).await })
    };
    // The commit now holds `lo` and waits for `hi`; taking `lo` closes the cycle.
    wait_until_store_blocks(&mut admin).await;
    let take_lo = sqlx::query("SELECT 1 FROM tables WHERE id = $1 FOR UPDATE")
        .bind(lo.id.to_string())
        .execute(&mut other);
    take_lo.await.unwrap();
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    (committing.await.unwrap(), store, [lo, hi])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_deadlocked_commit_fails_without_retry() {
    let url = pg_cluster::fresh_database().await;
    let (result, store, [lo, _]) = commit_into_deadlock(&url, 1).await;
    match result {
        Err(StoreError::Database(e)) => {
            let code = e
                .as_database_error()
                .and_then(|d| d.code())
                .map(|c| c.to_string());
            assert_eq!(code.as_deref(), Some("40P01"), "{e}");
        }
        other => panic!("expected the deadlock to surface without retries, got {other:?}"),
    }
    let now = store.get_table_by_id(lo.id).await.unwrap().unwrap();
    assert_eq!(
        now.metadata_location, lo.metadata_location,
        "the aborted commit left nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_deadlocked_commit_is_retried_and_succeeds() {
    let url = pg_cluster::fresh_database().await;
    let (result, store, [lo, hi]) = commit_into_deadlock(&url, 5).await;
    result.expect("the retry commits");
    assert_eq!(
        store
            .get_table_by_id(lo.id)
            .await
            .unwrap()
            .unwrap()
            .metadata_location,
        "s3://x/lo-2.json"
    );
    assert_eq!(
        store
            .get_table_by_id(hi.id)
            .await
            .unwrap()
            .unwrap()
            .metadata_location,
        "s3://x/hi-2.json"
    );
}

/// Two multi-table commits over the same tables in opposite orders, spanning two
/// warehouses and moving the tables (so both take location locks too), race many times.
/// With retries off, a deadlock would surface as a database error: every race must end
/// with exactly one winner and one CAS conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_opposite_order_multi_table_commits_do_not_deadlock() {
    let url = pg_cluster::fresh_database().await;
    let store = Arc::new(postgres_store_with(&url, 1).await);
    let w1 = new_warehouse(store.as_ref(), "w1").await;
    let w2 = new_warehouse(store.as_ref(), "w2").await;
    let n1 = new_namespace(store.as_ref(), w1.id, "db").await;
    let n2 = new_namespace(store.as_ref(), w2.id, "db").await;
    let t1 = new_table(store.as_ref(), &n1, "t", "s3://w1/db/t").await;
    let t2 = new_table(store.as_ref(), &n2, "t", "s3://w2/db/t").await;
    for round in 0..40 {
        let cur1 = store.get_table_by_id(t1.id).await.unwrap().unwrap();
        let cur2 = store.get_table_by_id(t2.id).await.unwrap().unwrap();
        let op = |t: &TableRecord, side: &str| CommitOp::Update {
            table_id: t.id,
            expected_metadata_location: t.metadata_location.clone(),
            new_metadata_location: format!("{}/metadata/{round}-{side}.json", t.location),
            new_metadata_json: "{}".into(),
            // Every other round moves both tables.
            new_location: if round % 2 == 0 {
                format!("{}-{round}{side}", t.location)
            } else {
                t.location.clone()
            },
        };
        let forward = vec![op(&cur1, "f"), op(&cur2, "f")];
        let backward = vec![op(&cur2, "b"), op(&cur1, "b")];
        let (s1, s2) = (store.clone(), store.clone());
        let (r1, r2) = tokio::join!(
            tokio::spawn(async move { s1.commit(&forward).await }),
            tokio::spawn(async move { s2.commit(&backward).await })
        );
        let results = [r1.unwrap(), r2.unwrap()];
        let wins = results.iter().filter(|r| r.is_ok()).count();
        for r in &results {
            assert!(
                matches!(r, Ok(()) | Err(StoreError::Conflict(_))),
                "round {round}: {r:?}"
            );
        }
        assert_eq!(wins, 1, "round {round}: {results:?}");
        // Both tables moved together with the winner's metadata.
        let (a, b) = (
            store.get_table_by_id(t1.id).await.unwrap().unwrap(),
            store.get_table_by_id(t2.id).await.unwrap().unwrap(),
        );
        assert_eq!(
            a.metadata_location.ends_with("f.json"),
            b.metadata_location.ends_with("f.json"),
            "round {round}"
        );
    }
}

/// An unreachable server is reported as such at start-up (not as a pool timeout), without
/// the password.
#[tokio::test]
async fn postgres_unreachable_says_why() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let started = std::time::Instant::now();
    let Err(err) = PostgresStore::connect(&format!(
        "postgres://sluice:hunter2@127.0.0.1:{port}/catalog"
    ))
    .await
    else {
        panic!("nothing listens there");
    };
    let msg = err.to_string();
    assert!(msg.to_lowercase().contains("refused"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "took the whole pool timeout: {msg}"
    );
}
