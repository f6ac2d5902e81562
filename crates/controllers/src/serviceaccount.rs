//! The service account controller: every active namespace has a `default`
//! ServiceAccount, made when the namespace appears and made again if deleted
//! (upstream's `pkg/controller/serviceaccount` serviceaccounts-controller).

use crate::Error;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

/// The service accounts every namespace gets.
pub const DEFAULT: &str = "default";

/// The cause the API server gives when refusing content in a terminating namespace.
const NAMESPACE_TERMINATING: &str = "NamespaceTerminating";

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Terminating, or the account is there.
    Nothing,
    /// Active and missing its account: create it.
    Create,
}

/// Whether a namespace is active: not being deleted, so content may be made in it.
pub fn is_active(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_none()
        && ns.status.as_ref().and_then(|s| s.phase.as_deref()).is_none_or(|p| p == "Active")
}

/// Decides from the namespace and whether its `default` account exists.
pub fn decide(ns: &Namespace, has_default: bool) -> Decision {
    if is_active(ns) && !has_default { Decision::Create } else { Decision::Nothing }
}

/// The account to create in `namespace`.
pub fn default_account(namespace: &str) -> ServiceAccount {
    ServiceAccount {
        metadata: ObjectMeta { name: Some(DEFAULT.into()), namespace: Some(namespace.into()), ..Default::default() },
        ..Default::default()
    }
}

/// Whether a create failed only because the namespace is going away, which the
/// namespace's deletion makes moot.
fn namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s)
        if s.details.as_ref().is_some_and(|d| d.causes.iter().any(|c| c.reason == NAMESPACE_TERMINATING)))
}

struct Ctx {
    client: Client,
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let name = ns.name_any();
    let accounts: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &name);
    let has_default = accounts.get_metadata_opt(DEFAULT).await?.is_some();
    if decide(&ns, has_default) == Decision::Nothing {
        return Ok(Action::await_change());
    }
    match accounts.create(&PostParams::default(), &default_account(&name)).await {
        Ok(_) => tracing::info!(namespace = %name, "created default service account"),
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) if namespace_terminating(&e) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Action::await_change())
}

fn error_policy(_ns: Arc<Namespace>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %err, "service account reconcile failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

pub async fn run(client: Client) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let accounts: Api<ServiceAccount> = Api::all(client.clone());
    // Only the accounts we make matter; a deleted one sends its namespace round again.
    let only_default = watcher::Config::default().fields(&format!("metadata.name={DEFAULT}"));
    Controller::new(namespaces, watcher::Config::default())
        .watches(accounts, only_default, |sa| sa.namespace().map(|ns| ObjectRef::new(&ns)))
        .run(reconcile, error_policy, Arc::new(Ctx { client }))
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NamespaceStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ns(phase: Option<&str>, deleting: bool) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some("team".into()),
                deletion_timestamp: deleting.then_some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)),
                ..Default::default()
            },
            status: Some(NamespaceStatus { phase: phase.map(str::to_string), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn an_active_namespace_without_its_account_gets_one() {
        assert_eq!(decide(&ns(Some("Active"), false), false), Decision::Create);
        assert_eq!(decide(&ns(None, false), false), Decision::Create);
        assert_eq!(decide(&ns(Some("Active"), false), true), Decision::Nothing);
    }

    #[test]
    fn a_terminating_namespace_gets_nothing() {
        assert_eq!(decide(&ns(Some("Terminating"), true), false), Decision::Nothing);
        assert_eq!(decide(&ns(Some("Active"), true), false), Decision::Nothing);
    }

    #[test]
    fn the_account_is_named_default_in_its_namespace() {
        let sa = default_account("team");
        assert_eq!(sa.metadata.name.as_deref(), Some("default"));
        assert_eq!(sa.metadata.namespace.as_deref(), Some("team"));
        assert_eq!(serde_json_fields(&sa), vec!["metadata"]);
    }

    fn serde_json_fields(sa: &ServiceAccount) -> Vec<String> {
        let v = serde_json::to_value(sa).unwrap_or_default();
        v.as_object()
            .map(|o| o.keys().filter(|k| *k != "apiVersion" && *k != "kind").cloned().collect())
            .unwrap_or_default()
    }

    #[test]
    fn only_namespace_terminating_refusals_are_ignored() {
        let status = |reason: &str| {
            kube::Error::Api(
                kube::core::Status::failure("forbidden", "Forbidden")
                    .with_code(403)
                    .with_details(kube::core::response::StatusDetails {
                        name: "default".into(),
                        group: String::new(),
                        kind: "serviceaccounts".into(),
                        uid: String::new(),
                        causes: vec![kube::core::response::StatusCause {
                            reason: reason.into(),
                            message: String::new(),
                            field: "metadata.namespace".into(),
                        }],
                        retry_after_seconds: 0,
                    })
                    .boxed(),
            )
        };
        assert!(namespace_terminating(&status("NamespaceTerminating")));
        assert!(!namespace_terminating(&status("Other")));
    }
}
