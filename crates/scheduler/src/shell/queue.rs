//! The queue of pending pods (upstream's `PriorityQueue`): active pods by priority
//! then creation time, a backoff queue for pods that failed recently, and a parking
//! lot of unschedulable pods that cluster changes move back. Time is passed in, so
//! the logic is tested without a clock.

use crate::core::model::PodInfo;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Unschedulable pods are retried at least this often even if nothing changes
/// (upstream's `podMaxInUnschedulablePodsDuration`).
pub const MAX_UNSCHEDULABLE_DURATION: Duration = Duration::from_secs(5 * 60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    Active,
    Backoff,
    Unschedulable,
    /// Popped and being scheduled or bound.
    InFlight,
}

#[derive(Debug)]
struct Entry {
    pod: Arc<PodInfo>,
    /// Creation time (ns since the epoch): the tie-break after priority.
    created: i64,
    attempts: u32,
    backoff_until: Option<Instant>,
    place: Place,
    since: Instant,
    /// Bumped on every re-insertion so stale heap items are skipped.
    generation: u64,
    /// The move counter when the pod was popped.
    popped_at_move: u64,
}

#[derive(Debug, PartialEq, Eq)]
struct ActiveItem {
    priority: i32,
    created: i64,
    seq: u64,
    uid: String,
    generation: u64,
}

impl Ord for ActiveItem {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap pops the greatest: higher priority, then older, then first queued.
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.created.cmp(&self.created))
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for ActiveItem {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Default)]
pub struct SchedulingQueue {
    entries: HashMap<String, Entry>,
    active: BinaryHeap<ActiveItem>,
    backoff: BinaryHeap<Reverse<(Instant, u64, String)>>,
    seq: u64,
    /// Counts cluster changes that may make pods schedulable.
    moves: u64,
}

/// The backoff after `attempts` failures: 1s, 2s, 4s, 8s, then 10s.
pub fn backoff_for(attempts: u32) -> Duration {
    let shift = attempts.saturating_sub(1).min(16);
    INITIAL_BACKOFF.saturating_mul(1 << shift).min(MAX_BACKOFF)
}

impl SchedulingQueue {
    pub fn new() -> SchedulingQueue {
        SchedulingQueue::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn place(&self, uid: &str) -> Option<Place> {
        self.entries.get(uid).map(|e| e.place)
    }

    pub fn attempts(&self, uid: &str) -> u32 {
        self.entries.get(uid).map(|e| e.attempts).unwrap_or(0)
    }

    fn push_active(&mut self, uid: &str) {
        let Some(e) = self.entries.get_mut(uid) else { return };
        e.generation += 1;
        e.place = Place::Active;
        self.seq += 1;
        self.active.push(ActiveItem {
            priority: e.pod.priority,
            created: e.created,
            seq: self.seq,
            uid: uid.to_string(),
            generation: e.generation,
        });
    }

    /// Backoff if still backing off, else active.
    fn requeue(&mut self, uid: &str, now: Instant) {
        let Some(e) = self.entries.get_mut(uid) else { return };
        match e.backoff_until {
            Some(until) if until > now => {
                e.generation += 1;
                e.place = Place::Backoff;
                e.since = now;
                self.seq += 1;
                self.backoff.push(Reverse((until, e.generation, uid.to_string())));
            }
            _ => self.push_active(uid),
        }
    }

    /// A pending pod appeared or changed. A changed unschedulable pod is retried,
    /// since the change may be what it needed.
    pub fn add_or_update(&mut self, pod: Arc<PodInfo>, created: i64, now: Instant) {
        let uid = pod.uid.clone();
        match self.entries.get_mut(&uid) {
            None => {
                self.entries.insert(
                    uid.clone(),
                    Entry {
                        pod,
                        created,
                        attempts: 0,
                        backoff_until: None,
                        place: Place::Active,
                        since: now,
                        generation: 0,
                        popped_at_move: 0,
                    },
                );
                self.push_active(&uid);
            }
            Some(e) => {
                let changed = *e.pod != *pod;
                let priority_changed = e.pod.priority != pod.priority;
                e.pod = pod;
                match e.place {
                    Place::Unschedulable if changed => self.requeue(&uid, now),
                    Place::Active if priority_changed => self.push_active(&uid),
                    _ => {}
                }
            }
        }
    }

    /// The pod is gone, bound, or no longer ours.
    pub fn remove(&mut self, uid: &str) {
        self.entries.remove(uid);
    }

    /// Moves pods whose backoff ended to active, and pods parked too long out of the
    /// parking lot.
    fn flush(&mut self, now: Instant) {
        while let Some(Reverse((until, generation, uid))) = self.backoff.peek().cloned() {
            if until > now {
                break;
            }
            self.backoff.pop();
            if self.entries.get(&uid).is_some_and(|e| e.generation == generation && e.place == Place::Backoff) {
                self.push_active(&uid);
            }
        }
        let stale: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                e.place == Place::Unschedulable && now.duration_since(e.since) >= MAX_UNSCHEDULABLE_DURATION
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in stale {
            self.requeue(&uid, now);
        }
    }

    /// The next pod to schedule, now in flight.
    pub fn pop(&mut self, now: Instant) -> Option<Arc<PodInfo>> {
        self.flush(now);
        while let Some(item) = self.active.pop() {
            let moves = self.moves;
            let Some(e) = self.entries.get_mut(&item.uid) else { continue };
            if e.generation != item.generation || e.place != Place::Active {
                continue;
            }
            e.place = Place::InFlight;
            e.attempts += 1;
            e.popped_at_move = moves;
            return Some(e.pod.clone());
        }
        None
    }

    /// When the earliest backoff ends, to sleep until then.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.backoff.peek().map(|Reverse((t, _, _))| *t)
    }

