//! The dependency graph: every object the collector watches, with the owners its
//! `ownerReferences` name and the dependents that name it, keyed by uid (upstream's
//! `uidToNode`). [`Graph::apply`] folds one observed change into the graph and returns
//! what the workers must look at next, without doing any I/O.
//!
//! An owner named by a dependent but not (yet) observed gets a *virtual* node, which
//! the delete workers verify against the API server: a recreated owner with the same
//! name but another uid is a different object and never adopts old dependents.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

/// The finalizer that makes the collector orphan an object's dependents before it goes.
pub const ORPHAN: &str = "orphan";
/// The finalizer that makes the collector delete an object's dependents before it goes.
pub const FOREGROUND: &str = "foregroundDeletion";

/// Where an object lives; the coordinates an ownerReference names, plus a namespace
/// (empty for cluster-scoped objects, and for owners whose scope is not known yet,
/// the namespace of the dependent that named them).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    // Field order is the sort order upstream uses to pick an alternate identity.
    pub kind: String,
    pub api_version: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl Identity {
    /// The identity an ownerReference in an object of `namespace` names.
    pub fn of_owner(r: &OwnerReference, namespace: &str) -> Identity {
        Identity {
            kind: r.kind.clone(),
            api_version: r.api_version.clone(),
            namespace: namespace.to_string(),
            name: r.name.clone(),
            uid: r.uid.clone(),
        }
    }

    /// Whether `r` names this object by every coordinate (uid, name, kind, apiVersion).
    pub fn matches(&self, r: &OwnerReference) -> bool {
        self.uid == r.uid && self.name == r.name && self.kind == r.kind && self.api_version == r.api_version
    }
}

/// As upstream prints an `objectReference` in logs and events.
impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}/{}, namespace: {}, name: {}, uid: {}]",
            self.api_version, self.kind, self.namespace, self.name, self.uid
        )
    }
}

/// What a watch reported about one object: only what the collector needs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    pub identity: Identity,
    pub owners: Vec<OwnerReference>,
    pub being_deleted: bool,
    pub orphan_finalizer: bool,
    pub foreground_finalizer: bool,
}

/// One change for the graph, in the order the watches (and the workers) saw them.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// An object was added or updated.
    Upsert(Observed),
    /// A watch saw the object go.
    Delete(Observed),
    /// A worker found the object gone (404 or another uid under that name).
    VirtualDelete(Identity),
    /// A watch (re)listed every object of a kind; observed nodes of that kind missing
    /// from `seen` went while the watch was down.
    Relisted { api_version: String, kind: String, seen: HashSet<String> },
}

/// What the collector should do after a change; the graph itself does no I/O.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Check whether the object (by uid) is garbage, or its owner may now go.
    AttemptToDelete(String),
    /// As `AttemptToDelete`, after the queue's backoff.
    AttemptToDeleteLater(String),
    /// Orphan the object's dependents, then drop its `orphan` finalizer.
    AttemptToOrphan(String),
    /// Remember that no object has this identity, to spare lookups.
    AbsentOwner(Identity),
    /// Warn on `dependent` that its owner lives in another namespace.
    InvalidOwnerNamespace { dependent: Identity, owner: Identity },
}

/// The deletion state last observed, to notice when a finalizer-driven deletion starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Seen {
    being_deleted: bool,
    orphan: bool,
    foreground: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Node {
    pub identity: Identity,
    pub owners: Vec<OwnerReference>,
    /// Uids of the objects whose ownerReferences name this one (ordered, so the work
    /// the graph hands out is deterministic).
    pub dependents: BTreeSet<String>,
    /// Only known from a dependent's ownerReference, never seen by a watch.
    pub virtual_: bool,
    pub being_deleted: bool,
    /// Being deleted in the foreground: waits for its blocking dependents.
    pub deleting_dependents: bool,
    seen: Option<Seen>,
}

