//! Rows of the workload controllers' kinds (apps, batch, policy): Deployment,
//! ReplicaSet, StatefulSet, DaemonSet, ControllerRevision, Job, CronJob and
//! PodDisruptionBudget.

use super::age;
use super::fields::{
    arr_at, container_cells, format_label_selector, format_labels, get, int_at, is_deleting, len_at, name, opt_int_at,
    selector_string, str_at, time_at,
};
use super::time::{Nanos, duration_between, human_duration_nanos, since};
use serde_json::Value;

/// `spec.replicas`, which apps/v1 defaulting sets to 1 when absent.
fn desired_replicas(obj: &Value) -> i64 {
    opt_int_at(obj, "/spec/replicas").unwrap_or(1)
}

fn template_spec(obj: &Value) -> Option<&Value> {
    get(obj, "/spec/template/spec")
}

pub(super) fn deployment(d: &Value, now: Nanos) -> Vec<Value> {
    let (containers, images) = container_cells(template_spec(d));
    // Unlike the other printers, this one prints the bare selector string: empty rather
    // than `<none>`, and `<invalid>` rather than `<error>`.
    let selector = selector_string(get(d, "/spec/selector")).unwrap_or_else(|_| "<invalid>".to_string());
    vec![
        name(d),
        Value::from(format!("{}/{}", int_at(d, "/status/readyReplicas"), desired_replicas(d))),
        Value::from(int_at(d, "/status/updatedReplicas")),
        Value::from(int_at(d, "/status/availableReplicas")),
        age(d, now),
        Value::from(containers),
        Value::from(images),
        Value::from(selector),
    ]
}

pub(super) fn replica_set(rs: &Value, now: Nanos) -> Vec<Value> {
    let (containers, images) = container_cells(template_spec(rs));
    vec![
        name(rs),
        Value::from(desired_replicas(rs)),
        Value::from(int_at(rs, "/status/replicas")),
        Value::from(int_at(rs, "/status/readyReplicas")),
        age(rs, now),
        Value::from(containers),
        Value::from(images),
        Value::from(format_label_selector(get(rs, "/spec/selector"))),
    ]
}

pub(super) fn stateful_set(sts: &Value, now: Nanos) -> Vec<Value> {
    let (containers, images) = container_cells(template_spec(sts));
    vec![
        name(sts),
        Value::from(format!("{}/{}", int_at(sts, "/status/readyReplicas"), desired_replicas(sts))),
        age(sts, now),
        Value::from(containers),
        Value::from(images),
    ]
}

pub(super) fn daemon_set(ds: &Value, now: Nanos) -> Vec<Value> {
    let (containers, images) = container_cells(template_spec(ds));
    vec![
        name(ds),
        Value::from(int_at(ds, "/status/desiredNumberScheduled")),
        Value::from(int_at(ds, "/status/currentNumberScheduled")),
        Value::from(int_at(ds, "/status/numberReady")),
        Value::from(int_at(ds, "/status/updatedNumberScheduled")),
        Value::from(int_at(ds, "/status/numberAvailable")),
        Value::from(format_labels(get(ds, "/spec/template/spec/nodeSelector"))),
        age(ds, now),
        Value::from(containers),
        Value::from(images),
        Value::from(format_label_selector(get(ds, "/spec/selector"))),
    ]
}

pub(super) fn controller_revision(cr: &Value, now: Nanos) -> Vec<Value> {
    let owner = arr_at(cr, "/metadata/ownerReferences")
        .iter()
        .find(|o| get(o, "/controller").and_then(Value::as_bool) == Some(true));
    let controller = match owner {
        None => "<none>".to_string(),
        Some(o) => {
            let owner_name = str_at(o, "/name");
            let kind = str_at(o, "/kind");
            // The group of `apps/v1` is `apps`; of `v1`, the core group. Upstream fails
            // the whole table on an apiVersion with more slashes; we print the bare name.
            let group = match str_at(o, "/apiVersion").split('/').collect::<Vec<_>>()[..] {
                [_] => Some(""),
                [group, _] => Some(group),
                _ => None,
            };
            match group {
                None => owner_name.to_string(),
                Some("") if kind.is_empty() => owner_name.to_string(),
                Some("") => format!("{}/{owner_name}", kind.to_lowercase()),
                Some(g) => format!("{}.{}/{owner_name}", kind.to_lowercase(), g.to_lowercase()),
            }
        }
    };
    vec![name(cr), Value::from(controller), Value::from(int_at(cr, "/revision")), age(cr, now)]
}

