//! Linearizability checker: Wing & Gong's search with Lowe's memoization (the algorithm behind
//! Porcupine and Knossos), and the znode model the simulator judges client histories against.
//!
//! In: a sequential `Model` and a history of `Operation`s: invoke time, and completion time
//! with the return value, or no completion when the client never learned the outcome.
//! Out: a `Verdict`.
//! Holds: `Linearizable` only with a witness order: every completed operation takes effect
//! once, at an instant inside [invoke, complete]; an operation without completion takes effect
//! at most once, at any instant after its invoke, or never; and replaying that order on the
//! model returns what each client saw. `NotLinearizable` only after every order was ruled out;
//! its explanation names the shortest failing prefix of the history. `GaveUp` when the search
//! reached `max_states` configurations before either answer.
//! Not here: recording histories (world.rs) or choosing what a key is (the caller).
//!
//! The search (Wing & Gong 1993, "Testing and verifying concurrent objects"; Lowe 2017,
//! "Testing for linearizability"):
//! 1) Each operation gives two events, its call and its return, sorted by time into a doubly
//!    linked list. An operation without completion returns at +infinity, after every real
//!    return. At equal times calls sort first: an operation that completes in the microsecond
//!    another is invoked counts as concurrent with it, since the clock cannot order the two.
//! 2) A configuration is (set of linearized operations, model state). The search scans the list
//!    from its head. Each call it meets is an operation that may take effect next: if the
//!    model returns what the client saw (anything matches an unknown outcome), the operation's
//!    two events are unlinked and the search goes one level deeper. The first return it meets
//!    belongs to an operation that must have taken effect already but could not: it backtracks
//!    (relinks the last linearized operation and tries the next call after it).
//! 3) Each configuration is recorded, and one reached again is not explored again (Lowe). The
//!    linearized set is a bitset with an incrementally updated (Zobrist) hash; the memo keeps
//!    all bitsets in one arena, so recording a configuration allocates nothing per entry.
//! 4) It succeeds once every completed operation is linearized: the unknown ones left never took
//!    effect. An unknown operation that would leave the state as it is is never linearized, as
//!    leaving it out is always at least as good.
//! 5) On failure, the furthest return any configuration reached is the culprit. Every
//!    configuration reachable was explored, so the history is linearizable up to just before
//!    that return and not linearizable up to and including it: the shortest failing prefix.
//!
//! Cost: a configuration costs one `Model::step`, one hash of the new state and one memo probe
//! per call open at the first pending return (the scan). Memory per configuration is the state,
//! a bitset of ceil(n / 64) words, and about 25 bytes of table and chain. The number of
//! configurations is exponential in the operations open at once in the worst case, and an
//! unknown outcome stays open to the end, hence `max_states`. Measured (tests, simulator):
//! a few hundred ops per key with a handful of clients take 3 to 6 configurations per op,
//! under a millisecond; 20 unknown outcomes in 400 ops, up to 75 per op. Proving a history
//! NOT linearizable explores every configuration before the culprit's return, which is cheap
//! with the simulator's ~10 unknown outcomes per key but exceeds 2M configurations with 50.
//!
//! Linearizability is local (Herlihy & Wing 1990), so `check_per_key` checks each key's
//! operations on their own (Horn & Kroening's P-compositionality): many small searches instead
//! of one exponentially larger one.

use std::collections::hash_map::{Entry, HashMap};
use std::collections::BTreeMap;
use std::fmt::{Debug, Write as _};
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// The most operations each list of an explanation shows; the rest are counted.
const EXPLANATION_OPS_MAX: usize = 24;
/// The most model states an explanation shows.
const EXPLANATION_STATES_MAX: usize = 8;
/// Memo entries are indexed by u32 (one value ends a chain): no search records more.
const MEMO_ENTRIES_MAX: u64 = u32::MAX as u64 - 1;

/// A sequential specification.
pub trait Model: Clone + Eq + Hash + Debug {
    type Op: Clone + Debug;
    type Ret: Clone + Debug + PartialEq;
    /// Applies `op` to the state: the new state and what the op returns.
    fn step(&self, op: &Self::Op) -> (Self, Self::Ret);
}

/// One operation of a history. `invoke` and completion times are simulated-clock values
/// (u64 microseconds); `complete == None` means the client never learned the outcome
/// (timeout, connection lost): it may or may not have taken effect, at any time after invoke.
#[derive(Clone, Debug)]
pub struct Operation<M: Model> {
    pub client: u64,
    pub op: M::Op,
    pub invoke: u64,
    pub complete: Option<(u64, M::Ret)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// No order explains the history. The explanation names operations `#i` by their index in
    /// the history passed in.
    NotLinearizable {
        explanation: String,
    },
    /// The search recorded `explored` configurations (the `max_states` bound, summed over the
    /// keys that reached it) without an answer: the history is not judged.
    GaveUp {
        explored: u64,
    },
}

/// Checks `history` against the sequential `initial` model. `#i` in an explanation is
/// `history[i]`.
///
/// Panics if an operation completes before it is invoked: the recorder is broken.
pub fn check<M: Model>(initial: &M, history: &[Operation<M>], max_states: u64) -> Verdict {
    let ops: Vec<&Operation<M>> = history.iter().collect();
    let ids: Vec<usize> = (0..history.len()).collect();
    judge(initial, &ops, &ids, max_states)
}

