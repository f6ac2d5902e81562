//! Field paths and field sets, as structured-merge-diff's `fieldpath` package has them,
//! with the `FieldsV1` encoding that `metadata.managedFields[].fieldsV1` carries.
//!
//! A [`Set`] is a trie: `members` are the paths that end at this node, `children` the
//! subtrees below it. Both are kept sorted in upstream's order (field names before
//! list keys before set values before indexes), because the wire encoding, the set
//! operations and the conflict messages all depend on that order.

use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::fmt::{self, Write as _};

/// Why a `fieldsV1` document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldsError {
    #[error("fieldsV1 must be a JSON object, got {0}")]
    NotAnObject(String),
    #[error("parsing key as path element: key must be 2 characters long: {0:?}")]
    KeyTooShort(String),
    #[error("parsing key as path element: missing colon: {0}")]
    MissingColon(String),
    #[error("parsing key as path element: {key}: {reason}")]
    BadKey { key: String, reason: String },
}

/// One step of a path into an object.
#[derive(Debug, Clone)]
pub enum PathElement {
    /// A field of a map or struct: `f:name`.
    Field(String),
    /// An item of a map-list, named by its key fields (sorted by name): `k:{"name":"nginx"}`.
    Key(Vec<(String, Value)>),
    /// An item of a set-list, named by its value: `v:"a"`.
    Value(Value),
    /// An item of a list that has no other identity: `i:0`.
    Index(i64),
}

impl PathElement {
    pub fn field(name: impl Into<String>) -> PathElement {
        PathElement::Field(name.into())
    }

    /// A key element; the fields are sorted by name as upstream keeps them.
    pub fn key(mut fields: Vec<(String, Value)>) -> PathElement {
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        PathElement::Key(fields)
    }

    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }

    /// The `f:`/`k:`/`v:`/`i:` form used as a key in `fieldsV1`.
    pub fn to_fields_key(&self) -> String {
        let mut out = String::new();
        match self {
            PathElement::Field(name) => {
                out.push_str("f:");
                out.push_str(name);
            }
            PathElement::Key(fields) => {
                out.push_str("k:{");
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json_string(&mut out, name, false);
                    out.push(':');
                    write_go_json(&mut out, value);
                }
                out.push('}');
            }
            PathElement::Value(value) => {
                out.push_str("v:");
                write_go_json(&mut out, value);
            }
            PathElement::Index(i) => {
                let _ = write!(out, "i:{i}");
            }
        }
        out
    }

    /// Parses one `fieldsV1` key. `Ok(None)` for a prefix upstream does not know, which
    /// it skips rather than rejects.
    pub fn from_fields_key(key: &str) -> Result<Option<PathElement>, FieldsError> {
        let bytes = key.as_bytes();
        if bytes.len() < 2 {
            return Err(FieldsError::KeyTooShort(key.to_string()));
        }
        if bytes[1] != b':' {
            return Err(FieldsError::MissingColon(key.to_string()));
        }
        let rest = &key[2..];
        let bad = |reason: String| FieldsError::BadKey { key: key.to_string(), reason };
        Ok(Some(match bytes[0] {
            b'f' => PathElement::Field(rest.to_string()),
            b'v' => PathElement::Value(serde_json::from_str(rest).map_err(|e| bad(e.to_string()))?),
            b'k' => match serde_json::from_str::<Value>(rest).map_err(|e| bad(e.to_string()))? {
                Value::Object(map) => PathElement::key(map.into_iter().collect()),
                other => return Err(bad(format!("expected a JSON object, got {other}"))),
            },
            b'i' => PathElement::Index(rest.parse().map_err(|e: std::num::ParseIntError| bad(e.to_string()))?),
            _ => return Ok(None),
        }))
    }
}

impl Ord for PathElement {
    fn cmp(&self, other: &PathElement) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.as_bytes().cmp(b.as_bytes()),
            (PathElement::Key(a), PathElement::Key(b)) => compare_keys(a, b),
            (PathElement::Value(a), PathElement::Value(b)) => compare_values(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

/// One step of a path a walk is at, borrowed: a field's name, or an element it has.
#[derive(Clone, Copy)]
pub(crate) enum Step<'a> {
    Field(&'a str),
    Elem(&'a PathElement),
}

impl Step<'_> {
    pub(crate) fn owned_element(&self) -> PathElement {
        match self {
            Step::Field(name) => PathElement::Field((*name).to_string()),
            Step::Elem(pe) => (*pe).clone(),
        }
    }

    /// How `pe` orders against this step, as against [`Step::owned_element`].
    fn cmp_from(&self, pe: &PathElement) -> Ordering {
        match (self, pe) {
            (Step::Field(name), PathElement::Field(f)) => f.as_bytes().cmp(name.as_bytes()),
            // Fields rank first.
            (Step::Field(_), other) => other.rank().cmp(&0),
            (Step::Elem(e), other) => other.cmp(e),
        }
    }
}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &PathElement) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &PathElement) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

/// Upstream's `PathElement.String()`: `.name`, `[name="nginx"]`, `[=value]`, `[0]`.
impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(fields) => {
                f.write_char('[')?;
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write!(f, "{name}={}", GoValue(value))?;
                }
                f.write_char(']')
            }
            PathElement::Value(value) => write!(f, "[={}]", GoValue(value)),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A path from the root of an object, e.g. `.spec.template.spec.containers[name="nginx"].image`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Path(pub Vec<PathElement>);

