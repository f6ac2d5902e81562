//! Subresources: `status` (the status alone), `scale` (an autoscaling/v1 Scale view of
//! a workload's replicas), `binding` (the scheduler's placement of a pod), `eviction`
//! (a deletion that respects disruption budgets) and namespaces' `finalize`.

use super::delete::{DeleteOptions, delete_object};
use super::read::{Selectors, collect};
use super::write::{Mode, commit, patch_with, read_patch, update_with};
use super::{Request, Target, meta_str, written_response};
use crate::Ctx;
use crate::body;
use crate::wire::{self, Resp};
use api::selector::{FieldSelector, LabelSelector};
use api::{ApiError, Subresource};
use http::Method;
use serde_json::{Value, json};
use std::sync::Arc;

pub async fn handle(ctx: &Arc<Ctx>, t: &Target, sub: &str, mut req: Request) -> Result<Resp, ApiError> {
    let kind = Subresource::parse(sub)
        .filter(|s| t.res.has_subresource(*s))
        .ok_or_else(|| ApiError::not_found(t.res, &format!("{}/{sub}", t.name())))?;
    if t.res.namespaced && t.namespace.is_none() {
        return Err(ApiError::no_route());
    }
    match (kind, &req.method) {
        (Subresource::Status, &Method::GET) => {
            let (obj, _) =
                ctx.objects.get(t.res, &t.key()).await?.ok_or_else(|| ApiError::not_found(t.res, t.name()))?;
            Ok(wire::ok(&obj))
        }
        (Subresource::Status, &Method::PUT) => {
            let checked = super::write::read_object(t, &mut req).await?;
            let written = update_with(ctx, t, &req, checked.obj, Mode::Status).await?;
            Ok(wire::with_warnings(written_response(t, &req, http::StatusCode::OK, &written), &checked.warnings))
        }
        (Subresource::Status, &Method::PATCH) => {
            let (kind, patch) = read_patch(&mut req).await?;
            let (_, written, warnings) = patch_with(ctx, t, &req, kind, &patch, Mode::Status).await?;
            Ok(wire::with_warnings(written_response(t, &req, http::StatusCode::OK, &written), &warnings))
        }
        (Subresource::Scale, &Method::GET) => {
            let (obj, _) =
                ctx.objects.get(t.res, &t.key()).await?.ok_or_else(|| ApiError::not_found(t.res, t.name()))?;
            Ok(wire::ok(&scale_of(&obj)?))
        }
        (Subresource::Scale, &Method::PUT | &Method::PATCH) => scale_write(ctx, t, &mut req).await,
        (Subresource::Binding, &Method::POST) => bind(ctx, t, &mut req).await,
        (Subresource::Eviction, &Method::POST) => evict(ctx, t, &mut req).await,
        (Subresource::Finalize, &Method::PUT) => finalize(ctx, t, &mut req).await,
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({}/{sub})",
            t.res.plural
        ))),
    }
}

/// The Scale of a workload: its desired and observed replicas and its selector.
fn scale_of(obj: &Value) -> Result<Value, ApiError> {
    let selector = match obj.pointer("/spec/selector") {
        Some(s) => LabelSelector::from_json(s).map_err(|e| ApiError::internal(e.to_string()))?.to_string(),
        None => String::new(),
    };
    let meta = &obj["metadata"];
    let mut m = json!({});
    for k in ["name", "namespace", "uid", "resourceVersion", "creationTimestamp"] {
        if let Some(v) = meta.get(k) {
            m[k] = v.clone();
        }
    }
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": m,
        "spec": {"replicas": obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)},
        "status": {
            "replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector,
        },
    }))
}

async fn scale_write(ctx: &Arc<Ctx>, t: &Target, req: &mut Request) -> Result<Resp, ApiError> {
    let scale_res = &api::registry::SCALE;
    let (scale, is_patch) = if req.method == Method::PATCH {
        (read_patch(req).await?, true)
    } else {
        let bytes = req.body().await?;
        let obj = body::parse_object(&bytes, req.content_type.as_deref())?;
        let checked = body::check_object(scale_res, "Scale", "autoscaling/v1", obj, req.query.validation())?;
        ((crate::patch::PatchType::Merge, checked.obj), false)
    };
    for attempt in 1..=5 {
        let (old, rev) = ctx.objects.get(t.res, &t.key()).await?.ok_or_else(|| ApiError::not_found(t.res, t.name()))?;
        let current = scale_of(&old)?;
        let wanted = if is_patch {
            match scale.0 {
                crate::patch::PatchType::Apply => {
                    return Err(ApiError::unsupported_media_type("application/apply-patch+yaml"));
                }
                kind => super::write::apply_patch(scale_res, kind, &current, &scale.1)?,
            }
        } else {
            scale.1.clone()
        };
        let replicas = match wanted.pointer("/spec/replicas") {
            None | Some(Value::Null) => 0,
            Some(v) => v.as_i64().ok_or_else(|| ApiError::bad_request("spec.replicas must be an integer"))?,
        };
        if replicas < 0 {
            return Err(ApiError::invalid(
                "Scale",
                "autoscaling",
                t.name(),
                vec![api::Cause::new(
                    "FieldValueInvalid",
                    "spec.replicas",
                    format!("Invalid value: {replicas}: must be greater than or equal to 0"),
                )],
            ));
        }
        let pinned = meta_str(&wanted, "resourceVersion").filter(|rv| !rv.is_empty());
        if let Some(rv) = pinned
            && rv != rev.to_string()
        {
            return Err(ApiError::stale(t.res, t.name()));
        }
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(replicas);
        let manager = req.field_manager();
        match commit(ctx, t, req.query.dry_run, &old, rev, new, Mode::Main, Some(&manager)).await {
            Err(e) if e.reason == "Conflict" && pinned.is_none() && attempt < 5 => continue,
            Err(e) => return Err(e),
            Ok(written) => {
                let mut s = scale_of(&written.obj)?;
                s["spec"]["replicas"] = json!(replicas);
                return Ok(wire::ok(&s));
            }
        }
    }
    Err(ApiError::stale(t.res, t.name()))
}

