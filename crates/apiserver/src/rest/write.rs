//! Create, update and patch: decode, default, validate, record field ownership, and
//! write with optimistic concurrency.

use super::{Request, Target, meta_str, written_response};
use crate::body::{self, Checked};
use crate::objects::Written;
use crate::patch::{self, PatchType};
use crate::wire::{self, Resp};
use crate::{Ctx, fieldmanager, strategy};
use api::schema::{Node, Schemas};
use api::{ApiError, Cause, Resource};
use serde_json::{Value, json};
use std::sync::Arc;

/// Which part of an object a write may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The main resource: everything but the status.
    Main,
    /// The `status` subresource: only the status.
    Status,
}

pub fn schema_of(res: &Resource) -> Option<&'static Node> {
    Schemas::get().for_kind(res.group, res.version, res.kind)
}

/// Characters of generated name suffixes, as upstream picks them (no vowels, no
/// look-alikes), so generated names read the same.
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

pub fn random_suffix(n: usize) -> String {
    let mut buf = vec![0u8; n];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut buf).unwrap_or_default();
    buf.iter().map(|b| SUFFIX_ALPHABET[*b as usize % SUFFIX_ALPHABET.len()] as char).collect()
}

/// A version 4 UUID.
pub fn new_uid() -> String {
    let mut b = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).unwrap_or_default();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// Decodes and checks a body for `t`'s kind.
pub async fn read_object(t: &Target, req: &mut Request) -> Result<Checked, ApiError> {
    let bytes = req.body().await?;
    let (obj, duplicates) = body::parse_object_noting_duplicates(&bytes, req.content_type.as_deref())?;
    body::check_object_with_duplicates(
        t.res,
        t.res.kind,
        &t.res.api_version(),
        obj,
        &duplicates,
        req.query.validation(),
    )
}

pub async fn create(ctx: &Arc<Ctx>, t: &Target, req: &mut Request) -> Result<Resp, ApiError> {
    let Checked { obj, warnings } = read_object(t, req).await?;
    let manager = req.field_manager();
    let written = create_object(ctx, t, req, obj, Some(&manager)).await?;
    Ok(wire::with_warnings(written_response(t, req, http::StatusCode::CREATED, &written), &warnings))
}

/// Checks that the namespace of a new object is the request's and that it may hold new
/// objects; returns it.
async fn admit_namespace(ctx: &Ctx, t: &Target, obj: &mut Value) -> Result<Option<String>, ApiError> {
    if !t.res.namespaced {
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("namespace");
        }
        return Ok(None);
    }
    let ns = t.namespace.clone().unwrap_or_default();
    match meta_str(obj, "namespace") {
        Some(body_ns) if !body_ns.is_empty() && body_ns != ns => {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        _ => obj["metadata"]["namespace"] = json!(ns),
    }
    let namespaces = api::registry::find("", "v1", "namespaces").ok_or_else(|| ApiError::internal("no namespaces"))?;
    // Read on every create: whether the namespace is marked for deletion is read off
    // its stored bytes, not a parse of it.
    let stored = ctx.objects.get_stored(&namespaces.storage_key(None, &ns)).await?;
    let terminating = match &stored {
        None => None,
        Some(kv) => Some(match crate::rawjson::metadata_has_key(&kv.value, b"deletionTimestamp") {
            Some(marked) => marked,
            None => crate::objects::decode(kv)?.pointer("/metadata/deletionTimestamp").is_some(),
        }),
    };
    match terminating {
        None => Err(ApiError::not_found(namespaces, &ns)),
        Some(true) => Err(ApiError::forbidden(format!(
            "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
            t.res.qualified_plural(),
            meta_str(obj, "name").unwrap_or_default()
        ))
        .with_cause(Cause::new(
            "NamespaceTerminating",
            "metadata.namespace",
            format!("namespace {ns} is being terminated"),
        ))),
        Some(_) => Ok(Some(ns)),
    }
}

