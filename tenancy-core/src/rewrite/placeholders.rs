//! Placeholders: where the statement's bound values sit in the SQL text.
//!
//! PostgreSQL numbers its placeholders (`$1`, `$2`, ...), so the tenant value is simply
//! the next number and is appended to the values. MySQL and SQLite use positional `?`, so
//! the tenant value must be inserted at the index where its `?` lands in the rewritten SQL.
//! To find that index for any rewrite, the input's `?`s are first numbered `?1`, `?2`, ...
//! in text order, the tenant placeholder is written `?0`, and after the rewrite the output
//! is tokenized: the order of `?k` tokens is the binding order, and each is turned back
//! into a plain `?`.

use sea_orm::DbBackend;
use sqlparser::{
    dialect::{Dialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect},
    tokenizer::{Location, Token, TokenWithSpan, Tokenizer},
};

/// The text of the tenant placeholder in positional dialects, before it becomes `?`.
pub(super) const POSITIONAL_TENANT_MARK: &str = "?0";

static POSTGRES: PostgreSqlDialect = PostgreSqlDialect {};
static MYSQL: MySqlDialect = MySqlDialect {};
static SQLITE: SQLiteDialect = SQLiteDialect {};

/// The sqlparser dialect of a SeaORM backend.
pub(super) fn dialect(backend: DbBackend) -> &'static dyn Dialect {
    match backend {
        DbBackend::Postgres => &POSTGRES,
        DbBackend::MySql => &MYSQL,
        // SeaORM's backend enum is non-exhaustive; SQLite is the remaining one.
        _ => &SQLITE,
    }
}

/// The dialect's name, for messages.
pub(super) fn dialect_name(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => "PostgreSQL",
        DbBackend::MySql => "MySQL",
        _ => "SQLite",
    }
}

/// Whether the backend binds values by position (`?`) rather than by number (`$n`).
pub(super) fn is_positional(backend: DbBackend) -> bool {
    !matches!(backend, DbBackend::Postgres)
}

pub(super) fn tokenize(dialect: &dyn Dialect, sql: &str) -> Result<Vec<TokenWithSpan>, String> {
    Tokenizer::new(dialect, sql)
        .tokenize_with_location()
        .map_err(|e| e.to_string())
}

/// One bound value of a rewritten statement, in binding order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    /// The statement's own value at this index.
    Param(usize),
    /// The storefront's id.
    Tenant,
}

/// The index (0-based) of the value a placeholder names: `$3` and `?3` are index 2.
pub(super) fn placeholder_index(text: &str) -> Option<usize> {
    let digits = text.strip_prefix('$').or_else(|| text.strip_prefix('?'))?;
    let n: usize = digits.parse().ok()?;
    n.checked_sub(1)
}

/// PostgreSQL: the highest `$n` in the SQL. Any other placeholder form is an error.
pub(super) fn max_numbered(tokens: &[TokenWithSpan]) -> Result<usize, String> {
    let mut max = 0;
    for t in tokens {
        if let Token::Placeholder(p) = &t.token {
            match p.strip_prefix('$').and_then(|d| d.parse::<usize>().ok()) {
                Some(n) => max = max.max(n),
                None => {
                    return Err(format!(
                        "unsupported placeholder `{p}` (expected $1, $2, ...)"
                    ))
                }
            }
        }
    }
    Ok(max)
}

/// MySQL/SQLite: numbers each plain `?` as `?1`, `?2`, ... in text order. Numbered or
/// named placeholders in the input are an error (their binding order is not positional).
pub(super) fn number_positional(
    sql: &str,
    tokens: &[TokenWithSpan],
) -> Result<(String, usize), String> {
    let lines = LineIndex::new(sql);
    let mut out = String::with_capacity(sql.len() + 16);
    let mut copied = 0;
    let mut count = 0;
    for t in tokens {
        if let Token::Placeholder(p) = &t.token {
            if p != "?" {
                return Err(format!(
                    "unsupported placeholder `{p}` (only positional `?` can be rewritten)"
                ));
            }
            let start = lines.offset(sql, t.span.start);
            count += 1;
            out.push_str(&sql[copied..start]);
            out.push('?');
            out.push_str(&count.to_string());
            copied = start + 1;
        }
    }
    out.push_str(&sql[copied..]);
    Ok((out, count))
}

