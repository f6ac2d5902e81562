//! Pods as the DaemonSet and StatefulSet controllers see them: readiness and
//! availability (upstream's `pkg/api/v1/pod`), controller references and claiming
//! (`ControllerRefManager`), expectations for writes the caches have not shown yet
//! (`ControllerExpectations`), and the trimming that keeps the pod caches small.

use futures_util::future::join_all;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, Patch, PatchParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::events::{Event, EventType, Recorder};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Upstream's `SlowStartInitialBatchSize`: the first batch of creates is one pod, then
/// batches double while they succeed, so a doomed template fails once, not N times.
pub const SLOW_START_INITIAL_BATCH: usize = 1;

/// Upstream's `ExpectationsTimeout`: a write never observed stops blocking after this.
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

pub fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Failed or Succeeded: the pod will not run again.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Failed" | "Succeeded")
}

/// When the pod's Ready condition is True, the time it became so (a zero time when the
/// condition carries none).
fn ready_since(pod: &Pod) -> Option<Timestamp> {
    let c = pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")?;
    (c.status == "True").then(|| c.last_transition_time.as_ref().map_or(Timestamp::UNIX_EPOCH, |t| t.0))
}

pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Ready for at least `min_ready_seconds` (upstream's `IsPodAvailable`).
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(since) => {
            since != Timestamp::UNIX_EPOCH && since + SignedDuration::from_secs(i64::from(min_ready_seconds)) < now
        }
    }
}

/// How long until a ready pod becomes available; `None` when it is not ready or
/// already available.
pub fn available_in(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> Option<Duration> {
    let since = ready_since(pod)?;
    if min_ready_seconds <= 0 || is_available(pod, min_ready_seconds, now) {
        return None;
    }
    let at = since + SignedDuration::from_secs(i64::from(min_ready_seconds));
    let wait = now.duration_until(at);
    Some(Duration::from_millis(wait.as_millis().max(0) as u64 + 10))
}

/// The owner reference marked `controller: true`, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references.as_ref()?.iter().find(|r| r.controller == Some(true))
}

/// A controller reference to an owner (`metav1.NewControllerRef`).
pub fn controller_ref(api_version: &str, kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// A label selector as kube's matcher; `None` when it cannot be parsed, which then
/// selects nothing (upstream treats a bad selector as an error and syncs nothing).
pub fn selector(ls: &LabelSelector) -> Option<Selector> {
    Selector::try_from(ls.clone()).ok()
}

pub fn selects(sel: &Selector, meta: &ObjectMeta) -> bool {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    sel.matches(meta.labels.as_ref().unwrap_or(&EMPTY))
}

/// What an owner does with an object its selector may cover (upstream's `ClaimObject`).
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Claim {
    /// Controlled by the owner and still selected.
    Mine,
    /// An orphan the owner selects: adopt it by adding a controller reference.
    Adopt,
    /// Controlled by the owner but no longer selected: release it.
    Release,
    /// Someone else's, or nothing to do with the owner.
    NotMine,
}

/// Decides the claim; `selected` is whether the owner's selector (and any extra
/// membership test) covers the object.
pub fn claim(obj: &ObjectMeta, owner: &ObjectMeta, selected: bool) -> Claim {
    let owner_deleting = owner.deletion_timestamp.is_some();
    match controller_of(obj) {
        Some(r) if Some(&r.uid) != owner.uid.as_ref() => Claim::NotMine,
        Some(_) if selected => Claim::Mine,
        // While the owner is being deleted its children are left for the garbage collector.
        Some(_) if owner_deleting => Claim::NotMine,
        Some(_) => Claim::Release,
        None if owner_deleting || !selected || obj.deletion_timestamp.is_some() => Claim::NotMine,
        None if obj.namespace != owner.namespace => Claim::NotMine,
        None => Claim::Adopt,
    }
}

/// Adds the controller reference to an orphan, guarded by its uid (a strategic merge
/// patch keyed on the reference's uid, as upstream sends).
pub async fn adopt<K>(api: &Api<K>, obj: &ObjectMeta, owner_ref: &OwnerReference) -> Result<K, kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({"metadata": {"ownerReferences": [owner_ref], "uid": obj.uid}});
    api.patch(obj.name.as_deref().unwrap_or_default(), &PatchParams::default(), &Patch::Strategic(&patch)).await
}

/// Removes the owner's reference from an object it no longer selects.
pub async fn release<K>(api: &Api<K>, obj: &ObjectMeta, owner_uid: &str) -> Result<(), kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({"metadata": {"ownerReferences": [{"$patch": "delete", "uid": owner_uid}], "uid": obj.uid}});
    match api.patch(obj.name.as_deref().unwrap_or_default(), &PatchParams::default(), &Patch::Strategic(&patch)).await {
        Ok(_) => Ok(()),
        // Gone, or no longer ours: nothing to release.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 422 => Ok(()),
        Err(e) => Err(e),
    }
}

