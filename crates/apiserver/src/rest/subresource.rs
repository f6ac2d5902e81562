//! Subresources: `status` (the status alone), `scale` (an autoscaling/v1 Scale view of
//! a workload's replicas), `binding` (the scheduler's placement of a pod), `eviction`
//! (a deletion that respects disruption budgets) and namespaces' `finalize`.

use super::delete::{DeleteOptions, delete_object};
use super::read::{Selectors, collect};
use super::write::{Mode, commit, patch_with, read_patch, update_with};
use super::{Request, Target, meta_str};
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
            let obj = update_with(ctx, t, &req, checked.obj, Mode::Status).await?;
            Ok(wire::with_warnings(wire::ok(&obj), &checked.warnings))
        }
        (Subresource::Status, &Method::PATCH) => {
            let (kind, patch) = read_patch(&mut req).await?;
            let (_, obj, warnings) = patch_with(ctx, t, &req, kind, &patch, Mode::Status).await?;
            Ok(wire::with_warnings(wire::ok(&obj), &warnings))
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
            Ok(obj) => {
                let mut s = scale_of(&obj)?;
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
    let causes = api::validation::validate_binding(&binding);
    if !causes.is_empty() {
        return Err(ApiError::invalid("Binding", "", t.name(), causes));
    }
    let node = binding.pointer("/target/name").and_then(Value::as_str).unwrap_or_default().to_string();
    for attempt in 1..=5 {
        let (old, rev) = ctx.objects.get(t.res, &t.key()).await?.ok_or_else(|| ApiError::not_found(t.res, t.name()))?;
        if let Some(uid) = binding.pointer("/metadata/uid").and_then(Value::as_str)
            && Some(uid) != meta_str(&old, "uid")
        {
            return Err(ApiError::conflict(t.res, t.name(), "the pod's UID does not match the binding's"));
        }
        if old.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(ApiError::conflict(t.res, t.name(), "pod is being deleted, cannot be assigned to a host"));
        }
        if let Some(existing) = old.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty()) {
            return Err(ApiError::conflict(
                t.res,
                t.name(),
                &format!("pod {} is already assigned to node \"{existing}\"", t.name()),
            ));
        }
        let mut new = old.clone();
        new["spec"]["nodeName"] = json!(node);
        let mut conditions: Vec<Value> =
            old.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
        conditions.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
        conditions.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": api::time::now_rfc3339()}));
        new["status"]["conditions"] = json!(conditions);
        if req.query.dry_run {
            return Ok(wire::json(http::StatusCode::CREATED, &api::status::success(201)));
        }
        match ctx.objects.update(t.res, &t.key(), new, rev).await {
            Err(e) if e.reason == "Conflict" && attempt < 5 => continue,
            Err(e) => return Err(e),
            Ok(_) => return Ok(wire::json(http::StatusCode::CREATED, &api::status::success(201))),
        }
    }
    Err(ApiError::stale(t.res, t.name()))
}

/// Deletes a pod unless a PodDisruptionBudget that selects it allows no disruption.
async fn evict(ctx: &Arc<Ctx>, t: &Target, req: &mut Request) -> Result<Resp, ApiError> {
    let bytes = req.body().await?;
    let eviction = body::parse_object(&bytes, req.content_type.as_deref())?;
    let (pod, _) = ctx.objects.get(t.res, &t.key()).await?.ok_or_else(|| ApiError::not_found(t.res, t.name()))?;
    let finished = matches!(pod.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"));
    let terminating = pod.pointer("/metadata/deletionTimestamp").is_some();
    if !finished && !terminating {
        let pdbs = api::registry::find("policy", "v1", "poddisruptionbudgets")
            .ok_or_else(|| ApiError::internal("no poddisruptionbudgets"))?;
        let all = Selectors { labels: LabelSelector::default(), fields: FieldSelector::default() };
        let prefix = pdbs.storage_list_prefix(t.namespace.as_deref());
        for pdb in collect(ctx, pdbs, &prefix, &all, 0, None, 0).await?.items {
            let selects = pdb
                .pointer("/spec/selector")
                .and_then(|s| LabelSelector::from_json(s).ok())
                .is_some_and(|s| !s.is_empty() && s.matches_object(&pod));
            if !selects {
                continue;
            }
            let allowed = pdb.pointer("/status/disruptionsAllowed").and_then(Value::as_i64).unwrap_or(0);
            let observed = pdb.pointer("/status/observedGeneration").and_then(Value::as_i64).unwrap_or(0);
            let generation = pdb.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
            let pdb_name = meta_str(&pdb, "name").unwrap_or_default();
            let why = if observed < generation {
                format!(
                    "Cannot evict pod as it would violate the pod's disruption budget. The disruption budget {pdb_name} is still being processed by the server."
                )
            } else if allowed < 1 {
                format!(
                    "Cannot evict pod as it would violate the pod's disruption budget. The disruption budget {pdb_name} needs {} healthy pods and has {} currently",
                    pdb.pointer("/status/desiredHealthy").and_then(Value::as_i64).unwrap_or(0),
                    pdb.pointer("/status/currentHealthy").and_then(Value::as_i64).unwrap_or(0)
                )
            } else {
                continue;
            };
            return Err(ApiError::too_many_requests(why, Some(10)).with_cause(api::Cause::new(
                "DisruptionBudget",
                "",
                format!("The disruption budget {pdb_name} does not allow this eviction"),
            )));
        }
    }
    let mut opts = DeleteOptions::from_value(eviction.get("deleteOptions").unwrap_or(&Value::Null), req)?;
    opts.dry_run |= req.query.dry_run;
    delete_object(ctx, t, &opts).await?;
    Ok(wire::json(http::StatusCode::CREATED, &api::status::success(201)))
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
    let obj = commit(ctx, t, req.query.dry_run, &old, rev, new, Mode::Main, None).await?;
    Ok(wire::ok(&obj))
}
