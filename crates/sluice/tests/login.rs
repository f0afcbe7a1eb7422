//! `sluice login` once, then every command works: the built binary against a real `sluice
//! serve`, with a temporary HOME (XDG config dir inside it) and no SLUICE_* settings after
//! the login. Each flow: log in, run whoami / warehouse list / namespace list / table list /
//! key list with no flags or environment, expire the cached token, show the next command
//! renews silently or stops with `session expired: run sluice login --profile X` (exit 3),
//! then log out and find no secret left anywhere under HOME.
//!
//! Keyring: `SLUICE_NO_KEYRING=1` (file only), or on (the kernel keyring where it works,
//! else the 0600 file fallback). Peers: slapd, the node oidc-provider and the STS stand-in
//! through the helpers the auth and client tests use (missing peers FAIL with install
//! instructions); the device approval on the provider's pages is the client tests' scripted
//! browser.

use crate::common;
use crate::flows_support;
use crate::oidc_peer;
use crate::slapd;
use crate::sts_stub;

use common::*;
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A temporary HOME for the CLI; the config dir is `$XDG_CONFIG_HOME/sluice` inside it.
struct Home {
    dir: tempfile::TempDir,
    keyring: bool,
}

impl Home {
    fn new(keyring: bool) -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
            keyring,
        }
    }

    fn config_dir(&self) -> PathBuf {
        self.dir.path().join("xdg").join("sluice")
    }

    fn tokens_file(&self) -> PathBuf {
        self.config_dir().join("tokens.json")
    }

    fn command(&self, args: &[&str], extra: &[(&str, &str)]) -> std::process::Command {
        let mut c = clean_command(self.dir.path());
        c.env("XDG_CONFIG_HOME", self.dir.path().join("xdg"));
        // The AWS credential chain (aws-role) sees only HOME/.aws, never this machine's AWS
        // settings or instance metadata.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("AWS_") {
                c.env_remove(k);
            }
        }
        c.env("AWS_EC2_METADATA_DISABLED", "true");
        if !self.keyring {
            c.env("SLUICE_NO_KEYRING", "1");
        }
        c.envs(extra.iter().copied()).args(args);
        c
    }

    fn run_with(&self, args: &[&str], extra: &[(&str, &str)], stdin: Option<&str>) -> Run {
        run_command(self.command(args, extra), stdin)
    }

    /// A command with no flags and no environment beyond HOME (and the keyring switch).
    fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[], None)
    }

    /// The cached tokens in the file (empty when the keyring holds them).
    fn cached_tokens(&self) -> Vec<String> {
        self.cached("access_token")
    }

    /// One field of every cached token in the file (e.g. `refresh_token`), where present.
    fn cached(&self, field: &str) -> Vec<String> {
        let Ok(text) = std::fs::read_to_string(self.tokens_file()) else {
            return Vec::new();
        };
        let v: Value = serde_json::from_str(&text).unwrap();
        v["tokens"]
            .as_object()
            .map(|m| {
                m.values()
                    .filter_map(|t| t[field].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Moves every cached token's expiry into the past (the tokens themselves are untouched:
    /// the server would still accept them, so a command that succeeds afterwards shows the
    /// client renewed before sending). False when the tokens are in the keyring instead.
    fn expire_tokens(&self) -> bool {
        let Ok(text) = std::fs::read_to_string(self.tokens_file()) else {
            return false;
        };
        let mut v: Value = serde_json::from_str(&text).unwrap();
        let Some(tokens) = v["tokens"].as_object_mut().filter(|t| !t.is_empty()) else {
            return false;
        };
        let past = (chrono::Utc::now() - chrono::Duration::seconds(30)).to_rfc3339();
        for t in tokens.values_mut() {
            t["expires_at"] = json!(past);
        }
        std::fs::write(self.tokens_file(), v.to_string()).unwrap();
        true
    }

    /// Files under HOME whose bytes contain `needle`.
    fn files_containing(&self, needle: &str) -> Vec<PathBuf> {
        fn walk(dir: &Path, needle: &[u8], out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, needle, out);
                } else if std::fs::read(&p)
                    .is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
                {
                    out.push(p);
                }
            }
        }
        let mut out = Vec::new();
        walk(self.dir.path(), needle.as_bytes(), &mut out);
        out
    }
}

/// The secret setting of the login method `config show` reports.
fn method_secret(shown: &Value) -> Option<&'static str> {
    match shown["settings"]["auth-method"]["value"].as_str()? {
        "access-key" => Some("secret-access-key"),
        "client-credentials" => Some("client-secret"),
        "api-key" => Some("api-key"),
        "static-token" => Some("token"),
        "ldap" => Some("password"),
        _ => None,
    }
}

/// What the command after an expiry must do.
#[derive(Clone, Copy, PartialEq, Debug)]
enum AfterExpiry {
    /// Renew without asking (a new token is cached).
    Renews,
    /// Stop with the one-line `session expired` error and exit code 3.
    SessionExpired,
    /// Nothing expires: the credential is sent (or produced) anew on every call.
    NothingCached,
}

struct Flow<'a> {
    login: Vec<&'a str>,
    stdin: Option<&'a str>,
    login_env: Vec<(&'a str, &'a str)>,
    profile: Option<&'a str>,
    user: &'a str,
    after_expiry: AfterExpiry,
    /// Must not be found under HOME after logout.
    secrets: Vec<&'a str>,
}

/// A warehouse with a namespace and a table, readable by everyone (Viewers).
fn seed(server: &Server) {
    let admin = Cli::admin(server);
    admin
        .run(&["namespace", "create", "-w", "default", "-n", "sales"])
        .ok();
    create_table(server, "default", "sales", "orders");
}

