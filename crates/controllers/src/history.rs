//! ControllerRevision history, shared by the DaemonSet and StatefulSet controllers
//! (upstream's `pkg/controller/history`).
//!
//! A revision is a ControllerRevision named `<owner>-<hash>` whose `data` is a strategic
//! merge patch that puts a pod template back: `{"spec":{"template":{…,"$patch":"replace"}}}`,
//! and whose `revision` number orders it among its owner's revisions. A template seen
//! before is not stored twice: the old revision is renumbered instead, which is how a
//! rollback (`kubectl rollout undo`) reuses history. `kubectl rollout history ds/x` and
//! `sts/x` list these objects by the owner's selector and controller reference.

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("api request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("cannot encode a pod template: {0}")]
    Encode(String),
    #[error("bad revision: {0}")]
    Revision(String),
}

/// The label a DaemonSet's or StatefulSet's pods and revisions carry with their
/// revision (`apps.ControllerRevisionHashLabelKey`).
pub const CONTROLLER_REVISION_HASH_LABEL: &str = "controller-revision-hash";

/// The label holding the hash of a revision's data (`history.ControllerRevisionHashLabel`).
pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";

/// Upstream's `rand.SafeEncodeString` alphabet: no vowels, no confusable digits, so a
/// hash never spells a word.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Encodes a string over the safe alphabet, byte by byte.
pub fn safe_encode(s: &str) -> String {
    s.bytes().map(|b| SAFE_ALPHABET[b as usize % SAFE_ALPHABET.len()] as char).collect()
}

/// 32-bit FNV-1 (Go's `fnv.New32`).
pub fn fnv32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(2_166_136_261u32, |h, b| h.wrapping_mul(16_777_619) ^ u32::from(*b))
}

/// 32-bit FNV-1a (Go's `fnv.New32a`).
pub fn fnv32a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(2_166_136_261u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(16_777_619))
}

/// The hash of a pod template plus a collision count, as a safe string (upstream's
/// `controller.ComputeHash`, which DaemonSets use for revision names and pod labels).
/// Upstream hashes Go's printed struct; we hash the template's canonical JSON (keys
/// sorted), so names differ from a Go cluster's but are as stable.
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> Result<String, Error> {
    let value = serde_json::to_value(template).map_err(|e| Error::Encode(e.to_string()))?;
    let mut bytes = serde_json::to_vec(&value).map_err(|e| Error::Encode(e.to_string()))?;
    if let Some(count) = collision_count {
        // Go writes the count as a little-endian uint32 into an 8-byte buffer.
        let mut buf = [0u8; 8];
        buf[..4].copy_from_slice(&(count as u32).to_le_bytes());
        bytes.extend_from_slice(&buf);
    }
    Ok(safe_encode(&fnv32a(&bytes).to_string()))
}

/// The hash of a revision's data with an optional probe (upstream's
/// `HashControllerRevision`, used for StatefulSet revision names).
pub fn revision_hash(data: &Value, probe: Option<i32>) -> Result<String, Error> {
    let mut bytes = serde_json::to_vec(data).map_err(|e| Error::Encode(e.to_string()))?;
    if let Some(p) = probe {
        bytes.extend_from_slice(p.to_string().as_bytes());
    }
    Ok(safe_encode(&fnv32(&bytes).to_string()))
}

/// `<prefix>-<hash>`, the prefix cut to 223 bytes so the name fits in 253.
pub fn revision_name(prefix: &str, hash: &str) -> String {
    let mut cut = prefix.len().min(223);
    while !prefix.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{hash}", &prefix[..cut])
}

/// The patch a revision stores: it replaces the owner's pod template wholesale.
pub fn template_patch(template: &PodTemplateSpec) -> Result<Value, Error> {
    let mut t = serde_json::to_value(template).map_err(|e| Error::Encode(e.to_string()))?;
    match t.as_object_mut() {
        Some(map) => {
            map.insert("$patch".into(), json!("replace"));
        }
        None => t = json!({"$patch": "replace"}),
    }
    Ok(json!({"spec": {"template": t}}))
}

