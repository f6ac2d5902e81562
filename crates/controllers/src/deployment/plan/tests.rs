use super::*;
use serde_json::json;

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap()
}

fn template(image: &str) -> serde_json::Value {
    json!({"metadata": {"labels": {"app": "web"}},
           "spec": {"containers": [{"name": "nginx", "image": image}]}})
}

fn deployment(replicas: i32, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 1,
                     "annotations": {"kubernetes.io/change-cause": "first"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": template(image),
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                 "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600}
    }))
    .unwrap()
}

/// A cluster in memory: what the API server and the ReplicaSet controller would do
/// with a plan's writes.
struct World {
    d: Deployment,
    rses: Vec<ReplicaSet>,
    clock: i64,
    next_uid: u32,
    events: Vec<String>,
}

impl World {
    fn new(d: Deployment) -> World {
        World { d, rses: Vec::new(), clock: 1000, next_uid: 0, events: Vec::new() }
    }

    fn plan(&self) -> Plan {
        plan(&self.d, &self.rses, &[], ts(self.clock)).unwrap()
    }

    fn apply(&mut self, actions: &[Action]) {
        for a in actions {
            match a {
                Action::CreateReplicaSet(rs) => {
                    let mut rs = (**rs).clone();
                    self.next_uid += 1;
                    rs.metadata.uid = Some(format!("rs-{}", self.next_uid));
                    rs.metadata.creation_timestamp = Some(Time(ts(self.clock)));
                    rs.metadata.generation = Some(1);
                    assert!(self.rses.iter().all(|r| r.metadata.name != rs.metadata.name), "duplicate name");
                    self.rses.push(rs);
                }
                Action::UpdateReplicaSet(rs) => {
                    let i = self.rses.iter().position(|r| r.metadata.name == rs.metadata.name).unwrap();
                    let mut rs = (**rs).clone();
                    rs.status = self.rses[i].status.clone();
                    self.rses[i] = rs;
                }
                Action::DeleteReplicaSet { name } => self.rses.retain(|r| r.metadata.name.as_ref() != Some(name)),
                Action::SetRevision(rev) => {
                    self.d.metadata.annotations.get_or_insert_with(BTreeMap::new).insert(REVISION.into(), rev.clone());
                }
                Action::UpdateStatus(s) => self.d.status = Some((**s).clone()),
                Action::Event { message, .. } => self.events.push(message.clone()),
            }
        }
    }

    /// Every ReplicaSet's pods exist and are available, as a ReplicaSet controller over
    /// healthy nodes would report after a while.
    fn settle(&mut self) {
        for rs in &mut self.rses {
            let n = rs_replicas(rs);
            rs.status = Some(k8s_openapi::api::apps::v1::ReplicaSetStatus {
                replicas: n,
                ready_replicas: Some(n),
                available_replicas: Some(n),
                observed_generation: rs.metadata.generation,
                ..Default::default()
            });
        }
    }

    /// Plans, applies and settles until a sync has nothing left to write.
    fn run(&mut self, check: impl Fn(&World)) {
        for _ in 0..100 {
            let p = self.plan();
            if p.actions.is_empty() {
                return;
            }
            self.apply(&p.actions);
            check(self);
            self.clock += 1;
            self.settle();
            check(self);
        }
        panic!("no steady state");
    }

    fn rs(&self, image: &str) -> &ReplicaSet {
        self.rses
            .iter()
            .find(|r| {
                r.spec.as_ref().unwrap().template.as_ref().unwrap().spec.as_ref().unwrap().containers[0]
                    .image
                    .as_deref()
                    == Some(image)
            })
            .unwrap()
    }

    fn set_template(&mut self, t: serde_json::Value) {
        self.d.spec.as_mut().unwrap().template = serde_json::from_value(t).unwrap();
        *self.d.metadata.generation.as_mut().unwrap() += 1;
    }
}