fn create_table(server: &Server, warehouse: &str, ns: &str, name: &str) {
    let body = json!({"name": name, "schema": {"type": "struct", "schema-id": 0, "fields": [
        {"id": 1, "name": "id", "required": true, "type": "long"}
    ]}});
    admin_call(server, warehouse, |prefix| {
        (format!("/v1/{prefix}/namespaces/{ns}/tables"), body)
    });
}

/// A POST as the bootstrap admin through the SDK (for what the CLI has no command for);
/// `request` gets the catalog prefix of `warehouse` and gives the path and body.
fn admin_call(
    server: &Server,
    warehouse: &str,
    request: impl FnOnce(&str) -> (String, Value),
) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = sluice_client::ClientConfig {
            endpoint: Some(server.endpoint.clone()),
            access_key_id: Some(ADMIN_KEY.into()),
            secret_access_key: Some(sluice_core::Secret::new(ADMIN_SECRET)),
            ..Default::default()
        };
        let client = sluice_client::Client::from_config(config).unwrap();
        let prefix = client.warehouse_prefix(warehouse).await.unwrap();
        let (path, body) = request(&prefix);
        client
            .raw_json(reqwest::Method::POST, &path, Some(&body))
            .await
            .unwrap()
    })
}

/// A user with an access key of its own, in Viewers: (key id, secret).
fn user_with_key(server: &Server, name: &str) -> (String, String) {
    let admin = Cli::admin(server);
    admin.run(&["user", "create", name]).ok();
    admin.run(&["group", "add-member", "Viewers", name]).ok();
    let k = admin.json(&["key", "create", "--user", name]);
    (
        k["access-key-id"].as_str().unwrap().to_string(),
        k["secret-access-key"].as_str().unwrap().to_string(),
    )
}

/// The commands every login must make work, with no flags or environment.
fn every_command_works(home: &Home, user: &str) {
    let me = home.run(&["-o", "json", "whoami"]).ok().json();
    assert_eq!(me["name"], user, "{me}");
    let w = home.run(&["-o", "json", "warehouse", "list"]).ok().json();
    assert!(w["warehouses"].to_string().contains("default"), "{w}");
    let n = home
        .run(&["-o", "json", "namespace", "list", "-w", "default"])
        .ok()
        .json();
    assert_eq!(n["namespaces"], json!([["sales"]]), "{n}");
    let t = home
        .run(&[
            "-o", "json", "table", "list", "-w", "default", "-n", "sales",
        ])
        .ok()
        .json();
    assert_eq!(t["identifiers"][0]["name"], "orders", "{t}");
    home.run(&["key", "list"]).ok();
    // Human output too (timestamps as local date-times, not epoch milliseconds).
    let human = home
        .run(&["table", "get", "-w", "default", "-n", "sales", "orders"])
        .ok();
    assert!(
        human.stdout.contains("last updated:") && !human.stdout.contains("(ms)"),
        "{human:#?}"
    );
}

fn scenario(server: &Server, home: &Home, flow: Flow<'_>) {
    let mut login = vec!["login"];
    login.extend(flow.login.iter().copied());
    let r = home.run_with(&login, &flow.login_env, flow.stdin).ok();
    logged_in(server, home, flow, r);
}

/// Everything after the login (`r`, its output): commands, config show, expiry, logout.
fn logged_in(server: &Server, home: &Home, flow: Flow<'_>, r: Run) {
    assert!(r.stdout.contains(flow.user), "{r:#?}");
    assert!(
        r.stderr.contains("Saved the login settings"),
        "first login saves: {r:#?}"
    );
    let profile = flow.profile.unwrap_or("default");
    // The profile file holds settings only.
    let config = std::fs::read_to_string(home.config_dir().join("config.yaml")).unwrap();
    for s in &flow.secrets {
        assert!(
            !config.contains(s),
            "a secret in the profile file:\n{config}"
        );
    }
    assert!(config.contains(&server.endpoint), "{config}");

    every_command_works(home, flow.user);

    // config show: where each setting comes from; a stored secret is named, never shown.
    let shown = home.run(&["-o", "json", "config", "show"]).ok().json();
    assert!(
        shown["settings"]["endpoint"]["source"]
            .as_str()
            .unwrap()
            .contains(&format!("profile '{profile}'")),
        "{shown}"
    );
    assert_eq!(
        shown["settings"]["timeout-seconds"]["source"], "default",
        "{shown}"
    );
    for s in &flow.secrets {
        assert!(!shown.to_string().contains(s), "{shown}");
    }
    // Whether the method's secret is stored, and the session the login left.
    let secret = method_secret(&shown);
    if let Some(k) = secret {
        let stored = shown["settings"][k]["stored"] == true;
        assert_eq!(stored, k != "password", "{k}: {shown}");
    }
    match flow.after_expiry {
        AfterExpiry::NothingCached => assert!(shown["session"].is_null(), "{shown}"),
        _ => assert_eq!(
            (&shown["session"]["cached"], &shown["session"]["expired"]),
            (&json!(true), &json!(false)),
            "{shown}"
        ),
    }
    let human = home.run(&["config", "show"]).ok().stdout;
    let session = human.lines().find(|l| l.starts_with("session:"));
    match flow.after_expiry {
        AfterExpiry::NothingCached => assert!(session.is_none(), "{human}"),
        _ => assert!(
            session.is_some_and(|l| l.contains("valid until")),
            "{human}"
        ),
    }

    // Expiry.
    let before = home.cached_tokens();
    match flow.after_expiry {
        AfterExpiry::NothingCached => assert!(before.is_empty(), "{before:?}"),
        expect => {
            if home.expire_tokens() {
                match expect {
                    AfterExpiry::Renews => {
                        let me = home.run(&["-o", "json", "whoami"]).ok().json();
                        assert_eq!(me["name"], flow.user);
                        // (With a keyring the new token may have gone there instead.)
                        let after = home.cached_tokens();
                        assert!(
                            after != before,
                            "a new token is cached: {before:?} → {after:?}"
                        );
                        assert!(
                            home.keyring || !after.is_empty(),
                            "a new token is cached: {before:?} → {after:?}"
                        );
                        every_command_works(home, flow.user);
                    }
                    _ => {
                        let r = home.run(&["whoami"]).code(3);
                        assert_eq!(
                            r.stderr.trim(),
                            format!("error: session expired: run sluice login --profile {profile}"),
                            "{r:#?}"
                        );
                        home.run(&["warehouse", "list"]).code(3);
                    }
                }
            } else {
                // The keyring holds the token (it works here): it cannot be aged from
                // outside, and the no-keyring run of the same flow covers expiry.
                assert!(home.keyring, "no cached token in the file and no keyring");
            }
        }
    }

    // Logout: nothing secret remains under HOME, and commands need a login again.
    let r = home.run(&["logout"]).ok();
    let removed = r.stdout.contains("Logged out");
    assert!(
        removed || flow.after_expiry == AfterExpiry::NothingCached,
        "{r:#?}"
    );
    for s in &flow.secrets {
        let found = home.files_containing(s);
        assert!(found.is_empty(), "secret still on disk in {found:?}");
    }
    for t in &before {
        assert!(
            home.files_containing(t).is_empty(),
            "a token is still on disk"
        );
    }
    let shown = home.run(&["-o", "json", "config", "show"]).ok().json();
    assert!(!shown.to_string().contains("stored for profile"), "{shown}");
    if let Some(k) = secret {
        assert_eq!(
            shown["settings"][k],
            json!({"value": null, "stored": false}),
            "{shown}"
        );
    }
    if removed && flow.after_expiry != AfterExpiry::NothingCached {
        assert_eq!(shown["session"], json!({"cached": false}), "{shown}");
    }
    if removed {
        let r = home.run(&["whoami"]);
        assert_ne!(r.code, 0, "{r:#?}");
    }
}

