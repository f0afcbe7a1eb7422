//! The lake browser: warehouse → namespaces (nested) → tables, the table page (schema
//! tree, partition spec, sort order, properties, paginated snapshots, refs, metadata
//! location, connection snippets), drop/purge with type-the-name confirmation, and the
//! deleted tables with undrop. Every read goes through the same visible-table checks as
//! the Iceberg REST API.

use crate::error::{message_of, ConsoleError, Result};
use crate::layout::{self, copy_button, csrf, dash, json_block, ms_time, page};
use crate::session::{self, Change, User};
use crate::warehouses::storage_summary;
use crate::{ConsoleState, BASE};
use axum::extract::{Path, Query, State};
use axum::http::{request::Parts, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{html, Markup};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use sluice_service::warehouse::WarehouseInfo;
use uuid::Uuid;

/// Snapshots shown per page of a table's history.
pub const SNAPSHOTS_PER_PAGE: usize = 50;
const LIST_PAGE: u32 = 200;

/// The REST path form of a namespace (levels joined by U+001F).
fn ns_param(levels: &[String]) -> String {
    levels.join("\u{1f}")
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

fn ns_href(wid: Uuid, levels: &[String]) -> String {
    format!(
        "{BASE}/warehouses/{wid}/namespace?ns={}",
        enc(&ns_param(levels))
    )
}

fn table_href(wid: Uuid, levels: &[String], name: &str) -> String {
    format!(
        "{BASE}/warehouses/{wid}/table?ns={}&name={}",
        enc(&ns_param(levels)),
        enc(name)
    )
}

fn crumbs(w: &WarehouseInfo, levels: &[String], table: Option<&str>) -> Markup {
    html! {
        nav.crumbs aria-label="Breadcrumb" {
            a href={(BASE) "/warehouses"} { "Warehouses" } " / "
            a href={(BASE) "/warehouses/" (w.id)} { (w.name) }
            @for i in 0..levels.len() {
                " / " a href=(ns_href(w.id, &levels[..=i])) { (levels[i]) }
            }
            @if let Some(t) = table { " / " strong { (t) } }
        }
    }
}

fn namespace_list(w: &WarehouseInfo, namespaces: &[Vec<String>]) -> Markup {
    html! {
        h2 { "Namespaces" }
        @if namespaces.is_empty() {
            p.empty { "No namespaces here." }
        } @else {
            ul {
                @for ns in namespaces {
                    li { a href=(ns_href(w.id, ns)) { (ns.join(".")) } }
                }
            }
        }
    }
}

pub async fn warehouse(
    State(state): State<ConsoleState>,
    Path(id): Path<Uuid>,
    user: User,
) -> Result<Html<String>> {
    let p = &user.principal;
    let w = state.services.get_warehouse(p, id).await?;
    let (kind, place) = storage_summary(&w.storage_profile);
    let namespaces = if w.status == "active" {
        match state
            .services
            .list_namespaces(p, &id.to_string(), None, None, Some(LIST_PAGE))
            .await
        {
            Ok(r) => Ok(r.namespaces),
            Err(e) => Err(message_of(&e)),
        }
    } else {
        Err("the warehouse is inactive: activate it to browse".to_string())
    };
    let body = html! {
        (crumbs(&w, &[], None))
        h1 { "Warehouse " (w.name) }
        dl.kv.card {
            dt { "Storage" } dd { (kind) }
            dt { "Location" } dd { code { (place) } }
            dt { "Status" } dd { (w.status) }
            dt { "ID" } dd { code { (w.id) } }
            dt { "Created" } dd { (layout::time(&w.created_at)) }
        }
        div.actions {
            a.button.secondary href={(BASE) "/warehouses/" (w.id) "/deleted"} { "Deleted tables" }
        }
        @match &namespaces {
            Ok(ns) => (namespace_list(&w, ns)),
            Err(m) => p.error role="alert" { (m) },
        }
        (crate::warehouses::actions(&user, &w))
    };
    Ok(Html(page(&w.name, &user, "warehouses", body).into_string()))
}

#[derive(Deserialize)]
pub struct NsQuery {
    ns: String,
}

fn levels_of(ns: &str) -> Vec<String> {
    ns.split('\u{1f}').map(str::to_string).collect()
}

pub async fn namespace(
    State(state): State<ConsoleState>,
    Path(id): Path<Uuid>,
    Query(q): Query<NsQuery>,
    user: User,
) -> Result<Html<String>> {
    let p = &user.principal;
    let prefix = id.to_string();
    let w = state.services.get_warehouse(p, id).await?;
    let loaded = state.services.load_namespace(p, &prefix, &q.ns).await?;
    let levels = loaded.namespace.clone();
    let children = state
        .services
        .list_namespaces(p, &prefix, Some(&q.ns), None, Some(LIST_PAGE))
        .await?;
    let tables = state
        .services
        .list_tables(p, &prefix, &q.ns, None, Some(LIST_PAGE))
        .await?;
    let mut props: Vec<_> = loaded.properties.iter().collect();
    props.sort();
    let body = html! {
        (crumbs(&w, &levels, None))
        h1 { "Namespace " (levels.join(".")) }
        (namespace_list(&w, &children.namespaces))
        h2 { "Tables" }
        @if tables.identifiers.is_empty() {
            p.empty { "No tables in this namespace." }
        } @else {
            ul {
                @for t in &tables.identifiers {
                    li { a href=(table_href(w.id, &t.namespace, &t.name)) { (t.name) } }
                }
            }
        }
        @if tables.next_page_token.is_some() {
            p.muted { "Only the first " (LIST_PAGE) " tables are listed." }
        }
        h2 { "Properties" }
        (properties(&props))
    };
    Ok(Html(
        page(&levels.join("."), &user, "warehouses", body).into_string(),
    ))
}

fn properties(props: &[(&String, &String)]) -> Markup {
    html! {
        @if props.is_empty() {
            p.empty { "No properties." }
        } @else {
            div.table-wrap {
                table.stack {
                    thead { tr { th { "Key" } th { "Value" } } }
                    tbody {
                        @for (k, v) in props {
                            tr { td data-label="Key" { code { (k) } } td data-label="Value" { (v) } }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct TableQuery {
    ns: String,
    name: String,
    #[serde(default)]
    page: usize,
}

/// A type of the schema as a tree: primitives inline, struct/list/map nested.
fn type_tree(t: &Value) -> Markup {
    match t {
        Value::String(s) => html! { span.type { (s) } },
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some("struct") => html! {
                span.type { "struct" }
                (fields_tree(o.get("fields")))
            },
            Some("list") => html! {
                span.type { "list" }
                ul.tree {
                    li {
                        "element "
                        @if o.get("element-required").and_then(Value::as_bool) == Some(true) { span.req { "required " } }
                        (type_tree(o.get("element").unwrap_or(&Value::Null)))
                    }
                }
            },
            Some("map") => html! {
                span.type { "map" }
                ul.tree {
                    li { "key " (type_tree(o.get("key").unwrap_or(&Value::Null))) }
                    li {
                        "value "
                        @if o.get("value-required").and_then(Value::as_bool) == Some(true) { span.req { "required " } }
                        (type_tree(o.get("value").unwrap_or(&Value::Null)))
                    }
                }
            },
            _ => html! { code { (t.to_string()) } },
        },
        other => html! { code { (other.to_string()) } },
    }
}

fn fields_tree(fields: Option<&Value>) -> Markup {
    let empty = vec![];
    let fields = fields.and_then(Value::as_array).unwrap_or(&empty);
    html! {
        ul.tree {
            @for f in fields {
                li {
                    strong { (f.get("name").and_then(Value::as_str).unwrap_or("?")) }
                    " "
                    span.muted { "#" (f.get("id").map(Value::to_string).unwrap_or_default()) }
                    " "
                    @if f.get("required").and_then(Value::as_bool) == Some(true) { span.req { "required " } }
                    (type_tree(f.get("type").unwrap_or(&Value::Null)))
                    @if let Some(doc) = f.get("doc").and_then(Value::as_str) { " " span.muted { "— " (doc) } }
                }
            }
        }
    }
}

fn current<'a>(md: &'a Value, list: &str, id_key: &str, current_key: &str) -> Option<&'a Value> {
    let cur = md.get(current_key)?;
    md.get(list)?
        .as_array()?
        .iter()
        .find(|s| s.get(id_key) == Some(cur))
}

fn summary_cell(s: &Value, key: &str) -> Markup {
    match s
        .get("summary")
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
    {
        Some(v) => html! { (v) },
        None => dash(),
    }
}

/// Table metadata for the page: every top-level field parsed except the history lists,
/// whose entries stay raw until their page is shown (a long-lived table has tens of
/// thousands of snapshots; building values for all of them would dominate the page's time).
/// Read in one pass over the text: snapshots are only delimited, the logs skipped.
struct Metadata<'a> {
    fields: Value,
    snapshots: Vec<&'a RawValue>,
}

/// Fields left out of [`Metadata::fields`]: the page shows no more than one page of them.
const HISTORY_FIELDS: [&str; 3] = ["snapshots", "snapshot-log", "metadata-log"];

impl<'de: 'a, 'a> Deserialize<'de> for Metadata<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Fields<'a>(std::marker::PhantomData<&'a ()>);

        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Fields<'a> {
            type Value = Metadata<'a>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("table metadata (a JSON object)")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Metadata<'a>, A::Error> {
                let mut fields = serde_json::Map::new();
                let mut snapshots = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    if k == "snapshots" {
                        snapshots = map.next_value::<Vec<&'a RawValue>>()?;
                    } else if HISTORY_FIELDS.contains(&k.as_str()) {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    } else {
                        fields.insert(k, map.next_value::<Value>()?);
                    }
                }
                Ok(Metadata {
                    fields: Value::Object(fields),
                    snapshots,
                })
            }
        }

        d.deserialize_map(Fields(std::marker::PhantomData))
    }
}

