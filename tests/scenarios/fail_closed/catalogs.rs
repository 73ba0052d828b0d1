//! Class 5: catalogs and statistics. After an `ANALYZE`, planner statistics hold other
//! storefronts' values; catalog views list every schema, database and session. Only
//! registered tables may be named, so all of them are refused, naming the table.

use tenancy_tests::{
    arena::{assault, Arena},
    Backend,
};

pub async fn run(arena: &Arena) {
    let attacks: Vec<String> = match arena.backend {
        Backend::Postgres => vec![
            "ANALYZE customers",
            "ANALYZE",
            "VACUUM customers",
            "SELECT most_common_vals::text FROM pg_stats WHERE tablename = 'customers'",
            "SELECT * FROM pg_catalog.pg_stats",
            "SELECT * FROM pg_statistic",
            "SELECT relname FROM pg_class",
            "SELECT nspname FROM pg_namespace",
            "SELECT * FROM information_schema.tables",
            "SELECT * FROM information_schema.columns",
            "SELECT query FROM pg_stat_activity",
            "SELECT * FROM pg_stat_user_tables",
            "SELECT * FROM pg_settings",
            "SELECT * FROM pg_roles",
            "SELECT * FROM pg_database",
            "SELECT c.email FROM customers c WHERE EXISTS (SELECT 1 FROM pg_stats)",
            "EXPLAIN SELECT * FROM customers",
            "EXPLAIN ANALYZE SELECT * FROM customers",
            "SHOW search_path",
        ],
        Backend::MySql => vec![
            "ANALYZE TABLE customers",
            "SELECT * FROM information_schema.tables",
            "SELECT * FROM information_schema.columns",
            "SELECT * FROM information_schema.statistics",
            "SELECT * FROM information_schema.processlist",
            "SELECT * FROM mysql.user",
            "SELECT * FROM performance_schema.events_statements_history",
            "SELECT * FROM sys.statement_analysis",
            "SHOW TABLES",
            "SHOW DATABASES",
            "SHOW PROCESSLIST",
            "DESCRIBE customers",
            "EXPLAIN SELECT * FROM customers",
            "CHECKSUM TABLE customers",
        ],
        Backend::Sqlite => vec![
            "ANALYZE",
            "SELECT * FROM sqlite_master",
            "SELECT * FROM sqlite_schema",
            "SELECT * FROM sqlite_stat1",
            "SELECT * FROM sqlite_sequence",
            "SELECT * FROM main.sqlite_master",
            "SELECT * FROM temp.sqlite_master",
            "SELECT * FROM dbstat",
            "EXPLAIN SELECT * FROM customers",
            "EXPLAIN QUERY PLAN SELECT * FROM customers",
            "VACUUM",
        ],
    }
    .into_iter()
    .map(String::from)
    .collect();
    let refused = assault(arena, "catalogs", &attacks, false).await;
    assert_eq!(refused, attacks.len() * arena.shops.len());
}