fn access_key_flows(keyring: bool) {
    let server = Server::start();
    seed(&server);
    let (id, secret) = user_with_key(&server, "carol");
    let stdin = format!("{secret}\n");

    // Plain: the key is sent with every call.
    let home = Home::new(keyring);
    scenario(
        &server,
        &home,
        Flow {
            login: vec![
                "--endpoint",
                &server.endpoint,
                "--access-key-id",
                &id,
                "--secret-stdin",
            ],
            stdin: Some(&stdin),
            login_env: vec![],
            profile: None,
            user: "carol",
            after_expiry: AfterExpiry::NothingCached,
            secrets: vec![&secret],
        },
    );

    // Exchanged for a token: the stored secret re-exchanges it when it runs out.
    let home = Home::new(keyring);
    scenario(
        &server,
        &home,
        Flow {
            login: vec![
                "--profile",
                "lake",
                "--endpoint",
                &server.endpoint,
                "--access-key-id",
                &id,
                "--exchange-access-key",
                "--secret-stdin",
            ],
            stdin: Some(&stdin),
            login_env: vec![],
            profile: Some("lake"),
            user: "carol",
            after_expiry: AfterExpiry::Renews,
            secrets: vec![&secret],
        },
    );
}

#[test]
fn access_key_plain_and_exchanged_without_keyring() {
    access_key_flows(false);
}

#[test]
fn access_key_plain_and_exchanged_with_keyring_or_file_fallback() {
    access_key_flows(true);
}

fn client_credentials_api_key_and_external_command(keyring: bool) {
    let server = Server::start();
    seed(&server);
    let (id, secret) = user_with_key(&server, "dave");
    let stdin = format!("{secret}\n");

    // Client credentials against Sluice's own token endpoint (an access key as the client).
    let home = Home::new(keyring);
    scenario(
        &server,
        &home,
        Flow {
            login: vec![
                "--endpoint",
                &server.endpoint,
                "--method",
                "client-credentials",
                "--client-id",
                &id,
                "--secret-stdin",
            ],
            stdin: Some(&stdin),
            login_env: vec![],
            profile: None,
            user: "dave",
            after_expiry: AfterExpiry::Renews,
            secrets: vec![&secret],
        },
    );

    // API key (endpoint, client id and secret in one string).
    let api_key = sluice_client::flows::encode_api_key(&sluice_client::flows::ApiKey {
        endpoint: server.endpoint.clone(),
        client_id: id.clone(),
        client_secret: sluice_core::Secret::new(secret.clone()),
        org: None,
    });
    let home = Home::new(keyring);
    scenario(
        &server,
        &home,
        Flow {
            login: vec![
                "--endpoint",
                &server.endpoint,
                "--method",
                "api-key",
                "--secret-stdin",
            ],
            stdin: Some(&format!("{api_key}\n")),
            login_env: vec![],
            profile: None,
            user: "dave",
            after_expiry: AfterExpiry::Renews,
            secrets: vec![&api_key, &secret],
        },
    );

    // External command: its output is the token; it runs again whenever one is needed.
    // (The command's own file lives outside HOME: it is the command's business, not ours.)
    let home = Home::new(keyring);
    let elsewhere = tempfile::tempdir().unwrap();
    let token_file = elsewhere.path().join("issued-token.json");
    let issue = |file: &Path| {
        use sluice_client::Authenticator;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let t = rt.block_on(async {
            let ctx = sluice_client::AuthContext::new(
                reqwest::Client::new(),
                url::Url::parse(&server.endpoint).unwrap(),
            );
            sluice_client::flows::ClientCredentialsAuth::new(
                id.clone(),
                sluice_core::Secret::new(secret.clone()),
            )
            .authenticate(&ctx)
            .await
            .unwrap()
        });
        let token = t.access_token.expose().to_string();
        std::fs::write(
            file,
            json!({"access_token": token, "expires_in": 3600}).to_string(),
        )
        .unwrap();
        token
    };
    let first = issue(&token_file);
    let command = format!("cat {}", token_file.display());
    scenario(
        &server,
        &home,
        Flow {
            login: vec![
                "--endpoint",
                &server.endpoint,
                "--method",
                "external-command",
                "--token-command",
                &command,
            ],
            stdin: None,
            login_env: vec![],
            profile: None,
            user: "dave",
            after_expiry: AfterExpiry::NothingCached,
            secrets: vec![&first],
        },
    );
    // The command runs for every call: a new token it prints is used at once.
    let second = issue(&token_file);
    assert_ne!(first, second);
    let r = home.run(&["-o", "json", "whoami"]).ok().json();
    assert_eq!(r["name"], "dave");
}

