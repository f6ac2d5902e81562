//! The TLS listener and the router: every request is authenticated, then sent to
//! discovery, OpenAPI, health, metrics, or the REST verbs of a resource.

use crate::rest::{self, Target};
use crate::wire::{self, Resp};
use crate::{Ctx, auth, discovery, metricsapi, openapi};
use api::{ApiError, registry};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// Accepts connections until `shutdown` flips.
pub async fn serve(
    ctx: Arc<Ctx>,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let (acceptor, ctx) = (acceptor.clone(), ctx.clone());
        let mut conn_shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                Ok(Ok(s)) => s,
                _ => return,
            };
            let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let ctx = ctx.clone();
                let req = req.map(|b| b.map_err(Into::into).boxed_unsync());
                async move { Ok::<_, Infallible>(route(ctx, req).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc);
            tokio::select! {
                _ = conn => {}
                _ = conn_shutdown.changed() => {}
            }
        });
    }
}

fn text(code: http::StatusCode, body: &'static str) -> Resp {
    wire::bytes_response(code, "text/plain; charset=utf-8", body)
}

/// `GET /version`: minor 33, which also makes the kubectl dispatcher run kubectl 1.33.
pub fn version() -> serde_json::Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": concat!("v1.33.0+rudder.", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": "linux/amd64",
    })
}

/// Answers one request, from whichever transport it came.
pub(crate) async fn route(ctx: Arc<Ctx>, req: wire::Req) -> Resp {
    let started = Instant::now();
    let req = match auth::gate(&ctx, req).await {
        auth::Gate::Pass(req) => req,
        auth::Gate::Answer(resp) => return resp,
    };
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let is_get = req.method() == http::Method::GET;
    let accept = req.headers().get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).map(str::to_string);
    let resp = match (segs.as_slice(), is_get) {
        (["version"], true) => wire::ok(&version()),
        (["v1-rudder", "serving-kubelet.crt"], true) => rest::proxy::serving_certificate(&ctx, req.headers()),
        (["cacerts"], true) => wire::bytes_response(http::StatusCode::OK, "text/plain", ctx.ca_pem.clone()),
        (["healthz" | "livez", ..], true) => text(http::StatusCode::OK, "ok"),
        (["readyz", ..], true) => {
            if ctx.ready.load(Ordering::Acquire) {
                text(http::StatusCode::OK, "ok")
            } else {
                text(http::StatusCode::SERVICE_UNAVAILABLE, "not ready")
            }
        }
        (["metrics"], true) => {
            wire::bytes_response(http::StatusCode::OK, "text/plain; version=0.0.4", ctx.metrics.render(ctx.hub.feeds()))
        }
        (["api"], true) => match discovery::aggregated_version(accept.as_deref()) {
            Some(v) => aggregated(true, v),
            None => wire::ok(&discovery::api_versions(&ctx.server_address)),
        },
        (["apis"], true) => match discovery::aggregated_version(accept.as_deref()) {
            Some(v) => aggregated(false, v),
            None => wire::ok(&discovery::api_group_list()),
        },
        (["api", "v1"], true) => found(discovery::api_resource_list("", "v1")),
        (["apis", g], true) => found(discovery::api_group(g)),
        (["apis", g, v], true) => found(discovery::api_resource_list(g, v)),
        (["openapi", "v2"], true) => {
            wire::bytes_response(http::StatusCode::OK, openapi::V2_CONTENT_TYPE, openapi::V2_DOCUMENT)
        }
        (["openapi", "v3"], true) => wire::bytes_response(http::StatusCode::OK, "application/json", openapi::root()),
        (["openapi", "v3", rest @ ..], true) => {
            let hash = crate::query::pairs(req.uri().query()).into_iter().find(|(k, _)| k == "hash").map(|(_, v)| v);
            let gzip =
                openapi::accepts_gzip(req.headers().get(http::header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()));
            match openapi::document(&rest.join("/"), hash.as_deref(), gzip) {
                Some(doc) => {
                    let mut r = wire::bytes_response(http::StatusCode::OK, "application/json", doc.body);
                    let cache = if doc.immutable { "public, immutable" } else { "no-cache, private" };
                    r.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static(cache));
                    if doc.gzip {
                        r.headers_mut().insert(http::header::CONTENT_ENCODING, http::HeaderValue::from_static("gzip"));
                    }
                    r
                }
                None => wire::error(&ApiError::no_route()),
            }
        }
        (["api", "v1", rest @ ..], _) => return resource(&ctx, "", "v1", rest, req, started).await,
        (["apis", metricsapi::GROUP, metricsapi::VERSION, rest @ ..], _) if !rest.is_empty() => {
            metricsapi::handle(&ctx, rest, req).await
        }
        (["apis", g, v, rest @ ..], _) if !rest.is_empty() => {
            let (g, v) = (g.to_string(), v.to_string());
            return resource(&ctx, &g, &v, rest, req, started).await;
        }
        (_, false) if segs.len() <= 3 && matches!(segs.first(), Some(&"api" | &"apis")) => wire::error(
            &ApiError::method_not_allowed("the server does not allow this method on the requested resource"),
        ),
        _ => wire::error(&ApiError::no_route()),
    };
    ctx.metrics.observe_latency("GET", started.elapsed());
    resp
}

