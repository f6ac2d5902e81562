//! Schema-driven walks over objects, as structured-merge-diff's `typed` package does
//! them: the field set an object sets, the difference between two objects, the merge
//! of an applied configuration into a live object, and the removal of a field set.
//!
//! The schema says how each node merges: a struct or map is granular unless
//! `x-kubernetes-map-type: atomic`; a list is a map keyed by `x-kubernetes-list-map-keys`,
//! a set, or atomic, by `x-kubernetes-list-type`, falling back to the patch strategy
//! (`merge` with a merge key is a map-list, `merge` alone a set); everything the schema
//! does not describe is an atomic leaf.

use super::fieldpath::{Path, PathElement, Set, Step, values_equal};
use api::schema::{Field, Node, Schemas, Type};
use serde_json::{Map, Value};
use std::fmt;
use std::sync::OnceLock;

/// The schema of one node; `None` for what the schema does not describe.
pub(crate) type Ty<'a> = Option<Field<'a>>;

/// The type of a whole object of the kind described by `node`.
pub(crate) fn root(node: &Node) -> Ty<'_> {
    Schemas::get().resolve(node).map(|shape| Field { named: node, shape })
}

/// Errors found while walking an object, each with the path where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct TypedErrors(pub Vec<(String, String)>);

/// Upstream's `ValidationErrors.Error()`: `path: message`, or a list under `errors:`.
impl fmt::Display for TypedErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let render = |(path, message): &(String, String)| {
            if path.is_empty() { message.clone() } else { format!("{path}: {message}") }
        };
        if self.0.len() == 1 {
            return f.write_str(&render(&self.0[0]));
        }
        f.write_str("errors:")?;
        for e in &self.0 {
            write!(f, "\n  {}", render(e))?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Keys<'a> {
    Many(&'a [String]),
    One(&'a str),
}

impl<'a> Keys<'a> {
    fn names(self) -> impl Iterator<Item = &'a str> {
        let (many, one): (&'a [String], Option<&'a str>) = match self {
            Keys::Many(k) => (k, None),
            Keys::One(k) => (&[], Some(k)),
        };
        many.iter().map(String::as_str).chain(one)
    }
}

#[derive(Clone, Copy)]
enum ListRel<'a> {
    Atomic,
    Set,
    Map(Keys<'a>),
}

#[derive(Clone, Copy)]
enum Kind<'a> {
    Leaf,
    Map { atomic: bool, f: Field<'a> },
    List { rel: ListRel<'a>, items: Ty<'a> },
}

impl Kind<'_> {
    fn tag(&self) -> u8 {
        match self {
            Kind::Leaf => 0,
            Kind::Map { .. } => 1,
            Kind::List { .. } => 2,
        }
    }
}

fn kind(ty: Ty<'_>) -> Kind<'_> {
    let Some(f) = ty else { return Kind::Leaf };
    match f.shape.ty {
        Type::Object if !f.shape.properties.is_empty() || f.shape.additional.is_some() => {
            Kind::Map { atomic: f.map_type() == Some("atomic"), f }
        }
        Type::Array => Kind::List { rel: list_rel(f), items: item_ty(f) },
        _ => Kind::Leaf,
    }
}

/// The kind a value takes: a container kind when the value has that shape or is null
/// (a null map or list is an absent one, as upstream sees it); anything malformed is
/// compared and merged as a leaf.
fn deduce<'a>(k: Kind<'a>, v: &Value) -> Kind<'a> {
    match k {
        Kind::Map { .. } if v.is_object() || v.is_null() => k,
        Kind::List { .. } if v.is_array() || v.is_null() => k,
        _ => Kind::Leaf,
    }
}

fn list_rel(f: Field<'_>) -> ListRel<'_> {
    match f.list_type() {
        Some("atomic") => ListRel::Atomic,
        Some("set") => ListRel::Set,
        Some("map") => {
            let keys = if f.named.list_map_keys.is_empty() { &f.shape.list_map_keys } else { &f.named.list_map_keys };
            if keys.is_empty() { ListRel::Set } else { ListRel::Map(Keys::Many(keys)) }
        }
        Some(_) => ListRel::Atomic,
        None => {
            let strategy = f.named.patch_strategy.as_deref().or(f.shape.patch_strategy.as_deref());
            match strategy {
                Some("merge" | "merge,retainKeys") => {
                    match f.named.merge_key.as_deref().or(f.shape.merge_key.as_deref()) {
                        Some(key) => ListRel::Map(Keys::One(key)),
                        None => ListRel::Set,
                    }
                }
                _ => ListRel::Atomic,
            }
        }
    }
}

fn item_ty(f: Field<'_>) -> Ty<'_> {
    let named = f.shape.items.as_deref()?;
    Schemas::get().resolve(named).map(|shape| Field { named, shape })
}

fn child_ty<'a>(f: Field<'a>, name: &str) -> Ty<'a> {
    Schemas::get().field(f.shape, name)
}