/// The create path shared by POST and by server-side apply of a new object. With a
/// `manager`, records an `Update` of every field (apply has recorded its own).
pub async fn create_object(
    ctx: &Ctx,
    t: &Target,
    req: &Request,
    mut obj: Value,
    manager: Option<&str>,
) -> Result<Written, ApiError> {
    let res = t.res;
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    admit_namespace(ctx, t, &mut obj).await?;
    if meta_str(&obj, "resourceVersion").is_some_and(|rv| !rv.is_empty()) {
        return Err(ApiError::bad_request("resourceVersion should not be set on objects to be created"));
    }
    let name = match (meta_str(&obj, "name"), meta_str(&obj, "generateName")) {
        (Some(n), _) if !n.is_empty() => n.to_string(),
        (_, Some(g)) if !g.is_empty() => {
            let mut base: String = g.chars().take(58).collect();
            base.push_str(&random_suffix(5));
            obj["metadata"]["name"] = json!(base);
            base
        }
        _ => {
            return Err(ApiError::invalid(
                res.kind,
                res.group,
                "",
                vec![Cause::new(
                    "FieldValueRequired",
                    "metadata.name",
                    "Required value: name or generateName is required",
                )],
            ));
        }
    };
    if let Some(m) = obj["metadata"].as_object_mut() {
        for k in ["deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"] {
            m.remove(k);
        }
        m.insert("uid".into(), json!(new_uid()));
        m.insert("creationTimestamp".into(), json!(api::time::now_rfc3339()));
    }
    strategy::prepare_for_create(res, &mut obj);
    api::defaults::apply(res, &mut obj);
    if res.group == "batch" && res.kind == "Job" {
        api::defaults::job_selector(&mut obj);
    }
    crate::admission::admit_create(ctx, res, &mut obj, req.query.dry_run).await?;
    // A Service's addresses and ports are chosen (and reserved) before validation
    // sees it, as upstream's BeginCreate does; a dry run gives them back.
    let plan = match is_service(res) {
        true => Some(ctx.services.plan_create(ctx.objects.store.as_ref(), &mut obj).await?),
        false => None,
    };
    let causes = api::validation::validate_create(res, &obj);
    if !causes.is_empty() {
        return Err(ApiError::invalid(res.kind, res.group, &name, causes));
    }
    if let (Some(manager), Some(schema)) = (manager, schema_of(res)) {
        let now = api::time::now_rfc3339();
        fieldmanager::update(None, &mut obj, manager, None, &res.api_version(), &now, schema);
    }
    if req.query.dry_run {
        return Ok(Written::unstored(obj));
    }
    let key = res.storage_key(t.namespace.as_deref(), &name);
    match plan {
        Some(plan) => {
            ctx.services.create(ctx.objects.store.as_ref(), res, &key, obj, plan).await.map(Written::unstored)
        }
        None => ctx.objects.create_stored(res, &key, obj).await,
    }
}

fn is_service(res: &Resource) -> bool {
    res.group.is_empty() && res.kind == "Service"
}

/// Whether an object marked for deletion has nothing left holding it.
fn deletion_complete(res: &Resource, obj: &Value) -> bool {
    let marked = obj.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null());
    let no_finalizers = obj.pointer("/metadata/finalizers").and_then(Value::as_array).is_none_or(|f| f.is_empty());
    let graceful = obj.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(0) > 0;
    let ns_finalizers = res.kind == "Namespace"
        && res.group.is_empty()
        && obj.pointer("/spec/finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty());
    marked && no_finalizers && !graceful && !ns_finalizers
}