#[test]
fn fenceposts_round_surge_up_and_unavailable_down() {
    let pct = |s: &str| IntOrString::String(s.into());
    assert_eq!(resolve_fenceposts(Some(&pct("25%")), Some(&pct("25%")), 10), Ok((3, 2)));
    assert_eq!(resolve_fenceposts(Some(&pct("25%")), Some(&pct("25%")), 1), Ok((1, 0)));
    assert_eq!(resolve_fenceposts(Some(&pct("10%")), Some(&pct("10%")), 5), Ok((1, 0)));
    // Both zero after rounding: one may be unavailable.
    assert_eq!(resolve_fenceposts(Some(&pct("0%")), Some(&pct("1%")), 2), Ok((0, 1)));
    assert_eq!(resolve_fenceposts(Some(&IntOrString::Int(2)), None, 7), Ok((2, 0)));
    assert!(resolve_fenceposts(Some(&pct("abc")), None, 3).is_err());
    let d = deployment(0, "nginx:1");
    assert_eq!(max_unavailable(&d), 0);
    let d = deployment(4, "nginx:1");
    assert_eq!((max_surge(&d), max_unavailable(&d)), (1, 1));
}

#[test]
fn a_new_deployment_creates_its_first_replica_set() {
    let w = World::new(deployment(3, "nginx:1.25"));
    let p = w.plan();
    let Action::CreateReplicaSet(rs) = &p.actions[0] else { panic!("{:?}", p.actions) };
    let hash = rs.metadata.labels.as_ref().unwrap()[POD_TEMPLATE_HASH].clone();
    assert_eq!(rs.metadata.name.as_deref(), Some(format!("web-{hash}").as_str()));
    let spec = rs.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(spec.selector.match_labels.as_ref().unwrap()[POD_TEMPLATE_HASH], hash);
    assert_eq!(
        spec.template.as_ref().unwrap().metadata.as_ref().unwrap().labels.as_ref().unwrap()[POD_TEMPLATE_HASH],
        hash
    );
    let ann = rs.metadata.annotations.as_ref().unwrap();
    assert_eq!(ann[REVISION], "1");
    assert_eq!(ann[DESIRED_REPLICAS], "3");
    assert_eq!(ann[MAX_REPLICAS], "4");
    assert_eq!(ann[CHANGE_CAUSE], "first");
    let owner = &rs.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("Deployment", "d-uid", Some(true)));
    assert_eq!(
        p.actions[1],
        Action::Event {
            warning: false,
            reason: "ScalingReplicaSet",
            message: format!("Scaled up replica set web-{hash} from 0 to 3")
        }
    );
    assert_eq!(p.actions[2], Action::SetRevision("1".into()));
    let Action::UpdateStatus(s) = &p.actions[3] else { panic!("{:?}", p.actions) };
    let c = condition(s, PROGRESSING).unwrap();
    assert_eq!((c.status.as_str(), c.reason.as_deref()), ("True", Some(NEW_RS_CREATED)));
    assert_eq!(c.message.as_deref(), Some(format!("Created new replica set \"web-{hash}\"").as_str()));
}

#[test]
fn a_rollout_completes_with_the_conditions_kubectl_reads() {
    let mut w = World::new(deployment(3, "nginx:1.25"));
    w.run(|_| {});
    let s = w.d.status.clone().unwrap();
    assert_eq!(
        (s.replicas, s.updated_replicas, s.available_replicas, s.unavailable_replicas),
        (Some(3), Some(3), Some(3), None)
    );
    assert_eq!(s.observed_generation, Some(1));
    assert_eq!(condition(&s, AVAILABLE).unwrap().reason.as_deref(), Some(MIN_AVAILABLE));
    let p = condition(&s, PROGRESSING).unwrap();
    assert_eq!(p.reason.as_deref(), Some(NEW_RS_AVAILABLE));
    assert!(p.message.as_deref().unwrap().ends_with("has successfully progressed."), "{p:?}");
    // Conditions in upstream's order.
    let types: Vec<_> = s.conditions.unwrap().iter().map(|c| c.type_.clone()).collect();
    assert_eq!(types, ["Available", "Progressing"]);
    assert!(deployment_complete(&w.d, w.d.status.as_ref().unwrap()));
}