fn declared(f: Field<'_>, name: &str) -> bool {
    f.shape.properties.contains_key(name)
}

fn empty_object() -> &'static Value {
    static EMPTY: OnceLock<Value> = OnceLock::new();
    EMPTY.get_or_init(|| Value::Object(Map::new()))
}

/// Whether a struct property is a value (not a pointer) in upstream's Go types, so that a
/// typed object always carries it, at least as `{}`. Upstream compares typed objects, so
/// e.g. a new Deployment's `spec` is never "added" as a whole, while a new container's
/// `resources` is. The OpenAPI documents mark these with `default: {}`, which the compact
/// schema does not keep; the names below are exactly the properties so marked in the
/// served documents, minus the three pointer fields that share a name.
fn is_value_struct(parent: &Node, name: &str) -> bool {
    let candidate = matches!(
        name,
        "metadata"
            | "spec"
            | "status"
            | "template"
            | "resources"
            | "updateStrategy"
            | "target"
            | "lastState"
            | "state"
            | "involvedObject"
            | "source"
            | "kubeletEndpoint"
            | "daemonEndpoints"
            | "nodeInfo"
            | "preference"
            | "loadBalancer"
            | "podAffinityTerm"
            | "strategy"
            | "scaleTargetRef"
            | "jobTemplate"
            | "conditions"
            | "deprecatedSource"
            | "regarding"
    );
    if !candidate {
        return false;
    }
    let schemas = Schemas::get();
    let Some(named) = parent.properties.get(name) else {
        return false;
    };
    if named.ty != Type::Ref || schemas.resolve(named).is_none_or(|s| s.ty != Type::Object || s.properties.is_empty()) {
        return false;
    }
    static POINTERS: OnceLock<Vec<usize>> = OnceLock::new();
    let pointers = POINTERS.get_or_init(|| {
        [
            ("io.k8s.api.core.v1.ReplicationControllerSpec", "template"),
            ("io.k8s.api.core.v1.PodSpec", "resources"),
            ("io.k8s.api.core.v1.ContainerStatus", "resources"),
        ]
        .iter()
        .filter_map(|(def, prop)| schemas.definition(def)?.properties.get(*prop))
        .map(|n| n as *const Node as usize)
        .collect()
    });
    !pointers.contains(&(named as *const Node as usize))
}

/// The path element of one item of an associative list.
fn list_item_pe(rel: ListRel<'_>, items: Ty<'_>, child: &Value) -> Result<PathElement, String> {
    match rel {
        ListRel::Map(keys) => {
            let Value::Object(item) = child else {
                return Err(if child.is_null() {
                    "associative list with keys may not have a null element".to_string()
                } else {
                    "associative list with keys may not have non-map elements".to_string()
                });
            };
            let mut fields = Vec::new();
            for name in keys.names() {
                if let Some(v) = item.get(name) {
                    fields.push((name.to_string(), v.clone()));
                } else if let Some(default) = key_default(items, name) {
                    fields.push((name.to_string(), default));
                }
            }
            if fields.is_empty() {
                let names: Vec<String> = keys.names().map(|n| format!("{n:?}")).collect();
                return Err(format!(
                    "associative list with keys has an element that omits all key fields [{}] (and doesn't have default values for any key fields)",
                    names.join(" ")
                ));
            }
            Ok(PathElement::key(fields))
        }
        ListRel::Set => match child {
            Value::Object(_) => Err("associative list without keys has an element that's a map type".into()),
            Value::Array(_) => Err("not supported: associative list with lists as elements".into()),
            Value::Null => Err("associative list without keys has an element that's an explicit null".into()),
            v => Ok(PathElement::Value(v.clone())),
        },
        ListRel::Atomic => Err("invalid indexing of non-associative list".into()),
    }
}

/// The default of a key field an item leaves out. The upstream documents give every
/// list-map key a default: the zero value of its type, and `TCP` for port protocols.
fn key_default(items: Ty<'_>, name: &str) -> Option<Value> {
    let field = child_ty(items?, name)?;
    match field.shape.ty {
        Type::String if name == "protocol" => Some(Value::String("TCP".into())),
        Type::String => Some(Value::String(String::new())),
        Type::Integer => Some(Value::from(0)),
        _ => None,
    }
}

/// Where a walk is, as a list of steps up to the root: built on the stack as the walk
/// descends, and turned into a [`Path`] only when a change or an error is recorded.
#[derive(Clone, Copy)]
pub(crate) struct At<'a> {
    step: Option<Step<'a>>,
    parent: Option<&'a At<'a>>,
}

impl<'a> At<'a> {
    pub const ROOT: At<'static> = At { step: None, parent: None };

