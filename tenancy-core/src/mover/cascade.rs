//! Capture of rows changed by foreign-key actions on MySQL/MariaDB.
//!
//! InnoDB runs `ON DELETE CASCADE`, `SET NULL` and `ON UPDATE CASCADE` inside the storage
//! engine, and *cascaded changes do not fire triggers* (documented MySQL behaviour, the same
//! on MariaDB). A capture trigger on `order_items` therefore never sees the items deleted
//! with their order. PostgreSQL and SQLite run the actions as ordinary statements, whose
//! row triggers fire, so only MySQL needs this module.
//!
//! For every scoped table that is the parent of such an action, a `BEFORE DELETE` (and,
//! where an update action exists, `BEFORE UPDATE`) trigger logs the keys of every row the
//! action is about to change, following the chain of actions down through grandchildren.
//! Logging a key whose row ends unchanged is harmless: replay copies the row's current
//! state. A self-referencing action (a tree deleting its own subtree) cannot be followed
//! with a fixed join, so a move refuses such a schema on MySQL rather than lose changes.

use std::collections::BTreeSet;

use sea_orm::ConnectionTrait;

use super::side::{Side, TableMeta};
use crate::{connection::fence::CASCADE_ALIAS, StorefrontId, TenancyError};

/// One foreign key between two scoped tables, with the actions that change child rows.
#[derive(Clone, Debug)]
pub(crate) struct Edge {
    pub parent: String,
    pub child: String,
    /// `(child column, parent column)`, in key order.
    pub pairs: Vec<(String, String)>,
    pub on_delete: String,
    pub on_update: String,
}

/// Whether a rule changes child rows (as opposed to refusing or doing nothing).
fn acts(rule: &str) -> bool {
    matches!(rule, "CASCADE" | "SET NULL" | "SET DEFAULT")
}

/// What happens to a row: deleted, or updated (its key stays).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    Delete,
    Update,
}

/// The foreign keys of a MySQL side's schema: between scoped tables, and from unscoped
/// tables (a global lookup table whose delete cascades into a storefront's rows).
pub(crate) async fn edges(side: &Side) -> Result<Vec<Edge>, TenancyError> {
    let sql = "SELECT CAST(k.table_name AS CHAR), CAST(k.referenced_table_name AS CHAR), \
               CAST(k.constraint_name AS CHAR), CAST(k.column_name AS CHAR), \
               CAST(k.referenced_column_name AS CHAR), CAST(r.delete_rule AS CHAR), \
               CAST(r.update_rule AS CHAR) \
               FROM information_schema.key_column_usage k \
               JOIN information_schema.referential_constraints r \
                 ON r.constraint_schema = k.constraint_schema \
                AND r.constraint_name = k.constraint_name AND r.table_name = k.table_name \
               WHERE k.table_schema = ? AND k.referenced_table_name IS NOT NULL \
               ORDER BY k.table_name, k.constraint_name, k.ordinal_position";
    let rows = side
        .conn
        .query_all_raw(side.stmt(sql, vec![side.qualifier.clone().into()]))
        .await?;
    let mut out: Vec<(String, Edge)> = Vec::new();
    for row in rows {
        let child: String = row.try_get_by_index(0)?;
        let parent: String = row.try_get_by_index(1)?;
        let name: String = row.try_get_by_index(2)?;
        let column: String = row.try_get_by_index(3)?;
        let referenced: String = row.try_get_by_index(4)?;
        match out.last_mut() {
            Some((n, e)) if *n == name && e.child == child => e.pairs.push((column, referenced)),
            _ => out.push((
                name,
                Edge {
                    parent,
                    child,
                    pairs: vec![(column, referenced)],
                    on_delete: row.try_get_by_index(5)?,
                    on_update: row.try_get_by_index(6)?,
                },
            )),
        }
    }
    Ok(out.into_iter().map(|(_, e)| e).collect())
}

/// The unscoped tables whose foreign-key actions reach a scoped table's rows (directly or
/// through other tables): each needs the logging triggers too, or deleting a global row
/// would change a moving storefront's rows unseen.
pub(crate) fn unscoped_parents(edges: &[Edge], tables: &[TableMeta]) -> Vec<String> {
    let scoped: BTreeSet<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    let acting: Vec<&Edge> = edges
        .iter()
        .filter(|e| acts(&e.on_delete) || acts(&e.on_update))
        .collect();
    // Tables from which an action reaches a scoped table: grown backwards from those.
    let mut reaching: BTreeSet<&str> = BTreeSet::new();
    loop {
        let before = reaching.len();
        for e in &acting {
            if scoped.contains(e.child.as_str()) || reaching.contains(e.child.as_str()) {
                reaching.insert(e.parent.as_str());
            }
        }
        if reaching.len() == before {
            break;
        }
    }
    reaching
        .into_iter()
        .filter(|t| !scoped.contains(t))
        .map(str::to_owned)
        .collect()
}

