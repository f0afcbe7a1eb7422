//! The `sluice` client commands end to end: the built binary against a real `sluice serve`
//! process (temp data dir, ephemeral port, bootstrap admin key from the environment), with
//! the CLI configured through SLUICE_* variables and a temp profile file. Every child gets
//! a clean environment: no ambient SLUICE_* variable (the harness may export SLUICE_BIN
//! and the like), HOME pointing into the test's temp dir, no keyring.

use crate::common;

use common::*;
use serde_json::{json, Value};

fn names(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect()
}

/// Creates a table through the SDK's raw access (the CLI has no `table create`: tables are
/// made by engines).
fn create_table(server: &Server, warehouse: &str, ns: &str, name: &str) {
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
        let body = json!({"name": name, "schema": {"type": "struct", "schema-id": 0, "fields": [
            {"id": 1, "name": "id", "required": true, "type": "long"},
            {"id": 2, "name": "data", "required": false, "type": "string"}
        ]}});
        client
            .raw_json(
                reqwest::Method::POST,
                &format!("/v1/{prefix}/namespaces/{ns}/tables"),
                Some(&body),
            )
            .await
            .unwrap();
    });
}

#[test]
fn warehouses_namespaces_and_tables() {
    let server = Server::start();
    let cli = Cli::admin(&server);

    // Warehouses: the default one exists.
    let list = cli.json(&["warehouse", "list"]);
    assert_eq!(names(&list, "warehouses"), vec!["default"]);
    let table = cli.run(&["warehouse", "list"]).ok();
    let first = table.stdout.lines().next().unwrap();
    assert!(
        first.starts_with("NAME") && first.contains("STATUS") && first.contains("LOCATION"),
        "{table:#?}"
    );
    assert!(
        table.stdout.lines().nth(1).unwrap().starts_with("default "),
        "{table:#?}"
    );

    // Create with a profile from a file, a delete profile inline.
    let root = server.data_dir.join("lake");
    let profile_file = cli.dir.path().join("profile.json");
    std::fs::write(
        &profile_file,
        json!({"type": "file", "root": root}).to_string(),
    )
    .unwrap();
    let created = cli.json(&[
        "warehouse",
        "create",
        "--name",
        "lake",
        "--storage-profile",
        &format!("@{}", profile_file.display()),
        "--delete-profile",
        r#"{"type":"hard"}"#,
    ]);
    assert_eq!(created["name"], "lake");
    assert_eq!(created["status"], "active");
    let id = created["id"].as_str().unwrap().to_string();
    // Duplicate: a conflict is an API error (1), in one line.
    let r = cli
        .run(&[
            "warehouse",
            "create",
            "--name",
            "lake",
            "--storage-profile",
            &json!({"type": "file", "root": root}).to_string(),
        ])
        .code(1);
    r.one_line_error();
    // By name and by id.
    assert_eq!(cli.json(&["warehouse", "get", "lake"])["id"], id.as_str());
    assert_eq!(cli.json(&["warehouse", "get", &id])["name"], "lake");
    let human = cli.run(&["warehouse", "get", "lake"]).ok();
    assert!(
        human.stdout.contains("name:")
            && human.stdout.contains("lake")
            && human.stdout.contains(&id),
        "{human:#?}"
    );

    assert_eq!(
        cli.json(&["warehouse", "deactivate", "lake"])["status"],
        "inactive"
    );
    assert_eq!(
        cli.json(&["warehouse", "activate", &id])["status"],
        "active"
    );
    assert_eq!(
        cli.json(&["warehouse", "rename", "lake", "pond"])["name"],
        "pond"
    );
    cli.run(&["warehouse", "get", "lake"])
        .code(4)
        .one_line_error();

    // Namespaces in the renamed warehouse: dotted and repeated levels.
    let ns = cli.json(&[
        "namespace",
        "create",
        "--warehouse",
        "pond",
        "--namespace",
        "sales",
        "-p",
        "owner=ana",
    ]);
    assert_eq!(ns["namespace"], json!(["sales"]));
    assert_eq!(ns["properties"]["owner"], "ana");
    cli.run(&["namespace", "create", "-w", "pond", "-n", "sales.eu"])
        .ok();
    cli.run(&[
        "namespace",
        "create",
        "-w",
        "pond",
        "--namespace",
        "sales",
        "--namespace",
        "us",
    ])
    .ok();
    let top = cli.json(&["namespace", "list", "-w", "pond"]);
    assert_eq!(top["namespaces"], json!([["sales"]]));
    let children = cli.json(&["namespace", "list", "-w", "pond", "--parent", "sales"]);
    let mut kids: Vec<Value> = children["namespaces"].as_array().unwrap().clone();
    kids.sort_by_key(|v| v.to_string());
    assert_eq!(kids, vec![json!(["sales", "eu"]), json!(["sales", "us"])]);
    let human = cli
        .run(&["namespace", "list", "-w", "pond", "--parent", "sales"])
        .ok();
    assert!(
        human.stdout.contains("sales.eu") && human.stdout.contains("sales.us"),
        "{human:#?}"
    );
    let got = cli.json(&["namespace", "get", "-w", "pond", "-n", "sales"]);
    assert_eq!(got["properties"]["owner"], "ana");
    let human = cli
        .run(&["namespace", "get", "-w", "pond", "-n", "sales"])
        .ok();
    assert!(
        human.stdout.contains("owner") && human.stdout.contains("ana"),
        "{human:#?}"
    );
    cli.run(&["namespace", "get", "-w", "pond", "-n", "ghost"])
        .code(4)
        .one_line_error();
    cli.run(&["namespace", "list", "-w", "no-such-warehouse"])
        .code(4)
        .one_line_error();

    // Tables.
    create_table(&server, "pond", "sales", "orders");
    create_table(&server, "pond", "sales", "refunds");
    let tables = cli.json(&["table", "list", "-w", "pond", "-n", "sales"]);
    let mut t: Vec<String> = names(&tables, "identifiers");
    t.sort();
    assert_eq!(t, vec!["orders", "refunds"]);
    let loaded = cli.json(&["table", "get", "-w", "pond", "-n", "sales", "orders"]);
    assert!(
        loaded["metadata"]["location"]
            .as_str()
            .unwrap()
            .starts_with("file://"),
        "{loaded}"
    );
    assert!(loaded["metadata"]["table-uuid"].is_string(), "{loaded}");
    let human = cli
        .run(&["table", "get", "-w", "pond", "-n", "sales", "orders"])
        .ok();
    assert!(
        human.stdout.contains("location:") && human.stdout.contains("schema:"),
        "{human:#?}"
    );
    assert!(
        human
            .stdout
            .lines()
            .any(|l| l.contains("data") && l.contains("string")),
        "{human:#?}"
    );
    cli.run(&["table", "get", "-w", "pond", "-n", "sales", "ghost"])
        .code(4)
        .one_line_error();

    // Rename within the namespace and across namespaces.
    cli.run(&[
        "table", "rename", "-w", "pond", "-n", "sales", "orders", "orders2",
    ])
    .ok();
    cli.run(&[
        "table",
        "rename",
        "-w",
        "pond",
        "-n",
        "sales",
        "refunds",
        "refunds",
        "--to-namespace",
        "sales.eu",
    ])
    .ok();
    assert_eq!(
        names(
            &cli.json(&["table", "list", "-w", "pond", "-n", "sales"]),
            "identifiers"
        ),
        vec!["orders2"]
    );
    assert_eq!(
        names(
            &cli.json(&["table", "list", "-w", "pond", "-n", "sales.eu"]),
            "identifiers"
        ),
        vec!["refunds"]
    );

    // Drop (one purged), then the namespaces, then the warehouse.
    cli.run(&["table", "drop", "-w", "pond", "-n", "sales", "orders2"])
        .ok();
    let dropped = cli.json(&[
        "table", "drop", "-w", "pond", "-n", "sales.eu", "refunds", "--purge",
    ]);
    assert_eq!(dropped["purge"], true);
    cli.run(&["table", "drop", "-w", "pond", "-n", "sales", "orders2"])
        .code(4)
        .one_line_error();
    // Not empty yet: a conflict.
    cli.run(&["namespace", "drop", "-w", "pond", "-n", "sales"])
        .code(1)
        .one_line_error();
    cli.run(&["namespace", "drop", "-w", "pond", "-n", "sales.eu"])
        .ok();
    cli.run(&["namespace", "drop", "-w", "pond", "-n", "sales.us"])
        .ok();
    cli.run(&["namespace", "drop", "-w", "pond", "-n", "sales"])
        .ok();
    assert_eq!(
        cli.json(&["namespace", "list", "-w", "pond"])["namespaces"],
        json!([])
    );
    let r = cli.run(&["warehouse", "delete", "pond"]).ok();
    assert!(r.stdout.contains("Deleted warehouse"), "{r:#?}");
    assert_eq!(
        names(&cli.json(&["warehouse", "list"]), "warehouses"),
        vec!["default"]
    );
    cli.run(&["warehouse", "delete", "pond"])
        .code(4)
        .one_line_error();
}

