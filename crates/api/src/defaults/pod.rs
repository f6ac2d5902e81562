//! Pod and pod template defaults: `SetDefaults_PodSpec`, `SetDefaults_Container`,
//! probes, volumes and field selectors for every pod spec, and `SetDefaults_Pod` for
//! Pods proper (requests from limits, service links, host-network ports).

use super::{
    child, default_str, default_value, existing, is_unset, items, resource_list, str_field, template_metadata,
};
use serde_json::{Map, Value, json};

/// `ParseImageName`'s tag: `latest` when neither tag nor digest is given; empty when
/// the reference does not parse or pins a digest only.
fn image_tag(image: &str) -> &str {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    let (repo_last, tag) = match last.split_once(':') {
        Some((r, t)) => (r, Some(t)),
        None => (last, None),
    };
    // Repository path components must be lowercase; the first component may be a
    // registry host (it has a dot or a colon, or is localhost).
    let path_start = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" || first != first.to_lowercase() => {
            rest
        }
        _ => name,
    };
    let path = path_start.strip_suffix(last).unwrap_or(path_start);
    let valid_tag = |t: &str| {
        !t.is_empty()
            && t.len() <= 128
            && t.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && t.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    };
    let valid = !repo_last.is_empty()
        && path.chars().chain(repo_last.chars()).all(|c| !c.is_ascii_uppercase())
        && tag.is_none_or(valid_tag)
        && digest.is_none_or(|d| d.contains(':'));
    match (valid, tag, digest) {
        (false, _, _) => "",
        (true, Some(t), _) => t,
        (true, None, None) => "latest",
        (true, None, Some(_)) => "",
    }
}

fn pull_policy_for(image: &str) -> &'static str {
    if image_tag(image) == "latest" { "Always" } else { "IfNotPresent" }
}

fn field_ref(m: &mut Map<String, Value>) {
    if let Some(fr) = existing(m, "fieldRef") {
        default_str(fr, "apiVersion", "v1");
    }
}

fn http_get(h: &mut Map<String, Value>) {
    if let Some(g) = existing(h, "httpGet") {
        default_str(g, "path", "/");
        default_str(g, "scheme", "HTTP");
    }
}

fn probe(p: &mut Map<String, Value>) {
    for (key, value) in [("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1), ("failureThreshold", 3)]
    {
        // Go's zero int means unset here.
        if p.get(key).is_none_or(|v| v.is_null() || v.as_i64() == Some(0)) {
            p.insert(key.to_string(), Value::from(value));
        }
    }
    http_get(p);
    if let Some(g) = existing(p, "grpc") {
        default_value(g, "service", Value::String(String::new()));
    }
}

fn container(c: &mut Map<String, Value>) {
    let image = str_field(c, "image").to_string();
    default_str(c, "imagePullPolicy", pull_policy_for(&image));
    default_str(c, "terminationMessagePath", "/dev/termination-log");
    default_str(c, "terminationMessagePolicy", "File");
    for port in items(c, "ports") {
        default_str(port, "protocol", "TCP");
    }
    for env in items(c, "env") {
        if let Some(from) = existing(env, "valueFrom") {
            field_ref(from);
        }
    }
    // `resources` is a struct in Go, so it is always written, empty or not.
    if let Some(res) = child(c, "resources") {
        resource_list(res, "limits");
        resource_list(res, "requests");
    }
    for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = existing(c, key) {
            probe(p);
        }
    }
    if let Some(lc) = existing(c, "lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = existing(lc, hook) {
                http_get(h);
            }
        }
    }
}

const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

/// `SetDefaults_PersistentVolumeClaimSpec` and its resource lists.
pub(super) fn claim_spec(spec: &mut Map<String, Value>) {
    default_value(spec, "volumeMode", json!("Filesystem"));
    if let Some(res) = existing(spec, "resources") {
        resource_list(res, "limits");
        resource_list(res, "requests");
    }
}