impl Path {
    /// A path of field names, e.g. `Path::fields(&["spec", "replicas"])`.
    pub fn fields(names: &[&str]) -> Path {
        Path(names.iter().map(|n| PathElement::field(*n)).collect())
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for pe in &self.0 {
            write!(f, "{pe}")?;
        }
        Ok(())
    }
}

/// A set of field paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Set {
    members: Vec<PathElement>,
    children: Vec<(PathElement, Set)>,
}

impl Set {
    pub const EMPTY: Set = Set { members: Vec::new(), children: Vec::new() };

    pub fn new() -> Set {
        Set::default()
    }

    /// Builds a set from parts that may be unsorted or repeated.
    pub(crate) fn from_parts(mut members: Vec<PathElement>, mut children: Vec<(PathElement, Set)>) -> Set {
        if !members.is_sorted() {
            members.sort();
        }
        members.dedup();
        if !children.is_sorted_by(|a, b| a.0 <= b.0) {
            children.sort_by(|a, b| a.0.cmp(&b.0));
        }
        if children.windows(2).any(|w| w[0].0 == w[1].0) {
            let mut merged: Vec<(PathElement, Set)> = Vec::with_capacity(children.len());
            for (pe, set) in children {
                match merged.last_mut() {
                    Some((last, existing)) if *last == pe => *existing = existing.union(&set),
                    _ => merged.push((pe, set)),
                }
            }
            children = merged;
        }
        Set { members, children }
    }

    pub fn members(&self) -> &[PathElement] {
        &self.members
    }

    pub fn children(&self) -> &[(PathElement, Set)] {
        &self.children
    }

    pub fn insert(&mut self, path: &[PathElement]) {
        self.insert_with(path, |set, pe| set.cmp(pe), PathElement::clone);
    }

    /// [`Set::insert`] of a path borrowed from a walk: its elements are copied only
    /// where the set gains a node (a create's field walk inserts every leaf).
    pub(crate) fn insert_steps(&mut self, path: &[Step<'_>]) {
        self.insert_with(path, |set, step| step.cmp_from(set), Step::owned_element);
    }

    fn insert_with<T>(
        &mut self,
        path: &[T],
        cmp: impl Fn(&PathElement, &T) -> Ordering,
        owned: impl Fn(&T) -> PathElement,
    ) {
        let Some((last, prefix)) = path.split_last() else {
            return;
        };
        let mut node = self;
        for pe in prefix {
            let at = match node.children.binary_search_by(|(c, _)| cmp(c, pe)) {
                Ok(at) => at,
                Err(at) => {
                    node.children.insert(at, (owned(pe), Set::default()));
                    at
                }
            };
            node = &mut node.children[at].1;
        }
        if let Err(at) = node.members.binary_search_by(|m| cmp(m, last)) {
            node.members.insert(at, owned(last));
        }
    }

    pub fn has(&self, path: &[PathElement]) -> bool {
        let Some((last, prefix)) = path.split_last() else {
            return false;
        };
        let mut node = self;
        for pe in prefix {
            match node.child(pe) {
                Some(child) => node = child,
                None => return false,
            }
        }
        node.has_member(last)
    }

    pub fn has_member(&self, pe: &PathElement) -> bool {
        self.members.binary_search(pe).is_ok()
    }

    /// The subtree under `pe` (upstream's `WithPrefix`), if any.
    pub fn child(&self, pe: &PathElement) -> Option<&Set> {
        self.children.binary_search_by(|(c, _)| c.cmp(pe)).ok().map(|at| &self.children[at].1)
    }

    /// True when no path is in the set (empty children do not count).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.iter().all(|(_, c)| c.is_empty())
    }

    /// The number of paths in the set.
    pub fn len(&self) -> usize {
        self.members.len() + self.children.iter().map(|(_, c)| c.len()).sum::<usize>()
    }

    pub fn union(&self, other: &Set) -> Set {
        Set {
            members: merge_sorted(&self.members, &other.members),
            children: union_children(&self.children, &other.children),
        }
    }

