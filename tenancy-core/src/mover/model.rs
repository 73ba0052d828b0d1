//! A model of the move protocol, checked exhaustively with [stateright]: one row of one
//! moving storefront, application writers with their own cached placements, the mover
//! (which can crash at any step and resume from its recorded phase), the fence and
//! change capture on each side, `complete` and `rollback`.
//!
//! Each action is named after the code it stands for:
//!
//! | action | code |
//! |---|---|
//! | `Resolve(w)` | `TenantConnection::placement` (a cache miss, or one older than the TTL) |
//! | `Write(w)` | a statement on the cached side; the capture trigger refuses it when fenced (`backend::capture`), and the connection forgets its placement (`connection::fence`) |
//! | `CatchUp` | `Mover::replay` before the fence (`mover/machine.rs`) |
//! | `RaiseFence` | `capture::set_fence(source, true)` in `fence_and_switch` |
//! | `Drain` | the fenced `replay` and `validate::changed_rows` |
//! | `Flip` | `Mover::switch`: the directory and the `switched` phase in one transaction |
//! | `RecordSwitched` | (the earlier protocol only: the phase written after the flip) |
//! | `Fail` | an error in the fenced part: the fence is lowered only if the directory still names the source |
//! | `Crash` | the mover's process dies: what it held in memory is gone; `resume` goes on from the recorded phase |
//! | `BeginComplete`, `RemoveTargetCapture`, `DeleteSource`, `FinishComplete` | `complete_held` (`mover/complete.rs`): `completing` recorded, the target's capture removed, the two-TTL wait (no cache names the source) and the source's copy deleted |
//! | `BeginRollback`, `DrainBack`, `FlipBack`, `DropTarget` | `rollback_held` / `reverse` (`mover/rollback.rs`) |
//!
//! The properties checked are the guarantees `docs/architecture.md` states: at most one
//! side takes the storefront's writes, a finished move serves every acknowledged write,
//! and a switched storefront is served by the target. The earlier protocol's holes are
//! kept as switches (`Protocol`), and the checker finds each one's counterexample.

use stateright::{Checker, Model, Property};

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
enum Side {
    Source = 0,
    Target = 1,
}

