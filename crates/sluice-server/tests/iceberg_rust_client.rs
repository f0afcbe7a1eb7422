//! Conformance with a second, independent Iceberg REST client: Apache iceberg-rust's
//! `RestCatalog` (crate `iceberg-catalog-rest`, paired with the `iceberg` release the server
//! uses). PyIceberg covers the same ground in tests/e2e; a spec-following server must work for
//! both, so everything here goes through iceberg-rust's public API only — the catalog trait,
//! `Transaction`, its Parquet writer stack, `FileIO` and its scan — never raw HTTP to the
//! catalog. (Raw HTTP is used only to mint a token for the static-token case and to create the
//! S3 warehouse through the management API, which iceberg-rust does not speak.)
//!
//! Peers: an in-process server on SQLite with its default file warehouse, and a real moto
//! (S3 + IAM + STS, auth checks on) for vended credentials.

use crate::server;

// The storage crate's peer helpers (moto, s3s-fs), shared as files.
use crate::peers;

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use futures::TryStreamExt;
use iceberg::io::{LocalFsStorageFactory, StorageFactory};
use iceberg::spec::{
    DataFile, DataFileFormat, FormatVersion, Literal, NestedField, NullOrder, PartitionKey,
    PrimitiveType, Schema, SortDirection, SortField, SortOrder, Struct, Transform, Type,
    UnboundPartitionSpec,
};
use iceberg::table::Table;
use iceberg::transaction::{AddColumn, ApplyTransactionAction, Transaction};
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use iceberg::{
    Catalog, CatalogBuilder, ErrorKind, Namespace, NamespaceIdent, TableCommit, TableCreation,
    TableIdent,
};
use iceberg_catalog_rest::{RestCatalog, RestCatalogBuilder};
use iceberg_storage_opendal::OpenDalStorageFactory;
use parquet::file::properties::WriterProperties;
use peers::moto::{self, xml_text, Moto};
use server::{TestServer, KEY_ID, SECRET};

// ------------------------------------------------------------------------------------------
// helpers
// ------------------------------------------------------------------------------------------