    pub fn intersection(&self, other: &Set) -> Set {
        let members = self.members.iter().filter(|m| other.has_member(m)).cloned().collect();
        let mut children = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < self.children.len() && j < other.children.len() {
            match self.children[i].0.cmp(&other.children[j].0) {
                Ordering::Less => i += 1,
                Ordering::Greater => j += 1,
                Ordering::Equal => {
                    let both = self.children[i].1.intersection(&other.children[j].1);
                    if !both.is_empty() {
                        children.push((self.children[i].0.clone(), both));
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
        Set { members, children }
    }

    /// Paths of `self` not in `other`. Like upstream, a member of `other` does not
    /// remove the subtree below the same element: use [`Set::recursive_difference`] for that.
    pub fn difference(&self, other: &Set) -> Set {
        let members = self.members.iter().filter(|m| !other.has_member(m)).cloned().collect();
        let mut children = Vec::with_capacity(self.children.len());
        let mut j = 0;
        for (pe, set) in &self.children {
            while j < other.children.len() && other.children[j].0 < *pe {
                j += 1;
            }
            if j < other.children.len() && other.children[j].0 == *pe {
                let diff = set.difference(&other.children[j].1);
                if !diff.is_empty() {
                    children.push((pe.clone(), diff));
                }
            } else {
                children.push((pe.clone(), set.clone()));
            }
        }
        Set { members, children }
    }

    /// Like [`Set::difference`], but a member of `other` also removes everything below it.
    pub fn recursive_difference(&self, other: &Set) -> Set {
        let members = self.members.iter().filter(|m| !other.has_member(m)).cloned().collect();
        let mut children = Vec::with_capacity(self.children.len());
        for (pe, set) in &self.children {
            if other.has_member(pe) {
                continue;
            }
            match other.child(pe) {
                Some(o) => {
                    let diff = set.recursive_difference(o);
                    if !diff.is_empty() {
                        children.push((pe.clone(), diff));
                    }
                }
                None => children.push((pe.clone(), set.clone())),
            }
        }
        Set { members, children }
    }

    /// Whether every path of `self` is in `other`.
    pub fn is_subset(&self, other: &Set) -> bool {
        self.members.iter().all(|m| other.has_member(m))
            && self.children.iter().all(|(pe, child)| match other.child(pe) {
                Some(o) => child.is_subset(o),
                None => child.is_empty(),
            })
    }

    /// Whether some path is in both sets (without building the intersection).
    pub fn intersects(&self, other: &Set) -> bool {
        if self.members.iter().any(|m| other.has_member(m)) {
            return true;
        }
        self.children.iter().any(|(pe, child)| other.child(pe).is_some_and(|o| child.intersects(o)))
    }

    /// `self = self.difference(other)`, without copying what stays.
    pub fn difference_in_place(&mut self, other: &Set) {
        if !other.members.is_empty() {
            self.members.retain(|m| !other.has_member(m));
        }
        if other.children.is_empty() {
            return;
        }
        self.children.retain_mut(|(pe, child)| match other.child(pe) {
            Some(o) => {
                child.difference_in_place(o);
                !child.is_empty()
            }
            None => true,
        });
    }

    /// `self = self.recursive_difference(other)`, without copying what stays.
    pub fn recursive_difference_in_place(&mut self, other: &Set) {
        if !other.members.is_empty() {
            self.members.retain(|m| !other.has_member(m));
        }
        self.children.retain_mut(|(pe, child)| {
            if other.has_member(pe) {
                return false;
            }
            match other.child(pe) {
                Some(o) => {
                    child.recursive_difference_in_place(o);
                    !child.is_empty()
                }
                None => true,
            }
        });
    }

    /// `self = self.union(&other)`, moving `other`'s elements in.
    pub fn union_in_place(&mut self, other: Set) {
        let members = std::mem::take(&mut self.members);
        self.members = merge_sorted_owned(members, other.members);
        let mut out = Vec::with_capacity(self.children.len() + other.children.len());
        let mut a = std::mem::take(&mut self.children).into_iter().peekable();
        let mut b = other.children.into_iter().peekable();
        loop {
            let order = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => x.0.cmp(&y.0),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => break,
            };
            match order {
                Ordering::Less => out.extend(a.next()),
                Ordering::Greater => out.extend(b.next()),
                Ordering::Equal => {
                    if let (Some((pe, mut x)), Some((_, y))) = (a.next(), b.next()) {
                        x.union_in_place(y);
                        out.push((pe, x));
                    }
                }
            }
        }
        self.children = out;
    }

    /// Calls `f` with every path in the set, in upstream's iteration order (members of a
    /// node before its children).
    pub fn iterate(&self, mut f: impl FnMut(&[PathElement])) {
        let mut prefix = Vec::new();
        self.iterate_prefix(&mut prefix, &mut f);
    }

    fn iterate_prefix(&self, prefix: &mut Vec<PathElement>, f: &mut impl FnMut(&[PathElement])) {
        for m in &self.members {
            prefix.push(m.clone());
            f(prefix);
            prefix.pop();
        }
        for (pe, child) in &self.children {
            prefix.push(pe.clone());
            child.iterate_prefix(prefix, f);
            prefix.pop();
        }
    }

    /// Every path in the set, in upstream's iteration order.
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.iterate(|p| out.push(Path(p.to_vec())));
        out
    }

    /// The set as a `fieldsV1` JSON value.
    pub fn to_fields_v1(&self) -> Value {
        Value::Object(self.emit_value(false))
    }

    fn emit_value(&self, include_self: bool) -> Map<String, Value> {
        let mut out = Map::new();
        if include_self && !(self.members.is_empty() && self.children.is_empty()) {
            out.insert(".".to_string(), Value::Object(Map::new()));
        }
        self.walk_entries(|pe, child, is_member| {
            let value = match child {
                Some(set) => Value::Object(set.emit_value(is_member)),
                None => Value::Object(Map::new()),
            };
            out.insert(pe.to_fields_key(), value);
        });
        out
    }

    /// The exact bytes upstream writes for this set (key order and escaping included),
    /// independent of how `serde_json` orders object keys.
    pub fn to_json_string(&self) -> String {
        let mut out = String::from("{");
        self.emit_string(false, &mut out);
        out.push('}');
        out
    }

    fn emit_string(&self, include_self: bool, out: &mut String) {
        let mut first = true;
        let mut sep = |out: &mut String| {
            if !std::mem::take(&mut first) {
                out.push(',');
            }
        };
        if include_self && !(self.members.is_empty() && self.children.is_empty()) {
            sep(out);
            out.push_str("\".\":{}");
        }
        self.walk_entries(|pe, child, is_member| {
            sep(out);
            write_json_string(out, &pe.to_fields_key(), false);
            out.push_str(":{");
            if let Some(set) = child {
                set.emit_string(is_member, out);
            }
            out.push('}');
        });
    }

    /// Visits members and children merged in order: `(element, child set, is a member)`.
    fn walk_entries<'a>(&'a self, mut f: impl FnMut(&'a PathElement, Option<&'a Set>, bool)) {
        let (mut mi, mut ci) = (0, 0);
        while mi < self.members.len() || ci < self.children.len() {
            let order = match (self.members.get(mi), self.children.get(ci)) {
                (Some(m), Some((c, _))) => m.cmp(c),
                (Some(_), None) => Ordering::Less,
                _ => Ordering::Greater,
            };
            match order {
                Ordering::Less => {
                    f(&self.members[mi], None, true);
                    mi += 1;
                }
                Ordering::Greater => {
                    let (pe, set) = &self.children[ci];
                    f(pe, Some(set), false);
                    ci += 1;
                }
                Ordering::Equal => {
                    let (pe, set) = &self.children[ci];
                    f(pe, Some(set), true);
                    mi += 1;
                    ci += 1;
                }
            }
        }
    }

    /// Reads a `fieldsV1` value. Unknown key prefixes are skipped, as upstream does.
    pub fn from_fields_v1(value: &Value) -> Result<Set, FieldsError> {
        Ok(read_v1(value)?.0.unwrap_or_default())
    }

    /// Parses `fieldsV1` JSON text.
    pub fn from_json_str(text: &str) -> Result<Set, FieldsError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| FieldsError::NotAnObject(format!("invalid JSON: {e}")))?;
        Set::from_fields_v1(&value)
    }
}

