//! Upstream's ServiceAccount admission plugin, for new pods: the pod runs as
//! `default` unless it names a service account, that account must exist, and unless
//! automounting is off (on the pod, or else on the account) every container gets the
//! `kube-api-access-XXXXX` projected volume at
//! `/var/run/secrets/kubernetes.io/serviceaccount`: a bound token, the cluster CA
//! (`kube-root-ca.crt`) and the namespace.
//!
//! Two things upstream leaves to kube-controller-manager are done here on demand, so
//! a pod never waits on them: the `default` account (the serviceaccounts controller
//! makes it moments after the namespace) and the `kube-root-ca.crt` ConfigMap (the
//! root-ca-cert-publisher's). Upstream instead retries the lookup of `default` for up
//! to two seconds.

use crate::Ctx;
use api::{ApiError, Resource};
use serde_json::{Value, json};

pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
pub const VOLUME_PREFIX: &str = "kube-api-access-";
pub use api::rootca::NAME as ROOT_CA_CONFIG_MAP;
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// The projected volume upstream's `TokenVolumeSource` describes, defaults spelled out.
pub fn token_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": super::WARN_ONLY_EXPIRATION_SECONDS, "path": "token"}},
                {"configMap": {"name": ROOT_CA_CONFIG_MAP, "items": [{"key": api::rootca::KEY, "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [
                    {"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}
                ]}},
            ],
        },
    })
}

fn automount(pod: &Value, sa: &Value) -> bool {
    match pod.pointer("/spec/automountServiceAccountToken").and_then(Value::as_bool) {
        Some(b) => b,
        None => sa.get("automountServiceAccountToken").and_then(Value::as_bool).unwrap_or(true),
    }
}

/// Mounts the token volume into every init and regular container that has nothing
/// at the mount path yet, adding the volume (named with `suffix`) if one needs it.
/// Returns the volume's name when one was added.
pub fn mount_token(pod: &mut Value, suffix: &str) -> Option<String> {
    let existing = pod.pointer("/spec/volumes").and_then(Value::as_array).and_then(|vs| {
        vs.iter()
            .filter_map(|v| v.get("name").and_then(Value::as_str))
            .find(|n| n.starts_with(VOLUME_PREFIX))
            .map(str::to_string)
    });
    let name = existing.clone().unwrap_or_else(|| format!("{VOLUME_PREFIX}{suffix}"));
    let mount = json!({"name": name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
    let mut needed = false;
    for kind in ["initContainers", "containers"] {
        let Some(containers) = pod.pointer_mut(&format!("/spec/{kind}")).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in containers {
            let taken = c.get("volumeMounts").and_then(Value::as_array).is_some_and(|ms| {
                ms.iter().any(|m| m.get("mountPath").and_then(Value::as_str) == Some(TOKEN_MOUNT_PATH))
            });
            if taken || !c.is_object() {
                continue;
            }
            if !c.get("volumeMounts").is_some_and(Value::is_array) {
                c["volumeMounts"] = json!([]);
            }
            if let Some(ms) = c["volumeMounts"].as_array_mut() {
                ms.push(mount.clone());
                needed = true;
            }
        }
    }
    if !needed || existing.is_some() {
        return None;
    }
    let spec = &mut pod["spec"];
    if !spec.get("volumes").is_some_and(Value::is_array) {
        spec["volumes"] = json!([]);
    }
    spec["volumes"].as_array_mut()?.push(token_volume(&name));
    Some(name)
}

fn resource(plural: &str) -> Result<&'static Resource, ApiError> {
    api::registry::find("", "v1", plural).ok_or_else(|| ApiError::internal(format!("{plural} are not served")))
}

/// Creates a namespaced object unless it exists (a dry run only pretends to).
async fn ensure(
    ctx: &Ctx,
    res: &'static Resource,
    namespace: &str,
    mut obj: Value,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
    let key = res.storage_key(Some(namespace), &name);
    if let Some((existing, _)) = ctx.objects.get(res, &key).await? {
        return Ok(existing);
    }
    if dry_run {
        return Ok(obj);
    }
    obj["metadata"]["namespace"] = json!(namespace);
    obj["metadata"]["uid"] = json!(crate::rest::new_uid());
    obj["metadata"]["creationTimestamp"] = json!(api::time::now_rfc3339());
    api::defaults::apply(res, &mut obj);
    if let Some(schema) = crate::rest::schema_of(res) {
        let now = api::time::now_rfc3339();
        crate::fieldmanager::update(None, &mut obj, "kube-apiserver", None, &res.api_version(), &now, schema);
    }
    match ctx.objects.create(res, &key, obj).await {
        Ok(v) => Ok(v),
        Err(e) if e.reason == "AlreadyExists" => {
            Ok(ctx.objects.get(res, &key).await?.map(|(v, _)| v).unwrap_or_default())
        }
        Err(e) => Err(e),
    }
}

fn random_suffix() -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut b = [0u8; 5];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).unwrap_or_default();
    b.iter().map(|x| ALPHANUMS[*x as usize % ALPHANUMS.len()] as char).collect()
}

