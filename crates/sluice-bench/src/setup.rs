//! Prepares a running Sluice for the wrk comparisons: a warm table (created, a few commits,
//! loaded) and a remote-signing request for one of its objects, checked once. Prints JSON:
//! the token, the paths wrk requests and each response's body size (the baseline server
//! answers with the same size).

use crate::api::Api;
use crate::Target;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;

pub fn table_schema() -> Value {
    json!({"type": "struct", "schema-id": 0, "fields": [
        {"id": 1, "name": "id", "required": true, "type": "long"},
        {"id": 2, "name": "ts", "required": false, "type": "timestamptz"},
        {"id": 3, "name": "data", "required": false, "type": "string"}]})
}

pub fn run_tag() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{ms:x}")
}

pub async fn run(t: &Target, sign_body_file: &Path) -> Result<(), String> {
    let api = Api::connect(t, 4).await?;
    let ns = format!("wrk_{}", run_tag());
    api.json(
        Method::POST,
        &api.catalog("/namespaces"),
        Some(&json!({"namespace": [ns]})),
    )
    .await?;
    api.json(
        Method::POST,
        &api.catalog(&format!("/namespaces/{ns}/tables")),
        Some(&json!({"name": "warm", "schema": table_schema()})),
    )
    .await?;
    let load_path = api.catalog(&format!("/namespaces/{ns}/tables/warm"));
    // A short history, as a table in use has: each commit writes a metadata file.
    for i in 0..5 {
        api.json(
            Method::POST,
            &load_path,
            Some(&json!({
                "requirements": [],
                "updates": [{"action": "set-properties", "updates": {"bench.commit": i.to_string()}}],
            })),
        )
        .await?;
    }
    // Warm: the table cache holds the current metadata after a load.
    let mut load_bytes = 0;
    for _ in 0..3 {
        let a = api.send(Method::GET, &load_path, None, &[]).await?;
        if !a.status.is_success() {
            return Err(format!("load {load_path}: {}", a.status));
        }
        load_bytes = a.body.len();
    }

    // Remote signing: the signer endpoint load-table hands out, for a GET of the table's
    // current metadata file through the warehouse's S3 endpoint.
    let a = api
        .send(
            Method::GET,
            &load_path,
            None,
            &[("x-iceberg-access-delegation", "remote-signing")],
        )
        .await?;
    let loaded: Value = serde_json::from_slice(&a.body).map_err(|e| e.to_string())?;
    let cfg = &loaded["config"];
    let (sign_path, sign_body) = match (
        cfg["s3.signer.endpoint"].as_str(),
        cfg["s3.endpoint"].as_str(),
        loaded["metadata-location"].as_str(),
    ) {
        (Some(endpoint), Some(s3), Some(location)) => {
            let key = location
                .strip_prefix("s3://")
                .ok_or_else(|| format!("metadata location {location} is not s3://"))?;
            let body = json!({
                "method": "GET",
                "region": cfg["s3.region"].as_str().unwrap_or("us-east-1"),
                "uri": format!("{}/{key}", s3.trim_end_matches('/')),
                "headers": {"user-agent": ["sluice-bench"]},
            });
            (format!("/{}", endpoint.trim_start_matches('/')), body)
        }
        _ => {
            return Err(format!(
                "load-table with remote-signing handed out no signer (config: {cfg})"
            ))
        }
    };
    let signed = api
        .send(Method::POST, &sign_path, Some(&sign_body), &[])
        .await?;
    if !signed.status.is_success() {
        return Err(format!(
            "sign {sign_path}: {}: {}",
            signed.status,
            String::from_utf8_lossy(&signed.body)
        ));
    }
    // Check the signature once against the endpoint it is for (the S3 gateway verifies SigV4).
    let sv: Value = serde_json::from_slice(&signed.body).map_err(|e| e.to_string())?;
    let mut get = api
        .client
        .get(sv["uri"].as_str().ok_or("signed request has no uri")?);
    for (k, vs) in sv["headers"]
        .as_object()
        .ok_or("signed request has no headers")?
    {
        for v in vs.as_array().into_iter().flatten() {
            get = get.header(k, v.as_str().unwrap_or_default());
        }
    }
    let check = get.send().await.map_err(|e| format!("signed GET: {e}"))?;
    let signed_get_status = check.status().as_u16();

    let body = serde_json::to_vec(&sign_body).map_err(|e| e.to_string())?;
    std::fs::write(sign_body_file, &body)
        .map_err(|e| format!("writing {}: {e}", sign_body_file.display()))?;

    let health = api.send(Method::GET, "/health", None, &[]).await?;
    let config_path = format!("/v1/config?warehouse={}", t.warehouse);
    let config = api.send(Method::GET, &config_path, None, &[]).await?;
    let out = json!({
        "token": api.token,
        "prefix": api.prefix,
        "health_path": "/health",
        "config_path": config_path,
        "load_path": load_path,
        "sign_path": sign_path,
        "signed_get_status": signed_get_status,
        "bytes": {
            "health": health.body.len(),
            "config": config.body.len(),
            "load": load_bytes,
            "sign": signed.body.len(),
        },
    });
    println!("{out}");
    Ok(())
}
