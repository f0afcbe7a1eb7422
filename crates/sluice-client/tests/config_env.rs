//! Configuration from the real process environment and profile files, against real servers.
//! The environment is process-global, so this binary is separate from the others and every
//! test takes `ENV_LOCK` and works inside an `Env` that restores all variables afterwards.

use crate::common;

use common::{BasicKey, TestServer, KEY_ID, SECRET};
use sluice_client::{AuthMethod, Client, ClientConfig, Profile, ProfileFile};
use sluice_core::Secret;
use std::path::{Path, PathBuf};

static ENV_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Clears every SLUICE_* variable (and the ones that locate config dirs) on creation, and
/// restores the original environment on drop.
struct Env {
    saved: Vec<(String, Option<String>)>,
}

impl Env {
    fn clean() -> Env {
        let mut keys: Vec<String> = std::env::vars()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with("SLUICE_"))
            .collect();
        keys.extend(["XDG_CONFIG_HOME".to_string(), "HOME".to_string()]);
        let saved = keys
            .iter()
            .map(|k| (k.clone(), std::env::var(k).ok()))
            .collect();
        for k in &keys {
            std::env::remove_var(k);
        }
        Env { saved }
    }
    fn set(&mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) {
        if !self.saved.iter().any(|(k, _)| k == key) {
            self.saved.push((key.to_string(), std::env::var(key).ok()));
        }
        std::env::set_var(key, value);
    }
    fn unset(&mut self, key: &str) {
        std::env::remove_var(key);
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for (k, v) in &self.saved {
            match v {
                Some(v) => std::env::set_var(k, v),
                None => std::env::remove_var(k),
            }
        }
    }
}

fn write_profiles(path: &Path, a: &TestServer, b: &TestServer) {
    let text = format!(
        "# two servers\ndefault-profile: a\nprofiles:\n  a:\n    endpoint: {}\n    access-key-id: {KEY_ID}\n    secret-access-key: {SECRET}\n    no-keyring: true\n    token-cache-dir: {}\n  b:\n    endpoint: {}\n    access-key-id: {KEY_ID}\n    secret-access-key: {SECRET}\n    no-keyring: true\n    timeout-seconds: 9\n",
        a.base,
        a.root().join("client").display(),
        b.base
    );
    std::fs::write(path, text).unwrap();
}

/// Which server a client talks to: server B has a user `only-on-b`.
async fn talks_to_b(c: &Client) -> bool {
    c.list_users()
        .await
        .unwrap()
        .iter()
        .any(|u| u.name == "only-on-b")
}

