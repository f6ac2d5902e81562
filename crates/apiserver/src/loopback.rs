//! The in-process transport: clients that live in the API server's own process (the
//! controllers and the scheduler of `rudder server`) send their requests straight to
//! the router every connection uses, with no socket, TLS or HTTP framing in between.
//!
//! Nothing else changes for them: each request carries a bearer token and is
//! authenticated like any other, goes through the same admission, validation and
//! watch code, and answers the same bytes. What goes away is encrypting and decrypting
//! every watch event twice over loopback, which profiles showed costing more than the
//! scheduling itself once thousands of pods churn.

use crate::wire::{self, Resp};
use crate::{Ctx, server};
use api::ApiError;
use bytes::Bytes;
use http::HeaderValue;
use http_body_util::BodyExt;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A `tower` service answering requests in-process; `kube::Client::new` takes it as
/// its transport.
#[derive(Clone)]
pub struct Loopback {
    ctx: Arc<Ctx>,
    authorization: HeaderValue,
    user_agent: HeaderValue,
    /// Requests run on the API server's runtime, so a busy client cannot hold the
    /// workers that serve everyone else, and the reverse.
    runtime: tokio::runtime::Handle,
    without_managed_fields: bool,
}

/// Marks an in-process request whose lists and watches may leave out objects'
/// `metadata.managedFields`. A request extension, which only this transport can set:
/// nothing a client sends over the network turns it on.
#[derive(Debug, Clone, Copy)]
pub struct WithoutManagedFields;