/// MySQL/SQLite: reads the binding order from the rewritten SQL (`?k` is the input's
/// value k, `?0` the tenant) and turns every placeholder back into `?`.
pub(super) fn bind_positional(
    sql: &str,
    tokens: &[TokenWithSpan],
) -> Result<(String, Vec<Slot>), String> {
    let lines = LineIndex::new(sql);
    let mut out = String::with_capacity(sql.len());
    let mut slots = Vec::new();
    let mut copied = 0;
    for t in tokens {
        if let Token::Placeholder(p) = &t.token {
            let slot = if p == POSITIONAL_TENANT_MARK {
                Slot::Tenant
            } else {
                Slot::Param(
                    placeholder_index(p)
                        .ok_or_else(|| format!("unexpected placeholder `{p}` in rewritten SQL"))?,
                )
            };
            let start = lines.offset(sql, t.span.start);
            out.push_str(&sql[copied..start]);
            out.push('?');
            copied = start + p.len();
            slots.push(slot);
        }
    }
    out.push_str(&sql[copied..]);
    Ok((out, slots))
}

/// Converts sqlparser's (line, column) locations, counted in characters, to byte offsets.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(sql: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(sql.match_indices('\n').map(|(i, _)| i + 1));
        Self { starts }
    }

    fn offset(&self, sql: &str, loc: Location) -> usize {
        let line = (loc.line as usize).saturating_sub(1);
        let start = self.starts.get(line).copied().unwrap_or(sql.len());
        let col = (loc.column as usize).saturating_sub(1);
        sql[start..]
            .char_indices()
            .nth(col)
            .map(|(i, _)| start + i)
            .unwrap_or(sql.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_restores_positional_placeholders() {
        let d = dialect(DbBackend::MySql);
        let sql = "SELECT '?' , `a`\n FROM t WHERE x = ? AND y = ? -- ?";
        let tokens = tokenize(d, sql).unwrap();
        let (numbered, n) = number_positional(sql, &tokens).unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            numbered,
            "SELECT '?' , `a`\n FROM t WHERE x = ?1 AND y = ?2 -- ?"
        );
        let with_tenant = numbered.replace("y = ?2", "y = ?2 AND s = ?0");
        let tokens = tokenize(d, &with_tenant).unwrap();
        let (out, slots) = bind_positional(&with_tenant, &tokens).unwrap();
        assert_eq!(
            out,
            "SELECT '?' , `a`\n FROM t WHERE x = ? AND y = ? AND s = ? -- ?"
        );
        assert_eq!(slots, vec![Slot::Param(0), Slot::Param(1), Slot::Tenant]);
    }

    #[test]
    fn non_ascii_text_keeps_offsets_right() {
        let d = dialect(DbBackend::Sqlite);
        let sql = "SELECT 'héllo ✓' FROM t WHERE x = ?";
        let tokens = tokenize(d, sql).unwrap();
        let (numbered, _) = number_positional(sql, &tokens).unwrap();
        assert_eq!(numbered, "SELECT 'héllo ✓' FROM t WHERE x = ?1");
    }

    #[test]
    fn rejects_numbered_input_on_positional_backends() {
        let d = dialect(DbBackend::Sqlite);
        let sql = "SELECT * FROM t WHERE x = ?3";
        let tokens = tokenize(d, sql).unwrap();
        assert!(number_positional(sql, &tokens).is_err());
    }

    #[test]
    fn postgres_max_placeholder() {
        let d = dialect(DbBackend::Postgres);
        let tokens = tokenize(d, "SELECT $2, $10, data ? 'k' FROM t").unwrap();
        assert_eq!(max_numbered(&tokens).unwrap(), 10);
    }
}
