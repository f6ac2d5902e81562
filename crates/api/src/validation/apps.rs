//! `apps/v1` workloads: Deployment, ReplicaSet, StatefulSet, DaemonSet and
//! ControllerRevision (`pkg/apis/apps/validation`, plus the selector immutability the
//! registry strategies add on update).

use super::field::{self, Bad, Path, get, int_of, obj, str_of, sub};
use super::meta::{self, FIELD_IMMUTABLE, Selector};
use super::names::{self, NameRule};
use super::pod;
use crate::status::Cause;
use serde_json::Value;

/// Go's `%#v` of an `intstr.IntOrString`, as upstream prints it in these errors.
fn go_int_or_string(v: &Value) -> String {
    match v {
        Value::String(s) => format!("intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}", field::go_quote(s)),
        other => format!("intstr.IntOrString{{Type:0, IntVal:{}, StrVal:\"\"}}", other.as_i64().unwrap_or(0)),
    }
}

/// A percentage's number, or the integer itself.
fn int_or_percent_value(v: &Value) -> i64 {
    match v {
        Value::String(s) if names::percent(s).is_empty() => s[..s.len() - 1].parse().unwrap_or(0),
        Value::String(_) => 0,
        other => other.as_i64().unwrap_or(0),
    }
}

pub fn validate_positive_int_or_percent(v: &Value, path: &Path) -> Vec<Cause> {
    match v {
        Value::String(s) => {
            names::percent(s).iter().map(|m| field::invalid(path, Bad::Raw(go_int_or_string(v)), m)).collect()
        }
        Value::Number(n) => meta::validate_nonnegative(n.as_i64().unwrap_or(-1), path),
        _ => vec![field::invalid(path, Bad::Raw(go_int_or_string(v)), "must be an integer or percentage (e.g '5%%')")],
    }
}

pub fn is_not_more_than_100_percent(v: &Value, path: &Path) -> Vec<Cause> {
    match v {
        Value::String(s) if names::percent(s).is_empty() && int_or_percent_value(v) > 100 => {
            vec![field::invalid(path, Bad::Raw(go_int_or_string(v)), "must not be greater than 100%")]
        }
        _ => Vec::new(),
    }
}

fn labels_mismatch(tpl_meta: &Value, path: &Path) -> Cause {
    field::invalid(
        &path.child("metadata").child("labels"),
        Bad::Raw(field::go_string_map(obj(tpl_meta, "labels"))),
        "`selector` does not match template `labels`",
    )
}

/// Selector presence, validity and emptiness, shared by the replica controllers.
fn selector_checks(spec: &Value, path: &Path, kind: &str, required: bool) -> (Vec<Cause>, Option<Selector>) {
    let mut errs = Vec::new();
    let sel = get(spec, "selector");
    match sel {
        None if required => errs.push(field::required(&path.child("selector"), "")),
        None => {}
        Some(s) => {
            errs.extend(meta::validate_label_selector(Some(s), &path.child("selector")));
            if meta::selector_has_no_terms(s) {
                errs.push(field::invalid(
                    &path.child("selector"),
                    Bad::Raw(field::go_label_selector(s)),
                    &format!("empty selector is invalid for {kind}"),
                ));
            }
        }
    }
    (errs, Selector::from(sel))
}

/// `ValidatePodTemplateSpecForReplicaSet`, used by Deployments and ReplicaSets.
fn template_for_replicaset(spec: &Value, selector: &Selector, path: &Path, kind: &str) -> Vec<Cause> {
    let tpl = sub(spec, "template");
    let mut errs = Vec::new();
    if !selector.is_empty() && !selector.matches(obj(sub(tpl, "metadata"), "labels")) {
        errs.push(labels_mismatch(sub(tpl, "metadata"), path));
    }
    errs.extend(pod::validate_pod_template_spec(tpl, path));
    errs.extend(restart_always_and_no_deadline(tpl, path, kind));
    errs
}

