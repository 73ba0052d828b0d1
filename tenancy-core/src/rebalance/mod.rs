//! The rebalancer's rule: which database storefronts to move between servers so that each
//! server carries its share of the load, moving as few bytes as it can.
//!
//! Each server has a capacity (a weight: a server of capacity 2 should carry twice the
//! load of one of capacity 1). Each storefront in a database of its own has a load, its
//! share of the fleet's rows blended with its share of the recent query time (half each;
//! rows alone when no query time was recorded), and a size in bytes (what a move copies).
//! A server's load is the sum of its storefronts'; its target is its capacity's share of
//! the whole. The fleet is balanced when every server's load is within `tolerance`
//! (0.15 for +-15%) of its target.
//!
//! [`plan`] moves storefronts, one at a time, from the server furthest above its target to
//! the server furthest below it that can take them without going over: among the donor's
//! storefronts it takes the one that brings the donor closest to its target for the
//! fewest bytes, and says why. [`drain`] moves every storefront off one server (weights
//! of the others unchanged), each to the server with the most room. Both are pure: they
//! take the fleet as numbers and return a [`Plan`], which the caller carries out with the
//! mover.
//!
//! ```
//! use tenancy_core::rebalance::{plan, Holding, Server};
//! use tenancy_core::StorefrontId;
//!
//! let servers = vec![Server::new("pg1", 1.0), Server::new("pg2", 1.0)];
//! let holdings: Vec<Holding> = (0..4)
//!     .map(|_| Holding::new(StorefrontId::new_random(), "pg1", 1_000, 1 << 20))
//!     .collect();
//! let p = plan(&servers, &holdings, 0.15)?;
//! assert_eq!(p.moves.len(), 2); // two of pg1's four storefronts go to pg2
//! assert!(p.balanced_after);
//! # Ok::<(), tenancy_core::TenancyError>(())
//! ```

mod apply;

pub use self::apply::{Event, MoveOutcome, Rebalanced, Rebalancer};
use crate::{StorefrontId, TenancyError};

/// A server of the fleet and its capacity (a weight).
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct Server {
    /// Its name in the configuration.
    pub name: String,
    /// Its weight; a server of capacity 0 takes nothing (it is being drained).
    pub capacity: f64,
    /// The most storefronts it may hold (`None`: no limit); a plan moves none onto it
    /// beyond that.
    #[serde(default)]
    pub max_storefronts: Option<usize>,
    /// Whether it may receive storefronts now (`false`: it does not answer).
    #[serde(default = "yes")]
    pub receives: bool,
}

fn yes() -> bool {
    true
}

impl Server {
    /// A server named `name` of capacity `capacity`, with no storefront limit, answering.
    pub fn new(name: &str, capacity: f64) -> Self {
        Self {
            name: name.to_owned(),
            capacity,
            max_storefronts: None,
            receives: true,
        }
    }

    /// Whether a plan may move one more storefront onto it, now holding `count`.
    fn takes(&self, count: usize) -> bool {
        self.capacity > 0.0 && self.receives && self.max_storefronts.is_none_or(|m| count < m)
    }
}

/// A storefront in a database of its own, on `server`.
#[derive(Clone, Debug, PartialEq)]
pub struct Holding {
    /// The storefront.
    pub storefront: StorefrontId,
    /// The server its database is on.
    pub server: String,
    /// Its rows (all scoped tables).
    pub rows: u64,
    /// Its database's size: what a move copies.
    pub bytes: u64,
    /// Its recent query time, in milliseconds (0 when none was recorded).
    pub query_ms: f64,
    /// Whether a plan may move it (not while another move of it is in progress); its load
    /// counts where it is either way.
    pub movable: bool,
}

impl Holding {
    /// A storefront with no recorded query time.
    pub fn new(storefront: StorefrontId, server: &str, rows: u64, bytes: u64) -> Self {
        Self {
            storefront,
            server: server.to_owned(),
            rows,
            bytes,
            query_ms: 0.0,
            movable: true,
        }
    }
}

/// One move of a plan.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PlannedMove {
    /// The storefront to move.
    pub storefront: StorefrontId,
    /// From this server...
    pub from: String,
    /// ...to this one.
    pub to: String,
    /// What the move copies.
    pub bytes: u64,
    /// The storefront's share of the fleet's load (0..1).
    pub load: f64,
    /// Why, in words.
    pub reason: String,
}

