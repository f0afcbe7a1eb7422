//! A local stand-in for AWS STS `GetCallerIdentity` called through a presigned (query-string
//! SigV4) URL — the one thing moto cannot verify.
//!
//! For every request it recomputes the presigned signature with `aws-sigv4` over exactly what
//! it received: the method, the path, the query minus the presign parameters (which the
//! signer adds back from `X-Amz-Date`/`X-Amz-Expires`/`X-Amz-Security-Token` and the
//! credential scope), and the headers named in `X-Amz-SignedHeaders` with the values that
//! arrived (`host` included). A matching signature (compared in constant time) for a known
//! key pair answers the real `GetCallerIdentityResponse` XML; anything else answers the real
//! `ErrorResponse` shape (403 `SignatureDoesNotMatch`, `InvalidClientTokenId`, …).
//!
//! Runs on 127.0.0.1:0 inside the test's tokio runtime; dropping it stops it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

pub const ACCOUNT: &str = "123456789012";

/// A key pair the stub knows, and the identity STS reports for it.
#[derive(Clone, Debug)]
pub struct StubKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub arn: String,
    pub user_id: String,
}

impl StubKey {
    pub fn credentials(&self) -> Credentials {
        Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            self.session_token.clone(),
            None,
            "sts-stub",
        )
    }
}

/// Long-term user keys: `arn:aws:iam::123456789012:user/alice`.
pub fn alice() -> StubKey {
    StubKey {
        access_key_id: "AKIAEXAMPLEALICE0001".into(),
        secret_access_key: "aliceSecretKey/EXAMPLE+KEY0000000000001".into(),
        session_token: None,
        arn: format!("arn:aws:iam::{ACCOUNT}:user/alice"),
        user_id: "AIDAEXAMPLEALICE0001".into(),
    }
}

/// Another user, to check that keys are not interchangeable.
pub fn bob() -> StubKey {
    StubKey {
        access_key_id: "AKIAEXAMPLEBOB000002".into(),
        secret_access_key: "bobSecretKey/EXAMPLE+KEY000000000000002".into(),
        session_token: None,
        arn: format!("arn:aws:iam::{ACCOUNT}:user/bob"),
        user_id: "AIDAEXAMPLEBOB000002".into(),
    }
}

/// Temporary credentials of an assumed-role session:
/// `arn:aws:sts::123456789012:assumed-role/DataRole/sess`.
pub fn data_role_session() -> StubKey {
    StubKey {
        access_key_id: "ASIAEXAMPLEDATAROLE1".into(),
        secret_access_key: "roleSecretKey/EXAMPLE+KEY00000000000002".into(),
        session_token: Some("FwoGZXIvYXdzEXAMPLE//session+token/with=chars==".into()),
        arn: format!("arn:aws:sts::{ACCOUNT}:assumed-role/DataRole/sess"),
        user_id: "AROAEXAMPLEDATAROLE01:sess".into(),
    }
}

/// What the stub does with a request.
#[derive(Clone, Debug)]
pub enum Mode {
    /// Verify the signature and answer like STS.
    Verify,
    /// Answer this status and error code without looking at the request.
    Fail(u16, &'static str),
    /// Never answer (for timeouts).
    Hang,
    /// Answer 302 to this location.
    Redirect(String),
}

/// One request as the stub received it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub host: Option<String>,
    pub server_id: Option<String>,
    pub query: String,
    pub status: u16,
}

struct State {
    keys: HashMap<String, StubKey>,
    mode: Mode,
    seen: Mutex<Vec<Seen>>,
    hits: AtomicUsize,
}

