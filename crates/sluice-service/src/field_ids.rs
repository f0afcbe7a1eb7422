//! Field ids of a new table. The `iceberg` crate's `TableMetadataBuilder::new` always
//! renumbers the schema, and numbers a map's key struct before the map's value id; the Java
//! (`TypeUtil.assignFreshIds`) and Python (`assign_fresh_schema_ids`) implementations number
//! a map's key and value ids first and recurse afterwards, and their clients send schemas with
//! ids already assigned that way. So after the crate has built the metadata, its ids are
//! replaced: by the client's own ids when they are usable (all positive), otherwise by fresh
//! ids in the reference implementation's order. Partition and sort-order source ids and the
//! identifier fields follow.

use std::collections::HashMap;

use serde_json::Value;

/// Every id a schema assigns (fields, list elements, map keys and values).
fn collect_ids(t: &Value, out: &mut Vec<i64>) {
    if let Some(fields) = t.get("fields").and_then(Value::as_array) {
        for f in fields {
            out.extend(f.get("id").and_then(Value::as_i64));
            if let Some(inner) = f.get("type") {
                collect_ids(inner, out);
            }
        }
    }
    for (id, inner) in [
        ("element-id", "element"),
        ("key-id", "key"),
        ("value-id", "value"),
    ] {
        out.extend(t.get(id).and_then(Value::as_i64));
        if let Some(inner) = t.get(inner) {
            collect_ids(inner, out);
        }
    }
}

/// The client's ids are kept when every one is positive and none repeats.
pub(crate) fn client_ids_usable(schema: &Value) -> bool {
    let mut ids = Vec::new();
    collect_ids(schema, &mut ids);
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    ids.len() == n && ids.iter().all(|i| *i > 0)
}

/// Renumbers a schema (or nested type) from `next` in the reference order: all fields of a
/// struct first, then each field's type; a list's element id, then the element; a map's key
/// and value ids, then the key, then the value.
pub(crate) fn assign_reference_order(t: &mut Value, next: &mut i64) {
    if let Some(fields) = t.get_mut("fields").and_then(Value::as_array_mut) {
        for f in fields.iter_mut() {
            f["id"] = Value::from(*next);
            *next += 1;
        }
        for f in fields.iter_mut() {
            if let Some(inner) = f.get_mut("type") {
                assign_reference_order(inner, next);
            }
        }
        return;
    }
    match t.get("type").and_then(Value::as_str) {
        Some("list") => {
            t["element-id"] = Value::from(*next);
            *next += 1;
            if let Some(e) = t.get_mut("element") {
                assign_reference_order(e, next);
            }
        }
        Some("map") => {
            t["key-id"] = Value::from(*next);
            t["value-id"] = Value::from(*next + 1);
            *next += 2;
            if let Some(k) = t.get_mut("key") {
                assign_reference_order(k, next);
            }
            if let Some(v) = t.get_mut("value") {
                assign_reference_order(v, next);
            }
        }
        _ => {}
    }
}

/// Pairs the ids of two schemas of the same shape: `from` id → `to` id.
fn pair_ids(from: &Value, to: &Value, map: &mut HashMap<i64, i64>) {
    if let (Some(a), Some(b)) = (
        from.get("fields").and_then(Value::as_array),
        to.get("fields").and_then(Value::as_array),
    ) {
        for (fa, fb) in a.iter().zip(b) {
            if let (Some(x), Some(y)) = (
                fa.get("id").and_then(Value::as_i64),
                fb.get("id").and_then(Value::as_i64),
            ) {
                map.insert(x, y);
            }
            if let (Some(ta), Some(tb)) = (fa.get("type"), fb.get("type")) {
                pair_ids(ta, tb, map);
            }
        }
    }
    for (id, inner) in [
        ("element-id", "element"),
        ("key-id", "key"),
        ("value-id", "value"),
    ] {
        if let (Some(x), Some(y)) = (
            from.get(id).and_then(Value::as_i64),
            to.get(id).and_then(Value::as_i64),
        ) {
            map.insert(x, y);
        }
        if let (Some(ia), Some(ib)) = (from.get(inner), to.get(inner)) {
            pair_ids(ia, ib, map);
        }
    }
}

fn remap_sources(list: Option<&mut Value>, map: &HashMap<i64, i64>) {
    for item in list.and_then(Value::as_array_mut).into_iter().flatten() {
        let fields = if item.is_array() {
            Some(item)
        } else {
            item.get_mut("fields")
        };
        for f in fields.and_then(Value::as_array_mut).into_iter().flatten() {
            if let Some(new) = f
                .get("source-id")
                .and_then(Value::as_i64)
                .and_then(|s| map.get(&s))
            {
                f["source-id"] = Value::from(*new);
            }
        }
    }
}