/// Places a pod on a node, once.
async fn bind(ctx: &Arc<Ctx>, t: &Target, req: &mut Request) -> Result<Resp, ApiError> {
    let bytes = req.body().await?;
    let binding = body::parse_object(&bytes, req.content_type.as_deref())?;
    // Upstream's create handler and BindingREST check these before validating.
    let meta =
        |field: &str| binding.pointer(&format!("/metadata/{field}")).and_then(Value::as_str).filter(|s| !s.is_empty());
    if meta("namespace").is_some_and(|ns| Some(ns) != t.namespace.as_deref()) {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    if meta("name").unwrap_or_default() != t.name() {
        return Err(ApiError::bad_request("name in URL does not match name in Binding object"));
    }
    let causes = api::validation::validate_binding(&binding);
    if !causes.is_empty() {
        return Err(ApiError::invalid("Binding", "", t.name(), causes));
    }
    let node = binding.pointer("/target/name").and_then(Value::as_str).unwrap_or_default().to_string();
    let (uid, precondition_rv) = (meta("uid"), meta("resourceVersion"));
    let annotations = match binding.pointer("/metadata/annotations") {
        None | Some(Value::Null) => None,
        Some(Value::Object(a)) if a.values().all(Value::is_string) => Some(a).filter(|a| !a.is_empty()),
        // Upstream cannot decode such a Binding at all (annotations are strings).
        Some(_) => {
            return Err(ApiError::bad_request(
                "Binding in version \"v1\" cannot be handled as a Binding: metadata.annotations must map strings to strings",
            ));
        }
    };
    let bound = || Ok(wire::json(http::StatusCode::CREATED, &api::status::success(201)));
    // Upstream's messages: the preconditions fail in its storage layer, the rest in
    // the binding's own checks, reported on `pods/binding`.
    let precondition_failed = |what: &str, wanted: &str, found: &str| {
        let key = t.key();
        ApiError::conflict(
            t.res,
            t.name(),
            &format!(
                "StorageError: invalid object, Code: 4, Key: {key}, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: {what} in precondition: {wanted}, {what} in object meta: {found}"
            ),
        )
    };
    let refused = |why: String| ApiError::core_subresource_conflict("pods/binding", t.name(), &why);
    for attempt in 1..=5 {
        let kv = ctx.objects.get_stored(&t.key()).await?.ok_or_else(|| ApiError::not_found(t.res, t.name()))?;
        let now = api::time::now_rfc3339();
        // A pod as the scheduler finds it (unbound, no PodScheduled condition, not
        // being deleted, no scheduling gates) bound by a plain binding is bound by
        // editing its stored bytes: parsing the pod into a tree, serialising it and
        // dropping the tree were most of a binding's cost. Any other takes the way
        // below, which also says what is wrong.
        let plain = precondition_rv.is_none() && annotations.is_none() && api::convert::is_identity(t.res);
        let edited = plain.then(|| bind_stored(&kv.value, uid, &node, &now)).flatten();
        let written = match edited {
            Some(_) if req.query.dry_run => return bound(),
            Some(bytes) => ctx.objects.update_bytes(t.res, &t.key(), t.name(), bytes.into(), kv.mod_revision).await,
            None => {
                let old = crate::objects::decode_as(t.res, &kv)?;
                let pod_uid = meta_str(&old, "uid").unwrap_or_default();
                if let Some(uid) = uid.filter(|uid| *uid != pod_uid) {
                    return Err(precondition_failed("UID", uid, pod_uid));
                }
                let pod_rv = kv.mod_revision.to_string();
                if let Some(rv) = precondition_rv.filter(|rv| *rv != pod_rv) {
                    return Err(precondition_failed("ResourceVersion", rv, &pod_rv));
                }
                if old.pointer("/metadata/deletionTimestamp").is_some() {
                    return Err(refused(format!("pod {} is being deleted, cannot be assigned to a host", t.name())));
                }
                if let Some(existing) = old.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty())
                {
                    return Err(refused(format!("pod {} is already assigned to node \"{existing}\"", t.name())));
                }
                if old.pointer("/spec/schedulingGates").and_then(Value::as_array).is_some_and(|g| !g.is_empty()) {
                    return Err(refused(format!("pod {} has non-empty .spec.schedulingGates", t.name())));
                }
                // The pod read is changed in place: a copy of it (and dropping two)
                // cost as much as the rest of a binding.
                let mut new = old;
                bind_tree(&mut new, &node, &now);
                for (k, v) in annotations.into_iter().flatten() {
                    new["metadata"]["annotations"][k] = v.clone();
                }
                if req.query.dry_run {
                    return bound();
                }
                ctx.objects.update(t.res, &t.key(), new, kv.mod_revision).await.map(|_| 0)
            }
        };
        match written {
            Err(e) if e.reason == "Conflict" && attempt < 5 => continue,
            Err(e) => return Err(e),
            Ok(_) => return bound(),
        }
    }
    Err(ApiError::stale(t.res, t.name()))
}