/// The update path shared by PUT, PATCH and the status and scale subresources:
/// precondition, carried-over system fields, defaults, validation, field ownership,
/// and a write only if something changed.
#[allow(clippy::too_many_arguments)]
pub async fn commit(
    ctx: &Ctx,
    t: &Target,
    dry_run: bool,
    old: &Value,
    rev: i64,
    mut new: Value,
    mode: Mode,
    manager: Option<&str>,
) -> Result<Written, ApiError> {
    let res = t.res;
    let name = t.name().to_string();
    if let Some(rv) = meta_str(&new, "resourceVersion").filter(|rv| !rv.is_empty())
        && rv != rev.to_string()
    {
        return Err(ApiError::stale(res, &name));
    }
    if let (Some(want), Some(have)) = (meta_str(&new, "uid"), meta_str(old, "uid"))
        && !want.is_empty()
        && want != have
    {
        return Err(ApiError::conflict(
            res,
            &name,
            &format!("Precondition failed: UID in precondition: {want}, UID in object meta: {have}"),
        ));
    }
    if !new.get("metadata").is_some_and(Value::is_object) {
        new["metadata"] = json!({});
    }
    for k in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "namespace", "name"] {
        match old["metadata"].get(k) {
            Some(v) => new["metadata"][k] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(k);
                }
            }
        }
    }
    if new.pointer("/metadata/managedFields").is_none()
        && let Some(mf) = old.pointer("/metadata/managedFields")
    {
        new["metadata"]["managedFields"] = mf.clone();
    }
    // An update without a resourceVersion is unconditional: it applies to the
    // revision read here.
    if meta_str(&new, "resourceVersion").is_none_or(str::is_empty) {
        new["metadata"]["resourceVersion"] = json!(rev.to_string());
    }
    match mode {
        Mode::Main => {
            strategy::prepare_for_update(res, &mut new, old);
            if is_service(res) {
                api::defaults::service_update(&mut new, old);
                crate::alloc::drop_type_dependent_fields(&mut new, old);
            }
            api::defaults::apply(res, &mut new);
        }
        Mode::Status => strategy::prepare_for_status_update(res, &mut new, old),
    }
    let plan = match mode == Mode::Main && is_service(res) {
        true => Some(ctx.services.plan_update(ctx.objects.store.as_ref(), &mut new, old).await?),
        false => None,
    };
    if mode == Mode::Main {
        crate::admission::admit_update(ctx, res, &new, old).await?;
    }
    let causes = match mode {
        Mode::Main => api::validation::validate_update(res, &new, old),
        Mode::Status => api::validation::validate_status_update(res, &new, old),
    };
    if !causes.is_empty() {
        return Err(ApiError::invalid(res.kind, res.group, &name, causes));
    }
    if let (Some(manager), Some(schema)) = (manager, schema_of(res)) {
        let now = api::time::now_rfc3339();
        let sub = (mode == Mode::Status).then_some("status");
        fieldmanager::update(Some(old), &mut new, manager, sub, &res.api_version(), &now, schema);
    }
    if crate::objects::same_but_version(&new, old) {
        return Ok(Written::unstored(old.clone()));
    }
    let key = t.key();
    if deletion_complete(res, &new) {
        if dry_run {
            return Ok(Written::unstored(new));
        }
        if is_service(res) {
            let store = ctx.objects.store.as_ref();
            return ctx.services.delete(store, res, &key, &name, rev, old).await.map(Written::unstored);
        }
        return ctx.objects.delete(res, &key, &name, rev).await.map(Written::unstored);
    }
    if dry_run {
        crate::objects::set_resource_version(&mut new, rev);
        return Ok(Written::unstored(new));
    }
    match plan {
        Some(plan) => {
            ctx.services.update(ctx.objects.store.as_ref(), res, &key, new, rev, plan).await.map(Written::unstored)
        }
        None => ctx.objects.update_stored(res, &key, new, rev).await,
    }
}

pub async fn update(ctx: &Arc<Ctx>, t: &Target, req: &mut Request) -> Result<Resp, ApiError> {
    let Checked { obj, warnings } = read_object(t, req).await?;
    let written = update_with(ctx, t, req, obj, Mode::Main).await?;
    Ok(wire::with_warnings(written_response(t, req, http::StatusCode::OK, &written), &warnings))
}

/// PUT of a whole object (main resource or status).
pub async fn update_with(ctx: &Ctx, t: &Target, req: &Request, obj: Value, mode: Mode) -> Result<Written, ApiError> {
    match meta_str(&obj, "name") {
        Some(n) if n != t.name() => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({})",
                t.name()
            )));
        }
        _ => {}
    }
    if t.res.namespaced
        && let Some(ns) = meta_str(&obj, "namespace").filter(|ns| !ns.is_empty())
        && Some(ns) != t.namespace.as_deref()
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let (old, rev) = ctx.objects.get(t.res, &t.key()).await?.ok_or_else(|| ApiError::not_found(t.res, t.name()))?;
    let manager = req.field_manager();
    commit(ctx, t, req.query.dry_run, &old, rev, obj, mode, Some(&manager)).await
}

/// Applies a non-apply patch to an object.
pub fn apply_patch(res: &Resource, kind: PatchType, old: &Value, patch: &Value) -> Result<Value, ApiError> {
    let failed = |e: patch::PatchError| ApiError::new(422, "", e.to_string());
    match kind {
        PatchType::Json => patch::json::apply(old, patch).map_err(failed),
        PatchType::Merge => Ok(patch::merge::apply(old, patch)),
        PatchType::Strategic => patch::strategic::apply(old, patch, schema_of(res)).map_err(failed),
        PatchType::Apply => Err(ApiError::internal("apply patches take the field manager path")),
    }
}

