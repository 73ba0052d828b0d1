//! An arena for attacks on isolation: storefronts in every placement the backend offers,
//! seeded through their own connections, and a physical view of every other storefront's
//! rows read through admin connections (the shared database, each schema, each database).
//!
//! An attack test runs statements through one storefront's connection and then requires
//! that [`Arena::physical`] for everyone else is unchanged, and that whatever came back
//! carries none of the other storefronts' values ([`Arena::leaks`]).

use std::{collections::BTreeMap, time::Duration};

use migration::Migrator;
use sea_orm::{
    Database, DatabaseConnection, DbBackend, DbErr, FromQueryResult, JsonValue, Statement,
};
use tenancy_core::{
    Placement, PoolOptions, StorefrontId, Tenancy, TenancyError, TenancyOptions, TenantConnection,
};

use crate::{
    matrix::{seed, Seeded},
    Backend, TestDb,
};

/// How long one attack statement may take before the test fails instead of hanging.
pub const STATEMENT_LIMIT: Duration = Duration::from_secs(30);

/// One storefront of the arena.
pub struct Shop {
    pub seeded: Seeded,
    pub placement: Placement,
    /// A label for messages (`shared-a`, `schema`, `database`).
    pub label: String,
}

/// Storefronts in every placement of one backend.
pub struct Arena {
    pub backend: Backend,
    pub test: TestDb,
    pub tenancy: Tenancy,
    pub shops: Vec<Shop>,
}

/// What one statement did.
#[derive(Debug)]
pub enum Outcome {
    /// The framework refused it before the database saw it.
    Refused(String),
    /// The database rejected it.
    Failed(String),
    /// It ran; the rows it returned, as JSON.
    Rows(Vec<JsonValue>),
}

impl Outcome {
    pub fn is_refused(&self) -> bool {
        matches!(self, Outcome::Refused(_))
    }
}

/// Classifies a `DbErr` as a framework refusal or a database failure.
pub fn outcome_of(result: Result<Vec<JsonValue>, DbErr>) -> Outcome {
    match result {
        Ok(rows) => Outcome::Rows(rows),
        Err(e) => match TenancyError::from_db_err(&e) {
            Some(m) => Outcome::Refused(m.to_owned()),
            None => Outcome::Failed(e.to_string()),
        },
    }
}

impl Arena {
    /// Two storefronts in the shared placement, one in its own schema (not on SQLite), one
    /// in its own database; each seeded with customers, addresses, orders, items and carts.
    pub async fn new(backend: Backend) -> Option<Arena> {
        let test = TestDb::migrated(backend).await?;
        let shared = test.db.clone();
        Some(Self::with_shared(test, shared).await)
    }

    /// Like [`Arena::new`], with `shared` as the connection the tenancy uses for the shared
    /// database (e.g. a pool of one).
    pub async fn with_shared(test: TestDb, shared: DatabaseConnection) -> Arena {
        let backend = test.backend;
        let tenancy = TenancyOptions::new()
            .registry(entities::registry())
            .shared_url(test.url.clone())
            .directory(Duration::from_secs(300), None)
            .pools(PoolOptions {
                budget: 8,
                per_tenant: 2,
                ..PoolOptions::default()
            })
            .connect_with(shared)
            .await
            .expect("tenancy");
        let mut placements = vec![
            ("shared-a", Placement::Shared),
            ("shared-b", Placement::Shared),
            (
                "database",
                Placement::Database {
                    url: test.sibling_url("tenancy_test_d"),
                },
            ),
        ];
        if backend != Backend::Sqlite {
            placements.push((
                "schema",
                Placement::Schema {
                    schema: test.schema_name(),
                },
            ));
        }
        let mut shops = Vec::new();
        for (label, placement) in placements {
            let id = StorefrontId::new_random();
            tenancy
                .create_storefront::<Migrator>(id, placement.clone())
                .await
                .unwrap_or_else(|e| panic!("{backend}: provisioning {label}: {e}"));
            let seeded = seed(
                &tenancy.connection(id),
                label,
                &["lonely", "shared", "alice"],
                2,
            )
            .await;
            shops.push(Shop {
                seeded,
                placement,
                label: label.to_owned(),
            });
        }
        Arena {
            backend,
            test,
            tenancy,
            shops,
        }
    }

    pub fn db_backend(&self) -> DbBackend {
        self.test.db_backend()
    }

    /// The connection of shop `i`.
    pub fn conn(&self, i: usize) -> TenantConnection {
        self.tenancy.connection(self.shops[i].seeded.id)
    }

    /// Runs `sql` (with no values) through shop `i`'s connection, within
    /// [`STATEMENT_LIMIT`].
    pub async fn attempt(&self, i: usize, sql: &str) -> Outcome {
        let conn = self.conn(i);
        let stmt = Statement::from_string(self.db_backend(), sql.to_owned());
        let run = JsonValue::find_by_statement(stmt).all(&conn);
        match tokio::time::timeout(STATEMENT_LIMIT, run).await {
            Ok(result) => outcome_of(result),
            Err(_) => panic!(
                "{}: `{sql}` through {} did not finish within {STATEMENT_LIMIT:?}",
                self.backend, self.shops[i].label
            ),
        }
    }