/// The PodScheduled condition a binding sets.
fn scheduled_condition(now: &str) -> Value {
    json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now})
}

/// Binds a parsed pod: `spec.nodeName`, and a PodScheduled=True condition.
pub(crate) fn bind_tree(pod: &mut Value, node: &str, now: &str) {
    pod["spec"]["nodeName"] = json!(node);
    let mut scheduled = scheduled_condition(now);
    let Some(conditions) = pod["status"]["conditions"].as_array_mut() else {
        pod["status"]["conditions"] = json!([scheduled]);
        return;
    };
    // Upstream's UpdatePodCondition: the first PodScheduled condition is replaced where
    // it stands, keeping its transition time if it was True already.
    match conditions.iter_mut().find(|c| c.get("type").and_then(Value::as_str) == Some("PodScheduled")) {
        Some(old) => {
            if old.get("status").and_then(Value::as_str) == Some("True")
                && let Some(at) = old.get("lastTransitionTime")
            {
                scheduled["lastTransitionTime"] = at.clone();
            }
            *old = scheduled;
        }
        None => conditions.push(scheduled),
    }
}

/// [`bind_tree`] done on a pod's stored bytes, giving the bytes `bind_tree` and a
/// serialisation would (keys in order, nothing else touched); `None` unless the pod
/// is the usual case: its UID is `uid` when one is given, it is not being deleted,
/// its `spec.nodeName` is absent or empty, it has no scheduling gates and no
/// PodScheduled condition.
pub(crate) fn bind_stored(stored: &[u8], uid: Option<&str>, node: &str, now: &str) -> Option<Vec<u8>> {
    use crate::rawjson::{Slot, member_text, slot};
    let (meta_start, meta_end) = crate::rawjson::metadata_span(stored)?;
    let meta = &stored[meta_start..meta_end];
    if let Some(uid) = uid {
        let Slot::Value(from, to) = slot(meta, b"uid")? else { return None };
        if meta[from..to] != *serde_json::to_vec(uid).ok()? {
            return None;
        }
    }
    if matches!(slot(meta, b"deletionTimestamp")?, Slot::Value(..)) {
        return None;
    }
    let mut edits = Vec::with_capacity(2);
    let Slot::Value(spec_start, spec_end) = slot(stored, b"spec")? else { return None };
    let spec = stored.get(spec_start..spec_end).filter(|s| s.first() == Some(&b'{'))?;
    if let Slot::Value(from, to) = slot(spec, b"schedulingGates")?
        && &spec[from..to] != b"[]"
    {
        return None;
    }
    let node_json = serde_json::to_vec(node).ok()?;
    match slot(spec, b"nodeName")? {
        Slot::Value(from, to) if &spec[from..to] == b"\"\"" => {
            edits.push((spec_start + from, spec_start + to, node_json));
        }
        Slot::Value(..) => return None,
        Slot::Insert { at, comma_before, comma_after } => {
            edits.push((
                spec_start + at,
                spec_start + at,
                member_text("nodeName", &node_json, comma_before, comma_after),
            ));
        }
    }
    let condition = serde_json::to_vec(&scheduled_condition(now)).ok()?;
    match slot(stored, b"status")? {
        Slot::Value(status_start, status_end) => {
            let status = stored.get(status_start..status_end).filter(|s| s.first() == Some(&b'{'))?;
            match slot(status, b"conditions")? {
                Slot::Value(from, to) => {
                    let conditions = &status[from..to];
                    if conditions.first() != Some(&b'[') || memchr::memmem::find(conditions, b"PodScheduled").is_some()
                    {
                        return None;
                    }
                    let empty = conditions[1..conditions.len() - 1].iter().all(u8::is_ascii_whitespace);
                    let mut added = Vec::with_capacity(condition.len() + 1);
                    if !empty {
                        added.push(b',');
                    }
                    added.extend_from_slice(&condition);
                    let at = status_start + to - 1;
                    edits.push((at, at, added));
                }
                Slot::Insert { at, comma_before, comma_after } => {
                    let list = [b"[".as_slice(), &condition, b"]"].concat();
                    let at = status_start + at;
                    edits.push((at, at, member_text("conditions", &list, comma_before, comma_after)));
                }
            }
        }
        Slot::Insert { at, comma_before, comma_after } => {
            let status = [b"{\"conditions\":[".as_slice(), &condition, b"]}"].concat();
            edits.push((at, at, member_text("status", &status, comma_before, comma_after)));
        }
    }
    Some(crate::rawjson::splice(stored, edits))
}

