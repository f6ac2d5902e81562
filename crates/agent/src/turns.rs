//! Turns for container starts: at most one `runc run` per CPU at a time, taken in
//! arrival order.
//!
//! A burst of pods needs the CPUs for about as long however their starts are run.
//! With every `runc run` at once they share the CPUs to the end and all finish near
//! it; one per CPU, they finish one after another, the first ones much sooner, and
//! with less switching between them the burst takes less CPU. Measured with `cargo
//! bench -p agent --bench pod_start` (BENCHMARKS.md, two CPUs): 10 pods at once, p50
//! 114–117 → 80–88 ms, the slowest (p99) 124–130 → 148–159 ms; 50 pods, p50 556–662 →
//! 351–379 ms, p99 unchanged (634–716); CPU per 10-pod round 222–236 → 212–224 ms.

use std::future::Future;
use std::time::Duration;
use tokio::sync::Semaphore;

/// How long a start keeps its turn at most: one that takes longer (a slow runc, a
/// stuck one) lets the next one go.
pub const HOLD: Duration = Duration::from_millis(500);

pub struct Turns {
    turns: Semaphore,
    hold: Duration,
}

impl Turns {
    /// `n` turns (at least one), each held for at most `hold`.
    pub fn new(n: usize, hold: Duration) -> Turns {
        Turns { turns: Semaphore::new(n.max(1)), hold }
    }

    /// One turn per CPU.
    pub fn per_cpu() -> Turns {
        Turns::new(std::thread::available_parallelism().map_or(2, |n| n.get()), HOLD)
    }

    /// Runs `start` in its turn: waits for one (first come, first served), and gives
    /// it back when `start` is done or has had it for [`HOLD`].
    pub async fn run<F: Future>(&self, start: F) -> F::Output {
        // The semaphore is never closed, so there is always a turn to wait for.
        let turn = self.turns.acquire().await;
        let mut start = std::pin::pin!(start);
        match tokio::time::timeout(self.hold, &mut start).await {
            Ok(out) => out,
            Err(_) => {
                drop(turn);
                start.await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::time::{Instant, sleep};

    #[tokio::test(start_paused = true)]
    async fn starts_wait_their_turn_in_order_and_a_slow_one_lets_the_next_go() {
        let turns = Arc::new(Turns::new(1, Duration::from_millis(500)));
        let began = Instant::now();
        let log = Arc::new(Mutex::new(Vec::new()));
        let start = |name: &'static str, takes: u64| {
            let (turns, log) = (turns.clone(), log.clone());
            tokio::spawn(async move {
                turns
                    .run(async {
                        log.lock().unwrap().push((name, began.elapsed().as_millis()));
                        sleep(Duration::from_millis(takes)).await;
                    })
                    .await
            })
        };
        let a = start("a", 100);
        tokio::task::yield_now().await;
        let b = start("b", 2_000);
        tokio::task::yield_now().await;
        let c = start("c", 10);
        tokio::task::yield_now().await;
        let d = start("d", 10);
        for t in [a, b, c, d] {
            t.await.unwrap();
        }
        // b waits for a; c for b's turn to run out (it goes on after); d for c.
        assert_eq!(*log.lock().unwrap(), [("a", 0), ("b", 100), ("c", 600), ("d", 610)]);
    }

    #[tokio::test]
    async fn no_turns_asked_is_one() {
        let turns = Turns::new(0, HOLD);
        assert_eq!(turns.run(async { 7 }).await, 7);
    }
}