fn volume(v: &mut Map<String, Value>) {
    if VOLUME_SOURCES.iter().all(|k| is_unset(v, k)) {
        v.insert("emptyDir".into(), json!({}));
    }
    if let Some(hp) = existing(v, "hostPath") {
        default_value(hp, "type", json!(""));
    }
    if let Some(ed) = existing(v, "emptyDir")
        && let Some(limit) = ed.get_mut("sizeLimit")
    {
        super::canonical_quantity(limit);
    }
    for key in ["secret", "configMap"] {
        if let Some(s) = existing(v, key) {
            default_value(s, "defaultMode", json!(420));
        }
    }
    if let Some(d) = existing(v, "downwardAPI") {
        default_value(d, "defaultMode", json!(420));
        for item in items(d, "items") {
            field_ref(item);
        }
    }
    if let Some(p) = existing(v, "projected") {
        default_value(p, "defaultMode", json!(420));
        for source in items(p, "sources") {
            if let Some(d) = existing(source, "downwardAPI") {
                for item in items(d, "items") {
                    field_ref(item);
                }
            }
            if let Some(t) = existing(source, "serviceAccountToken") {
                default_value(t, "expirationSeconds", json!(3600));
            }
        }
    }
    if let Some(i) = existing(v, "iscsi") {
        default_str(i, "iscsiInterface", "default");
    }
    if let Some(r) = existing(v, "rbd") {
        default_str(r, "pool", "rbd");
        default_str(r, "user", "admin");
        default_str(r, "keyring", "/etc/ceph/keyring");
    }
    if let Some(a) = existing(v, "azureDisk") {
        default_value(a, "cachingMode", json!("ReadWrite"));
        default_value(a, "kind", json!("Shared"));
        default_value(a, "fsType", json!("ext4"));
        default_value(a, "readOnly", json!(false));
    }
    if let Some(s) = existing(v, "scaleIO") {
        default_str(s, "storageMode", "ThinProvisioned");
        default_str(s, "fsType", "xfs");
    }
    if let Some(e) = existing(v, "ephemeral")
        && let Some(t) = existing(e, "volumeClaimTemplate")
        && let Some(spec) = existing(t, "spec")
    {
        claim_spec(spec);
    }
    if let Some(img) = existing(v, "image") {
        let reference = str_field(img, "reference").to_string();
        default_str(img, "pullPolicy", pull_policy_for(&reference));
    }
}

/// `SetDefaults_PodSpec` with everything nested in it; what templates get.
pub(super) fn pod_spec(spec: &mut Map<String, Value>) {
    default_str(spec, "dnsPolicy", "ClusterFirst");
    default_str(spec, "restartPolicy", "Always");
    default_value(spec, "securityContext", json!({}));
    default_value(spec, "terminationGracePeriodSeconds", json!(30));
    default_str(spec, "schedulerName", "default-scheduler");
    for v in items(spec, "volumes") {
        volume(v);
    }
    for key in ["initContainers", "containers", "ephemeralContainers"] {
        for c in items(spec, key) {
            container(c);
        }
    }
    if let Some(overhead) = existing(spec, "overhead") {
        for q in overhead.values_mut() {
            super::canonical_quantity(q);
        }
    }
}

/// Defaults for a `PodTemplateSpec` inside a workload.
pub(super) fn template(t: &mut Map<String, Value>) {
    template_metadata(t);
    if let Some(spec) = child(t, "spec") {
        pod_spec(spec);
    }
}

/// Requests default to limits for the resources a container names only in limits.
fn requests_from_limits(c: &mut Map<String, Value>) {
    let Some(res) = existing(c, "resources") else {
        return;
    };
    let Some(limits) = res.get("limits").and_then(Value::as_object).cloned() else {
        return;
    };
    if let Some(requests) = child(res, "requests") {
        for (k, v) in limits {
            requests.entry(k).or_insert(v);
        }
    }
}

