//! GET of one object and of collections: selectors, pagination with `limit` and
//! `continue`, and upstream's resourceVersion semantics for lists.

use super::{Request, Target, object_response};
use crate::Ctx;
use crate::objects::decode;
use crate::wire::{self, Resp};
use api::selector::{FieldSelector, LabelSelector};
use api::{ApiError, Resource};
use base64::Engine;
use serde_json::{Value, json};
use std::sync::Arc;
use store::{RangeRequest, prefix_end};

pub async fn get(ctx: &Arc<Ctx>, t: &Target, req: &Request) -> Result<Resp, ApiError> {
    let kv = ctx.objects.get_stored(&t.key()).await?;
    let kv = kv.ok_or_else(|| ApiError::not_found(t.res, t.name()))?;
    // Plain JSON of a kind stored as served: the stored bytes with the revision
    // spliced in, as the watch feeds send them, with no parse and no serialisation.
    if !req.wants_table()
        && !req.wants_metadata()
        && api::convert::is_identity(t.res)
        && let Some(body) = crate::rawjson::with_resource_version(&kv.value, kv.mod_revision)
    {
        return Ok(wire::bytes_response(http::StatusCode::OK, "application/json", body));
    }
    let obj = crate::objects::decode_as(t.res, &kv)?;
    Ok(object_response(t, req, http::StatusCode::OK, &obj))
}

/// The selectors of a list or watch, checked against what the kind supports.
pub struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    pub fn parse(res: &Resource, req: &Request) -> Result<Selectors, ApiError> {
        let labels = LabelSelector::parse(req.query.label_selector.as_deref().unwrap_or_default())
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let fields = FieldSelector::parse(req.query.field_selector.as_deref().unwrap_or_default())
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        for term in &fields.terms {
            if api::fields::field_value(res, &json!({}), &term.field).is_none() {
                return Err(ApiError::bad_request(format!("field label not supported: {}", term.field)));
            }
        }
        Ok(Selectors { labels, fields })
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    pub fn matches(&self, res: &Resource, obj: &Value) -> bool {
        self.labels.matches_object(obj)
            && self.fields.matches(|f| api::fields::field_value(res, obj, f)).unwrap_or(false)
    }
}

/// The opaque `continue` token: where the next page starts, at which revision. The
/// shape is upstream's, so tokens look familiar.
#[derive(Debug, PartialEq, Eq)]
pub struct ContinueToken {
    pub rv: i64,
    /// The next key, relative to the list's prefix.
    pub start: String,
}

impl ContinueToken {
    pub fn encode(&self) -> String {
        let body = json!({"v": "meta.k8s.io/v1", "rv": self.rv, "start": self.start});
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(body.to_string())
    }

    pub fn decode(token: &str) -> Result<ContinueToken, ApiError> {
        let bad = || ApiError::bad_request("continue key is not valid: the token is malformed");
        let bytes =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.trim_end_matches('=')).map_err(|_| bad())?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if v.get("v").and_then(Value::as_str) != Some("meta.k8s.io/v1") {
            return Err(ApiError::bad_request(
                "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
            ));
        }
        let rv = v.get("rv").and_then(Value::as_i64).filter(|rv| *rv > 0).ok_or_else(bad)?;
        let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?.to_string();
        if start.contains("..") || start.starts_with('/') {
            return Err(ApiError::bad_request("continue key is not valid: the start key may not escape the list"));
        }
        Ok(ContinueToken { rv, start })
    }
}

fn parse_rv(s: &str) -> Result<i64, ApiError> {
    s.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
        ApiError::bad_request(format!(
            "resourceVersion: Invalid value: {s:?}: resourceVersion must be a non-negative integer"
        ))
        .with_cause(api::Cause::new("FieldValueInvalid", "resourceVersion", "invalid resourceVersion"))
    })
}

/// One page of a list: decoded objects, or (for plain JSON answers) their bytes.
pub struct Page<T = Value> {
    pub items: Vec<T>,
    pub revision: i64,
    pub continue_token: Option<String>,
    pub remaining: Option<i64>,
}

/// Reads the matching objects under a prefix, `limit` at most (0 = all), starting at
/// `start` (a key suffix) and at revision `rev` (0 = now).
pub async fn collect(
    ctx: &Ctx,
    res: &Resource,
    prefix: &str,
    sel: &Selectors,
    rev: i64,
    start: Option<&str>,
    limit: i64,
) -> Result<Page, ApiError> {
    collect_with(ctx, prefix, sel, rev, start, limit, |kv| decoded(res, sel, kv)).await
}