/// The fields `obj` sets, given the schema of its kind (upstream's `ToFieldSet`): its
/// leaves, its list items, and the map entries that are null, empty or undeclared.
pub fn from_object(obj: &Value, schema: &api::schema::Node) -> Result<Set, super::TypedErrors> {
    super::typed::to_field_set(obj, super::typed::root(schema))
}

/// Returns the children found under one `fieldsV1` object and whether the object marks
/// its own path as a member (`"."`, or no children at all).
fn read_v1(value: &Value) -> Result<(Option<Set>, bool), FieldsError> {
    let Value::Object(map) = value else {
        return Err(FieldsError::NotAnObject(value.to_string()));
    };
    let mut members = Vec::new();
    let mut children = Vec::new();
    let mut is_member = false;
    for (key, child) in map {
        if key == "." {
            is_member = true;
            continue;
        }
        let Some(pe) = PathElement::from_fields_key(key)? else {
            continue;
        };
        let (grandchildren, child_is_member) = read_v1(child)?;
        if child_is_member {
            members.push(pe.clone());
        }
        if let Some(g) = grandchildren {
            children.push((pe, g));
        }
    }
    if members.is_empty() && children.is_empty() {
        return Ok((None, true));
    }
    Ok((Some(Set::from_parts(members, children)), is_member))
}

