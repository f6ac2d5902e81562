//! Events, written as core/v1 Events the way upstream's client-go recorder writes them:
//! repeats raise a count instead of adding rows, similar events combine after ten, and
//! a token bucket per event stops floods. (kube-runtime's recorder folds events that
//! differ only in their message into one series, so "Created pod: a", "...: b" would
//! read as one event; upstream's controllers do not.)

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Patch, PatchParams, PostParams};
pub use kube::runtime::events::{Event, EventType};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub fn event(type_: EventType, reason: &str, action: &str, note: String) -> Event {
    Event { type_, reason: reason.into(), note: Some(note), action: action.into(), secondary: None }
}

// ---------------------------------------------------------------------------------------
// Events, correlated as upstream's client-go recorder does.

/// Events similar in all but the message are combined after this many distinct ones.
pub const EVENT_AGGREGATE_AFTER: usize = 10;
/// ... within this window.
pub const EVENT_AGGREGATE_WINDOW: SignedDuration = SignedDuration::from_mins(10);
/// Each distinct event may burst this many times, then once per [`EVENT_SPAM_REFILL`].
pub const EVENT_SPAM_BURST: f64 = 25.0;
pub const EVENT_SPAM_REFILL: SignedDuration = SignedDuration::from_mins(5);

/// What to write for an Event.
#[derive(Debug, PartialEq)]
pub enum EventWrite {
    Create {
        name: String,
        message: String,
    },
    /// Bump the count of the Event already written for the same thing.
    Patch {
        name: String,
        message: String,
        count: i32,
    },
    /// Over the spam limit: drop it.
    Drop,
}

/// Upstream's `EventCorrelator`: identical Events raise a count instead of adding a
/// row; after [`EVENT_AGGREGATE_AFTER`] Events of one object and reason with
/// different messages, they combine into one; a token bucket per Event stops floods.
#[derive(Default)]
pub struct Correlator {
    aggregates: HashMap<String, (Timestamp, std::collections::HashSet<String>)>,
    seen: HashMap<String, (String, i32)>,
    buckets: HashMap<String, (f64, Timestamp)>,
}

impl Correlator {
    /// `object` identifies the involved object (kind, namespace, name, uid); `name` is
    /// its name, from which a new Event's name is made.
    pub fn correlate(
        &mut self,
        object: &str,
        name: &str,
        type_: &str,
        reason: &str,
        message: &str,
        now: Timestamp,
    ) -> EventWrite {
        let aggregate_key = format!("{object}\0{type_}\0{reason}");
        let entry = self.aggregates.entry(aggregate_key.clone()).or_insert_with(|| (now, Default::default()));
        if entry.0 + EVENT_AGGREGATE_WINDOW < now {
            *entry = (now, Default::default());
        }
        entry.0 = now;
        entry.1.insert(message.to_string());
        let (key, message) = if entry.1.len() < EVENT_AGGREGATE_AFTER {
            (format!("{aggregate_key}\0{message}"), message.to_string())
        } else {
            (aggregate_key, format!("(combined from similar events): {message}"))
        };
        let bucket = self.buckets.entry(key.clone()).or_insert((EVENT_SPAM_BURST, now));
        let refill = (now.as_nanosecond() - bucket.1.as_nanosecond()) as f64 / EVENT_SPAM_REFILL.as_nanos() as f64;
        bucket.0 = (bucket.0 + refill.max(0.0)).min(EVENT_SPAM_BURST);
        bucket.1 = now;
        if bucket.0 < 1.0 {
            return EventWrite::Drop;
        }
        bucket.0 -= 1.0;
        match self.seen.get_mut(&key) {
            Some((event_name, count)) => {
                *count += 1;
                EventWrite::Patch { name: event_name.clone(), message, count: *count }
            }
            None => {
                let event_name = format!("{name}.{:x}", now.as_nanosecond());
                self.seen.insert(key, (event_name.clone(), 1));
                EventWrite::Create { name: event_name, message }
            }
        }
    }
}

/// Writes core/v1 Events for one controller, as upstream's controllers do, from a
/// background task so that a sync never waits for them.
#[derive(Clone)]
pub struct EventSink {
    tx: tokio::sync::mpsc::UnboundedSender<(ObjectReference, Event, tokio::time::Instant)>,
}

