//! ConfigMaps, Secrets, Namespaces, Nodes, ServiceAccounts and core Events
//! (`pkg/apis/core/validation`), Leases (`coordination`) and PodDisruptionBudgets (`policy`).

use super::apps;
use super::field::{self, Bad, Path, arr, get, int_of, obj, opt_str, str_of, sub};
use super::meta::{self, FIELD_IMMUTABLE};
use super::names::{self, NameRule};
use super::net;
use super::pod;
use super::quantity::{QUANTITY_FORMAT_MESSAGE, Quantity};
use crate::status::Cause;
use base64::Engine;
use serde_json::Value;
use std::collections::BTreeSet;

/// `core.MaxSecretSize`, also the ConfigMap limit.
pub const MAX_SECRET_SIZE: usize = 1024 * 1024;
const IMMUTABLE_WHEN_SET: &str = "field is immutable when `immutable` is set";

fn config_key(key: &str, path: &Path) -> Vec<Cause> {
    names::config_map_key(key).iter().map(|m| field::invalid(path, Bad::Str(key), m)).collect()
}

/// Decodes a base64 `data` value; upstream rejects undecodable values when reading JSON.
fn decode(v: &Value) -> Result<Vec<u8>, String> {
    let s = v.as_str().unwrap_or_default();
    base64::engine::general_purpose::STANDARD.decode(s).map_err(|e| match e {
        base64::DecodeError::InvalidByte(at, _) | base64::DecodeError::InvalidLastSymbol(at, _) => {
            format!("illegal base64 data at input byte {at}")
        }
        _ => format!("illegal base64 data at input byte {}", s.len()),
    })
}

// ---- ConfigMap

pub fn validate_config_map(cm: &Value) -> Vec<Cause> {
    let mut errs =
        meta::validate_object_meta(sub(cm, "metadata"), true, NameRule::Dns1123Subdomain, &Path::new("metadata"));
    let binary = obj(cm, "binaryData");
    let mut total = 0usize;
    for (k, v) in obj(cm, "data").into_iter().flatten() {
        let p = Path::new("data").key(k);
        errs.extend(config_key(k, &p));
        if binary.is_some_and(|b| b.contains_key(k)) {
            errs.push(field::invalid(&p, Bad::Str(k), "duplicate of key present in binaryData"));
        }
        total += v.as_str().map(str::len).unwrap_or_default();
    }
    for (k, v) in binary.into_iter().flatten() {
        let p = Path::new("binaryData").key(k);
        errs.extend(config_key(k, &p));
        match decode(v) {
            Ok(bytes) => total += bytes.len(),
            Err(e) => errs.push(field::invalid(&p, Bad::Str("<binary data>"), &e)),
        }
    }
    if total > MAX_SECRET_SIZE {
        // Upstream reports this against the whole object, whose path prints as `[]`.
        errs.push(field::too_long(&Path::new("[]"), MAX_SECRET_SIZE));
    }
    errs
}

pub fn validate_config_map_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs =
        meta::validate_object_meta_update(sub(new, "metadata"), sub(old, "metadata"), &Path::new("metadata"));
    if field::bool_of(old, "immutable") == Some(true) {
        if field::bool_of(new, "immutable") != Some(true) {
            errs.push(field::forbidden(&Path::new("immutable"), IMMUTABLE_WHEN_SET));
        }
        for key in ["data", "binaryData"] {
            if empty_as_absent(new, key) != empty_as_absent(old, key) {
                errs.push(field::forbidden(&Path::new(key), IMMUTABLE_WHEN_SET));
            }
        }
    }
    errs.extend(validate_config_map(new));
    errs
}

/// An empty map and a missing one are the same Go map for `DeepEqual` after decoding.
fn empty_as_absent(v: &Value, key: &str) -> Option<Value> {
    get(v, key).filter(|x| x.as_object().is_none_or(|m| !m.is_empty())).cloned()
}

// ---- Secret