/// Deletes a pod unless the PodDisruptionBudget that covers it allows no more
/// disruption (upstream's eviction subresource). A granted eviction first takes one
/// disruption off the budget and records the pod in `status.disruptedPods`, in a write
/// guarded by the budget's revision, so two evictions racing for the last allowed
/// disruption cannot both pass; the disruption controller then recounts.
async fn evict(ctx: &Arc<Ctx>, t: &Target, req: &mut Request) -> Result<Resp, ApiError> {
    let bytes = req.body().await?;
    let eviction = body::parse_object(&bytes, req.content_type.as_deref())?;
    if let Some(n) = eviction.pointer("/metadata/name").and_then(Value::as_str).filter(|n| !n.is_empty())
        && n != t.name()
    {
        return Err(ApiError::bad_request("name in URL does not match name in Eviction object"));
    }
    let mut opts = DeleteOptions::from_value(eviction.get("deleteOptions").unwrap_or(&Value::Null), req)?;
    opts.dry_run |= req.query.dry_run;
    let (pod, pod_rev) = ctx.objects.get(t.res, &t.key()).await?.ok_or_else(|| ApiError::not_found(t.res, t.name()))?;
    let mut pinned = false;
    let mut pdb_name = String::new();
    if !can_ignore_budgets(&pod) {
        match guard_budget(ctx, t, &pod, opts.dry_run).await? {
            Guard::NoBudget | Guard::Granted => {}
            Guard::PinPod(name) => {
                // An unready pod goes without using up a disruption, but only if it is
                // still the pod that was judged (it may have turned ready since).
                pdb_name = name;
                if opts.precondition_rv.is_none() {
                    opts.precondition_rv = Some(pod_rev.to_string());
                    pinned = true;
                }
            }
        }
    }
    // A precondition that fails is left to the deletion to report.
    let preconditions_hold = opts.precondition_rv.as_ref().is_none_or(|rv| *rv == pod_rev.to_string())
        && opts.precondition_uid.as_deref().is_none_or(|uid| Some(uid) == meta_str(&pod, "uid"));
    if !opts.dry_run && !can_ignore_budgets(&pod) && preconditions_hold {
        match mark_disruption_target(ctx, t, &pod, pod_rev).await {
            // The precondition named the pod as it was before the condition went on.
            Ok(Some(rv)) if opts.precondition_rv.is_some() => opts.precondition_rv = Some(rv),
            Ok(_) => {}
            Err(e) if e.reason == "Conflict" && pinned => return Err(budget_still_processing(&pdb_name)),
            Err(e) if e.reason == "Conflict" || e.reason == "NotFound" => {}
            Err(e) => return Err(e),
        }
    }
    match delete_object(ctx, t, &opts).await {
        Err(e) if e.reason == "Conflict" && pinned => Err(budget_still_processing(&pdb_name)),
        Err(e) => Err(e),
        Ok(_) => Ok(wire::json(http::StatusCode::CREATED, &api::status::success(201))),
    }
}

/// Pods that already finished, never started, or are going anyway disrupt nothing.
fn can_ignore_budgets(pod: &Value) -> bool {
    matches!(pod.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed" | "Pending"))
        || pod.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null())
}

fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions").and_then(Value::as_array).is_some_and(|cs| {
        cs.iter().any(|c| {
            c.get("type").and_then(Value::as_str) == Some("Ready")
                && c.get("status").and_then(Value::as_str) == Some("True")
        })
    })
}

/// Records why the pod is going, as upstream does before an evicted pod's deletion;
/// returns the pod's new resourceVersion when it changed.
async fn mark_disruption_target(ctx: &Ctx, t: &Target, pod: &Value, rev: i64) -> Result<Option<String>, ApiError> {
    let mut new = pod.clone();
    let now = api::time::now_rfc3339();
    let mut conditions: Vec<Value> =
        pod.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
    let condition = json!({
        "type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
        "message": "Eviction API: evicting", "lastTransitionTime": now,
    });
    match conditions.iter_mut().find(|c| c.get("type").and_then(Value::as_str) == Some("DisruptionTarget")) {
        Some(c) if c.get("status").and_then(Value::as_str) == Some("True") => {
            c["reason"] = condition["reason"].clone();
            c["message"] = condition["message"].clone();
        }
        Some(c) => *c = condition,
        None => conditions.push(condition),
    }
    new["status"]["conditions"] = json!(conditions);
    let written = commit(ctx, t, false, pod, rev, new, Mode::Status, None).await?;
    let rv = meta_str(&written.obj, "resourceVersion").map(str::to_string);
    Ok(rv.filter(|rv| *rv != rev.to_string()))
}

/// What the budget said about an eviction.
enum Guard {
    /// No budget covers the pod.
    NoBudget,
    /// The budget gave up one disruption for it.
    Granted,
    /// The pod is not ready and the budget is healthy without it: delete it only if it
    /// has not changed since (the budget named).
    PinPod(String),
}

/// The most attempts at taking a disruption off a budget that others write too.
const EVICTION_RETRIES: u32 = 10;

