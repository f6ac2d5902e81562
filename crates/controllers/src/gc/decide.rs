//! What the delete and orphan workers do with one object, decided from plain data:
//! the object's latest metadata, what became of each owner it names, and what the
//! graph knows of its dependents. Also the patch bodies the workers send.

use super::graph::{FOREGROUND, ORPHAN};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_json::{Value, json};

/// What a lookup found for one ownerReference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerState {
    /// No object by that name, or one with another uid (a recreated owner does not adopt).
    Absent,
    /// The owner exists; `waiting` when it is being deleted in the foreground.
    Present { waiting: bool },
}

/// An object's ownerReferences sorted by what became of their owners.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Classified {
    /// Owners that exist and are not waiting for their dependents to go.
    pub solid: Vec<OwnerReference>,
    /// Owners that are gone.
    pub dangling: Vec<OwnerReference>,
    /// Owners being deleted in the foreground, waiting for their dependents.
    pub waiting: Vec<OwnerReference>,
}

pub fn classify(refs: &[OwnerReference], states: &[OwnerState]) -> Classified {
    let mut c = Classified::default();
    for (r, s) in refs.iter().zip(states) {
        match s {
            OwnerState::Absent => c.dangling.push(r.clone()),
            OwnerState::Present { waiting: true } => c.waiting.push(r.clone()),
            OwnerState::Present { waiting: false } => c.solid.push(r.clone()),
        }
    }
    c
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    Background,
    Foreground,
    Orphan,
}

impl Policy {
    pub fn as_kube(self) -> kube::api::PropagationPolicy {
        match self {
            Policy::Background => kube::api::PropagationPolicy::Background,
            Policy::Foreground => kube::api::PropagationPolicy::Foreground,
            Policy::Orphan => kube::api::PropagationPolicy::Orphan,
        }
    }
}

/// What to do with an object that names owners.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// An owner still holds it.
    Keep,
    /// An owner still holds it, but the references to these uids (owners gone, or
    /// waiting in the foreground) must go so they stop pointing at nothing or stop
    /// holding up the owner.
    RemoveOwnerRefs(Vec<String>),
    /// Garbage: delete it with `policy`; with `unblock_first`, first make its own
    /// references non-blocking, as a dependent of it may be waiting on it in turn.
    Delete { policy: Policy, unblock_first: bool },
}

/// Upstream's attemptToDeleteItem once the owners are classified.
///
/// `finalizers` are the object's own; `has_dependents` and `a_dependent_waits` come
/// from the graph (the latter: some dependent is itself deleting in the foreground).
pub fn decide(c: &Classified, finalizers: &[String], has_dependents: bool, a_dependent_waits: bool) -> Decision {
    if !c.solid.is_empty() {
        if c.dangling.is_empty() && c.waiting.is_empty() {
            return Decision::Keep;
        }
        let uids = c.dangling.iter().chain(&c.waiting).map(|r| r.uid.clone()).collect();
        return Decision::RemoveOwnerRefs(uids);
    }
    if !c.waiting.is_empty() && has_dependents {
        // An owner waits in the foreground and this object has dependents of its own:
        // delete those first too. A dependent that also waits could close a cycle, so
        // stop blocking (upstream's detection has false positives; so does this).
        return Decision::Delete { policy: Policy::Foreground, unblock_first: a_dependent_waits };
    }
    // No owner left: honour a propagation the object already asked for.
    let policy = if finalizers.iter().any(|f| f == ORPHAN) {
        Policy::Orphan
    } else if finalizers.iter().any(|f| f == FOREGROUND) {
        Policy::Foreground
    } else {
        Policy::Background
    };
    Decision::Delete { policy, unblock_first: false }
}

/// An owner deleting in the foreground: what its blocking dependents allow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForegroundStep {
    /// None left: drop `foregroundDeletion` so the API server deletes the owner.
    RemoveFinalizer,
    /// Check these dependents (those not themselves waiting on dependents).
    CheckDependents(Vec<String>),
}