pub fn validate_secret(secret: &Value) -> Vec<Cause> {
    let m = sub(secret, "metadata");
    let mut errs = meta::validate_object_meta(m, true, NameRule::Dns1123Subdomain, &Path::new("metadata"));
    let dp = Path::new("data");
    let mut total = 0usize;
    let mut decoded = std::collections::BTreeMap::new();
    for (k, v) in obj(secret, "data").into_iter().flatten() {
        errs.extend(config_key(k, &dp.key(k)));
        match decode(v) {
            Ok(bytes) => {
                total += bytes.len();
                decoded.insert(k.as_str(), bytes);
            }
            Err(e) => errs.push(field::invalid(&dp.key(k), Bad::Str("<secret contents redacted>"), &e)),
        }
    }
    if total > MAX_SECRET_SIZE {
        errs.push(field::too_long(&dp, MAX_SECRET_SIZE));
    }
    let has = |k: &str| obj(secret, "data").is_some_and(|d| d.contains_key(k));
    match str_of(secret, "type") {
        "kubernetes.io/service-account-token" => {
            let sa =
                obj(m, "annotations").and_then(|a| a.get("kubernetes.io/service-account.name")).and_then(Value::as_str);
            if sa.is_none_or(str::is_empty) {
                errs.push(field::required(
                    &Path::new("metadata.annotations").key("kubernetes.io/service-account.name"),
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" | "kubernetes.io/dockerconfigjson" => {
            let key =
                if str_of(secret, "type") == "kubernetes.io/dockercfg" { ".dockercfg" } else { ".dockerconfigjson" };
            match decoded.get(key) {
                None if !has(key) => errs.push(field::required(&dp.key(key), "")),
                None => {}
                Some(bytes) => {
                    let parsed: Result<serde_json::Map<String, Value>, _> = serde_json::from_slice(bytes);
                    if let Err(e) = parsed {
                        errs.push(field::invalid(&dp.key(key), Bad::Str("<secret contents redacted>"), &e.to_string()));
                    }
                }
            }
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            errs.push(field::required(&dp.key("username"), ""));
            errs.push(field::required(&dp.key("password"), ""));
        }
        "kubernetes.io/ssh-auth" if decoded.get("ssh-privatekey").is_none_or(Vec::is_empty) => {
            errs.push(field::required(&dp.key("ssh-privatekey"), ""));
        }
        "kubernetes.io/tls" => {
            for key in ["tls.crt", "tls.key"] {
                if !has(key) {
                    errs.push(field::required(&dp.key(key), ""));
                }
            }
        }
        _ => {}
    }
    errs
}

pub fn validate_secret_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs =
        meta::validate_object_meta_update(sub(new, "metadata"), sub(old, "metadata"), &Path::new("metadata"));
    let (nt, ot) = (str_of(new, "type"), str_of(old, "type"));
    if nt != ot {
        errs.push(field::invalid(&Path::new("type"), Bad::Str(nt), FIELD_IMMUTABLE));
    }
    if field::bool_of(old, "immutable") == Some(true) {
        if field::bool_of(new, "immutable") != Some(true) {
            errs.push(field::forbidden(&Path::new("immutable"), IMMUTABLE_WHEN_SET));
        }
        if empty_as_absent(new, "data") != empty_as_absent(old, "data") {
            errs.push(field::forbidden(&Path::new("data"), IMMUTABLE_WHEN_SET));
        }
    }
    errs.extend(validate_secret(new));
    errs
}

// ---- Namespace

const STANDARD_FINALIZERS: &[&str] = &["kubernetes", "orphan", "foregroundDeletion"];

fn finalizer_name(name: &str, path: &Path) -> Vec<Cause> {
    let mut errs: Vec<Cause> =
        names::qualified_name(name).iter().map(|m| field::invalid(path, Bad::Str(name), m)).collect();
    if !name.contains('/') && !STANDARD_FINALIZERS.contains(&name) {
        errs.push(field::invalid(
            path,
            Bad::Str(name),
            "name is neither a standard finalizer name nor is it fully qualified",
        ));
    }
    errs
}

pub fn validate_namespace(ns: &Value) -> Vec<Cause> {
    let mut errs =
        meta::validate_object_meta(sub(ns, "metadata"), false, NameRule::Dns1123Label, &Path::new("metadata"));
    for f in arr(sub(ns, "spec"), "finalizers") {
        errs.extend(finalizer_name(f.as_str().unwrap_or_default(), &Path::new("spec.finalizers")));
    }
    errs
}

pub fn validate_namespace_update(new: &Value, old: &Value) -> Vec<Cause> {
    meta::validate_object_meta_update(sub(new, "metadata"), sub(old, "metadata"), &Path::new("metadata"))
}

pub fn validate_namespace_status_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs =
        meta::validate_object_meta_update(sub(new, "metadata"), sub(old, "metadata"), &Path::new("metadata"));
    let phase = str_of(sub(new, "status"), "phase");
    // Upstream spells the path with a capital P.
    let p = Path::new("status.Phase");
    if get(sub(new, "metadata"), "deletionTimestamp").is_none() {
        if phase != "Active" {
            errs.push(field::invalid(&p, Bad::Str(phase), "may only be 'Active' if `deletionTimestamp` is empty"));
        }
    } else if phase != "Terminating" {
        errs.push(field::invalid(&p, Bad::Str(phase), "may only be 'Terminating' if `deletionTimestamp` is not empty"));
    }
    errs
}

/// `ValidateNamespaceFinalizeUpdate`, for the `namespaces/finalize` subresource.
pub fn validate_namespace_finalize_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs =
        meta::validate_object_meta_update(sub(new, "metadata"), sub(old, "metadata"), &Path::new("metadata"));
    for (i, f) in arr(sub(new, "spec"), "finalizers").iter().enumerate() {
        errs.extend(finalizer_name(f.as_str().unwrap_or_default(), &Path::new("spec.finalizers").index(i)));
    }
    errs
}