/// `SetObjectDefaults_Pod`.
pub(super) fn pod(obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else { return };
    let Some(spec) = child(m, "spec") else { return };
    pod_spec(spec);
    for key in ["containers", "initContainers"] {
        for c in items(spec, key) {
            requests_from_limits(c);
        }
    }
    default_value(spec, "enableServiceLinks", json!(true));
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        for key in ["containers", "initContainers"] {
            for c in items(spec, key) {
                for port in items(c, "ports") {
                    if port.get("hostPort").and_then(Value::as_i64).unwrap_or(0) == 0
                        && let Some(cp) = port.get("containerPort").cloned()
                    {
                        port.insert("hostPort".into(), cp);
                    }
                }
            }
        }
    }
    // Go writes the zero PodStatus as `{}`.
    default_value(m, "status", json!({}));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defaults::apply;
    use crate::registry::find;

    #[test]
    fn image_pull_policy_follows_the_tag() {
        assert_eq!(pull_policy_for("nginx"), "Always");
        assert_eq!(pull_policy_for("nginx:latest"), "Always");
        assert_eq!(pull_policy_for("nginx:1.25"), "IfNotPresent");
        assert_eq!(pull_policy_for("localhost:5000/app"), "Always");
        assert_eq!(pull_policy_for("localhost:5000/app:v1"), "IfNotPresent");
        assert_eq!(pull_policy_for("registry.example.com:443/team/app:latest"), "Always");
        assert_eq!(pull_policy_for("busybox@sha256:abcdef"), "IfNotPresent");
        assert_eq!(pull_policy_for("busybox:1@sha256:abcdef"), "IfNotPresent");
        assert_eq!(pull_policy_for("Busybox"), "IfNotPresent", "unparsable references are not :latest");
        assert_eq!(pull_policy_for(""), "IfNotPresent");
    }

    #[test]
    fn a_kubectl_run_pod_gets_upstreams_defaults() {
        let pods = find("", "v1", "pods").unwrap();
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "labels": {"run": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80}],
                "resources": {"limits": {"cpu": "0.5", "memory": "128Mi"}}}]}
        });
        apply(pods, &mut pod);
        assert_eq!(
            pod,
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web", "namespace": "default", "labels": {"run": "web"}},
                "spec": {
                    "containers": [{
                        "name": "web", "image": "nginx:1.25", "imagePullPolicy": "IfNotPresent",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "500m", "memory": "128Mi"}},
                        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"
                    }],
                    "dnsPolicy": "ClusterFirst", "enableServiceLinks": true, "restartPolicy": "Always",
                    "schedulerName": "default-scheduler", "securityContext": {}, "terminationGracePeriodSeconds": 30
                },
                "status": {}
            })
        );
    }

    #[test]
    fn probes_volumes_and_env() {
        let pods = find("", "v1", "pods").unwrap();
        let mut pod = json!({"spec": {
            "hostNetwork": true,
            "volumes": [
                {"name": "a"}, {"name": "b", "configMap": {"name": "c"}}, {"name": "c", "secret": {"secretName": "s"}},
                {"name": "d", "hostPath": {"path": "/x"}}, {"name": "e", "downwardAPI": {"items": [{"path": "l", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                {"name": "f", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}},
                {"name": "g", "emptyDir": {"sizeLimit": "1024Mi"}}
            ],
            "initContainers": [{"name": "init", "image": "busybox:latest"}],
            "containers": [{"name": "c", "image": "app:v1", "ports": [{"containerPort": 8080}],
                "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "livenessProbe": {"httpGet": {"port": 8080}},
                "readinessProbe": {"grpc": {"port": 9000}, "periodSeconds": 5},
                "lifecycle": {"preStop": {"httpGet": {"port": 80}}}}]
        }});
        apply(pods, &mut pod);
        let spec = &pod["spec"];
        assert_eq!(spec["volumes"][0]["emptyDir"], json!({}));
        assert_eq!(spec["volumes"][1]["configMap"]["defaultMode"], 420);
        assert_eq!(spec["volumes"][2]["secret"]["defaultMode"], 420);
        assert_eq!(spec["volumes"][3]["hostPath"]["type"], "");
        assert_eq!(spec["volumes"][4]["downwardAPI"]["defaultMode"], 420);
        assert_eq!(spec["volumes"][4]["downwardAPI"]["items"][0]["fieldRef"]["apiVersion"], "v1");
        assert_eq!(spec["volumes"][5]["projected"]["defaultMode"], 420);
        assert_eq!(spec["volumes"][5]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"], 3600);
        assert_eq!(spec["volumes"][6]["emptyDir"]["sizeLimit"], "1Gi");
        let c = &spec["containers"][0];
        assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
        assert_eq!(
            c["livenessProbe"],
            json!({"httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(c["readinessProbe"]["periodSeconds"], 5);
        assert_eq!(c["readinessProbe"]["grpc"]["service"], "");
        assert_eq!(c["lifecycle"]["preStop"]["httpGet"]["scheme"], "HTTP");
        assert_eq!(c["ports"][0]["hostPort"], 8080, "host network ports default to container ports");
        assert_eq!(c["resources"], json!({}));
        assert_eq!(spec["initContainers"][0]["imagePullPolicy"], "Always");
        assert_eq!(spec["initContainers"][0]["resources"], json!({}));
    }

    #[test]
    fn user_values_win() {
        let pods = find("", "v1", "pods").unwrap();
        let mut pod = json!({"spec": {"restartPolicy": "Never", "dnsPolicy": "None", "terminationGracePeriodSeconds": 0,
            "enableServiceLinks": false, "schedulerName": "mine",
            "containers": [{"name": "c", "image": "x", "imagePullPolicy": "Never", "terminationMessagePolicy": "FallbackToLogsOnError"}]}});
        apply(pods, &mut pod);
        let spec = &pod["spec"];
        assert_eq!(spec["restartPolicy"], "Never");
        assert_eq!(spec["dnsPolicy"], "None");
        assert_eq!(spec["terminationGracePeriodSeconds"], 0);
        assert_eq!(spec["enableServiceLinks"], false);
        assert_eq!(spec["schedulerName"], "mine");
        assert_eq!(spec["containers"][0]["imagePullPolicy"], "Never");
        assert_eq!(spec["containers"][0]["terminationMessagePolicy"], "FallbackToLogsOnError");
    }
}
