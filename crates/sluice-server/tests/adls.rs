//! ADLS warehouses over HTTP: create + validation against a real Azurite, vended SAS tokens
//! in load-table, and bad input → 400 with a message naming the field.

use crate::azurite;

use azurite::Azurite;
use serde_json::{json, Value};

use crate::server;

use server::TestServer;

const VENDED: &[(&str, &str)] = &[("X-Iceberg-Access-Delegation", "vended-credentials")];

/// The body as JSON where it parses, else as a JSON string (so assertions print it).
fn json_or_text(text: String) -> Value {
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

fn profile(az: &Azurite, prefix: &str) -> Value {
    json!({"type": "adls", "account-name": azurite::ACCOUNT, "filesystem": "warehouse",
           "key-prefix": prefix, "host": az.host, "allow-container-wide-sas": true})
}

fn key_cred() -> Value {
    json!({"type": "az", "credential-type": "shared-access-key", "key": azurite::KEY})
}

fn schema() -> Value {
    json!({"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "id", "required": true, "type": "long"}]})
}

fn message(v: &Value) -> String {
    assert_eq!(v["error"]["code"], 400, "{v}");
    v["error"]["message"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn adls_warehouse_create_vend_and_bad_input() {
    let az = Azurite::start(&["warehouse"]).await;
    let s = TestServer::start().await;

    let (st, v) = s
        .post("/management/v1/warehouse", json!({"warehouse-name": "az", "storage-profile": profile(&az, "wh"), "storage-credential": key_cred()}))
        .await;
    assert_eq!(st, 201, "{v}");
    let id = v["warehouse-id"].as_str().unwrap().to_string();
    // The account key is never returned.
    let (st, v) = s.get(&format!("/management/v1/warehouse/{id}")).await;
    assert_eq!(st, 200);
    assert!(!v.to_string().contains(azurite::KEY), "{v}");
    assert_eq!(v["storage-profile"]["type"], "adls");

    // A table, loaded with vended credentials.
    let p = s.prefix_of("az").await;
    let (st, v) = s
        .post(&format!("/v1/{p}/namespaces"), json!({"namespace": ["db"]}))
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = s
        .post(
            &format!("/v1/{p}/namespaces/db/tables"),
            json!({"name": "t", "schema": schema()}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let location = v["metadata"]["location"].as_str().unwrap().to_string();
    let base = format!("abfss://warehouse@{}.{}/wh", azurite::ACCOUNT, az.host);
    assert!(location.starts_with(&format!("{base}/")), "{location}");
    let (st, v) = s
        .request(
            reqwest::Method::GET,
            &format!("/v1/{p}/namespaces/db/tables/t"),
            None,
            VENDED,
        )
        .await;
    let v = json_or_text(v);
    assert_eq!(st, 200, "{v}");
    let sas_key = format!("adls.sas-token.{}.{}", azurite::ACCOUNT, az.host);
    let sas = v["config"][&sas_key].as_str().unwrap();
    assert!(sas.contains("sp=racwdl") && sas.contains("sig="), "{sas}");
    let creds = &v["storage-credentials"][0];
    assert_eq!(creds["prefix"], location.as_str());
    assert_eq!(creds["config"][&sas_key], sas);
    assert!(creds["config"][format!(
        "adls.sas-token-expires-at-ms.{}.{}",
        azurite::ACCOUNT,
        az.host
    )]
    .is_string());
    assert!(!v.to_string().contains(azurite::KEY));

    // Table locations with the wrong scheme or outside the warehouse.
    let (st, v) = s
        .post(
            &format!("/v1/{p}/namespaces/db/tables"),
            json!({"name": "t2", "schema": schema(), "location": "s3://warehouse/wh/db/t2"}),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    assert!(message(&v).contains("abfss://"), "{v}");
    let (st, v) = s
        .post(&format!("/v1/{p}/namespaces/db/tables"), json!({"name": "t3", "schema": schema(), "location": format!("abfss://warehouse@{}.{}/elsewhere/t3", azurite::ACCOUNT, az.host)}))
        .await;
    assert_eq!(st, 400, "{v}");
    assert!(message(&v).contains("elsewhere"), "{v}");

    // Bad warehouses: each refused with a message that names the problem's field.
    let cases = [
        (
            json!({"type": "az", "credential-type": "sas-token", "token": "x"}),
            profile(&az, "w1"),
            "storage-credential",
        ),
        (
            json!({"type": "az", "credential-type": "azure-system-identity"}),
            profile(&az, "w2"),
            "enable_azure_system_credentials",
        ),
        (
            json!({"type": "az", "credential-type": "shared-access-key", "key": "not base64!"}),
            profile(&az, "w3"),
            "key",
        ),
        (
            json!({"type": "s3", "credential-type": "access-key", "aws-access-key-id": "A", "aws-secret-access-key": "S"}),
            profile(&az, "w4"),
            "az",
        ),
        (
            key_cred(),
            json!({"type": "adls", "account-name": "UPPER", "filesystem": "warehouse", "host": az.host}),
            "account-name",
        ),
        (
            key_cred(),
            json!({"type": "adls", "account-name": azurite::ACCOUNT, "filesystem": "warehouse", "host": "http://x"}),
            "host",
        ),
        (
            key_cred(),
            json!({"type": "adls", "account-name": azurite::ACCOUNT, "filesystem": "warehouse", "host": az.host, "sas-token-validity-seconds": 5}),
            "sas-token-validity-seconds",
        ),
        (
            key_cred(),
            json!({"type": "adls", "account-name": azurite::ACCOUNT, "filesystem": "warehouse", "host": az.host, "region": "x"}),
            "region",
        ),
        // Overlaps the first warehouse.
        (key_cred(), profile(&az, "wh/sub"), "overlaps"),
    ];
    for (i, (cred, prof, field)) in cases.into_iter().enumerate() {
        let (st, v) = s
            .post("/management/v1/warehouse", json!({"warehouse-name": format!("bad{i}"), "storage-profile": prof, "storage-credential": cred}))
            .await;
        assert_eq!(st, 400, "case {i}: {v}");
        let m = message(&v);
        assert!(m.contains(field), "case {i}: '{m}' does not name {field}");
    }
    // The validation probe: a well-formed key that is not the account's.
    let wrong = json!({"type": "az", "credential-type": "shared-access-key", "key": "AAAAvdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="});
    let (st, v) = s
        .post("/management/v1/warehouse", json!({"warehouse-name": "wrongkey", "storage-profile": profile(&az, "w5"), "storage-credential": wrong}))
        .await;
    assert_eq!(st, 400, "{v}");
    assert!(message(&v).contains("write"), "{v}");

    // Without a hierarchical namespace and without the opt-in, no SAS is handed out rather
    // than one for the whole filesystem. The delegation header is a hint, so the load itself
    // succeeds (it used to answer 400) and says why nothing was vended; asking for
    // credentials explicitly gets the 400.
    let mut strict = profile(&az, "strict");
    strict["allow-container-wide-sas"] = json!(false);
    let (st, v) = s
        .post("/management/v1/warehouse", json!({"warehouse-name": "strict", "storage-profile": strict, "storage-credential": key_cred()}))
        .await;
    assert_eq!(st, 201, "{v}");
    let p = s.prefix_of("strict").await;
    s.post(&format!("/v1/{p}/namespaces"), json!({"namespace": ["db"]}))
        .await;
    let (st, v) = s
        .post(
            &format!("/v1/{p}/namespaces/db/tables"),
            json!({"name": "t", "schema": schema()}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let resp = s
        .client
        .get(s.url(&format!("/v1/{p}/namespaces/db/tables/t")))
        .basic_auth(server::KEY_ID, Some(server::SECRET))
        .header(VENDED[0].0, VENDED[0].1)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let outcome = resp.headers()["x-sluice-delegation"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        outcome.starts_with("none; reason=") && outcome.contains("allow-container-wide-sas"),
        "{outcome}"
    );
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["config"].get("adls.sas-token").is_none() && v.get("storage-credentials").is_none(),
        "{v}"
    );
    let (st, v) = s
        .get(&format!("/v1/{p}/namespaces/db/tables/t/credentials"))
        .await;
    assert_eq!(st, 400, "{v}");
    assert!(message(&v).contains("allow-container-wide-sas"), "{v}");
    // Without the header the table loads, with no secrets.
    let (st, v) = s.get(&format!("/v1/{p}/namespaces/db/tables/t")).await;
    assert_eq!(st, 200, "{v}");
    assert!(
        v["config"].get("adls.sas-token").is_none()
            && v["config"]["adls.account-name"] == azurite::ACCOUNT,
        "{v}"
    );
}
