//! A linearizability checker: the Wing & Gong search with Lowe's memoization (as in Porcupine
//! and Knossos), and the znode model the simulator's histories are judged against.
//!
//! A history is linearizable when every operation can be given one instant between its
//! invocation and its completion such that applying them in that order to the sequential model
//! returns what each client saw. An operation whose outcome the client never learned (timeout,
//! lost connection) may take effect at any instant after its invocation, or never.
//!
//! The search walks the history's call and return events in time order. At a call it tries to
//! linearize that operation next (if the model agrees with what it returned); at a return of an
//! operation not yet linearized it backtracks. A (set of linearized operations, model state)
//! pair already explored is never explored again, which keeps the search polynomial in
//! practice. Linearizability is local (Herlihy & Wing), so each znode is checked on its own.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Debug;
use std::hash::{BuildHasherDefault, DefaultHasher, Hash};

/// A sequential specification.
pub trait Model: Clone + Eq + Hash + Debug {
    type Op: Clone + Debug;
    type Ret: Clone + Debug + PartialEq;
    /// Applies `op` to the state: the new state and what the op returns.
    fn step(&self, op: &Self::Op) -> (Self, Self::Ret);
}

/// One operation of a history. Times are simulated microseconds; `complete == None` means the
/// client never learned the outcome.
#[derive(Clone, Debug)]
pub struct Operation<M: Model> {
    pub client: u64,
    pub op: M::Op,
    pub invoke: u64,
    pub complete: Option<(u64, M::Ret)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    NotLinearizable {
        explanation: String,
    },
    /// The search passed `max_states` states without an answer.
    GaveUp {
        explored: u64,
    },
}

/// A znode as a register with a version: None when it does not exist.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Znode(pub Option<(u64, i32)>);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZnodeOp {
    Create(u64),
    /// setData; `expected_version` None is ZooKeeper's -1 (any version).
    Set {
        data: u64,
        expected_version: Option<i32>,
    },
    Delete {
        expected_version: Option<i32>,
    },
    /// getData after sync.
    Read,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZnodeRet {
    Created,
    NodeExists,
    Set { version: i32 },
    Deleted,
    NoNode,
    BadVersion,
    Read(Option<(u64, i32)>),
}

impl Model for Znode {
    type Op = ZnodeOp;
    type Ret = ZnodeRet;

    fn step(&self, op: &ZnodeOp) -> (Znode, ZnodeRet) {
        let version_ok =
            |expected: &Option<i32>, version: i32| expected.is_none_or(|e| e == version);
        match (op, self.0) {
            (ZnodeOp::Create(data), None) => (Znode(Some((*data, 0))), ZnodeRet::Created),
            (ZnodeOp::Create(_), Some(_)) => (*self, ZnodeRet::NodeExists),
            (ZnodeOp::Set { .. } | ZnodeOp::Delete { .. }, None) => (*self, ZnodeRet::NoNode),
            (
                ZnodeOp::Set {
                    data,
                    expected_version,
                },
                Some((_, version)),
            ) => {
                if version_ok(expected_version, version) {
                    let version = version + 1;
                    (Znode(Some((*data, version))), ZnodeRet::Set { version })
                } else {
                    (*self, ZnodeRet::BadVersion)
                }
            }
            (ZnodeOp::Delete { expected_version }, Some((_, version))) => {
                if version_ok(expected_version, version) {
                    (Znode(None), ZnodeRet::Deleted)
                } else {
                    (*self, ZnodeRet::BadVersion)
                }
            }
            (ZnodeOp::Read, value) => (*self, ZnodeRet::Read(value)),
        }
    }
}

#[derive(Clone, Copy)]
struct Event {
    op: usize,
    is_call: bool,
    prev: usize,
    next: usize,
}

/// The linearized set as a bitset; hashed with the state to memoize explored configurations.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// std's SipHash with fixed keys: membership only, but deterministic all the same.
type Seen<M> = HashSet<(Bits, M), BuildHasherDefault<DefaultHasher>>;