pub struct StsStub {
    /// `http://127.0.0.1:PORT` — use as `sts_endpoint_override`.
    pub endpoint: String,
    state: Arc<State>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl StsStub {
    /// A verifying stub that knows alice, bob and the DataRole session.
    pub async fn start() -> Self {
        Self::start_with(Mode::Verify, vec![alice(), bob(), data_role_session()]).await
    }

    pub async fn start_with(mode: Mode, keys: Vec<StubKey>) -> Self {
        let state = Arc::new(State {
            keys: keys
                .into_iter()
                .map(|k| (k.access_key_id.clone(), k))
                .collect(),
            mode,
            seen: Mutex::new(Vec::new()),
            hits: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback({
            let state = state.clone();
            move |method: Method, uri: Uri, headers: HeaderMap| {
                let state = state.clone();
                async move { handle(&state, method, uri, headers).await }
            }
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Self {
            endpoint,
            state,
            shutdown: Some(tx),
        }
    }

    /// How many requests arrived.
    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// The requests that arrived (Hang-mode requests are recorded on arrival with status 0).
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
}

impl Drop for StsStub {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn xml(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

fn sts_error(status: u16, code: &str, message: &str) -> Response {
    let kind = if status >= 500 { "Receiver" } else { "Sender" };
    xml(
        StatusCode::from_u16(status).unwrap(),
        format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <Error>\n    \
             <Type>{kind}</Type>\n    <Code>{code}</Code>\n    <Message>{message}</Message>\n  \
             </Error>\n  <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>\n\
             </ErrorResponse>\n"
        ),
    )
}

fn identity_xml(key: &StubKey) -> Response {
    xml(
        StatusCode::OK,
        format!(
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  \
             <GetCallerIdentityResult>\n    <Arn>{}</Arn>\n    <UserId>{}</UserId>\n    \
             <Account>{ACCOUNT}</Account>\n  </GetCallerIdentityResult>\n  <ResponseMetadata>\n    \
             <RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId>\n  </ResponseMetadata>\n\
             </GetCallerIdentityResponse>\n",
            key.arn, key.user_id
        ),
    )
}

async fn handle(state: &State, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let header_str = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut seen = Seen {
        method: method.to_string(),
        host: header_str("host"),
        server_id: header_str("x-sluice-server-id"),
        query: uri.query().unwrap_or_default().to_string(),
        status: 0,
    };
    let response = match state.mode.clone() {
        Mode::Hang => {
            state.seen.lock().unwrap().push(seen);
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return sts_error(500, "InternalFailure", "hung");
        }
        Mode::Fail(status, code) => sts_error(status, code, "stub failure"),
        Mode::Redirect(to) => (StatusCode::FOUND, [(header::LOCATION, to)]).into_response(),
        Mode::Verify => verify(state, &method, &uri, &headers),
    };
    seen.status = response.status().as_u16();
    state.seen.lock().unwrap().push(seen);
    response
}

const PRESIGN_PARAMS: [&str; 7] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Security-Token",
    "X-Amz-Signature",
];

fn verify(state: &State, method: &Method, uri: &Uri, headers: &HeaderMap) -> Response {
    let deny = |code: &str, msg: &str| sts_error(403, code, msg);
    let raw_query = uri.query().unwrap_or_default();

    // Split the query: presign parameters (decoded) vs. the operation's (kept as received).
    let mut auth: HashMap<String, String> = HashMap::new();
    let mut kept: Vec<&str> = Vec::new();
    let mut operation: HashMap<String, String> = HashMap::new();
    for piece in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = url::form_urlencoded::parse(piece.as_bytes())
            .next()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .unwrap_or_default();
        if PRESIGN_PARAMS.contains(&k.as_str()) {
            if auth.insert(k.clone(), v).is_some() {
                return sts_error(
                    400,
                    "InvalidParameterCombination",
                    "duplicate presign parameter",
                );
            }
        } else {
            operation.insert(k, v);
            kept.push(piece);
        }
    }
    let Some(signature) = auth.get("X-Amz-Signature") else {
        return deny(
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        );
    };
    if auth.get("X-Amz-Algorithm").map(String::as_str) != Some("AWS4-HMAC-SHA256") {
        return sts_error(400, "IncompleteSignature", "unsupported algorithm");
    }
    let (Some(credential), Some(date), Some(expires), Some(signed_headers)) = (
        auth.get("X-Amz-Credential"),
        auth.get("X-Amz-Date"),
        auth.get("X-Amz-Expires"),
        auth.get("X-Amz-SignedHeaders"),
    ) else {
        return sts_error(400, "IncompleteSignature", "missing presign parameter");
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key, scope_date, region, service, "aws4_request"] = scope.as_slice() else {
        return sts_error(400, "IncompleteSignature", "malformed credential scope");
    };
    if *service != "sts" || !date.starts_with(scope_date) {
        return deny("SignatureDoesNotMatch", "credential scope does not match");
    }
    let Some(key) = state.keys.get(*access_key) else {
        return deny(
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        );
    };
    let token = auth.get("X-Amz-Security-Token");
    match (&key.session_token, token) {
        (None, None) => {}
        (Some(expected), Some(got)) if bool::from(expected.as_bytes().ct_eq(got.as_bytes())) => {}
        _ => {
            return deny(
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
            )
        }
    }
    let Ok(signed_at) = chrono::NaiveDateTime::parse_from_str(date, "%Y%m%dT%H%M%SZ") else {
        return sts_error(400, "IncompleteSignature", "malformed X-Amz-Date");
    };
    let signed_at = signed_at.and_utc();
    let Ok(expires) = expires.parse::<u64>() else {
        return sts_error(400, "IncompleteSignature", "malformed X-Amz-Expires");
    };
    if chrono::Utc::now() > signed_at + chrono::Duration::seconds(expires as i64) {
        return deny("ExpiredToken", "Signature expired");
    }

    // The signed headers, with the values as received.
    let mut signed: Vec<(String, String)> = Vec::new();
    for name in signed_headers.split(';') {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            return deny(
                "SignatureDoesNotMatch",
                &format!("signed header '{name}' is missing from the request"),
            );
        }
        signed.push((name.to_string(), values.join(",")));
    }
    let Some((_, host)) = signed.iter().find(|(n, _)| n == "host") else {
        return deny("SignatureDoesNotMatch", "host is not signed");
    };
    let url = if kept.is_empty() {
        format!("http://{host}{}", uri.path())
    } else {
        format!("http://{host}{}?{}", uri.path(), kept.join("&"))
    };

    let identity = key.credentials().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(expires));
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(signed_at.timestamp() as u64);
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(time)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let Ok(signable) = SignableRequest::new(
        method.as_str(),
        url,
        signed.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(&[]),
    ) else {
        return deny("SignatureDoesNotMatch", "unsignable request");
    };
    let Ok(output) = sign(signable, &params) else {
        return deny("SignatureDoesNotMatch", "unsignable request");
    };
    let (instructions, expected) = output.into_parts();
    let expected_signed_headers = instructions
        .params()
        .iter()
        .find(|(k, _)| *k == "X-Amz-SignedHeaders")
        .map(|(_, v)| v.to_string())
        .unwrap_or_default();
    let signature_ok = bool::from(expected.as_bytes().ct_eq(signature.as_bytes()));
    if !signature_ok || expected_signed_headers != *signed_headers {
        return deny(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        );
    }

    if operation.get("Action").map(String::as_str) != Some("GetCallerIdentity")
        || operation.get("Version").map(String::as_str) != Some("2011-06-15")
    {
        return sts_error(400, "InvalidAction", "Could not find operation");
    }
    identity_xml(key)
}

/// Presigns `GET https://<host>/?Action=GetCallerIdentity&Version=2011-06-15` with
/// `aws-sigv4`, signing exactly `extra_headers` besides `host`; returns the presigned URL as
/// the signer lays it out (operation params, then the signer's parameters in its order).
/// For building tokens the module would refuse (no server-id header, extra headers).
pub fn presign(
    creds: &Credentials,
    region: &str,
    host: &str,
    extra_headers: &[(&str, &str)],
    expires_in: Duration,
    now: SystemTime,
) -> String {
    let identity = creds.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(expires_in);
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(now)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let base = format!("https://{host}/?Action=GetCallerIdentity&Version=2011-06-15");
    let signable = SignableRequest::new(
        "GET",
        base.clone(),
        extra_headers.iter().copied(),
        SignableBody::Bytes(&[]),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut url = base;
    for (k, v) in instructions.params() {
        url.push('&');
        url.push_str(k);
        url.push('=');
        url.push_str(&url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>());
    }
    url
}

/// The identity token (lakeFS layout) for a presigned URL, as a client would build it.
pub fn token_from_url(url: &str, region: &str) -> sluice_auth::aws_iam::IdentityToken {
    let parsed = url::Url::parse(url).unwrap();
    let q: HashMap<String, String> = parsed.query_pairs().into_owned().collect();
    sluice_auth::aws_iam::IdentityToken {
        method: "GET".into(),
        host: parsed.host_str().unwrap().into(),
        region: region.into(),
        action: q["Action"].clone(),
        date: q["X-Amz-Date"].clone(),
        expiration_duration: q["X-Amz-Expires"].clone(),
        access_key_id: q["X-Amz-Credential"].split('/').next().unwrap().into(),
        signature: q["X-Amz-Signature"].clone(),
        signed_headers: q["X-Amz-SignedHeaders"]
            .split(';')
            .map(str::to_string)
            .collect(),
        version: q["Version"].clone(),
        algorithm: q["X-Amz-Algorithm"].clone(),
        security_token: q.get("X-Amz-Security-Token").cloned(),
    }
}
