//! Storage access delegation over real HTTP on loopback, against real S3 peers:
//! - remote signing: `POST …/tables/{id}/sign` (and the unscoped `/v1/aws/s3/sign`) for a
//!   table in an S3 warehouse on s3s-fs, with a PyIceberg-shaped request; baseline in the
//!   same run: an empty axum handler (`POST /empty` → `{}`) on its own loopback port, called
//!   with the same client (same bearer header) and the same request body, and Sluice's own
//!   `GET /health` (its HTTP stack floor);
//! - load table with vended credentials from a warm cache, on an STS-enabled warehouse on
//!   moto; baseline in the same run: loading the same table without the delegation header.
//!   The cold first load (the one that calls STS) is timed once.
//!
//! Each comparison is also measured as alternating rounds (A, B, B, A, …) so that load
//! drifting on a shared machine hits both sides alike; those ratios and the cold load go
//! to `<criterion dir>/delegation_extra.json` for the report.
//!
//! Needs s3s-fs (PATH or ~/.cargo/bin) and moto (`.venv-moto/bin/moto_server` or
//! `MOTO_SERVER_BIN`); panics with install instructions when one is missing.
//! `scripts/bench.sh` turns the results into BENCHMARKS.md.

// The peers are started exactly as the storage crate's integration tests start them.
mod common;
#[path = "../../sluice-storage/tests/common/moto.rs"]
mod moto;
#[path = "../../sluice-storage/tests/common/s3s_fs.rs"]
mod s3s_fs;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use moto::{xml_text, Moto};
use s3s_fs::S3sFs;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const S3S_BUCKET: &str = "signwh";
const MOTO_BUCKET: &str = "vendwh";
/// moto accepts any key while its auth checks are off (during setup).
const MOTO_SETUP: (&str, &str, Option<&str>) = ("AKIAMOTOSETUP0000000", "setup-secret", None);
const DELEGATION: &str = "x-iceberg-access-delegation";
/// Requests in flight for the concurrent variants.
const CONCURRENCY: usize = 8;

