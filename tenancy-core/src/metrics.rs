//! Per-storefront metrics in the Prometheus text format.
//!
//! [`render`] reads what the process already measures (every [`TenantConnection`]'s
//! statement counters, the tenant pools) plus the directory and the moves table, and writes
//! the text a Prometheus server scrapes from `/metrics`:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `tenancy_queries_total` | counter | storefront, placement |
//! | `tenancy_query_errors_total` | counter | storefront, placement |
//! | `tenancy_query_duration_seconds` | histogram | storefront, placement |
//! | `tenancy_storefronts` | gauge | placement |
//! | `tenancy_pool_in_flight` | gauge | database (password hidden) |
//! | `tenancy_pool_budget_free` | gauge | |
//! | `tenancy_move_phase` | gauge (1) | storefront, phase, target |
//! | `tenancy_move_rows_copied` / `tenancy_move_rows_total` | gauge | storefront, table |
//! | `tenancy_move_lag` | gauge | storefront |
//! | `tenancy_move_pause_milliseconds` | gauge | storefront |
//!
//! Bound values never appear: labels are storefront ids, placement kinds, table names.
//!
//! [`TenantConnection`]: crate::TenantConnection

use std::{collections::HashMap, fmt::Write as _};

use crate::{
    mover::{MoveRecord, Phase},
    Placement, StorefrontId, Tenancy, TenancyError,
};

