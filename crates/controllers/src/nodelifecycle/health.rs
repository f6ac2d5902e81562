//! Node health as the controller observes it, without I/O: when it last saw a node
//! give a sign of life, whether its own view is trustworthy enough to judge, what a
//! silent node's conditions become, and when a pod's eviction is due.
//!
//! Every time here is the controller's own monotonic clock at the moment it observed
//! something, never a timestamp written by the node: clocks across machines differ,
//! and a stalled API server delivers old news late (upstream's probeTimestamp).

use k8s_openapi::api::core::v1::NodeCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use std::time::{Duration, Instant};

/// The last sign of life seen from a node.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// The Lease's `renewTime` last seen.
    pub renew_time: Option<Timestamp>,
    /// The Ready condition's `lastHeartbeatTime` last seen.
    pub heartbeat: Option<Timestamp>,
    /// When the controller saw either change.
    pub at: Instant,
}

impl Probe {
    pub fn new(now: Instant) -> Probe {
        Probe { renew_time: None, heartbeat: None, at: now }
    }

    /// Records a Lease as seen `now`: a renewal (a later `renewTime`) is a sign of life.
    pub fn saw_lease(&mut self, renew_time: Option<Timestamp>, now: Instant) {
        if renew_time.is_some() && self.renew_time.is_none_or(|old| renew_time > Some(old)) {
            self.renew_time = renew_time;
            self.at = now;
        }
    }

    /// Records the node's Ready heartbeat as seen `now`: any change is a sign of life
    /// (the agent posted status), as upstream compares lastHeartbeatTime.
    pub fn saw_heartbeat(&mut self, heartbeat: Option<Timestamp>, now: Instant) {
        if heartbeat.is_some() && heartbeat != self.heartbeat {
            self.heartbeat = heartbeat;
            self.at = now;
        }
    }

    /// Whether nothing was seen for longer than `grace`.
    pub fn is_stale(&self, now: Instant, grace: Duration) -> bool {
        now.saturating_duration_since(self.at) > grace
    }
}

/// Whether the controller can trust what it sees. It writes a canary Lease every
/// canary period and watches it come back: when the echo is late, or its own passes
/// ran late (the process or the API server stalled), the absence of renewals proves
/// nothing about the nodes. Then it does not judge, and when it sees again it starts
/// every node's clock afresh.
#[derive(Debug, Clone, Default)]
pub struct Sight {
    last_echo: Option<Instant>,
    last_pass: Option<Instant>,
    blind: bool,
}

/// What a monitor pass may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The view is current: judge the nodes.
    Clear,
    /// The view was lost and is back: restart every node's clock, then judge.
    Regained,
    /// The view is stale: judge nothing.
    Blind,
}

impl Sight {
    /// Records the canary coming back through the watch.
    pub fn echo(&mut self, now: Instant) {
        self.last_echo = Some(now);
    }

    /// Called at the start of every monitor pass; `limit` is how old the last echo and
    /// the previous pass may be.
    pub fn pass(&mut self, now: Instant, limit: Duration) -> View {
        let late_pass = self.last_pass.is_some_and(|p| now.saturating_duration_since(p) > limit);
        self.last_pass = Some(now);
        let fresh_echo = self.last_echo.is_some_and(|e| now.saturating_duration_since(e) <= limit);
        if late_pass || !fresh_echo {
            self.blind = true;
            return View::Blind;
        }
        if std::mem::take(&mut self.blind) { View::Regained } else { View::Clear }
    }
}

