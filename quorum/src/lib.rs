//! ZAB as sans-IO state machines: fast leader election, discovery, synchronization and
//! broadcast, for leaders, followers and observers (DESIGN.md §6, shared/reference/zab-notes.md).
//!
//! One [`Peer`] is one server's replication core. The driver (the server's threads, or the
//! simulator) feeds it [`Input`]s: peer messages, timer ticks with the current time, disk
//! completions, connection losses, client `sync` requests. It answers with [`Action`]s, in the
//! order they must be carried out: messages to send, disk requests (append, truncate, write an
//! epoch, install a snapshot), transactions to apply because they are committed, role changes.
//!
//! Owns: who leads which epoch, what is durable here and what is committed, which learner gets
//! which part of the history, when a `sync` may complete.
//! Never: reads a clock (time comes in with `Tick`), touches a socket or a file, spawns a
//! thread, or draws unseeded randomness; decides what a transaction means (its payload is
//! opaque bytes the pipeline made).
//!
//! The rules that keep data safe, each enforced in one place (the bugs Apache ZooKeeper shipped
//! are named in zab-notes.md §2):
//! - every ACK means fsynced here: acks are sent only from disk completions (`learner.rs`);
//! - ACKEPOCH only after acceptedEpoch is durable; NEWLEADER-ACK only after the synced history
//!   and then currentEpoch are durable, and no proposal ACK before it: one disk queue, in order
//!   (`peer.rs` `disk`), and `Following::acks_enabled`;
//! - votes and FOLLOWERINFO advertise only the durable tail, and a peer starts an election only
//!   once its old role's disk requests have all completed (`election.rs`);
//! - a server never obeys a leader of an older epoch (`learner.rs` `leader_info`);
//! - the leader commits strictly in zxid order, counting only learners that acked NEWLEADER
//!   (`leader.rs` `try_commit`), and a DIFF is always contiguous (`log.rs` `push`).

mod election;
mod leader;
mod learner;
mod log;
mod peer;
pub mod plant;

use std::collections::BTreeSet;
use std::sync::Arc;

pub use log::Log;
pub use peer::{LearnerStatus, Peer, Status};
pub use plant::Plant;
pub use rzk_proto::Zxid;

/// A server id (`server.N` in zoo.cfg, the myid file).
pub type Sid = u64;

/// One transaction of the replicated history: its zxid and the pipeline's encoding of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    pub zxid: Zxid,
    pub data: Arc<[u8]>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({}B)", self.zxid, self.data.len())
    }
}

/// What one server knows of the ensemble and of time.
#[derive(Debug, Clone)]
pub struct Config {
    pub me: Sid,
    pub voters: BTreeSet<Sid>,
    pub observers: BTreeSet<Sid>,
    /// ZooKeeper's tickTime: the leader pings learners twice per tick.
    pub tick_ms: u64,
    /// initLimit, in ticks: how long discovery and synchronization may take.
    pub init_limit_ticks: u64,
    /// syncLimit, in ticks: how long a synced peer may stay silent.
    pub sync_limit_ticks: u64,
    /// How long a quorum of agreeing votes must stand before the election ends (FLE's
    /// finalizeWait).
    pub finalize_wait_ms: u64,
    /// How often a LOOKING peer re-sends its vote.
    pub notify_interval_ms: u64,
    /// Committed transactions kept in memory beyond the last applied one, so a learner that is
    /// behind by at most this many gets a DIFF instead of a SNAP (ZooKeeper's commitLogCount).
    pub diff_window_txns: usize,
    /// The largest zxid counter the leader assigns before it moves the ensemble to the next
    /// epoch itself (u32::MAX - 1 in a server; small in the simulator).
    pub counter_limit: u32,
    /// Entries per DIFF message during synchronization.
    pub diff_chunk_txns: usize,
    /// A deliberately wrong core, for proving the simulator's checkers. Only the simulator
    /// sets it (`rzk sim --plant`); a server must build its `Config` with `Plant::None`.
    pub plant: Plant,
}