impl Node {
    /// Whether `dependent` keeps this node from going in the foreground.
    fn blocked_by(&self, dependent: &Node) -> bool {
        dependent.owners.iter().any(|o| o.uid == self.identity.uid && o.block_owner_deletion == Some(true))
    }
}

#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
}

fn starts(old: Option<Seen>, new: Seen, finalizer: fn(Seen) -> bool) -> bool {
    new.being_deleted && finalizer(new) && !old.is_some_and(|o| o.being_deleted && finalizer(o))
}

impl Graph {
    pub fn node(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The nodes whose ownerReferences name `uid`.
    pub fn dependents(&self, uid: &str) -> Vec<&Node> {
        self.nodes.get(uid).map(|n| n.dependents.iter().filter_map(|d| self.nodes.get(d)).collect()).unwrap_or_default()
    }

    /// The dependents of `uid` whose reference to it has `blockOwnerDeletion: true`.
    pub fn blocking_dependents(&self, uid: &str) -> Vec<&Node> {
        let Some(owner) = self.nodes.get(uid) else { return Vec::new() };
        owner.dependents.iter().filter_map(|d| self.nodes.get(d)).filter(|d| owner.blocked_by(d)).collect()
    }

    /// Folds one change into the graph.
    pub fn apply(&mut self, change: Change) -> Vec<Effect> {
        let mut fx = Vec::new();
        match change {
            Change::Upsert(o) => self.upsert(o, &mut fx),
            Change::Delete(o) => {
                if self.nodes.contains_key(&o.identity.uid) {
                    self.remove(&o.identity, &mut fx);
                }
            }
            Change::VirtualDelete(id) => self.virtual_delete(id, &mut fx),
            Change::Relisted { api_version, kind, seen } => {
                let gone: Vec<Identity> = self
                    .nodes
                    .values()
                    .filter(|n| !n.virtual_ && n.identity.api_version == api_version && n.identity.kind == kind)
                    .filter(|n| !seen.contains(&n.identity.uid))
                    .map(|n| n.identity.clone())
                    .collect();
                for id in gone {
                    self.remove(&id, &mut fx);
                }
            }
        }
        fx
    }

    fn upsert(&mut self, o: Observed, fx: &mut Vec<Effect>) {
        let uid = o.identity.uid.clone();
        let now =
            Seen { being_deleted: o.being_deleted, orphan: o.orphan_finalizer, foreground: o.foreground_finalizer };
        let Some(existing) = self.nodes.get(&uid) else {
            let node = Node {
                identity: o.identity.clone(),
                owners: o.owners.clone(),
                dependents: BTreeSet::new(),
                virtual_: false,
                being_deleted: o.being_deleted,
                deleting_dependents: o.being_deleted && o.foreground_finalizer,
                seen: Some(now),
            };
            self.nodes.insert(uid.clone(), node);
            self.add_dependent_to_owners(&uid, &o.owners, fx);
            self.transitions(&uid, None, now, fx);
            return;
        };
        let before = existing.seen;
        if existing.virtual_ && existing.identity != o.identity {
            // Dependents that named this uid by other coordinates may have named an
            // object that does not exist: have them checked. This covers a bad
            // dependent seen before a good owner (the reverse is in add_dependent_to_owners).
            let (_, mismatched) = self.partition_dependents(&existing.dependents, &o.identity);
            for dep in mismatched {
                if !o.identity.namespace.is_empty()
                    && let Some(d) = self.nodes.get(&dep)
                    && d.identity.namespace != o.identity.namespace
                {
                    fx.extend(invalid_namespace(d, &uid));
                }
                fx.push(Effect::AttemptToDelete(dep));
            }
        }
        let Some(node) = self.nodes.get_mut(&uid) else { return };
        if node.virtual_ {
            node.identity = o.identity.clone();
            node.virtual_ = false;
        } else if node.identity.api_version != o.identity.api_version || node.identity.kind != o.identity.kind {
            node.identity.api_version = o.identity.api_version.clone();
            node.identity.kind = o.identity.kind.clone();
        }
        let (added, removed, changed) = references_diff(&node.owners, &o.owners);
        if !added.is_empty() || !removed.is_empty() || !changed.is_empty() {
            node.owners = o.owners.clone();
            // An owner waiting in the foreground may have just been unblocked.
            for r in removed.iter().filter(|r| r.block_owner_deletion == Some(true)) {
                if self.nodes.contains_key(&r.uid) {
                    fx.push(Effect::AttemptToDelete(r.uid.clone()));
                }
            }
            for (old, new) in &changed {
                if old.block_owner_deletion == Some(true)
                    && new.block_owner_deletion != Some(true)
                    && self.nodes.contains_key(&new.uid)
                {
                    fx.push(Effect::AttemptToDelete(new.uid.clone()));
                }
            }
            self.add_dependent_to_owners(&uid, &added, fx);
            for r in &removed {
                if let Some(owner) = self.nodes.get_mut(&r.uid) {
                    owner.dependents.remove(&uid);
                }
            }
        }
        if let Some(node) = self.nodes.get_mut(&uid) {
            if o.being_deleted {
                node.being_deleted = true;
            }
            node.seen = Some(now);
        }
        self.transitions(&uid, before, now, fx);
    }

    /// Queues the work a deletion with the `orphan` or `foregroundDeletion` finalizer
    /// needs, once, when it starts.
    fn transitions(&mut self, uid: &str, before: Option<Seen>, now: Seen, fx: &mut Vec<Effect>) {
        if starts(before, now, |s| s.orphan) {
            fx.push(Effect::AttemptToOrphan(uid.to_string()));
            return;
        }
        if starts(before, now, |s| s.foreground)
            && let Some(node) = self.nodes.get_mut(uid)
        {
            node.deleting_dependents = true;
            fx.extend(node.dependents.iter().map(|d| Effect::AttemptToDelete(d.clone())));
            fx.push(Effect::AttemptToDelete(uid.to_string()));
        }
    }

    /// Records `uid` as a dependent of each of `owners`, making virtual nodes for owners
    /// not seen yet, and has the dependent checked when a reference looks wrong.
    fn add_dependent_to_owners(&mut self, uid: &str, owners: &[OwnerReference], fx: &mut Vec<Effect>) {
        let Some(namespace) = self.nodes.get(uid).map(|n| n.identity.namespace.clone()) else { return };
        let mut suspicious = false;
        for r in owners {
            match self.nodes.get_mut(&r.uid) {
                None => {
                    let owner = Node {
                        identity: Identity::of_owner(r, &namespace),
                        dependents: BTreeSet::from([uid.to_string()]),
                        virtual_: true,
                        ..Node::default()
                    };
                    self.nodes.insert(r.uid.clone(), owner);
                    // The delete workers find out whether it exists.
                    fx.push(Effect::AttemptToDelete(r.uid.clone()));
                }
                Some(owner) => {
                    owner.dependents.insert(uid.to_string());
                    if suspicious {
                        continue;
                    }
                    let owner_namespaced = !owner.identity.namespace.is_empty();
                    if owner_namespaced && owner.identity.namespace != namespace {
                        // Owner references are namespace-local: an owner observed in
                        // another namespace is not this dependent's owner.
                        if !owner.virtual_
                            && let Some(d) = self.nodes.get(uid)
                        {
                            fx.extend(invalid_namespace(d, &r.uid));
                        }
                        suspicious = true;
                    } else if !owner.identity.matches(r)
                        || (!owner_namespaced && owner.identity.namespace != namespace && owner.virtual_)
                    {
                        // Other coordinates than the observed owner's; or a virtual
                        // cluster-scoped owner named from a namespace, which could be a
                        // missing namespaced owner named by a cluster-scoped object.
                        suspicious = true;
                    }
                }
            }
        }
        if suspicious {
            fx.push(Effect::AttemptToDelete(uid.to_string()));
        }
    }

    /// Removes a node; its dependents get checked, and owners waiting in the foreground
    /// for it get another look.
    fn remove(&mut self, id: &Identity, fx: &mut Vec<Effect>) {
        let Some(node) = self.nodes.remove(&id.uid) else { return };
        for r in &node.owners {
            if let Some(owner) = self.nodes.get_mut(&r.uid) {
                owner.dependents.remove(&id.uid);
            }
        }
        if !node.dependents.is_empty() {
            fx.push(Effect::AbsentOwner(id.clone()));
        }
        fx.extend(node.dependents.iter().map(|d| Effect::AttemptToDelete(d.clone())));
        for r in &node.owners {
            if self.nodes.get(&r.uid).is_some_and(|o| o.deleting_dependents) {
                fx.push(Effect::AttemptToDelete(r.uid.clone()));
            }
        }
    }

    fn virtual_delete(&mut self, deleted: Identity, fx: &mut Vec<Effect>) {
        let Some(existing) = self.nodes.get(&deleted.uid) else { return };
        let uid = deleted.uid.clone();
        let mut remove = true;
        if existing.virtual_ {
            // Not sure of a virtual node's coordinates: dependents may name this uid
            // by others, which stay possible until each is checked.
            let (matching, mismatched) = self.partition_dependents(&existing.dependents, &deleted);
            if !mismatched.is_empty() {
                remove = false;
                if !matching.is_empty() {
                    fx.push(Effect::AbsentOwner(deleted.clone()));
                    fx.extend(matching.into_iter().map(Effect::AttemptToDelete));
                }
                if existing.identity == deleted
                    && let Some(alternate) = self.alternate_identity(&mismatched, &deleted)
                    && let Some(node) = self.nodes.get_mut(&uid)
                {
                    node.identity = alternate;
                    fx.push(Effect::AttemptToDeleteLater(uid.clone()));
                }
            }
        } else if existing.identity != deleted {
            // An observed object outranks a lookup by other coordinates; only the
            // dependents that used those coordinates lost their owner.
            remove = false;
            let (matching, _) = self.partition_dependents(&existing.dependents, &deleted);
            if !matching.is_empty() {
                fx.push(Effect::AbsentOwner(deleted.clone()));
                fx.extend(matching.into_iter().map(Effect::AttemptToDelete));
            }
        }
        if remove {
            self.remove(&deleted, fx);
        }
    }

    /// Splits `dependents` into those naming `owner` by all its coordinates and those
    /// naming its uid otherwise (or from another namespace); one can be in both.
    fn partition_dependents(&self, dependents: &BTreeSet<String>, owner: &Identity) -> (Vec<String>, Vec<String>) {
        let (mut matching, mut mismatched) = (Vec::new(), Vec::new());
        let owner_namespaced = !owner.namespace.is_empty();
        for uid in dependents {
            let Some(dep) = self.nodes.get(uid) else { continue };
            let (mut found_match, mut found_mismatch) = (false, false);
            if owner_namespaced && owner.namespace != dep.identity.namespace {
                found_mismatch = true;
            } else {
                for r in dep.owners.iter().filter(|r| r.uid == owner.uid) {
                    if owner.matches(r) {
                        found_match = true;
                    } else {
                        found_mismatch = true;
                    }
                }
            }
            if found_match {
                matching.push(uid.clone());
            }
            if found_mismatch {
                mismatched.push(uid.clone());
            }
        }
        (matching, mismatched)
    }

    /// Another identity the dependents give the absent uid: the first after `absent`
    /// in identity order, else the first of all (upstream's getAlternateOwnerIdentity).
    fn alternate_identity(&self, dependents: &[String], absent: &Identity) -> Option<Identity> {
        let cluster_scoped = absent.namespace.is_empty();
        let mut candidates = BTreeSet::new();
        for dep in dependents.iter().filter_map(|d| self.nodes.get(d)) {
            for r in dep.owners.iter().filter(|r| r.uid == absent.uid) {
                if absent.matches(r) && (cluster_scoped || absent.namespace == dep.identity.namespace) {
                    continue;
                }
                let mut id = Identity::of_owner(r, &dep.identity.namespace);
                if cluster_scoped && id.api_version == absent.api_version && id.kind == absent.kind {
                    // That kind is known to be cluster-scoped.
                    id.namespace.clear();
                }
                if id != *absent {
                    candidates.insert(id);
                }
            }
        }
        let following = candidates.iter().find(|c| *c > absent).cloned();
        following.or_else(|| candidates.into_iter().next())
    }
}

/// The warning for a dependent whose reference to `owner_uid` points into another
/// namespace, with the reference's coordinates in the dependent's namespace.
fn invalid_namespace(dependent: &Node, owner_uid: &str) -> Option<Effect> {
    let r = dependent.owners.iter().find(|r| r.uid == owner_uid)?;
    Some(Effect::InvalidOwnerNamespace {
        dependent: dependent.identity.clone(),
        owner: Identity::of_owner(r, &dependent.identity.namespace),
    })
}

type Diff = (Vec<OwnerReference>, Vec<OwnerReference>, Vec<(OwnerReference, OwnerReference)>);

/// The references added, removed and changed (same uid, other fields) from `old` to `new`.
fn references_diff(old: &[OwnerReference], new: &[OwnerReference]) -> Diff {
    let (mut added, mut changed) = (Vec::new(), Vec::new());
    let mut old_by_uid: HashMap<&str, &OwnerReference> = old.iter().map(|r| (r.uid.as_str(), r)).collect();
    for r in new {
        match old_by_uid.remove(r.uid.as_str()) {
            Some(before) if before != r => changed.push((before.clone(), r.clone())),
            Some(_) => {}
            None => added.push(r.clone()),
        }
    }
    let mut removed: Vec<OwnerReference> = old_by_uid.into_values().cloned().collect();
    removed.sort_by(|a, b| a.uid.cmp(&b.uid));
    (added, removed, changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(kind: &str, ns: &str, name: &str, uid: &str) -> Identity {
        let api_version = if kind == "ReplicaSet" { "apps/v1" } else { "v1" };
        Identity {
            kind: kind.into(),
            api_version: api_version.into(),
            namespace: ns.into(),
            name: name.into(),
            uid: uid.into(),
        }
    }

    fn owner_ref(owner: &Identity, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: owner.api_version.clone(),
            kind: owner.kind.clone(),
            name: owner.name.clone(),
            uid: owner.uid.clone(),
            controller: Some(true),
            block_owner_deletion: block.then_some(true),
        }
    }

    fn obs(identity: &Identity, owners: Vec<OwnerReference>) -> Observed {
        Observed { identity: identity.clone(), owners, ..Default::default() }
    }

    fn deleting(identity: &Identity, owners: Vec<OwnerReference>, finalizer: &str) -> Observed {
        Observed {
            identity: identity.clone(),
            owners,
            being_deleted: true,
            orphan_finalizer: finalizer == ORPHAN,
            foreground_finalizer: finalizer == FOREGROUND,
        }
    }

    fn del(uid: &str) -> Effect {
        Effect::AttemptToDelete(uid.into())
    }

    #[test]
    fn a_dependent_seen_first_makes_a_virtual_owner_that_the_watch_later_confirms() {
        let mut g = Graph::default();
        let rs = id("ReplicaSet", "ns", "web", "rs1");
        let pod = id("Pod", "ns", "web-1", "p1");
        assert_eq!(g.apply(Change::Upsert(obs(&pod, vec![owner_ref(&rs, true)]))), vec![del("rs1")]);
        assert!(g.node("rs1").unwrap().virtual_);
        assert_eq!(g.node("rs1").unwrap().dependents, BTreeSet::from(["p1".to_string()]));

        assert_eq!(g.apply(Change::Upsert(obs(&rs, vec![]))), vec![]);
        let owner = g.node("rs1").unwrap();
        assert!(!owner.virtual_);
        assert_eq!(owner.dependents.len(), 1);
        assert_eq!(g.blocking_dependents("rs1").len(), 1);
    }

    #[test]
    fn an_owner_that_goes_has_its_dependents_checked_and_is_remembered_absent() {
        let mut g = Graph::default();
        let cm = id("ConfigMap", "ns", "owner", "o1");
        g.apply(Change::Upsert(obs(&cm, vec![])));
        for d in ["d1", "d2"] {
            assert_eq!(g.apply(Change::Upsert(obs(&id("ConfigMap", "ns", d, d), vec![owner_ref(&cm, false)]))), vec![]);
        }
        let fx = g.apply(Change::Delete(obs(&cm, vec![])));
        assert_eq!(fx, vec![Effect::AbsentOwner(cm.clone()), del("d1"), del("d2")]);
        assert!(g.node("o1").is_none());
        assert_eq!(g.len(), 2);
    }

    #[test]
    fn an_object_without_dependents_goes_quietly() {
        let mut g = Graph::default();
        let cm = id("ConfigMap", "ns", "lonely", "l1");
        g.apply(Change::Upsert(obs(&cm, vec![])));
        assert_eq!(g.apply(Change::Delete(obs(&cm, vec![]))), vec![]);
        assert!(g.is_empty());
    }

    #[test]
    fn orphan_deletion_is_queued_once_when_it_starts() {
        let mut g = Graph::default();
        let rs = id("ReplicaSet", "ns", "web", "rs1");
        g.apply(Change::Upsert(obs(&rs, vec![])));
        let fx = g.apply(Change::Upsert(deleting(&rs, vec![], ORPHAN)));
        assert_eq!(fx, vec![Effect::AttemptToOrphan("rs1".into())]);
        assert_eq!(g.apply(Change::Upsert(deleting(&rs, vec![], ORPHAN))), vec![], "no repeat on resync");
        assert!(g.node("rs1").unwrap().being_deleted);
    }

    #[test]
    fn an_object_first_seen_while_deleting_in_the_foreground_starts_at_once() {
        let mut g = Graph::default();
        let rs = id("ReplicaSet", "ns", "web", "rs1");
        let fx = g.apply(Change::Upsert(deleting(&rs, vec![], FOREGROUND)));
        assert_eq!(fx, vec![del("rs1")]);
        assert!(g.node("rs1").unwrap().deleting_dependents);
    }

    #[test]
    fn foreground_deletion_checks_every_dependent_then_the_owner() {
        let mut g = Graph::default();
        let rs = id("ReplicaSet", "ns", "web", "rs1");
        g.apply(Change::Upsert(obs(&rs, vec![])));
        let p1 = id("Pod", "ns", "a", "p1");
        let p2 = id("Pod", "ns", "b", "p2");
        g.apply(Change::Upsert(obs(&p1, vec![owner_ref(&rs, true)])));
        g.apply(Change::Upsert(obs(&p2, vec![owner_ref(&rs, false)])));
        let fx = g.apply(Change::Upsert(deleting(&rs, vec![], FOREGROUND)));
        assert_eq!(fx, vec![del("p1"), del("p2"), del("rs1")]);
        let node = g.node("rs1").unwrap();
        assert!(node.deleting_dependents && node.being_deleted);
        let blocking: Vec<&str> = g.blocking_dependents("rs1").iter().map(|n| n.identity.uid.as_str()).collect();
        assert_eq!(blocking, ["p1"], "only blockOwnerDeletion dependents block");

        // Each dependent that goes sends the owner back for another look.
        assert_eq!(g.apply(Change::Delete(obs(&p1, vec![owner_ref(&rs, true)]))), vec![del("rs1")]);
        assert!(g.blocking_dependents("rs1").is_empty());
    }

    #[test]
    fn dropping_or_unblocking_a_blocking_reference_wakes_the_owner() {
        let mut g = Graph::default();
        let a = id("ConfigMap", "ns", "a", "a1");
        let b = id("ConfigMap", "ns", "b", "b1");
        g.apply(Change::Upsert(obs(&a, vec![])));
        g.apply(Change::Upsert(obs(&b, vec![])));
        let dep = id("ConfigMap", "ns", "dep", "d1");
        g.apply(Change::Upsert(obs(&dep, vec![owner_ref(&a, true), owner_ref(&b, true)])));
        assert_eq!(g.dependents("a1").len(), 1);

        let mut unblocked = owner_ref(&b, false);
        unblocked.block_owner_deletion = Some(false);
        let fx = g.apply(Change::Upsert(obs(&dep, vec![unblocked])));
        assert_eq!(fx, vec![del("a1"), del("b1")]);
        assert!(g.dependents("a1").is_empty(), "no longer a dependent of a");
        assert_eq!(g.dependents("b1").len(), 1);
        assert!(g.blocking_dependents("b1").is_empty());
    }

    #[test]
    fn an_owner_observed_in_another_namespace_is_reported_and_the_dependent_checked() {
        let mut g = Graph::default();
        let owner = id("ConfigMap", "team-a", "owner", "o1");
        g.apply(Change::Upsert(obs(&owner, vec![])));
        let dep = id("ConfigMap", "team-b", "dep", "d1");
        let fx = g.apply(Change::Upsert(obs(&dep, vec![owner_ref(&owner, false)])));
        let named = Identity { namespace: "team-b".into(), ..owner.clone() };
        assert_eq!(fx, vec![Effect::InvalidOwnerNamespace { dependent: dep.clone(), owner: named }, del("d1")]);
        assert_eq!(named_str(&fx), "[v1/ConfigMap, namespace: team-b, name: owner, uid: o1]");
    }

    fn named_str(fx: &[Effect]) -> String {
        match &fx[0] {
            Effect::InvalidOwnerNamespace { owner, .. } => owner.to_string(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn a_bad_dependent_seen_before_its_good_owner_is_checked_when_the_owner_appears() {
        let mut g = Graph::default();
        let owner = id("ConfigMap", "team-a", "owner", "o1");
        let dep = id("ConfigMap", "team-b", "dep", "d1");
        // The virtual owner takes the dependent's namespace.
        assert_eq!(g.apply(Change::Upsert(obs(&dep, vec![owner_ref(&owner, false)]))), vec![del("o1")]);
        assert_eq!(g.node("o1").unwrap().identity.namespace, "team-b");
        let fx = g.apply(Change::Upsert(obs(&owner, vec![])));
        let named = Identity { namespace: "team-b".into(), ..owner.clone() };
        assert_eq!(fx, vec![Effect::InvalidOwnerNamespace { dependent: dep.clone(), owner: named }, del("d1")]);
        assert_eq!(g.node("o1").unwrap().identity, owner);
    }

    #[test]
    fn a_reference_by_other_coordinates_gets_the_dependent_checked() {
        let mut g = Graph::default();
        let owner = id("ConfigMap", "ns", "owner", "o1");
        g.apply(Change::Upsert(obs(&owner, vec![])));
        let wrong = Identity { name: "renamed".into(), ..owner.clone() };
        let dep = id("ConfigMap", "ns", "dep", "d1");
        assert_eq!(g.apply(Change::Upsert(obs(&dep, vec![owner_ref(&wrong, false)]))), vec![del("d1")]);
    }

    #[test]
    fn a_virtual_owner_found_absent_is_removed_and_its_dependents_checked() {
        let mut g = Graph::default();
        let ghost = id("ReplicaSet", "ns", "gone", "g1");
        let pod = id("Pod", "ns", "p", "p1");
        g.apply(Change::Upsert(obs(&pod, vec![owner_ref(&ghost, false)])));
        let fx = g.apply(Change::VirtualDelete(ghost.clone()));
        assert_eq!(fx, vec![Effect::AbsentOwner(ghost.clone()), del("p1")]);
        assert!(g.node("g1").is_none());
        assert_eq!(g.apply(Change::VirtualDelete(ghost)), vec![], "a second report changes nothing");
    }

    #[test]
    fn a_virtual_owner_named_two_ways_tries_the_other_identity() {
        let mut g = Graph::default();
        let one = id("ConfigMap", "ns", "a", "x1");
        let two = Identity { name: "b".into(), ..one.clone() };
        let d1 = id("ConfigMap", "ns", "d1", "d1");
        let d2 = id("ConfigMap", "ns", "d2", "d2");
        g.apply(Change::Upsert(obs(&d1, vec![owner_ref(&one, false)])));
        g.apply(Change::Upsert(obs(&d2, vec![owner_ref(&two, false)])));
        let fx = g.apply(Change::VirtualDelete(one.clone()));
        assert_eq!(fx, vec![Effect::AbsentOwner(one), del("d1"), Effect::AttemptToDeleteLater("x1".into())]);
        assert_eq!(g.node("x1").unwrap().identity, two);
    }

    #[test]
    fn an_observed_object_survives_a_lookup_by_other_coordinates() {
        let mut g = Graph::default();
        let owner = id("ConfigMap", "ns", "owner", "o1");
        g.apply(Change::Upsert(obs(&owner, vec![])));
        let wrong = Identity { name: "other".into(), ..owner.clone() };
        let dep = id("ConfigMap", "ns", "dep", "d1");
        g.apply(Change::Upsert(obs(&dep, vec![owner_ref(&wrong, false)])));
        let fx = g.apply(Change::VirtualDelete(wrong.clone()));
        assert_eq!(fx, vec![Effect::AbsentOwner(wrong), del("d1")]);
        assert!(g.node("o1").is_some());
    }

    #[test]
    fn a_relist_removes_what_went_while_the_watch_was_down() {
        let mut g = Graph::default();
        let owner = id("ConfigMap", "ns", "owner", "o1");
        let kept = id("ConfigMap", "ns", "kept", "k1");
        let pod = id("Pod", "ns", "p", "p1");
        g.apply(Change::Upsert(obs(&owner, vec![])));
        g.apply(Change::Upsert(obs(&kept, vec![])));
        g.apply(Change::Upsert(obs(&pod, vec![owner_ref(&owner, false)])));
        let fx = g.apply(Change::Relisted {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            seen: HashSet::from(["k1".to_string()]),
        });
        assert_eq!(fx, vec![Effect::AbsentOwner(owner), del("p1")]);
        assert!(g.node("o1").is_none() && g.node("k1").is_some() && g.node("p1").is_some());
    }

    #[test]
    fn owner_changes_move_the_dependent_between_owners() {
        let mut g = Graph::default();
        let a = id("ConfigMap", "ns", "a", "a1");
        let b = id("ConfigMap", "ns", "b", "b1");
        g.apply(Change::Upsert(obs(&a, vec![])));
        g.apply(Change::Upsert(obs(&b, vec![])));
        let dep = id("ConfigMap", "ns", "dep", "d1");
        g.apply(Change::Upsert(obs(&dep, vec![owner_ref(&a, false)])));
        g.apply(Change::Upsert(obs(&dep, vec![owner_ref(&b, false)])));
        assert!(g.dependents("a1").is_empty());
        assert_eq!(g.dependents("b1").len(), 1);
        // Orphaned: no owners left.
        g.apply(Change::Upsert(obs(&dep, vec![])));
        assert!(g.dependents("b1").is_empty());
    }

    #[test]
    fn the_diff_of_references_is_by_uid() {
        let a = owner_ref(&id("ConfigMap", "ns", "a", "a1"), false);
        let b = owner_ref(&id("ConfigMap", "ns", "b", "b1"), true);
        let mut b2 = b.clone();
        b2.block_owner_deletion = None;
        let c = owner_ref(&id("ConfigMap", "ns", "c", "c1"), false);
        let (added, removed, changed) = references_diff(&[a.clone(), b.clone()], &[b2.clone(), c.clone()]);
        assert_eq!(added, vec![c]);
        assert_eq!(removed, vec![a]);
        assert_eq!(changed, vec![(b, b2)]);
    }
}