// ---- Node

fn node_taints(taints: &[Value], path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, t) in taints.iter().enumerate() {
        let p = path.index(i);
        let key = str_of(t, "key");
        errs.extend(meta::validate_label_name(key, &p.child("key")));
        let value = str_of(t, "value");
        let msgs = names::label_value(value);
        if !msgs.is_empty() {
            errs.push(field::invalid(&p.child("value"), Bad::Str(value), &msgs.join(";")));
        }
        let effect = str_of(t, "effect");
        if effect.is_empty() {
            errs.push(field::required(&p.child("effect"), ""));
        } else {
            errs.extend(pod::taint_effect(effect, &p.child("effect")));
        }
        if !seen.insert((effect.to_string(), key.to_string())) {
            let mut c = field::duplicate(&p, Bad::Json(t));
            c.message.push_str(": taints must be unique by key and effect pair");
            errs.push(c);
        }
    }
    errs
}

fn node_resources(node: &Value) -> Vec<Cause> {
    let mut errs = Vec::new();
    let status = sub(node, "status");
    for key in ["capacity", "allocatable"] {
        for (name, v) in obj(status, key).into_iter().flatten() {
            let p = Path::new("status").child(key).child(name);
            match Quantity::from_json(v) {
                Err(_) => errs.push(field::invalid(&p, Bad::Json(v), QUANTITY_FORMAT_MESSAGE)),
                Ok(q) => {
                    if q.is_negative() {
                        errs.push(field::invalid(&p, Bad::Str(&q.canonical()), meta::IS_NEGATIVE));
                    }
                    let integer = name == "pods" || (name.contains('/') && !name.contains("kubernetes.io/"));
                    if integer && q.milli_value().is_some_and(|m| m % 1000 != 0) {
                        errs.push(field::invalid(&p, Bad::Str(&q.canonical()), "must be an integer"));
                    }
                }
            }
        }
    }
    errs
}