#[test]
fn users_groups_policies_and_keys() {
    let server = Server::start();
    let cli = Cli::admin(&server);

    // whoami, human and JSON.
    let me = cli.json(&["whoami"]);
    let admin_name = me["name"].as_str().unwrap().to_string();
    assert_eq!(me["access-key-id"], ADMIN_KEY);
    assert!(
        me["groups"].as_array().unwrap().contains(&json!("Admins")),
        "{me}"
    );
    let human = cli.run(&["whoami"]).ok();
    assert!(
        human.stdout.contains("user:")
            && human.stdout.contains(&admin_name)
            && human.stdout.contains("Admins"),
        "{human:#?}"
    );

    // Users.
    let u = cli.json(&[
        "user",
        "create",
        "alice",
        "--email",
        "alice@example.com",
        "--friendly-name",
        "Alice",
    ]);
    assert_eq!(u["name"], "alice");
    assert_eq!(u["email"], "alice@example.com");
    cli.run(&["user", "create", "bob"]).ok();
    let users = names(&cli.json(&["user", "list"]), "users");
    assert!(
        users.contains(&"alice".to_string()) && users.contains(&"bob".to_string()),
        "{users:?}"
    );
    assert_eq!(
        cli.json(&["user", "get", "alice"])["friendly-name"],
        "Alice"
    );
    let human = cli.run(&["user", "list"]).ok();
    assert!(
        human.stdout.starts_with("NAME") && human.stdout.contains("alice@example.com"),
        "{human:#?}"
    );
    cli.run(&["user", "get", "nobody"]).code(4).one_line_error();

    // Groups and members.
    let g = cli.json(&[
        "group",
        "create",
        "analysts",
        "--description",
        "Read the lake",
    ]);
    assert_eq!(g["description"], "Read the lake");
    assert!(names(&cli.json(&["group", "list"]), "groups").contains(&"analysts".to_string()));
    assert_eq!(cli.json(&["group", "get", "analysts"])["name"], "analysts");
    cli.run(&["group", "add-member", "analysts", "alice"]).ok();
    cli.run(&["group", "add-member", "Viewers", "alice"]).ok();
    assert_eq!(
        names(&cli.json(&["group", "members", "analysts"]), "users"),
        vec!["alice"]
    );
    cli.run(&["group", "add-member", "analysts", "bob"]).ok();
    cli.run(&["group", "remove-member", "analysts", "bob"]).ok();
    assert_eq!(
        names(&cli.json(&["group", "members", "analysts"]), "users"),
        vec!["alice"]
    );
    cli.run(&["group", "members", "ghosts"])
        .code(4)
        .one_line_error();

    // Policies: statements inline and from a file; attach to a user and a group.
    let stmts = r#"[{"effect":"deny","action":["catalog:DropTable"],"resource":"sluice:catalog:::warehouse/default/*"}]"#;
    let p = cli.json(&[
        "policy",
        "create",
        "NoDrops",
        "--statements",
        stmts,
        "--description",
        "no drops",
    ]);
    assert_eq!(p["name"], "NoDrops");
    assert_eq!(p["statements"][0]["effect"], "deny");
    let file = cli.dir.path().join("stmts.json");
    std::fs::write(
        &file,
        r#"{"statements":[{"effect":"deny","action":"catalog:*","resource":"sluice:catalog:::warehouse/default/namespace/secret/*"}]}"#,
    )
    .unwrap();
    let p = cli.json(&[
        "policy",
        "update",
        "NoDrops",
        "--statements",
        &format!("@{}", file.display()),
    ]);
    assert_eq!(p["statements"][0]["action"], json!(["catalog:*"]));
    assert!(names(&cli.json(&["policy", "list"]), "policies").contains(&"NoDrops".to_string()));
    let human = cli.run(&["policy", "get", "NoDrops"]).ok();
    assert!(
        human.stdout.contains("statements:") && human.stdout.contains("catalog:*"),
        "{human:#?}"
    );
    let human = cli.run(&["policy", "list"]).ok();
    assert!(
        human
            .stdout
            .lines()
            .any(|l| l.starts_with("NoDrops ") && l.contains(" 1 ")),
        "{human:#?}"
    );
    cli.run(&["policy", "attach", "NoDrops", "--user", "alice"])
        .ok();
    cli.run(&["policy", "attach", "NoDrops", "--group", "analysts"])
        .ok();
    // Bad statements are refused before any request, in one line.
    let r = cli
        .run(&[
            "policy",
            "create",
            "Bad",
            "--statements",
            r#"[{"effect":"maybe"}]"#,
        ])
        .code(1);
    assert!(r.one_line_error().contains("--statements"), "{r:#?}");
    let r = cli
        .run(&["policy", "create", "Bad", "--statements", "{not json"])
        .code(1);
    assert!(r.one_line_error().contains("not valid JSON"), "{r:#?}");
    cli.run(&["policy", "get", "Nope"]).code(4).one_line_error();

    // Access keys for alice: the secret once, never in a listing.
    let created = cli.run(&["key", "create", "--user", "alice"]).ok();
    assert!(created.stderr.contains("ONCE"), "{created:#?}");
    let secret_line = created
        .stdout
        .lines()
        .find(|l| l.starts_with("secret access key:"))
        .expect("secret line");
    let secret = secret_line.split_whitespace().last().unwrap().to_string();
    let id_line = created
        .stdout
        .lines()
        .find(|l| l.starts_with("access key id:"))
        .expect("id line");
    let key_id = id_line.split_whitespace().last().unwrap().to_string();
    assert_eq!(secret.len(), 40, "{created:#?}");
    let listed = cli.run(&["key", "list", "--user", "alice"]).ok();
    assert!(
        listed.stdout.contains(&key_id) && !listed.stdout.contains(&secret),
        "{listed:#?}"
    );
    let listed = cli.json(&["key", "list", "--user", "alice"]);
    assert_eq!(listed["access-keys"][0]["access-key-id"], key_id.as_str());
    assert!(
        !listed.to_string().contains(&secret) && !listed.to_string().contains("secret"),
        "{listed}"
    );
    // JSON create carries the secret (for scripts), the warning still goes to stderr.
    let r = cli
        .run(&["-o", "json", "key", "create", "--user", "alice"])
        .ok();
    assert!(r.stderr.contains("ONCE"));
    let second = r.json();
    assert_eq!(second["secret-access-key"].as_str().unwrap().len(), 40);
    let second_id = second["access-key-id"].as_str().unwrap().to_string();

    // Alice with her own key: whoami, her keys by default, the policy applies.
    let mut alice = Cli::admin(&server);
    alice.set("SLUICE_ACCESS_KEY_ID", &key_id);
    alice.set("SLUICE_SECRET_ACCESS_KEY", &secret);
    let me = alice.json(&["whoami"]);
    assert_eq!(me["name"], "alice");
    let pol = me["policies"].to_string();
    assert!(pol.contains("NoDrops") && pol.contains("analysts"), "{me}");
    let mine = alice.json(&["key", "list"]);
    assert_eq!(mine["access-keys"].as_array().unwrap().len(), 2);
    // A viewer may not create users: 403 is an API error (1) with a hint.
    let r = alice.run(&["user", "create", "mallory"]).code(1);
    r.one_line_error();
    alice.run(&["key", "delete", &second_id]).ok();
    assert_eq!(
        alice.json(&["key", "list"])["access-keys"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Detach, delete everything; alice's key stops working once she is gone.
    cli.run(&["policy", "detach", "NoDrops", "--user", "alice"])
        .ok();
    cli.run(&["policy", "detach", "NoDrops", "--group", "analysts"])
        .ok();
    cli.run(&["policy", "delete", "NoDrops"]).ok();
    cli.run(&["policy", "get", "NoDrops"]).code(4);
    cli.run(&["key", "delete", &key_id, "--user", "alice"]).ok();
    alice.run(&["whoami"]).code(3).one_line_error();
    cli.run(&["group", "delete", "analysts"]).ok();
    cli.run(&["group", "get", "analysts"]).code(4);
    cli.run(&["user", "delete", "alice"]).ok();
    cli.run(&["user", "delete", "bob"]).ok();
    let users = names(&cli.json(&["user", "list"]), "users");
    assert!(!users.contains(&"alice".to_string()), "{users:?}");

    // The admin's own keys (default owner = whoami).
    let k = cli.json(&["key", "create"]);
    assert_eq!(k["user"], admin_name.as_str());
    let id = k["access-key-id"].as_str().unwrap();
    cli.run(&["key", "delete", id]).ok();
}

#[test]
fn profiles_login_and_errors() {
    let server = Server::start();
    let cli_admin = Cli::admin(&server);
    // A second identity for the profile test.
    cli_admin.run(&["user", "create", "carol"]).ok();
    let k = cli_admin.json(&["key", "create", "--user", "carol"]);
    let carol_key = k["access-key-id"].as_str().unwrap().to_string();
    let carol_secret = k["secret-access-key"].as_str().unwrap().to_string();

    // Profiles only (no credentials in the environment).
    let cli = Cli::bare();
    std::fs::write(
        cli.config_file(),
        format!(
            "default-profile: admin\nprofiles:\n  admin:\n    endpoint: {ep}\n    access-key-id: {ADMIN_KEY}\n    secret-access-key: {ADMIN_SECRET}\n  carol:\n    endpoint: {ep}\n    access-key-id: {carol_key}\n    secret-access-key: {carol_secret}\n  broken:\n    endpoint: {ep}\n    access-key-id: {ADMIN_KEY}\n    secret-access-key: wrongwrongwrongwrongwrongwrongwrongwrong\n",
            ep = server.endpoint
        ),
    )
    .unwrap();
    assert_eq!(cli.json(&["whoami"])["access-key-id"], ADMIN_KEY);
    assert_eq!(cli.json(&["--profile", "carol", "whoami"])["name"], "carol");
    // Global flags after the subcommand too.
    assert_eq!(cli.json(&["whoami", "--profile", "carol"])["name"], "carol");
    assert_eq!(
        cli.run_with(
            &["-o", "json", "whoami"],
            &[("SLUICE_PROFILE", "carol")],
            None
        )
        .ok()
        .json()["name"],
        "carol"
    );
    // The flag wins over the variable.
    let r = cli
        .run_with(
            &["-o", "json", "--profile", "admin", "whoami"],
            &[("SLUICE_PROFILE", "carol")],
            None,
        )
        .ok();
    assert_eq!(r.json()["access-key-id"], ADMIN_KEY);

    // A bad secret: exit 3 and a readable line.
    let r = cli.run(&["--profile", "broken", "whoami"]).code(3);
    let line = r.one_line_error().to_string();
    assert!(line.contains("authentication failed"), "{r:#?}");
    assert!(r.stderr.contains("sluice login"), "{r:#?}");
    cli.run_with(&["user", "list"], &[("SLUICE_PROFILE", "broken")], None)
        .code(3)
        .one_line_error();
    // An unknown profile is a usage error naming the ones there are.
    let r = cli.run(&["--profile", "nope", "whoami"]).code(1);
    assert!(r.one_line_error().contains("carol"), "{r:#?}");

    // config profiles: the active one is marked.
    let r = cli.run(&["config", "profiles"]).ok();
    let active: Vec<&str> = r.stdout.lines().filter(|l| l.starts_with('*')).collect();
    assert_eq!(active.len(), 1, "{r:#?}");
    assert!(active[0].contains("admin"), "{r:#?}");
    let r = cli.run(&["--profile", "carol", "config", "profiles"]).ok();
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with('*') && l.contains("carol")),
        "{r:#?}"
    );
    let j = cli.json(&["config", "profiles"]);
    assert_eq!(j["active"], "admin");
    assert_eq!(j["profiles"].as_array().unwrap().len(), 3);
    // config show: sources named, secrets masked.
    let r = cli.run(&["--profile", "carol", "config", "show"]).ok();
    assert!(
        r.stdout.contains(&carol_key) && r.stdout.contains("********"),
        "{r:#?}"
    );
    assert!(!r.stdout.contains(&carol_secret), "{r:#?}");
    assert!(r.stdout.contains("profile 'carol'"), "{r:#?}");
    let j = cli.json(&["config", "show", "--endpoint", "http://localhost:1"]);
    assert_eq!(j["settings"]["endpoint"]["value"], "http://localhost:1");
    assert_eq!(j["settings"]["secret-access-key"]["value"], "********");
    assert!(!j.to_string().contains(ADMIN_SECRET));

    // Unreachable endpoint: exit 5.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let r = cli.run(&["--endpoint", &dead, "whoami"]).code(5);
    r.one_line_error();
    let r = cli
        .run_with(&["warehouse", "list"], &[("SLUICE_ENDPOINT", &dead)], None)
        .code(5);
    r.one_line_error();

    // login: access key in Basic mode verifies the key and shows who you are.
    let r = cli.run(&["--profile", "carol", "login"]).ok();
    assert!(r.stdout.contains("carol"), "{r:#?}");
    let r = cli.run(&["--profile", "broken", "login"]).code(3);
    r.one_line_error();
    let r = cli.run(&["--profile", "carol", "logout"]).ok();
    assert!(r.stdout.contains("Nothing to log out"), "{r:#?}");
    // Exchanged for a token, which is cached and then removed by logout.
    let r = cli
        .run(&["--profile", "carol", "login", "--exchange-access-key"])
        .ok();
    assert!(r.stdout.contains("carol"), "{r:#?}");
    let cached = std::fs::read_to_string(cli.token_file()).expect("token cache written");
    assert!(
        !cached.trim().is_empty() && cached.contains(&carol_key),
        "{cached}"
    );
    cli.run_with(
        &["--profile", "carol", "whoami"],
        &[("SLUICE_EXCHANGE_ACCESS_KEY", "1")],
        None,
    )
    .ok();
    let r = cli
        .run_with(
            &["--profile", "carol", "logout"],
            &[("SLUICE_EXCHANGE_ACCESS_KEY", "1")],
            None,
        )
        .ok();
    assert!(r.stdout.contains("Logged out"), "{r:#?}");
    let after = std::fs::read_to_string(cli.token_file()).unwrap_or_default();
    assert!(!after.contains(&carol_key), "{after}");

    // login --save into a new profile, the secret from stdin: endpoint and method saved,
    // the secret not.
    let r = cli
        .run_with(
            &[
                "--profile",
                "fresh",
                "login",
                "--method",
                "access-key",
                "--access-key-id",
                &carol_key,
                "--secret-stdin",
                "--save",
                "--endpoint",
                &server.endpoint,
            ],
            &[],
            Some(&format!("{carol_secret}\n")),
        )
        .ok();
    assert!(r.stdout.contains("carol"), "{r:#?}");
    let saved = std::fs::read_to_string(cli.config_file()).unwrap();
    let fresh = &saved[saved.find("  fresh:").expect("profile fresh saved")..];
    let fresh: String = fresh
        .lines()
        .take_while(|l| l.starts_with("  fresh:") || l.starts_with("    "))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        fresh.contains(&server.endpoint) && fresh.contains("auth-method: access-key"),
        "{saved}"
    );
    assert!(!fresh.contains("secret"), "{saved}");
    // The other profiles are kept.
    assert!(
        saved.contains("broken:") && saved.contains(ADMIN_SECRET),
        "{saved}"
    );
    let j = cli.json(&["--profile", "fresh", "config", "show"]);
    assert_eq!(j["settings"]["endpoint"]["value"], server.endpoint.as_str());
    assert!(
        j["settings"]["endpoint"]["source"]
            .as_str()
            .unwrap()
            .contains("fresh"),
        "{j}"
    );
    // With the key from the environment, the saved profile works.
    let r = cli.run_with(
        &["-o", "json", "--profile", "fresh", "whoami"],
        &[
            ("SLUICE_ACCESS_KEY_ID", &carol_key),
            ("SLUICE_SECRET_ACCESS_KEY", &carol_secret),
        ],
        None,
    );
    assert_eq!(r.ok().json()["name"], "carol");

    // No credentials at all: a configuration error with a hint.
    let mut empty = Cli::bare();
    empty.set("SLUICE_ENDPOINT", &server.endpoint);
    let r = empty.run(&["whoami"]).code(1);
    r.one_line_error();
    let r = empty.run(&["config", "profiles"]).ok();
    assert!(r.stderr.contains("No profile file"), "{r:#?}");
}