async fn guard_budget(ctx: &Ctx, t: &Target, pod: &Value, dry_run: bool) -> Result<Guard, ApiError> {
    let pdbs = api::registry::find("policy", "v1", "poddisruptionbudgets")
        .ok_or_else(|| ApiError::internal("no poddisruptionbudgets"))?;
    let all = Selectors { labels: LabelSelector::default(), fields: FieldSelector::default() };
    let prefix = pdbs.storage_list_prefix(t.namespace.as_deref());
    let pod_name = t.name();
    for attempt in 0..EVICTION_RETRIES {
        let matching: Vec<Value> = collect(ctx, pdbs, &prefix, &all, 0, None, 0)
            .await?
            .items
            .into_iter()
            .filter(|pdb| {
                // A budget without a selector, or with an empty one, covers nothing here.
                pdb.pointer("/spec/selector")
                    .and_then(|s| LabelSelector::from_json(s).ok())
                    .is_some_and(|s| !s.is_empty() && s.matches_object(pod))
            })
            .collect();
        let name = match matching.as_slice() {
            [] => return Ok(Guard::NoBudget),
            [one] => meta_str(one, "name").unwrap_or_default().to_string(),
            _ => {
                return Err(ApiError::new(
                    500,
                    "InternalError",
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                ));
            }
        };
        let key = pdbs.storage_key(t.namespace.as_deref(), &name);
        let Some((pdb, rev)) = ctx.objects.get(pdbs, &key).await? else { continue };
        if !pod_ready(pod) && unready_may_go(&pdb) {
            return Ok(Guard::PinPod(name));
        }
        let Some(decremented) = check_and_decrement(&pdb, pod_name, &api::time::now_rfc3339(), dry_run)? else {
            return Ok(Guard::Granted);
        };
        match ctx.objects.update(pdbs, &key, decremented, rev).await {
            Ok(_) => return Ok(Guard::Granted),
            Err(e) if e.reason == "Conflict" => {
                // Another eviction or the disruption controller wrote it: read again.
                tokio::time::sleep(std::time::Duration::from_millis(5 * u64::from(attempt + 1))).await;
            }
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::new(504, "Timeout", format!("couldn't update PodDisruptionBudget {:?} due to conflicts", t.name())))
}

fn status_i64(pdb: &Value, field: &str) -> i64 {
    pdb.pointer(&format!("/status/{field}")).and_then(Value::as_i64).unwrap_or(0)
}

/// Whether an unready pod may go without using up a disruption: always with the
/// `AlwaysAllow` policy, else (`IfHealthyBudget`) when the budget is met without it.
fn unready_may_go(pdb: &Value) -> bool {
    if pdb.pointer("/spec/unhealthyPodEvictionPolicy").and_then(Value::as_str) == Some("AlwaysAllow") {
        return true;
    }
    let (current, desired) = (status_i64(pdb, "currentHealthy"), status_i64(pdb, "desiredHealthy"));
    current >= desired && desired > 0
}

fn budget_still_processing(name: &str) -> ApiError {
    ApiError::too_many_requests("Cannot evict pod as it would violate the pod's disruption budget.", Some(10))
        .with_cause(api::Cause::new(
            "DisruptionBudget",
            "",
            format!("The disruption budget {name} is still being processed by the server."),
        ))
}

/// Why a budget refuses, as upstream words it.
fn denied_message(pdb: &Value, name: &str) -> String {
    let condition = pdb
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c.get("type").and_then(Value::as_str) == Some("DisruptionAllowed")));
    let field = |c: &Value, f: &str| c.get(f).and_then(Value::as_str).unwrap_or("").to_string();
    let failed = condition.filter(|c| field(c, "status") == "False" && !field(c, "message").is_empty());
    let (current, desired) = (status_i64(pdb, "currentHealthy"), status_i64(pdb, "desiredHealthy"));
    match failed {
        Some(c) if field(c, "reason") == "SyncFailed" => format!(
            "The disruption budget {name} does not allow evicting pods currently because it failed sync: {}",
            field(c, "message")
        ),
        _ if current <= desired => {
            format!("The disruption budget {name} needs {desired} healthy pods and has {current} currently")
        }
        Some(c) => format!(
            "The disruption budget {name} does not allow evicting pods currently ({}): {}",
            field(c, "reason"),
            field(c, "message")
        ),
        None => format!("The disruption budget {name} does not allow evicting pods currently"),
    }
}

/// The most evictions granted but not yet seen through by the disruption controller.
const MAX_DISRUPTED_PODS: usize = 2000;

/// Upstream's checkAndDecrement: refuses while the budget's status is behind its spec
/// or no disruption is left; otherwise the budget with one disruption fewer and the
/// pod recorded as disrupted at `now` (`None` for a dry run, which writes nothing).
pub fn check_and_decrement(pdb: &Value, pod: &str, now: &str, dry_run: bool) -> Result<Option<Value>, ApiError> {
    let name = meta_str(pdb, "name").unwrap_or_default();
    let observed = status_i64(pdb, "observedGeneration");
    let generation = pdb.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
    if observed < generation {
        return Err(budget_still_processing(name));
    }
    let allowed = status_i64(pdb, "disruptionsAllowed");
    let forbidden = |why: &str| ApiError::forbidden(format!("poddisruptionbudget.policy {name:?} is forbidden: {why}"));
    if allowed < 0 {
        return Err(forbidden("pdb disruptions allowed is negative"));
    }
    let disrupted = pdb.pointer("/status/disruptedPods").and_then(Value::as_object).map_or(0, |m| m.len());
    if disrupted > MAX_DISRUPTED_PODS {
        return Err(forbidden("DisruptedPods map too big - too many evictions not confirmed by PDB controller"));
    }
    if allowed == 0 {
        return Err(ApiError::too_many_requests(
            "Cannot evict pod as it would violate the pod's disruption budget.",
            None,
        )
        .with_cause(api::Cause::new("DisruptionBudget", "", denied_message(pdb, name))));
    }
    if dry_run {
        return Ok(None);
    }
    let mut new = pdb.clone();
    new["status"]["disruptionsAllowed"] = json!(allowed - 1);
    if allowed - 1 == 0
        && let Some(conditions) = new.pointer_mut("/status/conditions").and_then(Value::as_array_mut)
        && let Some(c) =
            conditions.iter_mut().find(|c| c.get("type").and_then(Value::as_str) == Some("DisruptionAllowed"))
    {
        if c.get("status").and_then(Value::as_str) != Some("False") {
            c["lastTransitionTime"] = json!(now);
        }
        c["status"] = json!("False");
        c["reason"] = json!("InsufficientPods");
        c["message"] = json!("");
    }
    if !new.pointer("/status/disruptedPods").is_some_and(Value::is_object) {
        new["status"]["disruptedPods"] = json!({});
    }
    new["status"]["disruptedPods"][pod] = json!(now);
    Ok(Some(new))
}