#[test]
fn client_credentials_api_key_and_external_command_without_keyring() {
    client_credentials_api_key_and_external_command(false);
}

#[test]
fn client_credentials_api_key_and_external_command_with_keyring_or_file_fallback() {
    client_credentials_api_key_and_external_command(true);
}

/// Logs in through a real browser step: `BROWSER` is a script that writes the URL it is
/// given to a file; this test then logs in on the provider's pages as `login` and follows
/// the redirect to the CLI's loopback listener.
fn browser_login(home: &Home, args: &[&str], login: &str) -> Run {
    let url_file = home.dir.path().join("browser-url");
    let script = home.dir.path().join("browser.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s' \"$1\" > {}.tmp && mv {0}.tmp {0}\n",
            url_file.display()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut all = vec!["login"];
    all.extend_from_slice(args);
    let mut c = home.command(&all, &[("BROWSER", script.to_str().unwrap())]);
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !url_file.exists() {
        assert!(
            Instant::now() < deadline,
            "the CLI never opened the browser"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let auth = url::Url::parse(&std::fs::read_to_string(&url_file).unwrap()).unwrap();
    std::fs::remove_file(&url_file).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let redirect_uri = oidc_peer::query_param(&auth, "redirect_uri").expect("redirect_uri");
        let cb = oidc_peer::Browser::new()
            .login(auth.as_str(), &redirect_uri, login)
            .await;
        let r = oidc_peer::http().get(cb).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
    });
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn oidc_server(issuer: &str, dir: &Path) -> Server {
    let toml = format!(
        "[oidc]\nurl = \"{issuer}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\npublic_client_id = \"{}\"\n\
         allowed_audiences = [\"{}\"]\ninitial_groups_claim_name = \"groups\"\ndefault_initial_groups = [\"Viewers\"]\n\
         scopes = [\"openid\", \"profile\", \"email\", \"groups\", \"offline_access\"]\n",
        oidc_peer::CONFIDENTIAL.0,
        oidc_peer::CONFIDENTIAL.1,
        oidc_peer::PUBLIC_CLIENT,
        oidc_peer::API_AUDIENCE,
    );
    let file = dir.join("server.toml");
    std::fs::write(&file, toml).unwrap();
    Server::start_with(&[("SLUICE_CONFIG", file.to_str().unwrap())])
}

fn oidc_provider_client_credentials_and_pkce(keyring: bool) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let peer = rt.block_on(oidc_peer::OidcPeer::start());
    let cfg_dir = tempfile::tempdir().unwrap();
    let server = oidc_server(&peer.issuer(), cfg_dir.path());
    seed(&server);

    // Client credentials at the provider's token endpoint; the stored client secret
    // repeats the grant when the token runs out.
    let home = Home::new(keyring);
    let token_url = format!("{}/token", peer.issuer());
    let stdin = format!("{}\n", oidc_peer::CONFIDENTIAL.1);
    scenario(
        &server,
        &home,
        Flow {
            login: vec![
                "--endpoint",
                &server.endpoint,
                "--method",
                "client-credentials",
                "--client-id",
                oidc_peer::CONFIDENTIAL.0,
                "--secret-stdin",
                "--token-url",
                &token_url,
                "--scope",
                "lakehouse",
                "--audience",
                oidc_peer::API_AUDIENCE,
            ],
            stdin: Some(&stdin),
            login_env: vec![],
            profile: None,
            user: oidc_peer::CONFIDENTIAL.0,
            after_expiry: AfterExpiry::Renews,
            secrets: vec![oidc_peer::CONFIDENTIAL.1],
        },
    );

    // PKCE with the server's public client, the browser step scripted: afterwards the refresh
    // token renews silently.
    let home = Home::new(keyring);
    let r = browser_login(
        &home,
        &["--endpoint", &server.endpoint, "--method", "pkce"],
        "erin",
    )
    .ok();
    assert!(r.stdout.contains("erin@example.org"), "{r:#?}");
    let admin = Cli::admin(&server);
    admin
        .run(&["group", "add-member", "Viewers", "erin@example.org"])
        .ok();
    every_command_works(&home, "erin@example.org");
    let before = home.cached_tokens();
    // (With a working keyring the token is there and cannot be aged from outside; the
    // no-keyring run covers the refresh.)
    if home.expire_tokens() {
        every_command_works(&home, "erin@example.org");
        assert_ne!(home.cached_tokens(), before, "refreshed");
    } else {
        assert!(home.keyring);
    }
    home.run(&["logout"]).ok();
    for t in &before {
        assert!(home.files_containing(t).is_empty());
    }
    let r = home.run(&["whoami"]).code(3);
    assert_eq!(
        r.stderr.trim(),
        "error: not logged in: run sluice login --profile default",
        "{r:#?}"
    );

    // Web identity: the code is single-use, so an expired session needs a new login.
    let home = Home::new(keyring);
    let r = browser_login(
        &home,
        &[
            "--endpoint",
            &server.endpoint,
            "--method",
            "web-identity",
            "--client-id",
            oidc_peer::CONFIDENTIAL.0,
        ],
        "frank",
    )
    .ok();
    assert!(r.stdout.contains("frank"), "{r:#?}");
    let name = home.run(&["-o", "json", "whoami"]).ok().json()["name"]
        .as_str()
        .unwrap()
        .to_string();
    admin.run(&["group", "add-member", "Viewers", &name]).ok();
    every_command_works(&home, &name);
    if home.expire_tokens() {
        let r = home.run(&["whoami"]).code(3);
        assert_eq!(
            r.stderr.trim(),
            "error: session expired: run sluice login --profile default",
            "{r:#?}"
        );
    } else {
        assert!(home.keyring);
    }
    home.run(&["logout"]).ok();
}

#[test]
fn oidc_provider_client_credentials_and_pkce_without_keyring() {
    oidc_provider_client_credentials_and_pkce(false);
}

#[test]
fn oidc_provider_client_credentials_and_pkce_with_keyring_or_file_fallback() {
    oidc_provider_client_credentials_and_pkce(true);
}

fn ldap_login_then_expiry_needs_a_new_login(keyring: bool) {
    let dir = slapd::Slapd::start();
    let cfg_dir = tempfile::tempdir().unwrap();
    let file = cfg_dir.path().join("server.toml");
    std::fs::write(
        &file,
        format!(
            "[ldap]\nserver_endpoint = \"{}\"\nbind_dn = \"{}\"\nbind_password = \"{}\"\nuser_base_dn = \"{}\"\n\
             user_filter = \"(objectClass=inetOrgPerson)\"\ndefault_user_group = \"Viewers\"\n\
             connection_timeout_seconds = 2\nrequest_timeout_seconds = 2\n",
            dir.url(),
            slapd::SVC_DN,
            slapd::SVC_PASSWORD,
            slapd::PEOPLE
        ),
    )
    .unwrap();
    let server = Server::start_with(&[("SLUICE_CONFIG", file.to_str().unwrap())]);
    seed(&server);
    let home = Home::new(keyring);
    scenario(
        &server,
        &home,
        Flow {
            login: vec![
                "--profile",
                "corp",
                "--endpoint",
                &server.endpoint,
                "--method",
                "ldap",
                "--username",
                "alice",
                "--secret-stdin",
            ],
            stdin: Some("alicepass\n"),
            login_env: vec![],
            profile: Some("corp"),
            user: "alice",
            // The directory password is not stored: a new session needs a new login.
            after_expiry: AfterExpiry::SessionExpired,
            secrets: vec!["alicepass"],
        },
    );
}

#[test]
fn ldap_login_then_expiry_needs_a_new_login_without_keyring() {
    ldap_login_then_expiry_needs_a_new_login(false);
}

#[test]
fn ldap_login_then_expiry_needs_a_new_login_with_keyring_or_file_fallback() {
    ldap_login_then_expiry_needs_a_new_login(true);
}

/// `--no-save` keeps the profile file untouched; `--save` on an existing profile updates it.
#[test]
fn save_and_no_save() {
    let server = Server::start();
    let (id, secret) = user_with_key(&server, "erik");
    let stdin = format!("{secret}\n");
    let home = Home::new(false);
    home.run_with(
        &[
            "login",
            "--no-save",
            "--endpoint",
            &server.endpoint,
            "--access-key-id",
            &id,
            "--secret-stdin",
        ],
        &[],
        Some(&stdin),
    )
    .ok();
    assert!(!home.config_dir().join("config.yaml").exists());
    assert!(home.files_containing(&secret).is_empty());
    // Nothing saved: a plain command has nothing to go on.
    home.run(&["whoami"]).code(1);
    // --save and --no-save together: a usage error.
    home.run(&["login", "--save", "--no-save"]).code(2);
}

/// `sluice login … --method device` with the approval scripted: the CLI's stderr is read
/// while it polls; the verification URI and user code it shows are entered on the
/// provider's pages, where `login` signs in and consents. Returns the finished login.
fn device_login(home: &Home, args: &[&str], issuer: &str, login: &'static str) -> Run {
    let mut all = vec!["login"];
    all.extend_from_slice(args);
    let mut c = home.command(&all, &[]);
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap();
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    // "To log in, visit:\n\n    URI\n\nand enter the code:\n\n    CODE\n"
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut shown = Vec::new();
    let (mut uri, mut code) = (None, None);
    while code.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            panic!("the CLI never showed a user code; stderr so far: {shown:#?}");
        };
        let value = line.trim().to_string();
        if !value.is_empty() {
            match shown.last().map(String::as_str) {
                Some("To log in, visit:") => uri = Some(value.clone()),
                Some("and enter the code:") => code = Some(value.clone()),
                _ => {}
            }
            shown.push(value);
        }
    }
    assert_eq!(
        uri.as_deref(),
        Some(format!("{issuer}/device").as_str()),
        "{shown:#?}"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let page = rt.block_on(flows_support::Jar::new().device(
        issuer,
        code.as_deref().unwrap(),
        login,
        true,
    ));
    assert!(page.contains("Sign-in Success"), "{page}");
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: reader.join().unwrap(),
    }
}