fn merge_sorted_owned(a: Vec<PathElement>, b: Vec<PathElement>) -> Vec<PathElement> {
    if b.is_empty() {
        return a;
    }
    if a.is_empty() {
        return b;
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let mut a = a.into_iter().peekable();
    let mut b = b.into_iter().peekable();
    while let (Some(x), Some(y)) = (a.peek(), b.peek()) {
        match x.cmp(y) {
            Ordering::Less => out.extend(a.next()),
            Ordering::Greater => out.extend(b.next()),
            Ordering::Equal => {
                out.extend(a.next());
                b.next();
            }
        }
    }
    out.extend(a);
    out.extend(b);
    out
}

/// Whether a `fieldsV1` document holds some path of `set`, read without decoding the
/// document: keys are looked up in the canonical spelling first, and only list keys
/// and values spelled otherwise are parsed.
pub(crate) fn fields_v1_intersects(raw: &Value, set: &Set) -> Result<bool, FieldsError> {
    let Value::Object(map) = raw else { return Err(FieldsError::NotAnObject(raw.to_string())) };
    for m in &set.members {
        if raw_get(map, m)?.is_some_and(raw_is_member) {
            return Ok(true);
        }
    }
    for (pe, child) in &set.children {
        if let Some(v) = raw_get(map, pe)?
            && fields_v1_intersects(v, child)?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether a `fieldsV1` document holds no path at all.
pub(crate) fn fields_v1_is_empty(raw: &Value) -> bool {
    raw.as_object().is_none_or(|m| !m.keys().any(|k| known_key(k)))
}

fn known_key(k: &str) -> bool {
    let b = k.as_bytes();
    b.len() >= 2 && b[1] == b':' && matches!(b[0], b'f' | b'k' | b'v' | b'i')
}

/// As `read_v1` decides it: a node is a member when it says so with `"."`, or when it
/// has nothing below it.
fn raw_is_member(v: &Value) -> bool {
    v.as_object().is_some_and(|m| m.contains_key(".") || !m.keys().any(|k| known_key(k)))
}

fn raw_get<'a>(map: &'a Map<String, Value>, pe: &PathElement) -> Result<Option<&'a Value>, FieldsError> {
    Ok(match raw_key(map, pe)? {
        Some(key) => map.get(&key),
        None => None,
    })
}

/// The key under which a `fieldsV1` object holds `pe`, however it is spelled.
fn raw_key(map: &Map<String, Value>, pe: &PathElement) -> Result<Option<String>, FieldsError> {
    let key = pe.to_fields_key();
    if map.contains_key(&key) {
        return Ok(Some(key));
    }
    if let PathElement::Field(_) = pe {
        return Ok(None);
    }
    for k in map.keys() {
        if k.as_bytes().first() == key.as_bytes().first()
            && k.as_bytes().get(1) == Some(&b':')
            && PathElement::from_fields_key(k)?.is_some_and(|p| p == *pe)
        {
            return Ok(Some(k.clone()));
        }
    }
    Ok(None)
}

fn has_known_keys(m: &Map<String, Value>) -> bool {
    m.keys().any(|k| known_key(k))
}

/// Removes `set` from a `fieldsV1` object in place, as [`Set::difference`] would, and
/// keeps the encoding canonical: a member left without children is `{}`, a node that is
/// neither a member nor has children any more goes.
pub(crate) fn fields_v1_remove(map: &mut Map<String, Value>, set: &Set) -> Result<(), FieldsError> {
    for m in &set.members {
        let Some(key) = raw_key(map, m)? else { continue };
        match map.get_mut(&key) {
            Some(Value::Object(node)) if has_known_keys(node) => {
                node.remove(".");
            }
            _ => {
                map.remove(&key);
            }
        }
    }
    for (pe, child) in &set.children {
        let Some(key) = raw_key(map, pe)? else { continue };
        let Some(Value::Object(node)) = map.get_mut(&key) else { continue };
        let member = node.contains_key(".") || !has_known_keys(node);
        fields_v1_remove(node, child)?;
        if !has_known_keys(node) {
            if member {
                node.clear();
            } else {
                map.remove(&key);
            }
        }
    }
    Ok(())
}

/// Adds `set` to a `fieldsV1` object in place, as [`Set::union`] would.
pub(crate) fn fields_v1_insert(map: &mut Map<String, Value>, set: &Set) -> Result<(), FieldsError> {
    for m in &set.members {
        let key = raw_key(map, m)?.unwrap_or_else(|| m.to_fields_key());
        match map.get_mut(&key) {
            Some(Value::Object(node)) => {
                if has_known_keys(node) && !node.contains_key(".") {
                    node.insert(".".into(), Value::Object(Map::new()));
                }
            }
            _ => {
                map.insert(key, Value::Object(Map::new()));
            }
        }
    }
    for (pe, child) in &set.children {
        let key = raw_key(map, pe)?.unwrap_or_else(|| pe.to_fields_key());
        let existed = map.contains_key(&key);
        let node = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        let Value::Object(node) = node else { continue };
        // Whether the node was a member before: `"."`, or nothing below it.
        let member = existed && (node.contains_key(".") || !has_known_keys(node));
        fields_v1_insert(node, child)?;
        if member && has_known_keys(node) && !node.contains_key(".") {
            node.insert(".".into(), Value::Object(Map::new()));
        }
    }
    Ok(())
}

fn merge_sorted(a: &[PathElement], b: &[PathElement]) -> Vec<PathElement> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            Ordering::Less => {
                out.push(a[i].clone());
                i += 1;
            }
            Ordering::Greater => {
                out.push(b[j].clone());
                j += 1;
            }
            Ordering::Equal => {
                out.push(a[i].clone());
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

fn union_children(a: &[(PathElement, Set)], b: &[(PathElement, Set)]) -> Vec<(PathElement, Set)> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            Ordering::Less => {
                out.push(a[i].clone());
                i += 1;
            }
            Ordering::Greater => {
                out.push(b[j].clone());
                j += 1;
            }
            Ordering::Equal => {
                out.push((a[i].0.clone(), a[i].1.union(&b[j].1)));
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

fn compare_keys(a: &[(String, Value)], b: &[(String, Value)]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let c = x.0.as_bytes().cmp(y.0.as_bytes()).then_with(|| compare_values(&x.1, &y.1));
        if c != Ordering::Equal {
            return c;
        }
    }
    a.len().cmp(&b.len())
}

/// A JSON number as upstream's value package sees it: an integer, or a float.
enum Num {
    Int(i128),
    Float(f64),
}

fn num(n: &serde_json::Number) -> Num {
    if let Some(i) = n.as_i64() {
        Num::Int(i as i128)
    } else if let Some(u) = n.as_u64() {
        Num::Int(u as i128)
    } else {
        Num::Float(n.as_f64().unwrap_or(0.0))
    }
}

fn type_rank(v: &Value) -> u8 {
    match v {
        Value::Number(n) => match num(n) {
            Num::Float(_) => 0,
            Num::Int(_) => 1,
        },
        Value::String(_) => 2,
        Value::Bool(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
        Value::Null => 6,
    }
}

/// Upstream's `value.Compare`: floats, then ints, strings, bools, lists, maps, null;
/// an int and a float compare as numbers.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (num(x), num(y)) {
            (Num::Int(x), Num::Int(y)) => x.cmp(&y),
            (Num::Int(x), Num::Float(y)) => (x as f64).total_cmp(&y),
            (Num::Float(x), Num::Int(y)) => x.total_cmp(&(y as f64)),
            (Num::Float(x), Num::Float(y)) => x.total_cmp(&y),
        },
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let c = compare_values(p, q);
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            let mut xs: Vec<_> = x.iter().collect();
            let mut ys: Vec<_> = y.iter().collect();
            xs.sort_by(|p, q| p.0.cmp(q.0));
            ys.sort_by(|p, q| p.0.cmp(q.0));
            for (p, q) in xs.iter().zip(&ys) {
                let c = p.0.as_bytes().cmp(q.0.as_bytes()).then_with(|| compare_values(p.1, q.1));
                if c != Ordering::Equal {
                    return c;
                }
            }
            xs.len().cmp(&ys.len())
        }
        (Value::Null, Value::Null) => Ordering::Equal,
        _ => type_rank(a).cmp(&type_rank(b)),
    }
}

