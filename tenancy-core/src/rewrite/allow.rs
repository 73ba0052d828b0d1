//! The allow list: what a statement through a storefront's connection may contain besides
//! table names (which the registry decides).
//!
//! - **Statements**: queries, `INSERT`, `UPDATE` and `DELETE` (with their upsert and
//!   `RETURNING` forms). Every other kind is refused by [`refuse_statement`], naming it.
//! - **Functions**: an allow list, not a deny list. A deny list of the functions that run
//!   SQL from text or reach outside the storefront (`query_to_xml`, `dblink`,
//!   `set_config`, `pg_read_file`, `load_file`, `load_extension`, `nextval`, advisory
//!   locks...) would have to know every function of every server version and extension,
//!   and one it missed would run. The allow list is the common pure scalar, aggregate and
//!   window functions of PostgreSQL, MySQL/MariaDB and SQLite, which read nothing but their
//!   arguments; an application adds its own with `Registry::with_function`.
//! - **Literals and identifiers**: only forms every backend reads the same way under any
//!   session setting. A backslash in a string changes where the string ends under
//!   MySQL's default `sql_mode` or PostgreSQL's `standard_conforming_strings = off`; a
//!   double-quoted string is an identifier under MySQL's `ANSI_QUOTES`; a quote character
//!   inside an identifier needs escaping rules that differ by backend. Such input is
//!   refused, so the statement the server tokenizes is the one the rewriter checked.
//! - **Variables and custom operators**: `@user` / `@@system` variables and user-defined
//!   operators are refused (they carry state between statements or run arbitrary code).

use sqlparser::ast::{BinaryOperator, Expr, Ident, Statement, Value};

use crate::{Registry, TenancyError};

/// Pure functions of the three backends that read nothing but their arguments.
const FUNCTIONS: &[&str] = &[
    // aggregates
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "string_agg",
    "group_concat",
    "array_agg",
    "bool_and",
    "bool_or",
    "every",
    "bit_and",
    "bit_or",
    "bit_xor",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    "jsonb_object_agg",
    "json_arrayagg",
    "json_objectagg",
    "json_group_array",
    "json_group_object",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "total",
    // window
    "row_number",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
    "ntile",
    "lag",
    "lead",
    "first_value",
    "last_value",
    "nth_value",
    // conditional
    "coalesce",
    "ifnull",
    "nullif",
    "greatest",
    "least",
    "if",
    "iif",
    // strings
    "lower",
    "upper",
    "lcase",
    "ucase",
    "length",
    "char_length",
    "character_length",
    "octet_length",
    "bit_length",
    "substr",
    "substring",
    "trim",
    "ltrim",
    "rtrim",
    "btrim",
    "replace",
    "concat",
    "concat_ws",
    "left",
    "right",
    "lpad",
    "rpad",
    "reverse",
    "repeat",
    "position",
    "strpos",
    "instr",
    "locate",
    "initcap",
    "split_part",
    "translate",
    "ascii",
    "chr",
    "char",
    "format",
    "printf",
    "quote",
    "md5",
    "sha1",
    "sha2",
    "hex",
    "unhex",
    "to_hex",
    "soundex",
    "space",
    "starts_with",
    "regexp_replace",
    "regexp_like",
    "regexp_substr",
    "regexp_instr",
    "regexp_matches",
    "regexp_match",
    // numbers
    "abs",
    "round",
    "floor",
    "ceil",
    "ceiling",
    "trunc",
    "truncate",
    "mod",
    "power",
    "pow",
    "sqrt",
    "sign",
    "exp",
    "ln",
    "log",
    "log10",
    "log2",
    "pi",
    "degrees",
    "radians",
    "sin",
    "cos",
    "tan",
    "asin",
    "acos",
    "atan",
    "atan2",
    "div",
    "random",
    "rand",
    // dates and times
    "now",
    "current_timestamp",
    "current_date",
    "current_time",
    "localtime",
    "localtimestamp",
    "date",
    "time",
    "datetime",
    "julianday",
    "strftime",
    "unixepoch",
    "date_trunc",
    "date_part",
    "extract",
    "to_char",
    "to_date",
    "to_timestamp",
    "to_number",
    "age",
    "make_date",
    "make_timestamp",
    "make_interval",
    "date_add",
    "date_sub",
    "adddate",
    "subdate",
    "datediff",
    "timestampdiff",
    "timestampadd",
    "date_format",
    "str_to_date",
    "year",
    "month",
    "day",
    "dayofmonth",
    "dayofweek",
    "dayofyear",
    "hour",
    "minute",
    "second",
    "week",
    "quarter",
    "last_day",
    "unix_timestamp",
    "from_unixtime",
    "utc_timestamp",
    "utc_date",
    "sysdate",
    "curdate",
    "curtime",
    "timezone",
    "to_days",
    "from_days",
    // JSON
    "json_extract",
    "json_unquote",
    "json_object",
    "json_array",
    "json_build_object",
    "jsonb_build_object",
    "json_build_array",
    "jsonb_build_array",
    "to_json",
    "to_jsonb",
    "json_typeof",
    "jsonb_typeof",
    "json_valid",
    "json_contains",
    "json_length",
    "json_array_length",
    "jsonb_array_length",
    "json_set",
    "jsonb_set",
    "json_insert",
    "json_remove",
    "json_type",
    "json_quote",
    "json",
    "json_extract_path",
    "json_extract_path_text",
    "jsonb_extract_path",
    "jsonb_extract_path_text",
    // identifiers and types
    "gen_random_uuid",
    "uuid",
    "uuid_to_bin",
    "bin_to_uuid",
    "typeof",
    "cast",
    "convert",
    "values",
];

