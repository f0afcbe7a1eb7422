//! Partition specs the reference implementation accepts but the `iceberg` crate's builder
//! refuses. Java binds a spec from its JSON through `PartitionSpec.Builder.add`, which neither
//! rejects two time transforms on one column (`day(ts)` and then `hour(ts)`) nor a field named
//! like its own source column when the transform is not `identity` (the `void` that replaces a
//! removed field of a v1 table keeps its name). The crate checks both on every spec it binds,
//! including the default spec in every `build()`.
//!
//! So a commit works on a disguised copy: such fields get a stand-in the crate accepts (a
//! time transform after the first on its column becomes a reserved `bucket[N]`; a field named
//! like its source column gets a marked name), and the metadata is restored before it is
//! written. The stand-ins are a pure function of each field, so specs compare equal (and
//! partition field ids are reused) exactly as they would undisguised.

use std::collections::{HashMap, HashSet};

use iceberg::spec::UnboundPartitionSpec;
use serde_json::Value;

use crate::{Result, ServiceError};

/// `bucket[N]` counts no real table uses: N = BASE + the index of the time transform.
const BUCKET_BASE: u64 = 2_147_000_000;
const TIME: [&str; 4] = ["year", "month", "day", "hour"];
/// Appended to a name: cannot occur in a real partition name written by any client.
const NAME_MARK: &str = "\u{0}sluice-source-name";

/// Field id → full column names, over every schema the commit may bind a spec against.
pub(crate) type SourceNames = HashMap<i64, HashSet<String>>;

pub(crate) fn source_names(schemas: &[Value]) -> SourceNames {
    fn walk(fields: &Value, prefix: &str, out: &mut SourceNames) {
        for f in fields.as_array().into_iter().flatten() {
            let (Some(id), Some(name)) = (
                f.get("id").and_then(Value::as_i64),
                f.get("name").and_then(Value::as_str),
            ) else {
                continue;
            };
            let full = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}.{name}")
            };
            out.entry(id).or_default().insert(full.clone());
            if let Some(inner) = f.get("type").and_then(|t| t.get("fields")) {
                walk(inner, &full, out);
            }
        }
    }
    let mut out = SourceNames::new();
    for s in schemas {
        walk(s.get("fields").unwrap_or(&Value::Null), "", &mut out);
    }
    out
}

/// Disguises one spec's `fields` array (see the module docs).
pub(crate) fn disguise_fields(fields: &mut Value, names: &SourceNames) {
    let mut timed = HashSet::new();
    for f in fields.as_array_mut().into_iter().flatten() {
        let source = f.get("source-id").and_then(Value::as_i64).unwrap_or(-1);
        let Some(transform) = f
            .get("transform")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            continue;
        };
        if let Some(i) = TIME.iter().position(|t| *t == transform) {
            if !timed.insert(source) {
                f["transform"] = Value::String(format!("bucket[{}]", BUCKET_BASE + i as u64));
            }
        }
        if transform != "identity" {
            if let Some(name) = f.get("name").and_then(Value::as_str) {
                if names.get(&source).is_some_and(|n| n.contains(name)) {
                    f["name"] = Value::String(format!("{name}{NAME_MARK}"));
                }
            }
        }
    }
}

/// Undoes [`disguise_fields`].
pub(crate) fn restore_fields(fields: &mut Value) {
    for f in fields.as_array_mut().into_iter().flatten() {
        if let Some(t) = f.get("transform").and_then(Value::as_str) {
            let original = t
                .strip_prefix("bucket[")
                .and_then(|n| n.strip_suffix(']'))
                .and_then(|n| n.parse::<u64>().ok())
                .and_then(|n| n.checked_sub(BUCKET_BASE))
                .and_then(|i| TIME.get(i as usize));
            if let Some(original) = original {
                f["transform"] = Value::String(original.to_string());
            }
        }
        if let Some(name) = f
            .get("name")
            .and_then(Value::as_str)
            .and_then(|n| n.strip_suffix(NAME_MARK))
        {
            f["name"] = Value::String(name.to_string());
        }
    }
}

/// Disguises a spec a commit adds.
pub(crate) fn disguise_spec(
    spec: UnboundPartitionSpec,
    names: &SourceNames,
) -> Result<UnboundPartitionSpec> {
    let mut v = serde_json::to_value(&spec).map_err(ServiceError::internal)?;
    if let Some(fields) = v.get_mut("fields") {
        disguise_fields(fields, names);
    }
    serde_json::from_value(v).map_err(ServiceError::internal)
}

/// Disguises every spec of serialized table metadata.
pub(crate) fn disguise_metadata(v: &mut Value, names: &SourceNames) {
    if let Some(specs) = v.get_mut("partition-specs").and_then(Value::as_array_mut) {
        for s in specs {
            if let Some(fields) = s.get_mut("fields") {
                disguise_fields(fields, names);
            }
        }
    }
    if let Some(fields) = v.get_mut("partition-spec") {
        disguise_fields(fields, names);
    }
}

/// Restores every spec of serialized table metadata.
pub(crate) fn restore_metadata(v: &mut Value) {
    if let Some(specs) = v.get_mut("partition-specs").and_then(Value::as_array_mut) {
        for s in specs {
            if let Some(fields) = s.get_mut("fields") {
                restore_fields(fields);
            }
        }
    }
    if let Some(fields) = v.get_mut("partition-spec") {
        restore_fields(fields);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn disguise_and_restore_round_trip() {
        let names = source_names(&[json!({"fields": [
            {"id": 1, "name": "id", "type": "long"},
            {"id": 2, "name": "ts", "type": "timestamp"},
            {"id": 3, "name": "s", "type": {"type": "struct", "fields": [{"id": 4, "name": "x", "type": "int"}]}}
        ]})]);
        assert!(names[&4].contains("s.x"));
        let original = json!([
            {"source-id": 1, "field-id": 1000, "name": "id", "transform": "void"},
            {"source-id": 2, "field-id": 1001, "name": "ts_day", "transform": "day"},
            {"source-id": 2, "field-id": 1002, "name": "ts_hour", "transform": "hour"},
            {"source-id": 1, "field-id": 1003, "name": "id_b", "transform": "bucket[16]"},
            {"source-id": 4, "field-id": 1004, "name": "s.x", "transform": "identity"}
        ]);
        let mut v = original.clone();
        disguise_fields(&mut v, &names);
        assert_ne!(v[0]["name"], "id");
        assert_eq!(v[1]["transform"], "day");
        assert_eq!(v[2]["transform"], format!("bucket[{}]", BUCKET_BASE + 3));
        assert_eq!(v[3], original[3]);
        assert_eq!(v[4], original[4]);
        // Deterministic: the same spec disguises the same way.
        let mut again = original.clone();
        disguise_fields(&mut again, &names);
        assert_eq!(v, again);
        restore_fields(&mut v);
        assert_eq!(v, original);
    }
}
