//! DELETE of one object and of collections: preconditions, propagation policies
//! (recorded as the garbage collector's finalizers), finalizers, and graceful
//! deletion of pods.

use super::read::{Selectors, collect, list_object};
use super::{Request, Target, object_response};
use crate::Ctx;
use crate::wire::{self, Resp};
use api::{ApiError, Resource};
use serde_json::{Value, json};
use std::sync::Arc;

/// The DeleteOptions of a request, from its body and its query.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    pub fn from_value(body: &Value, req: &Request) -> Result<DeleteOptions, ApiError> {
        let mut o = DeleteOptions {
            grace_period_seconds: req.query.grace_period_seconds,
            propagation_policy: req.query.propagation_policy.clone(),
            dry_run: req.query.dry_run,
            ..Default::default()
        };
        if let Some(g) = body.get("gracePeriodSeconds").and_then(Value::as_i64) {
            o.grace_period_seconds = Some(g);
        }
        if let Some(p) = body.get("propagationPolicy").and_then(Value::as_str) {
            o.propagation_policy = Some(p.to_string());
        }
        if body.get("orphanDependents").and_then(Value::as_bool) == Some(true) {
            o.propagation_policy = Some("Orphan".into());
        }
        o.precondition_uid = body.pointer("/preconditions/uid").and_then(Value::as_str).map(str::to_string);
        o.precondition_rv = body.pointer("/preconditions/resourceVersion").and_then(Value::as_str).map(str::to_string);
        if let Some(d) = body.get("dryRun").and_then(Value::as_array) {
            o.dry_run |= d.iter().any(|v| v == "All");
        }
        match o.propagation_policy.as_deref() {
            None | Some("Orphan" | "Background" | "Foreground") => {}
            Some(other) => {
                return Err(ApiError::invalid(
                    "DeleteOptions",
                    "meta.k8s.io",
                    "",
                    vec![api::Cause::new(
                        "FieldValueNotSupported",
                        "propagationPolicy",
                        format!(
                            "Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
                        ),
                    )],
                ));
            }
        }
        if o.grace_period_seconds.is_some_and(|g| g < 0) {
            o.grace_period_seconds = Some(0);
        }
        Ok(o)
    }

    pub async fn read(req: &mut Request) -> Result<DeleteOptions, ApiError> {
        let bytes = req.body().await?;
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            crate::body::parse_object(&bytes, req.content_type.as_deref())?
        };
        DeleteOptions::from_value(&body, req)
    }
}

/// The grace period a pod gets: what was asked, else its spec's; none for pods that
/// never ran on a node or have already finished.
fn pod_grace(pod: &Value, asked: Option<i64>) -> i64 {
    let scheduled = pod.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty());
    let finished = matches!(pod.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"));
    if !scheduled || finished {
        return 0;
    }
    asked.unwrap_or_else(|| pod.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(30))
}

fn add_finalizer(obj: &mut Value, f: &str) {
    let list = &mut obj["metadata"]["finalizers"];
    if !list.is_array() {
        *list = json!([]);
    }
    if let Some(a) = list.as_array_mut()
        && !a.iter().any(|x| x == f)
    {
        a.push(json!(f));
    }
}

