//! Workload defaults: `pkg/apis/apps/v1/defaults.go` and `pkg/apis/batch/v1/defaults.go`,
//! with the zero status Go writes for each, and Job selector generation.

use super::pod::{claim_spec, template};
use super::{child, default_str, default_value, existing, is_unset, items, status_zeros, str_field, template_metadata};
use serde_json::{Map, Value, json};

fn spec_of(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    child(obj.as_object_mut()?, "spec")
}

fn pod_template(spec: &mut Map<String, Value>) {
    if let Some(t) = child(spec, "template") {
        template(t);
    }
}

/// `SetDefaults_Deployment`.
pub(super) fn deployment(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else { return };
    default_value(spec, "replicas", json!(1));
    if let Some(strategy) = child(spec, "strategy") {
        default_str(strategy, "type", "RollingUpdate");
        if str_field(strategy, "type") == "RollingUpdate"
            && let Some(ru) = child(strategy, "rollingUpdate")
        {
            default_value(ru, "maxUnavailable", json!("25%"));
            default_value(ru, "maxSurge", json!("25%"));
        }
    }
    default_value(spec, "revisionHistoryLimit", json!(10));
    default_value(spec, "progressDeadlineSeconds", json!(600));
    pod_template(spec);
    if let Some(m) = obj.as_object_mut() {
        default_value(m, "status", json!({}));
    }
}

/// `SetDefaults_ReplicaSet`.
pub(super) fn replicaset(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else { return };
    default_value(spec, "replicas", json!(1));
    pod_template(spec);
    if let Some(m) = obj.as_object_mut() {
        status_zeros(m, &["replicas"]);
    }
}

/// `SetDefaults_StatefulSet`, and the claim templates' own defaults.
pub(super) fn statefulset(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else { return };
    default_str(spec, "podManagementPolicy", "OrderedReady");
    if let Some(us) = child(spec, "updateStrategy") {
        // A RollingUpdate block is created only when the type itself was defaulted.
        if us.get("type").is_none_or(|t| t.is_null() || t.as_str() == Some("")) {
            us.insert("type".into(), json!("RollingUpdate"));
            default_value(us, "rollingUpdate", json!({}));
        }
        if str_field(us, "type") == "RollingUpdate"
            && let Some(ru) = existing(us, "rollingUpdate")
        {
            default_value(ru, "partition", json!(0));
        }
    }
    if let Some(policy) = child(spec, "persistentVolumeClaimRetentionPolicy") {
        default_str(policy, "whenDeleted", "Retain");
        default_str(policy, "whenScaled", "Retain");
    }
    default_value(spec, "replicas", json!(1));
    default_value(spec, "revisionHistoryLimit", json!(10));
    pod_template(spec);
    for claim in items(spec, "volumeClaimTemplates") {
        // Upstream stores the claims with their type and the defaults of a real claim.
        default_str(claim, "apiVersion", "v1");
        default_str(claim, "kind", "PersistentVolumeClaim");
        template_metadata(claim);
        if let Some(cs) = child(claim, "spec") {
            claim_spec(cs);
        }
        if let Some(status) = child(claim, "status") {
            default_str(status, "phase", "Pending");
        }
    }
    if let Some(m) = obj.as_object_mut() {
        status_zeros(m, &["availableReplicas", "replicas"]);
    }
}

/// `SetDefaults_DaemonSet`.
pub(super) fn daemonset(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else { return };
    if let Some(us) = child(spec, "updateStrategy") {
        default_str(us, "type", "RollingUpdate");
        if str_field(us, "type") == "RollingUpdate"
            && let Some(ru) = child(us, "rollingUpdate")
        {
            default_value(ru, "maxUnavailable", json!(1));
            default_value(ru, "maxSurge", json!(0));
        }
    }
    default_value(spec, "revisionHistoryLimit", json!(10));
    pod_template(spec);
    if let Some(m) = obj.as_object_mut() {
        status_zeros(m, &["currentNumberScheduled", "desiredNumberScheduled", "numberMisscheduled", "numberReady"]);
    }
}

/// Pod failure policy rules match `True` conditions unless told otherwise.
fn pod_failure_policy(spec: &mut Map<String, Value>) {
    if let Some(pfp) = existing(spec, "podFailurePolicy") {
        for rule in items(pfp, "rules") {
            for pattern in items(rule, "onPodConditions") {
                default_str(pattern, "status", "True");
            }
        }
    }
}

/// `SetDefaults_Job`.
pub(super) fn job(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else { return };
    if is_unset(spec, "completions") && is_unset(spec, "parallelism") {
        spec.insert("completions".into(), json!(1));
        spec.insert("parallelism".into(), json!(1));
    }
    default_value(spec, "parallelism", json!(1));
    if is_unset(spec, "backoffLimit") {
        let limit = if is_unset(spec, "backoffLimitPerIndex") { 6 } else { i64::from(i32::MAX) };
        spec.insert("backoffLimit".into(), json!(limit));
    }
    default_value(spec, "completionMode", json!("NonIndexed"));
    default_value(spec, "suspend", json!(false));
    if is_unset(spec, "podReplacementPolicy") {
        let policy = if is_unset(spec, "podFailurePolicy") { "TerminatingOrFailed" } else { "Failed" };
        spec.insert("podReplacementPolicy".into(), json!(policy));
    }
    default_value(spec, "manualSelector", json!(false));
    pod_failure_policy(spec);
    pod_template(spec);
    let template_labels = spec.get("template").and_then(|t| t.get("metadata")).and_then(|m| m.get("labels")).cloned();
    if let Some(m) = obj.as_object_mut() {
        job_labels_from_template(m, template_labels);
        default_value(m, "status", json!({}));
    }
}

