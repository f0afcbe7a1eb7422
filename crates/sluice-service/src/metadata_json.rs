//! The one place table metadata becomes JSON (the metadata file and the database copy that
//! loads return). The `iceberg` crate keeps schemas, specs, sort orders and snapshots in hash
//! maps and serializes them in hash order, so the same metadata would come out differently on
//! every write and clients would list an OVERWRITE before the APPEND it followed. Here every
//! list is put back in the order the Java and Python implementations write it (the order of
//! addition: ascending ids, snapshots by sequence number then time), and object keys are
//! sorted, so equal metadata is always byte-identical.

use iceberg::spec::TableMetadata;
use serde_json::{Number, Value};

use crate::{Result, ServiceError};

pub(crate) fn metadata_json(metadata: &TableMetadata) -> Result<String> {
    let mut v = serde_json::to_value(metadata).map_err(ServiceError::internal)?;
    crate::spec_compat::restore_metadata(&mut v);
    normalize(&mut v);
    serde_json::to_string(&v).map_err(ServiceError::internal)
}

fn int(v: &Value, key: &str) -> i64 {
    v.get(key).and_then(Value::as_i64).unwrap_or(0)
}

fn sort_by_keys(v: &mut Value, list: &str, keys: &[&str]) {
    if let Some(items) = v.get_mut(list).and_then(Value::as_array_mut) {
        items.sort_by_cached_key(|item| keys.iter().map(|k| int(item, k)).collect::<Vec<_>>());
    }
}

/// Puts the lists of serialized table metadata in written order and fixes float defaults.
/// (`snapshot-log` and `metadata-log` are lists in the crate already, in order.)
pub(crate) fn normalize(v: &mut Value) {
    sort_by_keys(v, "schemas", &["schema-id"]);
    sort_by_keys(v, "partition-specs", &["spec-id"]);
    sort_by_keys(v, "sort-orders", &["order-id"]);
    // v1 snapshots have no sequence number: then time decides, as it did when they were added.
    sort_by_keys(
        v,
        "snapshots",
        &["sequence-number", "timestamp-ms", "snapshot-id"],
    );
    sort_by_keys(v, "statistics", &["snapshot-id"]);
    sort_by_keys(v, "partition-statistics", &["snapshot-id"]);
    if let Some(keys) = v.get_mut("encryption-keys").and_then(Value::as_array_mut) {
        keys.sort_by(|a, b| {
            a.get("key-id")
                .and_then(Value::as_str)
                .cmp(&b.get("key-id").and_then(Value::as_str))
        });
    }
    if let Some(schemas) = v.get_mut("schemas").and_then(Value::as_array_mut) {
        schemas.iter_mut().for_each(normalize_schema);
    }
    if let Some(schema) = v.get_mut("schema") {
        normalize_schema(schema);
    }
}

fn normalize_schema(schema: &mut Value) {
    if let Some(ids) = schema
        .get_mut("identifier-field-ids")
        .and_then(Value::as_array_mut)
    {
        ids.sort_by_key(|i| i.as_i64().unwrap_or(0));
    }
    normalize_type(schema);
}

/// Walks a struct/list/map type for `float` fields with defaults.
fn normalize_type(t: &mut Value) {
    let Some(obj) = t.as_object_mut() else { return };
    if let Some(fields) = obj.get_mut("fields").and_then(Value::as_array_mut) {
        for f in fields {
            if f.get("type").and_then(Value::as_str) == Some("float") {
                for key in ["initial-default", "write-default"] {
                    if let Some(d) = f.get_mut(key) {
                        shortest_f32(d);
                    }
                }
            }
            if let Some(inner) = f.get_mut("type") {
                normalize_type(inner);
            }
        }
    }
    for key in ["element", "key", "value"] {
        if let Some(inner) = obj.get_mut(key) {
            normalize_type(inner);
        }
    }
}

/// A `float` default widened to f64 (22.27f32 → 22.270000457763672) written as the shortest
/// decimal that reads back as the same f32 (22.27), as the Java and Python writers do.
fn shortest_f32(v: &mut Value) {
    let Some(x) = v.as_f64() else { return };
    let f = x as f32;
    if !f.is_finite() {
        return;
    }
    if let Some(n) = f.to_string().parse::<f64>().ok().and_then(Number::from_f64) {
        *v = Value::Number(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_come_out_in_written_order() {
        let mut v = json!({
            "schemas": [{"schema-id": 5, "fields": []}, {"schema-id": 0, "fields": []}, {"schema-id": 2, "fields": [], "identifier-field-ids": [3, 1]}],
            "partition-specs": [{"spec-id": 1}, {"spec-id": 0}],
            "sort-orders": [{"order-id": 2}, {"order-id": 1}, {"order-id": 0}],
            "snapshots": [
                {"snapshot-id": 9, "sequence-number": 3, "timestamp-ms": 30},
                {"snapshot-id": 7, "sequence-number": 1, "timestamp-ms": 10},
                {"snapshot-id": 8, "sequence-number": 2, "timestamp-ms": 20}
            ],
        });
        normalize(&mut v);
        let ids = |list: &str, key: &str| {
            v[list]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i[key].as_i64().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids("schemas", "schema-id"), [0, 2, 5]);
        assert_eq!(ids("partition-specs", "spec-id"), [0, 1]);
        assert_eq!(ids("sort-orders", "order-id"), [0, 1, 2]);
        assert_eq!(ids("snapshots", "snapshot-id"), [7, 8, 9]);
        assert_eq!(v["schemas"][1]["identifier-field-ids"], json!([1, 3]));
    }

    #[test]
    fn float_defaults_are_the_shortest_f32_text() {
        let widened = 22.27f32 as f64;
        let mut v = json!({"schemas": [{"schema-id": 0, "type": "struct", "fields": [
            {"id": 1, "name": "f", "type": "float", "required": false, "initial-default": widened, "write-default": widened},
            {"id": 2, "name": "d", "type": "double", "required": false, "initial-default": widened},
            {"id": 3, "name": "s", "type": {"type": "struct", "fields": [
                {"id": 4, "name": "g", "type": "float", "required": false, "write-default": 0.1f32 as f64}
            ]}, "required": false},
        ]}]});
        normalize(&mut v);
        let text = serde_json::to_string(&v).unwrap();
        assert!(text.contains(r#""initial-default":22.27,"#), "{text}");
        assert!(text.contains(r#""write-default":22.27}"#), "{text}");
        assert!(text.contains(r#""write-default":0.1}"#), "{text}");
        // Doubles are left as they are.
        assert!(text.contains("22.270000457763672"), "{text}");
    }
}