#[derive(Debug, thiserror::Error)]
pub enum LoopbackError {
    #[error("a token or user agent is not a valid header value")]
    Header(#[from] http::header::InvalidHeaderValue),
    #[error("no tokio runtime to serve on: {0}")]
    Runtime(#[from] tokio::runtime::TryCurrentError),
}

impl Loopback {
    /// A transport that authenticates with `token` and names itself `user_agent`
    /// (upstream's default field manager is the user agent's program name). Requests
    /// are served on the runtime this is called on.
    pub fn new(ctx: Arc<Ctx>, token: &str, user_agent: &str) -> Result<Loopback, LoopbackError> {
        let mut authorization = HeaderValue::from_str(&format!("Bearer {token}"))?;
        authorization.set_sensitive(true);
        Ok(Loopback {
            ctx,
            authorization,
            user_agent: HeaderValue::from_str(user_agent)?,
            runtime: tokio::runtime::Handle::try_current()?,
            without_managed_fields: false,
        })
    }

    /// Lists and watches through this transport, of objects as JSON or as metadata,
    /// leave out `metadata.managedFields`, for control loops that never read them:
    /// upstream's controller manager and scheduler strip them from their informers'
    /// caches (`TransformStripManagedFields`) after decoding; here they are mostly not
    /// sent, so neither decoded nor kept. (Tables, lists by name and kinds served in
    /// another version than stored still carry them.)
    pub fn without_managed_fields(mut self) -> Loopback {
        self.without_managed_fields = true;
        self
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<B> tower_service::Service<http::Request<B>> for Loopback
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Resp;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Resp, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let mut req = req.map(|b| b.map_err(Into::into).boxed_unsync());
        let headers = req.headers_mut();
        headers.insert(http::header::AUTHORIZATION, self.authorization.clone());
        if !headers.contains_key(http::header::USER_AGENT) {
            headers.insert(http::header::USER_AGENT, self.user_agent.clone());
        }
        if self.without_managed_fields {
            req.extensions_mut().insert(WithoutManagedFields);
        }
        let answer = self.runtime.spawn(server::route(self.ctx.clone(), req));
        Box::pin(async move {
            Ok(answer.await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "an in-process request failed");
                wire::error(&ApiError::internal("the request handler failed"))
            }))
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tower_service::Service;

    async fn ctx() -> (tempfile::TempDir, crate::ApiServer) {
        crate::test_server().await
    }

    fn get(path: &str) -> http::Request<http_body_util::Empty<Bytes>> {
        http::Request::get(path).body(http_body_util::Empty::new()).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_as_the_token_user_and_refuses_a_bad_token() {
        let (_dir, server) = ctx().await;
        let mut good = admin(&server, "test/1.0");
        let resp = good.call(get("/api/v1/namespaces/default")).await.unwrap();
        assert_eq!(resp.status(), http::StatusCode::OK);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let ns: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(ns["metadata"]["name"], "default");

        let mut bad = Loopback::new(server.ctx.clone(), "not-a-token", "test/1.0").unwrap();
        let resp = bad.call(get("/api/v1/namespaces")).await.unwrap();
        assert_eq!(resp.status(), http::StatusCode::UNAUTHORIZED);
        server.shutdown().await;
    }

    async fn body_json(resp: Resp) -> serde_json::Value {
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap()
    }

    /// A test server's administrator, in-process, introducing itself as `agent`.
    pub(crate) fn admin(server: &crate::ApiServer, agent: &str) -> Loopback {
        Loopback::new(server.ctx.clone(), &server.pki.admin_token, agent).unwrap()
    }

    /// Sends one request in-process; its status and JSON answer.
    pub(crate) async fn call(
        client: &mut Loopback,
        method: &str,
        path: &str,
        content_type: &str,
        body: serde_json::Value,
    ) -> (http::StatusCode, serde_json::Value) {
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::CONTENT_TYPE, content_type)
            .body(http_body_util::Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let resp = client.call(req).await.unwrap();
        (resp.status(), body_json(resp).await)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_control_loop_lists_and_watches_without_managed_fields() {
        let (_dir, server) = ctx().await;
        let mut full = admin(&server, "full/1.0");
        let mut lean = admin(&server, "lean/1.0").without_managed_fields();
        let cm = |name: &str| serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "b"}});
        let list = "/api/v1/namespaces/default/configmaps";
        let (_, created) = call(&mut full, "POST", list, "application/json", cm("one")).await;
        assert!(created["metadata"]["managedFields"].is_array(), "{created}");
        let rv = created["metadata"]["resourceVersion"].as_str().unwrap().to_string();

        let full_list = body_json(full.call(get(list)).await.unwrap()).await;
        let lean_list = body_json(lean.call(get(list)).await.unwrap()).await;
        let mut want = full_list.clone();
        want["items"][0]["metadata"].as_object_mut().unwrap().remove("managedFields");
        assert!(full_list["items"][0]["metadata"]["managedFields"].is_array());
        assert_eq!(lean_list, want);
        let metadata_list = http::Request::get(list)
            .header(http::header::ACCEPT, "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1")
            .body(http_body_util::Empty::new())
            .unwrap();
        let metadata_list = body_json(lean.call(metadata_list).await.unwrap()).await;
        assert_eq!(metadata_list["kind"], "PartialObjectMetadataList", "{metadata_list}");
        assert_eq!(metadata_list["items"][0]["metadata"], want["items"][0]["metadata"]);

        // A watch: the initial state, then a change from the feed, in both shapes.
        let mut watches = Vec::new();
        for query in ["watch=true".to_string(), format!("watch=true&resourceVersion={rv}")] {
            let resp = lean.call(get(&format!("{list}?{query}&timeoutSeconds=5"))).await.unwrap();
            watches.push(resp.into_body());
        }
        let metadata_only = http::Request::get(format!("{list}?watch=true&resourceVersion={rv}&timeoutSeconds=5"))
            .header(http::header::ACCEPT, "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1")
            .body(http_body_util::Empty::new())
            .unwrap();
        watches.push(lean.call(metadata_only).await.unwrap().into_body());
        call(&mut full, "POST", list, "application/json", cm("two")).await;
        for (i, mut body) in watches.into_iter().enumerate() {
            let mut seen = Vec::new();
            while seen.len() < 2 - usize::from(i > 0) {
                let frame = body.frame().await.unwrap().unwrap();
                let Ok(data) = frame.into_data() else { continue };
                for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    seen.push(serde_json::from_slice::<serde_json::Value>(line).unwrap());
                }
            }
            for event in &seen {
                let meta = &event["object"]["metadata"];
                assert!(meta["name"].is_string() && meta.get("managedFields").is_none(), "watch {i}: {event}");
            }
            assert_eq!(seen.last().unwrap()["object"]["metadata"]["name"], "two", "watch {i}");
        }
        server.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_take_the_user_agent_as_field_manager() {
        let (_dir, server) = ctx().await;
        let mut client = admin(&server, "loop-test/1.0 (linux)");
        let cm =
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}});
        let req = http::Request::post("/api/v1/namespaces/default/configmaps")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(http_body_util::Full::new(Bytes::from(serde_json::to_vec(&cm).unwrap())))
            .unwrap();
        let resp = client.call(req).await.unwrap();
        assert_eq!(resp.status(), http::StatusCode::CREATED);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let created: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(created["metadata"]["managedFields"][0]["manager"], "loop-test");
        server.shutdown().await;
    }
}
