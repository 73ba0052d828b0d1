//! The operator CLI, run as a binary against PostgreSQL: create storefronts in each
//! placement, list them, migrate the fleet, plan, with `--json` output parsed and checked.

use std::path::PathBuf;

use sea_orm::{ConnectionTrait, Database};
use serde_json::Value;
fn with_database(url: &str, name: &str) -> String {
    tenancy_core::DatabaseUrl::parse(url)
        .expect("a database URL")
        .with_database(name)
        .as_str()
        .to_owned()
}
use uuid::Uuid;

fn server_url() -> Option<String> {
    match std::env::var("TENANCY_TEST_POSTGRES_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        Some(url) => Some(url),
        None if std::env::var("TENANCY_TEST_REQUIRE_SERVERS").is_ok_and(|v| v == "1") => {
            panic!("TENANCY_TEST_POSTGRES_URL is not set and TENANCY_TEST_REQUIRE_SERVERS=1")
        }
        None => {
            eprintln!("SKIPPED cli test: TENANCY_TEST_POSTGRES_URL is empty or not set");
            None
        }
    }
}

/// `url` with a password in its user info (the test server trusts local connections, so
/// it is never checked), and the password: every command's output is searched for it.
fn with_password(url: &str) -> (String, String) {
    const PASSWORD: &str = "Cli-s3cret-pw";
    let (scheme, rest) = url.split_once("://").expect("a server URL");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    match authority.rsplit_once('@') {
        Some((user, _)) if user.contains(':') => {
            let password = user.split_once(':').map(|(_, p)| p).unwrap_or_default();
            (url.to_owned(), password.to_owned())
        }
        Some((user, host)) => (
            format!("{scheme}://{user}:{PASSWORD}@{host}/{path}"),
            PASSWORD.to_owned(),
        ),
        None => (
            format!("{scheme}://postgres:{PASSWORD}@{authority}/{path}"),
            PASSWORD.to_owned(),
        ),
    }
}

struct Cli {
    config: PathBuf,
    /// The databases' password: no output may carry it.
    secret: String,
}

impl Cli {
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        // Every command has a time bound: one that hangs is killed and fails the test.
        let out = assert_cmd::Command::cargo_bin("migration")
            .unwrap()
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("TENANCY_CONFIG")
            .timeout(std::time::Duration::from_secs(300))
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(
            !self.secret.is_empty()
                && !stdout.contains(&self.secret)
                && !stderr.contains(&self.secret),
            "{args:?} printed the password:\n{stdout}\n{stderr}"
        );
        (out.status.code().unwrap_or(-1), stdout, stderr)
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let (code, stdout, stderr) = self.run(&all);
        assert_eq!(code, 0, "{args:?}: {stderr}\n{stdout}");
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
    }
}