fn props(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A catalog the way an engine configures one: OAuth2 client credentials exchanged at
/// `/v1/oauth/tokens`, warehouse by name (the server answers with the prefix to use).
async fn catalog(
    s: &TestServer,
    warehouse: &str,
    extra: &[(&str, &str)],
    storage: Arc<dyn StorageFactory>,
) -> RestCatalog {
    let credential = format!("{KEY_ID}:{SECRET}");
    let mut p = props(&[
        ("uri", &s.base),
        ("warehouse", warehouse),
        ("credential", &credential),
    ]);
    p.extend(props(extra));
    RestCatalogBuilder::default()
        .with_storage_factory(storage)
        .load("sluice", p)
        .await
        .unwrap()
}

async fn file_catalog(s: &TestServer) -> RestCatalog {
    catalog(s, "default", &[], Arc::new(LocalFsStorageFactory)).await
}

pub(crate) fn ns(parts: &[&str]) -> NamespaceIdent {
    NamespaceIdent::from_strs(parts).unwrap()
}

fn schema() -> Schema {
    Schema::builder()
        .with_schema_id(0)
        .with_identifier_field_ids(vec![1])
        .with_fields(vec![
            NestedField::required(1, "id", Type::Primitive(PrimitiveType::Long)).into(),
            NestedField::optional(2, "category", Type::Primitive(PrimitiveType::String)).into(),
            NestedField::optional(3, "note", Type::Primitive(PrimitiveType::String)).into(),
        ])
        .build()
        .unwrap()
}

/// Partitioned by `category` (identity), sorted by `id` descending, with properties.
pub(crate) fn creation(name: &str) -> TableCreation {
    let spec = UnboundPartitionSpec::builder()
        .add_partition_field(2, "category", Transform::Identity)
        .unwrap()
        .build();
    let order = SortOrder::builder()
        .with_order_id(1)
        .with_sort_field(
            SortField::builder()
                .source_id(1)
                .transform(Transform::Identity)
                .direction(SortDirection::Descending)
                .null_order(NullOrder::Last)
                .build(),
        )
        .build_unbound()
        .unwrap();
    TableCreation::builder()
        .name(name.to_string())
        .schema(schema())
        .partition_spec(spec)
        .sort_order(order)
        .properties(props(&[
            ("owner", "iceberg-rust"),
            ("write.format.default", "parquet"),
        ]))
        .build()
}

/// Writes `rows` (all in partition `category`) as one Parquet data file with iceberg-rust's
/// writer stack, through the table's own FileIO (which is what carries vended credentials).
pub(crate) async fn write_rows(
    table: &Table,
    category: &str,
    rows: &[(i64, &str)],
) -> Vec<DataFile> {
    let meta = table.metadata();
    let schema = meta.current_schema().clone();
    let parquet = ParquetWriterBuilder::new(WriterProperties::builder().build(), schema.clone());
    let rolling = RollingFileWriterBuilder::new_with_default_file_size(
        parquet,
        table.file_io().clone(),
        DefaultLocationGenerator::new(meta).unwrap(),
        DefaultFileNameGenerator::new(
            "part".into(),
            Some(uuid::Uuid::new_v4().to_string()),
            DataFileFormat::Parquet,
        ),
    );
    let key = PartitionKey::new(
        meta.default_partition_spec().as_ref().clone(),
        schema.clone(),
        Struct::from_iter([Some(Literal::string(category))]),
    );
    let mut writer = DataFileWriterBuilder::new(rolling)
        .build(Some(key))
        .await
        .unwrap();
    let arrow_schema = Arc::new(iceberg::arrow::schema_to_arrow_schema(&schema).unwrap());
    let batch = RecordBatch::try_new(
        arrow_schema,
        vec![
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(vec![Some(category); rows.len()])),
            Arc::new(StringArray::from(
                rows.iter().map(|r| Some(r.1)).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap();
    writer.write(batch).await.unwrap();
    writer.close().await.unwrap()
}

pub(crate) async fn append(
    catalog: &dyn Catalog,
    table: &Table,
    files: Vec<DataFile>,
) -> iceberg::Result<Table> {
    let tx = Transaction::new(table);
    let tx = tx.fast_append().add_data_files(files).apply(tx)?;
    tx.commit(catalog).await
}

/// Every row of the table's current snapshot, via iceberg-rust's scan, sorted by id.
pub(crate) async fn scan(table: &Table) -> Vec<(i64, String, String)> {
    let batches: Vec<RecordBatch> = table
        .scan()
        .select_all()
        .build()
        .unwrap()
        .to_arrow()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let mut out = Vec::new();
    for b in batches {
        let id = b
            .column_by_name("id")
            .unwrap()
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        let cat = b
            .column_by_name("category")
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        let note = b
            .column_by_name("note")
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        for i in 0..b.num_rows() {
            assert!(!id.is_null(i));
            out.push((
                id.value(i),
                cat.value(i).to_string(),
                note.value(i).to_string(),
            ));
        }
    }
    out.sort();
    out
}

pub(crate) fn rows(expected: &[(i64, &str, &str)]) -> Vec<(i64, String, String)> {
    let mut v: Vec<_> = expected
        .iter()
        .map(|(i, c, n)| (*i, c.to_string(), n.to_string()))
        .collect();
    v.sort();
    v
}

#[track_caller]
fn assert_kind<T: std::fmt::Debug>(r: iceberg::Result<T>, kind: ErrorKind) {
    match r {
        Err(e) => assert_eq!(e.kind(), kind, "{e}"),
        Ok(v) => panic!("expected {kind:?}, got Ok({v:?})"),
    }
}

// ------------------------------------------------------------------------------------------
// auth and config
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_credential_static_token_and_config_handshake() {
    let s = TestServer::start().await;

    // Client credentials: the client fetches /v1/config?warehouse=default with a token it got
    // from /v1/oauth/tokens, then uses the returned prefix for every catalog route.
    let c = file_catalog(&s).await;
    c.create_namespace(&ns(&["auth"]), HashMap::new())
        .await
        .unwrap();
    assert_eq!(c.list_namespaces(None).await.unwrap(), vec![ns(&["auth"])]);

    // The same catalog by its warehouse id (what `overrides.prefix` carries) works as well.
    let by_id = catalog(&s, &s.prefix().await, &[], Arc::new(LocalFsStorageFactory)).await;
    assert!(by_id.namespace_exists(&ns(&["auth"])).await.unwrap());

    // A static bearer token, no credential.
    let token = s.oauth_token().await;
    let p = props(&[
        ("uri", &s.base),
        ("warehouse", "default"),
        ("token", &token),
    ]);
    let t = RestCatalogBuilder::default()
        .with_storage_factory(Arc::new(LocalFsStorageFactory))
        .load("t", p)
        .await
        .unwrap();
    assert!(t.namespace_exists(&ns(&["auth"])).await.unwrap());

    // Wrong secret: the token endpoint answers with the spec's OAuthError
    // (`{"error":"invalid_client",...}`). iceberg-rust 0.10 tries to read it as the catalog
    // error model and fails, but keeps the body, so the reason still reaches the user.
    let bad = format!("{KEY_ID}:{}", "x".repeat(40));
    let p = props(&[
        ("uri", &s.base),
        ("warehouse", "default"),
        ("credential", &bad),
    ]);
    let b = RestCatalogBuilder::default()
        .with_storage_factory(Arc::new(LocalFsStorageFactory))
        .load("b", p)
        .await
        .unwrap();
    let e = b.list_namespaces(None).await.unwrap_err().to_string();
    assert!(
        e.contains("401") && e.contains(r#""error":"invalid_client""#),
        "{e}"
    );

    // A bogus static token is refused (no catalog call gets through).
    let p = props(&[
        ("uri", &s.base),
        ("warehouse", "default"),
        ("token", "not-a-token"),
    ]);
    let b = RestCatalogBuilder::default()
        .with_storage_factory(Arc::new(LocalFsStorageFactory))
        .load("b", p)
        .await
        .unwrap();
    let e = b.list_namespaces(None).await.unwrap_err().to_string();
    assert!(
        e.contains("401") && e.contains(r#""type":"NotAuthorizedException""#),
        "{e}"
    );

    // An unknown warehouse fails the config handshake with the server's error.
    let nowh = catalog(
        &s,
        "no-such-warehouse",
        &[],
        Arc::new(LocalFsStorageFactory),
    )
    .await;
    let e = nowh.list_namespaces(None).await.unwrap_err().to_string();
    assert!(e.contains("404") && e.contains("no-such-warehouse"), "{e}");
    s.stop().await;
}

// ------------------------------------------------------------------------------------------
// namespaces
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_lifecycle_and_errors() {
    let s = TestServer::start().await;
    let c = file_catalog(&s).await;
    let sales = ns(&["sales"]);
    let eu = ns(&["sales", "eu"]);

    let created = c
        .create_namespace(&sales, props(&[("owner", "ann"), ("comment", "all sales")]))
        .await
        .unwrap();
    assert_eq!(created.name(), &sales);
    assert_eq!(
        created.properties().get("owner").map(String::as_str),
        Some("ann")
    );
    assert_kind(
        c.create_namespace(&sales, HashMap::new()).await,
        ErrorKind::NamespaceAlreadyExists,
    );

    c.create_namespace(&eu, HashMap::new()).await.unwrap();
    c.create_namespace(&ns(&["hr"]), HashMap::new())
        .await
        .unwrap();
    let mut top = c.list_namespaces(None).await.unwrap();
    top.sort_by_key(|n| n.to_url_string());
    assert_eq!(top, vec![ns(&["hr"]), sales.clone()]);
    assert_eq!(
        c.list_namespaces(Some(&sales)).await.unwrap(),
        vec![eu.clone()]
    );
    assert_eq!(
        c.list_namespaces(Some(&eu)).await.unwrap(),
        Vec::<NamespaceIdent>::new()
    );
    assert_kind(
        c.list_namespaces(Some(&ns(&["nope"]))).await,
        ErrorKind::NamespaceNotFound,
    );

    let loaded: Namespace = c.get_namespace(&sales).await.unwrap();
    assert_eq!(
        loaded.properties().get("comment").map(String::as_str),
        Some("all sales")
    );
    assert!(c
        .get_namespace(&eu)
        .await
        .unwrap()
        .properties()
        .get("owner")
        .is_none());
    assert!(c.namespace_exists(&eu).await.unwrap());
    assert!(!c.namespace_exists(&ns(&["sales", "us"])).await.unwrap());
    assert_kind(
        c.get_namespace(&ns(&["nope"])).await,
        ErrorKind::NamespaceNotFound,
    );

    // iceberg-rust 0.10 has no client for `POST …/properties` (it answers FeatureUnsupported
    // without calling the server); the endpoint is covered by api.rs and PyIceberg.
    assert_kind(
        c.update_namespace(&sales, HashMap::new()).await,
        ErrorKind::FeatureUnsupported,
    );

    // A namespace with children or tables is not empty; the client sees the server's error.
    // (iceberg-rust maps only the statuses it knows and keeps the spec-shaped body otherwise.)
    let e = c.drop_namespace(&sales).await.unwrap_err().to_string();
    assert!(
        e.contains("409") && e.contains(r#""type":"NamespaceNotEmptyException""#),
        "{e}"
    );
    c.drop_namespace(&eu).await.unwrap();
    assert!(!c.namespace_exists(&eu).await.unwrap());
    assert_kind(c.drop_namespace(&eu).await, ErrorKind::NamespaceNotFound);
    c.drop_namespace(&sales).await.unwrap();
    assert_eq!(c.list_namespaces(None).await.unwrap(), vec![ns(&["hr"])]);

    // Names that need escaping in the path and in `parent=` (space, non-ASCII, the level
    // separator iceberg-rust encodes as %1F).
    let odd = ns(&["team space", "données"]);
    c.create_namespace(&ns(&["team space"]), HashMap::new())
        .await
        .unwrap();
    c.create_namespace(&odd, props(&[("k", "v")]))
        .await
        .unwrap();
    assert_eq!(
        c.list_namespaces(Some(&ns(&["team space"]))).await.unwrap(),
        vec![odd.clone()]
    );
    assert_eq!(
        c.get_namespace(&odd)
            .await
            .unwrap()
            .properties()
            .get("k")
            .map(String::as_str),
        Some("v")
    );
    let t = c.create_table(&odd, creation("ta ble")).await.unwrap();
    assert_eq!(
        c.list_tables(&odd).await.unwrap(),
        vec![t.identifier().clone()]
    );
    assert!(c.table_exists(t.identifier()).await.unwrap());
    c.drop_table(t.identifier()).await.unwrap();
    c.drop_namespace(&odd).await.unwrap();
    s.stop().await;
}

// ------------------------------------------------------------------------------------------
// tables
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_create_load_list_rename_drop() {
    let s = TestServer::start().await;
    let c = file_catalog(&s).await;
    let a = ns(&["a"]);
    let b = ns(&["b", "inner"]);
    c.create_namespace(&a, HashMap::new()).await.unwrap();
    c.create_namespace(&ns(&["b"]), HashMap::new())
        .await
        .unwrap();
    c.create_namespace(&b, HashMap::new()).await.unwrap();

    let t = c.create_table(&a, creation("events")).await.unwrap();
    let m = t.metadata();
    assert_eq!(m.current_schema().as_struct(), schema().as_struct());
    let spec = m.default_partition_spec();
    assert_eq!(spec.fields().len(), 1);
    assert_eq!(
        (spec.fields()[0].source_id, spec.fields()[0].name.as_str()),
        (2, "category")
    );
    assert_eq!(spec.fields()[0].transform, Transform::Identity);
    let order = m.default_sort_order();
    assert_eq!(order.order_id, 1);
    assert_eq!(order.fields[0].source_id, 1);
    assert_eq!(order.fields[0].direction, SortDirection::Descending);
    assert_eq!(
        m.properties().get("owner").map(String::as_str),
        Some("iceberg-rust")
    );
    let location = m.location().to_string();
    assert!(location.starts_with("file:"), "{location}");
    let metadata_location = t.metadata_location().unwrap().to_string();
    // The metadata file the server wrote is readable through the client's own FileIO.
    assert!(
        t.file_io().exists(&metadata_location).await.unwrap(),
        "{metadata_location}"
    );

    let events = TableIdent::new(a.clone(), "events".into());
    let loaded = c.load_table(&events).await.unwrap();
    assert_eq!(loaded.metadata().uuid(), m.uuid());
    assert_eq!(loaded.metadata_location(), Some(metadata_location.as_str()));
    assert!(c.table_exists(&events).await.unwrap());
    assert!(!c
        .table_exists(&TableIdent::new(a.clone(), "missing".into()))
        .await
        .unwrap());
    c.create_table(&a, creation("other")).await.unwrap();
    let mut listed = c.list_tables(&a).await.unwrap();
    listed.sort_by(|x, y| x.name.cmp(&y.name));
    assert_eq!(
        listed,
        vec![events.clone(), TableIdent::new(a.clone(), "other".into())]
    );
    assert_eq!(c.list_tables(&b).await.unwrap(), vec![]);

    // An explicit location inside the warehouse is kept; one outside it is refused.
    let root = url::Url::from_directory_path(s.data_dir.join("warehouse")).unwrap();
    let mut placed = creation("placed");
    placed.location = Some(format!("{root}custom/placed"));
    let p = c.create_table(&a, placed).await.unwrap();
    assert_eq!(
        p.metadata().location().trim_end_matches('/'),
        format!("{root}custom/placed")
    );
    let mut outside = creation("outside");
    outside.location = Some("file:///somewhere/else".into());
    let e = c.create_table(&a, outside).await.unwrap_err().to_string();
    assert!(
        e.contains("400") && e.contains(r#""type":"BadRequestException""#),
        "{e}"
    );
    c.drop_table(p.identifier()).await.unwrap();

    // Error mapping.
    assert_kind(
        c.create_table(&a, creation("events")).await,
        ErrorKind::TableAlreadyExists,
    );
    assert_kind(
        c.create_table(&ns(&["nope"]), creation("x")).await,
        ErrorKind::NamespaceNotFound,
    );
    assert_kind(
        c.load_table(&TableIdent::new(a.clone(), "missing".into()))
            .await,
        ErrorKind::TableNotFound,
    );
    assert_kind(
        c.load_table(&TableIdent::new(ns(&["nope"]), "events".into()))
            .await,
        ErrorKind::TableNotFound,
    );
    assert_kind(
        c.list_tables(&ns(&["nope"])).await,
        ErrorKind::NamespaceNotFound,
    );

    // Rename across namespaces (into a nested one); the table keeps its identity and data.
    let moved = TableIdent::new(b.clone(), "events_v2".into());
    c.rename_table(&events, &moved).await.unwrap();
    assert!(!c.table_exists(&events).await.unwrap());
    let after = c.load_table(&moved).await.unwrap();
    assert_eq!(after.metadata().uuid(), m.uuid());
    assert_eq!(after.metadata().location(), location);
    assert_eq!(c.list_tables(&b).await.unwrap(), vec![moved.clone()]);
    assert_kind(
        c.rename_table(&events, &moved).await,
        ErrorKind::TableNotFound,
    );
    let other = TableIdent::new(a.clone(), "other".into());
    assert_kind(
        c.rename_table(&other, &moved).await,
        ErrorKind::TableAlreadyExists,
    );

    // Drop without purge keeps the files; registering the metadata file brings the table back.
    let moved_meta = after.metadata_location().unwrap().to_string();
    c.drop_table(&moved).await.unwrap();
    assert!(!c.table_exists(&moved).await.unwrap());
    assert_kind(c.drop_table(&moved).await, ErrorKind::TableNotFound);
    let restored = TableIdent::new(a.clone(), "restored".into());
    let r = c
        .register_table(&restored, moved_meta.clone())
        .await
        .unwrap();
    assert_eq!(r.metadata().uuid(), m.uuid());
    assert_eq!(
        c.load_table(&restored).await.unwrap().metadata_location(),
        Some(moved_meta.as_str())
    );
    assert_kind(
        c.register_table(&restored, moved_meta.clone()).await,
        ErrorKind::TableAlreadyExists,
    );
    assert_kind(
        c.register_table(&TableIdent::new(ns(&["nope"]), "x".into()), moved_meta)
            .await,
        ErrorKind::NamespaceNotFound,
    );
    c.drop_table(&restored).await.unwrap();

    // Purge: the server deletes the files.
    let other_loc = c
        .load_table(&other)
        .await
        .unwrap()
        .metadata_location()
        .unwrap()
        .to_string();
    c.purge_table(&other).await.unwrap();
    assert_kind(c.load_table(&other).await, ErrorKind::TableNotFound);
    let other_path = url::Url::parse(&other_loc).unwrap().to_file_path().unwrap();
    assert!(
        !other_path.exists(),
        "purged metadata file still there: {}",
        other_path.display()
    );
    s.stop().await;
}

// ------------------------------------------------------------------------------------------
// commits on a file warehouse
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_properties_append_and_scan_on_file_warehouse() {
    let s = TestServer::start().await;
    let c = file_catalog(&s).await;
    let db = ns(&["db"]);
    c.create_namespace(&db, HashMap::new()).await.unwrap();
    let t = c.create_table(&db, creation("orders")).await.unwrap();
    let ident = t.identifier().clone();

    // Properties: set and remove in one transaction.
    let tx = Transaction::new(&t);
    let tx = tx
        .update_table_properties()
        .set("retention".into(), "30d".into())
        .remove("owner".into())
        .apply(tx)
        .unwrap();
    let t = tx.commit(&c).await.unwrap();
    let loaded = c.load_table(&ident).await.unwrap();
    assert_eq!(
        loaded
            .metadata()
            .properties()
            .get("retention")
            .map(String::as_str),
        Some("30d")
    );
    assert!(!loaded.metadata().properties().contains_key("owner"));
    assert_eq!(loaded.metadata_location(), t.metadata_location());

    // A real Parquet file through the writer stack, appended with a fast append.
    let files = write_rows(&loaded, "books", &[(1, "dune"), (2, "emma")]).await;
    assert_eq!(files.len(), 1);
    let data_path = files[0].file_path().to_string();
    assert!(
        data_path.starts_with(loaded.metadata().location()),
        "{data_path}"
    );
    let on_disk = url::Url::parse(&data_path).unwrap().to_file_path().unwrap();
    assert!(on_disk.starts_with(&s.data_dir), "{}", on_disk.display());
    assert!(on_disk.is_file());
    let committed = append(&c, &loaded, files).await.unwrap();
    assert_eq!(committed.metadata().snapshots().len(), 1);

    let t = c.load_table(&ident).await.unwrap();
    let snap = t.metadata().current_snapshot().expect("a current snapshot");
    assert_eq!(
        snap.summary()
            .additional_properties
            .get("added-records")
            .map(String::as_str),
        Some("2")
    );
    assert_eq!(
        scan(&t).await,
        rows(&[(1, "books", "dune"), (2, "books", "emma")])
    );

    // A second append into another partition; the scan sees both.
    let files = write_rows(&t, "music", &[(3, "abbey road")]).await;
    append(&c, &t, files).await.unwrap();
    let t = c.load_table(&ident).await.unwrap();
    assert_eq!(t.metadata().snapshots().len(), 2);
    assert_eq!(
        scan(&t).await,
        rows(&[
            (1, "books", "dune"),
            (2, "books", "emma"),
            (3, "music", "abbey road")
        ])
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_sort_order_format_version_and_snapshot_expiry_commits() {
    let s = TestServer::start().await;
    let c = file_catalog(&s).await;
    let db = ns(&["db"]);
    c.create_namespace(&db, HashMap::new()).await.unwrap();
    let t = c.create_table(&db, creation("evolve")).await.unwrap();
    let ident = t.identifier().clone();
    let t = append(&c, &t, write_rows(&t, "a", &[(1, "one")]).await)
        .await
        .unwrap();
    let first = t.metadata().current_snapshot_id().unwrap();
    let t = c.load_table(&ident).await.unwrap();
    append(&c, &t, write_rows(&t, "b", &[(2, "two")]).await)
        .await
        .unwrap();

    // Schema evolution (add-schema + set-current-schema -1, asserting the current schema id),
    // then a new default sort order. Two transactions: iceberg-rust 0.10 computes a second
    // action's requirements against the first action's locally applied result (here it would
    // assert current-schema-id 1, which no server can hold before the commit), so combining
    // them in one transaction is refused by any spec-following catalog.
    let t = c.load_table(&ident).await.unwrap();
    let tx = Transaction::new(&t);
    let tx = tx
        .update_schema()
        .add_column(AddColumn::optional(
            "price",
            Type::Primitive(PrimitiveType::Double),
        ))
        .apply(tx)
        .unwrap();
    let t = tx.commit(&c).await.unwrap();
    let tx = Transaction::new(&t);
    let tx = tx
        .replace_sort_order()
        .asc("category", NullOrder::First)
        .apply(tx)
        .unwrap();
    tx.commit(&c).await.unwrap();
    let t = c.load_table(&ident).await.unwrap();
    let m = t.metadata();
    assert_eq!(m.schemas_iter().len(), 2);
    assert_eq!(
        m.current_schema().field_by_name("price").map(|f| f.id),
        Some(4)
    );
    let order = m.default_sort_order();
    assert_eq!(
        (order.fields[0].source_id, order.fields[0].direction),
        (2, SortDirection::Ascending)
    );
    // (iceberg-rust scans a snapshot with the schema it was written with, so the new column
    // only shows once data is written under the new schema.)
    assert_eq!(scan(&t).await, rows(&[(1, "a", "one"), (2, "b", "two")]));

    // Format upgrade v2 -> v3.
    let tx = Transaction::new(&t);
    let tx = tx
        .upgrade_table_version()
        .set_format_version(FormatVersion::V3)
        .apply(tx)
        .unwrap();
    tx.commit(&c).await.unwrap();
    let t = c.load_table(&ident).await.unwrap();
    assert_eq!(t.metadata().format_version(), FormatVersion::V3);

    // Expire the first snapshot by id (remove-snapshots); the data stays readable through the
    // current snapshot's manifests.
    let tx = Transaction::new(&t);
    let tx = tx
        .expire_snapshots()
        .expire_snapshot_ids([first])
        .expire_older_than_ms(0)
        .apply(tx)
        .unwrap();
    tx.commit(&c).await.unwrap();
    let t = c.load_table(&ident).await.unwrap();
    assert_eq!(t.metadata().snapshots().len(), 1);
    assert!(t.metadata().snapshot_by_id(first).is_none());
    assert_eq!(scan(&t).await, rows(&[(1, "a", "one"), (2, "b", "two")]));

    // Moving the table outside its warehouse is refused with the server's error, and nothing
    // changes.
    let before = t.metadata_location().unwrap().to_string();
    let tx = Transaction::new(&t);
    let tx = tx
        .update_location()
        .set_location("file:///elsewhere/evolve".into())
        .apply(tx)
        .unwrap();
    let e = tx.commit(&c).await.unwrap_err();
    assert!(e.to_string().contains("BadRequestException"), "{e}");
    assert_eq!(
        c.load_table(&ident).await.unwrap().metadata_location(),
        Some(before.as_str())
    );
    s.stop().await;
}

/// Passes every call through to the real catalog, except that the first `hold` calls of
/// `update_table` wait for each other (so concurrent transactions really carry requirements
/// computed from the same base — iceberg-rust reloads right before each commit, which leaves
/// the race window at microseconds otherwise), and that `load_table` can serve a fixed table,
/// like a client working from cached metadata.
#[derive(Debug)]
struct Rigged<'a> {
    inner: &'a RestCatalog,
    hold: usize,
    arrived: std::sync::atomic::AtomicUsize,
    commits: tokio::sync::Barrier,
    cached: Option<Table>,
}

impl<'a> Rigged<'a> {
    fn racing(inner: &'a RestCatalog, n: usize) -> Self {
        Rigged {
            inner,
            hold: n,
            arrived: 0.into(),
            commits: tokio::sync::Barrier::new(n),
            cached: None,
        }
    }
    fn stale(inner: &'a RestCatalog, table: Table) -> Self {
        Rigged {
            inner,
            hold: 0,
            arrived: 0.into(),
            commits: tokio::sync::Barrier::new(1),
            cached: Some(table),
        }
    }
}

#[async_trait::async_trait]
impl Catalog for Rigged<'_> {
    async fn list_namespaces(
        &self,
        p: Option<&NamespaceIdent>,
    ) -> iceberg::Result<Vec<NamespaceIdent>> {
        self.inner.list_namespaces(p).await
    }
    async fn create_namespace(
        &self,
        n: &NamespaceIdent,
        p: HashMap<String, String>,
    ) -> iceberg::Result<Namespace> {
        self.inner.create_namespace(n, p).await
    }
    async fn get_namespace(&self, n: &NamespaceIdent) -> iceberg::Result<Namespace> {
        self.inner.get_namespace(n).await
    }
    async fn namespace_exists(&self, n: &NamespaceIdent) -> iceberg::Result<bool> {
        self.inner.namespace_exists(n).await
    }
    async fn update_namespace(
        &self,
        n: &NamespaceIdent,
        p: HashMap<String, String>,
    ) -> iceberg::Result<()> {
        self.inner.update_namespace(n, p).await
    }
    async fn drop_namespace(&self, n: &NamespaceIdent) -> iceberg::Result<()> {
        self.inner.drop_namespace(n).await
    }
    async fn list_tables(&self, n: &NamespaceIdent) -> iceberg::Result<Vec<TableIdent>> {
        self.inner.list_tables(n).await
    }
    async fn create_table(&self, n: &NamespaceIdent, c: TableCreation) -> iceberg::Result<Table> {
        self.inner.create_table(n, c).await
    }
    async fn load_table(&self, t: &TableIdent) -> iceberg::Result<Table> {
        match &self.cached {
            Some(table) => Ok(table.clone()),
            None => self.inner.load_table(t).await,
        }
    }
    async fn drop_table(&self, t: &TableIdent) -> iceberg::Result<()> {
        self.inner.drop_table(t).await
    }
    async fn purge_table(&self, t: &TableIdent) -> iceberg::Result<()> {
        self.inner.purge_table(t).await
    }
    async fn table_exists(&self, t: &TableIdent) -> iceberg::Result<bool> {
        self.inner.table_exists(t).await
    }
    async fn rename_table(&self, a: &TableIdent, b: &TableIdent) -> iceberg::Result<()> {
        self.inner.rename_table(a, b).await
    }
    async fn register_table(&self, t: &TableIdent, l: String) -> iceberg::Result<Table> {
        self.inner.register_table(t, l).await
    }
    async fn update_table(&self, commit: TableCommit) -> iceberg::Result<Table> {
        // Later calls (the client's own retries) go straight through.
        if self
            .arrived
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            < self.hold
        {
            self.commits.wait().await;
        }
        self.inner.update_table(commit).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_from_one_base_one_wins_the_other_conflicts() {
    let s = TestServer::start().await;
    let c = file_catalog(&s).await;
    let db = ns(&["db"]);
    c.create_namespace(&db, HashMap::new()).await.unwrap();
    let mut create = creation("race");
    // Surface the conflict instead of letting the transaction's own retry absorb it.
    create
        .properties
        .insert("commit.retry.num-retries".into(), "0".into());
    let base = c.create_table(&db, create).await.unwrap();
    let ident = base.identifier().clone();

    let left = write_rows(&base, "left", &[(1, "l")]).await;
    let right = write_rows(&base, "right", &[(2, "r")]).await;
    let gate = Rigged::racing(&c, 2);
    let (l, r) = tokio::join!(
        append(&gate, &base, left.clone()),
        append(&gate, &base, right.clone())
    );
    let (won, lost, lost_files) = match (l, r) {
        (Ok(w), Err(e)) => (w, e, right),
        (Err(e), Ok(w)) => (w, e, left),
        (l, r) => panic!(
            "want exactly one winner: left={:?} right={:?}",
            l.map(|_| ()),
            r.map(|_| ())
        ),
    };
    assert_eq!(lost.kind(), ErrorKind::CatalogCommitConflicts, "{lost}");
    assert!(lost.retryable(), "{lost}");
    assert_eq!(won.metadata().snapshots().len(), 1);
    let winner_rows = scan(&c.load_table(&ident).await.unwrap()).await;
    assert_eq!(winner_rows.len(), 1);

    // Reload and retry: the loser's files land on top of the winner's snapshot.
    let fresh = c.load_table(&ident).await.unwrap();
    append(&c, &fresh, lost_files).await.unwrap();
    let t = c.load_table(&ident).await.unwrap();
    assert_eq!(t.metadata().snapshots().len(), 2);
    assert_eq!(scan(&t).await, rows(&[(1, "left", "l"), (2, "right", "r")]));

    // With the client's own retry left on (the default), both racing appends land: the loser
    // gets a retryable 409, reloads and re-applies on top of the winner.
    let t = c.load_table(&ident).await.unwrap();
    let tx = Transaction::new(&t);
    let t = tx
        .update_table_properties()
        .remove("commit.retry.num-retries".into())
        .apply(tx)
        .unwrap()
        .commit(&c)
        .await
        .unwrap();
    let x = write_rows(&t, "x", &[(3, "x")]).await;
    let y = write_rows(&t, "y", &[(4, "y")]).await;
    let gate = Rigged::racing(&c, 2);
    let (l, r) = tokio::join!(append(&gate, &t, x), append(&gate, &t, y));
    l.unwrap();
    r.unwrap();
    let t = c.load_table(&ident).await.unwrap();
    assert_eq!(t.metadata().snapshots().len(), 4);
    assert_eq!(scan(&t).await.len(), 4);

    // A commit built on a stale base (cached metadata, no reload) is refused as well: its
    // `assert-ref-snapshot-id` requirement no longer holds.
    let stale = write_rows(&base, "stale", &[(9, "s")]).await;
    assert_kind(
        append(&Rigged::stale(&c, base.clone()), &base, stale).await,
        ErrorKind::CatalogCommitConflicts,
    );
    // (iceberg-rust 0.10 replaces a 409's message with its own, so the server's wording of the
    // failed requirement is checked over HTTP in rest_conformance.rs and with PyIceberg.)
    assert_eq!(
        c.load_table(&ident)
            .await
            .unwrap()
            .metadata()
            .snapshots()
            .len(),
        4
    );
    s.stop().await;
}

// ------------------------------------------------------------------------------------------
// metadata as the reference implementation writes it (issue 15)
// ------------------------------------------------------------------------------------------

/// The metadata file a table's current version points at, read through its FileIO.
async fn metadata_file_text(t: &Table) -> String {
    let bytes = t
        .file_io()
        .new_input(t.metadata_location().unwrap())
        .unwrap()
        .read()
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn list_ids(v: &serde_json::Value, list: &str, key: &str) -> Vec<i64> {
    v[list]
        .as_array()
        .unwrap_or_else(|| panic!("{list} missing"))
        .iter()
        .map(|i| i[key].as_i64().unwrap())
        .collect()
}

#[track_caller]
fn assert_ascending(ids: &[i64], what: &str) {
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "{what} not in written order: {ids:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_lists_are_written_in_order_and_stable() {
    let s = TestServer::start().await;
    let c = file_catalog(&s).await;
    let db = ns(&["ordered"]);
    c.create_namespace(&db, HashMap::new()).await.unwrap();
    let mut t = c.create_table(&db, creation("many")).await.unwrap();
    let ident = t.identifier().clone();
    for i in 0..6 {
        t = append(&c, &t, write_rows(&t, "a", &[(i, "x")]).await)
            .await
            .unwrap();
    }
    for i in 0..6 {
        let tx = Transaction::new(&t);
        let tx = tx
            .update_schema()
            .add_column(AddColumn::optional(
                format!("c{i}"),
                Type::Primitive(PrimitiveType::Int),
            ))
            .apply(tx)
            .unwrap();
        t = tx.commit(&c).await.unwrap();
    }
    let tx = Transaction::new(&t);
    let tx = tx
        .replace_sort_order()
        .asc("category", NullOrder::First)
        .apply(tx)
        .unwrap();
    tx.commit(&c).await.unwrap();

    let t = c.load_table(&ident).await.unwrap();
    let text = metadata_file_text(&t).await;
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        list_ids(&v, "schemas", "schema-id"),
        (0..7).collect::<Vec<_>>()
    );
    let seqs = list_ids(&v, "snapshots", "sequence-number");
    assert_eq!(seqs, (1..7).collect::<Vec<_>>());
    assert_ascending(&list_ids(&v, "sort-orders", "order-id"), "sort-orders");
    assert_ascending(
        &list_ids(&v, "partition-specs", "spec-id"),
        "partition-specs",
    );
    // The logs follow the snapshots and versions as they were made.
    let snapshot_ids = list_ids(&v, "snapshots", "snapshot-id");
    assert_eq!(list_ids(&v, "snapshot-log", "snapshot-id"), snapshot_ids);
    let log_times = list_ids(&v, "metadata-log", "timestamp-ms");
    assert!(log_times.windows(2).all(|w| w[0] <= w[1]), "{log_times:?}");
    // What the client sees agrees with the file, and the schemas it parsed are the ones written.
    assert_eq!(t.metadata().schemas_iter().len(), 7);
    assert_eq!(t.metadata().current_schema().schema_id(), 6);

    // Another version of the same table: equal lists come out byte-identical.
    let tx = Transaction::new(&t);
    let tx = tx
        .update_table_properties()
        .set("k".into(), "v".into())
        .apply(tx)
        .unwrap();
    let t2 = tx.commit(&c).await.unwrap();
    let v2: serde_json::Value = serde_json::from_str(&metadata_file_text(&t2).await).unwrap();
    for key in [
        "schemas",
        "snapshots",
        "partition-specs",
        "sort-orders",
        "refs",
        "snapshot-log",
    ] {
        assert_eq!(
            serde_json::to_string(&v[key]).unwrap(),
            serde_json::to_string(&v2[key]).unwrap(),
            "{key}"
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn float_defaults_are_written_as_f32_and_client_field_ids_are_kept() {
    let s = TestServer::start().await;
    let c = file_catalog(&s).await;
    let db = ns(&["v3"]);
    c.create_namespace(&db, HashMap::new()).await.unwrap();

    // ids as the reference implementations number them: a map's key and value ids before the
    // fields of its key struct (iceberg-rust's own renumbering would put k1, k2 before the
    // value id).
    let key = Type::Struct(iceberg::spec::StructType::new(vec![
        NestedField::required(5, "k1", Type::Primitive(PrimitiveType::Int)).into(),
        NestedField::required(6, "k2", Type::Primitive(PrimitiveType::Int)).into(),
    ]));
    let map = Type::Map(iceberg::spec::MapType::new(
        NestedField::map_key_element(3, key).into(),
        NestedField::map_value_element(4, Type::Primitive(PrimitiveType::String), false).into(),
    ));
    let schema = Schema::builder()
        .with_schema_id(0)
        .with_fields(vec![
            NestedField::required(1, "id", Type::Primitive(PrimitiveType::Long)).into(),
            NestedField::optional(2, "m", map).into(),
            NestedField::optional(7, "temp", Type::Primitive(PrimitiveType::Float))
                .with_initial_default(Literal::float(22.27f32))
                .with_write_default(Literal::float(22.27f32))
                .into(),
            NestedField::optional(20, "gap", Type::Primitive(PrimitiveType::Int)).into(),
        ])
        .build()
        .unwrap();
    let creation = TableCreation::builder()
        .name("floaty".to_string())
        .schema(schema.clone())
        .properties(props(&[("format-version", "3")]))
        .build();
    let t = c.create_table(&db, creation).await.unwrap();
    assert_eq!(t.metadata().format_version(), FormatVersion::V3);
    let got = t.metadata().current_schema();
    for name in ["id", "m", "m.key.k1", "m.key.k2", "m.value", "temp", "gap"] {
        assert_eq!(
            got.field_by_name(name).map(|f| f.id),
            schema.field_by_name(name).map(|f| f.id),
            "{name}"
        );
    }
    assert_eq!(t.metadata().last_column_id(), 20);

    let text = metadata_file_text(&t).await;
    assert!(
        text.contains(r#""initial-default":22.27"#) && text.contains(r#""write-default":22.27"#),
        "{text}"
    );
    assert!(!text.contains("22.2700004"), "{text}");
    let loaded = c.load_table(t.identifier()).await.unwrap();
    let temp = loaded
        .metadata()
        .current_schema()
        .field_by_name("temp")
        .unwrap()
        .clone();
    assert_eq!(temp.initial_default, Some(Literal::float(22.27f32)));
    s.stop().await;
}

// ------------------------------------------------------------------------------------------
// vended credentials on S3 (moto)
// ------------------------------------------------------------------------------------------

const BUCKET: &str = "lake";
const REGION: &str = "us-east-1";
const MOTO_SETUP: (&str, &str, Option<&str>) = ("AKIAMOTOSETUP0000000", "moto-setup-secret", None);

struct MotoLake {
    moto: Moto,
    access_key: String,
    secret_key: String,
    role_arn: String,
}

/// Bucket, an IAM user (the warehouse's storage credential) and a role it may assume with
/// S3 rights on the bucket; then moto's auth checks on, so only keys moto issued work.
async fn moto_lake() -> MotoLake {
    let moto = Moto::start();
    let r = reqwest::Client::new()
        .put(format!("{}/{BUCKET}", moto.endpoint))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "create bucket: {}",
        r.text().await.unwrap_or_default()
    );
    let user = moto
        .query_ok(
            "iam",
            MOTO_SETUP,
            &[("Action", "CreateUser"), ("UserName", "sluice")],
        )
        .await;
    let user_arn = xml_text(&user, "Arn").unwrap();
    let everything =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    moto.query_ok(
        "iam",
        MOTO_SETUP,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", "sluice"),
            ("PolicyName", "all"),
            ("PolicyDocument", everything),
        ],
    )
    .await;
    let key = moto
        .query_ok(
            "iam",
            MOTO_SETUP,
            &[("Action", "CreateAccessKey"), ("UserName", "sluice")],
        )
        .await;
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{user_arn}"}},"Action":"sts:AssumeRole"}}]}}"#
    );
    let role = moto
        .query_ok(
            "iam",
            MOTO_SETUP,
            &[
                ("Action", "CreateRole"),
                ("RoleName", "lake"),
                ("AssumeRolePolicyDocument", &trust),
            ],
        )
        .await;
    let bucket_policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:*","Resource":["arn:aws:s3:::{BUCKET}","arn:aws:s3:::{BUCKET}/*"]}}]}}"#
    );
    moto.query_ok(
        "iam",
        MOTO_SETUP,
        &[
            ("Action", "PutRolePolicy"),
            ("RoleName", "lake"),
            ("PolicyName", "bucket"),
            ("PolicyDocument", &bucket_policy),
        ],
    )
    .await;
    moto.enable_auth();
    assert!(xml_text(&user, "Arn").unwrap().contains(moto::ACCOUNT));
    MotoLake {
        access_key: xml_text(&key, "AccessKeyId").unwrap(),
        secret_key: xml_text(&key, "SecretAccessKey").unwrap(),
        role_arn: xml_text(&role, "Arn").unwrap(),
        moto,
    }
}

/// A catalog client with no storage keys and no ambient AWS configuration: whatever S3 access
/// it has comes from the `config` the server returns with a table.
async fn s3_catalog(s: &TestServer, warehouse: &str, delegation: Option<&str>) -> RestCatalog {
    let mut extra = vec![
        ("s3.disable-config-load", "true"),
        ("s3.disable-ec2-metadata", "true"),
    ];
    if let Some(d) = delegation {
        extra.push(("header.X-Iceberg-Access-Delegation", d));
    }
    catalog(
        s,
        warehouse,
        &extra,
        Arc::new(OpenDalStorageFactory::S3 {
            customized_credential_load: None,
        }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vended_credentials_write_and_read_s3_on_moto() {
    let lake = moto_lake().await;
    let s = TestServer::start().await;
    let (status, body) = s
        .post(
            "/management/v1/warehouse",
            serde_json::json!({
                "warehouse-name": "s3lake",
                "storage-profile": {
                    "type": "s3", "bucket": BUCKET, "key-prefix": "wh", "region": REGION,
                    "endpoint": lake.moto.endpoint, "path-style-access": true, "flavor": "s3-compat",
                    "sts-enabled": true, "sts-role-arn": lake.role_arn,
                },
                "storage-credential": {
                    "type": "s3", "credential-type": "access-key",
                    "aws-access-key-id": lake.access_key, "aws-secret-access-key": lake.secret_key,
                },
                "delete-profile": {"type": "hard"},
            }),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");

    let c = s3_catalog(&s, "s3lake", Some("vended-credentials")).await;
    let db = ns(&["db"]);
    c.create_namespace(&db, HashMap::new()).await.unwrap();
    let created = c.create_table(&db, creation("trips")).await.unwrap();
    let ident = created.identifier().clone();
    assert!(
        created
            .metadata()
            .location()
            .starts_with(&format!("s3://{BUCKET}/wh/")),
        "{}",
        created.metadata().location()
    );

    // Create already hands out credentials: the new table's FileIO can read what the server wrote.
    assert!(created
        .file_io()
        .config()
        .props()
        .contains_key("s3.session-token"));
    assert!(created
        .file_io()
        .exists(created.metadata_location().unwrap())
        .await
        .unwrap());

    // Load: the client's FileIO is built from the returned config alone.
    let t = c.load_table(&ident).await.unwrap();
    let cfg = t.file_io().config().props();
    for k in [
        "s3.access-key-id",
        "s3.secret-access-key",
        "s3.session-token",
        "s3.endpoint",
        "s3.region",
        "s3.path-style-access",
    ] {
        assert!(
            cfg.contains_key(k),
            "{k} missing from the FileIO config: {:?}",
            cfg.keys().collect::<Vec<_>>()
        );
    }
    assert!(
        cfg["s3.access-key-id"].starts_with("ASIA"),
        "temporary credentials, not the warehouse key"
    );
    assert_ne!(cfg["s3.access-key-id"], lake.access_key);
    // The metadata file the server wrote is readable with the vended credentials.
    assert!(t
        .file_io()
        .exists(t.metadata_location().unwrap())
        .await
        .unwrap());

    let files = write_rows(&t, "bikes", &[(10, "north"), (11, "south")]).await;
    assert!(files[0]
        .file_path()
        .starts_with(&format!("s3://{BUCKET}/wh/")));
    append(&c, &t, files).await.unwrap();
    let t = c.load_table(&ident).await.unwrap();
    assert_eq!(
        scan(&t).await,
        rows(&[(10, "bikes", "north"), (11, "bikes", "south")])
    );

    // Without delegation the same client has no way into the bucket: the vended config was
    // the only source of S3 access (moto refuses unsigned/unknown requests).
    let plain = s3_catalog(&s, "s3lake", None).await;
    let bare = plain.load_table(&ident).await.unwrap();
    assert!(!bare
        .file_io()
        .config()
        .props()
        .contains_key("s3.access-key-id"));
    assert!(bare
        .file_io()
        .exists(bare.metadata_location().unwrap())
        .await
        .is_err());

    // A file warehouse needs no storage credentials, so the same header is simply ignored there.
    let file_with_header = catalog(
        &s,
        "default",
        &[("header.X-Iceberg-Access-Delegation", "vended-credentials")],
        Arc::new(LocalFsStorageFactory),
    )
    .await;
    file_with_header
        .create_namespace(&db, HashMap::new())
        .await
        .unwrap();
    file_with_header
        .create_table(&db, creation("local"))
        .await
        .unwrap();

    // Purge: the server deletes the table's objects (checked with the still-valid vended
    // credentials the client holds).
    let data_file = t
        .metadata()
        .current_snapshot()
        .unwrap()
        .manifest_list()
        .to_string();
    assert!(t.file_io().exists(&data_file).await.unwrap());
    c.purge_table(&ident).await.unwrap();
    assert!(!c.table_exists(&ident).await.unwrap());
    assert!(
        !t.file_io().exists(&data_file).await.unwrap(),
        "{data_file} survived the purge"
    );
    assert!(!t
        .file_io()
        .exists(t.metadata_location().unwrap())
        .await
        .unwrap());
    s.stop().await;
}

/// `X-Iceberg-Access-Delegation` is a hint: on an S3 warehouse without STS, a client asking for
/// vended credentials is served anyway — with its own keys it works end to end, without keys
/// it gets the table but no credentials (never empty or key-less ones). Asking `/credentials`
/// explicitly is a clear 400 (raw HTTP: iceberg-rust 0.10 has no call for that endpoint).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegation_header_is_a_hint_on_s3_without_sts() {
    let lake = moto_lake().await;
    let s = TestServer::start().await;
    let (status, body) = s
        .post(
            "/management/v1/warehouse",
            serde_json::json!({
                "warehouse-name": "nosts",
                "storage-profile": {
                    "type": "s3", "bucket": BUCKET, "key-prefix": "nosts", "region": REGION,
                    "endpoint": lake.moto.endpoint, "path-style-access": true, "flavor": "s3-compat",
                    "sts-enabled": false,
                },
                "storage-credential": {
                    "type": "s3", "credential-type": "access-key",
                    "aws-access-key-id": lake.access_key, "aws-secret-access-key": lake.secret_key,
                },
                "delete-profile": {"type": "hard"},
            }),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");

    // The client's default-style header plus its own keys.
    let endpoint = lake.moto.endpoint.clone();
    let own = [
        ("header.X-Iceberg-Access-Delegation", "vended-credentials"),
        ("s3.access-key-id", lake.access_key.as_str()),
        ("s3.secret-access-key", lake.secret_key.as_str()),
        ("s3.endpoint", endpoint.as_str()),
        ("s3.region", REGION),
        ("s3.path-style-access", "true"),
        ("s3.disable-config-load", "true"),
        ("s3.disable-ec2-metadata", "true"),
    ];
    let c = catalog(
        &s,
        "nosts",
        &own,
        Arc::new(OpenDalStorageFactory::S3 {
            customized_credential_load: None,
        }),
    )
    .await;
    let db = ns(&["db"]);
    c.create_namespace(&db, HashMap::new()).await.unwrap();
    let t = c.create_table(&db, creation("trips")).await.unwrap();
    let ident = t.identifier().clone();
    append(&c, &t, write_rows(&t, "bikes", &[(1, "n")]).await)
        .await
        .unwrap();
    let t = c.load_table(&ident).await.unwrap();
    assert_eq!(scan(&t).await, rows(&[(1, "bikes", "n")]));
    let cfg = t.file_io().config().props();
    assert!(
        !cfg.contains_key("s3.session-token"),
        "nothing is vended without STS"
    );
    assert_eq!(
        cfg["s3.access-key-id"], lake.access_key,
        "the client's own key is untouched"
    );

    // No keys of its own: the table still loads; nothing usable was handed out.
    let keyless = s3_catalog(&s, "nosts", Some("vended-credentials")).await;
    let bare = keyless.load_table(&ident).await.unwrap();
    let cfg = bare.file_io().config().props();
    for k in [
        "s3.access-key-id",
        "s3.secret-access-key",
        "s3.session-token",
    ] {
        assert!(
            !cfg.contains_key(k),
            "{k} handed out: {:?}",
            cfg.keys().collect::<Vec<_>>()
        );
    }

    // The explicit request says why.
    let prefix = s.prefix_of("nosts").await;
    let (st, v) = s
        .get(&format!(
            "/v1/{prefix}/namespaces/db/tables/trips/credentials"
        ))
        .await;
    assert_eq!(st, reqwest::StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sts-enabled"),
        "{v}"
    );
    s.stop().await;
}
