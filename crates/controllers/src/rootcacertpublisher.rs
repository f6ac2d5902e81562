//! The root CA publisher: every active namespace has a `kube-root-ca.crt` ConfigMap
//! holding the cluster CA (`ca.crt`), so that pods can verify the API server through
//! the projected `kube-api-access-*` volume; it is made when the namespace appears and
//! put back if deleted or edited (upstream's `pkg/controller/certificates/rootcacertpublisher`).

use crate::Error;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub use api::rootca::NAME;
use api::rootca::{DESCRIPTION, DESCRIPTION_ANNOTATION, KEY};

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Terminating, or the ConfigMap already says the right thing.
    Nothing,
    Create,
    /// It exists but its CA or description differs: put ours back.
    Update,
}

/// Decides from the namespace and its current ConfigMap, if any.
pub fn decide(ns: &Namespace, current: Option<&ConfigMap>, ca_pem: &str) -> Decision {
    if !crate::serviceaccount::is_active(ns) {
        return Decision::Nothing;
    }
    let Some(cm) = current else { return Decision::Create };
    let data_ok = cm.data.as_ref().is_some_and(|d| d.len() == 1 && d.get(KEY).map(String::as_str) == Some(ca_pem));
    let described = cm.annotations().get(DESCRIPTION_ANNOTATION).map(String::as_str) == Some(DESCRIPTION);
    if data_ok && described { Decision::Nothing } else { Decision::Update }
}

/// The ConfigMap to publish in `namespace`.
pub fn config_map(namespace: &str, ca_pem: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(namespace.into()),
            annotations: Some(BTreeMap::from([(DESCRIPTION_ANNOTATION.to_string(), DESCRIPTION.to_string())])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(KEY.to_string(), ca_pem.to_string())])),
        ..Default::default()
    }
}

/// One merge patch that puts our CA and description back and removes keys others added.
pub fn update_patch(current: Option<&ConfigMap>, ca_pem: &str) -> serde_json::Value {
    let mut data = serde_json::Map::new();
    for key in current.and_then(|cm| cm.data.as_ref()).into_iter().flat_map(|d| d.keys()) {
        data.insert(key.clone(), serde_json::Value::Null);
    }
    data.insert(KEY.into(), ca_pem.into());
    serde_json::json!({"metadata": {"annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}}, "data": data})
}

struct Ctx {
    client: Client,
    ca_pem: String,
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let name = ns.name_any();
    let maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &name);
    let current = maps.get_opt(NAME).await?;
    let wanted = config_map(&name, &ctx.ca_pem);
    let result = match decide(&ns, current.as_ref(), &ctx.ca_pem) {
        Decision::Nothing => return Ok(Action::await_change()),
        Decision::Create => maps.create(&PostParams::default(), &wanted).await.map(|_| ()),
        Decision::Update => {
            let patch = update_patch(current.as_ref(), &ctx.ca_pem);
            maps.patch(NAME, &PatchParams::default(), &Patch::Merge(&patch)).await.map(|_| ())
        }
    };
    match result {
        Ok(()) => {}
        // Made meanwhile, or the namespace is going away: the watches bring it back.
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 403 || s.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Action::await_change())
}

fn error_policy(_ns: Arc<Namespace>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %err, "publishing the root CA failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// Runs until the process ends, publishing `ca_pem`.
pub async fn run(client: Client, ca_pem: String) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let maps: Api<ConfigMap> = Api::all(client.clone());
    // Only our ConfigMap matters; a change to it sends its namespace round again.
    let ours = watcher::Config::default().fields(&format!("metadata.name={NAME}"));
    Controller::new(namespaces, watcher::Config::default())
        .watches(maps, ours, |cm| cm.namespace().map(|ns| ObjectRef::new(&ns)))
        .run(reconcile, error_policy, Arc::new(Ctx { client, ca_pem }))
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NamespaceStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n";

    fn ns(phase: &str) -> Namespace {
        Namespace {
            metadata: ObjectMeta { name: Some("team".into()), ..Default::default() },
            status: Some(NamespaceStatus { phase: Some(phase.into()), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn active_namespaces_get_the_ca_and_edits_are_undone() {
        assert_eq!(decide(&ns("Active"), None, CA), Decision::Create);
        let published = config_map("team", CA);
        assert_eq!(decide(&ns("Active"), Some(&published), CA), Decision::Nothing);
        let mut edited = published.clone();
        edited.data.as_mut().unwrap().insert("extra".into(), "x".into());
        assert_eq!(decide(&ns("Active"), Some(&edited), CA), Decision::Update);
        let mut rotated = published.clone();
        rotated.data.as_mut().unwrap().insert(KEY.into(), "old".into());
        assert_eq!(decide(&ns("Active"), Some(&rotated), CA), Decision::Update);
        let mut undescribed = published;
        undescribed.metadata.annotations = None;
        assert_eq!(decide(&ns("Active"), Some(&undescribed), CA), Decision::Update);
        let patch = update_patch(Some(&edited), CA);
        assert_eq!(patch["data"], serde_json::json!({"ca.crt": CA, "extra": null}));
    }

    #[test]
    fn terminating_namespaces_are_left_alone() {
        assert_eq!(decide(&ns("Terminating"), None, CA), Decision::Nothing);
        let mut deleting = ns("Active");
        deleting.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
        assert_eq!(decide(&deleting, None, CA), Decision::Nothing);
    }

    #[test]
    fn the_config_map_is_named_and_described_as_upstream() {
        let cm = config_map("team", CA);
        assert_eq!(cm.metadata.name.as_deref(), Some("kube-root-ca.crt"));
        assert_eq!(cm.data.unwrap()[KEY], CA);
        assert!(cm.metadata.annotations.unwrap()[DESCRIPTION_ANNOTATION].starts_with("Contains a CA bundle"));
    }
}