/// The status of the first condition of a type decides, as upstream's `hasJobCondition`.
fn has_job_condition(job: &Value, type_: &str) -> bool {
    arr_at(job, "/status/conditions")
        .iter()
        .find(|c| str_at(c, "/type") == type_)
        .is_some_and(|c| str_at(c, "/status") == "True")
}

pub(super) fn job(job: &Value, now: Nanos) -> Vec<Value> {
    let succeeded = int_at(job, "/status/succeeded");
    let completions = match opt_int_at(job, "/spec/completions") {
        Some(c) => format!("{succeeded}/{c}"),
        None => match opt_int_at(job, "/spec/parallelism").unwrap_or(0) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let duration = match (time_at(job, "/status/startTime"), time_at(job, "/status/completionTime")) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration_nanos(duration_between(now, start)),
        (Some(start), Some(end)) => human_duration_nanos(duration_between(end, start)),
    };
    let status = if has_job_condition(job, "Complete") {
        "Complete"
    } else if has_job_condition(job, "Failed") {
        "Failed"
    } else if is_deleting(job) {
        "Terminating"
    } else if has_job_condition(job, "Suspended") {
        "Suspended"
    } else if has_job_condition(job, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (containers, images) = container_cells(template_spec(job));
    vec![
        name(job),
        Value::from(status),
        Value::from(completions),
        Value::from(duration),
        age(job, now),
        Value::from(containers),
        Value::from(images),
        Value::from(format_label_selector(get(job, "/spec/selector"))),
    ]
}

pub(super) fn cron_job(cj: &Value, now: Nanos) -> Vec<Value> {
    let last_schedule = match get(cj, "/status/lastScheduleTime") {
        None => "<none>".to_string(),
        Some(_) => since(time_at(cj, "/status/lastScheduleTime"), now),
    };
    let time_zone = get(cj, "/spec/timeZone").and_then(Value::as_str).unwrap_or("<none>");
    // batch/v1 defaulting sets `suspend` to false, so upstream never shows `<unset>`.
    let suspend = match get(cj, "/spec/suspend").and_then(Value::as_bool) {
        Some(true) => "True",
        _ => "False",
    };
    let (containers, images) = container_cells(get(cj, "/spec/jobTemplate/spec/template/spec"));
    vec![
        name(cj),
        Value::from(str_at(cj, "/spec/schedule")),
        Value::from(time_zone),
        Value::from(suspend),
        Value::from(len_at(cj, "/status/active")),
        Value::from(last_schedule),
        age(cj, now),
        Value::from(containers),
        Value::from(images),
        Value::from(format_label_selector(get(cj, "/spec/jobTemplate/spec/selector"))),
    ]
}

pub(super) fn pod_disruption_budget(pdb: &Value, now: Nanos) -> Vec<Value> {
    // An IntOrString prints as its number or its string.
    let int_or_string = |pointer: &str| match get(pdb, pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.as_i64().map(|i| i.to_string()).unwrap_or_else(|| n.to_string()),
        _ => "N/A".to_string(),
    };
    vec![
        name(pdb),
        Value::from(int_or_string("/spec/minAvailable")),
        Value::from(int_or_string("/spec/maxUnavailable")),
        Value::from(int_at(pdb, "/status/disruptionsAllowed")),
        age(pdb, now),
    ]
}

#[cfg(test)]
mod tests {
    use crate::table::testing::cells;
    use serde_json::{Value, json};

    fn meta(name: &str) -> Value {
        json!({"name": name, "namespace": "default", "creationTimestamp": "2025-06-01T09:58:00Z",
               "labels": {"app": "web"}})
    }

    fn template() -> Value {
        json!({"metadata": {"labels": {"app": "web"}},
               "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}, {"name": "sidecar", "image": "busybox:1.36"}]}})
    }

    #[test]
    fn deployment_row() {
        let d = json!({
            "metadata": meta("web"),
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template()},
            "status": {"replicas": 3, "updatedReplicas": 2, "readyReplicas": 1, "availableReplicas": 1}
        });
        assert_eq!(
            cells("apps", "deployments", &d),
            [
                json!("web"),
                json!("1/3"),
                json!(2),
                json!(1),
                json!("122m"),
                json!("web,sidecar"),
                json!("nginx:1.27,busybox:1.36"),
                json!("app=web"),
            ]
        );
        let fresh = json!({"metadata": {"name": "new"}});
        assert_eq!(
            cells("apps", "deployments", &fresh),
            [json!("new"), json!("0/1"), json!(0), json!(0), json!("<unknown>"), json!(""), json!(""), json!("")]
        );
        let bad = json!({"metadata": {"name": "bad"}, "spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}});
        assert_eq!(cells("apps", "deployments", &bad)[7], json!("<invalid>"));
    }

    #[test]
    fn replica_set_row() {
        let rs = json!({
            "metadata": meta("web-7d4b9c8f6"),
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "7d4b9c8f6"}},
                     "template": template()},
            "status": {"replicas": 2, "readyReplicas": 1}
        });
        assert_eq!(
            cells("apps", "replicasets", &rs),
            [
                json!("web-7d4b9c8f6"),
                json!(0),
                json!(2),
                json!(1),
                json!("122m"),
                json!("web,sidecar"),
                json!("nginx:1.27,busybox:1.36"),
                json!("app=web,pod-template-hash=7d4b9c8f6"),
            ]
        );
        assert_eq!(
            cells("apps", "replicasets", &json!({"metadata": {"name": "x"}}))[1..4],
            [json!(1), json!(0), json!(0)]
        );
        assert_eq!(cells("apps", "replicasets", &json!({"metadata": {"name": "x"}}))[7], json!("<none>"));
    }

    #[test]
    fn stateful_set_row() {
        let sts = json!({
            "metadata": meta("db"),
            "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}}, "template": template()},
            "status": {"replicas": 3, "readyReplicas": 2}
        });
        assert_eq!(
            cells("apps", "statefulsets", &sts),
            [json!("db"), json!("2/3"), json!("122m"), json!("web,sidecar"), json!("nginx:1.27,busybox:1.36")]
        );
    }

    #[test]
    fn daemon_set_row() {
        let mut t = template();
        t["spec"]["nodeSelector"] = json!({"kubernetes.io/os": "linux", "disk": "ssd"});
        let ds = json!({
            "metadata": meta("agent"),
            "spec": {"selector": {"matchLabels": {"app": "agent"}, "matchExpressions": [{"key": "tier", "operator": "Exists"}]},
                     "template": t},
            "status": {"desiredNumberScheduled": 5, "currentNumberScheduled": 4, "numberReady": 3,
                       "updatedNumberScheduled": 2, "numberAvailable": 1}
        });
        assert_eq!(
            cells("apps", "daemonsets", &ds),
            [
                json!("agent"),
                json!(5),
                json!(4),
                json!(3),
                json!(2),
                json!(1),
                json!("disk=ssd,kubernetes.io/os=linux"),
                json!("122m"),
                json!("web,sidecar"),
                json!("nginx:1.27,busybox:1.36"),
                json!("app=agent,tier"),
            ]
        );
        assert_eq!(cells("apps", "daemonsets", &json!({"metadata": {"name": "x"}}))[6], json!("<none>"));
    }

    #[test]
    fn controller_revision_row() {
        let cr = json!({
            "metadata": {"name": "agent-5f6d7c8b9", "creationTimestamp": "2025-06-01T09:58:00Z", "ownerReferences": [
                {"apiVersion": "v1", "kind": "Pod", "name": "not-controller", "uid": "1"},
                {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": "2", "controller": true}
            ]},
            "data": {"spec": {}},
            "revision": 4
        });
        assert_eq!(
            cells("apps", "controllerrevisions", &cr),
            [json!("agent-5f6d7c8b9"), json!("daemonset.apps/agent"), json!(4), json!("122m")]
        );
        let core_owner = json!({"metadata": {"name": "r", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ReplicationController", "name": "rc", "controller": true}]}, "revision": 1});
        assert_eq!(cells("apps", "controllerrevisions", &core_owner)[1], json!("replicationcontroller/rc"));
        let orphan = json!({"metadata": {"name": "o"}, "revision": 2});
        assert_eq!(cells("apps", "controllerrevisions", &orphan)[1..3], [json!("<none>"), json!(2)]);
        let odd = json!({"metadata": {"name": "o", "ownerReferences": [
            {"apiVersion": "a/b/c", "kind": "X", "name": "x", "controller": true}]}});
        assert_eq!(cells("apps", "controllerrevisions", &odd)[1], json!("x"));
    }

    fn job(spec: Value, status: Value) -> Value {
        let mut spec = spec;
        spec["template"] = template();
        spec["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "6f1c"}});
        json!({"metadata": meta("report"), "spec": spec, "status": status})
    }

    #[test]
    fn running_job_row() {
        let j = job(
            json!({"completions": 5, "parallelism": 2}),
            json!({"startTime": "2025-06-01T11:57:00Z", "active": 2, "succeeded": 3}),
        );
        assert_eq!(
            cells("batch", "jobs", &j),
            [
                json!("report"),
                json!("Running"),
                json!("3/5"),
                json!("3m"),
                json!("122m"),
                json!("web,sidecar"),
                json!("nginx:1.27,busybox:1.36"),
                json!("batch.kubernetes.io/controller-uid=6f1c"),
            ]
        );
    }

    #[test]
    fn job_status_follows_conditions() {
        let cond = |t: &str, s: &str| json!({"type": t, "status": s});
        for (conditions, deleting, want) in [
            (json!([cond("SuccessCriteriaMet", "True"), cond("Complete", "True")]), false, "Complete"),
            (json!([cond("FailureTarget", "True"), cond("Failed", "True")]), true, "Failed"),
            (json!([cond("Suspended", "True")]), true, "Terminating"),
            (json!([cond("Suspended", "True")]), false, "Suspended"),
            (json!([cond("Suspended", "False")]), false, "Running"),
            (json!([cond("FailureTarget", "True")]), false, "FailureTarget"),
            (json!([cond("Complete", "False"), cond("Complete", "True")]), false, "Running"),
        ] {
            let mut j = job(json!({}), json!({"conditions": conditions}));
            if deleting {
                j["metadata"]["deletionTimestamp"] = json!("2025-06-01T11:59:00Z");
            }
            assert_eq!(cells("batch", "jobs", &j)[1], json!(want), "{conditions}");
        }
    }

    #[test]
    fn job_completions_and_duration() {
        let done = job(
            json!({"parallelism": 1}),
            json!({"startTime": "2025-06-01T10:00:00Z", "completionTime": "2025-06-01T10:03:10Z", "succeeded": 1,
                   "conditions": [{"type": "Complete", "status": "True"}]}),
        );
        assert_eq!(cells("batch", "jobs", &done)[1..4], [json!("Complete"), json!("1/1"), json!("3m10s")]);
        let work_queue = job(json!({"parallelism": 4}), json!({"succeeded": 2}));
        assert_eq!(cells("batch", "jobs", &work_queue)[2..4], [json!("2/1 of 4"), json!("")]);
        let bare = json!({"metadata": {"name": "j"}});
        assert_eq!(
            cells("batch", "jobs", &bare),
            [
                json!("j"),
                json!("Running"),
                json!("0/1"),
                json!(""),
                json!("<unknown>"),
                json!(""),
                json!(""),
                json!("<none>")
            ]
        );
    }

    #[test]
    fn cron_job_row() {
        let cj = json!({
            "metadata": meta("nightly"),
            "spec": {"schedule": "0 3 * * *", "timeZone": "Europe/Paris", "suspend": false,
                     "jobTemplate": {"spec": {"template": template()}}},
            "status": {"active": [{"kind": "Job", "name": "nightly-29145"}], "lastScheduleTime": "2025-06-01T11:00:00Z"}
        });
        assert_eq!(
            cells("batch", "cronjobs", &cj),
            [
                json!("nightly"),
                json!("0 3 * * *"),
                json!("Europe/Paris"),
                json!("False"),
                json!(1),
                json!("60m"),
                json!("122m"),
                json!("web,sidecar"),
                json!("nginx:1.27,busybox:1.36"),
                json!("<none>"),
            ]
        );
        let fresh = json!({"metadata": {"name": "c"}, "spec": {"schedule": "*/5 * * * *", "suspend": true,
            "jobTemplate": {"spec": {"selector": {"matchLabels": {"job": "c"}}}}}});
        assert_eq!(
            cells("batch", "cronjobs", &fresh),
            [
                json!("c"),
                json!("*/5 * * * *"),
                json!("<none>"),
                json!("True"),
                json!(0),
                json!("<none>"),
                json!("<unknown>"),
                json!(""),
                json!(""),
                json!("job=c"),
            ]
        );
        assert_eq!(cells("batch", "cronjobs", &json!({"metadata": {"name": "d"}}))[3], json!("False"));
    }

    #[test]
    fn pod_disruption_budget_row() {
        let pdb = json!({"metadata": meta("web"), "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"disruptionsAllowed": 1, "currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3}});
        assert_eq!(
            cells("policy", "poddisruptionbudgets", &pdb),
            [json!("web"), json!("2"), json!("N/A"), json!(1), json!("122m")]
        );
        let pct = json!({"metadata": meta("db"), "spec": {"maxUnavailable": "25%"}});
        assert_eq!(
            cells("policy", "poddisruptionbudgets", &pct),
            [json!("db"), json!("N/A"), json!("25%"), json!(0), json!("122m")]
        );
    }
}
