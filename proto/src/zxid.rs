//! The transaction id: `epoch << 32 | counter`, exactly as clients see it in replies and Stat.

use std::fmt;

/// A transaction id. Ordered as clients order zxids (epoch first, then counter), so a zxid
/// from a newer leader is always greater than any of an older one.
///
/// The counter never wraps into the epoch: [`Zxid::next`] refuses at the counter limit and the
/// leader moves to the next epoch instead (ZOOKEEPER-2789 is what happens otherwise).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Zxid {
    pub epoch: u32,
    pub counter: u32,
}

impl Zxid {
    pub const ZERO: Zxid = Zxid {
        epoch: 0,
        counter: 0,
    };

    pub const fn new(epoch: u32, counter: u32) -> Self {
        Zxid { epoch, counter }
    }

    /// The zxid a new epoch starts from (no transaction has it: the first one is counter 1).
    pub const fn epoch_start(epoch: u32) -> Self {
        Zxid { epoch, counter: 0 }
    }

    /// The next zxid in this epoch, or None when the counter would pass `limit`.
    pub fn next(self, limit: u32) -> Option<Zxid> {
        (self.counter < limit).then(|| Zxid {
            epoch: self.epoch,
            counter: self.counter + 1,
        })
    }

    /// As the wire carries it.
    pub const fn as_i64(self) -> i64 {
        ((self.epoch as u64) << 32 | self.counter as u64) as i64
    }

    /// From the wire. Every i64 is some zxid (a negative one has an epoch ≥ 2^31).
    pub const fn from_i64(raw: i64) -> Self {
        let raw = raw as u64;
        Zxid {
            epoch: (raw >> 32) as u32,
            counter: raw as u32,
        }
    }
}

impl fmt::Debug for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:x}", self.as_i64())
    }
}

impl fmt::Display for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:x}", self.as_i64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_round_trips_and_orders_like_the_integer() {
        let samples = [0i64, 1, 0xffff_ffff, 1 << 32, (7 << 32) | 5, i64::MAX];
        for &a in &samples {
            assert_eq!(Zxid::from_i64(a).as_i64(), a);
            for &b in &samples {
                assert_eq!(Zxid::from_i64(a).cmp(&Zxid::from_i64(b)), a.cmp(&b));
            }
        }
    }

    #[test]
    fn next_stops_at_the_limit_instead_of_carrying_into_the_epoch() {
        let z = Zxid::new(3, 9);
        assert_eq!(z.next(10), Some(Zxid::new(3, 10)));
        assert_eq!(Zxid::new(3, 10).next(10), None);
        assert_eq!(Zxid::new(3, u32::MAX).next(u32::MAX), None);
    }
}