/// `blocking` holds each blocking dependent's uid and whether it deletes in the foreground.
pub fn foreground_step(blocking: &[(String, bool)]) -> ForegroundStep {
    if blocking.is_empty() {
        return ForegroundStep::RemoveFinalizer;
    }
    ForegroundStep::CheckDependents(blocking.iter().filter(|(_, waits)| !waits).map(|(uid, _)| uid.clone()).collect())
}

/// Strategic merge patch removing the references to `owner_uids`; the object's uid
/// makes it a precondition, so a recreated object is left alone.
pub fn delete_owner_refs_strategic(uid: &str, owner_uids: &[String]) -> Value {
    let deletes: Vec<Value> = owner_uids.iter().map(|u| json!({"$patch": "delete", "uid": u})).collect();
    json!({"metadata": {"ownerReferences": deletes, "uid": uid}})
}

/// The JSON merge patch fallback for kinds without strategic merge: the whole list,
/// guarded by the resourceVersion it was computed from.
pub fn delete_owner_refs_merge(resource_version: &str, refs: &[OwnerReference], owner_uids: &[String]) -> Value {
    let kept: Vec<Value> = refs.iter().filter(|r| !owner_uids.contains(&r.uid)).map(reference_json).collect();
    json!({"metadata": {"resourceVersion": resource_version, "ownerReferences": kept}})
}

/// Strategic merge patch setting `blockOwnerDeletion: false` on every blocking reference.
pub fn unblock_strategic(uid: &str, refs: &[OwnerReference]) -> Value {
    let unblocked: Vec<Value> = refs
        .iter()
        .filter(|r| r.block_owner_deletion == Some(true))
        .map(|r| {
            let mut v = reference_json(r);
            v["blockOwnerDeletion"] = json!(false);
            v
        })
        .collect();
    json!({"metadata": {"ownerReferences": unblocked, "uid": uid}})
}

/// The JSON merge patch fallback of [`unblock_strategic`].
pub fn unblock_merge(resource_version: &str, refs: &[OwnerReference]) -> Value {
    let all: Vec<Value> = refs
        .iter()
        .map(|r| {
            let mut v = reference_json(r);
            v["blockOwnerDeletion"] = json!(false);
            v
        })
        .collect();
    json!({"metadata": {"resourceVersion": resource_version, "ownerReferences": all}})
}

/// JSON merge patch dropping `finalizer`, or `None` when it is not there. Guarded by
/// the resourceVersion so a finalizer added meanwhile is not lost.
pub fn remove_finalizer(resource_version: &str, finalizers: &[String], finalizer: &str) -> Option<Value> {
    if !finalizers.iter().any(|f| f == finalizer) {
        return None;
    }
    let rest: Vec<&String> = finalizers.iter().filter(|f| *f != finalizer).collect();
    let list = if rest.is_empty() { Value::Null } else { json!(rest) };
    Some(json!({"metadata": {"resourceVersion": resource_version, "finalizers": list}}))
}

