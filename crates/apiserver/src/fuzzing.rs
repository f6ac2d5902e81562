//! The code paths the fuzz targets drive, one `pub fn <target>(data: &[u8])` each.
//!
//! The cargo-fuzz targets in `fuzz/fuzz_targets` call these, and so does
//! `tests/fuzz_corpus.rs`, which replays the committed corpus in the normal
//! `cargo test` (so CI runs it on stable without cargo-fuzz). Every input must come
//! back without a panic; results are thrown away.
//!
//! Inputs with several parts (an original and a patch, a live object and a config)
//! are split on the first `0xFF` byte, which never occurs in UTF-8 text, so each part
//! stays valid JSON or YAML.

use crate::{body, decode, fieldmanager, patch, query};
use api::registry::{RESOURCES, Resource};
use api::schema::{Node, Schemas};
use api::selector::{FieldSelector, LabelSelector};
use serde_json::{Map, Value, json};

/// The content types a body may arrive with: none (kubectl's Scale PUT), JSON, YAML
/// and protobuf.
const CONTENT_TYPES: &[Option<&str>] =
    &[None, Some("application/json"), Some("application/yaml"), Some(decode::protobuf::CONTENT_TYPE)];

/// The time recorded in managedFields; fixed so runs are reproducible.
const NOW: &str = "2024-01-01T00:00:00Z";

/// The bytes before and after the first `0xFF`, if there is one.
pub fn split(data: &[u8]) -> (&[u8], Option<&[u8]>) {
    match data.iter().position(|b| *b == 0xFF) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    }
}

/// A request body through every decoder, then the decoder's checks, defaulting and
/// validation for every served resource. With a `0xFF`, the two JSON halves are also
/// validated as an update (new, old).
pub fn body(data: &[u8]) {
    for ct in CONTENT_TYPES {
        if let Ok(obj) = body::parse_object(data, *ct) {
            object(&obj);
        }
    }
    if let Some((new, old)) = two_json(data) {
        for res in RESOURCES {
            let mut new = new.clone();
            let mut old = old.clone();
            api::defaults::apply(res, &mut old);
            if res.kind == "Service" {
                api::defaults::service_update(&mut new, &old);
            }
            api::defaults::apply(res, &mut new);
            api::validation::validate_update(res, &new, &old);
            api::validation::validate_status_update(res, &new, &old);
        }
    }
}

/// One decoded object through what a create or update does with it, for every
/// resource: first as it came (validation must cope with any JSON), then as the server
/// sees it after `check_object`.
fn object(obj: &Value) {
    for res in RESOURCES {
        let mut raw = obj.clone();
        api::defaults::apply(res, &mut raw);
        api::validation::validate_create(res, &raw);
        api::validation::validate_update(res, &raw, obj);
        api::validation::validate_status_update(res, &raw, obj);

        for validation in ["Strict", "Warn"] {
            let Ok(checked) = body::check_object(res, res.kind, &res.api_version(), obj.clone(), validation) else {
                continue;
            };
            let mut checked = checked.obj;
            api::defaults::apply(res, &mut checked);
            if res.kind == "Job" {
                api::defaults::job_selector(&mut checked);
            }
            api::validation::validate_create(res, &checked);
            api::validation::validate_update(res, &checked, &checked);
        }
    }
    if obj.get("kind").and_then(Value::as_str) == Some("Namespace") {
        api::validation::validate_namespace_finalize(obj, obj);
    }
}

/// A protobuf body (`k8s\0` + `runtime.Unknown`) through the decoder, and the result
/// through the checks for the kind it names.
pub fn protobuf(data: &[u8]) {
    let Ok(obj) = decode::decode(data) else {
        return;
    };
    let _ = serde_json::to_vec(&obj);
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    for res in RESOURCES.iter().filter(|r| r.kind == kind) {
        if let Ok(checked) = body::check_object(res, res.kind, &res.api_version(), obj.clone(), "Strict") {
            let mut checked = checked.obj;
            api::defaults::apply(res, &mut checked);
            api::validation::validate_create(res, &checked);
        }
    }
}

