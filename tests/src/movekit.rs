//! Support for move tests: a Tenancy with a short directory cache, writers that keep
//! inserting, updating and deleting one storefront's rows while it moves, and the state the
//! writers were told was committed.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use chrono::Utc;
use entities::{customer, order, order_item};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use tenancy_core::{PoolOptions, StorefrontId, Tenancy, TenancyOptions, TenantConnection};
use uuid::Uuid;

use crate::{Backend, TestDb};

/// A migrated test database and a Tenancy over it with a directory (cache `ttl`).
pub async fn env(backend: Backend, ttl: Duration) -> Option<(TestDb, Tenancy)> {
    let test = TestDb::migrated(backend).await?;
    let tenancy = tenancy_with(&test, ttl, entities::registry()).await;
    Some((test, tenancy))
}

/// [`env`] on PostgreSQL with row-level security on: the policies applied, and the
/// Tenancy's storefront statements run as a new application role (drop it after the
/// test's teardown).
pub async fn env_with_rls(ttl: Duration) -> Option<(TestDb, Tenancy, crate::rls::AppRole)> {
    let test = TestDb::migrated(Backend::Postgres).await?;
    let role = crate::rls::AppRole::secured(&test, &entities::registry()).await;
    let tenancy = options(&test, ttl, entities::registry())
        .row_level_security(role.options())
        .connect_with(test.db.clone())
        .await
        .expect("tenancy with row-level security");
    Some((test, tenancy, role))
}

/// A Tenancy over `test`'s database with `registry` and a directory cache of `ttl`, as
/// [`env`] builds it.
pub async fn tenancy_with(
    test: &TestDb,
    ttl: Duration,
    registry: tenancy_core::Registry,
) -> Tenancy {
    options(test, ttl, registry)
        .connect_with(test.db.clone())
        .await
        .expect("tenancy")
}

fn options(test: &TestDb, ttl: Duration, registry: tenancy_core::Registry) -> TenancyOptions {
    TenancyOptions::new()
        .registry(registry)
        .shared_url(test.url.clone())
        .directory(ttl, None)
        .pools(PoolOptions {
            budget: 16,
            per_tenant: 4,
            ..PoolOptions::default()
        })
        .fence_wait(Duration::from_secs(20))
}

/// A second Tenancy over the same shared database, as another application process would
/// have (its own directory cache; it watches the directory).
pub async fn second_process(test: &TestDb, ttl: Duration) -> Tenancy {
    process(
        test,
        ttl,
        Duration::from_secs(20),
        tenancy_core::WatchOptions::default(),
    )
    .await
}

/// A Tenancy over the same shared database as a process that does not watch the
/// directory (`directory_watch: false`) would have: it trusts its cache for `ttl`.
pub async fn unwatched_process(test: &TestDb, ttl: Duration, fence_wait: Duration) -> Tenancy {
    let watch = tenancy_core::WatchOptions {
        enabled: false,
        ..tenancy_core::WatchOptions::default()
    };
    process(test, ttl, fence_wait, watch).await
}

async fn process(
    test: &TestDb,
    ttl: Duration,
    fence_wait: Duration,
    watch: tenancy_core::WatchOptions,
) -> Tenancy {
    let db = sea_orm::Database::connect(&test.url)
        .await
        .expect("connect");
    TenancyOptions::new()
        .registry(entities::registry())
        .shared_url(test.url.clone())
        .directory(ttl, None)
        .pools(PoolOptions::default())
        .fence_wait(fence_wait)
        .watch(watch)
        .connect_with(db)
        .await
        .expect("tenancy")
}

/// The rows of one storefront the tests compare.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// Customer id -> first name.
    pub customers: BTreeMap<Uuid, String>,
    pub orders: BTreeSet<Uuid>,
    pub items: BTreeSet<Uuid>,
}

/// Reads the storefront's state through its own connection (wherever it is placed).
pub async fn state(db: &TenantConnection) -> State {
    let customers = customer::Entity::find().all(db).await.expect("customers");
    let orders = order::Entity::find().all(db).await.expect("orders");
    let items = order_item::Entity::find().all(db).await.expect("items");
    State {
        customers: customers
            .into_iter()
            .map(|c| (c.id, c.first_name))
            .collect(),
        orders: orders.into_iter().map(|o| o.id).collect(),
        items: items.into_iter().map(|i| i.id).collect(),
    }
}

/// What one writer task returns: its acknowledged state, its errors, its write count and
/// its longest write.
type WriterResult = (State, Vec<String>, u64, Duration);

/// Writers running against one storefront.
pub struct Writers {
    stop: Arc<AtomicBool>,
    handles: Vec<tokio::task::JoinHandle<WriterResult>>,
}

/// What the writers did.
pub struct Written {
    /// The state implied by every acknowledged write (added to the state before they began).
    pub acknowledged: State,
    /// Writes that failed (must be empty).
    pub errors: Vec<String>,
    /// Acknowledged writes.
    pub writes: u64,
    /// The longest time one write took.
    pub longest: Duration,
}