    fn field(&'a self, name: &'a str) -> At<'a> {
        At { step: Some(Step::Field(name)), parent: Some(self) }
    }

    fn elem(&'a self, pe: &'a PathElement) -> At<'a> {
        At { step: Some(Step::Elem(pe)), parent: Some(self) }
    }

    /// The steps from the root to here.
    fn steps(&self) -> Vec<Step<'a>> {
        let mut out = Vec::with_capacity(8);
        let mut at = Some(self);
        while let Some(node) = at {
            out.extend(node.step);
            at = node.parent;
        }
        out.reverse();
        out
    }

    fn to_vec(self) -> Vec<PathElement> {
        self.steps().iter().map(Step::owned_element).collect()
    }

    fn error(&self, message: impl Into<String>) -> TypedErrors {
        TypedErrors(vec![(Path(self.to_vec()).to_string(), message.into())])
    }
}

/// Neither an object nor a list: a leaf whatever the schema says, so the walks skip
/// the schema lookup for it.
fn plain(v: Option<&Value>) -> bool {
    !matches!(v, Some(Value::Object(_) | Value::Array(_)))
}

/// The path elements of a list's items, in order.
fn list_pes(rel: ListRel<'_>, items: Ty<'_>, list: &[Value], at: &At<'_>) -> Result<Vec<PathElement>, TypedErrors> {
    let mut pes = Vec::with_capacity(list.len());
    for (i, child) in list.iter().enumerate() {
        match list_item_pe(rel, items, child) {
            Ok(pe) => pes.push(pe),
            Err(e) => return Err(at.error(format!("element {i}: {e}"))),
        }
    }
    Ok(pes)
}

/// For each item, whether another item has the same path element.
fn duplicates(pes: &[PathElement]) -> Vec<bool> {
    let mut dup = vec![false; pes.len()];
    if pes.len() < 2 {
        return dup;
    }
    let mut order: Vec<usize> = (0..pes.len()).collect();
    order.sort_by(|a, b| pes[*a].cmp(&pes[*b]));
    for w in order.windows(2) {
        if pes[w[0]] == pes[w[1]] {
            dup[w[0]] = true;
            dup[w[1]] = true;
        }
    }
    dup
}

/// The fields an object sets (upstream's `ToFieldSet`): every leaf, every list item,
/// and every map entry that is null, empty, or not a declared struct field.
pub(crate) fn to_field_set(v: &Value, ty: Ty<'_>) -> Result<Set, TypedErrors> {
    Ok(field_set(v, ty, &At::ROOT)?.0)
}

/// The set below `v`, and whether `v` itself is a member of its parent's set.
fn field_set(v: &Value, ty: Ty<'_>, at: &At<'_>) -> Result<(Set, bool), TypedErrors> {
    if plain(Some(v)) {
        return Ok((Set::new(), true));
    }
    match deduce(kind(ty), v) {
        Kind::Leaf | Kind::Map { atomic: true, .. } | Kind::List { rel: ListRel::Atomic, .. } => Ok((Set::new(), true)),
        Kind::Map { f, .. } => {
            let map = v.as_object().map_or(0, Map::len);
            let mut members = Vec::with_capacity(map);
            let mut children = Vec::new();
            for (k, val) in v.as_object().into_iter().flatten() {
                let (set, member) =
                    if plain(Some(val)) { (Set::new(), true) } else { field_set(val, child_ty(f, k), &at.field(k))? };
                let empty_map = val.as_object().is_some_and(Map::is_empty);
                let member = member || val.is_null() || empty_map || !declared(f, k);
                if member {
                    members.push(PathElement::Field(k.clone()));
                }
                if !set.is_empty() {
                    children.push((PathElement::Field(k.clone()), set));
                }
            }
            Ok((Set::from_parts(members, children), false))
        }
        Kind::List { rel, items } => {
            let list = v.as_array().map_or(&[][..], Vec::as_slice);
            let pes = list_pes(rel, items, list, at)?;
            let dup = duplicates(&pes);
            let mut members = Vec::with_capacity(pes.len());
            let mut children = Vec::new();
            for ((pe, child), dup) in pes.into_iter().zip(list).zip(dup) {
                if dup {
                    // Upstream owns a duplicated item as a whole and does not descend.
                    members.push(pe);
                    continue;
                }
                let (set, _) =
                    if plain(Some(child)) { (Set::new(), true) } else { field_set(child, items, &at.elem(&pe))? };
                if !set.is_empty() {
                    children.push((pe.clone(), set));
                }
                members.push(pe);
            }
            Ok((Set::from_parts(members, children), false))
        }
    }
}

/// Checks an applied configuration as upstream's `AsTyped` does: every item of an
/// associative list must have a key, and no key may repeat.
pub(crate) fn validate(v: &Value, ty: Ty<'_>) -> Result<(), TypedErrors> {
    let mut errors = Vec::new();
    validate_at(v, ty, &At::ROOT, &mut errors);
    if errors.is_empty() { Ok(()) } else { Err(TypedErrors(errors)) }
}