/// One server's load before or after a plan.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ServerLoad {
    /// The server.
    pub server: String,
    /// Its share of the fleet's load (0..1).
    pub load: f64,
    /// The share its capacity calls for.
    pub target: f64,
    /// Storefronts on it.
    pub storefronts: usize,
}

impl ServerLoad {
    /// Load as a fraction of target (1.0 is exactly on target).
    pub fn ratio(&self) -> f64 {
        if self.target > 0.0 {
            self.load / self.target
        } else if self.load > 0.0 {
            f64::INFINITY
        } else {
            1.0
        }
    }
}

/// What [`plan`] or [`drain`] proposes.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Plan {
    /// The moves, in the order they were chosen.
    pub moves: Vec<PlannedMove>,
    /// Each server's load now.
    pub before: Vec<ServerLoad>,
    /// Each server's load once the moves are done.
    pub after: Vec<ServerLoad>,
    /// Whether every server is within the tolerance afterwards.
    pub balanced_after: bool,
    /// Bytes the moves copy in all.
    pub bytes: u64,
}

/// Each storefront's load: half its share of the rows, half its share of the query time
/// (rows alone when no query time was recorded).
fn loads(holdings: &[Holding]) -> Vec<f64> {
    let rows: f64 = holdings.iter().map(|h| h.rows as f64).sum();
    let time: f64 = holdings.iter().map(|h| h.query_ms.max(0.0)).sum();
    let n = holdings.len().max(1) as f64;
    holdings
        .iter()
        .map(|h| {
            let r = if rows > 0.0 {
                h.rows as f64 / rows
            } else {
                1.0 / n
            };
            if time > 0.0 {
                0.5 * r + 0.5 * h.query_ms.max(0.0) / time
            } else {
                r
            }
        })
        .collect()
}

fn check(servers: &[Server], holdings: &[Holding], tolerance: f64) -> Result<(), TenancyError> {
    let bad = |key: &str, message: String| {
        Err(TenancyError::Config {
            key: key.into(),
            message,
        })
    };
    if !(0.0..1.0).contains(&tolerance) {
        return bad(
            "rebalance.tolerance",
            format!("{tolerance} is not a fraction below 1 (0.15 means +-15%)"),
        );
    }
    let mut names = std::collections::BTreeSet::new();
    for s in servers {
        if !(s.capacity.is_finite() && s.capacity >= 0.0) {
            return bad(
                "servers.capacity",
                format!(
                    "server {}: capacity {} is not a weight >= 0",
                    s.name, s.capacity
                ),
            );
        }
        if !names.insert(s.name.as_str()) {
            return bad("servers.name", format!("server {} is named twice", s.name));
        }
    }
    if servers.iter().all(|s| s.capacity == 0.0) {
        return bad("servers.capacity", "no server has any capacity".into());
    }
    if let Some(h) = holdings.iter().find(|h| !names.contains(h.server.as_str())) {
        return bad(
            "servers",
            format!(
                "storefront {} is on server {}, which the configuration does not name",
                h.storefront, h.server
            ),
        );
    }
    Ok(())
}

/// The fleet as the planner works on it.
struct Fleet<'a> {
    servers: &'a [Server],
    targets: Vec<f64>,
    load: Vec<f64>,
    count: Vec<usize>,
    tolerance: f64,
}

impl Fleet<'_> {
    fn index(&self, name: &str) -> usize {
        self.servers
            .iter()
            .position(|s| s.name == name)
            .unwrap_or_default()
    }

    fn snapshot(&self) -> Vec<ServerLoad> {
        self.servers
            .iter()
            .enumerate()
            .map(|(i, s)| ServerLoad {
                server: s.name.clone(),
                load: self.load[i],
                target: self.targets[i],
                storefronts: self.count[i],
            })
            .collect()
    }

    /// Moves `holding` (of load `load`) from server `d` to server `r`, and says so.
    fn shift(
        &mut self,
        holding: &Holding,
        load: f64,
        d: usize,
        r: usize,
        reason: String,
    ) -> PlannedMove {
        self.load[d] -= load;
        self.load[r] += load;
        self.count[d] -= 1;
        self.count[r] += 1;
        PlannedMove {
            storefront: holding.storefront,
            from: self.servers[d].name.clone(),
            to: self.servers[r].name.clone(),
            bytes: holding.bytes,
            load,
            reason,
        }
    }

    fn ceiling(&self, i: usize) -> f64 {
        self.targets[i] * (1.0 + self.tolerance)
    }

    fn floor(&self, i: usize) -> f64 {
        self.targets[i] * (1.0 - self.tolerance)
    }

    fn balanced(&self) -> bool {
        (0..self.servers.len()).all(|i| {
            self.load[i] <= self.ceiling(i) + 1e-12 && self.load[i] >= self.floor(i) - 1e-12
        })
    }

    /// How far the fleet is from balance: the sum of each server's distance outside its
    /// band, relative to its target.
    fn imbalance(&self) -> f64 {
        (0..self.servers.len())
            .map(|i| {
                let over = (self.load[i] - self.ceiling(i)).max(0.0);
                let under = (self.floor(i) - self.load[i]).max(0.0);
                (over + under) / self.targets[i].max(1e-9)
            })
            .sum()
    }
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// Proposes moves that bring every server within `tolerance` of its capacity share,
/// moving as few bytes as it can (see the module docs).
pub fn plan(
    servers: &[Server],
    holdings: &[Holding],
    tolerance: f64,
) -> Result<Plan, TenancyError> {
    check(servers, holdings, tolerance)?;
    run(servers, holdings, tolerance, None)
}