#[test]
fn rolling_update_respects_surge_and_unavailability_at_every_step() {
    let mut w = World::new(deployment(10, "nginx:1.25"));
    w.run(|_| {});
    w.set_template(template("nginx:1.26"));
    w.d.metadata.annotations.as_mut().unwrap().insert(CHANGE_CAUSE.into(), "second".into());
    // 10 replicas at 25%/25%: at most 13 pods, at least 8 available.
    w.run(|w| {
        let total: i32 = w.rses.iter().map(rs_replicas).sum();
        let available: i32 = w.rses.iter().map(rs_available).sum();
        assert!(total <= 13, "total {total}");
        assert!(available >= 8, "available {available}");
    });
    assert_eq!(rs_replicas(w.rs("nginx:1.26")), 10);
    assert_eq!(rs_replicas(w.rs("nginx:1.25")), 0);
    let new = w.rs("nginx:1.26");
    assert_eq!(annotation(&new.metadata, REVISION), Some("2"));
    assert_eq!(annotation(&new.metadata, CHANGE_CAUSE), Some("second"));
    assert_eq!(annotation(&w.d.metadata, REVISION), Some("2"));
    assert!(
        w.events.iter().any(|e| e.starts_with("Scaled down replica set web-") && e.ends_with("from 10 to 8")),
        "{:?}",
        w.events
    );
    assert!(deployment_complete(&w.d, w.d.status.as_ref().unwrap()));
}

#[test]
fn rollback_by_template_reuses_the_old_replica_set_and_bumps_its_revision() {
    let mut w = World::new(deployment(2, "nginx:1.25"));
    w.run(|_| {});
    w.set_template(template("nginx:1.26"));
    w.run(|_| {});
    let first = w.rs("nginx:1.25").metadata.name.clone();
    // What `kubectl rollout undo` sends: the old template with zero values spelled out.
    w.set_template(json!({"metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25", "resources": {}}]}}));
    let p = w.plan();
    assert!(!p.actions.iter().any(|a| matches!(a, Action::CreateReplicaSet(_))), "{:?}", p.actions);
    w.run(|_| {});
    assert_eq!(w.rses.len(), 2, "no third ReplicaSet");
    let back = w.rs("nginx:1.25");
    assert_eq!(back.metadata.name, first);
    assert_eq!(rs_replicas(back), 2);
    assert_eq!(annotation(&back.metadata, REVISION), Some("3"));
    assert_eq!(annotation(&back.metadata, REVISION_HISTORY), Some("1"));
    assert_eq!(annotation(&w.d.metadata, REVISION), Some("3"));
    assert_eq!(rs_replicas(w.rs("nginx:1.26")), 0);
}

#[test]
fn restart_annotation_starts_a_new_rollout() {
    let mut w = World::new(deployment(2, "nginx:1.25"));
    w.run(|_| {});
    let mut t = template("nginx:1.25");
    t["metadata"]["annotations"] = json!({"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"});
    w.set_template(t);
    w.run(|_| {});
    assert_eq!(w.rses.len(), 2);
    let active: Vec<_> = w.rses.iter().filter(|r| rs_replicas(r) > 0).collect();
    assert_eq!(active.len(), 1);
    assert_eq!(annotation(&active[0].metadata, REVISION), Some("2"));
}