/// A stored object as clients of `res` get it, if the selectors keep it.
fn decoded(res: &Resource, sel: &Selectors, kv: &store::KeyValue) -> Result<Option<Value>, ApiError> {
    let obj = decode(kv)?;
    // Selectors match the stored shape; clients get their version's.
    Ok(sel.matches(res, &obj).then(|| api::convert::from_storage(res, obj)))
}

/// A stored object of a kind stored as served, as JSON, if the selectors keep it:
/// its bytes with the revision spliced in (as GET and the watch feeds send it), the
/// selectors reading only what they match on. Nothing is parsed whole or serialised.
/// With `without_managed_fields`, the object's `metadata.managedFields` are left out.
fn stored_json(
    res: &Resource,
    sel: &Selectors,
    kv: &store::KeyValue,
    without_managed_fields: bool,
) -> Result<Option<Vec<u8>>, ApiError> {
    if !sel.is_empty() {
        let view = api::fields::selectable(res, &kv.value)
            .map_err(|e| ApiError::internal(format!("stored object {} does not decode: {e}", kv.key)))?;
        if !sel.matches(res, &view) {
            return Ok(None);
        }
    }
    let json = match crate::rawjson::with_resource_version(&kv.value, kv.mod_revision) {
        Some(bytes) => bytes,
        None => serde_json::to_vec(&decode(kv)?).unwrap_or_default(),
    };
    let lean = without_managed_fields.then(|| crate::rawjson::without_managed_fields(&json)).flatten();
    Ok(Some(lean.unwrap_or(json)))
}

/// The paging of [`collect`]: `item` turns a stored object into a page item, or
/// `None` if the selectors leave it out.
async fn collect_with<T>(
    ctx: &Ctx,
    prefix: &str,
    sel: &Selectors,
    rev: i64,
    start: Option<&str>,
    limit: i64,
    item: impl Fn(&store::KeyValue) -> Result<Option<T>, ApiError>,
) -> Result<Page<T>, ApiError> {
    let mut items = Vec::new();
    let mut next = format!("{prefix}{}", start.unwrap_or_default());
    let end = prefix_end(prefix);
    let mut revision = rev;
    // Filtering may drop items, so read pages until the limit is met.
    let chunk = if limit > 0 { limit.max(64) } else { 0 };
    loop {
        let req = RangeRequest { key: next.clone(), range_end: Some(end.clone()), revision, limit: chunk };
        let resp = ctx.objects.range(req).await?;
        if revision == 0 {
            revision = resp.revision;
        }
        let fetched = resp.kvs.len();
        for (i, kv) in resp.kvs.iter().enumerate() {
            if let Some(it) = item(kv)? {
                items.push(it);
            }
            if limit > 0 && items.len() as i64 == limit {
                let more_here = i + 1 < fetched;
                if more_here || resp.more {
                    let start = format!("{}\0", &kv.key[prefix.len()..]);
                    let remaining = sel.is_empty().then(|| resp.count - (i as i64 + 1));
                    let token = ContinueToken { rv: revision, start }.encode();
                    return Ok(Page { items, revision, continue_token: Some(token), remaining });
                }
                return Ok(Page { items, revision, continue_token: None, remaining: None });
            }
        }
        if !resp.more || fetched == 0 {
            return Ok(Page { items, revision, continue_token: None, remaining: None });
        }
        next = format!("{}\0", resp.kvs[fetched - 1].key);
    }
}

/// The revision a list reads at, by upstream's rules for `resourceVersion`,
/// `resourceVersionMatch` and `limit`.
async fn list_revision(ctx: &Ctx, req: &Request) -> Result<i64, ApiError> {
    let q = &req.query;
    match (q.resource_version.as_deref(), q.resource_version_match.as_deref()) {
        (None, Some(_)) => Err(ApiError::bad_request(
            "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
        )),
        (None, None) | (Some("0"), None | Some("NotOlderThan")) => Ok(0),
        (Some(rv), m) => {
            let n = parse_rv(rv)?;
            let exact = match m {
                Some("Exact") => true,
                Some("NotOlderThan") => false,
                None => q.limit > 0,
                Some(other) => {
                    return Err(ApiError::bad_request(format!(
                        "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
                    )));
                }
            };
            let current = ctx.objects.current_revision().await?;
            if n > current {
                return Err(ApiError::timeout(format!("Too large resource version: {n}, current: {current}"))
                    .with_cause(api::Cause::new("ResourceVersionTooLarge", "", "Too large resource version")));
            }
            Ok(if exact { n } else { 0 })
        }
    }
}