/// Device code against the oidc-provider (the server's public client `lake-cli`, offline
/// access granted): once approved, the refresh token renews silently after expiry, and
/// logout leaves neither token on disk.
fn device_code_flow(keyring: bool) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let peer = rt.block_on(oidc_peer::OidcPeer::start());
    let cfg_dir = tempfile::tempdir().unwrap();
    let server = oidc_server(&peer.issuer(), cfg_dir.path());
    seed(&server);

    let home = Home::new(keyring);
    let args: [&str; 6] = [
        "--endpoint",
        &server.endpoint,
        "--method",
        "device",
        "--login-timeout",
        "120",
    ];
    let r = device_login(&home, &args, &peer.issuer(), "gina").ok();
    assert!(r.stderr.contains("Logged in to"), "{r:#?}");
    let name = home.run(&["-o", "json", "whoami"]).ok().json()["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(name.starts_with("gina"), "{name}");
    Cli::admin(&server)
        .run(&["group", "add-member", "Viewers", &name])
        .ok();
    // (Empty when the keyring holds the tokens.)
    let refresh = home.cached("refresh_token");
    assert!(
        refresh.len() == 1 || (keyring && !home.tokens_file().exists()),
        "offline_access gives a refresh token: {refresh:?}"
    );
    logged_in(
        &server,
        &home,
        Flow {
            login: vec![],
            stdin: None,
            login_env: vec![],
            profile: None,
            user: &name,
            after_expiry: AfterExpiry::Renews,
            secrets: refresh.iter().map(String::as_str).collect(),
        },
        r,
    );
    // Renewed with the refresh token, not a new device approval: logout removed the newer
    // tokens too, and a plain command now asks for a login instead of showing a code.
    assert!(home.cached_tokens().is_empty());
    let r = home.run(&["whoami"]).code(3);
    assert_eq!(
        r.stderr.trim(),
        "error: not logged in: run sluice login --profile default",
        "{r:#?}"
    );
}