    /// The values that identify every storefront but `i` (their ids, customer ids and
    /// emails, order ids): none may appear in what shop `i` reads.
    pub fn others_values(&self, i: usize) -> Vec<String> {
        let mut out = Vec::new();
        for (k, shop) in self.shops.iter().enumerate() {
            if k == i {
                continue;
            }
            let s = &shop.seeded;
            out.push(s.uuid().to_string());
            for c in &s.customers {
                out.push(c.id.to_string());
                if !c.email.starts_with("shared@") {
                    out.push(c.email.clone());
                }
            }
            for o in &s.orders {
                out.push(o.id.to_string());
            }
        }
        out
    }

    /// Whether `outcome` carries a value of another storefront than `i`.
    pub fn leaks(&self, i: usize, outcome: &Outcome) -> Option<String> {
        let Outcome::Rows(rows) = outcome else {
            return None;
        };
        let text = serde_json_text(rows).to_ascii_lowercase();
        let compact = text.replace('-', "");
        self.others_values(i).into_iter().find(|v| {
            let v = v.to_ascii_lowercase();
            text.contains(&v) || compact.contains(&v.replace('-', ""))
        })
    }

    /// Every row that belongs to a storefront other than `i`, read physically: the shared
    /// database's scoped tables (rows of other storefronts), every other storefront's
    /// schema or database (all rows, whoever they claim to belong to), and the shared
    /// database's global and framework tables (all rows).
    pub async fn physical(&self, i: usize) -> BTreeMap<String, Vec<String>> {
        let me = self.shops[i].seeded.uuid();
        let backend = self.backend;
        let q = |name: &str| backend.quote(name);
        let scoped: Vec<String> = entities::registry()
            .tables()
            .into_iter()
            .map(|(t, _)| t.to_owned())
            .collect();
        let mut out = BTreeMap::new();
        let shared = &self.test.db;
        for table in &scoped {
            let sql = format!(
                "SELECT * FROM {} WHERE storefront_id <> {}",
                q(table),
                self.uuid_literal(me)
            );
            out.insert(format!("shared.{table}"), rows(shared, &sql).await);
        }
        for table in ["countries", "tenancy_tenants", "seaql_migrations"] {
            out.insert(
                format!("shared.{table}"),
                rows(shared, &format!("SELECT * FROM {}", q(table))).await,
            );
        }
        for (k, shop) in self.shops.iter().enumerate() {
            if k == i {
                continue;
            }
            match &shop.placement {
                Placement::Shared => {}
                Placement::Schema { schema } => {
                    for table in &scoped {
                        let sql = format!("SELECT * FROM {}.{}", q(schema), q(table));
                        out.insert(format!("{}.{table}", shop.label), rows(shared, &sql).await);
                    }
                }
                Placement::Database { url } => {
                    let own = Database::connect(url.as_str())
                        .await
                        .unwrap_or_else(|e| panic!("{url}: {e}"));
                    for table in &scoped {
                        let sql = format!("SELECT * FROM {}", q(table));
                        out.insert(format!("{}.{table}", shop.label), rows(&own, &sql).await);
                    }
                    let _ = own.close().await;
                }
            }
        }
        out
    }

    /// A literal of `id` as the backend stores a Uuid.
    pub fn uuid_literal(&self, id: uuid::Uuid) -> String {
        match self.backend {
            Backend::Postgres => format!("'{id}'::uuid"),
            // sqlx stores a Uuid as 16 bytes on MySQL and SQLite.
            Backend::MySql => format!("UNHEX('{}')", id.simple()),
            Backend::Sqlite => format!("X'{}'", id.simple()),
        }
    }

    /// Drops every storefront and the test database.
    pub async fn teardown(self) {
        for shop in &self.shops {
            let id = shop.seeded.id;
            if let Err(e) = self.tenancy.drop_storefront(id, &id.to_string()).await {
                eprintln!("warning: dropping {}: {e}", shop.label);
            }
        }
        self.test.teardown().await;
    }
}

async fn rows(db: &DatabaseConnection, sql: &str) -> Vec<String> {
    let stmt = Statement::from_string(db.get_database_backend(), sql.to_owned());
    let mut rows: Vec<String> = JsonValue::find_by_statement(stmt)
        .all(db)
        .await
        .unwrap_or_else(|e| panic!("physical read `{sql}`: {e}"))
        .into_iter()
        .map(|r| r.to_string())
        .collect();
    rows.sort();
    rows
}

fn serde_json_text(rows: &[JsonValue]) -> String {
    rows.iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs every statement of `attacks` through every shop's connection of `arena`. Each must
/// be refused, or (when `may_run`) run without returning another storefront's values. Then
/// every other storefront's rows must be physically unchanged.
pub async fn assault(arena: &Arena, class: &str, attacks: &[String], may_run: bool) -> usize {
    let mut refused = 0;
    for i in 0..arena.shops.len() {
        let before = arena.physical(i).await;
        for sql in attacks {
            let outcome = arena.attempt(i, sql).await;
            let who = format!("{} {class} via {}", arena.backend, arena.shops[i].label);
            if let Some(value) = arena.leaks(i, &outcome) {
                panic!("{who}: `{sql}` leaked another storefront's value {value}: {outcome:?}");
            }
            match &outcome {
                Outcome::Refused(_) => refused += 1,
                other if !may_run => {
                    panic!("{who}: `{sql}` was not refused: {other:?}")
                }
                _ => {}
            }
        }
        let after = arena.physical(i).await;
        for (table, rows) in &before {
            assert_eq!(
                after.get(table),
                Some(rows),
                "{} {class} via {}: another storefront's rows changed in {table}",
                arena.backend,
                arena.shops[i].label
            );
        }
    }
    refused
}
