//! A container's environment, as the kubelet makes it: `envFrom` (configMaps and
//! secrets, with a prefix) first, then `env` (values with `$(VAR)` expansion,
//! configMap and secret keys, downward API fields and resources), later names
//! replacing earlier ones. Pure: the configMaps and secrets come in as data, fetched
//! by the caller; so do the pod's addresses and the node's allocatable resources.

use crate::quantity::Quantity;
use k8s_openapi::api::core::v1::{Container, Pod, ResourceFieldSelector};
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("configmap {0:?} not found")]
    ConfigMapNotFound(String),
    #[error("secret {0:?} not found")]
    SecretNotFound(String),
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKeyNotFound { namespace: String, name: String, key: String },
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKeyNotFound { namespace: String, name: String, key: String },
    #[error("unsupported fieldPath: {0}")]
    UnsupportedField(String),
    #[error("unsupported container resource: {0}")]
    UnsupportedResource(String),
    #[error("container {0:?} not found in the pod for resourceFieldRef")]
    NoSuchContainer(String),
    #[error("invalid quantity {value:?} for {what}")]
    BadQuantity { what: String, value: String },
    #[error("environment variable {0:?} has no value source")]
    NoSource(String),
}

/// The configMaps and secrets of the pod's namespace that the pod refers to; a name
/// missing from the map does not exist.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub config_maps: HashMap<String, BTreeMap<String, Vec<u8>>>,
    pub secrets: HashMap<String, BTreeMap<String, Vec<u8>>>,
    /// Service-account tokens by [`crate::volumes::token_key`]; a missing one could not
    /// be had.
    pub tokens: HashMap<String, String>,
}

/// What the downward API needs that is not in the pod object yet.
#[derive(Debug, Clone, Default)]
pub struct PodFacts {
    pub pod_ips: Vec<String>,
    pub host_ips: Vec<String>,
    /// The node's allocatable cpu and memory: the value of an unset limit.
    pub node_cpu: Option<String>,
    pub node_memory: Option<String>,
    pub node_ephemeral_storage: Option<String>,
}

/// Names of the configMaps and secrets a pod refers to (env, envFrom, volumes).
pub fn referenced(pod: &Pod) -> (Vec<String>, Vec<String>) {
    let mut cms = Vec::new();
    let mut secrets = Vec::new();
    let Some(spec) = pod.spec.as_ref() else { return (cms, secrets) };
    let all = spec.init_containers.iter().flatten().chain(spec.containers.iter());
    for c in all {
        for e in c.env_from.iter().flatten() {
            if let Some(r) = &e.config_map_ref {
                cms.push(r.name.clone());
            }
            if let Some(r) = &e.secret_ref {
                secrets.push(r.name.clone());
            }
        }
        for e in c.env.iter().flatten() {
            let Some(from) = &e.value_from else { continue };
            if let Some(r) = &from.config_map_key_ref {
                cms.push(r.name.clone());
            }
            if let Some(r) = &from.secret_key_ref {
                secrets.push(r.name.clone());
            }
        }
    }
    for v in spec.volumes.iter().flatten() {
        if let Some(c) = &v.config_map {
            cms.push(c.name.clone());
        }
        if let Some(s) = &v.secret
            && let Some(n) = &s.secret_name
        {
            secrets.push(n.clone());
        }
        for p in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(c) = &p.config_map {
                cms.push(c.name.clone());
            }
            if let Some(s) = &p.secret {
                secrets.push(s.name.clone());
            }
        }
    }
    for list in [&mut cms, &mut secrets] {
        list.sort();
        list.dedup();
        list.retain(|n| !n.is_empty());
    }
    (cms, secrets)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The container's environment, in order.