#[test]
fn recreate_scales_old_to_zero_and_waits_for_old_pods_before_creating() {
    let mut d = deployment(3, "nginx:1.25");
    d.spec.as_mut().unwrap().strategy = serde_json::from_value(json!({"type": "Recreate"})).unwrap();
    let mut w = World::new(d);
    w.run(|_| {});
    w.set_template(template("nginx:1.26"));
    let p = w.plan();
    assert!(
        p.actions.iter().any(|a| matches!(a, Action::Event{message, ..} if message.ends_with("from 3 to 0"))),
        "{:?}",
        p.actions
    );
    assert!(!p.actions.iter().any(|a| matches!(a, Action::CreateReplicaSet(_))));
    w.apply(&p.actions);
    w.settle();
    // The old ReplicaSet reports no pods, but one still terminates.
    let old_uid = w.rs("nginx:1.25").metadata.uid.clone().unwrap();
    let running = [OwnedPod { owner_uid: old_uid.clone(), phase: "Running".into() }];
    let p = plan(&w.d, &w.rses, &running, ts(w.clock)).unwrap();
    assert!(!p.actions.iter().any(|a| matches!(a, Action::CreateReplicaSet(_))), "{:?}", p.actions);
    assert_eq!(p.requeue_after, Some(Duration::from_secs(1)));
    // Finished pods do not count.
    let done = [OwnedPod { owner_uid: old_uid, phase: "Succeeded".into() }];
    let p = plan(&w.d, &w.rses, &done, ts(w.clock)).unwrap();
    let Some(Action::CreateReplicaSet(rs)) = p.actions.iter().find(|a| matches!(a, Action::CreateReplicaSet(_))) else {
        panic!("{:?}", p.actions)
    };
    assert_eq!(rs.spec.as_ref().unwrap().replicas, Some(3));
    w.run(|w| {
        let active = w.rses.iter().filter(|r| rs_replicas(r) > 0).count();
        assert!(active <= 1, "Recreate never runs two templates");
    });
    assert_eq!(rs_replicas(w.rs("nginx:1.26")), 3);
}

#[test]
fn a_paused_deployment_scales_but_does_not_roll_out() {
    let mut w = World::new(deployment(2, "nginx:1.25"));
    w.run(|_| {});
    w.d.spec.as_mut().unwrap().paused = Some(true);
    w.set_template(template("nginx:1.26"));
    w.d.spec.as_mut().unwrap().replicas = Some(4);
    w.run(|_| {});
    assert_eq!(w.rses.len(), 1, "no new ReplicaSet while paused");
    assert_eq!(rs_replicas(&w.rses[0]), 4);
    let s = w.d.status.clone().unwrap();
    let c = condition(&s, PROGRESSING).unwrap();
    assert_eq!((c.status.as_str(), c.reason.as_deref()), ("Unknown", Some(PAUSED)));
    assert_eq!(s.observed_generation, w.d.metadata.generation);
    // Resume: the rollout happens.
    w.d.spec.as_mut().unwrap().paused = Some(false);
    w.run(|_| {});
    assert_eq!(rs_replicas(w.rs("nginx:1.26")), 4);
    let s = w.d.status.clone().unwrap();
    assert_eq!(condition(&s, PROGRESSING).unwrap().reason.as_deref(), Some(NEW_RS_AVAILABLE));
}

#[test]
fn scaling_mid_rollout_is_proportional() {
    let mut w = World::new(deployment(10, "nginx:1.25"));
    w.run(|_| {});
    w.set_template(template("nginx:1.26"));
    // One step of the rollout: the new ReplicaSet gets the surge, the old one gives up
    // what may be unavailable.
    let p = w.plan();
    w.apply(&p.actions);
    assert_eq!((rs_replicas(w.rs("nginx:1.25")), rs_replicas(w.rs("nginx:1.26"))), (8, 3));
    // Now scale to 20 before anything is available: both grow in proportion.
    w.d.spec.as_mut().unwrap().replicas = Some(20);
    let p = w.plan();
    w.apply(&p.actions);
    let (old, new) = (rs_replicas(w.rs("nginx:1.25")), rs_replicas(w.rs("nginx:1.26")));
    assert_eq!(old + new, 25, "20 + 25% surge");
    // 8 * 25/13 rounds to 15 (+7) and 3 * 25/13 to 6 (+3); the leftover 4 goes to the larger.
    assert_eq!((old, new), (19, 6));
    assert_eq!(annotation(&w.rs("nginx:1.25").metadata, DESIRED_REPLICAS), Some("20"));
}

