//! Per-storefront statistics: query latency measured by the `TenantConnection` itself,
//! and row counts of chosen tables.
//!
//! Recording is a handful of relaxed atomic adds on counters the connection already holds
//! (it fetches them once, when it is created), so there is no lock on the query path and
//! the statistics can stay on in production. The p95 comes from a log-scale histogram with
//! four buckets per doubling, so it is an upper bound within 19%.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, RwLock,
    },
    time::Duration,
};

use serde::Serialize;

use crate::StorefrontId;

const BUCKETS: usize = 4 * 40;

/// Query counters of one storefront.
pub struct QueryStats {
    count: AtomicU64,
    errors: AtomicU64,
    total_micros: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
}

impl Default for QueryStats {
    fn default() -> Self {
        Self {
            count: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            total_micros: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// Values below 4 µs have a bucket each; above, four buckets per doubling.
fn bucket(micros: u64) -> usize {
    let us = micros.max(1);
    if us < 4 {
        return us as usize;
    }
    let log = 63 - us.leading_zeros() as usize;
    let sub = ((us >> (log - 2)) & 3) as usize;
    (log * 4 + sub).min(BUCKETS - 1)
}

/// The largest value of a bucket.
fn bucket_upper(index: usize) -> u64 {
    if index < 8 {
        return index as u64;
    }
    let (log, sub) = (index / 4, (index % 4) as u64);
    ((4 + sub + 1) << (log - 2)) - 1
}

/// A storefront's query latency, summarised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Statements run.
    pub count: u64,
    /// Statements that failed.
    pub errors: u64,
    /// Mean latency in microseconds.
    pub mean_micros: u64,
    /// 95th percentile latency in microseconds (upper bound of its histogram bucket).
    pub p95_micros: u64,
}

impl LatencySummary {
    /// The mean as a duration.
    pub fn mean(&self) -> Duration {
        Duration::from_micros(self.mean_micros)
    }
}

impl QueryStats {
    /// Records one statement.
    pub fn record(&self, elapsed: Duration, ok: bool) {
        let micros = elapsed.as_micros().min(u128::from(u64::MAX)) as u64;
        self.count.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.total_micros.fetch_add(micros, Ordering::Relaxed);
        self.buckets[bucket(micros)].fetch_add(1, Ordering::Relaxed);
    }

    /// Cumulative counts of statements no slower than each bound (in microseconds), for a
    /// Prometheus histogram. A histogram bucket is counted under a bound when its upper end
    /// is within the bound, so each count is a lower bound (by at most one bucket, 19%).
    pub fn cumulative(&self, bounds_micros: &[u64]) -> Vec<u64> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        bounds_micros
            .iter()
            .map(|&bound| {
                counts
                    .iter()
                    .enumerate()
                    .take_while(|(i, _)| bucket_upper(*i) <= bound)
                    .map(|(_, c)| c)
                    .sum()
            })
            .collect()
    }

    /// Total time spent in statements, in microseconds.
    pub fn total_micros(&self) -> u64 {
        self.total_micros.load(Ordering::Relaxed)
    }

    /// The summary so far.
    pub fn summary(&self) -> LatencySummary {
        let count = self.count.load(Ordering::Relaxed);
        let total = self.total_micros.load(Ordering::Relaxed);
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let n: u64 = counts.iter().sum();
        let target = (n * 95).div_ceil(100);
        let mut seen = 0;
        let mut p95 = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= target && n > 0 {
                p95 = bucket_upper(i);
                break;
            }
        }
        LatencySummary {
            count,
            errors: self.errors.load(Ordering::Relaxed),
            mean_micros: total.checked_div(count).unwrap_or(0),
            p95_micros: p95,
        }
    }
}

/// Every storefront's counters in this process.
#[derive(Default)]
pub struct Stats {
    map: RwLock<HashMap<StorefrontId, Arc<QueryStats>>>,
}

impl Stats {
    /// The counters of `storefront` (created on first use).
    pub fn for_storefront(&self, storefront: StorefrontId) -> Arc<QueryStats> {
        if let Some(s) = self
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&storefront)
        {
            return Arc::clone(s);
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        Arc::clone(map.entry(storefront).or_default())
    }

    /// Every storefront that ran a statement in this process, with its counters.
    pub fn all(&self) -> Vec<(StorefrontId, Arc<QueryStats>)> {
        let mut all: Vec<_> = self
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(id, s)| (*id, Arc::clone(s)))
            .collect();
        all.sort_by_key(|(id, _)| *id.as_uuid());
        all
    }

    /// The summary of `storefront`, if it ran any statement.
    pub fn summary(&self, storefront: StorefrontId) -> Option<LatencySummary> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&storefront)
            .map(|s| s.summary())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_bounds_hold() {
        for us in [1u64, 2, 3, 5, 17, 100, 999, 12_345, 1_000_000] {
            let upper = bucket_upper(bucket(us));
            assert!(
                upper >= us && upper as f64 <= us as f64 * 1.25 + 1.0,
                "{us} -> {upper}"
            );
        }
        let s = QueryStats::default();
        for i in 1..=100u64 {
            s.record(Duration::from_micros(i * 10), i != 7);
        }
        let sum = s.summary();
        assert_eq!((sum.count, sum.errors, sum.mean_micros), (100, 1, 505));
        assert!(sum.p95_micros >= 950 && sum.p95_micros <= 1200, "{sum:?}");
    }
}