impl Config {
    /// The smallest number of voters that is a majority.
    pub fn quorum_size(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    pub fn is_voter(&self, sid: Sid) -> bool {
        self.voters.contains(&sid)
    }

    pub fn peers(&self) -> impl Iterator<Item = Sid> + '_ {
        self.voters
            .iter()
            .chain(self.observers.iter())
            .copied()
            .filter(move |&s| s != self.me)
    }
}

/// What a server has on disk when it starts: the epochs, and the log after its snapshot.
#[derive(Debug, Clone, Default)]
pub struct Persisted {
    pub accepted_epoch: u32,
    pub current_epoch: u32,
    /// The zxid the newest snapshot is at: the pipeline's state starts there.
    pub snapshot_zxid: Zxid,
    /// Every durable log entry after `snapshot_zxid`, in order.
    pub log: Vec<Entry>,
}

/// A vote of fast leader election, ordered as ZooKeeper's totalOrderPredicate orders them:
/// the candidate's currentEpoch, then its durable last zxid, then its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Vote {
    pub epoch: u32,
    pub zxid: Zxid,
    pub leader: Sid,
}

/// ZooKeeper's ServerState, as notifications carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    Looking,
    Following,
    Leading,
    Observing,
}

/// Messages between rzk servers. Election messages may travel on another connection than the
/// rest; everything else relies on one connection being FIFO until it breaks, and a break is
/// reported as `Input::Disconnected` before anything sent on a new connection arrives.
#[derive(Debug, Clone)]
pub enum Message {
    /// Fast leader election: the sender's vote, its election round and state.
    Notification {
        vote: Vote,
        round: u64,
        state: PeerState,
    },
    /// Learner → leader: the start of discovery.
    FollowerInfo {
        accepted_epoch: u32,
        last_zxid: Zxid,
        observer: bool,
    },
    /// Leader → learner: the epoch it proposes to lead.
    LeaderInfo { epoch: u32 },
    /// Learner → leader, after `epoch` is durable as acceptedEpoch. `fresh` is true when the
    /// learner accepted the epoch just now (it was below): only fresh acks establish an epoch,
    /// since each server moves to a given epoch once, two leaders cannot both gather a quorum.
    /// `snap`: the learner found its state differing from its leader's and must be sent
    /// a snapshot, whatever its log says.
    AckEpoch {
        epoch: u32,
        fresh: bool,
        current_epoch: u32,
        last_zxid: Zxid,
        snap: bool,
    },
    /// Drop every entry after `after` (it was never committed).
    Trunc { after: Zxid },
    /// The leader's committed state at `zxid`; `data` is the pipeline's snapshot encoding.
    Snap { zxid: Zxid, data: Arc<[u8]> },
    /// History the learner lacks, in order.
    Diff { entries: Vec<Entry> },
    /// The learner now holds the leader's history up to `last`; entries up to `committed` are
    /// committed.
    NewLeader {
        epoch: u32,
        last: Zxid,
        committed: Zxid,
    },
    /// Learner → leader: the synced history and then currentEpoch = `epoch` are durable.
    AckNewLeader { epoch: u32 },
    /// Leader → learner: serve clients; entries up to `committed` are committed.
    UpToDate { committed: Zxid },
    /// One batch of new transactions: one message per batch per follower.
    Proposal { entries: Vec<Entry> },
    /// Follower → leader: every entry up to `zxid` is durable here.
    Ack { zxid: Zxid },
    /// Everything up to `zxid` is committed.
    Commit { zxid: Zxid },
    /// Leader → observer: committed entries, up to and including the last one.
    Inform { entries: Vec<Entry> },
    /// Leader → learner heartbeat; `round` numbers it for `sync`'s quorum round.
    Ping { round: u64 },
    /// Learner → leader. `touches` are the sessions its clients were heard from since the last
    /// reply, so the leader (which alone expires sessions) keeps them alive.
    PingReply { round: u64, touches: Vec<i64> },
    /// Learner → leader: a client asked for `sync`; `id` is the learner's.
    SyncRequest { id: u64 },
    /// Leader → learner: that sync is complete once `zxid` is applied.
    SyncReply { id: u64, zxid: Zxid },
    /// Leader → followers: move to `epoch` without an election (the counter is exhausted).
    /// Carries acceptedEpoch and currentEpoch at once: every entry of the old epoch precedes it
    /// on the connection.
    NewEpoch { epoch: u32 },
    /// Follower → leader: `epoch` is durable as acceptedEpoch and currentEpoch.
    AckNewEpoch { epoch: u32, fresh: bool },
}