fn validate_at(v: &Value, ty: Ty<'_>, at: &At<'_>, errors: &mut Vec<(String, String)>) {
    if plain(Some(v)) {
        return;
    }
    let error = |errors: &mut Vec<(String, String)>, at: &At<'_>, message: String| {
        errors.push((Path(at.to_vec()).to_string(), message))
    };
    match deduce(kind(ty), v) {
        Kind::Leaf => {}
        Kind::Map { f, .. } => {
            for (k, val) in v.as_object().into_iter().flatten() {
                if !plain(Some(val)) {
                    validate_at(val, child_ty(f, k), &at.field(k), errors);
                }
            }
        }
        Kind::List { rel, items } => {
            let list = v.as_array().map_or(&[][..], Vec::as_slice);
            let mut seen: Vec<PathElement> = Vec::new();
            for (i, child) in list.iter().enumerate() {
                let pe = if let ListRel::Atomic = rel {
                    PathElement::Index(i as i64)
                } else {
                    match list_item_pe(rel, items, child) {
                        Ok(pe) => pe,
                        Err(e) => {
                            error(errors, at, format!("element {i}: {e}"));
                            return;
                        }
                    }
                };
                if !matches!(rel, ListRel::Atomic) {
                    match seen.binary_search(&pe) {
                        Ok(_) => error(errors, at, format!("duplicate entries for key {pe}")),
                        Err(i) => seen.insert(i, pe.clone()),
                    }
                }
                if !plain(Some(child)) {
                    validate_at(child, items, &at.elem(&pe), errors);
                }
            }
        }
    }
}

/// What changed between two objects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Comparison {
    pub removed: Set,
    pub modified: Set,
    pub added: Set,
}

impl Comparison {
    /// Drops the given fields and everything below them (upstream's `ExcludeFields`).
    pub fn exclude(&mut self, fields: &Set) {
        if fields.is_empty() {
            return;
        }
        self.removed.recursive_difference_in_place(fields);
        self.modified.recursive_difference_in_place(fields);
        self.added.recursive_difference_in_place(fields);
    }

    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.modified.is_empty() && self.added.is_empty()
    }
}

/// Compares `lhs` (before) with `rhs` (after), as upstream's `TypedValue.Compare`.
/// Both sides are seen as upstream's typed objects see them: struct fields that are
/// values in Go are present, as `{}`, whenever their parent is.
pub(crate) fn compare(lhs: Option<&Value>, rhs: Option<&Value>, ty: Ty<'_>) -> Result<Comparison, TypedErrors> {
    let mut w = CompareWalker { out: Comparison::default() };
    w.compare(lhs, rhs, ty, &At::ROOT)?;
    Ok(w.out)
}

struct CompareWalker {
    out: Comparison,
}

impl CompareWalker {
    fn compare(
        &mut self,
        lhs: Option<&Value>,
        rhs: Option<&Value>,
        ty: Ty<'_>,
        at: &At<'_>,
    ) -> Result<(), TypedErrors> {
        if plain(lhs) && plain(rhs) {
            self.leaf(lhs, rhs, &mut false, at);
            return Ok(());
        }
        let k = kind(ty);
        let kl = lhs.map(|v| deduce(k, v));
        let kr = rhs.map(|v| deduce(k, v));
        let mut in_leaf = false;
        match (kl, kr) {
            (Some(kl), None) => self.handle(kl, lhs, rhs, &mut in_leaf, at)?,
            (None, Some(kr)) => self.handle(kr, lhs, rhs, &mut in_leaf, at)?,
            (Some(kl), Some(kr)) if kl.tag() == kr.tag() => self.handle(kr, lhs, rhs, &mut in_leaf, at)?,
            (Some(kl), Some(kr)) => {
                // The shape changed: walk the old shape on its own, then the new one.
                let mut other_leaf = false;
                self.handle(kl, lhs, rhs, &mut other_leaf, at)?;
                self.handle(kr, lhs, rhs, &mut in_leaf, at)?;
            }
            (None, None) => return Ok(()),
        }
        if !in_leaf {
            if lhs.is_none() {
                self.out.added.insert_steps(&at.steps());
            } else if rhs.is_none() {
                self.out.removed.insert_steps(&at.steps());
            }
        }
        Ok(())
    }

    fn leaf(&mut self, lhs: Option<&Value>, rhs: Option<&Value>, in_leaf: &mut bool, at: &At<'_>) {
        if *in_leaf {
            return;
        }
        *in_leaf = true;
        match (lhs, rhs) {
            (None, None) => {}
            (None, _) => self.out.added.insert_steps(&at.steps()),
            (_, None) => self.out.removed.insert_steps(&at.steps()),
            (Some(l), Some(r)) => {
                if !values_equal(l, r) {
                    self.out.modified.insert_steps(&at.steps());
                }
            }
        }
    }

