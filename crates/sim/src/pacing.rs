//! Spreading periodic writes evenly: N nodes that each renew every `period` make
//! N / period writes per second at a steady rate, not N writes at once every period.

use std::time::Duration;

/// Hands out whose turn it is, in a round over `n` nodes every `period`.
#[derive(Debug)]
pub struct Pacer {
    n: u64,
    period: Duration,
    /// Turns handed out so far, over all rounds.
    handed: u64,
}

impl Pacer {
    pub fn new(n: usize, period: Duration) -> Pacer {
        Pacer { n: n as u64, period, handed: 0 }
    }

    /// How many turns should have come by `elapsed` since the start.
    fn due(&self, elapsed: Duration) -> u64 {
        let period = self.period.as_nanos().max(1);
        (elapsed.as_nanos() * u128::from(self.n) / period).min(u128::from(u64::MAX)) as u64
    }

    /// The nodes whose turn has come by `elapsed`. After a stall (a slow tick, a
    /// suspended process) it catches up at most one round, so nobody goes twice.
    pub fn turns(&mut self, elapsed: Duration) -> Vec<usize> {
        if self.n == 0 {
            return Vec::new();
        }
        let due = self.due(elapsed);
        self.handed = self.handed.max(due.saturating_sub(self.n));
        let turns = (self.handed..due.max(self.handed)).map(|t| (t % self.n) as usize).collect();
        self.handed = self.handed.max(due);
        turns
    }

    /// How often to look for new turns: about one node per tick, but no finer than
    /// a few milliseconds (timers are not that precise and each tick costs a wakeup).
    pub fn tick(&self) -> Duration {
        let per_node = self.period / (self.n.max(1) as u32).max(1);
        per_node.clamp(Duration::from_millis(5), Duration::from_millis(250))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_spread_evenly_over_the_period() {
        let mut p = Pacer::new(4, Duration::from_secs(2));
        assert_eq!(p.turns(Duration::ZERO), Vec::<usize>::new());
        assert_eq!(p.turns(Duration::from_millis(499)), Vec::<usize>::new());
        assert_eq!(p.turns(Duration::from_millis(500)), [0]);
        assert_eq!(p.turns(Duration::from_millis(1600)), [1, 2]);
        assert_eq!(p.turns(Duration::from_millis(2000)), [3]);
        assert_eq!(p.turns(Duration::from_millis(2500)), [0], "the next round starts over");
    }

    #[test]
    fn a_stall_catches_up_one_round_at_most() {
        let mut p = Pacer::new(3, Duration::from_secs(3));
        assert_eq!(p.turns(Duration::from_secs(1)), [0]);
        let late = p.turns(Duration::from_secs(30));
        assert_eq!(late.len(), 3, "{late:?}");
        let mut sorted = late.clone();
        sorted.sort();
        assert_eq!(sorted, [0, 1, 2]);
        assert_eq!(p.turns(Duration::from_secs(31)), [0]);
    }

    #[test]
    fn rates_match_n_over_the_period() {
        let mut p = Pacer::new(5000, Duration::from_secs(2));
        let mut total = 0;
        let mut t = Duration::ZERO;
        while t < Duration::from_secs(10) {
            t += p.tick();
            total += p.turns(t).len();
        }
        assert_eq!(total, 25_000, "2,500 writes per second for 10 s");
        assert_eq!(p.tick(), Duration::from_millis(5));
        assert_eq!(Pacer::new(3, Duration::from_secs(2)).tick(), Duration::from_millis(250));
        assert!(Pacer::new(0, Duration::from_secs(2)).turns(Duration::from_secs(5)).is_empty());
    }
}