#[test]
fn bad_arguments() {
    let cli = Cli::bare();
    // clap: exit 2.
    cli.run(&["warehouse"]).code(2);
    cli.run(&["warehouse", "frobnicate"]).code(2);
    cli.run(&["policy", "attach", "P"]).code(2);
    cli.run(&["policy", "attach", "P", "--user", "a", "--group", "b"])
        .code(2);
    cli.run(&["namespace", "get", "--warehouse", "w"]).code(2);
    cli.run(&["--output", "yaml", "whoami"]).code(2);
    cli.run(&["login", "--method", "telepathy"]).code(2);
    // Checked by the CLI before any request: exit 1, one line, no panic.
    let r = cli
        .run(&[
            "--endpoint",
            "http://127.0.0.1:9",
            "warehouse",
            "create",
            "--name",
            "x",
            "--storage-profile",
            "[1,2]",
        ])
        .code(1);
    assert!(r.one_line_error().contains("--storage-profile"), "{r:#?}");
    let r = cli
        .run(&[
            "--endpoint",
            "http://127.0.0.1:9",
            "warehouse",
            "create",
            "--name",
            "x",
            "--storage-profile",
            "@/no/such/file",
        ])
        .code(1);
    assert!(r.one_line_error().contains("cannot read"), "{r:#?}");
    let r = cli.run(&["--endpoint", "not a url", "whoami"]).code(1);
    r.one_line_error();
    let r = cli
        .run(&[
            "--endpoint",
            "http://127.0.0.1:9",
            "namespace",
            "get",
            "-w",
            "w",
            "-n",
            "a..b",
        ])
        .code(1);
    assert!(
        r.one_line_error().contains("empty namespace level"),
        "{r:#?}"
    );
    // Plain http to a remote host is refused without --insecure.
    let r = cli
        .run(&["--endpoint", "http://example.com", "whoami"])
        .code(1);
    assert!(r.one_line_error().contains("insecure"), "{r:#?}");
    // A broken profile file is reported, not panicked on.
    std::fs::write(cli.config_file(), "profiles: [not, a, map\n").unwrap();
    cli.run(&["whoami"]).code(1).one_line_error();
    // `serve --help` still works and lists its flags.
    let r = cli.run(&["serve", "--help"]).ok();
    assert!(
        r.stdout.contains("--listen") && r.stdout.contains("--data-dir"),
        "{r:#?}"
    );
}