/// Every chain of actions a `change` of a `table` row sets off: each path is the edges
/// followed, with what happens to the rows at its end.
pub(crate) fn paths<'a>(
    edges: &'a [Edge],
    table: &str,
    change: Change,
) -> Result<Vec<(Vec<&'a Edge>, Change)>, TenancyError> {
    let mut out = Vec::new();
    let mut stack: Vec<(Vec<&Edge>, Change)> = vec![(Vec::new(), change)];
    while let Some((path, change)) = stack.pop() {
        let from = path.last().map_or(table, |e| e.child.as_str());
        for e in edges.iter().filter(|e| e.parent == from) {
            let rule = match change {
                Change::Delete => &e.on_delete,
                Change::Update => &e.on_update,
            };
            if !acts(rule) {
                continue;
            }
            if e.child == e.parent || path.len() >= 16 {
                return Err(TenancyError::Unsupported {
                    placement: "move".into(),
                    backend: "MySQL".into(),
                    reason: format!(
                        "table `{}` has a foreign key to itself with ON {} {rule}; MySQL does not fire \
                         triggers for the rows such an action changes, so the mover could not capture them",
                        e.child,
                        if change == Change::Delete { "DELETE" } else { "UPDATE" }
                    ),
                });
            }
            let next = if change == Change::Delete && rule == "CASCADE" {
                Change::Delete
            } else {
                Change::Update
            };
            let mut longer = path.clone();
            longer.push(e);
            out.push((longer.clone(), next));
            stack.push((longer, next));
        }
    }
    Ok(out)
}

/// The `INSERT ... SELECT` that logs the rows at the end of `path`, for a trigger on the
/// path's first parent (its row is `OLD`).
fn log_statement(
    side: &Side,
    storefront: StorefrontId,
    tables: &[TableMeta],
    path: &[&Edge],
    changelog: &str,
) -> Option<String> {
    let last = path.last()?;
    let meta = tables.iter().find(|t| t.name == last.child)?;
    let n = path.len();
    // Aliases carry the capture prefix: MariaDB may report one as a missing table to a
    // statement that raced the trigger's creation (MDEV-26048), and the connection
    // retries exactly those (`connection::fence::is_retryable`).
    let t = |i: usize| format!("{CASCADE_ALIAS}{i}");
    let mut from = format!("{} AS {}", side.table(&path[0].child), t(1));
    for (i, e) in path.iter().enumerate().skip(1) {
        let on: Vec<String> = e
            .pairs
            .iter()
            .map(|(c, p)| format!("{}.{} = {}.{}", t(i + 1), side.q(c), t(i), side.q(p)))
            .collect();
        from.push_str(&format!(
            " JOIN {} AS {} ON {}",
            side.table(&e.child),
            t(i + 1),
            on.join(" AND ")
        ));
    }
    let mut filter: Vec<String> = path[0]
        .pairs
        .iter()
        .map(|(c, p)| format!("{}.{} = OLD.{}", t(1), side.q(c), side.q(p)))
        .collect();
    let sf = side.storefront_literal(storefront);
    filter.push(format!("{}.{} = {sf}", t(n), side.q(&meta.tenant_column)));
    Some(format!(
        "INSERT INTO {changelog} (storefront_id, table_name, pk) SELECT {sf}, '{}', {}.{} FROM {from} WHERE {}",
        meta.name.replace('\'', "''"),
        t(n),
        side.q(&meta.pk),
        filter.join(" AND ")
    ))
}