fn aggregated(core: bool, version: &str) -> Resp {
    let ct = if version == "v2" { discovery::V2 } else { discovery::V2BETA1 };
    let mut r = wire::bytes_response(http::StatusCode::OK, ct, discovery::aggregated_document(core, version));
    r.headers_mut().insert(http::header::VARY, http::HeaderValue::from_static("Accept"));
    r
}

fn found(v: Option<serde_json::Value>) -> Resp {
    match v {
        Some(v) => wire::ok(&v),
        None => wire::error(&ApiError::no_route()),
    }
}

/// Parses `[namespaces/{ns}/]{plural}[/{name}[/{subresource}]]`.
pub fn parse_target(group: &str, version: &str, rest: &[&str]) -> Option<Target> {
    let find = |plural: &str| registry::find(group, version, plural);
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, tail @ ..] if find(plural).is_some_and(|r| r.namespaced) => {
            (Some(ns.to_string()), [&[*plural][..], tail].concat())
        }
        _ => (None, rest.to_vec()),
    };
    let (plural, name, sub) = match rest.as_slice() {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(name.to_string()), None),
        [plural, name, sub] => (*plural, Some(name.to_string()), Some(sub.to_string())),
        _ => return None,
    };
    let res = find(plural)?;
    Some(Target { res, namespace, name, sub })
}

async fn resource(ctx: &Arc<Ctx>, group: &str, version: &str, rest: &[&str], req: wire::Req, started: Instant) -> Resp {
    let Some(target) = parse_target(group, version, rest) else {
        return wire::error(&ApiError::no_route());
    };
    if rest::proxy::serves(&target) {
        return rest::proxy::handle(ctx, target, req).await;
    }
    let (parts, body) = req.into_parts();
    let header = |h: http::header::HeaderName| parts.headers.get(h).and_then(|v| v.to_str().ok()).map(str::to_string);
    let query = match crate::query::Query::parse(parts.uri.query()) {
        Ok(q) => q,
        Err(e) => return wire::error(&e),
    };
    let request = rest::Request {
        method: parts.method.clone(),
        query,
        accept: header(http::header::ACCEPT),
        content_type: header(http::header::CONTENT_TYPE),
        user_agent: header(http::header::USER_AGENT).unwrap_or_default(),
        without_managed_fields: parts.extensions.get::<crate::loopback::WithoutManagedFields>().is_some(),
        body: Some(std::sync::Mutex::new(body)),
    };
    let verb = parts.method.as_str().to_string();
    let resp = rest::handle(ctx, target, request).await;
    let verb: &'static str = match verb.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        _ => "OTHER",
    };
    ctx.metrics.observe_latency(verb, started.elapsed());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_resource_paths() {
        let t = parse_target("", "v1", &["namespaces", "default", "pods", "web", "status"]).unwrap();
        assert_eq!(t.res.plural, "pods");
        assert_eq!(t.namespace.as_deref(), Some("default"));
        assert_eq!(t.sub.as_deref(), Some("status"));
        let ns = parse_target("", "v1", &["namespaces", "default"]).unwrap();
        assert_eq!(ns.res.plural, "namespaces");
        assert_eq!(ns.name.as_deref(), Some("default"));
        let fin = parse_target("", "v1", &["namespaces", "x", "finalize"]).unwrap();
        assert_eq!((fin.res.plural, fin.sub.as_deref()), ("namespaces", Some("finalize")));
        let all = parse_target("apps", "v1", &["deployments"]).unwrap();
        assert!(all.namespace.is_none() && all.name.is_none());
        assert!(parse_target("apps", "v1", &["nope"]).is_none());
        assert!(parse_target("", "v1", &["pods", "a", "b", "c"]).is_none());
    }
}
