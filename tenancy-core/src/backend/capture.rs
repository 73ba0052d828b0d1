//! The change-capture DDL of each backend: the changelog and fence tables, and the row
//! triggers that refuse a fenced storefront's writes and log the keys of its changed rows.
//! Statements only; the mover (`mover::capture`) runs them, in order, on one side.
//!
//! The fence row has two columns the triggers read under a shared lock: `fenced` (the
//! cutover's fence) and `guard`: 0 for none, 1 for a target's copy before its cutover
//! (every write refused, whoever sends it), 2 while the mover's own transaction writes
//! (let through, not logged). The mover sets 2 and back inside its transaction only, so
//! every other writer waits on the row and then sees the value it had before.
//!
//! Every name here is quoted by the caller and every literal is built by [`Dialect`]; the
//! message and the table names inside string literals are escaped here.

use sea_orm::DbBackend;

use super::Dialect;

/// What one capture installation names: the side's changelog and fence tables
/// (qualified), the storefront as a literal, the refusal message.
pub(crate) struct Capture<'a> {
    pub(crate) dialect: Dialect,
    /// The quoted schema or database the side's tables live in.
    pub(crate) qualifier: &'a str,
    /// `tenancy_changelog` qualified and quoted.
    pub(crate) changelog: &'a str,
    /// `tenancy_fence` qualified and quoted.
    pub(crate) fence: &'a str,
    /// The storefront as a literal ([`Dialect::storefront_literal`]).
    pub(crate) storefront: &'a str,
    /// The error text of a fenced write.
    pub(crate) message: &'a str,
    /// The error text of a write to a guarded target (before its cutover).
    pub(crate) guarded: &'a str,
}

/// One scoped table's part of a capture installation.
pub(crate) struct Captured<'a> {
    /// The table name as stored (for the changelog's `table_name`).
    pub(crate) name: &'a str,
    /// The table, qualified and quoted.
    pub(crate) table: &'a str,
    /// The table quoted but not qualified (SQLite triggers name tables of their own file).
    pub(crate) plain: &'a str,
    /// The tenant column, quoted.
    pub(crate) tenant_column: &'a str,
    /// The primary-key column as stored (PostgreSQL reads it from the row's JSON).
    pub(crate) pk: &'a str,
}

/// Escapes `text` for a single-quoted SQL string literal.
fn literal(text: &str) -> String {
    text.replace('\'', "''")
}