    fn handle(
        &mut self,
        k: Kind<'_>,
        lhs: Option<&Value>,
        rhs: Option<&Value>,
        in_leaf: &mut bool,
        at: &At<'_>,
    ) -> Result<(), TypedErrors> {
        match k {
            Kind::Leaf => self.leaf(lhs, rhs, in_leaf, at),
            Kind::Map { atomic, f } => {
                let lm = lhs.and_then(Value::as_object);
                let rm = rhs.and_then(Value::as_object);
                let empty = lm.is_none_or(Map::is_empty) && rm.is_none_or(Map::is_empty);
                if atomic || empty {
                    self.leaf(lhs, rhs, in_leaf, at);
                    return Ok(());
                }
                self.map_items(f, lm, rm, at)?;
            }
            Kind::List { rel: ListRel::Atomic, .. } => self.leaf(lhs, rhs, in_leaf, at),
            Kind::List { rel, items } => {
                let ll = lhs.and_then(Value::as_array);
                let rl = rhs.and_then(Value::as_array);
                if ll.is_none_or(Vec::is_empty) && rl.is_none_or(Vec::is_empty) {
                    self.leaf(lhs, rhs, in_leaf, at);
                    return Ok(());
                }
                let (ll, rl) = (ll.map_or(&[][..], Vec::as_slice), rl.map_or(&[][..], Vec::as_slice));
                self.list_items(rel, items, ll, rl, at)?;
            }
        }
        Ok(())
    }

    fn map_items(
        &mut self,
        f: Field<'_>,
        lm: Option<&Map<String, Value>>,
        rm: Option<&Map<String, Value>>,
        at: &At<'_>,
    ) -> Result<(), TypedErrors> {
        let visit = |w: &mut CompareWalker, k: &str| {
            let (l, r) = (typed_side(lm, k, f.shape), typed_side(rm, k, f.shape));
            let ty = if plain(l) && plain(r) { None } else { child_ty(f, k) };
            w.compare(l, r, ty, &at.field(k))
        };
        if let Some(lm) = lm {
            for k in lm.keys() {
                visit(self, k)?;
            }
        }
        if let Some(rm) = rm {
            for k in rm.keys() {
                if !lm.is_some_and(|lm| lm.contains_key(k)) {
                    visit(self, k)?;
                }
            }
        }
        // Value structs on both sides compare equal; only a one-sided parent adds one.
        if lm.is_some() != rm.is_some() {
            for k in f.shape.properties.keys() {
                let present = lm.is_some_and(|m| m.contains_key(k)) || rm.is_some_and(|m| m.contains_key(k));
                if !present && is_value_struct(f.shape, k) {
                    visit(self, k)?;
                }
            }
        }
        Ok(())
    }

    fn list_items(
        &mut self,
        rel: ListRel<'_>,
        items: Ty<'_>,
        lhs: &[Value],
        rhs: &[Value],
        at: &At<'_>,
    ) -> Result<(), TypedErrors> {
        let lpes = list_pes(rel, items, lhs, at)?;
        let rpes = list_pes(rel, items, rhs, at)?;
        // Every distinct element, in first-seen order (lhs first), with its items per side.
        let mut all: Vec<(&PathElement, Vec<&Value>, Vec<&Value>)> = Vec::with_capacity(lpes.len().max(rpes.len()));
        let mut index: Vec<(&PathElement, usize)> = Vec::with_capacity(all.capacity());
        for (side, (pes, values)) in [(&lpes, lhs), (&rpes, rhs)].into_iter().enumerate() {
            for (pe, v) in pes.iter().zip(values) {
                let at = match index.binary_search_by(|(p, _)| (*p).cmp(pe)) {
                    Ok(i) => index[i].1,
                    Err(i) => {
                        index.insert(i, (pe, all.len()));
                        all.push((pe, Vec::new(), Vec::new()));
                        all.len() - 1
                    }
                };
                if side == 0 { all[at].1.push(v) } else { all[at].2.push(v) }
            }
        }
        for (pe, l, r) in all {
            let here = at.elem(pe);
            match (l.len(), r.len()) {
                (0..=1, 0..=1) => self.compare(l.first().copied(), r.first().copied(), items, &here)?,
                (2.., 2..) => {
                    if l.len() != r.len() || l.iter().zip(&r).any(|(a, b)| !values_equal(a, b)) {
                        self.out.modified.insert_steps(&here.steps());
                    }
                }
                (2.., _) => {
                    if let Some(first) = r.first() {
                        self.compare(None, Some(first), items, &here)?;
                    }
                    self.out.removed.insert_steps(&here.steps());
                }
                (_, _) => {
                    if let Some(first) = l.first() {
                        self.compare(Some(first), None, items, &here)?;
                    }
                    self.out.added.insert_steps(&here.steps());
                }
            }
        }
        Ok(())
    }
}

/// A field of a struct as a typed Go object holds it: on a side whose parent exists, a
/// value struct that is missing (or null) is `{}`, and another required field that is
/// missing is null.
fn typed_side<'v>(m: Option<&'v Map<String, Value>>, k: &str, shape: &Node) -> Option<&'v Value> {
    let m = m?;
    match m.get(k) {
        Some(Value::Null) | None if is_value_struct(shape, k) => Some(empty_object()),
        None if shape.required.iter().any(|r| r == k) => Some(&Value::Null),
        v => v,
    }
}