#[derive(Debug)]
pub enum Input {
    Message {
        from: Sid,
        message: Message,
    },
    /// Time passed; `now_ms` is a monotonic clock.
    Tick {
        now_ms: u64,
    },
    /// The oldest outstanding disk request is complete (and durable).
    DiskDone,
    /// The connection to `peer` broke; anything sent on it may be lost.
    Disconnected {
        peer: Sid,
    },
    /// A client asked this server for `sync`.
    Sync {
        id: u64,
    },
    /// Sessions this server's clients were heard from (a learner relays them to the leader).
    Touches {
        sessions: Vec<i64>,
    },
    /// The pipeline found this learner's state differing from its leader's (a digest
    /// mismatch): its log cannot be trusted to resume from, so its next sync must be a
    /// snapshot. The driver also breaks the link to the leader, which starts that sync.
    Diverged,
}

/// Requests to the disk. They are carried out one after another, in order, and each one is
/// reported with `Input::DiskDone` once durable (file and directory synced).
#[derive(Debug, Clone)]
pub enum DiskRequest {
    /// Append the entries as one log write and one fsync.
    Append(Vec<Entry>),
    /// Drop every logged entry after `after`.
    Truncate {
        after: Zxid,
    },
    WriteAcceptedEpoch(u32),
    WriteCurrentEpoch(u32),
    /// Replace the state and the log with this snapshot of the leader's committed state.
    InstallSnapshot {
        zxid: Zxid,
        data: Arc<[u8]>,
    },
}

/// What the core tells the pipeline about its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// No leader: stop serving writes, drop what the pipeline proposed but was not applied.
    /// `reason` says why the last role ended, for the log.
    Looking { reason: &'static str },
    /// Leading `epoch`: the pipeline may propose from `next_zxid` on.
    Leading { epoch: u32, next_zxid: Zxid },
    /// Following (or observing) `leader` in `epoch`, synced: serve reads, forward writes.
    Following {
        leader: Sid,
        epoch: u32,
        observer: bool,
    },
}

#[derive(Debug, Clone)]
pub enum Action {
    Send {
        to: Sid,
        message: Message,
    },
    /// Send a `Message::Snap` of the pipeline's state, which is exactly at `zxid` (every
    /// `Apply` before this action has been carried out, none after).
    SendSnapshot {
        to: Sid,
        zxid: Zxid,
    },
    Disk(DiskRequest),
    /// These entries are committed: apply them, in order. The pipeline's state then reflects
    /// every committed entry up to the last one.
    Apply(Vec<Entry>),
    /// The pipeline's state is replaced by this snapshot (a learner installing a SNAP).
    Reset {
        zxid: Zxid,
        data: Arc<[u8]>,
    },
    Role(Role),
    /// A client's `sync` is complete once entries up to `zxid` are applied (they are, when
    /// this action is reached); `ok` is false when this server could not confirm it (no leader).
    SyncDone {
        id: u64,
        ok: bool,
    },
    /// Close the connection to `peer`: it is dead or confused; it will resync.
    Disconnect {
        peer: Sid,
    },
    /// The leader's clients of other servers were heard from.
    Touched {
        sessions: Vec<i64>,
    },
}

#[cfg(test)]
mod tests;