/// Replaces a namespace's `spec.finalizers`; a terminating namespace with none left
/// is removed.
async fn finalize(ctx: &Arc<Ctx>, t: &Target, req: &mut Request) -> Result<Resp, ApiError> {
    let checked = super::write::read_object(t, req).await?;
    let (old, rev) = ctx.objects.get(t.res, &t.key()).await?.ok_or_else(|| ApiError::not_found(t.res, t.name()))?;
    let mut new = old.clone();
    new["spec"]["finalizers"] = checked.obj.pointer("/spec/finalizers").cloned().unwrap_or_else(|| json!([]));
    let causes = api::validation::validate_namespace_finalize(&new, &old);
    if !causes.is_empty() {
        return Err(ApiError::invalid(t.res.kind, t.res.group, t.name(), causes));
    }
    let written = commit(ctx, t, req.query.dry_run, &old, rev, new, Mode::Main, None).await?;
    Ok(written_response(t, req, http::StatusCode::OK, &written))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loopback::tests::call;

    const NOW: &str = "2024-05-06T07:08:09Z";

    /// What the tree way stores for a pod bound to `node`.
    fn bound_by_tree(stored: &Value, node: &str) -> Vec<u8> {
        let mut pod = stored.clone();
        bind_tree(&mut pod, node, NOW);
        serde_json::to_vec(&pod).unwrap()
    }

    #[test]
    fn binding_the_stored_bytes_stores_what_the_tree_way_does() {
        let base = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "d", "uid": "u-1", "labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "i"}], "nodeSelector": {"x": "y"}, "os": {"name": "linux"},
                     "initContainers": [], "priority": 0}});
        let mut shapes = vec![base.clone()];
        let mut no_status = base.clone();
        no_status["spec"]["nodeName"] = json!("");
        shapes.push(no_status);
        let mut pending = base.clone();
        pending["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
        shapes.push(pending.clone());
        let mut empty_conditions = pending.clone();
        empty_conditions["status"]["conditions"] = json!([]);
        shapes.push(empty_conditions);
        let mut other_conditions = pending.clone();
        other_conditions["status"]["conditions"] = json!([{"type": "Ready", "status": "False"}]);
        shapes.push(other_conditions);
        let mut empty_status = base.clone();
        empty_status["status"] = json!({});
        shapes.push(empty_status);
        // Keys after `status` at the top, only `nodeName`-later keys in the spec.
        shapes.push(json!({"kind": "Pod", "metadata": {"name": "q"}, "spec": {"os": {}}, "zzz": 1}));
        shapes.push(json!({"metadata": {"name": "q"}, "spec": {}}));
        for pod in shapes {
            let stored = serde_json::to_vec(&pod).unwrap();
            for node in ["n1", "a \"quoted\" \u{e9} node"] {
                let fast = bind_stored(&stored, Some("u-1").filter(|_| pod["metadata"]["uid"] == "u-1"), node, NOW)
                    .unwrap_or_else(|| panic!("no byte edit for {pod}"));
                assert_eq!(
                    String::from_utf8(fast).unwrap(),
                    String::from_utf8(bound_by_tree(&pod, node)).unwrap(),
                    "for {pod}"
                );
            }
        }
    }

    #[test]
    fn binding_replaces_a_pod_scheduled_condition_where_it_stands() {
        let unschedulable = json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                   "lastTransitionTime": "2024-01-01T00:00:00Z"});
        let ready = json!({"type": "Ready", "status": "False"});
        let mut pod = json!({"spec": {}, "status": {"conditions": [unschedulable, ready.clone()]}});
        bind_tree(&mut pod, "n", NOW);
        let scheduled = scheduled_condition(NOW);
        assert_eq!(pod["status"]["conditions"], json!([scheduled, ready]));
        // Already True: its transition time stays.
        let mut again = json!({"spec": {}, "status": {"conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"}]}});
        bind_tree(&mut again, "n", NOW);
        assert_eq!(again["status"]["conditions"][0]["lastTransitionTime"], "2024-01-01T00:00:00Z");
    }

    #[test]
    fn binding_leaves_other_pods_to_the_tree_way() {
        let pod = |at: &str, value: Value| {
            let mut p = json!({"metadata": {"name": "p", "uid": "u-1"}, "spec": {"containers": []}});
            if let Some((parent, key)) = at.split_once('/') {
                p[parent][key] = value;
            }
            serde_json::to_vec(&p).unwrap()
        };
        let cases = [
            (pod("", json!(null)), Some("u-2")),
            (pod("metadata/deletionTimestamp", json!("2024-01-01T00:00:00Z")), None),
            (pod("spec/nodeName", json!("elsewhere")), None),
            (pod("spec/nodeName", json!(null)), None),
            (pod("status/conditions", json!([{"type": "PodScheduled", "status": "False"}])), None),
            (br#"{"metadata":{"name":"p"},"spec":{},"status":"weird"}"#.to_vec(), None),
            (br#"{"metadata":{"name":"p"}}"#.to_vec(), None),
            (br#"{"metadata":{"name":"p"},"spec":[]}"#.to_vec(), None),
        ];
        for (stored, uid) in cases {
            assert_eq!(bind_stored(&stored, uid, "n", NOW), None, "{}", String::from_utf8_lossy(&stored));
        }
        let fine = pod("", json!(null));
        assert!(bind_stored(&fine, Some("u-1"), "n", NOW).is_some());
    }

    /// Both ways through the API: the usual binding, then ones that must be refused
    /// (the tree way says why).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bindings_through_the_api() {
        let (_dir, server) = crate::test_server().await;
        let mut client = crate::loopback::tests::admin(&server, "test/1.0");
        let json = "application/json";
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                         "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let (code, created) = call(&mut client, "POST", "/api/v1/namespaces/default/pods", json, pod).await;
        assert_eq!(code.as_u16(), 201, "{created}");
        let binding = |node: &str, uid: &Value| {
            json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p", "uid": uid},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": node}})
        };
        let path = "/api/v1/namespaces/default/pods/p/binding";
        let mut misnamed = binding("n1", &Value::Null);
        misnamed["metadata"]["name"] = json!("q");
        let (code, answer) = call(&mut client, "POST", path, json, misnamed).await;
        assert_eq!(
            (code.as_u16(), &answer["message"]),
            (400, &json!("name in URL does not match name in Binding object"))
        );
        let mut elsewhere = binding("n1", &Value::Null);
        elsewhere["metadata"]["namespace"] = json!("other");
        assert_eq!(call(&mut client, "POST", path, json, elsewhere).await.0.as_u16(), 400);
        let mut numeric = binding("n1", &Value::Null);
        numeric["metadata"]["annotations"] = json!({"a": 1});
        let (code, answer) = call(&mut client, "POST", path, json, numeric).await;
        assert_eq!(code.as_u16(), 400, "{answer}");
        let (code, answer) = call(&mut client, "POST", path, json, binding("n1", &json!("not-its-uid"))).await;
        assert_eq!(code.as_u16(), 409, "{answer}");
        let uid = created["metadata"]["uid"].as_str().unwrap();
        assert_eq!(
            answer["message"],
            format!(
                "Operation cannot be fulfilled on pods \"p\": StorageError: invalid object, Code: 4, Key: /registry/pods/default/p, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: UID in precondition: not-its-uid, UID in object meta: {uid}"
            )
        );
        let (code, answer) = call(&mut client, "POST", path, json, binding("n1", &created["metadata"]["uid"])).await;
        assert_eq!(code.as_u16(), 201, "{answer}");
        assert_eq!(answer["status"], "Success");
        let (_, got) = call(&mut client, "GET", "/api/v1/namespaces/default/pods/p", json, json!(null)).await;
        assert_eq!(got["spec"]["nodeName"], "n1");
        let conditions = got["status"]["conditions"].as_array().unwrap();
        assert_eq!(conditions.len(), 1, "{got}");
        assert_eq!((&conditions[0]["type"], &conditions[0]["status"]), (&json!("PodScheduled"), &json!("True")));
        assert_ne!(got["metadata"]["resourceVersion"], created["metadata"]["resourceVersion"]);
        let (code, answer) = call(&mut client, "POST", path, json, binding("n2", &Value::Null)).await;
        assert_eq!(code.as_u16(), 409, "{answer}");
        assert_eq!(
            answer["message"],
            r#"Operation cannot be fulfilled on pods/binding "p": pod p is already assigned to node "n1""#
        );
        assert_eq!(answer["details"], json!({"name": "p", "group": "", "kind": "pods/binding"}));

        // A gated pod is not bound; a resourceVersion in the binding is a
        // precondition; a binding's annotations go onto the pod.
        let gated = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "g"},
                           "spec": {"schedulingGates": [{"name": "wait"}], "containers": [{"name": "c", "image": "i"}]}});
        let (_, created) = call(&mut client, "POST", "/api/v1/namespaces/default/pods", json, gated).await;
        let path = "/api/v1/namespaces/default/pods/g/binding";
        let mut with_extras = binding("n1", &Value::Null);
        with_extras["metadata"]["name"] = json!("g");
        let (code, answer) = call(&mut client, "POST", path, json, with_extras.clone()).await;
        assert_eq!(code.as_u16(), 409, "{answer}");
        assert_eq!(
            answer["message"],
            r#"Operation cannot be fulfilled on pods/binding "g": pod g has non-empty .spec.schedulingGates"#
        );
        let pod_path = "/api/v1/namespaces/default/pods/g";
        let merge = "application/merge-patch+json";
        let (code, ungated) =
            call(&mut client, "PATCH", pod_path, merge, json!({"spec": {"schedulingGates": null}})).await;
        assert_eq!(code.as_u16(), 200, "{ungated}");
        with_extras["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"].clone();
        let (code, answer) = call(&mut client, "POST", path, json, with_extras.clone()).await;
        assert_eq!(code.as_u16(), 409, "{answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains("Precondition failed: ResourceVersion in precondition"), "{answer}");
        with_extras["metadata"]["resourceVersion"] = ungated["metadata"]["resourceVersion"].clone();
        with_extras["metadata"]["annotations"] = json!({"placed-by": "test"});
        let (code, answer) = call(&mut client, "POST", path, json, with_extras).await;
        assert_eq!(code.as_u16(), 201, "{answer}");
        let (_, got) = call(&mut client, "GET", pod_path, json, json!(null)).await;
        assert_eq!(got["spec"]["nodeName"], "n1");
        assert_eq!(got["metadata"]["annotations"]["placed-by"], "test", "{got}");
        server.shutdown().await;
    }

    fn budget(allowed: i64, observed: i64, generation: i64) -> Value {
        json!({
            "metadata": {"name": "web", "generation": generation},
            "status": {
                "disruptionsAllowed": allowed, "observedGeneration": observed,
                "currentHealthy": 2, "desiredHealthy": 2, "expectedPods": 2,
                "conditions": [{"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods",
                                "message": "", "lastTransitionTime": "2024-01-01T00:00:00Z"}],
            },
        })
    }

    #[test]
    fn a_granted_eviction_uses_up_a_disruption_and_records_the_pod() {
        let now = "2024-05-05T10:00:00Z";
        let new = check_and_decrement(&budget(2, 1, 1), "p1", now, false).unwrap().unwrap();
        assert_eq!(new["status"]["disruptionsAllowed"], 1);
        assert_eq!(new["status"]["disruptedPods"], json!({"p1": now}));
        assert_eq!(new["status"]["conditions"][0]["status"], "True");
        // The last one flips the condition, with a new transition time.
        let last = check_and_decrement(&new, "p2", now, false).unwrap().unwrap();
        assert_eq!(last["status"]["disruptionsAllowed"], 0);
        assert_eq!(last["status"]["disruptedPods"], json!({"p1": now, "p2": now}));
        let c = &last["status"]["conditions"][0];
        assert_eq!((c["status"].as_str(), c["reason"].as_str()), (Some("False"), Some("InsufficientPods")));
        assert_eq!(c["lastTransitionTime"], now);
        // Then nothing is left: the next one is refused with 429 and why.
        let e = check_and_decrement(&last, "p3", now, false).unwrap_err();
        assert_eq!(e.code, 429);
        assert_eq!(e.message, "Cannot evict pod as it would violate the pod's disruption budget.");
        assert_eq!(e.causes()[0].reason, "DisruptionBudget");
        assert_eq!(e.causes()[0].message, "The disruption budget web needs 2 healthy pods and has 2 currently");
        // A dry run checks without writing.
        assert_eq!(check_and_decrement(&budget(1, 1, 1), "p1", now, true).unwrap(), None);
    }

    #[test]
    fn a_budget_behind_its_spec_or_broken_refuses() {
        let now = "2024-05-05T10:00:00Z";
        let e = check_and_decrement(&budget(3, 1, 2), "p", now, false).unwrap_err();
        assert_eq!(e.code, 429);
        assert_eq!(e.retry_after_seconds(), Some(10));
        assert_eq!(e.causes()[0].message, "The disruption budget web is still being processed by the server.");
        let e = check_and_decrement(&budget(-1, 1, 1), "p", now, false).unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(e.message, "poddisruptionbudget.policy \"web\" is forbidden: pdb disruptions allowed is negative");
        let mut failed = budget(0, 1, 1);
        failed["status"]["conditions"][0] = json!({"type": "DisruptionAllowed", "status": "False", "reason": "SyncFailed", "message": "found no controllers for pod \"p\""});
        failed["status"]["currentHealthy"] = json!(3);
        let e = check_and_decrement(&failed, "p", now, false).unwrap_err();
        assert_eq!(
            e.causes()[0].message,
            "The disruption budget web does not allow evicting pods currently because it failed sync: found no controllers for pod \"p\""
        );
    }

    #[test]
    fn unready_pods_go_when_the_budget_is_met_without_them() {
        let mut pdb = budget(0, 1, 1);
        assert!(unready_may_go(&pdb), "2 healthy of 2 desired");
        pdb["status"]["currentHealthy"] = json!(1);
        assert!(!unready_may_go(&pdb));
        pdb["spec"] = json!({"unhealthyPodEvictionPolicy": "AlwaysAllow"});
        assert!(unready_may_go(&pdb));
        let running = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}});
        assert!(!pod_ready(&running) && !can_ignore_budgets(&running));
        assert!(can_ignore_budgets(&json!({"status": {"phase": "Pending"}})));
        assert!(can_ignore_budgets(&json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}})));
    }
}
