//! Downscoped tokens for one table: the warehouse's access token exchanged at Google's STS
//! (RFC 8693 token exchange) with a Credential Access Boundary that limits it to the
//! table's objects.
//! <https://cloud.google.com/iam/docs/downscoping-short-lived-credentials>

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use sluice_core::Secret;

use crate::delegation::{AccessLevel, TableCredentials};
use crate::error::{error_chain, Result, StorageError};
use crate::gcs::access::GcsAccess;
use crate::gcs::token::describe_error;
use crate::gcs::GcsProfile;

const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// The object key prefix of `table_location` inside the profile's bucket, without
/// surrounding '/'; `None` for anything else, including the bucket root.
fn table_key<'a>(profile: &GcsProfile, table_location: &'a str) -> Option<&'a str> {
    let key = table_location
        .strip_prefix("gs://")?
        .strip_prefix(profile.bucket.as_str())?
        .strip_prefix('/')?
        .trim_matches('/');
    (!key.is_empty()).then_some(key)
}

/// A CEL string literal: the prefix sits inside single quotes, so quotes and backslashes
/// in object names must not end the literal or start an escape.
fn cel_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The Credential Access Boundary for one table: the warehouse's bucket, with
/// `roles/storage.objectViewer` (read) or `roles/storage.objectAdmin` (read-write), limited
/// to objects below the table's prefix — and to listings of that prefix, because
/// `objects.list` is checked against the bucket, where only the requested list prefix
/// tells tables apart.
///
/// For a location outside the bucket the boundary allows nothing (an empty-prefix
/// condition that no object matches is not possible, so the rule's condition is `false`),
/// so a caller's mistake can never widen access.
pub fn access_boundary(profile: &GcsProfile, table_location: &str, level: AccessLevel) -> Value {
    let role = match level {
        AccessLevel::Read => "inRole:roles/storage.objectViewer",
        AccessLevel::ReadWrite => "inRole:roles/storage.objectAdmin",
    };
    let expression = match table_key(profile, table_location) {
        Some(key) => format!(
            "resource.name.startsWith({}) || api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith({})",
            cel_quote(&format!("projects/_/buckets/{}/objects/{key}/", profile.bucket)),
            cel_quote(&format!("{key}/")),
        ),
        None => "false".to_string(),
    };
    json!({
        "accessBoundary": {
            "accessBoundaryRules": [{
                "availableResource": format!("//storage.googleapis.com/projects/_/buckets/{}", profile.bucket),
                "availablePermissions": [role],
                "availabilityCondition": {
                    "title": "sluice-table",
                    "expression": expression,
                },
            }]
        }
    })
}

#[derive(Deserialize)]
struct ExchangeAnswer {
    access_token: Secret,
    expires_in: Option<i64>,
}

/// A downscoped token for the files below `table_location`.
pub(crate) async fn vend(
    profile: &GcsProfile,
    access: &GcsAccess,
    table_location: &str,
    level: AccessLevel,
) -> Result<TableCredentials> {
    if table_key(profile, table_location).is_none() {
        return Err(StorageError::Invalid(format!(
            "cannot vend credentials for '{table_location}': not a table location in bucket '{}'",
            profile.bucket
        )));
    }
    let source = access.tokens.token().await?;
    let boundary = access_boundary(profile, table_location, level);
    let form = [
        ("grant_type", TOKEN_EXCHANGE_GRANT),
        ("subject_token_type", ACCESS_TOKEN_TYPE),
        ("requested_token_type", ACCESS_TOKEN_TYPE),
        ("subject_token", source.token.expose()),
        ("options", &boundary.to_string()),
    ];
    let url = &access.sts_endpoint;
    let fail = |m: String| StorageError::Sts(format!("token exchange at {url}: {m}"));
    let resp = access
        .tokens
        .http()
        .post(url)
        .form(&form)
        .send()
        .await
        .map_err(|e| fail(error_chain(&e)))?;
    let status = resp.status();
    let body = resp.text().await.map_err(|e| fail(error_chain(&e)))?;
    if !status.is_success() {
        return Err(fail(describe_error(status, &body)));
    }
    let ans: ExchangeAnswer =
        serde_json::from_str(&body).map_err(|e| fail(format!("unexpected answer: {e}")))?;
    if ans.access_token.is_empty() {
        return Err(fail("the answer has an empty access_token".into()));
    }
    // A downscoped token lives as long as its source token; STS may say so explicitly.
    let expiration = match ans.expires_in {
        Some(s) if s > 0 => (Utc::now() + chrono::Duration::seconds(s)).min(source.expires_at),
        _ => source.expires_at,
    };
    Ok(TableCredentials {
        config: vended_config(access, &ans.access_token, expiration),
        expiration,
    })
}

/// The client properties Iceberg's GCS FileIOs read (Java `GCPProperties`, PyIceberg).
fn vended_config(
    access: &GcsAccess,
    token: &Secret,
    expiration: DateTime<Utc>,
) -> HashMap<String, String> {
    let mut cfg = HashMap::from([
        ("gcs.oauth2.token".to_string(), token.expose().to_string()),
        (
            "gcs.oauth2.token-expires-at".to_string(),
            expiration.timestamp_millis().to_string(),
        ),
    ]);
    if let Some(p) = access.tokens.project_id() {
        cfg.insert("gcs.project-id".into(), p.to_string());
    }
    if let Some(ep) = &access.emulator {
        cfg.insert("gcs.service.host".into(), ep.clone());
    }
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundary_per_level_and_prefix() {
        let p = GcsProfile::new("bkt", Some("wh"));
        let b = access_boundary(&p, "gs://bkt/wh/ns/t1/", AccessLevel::Read);
        let rule = &b["accessBoundary"]["accessBoundaryRules"][0];
        assert_eq!(
            rule["availableResource"],
            "//storage.googleapis.com/projects/_/buckets/bkt"
        );
        assert_eq!(
            rule["availablePermissions"],
            json!(["inRole:roles/storage.objectViewer"])
        );
        assert_eq!(
            rule["availabilityCondition"]["expression"],
            "resource.name.startsWith('projects/_/buckets/bkt/objects/wh/ns/t1/') || \
             api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith('wh/ns/t1/')"
        );
        let w = access_boundary(&p, "gs://bkt/wh/ns/t1", AccessLevel::ReadWrite);
        assert_eq!(
            w["accessBoundary"]["accessBoundaryRules"][0]["availablePermissions"],
            json!(["inRole:roles/storage.objectAdmin"])
        );
    }

    #[test]
    fn boundary_escapes_and_denies() {
        let p = GcsProfile::new("bkt", None);
        let b = access_boundary(&p, "gs://bkt/it's\\x", AccessLevel::Read);
        let e = b["accessBoundary"]["accessBoundaryRules"][0]["availabilityCondition"]
            ["expression"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            e.contains(r"'projects/_/buckets/bkt/objects/it\'s\\x/'"),
            "{e}"
        );
        for outside in [
            "gs://other/t",
            "gs://bkt",
            "gs://bkt/",
            "s3://bkt/t",
            "gs://bktx/t",
        ] {
            let b = access_boundary(&p, outside, AccessLevel::ReadWrite);
            assert_eq!(
                b["accessBoundary"]["accessBoundaryRules"][0]["availabilityCondition"]
                    ["expression"],
                "false",
                "{outside}"
            );
        }
    }
}
