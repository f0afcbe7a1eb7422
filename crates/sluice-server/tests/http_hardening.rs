//! Regression tests for the outside probe of issue 14: slow and idle connections, the
//! connection cap, the request body limit, error-model answers for what the HTTP layer
//! itself refuses, token-endpoint scopes, private database files and failed-authentication
//! throttling. Raw TCP clients where the attack needs byte-level control.

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::server;
use server::{TestServer, KEY_ID, SECRET};

fn assert_error(v: &Value, kind: &str, code: u16) {
    assert_eq!(v["error"]["type"], kind, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
}

fn addr(s: &TestServer) -> String {
    s.base.trim_start_matches("http://").to_string()
}

fn basic() -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{KEY_ID}:{SECRET}"))
    )
}

/// Sends `head` (and `body`) on a fresh connection and reads the whole answer
/// (`Connection: close` is expected in `head`): status, headers, body.
fn raw(s: &TestServer, head: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut c = TcpStream::connect(addr(s)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c.write_all(head.as_bytes()).unwrap();
    // The server may answer (and close) before the body is sent: ignore a broken pipe.
    let _ = c.write_all(body);
    let mut buf = Vec::new();
    let r = c.read_to_end(&mut buf);
    assert!(
        !buf.is_empty(),
        "no answer ({r:?}) to {:?}",
        head.chars().take(200).collect::<String>()
    );
    parse_response(&buf)
}

fn parse_response(buf: &[u8]) -> (u16, String, Vec<u8>) {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(buf)));
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), buf[end + 4..].to_vec())
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(body)))
}

