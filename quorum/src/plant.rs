//! Deliberately wrong cores, to prove that the simulator's checkers can fail.
//!
//! Each plant breaks exactly one rule of lib.rs's list, in the place that enforces it. The
//! simulator switches one on with `rzk sim --plant NAME` and a test asserts that it is caught
//! within a stated number of seeds. A server has no flag or config key that sets one; the
//! production ensemble must build its `Config` with `Plant::None` (and assert it).

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Plant {
    #[default]
    None,
    /// A follower acks a proposal when it receives it, before its append is durable.
    AckBeforeFsync,
    /// A learner ignores TRUNC and keeps a tail the quorum never committed.
    SkipTrunc,
    /// A learner obeys a leader whose epoch is older than its acceptedEpoch.
    AcceptOldEpoch,
    /// The leader counts each ACK for its own batch only, and commits a batch once that batch
    /// has a quorum even while an earlier one is outstanding.
    CommitOutOfOrder,
}

pub const ALL: [Plant; 4] = [
    Plant::AckBeforeFsync,
    Plant::SkipTrunc,
    Plant::AcceptOldEpoch,
    Plant::CommitOutOfOrder,
];

impl Plant {
    pub fn name(self) -> &'static str {
        match self {
            Plant::None => "none",
            Plant::AckBeforeFsync => "ack-before-fsync",
            Plant::SkipTrunc => "skip-trunc",
            Plant::AcceptOldEpoch => "accept-old-epoch",
            Plant::CommitOutOfOrder => "commit-out-of-order",
        }
    }
}

impl fmt::Display for Plant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Plant {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        std::iter::once(Plant::None)
            .chain(ALL)
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = ALL.iter().map(|p| p.name()).collect();
                format!("unknown plant {s:?}; one of: {}", names.join(", "))
            })
    }
}