fn pod_cidrs(spec: &Value) -> Vec<Cause> {
    let mut errs = Vec::new();
    let cidrs: Vec<&str> = arr(spec, "podCIDRs").iter().map(|v| v.as_str().unwrap_or_default()).collect();
    let p = Path::new("spec.podCIDRs");
    for (i, c) in cidrs.iter().enumerate() {
        errs.extend(net::validate_cidr(&p.index(i), c));
    }
    if cidrs.len() > 1 {
        let v6 = cidrs.iter().filter(|c| c.contains(':')).count();
        if cidrs.len() > 2 || v6 != 1 {
            errs.push(field::invalid(
                &p,
                Bad::Json(&Value::Array(arr(spec, "podCIDRs").to_vec())),
                "may specify no more than one CIDR for each IP family",
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, c) in cidrs.iter().enumerate() {
            if !seen.insert(*c) {
                errs.push(field::duplicate(&p.index(i), Bad::Str(c)));
            }
        }
    }
    errs
}

pub fn validate_node(node: &Value) -> Vec<Cause> {
    let mp = Path::new("metadata");
    let mut errs = meta::validate_object_meta(sub(node, "metadata"), false, NameRule::Dns1123Subdomain, &mp);
    // Upstream reports spec.taints under `metadata.taints`.
    errs.extend(node_taints(arr(sub(node, "spec"), "taints"), &mp.child("taints")));
    errs.extend(node_resources(node));
    errs.extend(pod_cidrs(sub(node, "spec")));
    errs
}

pub fn validate_node_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mp = Path::new("metadata");
    let mut errs = meta::validate_object_meta_update(sub(new, "metadata"), sub(old, "metadata"), &mp);
    errs.extend(node_resources(new));
    let mut seen = Vec::new();
    for (i, a) in arr(sub(new, "status"), "addresses").iter().enumerate() {
        if seen.contains(&a) {
            errs.push(field::duplicate(&Path::new("status.addresses").index(i), Bad::Json(a)));
        }
        seen.push(a);
    }
    let (ns, os) = (sub(new, "spec"), sub(old, "spec"));
    let old_cidrs = arr(os, "podCIDRs");
    if !old_cidrs.is_empty() && old_cidrs != arr(ns, "podCIDRs") {
        errs.push(field::forbidden(
            &Path::new("spec.podCIDRs"),
            "node updates may not change podCIDR except from \"\" to valid",
        ));
    }
    let old_provider = str_of(os, "providerID");
    if !old_provider.is_empty() && old_provider != str_of(ns, "providerID") {
        errs.push(field::forbidden(
            &Path::new("spec.providerID"),
            "node updates may not change providerID except from \"\" to valid",
        ));
    }
    errs.extend(node_taints(arr(ns, "taints"), &mp.child("taints")));
    if str_of(ns, "externalID") != str_of(os, "externalID") {
        errs.push(field::forbidden(&Path::new("spec.externalID"), "may not be updated"));
    }
    errs
}

// ---- ServiceAccount

pub fn validate_service_account(sa: &Value) -> Vec<Cause> {
    meta::validate_object_meta(sub(sa, "metadata"), true, NameRule::Dns1123Subdomain, &Path::new("metadata"))
}

pub fn validate_service_account_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs =
        meta::validate_object_meta_update(sub(new, "metadata"), sub(old, "metadata"), &Path::new("metadata"));
    errs.extend(validate_service_account(new));
    errs
}

// ---- Events

/// A core event's fields as upstream's internal type names them, read from either the
/// `v1` or the `events.k8s.io/v1` shape.
struct EventView<'a> {
    ev: &'a Value,
    strict: bool,
}

