//! Property tests for the parsers that take untrusted input: policy documents, AWS SigV4
//! identity tokens and bearer JWTs. Arbitrary input must never panic and never validate;
//! well-formed input must round-trip. Case counts are kept small so this runs in seconds
//! in every test run (`PROPTEST_CASES=10000` for a longer run).

use base64::Engine;
use proptest::prelude::*;
use sluice_auth::aws_iam::{AwsIamConfig, AwsIamVerifier, IdentityToken};
use sluice_auth::policy::{self, resource, Action, Effect, Policy, PolicySet, Statement};
use sluice_auth::{KeyMaterial, TokenIssuer};

/// proptest's default case count (256, or `PROPTEST_CASES`): setting `cases` here would
/// override the variable and make the longer run on demand a silent 256-case run.
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

#[test]
fn case_count_follows_proptest_cases() {
    let want = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    assert_eq!(config().cases, want);
}

/// Strings with the characters that matter to these parsers over-represented.
fn tricky_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9:*?/%._ \\-]{0,40}",
        "(sluice:(catalog|auth):::)?(warehouse|user|group|policy|namespace|table|audit)?[/*?%a-z0-9]{0,30}",
        "(catalog|auth|\\*):[A-Za-z*?]{0,20}",
    ]
}

fn statement() -> impl Strategy<Value = Statement> {
    (
        prop_oneof![Just(Effect::Allow), Just(Effect::Deny)],
        prop::collection::vec(tricky_string(), 0..4),
        tricky_string(),
    )
        .prop_map(|(effect, action, resource)| Statement {
            effect,
            action,
            resource,
        })
}