/// The plugin's work on a new pod.
pub async fn admit_pod(ctx: &Ctx, pod: &mut Value, dry_run: bool) -> Result<(), ApiError> {
    let mirror = pod.pointer("/metadata/annotations").and_then(|a| a.get(MIRROR_ANNOTATION)).is_some();
    if mirror || !pod.get("spec").is_some_and(Value::is_object) {
        return Ok(());
    }
    let namespace = pod.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default().to_string();
    let pod_name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
    let mut sa_name = pod.pointer("/spec/serviceAccountName").and_then(Value::as_str).unwrap_or_default().to_string();
    if sa_name.is_empty() {
        sa_name = DEFAULT_SERVICE_ACCOUNT.to_string();
        pod["spec"]["serviceAccountName"] = json!(sa_name);
    }
    // The deprecated alias the v1 wire form always carries beside it.
    pod["spec"]["serviceAccount"] = json!(sa_name);
    let sas = resource("serviceaccounts")?;
    let sa = if sa_name == DEFAULT_SERVICE_ACCOUNT {
        let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": DEFAULT_SERVICE_ACCOUNT}});
        ensure(ctx, sas, &namespace, sa, dry_run).await?
    } else {
        match ctx.objects.get(sas, &sas.storage_key(Some(&namespace), &sa_name)).await? {
            Some((sa, _)) => sa,
            None => {
                return Err(ApiError::forbidden(format!(
                    "pods \"{pod_name}\" is forbidden: error looking up service account {namespace}/{sa_name}: serviceaccount \"{sa_name}\" not found"
                )));
            }
        }
    };
    if pod.pointer("/spec/imagePullSecrets").and_then(Value::as_array).is_none_or(|a| a.is_empty())
        && let Some(secrets) = sa.get("imagePullSecrets").and_then(Value::as_array).filter(|a| !a.is_empty())
    {
        pod["spec"]["imagePullSecrets"] = Value::Array(secrets.clone());
    }
    if automount(pod, &sa) && mount_token(pod, &random_suffix()).is_some() {
        use api::rootca::{DESCRIPTION, DESCRIPTION_ANNOTATION, KEY};
        let cms = resource("configmaps")?;
        // On every pod create: that the ConfigMap is there is a read of its key, not
        // a parse of it.
        let key = cms.storage_key(Some(&namespace), ROOT_CA_CONFIG_MAP);
        if ctx.objects.get_stored(&key).await?.is_none() {
            let cm = json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": ROOT_CA_CONFIG_MAP, "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}},
                "data": {KEY: ctx.ca_pem},
            });
            ensure(ctx, cms, &namespace, cm, dry_run).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {
            "initContainers": [{"name": "i"}],
            "containers": [
                {"name": "a"},
                {"name": "b", "volumeMounts": [{"name": "mine", "mountPath": TOKEN_MOUNT_PATH}]},
            ],
        }})
    }

    #[test]
    fn every_container_without_its_own_gets_the_token_volume() {
        let mut p = pod();
        assert_eq!(mount_token(&mut p, "abcde").as_deref(), Some("kube-api-access-abcde"));
        let mount = json!({"name": "kube-api-access-abcde", "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
        assert_eq!(p["spec"]["initContainers"][0]["volumeMounts"], json!([mount]));
        assert_eq!(p["spec"]["containers"][0]["volumeMounts"], json!([mount]));
        assert_eq!(p["spec"]["containers"][1]["volumeMounts"].as_array().unwrap().len(), 1, "its own mount stays");
        assert_eq!(p["spec"]["volumes"], json!([token_volume("kube-api-access-abcde")]));
        let sources = &p["spec"]["volumes"][0]["projected"]["sources"];
        assert_eq!(sources[0]["serviceAccountToken"]["expirationSeconds"], 3607);
        assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
        // Again (an existing kube-api-access volume is reused, nothing is added twice).
        let before = p.clone();
        assert_eq!(mount_token(&mut p, "zzzzz"), None);
        assert_eq!(p, before);
    }

    #[test]
    fn nothing_is_added_when_every_container_has_its_own() {
        let mut p = json!({"spec": {"containers": [{"name": "a", "volumeMounts": [{"name": "x", "mountPath": TOKEN_MOUNT_PATH}]}]}});
        assert_eq!(mount_token(&mut p, "abcde"), None);
        assert!(p["spec"].get("volumes").is_none());
    }

    #[test]
    fn automount_follows_the_pod_then_the_account() {
        let sa_off = json!({"automountServiceAccountToken": false});
        assert!(automount(&json!({"spec": {}}), &json!({})));
        assert!(!automount(&json!({"spec": {}}), &sa_off));
        assert!(automount(&json!({"spec": {"automountServiceAccountToken": true}}), &sa_off));
        assert!(!automount(&json!({"spec": {"automountServiceAccountToken": false}}), &json!({})));
        assert_eq!(random_suffix().len(), 5);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dry_run_creates_neither_the_account_nor_the_root_ca() {
        let (_dir, server) = crate::test_server().await;
        let ctx = &server.ctx;
        let (sas, cms) = (resource("serviceaccounts").unwrap(), resource("configmaps").unwrap());
        let sa_key = sas.storage_key(Some("fresh"), DEFAULT_SERVICE_ACCOUNT);
        let cm_key = cms.storage_key(Some("fresh"), ROOT_CA_CONFIG_MAP);
        let new_pod =
            || json!({"metadata": {"name": "p", "namespace": "fresh"}, "spec": {"containers": [{"name": "c"}]}});

        let mut dry = new_pod();
        admit_pod(ctx, &mut dry, true).await.unwrap();
        // The pod is admitted as it would be, token volume and all...
        assert_eq!(dry["spec"]["serviceAccountName"], "default");
        assert!(dry["spec"]["volumes"][0]["name"].as_str().unwrap().starts_with("kube-api-access-"));
        // ...but nothing is written.
        assert!(ctx.objects.get(sas, &sa_key).await.unwrap().is_none());
        assert!(ctx.objects.get(cms, &cm_key).await.unwrap().is_none());

        let mut real = new_pod();
        admit_pod(ctx, &mut real, false).await.unwrap();
        assert!(ctx.objects.get(sas, &sa_key).await.unwrap().is_some());
        assert!(ctx.objects.get(cms, &cm_key).await.unwrap().is_some());
    }
}