/// A pod from an owner's template (upstream's `GetPodFromTemplate`): the template's
/// labels, annotations, finalizers and spec, a `generateName` of `<owner>-`, and the
/// controller reference.
pub fn pod_from_template(template: &PodTemplateSpec, owner_name: &str, owner_ref: OwnerReference) -> Pod {
    let tm = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{owner_name}-")),
            labels: tm.labels,
            annotations: tm.annotations,
            finalizers: tm.finalizers,
            owner_references: Some(vec![owner_ref]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// Drops what the controllers never read from cached pods (managed fields, container
/// specs and statuses, annotations), so a cache of thousands of pods stays small.
/// Cached pods are therefore never written back whole; writes are patches.
pub fn slim_pod(pod: &mut Pod) {
    pod.metadata.managed_fields = None;
    pod.metadata.annotations = None;
    if let Some(spec) = pod.spec.as_mut() {
        spec.containers = Vec::new();
        spec.init_containers = None;
        spec.ephemeral_containers = None;
        spec.tolerations = None;
        spec.resources = None;
    }
    if let Some(status) = pod.status.as_mut() {
        status.container_statuses = None;
        status.init_container_statuses = None;
        status.ephemeral_container_statuses = None;
        status.message = None;
        status.host_ips = None;
        status.pod_ips = None;
        status.resize = None;
        status.resource_claim_statuses = None;
        if let Some(c) = status.conditions.as_mut() {
            c.retain(|c| c.type_ == "Ready");
            for c in c.iter_mut() {
                c.message = None;
                c.reason = None;
                c.last_probe_time = None;
            }
        }
    }
}

/// A reference to an object an Event is also about (its `related` object).
pub fn reference(kind: &str, api_version: &str, namespace: Option<&str>, name: &str) -> ObjectReference {
    ObjectReference {
        kind: Some(kind.to_string()),
        api_version: Some(api_version.to_string()),
        namespace: namespace.map(str::to_string),
        name: Some(name.to_string()),
        ..Default::default()
    }
}

/// Records an Event about `regarding`. The recorder folds repeats of one (type,
/// reason, regarding, related) into a series whatever their message, so an Event
/// about one of many pods names that pod as `related`: "Created pod: a" and
/// "Created pod: b" stay two Events, as upstream shows them.
pub async fn record(
    recorder: &Recorder,
    regarding: &ObjectReference,
    related: Option<ObjectReference>,
    warning: bool,
    reason: &str,
    message: &str,
) {
    let ev = Event {
        type_: if warning { EventType::Warning } else { EventType::Normal },
        reason: reason.to_string(),
        note: Some(message.to_string()),
        action: reason.to_string(),
        secondary: related,
    };
    if let Err(e) = recorder.publish(&ev, regarding).await {
        tracing::debug!(error = %e, reason, "cannot record event");
    }
}

/// Writes an owner made and its caches have not shown yet. Until they show, or
/// [`EXPECTATIONS_TIMEOUT`] passes, the owner does not act on its (stale) view: that is
/// what keeps a DaemonSet from creating a second pod for a node.
#[derive(Default)]
pub struct Expectations {
    pending: Mutex<HashMap<String, Pending>>,
}

struct Pending {
    /// Names of created pods that must appear.
    creates: HashSet<String>,
    /// (name, uid) of deleted pods that must vanish or show a deletion timestamp.
    deletes: HashSet<(String, String)>,
    since: Instant,
}

/// How the cache currently shows a pod, for [`Expectations::satisfied`].
pub enum Seen {
    Absent,
    Present { uid: String, terminating: bool },
}

impl Expectations {
    /// Records writes for `key`, adding to any still pending.
    pub fn expect(&self, key: &str, creates: Vec<String>, deletes: Vec<(String, String)>) {
        if creates.is_empty() && deletes.is_empty() {
            return;
        }
        let mut all = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let p = all.entry(key.to_string()).or_insert_with(|| Pending {
            creates: HashSet::new(),
            deletes: HashSet::new(),
            since: Instant::now(),
        });
        p.creates.extend(creates);
        p.deletes.extend(deletes);
        p.since = Instant::now();
    }

    /// Whether every pending write for `key` shows in the cache (`seen` looks a pod up
    /// by name); forgets what has shown.
    pub fn satisfied(&self, key: &str, seen: impl Fn(&str) -> Seen) -> bool {
        let mut all = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some(p) = all.get_mut(key) else { return true };
        p.creates.retain(|name| matches!(seen(name), Seen::Absent));
        p.deletes.retain(|(name, uid)| match seen(name) {
            Seen::Absent => false,
            Seen::Present { uid: u, terminating } => &u == uid && !terminating,
        });
        if (p.creates.is_empty() && p.deletes.is_empty()) || p.since.elapsed() > EXPECTATIONS_TIMEOUT {
            all.remove(key);
            return true;
        }
        false
    }

    pub fn forget(&self, key: &str) {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

/// Whether a reflector cache has finished its first list. Acting on one that has not
/// would, for instance, create a second daemon pod for a node.
pub fn synced<K>(store: &kube::runtime::reflector::Store<K>) -> bool
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    use futures_util::FutureExt;
    store.wait_until_ready().now_or_never().is_some_and(|r| r.is_ok())
}

/// Logs what a controller's run stream reports: its reconcile failures are logged by
/// the error policies, but a watch that keeps failing (its cache then never syncs)
/// shows only here.
pub fn log_run_result<K, E1, E2>(
    controller: &'static str,
    r: Result<
        (kube::runtime::reflector::ObjectRef<K>, kube::runtime::controller::Action),
        kube::runtime::controller::Error<E1, E2>,
    >,
) where
    K: kube::Resource,
    E1: std::error::Error + 'static,
    E2: std::error::Error + 'static,
{
    use kube::runtime::controller::Error as E;
    match r {
        Ok(_) | Err(E::ReconcilerFailed(..)) | Err(E::ObjectNotFound(_)) => {}
        Err(e) => tracing::warn!(controller, error = %e, "controller stream error"),
    }
}

/// Per-key retry delays after failed syncs, doubling from 200 ms to 5 minutes and reset
/// by a success, so a sync that keeps failing (a rejected pod template, say) backs off
/// as upstream's rate-limited work queue does instead of retrying every second.
#[derive(Default)]
pub struct Retries {
    failures: Mutex<HashMap<String, u32>>,
}

impl Retries {
    const FIRST: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(300);

    /// The delay before retrying `key` after one more failure.
    pub fn failed(&self, key: &str) -> Duration {
        let mut all = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = all.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        Self::FIRST.saturating_mul(1u32 << (*n - 1).min(16)).min(Self::MAX)
    }

    pub fn succeeded(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

/// Runs `op` over `items` in batches of 1, 2, 4, … and stops after the first batch with
/// a failure (upstream's `slowStartBatch`). Returns each attempted item's result, in
/// order; items after the failing batch are not attempted.
pub async fn slow_start<T, R, E, F, Fut>(items: Vec<T>, op: F) -> Vec<Result<R, E>>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = Result<R, E>>,
{
    let mut out = Vec::with_capacity(items.len());
    let mut rest = items.into_iter();
    let mut batch = SLOW_START_INITIAL_BATCH;
    loop {
        let chunk: Vec<T> = rest.by_ref().take(batch).collect();
        if chunk.is_empty() {
            return out;
        }
        let results = join_all(chunk.into_iter().map(&op)).await;
        let failed = results.iter().any(Result::is_err);
        out.extend(results);
        if failed {
            return out;
        }
        batch *= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn pod_ready_at(ready: Option<i64>) -> Pod {
        Pod {
            status: Some(PodStatus {
                phase: Some("Running".into()),
                conditions: ready.map(|secs| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(Timestamp::from_second(secs).unwrap())),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let now = Timestamp::from_second(1000).unwrap();
        assert!(!is_ready(&pod_ready_at(None)));
        assert!(!is_available(&pod_ready_at(None), 0, now));
        assert!(is_available(&pod_ready_at(Some(999)), 0, now));
        assert!(!is_available(&pod_ready_at(Some(995)), 5, now), "exactly min ready is not yet available");
        assert!(is_available(&pod_ready_at(Some(994)), 5, now));
        let wait = available_in(&pod_ready_at(Some(998)), 5, now).unwrap();
        assert!(wait >= Duration::from_secs(3) && wait < Duration::from_secs(4), "{wait:?}");
        assert_eq!(available_in(&pod_ready_at(Some(900)), 5, now), None);
    }

    fn meta(uid: &str, owner: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some(uid.into()),
            namespace: Some("ns".into()),
            uid: Some(uid.into()),
            owner_references: owner
                .map(|o| vec![OwnerReference { uid: o.into(), controller: Some(true), ..Default::default() }]),
            ..Default::default()
        }
    }

    #[test]
    fn claims_follow_controller_refs_and_selectors() {
        let owner = meta("owner", None);
        assert_eq!(claim(&meta("p", Some("owner")), &owner, true), Claim::Mine);
        assert_eq!(claim(&meta("p", Some("owner")), &owner, false), Claim::Release);
        assert_eq!(claim(&meta("p", Some("other")), &owner, true), Claim::NotMine);
        assert_eq!(claim(&meta("p", None), &owner, true), Claim::Adopt);
        assert_eq!(claim(&meta("p", None), &owner, false), Claim::NotMine);
        let mut deleting = owner.clone();
        deleting.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        assert_eq!(claim(&meta("p", None), &deleting, true), Claim::NotMine);
        assert_eq!(claim(&meta("p", Some("owner")), &deleting, false), Claim::NotMine);
        let mut elsewhere = meta("p", None);
        elsewhere.namespace = Some("other".into());
        assert_eq!(claim(&elsewhere, &owner, true), Claim::NotMine);
    }

    #[test]
    fn selectors_match_labels() {
        let ls = LabelSelector {
            match_labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
            ..Default::default()
        };
        let sel = selector(&ls).unwrap();
        let mut m = meta("p", None);
        assert!(!selects(&sel, &m));
        m.labels = Some(BTreeMap::from([("app".to_string(), "web".to_string())]));
        assert!(selects(&sel, &m));
    }

    #[test]
    fn expectations_block_until_the_cache_shows_the_writes() {
        let e = Expectations::default();
        assert!(e.satisfied("k", |_| Seen::Absent));
        e.expect("k", vec!["a".into()], vec![("b".into(), "ub".into())]);
        // Nothing shown yet.
        let stale = |n: &str| match n {
            "b" => Seen::Present { uid: "ub".into(), terminating: false },
            _ => Seen::Absent,
        };
        assert!(!e.satisfied("k", stale));
        // The create shows; the delete shows as terminating.
        let fresh = |n: &str| match n {
            "a" => Seen::Present { uid: "ua".into(), terminating: false },
            _ => Seen::Present { uid: "ub".into(), terminating: true },
        };
        assert!(e.satisfied("k", fresh));
        assert!(e.satisfied("k", stale), "satisfied expectations are forgotten");
        // A recreated pod with the same name but another uid counts as the old one gone.
        e.expect("k", vec![], vec![("b".into(), "ub".into())]);
        assert!(e.satisfied("k", |_| Seen::Present { uid: "new".into(), terminating: false }));
        e.expect("k", vec!["x".into()], vec![]);
        e.forget("k");
        assert!(e.satisfied("k", |_| Seen::Absent));
    }

    #[test]
    fn retries_back_off_and_reset() {
        let r = Retries::default();
        assert_eq!(r.failed("k"), Duration::from_millis(200));
        assert_eq!(r.failed("k"), Duration::from_millis(400));
        assert_eq!(r.failed("other"), Duration::from_millis(200));
        for _ in 0..40 {
            r.failed("k");
        }
        assert_eq!(r.failed("k"), Duration::from_secs(300));
        r.succeeded("k");
        assert_eq!(r.failed("k"), Duration::from_millis(200));
    }

    #[tokio::test]
    async fn slow_start_doubles_batches_and_stops_at_a_failure() {
        let calls = std::sync::Mutex::new(Vec::new());
        let results = slow_start((0..10).collect(), |i: i32| {
            calls.lock().unwrap().push(i);
            async move { if i == 4 { Err(i) } else { Ok(i) } }
        })
        .await;
        // Batches 1, 2, 4: the third (3..=6) holds the failure, so 7.. are never tried.
        assert_eq!(results.len(), 7);
        assert_eq!(calls.lock().unwrap().len(), 7);
        assert!(results[4].is_err());
        let all_ok = slow_start((0..5).collect(), |i: i32| async move { Ok::<_, ()>(i) }).await;
        assert_eq!(all_ok.len(), 5);
    }

    #[test]
    fn slim_pods_keep_what_the_controllers_read() {
        let mut p = pod_ready_at(Some(5));
        p.metadata = meta("p", Some("o"));
        p.metadata.labels = Some(BTreeMap::from([("a".to_string(), "b".to_string())]));
        p.metadata.annotations = Some(BTreeMap::from([("big".to_string(), "x".repeat(1000))]));
        p.spec = Some(k8s_openapi::api::core::v1::PodSpec {
            node_name: Some("n1".into()),
            containers: vec![Default::default()],
            ..Default::default()
        });
        slim_pod(&mut p);
        assert!(p.metadata.annotations.is_none());
        assert!(p.spec.as_ref().unwrap().containers.is_empty());
        assert_eq!(p.spec.as_ref().unwrap().node_name.as_deref(), Some("n1"));
        assert!(is_ready(&p));
        assert!(controller_of(&p.metadata).is_some());
    }
}