pub fn check<M: Model>(initial: &M, history: &[Operation<M>], max_states: u64) -> Verdict {
    let n = history.len();
    if n == 0 {
        return Verdict::Linearizable;
    }
    // Events in time order; at equal times calls first (the ops then overlap, the more
    // permissive reading). Unknown completions come last, after every real return.
    let mut order: Vec<(u64, u8, usize, bool)> = Vec::with_capacity(2 * n);
    for (i, op) in history.iter().enumerate() {
        order.push((op.invoke, 0, i, true));
        let at = op.complete.as_ref().map_or(u64::MAX, |(t, _)| *t);
        assert!(at >= op.invoke, "operation {i} completes before it starts");
        order.push((at, 1, i, false));
    }
    order.sort_by_key(|&(t, kind, i, _)| (t, kind, i));
    // A doubly linked list over the events; index 0 is the head sentinel.
    let mut events = Vec::with_capacity(order.len() + 1);
    events.push(Event {
        op: usize::MAX,
        is_call: false,
        prev: 0,
        next: 1,
    });
    let mut return_of = vec![0; n];
    let mut call_of = vec![0; n];
    for (k, &(_, _, op, is_call)) in order.iter().enumerate() {
        let index = k + 1;
        events.push(Event {
            op,
            is_call,
            prev: index - 1,
            next: if k + 1 == order.len() { 0 } else { index + 1 },
        });
        if is_call {
            call_of[op] = index;
        } else {
            return_of[op] = index;
        }
    }
    let lift = |events: &mut Vec<Event>, i: usize| {
        let (p, x) = (events[i].prev, events[i].next);
        events[p].next = x;
        events[x].prev = p;
    };
    let unlift = |events: &mut Vec<Event>, i: usize| {
        let (p, x) = (events[i].prev, events[i].next);
        events[p].next = i;
        events[x].prev = i;
    };

    let mut seen: Seen<M> = HashSet::default();
    let mut linearized = Bits(vec![0; n.div_ceil(64)]);
    let mut stack: Vec<(usize, M)> = Vec::new();
    let mut state = initial.clone();
    let mut explored: u64 = 0;
    let mut deepest: Vec<usize> = Vec::new();
    let mut blocked_at = 0;
    let mut entry = events[0].next;
    while events[0].next != 0 {
        let e = events[entry];
        if e.is_call {
            let operation = &history[e.op];
            let (next_state, ret) = state.step(&operation.op);
            let matches = operation.complete.as_ref().is_none_or(|(_, r)| *r == ret);
            if matches {
                let mut with = linearized.clone();
                with.set(e.op);
                if seen.insert((with.clone(), next_state.clone())) {
                    explored += 1;
                    if explored > max_states {
                        return Verdict::GaveUp { explored };
                    }
                    stack.push((entry, state));
                    state = next_state;
                    linearized = with;
                    lift(&mut events, entry);
                    lift(&mut events, return_of[e.op]);
                    if stack.len() > deepest.len() {
                        deepest = stack.iter().map(|(i, _)| events[*i].op).collect();
                    }
                    entry = events[0].next;
                    continue;
                }
            }
            entry = e.next;
        } else {
            if history[e.op].complete.is_none() {
                // Every operation that completed is linearized; the rest may never have
                // happened.
                return Verdict::Linearizable;
            }
            if stack.len() >= deepest.len() {
                blocked_at = e.op;
            }
            let Some((call, previous)) = stack.pop() else {
                return Verdict::NotLinearizable {
                    explanation: explain(history, &deepest, blocked_at),
                };
            };
            let op = events[call].op;
            state = previous;
            linearized.clear(op);
            unlift(&mut events, return_of[op]);
            unlift(&mut events, call);
            debug_assert_eq!(call, call_of[op]);
            entry = events[call].next;
        }
    }
    Verdict::Linearizable
}

fn explain<M: Model>(history: &[Operation<M>], deepest: &[usize], blocked: usize) -> String {
    let show = |i: usize| {
        let o = &history[i];
        match &o.complete {
            Some((t, ret)) => format!(
                "client {} {:?} [{}..{}us] -> {:?}",
                o.client, o.op, o.invoke, t, ret
            ),
            None => format!(
                "client {} {:?} [{}us..] -> unknown",
                o.client, o.op, o.invoke
            ),
        }
    };
    let mut text = format!("no order explains {}", show(blocked));
    text.push_str("; the longest linearizable prefix found:");
    for &i in deepest {
        text.push_str("\n    ");
        text.push_str(&show(i));
    }
    text
}

