//! What the Job controller is waiting to see in its Pod cache after its own writes
//! (upstream's `ControllerExpectations` and `uidTrackingExpectations`). Until the
//! Pods it created or deleted show up, the cache undercounts or overcounts them, so
//! the controller does not create or delete more; until a removed tracking finalizer
//! shows up, the Pod must not be counted a second time.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Upstream forgets expectations after five minutes, so a lost watch event delays a
/// Job at most that long.
const EXPIRY: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct Counts {
    adds: i64,
    dels: i64,
    set_at: Instant,
}

/// Expectations per Job, keyed by the Job's UID.
#[derive(Debug, Default)]
pub struct Expectations {
    counts: Mutex<HashMap<String, Counts>>,
    finalizers: Mutex<HashMap<String, HashSet<String>>>,
}

impl Expectations {
    /// Before creating `adds` or deleting `dels` Pods for a Job. This replaces what
    /// was expected before, which is only asked once that was satisfied (and a
    /// deletion seen twice, as terminating and as gone, leaves a count below zero).
    pub fn expect(&self, job: &str, adds: usize, dels: usize) {
        let adds = i64::try_from(adds).unwrap_or(i64::MAX);
        let dels = i64::try_from(dels).unwrap_or(i64::MAX);
        let mut m = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        m.insert(job.to_string(), Counts { adds, dels, set_at: Instant::now() });
    }

    /// A Pod of the Job appeared in the cache (or its creation failed).
    pub fn creation_observed(&self, job: &str) {
        if let Some(c) = self.counts.lock().unwrap_or_else(PoisonError::into_inner).get_mut(job) {
            c.adds -= 1;
        }
    }

    /// A Pod of the Job started terminating or went (or its deletion failed).
    pub fn deletion_observed(&self, job: &str) {
        if let Some(c) = self.counts.lock().unwrap_or_else(PoisonError::into_inner).get_mut(job) {
            c.dels -= 1;
        }
    }

    /// Whether the cache has caught up with every create and delete, or waited long
    /// enough that it is presumed lost.
    pub fn satisfied(&self, job: &str) -> bool {
        self.satisfied_at(job, Instant::now())
    }

    fn satisfied_at(&self, job: &str, now: Instant) -> bool {
        match self.counts.lock().unwrap_or_else(PoisonError::into_inner).get(job) {
            None => true,
            Some(c) => (c.adds <= 0 && c.dels <= 0) || now.duration_since(c.set_at) > EXPIRY,
        }
    }

    /// Before removing the tracking finalizer from these Pods.
    pub fn expect_finalizers_removed(&self, job: &str, pod_uids: impl IntoIterator<Item = String>) {
        let mut m = self.finalizers.lock().unwrap_or_else(PoisonError::into_inner);
        m.entry(job.to_string()).or_default().extend(pod_uids);
    }

    /// The cache shows the Pod without the finalizer, or gone (or removal failed).
    pub fn finalizer_removal_observed(&self, job: &str, pod_uid: &str) {
        let mut m = self.finalizers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(set) = m.get_mut(job) {
            set.remove(pod_uid);
            if set.is_empty() {
                m.remove(job);
            }
        }
    }

    /// Pods whose finalizer this controller removed and the cache still shows.
    pub fn finalizers_pending(&self, job: &str) -> HashSet<String> {
        self.finalizers.lock().unwrap_or_else(PoisonError::into_inner).get(job).cloned().unwrap_or_default()
    }

    /// The Job is gone: drop everything about it.
    pub fn forget(&self, job: &str) {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner).remove(job);
        self.finalizers.lock().unwrap_or_else(PoisonError::into_inner).remove(job);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsatisfied_until_every_create_and_delete_is_seen() {
        let e = Expectations::default();
        assert!(e.satisfied("j"));
        e.expect("j", 2, 1);
        assert!(!e.satisfied("j"));
        e.creation_observed("j");
        e.creation_observed("j");
        assert!(!e.satisfied("j"));
        e.deletion_observed("j");
        assert!(e.satisfied("j"));
        e.expect("j", 1, 0);
        assert!(!e.satisfied("j"));
        assert!(e.satisfied_at("j", Instant::now() + EXPIRY + Duration::from_secs(1)), "expired");
        e.forget("j");
        assert!(e.satisfied("j"));
    }

    #[test]
    fn finalizer_removals_are_pending_until_observed() {
        let e = Expectations::default();
        e.expect_finalizers_removed("j", ["a".to_string(), "b".to_string()]);
        assert_eq!(e.finalizers_pending("j").len(), 2);
        e.finalizer_removal_observed("j", "a");
        assert_eq!(e.finalizers_pending("j"), HashSet::from(["b".to_string()]));
        e.finalizer_removal_observed("j", "b");
        assert!(e.finalizers_pending("j").is_empty());
    }
}
