//! The REST verbs on resources: get, list, watch, create, update, patch, delete,
//! deletecollection, and the subresources. Each verb reads its request, asks the store
//! through [`crate::objects::Objects`], and answers JSON or a Table.

mod delete;
pub mod proxy;
pub(crate) mod read;
pub(crate) mod subresource;
mod watch;
mod write;

pub use write::{new_uid, schema_of};

use crate::Ctx;
use crate::objects::Written;
use crate::query::Query;
use crate::wire::{self, Resp};
use api::{ApiError, Resource};
use bytes::Bytes;
use http::Method;
use serde_json::Value;
use std::sync::Arc;

/// What a resource path names.
#[derive(Debug, Clone)]
pub struct Target {
    pub res: &'static Resource,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
}

impl Target {
    pub fn key(&self) -> String {
        self.res.storage_key(self.namespace.as_deref(), self.name.as_deref().unwrap_or_default())
    }

    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }
}

/// The parts of a request the verbs need.
pub struct Request {
    pub method: Method,
    pub query: Query,
    pub accept: Option<String>,
    pub content_type: Option<String>,
    pub user_agent: String,
    /// Lists and watches of objects as JSON or as metadata may leave out their
    /// `metadata.managedFields` (tables, lists by name and kinds served in another
    /// version than stored still carry them): set only by the in-process transport,
    /// for control loops that never read them.
    pub without_managed_fields: bool,
    /// In a mutex only to make `&Request` shareable across await points (a boxed body
    /// is `Send` but not `Sync`); it is taken once, never locked twice.
    pub body: Option<std::sync::Mutex<wire::ReqBody>>,
}

impl Request {
    pub async fn body(&mut self) -> Result<Bytes, ApiError> {
        let body = self.body.take().ok_or_else(|| ApiError::internal("the request body was already read"))?;
        let body = body.into_inner().unwrap_or_else(|e| e.into_inner());
        wire::read_body(body).await
    }

    /// The field manager of a write: the `fieldManager` parameter, or the user
    /// agent's program name, as upstream derives it.
    pub fn field_manager(&self) -> String {
        if let Some(m) = &self.query.field_manager {
            return m.clone();
        }
        let ua = self.user_agent.split('/').next().unwrap_or_default().trim();
        if ua.is_empty() { "unknown".to_string() } else { ua.chars().take(128).collect() }
    }

    pub fn wants_table(&self) -> bool {
        crate::table::wanted(self.accept.as_deref())
    }

    pub fn wants_metadata(&self) -> bool {
        !self.wants_table() && crate::table::wants_metadata(self.accept.as_deref())
    }
}

/// Answers one request on a resource path.
pub async fn handle(ctx: &Arc<Ctx>, target: Target, req: Request) -> Resp {
    let verb = verb_of(&req, &target);
    let result = dispatch(ctx, &target, req).await;
    let resp = match result {
        Ok(r) => r,
        Err(e) => wire::error(&e),
    };
    ctx.metrics.observe(verb, target.res, resp.status().as_u16());
    resp
}

fn verb_of(req: &Request, t: &Target) -> &'static str {
    match (&req.method, t.name.is_some()) {
        (&Method::GET, _) if req.query.watch => "WATCH",
        (&Method::GET, true) => "GET",
        (&Method::GET, false) => "LIST",
        (&Method::POST, _) => "POST",
        (&Method::PUT, _) => "PUT",
        (&Method::PATCH, _) => "PATCH",
        (&Method::DELETE, true) => "DELETE",
        (&Method::DELETE, false) => "DELETECOLLECTION",
        _ => "OTHER",
    }
}

async fn dispatch(ctx: &Arc<Ctx>, t: &Target, mut req: Request) -> Result<Resp, ApiError> {
    if let Some(sub) = t.sub.clone() {
        return subresource::handle(ctx, t, &sub, req).await;
    }
    let namespaced_without_ns = t.res.namespaced && t.namespace.is_none();
    match (&req.method, t.name.is_some()) {
        (&Method::GET, false) if req.query.watch => watch::serve(ctx, t, &req).await,
        (&Method::GET, false) => read::list(ctx, t, &req).await,
        (&Method::GET, true) if req.query.watch => watch::serve(ctx, t, &req).await,
        (&Method::GET, true) => read::get(ctx, t, &req).await,
        _ if namespaced_without_ns => {
            Err(ApiError::method_not_allowed("the server does not allow this method on the requested resource"))
        }
        (&Method::POST, false) => write::create(ctx, t, &mut req).await,
        (&Method::PUT, true) => write::update(ctx, t, &mut req).await,
        (&Method::PATCH, true) => write::patch(ctx, t, &mut req).await,
        (&Method::DELETE, true) => delete::delete(ctx, t, &mut req).await,
        (&Method::DELETE, false) => delete::delete_collection(ctx, t, &mut req).await,
        _ => Err(ApiError::method_not_allowed("the server does not allow this method on the requested resource")),
    }
}

/// Answers an object as JSON, or as a one-row Table when asked.
pub fn object_response(t: &Target, req: &Request, code: http::StatusCode, obj: &Value) -> Resp {
    if req.wants_table() {
        return wire::json(code, &crate::table::of_object(t.res, obj, req.query.include_object.as_deref(), true));
    }
    if req.wants_metadata() {
        return wire::json(code, &crate::table::partial(obj));
    }
    wire::json(code, obj)
}

/// Answers a write as [`object_response`] does, plain JSON from the bytes it stored.
pub fn written_response(t: &Target, req: &Request, code: http::StatusCode, written: &Written) -> Resp {
    if req.wants_table() || req.wants_metadata() {
        return object_response(t, req, code, &written.obj);
    }
    wire::bytes_response(code, "application/json", written.json())
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata").and_then(|m| m.get(field)).and_then(Value::as_str)
}