/// Merges `rhs` (the applied configuration) into `lhs` (the live object): granular
/// nodes merge key by key, associative lists item by item in upstream's order, and
/// leaves (scalars, atomic maps and lists) take the configuration's value.
pub(crate) fn merge(lhs: Option<&Value>, rhs: Option<&Value>, ty: Ty<'_>) -> Result<Option<Value>, TypedErrors> {
    merge_at(lhs, rhs, ty, &At::ROOT)
}

fn merge_at(lhs: Option<&Value>, rhs: Option<&Value>, ty: Ty<'_>, at: &At<'_>) -> Result<Option<Value>, TypedErrors> {
    match rhs {
        Some(Value::Null) | None => {}
        Some(r) if plain(Some(r)) => return Ok(Some(r.clone())),
        Some(_) => {}
    }
    if rhs.is_none() && plain(lhs) {
        return Ok(lhs.cloned());
    }
    let k = kind(ty);
    // When the shapes differ only the configuration's shape decides the result.
    let Some(k) = rhs.or(lhs).map(|v| deduce(k, v)) else {
        return Ok(None);
    };
    let leaf = || Ok(rhs.or(lhs).cloned());
    match k {
        Kind::Leaf | Kind::Map { atomic: true, .. } | Kind::List { rel: ListRel::Atomic, .. } => leaf(),
        Kind::Map { f, .. } => {
            let lm = lhs.and_then(Value::as_object);
            let rm = rhs.and_then(Value::as_object);
            if lm.is_none_or(Map::is_empty) && rm.is_none_or(Map::is_empty) {
                return leaf();
            }
            let mut out = Map::new();
            let mut visit = |k: &String| -> Result<(), TypedErrors> {
                let (l, r) = (lm.and_then(|m| m.get(k)), rm.and_then(|m| m.get(k)));
                let ty = if plain(l) && plain(r) { None } else { child_ty(f, k) };
                if let Some(v) = merge_at(l, r, ty, &at.field(k))? {
                    out.insert(k.clone(), v);
                }
                Ok(())
            };
            for k in lm.into_iter().flat_map(Map::keys) {
                visit(k)?;
            }
            for k in rm.into_iter().flat_map(Map::keys) {
                if !lm.is_some_and(|m| m.contains_key(k)) {
                    visit(k)?;
                }
            }
            Ok(if out.is_empty() { None } else { Some(Value::Object(out)) })
        }
        Kind::List { rel, items } => {
            let ll = lhs.and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
            let rl = rhs.and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
            if ll.is_empty() && rl.is_empty() {
                return leaf();
            }
            merge_list(rel, items, ll, rl, at)
        }
    }
}

/// A sorted map from path elements to an index, for the small lookups of a list merge.
struct PeIndex(Vec<(PathElement, usize)>);

impl PeIndex {
    fn get(&self, pe: &PathElement) -> Option<usize> {
        self.0.binary_search_by(|(p, _)| p.cmp(pe)).ok().map(|i| self.0[i].1)
    }
    fn insert(&mut self, pe: &PathElement, at: usize) -> bool {
        match self.0.binary_search_by(|(p, _)| p.cmp(pe)) {
            Ok(i) => {
                self.0[i].1 = at;
                false
            }
            Err(i) => {
                self.0.insert(i, (pe.clone(), at));
                true
            }
        }
    }
}

const DUPLICATE: usize = usize::MAX;

/// Upstream's list merge: items keep the live order, items the configuration adds are
/// placed after the shared item that precedes them in the configuration.
fn merge_list(
    rel: ListRel<'_>,
    items: Ty<'_>,
    lhs: &[Value],
    rhs: &[Value],
    at: &At<'_>,
) -> Result<Option<Value>, TypedErrors> {
    let rpes = list_pes(rel, items, rhs, at)?;
    let mut observed_rhs = PeIndex(Vec::with_capacity(rpes.len()));
    for (i, pe) in rpes.iter().enumerate() {
        if !observed_rhs.insert(pe, i) {
            return Err(at.error(format!("duplicate entries for key {pe}")));
        }
    }
    let lpes = list_pes(rel, items, lhs, at)?;
    let mut observed_lhs = PeIndex(Vec::with_capacity(lpes.len()));
    for (i, pe) in lpes.iter().enumerate() {
        if !observed_lhs.insert(pe, i) {
            // Duplicated live items merge as null: the configuration's item replaces them.
            observed_lhs.insert(pe, DUPLICATE);
        }
    }
    let lhs_item = |pe: &PathElement| -> Option<&Value> {
        observed_lhs.get(pe).map(|i| if i == DUPLICATE { &Value::Null } else { &lhs[i] })
    };

    let mut shared: std::collections::VecDeque<&PathElement> =
        rpes.iter().filter(|pe| observed_lhs.get(pe).is_some()).collect();
    let mut next_shared = shared.pop_front();
    let mut merged_rhs = PeIndex(Vec::new());
    let mut out = Vec::with_capacity(lhs.len().max(rhs.len()));
    let mut item = |pe: &PathElement, l: Option<&Value>, r: Option<&Value>| {
        merge_at(l, r, items, &at.elem(pe)).map(|m| {
            if let Some(m) = m {
                out.push(m);
            }
        })
    };

    let (mut li, mut ri) = (0, 0);
    while li < lpes.len() || ri < rpes.len() {
        if li < lpes.len() && ri < rpes.len() {
            let pe = &lpes[li];
            if *pe == rpes[ri] {
                merged_rhs.insert(pe, 0);
                item(pe, lhs_item(pe), observed_rhs.get(pe).map(|i| &rhs[i]))?;
                li += 1;
                ri += 1;
                next_shared = shared.pop_front();
                continue;
            }
            if observed_rhs.get(pe).is_some() && next_shared.is_some_and(|n| n != pe) {
                li += 1;
                continue;
            }
        }
        if li < lpes.len() {
            let pe = &lpes[li];
            if observed_rhs.get(pe).is_none() {
                item(pe, Some(&lhs[li]), None)?;
                li += 1;
                continue;
            } else if merged_rhs.get(pe).is_some() {
                li += 1;
            }
        }
        if ri < rpes.len() {
            let pe = &rpes[ri];
            merged_rhs.insert(pe, 0);
            item(pe, lhs_item(pe), observed_rhs.get(pe).map(|i| &rhs[i]))?;
            ri += 1;
            if next_shared.is_some_and(|n| n == pe) {
                next_shared = shared.pop_front();
            }
        }
    }
    Ok(if out.is_empty() { None } else { Some(Value::Array(out)) })
}