pub fn resolve(
    pod: &Pod,
    container: &Container,
    sources: &Sources,
    facts: &PodFacts,
) -> Result<Vec<(String, String)>, EnvError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let mut out: Vec<(String, String)> = Vec::new();
    let set =
        |out: &mut Vec<(String, String)>, name: String, value: String| match out.iter_mut().find(|(n, _)| *n == name) {
            Some(e) => e.1 = value,
            None => out.push((name, value)),
        };
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match sources.config_maps.get(&r.name) {
                Some(data) => {
                    for (k, v) in data {
                        let name = format!("{prefix}{k}");
                        if valid_name(&name) {
                            set(&mut out, name, text(v));
                        }
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(EnvError::ConfigMapNotFound(r.name.clone())),
            }
        }
        if let Some(r) = &from.secret_ref {
            match sources.secrets.get(&r.name) {
                Some(data) => {
                    for (k, v) in data {
                        let name = format!("{prefix}{k}");
                        if valid_name(&name) {
                            set(&mut out, name, text(v));
                        }
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(EnvError::SecretNotFound(r.name.clone())),
            }
        }
    }
    for e in container.env.iter().flatten() {
        let value = match &e.value_from {
            None => {
                let vars: HashMap<&str, &str> = out.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                expand(e.value.as_deref().unwrap_or(""), &vars)
            }
            Some(from) => {
                if let Some(r) = &from.config_map_key_ref {
                    match sources.config_maps.get(&r.name) {
                        Some(data) => match data.get(&r.key) {
                            Some(v) => text(v),
                            None if r.optional == Some(true) => continue,
                            None => {
                                return Err(EnvError::ConfigMapKeyNotFound {
                                    namespace,
                                    name: r.name.clone(),
                                    key: r.key.clone(),
                                });
                            }
                        },
                        None if r.optional == Some(true) => continue,
                        None => return Err(EnvError::ConfigMapNotFound(r.name.clone())),
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    match sources.secrets.get(&r.name) {
                        Some(data) => match data.get(&r.key) {
                            Some(v) => text(v),
                            None if r.optional == Some(true) => continue,
                            None => {
                                return Err(EnvError::SecretKeyNotFound {
                                    namespace,
                                    name: r.name.clone(),
                                    key: r.key.clone(),
                                });
                            }
                        },
                        None if r.optional == Some(true) => continue,
                        None => return Err(EnvError::SecretNotFound(r.name.clone())),
                    }
                } else if let Some(f) = &from.field_ref {
                    field_value(pod, facts, &f.field_path, false)?
                } else if let Some(r) = &from.resource_field_ref {
                    resource_value(pod, Some(container), r, facts)?
                } else {
                    return Err(EnvError::NoSource(e.name.clone()));
                }
            }
        };
        set(&mut out, e.name.clone(), value);
    }
    Ok(out)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('=') && name.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// `$(VAR)` replaced by the variable's value when it is defined (else left as is);
/// `$$` is a literal `$`, as upstream's expansion package does it.
pub fn expand(input: &str, vars: &HashMap<&str, &str>) -> String {
    let b = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            match b[i + 1] {
                b'$' => {
                    out.push_str(&input[last..i]);
                    out.push('$');
                    i += 2;
                    last = i;
                    continue;
                }
                b'(' => {
                    if let Some(close) = input[i + 2..].find(')') {
                        let name = &input[i + 2..i + 2 + close];
                        out.push_str(&input[last..i]);
                        match vars.get(name) {
                            Some(v) => out.push_str(v),
                            None => out.push_str(&input[i..i + 3 + close]),
                        }
                        i += 3 + close;
                        last = i;
                        continue;
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    out.push_str(&input[last..]);
    out
}

/// Go's `%q` for the label and annotation files of downwardAPI volumes.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter().flatten().map(|(k, v)| format!("{k}={}", go_quote(v))).collect::<Vec<_>>().join("\n")
}

/// A downward API field. `whole_maps` allows `metadata.labels` and
/// `metadata.annotations` without a key (volumes only).
pub fn field_value(pod: &Pod, facts: &PodFacts, path: &str, whole_maps: bool) -> Result<String, EnvError> {
    let m = &pod.metadata;
    let subscript = |prefix: &str| -> Option<String> {
        let rest = path.strip_prefix(prefix)?.strip_prefix("['")?.strip_suffix("']")?;
        Some(rest.to_string())
    };
    if let Some(k) = subscript("metadata.labels") {
        return Ok(m.labels.as_ref().and_then(|l| l.get(&k)).cloned().unwrap_or_default());
    }
    if let Some(k) = subscript("metadata.annotations") {
        return Ok(m.annotations.as_ref().and_then(|l| l.get(&k)).cloned().unwrap_or_default());
    }
    let spec = pod.spec.as_ref();
    Ok(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "metadata.labels" if whole_maps => format_map(m.labels.as_ref()),
        "metadata.annotations" if whole_maps => format_map(m.annotations.as_ref()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
        "status.podIP" => facts.pod_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" => facts.pod_ips.join(","),
        "status.hostIP" => facts.host_ips.first().cloned().unwrap_or_default(),
        "status.hostIPs" => facts.host_ips.join(","),
        other => return Err(EnvError::UnsupportedField(other.to_string())),
    })
}

fn parse(what: &str, value: &str) -> Result<Quantity, EnvError> {
    Quantity::parse(value).map_err(|_| EnvError::BadQuantity { what: what.to_string(), value: value.to_string() })
}

/// A `resourceFieldRef`: the container's limit or request divided by the divisor and
/// rounded up; an unset limit is the node's allocatable amount.
pub fn resource_value(
    pod: &Pod,
    current: Option<&Container>,
    r: &ResourceFieldSelector,
    facts: &PodFacts,
) -> Result<String, EnvError> {
    let spec = pod.spec.as_ref();
    let container = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => spec
            .into_iter()
            .flat_map(|s| s.containers.iter().chain(s.init_containers.iter().flatten()))
            .find(|c| c.name == name)
            .ok_or_else(|| EnvError::NoSuchContainer(name.to_string()))?,
        None => current.ok_or_else(|| EnvError::NoSuchContainer(String::new()))?,
    };
    let divisor = match r.divisor.as_ref().map(|d| d.0.as_str()).filter(|d| !d.is_empty()) {
        Some(d) => parse("divisor", d)?,
        None => parse("divisor", "1")?,
    };
    let resources = container.resources.as_ref();
    let (kind, resource) =
        r.resource.split_once('.').ok_or_else(|| EnvError::UnsupportedResource(r.resource.clone()))?;
    let list = match kind {
        "limits" => resources.and_then(|r| r.limits.as_ref()),
        "requests" => resources.and_then(|r| r.requests.as_ref()),
        _ => return Err(EnvError::UnsupportedResource(r.resource.clone())),
    };
    let set = list.and_then(|l| l.get(resource)).map(|q| q.0.clone());
    let node = match resource {
        "cpu" => facts.node_cpu.clone(),
        "memory" => facts.node_memory.clone(),
        "ephemeral-storage" => facts.node_ephemeral_storage.clone(),
        r if r.starts_with("hugepages-") => Some("0".to_string()),
        _ => return Err(EnvError::UnsupportedResource(r.resource.clone())),
    };
    let value = match (kind, set) {
        (_, Some(v)) => v,
        ("limits", None) => node.unwrap_or_else(|| "0".to_string()),
        _ => "0".to_string(),
    };
    let q = parse(&r.resource, &value)?;
    let n = if resource == "cpu" {
        // Upstream: ceil(milli value / divisor's milli value).
        let d = divisor.milli_ceil().max(1);
        let m = q.milli_ceil();
        m / d + i64::from(m % d != 0)
    } else {
        q.ceil_div_by(&divisor)
    };
    Ok(n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn sample() -> Pod {
        pod(json!({
            "metadata": {"name": "web", "namespace": "ns1", "uid": "u-1",
                         "labels": {"app": "web", "tier": "a\"b"}, "annotations": {"note": "x"}},
            "spec": {"nodeName": "node-a", "serviceAccountName": "default", "containers": [{
                "name": "main", "image": "busybox",
                "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "250m", "memory": "32Mi"}},
                "envFrom": [{"configMapRef": {"name": "cfg"}}, {"prefix": "S_", "secretRef": {"name": "sec"}}],
                "env": [
                    {"name": "A", "value": "a"},
                    {"name": "B", "value": "$(A)-$(MISSING)-$$(A)"},
                    {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}},
                    {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
                    {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k", "optional": true}}},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                    {"name": "CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                    {"name": "CPU_REQ", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
                    {"name": "color", "value": "override"}
                ]
            }]}
        }))
    }

    fn sources() -> Sources {
        let mut s = Sources::default();
        s.config_maps.insert(
            "cfg".into(),
            [("color".to_string(), b"blue".to_vec()), ("bad=key".to_string(), b"x".to_vec())].into_iter().collect(),
        );
        s.secrets.insert("sec".into(), [("password".to_string(), b"hunter2".to_vec())].into_iter().collect());
        s
    }

    fn facts() -> PodFacts {
        PodFacts {
            pod_ips: vec!["10.42.0.5".into()],
            host_ips: vec!["192.168.1.2".into()],
            node_cpu: Some("2".into()),
            node_memory: Some("8Gi".into()),
            node_ephemeral_storage: None,
        }
    }

    #[test]
    fn every_source_in_order() {
        let p = sample();
        let env = resolve(&p, &p.spec.as_ref().unwrap().containers[0], &sources(), &facts()).unwrap();
        let get = |n: &str| env.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(env[0], ("color".to_string(), "override".to_string()), "env replaces envFrom in place");
        assert_eq!(get("S_password"), Some("hunter2"));
        assert_eq!(get("bad=key"), None, "invalid names from envFrom are skipped");
        assert_eq!(get("B"), Some("a-$(MISSING)-$(A)"));
        assert_eq!(get("COLOR"), Some("blue"));
        assert_eq!(get("PASS"), Some("hunter2"));
        assert_eq!(get("OPT"), None);
        assert_eq!(get("POD"), Some("web"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("IP"), Some("10.42.0.5"));
        assert_eq!(get("NODE"), Some("node-a"));
        assert_eq!(get("MEM"), Some("64"));
        assert_eq!(get("CPU_LIMIT"), Some("2"), "an unset limit is the node's allocatable");
        assert_eq!(get("CPU_REQ"), Some("250"));
    }

    #[test]
    fn missing_sources_are_errors_unless_optional() {
        let p = sample();
        let c = &p.spec.as_ref().unwrap().containers[0];
        let mut s = sources();
        s.secrets.clear();
        assert_eq!(resolve(&p, c, &s, &facts()), Err(EnvError::SecretNotFound("sec".into())));
        let mut s = sources();
        s.config_maps.get_mut("cfg").unwrap().remove("color");
        let err = resolve(&p, c, &s, &facts()).unwrap_err();
        assert_eq!(err.to_string(), "couldn't find key color in ConfigMap ns1/cfg");
        assert_eq!(EnvError::ConfigMapNotFound("x".into()).to_string(), "configmap \"x\" not found");
    }

    #[test]
    fn downward_fields() {
        let p = sample();
        assert_eq!(field_value(&p, &facts(), "metadata.uid", false).unwrap(), "u-1");
        assert_eq!(field_value(&p, &facts(), "metadata.labels", true).unwrap(), "app=\"web\"\ntier=\"a\\\"b\"");
        assert!(field_value(&p, &facts(), "metadata.labels", false).is_err());
        assert_eq!(field_value(&p, &facts(), "metadata.annotations['none']", false).unwrap(), "");
        assert_eq!(field_value(&p, &facts(), "status.hostIP", false).unwrap(), "192.168.1.2");
        assert!(matches!(field_value(&p, &facts(), "spec.bogus", false), Err(EnvError::UnsupportedField(_))));
    }

    #[test]
    fn expansion_rules() {
        let vars: HashMap<&str, &str> = [("A", "1"), ("B", "two")].into_iter().collect();
        assert_eq!(expand("$(A)$(B)", &vars), "1two");
        assert_eq!(expand("$$(A) $$ $", &vars), "$(A) $ $");
        assert_eq!(expand("$(A", &vars), "$(A");
        assert_eq!(expand("x$(C)y", &vars), "x$(C)y");
        assert_eq!(expand("ünï$(A)cödé", &vars), "ünï1cödé");
    }

    #[test]
    fn references_are_collected() {
        let mut p = sample();
        p.spec.as_mut().unwrap().volumes =
            Some(vec![serde_json::from_value(json!({
            "name": "v", "projected": {"sources": [{"configMap": {"name": "p-cm"}}, {"secret": {"name": "p-s"}}]}
        }))
        .unwrap()]);
        let (cms, secrets) = referenced(&p);
        assert_eq!(cms, ["cfg", "nope", "p-cm"]);
        assert_eq!(secrets, ["p-s", "sec"]);
    }
}
