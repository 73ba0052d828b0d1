//! No secret in output: every type that holds a database URL (a placement, a parsed URL,
//! the configuration, the options a `Tenancy` is built from, a directory row) hides the
//! password in `Debug` (`{:?}` and `{:#?}`) and `Display`, and so does an error about a
//! bad URL.

use chrono::Utc;
use tenancy_core::{
    config::TenancyConfig, DatabaseUrl, Placement, StorefrontId, TenancyOptions, TenantRecord,
    TenantState,
};

const SECRET: &str = "Sup3r-s3cret_pw";

/// URLs that carry the password in each way a driver accepts one.
fn urls() -> Vec<String> {
    vec![
        format!("postgres://app:{SECRET}@db.internal:5432/shop?sslmode=require"),
        format!("postgresql://app:{SECRET}@db.internal/storefront_{{storefront_id}}"),
        format!("mysql://root:{SECRET}@db:3306/shop"),
        format!("mariadb://root:{SECRET}@db/shop"),
        format!("postgres://db/shop?user=app&password={SECRET}&sslmode=require"),
        // An unencoded `/` and `@` in the password: a parser would split it wrongly.
        format!("mysql://root:{SECRET}/x@y@db/shop"),
    ]
}

fn hidden(what: &str, text: &str) {
    assert!(
        !text.contains(SECRET) && !text.contains("s3cret"),
        "{what} shows the password: {text}"
    );
}

fn every_form(what: &str, value: &(impl std::fmt::Debug + ?Sized)) {
    hidden(&format!("{what} {{:?}}"), &format!("{value:?}"));
    hidden(&format!("{what} {{:#?}}"), &format!("{value:#?}"));
}

#[test]
fn placements_urls_options_and_directory_rows_hide_the_password() {
    for url in urls() {
        let placement = Placement::Database { url: url.clone() };
        every_form("Placement", &placement);
        hidden("Placement Display", &placement.to_string());
        match DatabaseUrl::parse(&url) {
            Ok(parsed) => {
                every_form("DatabaseUrl", &parsed);
                hidden("DatabaseUrl Display", &parsed.to_string());
            }
            Err(e) => {
                every_form("DatabaseUrl error", &e);
                hidden("DatabaseUrl error Display", &e.to_string());
            }
        }
        let options = TenancyOptions::new()
            .shared_url(url.clone())
            .directory(std::time::Duration::from_secs(30), Some(placement.clone()));
        every_form("TenancyOptions", &options);
        let record = TenantRecord {
            storefront: StorefrontId::new_random(),
            placement: placement.clone(),
            state: TenantState::Active,
            version: 1,
            migration: None,
            migration_error: None,
            updated_at: Utc::now(),
        };
        every_form("TenantRecord", &record);
        // Shown records serialise their placement without the password too (the admin
        // API and the CLI's `--json` output serialise them).
        let json = serde_json::to_string(&record).expect("json");
        hidden("TenantRecord as JSON", &json);
        assert!(json.contains("***"), "{json}");
        every_form("Option<Placement>", &Some(placement));
    }
    // A URL the crate cannot use is named in the error without its password.
    let bad = format!("oracle://app:{SECRET}@db/shop");
    let err = DatabaseUrl::parse(&bad).expect_err("not a database URL");
    every_form("an unknown scheme's error", &err);
    hidden("an unknown scheme's error Display", &err.to_string());
}

#[test]
fn the_configuration_hides_the_password() {
    let yaml = format!(
        r#"tenant_strategy:
  default_type: shared
  database_config:
    shared_database_url: "postgres://app:{SECRET}@db.internal:5432/shop"
    tenant_database_pattern: "postgres://app:{SECRET}@db.internal:5432/storefront_{{storefront_id}}"
"#
    );
    let config = TenancyConfig::from_yaml_str(&yaml).expect("config");
    every_form("TenancyConfig", &config);
    every_form("TenantStrategy", &config.tenant_strategy);
    every_form("DatabaseConfig", &config.tenant_strategy.database_config);
    // A configuration refused for another key still names nothing secret.
    let broken = yaml.replace("default_type: shared", "default_type: sharded");
    let err = TenancyConfig::from_yaml_str(&broken).expect_err("bad type");
    hidden("a config error", &err.to_string());
    every_form("a config error", &err);
}
