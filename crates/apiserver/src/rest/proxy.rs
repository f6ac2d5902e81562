//! `pods/log`, `pods/exec`, `pods/attach` and `pods/portforward`: the API server
//! checks the request against the pod (its container, its node), then forwards it to
//! the agent on that node (`status.addresses`, `status.daemonEndpoints`) over TLS
//! with its kubelet-client certificate, trusting only agents whose serving
//! certificate the cluster CA signed. Upgrades (WebSocket, SPDY) are spliced through
//! after the agent's 101, so every protocol the agent speaks reaches the client
//! as-is; logs are streamed.

use super::Target;
use crate::Ctx;
use crate::wire::{self, Resp};
use api::{ApiError, Subresource};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The agent port when a node does not say (upstream's default kubelet port).
pub const DEFAULT_KUBELET_PORT: u16 = 10250;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether a request on a target is one this module serves.
pub fn serves(t: &Target) -> bool {
    t.res.group.is_empty()
        && t.res.plural == "pods"
        && matches!(t.sub.as_deref(), Some("log" | "exec" | "attach" | "portforward"))
}

fn names(list: Option<&Value>) -> Vec<String> {
    list.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|c| c["name"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// The container a request is about, as upstream's `validateContainer` decides: the
/// one named (any regular, init or ephemeral container), or the only one.
pub fn validate_container(pod: &Value, container: Option<&str>) -> Result<String, ApiError> {
    let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let containers = names(pod.pointer("/spec/containers"));
    match container.filter(|c| !c.is_empty()) {
        None => match containers.len() {
            1 => Ok(containers[0].clone()),
            0 => Err(ApiError::bad_request(format!("a container name must be specified for pod {name}"))),
            _ => {
                let mut m = format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    containers.join(" ")
                );
                let init = names(pod.pointer("/spec/initContainers"));
                if !init.is_empty() {
                    m.push_str(&format!(" or one of the init containers: [{}]", init.join(" ")));
                }
                Err(ApiError::bad_request(m))
            }
        },
        Some(c) => {
            let known = containers
                .iter()
                .chain(names(pod.pointer("/spec/initContainers")).iter())
                .chain(names(pod.pointer("/spec/ephemeralContainers")).iter())
                .any(|n| n == c);
            if known {
                Ok(c.to_string())
            } else {
                Err(ApiError::bad_request(format!("container {c} is not valid for pod {name}")))
            }
        }
    }
}

/// Where a node's agent listens: its InternalIP (else ExternalIP, else Hostname) and
/// `status.daemonEndpoints.kubeletEndpoint.Port`.
pub fn agent_address(node: &Value) -> Option<(String, u16)> {
    let addresses = node.pointer("/status/addresses").and_then(Value::as_array)?;
    let host = ["InternalIP", "ExternalIP", "Hostname"].iter().find_map(|kind| {
        addresses.iter().find(|a| a["type"] == *kind).and_then(|a| a["address"].as_str()).filter(|a| !a.is_empty())
    })?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
        .unwrap_or(DEFAULT_KUBELET_PORT);
    Some((host.to_string(), port))
}

/// The agent's path for a request.
pub fn agent_path(sub: &str, namespace: &str, pod: &str, container: &str, query: Option<&str>) -> String {
    let base = match sub {
        "log" => format!("/containerLogs/{namespace}/{pod}/{container}"),
        "exec" => format!("/exec/{namespace}/{pod}/{container}"),
        "attach" => format!("/attach/{namespace}/{pod}/{container}"),
        _ => format!("/portForward/{namespace}/{pod}"),
    };
    // The container is in the path; everything else goes as the client sent it.
    let rest: Vec<&str> =
        query.unwrap_or_default().split('&').filter(|p| !p.is_empty() && !p.starts_with("container=")).collect();
    if rest.is_empty() { base } else { format!("{base}?{}", rest.join("&")) }
}

fn query_value(query: Option<&str>, key: &str) -> Option<String> {
    crate::query::pairs(query).into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn forbidden(t: &Target, user: &str, verb: &str) -> ApiError {
    ApiError::forbidden(format!(
        "pods \"{}\" is forbidden: User \"{user}\" cannot {verb} resource \"pods/{}\" in API group \"\" in the namespace \"{}\"",
        t.name(),
        t.sub.as_deref().unwrap_or_default(),
        t.namespace.as_deref().unwrap_or_default()
    ))
}

/// Answers one request on a streaming subresource of a pod.
pub async fn handle(ctx: &Arc<Ctx>, t: Target, req: Request<wire::ReqBody>) -> Resp {
    match forward(ctx, &t, req).await {
        Ok(r) => r,
        Err(e) => wire::error(&e),
    }
}

async fn forward(ctx: &Arc<Ctx>, t: &Target, mut req: Request<wire::ReqBody>) -> Result<Resp, ApiError> {
    let sub = t.sub.clone().unwrap_or_default();
    let kind = Subresource::parse(&sub).filter(|s| t.res.has_subresource(*s));
    if kind.is_none() || t.namespace.is_none() || t.name.is_none() {
        return Err(ApiError::no_route());
    }
    let allowed =
        if sub == "log" { req.method() == Method::GET } else { matches!(*req.method(), Method::GET | Method::POST) };
    if !allowed {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource (pods/{sub})"
        )));
    }
    // Nodes may not reach into other pods' containers (upstream's node authorizer
    // does not allow these either); only administrators may.
    let user = ctx.auth.authenticate(req.headers()).ok_or_else(ApiError::unauthorized)?;
    if !user.is_admin() {
        let verb = if req.method() == Method::GET { "get" } else { "create" };
        return Err(forbidden(t, &user.name, verb));
    }
    let (pod, _) = ctx.objects.get(t.res, &t.key()).await?.ok_or_else(|| ApiError::not_found(t.res, t.name()))?;
    let query = req.uri().query().map(str::to_string);
    let container = if sub == "portforward" {
        String::new()
    } else {
        validate_container(&pod, query_value(query.as_deref(), "container").as_deref())?
    };
    let node_name = pod.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or_default().to_string();
    if node_name.is_empty() {
        if sub == "log" {
            // Upstream: a pod not yet scheduled has no logs, and that is not an error.
            return Ok(wire::bytes_response(StatusCode::OK, "text/plain", Bytes::new()));
        }
        return Err(ApiError::bad_request(format!("pod {} does not have a host assigned", t.name())));
    }
    let nodes = api::registry::find("", "v1", "nodes").ok_or_else(|| ApiError::internal("nodes are not served"))?;
    let (node, _) = ctx
        .objects
        .get(nodes, &nodes.storage_key(None, &node_name))
        .await?
        .ok_or_else(|| ApiError::not_found(nodes, &node_name))?;
    let (host, port) = agent_address(&node)
        .ok_or_else(|| ApiError::internal(format!("node {node_name:?} has no address to reach its agent at")))?;
    let tls = ctx.kubelet_tls.clone().ok_or_else(|| ApiError::internal("no client certificate for node agents"))?;
    let unavailable = |e: &dyn std::fmt::Display| {
        ApiError::new(
            502,
            "InternalError",
            format!("error trying to reach service: dial tcp {}: {e}", join_host_port(&host, port)),
        )
    };
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect((host.as_str(), port)))
        .await
        .map_err(|_| unavailable(&"i/o timeout"))?
        .map_err(|e| unavailable(&e))?;
    let _ = tcp.set_nodelay(true);
    let server_name = match host.parse::<IpAddr>() {
        Ok(ip) => rustls_pki_types::ServerName::IpAddress(ip.into()),
        Err(_) => rustls_pki_types::ServerName::try_from(host.clone()).map_err(|e| unavailable(&e))?,
    };
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(server_name, tcp)
        .await
        .map_err(|e| unavailable(&format!("tls: {e}")))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| unavailable(&e))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });

    let path = agent_path(&sub, t.namespace.as_deref().unwrap_or_default(), t.name(), &container, query.as_deref());
    let mut out = Request::builder().method(req.method().clone()).uri(&path);
    for (name, value) in req.headers() {
        // Credentials are ours, not the agent's; the body is not forwarded.
        if matches!(name, &header::AUTHORIZATION | &header::HOST | &header::CONTENT_LENGTH | &header::TRANSFER_ENCODING)
        {
            continue;
        }
        out = out.header(name, value);
    }
    out = out.header(header::HOST, join_host_port(&host, port));
    let out = out.body(Empty::<Bytes>::new()).map_err(|e| ApiError::internal(e.to_string()))?;
    let upgrading = req.headers().contains_key(header::UPGRADE);
    let mut resp = sender.send_request(out).await.map_err(|e| unavailable(&e))?;

    if upgrading && resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let client_side = hyper::upgrade::on(&mut req);
        let agent_side = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            let (Ok(client), Ok(agent)) = (client_side.await, agent_side.await) else { return };
            let (mut client, mut agent) = (TokioIo::new(client), TokioIo::new(agent));
            let _ = tokio::io::copy_bidirectional(&mut client, &mut agent).await;
        });
        let mut r = http::Response::new(wire::full(Bytes::new()));
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        *r.headers_mut() = resp.headers().clone();
        return Ok(r);
    }
    // Anything else (logs, or an error instead of an upgrade) streams back as it comes.
    let status = resp.status();
    let headers = resp.headers().clone();
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let mut body = resp.into_body();
    tokio::spawn(async move {
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data()
                && tx.send(data).await.is_err()
            {
                return;
            }
        }
    });
    let mut r = http::Response::new(wire::ChannelBody::boxed(rx));
    *r.status_mut() = status;
    for name in [header::CONTENT_TYPE, header::CACHE_CONTROL] {
        if let Some(v) = headers.get(&name) {
            r.headers_mut().insert(name, v.clone());
        }
    }
    if !r.headers().contains_key(header::CONTENT_TYPE) {
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    Ok(r)
}

