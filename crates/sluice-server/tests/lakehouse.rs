//! The embedded lakehouse: the `default` warehouse served through the S3 gateway. Table
//! locations are `s3://default/…`, `vended-credentials` hands out temporary gateway
//! credentials (ASIA key, secret, session token) confined to one table and level, and the
//! gateway checks the session token on every request. Requests are signed with `aws-sigv4`
//! (the SDKs' signer), the session token included as `X-Amz-Security-Token`.

use std::collections::HashMap;
use std::time::SystemTime;

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use reqwest::{Client, Method};
use serde_json::{json, Value};
use sluice_core::Secret;
use sluice_server::{Server, ServerConfig};

use crate::server::{signed_s3, KEY_ID, SECRET};

struct Lake {
    api: String,
    s3: String,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

async fn start(ttl_seconds: u64) -> Lake {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        s3_listen: "127.0.0.1:0".into(),
        data_dir: dir.path().to_path_buf(),
        allowed_file_roots: vec![dir.path().to_path_buf()],
        auth_failures_per_minute: 10_000,
        gateway_credentials_ttl_seconds: ttl_seconds,
        ..ServerConfig::default()
    };
    let server = Server::open(config, Some((KEY_ID.into(), Secret::new(SECRET))))
        .await
        .unwrap();
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let s3 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (api_addr, s3_addr) = (api.local_addr().unwrap(), s3.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        server
            .serve_with_gateway(api, Some(s3), async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    Lake {
        api: format!("http://{api_addr}"),
        s3: format!("http://{s3_addr}"),
        _dir: dir,
        stop: Some(tx),
        handle: Some(handle),
    }
}

/// Temporary credentials as a client reads them from a load-table response.
#[derive(Clone, Debug)]
struct Temp {
    key: String,
    secret: String,
    token: String,
}

impl Temp {
    fn from_config(c: &Value) -> Temp {
        Temp {
            key: c["s3.access-key-id"].as_str().unwrap().into(),
            secret: c["s3.secret-access-key"].as_str().unwrap().into(),
            token: c["s3.session-token"].as_str().unwrap().into(),
        }
    }
}

impl Lake {
    async fn api(
        &self,
        who: (&str, &str),
        method: Method,
        path: &str,
        body: Option<Value>,
        delegation: Option<&str>,
    ) -> (u16, Value) {
        let mut req = Client::new()
            .request(method, format!("{}{path}", self.api))
            .basic_auth(who.0, Some(who.1));
        if let Some(b) = body {
            req = req.json(&b);
        }
        if let Some(d) = delegation {
            req = req.header("X-Iceberg-Access-Delegation", d);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.api((KEY_ID, SECRET), method, path, body, None).await;
        assert!((200..300).contains(&status), "{path}: {status} {v}");
        v
    }

    /// A table `lake.<name>` in the default warehouse; returns its location.
    async fn create_table(&self, name: &str) -> String {
        let (status, v) = self
            .api(
                (KEY_ID, SECRET),
                Method::POST,
                "/v1/default/namespaces/lake/tables",
                Some(
                    json!({"name": name, "schema": {"type": "struct", "schema-id": 0, "fields": [
                    {"id": 1, "name": "id", "type": "long", "required": false}]}}),
                ),
                None,
            )
            .await;
        assert_eq!(status, 200, "{v}");
        v["metadata"]["location"].as_str().unwrap().to_string()
    }

    /// Loads `lake.<name>` as `who` with vended credentials.
    async fn load(&self, who: (&str, &str), name: &str) -> Value {
        let (status, v) = self
            .api(
                who,
                Method::GET,
                &format!("/v1/default/namespaces/lake/tables/{name}"),
                None,
                Some("vended-credentials"),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        v
    }

    /// A SigV4-signed request to the gateway; with temporary credentials the signer adds
    /// (and signs) `X-Amz-Security-Token`.
    async fn s3(
        &self,
        creds: (&str, &str, Option<&str>),
        method: &str,
        path: &str,
        body: &[u8],
    ) -> (u16, String) {
        signed_s3(&self.s3, creds, method, path, body).await
    }

    async fn temp_s3(&self, t: &Temp, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        self.s3((&t.key, &t.secret, Some(&t.token)), method, path, body)
            .await
    }

    /// A user with a key and the given groups.
    async fn user(&self, name: &str, groups: &[&str]) -> (String, String) {
        self.admin(
            Method::POST,
            "/management/v1/users",
            Some(json!({"name": name})),
        )
        .await;
        for g in groups {
            self.admin(
                Method::PUT,
                &format!("/management/v1/groups/{g}/members/{name}"),
                None,
            )
            .await;
        }
        let key = self
            .admin(
                Method::POST,
                &format!("/management/v1/users/{name}/access-keys"),
                None,
            )
            .await;
        (
            key["access-key-id"].as_str().unwrap().to_string(),
            key["secret-access-key"].as_str().unwrap().to_string(),
        )
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.handle.take().unwrap().await.unwrap();
    }
}

/// The gateway path of a location `s3://default/<key>`.
fn path_of(location: &str, file: &str) -> String {
    format!(
        "/{}/{file}",
        location
            .strip_prefix("s3://")
            .unwrap()
            .trim_end_matches('/')
    )
}

async fn lake_with_tables(ttl: u64) -> (Lake, String, String) {
    let lake = start(ttl).await;
    lake.admin(
        Method::POST,
        "/v1/default/namespaces",
        Some(json!({"namespace": ["lake"]})),
    )
    .await;
    let a = lake.create_table("a").await;
    let b = lake.create_table("b").await;
    (lake, a, b)
}

#[tokio::test]
async fn vended_credentials_are_temporary_gateway_credentials() {
    let (lake, a, _) = lake_with_tables(3600).await;
    assert!(a.starts_with("s3://default/"), "{a}");

    let v = lake.load((KEY_ID, SECRET), "a").await;
    assert!(v["metadata-location"]
        .as_str()
        .unwrap()
        .starts_with("s3://default/"));
    let config = &v["config"];
    let key = config["s3.access-key-id"].as_str().unwrap();
    assert!(key.starts_with("ASIA") && key.len() == 20, "{key}");
    assert_eq!(config["s3.secret-access-key"].as_str().unwrap().len(), 40);
    assert!(!config["s3.session-token"].as_str().unwrap().is_empty());
    assert_eq!(config["s3.endpoint"], lake.s3.as_str());
    assert_eq!(config["s3.path-style-access"], "true");
    assert_eq!(config["s3.region"], "us-east-1");
    let expires: i64 = config["s3.session-token-expires-at-ms"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let in_an_hour = chrono::Utc::now().timestamp_millis() + 3_600_000;
    assert!((in_an_hour - 60_000..=in_an_hour + 1000).contains(&expires));
    let creds = &v["storage-credentials"][0];
    assert_eq!(creds["prefix"], a.as_str());
    assert_eq!(creds["config"]["s3.access-key-id"], key);

    // The credentials endpoint answers in the same shape.
    let (status, c) = lake
        .api(
            (KEY_ID, SECRET),
            Method::GET,
            "/v1/default/namespaces/lake/tables/a/credentials",
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{c}");
    let entry = &c["storage-credentials"][0];
    assert_eq!(entry["prefix"], a.as_str());
    assert!(entry["config"]["s3.access-key-id"]
        .as_str()
        .unwrap()
        .starts_with("ASIA"));

    // The metadata file the server wrote is readable through the gateway with them.
    let temp = Temp::from_config(config);
    let meta = v["metadata-location"].as_str().unwrap();
    let (status, body) = lake
        .temp_s3(
            &temp,
            "GET",
            &format!("/{}", meta.strip_prefix("s3://").unwrap()),
            b"",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"format-version\""), "{body}");

    // Each issuance is in the audit log, attributed to the user, without the secret.
    let audit = lake
        .admin(Method::GET, "/management/v1/audit?limit=1000", None)
        .await;
    let issued: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "s3:IssueTemporaryCredentials")
        .collect();
    assert!(!issued.is_empty(), "{audit}");
    assert!(issued.iter().all(|e| e["actor"] == "admin"), "{audit}");
    let text = audit.to_string();
    assert!(!text.contains(&temp.secret) && !text.contains(&temp.token));
    lake.stop().await;
}

#[tokio::test]
async fn temporary_credentials_reach_only_their_table_and_level() {
    let (lake, a, b) = lake_with_tables(3600).await;
    let admin = Temp::from_config(&lake.load((KEY_ID, SECRET), "a").await["config"]);

    let (status, body) = lake
        .temp_s3(&admin, "PUT", &path_of(&a, "data/one.parquet"), b"one")
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = lake
        .temp_s3(&admin, "GET", &path_of(&a, "data/one.parquet"), b"")
        .await;
    assert_eq!((status, body.as_str()), (200, "one"));

    // Table B's files, the warehouse root and other warehouses are out of reach.
    let (status, body) = lake
        .s3(
            (KEY_ID, SECRET, None),
            "PUT",
            &path_of(&b, "data/b.parquet"),
            b"b",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = lake
        .temp_s3(&admin, "GET", &path_of(&b, "data/b.parquet"), b"")
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("AccessDenied"), "{body}");
    let (status, body) = lake
        .temp_s3(&admin, "PUT", &path_of(&b, "data/x.parquet"), b"x")
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = lake
        .temp_s3(&admin, "PUT", "/default/staging/x", b"x")
        .await;
    assert_eq!(status, 403, "{body}");
    // A listing of the whole bucket shows only table A's keys.
    let (status, body) = lake
        .temp_s3(&admin, "GET", "/default?list-type=2", b"")
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("one.parquet") && !body.contains("b.parquet"),
        "{body}"
    );

    // A Viewers user gets read-only credentials: GET yes, PUT and DELETE no.
    let (vk, vs) = lake.user("viewer", &["Viewers"]).await;
    let v = lake.load((&vk, &vs), "a").await;
    let viewer = Temp::from_config(&v["config"]);
    let (status, body) = lake
        .temp_s3(&viewer, "GET", &path_of(&a, "data/one.parquet"), b"")
        .await;
    assert_eq!((status, body.as_str()), (200, "one"));
    let (status, body) = lake
        .temp_s3(&viewer, "PUT", &path_of(&a, "data/two.parquet"), b"two")
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("AccessDenied"), "{body}");
    let (status, body) = lake
        .temp_s3(&viewer, "DELETE", &path_of(&a, "data/one.parquet"), b"")
        .await;
    assert_eq!(status, 403, "{body}");

    // Tampered or missing session tokens, and a token of other credentials, are refused.
    let mut tampered = admin.clone();
    let mut chars: Vec<char> = tampered.token.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    tampered.token = chars.into_iter().collect();
    let (status, body) = lake
        .temp_s3(&tampered, "GET", &path_of(&a, "data/one.parquet"), b"")
        .await;
    // S3 answers token errors with 400.
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("InvalidToken"), "{body}");
    let (status, body) = lake
        .s3(
            (&admin.key, &admin.secret, None),
            "GET",
            &path_of(&a, "data/one.parquet"),
            b"",
        )
        .await;
    // S3 answers token errors with 400.
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("InvalidToken"), "{body}");
    let swapped = Temp {
        token: viewer.token.clone(),
        ..admin.clone()
    };
    let (status, body) = lake
        .temp_s3(&swapped, "GET", &path_of(&a, "data/one.parquet"), b"")
        .await;
    // S3 answers token errors with 400.
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("InvalidToken"), "{body}");
    // A made-up secret for a real key id does not match the signature.
    let forged = Temp {
        secret: "0000000000000000000000000000000000000000".into(),
        ..admin.clone()
    };
    let (status, body) = lake
        .temp_s3(&forged, "GET", &path_of(&a, "data/one.parquet"), b"")
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("SignatureDoesNotMatch"), "{body}");
    lake.stop().await;
}

