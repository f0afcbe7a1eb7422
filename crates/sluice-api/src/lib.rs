//! The Sluice management API on the wire: every request and response body of
//! `/management/v1` (warehouses, deleted tables, identity, external principals), the error
//! envelope, and the policy statement language as JSON. The server deserializes requests and
//! serializes responses with these types, the SDK and the CLI do the reverse, and the served
//! OpenAPI document is derived from them (`utoipa::ToSchema`).
//!
//! Serde types only: no I/O, no HTTP framework, no database. Unknown response fields are
//! ignored on input so a newer server does not break an older client; requests refuse
//! unknown fields.
//!
//! Iceberg REST catalog bodies are not here: the server takes them from the `iceberg` crate
//! (`sluice-service::rest`) and the SDK keeps the few it reads in `sluice_client::types`.

pub mod error;
pub mod identity;
pub mod management;
pub mod policy;

pub use error::{ErrorBody, ErrorModel};
pub use identity::*;
pub use management::*;
pub use policy::{Effect, Statement, StatementRef};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn effective_policy_has_one_spelling() {
        let p = EffectivePolicy {
            policy: "read".into(),
            via_group: Some("analysts".into()),
        };
        assert_eq!(
            serde_json::to_value(p).unwrap(),
            json!({"policy": "read", "via-group": "analysts"})
        );
        let direct = EffectivePolicy {
            policy: "read".into(),
            via_group: None,
        };
        assert_eq!(
            serde_json::to_value(direct).unwrap(),
            json!({"policy": "read"})
        );
    }

    #[test]
    fn new_key_secret_is_written_only_in_its_own_body() {
        let k: NewAccessKey = serde_json::from_value(json!({
            "access-key-id": "AKIATESTKEY000000001",
            "secret-access-key": "s3cr3t",
            "user": "alice",
        }))
        .unwrap();
        assert!(!format!("{k:?}").contains("s3cr3t"));
        assert_eq!(
            serde_json::to_value(k).unwrap()["secret-access-key"],
            "s3cr3t"
        );
    }

    #[test]
    fn requests_refuse_unknown_fields_and_omit_absent_ones() {
        let req = CreateWarehouseRequest::new("wh", json!({"type": "file", "root": "/d"}));
        assert_eq!(
            serde_json::to_value(req).unwrap(),
            json!({"warehouse-name": "wh", "storage-profile": {"type": "file", "root": "/d"}})
        );
        let err = serde_json::from_value::<CreateWarehouseRequest>(json!({
            "warehouse-name": "wh", "storage-profile": {}, "colour": "red"
        }))
        .unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }

    #[test]
    fn statement_action_is_one_or_many() {
        let one: Statement = serde_json::from_value(
            json!({"effect": "Allow", "action": "catalog:ReadTable", "resource": "*"}),
        )
        .unwrap();
        assert_eq!(one, Statement::allow(["catalog:ReadTable"], "*"));
        assert_eq!(
            serde_json::to_value(one).unwrap(),
            json!({"effect": "allow", "action": ["catalog:ReadTable"], "resource": "*"})
        );
    }
}