/// Whether the server has closed `c` (EOF or reset) within `within`.
fn closed_within(c: &mut TcpStream, within: Duration) -> bool {
    c.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 1024];
    loop {
        match c.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_header_clients_are_dropped_while_normal_requests_stay_fast() {
    let s = TestServer::start_with(|c| {
        c.header_read_timeout_seconds = 1;
        c.idle_timeout_seconds = 60;
    })
    .await;
    let a = addr(&s);
    // 30 clients trickling one header line every 200 ms, never finishing the head.
    let tricklers: Vec<_> = (0..30)
        .map(|i| {
            let a = a.clone();
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut c = TcpStream::connect(&a).unwrap();
                c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").unwrap();
                loop {
                    std::thread::sleep(Duration::from_millis(200));
                    if c.write_all(
                        format!("X-Slow-{i}: {}\r\n", start.elapsed().as_millis()).as_bytes(),
                    )
                    .is_err()
                    {
                        break;
                    }
                    if closed_within(&mut c, Duration::from_millis(1)) {
                        break;
                    }
                    assert!(
                        start.elapsed() < Duration::from_secs(10),
                        "a trickling client was kept for 10 s"
                    );
                }
                start.elapsed()
            })
        })
        .collect();
    // Meanwhile normal requests are answered promptly.
    for _ in 0..10 {
        let t = Instant::now();
        let r = s.client.get(s.url("/health")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "health took {:?}",
            t.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for t in tricklers {
        let held = tokio::task::spawn_blocking(move || t.join().unwrap())
            .await
            .unwrap();
        assert!(
            held >= Duration::from_millis(900) && held < Duration::from_secs(4),
            "held {held:?}"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let s = TestServer::start_with(|c| {
        c.idle_timeout_seconds = 1;
        c.header_read_timeout_seconds = 10;
    })
    .await;
    let a = addr(&s);
    let held = tokio::task::spawn_blocking(move || {
        let mut c = TcpStream::connect(&a).unwrap();
        let req = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
        let read_one = |c: &mut TcpStream| {
            c.write_all(req).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = vec![0u8; 4096];
            let n = c.read(&mut buf).unwrap();
            assert!(
                String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
                "{:?}",
                String::from_utf8_lossy(&buf[..n])
            );
        };
        // Keep-alive works while the client is not idle for long ...
        read_one(&mut c);
        std::thread::sleep(Duration::from_millis(300));
        read_one(&mut c);
        // ... and an idle connection is closed.
        let t = Instant::now();
        assert!(
            closed_within(&mut c, Duration::from_secs(5)),
            "idle connection kept open"
        );
        t.elapsed()
    })
    .await
    .unwrap();
    assert!(held >= Duration::from_millis(800), "closed after {held:?}");
    // A connection that never sends anything is idle too.
    let a = addr(&s);
    let closed = tokio::task::spawn_blocking(move || {
        closed_within(&mut TcpStream::connect(&a).unwrap(), Duration::from_secs(5))
    })
    .await
    .unwrap();
    assert!(closed);
    s.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let s = TestServer::start_with(|c| c.max_connections = 2).await;
    let a = addr(&s);
    tokio::task::spawn_blocking(move || {
        let hold1 = TcpStream::connect(&a).unwrap();
        let _hold2 = TcpStream::connect(&a).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let mut c = TcpStream::connect(&a).unwrap();
        c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        c.set_read_timeout(Some(Duration::from_millis(700))).unwrap();
        let mut buf = [0u8; 16];
        let r = c.read(&mut buf);
        assert!(
            matches!(&r, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
            "third connection served beyond the cap: {r:?}"
        );
        drop(hold1);
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut out = Vec::new();
        c.read_to_end(&mut out).unwrap();
        assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&out));
    })
    .await
    .unwrap();
    s.stop().await;
}

fn wide_schema(columns: usize) -> Value {
    let fields: Vec<Value> = (1..=columns)
        .map(|i| json!({"id": i, "name": format!("column_with_a_rather_long_name_{i:06}"), "required": false, "type": "string"}))
        .collect();
    json!({"type": "struct", "schema-id": 1, "fields": fields})
}

#[tokio::test]
async fn commits_larger_than_2_mib_are_accepted_up_to_the_limit() {
    let s = TestServer::start().await;
    let p = s.prefix().await;
    assert_eq!(
        s.post(
            &format!("/v1/{p}/namespaces"),
            json!({"namespace": ["big"]})
        )
        .await
        .0,
        200
    );
    let small = json!({"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "id", "required": true, "type": "long"}]});
    let (st, v) = s
        .post(
            &format!("/v1/{p}/namespaces/big/tables"),
            json!({"name": "wide", "schema": small}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    // A wide schema: about 3.5 MB of JSON, beyond axum's 2 MiB default.
    let commit = json!({"requirements": [{"type": "assert-current-schema-id", "current-schema-id": 0}],
        "updates": [{"action": "add-schema", "schema": wide_schema(40_000), "last-column-id": 40_000},
                    {"action": "set-current-schema", "schema-id": -1}]});
    let size = serde_json::to_vec(&commit).unwrap().len();
    assert!(size > 3 * 1024 * 1024, "{size}");
    let (st, v) = s
        .post(&format!("/v1/{p}/namespaces/big/tables/wide"), commit)
        .await;
    assert_eq!(
        st,
        200,
        "{}",
        v.to_string().chars().take(300).collect::<String>()
    );
    assert_eq!(v["metadata"]["current-schema-id"], 1);
    s.stop().await;
}

// raw() blocks its thread: the server needs workers of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bodies_beyond_the_limit_answer_413_in_the_error_model() {
    let s = TestServer::start_with(|c| c.max_request_body_bytes = 1024 * 1024).await;
    let p = s.prefix().await;
    let big = vec![b' '; 1024 * 1024 + 1];
    // Declared length over the limit: refused before the body is read.
    let head = format!(
        "POST /v1/{p}/namespaces HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        basic(),
        big.len()
    );
    let (st, h, body) = raw(&s, &head, b"");
    assert_eq!(st, 413);
    assert!(h.contains("content-type: application/json"), "{h}");
    assert_error(&json_of(&body), "PayloadTooLargeException", 413);
    // Chunked, no length declared: refused once the limit is crossed.
    let head = format!(
        "POST /v1/{p}/namespaces HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        basic()
    );
    let mut chunked = format!("{:x}\r\n", big.len()).into_bytes();
    chunked.extend_from_slice(&big);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let (st, _, body) = raw(&s, &head, &chunked);
    assert_eq!(st, 413);
    assert_error(&json_of(&body), "PayloadTooLargeException", 413);
    // The token endpoint answers in the OAuth2 shape.
    let head = "POST /v1/oauth/tokens HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        .to_string();
    let (st, _, body) = raw(&s, &head, &chunked);
    assert_eq!(st, 413);
    let v = json_of(&body);
    assert_eq!(v["error"], "invalid_request", "{v}");
    assert!(v["error_description"].as_str().is_some(), "{v}");
    // Just under the limit still works.
    let ok = serde_json::to_vec(
        &json!({"namespace": ["padded"], "properties": {"pad": "x".repeat(1024 * 1024 - 100)}}),
    )
    .unwrap();
    assert!(ok.len() <= 1024 * 1024 && ok.len() > 1024 * 1024 - 200);
    let r = s
        .client
        .post(s.url(&format!("/v1/{p}/namespaces")))
        .basic_auth(KEY_ID, Some(SECRET))
        .body(ok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.stop().await;
}

// raw() blocks its thread: the server needs workers of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_layer_errors_use_the_error_model() {
    let s = TestServer::start_with(|c| c.request_timeout_seconds = 1).await;
    let p = s.prefix().await;
    // 404: unknown route; 405: known route, wrong method.
    let (st, v) = s.get("/no/such/route").await;
    assert_eq!(st, 404);
    assert_error(&v, "NotFoundException", 404);
    let (st, v) = s.call(reqwest::Method::PATCH, "/v1/config", None).await;
    assert_eq!(st, 405);
    assert_error(&v, "MethodNotAllowedException", 405);
    // 414: a 9 KB request target.
    let (st, v) = s
        .get(&format!(
            "/v1/{p}/namespaces?pageToken={}",
            "a".repeat(9000)
        ))
        .await;
    assert_eq!(st, 414);
    assert_error(&v, "UriTooLongException", 414);
    // 431: too many header lines, and too many header bytes.
    let many: String = (0..120).map(|i| format!("X-H{i}: v\r\n")).collect();
    let (st, h, body) = raw(
        &s,
        &format!("GET /health HTTP/1.1\r\nHost: x\r\n{many}Connection: close\r\n\r\n"),
        b"",
    );
    assert_eq!(st, 431, "{h}");
    assert_error(&json_of(&body), "RequestHeaderFieldsTooLargeException", 431);
    let huge = format!("X-Big: {}\r\n", "b".repeat(70 * 1024));
    let (st, _, body) = raw(
        &s,
        &format!("GET /health HTTP/1.1\r\nHost: x\r\n{huge}Connection: close\r\n\r\n"),
        b"",
    );
    assert_eq!(st, 431);
    assert_error(&json_of(&body), "RequestHeaderFieldsTooLargeException", 431);
    // 504: a request whose body never arrives outlives the request timeout.
    let head = format!(
        "POST /v1/{p}/namespaces HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n",
        basic()
    );
    let t = Instant::now();
    let (st, _, body) = raw(&s, &head, b"{");
    assert_eq!(st, 504);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_error(&json_of(&body), "GatewayTimeoutException", 504);
    // 400 from a body that is not what the route expects keeps the error model.
    let (st, v) = s
        .post(
            &format!("/v1/{p}/namespaces"),
            json!({"namespace": "not-a-list"}),
        )
        .await;
    assert_eq!(st, 400);
    assert_error(&v, "BadRequestException", 400);
    s.stop().await;
}

async fn token(s: &TestServer, scope: &str) -> (u16, Value) {
    let r = s
        .client
        .post(s.url("/v1/oauth/tokens"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", KEY_ID),
            ("client_secret", SECRET),
            ("scope", scope),
        ])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn token_endpoint_refuses_oversized_and_malformed_scopes() {
    let s = TestServer::start().await;
    for bad in [
        "x".repeat(1024 * 1024),
        "catalog\r\nX-Injected: 1".into(),
        "a\nb".into(),
        "a  b".into(),
        "quote\"d".into(),
        "caf\u{e9}".into(),
    ] {
        let (st, v) = token(&s, &bad).await;
        assert_eq!(st, 400, "{v}");
        assert_eq!(v["error"], "invalid_scope", "{v}");
        assert!(v.get("access_token").is_none());
    }
    for good in [
        "catalog",
        "PRINCIPAL_ROLE:ALL",
        "catalog PRINCIPAL_ROLE:ALL sql:*",
        &"s".repeat(1024),
    ] {
        let (st, v) = token(&s, good).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["scope"], good);
    }
    s.stop().await;
}

#[cfg(unix)]
#[tokio::test]
async fn database_files_and_data_dir_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let outer = tempfile::tempdir().unwrap();
    let data = outer.path().join("fresh").join("data");
    let d = data.clone();
    let s = TestServer::start_with(move |c| {
        c.data_dir = d.clone();
        c.allowed_file_roots = vec![d];
    })
    .await;
    // Writes, so the WAL and shared-memory files exist.
    let p = s.prefix().await;
    assert_eq!(
        s.post(&format!("/v1/{p}/namespaces"), json!({"namespace": ["x"]}))
            .await
            .0,
        200
    );
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&data), 0o700);
    for f in [
        "sluice.db",
        "sluice.db-wal",
        "sluice.db-shm",
        "master.key",
        "jwt-signing.key",
    ] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    s.stop().await;

    // A database left world-readable by an older version is tightened on open.
    for f in ["sluice.db", "sluice.db-wal", "sluice.db-shm"] {
        let f = data.join(f);
        if f.exists() {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let d = data.clone();
    let s = TestServer::start_with(move |c| {
        c.data_dir = d.clone();
        c.allowed_file_roots = vec![d];
    })
    .await;
    assert_eq!(mode(&data.join("sluice.db")), 0o600);
    s.stop().await;
}

#[tokio::test]
async fn failed_authentication_is_throttled_per_source_and_per_key() {
    let s = TestServer::start_with(|c| c.auth_failures_per_minute = 5).await;
    let wrong = "wrong-secret-wrong-secret-wrong-secret-x";
    let get = |client: reqwest::Client, id: &'static str, secret: &'static str| {
        let url = s.url("/v1/config?warehouse=default");
        async move {
            let r = client
                .get(url)
                .basic_auth(id, Some(secret))
                .send()
                .await
                .unwrap();
            let retry = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            (r.status().as_u16(), retry, r.json::<Value>().await.unwrap())
        }
    };
    for _ in 0..5 {
        assert_eq!(
            get(s.client.clone(), "AKIAGUESSEDKEY000001", wrong).await.0,
            401
        );
    }
    let (st, retry, v) = get(s.client.clone(), "AKIAGUESSEDKEY000001", wrong).await;
    assert_eq!(st, 429, "{v}");
    assert_error(&v, "TooManyRequestsException", 429);
    let secs: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=12).contains(&secs), "{secs}");
    // The source is blocked for any credential, the right one included ...
    assert_eq!(get(s.client.clone(), KEY_ID, SECRET).await.0, 429);
    // ... while another source may still use its own key, but not the guessed one.
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    assert_eq!(get(other.clone(), KEY_ID, SECRET).await.0, 200);
    assert_eq!(
        get(other.clone(), "AKIAGUESSEDKEY000001", wrong).await.0,
        429
    );
    // Bearer guesses count per source.
    for _ in 0..5 {
        let r = other
            .get(s.url("/v1/config"))
            .bearer_auth("not-a-jwt")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = other
        .get(s.url("/v1/config"))
        .bearer_auth("not-a-jwt")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    s.stop().await;
}

#[tokio::test]
async fn token_endpoint_throttles_in_the_oauth2_shape() {
    let s = TestServer::start_with(|c| c.auth_failures_per_minute = 3).await;
    let form = |secret: &'static str| {
        [
            ("grant_type", "client_credentials"),
            ("client_id", KEY_ID),
            ("client_secret", secret),
        ]
    };
    for _ in 0..3 {
        let r = s
            .client
            .post(s.url("/v1/oauth/tokens"))
            .form(&form("nope"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = s
        .client
        .post(s.url("/v1/oauth/tokens"))
        .form(&form(SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "temporarily_unavailable", "{v}");
    assert!(!v.to_string().contains(SECRET));
    s.stop().await;
}

#[tokio::test]
async fn throttling_off_with_zero() {
    let s = TestServer::start_with(|c| c.auth_failures_per_minute = 0).await;
    for _ in 0..40 {
        let r = s
            .client
            .get(s.url("/v1/config"))
            .basic_auth(KEY_ID, Some("wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    assert_eq!(s.get("/v1/config?warehouse=default").await.0, 200);
    s.stop().await;
}

/// Item 14: the server is as strict as its OpenAPI document. The audit log's `limit` is
/// documented as 1..=1000; outside it the answer is a 400 (schemathesis'
/// `negative_data_rejection` found `limit=0` answered 200).
#[tokio::test]
async fn audit_limit_outside_the_documented_range_is_refused() {
    let s = TestServer::start().await;
    let (st, doc) = s.get("/management/v1/openapi.json").await;
    assert_eq!(st, 200);
    let params = doc["paths"]["/management/v1/audit"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let limit = params.iter().find(|p| p["name"] == "limit").unwrap();
    assert_eq!(limit["schema"]["minimum"], 1, "{limit}");
    assert_eq!(limit["schema"]["maximum"], 1000, "{limit}");
    for bad in ["0", "1001", "4294967295"] {
        let (st, v) = s.get(&format!("/management/v1/audit?limit={bad}")).await;
        assert_eq!(st, 400, "limit={bad}: {v}");
        assert_error(&v, "BadRequestException", 400);
    }
    for good in ["1", "1000"] {
        let (st, v) = s.get(&format!("/management/v1/audit?limit={good}")).await;
        assert_eq!(st, 200, "limit={good}: {v}");
        assert!(v["entries"].as_array().unwrap().len() <= good.parse().unwrap());
    }
    s.stop().await;
}

/// Item 14: the document is exactly as strict as the server (schemathesis `--checks all`,
/// positive_data_acceptance found requests the document allowed and the server refused).
/// Every documented action is one the server takes, and the bodies that were looser than
/// the server now say what it refuses.
#[tokio::test]
async fn openapi_document_is_as_strict_as_the_server() {
    let s = TestServer::start().await;
    let (st, doc) = s.get("/management/v1/openapi.json").await;
    assert_eq!(st, 200);
    let schemas = &doc["components"]["schemas"];

    // The known actions, from sluice-auth's list; each is accepted by the check endpoint,
    // and one that is not listed is refused.
    let actions: Vec<&str> = schemas["CheckRequest"]["properties"]["action"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let known: Vec<&str> = sluice_auth::policy::Action::ALL
        .iter()
        .map(|a| a.as_str())
        .collect();
    assert_eq!(actions, known);
    let me = s.get("/management/v1/whoami").await.1["name"]
        .as_str()
        .unwrap()
        .to_string();
    for action in &actions {
        let (st, v) = s
            .post(
                "/management/v1/authz/check",
                json!({"user": me, "action": action, "resource": "*"}),
            )
            .await;
        assert_eq!(st, 200, "{action}: {v}");
    }
    let (st, _) = s
        .post(
            "/management/v1/authz/check",
            json!({"user": me, "action": "", "resource": "*"}),
        )
        .await;
    assert_eq!(st, 400);

    // Statement actions: exact actions and prefix globs are documented and accepted.
    let pattern = schemas["Statement"]["properties"]["action"]["items"]["pattern"]
        .as_str()
        .unwrap();
    assert!(pattern.starts_with("^(?:\\*+|"), "{pattern}");
    let (st, v) = s
        .post(
            "/management/v1/policies",
            json!({"name": "globs", "statements": [{"effect": "allow",
                "action": ["*", "catalog:*", "catalog:Read*", "auth:CheckPermission"],
                "resource": "sluice:auth:::audit"}]}),
        )
        .await;
    assert_eq!(st, 201, "{v}");

    // Names: the pattern the service enforces.
    for schema in [
        "CreateUserRequest",
        "CreateGroupRequest",
        "CreatePolicyRequest",
    ] {
        assert_eq!(
            schemas[schema]["properties"]["name"]["pattern"], "^[A-Za-z0-9._@+=,-]{1,128}$",
            "{schema}"
        );
        assert_eq!(schemas[schema]["additionalProperties"], false, "{schema}");
    }
    assert_eq!(
        s.post("/management/v1/users", json!({"name": ""})).await.0,
        400
    );
    let long = "a".repeat(128);
    assert_eq!(
        s.post("/management/v1/users", json!({"name": long}))
            .await
            .0,
        201
    );
    let too_long = "a".repeat(129);
    assert_eq!(
        s.post("/management/v1/users", json!({"name": too_long}))
            .await
            .0,
        400
    );

    // PATCH user and PUT policy have bodies of their own that refuse unknown fields.
    assert_eq!(schemas["UpdateUserRequest"]["additionalProperties"], false);
    assert_eq!(
        schemas["ReplacePolicyRequest"]["additionalProperties"],
        false
    );
    assert!(schemas["ReplacePolicyRequest"]["properties"]["name"].is_null());
    let (st, _) = s
        .call(
            reqwest::Method::PATCH,
            &format!("/management/v1/users/{long}"),
            Some(json!({"colour": "red"})),
        )
        .await;
    assert_eq!(st, 400);

    // Storage objects name their type; the ARN has its shape; undrop's body is optional
    // but never null.
    assert_eq!(schemas["StorageProfile"]["required"], json!(["type"]));
    assert_eq!(schemas["StorageCredential"]["required"], json!(["type"]));
    assert!(schemas["AttachPrincipal"]["properties"]["arn"]["pattern"]
        .as_str()
        .unwrap()
        .starts_with("^arn:aws"));
    let undrop = &doc["paths"]["/management/v1/warehouse/{id}/deleted-tables/{table_id}/undrop"]
        ["post"]["requestBody"];
    assert_eq!(undrop["required"], false, "{undrop}");
    assert_eq!(
        undrop["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/UndropRequest"
    );

    // The operations a storage probe decides say so.
    for path in [
        "/management/v1/warehouse",
        "/management/v1/warehouse/{id}/storage",
        "/management/v1/warehouse/{id}/storage-credential",
    ] {
        let description = doc["paths"][path]["post"]["description"].as_str().unwrap();
        assert!(description.contains("probe"), "{path}: {description}");
    }
    s.stop().await;
}

/// A client that sent `Expect: 100-continue` and got a final answer before `100 Continue`
/// may never send the body (botocore does not) and reuse the connection; the server must
/// say it closes, or the next request's first bytes are read as this body's.
#[tokio::test]
async fn an_unread_expect_continue_body_closes_the_connection() {
    let s = TestServer::start().await;
    let p = s.prefix().await;
    let a = addr(&s);
    let auth = basic();
    tokio::task::spawn_blocking(move || {
        // Refused before the body is read: the answer says close, and the server closes.
        let mut c = TcpStream::connect(&a).unwrap();
        c.write_all(
            format!(
                "POST /v1/{p}/namespaces HTTP/1.1\r\nHost: x\r\n\
                 Content-Type: application/json\r\nContent-Length: 22\r\n\
                 Expect: 100-continue\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = vec![0u8; 8192];
        let n = c.read(&mut buf).unwrap();
        let (status, head, _) = parse_response(&buf[..n]);
        assert_eq!(status, 401, "{head}");
        assert!(head.contains("connection: close"), "{head}");
        assert!(closed_within(&mut c, Duration::from_secs(5)));

        // Read after `100 Continue`: the connection stays open for the next request.
        let mut c = TcpStream::connect(&a).unwrap();
        let body = br#"{"namespace":["exp"]}"#;
        c.write_all(
            format!(
                "POST /v1/{p}/namespaces HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\
                 Expect: 100-continue\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let n = c.read(&mut buf).unwrap();
        assert!(
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100 Continue"),
            "{:?}",
            String::from_utf8_lossy(&buf[..n])
        );
        c.write_all(body).unwrap();
        let n = c.read(&mut buf).unwrap();
        let (status, head, _) = parse_response(&buf[..n]);
        assert_eq!(status, 200, "{head}");
        assert!(!head.contains("connection: close"), "{head}");
        c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let n = c.read(&mut buf).unwrap();
        assert_eq!(parse_response(&buf[..n]).0, 200);
    })
    .await
    .unwrap();
    s.stop().await;
}