/// The page size a first list request gets. Upstream serves `resourceVersion=0` from
/// its watch cache, which ignores `limit` and answers the whole list at once (the
/// cacher delegates to storage only a limit with another resourceVersion). Informers
/// list that way, so under heavy churn they never chase a continue token whose
/// revision has been compacted away meanwhile.
fn page_limit(req: &Request) -> i64 {
    let q = &req.query;
    let from_cache = q.resource_version.as_deref() == Some("0")
        && matches!(q.resource_version_match.as_deref(), None | Some("NotOlderThan"));
    if from_cache { 0 } else { q.limit }
}

pub async fn list(ctx: &Arc<Ctx>, t: &Target, req: &Request) -> Result<Resp, ApiError> {
    let sel = Selectors::parse(t.res, req)?;
    let prefix = t.res.storage_list_prefix(t.namespace.as_deref());
    let (rev, start, limit) = match &req.query.continue_token {
        Some(token) => {
            let token = ContinueToken::decode(token)?;
            (token.rv, Some(token.start), req.query.limit)
        }
        None => (list_revision(ctx, req).await?, None, page_limit(req)),
    };
    let continued = start.is_some();
    let expired = |e: ApiError| {
        if continued && e.code == 410 {
            ApiError::expired(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
            )
        } else {
            e
        }
    };
    // A list by name reads one key rather than scanning the namespace.
    let by_name = match (sel.fields.required_value("metadata.name"), &t.namespace) {
        _ if continued || rev != 0 => None,
        (Some(name), Some(ns)) if t.res.namespaced => Some(t.res.storage_key(Some(ns), name)),
        (Some(name), _) if !t.res.namespaced => Some(t.res.storage_key(None, name)),
        _ => None,
    };
    if !req.wants_table() && !req.wants_metadata() && api::convert::is_identity(t.res) && by_name.is_none() {
        let page = collect_with(ctx, &prefix, &sel, rev, start.as_deref(), limit, |kv| {
            stored_json(t.res, &sel, kv, req.without_managed_fields)
        })
        .await
        .map_err(expired)?;
        let head = json!({"kind": t.res.list_kind(), "apiVersion": t.res.api_version(), "metadata": list_meta(&page)});
        // The list's head, then its items' bytes as they are: `{...,"items":[a,b]}`.
        let mut body = serde_json::to_vec(&head).unwrap_or_default();
        body.pop();
        body.extend_from_slice(br#","items":["#);
        for (i, item) in page.items.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(item);
        }
        body.extend_from_slice(b"]}");
        return Ok(wire::bytes_response(http::StatusCode::OK, "application/json", body));
    }
    let page = match by_name {
        Some(key) => single(ctx, t.res, &key, &sel).await?,
        None => collect(ctx, t.res, &prefix, &sel, rev, start.as_deref(), limit).await.map_err(expired)?,
    };
    let meta = list_meta(&page);
    if req.wants_table() {
        return Ok(wire::ok(&crate::table::of_list(t.res, &page.items, meta, req.query.include_object.as_deref())));
    }
    if req.wants_metadata() {
        let mut list = crate::table::partial_list(meta, &page.items);
        if req.without_managed_fields {
            for item in list["items"].as_array_mut().into_iter().flatten() {
                if let Some(m) = item.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("managedFields");
                }
            }
        }
        return Ok(wire::ok(&list));
    }
    Ok(wire::ok(&list_object(t.res, meta, page.items)))
}

/// A list's metadata: its revision, and where the next page starts.
fn list_meta<T>(page: &Page<T>) -> Value {
    let mut meta = json!({"resourceVersion": page.revision.to_string()});
    if let Some(c) = &page.continue_token {
        meta["continue"] = json!(c);
    }
    if let Some(r) = page.remaining.filter(|r| *r > 0) {
        meta["remainingItemCount"] = json!(r);
    }
    meta
}

async fn single(ctx: &Ctx, res: &Resource, key: &str, sel: &Selectors) -> Result<Page, ApiError> {
    let resp = ctx.objects.range(RangeRequest::key(key)).await?;
    let mut items = Vec::new();
    for kv in &resp.kvs {
        items.extend(decoded(res, sel, kv)?);
    }
    Ok(Page { items, revision: resp.revision, continue_token: None, remaining: None })
}