fn parse_metadata(text: &str) -> serde_json::Result<Metadata<'_>> {
    serde_json::from_str(text)
}

fn snapshots(all: &[&RawValue], w: Uuid, q: &TableQuery) -> Markup {
    let total = all.len();
    let pages = total.div_ceil(SNAPSHOTS_PER_PAGE).max(1);
    let page_no = q.page.min(pages - 1);
    // Newest first: the metadata lists snapshots oldest first.
    let start = total.saturating_sub((page_no + 1) * SNAPSHOTS_PER_PAGE);
    let end = total - page_no * SNAPSHOTS_PER_PAGE;
    let levels = levels_of(&q.ns);
    let href = |n: usize| format!("{}&page={n}#snapshots", table_href(w, &levels, &q.name));
    html! {
        h2 #snapshots { "Snapshots" }
        @if total == 0 {
            p.empty { "No snapshots yet: the table has no data." }
        } @else {
            p.muted { (total) " snapshots, newest first; page " (page_no + 1) " of " (pages) "." }
            div.table-wrap {
                table.stack {
                    thead { tr {
                        th { "Snapshot" } th { "Time" } th { "Operation" }
                        th { "Added files" } th { "Removed files" } th { "Added records" } th { "Deleted records" } th { "Total records" }
                    } }
                    tbody {
                        @for raw in all[start..end].iter().rev() {
                            @let s: Value = serde_json::from_str(raw.get()).unwrap_or_default();
                            tr {
                                td data-label="Snapshot" { code { (s.get("snapshot-id").map(Value::to_string).unwrap_or_default()) } }
                                td data-label="Time" { @if let Some(ms) = s.get("timestamp-ms").and_then(Value::as_i64) { (ms_time(ms)) } }
                                td data-label="Operation" { (summary_cell(&s, "operation")) }
                                td data-label="Added files" { (summary_cell(&s, "added-data-files")) }
                                td data-label="Removed files" { (summary_cell(&s, "deleted-data-files")) }
                                td data-label="Added records" { (summary_cell(&s, "added-records")) }
                                td data-label="Deleted records" { (summary_cell(&s, "deleted-records")) }
                                td data-label="Total records" { (summary_cell(&s, "total-records")) }
                            }
                        }
                    }
                }
            }
            @if pages > 1 {
                nav.actions aria-label="Snapshot pages" {
                    @if page_no > 0 { a.button.secondary href=(href(page_no - 1)) rel="prev" { "Newer" } }
                    @if page_no + 1 < pages { a.button.secondary href=(href(page_no + 1)) rel="next" { "Older" } }
                }
            }
        }
    }
}