impl EventSink {
    /// Starts the writer; needs a tokio runtime.
    pub fn new(client: Client, component: &'static str) -> EventSink {
        EventSink::gated(client, component, None)
    }

    /// A writer whose events wait while `busy` is (at most [`BUSY_EVENT_DELAY`]).
    pub fn gated(client: Client, component: &'static str, busy: Option<Arc<Busy>>) -> EventSink {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(ObjectReference, Event, tokio::time::Instant)>();
        tokio::spawn(async move {
            let mut correlator = Correlator::default();
            while let Some((regarding, ev, queued)) = rx.recv().await {
                if let Some(busy) = &busy {
                    busy.until_idle(queued + BUSY_EVENT_DELAY).await;
                }
                write_event(&client, component, &mut correlator, regarding, ev).await;
            }
        });
        EventSink { tx }
    }

    pub fn publish(&self, regarding: ObjectReference, ev: Event) {
        let _ = self.tx.send((regarding, ev, tokio::time::Instant::now()));
    }
}

/// How long an event may wait for [`Busy`] work to end.
pub const BUSY_EVENT_DELAY: std::time::Duration = std::time::Duration::from_secs(2);

/// Work that events should not compete with: the node agent's pod starts, whose
/// status (what owners and users wait for) goes out first. Each event is a write
/// the API server commits; a burst of pod starts on a busy node otherwise writes
/// three per container (Pulled, Created, Started) while the others still start.
/// Events wait until no such work is under way, or [`BUSY_EVENT_DELAY`] has passed
/// (upstream's kubelet sends its events from a background queue too).
#[derive(Debug, Default)]
pub struct Busy {
    count: AtomicUsize,
    idle: tokio::sync::Notify,
}

/// One piece of [`Busy`] work; dropping it ends it.
#[derive(Debug)]
pub struct BusyGuard(Arc<Busy>);

impl Busy {
    pub fn enter(self: &Arc<Self>) -> BusyGuard {
        self.count.fetch_add(1, Ordering::AcqRel);
        BusyGuard(self.clone())
    }

    /// Returns once no work is under way, or at `deadline`.
    pub async fn until_idle(&self, deadline: tokio::time::Instant) {
        loop {
            // Registered before the count is read, so that an end in between wakes it.
            let idle = self.idle.notified();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return;
            }
        }
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

async fn write_event(
    client: &Client,
    component: &str,
    correlator: &mut Correlator,
    regarding: ObjectReference,
    ev: Event,
) {
    let now = Timestamp::now();
    let ns = regarding.namespace.clone().unwrap_or_else(|| "default".into());
    let name = regarding.name.clone().unwrap_or_default();
    let object = format!(
        "{}\0{}\0{}\0{}",
        regarding.kind.as_deref().unwrap_or(""),
        ns,
        name,
        regarding.uid.as_deref().unwrap_or("")
    );
    let type_ = match ev.type_ {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    };
    let message = ev.note.clone().unwrap_or_default();
    let stamp = json!(Time(Timestamp::from_second(now.as_second()).unwrap_or(now)));
    let create = |event_name: String, message: String| {
        json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": event_name, "namespace": ns},
            "involvedObject": regarding,
            "reason": ev.reason, "message": message, "type": type_,
            "source": {"component": component},
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
            "reportingComponent": component, "reportingInstance": "",
        })
    };
    let url = kube::core::Request::new(<k8s_openapi::api::core::v1::Event as kube::Resource>::url_path(&(), Some(&ns)));
    let request = match correlator.correlate(&object, &name, type_, &ev.reason, &message, now) {
        EventWrite::Drop => return,
        EventWrite::Create { name, message } => {
            url.create(&PostParams::default(), serde_json::to_vec(&create(name, message)).unwrap_or_default())
        }
        EventWrite::Patch { name, message, count } => {
            let patch = json!({"count": count, "lastTimestamp": stamp, "message": message});
            url.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
        }
    };
    if let Err(e) = informer::write::status_only(client, request).await {
        tracing::debug!(error = %e, "event not recorded");
    }
}