/// Whether `lower` (a lower-cased function name) is on the built-in allow list.
pub(crate) fn builtin_function(lower: &str) -> bool {
    FUNCTIONS.contains(&lower)
}

/// The statement kind as the user wrote it (`SET`, `CREATE TABLE`, `EXECUTE`...).
pub(super) fn kind(statement: &Statement) -> String {
    const MODIFIERS: &[&str] = &[
        "OR",
        "REPLACE",
        "TEMPORARY",
        "TEMP",
        "UNIQUE",
        "MATERIALIZED",
        "GLOBAL",
        "LOCAL",
        "UNLOGGED",
        "RECURSIVE",
        "IF",
        "NOT",
        "EXISTS",
        "EXTERNAL",
        "VIRTUAL",
    ];
    let text = statement.to_string();
    let words: Vec<String> = text
        .split_whitespace()
        .take(8)
        .map(|w| {
            w.trim_matches(|c: char| !c.is_ascii_alphabetic())
                .to_ascii_uppercase()
        })
        .collect();
    let Some(first) = words.first() else {
        return "empty".into();
    };
    let mut kind = vec![first.clone()];
    if matches!(
        first.as_str(),
        "CREATE" | "DROP" | "ALTER" | "SHOW" | "GRANT" | "REVOKE" | "LOCK" | "UNLOCK"
    ) {
        for w in words.iter().skip(1) {
            kind.push(w.clone());
            if !MODIFIERS.contains(&w.as_str()) {
                break;
            }
        }
    }
    kind.join(" ")
}

/// The refusal of a statement that is not a query, INSERT, UPDATE or DELETE.
pub(super) fn refuse_statement(statement: &Statement) -> TenancyError {
    let kind = kind(statement);
    let advice = match statement {
        Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. } => {
            "transactions and savepoints go through the framework's own API: \
             TenantConnection::begin / transaction (a nested begin is a savepoint)"
        }
        Statement::Set(_) | Statement::Use(_) => {
            "pooled connections are shared by storefronts, so no statement may change a \
             session's state; use the operator connection (Tenancy::shared) for administration"
        }
        Statement::Prepare { .. } | Statement::Execute { .. } | Statement::Deallocate { .. } => {
            "prepared statements are the driver's business (every statement is prepared and \
             cached for you)"
        }
        _ => {
            "a storefront's connection runs only queries, INSERT, UPDATE and DELETE; use the \
             operator connection (Tenancy::shared) for administration"
        }
    };
    TenancyError::RefusedStatement {
        kind,
        reason: advice.into(),
    }
}

fn syntax(reason: String) -> TenancyError {
    TenancyError::RefusedSyntax { reason }
}

/// Functions, variables and operators (see the module docs).
pub(super) fn check_expr(registry: &Registry, expr: &Expr) -> Result<(), TenancyError> {
    match expr {
        Expr::Function(f) => {
            let written = f.name.to_string();
            let [sqlparser::ast::ObjectNamePart::Identifier(name)] = f.name.0.as_slice() else {
                return Err(TenancyError::RefusedFunction {
                    function: written,
                    reason: "qualified function names are not allowed through a storefront's \
                             connection; call the function by its plain name"
                        .into(),
                });
            };
            if !registry.function_allowed(&name.value) {
                return Err(TenancyError::RefusedFunction {
                    function: written,
                    reason: "it is not on the allow list of functions that read nothing but \
                             their arguments; if it is such a function, allow it with \
                             Registry::with_function"
                        .into(),
                });
            }
            Ok(())
        }
        Expr::BinaryOp {
            op:
                op @ (BinaryOperator::PGCustomBinaryOperator(_)
                | BinaryOperator::Custom(_)
                | BinaryOperator::Assignment),
            ..
        } => Err(syntax(format!(
            "the operator `{op}` is not allowed through a storefront's connection"
        ))),
        Expr::Cast { data_type, .. }
        | Expr::TypedString(sqlparser::ast::TypedString { data_type, .. })
            if object_identifier_type(data_type) =>
        {
            Err(syntax(format!(
                "casts to `{data_type}` look objects up in the catalog; they are refused"
            )))
        }
        Expr::MatchAgainst { .. } => Err(syntax(
            "MATCH ... AGAINST is refused: its relevance scores are computed from the \
             full-text statistics of every storefront's rows"
                .into(),
        )),
        Expr::Lambda(_) => Err(syntax(
            "lambdas are not allowed through a storefront's connection".into(),
        )),
        _ => Ok(()),
    }
}