/// Checks each key's operations on their own: a history is linearizable if and only if every
/// key's sub-history is. The first failing key (in key order) is named in the explanation, and
/// `#i` there is `history[i]`. A definite failure of one key wins over another key's `GaveUp`.
pub fn check_per_key<K: Ord + Clone + Debug, M: Model>(
    initial: &M,
    history: &[(K, Operation<M>)],
    max_states: u64,
) -> Verdict {
    let mut by_key: BTreeMap<&K, Vec<usize>> = BTreeMap::new();
    for (i, (key, _)) in history.iter().enumerate() {
        by_key.entry(key).or_default().push(i);
    }
    let mut gave_up: Option<u64> = None;
    for (key, ids) in by_key {
        let ops: Vec<&Operation<M>> = ids.iter().map(|&i| &history[i].1).collect();
        match judge(initial, &ops, &ids, max_states) {
            Verdict::Linearizable => {}
            Verdict::NotLinearizable { explanation } => {
                return Verdict::NotLinearizable {
                    explanation: format!("key {key:?}: {explanation}"),
                };
            }
            Verdict::GaveUp { explored } => {
                gave_up = Some(gave_up.unwrap_or(0).saturating_add(explored));
            }
        }
    }
    match gave_up {
        Some(explored) => Verdict::GaveUp { explored },
        None => Verdict::Linearizable,
    }
}

/// A znode as a register with a version: `None` while it does not exist, else (data, version).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Znode(pub Option<(u64, i32)>);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ZnodeOp {
    Create(u64),
    /// setData. `expected_version` None or Some(-1) is ZooKeeper's -1: any version.
    Set {
        data: u64,
        expected_version: Option<i32>,
    },
    /// delete. `expected_version` None or Some(-1) means any version.
    Delete {
        expected_version: Option<i32>,
    },
    /// getData (the simulator's clients sync first, so reads are linearizable too).
    Read,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ZnodeRet {
    Created,
    NodeExists,
    /// The node's new version (the reply's Stat.version).
    Set {
        version: i32,
    },
    Deleted,
    NoNode,
    BadVersion,
    Read(Option<(u64, i32)>),
}

impl Model for Znode {
    type Op = ZnodeOp;
    type Ret = ZnodeRet;

    /// ZooKeeper's PrepRequestProcessor order: existence first (NoNode, NodeExists), then the
    /// version (BadVersion). A created node starts at version 0, also after a delete (the node
    /// is new); each setData adds 1, wrapping like Java's int.
    fn step(&self, op: &ZnodeOp) -> (Znode, ZnodeRet) {
        let version_matches = |expected: &Option<i32>, version: i32| match *expected {
            None | Some(-1) => true,
            Some(expected) => expected == version,
        };
        match (op, self.0) {
            (ZnodeOp::Read, node) => (*self, ZnodeRet::Read(node)),
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
                if version_matches(expected_version, version) {
                    let version = version.wrapping_add(1);
                    (Znode(Some((*data, version))), ZnodeRet::Set { version })
                } else {
                    (*self, ZnodeRet::BadVersion)
                }
            }
            (ZnodeOp::Delete { expected_version }, Some((_, version))) => {
                if version_matches(expected_version, version) {
                    (Znode(None), ZnodeRet::Deleted)
                } else {
                    (*self, ZnodeRet::BadVersion)
                }
            }
        }
    }
}

fn judge<M: Model>(initial: &M, ops: &[&Operation<M>], ids: &[usize], max_states: u64) -> Verdict {
    assert_eq!(ops.len(), ids.len());
    match search(initial, ops, max_states) {
        Outcome::Linearizable => Verdict::Linearizable,
        Outcome::GaveUp { explored } => Verdict::GaveUp { explored },
        Outcome::Stuck(stuck) => Verdict::NotLinearizable {
            explanation: explain(ops, ids, &stuck),
        },
    }
}

enum Outcome<M> {
    Linearizable,
    GaveUp { explored: u64 },
    Stuck(Stuck<M>),
}

/// The evidence of a failed search, gathered at the furthest return any configuration reached.
struct Stuck<M> {
    /// The operation (index into the searched slice) whose return no order gets past.
    culprit: usize,
    /// The position of that return among all events in time order, and their count.
    event_index: usize,
    event_count: usize,
    /// One linearization of the operations before that return: (operation, state after it).
    witness: Vec<(usize, M)>,
    /// The states the model can be in at that return with the culprit not applied, and
    /// whether that list is complete.
    states: Vec<M>,
    states_complete: bool,
    /// The other operations whose interval overlaps the culprit's, in invoke order.
    overlapping: Vec<usize>,
}

/// The event list: node 0 is the head sentinel, node k + 1 is event k in time order.
const HEAD: usize = 0;

#[derive(Clone, Copy)]
struct Node {
    op: usize,
    is_call: bool,
    prev: usize,
    next: usize,
}

struct Events {
    nodes: Vec<Node>,
    call_node: Vec<usize>,
    return_node: Vec<usize>,
}

impl Events {
    fn new<M: Model>(ops: &[&Operation<M>]) -> Events {
        // (time, rank, op): at equal times calls (0) first, then known returns (1), then
        // unknown ones (2), so an unknown return is never met while a known one is pending.
        let mut order: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * ops.len());
        for (i, o) in ops.iter().enumerate() {
            order.push((o.invoke, 0, i));
            match &o.complete {
                Some((at, _)) => {
                    assert!(
                        *at >= o.invoke,
                        "operation {i} completes before it is invoked"
                    );
                    order.push((*at, 1, i));
                }
                None => order.push((u64::MAX, 2, i)),
            }
        }
        order.sort_unstable();
        let mut events = Events {
            nodes: Vec::with_capacity(order.len() + 1),
            call_node: vec![HEAD; ops.len()],
            return_node: vec![HEAD; ops.len()],
        };
        events.nodes.push(Node {
            op: usize::MAX,
            is_call: false,
            prev: order.len(),
            next: if order.is_empty() { HEAD } else { 1 },
        });
        for (k, &(_, rank, op)) in order.iter().enumerate() {
            let node = k + 1;
            let is_call = rank == 0;
            events.nodes.push(Node {
                op,
                is_call,
                prev: k,
                next: if node == order.len() { HEAD } else { node + 1 },
            });
            if is_call {
                events.call_node[op] = node;
            } else {
                events.return_node[op] = node;
            }
        }
        events
    }

    fn first(&self) -> usize {
        self.nodes[HEAD].next
    }

    /// Takes `node` out of the list; it keeps its links so `relink` can put it back. Relinks
    /// must come in the reverse order of unlinks (dancing links).
    fn unlink(&mut self, node: usize) {
        let Node { prev, next, .. } = self.nodes[node];
        self.nodes[prev].next = next;
        self.nodes[next].prev = prev;
    }

    fn relink(&mut self, node: usize) {
        let Node { prev, next, .. } = self.nodes[node];
        self.nodes[prev].next = node;
        self.nodes[next].prev = node;
    }
}