fn snippets(base: &str, warehouse: &str, levels: &[String], table: &str) -> Markup {
    let ident = format!("{}.{}", levels.join("."), table);
    let py = format!(
        "from pyiceberg.catalog import load_catalog\n\n\
         catalog = load_catalog(\n    \"sluice\",\n    uri=\"{base}\",\n    warehouse=\"{warehouse}\",\n    \
         credential=\"<access-key-id>:<secret-access-key>\",\n    \
         **{{\"header.X-Iceberg-Access-Delegation\": \"vended-credentials\"}},\n)\n\
         table = catalog.load_table(\"{ident}\")\nprint(table.scan().to_arrow())\n"
    );
    let duck = format!(
        "INSTALL iceberg; LOAD iceberg;\n\
         CREATE SECRET sluice (TYPE iceberg, CLIENT_ID '<access-key-id>',\n  \
         CLIENT_SECRET '<secret-access-key>', OAUTH2_SERVER_URI '{base}/v1/oauth/tokens');\n\
         ATTACH '{warehouse}' AS lake (TYPE iceberg, SECRET sluice, ENDPOINT '{base}');\n\
         SELECT * FROM lake.{ident} LIMIT 10;\n"
    );
    let spark = format!(
        "spark-sql \\\n  --conf spark.sql.catalog.sluice=org.apache.iceberg.spark.SparkCatalog \\\n  \
         --conf spark.sql.catalog.sluice.type=rest \\\n  --conf spark.sql.catalog.sluice.uri={base} \\\n  \
         --conf spark.sql.catalog.sluice.warehouse={warehouse} \\\n  \
         --conf spark.sql.catalog.sluice.credential=<access-key-id>:<secret-access-key> \\\n  \
         -e 'SELECT * FROM sluice.{ident} LIMIT 10'\n"
    );
    html! {
        h2 { "Connect" }
        @for (id, label, text) in [("snip-py", "PyIceberg", py), ("snip-duck", "DuckDB", duck), ("snip-spark", "Spark", spark)] {
            h3 { (label) " " (copy_button(id)) }
            pre id=(id) { (text) }
        }
    }
}