fn reference_json(r: &OwnerReference) -> Value {
    let mut v = json!({"apiVersion": r.api_version, "kind": r.kind, "name": r.name, "uid": r.uid});
    if let Some(c) = r.controller {
        v["controller"] = json!(c);
    }
    if let Some(b) = r.block_owner_deletion {
        v["blockOwnerDeletion"] = json!(b);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(uid: &str, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: format!("cm-{uid}"),
            uid: uid.into(),
            controller: None,
            block_owner_deletion: block.then_some(true),
        }
    }

    fn present(waiting: bool) -> OwnerState {
        OwnerState::Present { waiting }
    }

    #[test]
    fn references_are_sorted_by_their_owners_fate() {
        let refs = [r("a", false), r("b", false), r("c", false)];
        let c = classify(&refs, &[OwnerState::Absent, present(false), present(true)]);
        assert_eq!(c.dangling, vec![r("a", false)]);
        assert_eq!(c.solid, vec![r("b", false)]);
        assert_eq!(c.waiting, vec![r("c", false)]);
    }

    #[test]
    fn an_object_with_a_living_owner_is_kept() {
        let c = classify(&[r("a", false)], &[present(false)]);
        assert_eq!(decide(&c, &[], true, false), Decision::Keep);
    }

    #[test]
    fn a_living_owner_keeps_it_but_dead_and_waiting_references_go() {
        let refs = [r("a", false), r("b", false), r("c", true)];
        let c = classify(&refs, &[present(false), OwnerState::Absent, present(true)]);
        assert_eq!(decide(&c, &[], false, false), Decision::RemoveOwnerRefs(vec!["b".into(), "c".into()]));
    }

    #[test]
    fn an_object_whose_owners_are_all_gone_is_deleted_in_the_background() {
        let c = classify(&[r("a", false), r("b", false)], &[OwnerState::Absent, OwnerState::Absent]);
        assert_eq!(decide(&c, &[], true, false), Decision::Delete { policy: Policy::Background, unblock_first: false });
    }

    #[test]
    fn garbage_keeps_the_propagation_its_finalizers_ask_for() {
        let c = classify(&[r("a", false)], &[OwnerState::Absent]);
        let orphan = decide(&c, &["orphan".into()], false, false);
        assert_eq!(orphan, Decision::Delete { policy: Policy::Orphan, unblock_first: false });
        let fg = decide(&c, &["foregroundDeletion".into()], false, false);
        assert_eq!(fg, Decision::Delete { policy: Policy::Foreground, unblock_first: false });
    }

    #[test]
    fn a_waiting_owner_cascades_the_foreground_to_dependents_that_have_dependents() {
        let c = classify(&[r("a", true)], &[present(true)]);
        assert_eq!(decide(&c, &[], true, false), Decision::Delete { policy: Policy::Foreground, unblock_first: false });
        assert_eq!(decide(&c, &[], true, true), Decision::Delete { policy: Policy::Foreground, unblock_first: true });
        // A leaf simply goes.
        assert_eq!(
            decide(&c, &[], false, false),
            Decision::Delete { policy: Policy::Background, unblock_first: false }
        );
    }

    #[test]
    fn a_foreground_owner_waits_for_blocking_dependents_only() {
        assert_eq!(foreground_step(&[]), ForegroundStep::RemoveFinalizer);
        let blocking = [("a".to_string(), false), ("b".to_string(), true)];
        assert_eq!(foreground_step(&blocking), ForegroundStep::CheckDependents(vec!["a".into()]));
    }

    #[test]
    fn patches_remove_references_by_uid() {
        let smp = delete_owner_refs_strategic("me", &["a".into(), "b".into()]);
        assert_eq!(
            smp,
            json!({"metadata": {"ownerReferences": [{"$patch": "delete", "uid": "a"}, {"$patch": "delete", "uid": "b"}], "uid": "me"}})
        );
        let merge = delete_owner_refs_merge("42", &[r("a", false), r("b", true)], &["a".into()]);
        assert_eq!(
            merge,
            json!({"metadata": {"resourceVersion": "42", "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "cm-b", "uid": "b", "blockOwnerDeletion": true}
            ]}})
        );
    }

    #[test]
    fn unblocking_patches_clear_block_owner_deletion() {
        let smp = unblock_strategic("me", &[r("a", false), r("b", true)]);
        assert_eq!(
            smp,
            json!({"metadata": {"ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "cm-b", "uid": "b", "blockOwnerDeletion": false}
            ], "uid": "me"}})
        );
        let merge = unblock_merge("7", &[r("a", false)]);
        assert_eq!(merge["metadata"]["ownerReferences"][0]["blockOwnerDeletion"], json!(false));
        assert_eq!(merge["metadata"]["resourceVersion"], "7");
    }

    #[test]
    fn finalizer_removal_keeps_the_others_and_nulls_an_empty_list() {
        let both = ["orphan".to_string(), "example.com/keep".to_string()];
        assert_eq!(
            remove_finalizer("3", &both, "orphan"),
            Some(json!({"metadata": {"resourceVersion": "3", "finalizers": ["example.com/keep"]}}))
        );
        assert_eq!(
            remove_finalizer("3", &["orphan".to_string()], "orphan"),
            Some(json!({"metadata": {"resourceVersion": "3", "finalizers": null}}))
        );
        assert_eq!(remove_finalizer("3", &both, "foregroundDeletion"), None);
    }
}
