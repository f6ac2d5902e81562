//! Restart and image pull back-off, as the kubelet's `flowcontrol.Backoff` does it:
//! the first retry after a failure is immediate, the next waits 10 s counted from
//! the failure, doubling up to 5 minutes; an entry untouched for twice the maximum
//! (a container that ran for 10 minutes) starts over.

use std::time::{Duration, Instant};

pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    delay: Duration,
    last_update: Instant,
}

/// One back-off entry (one container, or one image).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backoff {
    entry: Option<Entry>,
}

impl Backoff {
    /// How long a retry must still wait at `now`, for a failure at `since`
    /// (`IsInBackOffSince`): `None` when it may go.
    pub fn remaining(&self, since: Instant, now: Instant) -> Option<Duration> {
        let e = self.entry?;
        if now.saturating_duration_since(e.last_update) > MAX * 2 {
            return None;
        }
        let waited = now.saturating_duration_since(since);
        (waited < e.delay).then(|| e.delay - waited)
    }

    /// Records a retry for a failure at `at` (`Next`): the first sets the initial
    /// delay, later ones double it, and an expired entry starts over.
    pub fn next(&mut self, at: Instant) {
        self.entry = Some(match self.entry {
            Some(e) if at.saturating_duration_since(e.last_update) <= MAX * 2 => {
                Entry { delay: (e.delay * 2).min(MAX), last_update: at }
            }
            _ => Entry { delay: INITIAL, last_update: at },
        });
    }

    /// The delay the current entry imposes (for messages like "back-off 20s").
    pub fn delay(&self) -> Duration {
        self.entry.map(|e| e.delay).unwrap_or(Duration::ZERO)
    }

    pub fn reset(&mut self) {
        self.entry = None;
    }
}

/// `5m0s`, `20s`, `1m20s`: Go's `time.Duration` string for whole seconds, as the
/// kubelet's back-off messages print it.
pub fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn first_retry_is_immediate_then_doubling_to_five_minutes() {
        let t0 = Instant::now();
        let mut b = Backoff::default();
        // The first failure: no entry, the restart goes at once and records 10 s.
        assert_eq!(b.remaining(t0, t0), None);
        b.next(t0);
        assert_eq!(b.delay(), INITIAL);
        // It fails again at t0+1: wait 10 s from that failure.
        let f1 = t0 + S;
        assert_eq!(b.remaining(f1, f1), Some(10 * S));
        assert_eq!(b.remaining(f1, f1 + 4 * S), Some(6 * S));
        assert_eq!(b.remaining(f1, f1 + 10 * S), None);
        b.next(f1 + 10 * S);
        assert_eq!(b.delay(), 20 * S);
        let mut at = f1 + 10 * S;
        for _ in 0..10 {
            at += S;
            let wait = b.remaining(at, at).expect("waits");
            at += wait;
            b.next(at);
        }
        assert_eq!(b.delay(), MAX);
    }

    #[test]
    fn ten_minutes_of_quiet_start_over() {
        let t0 = Instant::now();
        let mut b = Backoff::default();
        b.next(t0);
        b.next(t0 + S);
        assert_eq!(b.delay(), 20 * S);
        let late = t0 + MAX * 3;
        assert_eq!(b.remaining(late, late), None, "expired entries do not hold a retry");
        b.next(late);
        assert_eq!(b.delay(), INITIAL);
        b.reset();
        assert_eq!(b, Backoff::default());
    }

    #[test]
    fn durations_print_as_go_does() {
        assert_eq!(go_duration(10 * S), "10s");
        assert_eq!(go_duration(80 * S), "1m20s");
        assert_eq!(go_duration(MAX), "5m0s");
        assert_eq!(go_duration(3700 * S), "1h1m40s");
    }
}