#[tokio::test]
async fn precedence_and_profile_switching_against_real_servers() {
    let _lock = ENV_LOCK.lock().await;
    let mut env = Env::clean();
    let (a, b) = (TestServer::start().await, TestServer::start().await);
    Client::new(b.config(), BasicKey::admin())
        .unwrap()
        .create_user("only-on-b", None, None)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    write_profiles(&file, &a, &b);
    env.set("SLUICE_CONFIG_FILE", &file);
    env.set("HOME", dir.path());

    // default-profile: a. The whole path the CLI takes: resolve → flows → client.
    let cfg = ClientConfig::resolve(ClientConfig::default()).unwrap();
    assert_eq!(cfg.profile.as_deref(), Some("a"));
    assert_eq!(cfg.auth_method, Some(AuthMethod::AccessKey));
    assert!(cfg.no_keyring);
    let c = Client::from_config(cfg).unwrap();
    assert!(!talks_to_b(&c).await);
    assert_eq!(
        c.whoami().await.unwrap().access_key_id.as_deref(),
        Some(KEY_ID)
    );

    // SLUICE_PROFILE switches.
    env.set("SLUICE_PROFILE", "b");
    let cfg = ClientConfig::resolve(ClientConfig::default()).unwrap();
    assert_eq!(cfg.profile.as_deref(), Some("b"));
    assert_eq!(cfg.timeout, Some(std::time::Duration::from_secs(9)));
    assert!(talks_to_b(&Client::from_config(cfg).unwrap()).await);

    // Code picks the profile over SLUICE_PROFILE.
    let cfg = ClientConfig::resolve(ClientConfig {
        profile: Some("a".into()),
        ..Default::default()
    })
    .unwrap();
    assert!(!talks_to_b(&Client::from_config(cfg).unwrap()).await);

    // SLUICE_ENDPOINT beats the profile's endpoint (profile a, endpoint of b) ...
    env.unset("SLUICE_PROFILE");
    env.set("SLUICE_ENDPOINT", &b.base);
    env.set("SLUICE_TIMEOUT_SECONDS", "4");
    let cfg = ClientConfig::resolve(ClientConfig::default()).unwrap();
    assert_eq!(cfg.profile.as_deref(), Some("a"));
    assert_eq!(
        cfg.source_of("endpoint"),
        "environment variable SLUICE_ENDPOINT"
    );
    assert_eq!(cfg.timeout, Some(std::time::Duration::from_secs(4)));
    assert!(
        cfg.source_of("access-key-id").contains("profile 'a'"),
        "{:?}",
        cfg.sources
    );
    assert!(talks_to_b(&Client::from_config(cfg).unwrap()).await);

    // ... and code beats the environment.
    let cfg = ClientConfig::resolve(ClientConfig {
        endpoint: Some(a.base.clone()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(cfg.source_of("endpoint"), "code");
    assert!(!talks_to_b(&Client::from_config(cfg).unwrap()).await);

    // Credentials from the environment: a wrong secret there beats the profile's good one.
    env.set("SLUICE_SECRET_ACCESS_KEY", "x".repeat(40));
    let cfg = ClientConfig::resolve(ClientConfig::default()).unwrap();
    let e = Client::from_config(cfg)
        .unwrap()
        .whoami()
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(401), "{e}");

    // Bad values name the variable.
    env.set("SLUICE_CONNECT_TIMEOUT_SECONDS", "fast");
    let e = ClientConfig::resolve(ClientConfig::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("SLUICE_CONNECT_TIMEOUT_SECONDS") && e.contains("fast"),
        "{e}"
    );
    env.unset("SLUICE_CONNECT_TIMEOUT_SECONDS");
    env.set("SLUICE_PROFILE", "c");
    let e = ClientConfig::resolve(ClientConfig::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'c'") && e.contains("SLUICE_PROFILE") && e.contains("a, b"),
        "{e}"
    );

    drop(env);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn profile_file_editing_and_default_locations() {
    let _lock = ENV_LOCK.lock().await;
    let mut env = Env::clean();
    let dir = tempfile::tempdir().unwrap();

    // No SLUICE_CONFIG_FILE: $XDG_CONFIG_HOME/sluice/config.yaml, else ~/.config/sluice.
    env.set("HOME", dir.path().join("home"));
    assert_eq!(
        ProfileFile::default_path().unwrap(),
        dir.path().join("home/.config/sluice/config.yaml")
    );
    env.set("XDG_CONFIG_HOME", dir.path().join("xdg"));
    let expected: PathBuf = dir.path().join("xdg/sluice/config.yaml");
    assert_eq!(ProfileFile::default_path().unwrap(), expected);
    assert!(
        ClientConfig::profiles_in_file().unwrap().is_empty(),
        "no file yet"
    );

    // save_profile creates the file 0600 (directories 0700) and updates it in place.
    let p = Profile {
        endpoint: Some("https://sluice.example.com".into()),
        auth_method: Some(AuthMethod::Pkce),
        client_id: Some("cli".into()),
        ..Default::default()
    };
    assert_eq!(ClientConfig::save_profile("work", &p).unwrap(), expected);
    let p2 = Profile {
        endpoint: Some("http://localhost:8181".into()),
        token: Some(Secret::new("t0k")),
        ..Default::default()
    };
    ClientConfig::save_profile("local", &p2).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&expected).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(expected.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
    }
    assert_eq!(ClientConfig::profiles_in_file().unwrap(), ["local", "work"]);
    let loaded = ClientConfig::load_profile("work").unwrap().unwrap();
    assert_eq!(loaded.auth_method, Some(AuthMethod::Pkce));
    assert!(ClientConfig::load_profile("nope").unwrap().is_none());

    // Set the default and resolve from it.
    let mut f = ProfileFile::load_default().unwrap();
    f.set_default_profile(Some("local".into()));
    f.save().unwrap();
    let cfg = ClientConfig::resolve(ClientConfig::default()).unwrap();
    assert_eq!(
        (cfg.profile.as_deref(), cfg.auth_method.clone()),
        (Some("local"), Some(AuthMethod::StaticToken))
    );
    assert_eq!(cfg.token.as_ref().unwrap().expose(), "t0k");
    assert_eq!(cfg.config_file.as_deref(), Some(expected.as_path()));
    // The token cache defaults to the config dir.
    assert_eq!(
        cfg.token_cache_path().unwrap(),
        dir.path().join("xdg/sluice/tokens.json")
    );
    env.set("SLUICE_TOKEN_CACHE_DIR", dir.path().join("cache"));
    env.set("SLUICE_NO_KEYRING", "1");
    let cfg = ClientConfig::resolve(ClientConfig::default()).unwrap();
    assert!(cfg.no_keyring);
    assert_eq!(
        cfg.token_cache_path().unwrap(),
        dir.path().join("cache/tokens.json")
    );

    // A typo in the file is reported with the key and the file.
    std::fs::write(&expected, "profiles:\n  work:\n    endpiont: https://x\n").unwrap();
    let e = ClientConfig::resolve(ClientConfig::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("endpiont") && e.contains(expected.to_str().unwrap()),
        "{e}"
    );
    drop(env);
}

#[tokio::test]
async fn default_client_is_built_once_from_the_environment() {
    let _lock = ENV_LOCK.lock().await;
    let mut env = Env::clean();
    let s = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    env.set("HOME", dir.path());
    env.set("SLUICE_ENDPOINT", &s.base);
    env.set("SLUICE_ACCESS_KEY_ID", KEY_ID);
    env.set("SLUICE_SECRET_ACCESS_KEY", SECRET);
    env.set("SLUICE_NO_KEYRING", "true");
    let c = Client::default_client().unwrap();
    assert_eq!(c.whoami().await.unwrap().name, "admin");
    // Later changes to the environment do not affect the shared client.
    env.set("SLUICE_ENDPOINT", "http://127.0.0.1:9");
    let c2 = Client::default_client().unwrap();
    assert_eq!(c2.endpoint().as_str(), c.endpoint().as_str());
    assert_eq!(c2.whoami().await.unwrap().name, "admin");
    drop(env);
    s.stop().await;
}