/// `original 0xFF patch`, both JSON, parsed the way the server reads them.
fn two_json(data: &[u8]) -> Option<(Value, Value)> {
    let (original, Some(patch)) = split(data) else {
        return None;
    };
    Some((serde_json::from_slice(original).ok()?, serde_json::from_slice(patch).ok()?))
}

/// `original 0xFF patch` through the JSON patch (RFC 6902) engine.
pub fn patch_json(data: &[u8]) {
    let Some((original, patch)) = two_json(data) else {
        return;
    };
    if let Ok(patched) = patch::json::apply(&original, &patch) {
        // A patch applied twice reaches paths the first application created.
        let _ = patch::json::apply(&patched, &patch);
    }
}

/// `original 0xFF patch` through the JSON merge patch (RFC 7386) engine.
pub fn patch_merge(data: &[u8]) {
    let Some((original, patch)) = two_json(data) else {
        return;
    };
    let patched = patch::merge::apply(&original, &patch);
    let _ = patch::merge::apply(&patched, &patch);
}

/// The kinds whose schemas the strategic merge patch is driven with: the ones kubectl
/// patches most, with merge keys, retainKeys and primitive lists among them.
const SMP_KINDS: &[(&str, &str, &str)] = &[("apps", "v1", "Deployment"), ("", "v1", "Pod"), ("", "v1", "Service")];

/// `original 0xFF patch` through the strategic merge patch engine with each of the
/// Deployment, Pod and Service schemas, and with none.
pub fn patch_strategic(data: &[u8]) {
    let Some((original, patch)) = two_json(data) else {
        return;
    };
    let schemas = Schemas::get();
    for (group, version, kind) in SMP_KINDS {
        let Some(schema) = schemas.for_kind(group, version, kind) else {
            continue;
        };
        if let Ok(patched) = patch::strategic::apply(&original, &patch, Some(schema)) {
            let _ = patch::strategic::apply(&patched, &patch, Some(schema));
        }
    }
    let _ = patch::strategic::apply(&original, &patch, None);
}

/// The resource a config names by apiVersion and kind, or Deployment.
fn resource_of(obj: &Value) -> Option<&'static Resource> {
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
        .or_else(|| api::registry::find("apps", "v1", "deployments"))
}

fn schema_of(res: &Resource) -> Option<&'static Node> {
    Schemas::get().for_kind(res.group, res.version, res.kind)
}

/// `live 0xFF config`: server-side apply of the config (YAML or JSON, as an
/// apply-patch body) onto the live object (JSON, or empty to create), by kubectl and
/// then by a second manager with `force`; and the non-apply updates that record
/// ownership.
pub fn apply(data: &[u8]) {
    let (live, Some(config)) = split(data) else {
        return;
    };
    let live: Option<Value> = if live.is_empty() {
        None
    } else {
        match serde_json::from_slice(live) {
            Ok(v) => Some(v),
            Err(_) => return,
        }
    };
    let Ok(config) = body::parse_text(config, "application/yaml") else {
        return;
    };
    if !config.is_object() {
        return;
    }
    let Some(res) = resource_of(&config) else {
        return;
    };
    let Some(schema) = schema_of(res) else {
        return;
    };
    let api_version = res.api_version();
    // The server applies the config as check_object leaves it; fall back to the raw
    // config so a config the checks refuse still reaches the field manager.
    let config =
        body::check_object(res, res.kind, &api_version, config.clone(), "Ignore").map(|c| c.obj).unwrap_or(config);

    match fieldmanager::apply(live.as_ref(), &config, "kubectl", false, schema, &api_version, NOW) {
        Ok(applied) => {
            let _ = fieldmanager::apply(Some(&applied), &config, "other", true, schema, &api_version, NOW)
                .map_err(|e| e.to_api_error());
            let mut edited = config.clone();
            fieldmanager::update(Some(&applied), &mut edited, "kubectl-edit", None, &api_version, NOW, schema);
        }
        Err(e) => {
            let _ = e.to_api_error();
        }
    }
    let _ = fieldmanager::apply_subresource(
        live.as_ref(),
        &config,
        "status-writer",
        Some("status"),
        true,
        schema,
        &api_version,
        NOW,
    )
    .map_err(|e| e.to_api_error());

    for subresource in [None, Some("status")] {
        let mut new = config.clone();
        fieldmanager::update(
            live.as_ref(),
            &mut new,
            "kubectl-client-side-apply",
            subresource,
            &api_version,
            NOW,
            schema,
        );
    }
}