#[test]
fn device_code_without_keyring() {
    device_code_flow(false);
}

#[test]
fn device_code_with_keyring_or_file_fallback() {
    device_code_flow(true);
}

/// AWS role with the STS stand-in: the CLI signs GetCallerIdentity with the AWS credentials
/// in HOME/.aws (the default chain), the server replays it to the stand-in. Nothing is
/// cached (the principal is whatever the AWS chain yields), so there is no session to
/// expire: every command logs in again silently; logout leaves no Sluice token and the AWS
/// secret only in the AWS credentials file it came from.
fn aws_role_flow(keyring: bool) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let stub = rt.block_on(sts_stub::StsStub::start());
    let cfg_dir = tempfile::tempdir().unwrap();
    let file = cfg_dir.path().join("server.toml");
    std::fs::write(
        &file,
        format!(
            "[aws_iam]\nserver_id = \"sluice-login-test\"\nallowed_sts_hosts = [\"sts.amazonaws.com\", \"sts.*.amazonaws.com\"]\n\
             sts_endpoint_override = \"{}\"\n",
            stub.endpoint
        ),
    )
    .unwrap();
    let server = Server::start_with(&[("SLUICE_CONFIG", file.to_str().unwrap())]);
    seed(&server);
    let admin = Cli::admin(&server);
    admin.run(&["user", "create", "alice-aws"]).ok();
    admin
        .run(&["group", "add-member", "Viewers", "alice-aws"])
        .ok();
    let alice = sts_stub::alice();
    admin_call(&server, "default", |_| {
        (
            "/management/v1/users/alice-aws/external-principals".into(),
            json!({"arn": alice.arn}),
        )
    });

    let home = Home::new(keyring);
    let aws = home.dir.path().join(".aws");
    std::fs::create_dir(&aws).unwrap();
    let credentials = aws.join("credentials");
    std::fs::write(
        &credentials,
        format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            alice.access_key_id, alice.secret_access_key
        ),
    )
    .unwrap();
    scenario(
        &server,
        &home,
        Flow {
            login: vec![
                "--endpoint",
                &server.endpoint,
                "--method",
                "aws-role",
                "--aws-region",
                "eu-west-1",
            ],
            stdin: None,
            login_env: vec![],
            profile: None,
            user: "alice-aws",
            after_expiry: AfterExpiry::NothingCached,
            secrets: vec![],
        },
    );
    let seen = stub.seen();
    assert!(
        seen.iter()
            .all(|s| s.status == 200 && s.host.as_deref() == Some("sts.eu-west-1.amazonaws.com")),
        "{seen:?}"
    );
    // Whatever the session's age, the next command logs in again, without a word.
    let hits = stub.hits();
    let me = home.run(&["-o", "json", "whoami"]).ok();
    assert_eq!(me.json()["name"], "alice-aws");
    assert!(me.stderr.is_empty(), "{me:#?}");
    assert_eq!(stub.hits(), hits + 1, "one new AWS login");
    home.run(&["logout"]).ok();
    assert_eq!(
        home.files_containing(&alice.secret_access_key),
        vec![credentials],
        "the AWS secret stays only where it came from"
    );
    assert!(home.files_containing(&alice.access_key_id).len() == 1);
}

#[test]
fn aws_role_without_keyring() {
    aws_role_flow(false);
}

#[test]
fn aws_role_with_keyring_or_file_fallback() {
    aws_role_flow(true);
}

/// A Sluice server with the LDAP directory `dir` and extra environment.
fn ldap_server(dir: &slapd::Slapd, cfg_dir: &Path, env: &[(&str, &str)]) -> Server {
    let file = cfg_dir.join("server.toml");
    std::fs::write(
        &file,
        format!(
            "[ldap]\nserver_endpoint = \"{}\"\nbind_dn = \"{}\"\nbind_password = \"{}\"\nuser_base_dn = \"{}\"\n\
             user_filter = \"(objectClass=inetOrgPerson)\"\ndefault_user_group = \"Viewers\"\n\
             connection_timeout_seconds = 2\nrequest_timeout_seconds = 2\n",
            dir.url(),
            slapd::SVC_DN,
            slapd::SVC_PASSWORD,
            slapd::PEOPLE
        ),
    )
    .unwrap();
    let mut all = vec![("SLUICE_CONFIG", file.to_str().unwrap())];
    all.extend_from_slice(env);
    Server::start_with(&all)
}