/// A name of the kind the catalog accepts, with the characters resource escaping handles.
fn name() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9_]{1,12}", "[a-z%/*? .\u{e9}\t]{1,12}"]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn policy_json_never_panics(json in prop_oneof![any::<String>(), "\\[\\{\"effect\":\"(allow|deny|x)\",\"action\":(\"[a-z:*]{0,12}\"|\\[\\]|1),\"resource\":\"[a-z:*/]{0,20}\"\\}\\]"]) {
        if let Ok(stmts) = policy::parse_statements(&json) {
            let _ = policy::validate_statements(&stmts);
        }
    }

    #[test]
    fn validation_and_evaluation_never_panic(stmts in prop::collection::vec(statement(), 0..6),
                                             action in tricky_string(), res in tricky_string()) {
        if policy::validate_statements(&stmts).is_ok() {
            prop_assert!(!stmts.is_empty() && stmts.len() <= policy::MAX_STATEMENTS);
            prop_assert!(stmts.iter().all(|s| !s.action.is_empty()));
            // Valid statements serialize and parse back to themselves (the stored form).
            let stored = serde_json::to_string(&stmts).unwrap();
            prop_assert_eq!(policy::parse_statements(&stored).unwrap(), stmts.clone());
        }
        let set = PolicySet::new(vec![Policy::new("p", stmts)]);
        let d = set.evaluate_name(&action, &res);
        let _ = d.explain();
    }

    #[test]
    fn glob_match_never_panics_and_matches_itself(pattern in tricky_string(), text in tricky_string()) {
        let _ = policy::glob_match(&pattern, &text);
        prop_assert!(policy::glob_match("*", &text));
        if !pattern.contains(['*', '?']) {
            prop_assert!(policy::glob_match(&pattern, &pattern));
        }
    }

    #[test]
    fn deny_wins_over_allow_on_canonical_resources(wh in name(), levels in prop::collection::vec(name(), 1..4), table in name()) {
        let res = resource::table(&wh, &levels, &table);
        let allow = Statement::allow(["catalog:*"], res.clone());
        let deny = Statement::deny(["catalog:ReadTable"], res.clone());
        prop_assert!(policy::validate_statements(&[allow.clone(), deny.clone()]).is_ok(), "{}", res);
        let set = PolicySet::new(vec![Policy::new("a", vec![allow.clone()]), Policy::new("d", vec![deny])]);
        prop_assert!(!set.is_allowed(Action::ReadTable, &res));
        prop_assert!(set.is_allowed(Action::WriteTable, &res));
        // An escaped name never reaches into a sibling: the allow covers only this table.
        let only = PolicySet::new(vec![Policy::new("a", vec![allow])]);
        let sibling = resource::table(&wh, &levels, &format!("{table}x"));
        prop_assert!(!only.is_allowed(Action::ReadTable, &sibling));
    }

    #[test]
    fn identity_token_decoding_never_panics(s in prop_oneof![any::<String>(), "[A-Za-z0-9+/=_-]{0,200}"]) {
        let _ = AwsIamVerifier::decode_token(&s);
        let b64 = base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        let _ = AwsIamVerifier::decode_token(&b64);
    }

    #[test]
    fn identity_tokens_round_trip_and_check_without_panicking(
        method in prop_oneof![Just("GET".to_string()), tricky_string()],
        host in prop_oneof![Just("sts.amazonaws.com".to_string()), "sts\\.[a-z0-9-]{1,15}\\.amazonaws\\.com", tricky_string()],
        region in prop_oneof![Just("us-east-1".to_string()), tricky_string()],
        action in prop_oneof![Just("GetCallerIdentity".to_string()), tricky_string()],
        date in prop_oneof!["20[0-9]{2}[01][0-9][0-3][0-9]T[0-2][0-9][0-5][0-9][0-5][0-9]Z", tricky_string()],
        expires in prop_oneof!["[0-9]{1,6}", tricky_string()],
        key in prop_oneof!["AKIA[A-Z0-9]{16}", tricky_string()],
        signature in prop_oneof!["[0-9a-f]{64}", tricky_string()],
        signed_headers in prop::collection::vec(prop_oneof![Just("host".to_string()), Just("x-sluice-server-id".to_string()), tricky_string()], 0..4),
        token in prop::option::of(tricky_string()),
    ) {
        let t = IdentityToken {
            method, host, region, action, date, expiration_duration: expires, access_key_id: key,
            signature, signed_headers, version: "2011-06-15".into(), algorithm: "AWS4-HMAC-SHA256".into(),
            security_token: token,
        };
        let decoded = AwsIamVerifier::decode_token(&t.encode()).unwrap();
        prop_assert!(decoded == t);
        let verifier = AwsIamVerifier::new(AwsIamConfig::new("sluice.test"), reqwest::Client::new());
        if verifier.check_token(&t, chrono::Utc::now()).is_ok() {
            prop_assert_eq!(t.method.as_str(), "GET");
            prop_assert_eq!(t.action.as_str(), "GetCallerIdentity");
        }
        // The URL replayed to STS can only ever point at the token's own host.
        if let Ok(u) = AwsIamVerifier::presigned_url(&t) {
            let parsed = url::Url::parse(&u).unwrap();
            prop_assert_eq!(parsed.scheme(), "https");
            prop_assert_eq!(parsed.host_str().map(str::to_ascii_lowercase), Some(t.host.to_ascii_lowercase()));
            prop_assert_eq!(parsed.path(), "/");
            prop_assert!(parsed.username().is_empty() && parsed.port().is_none());
        }
        let _ = sluice_auth::aws_iam::principal_arn(&t.region);
    }

    #[test]
    fn arbitrary_bearer_tokens_never_validate(s in prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,80}\\.[A-Za-z0-9_-]{0,43}",
        // A header that names `none` or another algorithm, an arbitrary payload, any signature.
        ("(eyJhbGciOiJub25lIn0|eyJhbGciOiJSUzI1NiJ9|eyJhbGciOiJIUzI1NiJ9)", "[A-Za-z0-9_-]{0,80}", "[A-Za-z0-9_-]{0,43}")
            .prop_map(|(h, p, s)| format!("{h}.{p}.{s}")),
    ]) {
        let issuer = TokenIssuer::new(&KeyMaterial::random(), "sluice", 3600);
        prop_assert!(issuer.verify(&s).is_err());
    }

    #[test]
    fn tampered_or_foreign_tokens_never_validate(name in "[a-z]{1,12}", scope in prop::option::of("[a-z:]{1,12}"),
                                                 flip in any::<prop::sample::Index>(), bit in 0u8..6) {
        let key = KeyMaterial::random();
        let issuer = TokenIssuer::new(&key, "sluice", 3600);
        let now = chrono::Utc::now().timestamp();
        let tok = issuer.issue(uuid::Uuid::new_v4(), &name, Some("AKIAEXAMPLE000000001"), scope.as_deref(), now).unwrap();
        prop_assert_eq!(&issuer.verify(&tok).unwrap().name, &name);
        // Another server's key, or another issuer name: refused.
        prop_assert!(TokenIssuer::new(&KeyMaterial::random(), "sluice", 3600).verify(&tok).is_err());
        prop_assert!(TokenIssuer::new(&key, "other", 3600).verify(&tok).is_err());
        // One base64url character changed anywhere: refused (or, for the few changes that
        // decode to the same bytes, the very same claims).
        let mut bytes = tok.clone().into_bytes();
        let i = flip.index(bytes.len());
        if bytes[i] != b'.' {
            let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let pos = alphabet.iter().position(|&c| c == bytes[i]).unwrap();
            bytes[i] = alphabet[(pos + 1 + usize::from(bit)) % 64];
            let tampered = String::from_utf8(bytes).unwrap();
            if let Ok(c) = issuer.verify(&tampered) {
                prop_assert_eq!(c, issuer.verify(&tok).unwrap());
            }
        }
        // Expired tokens are refused.
        let old = issuer.issue(uuid::Uuid::new_v4(), &name, None, None, now - 7200).unwrap();
        prop_assert!(issuer.verify(&old).is_err());
    }
}