/// Proposes moves that empty server `name`: its storefronts go, largest load first, each
/// to the server with the most room (load below target); the others keep their weights.
pub fn drain(servers: &[Server], holdings: &[Holding], name: &str) -> Result<Plan, TenancyError> {
    if !servers.iter().any(|s| s.name == name) {
        return Err(TenancyError::Config {
            key: "servers".into(),
            message: format!("no server is named {name}"),
        });
    }
    let emptied: Vec<Server> = servers
        .iter()
        .map(|s| Server {
            capacity: if s.name == name { 0.0 } else { s.capacity },
            ..s.clone()
        })
        .collect();
    check(&emptied, holdings, 0.0)?;
    run(&emptied, holdings, 0.0, Some(name))
}

fn run(
    servers: &[Server],
    holdings: &[Holding],
    tolerance: f64,
    draining: Option<&str>,
) -> Result<Plan, TenancyError> {
    let capacity: f64 = servers.iter().map(|s| s.capacity).sum();
    let share = loads(holdings);
    let mut fleet = Fleet {
        servers,
        targets: servers.iter().map(|s| s.capacity / capacity).collect(),
        load: vec![0.0; servers.len()],
        count: vec![0; servers.len()],
        tolerance,
    };
    let mut at: Vec<usize> = Vec::with_capacity(holdings.len());
    for (h, l) in holdings.iter().zip(&share) {
        let i = fleet.index(&h.server);
        fleet.load[i] += l;
        fleet.count[i] += 1;
        at.push(i);
    }
    let before = fleet.snapshot();
    let mut moves = Vec::new();
    let mut moved = vec![false; holdings.len()];

    if let Some(name) = draining {
        let d = fleet.index(name);
        let mut order: Vec<usize> = (0..holdings.len())
            .filter(|k| at[*k] == d && holdings[*k].movable)
            .collect();
        order.sort_by(|a, b| share[*b].total_cmp(&share[*a]));
        for k in order {
            // The server with the most room relative to its target.
            let Some(r) = (0..servers.len())
                .filter(|r| *r != d && servers[*r].takes(fleet.count[*r]))
                .min_by(|a, b| {
                    let fa = (fleet.load[*a] + share[k]) / fleet.targets[*a];
                    let fb = (fleet.load[*b] + share[k]) / fleet.targets[*b];
                    fa.total_cmp(&fb)
                })
            else {
                break;
            };
            let reason = format!(
                "draining {}; {} has the most room ({} of its share before this move)",
                servers[d].name,
                servers[r].name,
                pct(fleet.load[r] / fleet.targets[r])
            );
            moves.push(fleet.shift(&holdings[k], share[k], d, r, reason));
            at[k] = r;
        }
    } else {
        // Each storefront moves at most once; each move must make the fleet strictly more
        // balanced, so this ends.
        while !fleet.balanced() {
            let now = fleet.imbalance();
            let mut best: Option<(usize, usize, f64, f64)> = None; // (storefront, to, gain, score)
            for k in (0..holdings.len()).filter(|k| !moved[*k] && holdings[*k].movable) {
                let d = at[k];
                for r in
                    (0..servers.len()).filter(|r| *r != d && servers[*r].takes(fleet.count[*r]))
                {
                    if fleet.load[r] + share[k] > fleet.ceiling(r) + 1e-12 {
                        continue; // it would overfill the receiver
                    }
                    fleet.load[d] -= share[k];
                    fleet.load[r] += share[k];
                    let gain = now - fleet.imbalance();
                    fleet.load[d] += share[k];
                    fleet.load[r] -= share[k];
                    if gain <= 1e-12 {
                        continue;
                    }
                    // Most balance per byte copied (a storefront of no bytes costs one).
                    let score = gain / (holdings[k].bytes.max(1) as f64);
                    if best.is_none_or(|(_, _, _, s)| score > s) {
                        best = Some((k, r, gain, score));
                    }
                }
            }
            let Some((k, r, _, _)) = best else {
                break; // no single move helps: as balanced as this fleet gets
            };
            let d = at[k];
            let reason = format!(
                "{} carries {} of its share and {} {} of its share; this storefront is {} of the fleet's load in {} bytes",
                servers[d].name,
                pct(fleet.load[d] / fleet.targets[d].max(1e-9)),
                servers[r].name,
                pct(fleet.load[r] / fleet.targets[r]),
                pct(share[k]),
                holdings[k].bytes
            );
            moves.push(fleet.shift(&holdings[k], share[k], d, r, reason));
            at[k] = r;
            moved[k] = true;
        }
    }
    let balanced_after = match draining {
        Some(name) => fleet.count[fleet.index(name)] == 0,
        None => fleet.balanced(),
    };
    let bytes = moves.iter().map(|m| m.bytes).sum();
    Ok(Plan {
        moves,
        before,
        after: fleet.snapshot(),
        balanced_after,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet_20_8_2() -> (Vec<Server>, Vec<Holding>) {
        let servers = vec![
            Server::new("pg1", 1.0),
            Server::new("pg2", 1.0),
            Server::new("pg3", 1.0),
        ];
        let mut holdings = Vec::new();
        for i in 0..30u64 {
            let server = match i {
                0..20 => "pg1",
                20..28 => "pg2",
                _ => "pg3",
            };
            // Skewed sizes: a few large storefronts, many small ones.
            let rows = if i % 7 == 0 { 5_000 } else { 300 + 40 * i };
            holdings.push(Holding::new(
                StorefrontId::new_random(),
                server,
                rows,
                rows * 200,
            ));
        }
        (servers, holdings)
    }

    #[test]
    fn a_skewed_fleet_comes_within_tolerance() {
        let (servers, holdings) = fleet_20_8_2();
        let p = plan(&servers, &holdings, 0.15).expect("a plan");
        assert!(p.balanced_after, "{:#?}", p.after);
        for s in &p.after {
            assert!((s.ratio() - 1.0).abs() <= 0.15 + 1e-9, "{s:?}");
        }
        assert!(!p.moves.is_empty());
        // Every storefront moves at most once, and only database storefronts of the plan.
        let mut seen = std::collections::BTreeSet::new();
        for m in &p.moves {
            assert!(seen.insert(m.storefront), "moved twice: {m:?}");
            assert_ne!(m.from, m.to);
            assert!(!m.reason.is_empty());
        }
        // Fewer bytes than moving everything off the heaviest server.
        let all: u64 = holdings
            .iter()
            .filter(|h| h.server == "pg1")
            .map(|h| h.bytes)
            .sum();
        assert!(p.bytes < all, "{} >= {all}", p.bytes);
    }

    #[test]
    fn a_balanced_fleet_moves_nothing_and_capacity_weighs() {
        let servers = vec![Server::new("a", 1.0), Server::new("b", 3.0)];
        let holdings: Vec<Holding> = (0..8)
            .map(|i| {
                Holding::new(
                    StorefrontId::new_random(),
                    if i < 2 { "a" } else { "b" },
                    100,
                    1_000,
                )
            })
            .collect();
        let p = plan(&servers, &holdings, 0.15).expect("a plan");
        assert!(p.moves.is_empty(), "{:?}", p.moves);
        assert!(p.balanced_after);
        // The same storefronts on equal servers: two move from b to a.
        let equal = vec![Server::new("a", 1.0), Server::new("b", 1.0)];
        let p = plan(&equal, &holdings, 0.15).expect("a plan");
        assert_eq!(p.moves.len(), 2);
        assert!(p.moves.iter().all(|m| m.from == "b" && m.to == "a"));
    }

    #[test]
    fn query_time_counts_half() {
        let servers = vec![Server::new("a", 1.0), Server::new("b", 1.0)];
        let mut hot = Holding::new(StorefrontId::new_random(), "a", 100, 1_000);
        hot.query_ms = 9_000.0;
        let mut holdings = vec![hot];
        for _ in 0..3 {
            let mut h = Holding::new(StorefrontId::new_random(), "a", 100, 1_000);
            h.query_ms = 1_000.0;
            holdings.push(h);
        }
        let p = plan(&servers, &holdings, 0.2).expect("a plan");
        // By rows alone the four weigh the same; with query time the hot one is half the
        // fleet's load, so moving it alone balances the fleet for the fewest bytes.
        assert_eq!(p.moves.len(), 1, "{:?}", p.moves);
        assert_eq!(p.moves[0].storefront, holdings[0].storefront);
        assert!((p.moves[0].load - 0.5).abs() < 1e-9);
        assert!(p.balanced_after);
    }

    #[test]
    fn draining_empties_a_server_onto_the_others() {
        let (servers, holdings) = fleet_20_8_2();
        let p = drain(&servers, &holdings, "pg2").expect("a plan");
        assert!(p.balanced_after);
        assert_eq!(p.moves.len(), 8);
        assert!(p.moves.iter().all(|m| m.from == "pg2" && m.to != "pg2"));
        let pg2 = p.after.iter().find(|s| s.server == "pg2").expect("pg2");
        assert_eq!(pg2.storefronts, 0);
        assert!(drain(&servers, &holdings, "nope").is_err());
    }

    #[test]
    fn a_storefront_that_may_not_move_stays_and_still_weighs() {
        let (servers, mut holdings) = fleet_20_8_2();
        let free = plan(&servers, &holdings, 0.15).expect("a plan");
        let pinned = free.moves[0].storefront;
        for h in holdings.iter_mut().filter(|h| h.storefront == pinned) {
            h.movable = false;
        }
        let p = plan(&servers, &holdings, 0.15).expect("a plan");
        assert!(
            p.moves.iter().all(|m| m.storefront != pinned),
            "{:?}",
            p.moves
        );
        assert_eq!(p.before, free.before, "its load counts where it is");
        // A drain cannot empty a server holding a storefront that may not move.
        let on_pg1 = holdings
            .iter_mut()
            .find(|h| h.server == "pg1")
            .expect("one");
        on_pg1.movable = false;
        let d = drain(&servers, &holdings, "pg1").expect("a plan");
        assert!(!d.balanced_after);
        assert_eq!(
            d.after
                .iter()
                .find(|s| s.server == "pg1")
                .map(|s| s.storefronts),
            Some(1)
        );
    }

    #[test]
    fn no_move_onto_a_full_or_silent_server() {
        let (mut servers, holdings) = fleet_20_8_2();
        // pg3 may hold 3 storefronts, and holds 2: one more at most.
        servers[2].max_storefronts = Some(3);
        let p = plan(&servers, &holdings, 0.15).expect("a plan");
        assert!(
            p.moves.iter().filter(|m| m.to == "pg3").count() <= 1,
            "{:?}",
            p.moves
        );
        assert!(p
            .after
            .iter()
            .all(|s| s.server != "pg3" || s.storefronts <= 3));
        // pg3 does not answer: nothing goes there, and a drain of pg2 uses pg1 alone.
        servers[2].max_storefronts = None;
        servers[2].receives = false;
        let p = plan(&servers, &holdings, 0.15).expect("a plan");
        assert!(p.moves.iter().all(|m| m.to != "pg3"), "{:?}", p.moves);
        let d = drain(&servers, &holdings, "pg2").expect("a plan");
        assert!(d.moves.iter().all(|m| m.to == "pg1"), "{:?}", d.moves);
        // Nowhere to go: the drain moves nothing and says it did not empty the server.
        servers[0].receives = false;
        let d = drain(&servers, &holdings, "pg2").expect("a plan");
        assert!(d.moves.is_empty() && !d.balanced_after);
    }

    #[test]
    fn bad_input_is_named() {
        let (servers, mut holdings) = fleet_20_8_2();
        assert!(plan(&servers, &holdings, 1.5).is_err());
        assert!(plan(&[Server::new("x", -1.0)], &[], 0.1).is_err());
        assert!(plan(&[Server::new("x", 1.0), Server::new("x", 1.0)], &[], 0.1).is_err());
        holdings[0].server = "elsewhere".into();
        let err = plan(&servers, &holdings, 0.15).unwrap_err();
        assert!(err.to_string().contains("elsewhere"), "{err}");
    }
}