const SILENCED: &[&str] = &["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// The conditions of a node nobody heard from within the grace period: Ready and the
/// pressure conditions become Unknown ("Kubelet stopped posting node status.", or
/// "never posted" when missing); NetworkUnavailable is the network's business and
/// stays. `None` when the Ready condition is Unknown already (upstream writes only
/// when Ready changes).
pub fn silenced(conditions: &[NodeCondition], created: Option<&Time>, now: Timestamp) -> Option<Vec<NodeCondition>> {
    let before = conditions.iter().rev().find(|c| c.type_ == "Ready").cloned();
    let mut out = conditions.to_vec();
    for type_ in SILENCED {
        match out.iter_mut().rev().find(|c| c.type_ == *type_) {
            Some(c) => {
                if c.status != "Unknown" {
                    c.status = "Unknown".into();
                    c.reason = Some("NodeStatusUnknown".into());
                    c.message = Some("Kubelet stopped posting node status.".into());
                    c.last_transition_time = Some(Time(now));
                }
            }
            None => out.push(NodeCondition {
                type_: type_.to_string(),
                status: "Unknown".into(),
                reason: Some("NodeStatusNeverUpdated".into()),
                message: Some("Kubelet never posted node status.".into()),
                last_heartbeat_time: created.cloned(),
                last_transition_time: Some(Time(now)),
            }),
        }
    }
    let after = out.iter().rev().find(|c| c.type_ == "Ready").cloned();
    (after != before).then_some(out)
}

/// Upstream's "master disruption mode": when no node at all is Ready the likeliest
/// cause is the control plane's own network, not every node dying at once, so no
/// node gets a `NoExecute` taint and nothing is evicted.
pub fn full_disruption<'a>(ready: impl IntoIterator<Item = Option<&'a str>>) -> bool {
    let mut any = false;
    for r in ready {
        if r == Some("True") {
            return false;
        }
        any = true;
    }
    any
}

/// The grace period a node gets: upstream allows the startup grace to nodes that never
/// posted Ready; so do we to nodes never seen with a Lease (an agent registers its
/// Node before it creates the Lease, and a Node object alone is no agent that died).
pub fn grace_for(ready: Option<&str>, leased: bool, grace: Duration, startup: Duration) -> Duration {
    if ready.is_none() || !leased { startup } else { grace }
}

/// Whether the controller's own latest judgement of a node, made with a clear view
/// and outside a full disruption, is that it is down. Its `not-ready` and
/// `unreachable` taints may be stale for a moment (set before a restart or a stall):
/// they evict nothing until it agrees again. `verdict` is the node's Ready status at
/// the last clear pass, `None` before the first.
pub fn judged_down(clear: bool, disrupted: bool, verdict: Option<Option<&str>>) -> bool {
    clear && !disrupted && verdict.is_some_and(|r| r != Some("True"))
}

/// A pod's pending eviction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheduled {
    /// When the taint manager first decided to evict it.
    pub since: Instant,
    /// When it is due.
    pub due: Instant,
}