/// Removes the fields in `to_remove` from `v` (upstream's `RemoveItems`). Like upstream,
/// a map or list left empty becomes null; callers drop those nulls at the end.
pub(crate) fn remove_items(v: &Value, to_remove: &Set, ty: Ty<'_>) -> Value {
    if plain(Some(v)) {
        return v.clone();
    }
    match deduce(kind(ty), v) {
        Kind::Leaf => v.clone(),
        Kind::Map { atomic: true, .. } | Kind::List { rel: ListRel::Atomic, .. } => Value::Null,
        Kind::Map { f, .. } => {
            let mut out = Map::new();
            for (k, val) in v.as_object().into_iter().flatten() {
                let pe = PathElement::Field(k.clone());
                if to_remove.has_member(&pe) {
                    continue;
                }
                let kept = match to_remove.child(&pe) {
                    Some(sub) if !sub.is_empty() => remove_items(val, sub, child_ty(f, k)),
                    _ => val.clone(),
                };
                out.insert(k.clone(), kept);
            }
            if out.is_empty() { Value::Null } else { Value::Object(out) }
        }
        Kind::List { rel, items } => {
            let mut out = Vec::new();
            for item in v.as_array().into_iter().flatten() {
                let Ok(pe) = list_item_pe(rel, items, item) else {
                    out.push(item.clone());
                    continue;
                };
                if to_remove.has_member(&pe) {
                    continue;
                }
                out.push(match to_remove.child(&pe) {
                    Some(sub) if !sub.is_empty() => remove_items(item, sub, items),
                    _ => item.clone(),
                });
            }
            if out.is_empty() { Value::Null } else { Value::Array(out) }
        }
    }
}

