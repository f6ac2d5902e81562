//! Exponential delay before replacing failed Pods (upstream's `backoff_utils`): the
//! n-th consecutive failure since the last success waits `base * 2^(n-1)`, capped,
//! counted from when the last failed Pod finished.

use jiff::Timestamp;
use std::time::Duration;

/// Consecutive failures since the last success, as remembered between syncs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackoffRecord {
    pub failures_after_last_success: u32,
    pub last_failure: Option<Timestamp>,
}

impl BackoffRecord {
    /// The record after newly finished Pods, given as their finish times.
    pub fn next(self, mut succeeded: Vec<Timestamp>, mut failed: Vec<Timestamp>) -> BackoffRecord {
        succeeded.sort();
        failed.sort();
        let Some(&last_success) = succeeded.last() else {
            let Some(&last) = failed.last() else { return self };
            let n = u32::try_from(failed.len()).unwrap_or(u32::MAX);
            return BackoffRecord {
                failures_after_last_success: self.failures_after_last_success.saturating_add(n),
                last_failure: Some(last),
            };
        };
        // A success resets the count; only failures after it still count.
        let after: Vec<Timestamp> = failed.into_iter().filter(|t| *t > last_success).collect();
        BackoffRecord {
            failures_after_last_success: u32::try_from(after.len()).unwrap_or(u32::MAX),
            last_failure: after.last().copied(),
        }
    }

    /// How long to wait, from `now`, before creating replacement Pods.
    pub fn remaining(&self, now: Timestamp, base: Duration, max: Duration) -> Duration {
        let (n, Some(last)) = (self.failures_after_last_success, self.last_failure) else {
            return Duration::ZERO;
        };
        if n == 0 {
            return Duration::ZERO;
        }
        let mut delay = base;
        for _ in 1..n {
            delay = delay.saturating_mul(2);
            if delay >= max {
                delay = max;
                break;
            }
        }
        let elapsed = Duration::try_from(now.duration_since(last)).unwrap_or(Duration::ZERO);
        delay.saturating_sub(elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    const BASE: Duration = Duration::from_secs(10);
    const MAX: Duration = Duration::from_secs(600);

    #[test]
    fn doubles_per_failure_and_caps() {
        let r = BackoffRecord::default().next(vec![], vec![t(100)]);
        assert_eq!(r, BackoffRecord { failures_after_last_success: 1, last_failure: Some(t(100)) });
        assert_eq!(r.remaining(t(104), BASE, MAX), Duration::from_secs(6));
        let r = r.next(vec![], vec![t(120), t(110)]);
        assert_eq!(r.failures_after_last_success, 3);
        assert_eq!(r.remaining(t(120), BASE, MAX), Duration::from_secs(40));
        let many = BackoffRecord { failures_after_last_success: 30, last_failure: Some(t(0)) };
        assert_eq!(many.remaining(t(0), BASE, MAX), MAX);
        assert_eq!(many.remaining(t(10_000), BASE, MAX), Duration::ZERO);
    }

    #[test]
    fn a_success_resets_to_the_failures_after_it() {
        let r = BackoffRecord { failures_after_last_success: 4, last_failure: Some(t(50)) };
        let r = r.next(vec![t(100)], vec![t(90), t(110)]);
        assert_eq!(r, BackoffRecord { failures_after_last_success: 1, last_failure: Some(t(110)) });
        let r = r.next(vec![t(200)], vec![]);
        assert_eq!(r, BackoffRecord::default());
        assert_eq!(r.remaining(t(200), BASE, MAX), Duration::ZERO);
        assert_eq!(r.next(vec![], vec![]), r);
    }
}