pub async fn table(
    State(state): State<ConsoleState>,
    Path(id): Path<Uuid>,
    Query(q): Query<TableQuery>,
    parts: Parts,
    user: User,
) -> Result<Html<String>> {
    table_page(&state, id, &q, &parts, &user, None)
        .await
        .map(|(_, h)| h)
}

async fn table_page(
    state: &ConsoleState,
    id: Uuid,
    q: &TableQuery,
    parts: &Parts,
    user: &User,
    drop_error: Option<&str>,
) -> Result<(StatusCode, Html<String>)> {
    let p = &user.principal;
    let w = state.services.get_warehouse(p, id).await?;
    let base = session::base_url(state, parts);
    // The stored JSON as is: no credentials vended, parsed once below.
    let loaded = state
        .services
        .table_metadata_for_display(p, &id.to_string(), &q.ns, &q.name)
        .await?;
    let parsed = parse_metadata(&loaded.metadata_json)
        .map_err(|e| ConsoleError::Service(sluice_service::ServiceError::internal(e)))?;
    let md = &parsed.fields;
    let levels = levels_of(&q.ns);
    let schema = current(md, "schemas", "schema-id", "current-schema-id");
    let spec = current(md, "partition-specs", "spec-id", "default-spec-id");
    let order = current(md, "sort-orders", "order-id", "default-sort-order-id");
    let mut props: Vec<(&String, &String)> = Vec::new();
    let prop_strings: Vec<(String, String)> = md
        .get("properties")
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    for (k, v) in &prop_strings {
        props.push((k, v));
    }
    props.sort();
    let refs = md.get("refs").and_then(Value::as_object);
    let body = html! {
        (crumbs(&w, &levels, Some(&q.name)))
        h1 { "Table " (levels.join(".")) "." (q.name) }
        dl.kv.card {
            dt { "Metadata location" }
            dd { code #metadata-location { (loaded.metadata_location) } }
            dt { "Location" } dd { code { (md.get("location").and_then(Value::as_str).unwrap_or("")) } }
            dt { "Format version" } dd { (md.get("format-version").map(Value::to_string).unwrap_or_default()) }
            dt { "Table UUID" } dd { code { (md.get("table-uuid").and_then(Value::as_str).unwrap_or("")) } }
            dt { "Current snapshot" } dd { (md.get("current-snapshot-id").filter(|v| !v.is_null()).map(Value::to_string).unwrap_or_else(|| "none".into())) }
        }
        h2 { "Schema" }
        @match schema {
            Some(s) => section.card aria-label="Schema" { (fields_tree(s.get("fields"))) },
            None => p.empty { "No schema." },
        }
        h2 { "Partition spec" }
        @match spec.and_then(|s| s.get("fields")).and_then(Value::as_array) {
            Some(f) if !f.is_empty() => (json_block(&Value::Array(f.clone()))),
            _ => p.empty { "Unpartitioned." },
        }
        h2 { "Sort order" }
        @match order.and_then(|s| s.get("fields")).and_then(Value::as_array) {
            Some(f) if !f.is_empty() => (json_block(&Value::Array(f.clone()))),
            _ => p.empty { "Unsorted." },
        }
        h2 { "Properties" }
        (properties(&props))
        h2 { "Refs" }
        @match refs {
            Some(r) if !r.is_empty() => {
                div.table-wrap { table.stack {
                    thead { tr { th { "Name" } th { "Type" } th { "Snapshot" } } }
                    tbody { @for (name, r) in r {
                        tr {
                            td data-label="Name" { (name) }
                            td data-label="Type" { (r.get("type").and_then(Value::as_str).unwrap_or("")) }
                            td data-label="Snapshot" { code { (r.get("snapshot-id").map(Value::to_string).unwrap_or_default()) } }
                        }
                    } }
                } }
            },
            _ => p.empty { "No refs." },
        }
        (snapshots(&parsed.snapshots, w.id, q))
        (snippets(&base, &w.name, &levels, &q.name))
        h2 #drop { "Drop table" }
        form.card method="post" action={(BASE) "/warehouses/" (w.id) "/table/drop"} data-confirm=(q.name) {
            (csrf(user))
            input type="hidden" name="ns" value=(q.ns);
            input type="hidden" name="name" value=(q.name);
            @match w.delete_profile {
                sluice_storage::DeleteProfile::Soft { .. } => p { "This warehouse keeps dropped tables: the table stays recoverable under " a href={(BASE) "/warehouses/" (w.id) "/deleted"} { "Deleted tables" } " until it expires. Purge also deletes its files then." },
                sluice_storage::DeleteProfile::Hard => p { "This warehouse's delete profile is hard: dropping removes the table at once and it cannot be undropped." },
            }
            div.field {
                input #f-purge type="checkbox" name="purge" value="true";
                " " label.inline for="f-purge" { "Purge the files too" }
            }
            (layout::field(&format!("Type the table name ({}) to confirm", q.name), "confirm", "", true, drop_error))
            button.danger type="submit" #drop-table { "Drop table" }
        }
    };
    let status = if drop_error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Html(page(&q.name, user, "warehouses", body).into_string()),
    ))
}

