//! Server-side printing: answering the Table Accept header (`as=Table;g=meta.k8s.io`)
//! with the per-kind columns `kubectl get` shows.

use api::Resource;
use serde_json::{Value, json};

/// Whether the client asked for a Table (it always lists plain JSON as a fallback).
pub fn wanted(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|part| {
            let p: Vec<&str> = part.split(';').map(str::trim).collect();
            p.contains(&"as=Table") && p.contains(&"g=meta.k8s.io")
        })
    })
}

/// Whether the client asked for metadata only (`as=PartialObjectMetadata` or
/// `as=PartialObjectMetadataList` with `g=meta.k8s.io`), as client-go's and kube-rs's
/// metadata clients do (the garbage collector, `kubectl get -o name` style tools):
/// objects then travel without their spec and status.
pub fn wants_metadata(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|part| {
            let p: Vec<&str> = part.split(';').map(str::trim).collect();
            p.contains(&"g=meta.k8s.io")
                && (p.contains(&"as=PartialObjectMetadata") || p.contains(&"as=PartialObjectMetadataList"))
        })
    })
}

/// An object reduced to its metadata.
pub fn partial(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// A list reduced to its items' metadata.
pub fn partial_list(list_meta: Value, items: &[Value]) -> Value {
    json!({
        "kind": "PartialObjectMetadataList",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "items": items.iter().map(partial).collect::<Vec<_>>(),
    })
}

/// What each row carries of its object: `Metadata` (kubectl's default, for labels
/// and namespaces), `Object`, or `None`.
pub fn row_object(obj: &Value, include: Option<&str>) -> Option<Value> {
    match include.unwrap_or("Metadata") {
        "None" => None,
        "Object" => Some(obj.clone()),
        _ => Some(partial(obj)),
    }
}

fn row(res: &Resource, obj: &Value, include: Option<&str>, now: i64) -> Value {
    let mut r = json!({"cells": api::table::row(res, obj, now)});
    if let Some(o) = row_object(obj, include) {
        r["object"] = o;
    }
    r
}

/// A Table of several objects, with the list's metadata.
pub fn of_list(res: &Resource, items: &[Value], list_meta: Value, include: Option<&str>) -> Value {
    let now = api::time::now_unix();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": api::table::column_definitions_json(res),
        "rows": items.iter().map(|o| row(res, o, include, now)).collect::<Vec<_>>(),
    })
}

/// A Table of one object (a GET, or one watch event). Watch events after the first
/// carry no column definitions, as upstream sends them.
pub fn of_object(res: &Resource, obj: &Value, include: Option<&str>, columns: bool) -> Value {
    let rv = obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null);
    let mut t = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": if columns { api::table::column_definitions_json(res) } else { Value::Null },
        "rows": [row(res, obj, include, api::time::now_unix())],
    });
    if !columns {
        t["columnDefinitions"] = Value::Null;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_only_is_recognised_and_drops_spec() {
        assert!(wants_metadata(Some("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1")));
        assert!(wants_metadata(Some(
            "application/json; as=PartialObjectMetadata; v=v1; g=meta.k8s.io, application/json"
        )));
        assert!(!wants_metadata(Some("application/json;as=Table;v=v1;g=meta.k8s.io")));
        assert!(!wants_metadata(Some("application/json")));
        assert!(!wants_metadata(None));
        let obj = json!({"metadata": {"name": "a"}, "spec": {"x": 1}});
        let l = partial_list(json!({"resourceVersion": "5"}), &[obj]);
        assert_eq!(l["kind"], "PartialObjectMetadataList");
        assert_eq!(l["items"][0]["metadata"]["name"], "a");
        assert!(l["items"][0].get("spec").is_none());
    }

    #[test]
    fn recognises_kubectls_accept_header() {
        assert!(wanted(Some(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        )));
        assert!(!wanted(Some("application/json")));
        assert!(!wanted(None));
    }

    #[test]
    fn rows_carry_metadata_by_default() {
        let pods = api::registry::find("", "v1", "pods").unwrap();
        let pod = json!({"metadata":{"name":"p","labels":{"a":"b"}},"spec":{},"status":{"phase":"Pending"}});
        let t = of_list(pods, &[pod], json!({"resourceVersion":"5"}), None);
        assert_eq!(t["rows"][0]["cells"][0], "p");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["rows"][0]["object"]["metadata"]["labels"]["a"], "b");
        assert_eq!(t["columnDefinitions"][0]["name"], "Name");
    }
}