#[tokio::test]
async fn revoked_issuers_and_expired_tokens_are_refused() {
    // The gateway checks expiry before the issuer, so credentials that ran out during a slow
    // revocation step would be refused as ExpiredToken; an hour keeps the two apart.
    let (lake, a, _) = lake_with_tables(3600).await;
    let (dk, ds) = lake.user("dev", &["Developers"]).await;
    let dev = Temp::from_config(&lake.load((&dk, &ds), "a").await["config"]);
    let file = path_of(&a, "data/dev.parquet");
    let (status, body) = lake.temp_s3(&dev, "PUT", &file, b"dev").await;
    assert_eq!(status, 200, "{body}");

    // The user's rights are checked anew on every request (session-policy intersection):
    // out of Developers, the credentials no longer write.
    lake.admin(
        Method::DELETE,
        "/management/v1/groups/Developers/members/dev",
        None,
    )
    .await;
    let (status, body) = lake.temp_s3(&dev, "PUT", &file, b"again").await;
    // With no group left, the user does not even see the warehouse.
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("NoSuchBucket"), "{body}");
    lake.admin(
        Method::PUT,
        "/management/v1/groups/Developers/members/dev",
        None,
    )
    .await;
    let dev = Temp::from_config(&lake.load((&dk, &ds), "a").await["config"]);
    let (status, body) = lake.temp_s3(&dev, "GET", &file, b"").await;
    assert_eq!((status, body.as_str()), (200, "dev"));

    // Deleting the key the credentials were issued to revokes them on the next request.
    lake.admin(
        Method::DELETE,
        &format!("/management/v1/users/dev/access-keys/{dk}"),
        None,
    )
    .await;
    let (status, body) = lake.temp_s3(&dev, "GET", &file, b"").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("InvalidAccessKeyId"), "{body}");

    lake.stop().await;

    // Short-lived credentials expire. Five seconds leave room for the one request that shows
    // they worked, on a loaded machine, and are still quick to wait out.
    let (lake, a, _) = lake_with_tables(5).await;
    let file = path_of(&a, "data/admin.parquet");
    let (status, body) = lake
        .s3((KEY_ID, SECRET, None), "PUT", &file, b"admin")
        .await;
    assert_eq!(status, 200, "{body}");
    let config = lake.load((KEY_ID, SECRET), "a").await["config"].clone();
    let admin = Temp::from_config(&config);
    let expires_ms: i64 = config["s3.session-token-expires-at-ms"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let (status, body) = lake.temp_s3(&admin, "GET", &file, b"").await;
    assert_eq!((status, body.as_str()), (200, "admin"));
    // Waits for the expiry the server announced, on the clock the gateway checks it against
    // (this machine's, read after ours), rather than for a duration guessed from the TTL.
    loop {
        let now = chrono::Utc::now().timestamp_millis();
        if now > expires_ms {
            break;
        }
        let wait = u64::try_from(expires_ms - now).unwrap() + 1;
        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
    }
    let (status, body) = lake.temp_s3(&admin, "GET", &file, b"").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("ExpiredToken"), "{body}");
    lake.stop().await;
}