/// Deletes one object per the options; returns what the client sees.
pub async fn delete_object(ctx: &Ctx, t: &Target, opts: &DeleteOptions) -> Result<Value, ApiError> {
    let res: &Resource = t.res;
    let name = t.name().to_string();
    for _ in 0..5 {
        let (old, rev) = ctx.objects.get(t.res, &t.key()).await?.ok_or_else(|| ApiError::not_found(res, &name))?;
        let uid = old.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default();
        if let Some(want) = &opts.precondition_uid
            && want != uid
        {
            return Err(ApiError::conflict(
                res,
                &name,
                &format!("Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"),
            ));
        }
        if let Some(want) = &opts.precondition_rv
            && *want != rev.to_string()
        {
            return Err(ApiError::conflict(
                res,
                &name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rev}"
                ),
            ));
        }
        let mut marked = old.clone();
        match opts.propagation_policy.as_deref() {
            Some("Orphan") => add_finalizer(&mut marked, "orphan"),
            Some("Foreground") => add_finalizer(&mut marked, "foregroundDeletion"),
            _ => {}
        }
        let is_pod = res.group.is_empty() && res.kind == "Pod";
        let is_namespace = res.group.is_empty() && res.kind == "Namespace";
        let grace = if is_pod { pod_grace(&old, opts.grace_period_seconds) } else { 0 };
        let has_finalizers =
            marked.pointer("/metadata/finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty());
        let ns_finalizers =
            is_namespace && old.pointer("/spec/finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty());
        let already = old.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null());
        if grace > 0 || has_finalizers || ns_finalizers {
            // Mark for deletion and let the finalizers' owners (or the kubelet) finish.
            let current_grace = old.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64);
            if !already || current_grace.is_some_and(|g| grace < g) {
                let when = api::time::format_rfc3339(api::time::now_unix() + grace);
                marked["metadata"]["deletionTimestamp"] = json!(when);
                marked["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
            }
            if is_namespace {
                marked["status"]["phase"] = json!("Terminating");
            }
            if marked == old {
                return Ok(old);
            }
            if opts.dry_run {
                return Ok(marked);
            }
            match ctx.objects.update(res, &t.key(), marked, rev).await {
                Err(e) if e.reason == "Conflict" => continue,
                other => return other,
            }
        }
        if opts.dry_run {
            return Ok(old);
        }
        let deleted = if res.group.is_empty() && res.kind == "Service" {
            // What the Service held is released in the same transaction.
            ctx.services.delete(ctx.objects.store.as_ref(), res, &t.key(), &name, rev, &old).await
        } else {
            ctx.objects.delete(res, &t.key(), &name, rev).await
        };
        match deleted {
            Err(e) if e.reason == "Conflict" => continue,
            other => return other,
        }
    }
    Err(ApiError::stale(res, &name))
}

pub async fn delete(ctx: &Arc<Ctx>, t: &Target, req: &mut Request) -> Result<Resp, ApiError> {
    let opts = DeleteOptions::read(req).await?;
    let obj = delete_object(ctx, t, &opts).await?;
    Ok(object_response(t, req, http::StatusCode::OK, &obj))
}

pub async fn delete_collection(ctx: &Arc<Ctx>, t: &Target, req: &mut Request) -> Result<Resp, ApiError> {
    let opts = DeleteOptions::read(req).await?;
    let sel = Selectors::parse(t.res, req)?;
    let prefix = t.res.storage_list_prefix(t.namespace.as_deref());
    let page = collect(ctx, t.res, &prefix, &sel, 0, None, 0).await?;
    let mut deleted = Vec::new();
    for obj in page.items {
        let one = Target {
            res: t.res,
            namespace: obj.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_string),
            name: obj.pointer("/metadata/name").and_then(Value::as_str).map(str::to_string),
            sub: None,
        };
        match delete_object(ctx, &one, &opts).await {
            Ok(o) => deleted.push(o),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(wire::ok(&list_object(t.res, json!({"resourceVersion": page.revision.to_string()}), deleted)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_get_grace_only_when_running_somewhere() {
        let pending = json!({"spec":{}});
        assert_eq!(pod_grace(&pending, Some(30)), 0);
        let bound = json!({"spec":{"nodeName":"n1","terminationGracePeriodSeconds":45},"status":{"phase":"Running"}});
        assert_eq!(pod_grace(&bound, None), 45);
        assert_eq!(pod_grace(&bound, Some(0)), 0);
        let done = json!({"spec":{"nodeName":"n1"},"status":{"phase":"Succeeded"}});
        assert_eq!(pod_grace(&done, None), 0);
    }
}