impl Written {
    /// `base` with every acknowledged write applied.
    pub fn expected(&self, base: &State) -> State {
        let mut s = base.clone();
        s.customers.extend(self.acknowledged.customers.clone());
        s.orders.extend(self.acknowledged.orders.iter().copied());
        s.items.extend(self.acknowledged.items.iter().copied());
        s
    }
}

async fn writer(
    tenancy: Tenancy,
    storefront: StorefrontId,
    w: usize,
    stop: Arc<AtomicBool>,
    pause: Duration,
) -> WriterResult {
    let mut mine = State::default();
    let mut order_items: BTreeMap<Uuid, Uuid> = BTreeMap::new();
    let mut errors = Vec::new();
    let mut writes = 0u64;
    let mut longest = Duration::ZERO;
    let mut k = 0u64;
    while !stop.load(Ordering::Relaxed) && errors.len() < 5 {
        k += 1;
        // A new connection per request, as a web handler would take.
        let db = tenancy.connection(storefront);
        let now = Utc::now();
        let started = Instant::now();
        let result: Result<(), sea_orm::DbErr> = async {
            match k % 3 {
                0 | 1 if mine.customers.is_empty() || k.is_multiple_of(3) => {
                    let c = customer::ActiveModel {
                        id: Set(Uuid::new_v4()),
                        email: Set(format!(
                            "writer{w}-{k}-{}@example.com",
                            Uuid::new_v4().simple()
                        )),
                        first_name: Set(format!("w{w}-{k}")),
                        last_name: Set("writer".into()),
                        created_at: Set(now),
                        updated_at: Set(now),
                        ..Default::default()
                    }
                    .insert(&db)
                    .await?;
                    mine.customers.insert(c.id, c.first_name.clone());
                    writes += 1;
                    let o = order::ActiveModel {
                        id: Set(Uuid::new_v4()),
                        customer_id: Set(c.id),
                        status: Set("paid".into()),
                        total_cents: Set(100),
                        currency: Set("EUR".into()),
                        created_at: Set(now),
                        updated_at: Set(now),
                        ..Default::default()
                    }
                    .insert(&db)
                    .await?;
                    mine.orders.insert(o.id);
                    writes += 1;
                    let item = order_item::ActiveModel {
                        id: Set(Uuid::new_v4()),
                        order_id: Set(o.id),
                        sku: Set("SKU".into()),
                        quantity: Set(1),
                        unit_price_cents: Set(100),
                        created_at: Set(now),
                        ..Default::default()
                    }
                    .insert(&db)
                    .await?;
                    mine.items.insert(item.id);
                    order_items.insert(o.id, item.id);
                    writes += 1;
                }
                1 => {
                    let pick = (k as usize * 7919) % mine.customers.len();
                    let id = *mine.customers.keys().nth(pick).unwrap_or(&Uuid::nil());
                    let name = format!("renamed-w{w}-{k}");
                    customer::Entity::update_many()
                        .col_expr(
                            customer::Column::FirstName,
                            sea_orm::sea_query::Expr::value(name.clone()),
                        )
                        .filter(customer::Column::Id.eq(id))
                        .exec(&db)
                        .await?;
                    mine.customers.insert(id, name);
                    writes += 1;
                }
                _ => {
                    if let Some(id) = mine.orders.iter().next().copied() {
                        order::Entity::delete_by_id(id).exec(&db).await?;
                        mine.orders.remove(&id);
                        if let Some(item) = order_items.remove(&id) {
                            mine.items.remove(&item);
                        }
                        writes += 1;
                    }
                }
            }
            Ok(())
        }
        .await;
        longest = longest.max(started.elapsed());
        if let Err(e) = result {
            if std::env::var("MOVE_TRACE").is_ok() {
                eprintln!("WRITER ERROR {w} {k}: {e}");
            }
            errors.push(format!("writer {w}, op {k}: {e}"));
        }
        tokio::time::sleep(pause).await;
    }
    (mine, errors, writes, longest)
}

impl Writers {
    /// Starts `n` writers on `storefront`.
    pub fn spawn(tenancy: &Tenancy, storefront: StorefrontId, n: usize) -> Writers {
        Self::spawn_paced(tenancy, storefront, n, Duration::from_millis(2))
    }