/// Rewrites the metadata of a table just built by the crate (one schema) so that its ids are
/// the client's (`requested`, the schema as the client sent it) or the reference order's.
pub(crate) fn apply_to_new_metadata(metadata: &mut Value, requested: &Value) {
    let Some(built) = metadata.get("schemas").and_then(|s| s.get(0)).cloned() else {
        return;
    };
    let mut wanted = if client_ids_usable(requested) {
        let mut w = requested.clone();
        w["schema-id"] = built.get("schema-id").cloned().unwrap_or(Value::from(0));
        w
    } else {
        let mut w = built.clone();
        let mut next = 1;
        assign_reference_order(&mut w, &mut next);
        w
    };
    let mut map = HashMap::new();
    pair_ids(&built, &wanted, &mut map);
    let identifiers: Vec<Value> = built
        .get("identifier-field-ids")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| {
            i.as_i64()
                .and_then(|i| map.get(&i))
                .map(|i| Value::from(*i))
        })
        .collect();
    if identifiers.is_empty() {
        if let Some(o) = wanted.as_object_mut() {
            o.remove("identifier-field-ids");
        }
    } else {
        wanted["identifier-field-ids"] = Value::Array(identifiers);
    }
    let mut all = Vec::new();
    collect_ids(&wanted, &mut all);
    metadata["schemas"] = Value::Array(vec![wanted.clone()]);
    if metadata.get("schema").is_some() {
        metadata["schema"] = wanted;
    }
    metadata["last-column-id"] = Value::from(all.into_iter().max().unwrap_or(0));
    remap_sources(metadata.get_mut("partition-specs"), &map);
    if let Some(v1) = metadata.get_mut("partition-spec") {
        for f in v1.as_array_mut().into_iter().flatten() {
            if let Some(new) = f
                .get("source-id")
                .and_then(Value::as_i64)
                .and_then(|s| map.get(&s))
            {
                f["source-id"] = Value::from(*new);
            }
        }
    }
    remap_sources(metadata.get_mut("sort-orders"), &map);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// struct { a: long, m: map<struct{k1,k2}, struct{v}>, l: list<struct{e}> }
    fn schema(ids: [i64; 11]) -> Value {
        json!({"type": "struct", "schema-id": 0, "fields": [
            {"id": ids[0], "name": "a", "required": true, "type": "long"},
            {"id": ids[1], "name": "m", "required": false, "type": {
                "type": "map", "key-id": ids[2], "value-id": ids[3], "value-required": false,
                "key": {"type": "struct", "fields": [
                    {"id": ids[4], "name": "k1", "required": true, "type": "int"},
                    {"id": ids[5], "name": "k2", "required": true, "type": "int"}]},
                "value": {"type": "struct", "fields": [{"id": ids[6], "name": "v", "required": false, "type": "string"}]}}},
            {"id": ids[7], "name": "l", "required": false, "type": {
                "type": "list", "element-id": ids[8], "element-required": false,
                "element": {"type": "struct", "fields": [{"id": ids[9], "name": "e", "required": false, "type": "int"}]}}},
            {"id": ids[10], "name": "z", "required": false, "type": "int"}
        ]})
    }

    #[test]
    fn reference_order_numbers_map_key_and_value_before_their_contents() {
        let mut s = schema([0; 11]);
        let mut next = 1;
        assign_reference_order(&mut s, &mut next);
        // Top level a, m, l, z = 1..4; then m's key 5 and value 6, key fields 7, 8, value
        // field 9; then l's element 10 and its field 11.
        assert_eq!(s, schema([1, 2, 5, 6, 7, 8, 9, 3, 10, 11, 4]));
    }

    #[test]
    fn client_ids_are_kept_when_usable_and_sources_follow() {
        // What the crate produced (its own order), and what the client sent.
        let built = schema([1, 2, 5, 8, 6, 7, 9, 3, 10, 11, 4]);
        let client = schema([10, 20, 21, 22, 23, 24, 25, 30, 31, 32, 40]);
        let mut m = json!({"schemas": [built], "last-column-id": 11,
            "partition-specs": [{"spec-id": 0, "fields": [{"source-id": 4, "field-id": 1000, "name": "z", "transform": "identity"}]}],
            "sort-orders": [{"order-id": 1, "fields": [{"source-id": 1, "transform": "identity", "direction": "asc", "null-order": "nulls-first"}]}]});
        apply_to_new_metadata(&mut m, &client);
        assert_eq!(m["schemas"][0], client);
        assert_eq!(m["last-column-id"], 40);
        assert_eq!(m["partition-specs"][0]["fields"][0]["source-id"], 40);
        assert_eq!(m["sort-orders"][0]["fields"][0]["source-id"], 10);

        // Unusable ids (zeros): fresh ids in the reference order.
        let built = schema([1, 2, 5, 8, 6, 7, 9, 3, 10, 11, 4]);
        let mut m = json!({"schemas": [built], "last-column-id": 11, "partition-specs": [], "sort-orders": []});
        apply_to_new_metadata(&mut m, &schema([0; 11]));
        assert_eq!(m["schemas"][0], schema([1, 2, 5, 6, 7, 8, 9, 3, 10, 11, 4]));
        assert!(!client_ids_usable(&schema([
            1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
        ])));
    }
}
