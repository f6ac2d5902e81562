//! A work queue shaped like client-go's rate-limited workqueue: a key waits at most
//! once, is never handed to two workers at once (re-added while processing, it comes
//! back after `done`), and failed keys come back after a per-key exponential delay.
//!
//! The garbage collector keys its two queues by object uid; kube-runtime's
//! `Controller` queues one resource type, whereas these hold keys of every kind.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// First retry delay; doubles per failure up to [`MAX_DELAY`] (client-go starts at 5 ms).
const BASE_DELAY: Duration = Duration::from_millis(5);
/// Upstream caps at 1000 s; a minute keeps an unresolvable owner cheap without
/// leaving a transient failure unrepaired for long.
const MAX_DELAY: Duration = Duration::from_secs(60);

pub struct WorkQueue<K> {
    inner: Mutex<Inner<K>>,
    wake: Notify,
}

struct Inner<K> {
    ready: VecDeque<K>,
    /// Keys waiting in `ready` or to be re-queued when their processing ends.
    dirty: HashSet<K>,
    processing: HashSet<K>,
    /// Delayed adds, earliest first; `seq` keeps equal deadlines in insertion order.
    delayed: BinaryHeap<Reverse<(Instant, u64, K)>>,
    seq: u64,
    failures: HashMap<K, u32>,
}

impl<K: Clone + Eq + Hash + Ord> Default for WorkQueue<K> {
    fn default() -> Self {
        WorkQueue {
            inner: Mutex::new(Inner {
                ready: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                delayed: BinaryHeap::new(),
                seq: 0,
                failures: HashMap::new(),
            }),
            wake: Notify::new(),
        }
    }
}

impl<K: Clone + Eq + Hash + Ord> Inner<K> {
    fn add(&mut self, key: K) -> bool {
        if !self.dirty.insert(key.clone()) {
            return false;
        }
        if self.processing.contains(&key) {
            return false;
        }
        self.ready.push_back(key);
        true
    }

    fn promote_due(&mut self, now: Instant) -> bool {
        let mut added = false;
        while let Some(Reverse((at, _, _))) = self.delayed.peek() {
            if *at > now {
                break;
            }
            if let Some(Reverse((_, _, key))) = self.delayed.pop() {
                added |= self.add(key);
            }
        }
        added
    }
}

impl<K: Clone + Eq + Hash + Ord> WorkQueue<K> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K>> {
        // A panic elsewhere cannot leave the queue half-updated: every method finishes
        // its edits before anything can fail, so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `key` unless it is already waiting.
    pub fn add(&self, key: K) {
        if self.lock().add(key) {
            self.wake.notify_one();
        }
    }

    /// Queues `key` once `delay` has passed.
    pub fn add_after(&self, key: K, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        let mut inner = self.lock();
        inner.seq += 1;
        let seq = inner.seq;
        inner.delayed.push(Reverse((Instant::now() + delay, seq, key)));
        drop(inner);
        // A waiting worker must recompute its sleep for the new, maybe earlier, deadline.
        self.wake.notify_one();
    }

    /// Queues `key` after its next backoff delay.
    pub fn add_rate_limited(&self, key: K) {
        let delay = {
            let mut inner = self.lock();
            let n = inner.failures.entry(key.clone()).or_insert(0);
            let delay = backoff(*n);
            *n = n.saturating_add(1);
            delay
        };
        self.add_after(key, delay);
    }

    /// Clears the failure count of `key`.
    pub fn forget(&self, key: &K) {
        self.lock().failures.remove(key);
    }

    /// Waits for the next key and marks it as being processed.
    pub async fn get(&self) -> K {
        loop {
            let next_deadline = {
                let mut inner = self.lock();
                inner.promote_due(Instant::now());
                if let Some(key) = inner.ready.pop_front() {
                    inner.dirty.remove(&key);
                    inner.processing.insert(key.clone());
                    let more = !inner.ready.is_empty() || !inner.delayed.is_empty();
                    drop(inner);
                    if more {
                        // Pass the baton: another waiting worker drains the rest of a
                        // burst, or watches the next deadline while this one is busy.
                        self.wake.notify_one();
                    }
                    return key;
                }
                inner.delayed.peek().map(|Reverse((at, _, _))| *at)
            };
            match next_deadline {
                Some(at) => {
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => self.wake.notified().await,
            }
        }
    }

    /// Ends processing of `key`; if it was added meanwhile, it is queued again.
    pub fn done(&self, key: &K) {
        let mut inner = self.lock();
        inner.processing.remove(key);
        if inner.dirty.contains(key) {
            inner.ready.push_back(key.clone());
            drop(inner);
            self.wake.notify_one();
        }
    }

    /// How many keys wait (ready or delayed); for tests and logs.
    pub fn len(&self) -> usize {
        let inner = self.lock();
        inner.ready.len() + inner.delayed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn backoff(failures: u32) -> Duration {
    BASE_DELAY
        .checked_mul(1u32.checked_shl(failures.min(31)).unwrap_or(u32::MAX))
        .map_or(MAX_DELAY, |d| d.min(MAX_DELAY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiting_key_is_queued_once() {
        let q = WorkQueue::default();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        assert_eq!(q.get().await, "a");
        assert_eq!(q.get().await, "b");
        assert_eq!(q.len(), 0);
    }

    #[tokio::test]
    async fn a_key_added_while_processing_returns_after_done() {
        let q = WorkQueue::default();
        q.add("a");
        let a = q.get().await;
        q.add("a");
        assert_eq!(q.len(), 0, "not handed out twice at once");
        q.done(&a);
        assert_eq!(q.len(), 1);
        assert_eq!(q.get().await, "a");
        q.done(&"a");
        assert_eq!(q.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_exponentially_and_forget_resets() {
        let q = WorkQueue::default();
        let start = Instant::now();
        q.add_rate_limited("a");
        assert_eq!(q.get().await, "a");
        q.done(&"a");
        assert_eq!(start.elapsed(), Duration::from_millis(5));
        q.add_rate_limited("a");
        assert_eq!(q.get().await, "a");
        q.done(&"a");
        assert_eq!(start.elapsed(), Duration::from_millis(15));
        q.forget(&"a");
        q.add_rate_limited("a");
        assert_eq!(q.get().await, "a");
        assert_eq!(start.elapsed(), Duration::from_millis(20));
    }

    #[tokio::test(start_paused = true)]
    async fn a_sleeping_worker_wakes_for_an_earlier_deadline() {
        let q = std::sync::Arc::new(WorkQueue::default());
        q.add_after("late", Duration::from_secs(10));
        let worker = {
            let q = q.clone();
            tokio::spawn(async move { q.get().await })
        };
        tokio::task::yield_now().await;
        q.add_after("soon", Duration::from_secs(1));
        let start = Instant::now();
        assert_eq!(worker.await.unwrap(), "soon");
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_is_kept_while_the_worker_that_watched_it_is_busy() {
        let q = std::sync::Arc::new(WorkQueue::default());
        let idle = {
            let q = q.clone();
            tokio::spawn(async move { q.get().await })
        };
        tokio::task::yield_now().await;
        q.add_after("later", Duration::from_secs(1));
        q.add("now");
        // This worker takes "now" and stays busy; the idle one must wake for "later".
        let start = Instant::now();
        let first = q.get().await;
        let second = idle.await.unwrap();
        let mut got = [first, second];
        got.sort();
        assert_eq!(got, ["later", "now"]);
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[test]
    fn backoff_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(5));
        assert_eq!(backoff(3), Duration::from_millis(40));
        assert_eq!(backoff(40), MAX_DELAY);
    }
}
