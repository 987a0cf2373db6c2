//! The slow-request log: a request slower than slowRequest.thresholdMs gets one line with
//! the time it spent in each stage, so an operator can tell a slow disk (log) from a busy
//! core (queue, prep) or a slow client (reply) without a profiler. Rate-limited, because a
//! stalled disk makes every request slow at once and the log must not become the next
//! bottleneck.

use std::time::{Duration, Instant};

/// Lines allowed per window; the rest are counted and reported with the next line.
const LINES_PER_WINDOW: u32 = 10;
const WINDOW: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct SlowLog {
    window_start: Option<Instant>,
    lines: u32,
    suppressed: u64,
}

impl SlowLog {
    /// Whether a line may be written now; if not, it is counted as suppressed.
    pub fn allow(&mut self, now: Instant) -> bool {
        let fresh = self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= WINDOW);
        if fresh {
            self.window_start = Some(now);
            self.lines = 0;
        }
        if self.lines < LINES_PER_WINDOW {
            self.lines += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// Lines suppressed since the last line written.
    pub fn take_suppressed(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_lines_a_second_then_a_count() {
        let t = Instant::now();
        let mut log = SlowLog::default();
        assert_eq!((0..25).filter(|_| log.allow(t)).count(), 10);
        assert!(log.allow(t + Duration::from_millis(1001)));
        assert_eq!(log.take_suppressed(), 15);
        assert_eq!(log.take_suppressed(), 0);
    }
}
