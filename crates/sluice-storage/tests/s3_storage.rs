//! `Storage` against a real S3 server (s3s-fs, which verifies signatures).

use crate::common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::s3s_fs::{self, S3sFs};
use futures::{StreamExt, TryStreamExt};
use sluice_core::Secret;
use sluice_storage::{
    ProbeStep, S3Flavor, S3Profile, Storage, StorageCredential, StorageError, StorageProfile,
    ValidationContext,
};

const BUCKET: &str = "warehouse";

fn profile(endpoint: &str, prefix: Option<&str>) -> StorageProfile {
    let mut p = S3Profile::new(BUCKET, "us-east-1");
    p.key_prefix = prefix.map(str::to_string);
    p.endpoint = Some(endpoint.to_string());
    p.path_style_access = true;
    p.flavor = S3Flavor::S3Compat;
    StorageProfile::S3(p)
}

fn cred(secret: &str) -> StorageCredential {
    StorageCredential::s3_access_key(s3s_fs::ACCESS_KEY, Secret::new(secret))
}

#[tokio::test]
async fn probe_and_object_operations() {
    let s3 = S3sFs::start(&[BUCKET]);
    let p = profile(&s3.endpoint, Some("wh1"));
    p.validate(&ValidationContext::default()).unwrap();
    let c = cred(s3s_fs::SECRET_KEY);
    p.validate_credential(Some(&c), &ValidationContext::default())
        .unwrap();
    let st = Storage::open(&p, Some(&c)).unwrap();
    assert_eq!(st.base_location(), "s3://warehouse/wh1");

    st.probe().await.unwrap();
    let bucket_dir = s3.data_dir.join(BUCKET);
    let leftovers: Vec<_> = walk(&bucket_dir);
    assert!(leftovers.is_empty(), "probe cleaned up: {leftovers:?}");

    let meta = "s3://warehouse/wh1/ns/t/metadata/00001-abc.metadata.json";
    assert!(!st.exists(meta).await.unwrap());
    assert!(matches!(
        st.read(meta).await,
        Err(StorageError::NotFound(_))
    ));
    st.write_new(meta, Bytes::from_static(b"{\"v\":1}"))
        .await
        .unwrap();
    let again = st.write_new(meta, Bytes::from_static(b"{\"v\":2}")).await;
    assert!(
        matches!(again, Err(StorageError::AlreadyExists(_))),
        "{again:?}"
    );
    assert_eq!(
        st.read(meta).await.unwrap(),
        Bytes::from_static(b"{\"v\":1}")
    );
    assert!(st.exists(meta).await.unwrap());
    st.write(meta, Bytes::from_static(b"{\"v\":3}"))
        .await
        .unwrap();
    assert_eq!(
        st.read(meta).await.unwrap(),
        Bytes::from_static(b"{\"v\":3}")
    );
    assert!(bucket_dir
        .join("wh1/ns/t/metadata/00001-abc.metadata.json")
        .is_file());

    st.write(
        "s3://warehouse/wh1/ns/t/data/part-0.parquet",
        Bytes::from_static(b"PAR1"),
    )
    .await
    .unwrap();
    st.write("s3://warehouse/wh1/ns/t10/data/x", Bytes::from_static(b"x"))
        .await
        .unwrap();
    assert_eq!(
        st.list_prefix("s3://warehouse/wh1/ns/t/").await.unwrap(),
        vec![
            "s3://warehouse/wh1/ns/t/data/part-0.parquet".to_string(),
            meta.to_string(),
        ]
    );

    assert!(matches!(
        st.write("s3://warehouse/wh2/x", Bytes::new()).await,
        Err(StorageError::NotInWarehouse(_))
    ));
    assert!(matches!(
        st.read("s3://other/wh1/x").await,
        Err(StorageError::NotInWarehouse(_))
    ));
    assert!(matches!(
        st.read("s3a://warehouse/wh1/ns/t/data/part-0.parquet")
            .await,
        Err(StorageError::NotInWarehouse(_))
    ));

    assert_eq!(
        st.delete_prefix("s3://warehouse/wh1/ns/t").await.unwrap(),
        2
    );
    assert!(st
        .list_prefix("s3://warehouse/wh1/ns/t")
        .await
        .unwrap()
        .is_empty());
    assert!(
        st.exists("s3://warehouse/wh1/ns/t10/data/x").await.unwrap(),
        "t10 is not under t"
    );
    assert_eq!(
        st.delete_prefix("s3://warehouse/wh1/ns/t").await.unwrap(),
        0
    );

    st.delete("s3://warehouse/wh1/ns/t10/data/x").await.unwrap();
    st.delete("s3://warehouse/wh1/ns/t10/data/x").await.unwrap();
    assert!(!st.exists("s3://warehouse/wh1/ns/t10/data/x").await.unwrap());
}