/// Real expiry, no editing of the cache: the server issues 60-second tokens (its shortest
/// TTL). Inside the last half of a token's life the exchanged access key renews before
/// sending, while the LDAP login (no stored password) keeps using its still-valid token;
/// once that token has really expired, the LDAP profile stops with the one line and exit
/// code 3 (the CLI does not send a token it knows has expired) until the next login.
#[test]
fn short_token_ttl_renews_or_asks_for_a_new_login() {
    let dir = slapd::Slapd::start();
    let cfg_dir = tempfile::tempdir().unwrap();
    let server = ldap_server(&dir, cfg_dir.path(), &[("SLUICE_TOKEN_TTL_SECONDS", "60")]);
    seed(&server);
    let (id, secret) = user_with_key(&server, "hana");

    let lake = Home::new(false);
    lake.run_with(
        &[
            "login",
            "--profile",
            "lake",
            "--endpoint",
            &server.endpoint,
            "--access-key-id",
            &id,
            "--exchange-access-key",
            "--secret-stdin",
        ],
        &[],
        Some(&format!("{secret}\n")),
    )
    .ok();
    let corp = Home::new(false);
    corp.run_with(
        &[
            "login",
            "--profile",
            "corp",
            "--endpoint",
            &server.endpoint,
            "--method",
            "ldap",
            "--username",
            "alice",
            "--secret-stdin",
        ],
        &[],
        Some("alicepass\n"),
    )
    .ok();
    let logged_in = Instant::now();
    // Commands need no --profile: the first login made its profile the default.
    let lake_first = lake.cached_tokens();
    let corp_first = corp.cached_tokens();
    assert_eq!((lake_first.len(), corp_first.len()), (1, 1));
    every_command_works(&lake, "hana");
    every_command_works(&corp, "alice");
    assert_eq!(lake.cached_tokens(), lake_first, "fresh: no renewal yet");

    // Past half the token's life: renewed ahead of expiry where the flow can.
    std::thread::sleep(Duration::from_secs(32).saturating_sub(logged_in.elapsed()));
    let me = lake.run(&["-o", "json", "whoami"]).ok().json();
    assert_eq!(me["name"], "hana");
    let lake_second = lake.cached_tokens();
    assert_eq!(lake_second.len(), 1);
    assert_ne!(lake_second, lake_first, "renewed before expiry");
    let me = corp.run(&["-o", "json", "whoami"]).ok().json();
    assert_eq!(
        me["name"], "alice",
        "a valid token is used until it expires"
    );

    // Past the real expiry.
    std::thread::sleep(Duration::from_secs(62).saturating_sub(logged_in.elapsed()));
    let expiry = corp.cached("expires_at");
    let expiry = chrono::DateTime::parse_from_rfc3339(&expiry[0]).unwrap();
    assert!(expiry < chrono::Utc::now(), "really expired: {expiry}");
    every_command_works(&lake, "hana");
    let r = corp.run(&["whoami"]).code(3);
    assert_eq!(
        r.stderr.trim(),
        "error: session expired: run sluice login --profile corp",
        "{r:#?}"
    );
    corp.run(&["namespace", "list", "-w", "default"]).code(3);
    // A new login brings it back.
    corp.run_with(&["login", "--secret-stdin"], &[], Some("alicepass\n"))
        .ok();
    every_command_works(&corp, "alice");
}

/// Many `sluice` processes at once after the token expired, with a provider that rotates
/// refresh tokens and revokes the whole grant when a used one comes back (node
/// oidc-provider, public client): they renew once between them, through a lock beside the
/// token cache, and all succeed; the login stays usable afterwards.
#[test]
fn concurrent_processes_renew_once() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let peer = rt.block_on(oidc_peer::OidcPeer::start());
    let cfg_dir = tempfile::tempdir().unwrap();
    let server = oidc_server(&peer.issuer(), cfg_dir.path());
    seed(&server);
    let home = Home::new(false);
    let args: [&str; 6] = [
        "--endpoint",
        &server.endpoint,
        "--method",
        "device",
        "--login-timeout",
        "120",
    ];
    device_login(&home, &args, &peer.issuer(), "ivan").ok();
    let name = home.run(&["-o", "json", "whoami"]).ok().json()["name"]
        .as_str()
        .unwrap()
        .to_string();
    Cli::admin(&server)
        .run(&["group", "add-member", "Viewers", &name])
        .ok();
    for round in 0..2 {
        let before = home.cached("refresh_token");
        assert_eq!(before.len(), 1, "{before:?}");
        assert!(home.expire_tokens());
        let children: Vec<_> = (0..6)
            .map(|_| {
                let mut c =
                    home.command(&["-o", "json", "namespace", "list", "-w", "default"], &[]);
                c.stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                c.spawn().unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let after = home.cached("refresh_token");
        assert_eq!(after.len(), 1, "{after:?}");
        assert_ne!(after, before, "round {round}: one renewal, rotated");
        every_command_works(&home, &name);
    }
}

/// `sluice table get` for people: snapshot history newest first with time, operation,
/// added and removed records, and the refs; `--output json` is the server's response.
#[test]
fn table_get_shows_snapshot_history_and_refs() {
    let server = Server::start();
    seed(&server);
    let base = chrono::Utc::now().timestamp_millis() - 60_000;
    let snap = |id: i64, seq: i64, parent: Option<i64>, summary: Value| {
        let mut s = json!({"snapshot-id": id, "sequence-number": seq, "timestamp-ms": base + seq * 1000,
            "manifest-list": format!("file:///nowhere/m{seq}.avro"), "summary": summary, "schema-id": 0});
        if let Some(p) = parent {
            s["parent-snapshot-id"] = json!(p);
        }
        s
    };
    let commit = |updates: Value| {
        admin_call(&server, "default", |prefix| {
            (
                format!("/v1/{prefix}/namespaces/sales/tables/orders"),
                json!({"requirements": [], "updates": updates}),
            )
        })
    };
    commit(json!([
        {"action": "add-snapshot", "snapshot": snap(1111, 1, None, json!({"operation": "append",
            "added-records": "250", "added-files-size": "3145728", "total-records": "250",
            "total-data-files": "2", "total-files-size": "3145728"}))},
        {"action": "set-snapshot-ref", "ref-name": "main", "type": "branch", "snapshot-id": 1111},
        {"action": "set-snapshot-ref", "ref-name": "v1", "type": "tag", "snapshot-id": 1111},
    ]));
    commit(json!([
        {"action": "add-snapshot", "snapshot": snap(2222, 2, Some(1111), json!({"operation": "delete",
            "deleted-records": "40", "total-records": "210", "total-data-files": "2",
            "total-files-size": "2097152"}))},
        {"action": "set-snapshot-ref", "ref-name": "main", "type": "branch", "snapshot-id": 2222},
    ]));
    let admin = Cli::admin(&server);
    let out = admin
        .run(&["table", "get", "-w", "default", "-n", "sales", "orders"])
        .ok()
        .stdout;
    let local = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .with_timezone(&chrono::Local)
            .format("%Y-%m-%dT%H:%M:%S%:z")
            .to_string()
    };
    let line_with = |needle: &str| -> Vec<String> {
        out.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle}:\n{out}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(line_with("records:"), ["records:", "210"], "{out}");
    assert_eq!(line_with("size:"), ["size:", "2.0", "MiB"], "{out}");
    let history = out
        .split("snapshots (newest first, * = current):")
        .nth(1)
        .unwrap_or_else(|| panic!("no history:\n{out}"));
    let rows: Vec<Vec<&str>> = history
        .lines()
        .skip(2)
        .take(2)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["2222", "*", &local(base + 2000), "delete", "-", "40", "-"],
            vec![
                "1111",
                &local(base + 1000),
                "append",
                "250",
                "-",
                "3.0",
                "MiB"
            ],
        ],
        "{out}"
    );
    let refs = out
        .split("refs:")
        .nth(1)
        .unwrap_or_else(|| panic!("no refs:\n{out}"));
    let refs: Vec<Vec<&str>> = refs
        .lines()
        .skip(2)
        .take(2)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        refs,
        [vec!["main", "branch", "2222"], vec!["v1", "tag", "1111"]],
        "{out}"
    );
    assert!(
        !out.contains(&base.to_string()),
        "no epoch milliseconds: {out}"
    );
    // JSON: the load-table response as the server sent it.
    let json = admin.json(&["table", "get", "-w", "default", "-n", "sales", "orders"]);
    assert_eq!(json["metadata"]["current-snapshot-id"], 2222, "{json}");
    assert_eq!(
        json["metadata"]["snapshots"][0]["timestamp-ms"],
        base + 1000,
        "{json}"
    );
    assert!(json["metadata-location"].is_string(), "{json}");
}