/// A controller's recorder: [`EventSink`] behind the call shape of kube-runtime's
/// `Recorder`, so controllers publish an [`Event`] about an object reference.
#[derive(Clone)]
pub struct Recorder {
    sink: EventSink,
}

impl Recorder {
    pub fn new(client: Client, component: &'static str) -> Recorder {
        Recorder { sink: EventSink::new(client, component) }
    }

    /// A recorder whose events wait while `busy` is (see [`Busy`]).
    pub fn gated(client: Client, component: &'static str, busy: Arc<Busy>) -> Recorder {
        Recorder { sink: EventSink::gated(client, component, Some(busy)) }
    }

    /// Queues the event; it is written in the background, so this never fails.
    pub async fn publish(&self, ev: &Event, reference: &ObjectReference) -> Result<(), kube::Error> {
        let copy = Event {
            type_: ev.type_,
            reason: ev.reason.clone(),
            note: ev.note.clone(),
            action: ev.action.clone(),
            secondary: ev.secondary.clone(),
        };
        self.sink.publish(reference.clone(), copy);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn busy_work_holds_events_until_it_ends_or_their_time_is_up() {
        use tokio::time::{Duration, Instant};
        let busy = Arc::new(Busy::default());
        let far = Instant::now() + Duration::from_secs(60);
        // Idle: at once.
        busy.until_idle(far).await;
        assert_eq!(Instant::now() + Duration::from_secs(60), far);
        // Two starts under way: waits for the last of them to end.
        let (a, b) = (busy.enter(), busy.enter());
        let waiter = tokio::spawn({
            let busy = busy.clone();
            async move {
                busy.until_idle(far).await;
                Instant::now()
            }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(a);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiter.is_finished());
        let ended = Instant::now();
        drop(b);
        assert_eq!(waiter.await.unwrap(), ended);
        // Busy for ever: the deadline.
        let _c = busy.enter();
        let deadline = Instant::now() + BUSY_EVENT_DELAY;
        busy.until_idle(deadline).await;
        assert_eq!(Instant::now(), deadline);
    }

    #[test]
    fn events_count_repeats_combine_similar_ones_and_stop_floods() {
        let mut c = Correlator::default();
        let obj = "ReplicaSet/default/web/uid";
        let first = c.correlate(obj, "web", "Normal", "SuccessfulCreate", "Created pod: web-a", ts(100));
        let EventWrite::Create { name, message } = first else { panic!("{first:?}") };
        assert!(name.starts_with("web."));
        assert_eq!(message, "Created pod: web-a");
        // The same event again raises the count of the same Event.
        assert_eq!(
            c.correlate(obj, "web", "Normal", "SuccessfulCreate", "Created pod: web-a", ts(101)),
            EventWrite::Patch { name: name.clone(), message: "Created pod: web-a".into(), count: 2 }
        );
        // Nine distinct messages stand alone; the tenth and later combine into one Event.
        for i in 1..9 {
            let w = c.correlate(obj, "web", "Normal", "SuccessfulCreate", &format!("Created pod: web-{i}"), ts(102));
            assert!(matches!(w, EventWrite::Create { .. }), "{w:?}");
        }
        let w = c.correlate(obj, "web", "Normal", "SuccessfulCreate", "Created pod: web-9", ts(103));
        let EventWrite::Create { name: combined, message } = w else { panic!("{w:?}") };
        assert_eq!(message, "(combined from similar events): Created pod: web-9");
        let w = c.correlate(obj, "web", "Normal", "SuccessfulCreate", "Created pod: web-10", ts(104));
        assert!(matches!(w, EventWrite::Patch { ref name, count: 2, .. } if *name == combined), "{w:?}");
        // A flood of one event is cut after the burst, and flows again slowly.
        let mut c = Correlator::default();
        let writes: Vec<_> =
            (0..30).map(|_| c.correlate(obj, "web", "Warning", "FailedCreate", "quota", ts(200))).collect();
        assert_eq!(writes.iter().filter(|w| **w == EventWrite::Drop).count(), 5);
        assert!(matches!(
            c.correlate(obj, "web", "Warning", "FailedCreate", "quota", ts(500)),
            EventWrite::Patch { .. }
        ));
    }
}