/// Reads a patch body of the given type.
pub async fn read_patch(req: &mut Request) -> Result<(PatchType, Value), ApiError> {
    let ct = body::media_type(req.content_type.as_deref());
    let kind = PatchType::from_content_type(&ct).ok_or_else(|| ApiError::unsupported_media_type(&ct))?;
    let bytes = req.body().await?;
    let value = match kind {
        PatchType::Apply => body::parse_text(&bytes, "application/yaml")?,
        _ => serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?,
    };
    match kind {
        PatchType::Json if !value.is_array() => {
            return Err(ApiError::bad_request("json patch must be an array of operations"));
        }
        PatchType::Merge | PatchType::Strategic | PatchType::Apply if !value.is_object() => {
            return Err(ApiError::bad_request("the patch must be a JSON object"));
        }
        _ => {}
    }
    if kind == PatchType::Apply && req.query.field_manager.is_none() {
        return Err(ApiError::invalid(
            "PatchOptions",
            "meta.k8s.io",
            "",
            vec![Cause::new("FieldValueRequired", "fieldManager", "Required value: is required for apply patch")],
        ));
    }
    if kind != PatchType::Apply && req.query.force {
        return Err(ApiError::invalid(
            "PatchOptions",
            "meta.k8s.io",
            "",
            vec![Cause::new("FieldValueForbidden", "force", "Forbidden: may not be specified for non-apply patch")],
        ));
    }
    Ok((kind, value))
}

pub async fn patch(ctx: &Arc<Ctx>, t: &Target, req: &mut Request) -> Result<Resp, ApiError> {
    let (kind, patch) = read_patch(req).await?;
    let (code, written, warnings) = patch_with(ctx, t, req, kind, &patch, Mode::Main).await?;
    Ok(wire::with_warnings(written_response(t, req, code, &written), &warnings))
}

