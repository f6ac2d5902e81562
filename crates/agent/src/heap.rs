//! Giving the heap back after pods go.
//!
//! glibc's malloc keeps what a burst of pod starts freed (decoded pods, specs,
//! request and response buffers) in its arenas, one per worker thread, and only
//! returns the top of the main heap by itself; an agent that ran fifty pods keeps
//! their memory resident after they are gone. `malloc_trim(0)` releases the free
//! pages of every arena. It runs once, shortly after a worker ends, however many end
//! together: it walks every arena under its lock, which is not worth doing per pod.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long after a worker ends the trim runs (the rest of a burst ends meanwhile).
const DELAY: Duration = Duration::from_secs(1);

static PENDING: AtomicBool = AtomicBool::new(false);

/// Schedules one trim of the heap, unless one is already scheduled. Needs a tokio
/// runtime.
pub fn trim_soon() {
    if PENDING.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::spawn(async {
        tokio::time::sleep(DELAY).await;
        PENDING.store(false, Ordering::Release);
        let _ = tokio::task::spawn_blocking(trim).await;
    });
}

/// Returns the free pages of every malloc arena to the system.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    glibc::trim();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
mod glibc {
    // `malloc_trim` takes no pointers and locks each arena itself; it is safe to call
    // from any thread at any time.
    unsafe extern "C" {
        safe fn malloc_trim(pad: usize) -> i32;
    }

    pub fn trim() {
        malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_endings_trims_once() {
        trim_soon();
        assert!(PENDING.load(Ordering::Acquire));
        // Further endings within the delay join the scheduled trim.
        trim_soon();
        tokio::time::sleep(DELAY + Duration::from_millis(10)).await;
        tokio::task::yield_now().await;
        assert!(!PENDING.load(Ordering::Acquire), "the trim ran and the next one may be scheduled");
        // Trimming a heap with nothing to give back is harmless.
        trim();
    }
}