struct Env {
    base: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn start_server() -> Env {
    let common::BenchServer { base, client, dir } = common::start_server().await;
    Env {
        base,
        client,
        _dir: dir,
    }
}

impl Env {
    async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .client
            .post(format!("{}{}", self.base, path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn get(&self, path: &str, delegation: Option<&str>) -> Value {
        let mut rb = self.client.get(format!("{}{}", self.base, path));
        if let Some(d) = delegation {
            rb = rb.header(DELEGATION, d);
        }
        let r = rb.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_success(), "GET {path}: {status}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Creates an S3 warehouse with one namespace `bench` and one table `t`; returns the
    /// table's REST path (`/v1/{prefix}/namespaces/bench/tables/t`).
    async fn s3_warehouse_with_table(
        &self,
        name: &str,
        profile: Value,
        access_key: &str,
        secret_key: &str,
    ) -> String {
        self.post(
            "/management/v1/warehouse",
            json!({
                "warehouse-name": name,
                "storage-profile": profile,
                "storage-credential": {
                    "type": "s3", "credential-type": "access-key",
                    "aws-access-key-id": access_key, "aws-secret-access-key": secret_key,
                },
                "delete-profile": {"type": "hard"},
            }),
        )
        .await;
        let cfg = self
            .get(&format!("/v1/config?warehouse={name}"), None)
            .await;
        let prefix = cfg["overrides"]["prefix"].as_str().unwrap().to_string();
        self.post(
            &format!("/v1/{prefix}/namespaces"),
            json!({"namespace": ["bench"]}),
        )
        .await;
        let schema = json!({"type": "struct", "schema-id": 0, "fields": [
            {"id": 1, "name": "id", "required": true, "type": "long"},
            {"id": 2, "name": "ts", "required": false, "type": "timestamptz"},
            {"id": 3, "name": "data", "required": false, "type": "string"}]});
        // Created without a delegation header: no credentials are vended here.
        self.post(
            &format!("/v1/{prefix}/namespaces/bench/tables"),
            json!({"name": "t", "schema": schema}),
        )
        .await;
        format!("/v1/{prefix}/namespaces/bench/tables/t")
    }
}

/// `n` requests built by `req`, all in flight at once; panics unless every one succeeds.
async fn concurrently(n: usize, req: impl Fn() -> reqwest::RequestBuilder) {
    let futs = (0..n).map(|_| {
        let rb = req();
        async move {
            let r = rb.send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            r.bytes().await.unwrap();
        }
    });
    futures::future::join_all(futs).await;
}

/// Alternating rounds of `n` sequential requests built by `a` and by `b` (order flipped every
/// round, so a load trend cancels out). Returns the median per-request time of each side
/// and the median of the per-round ratios b/a.
async fn paired(
    rounds: usize,
    n: usize,
    a: impl Fn() -> reqwest::RequestBuilder,
    b: impl Fn() -> reqwest::RequestBuilder,
) -> Value {
    async fn round(n: usize, req: &impl Fn() -> reqwest::RequestBuilder) -> f64 {
        let start = Instant::now();
        for _ in 0..n {
            let r = req().send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            r.bytes().await.unwrap();
        }
        start.elapsed().as_nanos() as f64 / n as f64
    }
    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }
    let (mut ta, mut tb, mut ratios) = (vec![], vec![], vec![]);
    for i in 0..rounds {
        let (x, y) = if i % 2 == 0 {
            let x = round(n, &a).await;
            (x, round(n, &b).await)
        } else {
            let y = round(n, &b).await;
            (round(n, &a).await, y)
        };
        ta.push(x);
        tb.push(y);
        ratios.push(y / x);
    }
    json!({"a_ns": median(ta), "b_ns": median(tb), "ratio": median(ratios), "rounds": rounds, "requests_per_round": n})
}

/// Criterion's output directory, the way criterion finds it: `CRITERION_HOME`, else
/// `$CARGO_TARGET_DIR/criterion`, else the workspace's `target/criterion`.
fn criterion_dir() -> PathBuf {
    if let Some(h) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(h);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("criterion")
}

/// The moto setup of the storage crate's STS tests, plus what a warehouse needs: a bucket,
/// an IAM user allowed everything (the warehouse credential: it probes and writes metadata)
/// with an access key, and a role trusting exactly that user. Auth checks go on at the end,
/// so AssumeRole really verifies the caller. Returns (access key, secret key, role ARN).
async fn moto_setup(moto: &Moto) -> (String, String, String) {
    let r = reqwest::Client::new()
        .put(format!("{}/{MOTO_BUCKET}", moto.endpoint))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "create bucket on moto: {}",
        r.status()
    );
    let user = moto
        .query_ok(
            "iam",
            MOTO_SETUP,
            &[("Action", "CreateUser"), ("UserName", "sluice")],
        )
        .await;
    let user_arn = xml_text(&user, "Arn").expect("user Arn");
    let allow =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    moto.query_ok(
        "iam",
        MOTO_SETUP,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", "sluice"),
            ("PolicyName", "everything"),
            ("PolicyDocument", allow),
        ],
    )
    .await;
    let key = moto
        .query_ok(
            "iam",
            MOTO_SETUP,
            &[("Action", "CreateAccessKey"), ("UserName", "sluice")],
        )
        .await;
    let access_key = xml_text(&key, "AccessKeyId").expect("AccessKeyId");
    let secret_key = xml_text(&key, "SecretAccessKey").expect("SecretAccessKey");
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{user_arn}"}},"Action":"sts:AssumeRole"}}]}}"#
    );
    let role = moto
        .query_ok(
            "iam",
            MOTO_SETUP,
            &[
                ("Action", "CreateRole"),
                ("RoleName", "lake"),
                ("AssumeRolePolicyDocument", &trust),
            ],
        )
        .await;
    let role_arn = xml_text(&role, "Arn").expect("role Arn");
    moto.enable_auth();
    // Checks really are on: the set-up key no longer works, the user's key does.
    let (status, body) = moto
        .query("sts", MOTO_SETUP, &[("Action", "GetCallerIdentity")])
        .await;
    assert!(
        status == 403 || status == 400,
        "moto auth checks did not turn on: {status} {body}"
    );
    moto.query_ok(
        "sts",
        (&access_key, &secret_key, None),
        &[("Action", "GetCallerIdentity")],
    )
    .await;
    (access_key, secret_key, role_arn)
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // Peers first: they panic with install instructions when their binary is missing.
    let s3 = S3sFs::start(&[S3S_BUCKET]);
    let moto = Moto::start();
    let env = rt.block_on(start_server());