    /// Starts `n` writers on `storefront`, each pausing `pause` between writes (so a long
    /// test's writers do not outgrow the data it measures).
    pub fn spawn_paced(
        tenancy: &Tenancy,
        storefront: StorefrontId,
        n: usize,
        pause: Duration,
    ) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let handles = (0..n)
            .map(|w| {
                tokio::spawn(writer(
                    tenancy.clone(),
                    storefront,
                    w,
                    Arc::clone(&stop),
                    pause,
                ))
            })
            .collect();
        Writers { stop, handles }
    }

    /// Stops the writers and returns what they did.
    pub async fn stop(self) -> Written {
        self.stop.store(true, Ordering::Relaxed);
        let mut out = Written {
            acknowledged: State::default(),
            errors: Vec::new(),
            writes: 0,
            longest: Duration::ZERO,
        };
        for h in self.handles {
            let (mine, errors, writes, longest) = h.await.expect("writer task");
            out.acknowledged.customers.extend(mine.customers);
            out.acknowledged.orders.extend(mine.orders);
            out.acknowledged.items.extend(mine.items);
            out.errors.extend(errors);
            out.writes += writes;
            out.longest = out.longest.max(longest);
        }
        out
    }
}

/// Rows of `storefront` in `table`, counted on `db` directly (where they physically are).
pub async fn count_rows(
    db: &sea_orm::DatabaseConnection,
    table: &str,
    storefront: StorefrontId,
) -> i64 {
    use sea_orm::ConnectionTrait;
    let backend = db.get_database_backend();
    let sql = format!("SELECT COUNT(*) FROM {table} WHERE storefront_id = ?");
    let row = db
        .query_one_raw(crate::stmt(backend, &sql, [(*storefront.as_uuid()).into()]))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .expect("a row");
    row.try_get_by_index::<i64>(0).expect("count")
}

/// How long one move test may take before it fails (`TENANCY_MOVE_TEST_LIMIT_SECS`,
/// default 15 minutes): a move that never converges fails with a message instead of
/// stalling CI.
pub fn move_test_limit() -> Duration {
    let secs = std::env::var("TENANCY_MOVE_TEST_LIMIT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(900);
    Duration::from_secs(secs)
}

/// Runs `test` within [`move_test_limit`], panicking with `what` when it takes longer.
pub async fn bounded<F: std::future::Future>(what: &str, test: F) -> F::Output {
    let limit = move_test_limit();
    tokio::time::timeout(limit, test)
        .await
        .unwrap_or_else(|_| panic!("{what}: did not finish within {limit:?}"))
}

/// A connection to a move's target as the application's own pool never sees it (the
/// test database's for a schema, a new one for a database) and the prefix that names its
/// tables (`schema.` or nothing). Close it with [`RawTarget::close`].
pub struct RawTarget {
    /// The connection.
    pub conn: sea_orm::DatabaseConnection,
    /// What goes before a table name.
    pub prefix: String,
    own: bool,
}

impl RawTarget {
    /// Connects to `target`, a schema or a database.
    pub async fn open(test: &TestDb, target: &tenancy_core::Placement) -> Self {
        use tenancy_core::Placement;
        match target {
            Placement::Schema { schema } => Self {
                conn: test.db.clone(),
                prefix: format!("{schema}."),
                own: false,
            },
            Placement::Database { url } => Self {
                conn: sea_orm::Database::connect(url.as_str())
                    .await
                    .expect("a connection to the target"),
                prefix: String::new(),
                own: true,
            },
            Placement::Shared => unreachable!("targets here are schemas or databases"),
        }
    }

    /// Runs `sql` (with `{t}` standing for the table prefix and `?` for each of `values`)
    /// as a stray writer would.
    pub async fn write(
        &self,
        sql: &str,
        values: impl IntoIterator<Item = sea_orm::Value>,
    ) -> Result<u64, sea_orm::DbErr> {
        use sea_orm::ConnectionTrait;
        let sql = sql.replace("{t}", &self.prefix);
        self.conn
            .execute_raw(crate::stmt(self.conn.get_database_backend(), &sql, values))
            .await
            .map(|r| r.rows_affected())
    }

    /// Runs `sql` as [`RawTarget::write`] does, but the way the mover writes past the
    /// target guard (in a transaction that marks the fence row as the mover's and puts the
    /// guard back): tampering by someone who knows the protocol.
    pub async fn write_behind_the_guard(
        &self,
        sql: &str,
        sf: StorefrontId,
        values: impl IntoIterator<Item = sea_orm::Value>,
    ) -> u64 {
        use sea_orm::{ConnectionTrait, TransactionTrait};
        let backend = self.conn.get_database_backend();
        let guard = |value: i32| {
            crate::stmt(
                backend,
                &format!(
                    "UPDATE {}tenancy_fence SET guard = {value} WHERE storefront_id = ?",
                    self.prefix
                ),
                [(*sf.as_uuid()).into()],
            )
        };
        let txn = self.conn.begin().await.expect("begin");
        txn.execute_raw(guard(2)).await.expect("the mover's mark");
        let sql = sql.replace("{t}", &self.prefix);
        let n = txn
            .execute_raw(crate::stmt(backend, &sql, values))
            .await
            .expect("a write behind the guard")
            .rows_affected();
        txn.execute_raw(guard(1)).await.expect("the guard back");
        txn.commit().await.expect("commit");
        n
    }

    /// Closes the connection if it was opened for this.
    pub async fn close(self) {
        if self.own {
            let _ = self.conn.close().await;
        }
    }
}