pub fn list_object(res: &Resource, meta: Value, items: Vec<Value>) -> Value {
    json!({"kind": res.list_kind(), "apiVersion": res.api_version(), "metadata": meta, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tower_service::Service;

    /// A GET answered from the stored bytes is the object the decoding path gives,
    /// revision included; tables and metadata-only answers still come decoded.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn get_answers_the_stored_bytes_with_the_revision() {
        let (_dir, server) = crate::test_server().await;
        let mut client = crate::loopback::tests::admin(&server, "read-test/1.0");
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "b"}}, "data": {"k": "v \"q\" ü"}});
        let create = http::Request::post("/api/v1/namespaces/default/configmaps")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(serde_json::to_vec(&cm).unwrap())))
            .unwrap();
        assert_eq!(client.call(create).await.unwrap().status(), http::StatusCode::CREATED);
        let res = api::registry::find("", "v1", "configmaps").unwrap();
        let (decoded, rv) = server.ctx.objects.get(res, &res.storage_key(Some("default"), "c")).await.unwrap().unwrap();
        let get = |accept: &'static str| {
            http::Request::get("/api/v1/namespaces/default/configmaps/c")
                .header(http::header::ACCEPT, accept)
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap()
        };
        let resp = client.call(get("application/json")).await.unwrap();
        assert_eq!(resp.status(), http::StatusCode::OK);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let served: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(served, decoded);
        assert_eq!(served["metadata"]["resourceVersion"], rv.to_string());
        let table = client.call(get("application/json;as=Table;v=v1;g=meta.k8s.io")).await.unwrap();
        let table: Value = serde_json::from_slice(&table.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(table["kind"], "Table");
        server.shutdown().await;
    }

    /// A plain JSON list is made of the stored bytes: the same objects the decoding
    /// path gives, selectors and pages as before.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lists_answer_the_stored_bytes() {
        let (_dir, server) = crate::test_server().await;
        let mut client = crate::loopback::tests::admin(&server, "read-test/1.0");
        for (name, tier) in [("a", "web"), ("b", "db"), ("c", "web")] {
            let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"tier": tier}}, "data": {"k": name}});
            let create = http::Request::post("/api/v1/namespaces/default/configmaps")
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(http_body_util::Full::new(bytes::Bytes::from(serde_json::to_vec(&cm).unwrap())))
                .unwrap();
            assert_eq!(client.call(create).await.unwrap().status(), http::StatusCode::CREATED);
        }
        let mut list = async |query: &str| -> Value {
            let req = http::Request::get(format!("/api/v1/namespaces/default/configmaps?{query}"))
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap();
            let resp = client.call(req).await.unwrap();
            assert_eq!(resp.status(), http::StatusCode::OK);
            serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap()
        };
        let res = api::registry::find("", "v1", "configmaps").unwrap();
        let all = list("").await;
        assert_eq!(all["kind"], "ConfigMapList");
        assert_eq!(all["apiVersion"], "v1");
        let names: Vec<&str> =
            all["items"].as_array().unwrap().iter().filter_map(|i| i["metadata"]["name"].as_str()).collect();
        let ours: Vec<&str> = names.iter().copied().filter(|n| ["a", "b", "c"].contains(n)).collect();
        assert_eq!(ours, ["a", "b", "c"], "{names:?}");
        for item in all["items"].as_array().unwrap() {
            let name = item["metadata"]["name"].as_str().unwrap();
            let key = res.storage_key(Some("default"), name);
            let (decoded, _) = server.ctx.objects.get(res, &key).await.unwrap().unwrap();
            assert_eq!(item, &decoded);
        }
        let web = list("labelSelector=tier%3Dweb").await;
        assert_eq!(web["items"].as_array().unwrap().len(), 2);
        let first = list("labelSelector=tier&limit=1").await;
        assert_eq!(first["items"][0]["metadata"]["name"], "a");
        let token = first["metadata"]["continue"].as_str().unwrap().to_string();
        let rest = list(&format!("labelSelector=tier&limit=5&continue={token}")).await;
        let names: Vec<&str> =
            rest["items"].as_array().unwrap().iter().filter_map(|i| i["metadata"]["name"].as_str()).collect();
        assert_eq!(names, ["b", "c"]);
        assert_eq!(rest["metadata"]["resourceVersion"], first["metadata"]["resourceVersion"]);
        server.shutdown().await;
    }

    #[test]
    fn continue_tokens_round_trip_and_refuse_garbage() {
        let t = ContinueToken { rv: 42, start: "web-7\0".into() };
        assert_eq!(ContinueToken::decode(&t.encode()).unwrap(), t);
        assert!(ContinueToken::decode("!!!").is_err());
        let escape = ContinueToken { rv: 1, start: "../secrets/".into() }.encode();
        assert!(ContinueToken::decode(&escape).is_err());
    }
}
