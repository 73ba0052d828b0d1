//! The one renderer: every command returns a [`Report`] (text lines and tables for
//! people, one JSON value for scripts), printed here in the form `--json` asks for.

use serde_json::{json, Value};

use crate::{backend::redact, Placement, TenancyError};

/// What a command produced.
pub(super) struct Report {
    blocks: Vec<Block>,
    json: Value,
    ok: bool,
}

enum Block {
    Line(String),
    Table {
        headers: &'static [&'static str],
        rows: Vec<Vec<String>>,
    },
}

impl Report {
    /// A successful report whose JSON form is `json`; add its text with [`Self::line`]
    /// and [`Self::table`].
    pub(super) fn new(json: Value) -> Self {
        Self {
            blocks: Vec::new(),
            json,
            ok: true,
        }
    }

    /// Serialises `value` as the JSON form.
    pub(super) fn of(value: &impl serde::Serialize) -> Self {
        Self::new(serde_json::to_value(value).unwrap_or(Value::Null))
    }

    /// Adds a line of text (a trailing newline is added).
    pub(super) fn line(mut self, text: impl Into<String>) -> Self {
        self.blocks.push(Block::Line(text.into()));
        self
    }

    /// Adds a table: column headers, then one row of cells per item.
    pub(super) fn table(
        mut self,
        headers: &'static [&'static str],
        rows: impl IntoIterator<Item = Vec<String>>,
    ) -> Self {
        self.blocks.push(Block::Table {
            headers,
            rows: rows.into_iter().collect(),
        });
        self
    }

    /// Marks the command as failed (exit code 1) when `failed`.
    pub(super) fn failed_if(mut self, failed: bool) -> Self {
        self.ok &= !failed;
        self
    }

    pub(super) fn is_ok(&self) -> bool {
        self.ok
    }

    /// The text form.
    pub(super) fn text(&self) -> String {
        let mut out = String::new();
        for block in &self.blocks {
            match block {
                Block::Line(line) => {
                    out.push_str(line);
                    out.push('\n');
                }
                Block::Table { headers, rows } => out.push_str(&table(headers, rows)),
            }
        }
        out
    }

    /// Prints the report to stdout as JSON or text.
    pub(super) fn print(&self, json: bool) {
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&self.json).unwrap_or_default()
            );
        } else {
            print!("{}", self.text());
        }
    }
}

/// Prints an error: on stderr always, and as `{"error": ...}` on stdout for `--json`.
pub(super) fn print_error(e: &TenancyError, json: bool) {
    if json {
        println!("{}", json!({ "error": e.to_string() }));
    }
    eprintln!("error: {e}");
}

/// Left-aligned columns two spaces apart, headers underlined with dashes.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (cell, width) in cells.zip(&widths) {
            out.push_str(cell);
            out.push_str(&" ".repeat(width - cell.chars().count() + 2));
        }
        out.trim_end().to_owned() + "\n"
    };
    let dashes: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    let mut out = line(&mut headers.iter().copied());
    out.push_str(&line(&mut dashes.iter().map(String::as_str)));
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// Where a placement is, for a table cell (a database URL without its password).
pub(super) fn placement_detail(p: &Placement) -> String {
    match p {
        Placement::Shared => "-".into(),
        Placement::Schema { schema } => schema.clone(),
        Placement::Database { url } => redact(url),
    }
}

/// A placement as JSON (a database URL without its password).
pub(super) fn placement_json(p: &Placement) -> Value {
    match p {
        Placement::Shared => json!({ "type": "shared" }),
        Placement::Schema { schema } => json!({ "type": "schema", "schema": schema }),
        Placement::Database { url } => json!({ "type": "database", "url": redact(url) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_on_the_widest_cell_and_text_keeps_the_order() {
        let report = Report::new(json!({}))
            .line("first")
            .table(
                &["ID", "STATE"],
                [
                    vec!["a".into(), "active".into()],
                    vec!["long-id".into(), "".into()],
                ],
            )
            .line("last");
        assert_eq!(
            report.text(),
            "first\nID       STATE\n-------  ------\na        active\nlong-id\nlast\n"
        );
        assert!(report.is_ok());
        assert!(!report.failed_if(true).is_ok());
    }
}