fn restart_always_and_no_deadline(tpl: &Value, path: &Path, kind: &str) -> Vec<Cause> {
    let mut errs = Vec::new();
    let tspec = sub(tpl, "spec");
    let rp = str_of(tspec, "restartPolicy");
    if rp != "Always" {
        errs.push(field::not_supported(&path.child("spec").child("restartPolicy"), Bad::Str(rp), &["Always"]));
    }
    if get(tspec, "activeDeadlineSeconds").is_some() {
        errs.push(field::forbidden(
            &path.child("spec").child("activeDeadlineSeconds"),
            &format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
    errs
}

fn nonneg(v: &Value, key: &str, path: &Path) -> Vec<Cause> {
    int_of(v, key).map(|n| meta::validate_nonnegative(n, &path.child(key))).unwrap_or_default()
}

// ---- Deployment

fn deployment_spec(spec: &Value, path: &Path) -> Vec<Cause> {
    let mut errs = nonneg(spec, "replicas", path);
    let (serrs, selector) = selector_checks(spec, path, "deployment", true);
    errs.extend(serrs);
    match selector {
        Some(s) => errs.extend(template_for_replicaset(spec, &s, &path.child("template"), "ReplicaSet")),
        None => errs.push(field::invalid(
            &path.child("selector"),
            Bad::Raw(field::go_label_selector(sub(spec, "selector"))),
            "invalid label selector",
        )),
    }
    let strategy = sub(spec, "strategy");
    let sp = path.child("strategy");
    match str_of(strategy, "type") {
        "Recreate" => {
            if get(strategy, "rollingUpdate").is_some() {
                errs.push(field::forbidden(
                    &sp.child("rollingUpdate"),
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => match get(strategy, "rollingUpdate") {
            None => errs.push(field::required(&sp.child("rollingUpdate"), "this should be defaulted and never be nil")),
            Some(ru) => {
                let rp = sp.child("rollingUpdate");
                let zero = Value::from(0);
                let mu = get(ru, "maxUnavailable").unwrap_or(&zero);
                let ms = get(ru, "maxSurge").unwrap_or(&zero);
                errs.extend(validate_positive_int_or_percent(mu, &rp.child("maxUnavailable")));
                errs.extend(validate_positive_int_or_percent(ms, &rp.child("maxSurge")));
                if int_or_percent_value(mu) == 0 && int_or_percent_value(ms) == 0 {
                    errs.push(field::invalid(
                        &rp.child("maxUnavailable"),
                        Bad::Raw(go_int_or_string(mu)),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
                errs.extend(is_not_more_than_100_percent(mu, &rp.child("maxUnavailable")));
            }
        },
        _ => errs.push(field::not_supported(&sp, Bad::Json(strategy), &["Recreate", "RollingUpdate"])),
    }
    errs.extend(nonneg(spec, "minReadySeconds", path));
    errs.extend(nonneg(spec, "revisionHistoryLimit", path));
    if let Some(pds) = int_of(spec, "progressDeadlineSeconds") {
        errs.extend(meta::validate_nonnegative(pds, &path.child("progressDeadlineSeconds")));
        if pds <= int_of(spec, "minReadySeconds").unwrap_or(0) {
            errs.push(field::invalid(
                &path.child("progressDeadlineSeconds"),
                Bad::Int(pds),
                "must be greater than minReadySeconds",
            ));
        }
    }
    errs
}

fn selector_immutable(new: &Value, old: &Value) -> Vec<Cause> {
    let (n, o) = (get(sub(new, "spec"), "selector"), get(sub(old, "spec"), "selector"));
    if field::differs(n, o) {
        let rendered = n.map(field::go_label_selector).unwrap_or_else(|| "null".to_string());
        vec![field::invalid(&Path::new("spec.selector"), Bad::Raw(rendered), FIELD_IMMUTABLE)]
    } else {
        Vec::new()
    }
}

pub fn validate_deployment(obj: &Value) -> Vec<Cause> {
    let mut errs =
        meta::validate_object_meta(sub(obj, "metadata"), true, NameRule::Dns1123Subdomain, &Path::new("metadata"));
    errs.extend(deployment_spec(sub(obj, "spec"), &Path::new("spec")));
    errs
}

pub fn validate_deployment_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs =
        meta::validate_object_meta_update(sub(new, "metadata"), sub(old, "metadata"), &Path::new("metadata"));
    errs.extend(deployment_spec(sub(new, "spec"), &Path::new("spec")));
    errs.extend(selector_immutable(new, old));
    errs
}

fn status_counts(status: &Value, path: &Path, keys: &[&str]) -> Vec<Cause> {
    keys.iter().flat_map(|k| nonneg(status, k, path)).collect()
}

fn greater_than(status: &Value, path: &Path, small: &str, big: &str, msg: &str) -> Option<Cause> {
    let (s, b) = (int_of(status, small).unwrap_or(0), int_of(status, big).unwrap_or(0));
    (s > b).then(|| field::invalid(&path.child(small), Bad::Int(s), msg))
}

fn collision_count(new: &Value, old: &Value) -> Option<Cause> {
    let (n, o) = (get(sub(new, "status"), "collisionCount"), get(sub(old, "status"), "collisionCount"));
    let decremented = match (n.and_then(Value::as_i64), o.and_then(Value::as_i64)) {
        (None, Some(_)) => true,
        (Some(a), Some(b)) => a < b,
        _ => false,
    };
    decremented.then(|| {
        field::invalid(
            &Path::new("status.collisionCount"),
            Bad::Int(n.and_then(Value::as_i64).unwrap_or(0)),
            "cannot be decremented",
        )
    })
}

pub fn validate_deployment_status_update(new: &Value, old: &Value) -> Vec<Cause> {
    let st = Path::new("status");
    let status = sub(new, "status");
    let mut errs =
        meta::validate_object_meta_update(sub(new, "metadata"), sub(old, "metadata"), &Path::new("metadata"));
    errs.extend(status_counts(
        status,
        &st,
        &[
            "observedGeneration",
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
            "unavailableReplicas",
            "collisionCount",
        ],
    ));
    let msg = "cannot be greater than status.replicas";
    errs.extend(greater_than(status, &st, "updatedReplicas", "replicas", msg));
    errs.extend(greater_than(status, &st, "readyReplicas", "replicas", msg));
    errs.extend(greater_than(status, &st, "availableReplicas", "replicas", msg));
    errs.extend(greater_than(
        status,
        &st,
        "availableReplicas",
        "readyReplicas",
        "cannot be greater than readyReplicas",
    ));
    errs.extend(collision_count(new, old));
    errs
}

// ---- ReplicaSet

fn replicaset_spec(spec: &Value, path: &Path) -> Vec<Cause> {
    let mut errs = nonneg(spec, "replicas", path);
    errs.extend(nonneg(spec, "minReadySeconds", path));
    // Upstream's message says "deployment" here too.
    let (serrs, selector) = selector_checks(spec, path, "deployment", true);
    errs.extend(serrs);
    match selector {
        Some(s) => errs.extend(template_for_replicaset(spec, &s, &path.child("template"), "ReplicaSet")),
        None => errs.push(field::invalid(
            &path.child("selector"),
            Bad::Raw(field::go_label_selector(sub(spec, "selector"))),
            "invalid label selector",
        )),
    }
    errs
}

pub fn validate_replicaset(obj: &Value) -> Vec<Cause> {
    let mut errs =
        meta::validate_object_meta(sub(obj, "metadata"), true, NameRule::Dns1123Subdomain, &Path::new("metadata"));
    errs.extend(replicaset_spec(sub(obj, "spec"), &Path::new("spec")));
    errs
}

pub fn validate_replicaset_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs =
        meta::validate_object_meta_update(sub(new, "metadata"), sub(old, "metadata"), &Path::new("metadata"));
    errs.extend(replicaset_spec(sub(new, "spec"), &Path::new("spec")));
    errs.extend(selector_immutable(new, old));
    errs
}

pub fn validate_replicaset_status_update(new: &Value, old: &Value) -> Vec<Cause> {
    let st = Path::new("status");
    let status = sub(new, "status");
    let mut errs =
        meta::validate_object_meta_update(sub(new, "metadata"), sub(old, "metadata"), &Path::new("metadata"));
    errs.extend(status_counts(
        status,
        &st,
        &["replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas", "observedGeneration"],
    ));
    let msg = "cannot be greater than status.replicas";
    errs.extend(greater_than(status, &st, "fullyLabeledReplicas", "replicas", msg));
    errs.extend(greater_than(status, &st, "readyReplicas", "replicas", msg));
    errs.extend(greater_than(status, &st, "availableReplicas", "replicas", msg));
    errs.extend(greater_than(
        status,
        &st,
        "availableReplicas",
        "readyReplicas",
        "cannot be greater than readyReplicas",
    ));
    errs
}

// ---- StatefulSet

fn statefulset_spec(spec: &Value, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    match str_of(spec, "podManagementPolicy") {
        "" => errs.push(field::required(&path.child("podManagementPolicy"), "")),
        "OrderedReady" | "Parallel" => {}
        p => errs.push(field::invalid(
            &path.child("podManagementPolicy"),
            Bad::Str(p),
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let us = sub(spec, "updateStrategy");
    let up = path.child("updateStrategy");
    match str_of(us, "type") {
        "" => errs.push(field::required(&up, "")),
        "OnDelete" => {
            if let Some(ru) = get(us, "rollingUpdate") {
                errs.push(field::invalid(
                    &up.child("rollingUpdate"),
                    Bad::Json(ru),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" => {
            if let Some(ru) = get(us, "rollingUpdate") {
                let rp = up.child("rollingUpdate");
                errs.extend(nonneg(ru, "partition", &rp));
                if let Some(mu) = get(ru, "maxUnavailable") {
                    let mp = rp.child("maxUnavailable");
                    errs.extend(validate_positive_int_or_percent(mu, &mp));
                    if int_or_percent_value(mu) == 0 {
                        errs.push(field::invalid(&mp, Bad::Raw(go_int_or_string(mu)), "cannot be 0"));
                    }
                    errs.extend(is_not_more_than_100_percent(mu, &mp));
                }
            }
        }
        _ => errs.push(field::invalid(&up, Bad::Json(us), "must be 'RollingUpdate' or 'OnDelete'")),
    }
    if let Some(policy) = get(spec, "persistentVolumeClaimRetentionPolicy") {
        let pp = path.child("persistentVolumeClaimRetentionPolicy");
        for key in ["whenDeleted", "whenScaled"] {
            let v = str_of(policy, key);
            if v != "Retain" && v != "Delete" {
                errs.push(field::not_supported(&pp.child(key), Bad::Str(v), &["Retain", "Delete"]));
            }
        }
    }
    errs.extend(nonneg(spec, "replicas", path));
    errs.extend(nonneg(spec, "minReadySeconds", path));
    if let Some(start) = int_of(sub(spec, "ordinals"), "start") {
        errs.extend(meta::validate_nonnegative(start, &path.child("ordinals.start")));
    }
    let (serrs, selector) = selector_checks(spec, path, "statefulset", true);
    errs.extend(serrs);
    let tpl = sub(spec, "template");
    let tp = path.child("template");
    match selector {
        None => errs.push(field::invalid(
            &path.child("selector"),
            Bad::Raw(field::go_label_selector(sub(spec, "selector"))),
            "",
        )),
        Some(sel) => {
            // Upstream checks only the template's labels and annotations here, not its pod spec.
            let tm = sub(tpl, "metadata");
            if !sel.is_empty() && !sel.matches(obj(tm, "labels")) {
                errs.push(labels_mismatch(tm, &tp));
            }
            errs.extend(meta::validate_labels(obj(tm, "labels"), &tp.child("labels")));
            errs.extend(meta::validate_annotations(obj(tm, "annotations"), &tp.child("annotations")));
        }
    }
    errs.extend(restart_always_and_no_deadline(tpl, &tp, "StatefulSet"));
    errs
}

pub fn validate_statefulset(obj: &Value) -> Vec<Cause> {
    let mut errs =
        meta::validate_object_meta(sub(obj, "metadata"), true, NameRule::Dns1123Label, &Path::new("metadata"));
    errs.extend(statefulset_spec(sub(obj, "spec"), &Path::new("spec")));
    errs
}

pub fn validate_statefulset_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs =
        meta::validate_object_meta_update(sub(new, "metadata"), sub(old, "metadata"), &Path::new("metadata"));
    errs.extend(statefulset_spec(sub(new, "spec"), &Path::new("spec")));
    let strip = |v: &Value| {
        let mut s = sub(v, "spec").clone();
        if let Some(m) = s.as_object_mut() {
            for k in [
                "replicas",
                "template",
                "updateStrategy",
                "minReadySeconds",
                "ordinals",
                "persistentVolumeClaimRetentionPolicy",
            ] {
                m.remove(k);
            }
        }
        s
    };
    if strip(new) != strip(old) {
        errs.push(field::forbidden(
            &Path::new("spec"),
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        ));
    }
    errs
}

pub fn validate_statefulset_status_update(new: &Value, old: &Value) -> Vec<Cause> {
    let st = Path::new("status");
    let status = sub(new, "status");
    let mut errs = status_counts(
        status,
        &st,
        &[
            "replicas",
            "readyReplicas",
            "currentReplicas",
            "updatedReplicas",
            "availableReplicas",
            "observedGeneration",
            "collisionCount",
        ],
    );
    let msg = "cannot be greater than status.replicas";
    for k in ["readyReplicas", "currentReplicas", "updatedReplicas", "availableReplicas"] {
        errs.extend(greater_than(status, &st, k, "replicas", msg));
    }
    errs.extend(greater_than(
        status,
        &st,
        "availableReplicas",
        "readyReplicas",
        "cannot be greater than status.readyReplicas",
    ));
    errs.extend(meta::validate_object_meta_update(sub(new, "metadata"), sub(old, "metadata"), &Path::new("metadata")));
    errs.extend(collision_count(new, old));
    errs
}

// ---- DaemonSet

fn daemonset_spec(spec: &Value, path: &Path) -> Vec<Cause> {
    let mut errs = meta::validate_label_selector(get(spec, "selector"), &path.child("selector"));
    let tpl = sub(spec, "template");
    let tp = path.child("template");
    if let Some(sel) = Selector::from(get(spec, "selector"))
        && !sel.matches(obj(sub(tpl, "metadata"), "labels"))
    {
        errs.push(labels_mismatch(sub(tpl, "metadata"), &tp));
    }
    if let Some(s) = get(spec, "selector")
        && meta::selector_has_no_terms(s)
    {
        errs.push(field::invalid(
            &path.child("selector"),
            Bad::Raw(field::go_label_selector(s)),
            "empty selector is invalid for daemonset",
        ));
    }
    errs.extend(pod::validate_pod_template_spec(tpl, &tp));
    errs.extend(restart_always_and_no_deadline(tpl, &tp, "DaemonSet"));
    errs.extend(nonneg(spec, "minReadySeconds", path));
    errs.extend(nonneg(spec, "templateGeneration", path));
    let us = sub(spec, "updateStrategy");
    let up = path.child("updateStrategy");
    match str_of(us, "type") {
        "OnDelete" => {}
        "RollingUpdate" => match get(us, "rollingUpdate") {
            None => errs.push(field::required(&up.child("rollingUpdate"), "")),
            Some(ru) => {
                let rp = up.child("rollingUpdate");
                let zero = Value::from(0);
                let mu = get(ru, "maxUnavailable").unwrap_or(&zero);
                let ms = get(ru, "maxSurge").unwrap_or(&zero);
                errs.extend(validate_positive_int_or_percent(mu, &rp.child("maxUnavailable")));
                errs.extend(validate_positive_int_or_percent(ms, &rp.child("maxSurge")));
                errs.extend(is_not_more_than_100_percent(mu, &rp.child("maxUnavailable")));
                errs.extend(is_not_more_than_100_percent(ms, &rp.child("maxSurge")));
                let (has_u, has_s) = (int_or_percent_value(mu) != 0, int_or_percent_value(ms) != 0);
                if has_u && has_s {
                    errs.push(field::invalid(
                        &rp.child("maxSurge"),
                        Bad::Raw(go_int_or_string(ms)),
                        "may not be set when maxUnavailable is non-zero",
                    ));
                } else if !has_u && !has_s {
                    errs.push(field::required(&rp.child("maxUnavailable"), "cannot be 0 when maxSurge is 0"));
                }
            }
        },
        _ => errs.push(field::not_supported(&up, Bad::Json(us), &["RollingUpdate", "OnDelete"])),
    }
    errs.extend(nonneg(spec, "revisionHistoryLimit", path));
    errs
}

pub fn validate_daemonset(obj: &Value) -> Vec<Cause> {
    let mut errs =
        meta::validate_object_meta(sub(obj, "metadata"), true, NameRule::Dns1123Subdomain, &Path::new("metadata"));
    errs.extend(daemonset_spec(sub(obj, "spec"), &Path::new("spec")));
    errs
}

pub fn validate_daemonset_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs =
        meta::validate_object_meta_update(sub(new, "metadata"), sub(old, "metadata"), &Path::new("metadata"));
    let (ns, os) = (sub(new, "spec"), sub(old, "spec"));
    let (ng, og) = (int_of(ns, "templateGeneration").unwrap_or(0), int_of(os, "templateGeneration").unwrap_or(0));
    let gp = Path::new("spec.templateGeneration");
    if ng < og {
        errs.push(field::invalid(&gp, Bad::Int(ng), "must not be decremented"));
    }
    let template_changed = sub(ns, "template") != sub(os, "template");
    if ng > og && !template_changed {
        errs.push(field::invalid(&gp, Bad::Int(ng), "must not be incremented without template update"));
    }
    errs.extend(daemonset_spec(ns, &Path::new("spec")));
    errs.extend(selector_immutable(new, old));
    errs
}

pub fn validate_daemonset_status_update(new: &Value, old: &Value) -> Vec<Cause> {
    let st = Path::new("status");
    let mut errs =
        meta::validate_object_meta_update(sub(new, "metadata"), sub(old, "metadata"), &Path::new("metadata"));
    errs.extend(status_counts(
        sub(new, "status"),
        &st,
        &[
            "currentNumberScheduled",
            "numberMisscheduled",
            "desiredNumberScheduled",
            "numberReady",
            "observedGeneration",
            "updatedNumberScheduled",
            "numberAvailable",
            "numberUnavailable",
            "collisionCount",
        ],
    ));
    errs.extend(collision_count(new, old));
    errs
}

// ---- ControllerRevision

pub fn validate_controller_revision(obj: &Value) -> Vec<Cause> {
    let mut errs =
        meta::validate_object_meta(sub(obj, "metadata"), true, NameRule::Dns1123Subdomain, &Path::new("metadata"));
    if get(obj, "data").is_none() {
        errs.push(field::required(&Path::new("data"), "data is mandatory"));
    }
    errs.extend(nonneg(obj, "revision", &Path::new("")));
    errs
}

pub fn validate_controller_revision_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs =
        meta::validate_object_meta_update(sub(new, "metadata"), sub(old, "metadata"), &Path::new("metadata"));
    errs.extend(validate_controller_revision(new));
    if field::differs(get(new, "data"), get(old, "data")) {
        errs.push(field::invalid(&Path::new("data"), Bad::Json(sub(new, "data")), FIELD_IMMUTABLE));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What `kubectl create deployment web --image=nginx` stores once defaulted.
    pub fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {
                "replicas": 1, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {
                    "metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                    "spec": {
                        "containers": [{"name": "nginx", "image": "nginx", "imagePullPolicy": "Always",
                            "resources": {}, "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File"}],
                        "dnsPolicy": "ClusterFirst", "restartPolicy": "Always",
                        "schedulerName": "default-scheduler", "securityContext": {},
                        "terminationGracePeriodSeconds": 30
                    }
                }
            }
        })
    }

    fn find<'a>(errs: &'a [Cause], f: &str) -> Option<&'a Cause> {
        errs.iter().find(|c| c.field == f)
    }

    #[test]
    fn a_defaulted_deployment_is_valid() {
        assert!(validate_deployment(&deployment()).is_empty(), "{:?}", validate_deployment(&deployment()));
    }

    #[test]
    fn selector_must_match_template() {
        let mut d = deployment();
        d["spec"]["selector"] = json!({"matchLabels": {"app": "other"}});
        let errs = validate_deployment(&d);
        let c = find(&errs, "spec.template.metadata.labels").unwrap();
        assert_eq!(
            c.message,
            "Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`"
        );

        d["spec"].as_object_mut().unwrap().remove("selector");
        let errs = validate_deployment(&d);
        assert_eq!(find(&errs, "spec.selector").unwrap().message, "Required value");
        d["spec"]["selector"] = json!({});
        let errs = validate_deployment(&d);
        assert!(find(&errs, "spec.selector").unwrap().message.ends_with("empty selector is invalid for deployment"));
    }

    #[test]
    fn deployment_spec_rules() {
        let mut d = deployment();
        d["spec"]["replicas"] = json!(-1);
        d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        d["spec"]["strategy"]["rollingUpdate"] = json!({"maxSurge": 0, "maxUnavailable": "0%"});
        d["spec"]["progressDeadlineSeconds"] = json!(5);
        d["spec"]["minReadySeconds"] = json!(10);
        let errs = validate_deployment(&d);
        assert_eq!(
            find(&errs, "spec.replicas").unwrap().message,
            "Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(
            find(&errs, "spec.template.spec.restartPolicy").unwrap().message,
            "Unsupported value: \"Never\": supported values: \"Always\""
        );
        assert_eq!(
            find(&errs, "spec.strategy.rollingUpdate.maxUnavailable").unwrap().message,
            "Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"0%\"}: may not be 0 when `maxSurge` is 0"
        );
        assert!(
            find(&errs, "spec.progressDeadlineSeconds")
                .unwrap()
                .message
                .contains("must be greater than minReadySeconds")
        );

        let mut d = deployment();
        d["spec"]["strategy"] = json!({"type": "Recreate", "rollingUpdate": {}});
        assert!(find(&validate_deployment(&d), "spec.strategy.rollingUpdate").is_some());
        d["spec"]["strategy"] = json!({"type": "Blue"});
        assert_eq!(find(&validate_deployment(&d), "spec.strategy").unwrap().reason, "FieldValueNotSupported");
        let mut d = deployment();
        d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] = json!("150%");
        assert!(
            find(&validate_deployment(&d), "spec.strategy.rollingUpdate.maxUnavailable")
                .unwrap()
                .message
                .contains("100%")
        );
    }

    #[test]
    fn selectors_are_immutable_on_update() {
        let mut old = deployment();
        old["metadata"]["resourceVersion"] = json!("1");
        let mut new = old.clone();
        new["spec"]["selector"] = json!({"matchLabels": {"app": "web", "tier": "x"}});
        new["spec"]["template"]["metadata"]["labels"]["tier"] = json!("x");
        let errs = validate_deployment_update(&new, &old);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(
            errs[0].message,
            "Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"tier\":\"x\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
        );
        let mut scaled = old.clone();
        scaled["spec"]["replicas"] = json!(3);
        assert!(validate_deployment_update(&scaled, &old).is_empty());
    }

    #[test]
    fn replicasets_and_status() {
        let d = deployment();
        let rs = json!({"metadata": {"name": "web-1", "namespace": "default"}, "spec": {
            "replicas": 1, "selector": d["spec"]["selector"].clone(), "template": d["spec"]["template"].clone()}});
        assert!(validate_replicaset(&rs).is_empty());
        let mut new = rs.clone();
        new["metadata"]["resourceVersion"] = json!("2");
        new["status"] = json!({"replicas": 1, "readyReplicas": 2, "availableReplicas": 1});
        let errs = validate_replicaset_status_update(&new, &rs);
        assert_eq!(
            find(&errs, "status.readyReplicas").unwrap().message,
            "Invalid value: 2: cannot be greater than status.replicas"
        );
    }

    #[test]
    fn statefulsets() {
        let d = deployment();
        let sts = json!({"metadata": {"name": "db", "namespace": "default"}, "spec": {
            "replicas": 1, "podManagementPolicy": "OrderedReady", "revisionHistoryLimit": 10,
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            "selector": d["spec"]["selector"].clone(), "serviceName": "db",
            "template": d["spec"]["template"].clone()}});
        assert!(validate_statefulset(&sts).is_empty(), "{:?}", validate_statefulset(&sts));
        let mut bad = sts.clone();
        bad["metadata"]["name"] = json!("db.x");
        bad["spec"]["podManagementPolicy"] = json!("Random");
        bad["spec"]["updateStrategy"] = json!({"type": "OnDelete", "rollingUpdate": {"partition": 1}});
        bad["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] = json!("Keep");
        let errs = validate_statefulset(&bad);
        assert_eq!(find(&errs, "metadata.name").unwrap().message, "Invalid value: \"db.x\": must not contain dots");
        assert!(
            find(&errs, "spec.podManagementPolicy").unwrap().message.contains("must be 'OrderedReady' or 'Parallel'")
        );
        assert!(find(&errs, "spec.updateStrategy.rollingUpdate").is_some());
        assert!(find(&errs, "spec.persistentVolumeClaimRetentionPolicy.whenScaled").is_some());

        let mut old = sts.clone();
        old["metadata"]["resourceVersion"] = json!("1");
        let mut new = old.clone();
        new["spec"]["serviceName"] = json!("other");
        let errs = validate_statefulset_update(&new, &old);
        assert!(find(&errs, "spec").unwrap().message.contains("updates to statefulset spec for fields other than"));
        let mut scaled = old.clone();
        scaled["spec"]["replicas"] = json!(3);
        assert!(validate_statefulset_update(&scaled, &old).is_empty());
    }

    #[test]
    fn daemonsets() {
        let d = deployment();
        let ds = json!({"metadata": {"name": "agent", "namespace": "kube-system"}, "spec": {
            "revisionHistoryLimit": 10,
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
            "selector": d["spec"]["selector"].clone(), "template": d["spec"]["template"].clone()}});
        assert!(validate_daemonset(&ds).is_empty(), "{:?}", validate_daemonset(&ds));
        let mut bad = ds.clone();
        bad["spec"]["updateStrategy"]["rollingUpdate"] = json!({"maxUnavailable": 1, "maxSurge": 1});
        let errs = validate_daemonset(&bad);
        assert!(
            find(&errs, "spec.updateStrategy.rollingUpdate.maxSurge")
                .unwrap()
                .message
                .contains("may not be set when maxUnavailable is non-zero")
        );
        bad["spec"]["updateStrategy"]["rollingUpdate"] = json!({"maxUnavailable": 0, "maxSurge": 0});
        let errs = validate_daemonset(&bad);
        assert_eq!(
            find(&errs, "spec.updateStrategy.rollingUpdate.maxUnavailable").unwrap().message,
            "Required value: cannot be 0 when maxSurge is 0"
        );
    }

    #[test]
    fn controller_revisions() {
        let cr = json!({"metadata": {"name": "web-1", "namespace": "d"}, "revision": 1, "data": {"spec": {}}});
        assert!(validate_controller_revision(&cr).is_empty());
        let mut new = cr.clone();
        new["metadata"]["resourceVersion"] = json!("2");
        new["data"] = json!({"spec": {"x": 1}});
        assert_eq!(
            find(&validate_controller_revision_update(&new, &cr), "data").unwrap().message.split(": ").last(),
            Some("field is immutable")
        );
        assert!(
            find(&validate_controller_revision(&json!({"metadata": {"name": "a", "namespace": "d"}})), "data")
                .is_some()
        );
    }
}