/// Adds every struct field that has children in `set` as a member too (upstream's
/// `EnsureNamedFieldsAreMembers`), so that removing the set removes whole structs.
pub(crate) fn ensure_named_fields_are_members(set: &Set, ty: Ty<'_>) -> Set {
    let k = kind(ty);
    let mut members = set.members().to_vec();
    let mut children = Vec::with_capacity(set.children().len());
    for (pe, child) in set.children() {
        let child_type = match (pe, k) {
            (PathElement::Field(name), Kind::Map { f, .. }) => {
                if declared(f, name) {
                    members.push(pe.clone());
                }
                child_ty(f, name)
            }
            (PathElement::Key(_), Kind::List { items, .. }) => items,
            _ => None,
        };
        children.push((pe.clone(), ensure_named_fields_are_members(child, child_type)));
    }
    Set::from_parts(members, children)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Ty<'static> {
        root(Schemas::get().for_kind("apps", "v1", "Deployment").unwrap())
    }

    #[test]
    fn field_set_of_a_deployment_matches_upstream() {
        let d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx:1.26",
                        "ports": [{"containerPort": 80}], "args": ["a", "b"]}]}
                }
            }
        });
        let set = to_field_set(&d, deployment()).unwrap();
        assert_eq!(
            set.to_json_string(),
            concat!(
                r#"{"f:apiVersion":{},"f:kind":{},"f:metadata":{"f:labels":{"f:app":{}},"f:name":{}},"#,
                r#""f:spec":{"f:replicas":{},"f:selector":{},"f:template":{"f:metadata":{"f:labels":{"f:app":{}}},"#,
                r#""f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:args":{},"f:image":{},"f:name":{},"#,
                r#""f:ports":{"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}}}}}}}}"#
            )
        );
    }

    #[test]
    fn finalizers_are_a_set_and_unknown_fields_are_leaves() {
        let cm = root(Schemas::get().for_kind("", "v1", "ConfigMap").unwrap());
        let v = json!({"metadata": {"finalizers": ["a", "b"], "bogus": {"x": 1}}, "data": {}});
        let set = to_field_set(&v, cm).unwrap();
        assert_eq!(
            set.to_json_string(),
            r#"{"f:data":{},"f:metadata":{"f:bogus":{},"f:finalizers":{"v:\"a\"":{},"v:\"b\"":{}}}}"#
        );
    }

    #[test]
    fn validation_reports_duplicate_and_missing_keys() {
        let d = json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}});
        let err = validate(&d, deployment()).unwrap_err();
        assert_eq!(err.to_string(), r#".spec.template.spec.containers: duplicate entries for key [name="a"]"#);
        let d = json!({"metadata": {"finalizers": [{"x": 1}]}});
        let err = validate(&d, deployment()).unwrap_err();
        assert_eq!(
            err.to_string(),
            ".metadata.finalizers: element 0: associative list without keys has an element that's a map type"
        );
        // A container without a name takes the key's default, "".
        assert!(
            validate(&json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}), deployment()).is_ok()
        );
    }

    #[test]
    fn compare_sees_value_structs_like_typed_objects() {
        let new = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let c = compare(Some(empty_object()), Some(&new), deployment()).unwrap();
        assert_eq!(
            c.added.to_json_string(),
            r#"{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"c\"}":{".":{},"f:image":{},"f:name":{},"f:resources":{}}}}}}}"#
        );
        assert!(c.modified.is_empty() && c.removed.is_empty());
    }

    #[test]
    fn compare_reports_modified_and_removed_leaves() {
        let old = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"replicas": 1}});
        let new = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"replicas": 3}});
        let c = compare(Some(&old), Some(&new), deployment()).unwrap();
        assert_eq!(c.modified.to_json_string(), r#"{"f:spec":{"f:replicas":{}}}"#);
        assert_eq!(c.removed.to_json_string(), r#"{"f:metadata":{"f:labels":{"f:b":{}}}}"#);
        assert!(c.added.is_empty());
    }

    #[test]
    fn merge_keeps_live_order_and_places_new_items_before_the_next_shared_one() {
        let live = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}, {"name": "c", "image": "c:1"}]}}}});
        let config = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "x", "image": "x:1"}, {"name": "b", "image": "b:2"}, {"name": "y", "image": "y:1"}]}}}});
        let out = merge(Some(&live), Some(&config), deployment()).unwrap().unwrap();
        let names: Vec<_> = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| format!("{}={}", c["name"].as_str().unwrap(), c["image"].as_str().unwrap()))
            .collect();
        assert_eq!(names, ["a=a:1", "x=x:1", "b=b:2", "c=c:1", "y=y:1"]);
    }

    #[test]
    fn merge_replaces_atomic_lists_and_maps() {
        let live = json!({"spec": {"selector": {"matchLabels": {"a": "1", "b": "2"}}, "template": {"spec": {"containers": [{"name": "c", "args": ["1", "2"]}]}}}});
        let config = json!({"spec": {"selector": {"matchLabels": {"a": "1"}}, "template": {"spec": {"containers": [{"name": "c", "args": ["3"]}]}}}});
        let out = merge(Some(&live), Some(&config), deployment()).unwrap().unwrap();
        assert_eq!(out["spec"]["selector"], json!({"matchLabels": {"a": "1"}}));
        assert_eq!(out["spec"]["template"]["spec"]["containers"][0]["args"], json!(["3"]));
    }

    #[test]
    fn remove_items_empties_to_null_and_keeps_the_rest() {
        let v = json!({"metadata": {"labels": {"a": "1"}, "name": "x"}, "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "i"}, {"name": "b"}]}}}});
        let set = Set::from_json_str(r#"{"f:metadata":{"f:labels":{"f:a":{}}},"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"b\"}":{},"k:{\"name\":\"a\"}":{"f:image":{}}}}}}}"#).unwrap();
        let out = remove_items(&v, &set, deployment());
        assert_eq!(
            out,
            json!({"metadata": {"labels": null, "name": "x"}, "spec": {"template": {"spec": {"containers": [{"name": "a"}]}}}})
        );
    }

    #[test]
    fn named_fields_become_members() {
        let set = Set::from_json_str(r#"{"f:metadata":{"f:labels":{"f:a":{}}},"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"a\"}":{"f:image":{}}}}}}}"#).unwrap();
        let out = ensure_named_fields_are_members(&set, deployment());
        assert!(out.has(&[PathElement::field("spec")]));
        assert!(out.has(&[PathElement::field("metadata"), PathElement::field("labels")]));
        // Map keys under labels are not struct fields; list items are not fields at all.
        assert!(!out.has(&[
            PathElement::field("spec"),
            PathElement::field("template"),
            PathElement::field("spec"),
            PathElement::field("containers"),
            PathElement::key(vec![("name".into(), json!("a"))])
        ]));
    }
}