/// The pod template a revision restores (upstream applies the stored patch to the owner;
/// the patch replaces the whole template, so that is the template it carries).
pub fn template_of(revision: &ControllerRevision) -> Result<PodTemplateSpec, Error> {
    let name = revision.metadata.name.clone().unwrap_or_default();
    let mut t = revision
        .data
        .as_ref()
        .and_then(|d| d.0.pointer("/spec/template"))
        .cloned()
        .ok_or_else(|| Error::Revision(format!("revision {name} holds no pod template")))?;
    if let Some(map) = t.as_object_mut() {
        map.remove("$patch");
    }
    serde_json::from_value(t).map_err(|e| Error::Revision(format!("revision {name}: {e}")))
}

/// Whether a revision stores exactly this data (compared as JSON values, so key order
/// and whitespace do not matter).
pub fn data_equals(revision: &ControllerRevision, data: &Value) -> bool {
    revision.data.as_ref().is_some_and(|d| &d.0 == data)
}

/// Upstream's `EqualRevision`: differing hash labels settle it, else the data decides.
pub fn equal_revision(a: &ControllerRevision, b: &ControllerRevision) -> bool {
    let hash = |r: &ControllerRevision| r.metadata.labels.as_ref().and_then(|l| l.get(HASH_LABEL).cloned());
    if let (Some(ha), Some(hb)) = (hash(a), hash(b))
        && ha != hb
    {
        return false;
    }
    match (&a.data, &b.data) {
        (Some(x), Some(y)) => x.0 == y.0,
        (None, None) => true,
        _ => false,
    }
}