/// Set for `sdk_child` runs: the profile to open ("" = `None`, the default one).
const SDK_CHILD_PROFILE: &str = "SDK_CHILD_PROFILE";

/// A program that uses the SDK's `Client::from_profile`, for `sdk_uses_the_cli_login`: this
/// test binary run again as only this test, with the CLI's HOME (a process of its own, so
/// the SDK reads the real environment and this process's stays untouched). Prints who it is
/// and the namespaces it sees; does nothing in an ordinary test run.
#[test]
fn sdk_child() {
    let Ok(profile) = std::env::var(SDK_CHILD_PROFILE) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = rt.block_on(async {
        let profile = Some(profile.as_str()).filter(|p| !p.is_empty());
        let client = sluice_client::Client::from_profile(profile)?;
        let me = client.whoami().await?;
        let prefix = client.warehouse_prefix("default").await?;
        let namespaces = client
            .raw_json(
                reqwest::Method::GET,
                &format!("/v1/{prefix}/namespaces"),
                None,
            )
            .await?;
        Ok::<_, sluice_client::ClientError>(format!("{} {}", me.name, namespaces["namespaces"]))
    });
    match result {
        Ok(line) => println!("SDK: {line}"),
        Err(e) => {
            eprintln!("SDK error: {e}");
            std::process::exit(7);
        }
    }
}

/// `sluice_client::Client::from_profile(None)` in another program uses the login the CLI
/// made (no settings of its own), renews it as the CLI does, and stops after a logout.
#[test]
fn sdk_uses_the_cli_login() {
    let server = Server::start();
    seed(&server);
    let (id, secret) = user_with_key(&server, "jules");
    let home = Home::new(false);
    home.run_with(
        &[
            "login",
            "--profile",
            "lake",
            "--endpoint",
            &server.endpoint,
            "--access-key-id",
            &id,
            "--exchange-access-key",
            "--secret-stdin",
        ],
        &[],
        Some(&format!("{secret}\n")),
    )
    .ok();
    let sdk = |profile: &str| {
        let mut c = std::process::Command::new(std::env::current_exe().unwrap());
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("SLUICE_") || k.starts_with("AWS_") || k.starts_with("NEXTEST") {
                c.env_remove(&*k);
            }
        }
        c.env("HOME", home.dir.path())
            .env("XDG_CONFIG_HOME", home.dir.path().join("xdg"))
            .env("SLUICE_NO_KEYRING", "1")
            .env(SDK_CHILD_PROFILE, profile)
            .args([
                "login::sdk_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ]);
        run_command(c, None)
    };
    let expected = r#"SDK: jules [["sales"]]"#;
    let r = sdk("").ok();
    assert!(r.stdout.contains(expected), "{r:#?}");
    let first = home.cached_tokens();
    assert_eq!(first.len(), 1);
    // Renewed silently with the stored secret, and cached for the CLI.
    assert!(home.expire_tokens());
    let r = sdk("lake").ok();
    assert!(r.stdout.contains(expected), "{r:#?}");
    let second = home.cached_tokens();
    assert!(
        second.len() == 1 && second != first,
        "{first:?} → {second:?}"
    );
    home.run(&["-o", "json", "whoami"]).ok();
    assert_eq!(home.cached_tokens(), second, "the CLI uses the SDK's token");
    home.run(&["logout"]).ok();
    let r = sdk("").code(7);
    assert!(
        r.stderr
            .contains("SDK error: not logged in: run sluice login --profile lake"),
        "{r:#?}"
    );
}