/// `GET /v1-rudder/serving-kubelet.crt` with `Rudder-Node-Name` and
/// `Rudder-Node-IP` (comma separated): a serving certificate for the node agent's
/// kubelet port, signed by the cluster CA, followed by its key, as PEM (the shape of
/// k3s's endpoint). The API server then verifies the agent as it connects. Only nodes
/// and administrators get one.
pub fn serving_certificate(ctx: &Ctx, headers: &http::HeaderMap) -> Resp {
    let Some(user) = ctx.auth.authenticate(headers) else {
        return wire::error(&ApiError::unauthorized());
    };
    if !user.is_admin() && !user.groups.iter().any(|g| g == "system:nodes") {
        return wire::error(&ApiError::forbidden(format!(
            "User \"{}\" cannot get a kubelet serving certificate",
            user.name
        )));
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().trim().to_string();
    let node = header("rudder-node-name");
    if node.is_empty() || !api::validation::dns1123_subdomain(&node).is_empty() {
        return wire::error(&ApiError::bad_request(format!("invalid Rudder-Node-Name {node:?}")));
    }
    let mut addresses = Vec::new();
    for a in header("rudder-node-ip").split(',').map(str::trim).filter(|a| !a.is_empty()) {
        match a.parse::<IpAddr>() {
            Ok(ip) => addresses.push(ip.to_string()),
            Err(_) => return wire::error(&ApiError::bad_request(format!("invalid Rudder-Node-IP {a:?}"))),
        }
    }
    let Some(issuer) = ctx.kubelet_issuer.as_ref() else {
        return wire::error(&ApiError::internal("this server does not issue kubelet certificates"));
    };
    match issuer.issue(&node, &addresses) {
        Ok((cert, key)) => wire::bytes_response(StatusCode::OK, "application/x-pem-file", format!("{cert}{key}")),
        Err(e) => wire::error(&ApiError::internal(e.to_string())),
    }
}

fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(containers: &[&str], init: &[&str]) -> Value {
        let c: Vec<Value> = containers.iter().map(|n| json!({"name": n, "image": "x"})).collect();
        let i: Vec<Value> = init.iter().map(|n| json!({"name": n, "image": "x"})).collect();
        json!({"metadata": {"name": "web"}, "spec": {"containers": c, "initContainers": i}})
    }

    #[test]
    fn containers_are_validated_as_upstream() {
        assert_eq!(validate_container(&pod(&["app"], &[]), None).unwrap(), "app");
        assert_eq!(validate_container(&pod(&["app", "side"], &["init"]), Some("init")).unwrap(), "init");
        let e = validate_container(&pod(&["a", "b"], &[]), None).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "a container name must be specified for pod web, choose one of: [a b]")
        );
        let e = validate_container(&pod(&["a", "b"], &["i"]), Some("")).unwrap_err();
        assert_eq!(
            e.message,
            "a container name must be specified for pod web, choose one of: [a b] or one of the init containers: [i]"
        );
        let e = validate_container(&pod(&["a"], &[]), Some("x")).unwrap_err();
        assert_eq!(e.message, "container x is not valid for pod web");
        assert!(validate_container(&pod(&[], &[]), None).is_err());
    }

    #[test]
    fn node_addresses() {
        let node = json!({"status": {
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.5"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 12345}},
        }});
        assert_eq!(agent_address(&node), Some(("10.0.0.5".to_string(), 12345)));
        let bare = json!({"status": {"addresses": [{"type": "Hostname", "address": "n1"}]}});
        assert_eq!(agent_address(&bare), Some(("n1".to_string(), DEFAULT_KUBELET_PORT)));
        assert_eq!(agent_address(&json!({})), None);
        assert_eq!(join_host_port("::1", 1), "[::1]:1");
    }

    #[test]
    fn paths() {
        assert_eq!(
            agent_path("log", "default", "web", "app", Some("container=app&follow=true&tailLines=10")),
            "/containerLogs/default/web/app?follow=true&tailLines=10"
        );
        assert_eq!(
            agent_path("exec", "ns", "p", "c", Some("command=ls&container=c&stdout=true")),
            "/exec/ns/p/c?command=ls&stdout=true"
        );
        assert_eq!(agent_path("portforward", "ns", "p", "", None), "/portForward/ns/p");
        assert_eq!(agent_path("attach", "ns", "p", "c", Some("container=c")), "/attach/ns/p/c");
    }
}
