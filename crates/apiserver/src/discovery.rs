//! Discovery: aggregated (`apidiscovery.k8s.io` v2 and v2beta1, with the exact media
//! types kubectl checks) and the legacy per-group documents, built once from the
//! registry.

use api::registry::{self, RESOURCES, Resource};
use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::OnceLock;

pub const V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
pub const V2BETA1: &str = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/// Which aggregated version the client accepts, preferring v2.
pub fn aggregated_version(accept: Option<&str>) -> Option<&'static str> {
    let accept = accept?;
    let offers = |v: &str| {
        accept.split(',').any(|part| {
            let p: Vec<&str> = part.split(';').map(str::trim).collect();
            p.contains(&"g=apidiscovery.k8s.io") && p.contains(&"as=APIGroupDiscoveryList") && p.contains(&v)
        })
    };
    if offers("v=v2") {
        Some("v2")
    } else if offers("v=v2beta1") {
        Some("v2beta1")
    } else {
        None
    }
}

fn scope(r: &Resource) -> &'static str {
    if r.namespaced { "Namespaced" } else { "Cluster" }
}

fn aggregated_resource(r: &Resource) -> Value {
    let mut v = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": scope(r),
        "singularResource": r.singular,
        "verbs": r.verbs(),
    });
    if !r.short_names.is_empty() {
        v["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        v["categories"] = json!(r.categories);
    }
    let subs: Vec<Value> = r
        .subresources
        .iter()
        .map(|s| {
            let (g, ver, k) = s.response_kind().unwrap_or((r.group, r.version, r.kind));
            json!({"subresource": s.name(), "responseKind": {"group": g, "version": ver, "kind": k}, "verbs": s.verbs()})
        })
        .collect();
    if !subs.is_empty() {
        v["subresources"] = Value::Array(subs);
    }
    v
}

fn aggregated(core: bool, version: &str) -> Bytes {
    let mut items: Vec<Value> = registry::groups()
        .into_iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(g, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> = registry::in_group_version(g, v).map(aggregated_resource).collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": versions})
        })
        .collect();
    if !core {
        items.push(crate::metricsapi::aggregated_group());
    }
    let doc = json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    });
    Bytes::from(doc.to_string())
}

/// The aggregated `/api` (core) or `/apis` document in the given version.
pub fn aggregated_document(core: bool, version: &str) -> Bytes {
    static DOCS: OnceLock<[Bytes; 4]> = OnceLock::new();
    let docs = DOCS.get_or_init(|| {
        [aggregated(true, "v2"), aggregated(true, "v2beta1"), aggregated(false, "v2"), aggregated(false, "v2beta1")]
    });
    docs[usize::from(!core) * 2 + usize::from(version != "v2")].clone()
}

/// `GET /api`, legacy.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_entry(g: &str, versions: &[&str]) -> Value {
    let vs: Vec<Value> = versions.iter().map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v})).collect();
    json!({"name": g, "versions": vs, "preferredVersion": vs[0]})
}

/// `GET /apis`, legacy.
pub fn api_group_list() -> Value {
    let mut groups: Vec<Value> = registry::groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, versions)| group_entry(g, &versions))
        .collect();
    groups.push(crate::metricsapi::group_entry());
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/{group}`.
pub fn api_group(group: &str) -> Option<Value> {
    if group == crate::metricsapi::GROUP {
        let mut v = crate::metricsapi::group_entry();
        v["kind"] = json!("APIGroup");
        v["apiVersion"] = json!("v1");
        return Some(v);
    }
    let (g, versions) = registry::groups().into_iter().find(|(g, _)| *g == group && !g.is_empty())?;
    let mut v = group_entry(g, &versions);
    v["kind"] = json!("APIGroup");
    v["apiVersion"] = json!("v1");
    Some(v)
}

/// `GET /api/v1` or `/apis/{group}/{version}`: the resources and subresources.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    if (group, version) == (crate::metricsapi::GROUP, crate::metricsapi::VERSION) {
        return Some(crate::metricsapi::resource_list());
    }
    let mut resources = Vec::new();
    for r in RESOURCES.iter().filter(|r| r.group == group && r.version == version) {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs(),
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        resources.push(entry);
        for s in r.subresources {
            let mut sub = json!({
                "name": format!("{}/{}", r.plural, s.name()),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": s.verbs(),
            });
            if let Some((g, v, k)) = s.response_kind() {
                // Upstream names the group and version only when they differ from the parent's.
                if (g, v) != (r.group, r.version) {
                    sub["group"] = json!(g);
                    sub["version"] = json!(v);
                }
                sub["kind"] = json!(k);
            }
            resources.push(sub);
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_the_aggregated_version() {
        let k130 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        let k127 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(aggregated_version(Some(k130)), Some("v2"));
        assert_eq!(aggregated_version(Some(k127)), Some("v2beta1"));
        assert_eq!(aggregated_version(Some("application/json")), None);
    }

    #[test]
    fn documents_list_resources_with_their_subresources() {
        let core: Value = serde_json::from_slice(&aggregated_document(true, "v2")).unwrap();
        assert_eq!(core["apiVersion"], "apidiscovery.k8s.io/v2");
        assert_eq!(core["items"][0]["metadata"]["name"], "");
        let pods = core["items"][0]["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "pods")
            .unwrap()
            .clone();
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        let beta: Value = serde_json::from_slice(&aggregated_document(false, "v2beta1")).unwrap();
        assert_eq!(beta["apiVersion"], "apidiscovery.k8s.io/v2beta1");
        assert!(beta["items"].as_array().unwrap().iter().any(|i| i["metadata"]["name"] == "apps"));
        let v1 = api_resource_list("", "v1").unwrap();
        let eviction = v1["resources"].as_array().unwrap().iter().find(|r| r["name"] == "pods/eviction").unwrap();
        assert_eq!(eviction["group"], "policy");
        assert_eq!(eviction["kind"], "Eviction");
        let exec = v1["resources"].as_array().unwrap().iter().find(|r| r["name"] == "pods/exec").unwrap();
        assert_eq!(
            exec,
            &json!({"name": "pods/exec", "singularName": "", "namespaced": true, "kind": "PodExecOptions", "verbs": ["create", "get"]})
        );
        let names: Vec<&str> = v1["resources"].as_array().unwrap().iter().filter_map(|r| r["name"].as_str()).collect();
        for sub in ["pods/attach", "pods/log", "pods/portforward"] {
            assert!(names.contains(&sub), "{sub}");
        }
        let token = v1["resources"].as_array().unwrap().iter().find(|r| r["name"] == "serviceaccounts/token").unwrap();
        assert_eq!(
            token,
            &json!({"name": "serviceaccounts/token", "singularName": "", "namespaced": true, "group": "authentication.k8s.io",
                "version": "v1", "kind": "TokenRequest", "verbs": ["create"]})
        );
        assert!(api_resource_list("apps", "v9").is_none());
        assert_eq!(api_group("apps").unwrap()["preferredVersion"]["groupVersion"], "apps/v1");
    }
}