/// Orders revisions by number, then creation time, then name (upstream's `byRevision`).
pub fn sort_revisions(revisions: &mut [ControllerRevision]) {
    revisions.sort_by(|a, b| {
        a.revision
            .cmp(&b.revision)
            .then_with(|| {
                let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
                let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
                ta.cmp(&tb)
            })
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

/// The number after the highest of sorted revisions; 1 for none.
pub fn next_revision(sorted: &[ControllerRevision]) -> i64 {
    sorted.last().map_or(1, |r| r.revision + 1)
}

/// The highest revision number; 0 for none.
pub fn max_revision<'a>(revisions: impl IntoIterator<Item = &'a ControllerRevision>) -> i64 {
    revisions.into_iter().map(|r| r.revision).max().unwrap_or(0)
}

/// A new revision owned by `owner_ref`, labelled with the template's labels plus
/// `extra_labels`, carrying the owner's annotations (so `kubernetes.io/change-cause`
/// shows in `kubectl rollout history`). The caller names it.
pub fn new_revision(
    namespace: &str,
    owner: &ObjectMeta,
    owner_ref: k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    template: &PodTemplateSpec,
    extra_labels: &[(&str, &str)],
    revision: i64,
) -> Result<ControllerRevision, Error> {
    let mut labels = template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
    for (k, v) in extra_labels {
        labels.insert((*k).to_string(), (*v).to_string());
    }
    Ok(ControllerRevision {
        metadata: ObjectMeta {
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            annotations: owner.annotations.clone().filter(|a| !a.is_empty()),
            owner_references: Some(vec![owner_ref]),
            ..Default::default()
        },
        data: Some(RawExtension(template_patch(template)?)),
        revision,
    })
}

/// What to do so that an owner's current template has a revision (the StatefulSet's
/// `getStatefulSetRevisions` decision, without I/O).
#[derive(Debug, PartialEq, Eq)]
pub enum UpdateRevision {
    /// The newest revision already holds the template.
    Newest,
    /// An older revision holds it: renumber that one (by index in the sorted list) to
    /// the next number, which is a rollback.
    Renumber(usize, i64),
    /// No revision holds it: create one.
    Create,
}

/// Decides how `candidate` (the owner's current template, numbered as the next
/// revision) enters the sorted history.
pub fn choose_update_revision(sorted: &[ControllerRevision], candidate: &ControllerRevision) -> UpdateRevision {
    let equal: Vec<usize> = (0..sorted.len()).filter(|i| equal_revision(&sorted[*i], candidate)).collect();
    match (equal.last(), sorted.last()) {
        (Some(&i), Some(newest)) if equal_revision(newest, &sorted[i]) => UpdateRevision::Newest,
        (Some(&i), _) => UpdateRevision::Renumber(i, candidate.revision),
        (None, _) => UpdateRevision::Create,
    }
}

/// Which revisions to delete: the oldest of `sorted` that are not live, `excess` of them
/// at most. Each controller decides what is live and how many are in excess.
pub fn to_prune(
    sorted: &[ControllerRevision],
    excess: usize,
    live: impl Fn(&ControllerRevision) -> bool,
) -> Vec<&ControllerRevision> {
    sorted.iter().filter(|r| !live(r)).take(excess).collect()
}

/// Creates a StatefulSet-style revision named `<owner>-<hash of data and collision
/// count>`. A name taken by different data bumps `collision_count` and tries again; a
/// name taken by the same data is that revision (upstream's `CreateControllerRevision`).
pub async fn create_with_probe(
    api: &Api<ControllerRevision>,
    owner_name: &str,
    revision: &ControllerRevision,
    collision_count: &mut i32,
) -> Result<ControllerRevision, Error> {
    let data = revision.data.as_ref().map(|d| d.0.clone()).unwrap_or(Value::Null);
    // A bound keeps a pathological run of collisions from spinning forever.
    for _ in 0..100 {
        let hash = revision_hash(&data, Some(*collision_count))?;
        let mut cr = revision.clone();
        cr.metadata.name = Some(revision_name(owner_name, &hash));
        cr.metadata.labels.get_or_insert_with(Default::default).insert(HASH_LABEL.to_string(), hash);
        match api.create(&PostParams::default(), &cr).await {
            Ok(created) => return Ok(created),
            Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => {
                let name = cr.metadata.name.clone().unwrap_or_default();
                let existing = api.get(&name).await?;
                if data_equals(&existing, &data) {
                    return Ok(existing);
                }
                *collision_count += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Revision(format!("too many name collisions creating a revision of {owner_name}")))
}

/// Renumbers a revision (a rollback to it, or a newer template that equals it).
pub async fn renumber(
    api: &Api<ControllerRevision>,
    revision: &ControllerRevision,
    number: i64,
) -> Result<ControllerRevision, Error> {
    if revision.revision == number {
        return Ok(revision.clone());
    }
    let name = revision.metadata.name.clone().unwrap_or_default();
    let patch = json!({"revision": number});
    Ok(api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use std::collections::BTreeMap;

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container { name: "c".into(), image: Some(image.into()), ..Default::default() }],
                ..Default::default()
            }),
        }
    }

    fn rev(name: &str, number: i64, image: &str) -> ControllerRevision {
        ControllerRevision {
            metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
            data: Some(RawExtension(template_patch(&template(image)).unwrap())),
            revision: number,
        }
    }

    #[test]
    fn fnv_matches_the_reference_vectors() {
        // Published FNV test vectors.
        assert_eq!(fnv32(b""), 0x811c9dc5);
        assert_eq!(fnv32a(b""), 0x811c9dc5);
        assert_eq!(fnv32(b"a"), 0x050c5d7e);
        assert_eq!(fnv32a(b"a"), 0xe40c292c);
        assert_eq!(fnv32a(b"foobar"), 0xbf9cf968);
        assert_eq!(fnv32(b"foobar"), 0x31f0b262);
    }

    #[test]
    fn safe_encoding_uses_no_vowels() {
        let s = safe_encode("1234567890");
        assert_eq!(s.len(), 10);
        assert!(s.bytes().all(|b| SAFE_ALPHABET.contains(&b)), "{s}");
        // '0' is byte 48, 48 % 27 = 21 -> '4'.
        assert_eq!(safe_encode("0"), "4");
    }

    #[test]
    fn hashes_follow_the_template_and_the_collision_count() {
        let a = compute_hash(&template("nginx:1"), None).unwrap();
        assert_eq!(a, compute_hash(&template("nginx:1"), None).unwrap());
        assert_ne!(a, compute_hash(&template("nginx:2"), None).unwrap());
        assert_ne!(a, compute_hash(&template("nginx:1"), Some(1)).unwrap());
        let data = template_patch(&template("nginx:1")).unwrap();
        assert_ne!(revision_hash(&data, Some(0)).unwrap(), revision_hash(&data, Some(1)).unwrap());
    }

    #[test]
    fn names_fit_in_253_bytes() {
        assert_eq!(revision_name("web", "abc"), "web-abc");
        let long = "x".repeat(300);
        assert_eq!(revision_name(&long, "0123456789").len(), 223 + 11);
    }

    #[test]
    fn the_patch_replaces_the_template_and_restores_it() {
        let data = template_patch(&template("nginx:1")).unwrap();
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        assert_eq!(data["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1");
        let r = rev("web-1", 1, "nginx:1");
        assert_eq!(template_of(&r).unwrap(), template("nginx:1"));
        let empty = ControllerRevision { data: None, ..r };
        assert!(matches!(template_of(&empty), Err(Error::Revision(_))));
    }

    #[test]
    fn revisions_sort_by_number_then_name() {
        let mut v = vec![rev("c", 3, "a"), rev("b", 1, "a"), rev("a", 1, "a")];
        sort_revisions(&mut v);
        let names: Vec<_> = v.iter().map(|r| r.metadata.name.clone().unwrap()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(next_revision(&v), 4);
        assert_eq!(next_revision(&[]), 1);
        assert_eq!(max_revision(&v), 3);
    }

    #[test]
    fn equal_templates_are_one_revision() {
        let a = rev("a", 1, "nginx:1");
        let b = rev("b", 2, "nginx:1");
        let c = rev("c", 3, "nginx:2");
        assert!(equal_revision(&a, &b));
        assert!(!equal_revision(&a, &c));
        let mut labelled = b.clone();
        labelled.metadata.labels = Some(BTreeMap::from([(HASH_LABEL.to_string(), "x".to_string())]));
        let mut other = a.clone();
        other.metadata.labels = Some(BTreeMap::from([(HASH_LABEL.to_string(), "y".to_string())]));
        assert!(!equal_revision(&labelled, &other), "differing hash labels decide");
    }

    #[test]
    fn an_update_reuses_renumbers_or_creates() {
        let history = vec![rev("a", 1, "nginx:1"), rev("b", 2, "nginx:2")];
        // The newest revision holds the template: nothing changes.
        assert_eq!(choose_update_revision(&history, &rev("new", 3, "nginx:2")), UpdateRevision::Newest);
        // An older one does: a rollback renumbers it.
        assert_eq!(choose_update_revision(&history, &rev("new", 3, "nginx:1")), UpdateRevision::Renumber(0, 3));
        // A new template gets a new revision.
        assert_eq!(choose_update_revision(&history, &rev("new", 3, "nginx:3")), UpdateRevision::Create);
        assert_eq!(choose_update_revision(&[], &rev("new", 1, "nginx:3")), UpdateRevision::Create);
    }

    #[test]
    fn pruning_skips_live_revisions_and_keeps_the_newest() {
        let history = vec![rev("a", 1, "1"), rev("b", 2, "2"), rev("c", 3, "3"), rev("d", 4, "4")];
        let gone: Vec<_> = to_prune(&history, 2, |r| r.metadata.name.as_deref() == Some("a"))
            .iter()
            .map(|r| r.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(gone, ["b", "c"]);
        assert!(to_prune(&history, 0, |_| false).is_empty());
    }

    #[test]
    fn new_revisions_carry_labels_owner_and_annotations() {
        let owner = ObjectMeta {
            name: Some("web".into()),
            annotations: Some(BTreeMap::from([("kubernetes.io/change-cause".to_string(), "why".to_string())])),
            ..Default::default()
        };
        let oref = k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "apps/v1".into(),
            kind: "StatefulSet".into(),
            name: "web".into(),
            uid: "u".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        let r = new_revision("ns", &owner, oref, &template("nginx:1"), &[(CONTROLLER_REVISION_HASH_LABEL, "h")], 7)
            .unwrap();
        let labels = r.metadata.labels.unwrap();
        assert_eq!(labels["app"], "web");
        assert_eq!(labels[CONTROLLER_REVISION_HASH_LABEL], "h");
        assert_eq!(r.metadata.annotations.unwrap()["kubernetes.io/change-cause"], "why");
        assert_eq!(r.revision, 7);
        assert_eq!(r.metadata.owner_references.unwrap()[0].uid, "u");
    }
}