/// PATCH of the main resource or the status, retrying on a concurrent write unless
/// the patch itself names a resourceVersion.
pub async fn patch_with(
    ctx: &Ctx,
    t: &Target,
    req: &Request,
    kind: PatchType,
    patch: &Value,
    mode: Mode,
) -> Result<(http::StatusCode, Written, Vec<String>), ApiError> {
    let res = t.res;
    let manager = req.field_manager();
    let pinned = patch.pointer("/metadata/resourceVersion").is_some();
    let validation = req.query.validation();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let current = ctx.objects.get(t.res, &t.key()).await?;
        let (patched, warnings, old, rev) = match (current, kind) {
            (None, PatchType::Apply) if mode == Mode::Main => {
                let Checked { obj: config, warnings } =
                    body::check_object(res, res.kind, &res.api_version(), patch.clone(), validation)?;
                let schema = schema_of(res).ok_or_else(|| ApiError::internal("no schema"))?;
                let now = api::time::now_rfc3339();
                let applied =
                    fieldmanager::apply(None, &config, &manager, req.query.force, schema, &res.api_version(), &now)
                        .map_err(|e| e.to_api_error())?;
                let mut applied = applied;
                if meta_str(&applied, "name").is_none() {
                    applied["metadata"]["name"] = json!(t.name());
                }
                let obj = create_object(ctx, t, req, applied, None).await?;
                return Ok((http::StatusCode::CREATED, obj, warnings));
            }
            (None, _) => return Err(ApiError::not_found(res, t.name())),
            (Some((old, rev)), PatchType::Apply) => {
                let Checked { obj: config, warnings } =
                    body::check_object(res, res.kind, &res.api_version(), patch.clone(), validation)?;
                if let Some(n) = meta_str(&config, "name").filter(|n| *n != t.name()) {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({n}) does not match the name on the URL ({})",
                        t.name()
                    )));
                }
                let schema = schema_of(res).ok_or_else(|| ApiError::internal("no schema"))?;
                let now = api::time::now_rfc3339();
                let applied = fieldmanager::apply(
                    Some(&old),
                    &config,
                    &manager,
                    req.query.force,
                    schema,
                    &res.api_version(),
                    &now,
                )
                .map_err(|e| e.to_api_error())?;
                (applied, warnings, old, rev)
            }
            (Some((old, rev)), _) => {
                let patched = apply_patch(res, kind, &old, patch)?;
                let Checked { obj, warnings } =
                    body::check_object(res, res.kind, &res.api_version(), patched, validation)?;
                (obj, warnings, old, rev)
            }
        };
        // Apply has recorded its ownership already; other patches record an Update.
        let owner = (kind != PatchType::Apply).then_some(manager.as_str());
        match commit(ctx, t, req.query.dry_run, &old, rev, patched, mode, owner).await {
            Err(e) if e.code == 409 && e.reason == "Conflict" && !pinned && attempt < 5 => continue,
            Err(e) => return Err(e),
            Ok(obj) => return Ok((http::StatusCode::OK, obj, warnings)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loopback::tests::call;

    #[test]
    fn uids_and_suffixes_have_upstream_shapes() {
        let u = new_uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(new_uid(), u);
        let s = random_suffix(5);
        assert_eq!(s.len(), 5);
        assert!(s.bytes().all(|c| SUFFIX_ALPHABET.contains(&c)));
    }

    #[test]
    fn deletion_completes_when_nothing_holds_the_object() {
        let cm = api::registry::find("", "v1", "configmaps").unwrap();
        let held = json!({"metadata":{"deletionTimestamp":"2024-01-01T00:00:00Z","finalizers":["x"]}});
        assert!(!deletion_complete(cm, &held));
        let free = json!({"metadata":{"deletionTimestamp":"2024-01-01T00:00:00Z","finalizers":[]}});
        assert!(deletion_complete(cm, &free));
        assert!(!deletion_complete(cm, &json!({"metadata":{}})));
        let ns = api::registry::find("", "v1", "namespaces").unwrap();
        let terminating = json!({"metadata":{"deletionTimestamp":"x"},"spec":{"finalizers":["kubernetes"]}});
        assert!(!deletion_complete(ns, &terminating));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn creates_need_a_namespace_that_is_not_terminating() {
        let (_dir, server) = crate::test_server().await;
        let mut client = crate::loopback::tests::admin(&server, "test/1.0");
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        let json = "application/json";
        let (code, answer) = call(&mut client, "POST", "/api/v1/namespaces/nowhere/configmaps", json, cm.clone()).await;
        assert_eq!((code.as_u16(), &answer["reason"]), (404, &json!("NotFound")), "{answer}");

        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "going"}});
        assert!(call(&mut client, "POST", "/api/v1/namespaces", json, ns).await.0.is_success());
        let path = "/api/v1/namespaces/going/configmaps";
        assert!(call(&mut client, "POST", path, json, cm.clone()).await.0.is_success());
        // Its finalizer keeps it Terminating (no namespace controller runs here).
        let (code, gone) = call(&mut client, "DELETE", "/api/v1/namespaces/going", json, json!({})).await;
        assert!(code.is_success() && gone["metadata"]["deletionTimestamp"].is_string(), "{gone}");
        let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d"}});
        let (code, answer) = call(&mut client, "POST", path, json, other).await;
        assert_eq!(code.as_u16(), 403, "{answer}");
        assert_eq!(answer["details"]["causes"][0]["reason"], "NamespaceTerminating", "{answer}");
        server.shutdown().await;
    }

    /// Writes answer from the bytes they stored: what each answers is what a GET
    /// right after it reads, whatever the verb.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_answer_what_they_stored() {
        let (_dir, server) = crate::test_server().await;
        let mut client = crate::loopback::tests::admin(&server, "test/1.0");
        let mut call = async |method: &str, path: &str, content_type: &str, body: Value| {
            call(&mut client, method, path, content_type, body).await
        };
        let deployments = "/apis/apps/v1/namespaces/default/deployments";
        let one = format!("{deployments}/one");
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "one"},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let json = "application/json";
        let merge = "application/merge-patch+json";
        let (code, created) = call("POST", deployments, json, deployment).await;
        assert_eq!(code, http::StatusCode::CREATED, "{created}");
        let (_, stored) = call("GET", &one, json, Value::Null).await;
        assert_eq!(created, stored);
        assert!(created["metadata"]["managedFields"].is_array(), "{created}");

        let mut replaced = stored.clone();
        replaced["spec"]["replicas"] = json!(3);
        let writes = [
            ("PUT", one.clone(), json, replaced),
            ("PATCH", one.clone(), merge, json!({"metadata": {"labels": {"x": "y"}}})),
            ("PATCH", format!("{one}/status"), merge, json!({"status": {"replicas": 2}})),
            ("PUT", format!("{one}/status"), json, Value::Null),
        ];
        let mut last = stored;
        for (method, path, content_type, body) in writes {
            // The status PUT sends the object as it stands.
            let body = if body.is_null() { last.clone() } else { body };
            let (code, answer) = call(method, &path, content_type, body).await;
            assert_eq!(code, http::StatusCode::OK, "{method} {path}: {answer}");
            let (_, stored) = call("GET", &one, json, Value::Null).await;
            assert_eq!(answer, stored, "{method} {path}");
            last = stored;
        }
        assert_eq!((&last["spec"]["replicas"], &last["status"]["replicas"]), (&json!(3), &json!(2)));
        server.shutdown().await;
    }
}