/// Upstream's `value.Equals`: structural, with `1` equal to `1.0`.
pub fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => match (num(x), num(y)) {
            (Num::Int(x), Num::Int(y)) => x == y,
            (Num::Int(x), Num::Float(y)) | (Num::Float(y), Num::Int(x)) => x as f64 == y,
            (Num::Float(x), Num::Float(y)) => x == y,
        },
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Null, Value::Null) => true,
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| values_equal(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| values_equal(v, w)))
        }
        _ => false,
    }
}

/// Writes `value` as Go's `encoding/json` (and upstream's jsoniter in compatible mode)
/// would: sorted object keys, `<`, `>` and `&` escaped in strings, Go float formatting.
pub(crate) fn write_go_json(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match num(n) {
            Num::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Num::Float(f) => write_go_float_json(out, f),
        },
        Value::String(s) => write_json_string(out, s, true),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(out, k, true);
                out.push(':');
                write_go_json(out, v);
            }
            out.push('}');
        }
    }
}

/// Go's float encoding: plain decimal between 1e-6 and 1e21, exponent form outside.
fn write_go_float_json(out: &mut String, f: f64) {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => {
                let _ = write!(out, "{mantissa}e+{exp}");
            }
            _ => out.push_str(&s),
        }
    } else {
        let _ = write!(out, "{f}");
    }
}

/// A JSON string as jsoniter writes it: `"`, `\`, `\n`, `\r`, `\t` escaped, other control
/// characters as `\u00XX`; with `html`, also `<`, `>`, `&`, U+2028 and U+2029.
pub(crate) fn write_json_string(out: &mut String, s: &str, html: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' if html => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            '\u{2028}' | '\u{2029}' if html => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A value as Go's `value.ToString` prints it inside path strings: strings quoted as
/// `%q` does, numbers and booleans bare.
struct GoValue<'a>(&'a Value);

impl fmt::Display for GoValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Number(n) => match num(n) {
                Num::Int(i) => write!(f, "{i}"),
                Num::Float(x) => f.write_str(&go_float_v(x)),
            },
            Value::String(s) => f.write_str(&go_quote(s)),
            Value::Array(items) => {
                f.write_char('[')?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write!(f, "{}", GoValue(item))?;
                }
                f.write_char(']')
            }
            Value::Object(map) => {
                for (k, v) in map {
                    write!(f, "{k}={}", GoValue(v))?;
                }
                Ok(())
            }
        }
    }
}

/// Go's `%v` for a float64: shortest digits, exponent form when the decimal exponent is
/// below -4 or at least 6 (so `1e+06`, as `fmt.Println(1e6)` prints).
fn go_float_v(x: f64) -> String {
    let abs = x.abs();
    if abs != 0.0 && !(1e-4..1e6).contains(&abs) {
        let s = format!("{x:e}");
        match s.split_once('e') {
            Some((m, e)) => {
                let (sign, digits) = match e.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', e),
                };
                format!("{m}e{sign}{digits:0>2}")
            }
            None => s,
        }
    } else {
        format!("{x}")
    }
}