impl Capture<'_> {
    /// Creates the changelog (with its pending-entries index) and the fence table when
    /// missing. The fence row is [`Capture::fence_row`]'s, once `guard` is known to exist.
    pub(crate) fn tables(&self) -> Vec<String> {
        let Capture {
            changelog: cl,
            fence,
            ..
        } = self;
        match self.dialect.0 {
            DbBackend::Postgres => vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {cl} (seq bigserial PRIMARY KEY, storefront_id uuid NOT NULL, \
                     table_name text NOT NULL, pk text NOT NULL, round bigint)"
                ),
                format!(
                    "CREATE INDEX IF NOT EXISTS tenancy_changelog_pending ON {cl} (storefront_id, round, seq)"
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {fence} (storefront_id uuid PRIMARY KEY, fenced boolean NOT NULL, \
                     guard smallint NOT NULL DEFAULT 0, holder bigint NOT NULL DEFAULT 0)"
                ),
            ],
            DbBackend::MySql => vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {cl} (seq BIGINT AUTO_INCREMENT PRIMARY KEY, \
                     storefront_id BINARY(16) NOT NULL, table_name VARCHAR(64) NOT NULL, \
                     pk VARBINARY(255) NOT NULL, round BIGINT NULL, \
                     KEY tenancy_changelog_pending (storefront_id, round, seq)) ENGINE=InnoDB"
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {fence} (storefront_id BINARY(16) PRIMARY KEY, \
                     fenced TINYINT(1) NOT NULL, guard TINYINT NOT NULL DEFAULT 0, \
                     holder BIGINT NOT NULL DEFAULT 0) ENGINE=InnoDB"
                ),
            ],
            _ => {
                let changelog = self.dialect.quote(crate::connection::fence::CHANGELOG);
                let q = self.qualifier;
                vec![
                    format!(
                        "CREATE TABLE IF NOT EXISTS {cl} (seq INTEGER PRIMARY KEY AUTOINCREMENT, \
                         storefront_id BLOB NOT NULL, table_name TEXT NOT NULL, pk NOT NULL, round INTEGER)"
                    ),
                    format!(
                        "CREATE INDEX IF NOT EXISTS {q}.tenancy_changelog_pending ON {changelog} (storefront_id, round, seq)"
                    ),
                    format!(
                        "CREATE TABLE IF NOT EXISTS {fence} (storefront_id BLOB PRIMARY KEY, fenced INTEGER NOT NULL, \
                         guard INTEGER NOT NULL DEFAULT 0, holder INTEGER NOT NULL DEFAULT 0)"
                    ),
                ]
            }
        }
    }

    /// The fence table's columns added after its first version (the target guard, the
    /// mover's fencing token), each with a probe that fails with a missing column on a
    /// table without it and the statement that adds it.
    pub(crate) fn later_columns(&self) -> Vec<(String, String)> {
        let (small, big) = match self.dialect.0 {
            DbBackend::Postgres => ("smallint", "bigint"),
            DbBackend::MySql => ("TINYINT", "BIGINT"),
            _ => ("INTEGER", "INTEGER"),
        };
        [("guard", small), ("holder", big)]
            .into_iter()
            .map(|(column, kind)| {
                (
                    format!("SELECT {column} FROM {} WHERE 1 = 0", self.fence),
                    format!(
                        "ALTER TABLE {} ADD COLUMN {column} {kind} NOT NULL DEFAULT 0",
                        self.fence
                    ),
                )
            })
            .collect()
    }

    /// The storefront's fence row, down, with `guard` and held by `holder`, unless it
    /// exists.
    pub(crate) fn fence_row(&self, guard: i32, holder: i64) -> String {
        let (fence, sf) = (self.fence, self.storefront);
        let cols = "(storefront_id, fenced, guard, holder)";
        match self.dialect.0 {
            DbBackend::Postgres => format!(
                "INSERT INTO {fence} {cols} VALUES ({sf}, false, {guard}, {holder}) ON CONFLICT DO NOTHING"
            ),
            DbBackend::MySql => {
                format!("INSERT IGNORE INTO {fence} {cols} VALUES ({sf}, 0, {guard}, {holder})")
            }
            _ => format!(
                "INSERT OR IGNORE INTO {fence} {cols} VALUES ({sf}, 0, {guard}, {holder})"
            ),
        }
    }

    /// PostgreSQL: the storefront's trigger function (qualified name `function`), shared
    /// by every table's triggers; the key column's name is the trigger's argument.
    ///
    /// Every trigger fails closed: a missing fence row refuses the write as a raised fence
    /// does (a write let through unlogged would be lost by the move), and an update that
    /// changes the key logs the old key too (its row is gone there). A guarded side refuses
    /// every write; the mover's own (guard 2) pass unlogged.
    ///
    /// It runs as its owner (the mover's role), so an application role bound by row-level
    /// security needs no grant on the framework's tables; every name in it is qualified, and
    /// the search path is pinned so nothing the caller's session puts first is called.
    pub(crate) fn pg_function(&self, function: &str) -> String {
        let Capture {
            changelog: cl,
            fence,
            storefront: sf,
            ..
        } = self;
        let (message, guarded) = (literal(self.message), literal(self.guarded));
        format!(
            "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql \
             SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $tenancy$
DECLARE r record; f boolean; g smallint;
BEGIN
  IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
  SELECT fenced, guard INTO f, g FROM {fence} WHERE storefront_id = {sf} FOR SHARE;
  IF g = 2 THEN RETURN NULL; END IF;
  IF g = 1 THEN RAISE EXCEPTION '{guarded}' USING ERRCODE = '55006'; END IF;
  IF f IS NOT FALSE THEN RAISE EXCEPTION '{message}' USING ERRCODE = '55006'; END IF;
  INSERT INTO {cl} (storefront_id, table_name, pk) VALUES ({sf}, TG_TABLE_NAME, to_jsonb(r) ->> TG_ARGV[0]);
  IF TG_OP = 'UPDATE' AND (to_jsonb(OLD) ->> TG_ARGV[0]) IS DISTINCT FROM (to_jsonb(NEW) ->> TG_ARGV[0]) THEN
    INSERT INTO {cl} (storefront_id, table_name, pk) VALUES ({sf}, TG_TABLE_NAME, to_jsonb(OLD) ->> TG_ARGV[0]);
  END IF;
  RETURN NULL;
END $tenancy$"
        )
    }

    /// PostgreSQL: (re)creates `t`'s two triggers (insert or update, delete), named
    /// `{prefix}_iu` and `{prefix}_d`, calling `function`; one statement.
    pub(crate) fn pg_triggers(&self, t: &Captured<'_>, prefix: &str, function: &str) -> String {
        let (table, tc, sf) = (t.table, t.tenant_column, self.storefront);
        let pk = literal(t.pk);
        format!(
            "DROP TRIGGER IF EXISTS {prefix}_iu ON {table}; \
             CREATE TRIGGER {prefix}_iu AFTER INSERT OR UPDATE ON {table} FOR EACH ROW \
             WHEN (NEW.{tc} = {sf}) EXECUTE FUNCTION {function}('{pk}'); \
             DROP TRIGGER IF EXISTS {prefix}_d ON {table}; \
             CREATE TRIGGER {prefix}_d AFTER DELETE ON {table} FOR EACH ROW \
             WHEN (OLD.{tc} = {sf}) EXECUTE FUNCTION {function}('{pk}')"
        )
    }

    /// MySQL and SQLite: the row trigger `trigger` for `event` (`INSERT`, `UPDATE`,
    /// `DELETE`) on `t`, reading the row as `row` (`NEW` or `OLD`), keyed by the quoted
    /// primary-key column `pk`. On MySQL, drop it first: it has no `IF NOT EXISTS`
    /// that replaces.
    pub(crate) fn row_trigger(
        &self,
        t: &Captured<'_>,
        trigger: &str,
        event: &str,
        row: &str,
        pk: &str,
    ) -> String {
        let (tc, sf) = (t.tenant_column, self.storefront);
        let (message, name) = (literal(self.message), literal(t.name));
        let guarded = literal(self.guarded);
        match self.dialect.0 {
            DbBackend::MySql => {
                let Capture {
                    changelog: cl,
                    fence,
                    ..
                } = self;
                let table = t.table;
                let old_key = if event == "UPDATE" {
                    format!(
                        "\n    IF NOT (OLD.{pk} <=> NEW.{pk}) THEN INSERT INTO {cl} (storefront_id, table_name, pk) VALUES ({sf}, '{name}', OLD.{pk}); END IF;"
                    )
                } else {
                    String::new()
                };
                // `f` stays 1 when the fence row is missing (no row: no assignment).
                format!(
                    "CREATE TRIGGER {trigger} AFTER {event} ON {table} FOR EACH ROW BEGIN
  DECLARE f TINYINT DEFAULT 1;
  DECLARE g TINYINT DEFAULT 0;
  IF {row}.{tc} = {sf} THEN
    SELECT fenced, guard INTO f, g FROM {fence} WHERE storefront_id = {sf} LOCK IN SHARE MODE;
    IF g = 1 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{guarded}'; END IF;
    IF g IS NULL OR g <> 2 THEN
    IF f IS NULL OR f <> 0 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{message}'; END IF;
    INSERT INTO {cl} (storefront_id, table_name, pk) VALUES ({sf}, '{name}', {row}.{pk});{old_key}
    END IF;
  END IF;
END"
                )
            }
            _ => {
                // A SQLite trigger names tables of its own file, unqualified.
                let fence = self.dialect.quote(crate::connection::fence::FENCE);
                let changelog = self.dialect.quote(crate::connection::fence::CHANGELOG);
                let plain = t.plain;
                let old_key = if event == "UPDATE" {
                    format!(
                        "INSERT INTO {changelog} (storefront_id, table_name, pk) SELECT {sf}, '{name}', OLD.{pk} WHERE OLD.{pk} IS NOT NEW.{pk}; "
                    )
                } else {
                    String::new()
                };
                let guard = format!("(SELECT guard FROM {fence} WHERE storefront_id = {sf})");
                format!(
                    "CREATE TRIGGER IF NOT EXISTS {trigger} AFTER {event} ON {plain} FOR EACH ROW \
                     WHEN {row}.{tc} = {sf} AND COALESCE({guard}, 0) <> 2 BEGIN \
                     SELECT RAISE(ABORT, '{guarded}') WHERE {guard} = 1; \
                     SELECT RAISE(ABORT, '{message}') WHERE COALESCE((SELECT fenced FROM {fence} WHERE storefront_id = {sf}), 1) <> 0; \
                     INSERT INTO {changelog} (storefront_id, table_name, pk) VALUES ({sf}, '{name}', {row}.{pk}); \
                     {old_key}END"
                )
            }
        }
    }
}