impl Side {
    fn i(self) -> usize {
        self as usize
    }
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
enum Phase {
    Ready,
    Cutover,
    Switched,
    Completing,
    Completed,
    RollingBack,
    RolledBack,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct State {
    /// Where the directory says the storefront is.
    dir: Side,
    /// The move's recorded phase.
    phase: Phase,
    fence: [bool; 2],
    capture: [bool; 2],
    /// The side's copy still exists.
    alive: [bool; 2],
    /// The id of the last write in the row, per side (0: the row as copied).
    data: [u8; 2],
    /// A changelog entry not replayed yet, per side.
    pending: [bool; 2],
    /// Each writer's cached placement.
    cache: Vec<Option<Side>>,
    /// The last write the application was told succeeded.
    acked: u8,
    next: u8,
    /// In the mover's memory only (lost on a crash): the fenced drain is done.
    drained: bool,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
enum Action {
    Resolve(usize),
    Write(usize),
    CatchUp,
    RaiseFence,
    Drain,
    Flip,
    RecordSwitched,
    Fail,
    Crash,
    BeginComplete,
    RemoveTargetCapture,
    DeleteSource,
    FinishComplete,
    BeginRollback,
    DrainBack,
    FlipBack,
    DropTarget,
}

/// Which protocol the model runs: today's, or one of the earlier holes.
#[derive(Clone, Copy, Debug, Default)]
struct Protocol {
    /// Hole 1: the directory flipped before the phase was recorded (two writes), and the
    /// error path lowered the source's fence whatever the directory said.
    old_cutover: bool,
    /// Hole 3: `complete` deleted the source without waiting for caches to let go.
    complete_without_wait: bool,
    /// Hole 2: rollback was allowed once `complete` had begun.
    rollback_while_completing: bool,
}

struct Move {
    protocol: Protocol,
    /// Application processes, each with its own cached placement.
    writers: usize,
    /// Writes the application makes in all.
    writes: u8,
}

fn writable(s: &State, side: Side) -> bool {
    let i = side.i();
    s.alive[i] && !(s.capture[i] && s.fence[i]) && (s.dir == side || s.cache.contains(&Some(side)))
}

impl Model for Move {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        // Ready: copied, capture on the source, nothing pending.
        vec![State {
            dir: Side::Source,
            phase: Phase::Ready,
            fence: [false, false],
            capture: [true, false],
            alive: [true, true],
            data: [0, 0],
            pending: [false, false],
            cache: vec![None; self.writers],
            acked: 0,
            next: 1,
            drained: false,
        }]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        for w in 0..self.writers {
            actions.push(Action::Resolve(w));
            if s.cache[w].is_some() && s.next <= self.writes {
                actions.push(Action::Write(w));
            }
        }
        let p = self.protocol;
        let mover: &[Action] = match s.phase {
            Phase::Ready => &[Action::CatchUp, Action::RaiseFence],
            Phase::Cutover if p.old_cutover => &[
                Action::Drain,
                Action::Flip,
                Action::RecordSwitched,
                Action::Fail,
                Action::Crash,
            ],
            Phase::Cutover => &[Action::Drain, Action::Flip, Action::Fail, Action::Crash],
            Phase::Switched => &[Action::BeginComplete, Action::BeginRollback],
            Phase::Completing if p.rollback_while_completing => &[
                Action::RemoveTargetCapture,
                Action::DeleteSource,
                Action::FinishComplete,
                Action::BeginRollback,
            ],
            Phase::Completing => &[
                Action::RemoveTargetCapture,
                Action::DeleteSource,
                Action::FinishComplete,
            ],
            Phase::RollingBack => &[
                Action::DrainBack,
                Action::FlipBack,
                Action::DropTarget,
                Action::Crash,
            ],
            Phase::Completed | Phase::RolledBack => &[],
        };
        actions.extend_from_slice(mover);
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let p = self.protocol;
        let mut s = last.clone();
        let (src, tgt) = (Side::Source.i(), Side::Target.i());
        match action {
            Action::Resolve(w) => s.cache[w] = Some(s.dir),
            Action::Write(w) => {
                let side = s.cache[w]?.i();
                if s.capture[side] && s.fence[side] {
                    s.cache[w] = None; // refused: the connection forgets its placement
                } else {
                    if s.alive[side] {
                        s.data[side] = s.next;
                        s.pending[side] |= s.capture[side];
                    }
                    // A write to a deleted copy (rows cleared, triggers gone) still succeeds.
                    s.acked = s.next;
                    s.next += 1;
                }
            }
            Action::CatchUp | Action::Drain => {
                if s.pending[src] {
                    s.data[tgt] = s.data[src];
                    s.pending[src] = false;
                }
                if action == Action::Drain {
                    s.drained = !s.pending[src];
                }
            }
            Action::RaiseFence => {
                s.fence[src] = true;
                s.phase = Phase::Cutover;
                s.drained = false;
            }
            Action::Flip => {
                if !s.drained || s.pending[src] {
                    return None;
                }
                // One transaction: the directory and the phase; the target captures.
                s.dir = Side::Target;
                s.capture[tgt] = true;
                if !p.old_cutover {
                    s.phase = Phase::Switched;
                }
            }
            Action::RecordSwitched => {
                if s.dir != Side::Target {
                    return None;
                }
                s.phase = Phase::Switched;
            }
            Action::Fail => {
                // The read-back: only a directory that still names the source lets the
                // source serve again.
                if s.dir == Side::Source || p.old_cutover {
                    s.fence[src] = false;
                    s.phase = Phase::Ready;
                }
                s.drained = false;
            }
            Action::Crash => {
                s.drained = false;
                // `resume` at cutover checks the directory first.
                if s.phase == Phase::Cutover && s.dir == Side::Target && !p.old_cutover {
                    s.phase = Phase::Switched;
                }
            }
            Action::BeginComplete => s.phase = Phase::Completing,
            Action::RemoveTargetCapture => s.capture[tgt] = false,
            Action::DeleteSource => {
                let waited = !s.cache.contains(&Some(Side::Source));
                if !(waited || p.complete_without_wait) || !s.alive[src] {
                    return None;
                }
                s.alive[src] = false;
                s.capture[src] = false;
                s.fence[src] = false;
            }
            Action::FinishComplete => {
                if s.alive[src] || s.capture[tgt] {
                    return None;
                }
                s.phase = Phase::Completed;
            }
            Action::BeginRollback => {
                s.fence[tgt] = true;
                s.phase = Phase::RollingBack;
                s.drained = false;
            }
            Action::DrainBack => {
                if s.pending[tgt] {
                    if s.alive[src] {
                        s.data[src] = s.data[tgt];
                    }
                    s.pending[tgt] = false;
                }
                s.drained = !s.pending[tgt];
            }
            Action::FlipBack => {
                if !s.drained || s.dir == Side::Source {
                    return None;
                }
                s.dir = Side::Source;
            }
            Action::DropTarget => {
                // After the flip back and the two-TTL wait: no cache names the target.
                if s.dir != Side::Source || s.cache.contains(&Some(Side::Target)) {
                    return None;
                }
                s.fence[src] = false;
                s.capture[src] = false;
                s.alive[tgt] = false;
                s.capture[tgt] = false;
                s.phase = Phase::RolledBack;
            }
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("at most one side takes writes", |_, s: &State| {
                !(writable(s, Side::Source) && writable(s, Side::Target))
            }),
            Property::always(
                "a finished move serves every acknowledged write",
                |_, s: &State| {
                    !matches!(s.phase, Phase::Completed | Phase::RolledBack)
                        || s.data[s.dir.i()] == s.acked
                },
            ),
            Property::always(
                "a switched storefront is served by the target",
                |_, s: &State| {
                    !matches!(
                        s.phase,
                        Phase::Switched | Phase::Completing | Phase::Completed
                    ) || s.dir == Side::Target
                },
            ),
            Property::sometimes("a move completes", |_, s: &State| {
                s.phase == Phase::Completed
            }),
            Property::sometimes("a move rolls back", |_, s: &State| {
                s.phase == Phase::RolledBack
            }),
        ]
    }
}

/// Runs the checker to the end and returns it. The bounds are small in the test suite
/// (three writers, four writes: well under a second); `TENANCY_MODEL_WRITERS` and
/// `TENANCY_MODEL_WRITES` raise them (the larger run is recorded in docs/architecture.md).
fn check(protocol: Protocol) -> impl Checker<Move> {
    let bound = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    Move {
        protocol,
        writers: bound("TENANCY_MODEL_WRITERS", 3),
        writes: u8::try_from(bound("TENANCY_MODEL_WRITES", 4)).unwrap_or(u8::MAX - 1),
    }
    .checker()
    .spawn_bfs()
    .join()
}

#[test]
fn the_move_protocol_keeps_its_guarantees() {
    let checker = check(Protocol::default());
    checker.assert_properties();
    assert!(
        checker.unique_state_count() > 500,
        "the model explores: {} states",
        checker.unique_state_count()
    );
    eprintln!(
        "move model: {} unique states ({} visited), depth {}, every property holds",
        checker.unique_state_count(),
        checker.state_count(),
        checker.max_depth()
    );
}

#[test]
fn each_earlier_hole_has_a_counterexample() {
    let holes = [
        (
            Protocol {
                old_cutover: true,
                ..Protocol::default()
            },
            "at most one side takes writes",
        ),
        (
            Protocol {
                complete_without_wait: true,
                ..Protocol::default()
            },
            "a finished move serves every acknowledged write",
        ),
        (
            Protocol {
                rollback_while_completing: true,
                ..Protocol::default()
            },
            "a finished move serves every acknowledged write",
        ),
    ];
    for (protocol, property) in holes {
        let checker = check(protocol);
        assert!(
            checker.discovery(property).is_some(),
            "{protocol:?}: expected a counterexample to `{property}`"
        );
    }
}