#[tokio::test]
async fn operator_cli_against_postgres() {
    let Some(server) = server_url() else {
        return;
    };
    // Every URL the CLI is given carries a password.
    let (server, secret) = with_password(&server);
    let tag = Uuid::new_v4().simple().to_string();
    let name = format!("tenancy_test_cli{}", &tag[..12]);
    let admin = Database::connect(server.as_str()).await.unwrap();
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap();
    let shared_url = with_database(&server, &name);
    let pattern = with_database(
        &server,
        &format!("tenancy_test_cli{}_{{storefront_id}}", &tag[..6]),
    );
    let dir = std::env::temp_dir().join(format!("tenancy-cli-{tag}"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("tenant_strategy.yaml");
    let large = Uuid::new_v4();
    std::fs::write(
        &config,
        format!(
            r#"tenant_strategy:
  default_type: shared
  migration_thresholds: {{ customers: 100000, orders: 500000, avg_query_time: 200ms }}
  tenant_overrides:
    "{large}": database
  database_config:
    shared_database_url: "{shared_url}"
    tenant_database_pattern: "{pattern}"
    max_connections_per_tenant: 2
    connection_budget: 10
"#
        ),
    )
    .unwrap();
    let cli = Cli { config, secret };

    // config check, then bad usage exits 2.
    let checked = cli.json(&["config", "check"]);
    assert_eq!(checked["ok"], true);
    assert_eq!(
        checked["config"]["tenant_strategy"]["database_config"]["connection_budget"],
        10
    );
    let (code, _, stderr) = cli.run(&["storefront", "show", "not-a-uuid"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not-a-uuid"), "{stderr}");
    let (code, stdout, _) = cli.run(&["--help"]);
    assert_eq!(code, 0);
    for cmd in ["storefront", "migrate", "plan", "config"] {
        assert!(stdout.contains(cmd), "{stdout}");
    }
    let (code, stdout, _) = cli.run(&["migrate", "up", "--help"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("--jobs"), "{stdout}");

    // Migrate the (empty) fleet: the shared database gets the schema and the directory.
    let up = cli.json(&["migrate", "up"]);
    assert!(up["shared"]["outcome"] == "migrated", "{up}");

    // One storefront per placement.
    let shared_id = Uuid::new_v4();
    let schema_id = Uuid::new_v4();
    for (id, extra) in [
        (shared_id.to_string(), vec![]),
        (schema_id.to_string(), vec!["--type", "schema"]),
        (large.to_string(), vec![]),
    ] {
        let mut args = vec!["storefront", "create", id.as_str()];
        args.extend(extra);
        let created = cli.json(&args);
        assert_eq!(created["storefront"], id.as_str());
    }
    let list = cli.json(&["storefront", "list"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3);
    let type_of = |id: Uuid| {
        list.iter()
            .find(|r| r["storefront"] == id.to_string().as_str())
            .map(|r| r["placement"]["type"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(type_of(shared_id), "shared");
    assert_eq!(type_of(schema_id), "schema");
    assert_eq!(
        type_of(large),
        "database",
        "tenant_overrides decide the default placement"
    );
    let (code, table, _) = cli.run(&["storefront", "list"]);
    assert_eq!(code, 0);
    assert!(
        table.contains("STOREFRONT") && table.contains(&schema_id.to_string()),
        "{table}"
    );

    // The fleet is current: a no-op run; status agrees, verified against each schema.
    let up = cli.json(&["migrate", "up", "--jobs", "2"]);
    let outcomes: Vec<&str> = up["storefronts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| pair[1]["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, vec!["current", "current"], "{up}");
    let status = cli.json(&["migrate", "status", "--verify"]);
    assert!(
        status["storefronts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] == "current"),
        "{status}"
    );

    // Down one step on the schema storefront only, then up again.
    let down = cli.json(&["migrate", "down", "--storefront", &schema_id.to_string()]);
    assert_eq!(down.as_array().unwrap().len(), 1, "{down}");
    assert!(down[0]["migration"].is_null(), "{down}");
    let status = cli.json(&["migrate", "status", "--storefront", &schema_id.to_string()]);
    assert_eq!(status["storefronts"][0]["status"], "behind");
    let up = cli.json(&["migrate", "up", "--storefront", &schema_id.to_string()]);
    assert_eq!(up["storefronts"][0][1]["outcome"], "migrated", "{up}");

    // plan: the advisor's table.
    let plan = cli.json(&["plan"]);
    let plan = plan.as_array().unwrap();
    assert_eq!(plan.len(), 3);
    let large_plan = plan
        .iter()
        .find(|r| r["storefront"] == large.to_string().as_str())
        .unwrap();
    assert_eq!(large_plan["recommended"], "database");
    assert!(large_plan["reason"]
        .as_str()
        .unwrap()
        .contains("tenant_overrides"));
    let (code, table, _) = cli.run(&["plan"]);
    assert_eq!(code, 0);
    assert!(
        table.contains("ADVICE") && table.contains("below every threshold"),
        "{table}"
    );

    // Online moves: the shared storefront with three customers moves to its own schema.
    let shared_db = Database::connect(shared_url.as_str()).await.unwrap();
    for i in 0..3 {
        shared_db
            .execute_raw(sea_orm::Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                "INSERT INTO customers (id, storefront_id, email, first_name, last_name, created_at, updated_at) \
                 VALUES ($1, $2, $3, 'c', 'cli', now(), now())",
                [Uuid::new_v4().into(), shared_id.into(), format!("c{i}@example.com").into()],
            ))
            .await
            .unwrap();
    }
    let sid = shared_id.to_string();
    let ready = cli.json(&["move", "start", &sid, "--to", "schema"]);
    assert_eq!(ready["phase"], "ready", "{ready}");
    let customers = ready["progress"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "customers")
        .cloned()
        .unwrap();
    assert_eq!(customers["copied"], 3, "{ready}");
    assert_eq!(customers["rows"], 3, "{ready}");
    let status = cli.json(&["move", "status", &sid]);
    assert_eq!(status[0]["phase"], "ready", "{status}");
    let (code, text, _) = cli.run(&["move", "status", &sid]);
    assert_eq!(code, 0);
    assert!(
        text.contains("rows copied") && text.contains("lag"),
        "{text}"
    );
    let (code, _, stderr) = cli.run(&["move", "start", &sid, "--to", "database"]);
    assert_eq!(code, 1, "a second move is refused: {stderr}");
    assert!(stderr.contains("already in progress"), "{stderr}");
    let switched = cli.json(&["move", "cutover", &sid]);
    assert_eq!(switched["phase"], "switched", "{switched}");
    assert!(switched["progress"]["pause_ms"].is_u64(), "{switched}");
    let (code, _, stderr) = cli.run(&["move", "complete", &sid]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("retention window"), "{stderr}");
    assert!(
        stderr.contains("--force") && stderr.contains("(24h)"),
        "the flag to use, and the window as the configuration writes it: {stderr}"
    );
    let done = cli.json(&["move", "complete", &sid, "--force"]);
    assert_eq!(done["phase"], "completed", "{done}");
    let shown = cli.json(&["storefront", "show", &sid]);
    assert_eq!(shown["placement"]["type"], "schema", "{shown}");
    let left = shared_db
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT COUNT(*) FROM customers WHERE storefront_id = $1",
            [shared_id.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        left.try_get_by_index::<i64>(0).unwrap(),
        0,
        "complete deleted the shared copy"
    );
    // A move rolled back before its cutover leaves the storefront where it was.
    let scid = schema_id.to_string();
    let ready = cli.json(&["move", "start", &scid, "--to", "database"]);
    assert_eq!(ready["target"]["type"], "database", "{ready}");
    let back = cli.json(&["move", "rollback", &scid]);
    assert_eq!(back["phase"], "rolled-back", "{back}");
    let shown = cli.json(&["storefront", "show", &scid]);
    assert_eq!(shown["placement"]["type"], "schema", "{shown}");
    let all = cli.json(&["move", "status"]);
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
    let _ = shared_db.close().await;

    // The storefront in its own database: its URL is shown, without the password.
    let shown = cli.json(&["storefront", "show", &large.to_string()]);
    assert_eq!(shown["placement"]["type"], "database", "{shown}");
    assert!(
        shown["placement"]["url"]
            .as_str()
            .is_some_and(|u| u.contains("***")),
        "{shown}"
    );
    let (code, text, _) = cli.run(&["storefront", "show", &large.to_string()]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("state") && l.trim_end().ends_with("active")),
        "show spells the state as list does: {text}"
    );
    let (code, text, _) = cli.run(&["storefront", "list"]);
    assert_eq!(code, 0, "{text}");
    let (code, text, _) = cli.run(&["config", "check"]);
    assert_eq!(code, 0, "{text}");

    // Row-level security over the shared database, the schema and the storefront database:
    // check reports what is missing (exit 1), apply installs it, apply again changes
    // nothing, and check is then clean.
    let role = format!("tenancy_test_cliapp_{}", &tag[..12]);
    admin
        .execute_unprepared(&format!("CREATE ROLE \"{role}\" NOLOGIN"))
        .await
        .unwrap();
    let (code, stdout, stderr) = cli.run(&["--json", "rls", "check", "--role", &role]);
    assert_eq!(code, 1, "{stderr}\n{stdout}");
    let before: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(before["ok"], false, "{before}");
    let places = before["places"].as_array().unwrap();
    let named =
        |f: &dyn Fn(&str) -> bool| places.iter().any(|p| p["where"].as_str().is_some_and(f));
    assert!(
        named(&|w| w == "shared")
            && named(&|w| w.starts_with("schema "))
            && named(&|w| w.contains(":***@")),
        "shared, the schemas, the database (its password hidden): {before}"
    );
    assert!(
        places
            .iter()
            .all(|p| p["findings"].as_array().is_some_and(|f| !f.is_empty())),
        "{before}"
    );
    let applied = cli.json(&["rls", "apply", "--role", &role]);
    assert_eq!(applied["ok"], true, "{applied}");
    assert!(
        applied["places"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["changed"].as_array().is_some_and(|c| !c.is_empty())),
        "{applied}"
    );
    let again = cli.json(&["rls", "apply", "--role", &role]);
    assert!(
        again["places"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["changed"].as_array().is_some_and(|c| c.is_empty())),
        "{again}"
    );
    let clean = cli.json(&["rls", "check", "--role", &role]);
    assert_eq!(clean["ok"], true, "{clean}");
    let (code, text, _) = cli.run(&["rls", "check", "--role", &role]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("nothing to report"), "{text}");
    let (code, _, stderr) = cli.run(&["rls", "check", "--role", "bad-role"]);
    assert_eq!(code, 2, "a malformed role is a usage error: {stderr}");

    // drop needs the confirmation; show of a dropped storefront fails with exit 1.
    let (code, _, stderr) =
        cli.run(&["storefront", "drop", &large.to_string(), "--confirm", "yes"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("not its id"),
        "a wrong confirmation is named as such: {stderr}"
    );
    for id in [shared_id, schema_id, large] {
        let dropped = cli.json(&[
            "storefront",
            "drop",
            &id.to_string(),
            "--confirm",
            &id.to_string(),
        ]);
        assert_eq!(dropped["dropped"], id.to_string().as_str());
    }
    let (code, _, stderr) = cli.run(&["storefront", "show", &large.to_string()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("unknown storefront"), "{stderr}");

    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!("DROP ROLE IF EXISTS \"{role}\""))
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// The second server of the test fleet (`scripts/servers up` starts it on 5433).
fn second_server_url() -> Option<String> {
    match std::env::var("TENANCY_TEST_POSTGRES2_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        Some(url) => Some(url),
        None if std::env::var("TENANCY_TEST_REQUIRE_SERVERS").is_ok_and(|v| v == "1") => {
            panic!("TENANCY_TEST_POSTGRES2_URL is not set and TENANCY_TEST_REQUIRE_SERVERS=1")
        }
        None => {
            eprintln!("SKIPPED servers cli test: TENANCY_TEST_POSTGRES2_URL is empty or not set");
            None
        }
    }
}

/// Servers from the CLI: new storefront databases spread over two servers, `server list`,
/// `plan rebalance`, `server drain` and `rebalance apply`, with `--json` parsed.
#[tokio::test]
async fn servers_and_rebalancing_from_the_cli() {
    let (Some(first), Some(second)) = (server_url(), second_server_url()) else {
        return;
    };
    let (first, secret) = with_password(&first);
    let (second, _) = with_password(&second);
    let tag = Uuid::new_v4().simple().to_string();
    let name = format!("tenancy_test_clisrv{}", &tag[..12]);
    let admin = Database::connect(first.as_str()).await.unwrap();
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap();
    let shared_url = with_database(&first, &name);
    let pattern = with_database(
        &first,
        &format!("tenancy_test_clisrv{}_{{storefront_id}}", &tag[..6]),
    );
    let dir = std::env::temp_dir().join(format!("tenancy-cli-servers-{tag}"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("tenant_strategy.yaml");
    std::fs::write(
        &config,
        format!(
            r#"tenant_strategy:
  default_type: database
  database_config:
    shared_database_url: "{shared_url}"
    tenant_database_pattern: "{pattern}"
    max_connections_per_tenant: 2
    connection_budget: 10
    servers:
      - {{ name: one, url: "{first}", capacity: 1 }}
      - {{ name: two, url: "{second}", capacity: 1 }}
  migration_config: {{ dual_write_duration: 0s, pause_budget: 2s }}
"#
        ),
    )
    .unwrap();
    let cli = Cli { config, secret };
    // (Every command's output is searched for the password: the servers' URLs carry it.)
    let checked = cli.json(&["config", "check"]);
    assert_eq!(
        checked["config"]["tenant_strategy"]["database_config"]["servers"][1]["name"],
        "two"
    );
    cli.json(&["migrate", "up"]);

    // Three new storefront databases: the least loaded server takes each, so both do.
    let ids: Vec<String> = (0..3).map(|_| Uuid::new_v4().to_string()).collect();
    for id in &ids {
        cli.json(&["storefront", "create", id]);
    }
    let servers = cli.json(&["server", "list"]);
    let count = |v: &Value, server: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|s| s["server"] == server)
            .map(|s| s["storefronts"].as_u64().unwrap())
            .unwrap()
    };
    assert_eq!(
        count(&servers, "one") + count(&servers, "two"),
        3,
        "{servers}"
    );
    assert!(
        count(&servers, "one") >= 1 && count(&servers, "two") >= 1,
        "new storefronts spread over both servers: {servers}"
    );

    // The plan names both servers and every storefront database.
    let plan = cli.json(&["plan", "rebalance"]);
    assert_eq!(
        plan["plan"]["before"].as_array().unwrap().len(),
        2,
        "{plan}"
    );
    assert_eq!(plan["storefronts"].as_array().unwrap().len(), 3, "{plan}");
    let (code, text, _) = cli.run(&["plan", "rebalance"]);
    assert_eq!(code, 0);
    assert!(text.contains("SERVER") && text.contains("two"), "{text}");

    // Bad input: an unknown server, a tolerance that is not a fraction.
    let (code, _, stderr) = cli.run(&["server", "drain", "three"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("three") && stderr.contains("one, two"),
        "{stderr}"
    );
    let (code, _, stderr) = cli.run(&["plan", "rebalance", "--tolerance", "1.5"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("1.5"), "{stderr}");

    // A dry run moves nothing; the drain empties server two.
    let dry = cli.json(&["server", "drain", "two", "--dry-run"]);
    assert_eq!(
        dry["plan"]["moves"].as_array().unwrap().len() as u64,
        count(&servers, "two"),
        "{dry}"
    );
    assert_eq!(
        count(&cli.json(&["server", "list"]), "two"),
        count(&servers, "two")
    );
    let drained = cli.json(&["server", "drain", "two", "--jobs", "2"]);
    assert!(
        drained["moves"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["phase"] == "completed" && m["error"].is_null()),
        "{drained}"
    );
    let after = cli.json(&["server", "list"]);
    assert_eq!(count(&after, "two"), 0, "{after}");
    assert_eq!(count(&after, "one"), 3, "{after}");

    // A rebalance brings storefronts back to server two (rows are equal: one of three).
    let applied = cli.json(&["rebalance", "apply", "--tolerance", "0.4"]);
    assert!(
        applied["moves"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["error"].is_null()),
        "{applied}"
    );
    let after = cli.json(&["server", "list"]);
    assert!(count(&after, "two") >= 1, "{after}");

    for id in &ids {
        cli.json(&["storefront", "drop", id, "--confirm", id]);
    }
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
