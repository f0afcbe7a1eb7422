//! Commit requirements checked against a table's current metadata. The messages name the
//! requirement that failed in the words of the Java reference implementation
//! (`UpdateRequirement`), which clients and their tests match on.

use iceberg::spec::TableMetadata;
use iceberg::TableRequirement;
use serde_json::Value;

/// `refs` is the `refs` object of the same metadata's JSON (the crate exposes a ref's
/// snapshot but not whether it is a branch or a tag).
pub(crate) fn check(
    req: &TableRequirement,
    m: &TableMetadata,
    refs: Option<&Value>,
) -> Result<(), String> {
    let changed = |what: &str, expected: String, found: String| {
        Err(format!(
            "Requirement failed: {what} changed: expected id {expected} != {found}"
        ))
    };
    match req {
        TableRequirement::NotExist => Err("Requirement failed: table already exists".into()),
        TableRequirement::UuidMatch { uuid } => {
            if *uuid == m.uuid() {
                Ok(())
            } else {
                Err(format!(
                    "Requirement failed: UUID does not match: expected {} != {uuid}",
                    m.uuid()
                ))
            }
        }
        TableRequirement::RefSnapshotIdMatch { r#ref, snapshot_id } => {
            let current = refs.and_then(|r| r.get(r#ref));
            match (current, snapshot_id) {
                (Some(cur), expected) => {
                    let kind = if cur.get("type").and_then(Value::as_str) == Some("tag") {
                        "tag"
                    } else {
                        "branch"
                    };
                    let found = cur.get("snapshot-id").and_then(Value::as_i64);
                    match expected {
                        None => Err(
                            format!("Requirement failed: {kind} {ref} was created concurrently", ref = r#ref),
                        ),
                        Some(e) if Some(*e) != found => Err(format!(
                            "Requirement failed: {kind} {ref} has changed: expected id {e} != {}",
                            found.map_or("null".to_string(), |f| f.to_string()),
                            ref = r#ref
                        )),
                        Some(_) => Ok(()),
                    }
                }
                (None, Some(e)) => Err(
                    format!("Requirement failed: branch or tag {ref} is missing, expected {e}", ref = r#ref),
                ),
                (None, None) => Ok(()),
            }
        }
        TableRequirement::LastAssignedFieldIdMatch {
            last_assigned_field_id: e,
        } if *e != m.last_column_id() => changed(
            "last assigned field id",
            e.to_string(),
            m.last_column_id().to_string(),
        ),
        TableRequirement::CurrentSchemaIdMatch {
            current_schema_id: e,
        } if *e != m.current_schema_id() => changed(
            "current schema",
            e.to_string(),
            m.current_schema_id().to_string(),
        ),
        TableRequirement::LastAssignedPartitionIdMatch {
            last_assigned_partition_id: e,
        } if *e != m.last_partition_id() => changed(
            "last assigned partition id",
            e.to_string(),
            m.last_partition_id().to_string(),
        ),
        TableRequirement::DefaultSpecIdMatch { default_spec_id: e }
            if *e != m.default_partition_spec_id() =>
        {
            changed(
                "default partition spec",
                e.to_string(),
                m.default_partition_spec_id().to_string(),
            )
        }
        TableRequirement::DefaultSortOrderIdMatch {
            default_sort_order_id: e,
        } if *e != m.default_sort_order_id() => changed(
            "default sort order",
            e.to_string(),
            m.default_sort_order_id().to_string(),
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn metadata() -> TableMetadata {
        serde_json::from_value(json!({
            "format-version": 2, "table-uuid": "9c12d441-03fe-4693-9a96-a0705ddf69c1",
            "location": "s3://b/t", "last-sequence-number": 1, "last-updated-ms": 1, "last-column-id": 1,
            "current-schema-id": 0, "schemas": [{"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "x", "required": true, "type": "long"}]}],
            "default-spec-id": 0, "partition-specs": [{"spec-id": 0, "fields": []}], "last-partition-id": 999,
            "default-sort-order-id": 0, "sort-orders": [{"order-id": 0, "fields": []}],
            "current-snapshot-id": 2,
            "snapshots": [{"snapshot-id": 2, "sequence-number": 1, "timestamp-ms": 1, "manifest-list": "s3://b/t/m.avro", "summary": {"operation": "append"}, "schema-id": 0}],
            "refs": {"main": {"snapshot-id": 2, "type": "branch"}, "v1": {"snapshot-id": 2, "type": "tag"}}
        }))
        .unwrap()
    }

    #[test]
    fn messages_follow_the_java_wording() {
        let m = metadata();
        let refs = json!({"main": {"snapshot-id": 2, "type": "branch"}, "v1": {"snapshot-id": 2, "type": "tag"}});
        let msg = |r: TableRequirement| check(&r, &m, Some(&refs)).unwrap_err();
        assert_eq!(
            msg(TableRequirement::NotExist),
            "Requirement failed: table already exists"
        );
        assert_eq!(
            msg(TableRequirement::RefSnapshotIdMatch {
                r#ref: "main".into(),
                snapshot_id: Some(1)
            }),
            "Requirement failed: branch main has changed: expected id 1 != 2"
        );
        assert_eq!(
            msg(TableRequirement::RefSnapshotIdMatch {
                r#ref: "v1".into(),
                snapshot_id: None
            }),
            "Requirement failed: tag v1 was created concurrently"
        );
        assert_eq!(
            msg(TableRequirement::RefSnapshotIdMatch {
                r#ref: "dev".into(),
                snapshot_id: Some(5)
            }),
            "Requirement failed: branch or tag dev is missing, expected 5"
        );
        assert_eq!(
            msg(TableRequirement::CurrentSchemaIdMatch {
                current_schema_id: 3
            }),
            "Requirement failed: current schema changed: expected id 3 != 0"
        );
        assert_eq!(
            msg(TableRequirement::LastAssignedFieldIdMatch {
                last_assigned_field_id: 4
            }),
            "Requirement failed: last assigned field id changed: expected id 4 != 1"
        );
        assert_eq!(
            msg(TableRequirement::DefaultSpecIdMatch { default_spec_id: 1 }),
            "Requirement failed: default partition spec changed: expected id 1 != 0"
        );
        assert_eq!(
            msg(TableRequirement::DefaultSortOrderIdMatch {
                default_sort_order_id: 1
            }),
            "Requirement failed: default sort order changed: expected id 1 != 0"
        );
        assert_eq!(
            msg(TableRequirement::LastAssignedPartitionIdMatch {
                last_assigned_partition_id: 1000
            }),
            "Requirement failed: last assigned partition id changed: expected id 1000 != 999"
        );
        assert!(check(
            &TableRequirement::RefSnapshotIdMatch {
                r#ref: "main".into(),
                snapshot_id: Some(2)
            },
            &m,
            Some(&refs)
        )
        .is_ok());
        assert!(check(
            &TableRequirement::RefSnapshotIdMatch {
                r#ref: "dev".into(),
                snapshot_id: None
            },
            &m,
            Some(&refs)
        )
        .is_ok());
        assert!(check(
            &TableRequirement::UuidMatch { uuid: m.uuid() },
            &m,
            Some(&refs)
        )
        .is_ok());
    }
}