#[tokio::test]
async fn alternative_protocols_and_bucket_root() {
    let s3 = S3sFs::start(&[BUCKET]);
    let mut p = S3Profile::new(BUCKET, "us-east-1");
    p.endpoint = Some(format!("{}/", s3.endpoint));
    p.path_style_access = true;
    p.allow_alternative_protocols = true;
    let p = StorageProfile::S3(p);
    let st = Storage::open(&p, Some(&cred(s3s_fs::SECRET_KEY))).unwrap();
    assert_eq!(st.base_location(), "s3://warehouse");
    st.probe().await.unwrap();
    st.write("s3a://warehouse/ns/t/f", Bytes::from_static(b"a"))
        .await
        .unwrap();
    assert_eq!(
        st.read("s3n://warehouse/ns/t/f").await.unwrap(),
        Bytes::from_static(b"a")
    );
    assert_eq!(
        st.list_prefix("s3://warehouse").await.unwrap(),
        vec!["s3://warehouse/ns/t/f"]
    );
    assert_eq!(st.delete_prefix("s3://warehouse").await.unwrap(), 1);
}

#[tokio::test]
async fn delete_prefix_in_batches() {
    let s3 = S3sFs::start(&[BUCKET]);
    let p = profile(&s3.endpoint, Some("wh"));
    let st = Storage::open(&p, Some(&cred(s3s_fs::SECRET_KEY))).unwrap();
    // More than one DeleteObjects batch (1000 keys).
    let n = 1010;
    futures::stream::iter(0..n)
        .map(|i| {
            let st = st.clone();
            async move {
                st.write(
                    &format!("s3://warehouse/wh/ns/t/data/{i:05}"),
                    Bytes::from_static(b"x"),
                )
                .await
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    st.write("s3://warehouse/wh/ns/keep", Bytes::from_static(b"k"))
        .await
        .unwrap();
    assert_eq!(
        st.list_prefix("s3://warehouse/wh/ns/t")
            .await
            .unwrap()
            .len(),
        n
    );
    assert_eq!(
        st.delete_prefix("s3://warehouse/wh/ns/t").await.unwrap(),
        n as u64
    );
    assert_eq!(
        st.list_prefix("s3://warehouse/wh").await.unwrap(),
        vec!["s3://warehouse/wh/ns/keep"]
    );
}

#[tokio::test]
async fn probe_with_wrong_secret_fails_at_write() {
    let s3 = S3sFs::start(&[BUCKET]);
    let p = profile(&s3.endpoint, Some("wh"));
    let wrong = "definitely-not-the-secret-key";
    let st = Storage::open(&p, Some(&cred(wrong))).unwrap();
    let err = st.probe().await.unwrap_err();
    let StorageError::Probe {
        step,
        location,
        message,
    } = &err
    else {
        panic!("expected a probe error, got {err:?}");
    };
    assert_eq!(*step, ProbeStep::Write);
    assert!(
        location.starts_with("s3://warehouse/wh/.sluice-probe-"),
        "{location}"
    );
    assert!(
        message.contains("SignatureDoesNotMatch") || message.contains("403"),
        "{message}"
    );
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains(wrong) && !shown.contains(s3s_fs::SECRET_KEY),
        "{shown}"
    );
    assert!(walk(&s3.data_dir.join(BUCKET)).is_empty());
    eprintln!("wrong secret: {err}");
}

#[tokio::test]
async fn probe_with_unknown_access_key_fails_at_write() {
    let s3 = S3sFs::start(&[BUCKET]);
    let p = profile(&s3.endpoint, Some("wh"));
    let c = StorageCredential::s3_access_key("unknown-key", Secret::new(s3s_fs::SECRET_KEY));
    let err = Storage::open(&p, Some(&c))
        .unwrap()
        .probe()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StorageError::Probe { step: ProbeStep::Write, message, .. } if message.contains("403")),
        "{err}"
    );
}

#[tokio::test]
async fn probe_against_closed_port_fails_fast() {
    let port = s3s_fs::free_port();
    let p = profile(&format!("http://127.0.0.1:{port}"), Some("wh"));
    let st = Storage::open(&p, Some(&cred("whatever"))).unwrap();
    let started = Instant::now();
    let err = st.probe().await.unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let StorageError::Probe { step, message, .. } = &err else {
        panic!("expected a probe error, got {err:?}");
    };
    assert_eq!(*step, ProbeStep::Write);
    assert!(!message.is_empty());
    eprintln!("closed port: {err} (after {took:?})");
}

#[tokio::test]
async fn probe_against_silent_server_times_out() {
    // Accepts connections but never answers: only the probe's own deadline ends this.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let p = profile(&format!("http://127.0.0.1:{port}"), Some("wh"));
    let st = Storage::open(&p, Some(&cred("whatever"))).unwrap();
    let started = Instant::now();
    let err = st
        .probe_with_timeout(Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(&err, StorageError::Probe { step: ProbeStep::Write, message, .. } if message.contains("no answer")),
        "{err}"
    );
    holder.abort();
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}