impl<'a> EventView<'a> {
    fn key(&self, core: &'static str) -> &'static str {
        if !self.strict {
            return core;
        }
        match core {
            "message" => "note",
            "involvedObject" => "regarding",
            "source" => "deprecatedSource",
            "firstTimestamp" => "deprecatedFirstTimestamp",
            "lastTimestamp" => "deprecatedLastTimestamp",
            "count" => "deprecatedCount",
            "reportingComponent" => "reportingController",
            other => other,
        }
    }
    fn get(&self, core: &'static str) -> Option<&'a Value> {
        get(self.ev, self.key(core))
    }
    fn str(&self, core: &'static str) -> &'a str {
        str_of(self.ev, self.key(core))
    }
}

fn legacy_event(view: &EventView<'_>) -> Vec<Cause> {
    let mut errs = Vec::new();
    let ns = str_of(sub(view.ev, "metadata"), "namespace");
    let involved_ns = view.get("involvedObject").map(|o| str_of(o, "namespace")).unwrap_or_default();
    let ip = Path::new("involvedObject.namespace");
    let mismatch =
        |errs: &mut Vec<Cause>| errs.push(field::invalid(&ip, Bad::Str(involved_ns), "does not match event.namespace"));
    let controller_field = if view.strict { "reportingController" } else { "reportingComponent" };
    if view.get("eventTime").is_none() {
        if involved_ns.is_empty() {
            if !ns.is_empty() && ns != "default" {
                mismatch(&mut errs);
            }
        } else if ns != involved_ns {
            mismatch(&mut errs);
        }
    } else {
        if involved_ns.is_empty() && ns != "default" && ns != "kube-system" {
            mismatch(&mut errs);
        }
        let controller = view.str("reportingComponent");
        if controller.is_empty() {
            errs.push(field::required(&Path::new(controller_field), ""));
        }
        errs.extend(
            names::qualified_name(controller)
                .iter()
                .map(|m| field::invalid(&Path::new(controller_field), Bad::Str(controller), m)),
        );
        let limits = [("reportingInstance", 128), ("action", 128), ("reason", 128)];
        for (key, limit) in limits {
            let v = view.str(key);
            if v.is_empty() {
                errs.push(field::required(&Path::new(key), ""));
            }
            if v.len() > limit {
                errs.push(field::invalid(
                    &Path::new(key),
                    Bad::Str(""),
                    &format!("can have at most {limit} characters"),
                ));
            }
        }
        if view.str("message").len() > 1024 {
            errs.push(field::invalid(&Path::new("message"), Bad::Str(""), "can have at most 1024 characters"));
        }
    }
    errs.extend(names::dns1123_subdomain(ns).iter().map(|m| field::invalid(&Path::new("namespace"), Bad::Str(ns), m)));
    errs
}

fn event_series(view: &EventView<'_>) -> Vec<Cause> {
    let mut errs = Vec::new();
    if let Some(series) = view.get("series") {
        if int_of(series, "count").unwrap_or(0) < 2 {
            errs.push(field::invalid(&Path::new("series.count"), Bad::Str(""), "should be at least 2"));
        }
        if get(series, "lastObservedTime").is_none() {
            errs.push(field::required(&Path::new("series.lastObservedTime"), ""));
        }
    }
    errs
}

/// `ValidateEventCreate`; `strict` for `events.k8s.io/v1` requests.
pub fn validate_event(ev: &Value, strict: bool) -> Vec<Cause> {
    let view = EventView { ev, strict };
    let mut errs = legacy_event(&view);
    if !strict {
        return errs;
    }
    errs.extend(meta::validate_object_meta(
        sub(ev, "metadata"),
        true,
        NameRule::Dns1123Subdomain,
        &Path::new("metadata"),
    ));
    errs.extend(event_series(&view));
    if view.get("eventTime").is_none() {
        errs.push(field::required(&Path::new("eventTime"), ""));
    }
    let ty = view.str("type");
    if ty != "Normal" && ty != "Warning" {
        errs.push(field::invalid(&Path::new("type"), Bad::Str(""), &format!("has invalid value: {ty}")));
    }
    for key in ["firstTimestamp", "lastTimestamp"] {
        if view.get(key).is_some() {
            errs.push(field::invalid(&Path::new(key), Bad::Str(""), "needs to be unset"));
        }
    }
    if int_of(ev, view.key("count")).unwrap_or(0) != 0 {
        errs.push(field::invalid(&Path::new("count"), Bad::Str(""), "needs to be unset"));
    }
    if view.get("source").is_some_and(|s| !str_of(s, "component").is_empty() || !str_of(s, "host").is_empty()) {
        errs.push(field::invalid(&Path::new("source"), Bad::Str(""), "needs to be unset"));
    }
    errs
}

pub fn validate_event_update(new: &Value, old: &Value, strict: bool) -> Vec<Cause> {
    let nv = EventView { ev: new, strict };
    let ov = EventView { ev: old, strict };
    let mut errs = legacy_event(&nv);
    if !strict {
        return errs;
    }
    errs.extend(meta::validate_object_meta_update(sub(new, "metadata"), sub(old, "metadata"), &Path::new("metadata")));
    if field::differs(nv.get("series"), ov.get("series")) {
        errs.extend(event_series(&nv));
    }
    for key in [
        "involvedObject",
        "reason",
        "message",
        "source",
        "firstTimestamp",
        "lastTimestamp",
        "count",
        "type",
        "eventTime",
        "action",
        "related",
        "reportingComponent",
        "reportingInstance",
    ] {
        if field::differs(nv.get(key), ov.get(key)) {
            let name = if key == "reportingComponent" { "reportingController" } else { key };
            errs.push(field::invalid(
                &Path::new(name),
                Bad::Json(nv.get(key).unwrap_or(&Value::Null)),
                FIELD_IMMUTABLE,
            ));
        }
    }
    errs
}

// ---- Lease

fn lease_spec(spec: &Value) -> Vec<Cause> {
    let mut errs = Vec::new();
    let sp = Path::new("spec");
    if let Some(d) = int_of(spec, "leaseDurationSeconds").filter(|d| *d <= 0) {
        errs.push(field::invalid(&sp.child("leaseDurationSeconds"), Bad::Int(d), "must be greater than 0"));
    }
    if let Some(t) = int_of(spec, "leaseTransitions").filter(|t| *t < 0) {
        errs.push(field::invalid(&sp.child("leaseTransitions"), Bad::Int(t), "must be greater than or equal to 0"));
    }
    let strategy = opt_str(spec, "strategy");
    if let Some(s) = strategy {
        let p = sp.child("strategy");
        match s.split('/').count() {
            1 if s != "OldestEmulationVersion" => {
                errs.push(field::not_supported(&p, Bad::Str(s), &["OldestEmulationVersion"]))
            }
            1 => {}
            2 => errs.extend(names::qualified_name(s).iter().map(|m| field::invalid(&p, Bad::Str(s), m))),
            _ => errs.push(field::invalid(&p, Bad::Str(s), "must be a valid strategy name")),
        }
    }
    if opt_str(spec, "preferredHolder").is_some_and(|h| !h.is_empty()) && strategy.is_none_or(str::is_empty) {
        errs.push(field::forbidden(&sp.child("preferredHolder"), "may only be specified if `strategy` is defined"));
    }
    errs
}

pub fn validate_lease(lease: &Value) -> Vec<Cause> {
    let mut errs =
        meta::validate_object_meta(sub(lease, "metadata"), true, NameRule::Dns1123Subdomain, &Path::new("metadata"));
    errs.extend(lease_spec(sub(lease, "spec")));
    errs
}

pub fn validate_lease_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs =
        meta::validate_object_meta_update(sub(new, "metadata"), sub(old, "metadata"), &Path::new("metadata"));
    errs.extend(lease_spec(sub(new, "spec")));
    errs
}

// ---- PodDisruptionBudget

pub fn validate_pdb(pdb: &Value) -> Vec<Cause> {
    let spec = sub(pdb, "spec");
    let sp = Path::new("spec");
    let mut errs = Vec::new();
    let (min, max) = (get(spec, "minAvailable"), get(spec, "maxUnavailable"));
    if min.is_some() && max.is_some() {
        errs.push(field::invalid(&sp, Bad::Json(spec), "minAvailable and maxUnavailable cannot be both set"));
    }
    for (key, v) in [("minAvailable", min), ("maxUnavailable", max)] {
        if let Some(v) = v {
            errs.extend(apps::validate_positive_int_or_percent(v, &sp.child(key)));
            errs.extend(apps::is_not_more_than_100_percent(v, &sp.child(key)));
        }
    }
    errs.extend(meta::validate_label_selector(get(spec, "selector"), &sp.child("selector")));
    if let Some(p) = opt_str(spec, "unhealthyPodEvictionPolicy")
        && p != "AlwaysAllow"
        && p != "IfHealthyBudget"
    {
        errs.push(field::not_supported(
            &sp.child("unhealthyPodEvictionPolicy"),
            Bad::Str(p),
            &["AlwaysAllow", "IfHealthyBudget"],
        ));
    }
    errs
}

pub fn validate_pdb_status_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs =
        meta::validate_object_meta_update(sub(new, "metadata"), sub(old, "metadata"), &Path::new("metadata"));
    let st = Path::new("status");
    let status = sub(new, "status");
    for key in ["disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods"] {
        if let Some(n) = int_of(status, key) {
            errs.extend(meta::validate_nonnegative(n, &st.child(key)));
        }
    }
    for (i, c) in arr(status, "conditions").iter().enumerate() {
        let p = st.child("conditions").index(i);
        let ty = str_of(c, "type");
        errs.extend(names::qualified_name(ty).iter().map(|m| field::invalid(&p.child("type"), Bad::Str(ty), m)));
        let s = str_of(c, "status");
        if !matches!(s, "True" | "False" | "Unknown") {
            errs.push(field::not_supported(&p.child("status"), Bad::Str(s), &["False", "True", "Unknown"]));
        }
        if get(c, "lastTransitionTime").is_none() {
            errs.push(field::required(&p.child("lastTransitionTime"), "must be set"));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn find<'a>(errs: &'a [Cause], f: &str) -> Option<&'a Cause> {
        errs.iter().find(|c| c.field == f)
    }

    fn rv(mut v: Value) -> Value {
        v["metadata"]["resourceVersion"] = json!("1");
        v
    }

    #[test]
    fn config_maps() {
        let cm = json!({"metadata": {"name": "cfg", "namespace": "d"}, "data": {"app.properties": "a=b"}, "binaryData": {"blob": "AAEC"}});
        assert!(validate_config_map(&cm).is_empty());
        let bad = json!({"metadata": {"name": "cfg", "namespace": "d"}, "data": {"a/b": "x", "k": "y"}, "binaryData": {"k": "AA=="}});
        let errs = validate_config_map(&bad);
        assert_eq!(
            find(&errs, "data[a/b]").unwrap().message,
            "Invalid value: \"a/b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
        );
        assert!(find(&errs, "data[k]").unwrap().message.ends_with("duplicate of key present in binaryData"));
        let big =
            json!({"metadata": {"name": "cfg", "namespace": "d"}, "data": {"k": "x".repeat(MAX_SECRET_SIZE + 1)}});
        assert_eq!(
            find(&validate_config_map(&big), "[]").unwrap().message,
            "Too long: may not be more than 1048576 bytes"
        );
    }

    #[test]
    fn immutable_config_maps_and_secrets() {
        let old = rv(json!({"metadata": {"name": "cfg", "namespace": "d"}, "data": {"k": "v"}, "immutable": true}));
        let mut new = old.clone();
        new["data"]["k"] = json!("w");
        let errs = validate_config_map_update(&new, &old);
        assert_eq!(find(&errs, "data").unwrap().message, "Forbidden: field is immutable when `immutable` is set");
        new["immutable"] = json!(false);
        assert!(find(&validate_config_map_update(&new, &old), "immutable").is_some());

        let old = rv(
            json!({"metadata": {"name": "s", "namespace": "d"}, "type": "Opaque", "data": {"k": "dg=="}, "immutable": true}),
        );
        let mut new = old.clone();
        new["type"] = json!("kubernetes.io/tls");
        new["data"] = json!({"tls.crt": "", "tls.key": ""});
        let errs = validate_secret_update(&new, &old);
        assert_eq!(find(&errs, "type").unwrap().message, "Invalid value: \"kubernetes.io/tls\": field is immutable");
        assert!(find(&errs, "data").is_some());
    }

    #[test]
    fn secrets_by_type() {
        let s = json!({"metadata": {"name": "s", "namespace": "d"}, "type": "Opaque", "data": {"password": "aHVudGVyMg=="}});
        assert!(validate_secret(&s).is_empty());
        let tls = json!({"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}});
        assert_eq!(find(&validate_secret(&tls), "data[tls.key]").unwrap().message, "Required value");
        let dcj =
            json!({"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/dockerconfigjson", "data": {}});
        assert!(find(&validate_secret(&dcj), "data[.dockerconfigjson]").is_some());
        let dcj_bad = json!({"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": "bm90IGpzb24="}});
        assert!(
            find(&validate_secret(&dcj_bad), "data[.dockerconfigjson]")
                .unwrap()
                .message
                .starts_with("Invalid value: \"<secret contents redacted>\"")
        );
        let sat = json!({"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/service-account-token"});
        assert!(find(&validate_secret(&sat), "metadata.annotations[kubernetes.io/service-account.name]").is_some());
        let bad64 = json!({"metadata": {"name": "s", "namespace": "d"}, "type": "Opaque", "data": {"k": "@@@"}});
        assert!(find(&validate_secret(&bad64), "data[k]").unwrap().message.contains("illegal base64 data"));
    }

    #[test]
    fn namespaces() {
        let ns = json!({"metadata": {"name": "team-a", "labels": {"kubernetes.io/metadata.name": "team-a"}}, "spec": {"finalizers": ["kubernetes"]}});
        assert!(validate_namespace(&ns).is_empty());
        let bad = json!({"metadata": {"name": "team.a"}, "spec": {"finalizers": ["custom"]}});
        let errs = validate_namespace(&bad);
        assert_eq!(find(&errs, "metadata.name").unwrap().message, "Invalid value: \"team.a\": must not contain dots");
        assert!(find(&errs, "spec.finalizers").unwrap().message.contains("neither a standard finalizer"));
        let old = rv(ns.clone());
        let mut new = old.clone();
        new["status"] = json!({"phase": "Terminating"});
        assert!(find(&validate_namespace_status_update(&new, &old), "status.Phase").is_some());
    }

    #[test]
    fn nodes() {
        let node = json!({"metadata": {"name": "n1"}, "spec": {"podCIDRs": ["10.42.0.0/24"],
            "taints": [{"key": "a", "effect": "NoSchedule"}]},
            "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}}});
        assert!(validate_node(&node).is_empty(), "{:?}", validate_node(&node));
        let bad = json!({"metadata": {"name": "n1"}, "spec": {"podCIDRs": ["10.42.0.1/24"],
            "taints": [{"key": "a", "effect": "Sometimes"}, {"key": "b"}, {"key": "c", "effect": "NoSchedule"}, {"key": "c", "effect": "NoSchedule"}]},
            "status": {"capacity": {"cpu": "-1", "pods": "1.5"}}});
        let errs = validate_node(&bad);
        assert!(find(&errs, "spec.podCIDRs[0]").is_some());
        assert_eq!(find(&errs, "metadata.taints[0].effect").unwrap().reason, "FieldValueNotSupported");
        assert_eq!(find(&errs, "metadata.taints[1].effect").unwrap().message, "Required value");
        assert!(
            find(&errs, "metadata.taints[3]")
                .unwrap()
                .message
                .ends_with("taints must be unique by key and effect pair")
        );
        assert!(find(&errs, "status.capacity.cpu").is_some());
        assert!(find(&errs, "status.capacity.pods").unwrap().message.ends_with("must be an integer"));
        let old = rv(node.clone());
        let mut new = old.clone();
        new["spec"]["podCIDRs"] = json!(["10.42.1.0/24"]);
        assert!(find(&validate_node_update(&new, &old), "spec.podCIDRs").is_some());
    }

    #[test]
    fn events() {
        let ev = json!({"metadata": {"name": "web.1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
            "reason": "Started", "message": "ok", "source": {"component": "kubelet"}, "type": "Normal"});
        assert!(validate_event(&ev, false).is_empty());
        let mut bad = ev.clone();
        bad["involvedObject"]["namespace"] = json!("other");
        assert_eq!(
            find(&validate_event(&bad, false), "involvedObject.namespace").unwrap().message,
            "Invalid value: \"other\": does not match event.namespace"
        );
        let mut new_style = ev.clone();
        new_style["eventTime"] = json!("2024-01-01T00:00:00.000000Z");
        let errs = validate_event(&new_style, false);
        assert!(find(&errs, "reportingComponent").is_some());
        assert!(find(&errs, "action").is_some());

        let strict = json!({"metadata": {"name": "web.1", "namespace": "default"},
            "regarding": {"kind": "Pod", "name": "web", "namespace": "default"},
            "eventTime": "2024-01-01T00:00:00.000000Z", "reportingController": "example.com/ctl",
            "reportingInstance": "ctl-1", "action": "Sync", "reason": "Done", "type": "Normal", "note": "x"});
        assert!(validate_event(&strict, true).is_empty(), "{:?}", validate_event(&strict, true));
        let mut bad = strict.clone();
        bad["type"] = json!("Odd");
        bad["deprecatedCount"] = json!(3);
        let errs = validate_event(&bad, true);
        assert_eq!(find(&errs, "type").unwrap().message, "Invalid value: \"\": has invalid value: Odd");
        assert!(find(&errs, "count").is_some());
    }

    #[test]
    fn leases() {
        let lease = json!({"metadata": {"name": "n1", "namespace": "kube-node-lease"}, "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40}});
        assert!(validate_lease(&lease).is_empty());
        let bad = json!({"metadata": {"name": "n1", "namespace": "x"}, "spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1, "preferredHolder": "a"}});
        let errs = validate_lease(&bad);
        assert_eq!(
            find(&errs, "spec.leaseDurationSeconds").unwrap().message,
            "Invalid value: 0: must be greater than 0"
        );
        assert!(find(&errs, "spec.leaseTransitions").is_some());
        assert!(find(&errs, "spec.preferredHolder").is_some());
    }

    #[test]
    fn pdbs() {
        let pdb = json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}});
        assert!(validate_pdb(&pdb).is_empty());
        let bad = json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"minAvailable": "150%", "maxUnavailable": -1}});
        let errs = validate_pdb(&bad);
        assert!(find(&errs, "spec").unwrap().message.ends_with("minAvailable and maxUnavailable cannot be both set"));
        assert!(find(&errs, "spec.minAvailable").unwrap().message.contains("100%"));
        assert!(find(&errs, "spec.maxUnavailable").is_some());
        let old = rv(pdb.clone());
        let mut new = old.clone();
        new["status"] = json!({"disruptionsAllowed": -1, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0});
        assert!(find(&validate_pdb_status_update(&new, &old), "status.disruptionsAllowed").is_some());
    }
}