/// The body of the `BEFORE DELETE` or `BEFORE UPDATE` trigger on `table` that logs the rows
/// its foreign-key actions change, or `None` when no action reaches a scoped row. On a
/// scoped table (`tenant_column` given) only the storefront's rows set it off; on an
/// unscoped parent every row does, and the storefront's rows at the end of each chain are
/// logged. The mover's own writes (guard 2 on the fence row, seen only by its transaction)
/// log nothing.
///
/// On an unscoped parent the trigger is also the fence: once its actions reached the
/// storefront's rows it takes the fence row's shared lock (so raising the fence waits for
/// the statement, as for a scoped table's own writes) and refuses the statement with
/// `refusal` when the fence is up, or `guarded` when the side is a guarded target. (A
/// scoped parent's own row trigger does both already.)
#[allow(clippy::too_many_arguments)]
pub(crate) fn trigger_body(
    side: &Side,
    storefront: StorefrontId,
    tables: &[TableMeta],
    edges: &[Edge],
    table: &str,
    tenant_column: Option<&str>,
    change: Change,
    changelog: &str,
    fence: &str,
    refusal: &str,
    guarded: &str,
) -> Result<Option<String>, TenancyError> {
    let paths = paths(edges, table, change)?;
    if paths.is_empty() {
        return Ok(None);
    }
    let mut body = Vec::new();
    for (path, _) in &paths {
        let Some(insert) = log_statement(side, storefront, tables, path, changelog) else {
            continue;
        };
        // On an unscoped parent, count what reached the storefront.
        let insert = if tenant_column.is_none() {
            format!("{insert}; SET n = n + ROW_COUNT()")
        } else {
            insert
        };
        body.push(match change {
            Change::Delete => format!("    {insert};"),
            // Only an update of a referenced column sets the action off.
            Change::Update => {
                let changed: Vec<String> = path[0]
                    .pairs
                    .iter()
                    .map(|(_, p)| format!("NOT (OLD.{c} <=> NEW.{c})", c = side.q(p)))
                    .collect();
                format!("    IF {} THEN {insert}; END IF;", changed.join(" OR "))
            }
        });
    }
    if body.is_empty() {
        return Ok(None);
    }
    let sf = side.storefront_literal(storefront);
    let not_mover = format!("NOT ((SELECT guard FROM {fence} WHERE storefront_id = {sf}) <=> 2)");
    let Some(tc) = tenant_column else {
        let (refusal, guarded) = (refusal.replace('\'', "''"), guarded.replace('\'', "''"));
        // `f` stays 1 when the fence row is missing (no row: no assignment).
        return Ok(Some(format!(
            "BEGIN\n  DECLARE n BIGINT DEFAULT 0;\n  DECLARE f TINYINT DEFAULT 1;\n  DECLARE g TINYINT DEFAULT 0;\n  \
             IF {not_mover} THEN\n{}\n    IF n > 0 THEN\n      \
             SELECT fenced, guard INTO f, g FROM {fence} WHERE storefront_id = {sf} LOCK IN SHARE MODE;\n      \
             IF g = 1 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{guarded}'; END IF;\n      \
             IF f IS NULL OR f <> 0 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{refusal}'; END IF;\n    \
             END IF;\n  END IF;\nEND",
            body.join("\n")
        )));
    };
    Ok(Some(format!(
        "BEGIN\n  IF OLD.{} = {sf} AND {not_mover} THEN\n{}\n  END IF;\nEND",
        side.q(tc),
        body.join("\n")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(parent: &str, child: &str, on_delete: &str, on_update: &str) -> Edge {
        Edge {
            parent: parent.into(),
            child: child.into(),
            pairs: vec![("parent_id".into(), "id".into())],
            on_delete: on_delete.into(),
            on_update: on_update.into(),
        }
    }

    fn names(paths: &[(Vec<&Edge>, Change)]) -> Vec<String> {
        let mut out: Vec<String> = paths
            .iter()
            .map(|(p, c)| {
                let chain: Vec<&str> = p.iter().map(|e| e.child.as_str()).collect();
                format!("{}:{c:?}", chain.join(">"))
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn follows_cascades_down_and_stops_at_restrict() {
        let edges = vec![
            edge("customers", "orders", "CASCADE", "RESTRICT"),
            edge("orders", "order_items", "CASCADE", "RESTRICT"),
            edge("customers", "carts", "SET NULL", "RESTRICT"),
            edge("carts", "cart_items", "CASCADE", "RESTRICT"),
            edge("customers", "notes", "RESTRICT", "RESTRICT"),
        ];
        let p = paths(&edges, "customers", Change::Delete).expect("paths");
        // A cart set to NULL is updated, and an update does not cascade its items' delete.
        assert_eq!(
            names(&p),
            ["carts:Update", "orders:Delete", "orders>order_items:Delete"]
        );
        assert!(paths(&edges, "customers", Change::Update)
            .expect("paths")
            .is_empty());
        assert!(paths(&edges, "order_items", Change::Delete)
            .expect("paths")
            .is_empty());
    }

    #[test]
    fn update_actions_are_followed() {
        let edges = vec![
            edge("a", "b", "RESTRICT", "CASCADE"),
            edge("b", "c", "CASCADE", "SET NULL"),
        ];
        let p = paths(&edges, "a", Change::Update).expect("paths");
        assert_eq!(names(&p), ["b:Update", "b>c:Update"]);
    }

    #[test]
    fn a_self_referencing_action_is_refused() {
        let edges = vec![edge("categories", "categories", "CASCADE", "RESTRICT")];
        let err = paths(&edges, "categories", Change::Delete).expect_err("refused");
        assert!(err.to_string().contains("categories"), "{err}");
        // Without an action it is fine.
        let edges = vec![edge("categories", "categories", "RESTRICT", "RESTRICT")];
        assert!(paths(&edges, "categories", Change::Delete)
            .expect("paths")
            .is_empty());
    }
}