/// Checks each key's sub-history on its own (linearizability is local) and names the key of
/// the first that fails.
pub fn check_per_key<K: Ord + Clone + Debug, M: Model>(
    initial: &M,
    history: &[(K, Operation<M>)],
    max_states: u64,
) -> Verdict {
    let mut by_key: BTreeMap<K, Vec<Operation<M>>> = BTreeMap::new();
    for (key, op) in history {
        by_key.entry(key.clone()).or_default().push(op.clone());
    }
    let mut gave_up = None;
    for (key, ops) in by_key {
        match check(initial, &ops, max_states) {
            Verdict::Linearizable => {}
            Verdict::NotLinearizable { explanation } => {
                return Verdict::NotLinearizable {
                    explanation: format!("key {key:?}: {explanation}"),
                }
            }
            Verdict::GaveUp { explored } => gave_up = Some(explored),
        }
    }
    match gave_up {
        Some(explored) => Verdict::GaveUp { explored },
        None => Verdict::Linearizable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rzk_session::Prng;

    fn op(
        client: u64,
        op: ZnodeOp,
        invoke: u64,
        complete: Option<(u64, ZnodeRet)>,
    ) -> Operation<Znode> {
        Operation {
            client,
            op,
            invoke,
            complete,
        }
    }

    fn set(data: u64, expected_version: Option<i32>) -> ZnodeOp {
        ZnodeOp::Set {
            data,
            expected_version,
        }
    }

    fn judge(history: &[Operation<Znode>]) -> Verdict {
        check(&Znode(None), history, 1_000_000)
    }

    fn is_bad(v: Verdict) -> bool {
        matches!(v, Verdict::NotLinearizable { .. })
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_caught() {
        let h = [
            op(1, ZnodeOp::Create(1), 0, Some((10, ZnodeRet::Created))),
            op(
                1,
                set(2, None),
                20,
                Some((30, ZnodeRet::Set { version: 1 })),
            ),
            op(
                2,
                ZnodeOp::Read,
                40,
                Some((50, ZnodeRet::Read(Some((1, 0))))),
            ),
        ];
        assert!(is_bad(judge(&h)));
    }

    #[test]
    fn a_lost_acknowledged_write_is_caught() {
        let h = [
            op(1, ZnodeOp::Create(1), 0, Some((10, ZnodeRet::Created))),
            op(2, ZnodeOp::Read, 20, Some((30, ZnodeRet::Read(None)))),
        ];
        assert!(is_bad(judge(&h)));
    }

    #[test]
    fn two_compare_and_sets_on_one_version_cannot_both_win() {
        let h = [
            op(1, ZnodeOp::Create(1), 0, Some((10, ZnodeRet::Created))),
            op(
                1,
                set(2, Some(0)),
                20,
                Some((40, ZnodeRet::Set { version: 1 })),
            ),
            op(
                2,
                set(3, Some(0)),
                21,
                Some((41, ZnodeRet::Set { version: 1 })),
            ),
        ];
        assert!(is_bad(judge(&h)));
    }

    #[test]
    fn a_value_never_written_is_caught() {
        let h = [op(
            1,
            ZnodeOp::Read,
            0,
            Some((10, ZnodeRet::Read(Some((9, 0))))),
        )];
        assert!(is_bad(judge(&h)));
        let explanation = match judge(&h) {
            Verdict::NotLinearizable { explanation } => explanation,
            other => panic!("{other:?}"),
        };
        assert!(explanation.contains("Read"), "{explanation}");
    }

    #[test]
    fn concurrent_operations_may_take_effect_in_the_other_order() {
        // Client 2's set, invoked second, took effect first (its version is 1), and the read
        // that overlaps both sees client 1's.
        let h = [
            op(1, ZnodeOp::Create(1), 0, Some((5, ZnodeRet::Created))),
            op(
                1,
                set(2, None),
                10,
                Some((50, ZnodeRet::Set { version: 2 })),
            ),
            op(
                2,
                set(3, None),
                11,
                Some((40, ZnodeRet::Set { version: 1 })),
            ),
            op(
                3,
                ZnodeOp::Read,
                12,
                Some((60, ZnodeRet::Read(Some((2, 2))))),
            ),
        ];
        assert_eq!(judge(&h), Verdict::Linearizable);
    }

    #[test]
    fn an_unknown_outcome_may_or_may_not_have_happened() {
        let happened = [
            op(1, ZnodeOp::Create(1), 0, None),
            op(
                2,
                ZnodeOp::Read,
                100,
                Some((110, ZnodeRet::Read(Some((1, 0))))),
            ),
        ];
        assert_eq!(judge(&happened), Verdict::Linearizable);
        let did_not = [
            op(1, ZnodeOp::Create(1), 0, None),
            op(2, ZnodeOp::Read, 100, Some((110, ZnodeRet::Read(None)))),
        ];
        assert_eq!(judge(&did_not), Verdict::Linearizable);
        // But not before it was invoked.
        let too_early = [
            op(
                2,
                ZnodeOp::Read,
                0,
                Some((10, ZnodeRet::Read(Some((1, 0))))),
            ),
            op(1, ZnodeOp::Create(1), 20, None),
        ];
        assert!(is_bad(judge(&too_early)));
    }

    #[test]
    fn the_key_of_a_failure_is_named_and_keys_are_independent() {
        let h = vec![
            (
                "a",
                op(1, ZnodeOp::Create(1), 0, Some((10, ZnodeRet::Created))),
            ),
            (
                "b",
                op(2, ZnodeOp::Read, 20, Some((30, ZnodeRet::Read(None)))),
            ),
            (
                "a",
                op(2, ZnodeOp::Read, 20, Some((30, ZnodeRet::Read(None)))),
            ),
        ];
        match check_per_key(&Znode(None), &h, 1_000) {
            Verdict::NotLinearizable { explanation } => {
                assert!(explanation.starts_with("key \"a\""))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_search_gives_up_at_its_bound() {
        let h: Vec<_> = (0..40)
            .map(|i| op(i, set(i, None), 0, None))
            .chain([op(
                99,
                ZnodeOp::Read,
                1,
                Some((2, ZnodeRet::Read(Some((7, 77))))),
            )])
            .collect();
        assert!(matches!(
            check(&Znode(Some((0, 0))), &h, 1_000),
            Verdict::GaveUp { .. }
        ));
    }

    /// Random sequential runs of the model, with intervals widened so they overlap, are
    /// always linearizable; changing one return value of a sequential run never is.
    #[test]
    fn generated_histories() {
        let mut rng = Prng::new(7);
        for round in 0..300 {
            let mut state = Znode(None);
            let mut h = Vec::new();
            let len = 1 + rng.next_u64() % 30;
            for i in 0..len {
                let pick = rng.next_u64() % 4;
                let expected = rng
                    .next_u64()
                    .is_multiple_of(2)
                    .then(|| (rng.next_u64() % 3) as i32);
                let o = match pick {
                    0 => ZnodeOp::Create(i),
                    1 => set(i, expected),
                    2 => ZnodeOp::Delete {
                        expected_version: expected,
                    },
                    _ => ZnodeOp::Read,
                };
                let (next, ret) = state.step(&o);
                state = next;
                let at = i * 100 + 50;
                h.push(op(i % 5, o, at, Some((at + 1, ret))));
            }
            assert_eq!(judge(&h), Verdict::Linearizable, "round {round}");
            let mut widened = h.clone();
            for o in &mut widened {
                o.invoke -= rng.next_u64() % 200.min(o.invoke + 1);
                if let Some((t, _)) = &mut o.complete {
                    *t += rng.next_u64() % 200;
                }
            }
            assert_eq!(
                judge(&widened),
                Verdict::Linearizable,
                "round {round} widened"
            );
            let k = (rng.next_u64() % len) as usize;
            let mut broken = h.clone();
            let (_, ret) = broken[k].complete.clone().unwrap();
            let wrong = match ret {
                ZnodeRet::Read(Some((d, v))) => ZnodeRet::Read(Some((d + 1000, v))),
                ZnodeRet::Read(None) => ZnodeRet::Read(Some((1, 0))),
                ZnodeRet::Created => ZnodeRet::NodeExists,
                ZnodeRet::NodeExists => ZnodeRet::Created,
                ZnodeRet::Set { version } => ZnodeRet::Set {
                    version: version + 7,
                },
                ZnodeRet::Deleted | ZnodeRet::BadVersion => ZnodeRet::NoNode,
                ZnodeRet::NoNode => ZnodeRet::BadVersion,
            };
            broken[k].complete = Some((broken[k].complete.as_ref().unwrap().0, wrong));
            assert!(
                is_bad(judge(&broken)),
                "round {round}: mutated op {k} passed"
            );
        }
    }
}