#[test]
fn old_replica_sets_beyond_the_history_limit_are_deleted() {
    let mut d = deployment(1, "v1");
    d.spec.as_mut().unwrap().revision_history_limit = Some(1);
    let mut w = World::new(d);
    for image in ["v1", "v2", "v3", "v4"] {
        w.set_template(template(image));
        w.run(|_| {});
    }
    let mut images: Vec<_> = w
        .rses
        .iter()
        .map(|r| {
            r.spec.as_ref().unwrap().template.as_ref().unwrap().spec.as_ref().unwrap().containers[0]
                .image
                .clone()
                .unwrap()
        })
        .collect();
    images.sort();
    assert_eq!(images, ["v3", "v4"]);
}

#[test]
fn no_progress_past_the_deadline_times_out() {
    let mut w = World::new(deployment(2, "nginx:1.25"));
    // Created, but pods never become available.
    let p = w.plan();
    w.apply(&p.actions);
    w.clock += 1;
    let p = w.plan();
    w.apply(&p.actions);
    let p = w.plan();
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    let wait = p.requeue_after.expect("a requeue at the deadline");
    assert!(wait > Duration::from_secs(590) && wait <= Duration::from_secs(601), "{wait:?}");
    w.clock += 700;
    let p = w.plan();
    w.apply(&p.actions);
    let s = w.d.status.clone().unwrap();
    let c = condition(&s, PROGRESSING).unwrap();
    assert_eq!((c.status.as_str(), c.reason.as_deref()), ("False", Some(TIMED_OUT)));
    assert!(c.message.as_deref().unwrap().ends_with("has timed out progressing."));
    assert_eq!(condition(&s, AVAILABLE).unwrap().reason.as_deref(), Some(MIN_UNAVAILABLE));
}

#[test]
fn a_replica_set_failure_becomes_the_deployments() {
    let mut w = World::new(deployment(1, "nginx:1.25"));
    let p = w.plan();
    w.apply(&p.actions);
    w.rses[0].status = Some(
        serde_json::from_value(json!({"replicas": 0, "conditions": [
        {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "quota"}]}))
        .unwrap(),
    );
    let p = w.plan();
    w.apply(&p.actions);
    let c = condition(w.d.status.as_ref().unwrap(), REPLICA_FAILURE).unwrap();
    assert_eq!((c.reason.as_deref(), c.message.as_deref()), (Some("FailedCreate"), Some("quota")));
}

#[test]
fn revision_history_keeps_earlier_revisions() {
    let d = deployment(1, "v1");
    let mut rs: ReplicaSet =
        serde_json::from_value(json!({"metadata": {"annotations": {REVISION: "2", REVISION_HISTORY: "1"}}})).unwrap();
    assert!(set_new_rs_annotations(&d, &mut rs, 5, true));
    let ann = rs.metadata.annotations.as_ref().unwrap();
    assert_eq!((ann[REVISION].as_str(), ann[REVISION_HISTORY].as_str()), ("5", "1,2"));
    // A newer revision stays.
    assert!(!set_new_rs_annotations(&d, &mut rs, 3, true));
    // Unparseable revisions are skipped when finding the maximum.
    let bad: ReplicaSet = serde_json::from_value(json!({"metadata": {"annotations": {REVISION: "x"}}})).unwrap();
    assert_eq!(max_revision([&rs, &bad]), 5);
}

#[test]
fn a_selector_matching_everything_is_refused() {
    let mut d = deployment(1, "v1");
    d.spec.as_mut().unwrap().selector = Default::default();
    let p = plan(&d, &[], &[], ts(5)).unwrap();
    assert!(matches!(&p.actions[0], Action::Event { warning: true, reason: "SelectingAll", .. }));
    assert!(!p.actions.iter().any(|a| matches!(a, Action::CreateReplicaSet(_))));
}