    // --- remote signing on s3s-fs -------------------------------------------------------
    let (sign_scoped_url, sign_unscoped_url, sign_body, empty_url) = rt.block_on(async {
        let profile = json!({
            "type": "s3", "bucket": S3S_BUCKET, "key-prefix": "bench", "region": "us-east-1",
            "endpoint": s3.endpoint, "path-style-access": true, "flavor": "s3-compat",
        });
        let table = env
            .s3_warehouse_with_table("signwh", profile, s3s_fs::ACCESS_KEY, s3s_fs::SECRET_KEY)
            .await;
        let loaded = env.get(&table, Some("remote-signing")).await;
        let cfg = &loaded["config"];
        let signer = format!(
            "{}/{}",
            cfg["s3.signer.uri"]
                .as_str()
                .expect("s3.signer.uri")
                .trim_end_matches('/'),
            cfg["s3.signer.endpoint"]
                .as_str()
                .expect("s3.signer.endpoint")
                .trim_start_matches('/')
        );
        // A real object (the current metadata file), so the signature can be checked once.
        let metadata_location = loaded["metadata-location"].as_str().unwrap();
        let key = metadata_location
            .strip_prefix(&format!("s3://{S3S_BUCKET}/"))
            .expect("metadata in the bucket");
        let body = json!({
            "method": "GET",
            "region": "us-east-1",
            "uri": format!("{}/{S3S_BUCKET}/{key}", s3.endpoint),
            "headers": {"user-agent": ["bench"]},
        });
        // Sanity: the signed request is accepted by s3s-fs (which verifies SigV4).
        let signed: Value = env
            .client
            .post(&signer)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut get = reqwest::Client::new().get(signed["uri"].as_str().expect("signed uri"));
        for (k, vs) in signed["headers"].as_object().expect("signed headers") {
            for v in vs.as_array().unwrap() {
                get = get.header(k, v.as_str().unwrap());
            }
        }
        let r = get.send().await.unwrap();
        assert_eq!(
            r.status(),
            200,
            "signed GET against s3s-fs: {}",
            r.text().await.unwrap_or_default()
        );
        let unscoped = format!("{}/v1/aws/s3/sign", env.base);
        let r = env.client.post(&unscoped).json(&body).send().await.unwrap();
        assert!(r.status().is_success(), "unscoped sign: {}", r.status());

        // The baseline: an empty handler on its own port, same client, same body.
        let empty = axum::Router::new().route(
            "/empty",
            axum::routing::post(|_body: axum::body::Bytes| async { axum::Json(json!({})) }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let empty_url = format!("http://{}/empty", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, empty).await.unwrap() });
        (
            signer,
            unscoped,
            serde_json::to_vec(&body).unwrap(),
            empty_url,
        )
    });