/// A few labelled objects for the selectors to match.
fn selector_objects() -> Vec<(&'static Resource, Value)> {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "default", "labels": {"app": "web", "tier": "front"}},
        "spec": {"nodeName": "n1", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                 "serviceAccountName": "default", "hostNetwork": false},
        "status": {"phase": "Running", "podIP": "10.0.0.1", "nominatedNodeName": ""},
    });
    RESOURCES
        .iter()
        .map(|r| {
            let mut obj = pod.clone();
            obj["apiVersion"] = json!(r.api_version());
            obj["kind"] = json!(r.kind);
            (r, obj)
        })
        .collect()
}

fn label_selector(sel: &LabelSelector, objects: &[(&'static Resource, Value)]) {
    // The printed form parses again, as a watch cache key would.
    let _ = LabelSelector::parse(&sel.to_string());
    for (_, obj) in objects {
        sel.matches_object(obj);
    }
    sel.matches(None);
    sel.matches(Some(&Map::new()));
}

fn field_selector(sel: &FieldSelector, objects: &[(&'static Resource, Value)]) {
    sel.required_value("metadata.name");
    sel.required_value("metadata.namespace");
    for (res, obj) in objects {
        let _ = sel.matches(|f| api::fields::field_value(res, obj, f));
    }
}

/// The input as a stored object, through what watch feeds read of stored bytes
/// without parsing them: the revision spliced in must give the object with it set,
/// the object without managedFields must be the parsed one without them, and the
/// selector view must be what selectors read of the parsed object.
fn stored_bytes(data: &[u8], objects: &[(&'static api::Resource, Value)]) {
    let parsed = serde_json::from_slice::<Value>(data).ok();
    // Bytes that do not parse are never stored, nor are objects with a key twice
    // (they are serialised from maps): the byte edits need not notice either.
    let storable = crate::body::parse_json_noting_duplicates(data).is_ok_and(|(_, dups)| dups.is_empty());
    if let (Some(out), Some(mut want), true) =
        (crate::rawjson::with_resource_version(data, 7), parsed.clone(), storable)
    {
        crate::objects::set_resource_version(&mut want, 7);
        assert_eq!(serde_json::from_slice::<Value>(&out).ok(), Some(want));
    }
    if let (Some(mut want), true) = (parsed.clone(), storable) {
        let had = want.get_mut("metadata").and_then(Value::as_object_mut).and_then(|m| m.remove("managedFields"));
        match crate::rawjson::without_managed_fields(data) {
            Some(out) => assert_eq!(serde_json::from_slice::<Value>(&out).ok(), Some(want)),
            None => assert!(had.is_none(), "managedFields left in {}", String::from_utf8_lossy(data)),
        }
    }
    // A binding done on the bytes gives what the tree way gives, byte for byte when
    // the bytes are in stored form (keys sorted, no spaces), as every stored pod is.
    if let (Some(pod), true) = (&parsed, storable)
        && let Some(out) = crate::rest::subresource::bind_stored(data, None, "n\"1", NOW)
    {
        let mut want = pod.clone();
        crate::rest::subresource::bind_tree(&mut want, "n\"1", NOW);
        if serde_json::to_vec(pod).ok().as_deref() == Some(data) {
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&serde_json::to_vec(&want).unwrap_or_default())
            );
        } else {
            assert_eq!(serde_json::from_slice::<Value>(&out).ok(), Some(want));
        }
    }
    for (res, _) in objects {
        let view = api::fields::selectable(res, data);
        if let (Some(obj), Ok(view)) = (&parsed, &view) {
            for f in ["metadata.name", "metadata.namespace", "spec.nodeName", "status.phase", "type"] {
                assert_eq!(api::fields::field_value(res, view, f), api::fields::field_value(res, obj, f));
            }
            assert_eq!(view.pointer("/metadata/labels"), obj.pointer("/metadata/labels"));
        }
        // Label selectors read the labels cut from the bytes: the same labels.
        if let (Some(obj), true) = (&parsed, storable) {
            let views = crate::watch::Views::new(bytes::Bytes::copy_from_slice(data));
            let labels = |v: &Value| v.pointer("/metadata/labels").and_then(Value::as_object).cloned();
            assert_eq!(labels(views.labels(res)), labels(obj));
        }
    }
}

/// A query string through `Query::parse`, and the text as label and field selectors
/// (string form, and the structured JSON form), matched against labelled objects.
pub fn selectors(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let objects = selector_objects();
    stored_bytes(data, &objects);
    if let Ok(sel) = LabelSelector::parse(&text) {
        label_selector(&sel, &objects);
    }
    if let Ok(sel) = FieldSelector::parse(&text) {
        field_selector(&sel, &objects);
    }
    if let Some(Ok(sel)) = serde_json::from_slice::<Value>(data).ok().map(|json| LabelSelector::from_json(&json)) {
        label_selector(&sel, &objects);
    }
    let _ = query::pairs(Some(&text));
    // A continue token arrives from the client as text; it must never panic the server.
    if let Ok(token) = crate::rest::read::ContinueToken::decode(&text) {
        let _ = crate::rest::read::ContinueToken::decode(&token.encode());
    }
    if let Ok(q) = query::Query::parse(Some(&text)) {
        q.validation();
        if let Some(Ok(sel)) = q.label_selector.as_deref().map(LabelSelector::parse) {
            label_selector(&sel, &objects);
        }
        if let Some(Ok(sel)) = q.field_selector.as_deref().map(FieldSelector::parse) {
            field_selector(&sel, &objects);
        }
    }
}

/// One fuzz target's entry point.
pub type Target = fn(&[u8]);

/// Every target by name (its `fuzz/corpus/<name>` directory), for the corpus replay.
pub const TARGETS: &[(&str, Target)] = &[
    ("body", body),
    ("protobuf", protobuf),
    ("patch_json", patch_json),
    ("patch_merge", patch_merge),
    ("patch_strategic", patch_strategic),
    ("apply", apply),
    ("selectors", selectors),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_cuts_at_the_first_ff_only() {
        assert_eq!(split(b"ab\xffcd\xffe"), (&b"ab"[..], Some(&b"cd\xffe"[..])));
        assert_eq!(split(b"abc"), (&b"abc"[..], None));
        assert_eq!(split(b"\xff"), (&b""[..], Some(&b""[..])));
    }

    #[test]
    fn apply_reads_an_empty_live_part_as_a_create() {
        // Drives the create path end to end; a regression here would panic.
        apply(
            b"\xff{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\"},\"data\":{\"a\":\"b\"}}",
        );
        let config = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}});
        assert_eq!(resource_of(&config).map(|r| r.kind), Some("ConfigMap"));
        assert_eq!(resource_of(&json!({"kind": "Bogus"})).map(|r| r.kind), Some("Deployment"));
    }

    #[test]
    fn every_smp_kind_has_a_schema() {
        for (group, version, kind) in SMP_KINDS {
            assert!(Schemas::get().for_kind(group, version, kind).is_some(), "{kind}");
        }
    }
}