#[tokio::test]
async fn gateway_served_warehouses_keep_their_name_and_map_locations() {
    let (lake, a, _) = lake_with_tables(3600).await;
    let list = lake
        .admin(Method::GET, "/management/v1/warehouse", None)
        .await;
    let id = list["warehouses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "default")
        .unwrap()["warehouse-id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, v) = lake
        .api(
            (KEY_ID, SECRET),
            Method::POST,
            &format!("/management/v1/warehouse/{id}/rename"),
            Some(json!({"new-name": "other"})),
            None,
        )
        .await;
    assert_eq!(status, 409, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("S3 gateway"));

    // A requested location under s3://default is accepted and stays there.
    let (status, v) = lake
        .api(
            (KEY_ID, SECRET),
            Method::POST,
            "/v1/default/namespaces/lake/tables",
            Some(
                json!({"name": "placed", "location": "s3://default/placed/here",
                "schema": {"type": "struct", "schema-id": 0, "fields": []}}),
            ),
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["metadata"]["location"], "s3://default/placed/here");
    // Without the header there are no credentials, but the endpoint is there.
    let (status, v) = lake
        .api(
            (KEY_ID, SECRET),
            Method::GET,
            "/v1/default/namespaces/lake/tables/a",
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["config"]["s3.endpoint"], lake.s3.as_str());
    assert!(v["config"].get("s3.access-key-id").is_none(), "{v}");
    let _: HashMap<String, String> = serde_json::from_value(v["config"].clone()).unwrap();
    // Dropping with purge removes the table's files from the server's disk.
    let (status, body) = lake
        .s3(
            (KEY_ID, SECRET, None),
            "PUT",
            &path_of(&a, "data/x.parquet"),
            b"x",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let dir = lake
        ._dir
        .path()
        .join("warehouse")
        .join(a.strip_prefix("s3://default/").unwrap());
    assert!(dir.join("data/x.parquet").exists(), "{}", dir.display());
    let (status, v) = lake
        .api(
            (KEY_ID, SECRET),
            Method::DELETE,
            "/v1/default/namespaces/lake/tables/a?purgeRequested=true",
            None,
            None,
        )
        .await;
    assert_eq!(status, 204, "{v}");
    assert!(!dir.join("data/x.parquet").exists());
    lake.stop().await;
}

/// Apache iceberg-rust's REST catalog with only the URI and a Sluice key: its S3 FileIO
/// (OpenDAL) is built from the vended gateway credentials alone, writes a data file through
/// the gateway, commits, and scans it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iceberg_rust_writes_and_reads_through_vended_gateway_credentials() {
    use crate::iceberg_rust_client::{append, creation, ns, rows, scan, write_rows};
    use iceberg::{Catalog, CatalogBuilder};
    use iceberg_catalog_rest::RestCatalogBuilder;
    use iceberg_storage_opendal::OpenDalStorageFactory;

    let lake = start(3600).await;
    let credential = format!("{KEY_ID}:{SECRET}");
    let props: HashMap<String, String> = [
        ("uri", lake.api.as_str()),
        ("credential", credential.as_str()),
        ("header.X-Iceberg-Access-Delegation", "vended-credentials"),
        ("s3.disable-config-load", "true"),
        ("s3.disable-ec2-metadata", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let c = RestCatalogBuilder::default()
        .with_storage_factory(std::sync::Arc::new(OpenDalStorageFactory::S3 {
            customized_credential_load: None,
        }))
        .load("lake", props)
        .await
        .unwrap();
    let db = ns(&["rusty"]);
    c.create_namespace(&db, HashMap::new()).await.unwrap();
    let created = c.create_table(&db, creation("trips")).await.unwrap();
    assert!(created.metadata().location().starts_with("s3://default/"));
    let t = c.load_table(created.identifier()).await.unwrap();
    let cfg = t.file_io().config().props();
    assert!(cfg["s3.access-key-id"].starts_with("ASIA"));
    assert!(t
        .file_io()
        .exists(t.metadata_location().unwrap())
        .await
        .unwrap());
    let files = write_rows(&t, "bikes", &[(1, "north"), (2, "south")]).await;
    assert!(files[0].file_path().starts_with("s3://default/"));
    append(&c, &t, files).await.unwrap();
    let t = c.load_table(created.identifier()).await.unwrap();
    assert_eq!(
        scan(&t).await,
        rows(&[(1, "bikes", "north"), (2, "bikes", "south")])
    );
    lake.stop().await;
}

/// `remote-signing` alone: the signer endpoint signs with a temporary key for the table
/// (session token among the signed headers), and the gateway accepts the signed requests.
#[tokio::test]
async fn remote_signing_uses_a_temporary_key_the_gateway_accepts() {
    let (lake, a, b) = lake_with_tables(3600).await;
    let (status, v) = lake
        .api(
            (KEY_ID, SECRET),
            Method::GET,
            "/v1/default/namespaces/lake/tables/a",
            None,
            Some("remote-signing"),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let config = &v["config"];
    assert_eq!(config["s3.remote-signing-enabled"], "true", "{config}");
    assert!(config.get("s3.access-key-id").is_none(), "{config}");
    let signer = format!(
        "{}/{}",
        config["s3.signer.uri"]
            .as_str()
            .unwrap()
            .trim_end_matches('/'),
        config["s3.signer.endpoint"].as_str().unwrap()
    );
    let signed = |method: &'static str, uri: String| {
        let signer = signer.clone();
        async move {
            let resp = Client::new()
                .post(&signer)
                .basic_auth(KEY_ID, Some(SECRET))
                .json(&json!({"method": method, "region": "us-east-1", "uri": uri,
                    "headers": {"x-amz-content-sha256": ["UNSIGNED-PAYLOAD"]}}))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let send = |method: &'static str, uri: String, headers: Value, body: &'static [u8]| async move {
        let mut req = Client::new()
            .request(method.parse().unwrap(), &uri)
            .body(body);
        for (k, vs) in headers.as_object().unwrap() {
            for v in vs.as_array().unwrap() {
                req = req.header(k.as_str(), v.as_str().unwrap());
            }
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    };

    let uri = format!("{}{}", lake.s3, path_of(&a, "data/signed.parquet"));
    let (status, s) = signed("PUT", uri.clone()).await;
    assert_eq!(status, 200, "{s}");
    let auth = s["headers"]["authorization"][0].as_str().unwrap();
    assert!(auth.contains("Credential=ASIA"), "{auth}");
    assert!(auth.contains("x-amz-security-token"), "{auth}");
    let (status, body) = send("PUT", uri.clone(), s["headers"].clone(), b"signed").await;
    assert_eq!(status, 200, "{body}");
    let (status, s) = signed("GET", uri.clone()).await;
    assert_eq!(status, 200, "{s}");
    let (status, body) = send("GET", uri, s["headers"].clone(), b"").await;
    assert_eq!((status, body.as_str()), (200, "signed"));
    // A read is signed with a read-only key (least privilege), a write with a read-write one.
    let key_of = |auth: &str| {
        let k = auth.split("Credential=").nth(1).unwrap();
        k[..k.find('/').unwrap()].to_string()
    };
    let read_key = key_of(s["headers"]["authorization"][0].as_str().unwrap());
    let write_key = key_of(auth);
    assert_ne!(read_key, write_key);
    let audit = lake
        .admin(Method::GET, "/management/v1/audit?limit=1000", None)
        .await;
    let level_of = |key: &str| {
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["detail"].as_str())
            .find(|d| d.contains(&format!("access-key-id {key};")))
            .map(|d| {
                d.split("level ")
                    .nth(1)
                    .unwrap()
                    .split(';')
                    .next()
                    .unwrap()
                    .to_string()
            })
    };
    assert_eq!(level_of(&read_key).as_deref(), Some("read"), "{audit}");
    assert_eq!(
        level_of(&write_key).as_deref(),
        Some("read-write"),
        "{audit}"
    );

    // Another table's objects are not signed for through this table's endpoint.
    let (status, s) = signed(
        "GET",
        format!("{}{}", lake.s3, path_of(&b, "data/x.parquet")),
    )
    .await;
    assert_eq!(status, 403, "{s}");
    lake.stop().await;
}

/// A presigned URL made with temporary credentials carries the session token in its query
/// (`X-Amz-Security-Token`, signed) and works with a plain HTTP client.
#[tokio::test]
async fn presigned_urls_carry_the_session_token() {
    let (lake, a, _) = lake_with_tables(3600).await;
    let t = Temp::from_config(&lake.load((KEY_ID, SECRET), "a").await["config"]);
    let file = path_of(&a, "data/p.parquet");
    let (status, body) = lake.temp_s3(&t, "PUT", &file, b"presigned").await;
    assert_eq!(status, 200, "{body}");

    let uri = format!("{}{file}", lake.s3);
    let identity = aws_credential_types::Credentials::new(
        &t.key,
        &t.secret,
        Some(t.token.clone()),
        None,
        "test",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings.signature_location = aws_sigv4::http_request::SignatureLocation::QueryParams;
    settings.expires_in = Some(std::time::Duration::from_secs(300));
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        "GET",
        uri.as_str(),
        std::iter::empty(),
        SignableBody::UnsignedPayload,
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut url = url::Url::parse(&uri).unwrap();
    for (k, v) in instructions.params() {
        url.query_pairs_mut().append_pair(k, v);
    }
    assert!(url.as_str().contains("X-Amz-Security-Token="), "{url}");
    let resp = Client::new().get(url.as_str()).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.text().await.unwrap(), "presigned");
    lake.stop().await;
}