/// The eviction a pod should have after the taint manager looks at it again. An
/// eviction already pending keeps the time it started, so a later look (a pod update,
/// a resync) does not push it back; only its toleration can change its due time.
pub fn reschedule(existing: Option<Scheduled>, plan: super::taints::Plan, now: Instant) -> Option<Scheduled> {
    use super::taints::Plan;
    match plan {
        Plan::Stay => None,
        Plan::EvictNow => Some(Scheduled { since: existing.map_or(now, |e| e.since), due: now }),
        Plan::EvictAfter(d) => {
            let since = existing.map_or(now, |e| e.since);
            Some(Scheduled { since, due: since + d })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::taints::Plan;
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn staleness_is_judged_by_when_renewals_were_seen_not_by_their_timestamps() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(8);
        let mut p = Probe::new(t0);
        p.saw_lease(Some(ts(100)), t0);
        // The lease says it was renewed long ago (a skewed node clock): what counts
        // is that the controller saw it change just now.
        p.saw_lease(Some(ts(101)), t0 + Duration::from_secs(5));
        assert!(!p.is_stale(t0 + Duration::from_secs(12), grace));
        assert!(p.is_stale(t0 + Duration::from_secs(14), grace));
        // The same renewTime seen again is no sign of life; an older one neither.
        p.saw_lease(Some(ts(101)), t0 + Duration::from_secs(13));
        p.saw_lease(Some(ts(50)), t0 + Duration::from_secs(13));
        assert_eq!(p.at, t0 + Duration::from_secs(5));
        // A new Ready heartbeat from the agent is one.
        p.saw_heartbeat(Some(ts(7)), t0 + Duration::from_secs(13));
        assert!(!p.is_stale(t0 + Duration::from_secs(14), grace));
        p.saw_heartbeat(Some(ts(7)), t0 + Duration::from_secs(20));
        assert_eq!(p.at, t0 + Duration::from_secs(13));
    }

    #[test]
    fn a_late_echo_or_a_late_pass_blinds_and_sight_comes_back_once() {
        let t0 = Instant::now();
        let limit = Duration::from_secs(4);
        let mut s = Sight::default();
        // No echo yet: nothing is known.
        assert_eq!(s.pass(t0, limit), View::Blind);
        s.echo(t0 + Duration::from_secs(1));
        assert_eq!(s.pass(t0 + Duration::from_secs(1), limit), View::Regained);
        assert_eq!(s.pass(t0 + Duration::from_secs(2), limit), View::Clear);
        // The canary stops coming back (a stalled store): blind until it does.
        assert_eq!(s.pass(t0 + Duration::from_secs(6), limit), View::Blind);
        assert_eq!(s.pass(t0 + Duration::from_secs(7), limit), View::Blind);
        s.echo(t0 + Duration::from_secs(8));
        assert_eq!(s.pass(t0 + Duration::from_secs(8), limit), View::Regained);
        // The controller itself stalled (no pass for 10 s) although echoes queued up.
        s.echo(t0 + Duration::from_secs(18));
        assert_eq!(s.pass(t0 + Duration::from_secs(18), limit), View::Blind);
        s.echo(t0 + Duration::from_secs(19));
        assert_eq!(s.pass(t0 + Duration::from_secs(19), limit), View::Regained);
    }

    fn cond(type_: &str, status: &str) -> NodeCondition {
        NodeCondition { type_: type_.into(), status: status.into(), ..Default::default() }
    }

    #[test]
    fn a_silent_nodes_conditions_become_unknown() {
        let now = ts(1000);
        let conds = vec![cond("Ready", "True"), cond("MemoryPressure", "False"), cond("NetworkUnavailable", "False")];
        let out = silenced(&conds, Some(&Time(ts(1))), now).unwrap();
        let get = |t: &str| out.iter().find(|c| c.type_ == t).unwrap().clone();
        let ready = get("Ready");
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(ready.message.as_deref(), Some("Kubelet stopped posting node status."));
        assert_eq!(ready.last_transition_time, Some(Time(now)));
        assert_eq!(get("MemoryPressure").status, "Unknown");
        assert_eq!(get("NetworkUnavailable").status, "False");
        let never = get("DiskPressure");
        assert_eq!(never.reason.as_deref(), Some("NodeStatusNeverUpdated"));
        assert_eq!(never.last_heartbeat_time, Some(Time(ts(1))));
        // Already Unknown: nothing to write, and the transition time is kept.
        assert_eq!(silenced(&out, None, ts(2000)), None);
    }

    #[test]
    fn disruption_mode_needs_every_node_not_ready() {
        assert!(!full_disruption([]));
        assert!(full_disruption([Some("Unknown"), Some("False"), None]));
        assert!(!full_disruption([Some("Unknown"), Some("True")]));
    }

    #[test]
    fn nodes_never_leased_get_the_startup_grace() {
        let (g, st) = (Duration::from_secs(8), Duration::from_secs(60));
        assert_eq!(grace_for(Some("True"), true, g, st), g);
        assert_eq!(grace_for(Some("True"), false, g, st), st);
        assert_eq!(grace_for(None, true, g, st), st);
    }

    #[test]
    fn own_taints_evict_only_on_a_fresh_verdict() {
        assert!(judged_down(true, false, Some(Some("Unknown"))));
        assert!(judged_down(true, false, Some(Some("False"))));
        assert!(judged_down(true, false, Some(None)));
        assert!(!judged_down(true, false, Some(Some("True"))), "the node is back");
        assert!(!judged_down(true, false, None), "no pass yet (a restart)");
        assert!(!judged_down(false, false, Some(Some("Unknown"))), "blind");
        assert!(!judged_down(true, true, Some(Some("Unknown"))), "full disruption");
    }

    #[test]
    fn a_pending_eviction_keeps_its_start() {
        let t0 = Instant::now();
        let two = Duration::from_secs(2);
        let first = reschedule(None, Plan::EvictAfter(two), t0).unwrap();
        assert_eq!(first.due, t0 + two);
        let again = reschedule(Some(first), Plan::EvictAfter(two), t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(again, first);
        let shorter = reschedule(Some(first), Plan::EvictAfter(Duration::from_secs(1)), t0 + two).unwrap();
        assert_eq!(shorter.due, t0 + Duration::from_secs(1));
        let now = reschedule(Some(first), Plan::EvictNow, t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(now.due, t0 + Duration::from_secs(1));
        assert_eq!(reschedule(Some(first), Plan::Stay, t0), None);
    }
}