/// PostgreSQL's object identifier types (`regclass`, `regnamespace`, ...), whose input
/// and output functions read the catalog.
fn object_identifier_type(data_type: &sqlparser::ast::DataType) -> bool {
    match data_type {
        sqlparser::ast::DataType::Regclass => true,
        sqlparser::ast::DataType::Custom(name, _) => {
            name.0.last().and_then(|p| p.as_ident()).is_some_and(|i| {
                let v = i.value.to_ascii_lowercase();
                v.starts_with("reg") || v == "oid"
            })
        }
        sqlparser::ast::DataType::Array(sqlparser::ast::ArrayElemTypeDef::AngleBracket(t))
        | sqlparser::ast::DataType::Array(sqlparser::ast::ArrayElemTypeDef::SquareBracket(t, _))
        | sqlparser::ast::DataType::Array(sqlparser::ast::ArrayElemTypeDef::Parenthesis(t)) => {
            object_identifier_type(t)
        }
        _ => false,
    }
}

/// String literals every backend reads the same way (see the module docs).
pub(super) fn check_literal(value: &Value) -> Result<(), TenancyError> {
    let text = match value {
        Value::SingleQuotedString(s)
        | Value::NationalStringLiteral(s)
        | Value::HexStringLiteral(s)
        | Value::SingleQuotedByteStringLiteral(s) => s.as_str(),
        Value::Number(..) | Value::Boolean(_) | Value::Null => return Ok(()),
        Value::Placeholder(_) => return Ok(()),
        Value::EscapedStringLiteral(_)
        | Value::UnicodeStringLiteral(_)
        | Value::DollarQuotedString(_) => {
            return Err(syntax(
                "escape-string and dollar-quoted literals (E'...', U&'...', $$...$$) are \
                 refused; bind the string as a value"
                    .into(),
            ))
        }
        Value::DoubleQuotedString(_) => {
            return Err(syntax(
                "double-quoted strings are refused (MySQL reads them as identifiers under \
                 ANSI_QUOTES); write strings in single quotes, or bind them as values"
                    .into(),
            ))
        }
        other => {
            return Err(syntax(format!(
                "the literal {other} is not supported through a storefront's connection; bind \
                 it as a value"
            )))
        }
    };
    if text.contains('\\') {
        return Err(syntax(
            "string literals with a backslash are refused (servers disagree on backslash \
             escapes, depending on session settings); bind the string as a value"
                .into(),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        return Err(syntax(
            "string literals with control characters are refused; bind the string as a value"
                .into(),
        ));
    }
    Ok(())
}

/// Identifiers every backend reads the same way, and no session variables.
pub(super) fn check_ident(ident: &Ident) -> Result<(), TenancyError> {
    let v = &ident.value;
    if !v.is_ascii() {
        return Err(syntax(format!(
            "the identifier {ident} is not ASCII: servers fold the case of other letters \
             differently, so it could name another column than the one checked"
        )));
    }
    if ["ctid", "xmin", "xmax", "cmin", "cmax", "tableoid"]
        .iter()
        .any(|c| v.eq_ignore_ascii_case(c))
    {
        return Err(syntax(format!(
            "`{v}` is a system column (it tells where and when rows of every storefront are \
             written)"
        )));
    }
    if v.chars()
        .any(|c| matches!(c, '\\' | '"' | '`' | '\'' | '[' | ']') || c.is_control())
    {
        return Err(syntax(format!(
            "the identifier {ident} contains a quote, bracket, backslash or control character; \
             rename it"
        )));
    }
    match ident.quote_style {
        None if v.contains('@') => Err(syntax(format!(
            "`{v}`: user and system variables are refused (they keep state on pooled \
             connections)"
        ))),
        // Unquoted names are plain words, which every server ends where the parser does.
        None if !v.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            || !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') =>
        {
            Err(syntax(format!(
                "the unquoted name `{v}` is not a plain word (letters, digits, `_`, `$`); \
                 quote it"
            )))
        }
        None | Some('"') | Some('`') | Some('[') => Ok(()),
        Some(q) => Err(syntax(format!(
            "identifiers quoted with {q} are not supported"
        ))),
    }
}