/// A Job without labels takes its template's.
fn job_labels_from_template(m: &mut Map<String, Value>, template_labels: Option<Value>) {
    let Some(labels @ Value::Object(_)) = template_labels else {
        return;
    };
    if let Some(meta) = child(m, "metadata") {
        let empty = meta.get("labels").and_then(Value::as_object).is_none_or(Map::is_empty);
        if empty {
            meta.insert("labels".into(), labels);
        }
    }
}

/// `SetDefaults_CronJob`; the job template gets pod template defaults (not Job ones,
/// as upstream).
pub(super) fn cronjob(obj: &mut Value) {
    let Some(spec) = spec_of(obj) else { return };
    default_str(spec, "concurrencyPolicy", "Allow");
    default_value(spec, "suspend", json!(false));
    default_value(spec, "successfulJobsHistoryLimit", json!(3));
    default_value(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(jt) = child(spec, "jobTemplate") {
        template_metadata(jt);
        if let Some(js) = child(jt, "spec") {
            pod_failure_policy(js);
            pod_template(js);
        }
    }
    if let Some(m) = obj.as_object_mut() {
        default_value(m, "status", json!({}));
    }
}

/// Generates a Job's selector and pod labels from its UID, unless it selects manually
/// (upstream's `generateSelector`, run once the server has assigned `metadata.uid`).
/// Labels the user already set are kept; validation reports conflicts. A Job without
/// labels of its own then takes the template's, as upstream's stored Jobs show.
pub fn job_selector(obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else { return };
    let meta = m.get("metadata");
    let name = meta.and_then(|x| x.get("name")).and_then(Value::as_str).unwrap_or_default().to_string();
    let uid = meta.and_then(|x| x.get("uid")).and_then(Value::as_str).unwrap_or_default().to_string();
    let Some(spec) = child(m, "spec") else { return };
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    if let Some(t) = child(spec, "template")
        && let Some(tm) = child(t, "metadata")
        && let Some(labels) = child(tm, "labels")
    {
        for (key, value) in [
            ("job-name", &name),
            ("batch.kubernetes.io/job-name", &name),
            ("controller-uid", &uid),
            ("batch.kubernetes.io/controller-uid", &uid),
        ] {
            labels.entry(key.to_string()).or_insert_with(|| Value::String(value.clone()));
        }
    }
    if let Some(sel) = child(spec, "selector")
        && let Some(ml) = child(sel, "matchLabels")
    {
        ml.entry("batch.kubernetes.io/controller-uid".to_string()).or_insert_with(|| Value::String(uid.clone()));
    }
    let template_labels = spec.get("template").and_then(|t| t.get("metadata")).and_then(|x| x.get("labels")).cloned();
    job_labels_from_template(m, template_labels);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defaults::apply;
    use crate::registry::find;

    /// `kubectl create deployment web --image=nginx -o json --dry-run=client`.
    fn kubectl_created_deployment() -> Value {
        json!({
            "kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"name": "web", "creationTimestamp": null, "labels": {"app": "web"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}]}
                },
                "strategy": {}
            },
            "status": {}
        })
    }

    #[test]
    fn a_kubectl_created_deployment_gets_exactly_upstreams_defaults() {
        let mut d = kubectl_created_deployment();
        apply(find("apps", "v1", "deployments").unwrap(), &mut d);
        assert_eq!(
            d,
            json!({
                "kind": "Deployment", "apiVersion": "apps/v1",
                "metadata": {"name": "web", "creationTimestamp": null, "labels": {"app": "web"}},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                        "spec": {
                            "containers": [{
                                "name": "nginx", "image": "nginx", "resources": {},
                                "imagePullPolicy": "Always",
                                "terminationMessagePath": "/dev/termination-log",
                                "terminationMessagePolicy": "File"
                            }],
                            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                            "dnsPolicy": "ClusterFirst", "securityContext": {},
                            "schedulerName": "default-scheduler"
                        }
                    },
                    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                    "revisionHistoryLimit": 10,
                    "progressDeadlineSeconds": 600
                },
                "status": {}
            })
        );
    }

    #[test]
    fn deployment_recreate_gets_no_rolling_update() {
        let mut d = json!({"spec": {"strategy": {"type": "Recreate"}, "replicas": 0}});
        apply(find("apps", "v1", "deployments").unwrap(), &mut d);
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
        assert_eq!(d["spec"]["replicas"], 0);
        assert_eq!(d["spec"]["template"]["metadata"], json!({"creationTimestamp": null}));
    }

    #[test]
    fn replicasets_statefulsets_daemonsets() {
        let mut rs = json!({"spec": {"template": {"spec": {"containers": []}}}});
        apply(find("apps", "v1", "replicasets").unwrap(), &mut rs);
        assert_eq!(rs["spec"]["replicas"], 1);
        assert_eq!(rs["status"], json!({"replicas": 0}));

        let mut sts = json!({"spec": {"serviceName": "db", "volumeClaimTemplates": [
            {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1024Mi"}}}}]}});
        apply(find("apps", "v1", "statefulsets").unwrap(), &mut sts);
        let spec = &sts["spec"];
        assert_eq!(spec["podManagementPolicy"], "OrderedReady");
        assert_eq!(spec["updateStrategy"], json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}));
        assert_eq!(
            spec["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(spec["replicas"], 1);
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(
            spec["volumeClaimTemplates"][0],
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data", "creationTimestamp": null},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, "volumeMode": "Filesystem"},
                "status": {"phase": "Pending"}})
        );
        assert_eq!(sts["status"], json!({"availableReplicas": 0, "replicas": 0}));
        let mut sts2 = json!({"spec": {"updateStrategy": {"type": "RollingUpdate"}}});
        apply(find("apps", "v1", "statefulsets").unwrap(), &mut sts2);
        assert_eq!(
            sts2["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate"}),
            "no rollingUpdate block unless the type was defaulted"
        );

        let mut ds = json!({"spec": {}});
        apply(find("apps", "v1", "daemonsets").unwrap(), &mut ds);
        assert_eq!(
            ds["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(
            ds["status"],
            json!({"currentNumberScheduled": 0, "desiredNumberScheduled": 0, "numberMisscheduled": 0, "numberReady": 0})
        );
    }

    #[test]
    fn jobs_and_their_selector() {
        let jobs = find("batch", "v1", "jobs").unwrap();
        let mut j = json!({"metadata": {"name": "pi", "namespace": "default"}, "spec": {"template": {"spec": {
            "containers": [{"name": "pi", "image": "perl:5.34.0"}], "restartPolicy": "Never"}}}});
        apply(jobs, &mut j);
        let spec = &j["spec"];
        assert_eq!(spec["parallelism"], 1);
        assert_eq!(spec["completions"], 1);
        assert_eq!(spec["backoffLimit"], 6);
        assert_eq!(spec["completionMode"], "NonIndexed");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["manualSelector"], false);
        assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
        assert_eq!(spec["template"]["spec"]["restartPolicy"], "Never");
        assert!(spec.get("selector").is_none());

        j["metadata"]["uid"] = json!("0c1e");
        job_selector(&mut j);
        assert_eq!(j["spec"]["selector"], json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "0c1e"}}));
        let labels = json!({"batch.kubernetes.io/controller-uid": "0c1e", "batch.kubernetes.io/job-name": "pi",
            "controller-uid": "0c1e", "job-name": "pi"});
        assert_eq!(j["spec"]["template"]["metadata"]["labels"], labels);
        assert_eq!(j["metadata"]["labels"], labels);
        let again = j.clone();
        job_selector(&mut j);
        assert_eq!(j, again);

        let mut parallel = json!({"spec": {"parallelism": 3, "backoffLimitPerIndex": 1, "podFailurePolicy": {"rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}}});
        apply(jobs, &mut parallel);
        assert!(parallel["spec"].get("completions").is_none(), "completions stay unset when parallelism is given");
        assert_eq!(parallel["spec"]["backoffLimit"], i64::from(i32::MAX));
        assert_eq!(parallel["spec"]["podReplacementPolicy"], "Failed");
        assert_eq!(parallel["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["status"], "True");

        let mut manual = json!({"metadata": {"name": "m", "uid": "u"}, "spec": {"manualSelector": true,
            "selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}}}});
        apply(jobs, &mut manual);
        job_selector(&mut manual);
        assert_eq!(manual["spec"]["selector"], json!({"matchLabels": {"a": "b"}}));
        assert_eq!(manual["metadata"]["labels"], json!({"a": "b"}));
    }

    #[test]
    fn cronjobs() {
        let mut c = json!({"spec": {"schedule": "*/1 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"name": "hello", "image": "busybox:1.28"}], "restartPolicy": "OnFailure"}}}}}});
        apply(find("batch", "v1", "cronjobs").unwrap(), &mut c);
        let spec = &c["spec"];
        assert_eq!(spec["concurrencyPolicy"], "Allow");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["successfulJobsHistoryLimit"], 3);
        assert_eq!(spec["failedJobsHistoryLimit"], 1);
        assert_eq!(spec["jobTemplate"]["metadata"], json!({"creationTimestamp": null}));
        let pod = &spec["jobTemplate"]["spec"]["template"];
        assert_eq!(pod["metadata"], json!({"creationTimestamp": null}));
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(pod["spec"]["restartPolicy"], "OnFailure");
        assert!(spec["jobTemplate"]["spec"].get("backoffLimit").is_none(), "job defaults are not applied to templates");
    }
}