    /// The in-flight pod fits nowhere: park it until the cluster changes, or back
    /// off at once if the cluster changed while it was being scheduled.
    pub fn unschedulable(&mut self, uid: &str, now: Instant) {
        let moves = self.moves;
        let Some(e) = self.entries.get_mut(uid) else { return };
        e.backoff_until = Some(now + backoff_for(e.attempts));
        if e.popped_at_move != moves {
            self.requeue(uid, now);
        } else {
            e.place = Place::Unschedulable;
            e.since = now;
        }
    }

    /// The in-flight pod hit an error (e.g. binding failed): retry after backoff.
    pub fn retry_later(&mut self, uid: &str, now: Instant) {
        let Some(e) = self.entries.get_mut(uid) else { return };
        e.backoff_until = Some(now + backoff_for(e.attempts));
        self.requeue(uid, now);
    }

    /// Something changed that may let parked pods fit: retry them (after their backoff).
    pub fn move_all(&mut self, now: Instant) {
        self.moves += 1;
        let parked: Vec<String> =
            self.entries.iter().filter(|(_, e)| e.place == Place::Unschedulable).map(|(u, _)| u.clone()).collect();
        for uid in parked {
            self.requeue(&uid, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str, priority: i32) -> Arc<PodInfo> {
        Arc::new(PodInfo { uid: uid.into(), name: uid.into(), priority, ..Default::default() })
    }

    fn names(q: &mut SchedulingQueue, now: Instant) -> Vec<String> {
        std::iter::from_fn(|| q.pop(now)).map(|p| p.uid.clone()).collect()
    }

    #[test]
    fn pops_by_priority_then_creation_time() {
        let now = Instant::now();
        let mut q = SchedulingQueue::new();
        q.add_or_update(pod("late-low", 0), 30, now);
        q.add_or_update(pod("early-low", 0), 10, now);
        q.add_or_update(pod("high", 100), 50, now);
        assert_eq!(names(&mut q, now), vec!["high", "early-low", "late-low"]);
    }

    #[test]
    fn backoff_doubles_to_ten_seconds() {
        let secs: Vec<u64> = (1..=6).map(|a| backoff_for(a).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn unschedulable_pods_wait_for_a_change_then_their_backoff() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::new();
        q.add_or_update(pod("p", 0), 0, t0);
        assert!(q.pop(t0).is_some());
        q.unschedulable("p", t0);
        assert_eq!(q.place("p"), Some(Place::Unschedulable));
        assert!(q.pop(t0 + Duration::from_secs(30)).is_none(), "nothing changed: stays parked");

        q.move_all(t0 + Duration::from_millis(500));
        assert_eq!(q.place("p"), Some(Place::Backoff), "still inside its 1s backoff");
        assert_eq!(q.next_wakeup(), Some(t0 + Duration::from_secs(1)));
        assert!(q.pop(t0 + Duration::from_millis(900)).is_none());
        assert!(q.pop(t0 + Duration::from_secs(1)).is_some());

        // Second failure: 2s backoff; a change after it has passed goes straight to active.
        let t1 = t0 + Duration::from_secs(1);
        q.unschedulable("p", t1);
        q.move_all(t1 + Duration::from_secs(3));
        assert_eq!(q.place("p"), Some(Place::Active));
        assert_eq!(q.attempts("p"), 2);
    }

    #[test]
    fn a_change_during_the_attempt_means_no_parking() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::new();
        q.add_or_update(pod("p", 0), 0, t0);
        q.pop(t0);
        q.move_all(t0);
        q.unschedulable("p", t0);
        assert_eq!(q.place("p"), Some(Place::Backoff));
    }

    #[test]
    fn updates_retry_parked_pods_and_removal_forgets() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::new();
        q.add_or_update(pod("p", 0), 0, t0);
        q.pop(t0);
        q.unschedulable("p", t0);
        q.add_or_update(pod("p", 0), 0, t0 + Duration::from_secs(5));
        assert_eq!(q.place("p"), Some(Place::Unschedulable), "an unchanged pod stays parked");
        q.add_or_update(pod("p", 7), 0, t0 + Duration::from_secs(5));
        assert_eq!(q.place("p"), Some(Place::Active));
        q.remove("p");
        assert!(q.pop(t0 + Duration::from_secs(5)).is_none());
        assert!(q.is_empty());
    }

    #[test]
    fn parked_pods_are_retried_after_five_minutes_anyway() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::new();
        q.add_or_update(pod("p", 0), 0, t0);
        q.pop(t0);
        q.unschedulable("p", t0);
        assert!(q.pop(t0 + Duration::from_secs(299)).is_none());
        assert!(q.pop(t0 + MAX_UNSCHEDULABLE_DURATION).is_some());
    }

    #[test]
    fn failed_bindings_retry_after_backoff() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::new();
        q.add_or_update(pod("p", 0), 0, t0);
        q.pop(t0);
        q.retry_later("p", t0);
        assert!(q.pop(t0).is_none());
        assert!(q.pop(t0 + INITIAL_BACKOFF).is_some());
    }

    #[test]
    fn priority_changes_reorder_active_pods() {
        let t0 = Instant::now();
        let mut q = SchedulingQueue::new();
        q.add_or_update(pod("a", 0), 0, t0);
        q.add_or_update(pod("b", 0), 1, t0);
        q.add_or_update(pod("b", 10), 1, t0);
        assert_eq!(names(&mut q, t0), vec!["b", "a"]);
    }
}
