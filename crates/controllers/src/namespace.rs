//! The namespace controller: a namespace being deleted is emptied of every namespaced
//! object, then its `kubernetes` finalizer is removed so the API server can delete it
//! (upstream's `pkg/controller/namespace`).

use crate::Error;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::discovery::{Discovery, Scope, verbs};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

/// The finalizer the namespace controller owns in `spec.finalizers`.
pub const FINALIZER: &str = "kubernetes";

/// What a namespace needs.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Alive, or already handed over to the API server: nothing to do.
    Nothing,
    /// Being deleted and still holding our finalizer: empty it, then finalize.
    EmptyAndFinalize,
}

/// Decides from the namespace alone.
pub fn decide(ns: &Namespace) -> Decision {
    let deleting = ns.metadata.deletion_timestamp.is_some();
    let ours = ns.spec.as_ref().and_then(|s| s.finalizers.as_ref()).is_some_and(|f| f.iter().any(|x| x == FINALIZER));
    if deleting && ours { Decision::EmptyAndFinalize } else { Decision::Nothing }
}

/// The namespace with our finalizer removed, as the `finalize` subresource takes it.
pub fn finalized(ns: &Namespace) -> Namespace {
    let mut out = ns.clone();
    if let Some(spec) = out.spec.as_mut()
        && let Some(f) = spec.finalizers.as_mut()
    {
        f.retain(|x| x != FINALIZER);
    }
    out
}

struct Ctx {
    client: Client,
}

/// Deletes everything in the namespace; returns how many objects are still there.
async fn delete_contents(client: &Client, ns: &str) -> Result<usize, Error> {
    let discovery = Discovery::new(client.clone()).run().await.map_err(|e| Error::Discovery(e.to_string()))?;
    let mut remaining = 0;
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if caps.scope != Scope::Namespaced || !caps.supports_operation(verbs::LIST) {
                continue;
            }
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
            if caps.supports_operation(verbs::DELETE_COLLECTION) {
                api.delete_collection(&DeleteParams::background(), &ListParams::default()).await?;
            }
            let left = api.list(&ListParams::default().limit(1)).await?;
            remaining += left.items.len();
        }
    }
    Ok(remaining)
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    match decide(&ns) {
        Decision::Nothing => Ok(Action::await_change()),
        Decision::EmptyAndFinalize => {
            let name = ns.name_any();
            let remaining = delete_contents(&ctx.client, &name).await?;
            if remaining > 0 {
                tracing::debug!(namespace = %name, remaining, "waiting for namespace contents to go");
                return Ok(Action::requeue(Duration::from_secs(1)));
            }
            let api: Api<Namespace> = Api::all(ctx.client.clone());
            api.replace_subresource("finalize", &name, &PostParams::default(), &finalized(&ns)).await?;
            tracing::info!(namespace = %name, "namespace emptied and finalized");
            Ok(Action::await_change())
        }
    }
}

fn error_policy(_ns: Arc<Namespace>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %err, "namespace reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

pub async fn run(client: Client) {
    let api: Api<Namespace> = Api::all(client.clone());
    Controller::new(api, watcher::Config::default())
        .run(reconcile, error_policy, Arc::new(Ctx { client }))
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NamespaceSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn ns(deleting: bool, finalizers: &[&str]) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some("x".into()),
                deletion_timestamp: deleting.then_some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)),
                ..Default::default()
            },
            spec: Some(NamespaceSpec { finalizers: Some(finalizers.iter().map(|s| s.to_string()).collect()) }),
            ..Default::default()
        }
    }

    #[test]
    fn only_deleting_namespaces_with_our_finalizer_are_emptied() {
        assert_eq!(decide(&ns(false, &["kubernetes"])), Decision::Nothing);
        assert_eq!(decide(&ns(true, &[])), Decision::Nothing);
        assert_eq!(decide(&ns(true, &["kubernetes"])), Decision::EmptyAndFinalize);
        let done = finalized(&ns(true, &["kubernetes", "other"]));
        assert_eq!(done.spec.unwrap().finalizers.unwrap(), vec!["other".to_string()]);
    }
}