#[derive(Deserialize)]
pub struct DropForm {
    ns: String,
    name: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    purge: Option<String>,
}

pub async fn drop_table(
    State(state): State<ConsoleState>,
    Path(id): Path<Uuid>,
    parts: Parts,
    Change { user, form }: Change<DropForm>,
) -> Result<Response> {
    if form.confirm != form.name {
        let q = TableQuery {
            ns: form.ns,
            name: form.name,
            page: 0,
        };
        let msg = "the name typed does not match the table's name; nothing was dropped";
        return Ok(table_page(&state, id, &q, &parts, &user, Some(msg))
            .await?
            .into_response());
    }
    state
        .services
        .drop_table(
            &user.principal,
            &id.to_string(),
            &form.ns,
            &form.name,
            form.purge.as_deref() == Some("true"),
        )
        .await?;
    Ok(Redirect::to(&ns_href(id, &levels_of(&form.ns))).into_response())
}

pub async fn deleted(
    State(state): State<ConsoleState>,
    Path(id): Path<Uuid>,
    user: User,
) -> Result<Html<String>> {
    let p = &user.principal;
    let w = state.services.get_warehouse(p, id).await?;
    let entries = state
        .services
        .list_deleted_tables(p, id, None, Some(LIST_PAGE))
        .await?;
    let body = html! {
        (crumbs(&w, &[], None))
        h1 { "Deleted tables in " (w.name) }
        @if entries.is_empty() {
            p.empty { "Nothing has been dropped here (or everything dropped has expired)." }
        } @else {
            div.table-wrap { table.stack {
                thead { tr { th { "Name" } th { "Kind" } th { "Deleted" } th { "Expires" } th { "By" } th { "Restore" } } }
                tbody { @for d in &entries {
                    tr {
                        td data-label="Name" { (d.namespace.join(".")) "." (d.name) }
                        td data-label="Kind" { (d.kind) @if d.purge_requested { " (purge)" } }
                        td data-label="Deleted" { (layout::time(&d.deleted_at)) }
                        td data-label="Expires" { (layout::time(&d.expires_at)) }
                        td data-label="By" { (d.deleted_by.as_deref().unwrap_or("")) }
                        td data-label="Restore" {
                            form method="post" action={(BASE) "/warehouses/" (w.id) "/deleted/" (d.table_id) "/undrop"} {
                                (csrf(&user))
                                label for={"rn-" (d.table_id)} { "New name (optional)" }
                                input id={"rn-" (d.table_id)} type="text" name="new_name";
                                button.secondary type="submit" { "Undrop" }
                            }
                        }
                    }
                } }
            } }
        }
    };
    Ok(Html(
        page("Deleted tables", &user, "warehouses", body).into_string(),
    ))
}

#[derive(Deserialize)]
pub struct UndropForm {
    #[serde(default)]
    new_name: String,
}

pub async fn undrop(
    State(state): State<ConsoleState>,
    Path((id, table_id)): Path<(Uuid, Uuid)>,
    Change { user, form }: Change<UndropForm>,
) -> Result<Response> {
    let new_name = Some(form.new_name.trim()).filter(|n| !n.is_empty());
    let restored = state
        .services
        .undrop_table(&user.principal, id, table_id, new_name)
        .await?;
    Ok(Redirect::to(&ns_href(id, &restored.namespace)).into_response())
}