/// The set of linearized operations, with a Zobrist hash kept up to date on every toggle.
struct Linearized {
    words: Vec<u64>,
    hash: u64,
}

impl Linearized {
    fn toggle(&mut self, op: usize) {
        self.words[op / 64] ^= 1 << (op % 64);
        self.hash ^= mix64((op as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    }
}

/// SplitMix64's finalizer: every input bit affects every output bit.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A fixed-key multiply-rotate hasher for model states: deterministic and fast. The memo only
/// tests membership, so neither verdicts nor explanations depend on the hash values.
#[derive(Default)]
struct StateHasher(u64);

impl Hasher for StateHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_i32(&mut self, n: i32) {
        self.write_u64(u64::from(n as u32));
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_isize(&mut self, n: isize) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The memo's keys are already mixed configuration hashes: use them as they are.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = bytes
            .iter()
            .fold(self.0, |h, &b| h.rotate_left(8) ^ u64::from(b));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

const CHAIN_END: u32 = u32::MAX;

/// The explored configurations. `first` maps a configuration hash to its newest entry; entries
/// with equal hashes chain through `next`. Entry i's bitset is `bits[i * words..][..words]`.
struct Memo<M> {
    words: usize,
    bits: Vec<u64>,
    entries: Vec<(M, u32)>,
    first: HashMap<u64, u32, BuildHasherDefault<Prehashed>>,
}

impl<M: Model> Memo<M> {
    fn new(words: usize) -> Memo<M> {
        Memo {
            words,
            bits: Vec::new(),
            entries: Vec::new(),
            first: HashMap::default(),
        }
    }

    /// Records (bits, state) under `hash`: false if it was recorded before.
    fn insert(&mut self, hash: u64, bits: &[u64], state: &M) -> bool {
        debug_assert_eq!(bits.len(), self.words);
        let index = u32::try_from(self.entries.len()).expect("MEMO_ENTRIES_MAX bounds the memo");
        let next = match self.first.entry(hash) {
            Entry::Vacant(vacant) => {
                vacant.insert(index);
                CHAIN_END
            }
            Entry::Occupied(mut occupied) => {
                let mut at = *occupied.get();
                while at != CHAIN_END {
                    let i = at as usize;
                    let (seen_state, next) = &self.entries[i];
                    if seen_state == state && self.bits[i * self.words..][..self.words] == *bits {
                        return false;
                    }
                    at = *next;
                }
                occupied.insert(index)
            }
        };
        self.entries.push((state.clone(), next));
        self.bits.extend_from_slice(bits);
        true
    }
}

fn configuration_hash<M: Model>(linearized: &Linearized, state: &M) -> u64 {
    let mut hasher = StateHasher::default();
    state.hash(&mut hasher);
    mix64(linearized.hash ^ hasher.finish())
}

fn search<M: Model>(initial: &M, ops: &[&Operation<M>], max_states: u64) -> Outcome<M> {
    let mut events = Events::new(ops);
    let mut known_pending = ops.iter().filter(|o| o.complete.is_some()).count();
    if known_pending == 0 {
        return Outcome::Linearizable;
    }
    let max_states = max_states.min(MEMO_ENTRIES_MAX);
    let words = ops.len().div_ceil(64);
    let mut memo = Memo::new(words);
    let mut linearized = Linearized {
        words: vec![0; words],
        hash: 0,
    };
    let mut state = initial.clone();
    // One entry per linearized operation: its call node and the state before it.
    let mut stack: Vec<(usize, M)> = Vec::new();
    let mut explored: u64 = 0;
    let mut stuck: Option<Stuck<M>> = None;
    let mut cursor = events.first();
    loop {
        // A completed operation is pending, so its return comes before the list ends.
        assert_ne!(cursor, HEAD);
        let node = events.nodes[cursor];
        let operation = ops[node.op];
        if node.is_call {
            let (next, ret) = state.step(&operation.op);
            let worth_trying = match &operation.complete {
                Some((_, seen)) => *seen == ret,
                None => next != state,
            };
            if worth_trying {
                linearized.toggle(node.op);
                let hash = configuration_hash(&linearized, &next);
                if memo.insert(hash, &linearized.words, &next) {
                    if explored == max_states {
                        return Outcome::GaveUp { explored };
                    }
                    explored += 1;
                    stack.push((cursor, std::mem::replace(&mut state, next)));
                    events.unlink(cursor);
                    events.unlink(events.return_node[node.op]);
                    if operation.complete.is_some() {
                        known_pending -= 1;
                        if known_pending == 0 {
                            return Outcome::Linearizable;
                        }
                    }
                    cursor = events.first();
                    continue;
                }
                linearized.toggle(node.op);
            }
            cursor = node.next;
        } else {
            // Every operation returning before this one is linearized and this one is not.
            assert!(operation.complete.is_some());
            note_furthest(&mut stuck, &events, cursor, &stack, &state);
            let Some((call, before)) = stack.pop() else {
                let mut stuck = stuck.expect("noted just above");
                stuck.overlapping = overlapping(&events, stuck.culprit);
                return Outcome::Stuck(stuck);
            };
            let op = events.nodes[call].op;
            state = before;
            linearized.toggle(op);
            if ops[op].complete.is_some() {
                known_pending += 1;
            }
            events.relink(events.return_node[op]);
            events.relink(call);
            cursor = events.nodes[call].next;
        }
    }
}

/// Keeps the evidence of the furthest return reached (the search blocked at `return_node`).
fn note_furthest<M: Model>(
    stuck: &mut Option<Stuck<M>>,
    events: &Events,
    return_node: usize,
    stack: &[(usize, M)],
    state: &M,
) {
    let event_index = return_node - 1;
    match stuck {
        Some(s) if s.event_index > event_index => {}
        Some(s) if s.event_index == event_index => {
            if !s.states.contains(state) {
                if s.states.len() < EXPLANATION_STATES_MAX {
                    s.states.push(state.clone());
                } else {
                    s.states_complete = false;
                }
            }
        }
        _ => {
            let witness = stack
                .iter()
                .enumerate()
                .map(|(k, (call, _))| {
                    let after = stack.get(k + 1).map_or(state, |(_, before)| before);
                    (events.nodes[*call].op, after.clone())
                })
                .collect();
            *stuck = Some(Stuck {
                culprit: events.nodes[return_node].op,
                event_index,
                event_count: events.nodes.len() - 1,
                witness,
                states: vec![state.clone()],
                states_complete: true,
                overlapping: Vec::new(),
            });
        }
    }
}

/// The operations other than `op` invoked before it returned and not returned before it was
/// invoked, in invoke order.
fn overlapping(events: &Events, op: usize) -> Vec<usize> {
    let (call, ret) = (events.call_node[op], events.return_node[op]);
    (1..ret)
        .filter(|&node| events.nodes[node].is_call)
        .map(|node| events.nodes[node].op)
        .filter(|&other| other != op && events.return_node[other] > call)
        .collect()
}

fn describe<M: Model>(id: usize, o: &Operation<M>) -> String {
    match &o.complete {
        Some((at, ret)) => format!(
            "#{id} client {} {:?} [{}us, {at}us] -> {ret:?}",
            o.client, o.op, o.invoke
        ),
        None => format!(
            "#{id} client {} {:?} [{}us, ?] -> unknown",
            o.client, o.op, o.invoke
        ),
    }
}

fn explain<M: Model>(ops: &[&Operation<M>], ids: &[usize], stuck: &Stuck<M>) -> String {
    let culprit = ids[stuck.culprit];
    let mut text = format!(
        "no linearization gets past the return of #{culprit} (event {} of {} in time order; \
         the events before it are linearizable):\n    {}",
        stuck.event_index + 1,
        stuck.event_count,
        describe(culprit, ops[stuck.culprit]),
    );
    let states: Vec<String> = stuck.states.iter().map(|s| format!("{s:?}")).collect();
    let _ = write!(
        text,
        "\n  states possible when it returned, #{culprit} not applied{}: {}",
        if stuck.states_complete { "" } else { " (some)" },
        states.join(", "),
    );
    let shown = stuck.witness.len().min(EXPLANATION_OPS_MAX);
    let count = if shown < stuck.witness.len() {
        format!("the last {shown} of {} ops", stuck.witness.len())
    } else {
        format!("{shown} ops")
    };
    let _ = write!(
        text,
        "\n  a linearization of what came before ({count}; the state after each):"
    );
    for (op, after) in &stuck.witness[stuck.witness.len() - shown..] {
        let _ = write!(text, "\n    {} => {after:?}", describe(ids[*op], ops[*op]));
    }
    let _ = write!(
        text,
        "\n  operations overlapping #{culprit} ({}):",
        stuck.overlapping.len()
    );
    for &op in stuck.overlapping.iter().take(EXPLANATION_OPS_MAX) {
        let _ = write!(text, "\n    {}", describe(ids[op], ops[op]));
    }
    if stuck.overlapping.len() > EXPLANATION_OPS_MAX {
        let _ = write!(
            text,
            "\n    ... {} more",
            stuck.overlapping.len() - EXPLANATION_OPS_MAX
        );
    }
    text
}

#[cfg(test)]
mod tests {
    //! Goal: the checker accepts what is linearizable, rejects what is not, names the culprit,
    //! and stays within its bound. Method: a hand-written history per anomaly, properties over
    //! runs of the model itself (widened, made unknown, or with one return changed), and a
    //! brute-force enumeration of orders as the oracle on small random histories.

    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    const STATES_MAX: u64 = 1_000_000;

    fn acked(client: u64, op: ZnodeOp, span_us: (u64, u64), ret: ZnodeRet) -> Operation<Znode> {
        Operation {
            client,
            op,
            invoke: span_us.0,
            complete: Some((span_us.1, ret)),
        }
    }

    fn unknown(client: u64, op: ZnodeOp, invoke: u64) -> Operation<Znode> {
        Operation {
            client,
            op,
            invoke,
            complete: None,
        }
    }

    fn set(data: u64, expected_version: Option<i32>) -> ZnodeOp {
        ZnodeOp::Set {
            data,
            expected_version,
        }
    }

    fn delete(expected_version: Option<i32>) -> ZnodeOp {
        ZnodeOp::Delete { expected_version }
    }

    fn read(node: Option<(u64, i32)>) -> ZnodeRet {
        ZnodeRet::Read(node)
    }

    fn judge(history: &[Operation<Znode>]) -> Verdict {
        check(&Znode(None), history, STATES_MAX)
    }

    fn explanation(verdict: Verdict) -> String {
        match verdict {
            Verdict::NotLinearizable { explanation } => explanation,
            other => panic!("expected NotLinearizable, got {other:?}"),
        }
    }

    #[test]
    fn the_znode_model_follows_zookeeper() {
        let steps = [
            (ZnodeOp::Read, read(None)),
            (set(1, None), ZnodeRet::NoNode),
            (set(1, Some(0)), ZnodeRet::NoNode),
            (delete(None), ZnodeRet::NoNode),
            (ZnodeOp::Create(1), ZnodeRet::Created),
            (ZnodeOp::Read, read(Some((1, 0)))),
            (ZnodeOp::Create(2), ZnodeRet::NodeExists),
            (set(2, None), ZnodeRet::Set { version: 1 }),
            (set(3, Some(0)), ZnodeRet::BadVersion),
            (set(3, Some(1)), ZnodeRet::Set { version: 2 }),
            (set(4, Some(-1)), ZnodeRet::Set { version: 3 }),
            (delete(Some(2)), ZnodeRet::BadVersion),
            (ZnodeOp::Read, read(Some((4, 3)))),
            (delete(Some(3)), ZnodeRet::Deleted),
            (ZnodeOp::Read, read(None)),
            // A new node starts over at version 0.
            (ZnodeOp::Create(5), ZnodeRet::Created),
            (ZnodeOp::Read, read(Some((5, 0)))),
            (delete(Some(-1)), ZnodeRet::Deleted),
        ];
        let mut node = Znode(None);
        for (i, (op, want)) in steps.into_iter().enumerate() {
            let (next, ret) = node.step(&op);
            assert_eq!(ret, want, "step {i}: {op:?} on {node:?}");
            node = next;
        }
    }

    #[test]
    fn an_empty_history_and_one_without_outcomes_are_linearizable() {
        assert_eq!(judge(&[]), Verdict::Linearizable);
        let h = [
            unknown(1, ZnodeOp::Create(1), 0),
            unknown(2, delete(None), 5),
        ];
        assert_eq!(judge(&h), Verdict::Linearizable);
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_caught() {
        let h = [
            acked(1, ZnodeOp::Create(1), (0, 10), ZnodeRet::Created),
            acked(1, set(2, None), (20, 30), ZnodeRet::Set { version: 1 }),
            acked(2, ZnodeOp::Read, (40, 50), read(Some((1, 0)))),
        ];
        let text = explanation(judge(&h));
        assert!(text.contains("return of #2 "), "{text}");
        // Had the read overlapped the set, it would be fine.
        let mut overlapping = h.clone();
        overlapping[2].invoke = 25;
        assert_eq!(judge(&overlapping), Verdict::Linearizable);
    }

    #[test]
    fn a_lost_acknowledged_write_is_caught() {
        let lost_create = [
            acked(1, ZnodeOp::Create(1), (0, 10), ZnodeRet::Created),
            acked(2, ZnodeOp::Read, (20, 30), read(None)),
        ];
        assert!(explanation(judge(&lost_create)).contains("return of #1 "));
        // The write is acknowledged, but a later write acts on the version before it.
        let lost_set = [
            acked(1, ZnodeOp::Create(1), (0, 10), ZnodeRet::Created),
            acked(1, set(2, None), (20, 30), ZnodeRet::Set { version: 1 }),
            acked(2, set(3, None), (40, 50), ZnodeRet::Set { version: 1 }),
        ];
        assert!(explanation(judge(&lost_set)).contains("return of #2 "));
    }

    #[test]
    fn two_compare_and_sets_on_one_version_cannot_both_win() {
        let h = [
            acked(1, ZnodeOp::Create(1), (0, 10), ZnodeRet::Created),
            acked(1, set(2, Some(0)), (20, 40), ZnodeRet::Set { version: 1 }),
            acked(2, set(3, Some(0)), (21, 41), ZnodeRet::Set { version: 1 }),
        ];
        let text = explanation(judge(&h));
        // The later return is the culprit and the other set is listed as overlapping it.
        assert!(text.contains("return of #2 "), "{text}");
        assert!(text.contains("overlapping #2 (1):\n    #1 "), "{text}");
        // One of them losing with BadVersion is fine, in either order of invocation.
        let mut one_loses = h.clone();
        one_loses[1].complete = Some((40, ZnodeRet::BadVersion));
        assert_eq!(judge(&one_loses), Verdict::Linearizable);
    }

    #[test]
    fn a_value_never_written_is_caught() {
        let h = [
            acked(1, ZnodeOp::Create(1), (0, 10), ZnodeRet::Created),
            acked(2, ZnodeOp::Read, (5, 8), read(Some((9, 0)))),
        ];
        let text = explanation(judge(&h));
        assert!(text.contains("return of #1 "), "{text}");
        // The read overlaps the create, so it may come before or after it: both states are
        // listed, and neither holds 9.
        assert!(
            text.contains("not applied: Znode(Some((1, 0))), Znode(None)\n"),
            "{text}"
        );
    }

    #[test]
    fn concurrent_operations_may_take_effect_out_of_invocation_order() {
        // Client 2's set, invoked after client 1's, took effect first (it got version 1), and
        // the read overlapping both saw client 1's.
        let sets = [
            acked(1, ZnodeOp::Create(1), (0, 5), ZnodeRet::Created),
            acked(1, set(2, None), (10, 50), ZnodeRet::Set { version: 2 }),
            acked(2, set(3, None), (11, 40), ZnodeRet::Set { version: 1 }),
            acked(3, ZnodeOp::Read, (12, 60), read(Some((2, 2)))),
        ];
        assert_eq!(judge(&sets), Verdict::Linearizable);
        // An unknown create, a delete and a create overlap reads that only the order
        // create(1), read, delete, read, create(7) explains.
        let recreate = [
            unknown(1, ZnodeOp::Create(1), 0),
            acked(2, delete(Some(0)), (10, 100), ZnodeRet::Deleted),
            acked(3, ZnodeOp::Create(7), (20, 90), ZnodeRet::Created),
            acked(4, ZnodeOp::Read, (30, 40), read(Some((1, 0)))),
            acked(4, ZnodeOp::Read, (50, 60), read(None)),
            acked(4, ZnodeOp::Read, (110, 120), read(Some((7, 0)))),
        ];
        assert_eq!(judge(&recreate), Verdict::Linearizable);
    }

    #[test]
    fn reads_flipping_back_during_one_write_are_caught() {
        // Every op overlaps the set, yet once a read sees it, a later read must too.
        let h = [
            acked(1, ZnodeOp::Create(1), (0, 5), ZnodeRet::Created),
            acked(1, set(2, None), (10, 100), ZnodeRet::Set { version: 1 }),
            acked(2, ZnodeOp::Read, (20, 30), read(Some((1, 0)))),
            acked(2, ZnodeOp::Read, (40, 50), read(Some((2, 1)))),
            acked(2, ZnodeOp::Read, (60, 70), read(Some((1, 0)))),
        ];
        let text = explanation(judge(&h));
        assert!(text.contains("return of #4 "), "{text}");
        assert!(
            text.contains("not applied: Znode(Some((2, 1)))\n"),
            "{text}"
        );
    }

    #[test]
    fn a_stale_read_after_a_wrong_first_guess_is_caught() {
        // The search first places the long read #1 right after the create and everything after
        // it fits until #4; it must undo #3, #2 and #1 and find no other order either.
        let h = [
            acked(1, ZnodeOp::Create(1), (0, 10), ZnodeRet::Created),
            acked(2, ZnodeOp::Read, (20, 100), read(Some((1, 0)))),
            acked(1, set(2, None), (30, 40), ZnodeRet::Set { version: 1 }),
            acked(3, ZnodeOp::Read, (50, 60), read(Some((2, 1)))),
            acked(3, ZnodeOp::Read, (200, 210), read(Some((1, 0)))),
        ];
        let text = explanation(judge(&h));
        assert!(text.contains("return of #4 "), "{text}");
    }

    #[test]
    fn an_unknown_outcome_may_or_may_not_have_happened() {
        let happened = [
            unknown(1, ZnodeOp::Create(1), 0),
            acked(2, ZnodeOp::Read, (100, 110), read(Some((1, 0)))),
        ];
        assert_eq!(judge(&happened), Verdict::Linearizable);
        let did_not = [
            unknown(1, ZnodeOp::Create(1), 0),
            acked(2, ZnodeOp::Read, (100, 110), read(None)),
        ];
        assert_eq!(judge(&did_not), Verdict::Linearizable);
        // It may take effect long after its invoke, after other ops that completed...
        let late = [
            unknown(1, ZnodeOp::Create(1), 0),
            acked(2, ZnodeOp::Read, (100, 110), read(None)),
            acked(2, ZnodeOp::Read, (900, 910), read(Some((1, 0)))),
        ];
        assert_eq!(judge(&late), Verdict::Linearizable);
        // ...but not before its invoke...
        let too_early = [
            acked(2, ZnodeOp::Read, (0, 10), read(Some((1, 0)))),
            unknown(1, ZnodeOp::Create(1), 20),
        ];
        assert!(explanation(judge(&too_early)).contains("return of #0 "));
        // ...and not twice.
        let twice = [
            acked(1, ZnodeOp::Create(1), (0, 10), ZnodeRet::Created),
            unknown(1, set(2, None), 20),
            acked(2, ZnodeOp::Read, (100, 110), read(Some((2, 1)))),
            acked(2, ZnodeOp::Read, (200, 210), read(Some((2, 2)))),
        ];
        assert!(explanation(judge(&twice)).contains("return of #3 "));
        // An unknown outcome that did not happen cannot be undone after it showed.
        let undone = [
            unknown(1, ZnodeOp::Create(1), 0),
            acked(2, ZnodeOp::Read, (100, 110), read(Some((1, 0)))),
            acked(2, ZnodeOp::Read, (200, 210), read(None)),
        ];
        assert!(explanation(judge(&undone)).contains("return of #2 "));
    }

    #[test]
    fn ops_meeting_at_one_microsecond_count_as_concurrent() {
        // The create completes in the microsecond the read is invoked: either order is fine.
        let h = [
            acked(1, ZnodeOp::Create(1), (0, 10), ZnodeRet::Created),
            acked(2, ZnodeOp::Read, (10, 20), read(None)),
        ];
        assert_eq!(judge(&h), Verdict::Linearizable);
        let mut later = h.clone();
        later[1].invoke = 11;
        assert!(matches!(judge(&later), Verdict::NotLinearizable { .. }));
    }

    #[test]
    fn the_explanation_names_the_shortest_failing_prefix() {
        // Ops are given out of time order; #3 is the first return no order explains, and
        // everything after it (#4, #5) is irrelevant to the explanation.
        let h = [
            acked(1, set(5, None), (30, 40), ZnodeRet::Set { version: 1 }),
            acked(1, ZnodeOp::Create(1), (0, 10), ZnodeRet::Created),
            unknown(3, set(6, Some(1)), 35),
            acked(2, ZnodeOp::Read, (50, 60), read(Some((1, 0)))),
            acked(2, ZnodeOp::Read, (70, 80), read(Some((5, 1)))),
            acked(1, delete(None), (90, 95), ZnodeRet::Deleted),
        ];
        let text = explanation(judge(&h));
        let expected = "no linearization gets past the return of #3 (event 7 of 12 in time \
                        order; the events before it are linearizable):\n    \
                        #3 client 2 Read [50us, 60us] -> Read(Some((1, 0)))\n  \
                        states possible when it returned, #3 not applied: \
                        Znode(Some((6, 2))), Znode(Some((5, 1)))\n  \
                        a linearization of what came before (3 ops; the state after each):\n    \
                        #1 client 1 Create(1) [0us, 10us] -> Created => Znode(Some((1, 0)))\n    \
                        #0 client 1 Set { data: 5, expected_version: None } [30us, 40us] \
                        -> Set { version: 1 } => Znode(Some((5, 1)))\n    \
                        #2 client 3 Set { data: 6, expected_version: Some(1) } [35us, ?] \
                        -> unknown => Znode(Some((6, 2)))\n  \
                        operations overlapping #3 (1):\n    \
                        #2 client 3 Set { data: 6, expected_version: Some(1) } [35us, ?] \
                        -> unknown";
        assert_eq!(text, expected);
    }

    #[test]
    fn per_key_checks_name_the_key_and_keep_keys_apart() {
        // Each key on its own is fine; merged into one znode they would not be.
        let fine = vec![
            (
                "a",
                acked(1, ZnodeOp::Create(1), (0, 10), ZnodeRet::Created),
            ),
            ("b", acked(2, ZnodeOp::Read, (20, 30), read(None))),
            ("a", acked(2, ZnodeOp::Read, (20, 30), read(Some((1, 0))))),
        ];
        assert_eq!(
            check_per_key(&Znode(None), &fine, STATES_MAX),
            Verdict::Linearizable
        );
        let merged: Vec<_> = fine.iter().map(|(_, o)| o.clone()).collect();
        assert!(matches!(judge(&merged), Verdict::NotLinearizable { .. }));
        // Indices in the explanation are the whole history's.
        let bad = vec![
            (
                "a",
                acked(1, ZnodeOp::Create(1), (0, 10), ZnodeRet::Created),
            ),
            ("b", acked(2, ZnodeOp::Read, (20, 30), read(None))),
            ("a", acked(2, ZnodeOp::Read, (20, 30), read(None))),
        ];
        let text = explanation(check_per_key(&Znode(None), &bad, STATES_MAX));
        assert!(text.starts_with("key \"a\": "), "{text}");
        assert!(text.contains("return of #2 "), "{text}");
    }

    #[test]
    fn the_search_gives_up_at_its_bound() {
        // 40 unknown sets that may have happened in any order, then a read no order explains:
        // proving that means trying every subset.
        let mut h: Vec<_> = (0..40).map(|i| unknown(i, set(i, None), 0)).collect();
        h.push(acked(99, ZnodeOp::Read, (1, 2), read(Some((7, 77)))));
        assert_eq!(
            check(&Znode(Some((0, 0))), &h, 1_000),
            Verdict::GaveUp { explored: 1_000 }
        );
        // A definite failure of another key wins over giving up.
        let mut keyed: Vec<_> = h.into_iter().map(|o| (1, o)).collect();
        keyed.push((2, acked(1, ZnodeOp::Read, (0, 1), read(Some((1, 0))))));
        let text = explanation(check_per_key(&Znode(Some((0, 0))), &keyed, 1_000));
        assert!(text.starts_with("key 2: "), "{text}");
    }

    /// SplitMix64, for the tests that are not proptests.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            mix64(self.0) % n
        }
    }

    fn seed() -> u64 {
        let seed = std::env::var("SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5eed);
        eprintln!("SEED={seed}");
        seed
    }

    /// `clients` clients each run ops back to back with random durations; each op takes effect
    /// at a random instant inside its interval (the model is applied in that order). About one
    /// op in 20 gets no outcome, half of those having taken effect.
    fn concurrent_run(rng: &mut Rng, clients: u64, ops: usize) -> Vec<Operation<Znode>> {
        let mut free_at_us = vec![0u64; clients as usize];
        let mut planned = Vec::new();
        for _ in 0..ops {
            let client = rng.below(clients);
            let invoke = free_at_us[client as usize] + rng.below(50);
            let complete = invoke + 1 + rng.below(300);
            free_at_us[client as usize] = complete;
            let point = invoke + rng.below(complete - invoke + 1);
            let op = match rng.below(10) {
                0 | 1 => ZnodeOp::Create(rng.below(4)),
                2..=5 => set(
                    rng.below(4),
                    [None, Some(0), Some(1), Some(2)][rng.below(4) as usize],
                ),
                6 => delete([None, Some(1)][rng.below(2) as usize]),
                _ => ZnodeOp::Read,
            };
            let fate = rng.below(40);
            planned.push((point, client, op, invoke, complete, fate));
        }
        planned.sort_by_key(|p| p.0);
        let mut node = Znode(None);
        let mut history = Vec::new();
        for (_, client, op, invoke, complete, fate) in planned {
            let outcome = match fate {
                0 => None,
                1 => {
                    node = node.step(&op).0;
                    None
                }
                _ => {
                    let (next, ret) = node.step(&op);
                    node = next;
                    Some((complete, ret))
                }
            };
            history.push(Operation {
                client,
                op,
                invoke,
                complete: outcome,
            });
        }
        history
    }

    #[test]
    fn hundreds_of_concurrent_ops_are_checked_quickly() {
        // Five clients, 400 ops, 20 of them open to the end. Measured over 300 seeds: 3 to 6
        // configurations per op typically, 75 at worst (the unknown outcomes multiply them).
        const OPS: usize = 400;
        let mut rng = Rng(seed());
        for round in 0..5 {
            let h = concurrent_run(&mut rng, 5, OPS);
            let verdict = check(&Znode(None), &h, 250 * OPS as u64);
            assert_eq!(verdict, Verdict::Linearizable, "round {round}");
        }
    }

    fn op_strategy() -> impl Strategy<Value = ZnodeOp> {
        let version = prop::option::of(-1i32..3);
        prop_oneof![
            (0u64..3).prop_map(ZnodeOp::Create),
            ((0u64..3), version.clone()).prop_map(|(data, v)| set(data, v)),
            version.prop_map(delete),
            Just(ZnodeOp::Read),
        ]
    }

    fn ret_strategy() -> impl Strategy<Value = ZnodeRet> {
        prop_oneof![
            Just(ZnodeRet::Created),
            Just(ZnodeRet::NodeExists),
            (0i32..3).prop_map(|version| ZnodeRet::Set { version }),
            Just(ZnodeRet::Deleted),
            Just(ZnodeRet::NoNode),
            Just(ZnodeRet::BadVersion),
            prop::option::of((0u64..3, 0i32..3)).prop_map(ZnodeRet::Read),
        ]
    }

    #[derive(Clone, Copy, Debug)]
    enum Fate {
        Acked,
        /// No outcome; it took effect.
        UnknownApplied,
        /// No outcome; it never took effect.
        UnknownLost,
    }

    fn fate_strategy() -> impl Strategy<Value = Fate> {
        prop_oneof![
            6 => Just(Fate::Acked),
            1 => Just(Fate::UnknownApplied),
            1 => Just(Fate::UnknownLost),
        ]
    }

    /// Runs `ops` one after another on the model: op i takes [100 i + 10, 100 i + 20] and
    /// takes effect at 100 i + 15, unless its fate says it never did.
    fn sequential_run(ops: &[(ZnodeOp, Fate)]) -> Vec<Operation<Znode>> {
        let mut node = Znode(None);
        let mut history = Vec::new();
        for (i, (op, fate)) in ops.iter().enumerate() {
            let invoke = 100 * i as u64 + 10;
            let (next, ret) = node.step(op);
            if !matches!(fate, Fate::UnknownLost) {
                node = next;
            }
            history.push(Operation {
                client: i as u64 % 4,
                op: op.clone(),
                invoke,
                complete: matches!(fate, Fate::Acked).then_some((invoke + 10, ret)),
            });
        }
        history
    }

    /// A return value surely different from `ret`, picked by `pick`.
    fn mutated(ret: &ZnodeRet, pick: usize) -> ZnodeRet {
        let nudged = match ret {
            ZnodeRet::Set { version } => ZnodeRet::Set {
                version: version + 1,
            },
            ZnodeRet::Read(Some((data, version))) => ZnodeRet::Read(Some((data + 1, *version))),
            ZnodeRet::Read(None) => ZnodeRet::Read(Some((0, 0))),
            _ => ZnodeRet::Read(None),
        };
        let candidates: Vec<ZnodeRet> = [
            nudged,
            ZnodeRet::Created,
            ZnodeRet::NodeExists,
            ZnodeRet::Deleted,
            ZnodeRet::NoNode,
            ZnodeRet::BadVersion,
            ZnodeRet::Read(None),
        ]
        .into_iter()
        .filter(|c| c != ret)
        .collect();
        candidates[pick % candidates.len()].clone()
    }

    /// Is there an order of a subset of `ops` holding every completed one, consistent with
    /// real time, in which the model returns what each saw? Tries them all.
    fn brute_force(node: &Znode, ops: &[Operation<Znode>], placed: &mut [bool]) -> bool {
        let done = ops
            .iter()
            .zip(placed.iter())
            .all(|(o, p)| *p || o.complete.is_none());
        if done {
            return true;
        }
        for x in 0..ops.len() {
            let must_follow = |(y, o): (usize, &Operation<Znode>)| {
                !placed[y]
                    && o.complete
                        .as_ref()
                        .is_some_and(|(at, _)| *at < ops[x].invoke)
            };
            if placed[x] || ops.iter().enumerate().any(must_follow) {
                continue;
            }
            let (next, ret) = node.step(&ops[x].op);
            if ops[x]
                .complete
                .as_ref()
                .is_some_and(|(_, seen)| *seen != ret)
            {
                continue;
            }
            placed[x] = true;
            let found = brute_force(&next, ops, placed);
            placed[x] = false;
            if found {
                return true;
            }
        }
        false
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any run of the model is linearizable, whatever widening of its intervals, and
        /// whatever outcomes the clients never learned.
        #[test]
        fn widened_runs_of_the_model_are_linearizable(
            ops in vec((op_strategy(), fate_strategy()), 1..60),
            widen in vec((0u64..400, 0u64..400), 60),
        ) {
            let mut h = sequential_run(&ops);
            for (o, (earlier, later)) in h.iter_mut().zip(widen) {
                o.invoke = o.invoke.saturating_sub(earlier);
                if let Some((at, _)) = &mut o.complete {
                    *at += later;
                }
            }
            prop_assert_eq!(judge(&h), Verdict::Linearizable);
        }

        /// One wrong return in a sequential history is caught, and named.
        #[test]
        fn a_wrong_return_in_a_sequential_run_is_caught(
            ops in vec(op_strategy(), 1..60),
            victim in any::<prop::sample::Index>(),
            pick in 0usize..8,
        ) {
            let ops: Vec<_> = ops.into_iter().map(|op| (op, Fate::Acked)).collect();
            let mut h = sequential_run(&ops);
            let k = victim.index(h.len());
            let (at, ret) = h[k].complete.clone().expect("all acked");
            h[k].complete = Some((at, mutated(&ret, pick)));
            let text = explanation(judge(&h));
            let culprit = format!("return of #{k} ");
            prop_assert!(text.contains(&culprit), "{}", text);
        }

        /// On small histories with arbitrary intervals, unknown outcomes and returns (half of
        /// them from a run of the model), the checker agrees with trying every order.
        #[test]
        fn small_histories_agree_with_brute_force(
            specs in vec(
                (op_strategy(), 0u64..30, 0u64..12, 0u64..=100, fate_strategy(),
                 prop::option::weighted(0.3, ret_strategy())),
                1..=6,
            ),
        ) {
            // Each op takes effect at a point inside its interval, in the order of the points.
            let mut by_point: Vec<usize> = (0..specs.len()).collect();
            let point = |i: usize| specs[i].1 * 100 + specs[i].2 * specs[i].3;
            by_point.sort_by_key(|&i| (point(i), i));
            let mut node = Znode(None);
            let mut h: Vec<Operation<Znode>> = specs
                .iter()
                .enumerate()
                .map(|(i, (op, invoke, length, _, _, _))| Operation {
                    client: i as u64,
                    op: op.clone(),
                    invoke: invoke * 100,
                    complete: Some((invoke * 100 + length * 100, ZnodeRet::NoNode)),
                })
                .collect();
            for i in by_point {
                let (op, _, _, _, fate, arbitrary) = &specs[i];
                let (next, ret) = node.step(op);
                if !matches!(fate, Fate::UnknownLost) {
                    node = next;
                }
                match fate {
                    Fate::Acked => {
                        let at = h[i].complete.as_ref().expect("set above").0;
                        h[i].complete = Some((at, arbitrary.clone().unwrap_or(ret)));
                    }
                    Fate::UnknownApplied | Fate::UnknownLost => h[i].complete = None,
                }
            }
            let oracle = brute_force(&Znode(None), &h, &mut vec![false; h.len()]);
            let verdict = judge(&h);
            prop_assert!(!matches!(verdict, Verdict::GaveUp { .. }), "{:?}", verdict);
            prop_assert_eq!(verdict == Verdict::Linearizable, oracle, "{:?}", verdict);
        }
    }
}