    let post = |url: &str| {
        env.client
            .post(url)
            .header("content-type", "application/json")
            .body(sign_body.clone())
    };
    let mut g = c.benchmark_group("remote_signing");
    g.measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Elements(1));
    // Sluice's own HTTP stack floor (middleware, no auth, no catalog work), to split the
    // sign figure into what every request pays here and what signing adds.
    let health_url = format!("{}/health", env.base);
    g.bench_function("sluice_health", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let r = env.client.get(&health_url).send().await.unwrap();
                    assert!(r.status().is_success(), "health: {}", r.status());
                    r.bytes().await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    for (name, url) in [
        ("empty_handler", &empty_url),
        ("sign_table_scoped", &sign_scoped_url),
        ("sign_unscoped", &sign_unscoped_url),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let r = post(url).send().await.unwrap();
                        assert!(r.status().is_success(), "{name}: {}", r.status());
                        r.bytes().await.unwrap();
                    }
                    start.elapsed()
                })
            })
        });
    }
    g.throughput(Throughput::Elements(CONCURRENCY as u64));
    for (name, url) in [
        ("empty_handler_concurrent_8", &empty_url),
        ("sign_table_scoped_concurrent_8", &sign_scoped_url),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        concurrently(CONCURRENCY, || post(url)).await;
                    }
                    start.elapsed()
                })
            })
        });
    }
    g.finish();
    let sign_paired = rt.block_on(paired(
        21,
        200,
        || post(&empty_url),
        || post(&sign_scoped_url),
    ));
    println!("remote_signing paired (empty handler vs table-scoped sign): {sign_paired}");

    // --- vended credentials on moto -----------------------------------------------------
    let (table, cold) = rt.block_on(async {
        let (access_key, secret_key, role_arn) = moto_setup(&moto).await;
        let profile = json!({
            "type": "s3", "bucket": MOTO_BUCKET, "key-prefix": "bench", "region": "us-east-1",
            "endpoint": moto.endpoint, "path-style-access": true, "flavor": "s3-compat",
            "sts-enabled": true, "sts-role-arn": role_arn,
        });
        let table = env
            .s3_warehouse_with_table("vendwh", profile, &access_key, &secret_key)
            .await;
        // The first load with the header misses the cache and calls STS (AssumeRole on moto).
        let start = Instant::now();
        let loaded = env.get(&table, Some("vended-credentials")).await;
        let cold = start.elapsed();
        let cfg = &loaded["config"];
        let key_id = cfg["s3.access-key-id"]
            .as_str()
            .expect("vended s3.access-key-id");
        assert!(
            key_id.starts_with("ASIA") && cfg["s3.session-token"].is_string(),
            "{cfg}"
        );
        // Served from the cache from now on: the same credentials again.
        let again = env.get(&table, Some("vended-credentials")).await;
        assert_eq!(
            again["config"]["s3.access-key-id"].as_str(),
            Some(key_id),
            "second load hit the cache"
        );
        let plain = env.get(&table, None).await;
        assert!(
            plain["config"].get("s3.access-key-id").is_none(),
            "no credentials without the header"
        );
        (format!("{}{table}", env.base), cold)
    });
    println!(
        "vended_credentials/cold_first_load: {:.1} ms (one sample)",
        cold.as_secs_f64() * 1e3
    );

    let mut g = c.benchmark_group("vended_credentials");
    g.measurement_time(Duration::from_secs(4));
    for (name, delegation) in [
        ("load_without_delegation", None),
        ("load_warm_cache", Some("vended-credentials")),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let mut rb = env.client.get(&table);
                        if let Some(d) = delegation {
                            rb = rb.header(DELEGATION, d);
                        }
                        let r = rb.send().await.unwrap();
                        assert!(r.status().is_success(), "{name}: {}", r.status());
                        r.bytes().await.unwrap();
                    }
                    start.elapsed()
                })
            })
        });
    }
    g.finish();
    let load_paired = rt.block_on(paired(
        21,
        200,
        || env.client.get(&table),
        || {
            env.client
                .get(&table)
                .header(DELEGATION, "vended-credentials")
        },
    ));
    println!("vended_credentials paired (load without delegation vs warm cache): {load_paired}");

    let dir = criterion_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let extra = json!({
        "cold_first_load_ns": cold.as_nanos() as u64,
        "sign_vs_empty_paired": sign_paired,
        "vend_vs_plain_load_paired": load_paired,
    });
    std::fs::write(
        dir.join("delegation_extra.json"),
        serde_json::to_vec_pretty(&extra).unwrap(),
    )
    .unwrap();
    drop(env);
    drop(moto);
    drop(s3);
}

criterion_group!(delegation, benches);
criterion_main!(delegation);