/// Histogram bounds, in seconds.
const BOUNDS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Escapes a label value (backslash, quote, newline).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The metrics text for this process: statement counters of every storefront that ran one,
/// placements from the directory, tenant pools, and `moves` (pass the mover's list, or an
/// empty slice). Storefronts the directory does not know are labelled `placement="unknown"`.
pub async fn render(tenancy: &Tenancy, moves: &[MoveRecord]) -> Result<String, TenancyError> {
    let mut placements: HashMap<StorefrontId, &'static str> = HashMap::new();
    let records = match tenancy.directory() {
        Some(d) => d.list().await?,
        None => Vec::new(),
    };
    let mut per_kind: std::collections::BTreeMap<&'static str, u64> = Default::default();
    for r in &records {
        let kind = kind(&r.placement);
        placements.insert(r.storefront, kind);
        *per_kind.entry(kind).or_default() += 1;
    }
    let mut out = String::with_capacity(4096);
    let w = &mut out;
    let _ = writeln!(
        w,
        "# HELP tenancy_storefronts Storefronts in the directory, by placement."
    );
    let _ = writeln!(w, "# TYPE tenancy_storefronts gauge");
    for (kind, n) in &per_kind {
        let _ = writeln!(w, "tenancy_storefronts{{placement=\"{kind}\"}} {n}");
    }

    let stats = tenancy.stats().all();
    let bounds_micros: Vec<u64> = BOUNDS.iter().map(|s| (s * 1e6) as u64).collect();
    let _ = writeln!(
        w,
        "# HELP tenancy_queries_total Statements run through tenant connections."
    );
    let _ = writeln!(w, "# TYPE tenancy_queries_total counter");
    for (sf, s) in &stats {
        let p = placements.get(sf).copied().unwrap_or("unknown");
        let _ = writeln!(
            w,
            "tenancy_queries_total{{storefront=\"{sf}\",placement=\"{p}\"}} {}",
            s.summary().count
        );
    }
    let _ = writeln!(
        w,
        "# HELP tenancy_query_errors_total Statements that failed."
    );
    let _ = writeln!(w, "# TYPE tenancy_query_errors_total counter");
    for (sf, s) in &stats {
        let p = placements.get(sf).copied().unwrap_or("unknown");
        let _ = writeln!(
            w,
            "tenancy_query_errors_total{{storefront=\"{sf}\",placement=\"{p}\"}} {}",
            s.summary().errors
        );
    }
    let _ = writeln!(
        w,
        "# HELP tenancy_query_duration_seconds Statement latency."
    );
    let _ = writeln!(w, "# TYPE tenancy_query_duration_seconds histogram");
    for (sf, s) in &stats {
        let p = placements.get(sf).copied().unwrap_or("unknown");
        let labels = format!("storefront=\"{sf}\",placement=\"{p}\"");
        for (bound, n) in BOUNDS.iter().zip(s.cumulative(&bounds_micros)) {
            let _ = writeln!(
                w,
                "tenancy_query_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {n}"
            );
        }
        let count = s.summary().count;
        let _ = writeln!(
            w,
            "tenancy_query_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            w,
            "tenancy_query_duration_seconds_sum{{{labels}}} {}",
            s.total_micros() as f64 / 1e6
        );
        let _ = writeln!(
            w,
            "tenancy_query_duration_seconds_count{{{labels}}} {count}"
        );
    }

    if let Some(pools) = tenancy.pools() {
        let (open, free) = pools.usage();
        let _ = writeln!(
            w,
            "# HELP tenancy_pool_in_flight Leases in flight on a storefront database's pool."
        );
        let _ = writeln!(w, "# TYPE tenancy_pool_in_flight gauge");
        for (url, n) in open {
            let _ = writeln!(
                w,
                "tenancy_pool_in_flight{{database=\"{}\"}} {n}",
                label(&url)
            );
        }
        let _ = writeln!(
            w,
            "# HELP tenancy_pool_budget_free Connections of the budget no pool holds."
        );
        let _ = writeln!(w, "# TYPE tenancy_pool_budget_free gauge");
        let _ = writeln!(w, "tenancy_pool_budget_free {free}");
    }

    let running: Vec<&MoveRecord> = moves
        .iter()
        .filter(|m| !matches!(m.phase, Phase::Completed | Phase::RolledBack))
        .collect();
    let _ = writeln!(
        w,
        "# HELP tenancy_move_phase The phase of each unfinished move (value 1)."
    );
    let _ = writeln!(w, "# TYPE tenancy_move_phase gauge");
    for m in &running {
        let _ = writeln!(
            w,
            "tenancy_move_phase{{storefront=\"{}\",phase=\"{}\",target=\"{}\"}} 1",
            m.storefront,
            m.phase.as_str(),
            kind(&m.target)
        );
    }
    let _ = writeln!(
        w,
        "# HELP tenancy_move_rows_copied Rows copied to the target, per table."
    );
    let _ = writeln!(w, "# TYPE tenancy_move_rows_copied gauge");
    for m in &running {
        for t in &m.progress.tables {
            let _ = writeln!(
                w,
                "tenancy_move_rows_copied{{storefront=\"{}\",table=\"{}\"}} {}",
                m.storefront,
                label(&t.table),
                t.copied
            );
        }
    }
    let _ = writeln!(
        w,
        "# HELP tenancy_move_rows_total Rows to copy when the copy began, per table."
    );
    let _ = writeln!(w, "# TYPE tenancy_move_rows_total gauge");
    for m in &running {
        for t in &m.progress.tables {
            let _ = writeln!(
                w,
                "tenancy_move_rows_total{{storefront=\"{}\",table=\"{}\"}} {}",
                m.storefront,
                label(&t.table),
                t.rows
            );
        }
    }
    let _ = writeln!(
        w,
        "# HELP tenancy_move_lag Changelog entries not yet replayed on the target."
    );
    let _ = writeln!(w, "# TYPE tenancy_move_lag gauge");
    for m in &running {
        let _ = writeln!(
            w,
            "tenancy_move_lag{{storefront=\"{}\"}} {}",
            m.storefront, m.progress.lag
        );
    }
    let _ = writeln!(
        w,
        "# HELP tenancy_move_pause_milliseconds Writes held at the cutover."
    );
    let _ = writeln!(w, "# TYPE tenancy_move_pause_milliseconds gauge");
    for m in &running {
        if let Some(ms) = m.progress.pause_ms {
            let _ = writeln!(
                w,
                "tenancy_move_pause_milliseconds{{storefront=\"{}\"}} {ms}",
                m.storefront
            );
        }
    }
    Ok(out)
}

/// The placement kind as a label value.
fn kind(placement: &Placement) -> &'static str {
    placement.tenant_type().as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