/// Go's `strconv.Quote`.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(parts: &[PathElement]) -> Vec<PathElement> {
        parts.to_vec()
    }

    fn f(name: &str) -> PathElement {
        PathElement::field(name)
    }

    fn k(name: &str, value: Value) -> PathElement {
        PathElement::key(vec![(name.to_string(), value)])
    }

    #[test]
    fn fields_v1_round_trips_with_the_dot_marker() {
        let text = r#"{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{}}}}}"#;
        let set = Set::from_json_str(text).unwrap();
        assert!(set.has(&p(&[f("metadata"), f("labels"), f("app")])));
        assert!(set.has(&p(&[f("spec"), f("containers"), k("name", json!("nginx"))])));
        assert!(set.has(&p(&[f("spec"), f("containers"), k("name", json!("nginx")), f("image")])));
        assert!(!set.has(&p(&[f("spec")])));
        assert_eq!(set.len(), 3);
        assert_eq!(set.to_json_string(), text);
        assert_eq!(set.to_fields_v1(), serde_json::from_str::<Value>(text).unwrap());
    }

    #[test]
    fn order_is_fields_keys_values_indexes() {
        let mut set = Set::new();
        set.insert(&[PathElement::Index(0)]);
        set.insert(&[PathElement::Value(json!("a"))]);
        set.insert(&[k("name", json!("x"))]);
        set.insert(&[f("z")]);
        set.insert(&[f("a")]);
        assert_eq!(set.to_json_string(), r#"{"f:a":{},"f:z":{},"k:{\"name\":\"x\"}":{},"v:\"a\"":{},"i:0":{}}"#);
    }

    #[test]
    fn keys_sort_by_value_not_by_text() {
        let mut set = Set::new();
        for port in [10, 9, 80] {
            set.insert(&[PathElement::key(vec![
                ("protocol".into(), json!("TCP")),
                ("containerPort".into(), json!(port)),
            ])]);
        }
        assert_eq!(
            set.to_json_string(),
            r#"{"k:{\"containerPort\":9,\"protocol\":\"TCP\"}":{},"k:{\"containerPort\":10,\"protocol\":\"TCP\"}":{},"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{}}"#
        );
        let parsed = Set::from_fields_v1(&set.to_fields_v1()).unwrap();
        assert_eq!(parsed, set);
    }

    #[test]
    fn key_values_escape_html_like_go() {
        let pe = PathElement::Value(json!("a<b>&\"c\"\n"));
        assert_eq!(pe.to_fields_key(), r#"v:"a\u003cb\u003e\u0026\"c\"\n""#);
        let back = PathElement::from_fields_key(&pe.to_fields_key()).unwrap().unwrap();
        assert_eq!(back, pe);
    }

    #[test]
    fn paths_print_as_upstream() {
        let path =
            Path(vec![f("spec"), f("template"), f("spec"), f("containers"), k("name", json!("nginx")), f("image")]);
        assert_eq!(path.to_string(), r#".spec.template.spec.containers[name="nginx"].image"#);
        let ports = Path(vec![
            f("ports"),
            PathElement::key(vec![("protocol".into(), json!("TCP")), ("containerPort".into(), json!(80))]),
        ]);
        assert_eq!(ports.to_string(), r#".ports[containerPort=80,protocol="TCP"]"#);
        assert_eq!(Path(vec![f("finalizers"), PathElement::Value(json!("a"))]).to_string(), r#".finalizers[="a"]"#);
        assert_eq!(Path(vec![f("x"), PathElement::Index(3)]).to_string(), ".x[3]");
        assert_eq!(go_float_v(1e6), "1e+06");
        assert_eq!(go_float_v(0.5), "0.5");
    }

    #[test]
    fn set_operations_follow_upstream() {
        let a = Set::from_json_str(r#"{"f:a":{},"f:b":{"f:c":{},"f:d":{}},"f:e":{".":{},"f:g":{}}}"#).unwrap();
        let b = Set::from_json_str(r#"{"f:b":{"f:c":{}},"f:e":{}}"#).unwrap();
        assert_eq!(a.difference(&b).to_json_string(), r#"{"f:a":{},"f:b":{"f:d":{}},"f:e":{"f:g":{}}}"#);
        // A member of the subtrahend removes everything below it only recursively.
        assert_eq!(a.recursive_difference(&b).to_json_string(), r#"{"f:a":{},"f:b":{"f:d":{}}}"#);
        assert_eq!(a.intersection(&b).to_json_string(), r#"{"f:b":{"f:c":{}},"f:e":{}}"#);
        assert_eq!(b.union(&a), a.union(&b));
        assert_eq!(a.union(&b).len(), 5);
        assert!(a.difference(&a).is_empty());
    }

    #[test]
    fn borrowed_steps_insert_as_their_elements_do() {
        let key = PathElement::Key(vec![("name".into(), json!("c"))]);
        let value = PathElement::Value(json!("v"));
        let index = PathElement::Index(2);
        let paths: Vec<Vec<Step<'_>>> = vec![
            vec![Step::Field("spec"), Step::Field("containers"), Step::Elem(&key), Step::Field("image")],
            vec![Step::Field("spec"), Step::Field("containers"), Step::Elem(&key)],
            vec![Step::Field("spec"), Step::Elem(&index)],
            vec![Step::Field("spec"), Step::Elem(&value), Step::Field("a")],
            vec![Step::Field("spec"), Step::Field("b")],
            vec![Step::Field("metadata"), Step::Field("labels"), Step::Field("x")],
            vec![Step::Field("spec"), Step::Field("containers"), Step::Elem(&key), Step::Field("image")],
        ];
        let (mut borrowed, mut owned) = (Set::new(), Set::new());
        for path in &paths {
            borrowed.insert_steps(path);
            owned.insert(&path.iter().map(Step::owned_element).collect::<Vec<_>>());
        }
        assert_eq!(borrowed, owned);
        assert_eq!(borrowed.to_fields_v1(), owned.to_fields_v1());
    }

    #[test]
    fn in_place_operations_match_the_copying_ones() {
        let a = Set::from_json_str(r#"{"f:a":{},"f:b":{"f:c":{},"f:d":{}},"f:e":{".":{},"f:g":{}}}"#).unwrap();
        let b = Set::from_json_str(r#"{"f:b":{"f:c":{},"f:x":{}},"f:e":{},"f:z":{"f:y":{}}}"#).unwrap();
        let mut d = a.clone();
        d.difference_in_place(&b);
        assert_eq!(d, a.difference(&b));
        let mut r = a.clone();
        r.recursive_difference_in_place(&b);
        assert_eq!(r, a.recursive_difference(&b));
        let mut u = a.clone();
        u.union_in_place(b.clone());
        assert_eq!(u, a.union(&b));
        assert!(a.intersects(&b));
        assert!(a.difference(&b).is_subset(&a) && !a.is_subset(&b) && a.is_subset(&u));
        assert!(!a.intersects(&Set::from_json_str(r#"{"f:b":{"f:x":{}}}"#).unwrap()));
    }

    #[test]
    fn raw_documents_answer_intersections_without_decoding() {
        let raw: Value = serde_json::from_str(
            r#"{"f:spec":{"f:containers":{"k:{\"name\": \"a\"}":{".":{},"f:image":{}},"k:{\"name\":\"b\"}":{"f:x":{}}}}}"#,
        )
        .unwrap();
        let probe = |text: &str| fields_v1_intersects(&raw, &Set::from_json_str(text).unwrap()).unwrap();
        // The stored key is spelled with a space; it still matches.
        assert!(probe(r#"{"f:spec":{"f:containers":{"k:{\"name\":\"a\"}":{"f:image":{}}}}}"#));
        assert!(probe(r#"{"f:spec":{"f:containers":{"k:{\"name\":\"a\"}":{}}}}"#));
        assert!(!probe(r#"{"f:spec":{"f:containers":{"k:{\"name\":\"b\"}":{}}}}"#));
        assert!(!probe(r#"{"f:spec":{"f:replicas":{}}}"#));
        assert!(!fields_v1_is_empty(&raw));
        assert!(fields_v1_is_empty(&serde_json::json!({})));
    }

    #[test]
    fn raw_documents_are_edited_in_place_like_decoded_sets() {
        let docs = [
            r#"{"f:a":{},"f:b":{"f:c":{},"f:d":{}},"f:e":{".":{},"f:g":{}},"f:l":{"k:{\"name\":\"x\"}":{".":{},"f:i":{}}}}"#,
            r#"{"f:b":{".":{},"f:c":{}},"f:e":{}}"#,
            r#"{}"#,
        ];
        let edits = [
            r#"{"f:b":{"f:c":{},"f:x":{}},"f:e":{},"f:z":{"f:y":{}}}"#,
            r#"{"f:a":{"f:new":{}},"f:e":{"f:g":{}},"f:l":{"k:{\"name\":\"x\"}":{}}}"#,
            r#"{"f:b":{"f:d":{}},"f:l":{"k:{\"name\":\"x\"}":{"f:i":{}}}}"#,
            r#"{"f:b":{},"f:e":{"f:g":{}}}"#,
        ];
        for doc in docs {
            for edit in edits {
                let raw: Value = serde_json::from_str(doc).unwrap();
                let set = Set::from_fields_v1(&raw).unwrap();
                let other = Set::from_json_str(edit).unwrap();

                let mut removed = raw.as_object().unwrap().clone();
                fields_v1_remove(&mut removed, &other).unwrap();
                let expected = set.difference(&other);
                assert_eq!(Value::Object(removed.clone()), expected.to_fields_v1(), "{doc} - {edit}");
                assert_eq!(Set::from_fields_v1(&Value::Object(removed)).unwrap(), expected);

                let mut added = raw.as_object().unwrap().clone();
                fields_v1_insert(&mut added, &other).unwrap();
                let expected = set.union(&other);
                assert_eq!(Value::Object(added), expected.to_fields_v1(), "{doc} + {edit}");
            }
        }
    }

    #[test]
    fn unknown_prefixes_are_skipped_and_bad_keys_rejected() {
        let set = Set::from_json_str(r#"{"x:what":{},"f:a":{}}"#).unwrap();
        assert_eq!(set.len(), 1);
        assert!(matches!(Set::from_json_str(r#"{"fa":{}}"#), Err(FieldsError::MissingColon(_))));
        assert!(matches!(Set::from_json_str(r#"{"k:[1]":{}}"#), Err(FieldsError::BadKey { .. })));
        assert!(matches!(Set::from_json_str(r#"{"f:a":1}"#), Err(FieldsError::NotAnObject(_))));
        assert!(matches!(Set::from_json_str(r#"{"i:x":{}}"#), Err(FieldsError::BadKey { .. })));
    }

    #[test]
    fn ints_and_floats_are_the_same_key() {
        assert_eq!(PathElement::Value(json!(1)), PathElement::Value(json!(1.0)));
        assert!(values_equal(&json!({"a": [1, 2.0]}), &json!({"a": [1.0, 2]})));
        assert_eq!(PathElement::Value(json!(1.5)).to_fields_key(), "v:1.5");
        assert_eq!(PathElement::Value(json!(1e-7)).to_fields_key(), "v:1e-7");
    }
}
