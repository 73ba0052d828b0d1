//! Class 1: text the server would read differently from the rewriter. Every statement is
//! now parsed and re-rendered, so the server only ever sees the checked tree; what remains
//! to try is text whose literals, identifiers or comments a server could tokenize
//! differently (backslash escapes, double-quoted strings, executable comments, nested
//! comments, string literals used as table names, escaped quotes inside identifiers).

use tenancy_tests::{
    arena::{assault, Arena},
    Backend,
};

pub async fn run(arena: &Arena) {
    let mut attacks: Vec<String> = [
        // A comment that hides a table name from a tokenizer that reads it as a comment.
        "SELECT 1 /* */ , (SELECT COUNT(*) FROM customers)",
        "SELECT email FROM customers WHERE 1 = 0 -- \n UNION SELECT email FROM customers",
        // Escaped quotes inside identifiers.
        "SELECT * FROM \"cust\"\"omers\"",
        // A literal that ends differently with and without backslash escapes.
        "SELECT 'a\\' , email FROM customers -- '",
        "SELECT 'x\\'' AS a FROM customers",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    match arena.backend {
        Backend::MySql => attacks.extend(
            [
                // MySQL runs the body of a versioned comment.
                "SELECT 1 /*!50000 , (SELECT GROUP_CONCAT(email) FROM customers) */",
                "SELECT 1 /*! UNION SELECT email FROM customers */",
                // `#` is a comment on MySQL only.
                "SELECT 1 # \n, (SELECT GROUP_CONCAT(email) FROM customers)",
                // Double-quoted: a string by default, an identifier under ANSI_QUOTES.
                "SELECT \"customers\" FROM countries",
                "SELECT * FROM `cust``omers`",
                "SELECT email FROM customers WHERE email = 'a\\' OR 1=1 -- '",
            ]
            .iter()
            .map(|s| s.to_string()),
        ),
        Backend::Postgres => attacks.extend(
            [
                // PostgreSQL nests block comments.
                "SELECT 1 /* /* */ , (SELECT string_agg(email, ',') FROM customers) */",
                "SELECT E'\\'' AS x, email FROM customers",
                "SELECT U&\"\\0063ustomers\" FROM countries",
                "SELECT * FROM U&\"\\0063ustomers\"",
                "SELECT $$x$$ AS a, email FROM customers",
                "SELECT $q$ ' $q$ AS a, email FROM customers",
                // PostgreSQL nests comments, sqlparser does not: an optimizer hint that
                // hides a statement from the parser (found in review).
                "SELECT /*+ /* */ 'x*/ * FROM tenancy_tenants --' AS a",
                "SELECT /*+ /* */ 'x*/ email FROM customers --' AS a",
            ]
            .iter()
            .map(|s| s.to_string()),
        ),
        Backend::Sqlite => attacks.extend(
            [
                // SQLite takes a string literal as a table name, and brackets as quotes.
                "SELECT * FROM 'customers'",
                "SELECT * FROM [customers]",
                "SELECT * FROM `customers`",
                "SELECT email FROM \"customers\" WHERE \"storefront_id\" = \"storefront_id\"",
            ]
            .iter()
            .map(|s| s.to_string()),
        ),
    }
    // Refusal or a confined result (the re-rendered statement drops comments, so some of
    // these run as their harmless part); no other storefront's value may come back.
    assault(arena, "unparsed text", &attacks, true).await;
    // The forms that servers read differently are refused outright.
    let ambiguous: Vec<String> = attacks
        .iter()
        .filter(|s| {
            s.contains('\\') || (arena.backend == Backend::MySql && s.contains("\"customers\""))
        })
        .cloned()
        .collect();
    assert!(!ambiguous.is_empty());
    let refused = assault(arena, "ambiguous literals", &ambiguous, false).await;
    assert_eq!(refused, ambiguous.len() * arena.shops.len());
}
