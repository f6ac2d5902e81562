//! Strategic merge patch (`application/strategic-merge-patch+json`): what `kubectl apply`,
//! `kubectl edit`, `cordon` and most `kubectl patch` calls send for built-in kinds.
//!
//! It is a JSON merge patch that knows, from the kind's schema, which lists merge by a key
//! (`x-kubernetes-patch-strategy: merge` plus `x-kubernetes-patch-merge-key`) and which
//! fields are replaced wholesale, and that understands these directives in the patch:
//!
//! - `"$patch": "replace" | "delete"` in a map (replace it by the rest of the patch map, or
//!   clear it) and `"$patch": "replace" | "delete"` as a list element (replace the whole
//!   list by the patch list, or delete the element with that merge key);
//! - `"$retainKeys": [..]` in a map: drop the object's keys not listed;
//! - `"$setElementOrder/<list>": [..]`: the order of the merged list;
//! - `"$deleteFromPrimitiveList/<list>": [..]`: values to remove from a list of primitives.
//!
//! This follows upstream's `k8s.io/apimachinery/pkg/util/strategicpatch` (`mergeMap`,
//! `mergeSlice`, `mergePatchIntoOriginal`) step by step, including its error messages and
//! the order it gives merged lists. Where upstream would leave a directive in the result
//! (inside values it copies verbatim), we strip it, and nulls inside such values are dropped
//! as the typed round trip upstream does after patching would drop them. `$patch: merge`
//! is rejected, as upstream rejects it. A kind or field without a schema falls back to JSON
//! merge patch semantics: maps merge, lists are replaced.

use super::{PatchError, go_format};
use api::schema::{Field, Node, Schemas, Type};
use serde_json::{Map, Value};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

type Object = Map<String, Value>;

/// Applies `patch` to `original`. `schema` is the kind's top-level definition, e.g.
/// `Schemas::get().for_kind("apps", "v1", "Deployment")`; `None` means JSON merge patch
/// semantics throughout (directives are still honoured in maps and never leak).
pub fn apply(original: &Value, patch: &Value, schema: Option<&Node>) -> Result<Value, PatchError> {
    let (Value::Object(original), Value::Object(patch)) = (original, patch) else {
        return Err(PatchError::InvalidDocument);
    };
    let schema = schema.and_then(structural);
    merge_map(original.clone(), patch.clone(), schema).map(Value::Object)
}

// ---- schema lookups ----

/// How a field's value merges, from `x-kubernetes-patch-strategy`. `retainKeys` only
/// matters to clients, which send `$retainKeys`; applying ignores it, as upstream does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    Default,
    Merge,
    Replace,
}

#[derive(Debug, Clone, Copy)]
struct FieldMeta<'a> {
    /// The structure of the field's value (maps) or of its elements (lists).
    schema: Option<&'a Node>,
    strategy: Strategy,
    merge_key: &'a str,
}

impl FieldMeta<'_> {
    const UNKNOWN: FieldMeta<'static> = FieldMeta { schema: None, strategy: Strategy::Default, merge_key: "" };
}

/// A resolved node that has structure to walk; `Any` nodes (raw extensions, preserved
/// unknown fields) have none.
fn structural(node: &Node) -> Option<&Node> {
    Schemas::get().resolve(node).filter(|n| n.ty != Type::Any)
}

fn strategy(field: &Field) -> Strategy {
    if field.patch_strategy("merge") {
        Strategy::Merge
    } else if field.patch_strategy("replace") {
        Strategy::Replace
    } else {
        Strategy::Default
    }
}

/// [`Field::merge_key`] with the lifetime of the schema rather than of the `Field`.
fn merge_key<'a>(field: &Field<'a>) -> &'a str {
    let (named, shape) = (field.named, field.shape);
    named.merge_key.as_deref().or(shape.merge_key.as_deref()).unwrap_or_default()
}

fn map_field<'a>(schema: Option<&'a Node>, key: &str) -> FieldMeta<'a> {
    match schema.and_then(|s| Schemas::get().field(s, key)) {
        Some(field) => {
            FieldMeta { schema: structural(field.shape), strategy: strategy(&field), merge_key: merge_key(&field) }
        }
        None => FieldMeta::UNKNOWN,
    }
}

fn list_field<'a>(schema: Option<&'a Node>, key: &str) -> FieldMeta<'a> {
    match schema.and_then(|s| Schemas::get().field(s, key)) {
        Some(field) => {
            FieldMeta { schema: list_items(&field), strategy: strategy(&field), merge_key: merge_key(&field) }
        }
        None => FieldMeta::UNKNOWN,
    }
}

/// The element structure of a list field. Like upstream's OpenAPI lookup, a field whose
/// schema is an object rather than an array stands for its own elements.
fn list_items<'a>(field: &Field<'a>) -> Option<&'a Node> {
    match field.shape.ty {
        Type::Array => Schemas::get().items(field.shape).and_then(structural),
        Type::Object => Some(field.shape),
        _ => None,
    }
}

/// `$setElementOrder/<field>` must name a list the schema knows, as upstream's lookup
/// insists; unknown fields of schema-less values fall back to no metadata.
fn ordered_list_field<'a>(schema: Option<&'a Node>, key: &str) -> Result<FieldMeta<'a>, PatchError> {
    let Some(object) = schema else {
        return Ok(FieldMeta::UNKNOWN);
    };
    match Schemas::get().field(object, key) {
        Some(field) => match field.shape.ty {
            Type::Array | Type::Object | Type::Any => Ok(list_field(schema, key)),
            _ => Err(PatchError::NotAList { field: key.to_string() }),
        },
        None if object.ty == Type::Object && object.additional.is_none() => {
            Err(PatchError::UnknownField { field: key.to_string() })
        }
        None => Ok(FieldMeta::UNKNOWN),
    }
}

// ---- maps ----

fn merge_map(mut original: Object, mut patch: Object, schema: Option<&Node>) -> Result<Object, PatchError> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => {
                patch.remove(DIRECTIVE);
                Ok(clean_map(patch))
            }
            Some("delete") => Ok(Object::new()),
            _ => Err(unknown_directive(directive, &patch)),
        };
    }
    apply_retain_keys(&mut original, &mut patch)?;
    merge_ordered_lists(&mut original, &mut patch, schema)?;

    // Upstream walks a Go map, in no fixed order. The only order that can matter is a
    // field patched both directly and through `$deleteFromPrimitiveList/`; deleting last
    // matches what the `$setElementOrder` path (which merges first) does.
    let (deletions, fields): (Vec<_>, Vec<_>) =
        patch.into_iter().partition(|(key, _)| key.starts_with(DELETE_FROM_PRIMITIVE_LIST));
    for (key, patch_value) in fields.into_iter().chain(deletions) {
        let (key, is_delete_list) = if key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
            (extract_key(&key, DELETE_FROM_PRIMITIVE_LIST).ok_or(PatchError::BadPrimitiveList)?.to_string(), true)
        } else {
            (key, false)
        };
        if patch_value.is_null() {
            original.remove(&key);
            continue;
        }
        let Some(existing) = original.get_mut(&key) else {
            // A deletion list for a field the object lacks has nothing to delete.
            if !is_delete_list {
                set_or_remove(&mut original, key, clean(patch_value));
            }
            continue;
        };
        if Kind::of(existing) != Kind::of(&patch_value) {
            if !is_delete_list {
                set_or_remove(&mut original, key, clean(patch_value));
            }
            continue;
        }
        let merged = match (std::mem::take(existing), patch_value) {
            (Value::Object(existing), Value::Object(patch_value)) => {
                let meta = map_field(schema, &key);
                if meta.strategy == Strategy::Replace {
                    Some(Value::Object(clean_map(patch_value)))
                } else {
                    Some(Value::Object(merge_map(existing, patch_value, meta.schema)?))
                }
            }
            (Value::Array(existing), Value::Array(patch_value)) => {
                let meta = list_field(schema, &key);
                Some(Value::Array(merge_list_field(existing, patch_value, &meta, is_delete_list, &key)?))
            }
            (_, scalar) => clean(scalar),
        };
        set_or_remove(&mut original, key, merged);
    }
    Ok(original)
}

fn set_or_remove(object: &mut Object, key: String, value: Option<Value>) {
    match value {
        Some(value) => {
            object.insert(key, value);
        }
        None => {
            object.remove(&key);
        }
    }
}

/// `$retainKeys`: the patch may only set listed keys, and the object keeps only those.
fn apply_retain_keys(original: &mut Object, patch: &mut Object) -> Result<(), PatchError> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(PatchError::BadRetainKeys);
    };
    let retained = |key: &str| retain.iter().any(|k| k.as_str() == Some(key));
    let unlisted = patch.iter().any(|(key, value)| {
        !value.is_null()
            && !key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            && !key.starts_with(SET_ELEMENT_ORDER)
            && !retained(key)
    });
    if unlisted {
        return Err(PatchError::BadRetainKeys);
    }
    original.retain(|key, _| retained(key));
    Ok(())
}

/// Handles every `$setElementOrder/<list>` together with its list: merges the list (if the
/// patch has it) and orders the result, then takes both out of the patch.
fn merge_ordered_lists(original: &mut Object, patch: &mut Object, schema: Option<&Node>) -> Result<(), PatchError> {
    let keys: Vec<String> = patch.keys().filter(|k| k.starts_with(SET_ELEMENT_ORDER)).cloned().collect();
    for key in keys {
        let order = patch.remove(&key).unwrap_or_default();
        let Value::Array(order) = order else {
            return Err(PatchError::WrongType { expected: GO_SLICE, actual: go_type(&order) });
        };
        let field = extract_key(&key, SET_ELEMENT_ORDER).ok_or(PatchError::BadSetElementOrder)?;
        let original_list = take_list(original, field)?;
        let patch_list = take_list(patch, field)?;
        let meta = ordered_list_field(schema, field)?;
        validate_order(patch_list.as_deref().unwrap_or_default(), &order, meta.merge_key)?;

        // Upstream decides the element kind from the lists as they were before merging.
        let kind =
            element_kind(&[original_list.as_deref().unwrap_or_default(), patch_list.as_deref().unwrap_or_default()]);
        let server_order = match (&original_list, &patch_list) {
            (Some(o), Some(p)) if meta.strategy == Strategy::Merge && matches!(kind, Ok(Kind::Object)) => {
                server_order_after_merge(o, p, meta.merge_key)
            }
            (Some(o), _) => o.clone(),
            (None, _) => Vec::new(),
        };
        let merged = match (original_list, patch_list) {
            (Some(original_list), None) => original_list,
            (None, Some(patch_list)) => clean_list(patch_list),
            (Some(original_list), Some(patch_list)) => {
                merge_list_field(original_list, patch_list, &meta, false, field)?
            }
            (None, None) => continue,
        };
        if meta.merge_key.is_empty() && matches!(kind, Ok(Kind::Object)) {
            // Maps without a merge key cannot be matched to the order list (upstream
            // crashes on them); the list was replaced, so keep it as the patch gave it.
            original.insert(field.to_string(), Value::Array(merged));
            continue;
        }
        let (patch_items, server_only) = partition(merged, &order, meta.merge_key)?;
        let ordered = order_elements(patch_items, server_only, &order, &server_order, meta.merge_key, kind?)?;
        original.insert(field.to_string(), Value::Array(ordered));
    }
    Ok(())
}

/// The server order upstream ranks a `$setElementOrder` list against, after merging a list
/// of maps. Upstream reads it from the object's original list *after* `mergeSlice` has
/// worked on the same Go backing array: each `$patch: delete` shifted the later elements
/// left (leaving the last one duplicated), and each new element appended while the list
/// was shorter than before was written into the freed slots. The merge key is all that
/// counts in it, so only those moves matter; this replays them.
fn server_order_after_merge(original: &[Value], patch: &[Value], merge_key: &str) -> Vec<Value> {
    let visible = original.len();
    let mut backing = original.to_vec();
    let mut len = visible;
    let mut replaced = false;
    let key_of = |v: &Value| v.as_object().and_then(|m| m.get(merge_key)).cloned();
    for item in patch {
        let Some(map) = item.as_object() else {
            continue;
        };
        match map.get(DIRECTIVE).and_then(Value::as_str) {
            Some("delete") => {
                let Some(key) = map.get(merge_key) else {
                    continue;
                };
                while let Some(i) = backing[..len].iter().position(|o| key_of(o).as_ref() == Some(key)) {
                    let tail = backing[i + 1..len].to_vec();
                    backing[i..len - 1].clone_from_slice(&tail);
                    len -= 1;
                }
            }
            Some("replace") => replaced = true,
            _ => {}
        }
    }
    if replaced {
        return backing;
    }
    // Elements appended past the original length land elsewhere, but still count when a
    // later patch element with the same key looks for a match.
    let mut beyond = Vec::new();
    for item in patch {
        let Some(map) = item.as_object() else {
            continue;
        };
        if map.contains_key(DIRECTIVE) {
            continue;
        }
        let key = map.get(merge_key).cloned();
        let found = backing[..len.min(visible)].iter().chain(&beyond).any(|o| key_of(o) == key);
        if !found {
            if len < visible {
                backing[len] = item.clone();
            } else {
                beyond.push(item.clone());
            }
            len += 1;
        }
    }
    backing
}

/// Removes a list-valued field from an object; a non-list value is an error.
fn take_list(object: &mut Object, field: &str) -> Result<Option<Vec<Value>>, PatchError> {
    match object.remove(field) {
        None => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(other) => Err(PatchError::WrongType { expected: GO_SLICE, actual: go_type(&other) }),
    }
}

/// The field a `$setElementOrder/<field>` or `$deleteFromPrimitiveList/<field>` key names.
fn extract_key<'k>(key: &'k str, prefix: &str) -> Option<&'k str> {
    key.split_once('/').filter(|(head, _)| *head == prefix).map(|(_, field)| field)
}

/// Checks that the patch list's elements appear in `$setElementOrder` in the same
/// relative order (deletions and directive elements aside).
fn validate_order(patch_list: &[Value], order: &[Value], merge_key: &str) -> Result<(), PatchError> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let kept: Vec<&Value> = if merge_key.is_empty() {
        patch_list.iter().collect()
    } else {
        let mut kept = Vec::new();
        for item in patch_list {
            if !is_delete_element(as_map(item)?) {
                kept.push(item);
            }
        }
        kept
    };
    let (mut p, mut o) = (0, 0);
    while p < kept.len() && o < order.len() {
        if kept[p].as_object().is_some_and(|m| m.contains_key(DIRECTIVE)) {
            p += 1;
            continue;
        }
        if merge_key_equal(kept[p], &order[o], merge_key)? {
            p += 1;
        }
        o += 1;
    }
    if p < kept.len() && o >= order.len() {
        return Err(PatchError::OrderMismatch {
            patch: go_format(&Value::Array(patch_list.to_vec())),
            order: go_format(&Value::Array(order.to_vec())),
        });
    }
    Ok(())
}

fn merge_key_equal(left: &Value, right: &Value, merge_key: &str) -> Result<bool, PatchError> {
    if merge_key.is_empty() {
        return Ok(left == right);
    }
    Ok(merge_key_value(as_map(left)?, merge_key)? == merge_key_value(as_map(right)?, merge_key)?)
}

// ---- lists ----

fn merge_list_field(
    original: Vec<Value>,
    patch: Vec<Value>,
    meta: &FieldMeta,
    is_delete_list: bool,
    field: &str,
) -> Result<Vec<Value>, PatchError> {
    // Deletion lists apply whatever the field's strategy.
    if meta.strategy == Strategy::Merge || is_delete_list {
        merge_list(original, patch, meta.schema, meta.merge_key, is_delete_list, field)
    } else {
        Ok(clean_list(patch))
    }
}

fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    schema: Option<&Node>,
    merge_key: &str,
    is_delete_list: bool,
    field: &str,
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let kind = element_kind(&[&original, &patch])?;
    if kind != Kind::Object {
        if is_delete_list {
            return Ok(original.into_iter().filter(|v| !patch.contains(v)).collect());
        }
        // Lists of primitives with strategy merge are sets: union, then ordered below.
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for value in original.iter().chain(&patch) {
            if !merged.contains(value) {
                merged.push(value.clone());
            }
        }
        let (patch_items, server_only) = partition(merged, &patch, merge_key)?;
        return order_elements(patch_items, server_only, &patch, &original, merge_key, kind);
    }
    if merge_key.is_empty() {
        return Err(PatchError::NoMergeKeyDeclared { field: field.to_string() });
    }
    let (original, patch) = apply_element_directives(original, patch, merge_key)?;
    let mut merged = original.clone();
    for item in &patch {
        let item_map = as_map(item)?;
        let key = merge_key_value(item_map, merge_key)?;
        match find_by_key(&merged, merge_key, key)? {
            Some(index) => {
                let Value::Object(existing) = std::mem::take(&mut merged[index]) else {
                    return Err(PatchError::ElementNotAMap { index });
                };
                merged[index] = Value::Object(merge_map(existing, item_map.clone(), schema)?);
            }
            None => merged.extend(clean(item.clone())),
        }
    }
    let (patch_items, server_only) = partition(merged, &patch, merge_key)?;
    order_elements(patch_items, server_only, &patch, &original, merge_key, kind)
}

/// Applies `$patch` list elements: `delete` removes every element with that merge key,
/// `replace` makes the other patch elements the whole list. Returns the original and the
/// plain patch elements that remain to be merged.
fn apply_element_directives(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let map = as_map(&item)?;
        let Some(directive) = map.get(DIRECTIVE) else {
            plain.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let key = map.get(merge_key).ok_or_else(|| no_merge_key(map, merge_key))?;
                original.retain(|o| o.get(merge_key) != Some(key));
            }
            // Keep going: the other directive elements still have to be valid.
            Some("replace") => replace = true,
            Some("merge") => return Err(PatchError::MergeDirectiveInList),
            _ => return Err(unknown_directive(directive, map)),
        }
    }
    if replace { Ok((clean_list(plain), Vec::new())) } else { Ok((original, plain)) }
}

/// Splits merged elements into those the patch (or `$setElementOrder`) names and the
/// server-only rest.
fn partition(merged: Vec<Value>, by: &[Value], merge_key: &str) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut named = Vec::with_capacity(merged.len());
    let mut server_only = Vec::new();
    for item in merged {
        let found = if merge_key.is_empty() {
            by.contains(&item)
        } else {
            let key = merge_key_value(as_map(&item)?, merge_key)?;
            find_by_key(by, merge_key, key)?.is_some()
        };
        if found { named.push(item) } else { server_only.push(item) }
    }
    Ok((named, server_only))
}

/// The final order of a merged list, as upstream computes it: the patch's elements in
/// patch order, the server-only ones in their server order, then the server-only elements
/// are interleaved into the patch elements wherever the server order places them before a
/// patch element.
fn order_elements(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: &str,
    kind: Kind,
) -> Result<Vec<Value>, PatchError> {
    let patch_items = sort_by_order(patch_items, patch_order, merge_key, kind)?;
    let server_only = sort_by_order(server_only, server_order, merge_key, kind)?;

    let position = |item: &Value| order_index(server_order, item, merge_key, kind);
    let left: Vec<(Option<usize>, Value)> = server_only.into_iter().map(|v| (position(&v), v)).collect();
    let right: Vec<(Option<usize>, Value)> = patch_items.into_iter().map(|v| (position(&v), v)).collect();
    let mut out = Vec::with_capacity(left.len() + right.len());
    let (mut left, mut right) = (left.into_iter().peekable(), right.into_iter().peekable());
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((l, _)), Some((r, _))) => matches!((l, r), (Some(l), Some(r)) if l < r),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next.map(|(_, v)| v));
    }
    Ok(out)
}

/// Sorts elements by their position in `order`, with upstream's comparator: an element
/// missing from `order` counts as "less" than anything, which is not a consistent order,
/// so the exact result depends on Go's `sort.SliceStable` algorithm; we run the same one.
fn sort_by_order(items: Vec<Value>, order: &[Value], merge_key: &str, kind: Kind) -> Result<Vec<Value>, PatchError> {
    let mut items = items;
    let mut deletions = Vec::new();
    if kind == Kind::Object {
        for item in items.iter().chain(order) {
            merge_key_value(as_map(item)?, merge_key)?;
        }
        let (delete, keep): (Vec<Value>, Vec<Value>) =
            items.into_iter().partition(|item| item.as_object().is_some_and(is_delete_element));
        items = keep;
        deletions = delete;
    }
    let mut keyed: Vec<(Option<usize>, Value)> =
        items.into_iter().map(|item| (order_index(order, &item, merge_key, kind), item)).collect();
    go_stable_sort(&mut keyed, &|a: &(Option<usize>, Value), b: &(Option<usize>, Value)| match (a.0, b.0) {
        (Some(a), Some(b)) => a < b,
        _ => true,
    });
    Ok(keyed.into_iter().map(|(_, item)| item).chain(deletions).collect())
}

/// Where `item` sits in `list`: by merge key for maps, by value otherwise. An element
/// without the key matches another without it, as Go's `nil == nil` does.
fn order_index(list: &[Value], item: &Value, merge_key: &str, kind: Kind) -> Option<usize> {
    if kind == Kind::Object {
        let wanted = item.as_object().and_then(|m| m.get(merge_key));
        list.iter().position(|v| v.as_object().and_then(|m| m.get(merge_key)) == wanted)
    } else {
        list.iter().position(|v| v == item)
    }
}

/// The index of the first element whose merge key equals `value`; every element scanned
/// must be a map.
fn find_by_key(list: &[Value], merge_key: &str, value: &Value) -> Result<Option<usize>, PatchError> {
    for (index, item) in list.iter().enumerate() {
        let map = item.as_object().ok_or(PatchError::ElementNotAMap { index })?;
        if map.get(merge_key) == Some(value) {
            return Ok(Some(index));
        }
    }
    Ok(None)
}

fn is_delete_element(map: &Object) -> bool {
    map.get(DIRECTIVE).and_then(Value::as_str) == Some("delete")
}

// ---- values ----

/// The JSON kinds as upstream's decoded Go values distinguish them (integers and
/// floating-point numbers are different types there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Int,
    Float,
    String,
    Array,
    Object,
}

impl Kind {
    fn of(value: &Value) -> Kind {
        match value {
            Value::Null => Kind::Null,
            Value::Bool(_) => Kind::Bool,
            Value::Number(n) if n.is_i64() => Kind::Int,
            Value::Number(_) => Kind::Float,
            Value::String(_) => Kind::String,
            Value::Array(_) => Kind::Array,
            Value::Object(_) => Kind::Object,
        }
    }
}

/// The one element kind of the given lists; mixed kinds, nulls and nested lists are
/// errors, and so are lists that are all empty.
fn element_kind(lists: &[&[Value]]) -> Result<Kind, PatchError> {
    let mut kind = None;
    for item in lists.iter().flat_map(|l| l.iter()) {
        let this = Kind::of(item);
        match kind {
            None if this == Kind::Array => return Err(PatchError::ListOfLists),
            Some(k) if k != this => return Err(mixed_types(lists)),
            // Upstream cannot take the type of a null element at all.
            _ if this == Kind::Null => return Err(mixed_types(lists)),
            _ => kind = Some(this),
        }
    }
    kind.ok_or(PatchError::EmptyLists)
}

fn mixed_types(lists: &[&[Value]]) -> PatchError {
    let lists: Vec<String> = lists.iter().map(|l| go_format(&Value::Array(l.to_vec()))).collect();
    PatchError::MixedListTypes { lists: format!("[{}]", lists.join(" ")) }
}

/// A value copied from the patch into the object: directives and nulls have no meaning
/// there. `None` when the value is itself a `$patch` map, which upstream drops.
fn clean(value: Value) -> Option<Value> {
    match value {
        Value::Object(map) => {
            if map.get(DIRECTIVE).is_some_and(|d| !d.is_null()) {
                return None;
            }
            Some(Value::Object(clean_map(map)))
        }
        Value::Array(items) => Some(Value::Array(clean_list(items))),
        other => Some(other),
    }
}

fn clean_map(map: Object) -> Object {
    map.into_iter()
        .filter(|(key, value)| !value.is_null() && !is_directive_key(key))
        .filter_map(|(key, value)| clean(value).map(|value| (key, value)))
        .collect()
}

/// Null elements stay: only null map values mean "delete".
fn clean_list(items: Vec<Value>) -> Vec<Value> {
    items.into_iter().filter_map(clean).collect()
}

fn is_directive_key(key: &str) -> bool {
    key == DIRECTIVE
        || key == RETAIN_KEYS
        || key.starts_with(SET_ELEMENT_ORDER)
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

const GO_MAP: &str = "map[string]interface {}";
const GO_SLICE: &str = "[]interface {}";

/// The Go type upstream's messages name for a decoded JSON value.
fn go_type(value: &Value) -> &'static str {
    match Kind::of(value) {
        Kind::Null => "<nil>",
        Kind::Bool => "bool",
        Kind::Int => "int64",
        Kind::Float => "float64",
        Kind::String => "string",
        Kind::Array => GO_SLICE,
        Kind::Object => GO_MAP,
    }
}

fn as_map(value: &Value) -> Result<&Object, PatchError> {
    value.as_object().ok_or(PatchError::WrongType { expected: GO_MAP, actual: go_type(value) })
}

fn merge_key_value<'v>(map: &'v Object, merge_key: &str) -> Result<&'v Value, PatchError> {
    map.get(merge_key).ok_or_else(|| no_merge_key(map, merge_key))
}

fn no_merge_key(map: &Object, merge_key: &str) -> PatchError {
    PatchError::NoMergeKey { map: go_format(&Value::Object(map.clone())), key: merge_key.to_string() }
}

fn unknown_directive(directive: &Value, map: &Object) -> PatchError {
    PatchError::UnknownPatchDirective { directive: go_format(directive), map: go_format(&Value::Object(map.clone())) }
}

// ---- Go's sort.SliceStable ----

/// The stable sort of Go's `sort` package (insertion sort on blocks of 20, then in-place
/// SymMerge), reproduced because upstream's comparator can be inconsistent and the
/// resulting order is then an artefact of this exact algorithm.
fn go_stable_sort<T>(v: &mut [T], less: &impl Fn(&T, &T) -> bool) {
    const BLOCK: usize = 20;
    let n = v.len();
    let mut start = 0;
    while start + BLOCK <= n {
        insertion_sort(v, start, start + BLOCK, less);
        start += BLOCK;
    }
    insertion_sort(v, start, n, less);
    let mut block = BLOCK;
    while block < n {
        let mut a = 0;
        while a + 2 * block <= n {
            sym_merge(v, a, a + block, a + 2 * block, less);
            a += 2 * block;
        }
        if a + block < n {
            sym_merge(v, a, a + block, n, less);
        }
        block *= 2;
    }
}

fn insertion_sort<T>(v: &mut [T], a: usize, b: usize, less: &impl Fn(&T, &T) -> bool) {
    for i in a + 1..b {
        let mut j = i;
        while j > a && less(&v[j], &v[j - 1]) {
            v.swap(j, j - 1);
            j -= 1;
        }
    }
}

/// Merges the sorted runs `v[a..m]` and `v[m..b]` in place (Kim and Kutzner's SymMerge).
fn sym_merge<T>(v: &mut [T], a: usize, m: usize, b: usize, less: &impl Fn(&T, &T) -> bool) {
    if m - a == 1 {
        // Binary-search where v[a] goes in the right run, then rotate it there.
        let (mut i, mut j) = (m, b);
        while i < j {
            let h = (i + j) / 2;
            if less(&v[h], &v[a]) { i = h + 1 } else { j = h }
        }
        for k in a..i - 1 {
            v.swap(k, k + 1);
        }
        return;
    }
    if b - m == 1 {
        let (mut i, mut j) = (a, m);
        while i < j {
            let h = (i + j) / 2;
            if !less(&v[m], &v[h]) { i = h + 1 } else { j = h }
        }
        let mut k = m;
        while k > i {
            v.swap(k, k - 1);
            k -= 1;
        }
        return;
    }
    let mid = (a + b) / 2;
    let n = mid + m;
    let (mut start, mut r) = if m > mid { (n - b, mid) } else { (a, m) };
    let p = n - 1;
    while start < r {
        let c = (start + r) / 2;
        if !less(&v[p - c], &v[c]) { start = c + 1 } else { r = c }
    }
    let end = n - start;
    if start < m && m < end {
        rotate(v, start, m, end);
    }
    if a < start && start < mid {
        sym_merge(v, a, start, mid, less);
    }
    if mid < end && end < b {
        sym_merge(v, mid, end, b, less);
    }
}

/// Swaps the blocks `v[a..m]` and `v[m..b]` with as few swaps as Go does.
fn rotate<T>(v: &mut [T], a: usize, m: usize, b: usize) {
    let (mut i, mut j) = (m - a, b - m);
    while i != j {
        if i > j {
            swap_range(v, m - i, m, j);
            i -= j;
        } else {
            swap_range(v, m - i, m + j - i, i);
            j -= i;
        }
    }
    swap_range(v, m - i, m, i);
}

fn swap_range<T>(v: &mut [T], a: usize, b: usize, n: usize) {
    for i in 0..n {
        v.swap(a + i, b + i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::OnceLock;

    /// The schema of upstream's test type `MergeItem` (strategicpatch/patch_test.go), nested
    /// a few levels deep since test nodes cannot refer to themselves.
    fn merge_item_schema() -> &'static Node {
        fn merge_item(depth: usize) -> Value {
            let item = |extra: Value| {
                let mut node = if depth == 0 { json!({"t": "any"}) } else { merge_item(depth - 1) };
                node.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
                node
            };
            let retain_keys_item = {
                let list = if depth == 0 { json!({"t": "any"}) } else { merge_item(depth - 1) };
                json!({"t": "object", "ps": "retainKeys", "p": {
                    "name": {"t": "string"}, "value": {"t": "string"}, "other": {"t": "string"},
                    "simpleMap": {"t": "any"},
                    "mergingIntList": {"t": "array", "i": {"t": "integer"}, "ps": "merge"},
                    "mergingList": {"t": "array", "i": list.clone(), "ps": "merge", "mk": "name"},
                    "nonMergingList": {"t": "array", "i": list},
                }})
            };
            json!({"t": "object", "p": {
                "name": {"t": "string"}, "value": {"t": "string"}, "other": {"t": "string"},
                "mergingList": {"t": "array", "i": item(json!({})), "ps": "merge", "mk": "name"},
                "nonMergingList": {"t": "array", "i": item(json!({}))},
                "mergingIntList": {"t": "array", "i": {"t": "integer"}, "ps": "merge"},
                "nonMergingIntList": {"t": "array", "i": {"t": "integer"}},
                "mergeItemPtr": item(json!({"ps": "merge", "mk": "name"})),
                "simpleMap": {"t": "object", "a": {"t": "string"}},
                "replacingItem": {"t": "any", "ps": "replace"},
                "retainKeysMap": retain_keys_item,
                "retainKeysMergingList": {"t": "array", "i": item(json!({})), "ps": "merge,retainKeys", "mk": "name"},
                "jsonItem": {"t": "any"},
            }})
        }
        static SCHEMA: OnceLock<Node> = OnceLock::new();
        SCHEMA.get_or_init(|| serde_json::from_value(merge_item(3)).unwrap())
    }

    fn smp(original: &str, patch: &str, schema: Option<&Node>) -> Result<Value, PatchError> {
        apply(&serde_json::from_str(original).unwrap(), &serde_json::from_str(patch).unwrap(), schema)
    }

    /// No key of the result starts with `$`.
    fn assert_no_directives(value: &Value, context: &str) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    assert!(!k.starts_with('$'), "{context}: directive {k} leaked");
                    assert_no_directives(v, context);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| assert_no_directives(v, context)),
            _ => {}
        }
    }

    #[test]
    fn upstream_cases_give_upstream_results_in_upstream_order() {
        let schema = merge_item_schema();
        let mut failures = Vec::new();
        for (description, original, patch, expected) in UPSTREAM_CASES {
            let expected: Value = serde_json::from_str(expected).unwrap();
            match smp(original, patch, Some(schema)) {
                Ok(got) if got == expected => assert_no_directives(&got, description),
                Ok(got) => failures.push(format!("{description}:\n  expected {expected}\n  got      {got}")),
                Err(e) => failures.push(format!("{description}: error {e}")),
            }
        }
        assert!(failures.is_empty(), "{} of {} failed:\n{}", failures.len(), UPSTREAM_CASES.len(), failures.join("\n"));
    }

    #[test]
    fn upstream_error_cases_fail_with_upstream_messages() {
        for (description, original, patch, message) in UPSTREAM_ERROR_CASES {
            let err = smp(original, patch, Some(merge_item_schema())).expect_err(description);
            assert!(err.to_string().contains(message), "{description}: {err}");
        }
    }

    fn deployment() -> Option<&'static Node> {
        Schemas::get().for_kind("apps", "v1", "Deployment")
    }

    fn web() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "front"}},
            "spec": {
                "replicas": 2,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [
                        {"name": "nginx", "image": "nginx:1.25", "env": [{"name": "A", "value": "1"}],
                         "ports": [{"containerPort": 80, "protocol": "TCP"}]},
                        {"name": "side", "image": "busybox"},
                    ]}
                }
            }
        })
    }

    fn containers(v: &Value) -> &Value {
        &v["spec"]["template"]["spec"]["containers"]
    }

    #[test]
    fn kubectl_apply_updates_a_container_image_by_name() {
        let patch = json!({
            "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}\n"}},
            "spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "nginx"}],
                "containers": [{"image": "nginx:1.26", "name": "nginx"}]
            }}}
        });
        let out = apply(&web(), &patch, deployment()).unwrap();
        let mut expected = web();
        expected["metadata"]["annotations"] = json!({"kubectl.kubernetes.io/last-applied-configuration": "{}\n"});
        expected["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.26");
        // `side` is not in the patch: it keeps its place after `nginx`.
        assert_eq!(out, expected);
    }

    #[test]
    fn kubectl_apply_removes_a_field_and_deletes_a_container() {
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "nginx"}],
            "containers": [{"env": null, "name": "nginx"}, {"$patch": "delete", "name": "side"}]
        }}}});
        let out = apply(&web(), &patch, deployment()).unwrap();
        assert_eq!(
            containers(&out),
            &json!([{"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80, "protocol": "TCP"}]}])
        );
    }

    #[test]
    fn new_containers_follow_the_element_order() {
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "init"}, {"name": "nginx"}, {"name": "side"}],
            "containers": [{"name": "init", "image": "alpine"}]
        }}}});
        let out = apply(&web(), &patch, deployment()).unwrap();
        let names: Vec<&str> =
            containers(&out).as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["init", "nginx", "side"]);
    }

    #[test]
    fn server_only_elements_keep_their_server_position() {
        let original = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}],
            "containers": [{"name": "c", "image": "x"}, {"name": "a", "image": "y"}]
        }});
        let out = apply(&original, &patch, Schemas::get().for_kind("", "v1", "Pod")).unwrap();
        // `b` was before `c` on the server, so it stays in front of the reordered pair.
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "b"}, {"name": "c", "image": "x"}, {"name": "a", "image": "y"}])
        );
    }

    #[test]
    fn nested_lists_merge_by_their_own_keys() {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{
            "name": "nginx",
            "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "9"}],
            "ports": [{"containerPort": 443, "protocol": "TCP"}]
        }]}}}});
        let out = apply(&web(), &patch, deployment()).unwrap();
        let nginx = &containers(&out)[0];
        assert_eq!(nginx["env"], json!([{"name": "B", "value": "2"}, {"name": "A", "value": "9"}]));
        // Without `$setElementOrder`, elements new to the server go first: upstream's ranking
        // puts a patch element first whenever the server order cannot compare the two.
        assert_eq!(
            nginx["ports"],
            json!([{"containerPort": 443, "protocol": "TCP"}, {"containerPort": 80, "protocol": "TCP"}])
        );
        assert_eq!(containers(&out)[1]["name"], "side");
    }

    #[test]
    fn replace_directive_in_a_list_replaces_it() {
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "only", "image": "x", "env": null}, {"$patch": "replace"}
        ]}}}});
        let out = apply(&web(), &patch, deployment()).unwrap();
        assert_eq!(containers(&out), &json!([{"name": "only", "image": "x"}]));
    }

    #[test]
    fn map_directives_replace_and_delete() {
        let patch = json!({"metadata": {"labels": {"$patch": "replace", "new": "1"}}});
        let out = apply(&web(), &patch, deployment()).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"new": "1"}));

        let patch = json!({"spec": {"template": {"metadata": {"labels": {"$patch": "delete"}}}}});
        let out = apply(&web(), &patch, deployment()).unwrap();
        assert_eq!(out["spec"]["template"]["metadata"]["labels"], json!({}));
    }

    #[test]
    fn null_deletes_keys_and_maps_merge() {
        let patch = json!({"metadata": {"labels": {"tier": null, "env": "prod"}}, "spec": {"replicas": null}});
        let out = apply(&web(), &patch, deployment()).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"app": "web", "env": "prod"}));
        assert!(out["spec"].get("replicas").is_none());
        assert_eq!(out["spec"]["strategy"], web()["spec"]["strategy"]);
    }

    #[test]
    fn cordon_and_uncordon() {
        let node_schema = Schemas::get().for_kind("", "v1", "Node");
        let node = json!({"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.42.0.0/24"}});
        let cordoned = apply(&node, &json!({"spec": {"unschedulable": true}}), node_schema).unwrap();
        assert_eq!(cordoned["spec"], json!({"podCIDR": "10.42.0.0/24", "unschedulable": true}));
        let uncordoned = apply(&cordoned, &json!({"spec": {"unschedulable": null}}), node_schema).unwrap();
        assert_eq!(uncordoned, node);
    }

    #[test]
    fn retain_keys_switches_rolling_update_to_recreate() {
        // What `kubectl apply` sends when the manifest changes the strategy type: the
        // field's schema says `retainKeys`, so kubectl lists the keys to keep.
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        let out = apply(&web(), &patch, deployment()).unwrap();
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));

        // Without the directive the server merges, as upstream does (and validation then
        // rejects the leftover rollingUpdate).
        let out = apply(&web(), &json!({"spec": {"strategy": {"type": "Recreate"}}}), deployment()).unwrap();
        assert_eq!(out["spec"]["strategy"]["rollingUpdate"], web()["spec"]["strategy"]["rollingUpdate"]);

        let bad = json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}});
        assert_eq!(apply(&web(), &bad, deployment()), Err(PatchError::BadRetainKeys));
    }

    #[test]
    fn primitive_merge_lists_are_sets() {
        let pod_schema = Schemas::get().for_kind("", "v1", "Pod");
        let pod = json!({"metadata": {"finalizers": ["a", "b"]}, "spec": {"containers": [{"name": "c", "args": ["x", "y"]}]}});
        let patch =
            json!({"metadata": {"finalizers": ["c", "a"]}, "spec": {"containers": [{"name": "c", "args": ["z"]}]}});
        let out = apply(&pod, &patch, pod_schema).unwrap();
        // The patch's values in patch order; `b`, which only the server had, ranks after `a`.
        assert_eq!(out["metadata"]["finalizers"], json!(["c", "a", "b"]));
        // `args` has no merge strategy: replaced.
        assert_eq!(out["spec"]["containers"][0]["args"], json!(["z"]));

        let patch = json!({"metadata": {
            "$deleteFromPrimitiveList/finalizers": ["a"],
            "$setElementOrder/finalizers": ["b", "d"],
            "finalizers": ["d"]
        }});
        let out = apply(&pod, &patch, pod_schema).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["b", "d"]));
    }

    #[test]
    fn without_a_schema_lists_are_replaced_and_directives_still_vanish() {
        let original = json!({"spec": {"items": [{"name": "a", "v": 1}], "m": {"x": 1, "y": 2}, "gone": {"k": 1}}});
        let patch = json!({"spec": {
            "items": [{"name": "b"}, {"$patch": "delete", "name": "a"}],
            "m": {"x": null, "z": {"deep": null, "keep": 1}},
            "gone": {"$patch": "delete"},
            "new": {"$setElementOrder/l": [1], "l": [1]}
        }});
        let out = apply(&original, &patch, None).unwrap();
        assert_eq!(
            out,
            json!({"spec": {"items": [{"name": "b"}], "m": {"y": 2, "z": {"keep": 1}}, "gone": {}, "new": {"l": [1]}}})
        );
        // An order for a list of maps without merge key cannot apply; the list is replaced.
        let patch = json!({"spec": {"items": [{"name": "c"}, {"name": "d"}], "$setElementOrder/items": [{"name": "c"}, {"name": "d"}]}});
        assert_eq!(apply(&original, &patch, None).unwrap()["spec"]["items"], json!([{"name": "c"}, {"name": "d"}]));
        // An unknown field of a known kind falls back the same way.
        let patch = json!({"spec": {"template": {"spec": {"extra": [{"a": 1}]}}}});
        let with_extra = apply(&web(), &patch, deployment()).unwrap();
        let out =
            apply(&with_extra, &json!({"spec": {"template": {"spec": {"extra": [{"b": 2}]}}}}), deployment()).unwrap();
        assert_eq!(out["spec"]["template"]["spec"]["extra"], json!([{"b": 2}]));
    }

    #[test]
    fn invalid_patches_fail_with_upstream_messages() {
        let err = |patch: Value| apply(&web(), &patch, deployment()).unwrap_err().to_string();
        let in_containers = |items: Value| json!({"spec": {"template": {"spec": {"containers": items}}}});
        assert_eq!(
            err(in_containers(json!([{"$patch": "delete", "image": "x"}]))),
            "map: map[$patch:delete image:x] does not contain declared merge key: name"
        );
        assert_eq!(
            err(in_containers(json!([{"$patch": "frob", "name": "x"}]))),
            "unknown patch type: frob in map: map[$patch:frob name:x]"
        );
        assert_eq!(
            err(in_containers(json!([{"$patch": "merge", "name": "x"}]))),
            "merging lists cannot yet be specified in the patch"
        );
        assert_eq!(
            err(in_containers(json!([{"image": "x"}]))),
            "map: map[image:x] does not contain declared merge key: name"
        );
        assert_eq!(
            err(in_containers(json!(["nginx"]))),
            "list element types are not identical: [[map[env:[map[name:A value:1]] image:nginx:1.25 name:nginx ports:[map[containerPort:80 protocol:TCP]]] map[image:busybox name:side]] [nginx]]"
        );
        assert_eq!(
            err(json!({"metadata": {"$patch": "merge"}})),
            "unknown patch type: merge in map: map[$patch:merge]"
        );
        assert_eq!(
            err(json!({"spec": {"template": {"spec": {"$setElementOrder/bogus": [{"name": "x"}]}}}})),
            r#"unable to find api field "bogus""#
        );
        assert_eq!(
            err(json!({"spec": {"template": {"spec": {"$setElementOrder/nodeName": ["a"]}}}})),
            r#"expected slice or array type for field "nodeName""#
        );
        assert_eq!(err(json!({"spec": {"$setElementOrder": []}})), "invalid patch format of setElementOrder list");
        assert_eq!(err(json!({"spec": {"$deleteFromPrimitiveList": ["x"]}})), "invalid patch format of primitive list");
        assert_eq!(err(json!({"spec": {"$retainKeys": "type"}})), "invalid patch format of retainKeys");
        let pod = |finalizers: Value| json!({"metadata": {"finalizers": finalizers}});
        let nested = pod(json!([["a"]]));
        let pod_schema = Schemas::get().for_kind("", "v1", "Pod");
        assert_eq!(apply(&pod(json!([])), &nested, pod_schema), Err(PatchError::ListOfLists));
        assert_eq!(
            apply(&pod(json!(["a"])), &nested, pod_schema).unwrap_err().to_string(),
            "list element types are not identical: [[a] [[a]]]"
        );
        assert_eq!(apply(&web(), &json!([1]), deployment()), Err(PatchError::InvalidDocument));
        assert_eq!(apply(&json!("x"), &json!({}), deployment()), Err(PatchError::InvalidDocument));
    }

    #[test]
    fn the_original_is_left_alone() {
        let original = web();
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"$patch": "delete", "name": "side"}]}}}});
        let _ = apply(&original, &patch, deployment()).unwrap();
        assert_eq!(original, web());
    }

    /// A small deterministic generator, so the sort is checked on many inputs.
    fn pseudo_random(seed: &mut u64) -> u64 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        *seed >> 33
    }

    #[test]
    fn go_stable_sort_is_a_stable_sort_for_consistent_orders() {
        let mut seed = 7;
        for len in [0, 1, 2, 5, 19, 20, 21, 40, 41, 77, 160, 333] {
            let items: Vec<(u64, usize)> = (0..len).map(|i| (pseudo_random(&mut seed) % 10, i)).collect();
            let mut ours = items.clone();
            go_stable_sort(&mut ours, &|a: &(u64, usize), b: &(u64, usize)| a.0 < b.0);
            let mut std = items;
            std.sort_by_key(|item| item.0);
            assert_eq!(ours, std, "length {len}");
        }
    }

    #[test]
    fn go_stable_sort_follows_go_for_inconsistent_orders() {
        // With a comparator that always answers "less", Go's insertion sort moves each
        // element to the front of its block of 20, reversing it.
        let mut short: Vec<u32> = (0..7).collect();
        go_stable_sort(&mut short, &|_: &u32, _: &u32| true);
        assert_eq!(short, [6, 5, 4, 3, 2, 1, 0]);
    }

    /// Upstream's raw strategic merge patch cases (patch_test.go), as (description, object,
    /// patch, result): each two-way patch applied to its original and each three-way patch to
    /// its current object, deduplicated. Results are compared in order.
    const UPSTREAM_CASES: &[(&str, &str, &str, &str)] = &[
        (
            "nested patch merge with empty list (two-way)",
            r#"{"name":"hi"}"#,
            r#"{"mergingList":[{"name":"hello"},{"$patch":"delete","name":"doesntexist"}]}"#,
            r#"{"name":"hi","mergingList":[{"name":"hello"}]}"#,
        ),
        (
            "nested patch merge with empty list (three-way)",
            r#"{"name":"hi","mergingList":[{"name":"hello2"}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":"hello"},{"name":"doesntexist"}],"mergingList":[{"name":"hello"}]}"#,
            r#"{"name":"hi","mergingList":[{"name":"hello"},{"name":"hello2"}]}"#,
        ),
        (
            "delete items in lists of scalars (two-way)",
            r#"{"mergingIntList":[1,2,3]}"#,
            r#"{"$setElementOrder/mergingIntList":[1,2],"$deleteFromPrimitiveList/mergingIntList":[3]}"#,
            r#"{"mergingIntList":[1,2]}"#,
        ),
        (
            "delete items in lists of scalars (three-way)",
            r#"{"mergingIntList":[1,2,3,4]}"#,
            r#"{"$setElementOrder/mergingIntList":[1,2],"$deleteFromPrimitiveList/mergingIntList":[3]}"#,
            r#"{"mergingIntList":[1,2,4]}"#,
        ),
        (
            "delete all duplicate items in lists of scalars (two-way)",
            r#"{"mergingIntList":[1,2,3,3]}"#,
            r#"{"$setElementOrder/mergingIntList":[1,2],"$deleteFromPrimitiveList/mergingIntList":[3]}"#,
            r#"{"mergingIntList":[1,2]}"#,
        ),
        (
            "delete all duplicate items in lists of scalars (three-way)",
            r#"{"mergingIntList":[1,2,3,3,4]}"#,
            r#"{"$setElementOrder/mergingIntList":[1,2],"$deleteFromPrimitiveList/mergingIntList":[3]}"#,
            r#"{"mergingIntList":[1,2,4]}"#,
        ),
        (
            "add and delete items in lists of scalars (two-way)",
            r#"{"mergingIntList":[1,2,3]}"#,
            r#"{"$setElementOrder/mergingIntList":[1,2,4],"$deleteFromPrimitiveList/mergingIntList":[3],"mergingIntList":[4]}"#,
            r#"{"mergingIntList":[1,2,4]}"#,
        ),
        (
            "add and delete items in lists of scalars (three-way)",
            r#"{"mergingIntList":[1,2,3,4]}"#,
            r#"{"$setElementOrder/mergingIntList":[1,2,4],"$deleteFromPrimitiveList/mergingIntList":[3]}"#,
            r#"{"mergingIntList":[1,2,4]}"#,
        ),
        (
            "merge lists of maps (two-way)",
            r#"{"mergingList":[{"name":1},{"name":2,"value":2}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":4},{"name":1},{"name":2},{"name":3}],"mergingList":[{"name":4,"value":4},{"name":3,"value":3}]}"#,
            r#"{"mergingList":[{"name":4,"value":4},{"name":1},{"name":2,"value":2},{"name":3,"value":3}]}"#,
        ),
        (
            "merge lists of maps (three-way)",
            r#"{"mergingList":[{"name":1,"other":"a"},{"name":2,"value":2,"other":"b"}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":4},{"name":1},{"name":2},{"name":3}],"mergingList":[{"name":4,"value":4},{"name":3,"value":3}]}"#,
            r#"{"mergingList":[{"name":4,"value":4},{"name":1,"other":"a"},{"name":2,"value":2,"other":"b"},{"name":3,"value":3}]}"#,
        ),
        (
            "merge lists of maps with conflict (two-way)",
            r#"{"mergingList":[{"name":1},{"name":2,"value":2}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":1},{"name":2},{"name":3}],"mergingList":[{"name":3,"value":3}]}"#,
            r#"{"mergingList":[{"name":1},{"name":2,"value":2},{"name":3,"value":3}]}"#,
        ),
        (
            "merge lists of maps with conflict (three-way)",
            r#"{"mergingList":[{"name":1,"other":"a"},{"name":2,"value":3,"other":"b"}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":1},{"name":2},{"name":3}],"mergingList":[{"name":2,"value":2},{"name":3,"value":3}]}"#,
            r#"{"mergingList":[{"name":1,"other":"a"},{"name":2,"value":2,"other":"b"},{"name":3,"value":3}]}"#,
        ),
        (
            "add field to map in merging list (two-way)",
            r#"{"mergingList":[{"name":1},{"name":2,"value":2}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":1},{"name":2}],"mergingList":[{"name":1,"value":1}]}"#,
            r#"{"mergingList":[{"name":1,"value":1},{"name":2,"value":2}]}"#,
        ),
        (
            "add field to map in merging list (three-way)",
            r#"{"mergingList":[{"name":1,"other":"a"},{"name":2,"value":2,"other":"b"}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":1},{"name":2}],"mergingList":[{"name":1,"value":1}]}"#,
            r#"{"mergingList":[{"name":1,"value":1,"other":"a"},{"name":2,"value":2,"other":"b"}]}"#,
        ),
        (
            "add field to map in merging list with conflict (three-way)",
            r#"{"mergingList":[{"name":1,"other":"a"},{"name":3,"value":2,"other":"b"}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":1},{"name":2}],"mergingList":[{"name":1,"value":1},{"name":2,"value":2}]}"#,
            r#"{"mergingList":[{"name":1,"value":1,"other":"a"},{"name":2,"value":2},{"name":3,"value":2,"other":"b"}]}"#,
        ),
        (
            "add duplicate field to map in merging list (three-way)",
            r#"{"mergingList":[{"name":1,"value":1,"other":"a"},{"name":2,"value":2,"other":"b"}]}"#,
            r#"{}"#,
            r#"{"mergingList":[{"name":1,"value":1,"other":"a"},{"name":2,"value":2,"other":"b"}]}"#,
        ),
        (
            "add an item that already exists in current object in merging list (two-way)",
            r#"{"mergingList":[{"name":1,"value":"a"},{"name":2}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":1},{"name":2},{"name":3}],"mergingList":[{"name":3}]}"#,
            r#"{"mergingList":[{"name":1,"value":"a"},{"name":2},{"name":3}]}"#,
        ),
        (
            "add an item that already exists in current object in merging list (three-way)",
            r#"{"mergingList":[{"name":1,"value":"a","other":"x"},{"name":2},{"name":3}]}"#,
            r#"{}"#,
            r#"{"mergingList":[{"name":1,"value":"a","other":"x"},{"name":2},{"name":3}]}"#,
        ),
        (
            "add duplicate field to map in merging list with conflict (three-way)",
            r#"{"mergingList":[{"name":1,"value":1,"other":"a"},{"name":2,"value":3,"other":"b"}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":1},{"name":2}],"mergingList":[{"name":2,"value":2}]}"#,
            r#"{"mergingList":[{"name":1,"value":1,"other":"a"},{"name":2,"value":2,"other":"b"}]}"#,
        ),
        (
            "replace map field value in merging list (two-way)",
            r#"{"mergingList":[{"name":1,"value":1},{"name":2,"value":2}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":1},{"name":2}],"mergingList":[{"name":1,"value":"a"}]}"#,
            r#"{"mergingList":[{"name":1,"value":"a"},{"name":2,"value":2}]}"#,
        ),
        (
            "replace map field value in merging list (three-way)",
            r#"{"mergingList":[{"name":1,"value":1,"other":"a"},{"name":2,"value":2,"other":"b"}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":1},{"name":2}],"mergingList":[{"name":1,"value":"a"}]}"#,
            r#"{"mergingList":[{"name":1,"value":"a","other":"a"},{"name":2,"value":2,"other":"b"}]}"#,
        ),
        (
            "replace map field value in merging list with conflict (three-way)",
            r#"{"mergingList":[{"name":1,"value":3,"other":"a"},{"name":2,"value":2,"other":"b"}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":1},{"name":2}],"mergingList":[{"name":1,"value":"a"}]}"#,
            r#"{"mergingList":[{"name":1,"value":"a","other":"a"},{"name":2,"value":2,"other":"b"}]}"#,
        ),
        (
            "delete map from merging list (two-way)",
            r#"{"mergingList":[{"name":1},{"name":2}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":2}],"mergingList":[{"name":1,"$patch":"delete"}]}"#,
            r#"{"mergingList":[{"name":2}]}"#,
        ),
        (
            "delete map from merging list (three-way)",
            r#"{"mergingList":[{"name":1},{"name":2,"other":"b"}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":2}],"mergingList":[{"name":1,"$patch":"delete"}]}"#,
            r#"{"mergingList":[{"name":2,"other":"b"}]}"#,
        ),
        (
            "delete map from merging list with conflict (three-way)",
            r#"{"mergingList":[{"name":1,"other":"a"},{"name":2,"other":"b"}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":2}],"mergingList":[{"name":1,"$patch":"delete"}]}"#,
            r#"{"mergingList":[{"name":2,"other":"b"}]}"#,
        ),
        (
            "delete missing map from merging list (three-way)",
            r#"{"mergingList":[{"name":2,"other":"b"}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":2}],"mergingList":[{"name":1,"$patch":"delete"}]}"#,
            r#"{"mergingList":[{"name":2,"other":"b"}]}"#,
        ),
        (
            "delete missing map from merging list with conflict (three-way)",
            r#"{"mergingList":[{"name":3,"other":"a"}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":2}],"mergingList":[{"name":2},{"name":1,"$patch":"delete"}]}"#,
            r#"{"mergingList":[{"name":2},{"name":3,"other":"a"}]}"#,
        ),
        (
            "add map and delete map from merging list (two-way)",
            r#"{"mergingList":[{"name":1},{"name":2}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":2},{"name":3}],"mergingList":[{"name":3},{"name":1,"$patch":"delete"}]}"#,
            r#"{"mergingList":[{"name":2},{"name":3}]}"#,
        ),
        (
            "add map and delete map from merging list (three-way)",
            r#"{"mergingList":[{"name":1},{"name":2,"other":"b"},{"name":4,"other":"c"}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":2},{"name":3}],"mergingList":[{"name":3},{"name":1,"$patch":"delete"}]}"#,
            r#"{"mergingList":[{"name":2,"other":"b"},{"name":4,"other":"c"},{"name":3}]}"#,
        ),
        (
            "add map and delete map from merging list with conflict (three-way)",
            r#"{"mergingList":[{"name":1,"other":"a"},{"name":4,"other":"c"}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":2},{"name":3}],"mergingList":[{"name":2},{"name":3},{"name":1,"$patch":"delete"}]}"#,
            r#"{"mergingList":[{"name":4,"other":"c"},{"name":2},{"name":3}]}"#,
        ),
        (
            "delete field from map in merging list (two-way)",
            r#"{"mergingList":[{"name":1,"value":1},{"name":2,"value":2}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":1},{"name":2}],"mergingList":[{"name":1,"value":null}]}"#,
            r#"{"mergingList":[{"name":1},{"name":2,"value":2}]}"#,
        ),
        (
            "delete field from map in merging list (three-way)",
            r#"{"mergingList":[{"name":1,"value":1,"other":"a"},{"name":2,"value":2,"other":"b"}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":1},{"name":2}],"mergingList":[{"name":1,"value":null}]}"#,
            r#"{"mergingList":[{"name":1,"other":"a"},{"name":2,"value":2,"other":"b"}]}"#,
        ),
        (
            "delete field from map in merging list with conflict (three-way)",
            r#"{"mergingList":[{"name":1,"value":"a","other":"a"},{"name":2,"value":2}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":1},{"name":2}],"mergingList":[{"name":1,"value":null}]}"#,
            r#"{"mergingList":[{"name":1,"other":"a"},{"name":2,"value":2}]}"#,
        ),
        (
            "delete missing field from map in merging list (three-way)",
            r#"{"mergingList":[{"name":1,"other":"a"},{"name":2,"value":2,"other":"b"}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":1},{"name":2}],"mergingList":[{"name":1,"value":null}]}"#,
            r#"{"mergingList":[{"name":1,"other":"a"},{"name":2,"value":2,"other":"b"}]}"#,
        ),
        (
            "delete missing field from map in merging list with conflict (three-way)",
            r#"{"mergingList":[{"name":1,"other":"a"},{"name":2,"other":"b"}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":1},{"name":2}],"mergingList":[{"name":1,"value":null},{"name":2,"value":2}]}"#,
            r#"{"mergingList":[{"name":1,"other":"a"},{"name":2,"value":2,"other":"b"}]}"#,
        ),
        (
            "replace non merging list nested in merging list (two-way)",
            r#"{"mergingList":[{"name":1,"nonMergingList":[{"name":1},{"name":2,"value":2}]},{"name":2}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":1},{"name":2}],"mergingList":[{"name":1,"nonMergingList":[{"name":1,"value":1}]}]}"#,
            r#"{"mergingList":[{"name":1,"nonMergingList":[{"name":1,"value":1}]},{"name":2}]}"#,
        ),
        (
            "replace non merging list nested in merging list (three-way)",
            r#"{"mergingList":[{"name":1,"other":"a","nonMergingList":[{"name":1},{"name":2,"value":2}]},{"name":2,"other":"b"}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":1},{"name":2}],"mergingList":[{"name":1,"nonMergingList":[{"name":1,"value":1}]}]}"#,
            r#"{"mergingList":[{"name":1,"other":"a","nonMergingList":[{"name":1,"value":1}]},{"name":2,"other":"b"}]}"#,
        ),
        (
            "replace non merging list nested in merging list with value conflict (three-way)",
            r#"{"mergingList":[{"name":1,"other":"a","nonMergingList":[{"name":1,"value":"c"}]},{"name":2,"other":"b"}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":1},{"name":2}],"mergingList":[{"name":1,"nonMergingList":[{"name":1,"value":1}]}]}"#,
            r#"{"mergingList":[{"name":1,"other":"a","nonMergingList":[{"name":1,"value":1}]},{"name":2,"other":"b"}]}"#,
        ),
        (
            "replace non merging list nested in merging list with deletion conflict (three-way)",
            r#"{"mergingList":[{"name":1,"other":"a","nonMergingList":[{"name":2,"value":2}]},{"name":2,"other":"b"}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":1},{"name":2}],"mergingList":[{"name":1,"nonMergingList":[{"name":1,"value":1}]}]}"#,
            r#"{"mergingList":[{"name":1,"other":"a","nonMergingList":[{"name":1,"value":1}]},{"name":2,"other":"b"}]}"#,
        ),
        (
            "add field to map in merging list nested in merging list (two-way)",
            r#"{"mergingList":[{"name":1,"mergingList":[{"name":1},{"name":2,"value":2}]},{"name":2}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":1},{"name":2}],"mergingList":[{"$setElementOrder/mergingList":[{"name":1},{"name":2}],"name":1,"mergingList":[{"name":1,"value":1}]}]}"#,
            r#"{"mergingList":[{"name":1,"mergingList":[{"name":1,"value":1},{"name":2,"value":2}]},{"name":2}]}"#,
        ),
        (
            "add field to map in merging list nested in merging list (three-way)",
            r#"{"mergingList":[{"name":1,"other":"a","mergingList":[{"name":1},{"name":2,"value":2}]},{"name":2,"other":"b"}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":1},{"name":2}],"mergingList":[{"$setElementOrder/mergingList":[{"name":1},{"name":2}],"name":1,"mergingList":[{"name":1,"value":1}]}]}"#,
            r#"{"mergingList":[{"name":1,"other":"a","mergingList":[{"name":1,"value":1},{"name":2,"value":2}]},{"name":2,"other":"b"}]}"#,
        ),
        (
            "add field to map in merging list nested in merging list with value conflict (three-way)",
            r#"{"mergingList":[{"name":1,"other":"a","mergingList":[{"name":1,"value":"a","other":"c"},{"name":2,"value":"b","other":"d"}]},{"name":2,"other":"b"}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":1},{"name":2}],"mergingList":[{"$setElementOrder/mergingList":[{"name":1},{"name":2}],"name":1,"mergingList":[{"name":1,"value":1},{"name":2,"value":2}]}]}"#,
            r#"{"mergingList":[{"name":1,"other":"a","mergingList":[{"name":1,"value":1,"other":"c"},{"name":2,"value":2,"other":"d"}]},{"name":2,"other":"b"}]}"#,
        ),
        (
            "add field to map in merging list nested in merging list with deletion conflict (three-way)",
            r#"{"mergingList":[{"name":1,"other":"a","mergingList":[{"name":2,"value":2,"other":"d"}]},{"name":2,"other":"b"}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":1},{"name":2}],"mergingList":[{"$setElementOrder/mergingList":[{"name":1},{"name":2}],"name":1,"mergingList":[{"name":1,"value":1}]}]}"#,
            r#"{"mergingList":[{"name":1,"other":"a","mergingList":[{"name":1,"value":1},{"name":2,"value":2,"other":"d"}]},{"name":2,"other":"b"}]}"#,
        ),
        (
            "add field to map in merging list nested in merging list with deletion conflict (two-way)",
            r#"{"mergingList":[{"name":1,"mergingList":[{"name":1},{"name":2,"value":2}]},{"name":2}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":1},{"name":2}],"mergingList":[{"$setElementOrder/mergingList":[{"name":2},{"name":1}],"name":1,"mergingList":[{"name":1,"value":1}]}]}"#,
            r#"{"mergingList":[{"name":1,"mergingList":[{"name":2,"value":2},{"name":1,"value":1}]},{"name":2}]}"#,
        ),
        (
            "add field to map in merging list nested in merging list with deletion conflict (three-way)",
            r#"{"mergingList":[{"name":1,"other":"a","mergingList":[{"name":2,"value":2,"other":"d"}]},{"name":2,"other":"b"}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":1},{"name":2}],"mergingList":[{"$setElementOrder/mergingList":[{"name":2},{"name":1}],"name":1,"mergingList":[{"name":1,"value":1}]}]}"#,
            r#"{"mergingList":[{"name":1,"other":"a","mergingList":[{"name":2,"value":2,"other":"d"},{"name":1,"value":1}]},{"name":2,"other":"b"}]}"#,
        ),
        (
            "add map to merging list by pointer (two-way)",
            r#"{"mergeItemPtr":[{"name":1}]}"#,
            r#"{"$setElementOrder/mergeItemPtr":[{"name":1},{"name":2}],"mergeItemPtr":[{"name":2}]}"#,
            r#"{"mergeItemPtr":[{"name":1},{"name":2}]}"#,
        ),
        (
            "add map to merging list by pointer (three-way)",
            r#"{"mergeItemPtr":[{"name":1,"other":"a"},{"name":3}]}"#,
            r#"{"$setElementOrder/mergeItemPtr":[{"name":1},{"name":2}],"mergeItemPtr":[{"name":2}]}"#,
            r#"{"mergeItemPtr":[{"name":1,"other":"a"},{"name":2},{"name":3}]}"#,
        ),
        (
            "add map to merging list by pointer with conflict (three-way)",
            r#"{"mergeItemPtr":[{"name":3}]}"#,
            r#"{"$setElementOrder/mergeItemPtr":[{"name":1},{"name":2}],"mergeItemPtr":[{"name":1},{"name":2}]}"#,
            r#"{"mergeItemPtr":[{"name":1},{"name":2},{"name":3}]}"#,
        ),
        (
            "add field to map in merging list by pointer (two-way)",
            r#"{"mergeItemPtr":[{"name":1,"mergeItemPtr":[{"name":1},{"name":2,"value":2}]},{"name":2}]}"#,
            r#"{"$setElementOrder/mergeItemPtr":[{"name":1},{"name":2}],"mergeItemPtr":[{"$setElementOrder/mergeItemPtr":[{"name":1},{"name":2}],"name":1,"mergeItemPtr":[{"name":1,"value":1}]}]}"#,
            r#"{"mergeItemPtr":[{"name":1,"mergeItemPtr":[{"name":1,"value":1},{"name":2,"value":2}]},{"name":2}]}"#,
        ),
        (
            "add field to map in merging list by pointer (three-way)",
            r#"{"mergeItemPtr":[{"name":1,"other":"a","mergeItemPtr":[{"name":1,"other":"a"},{"name":2,"value":2,"other":"b"}]},{"name":2,"other":"b"}]}"#,
            r#"{"$setElementOrder/mergeItemPtr":[{"name":1},{"name":2}],"mergeItemPtr":[{"$setElementOrder/mergeItemPtr":[{"name":1},{"name":2}],"name":1,"mergeItemPtr":[{"name":1,"value":1}]}]}"#,
            r#"{"mergeItemPtr":[{"name":1,"other":"a","mergeItemPtr":[{"name":1,"value":1,"other":"a"},{"name":2,"value":2,"other":"b"}]},{"name":2,"other":"b"}]}"#,
        ),
        (
            "add field to map in merging list by pointer with conflict (three-way)",
            r#"{"mergeItemPtr":[{"name":1,"other":"a","mergeItemPtr":[{"name":1,"value":"a"},{"name":2,"value":2,"other":"b"}]},{"name":2,"other":"b"}]}"#,
            r#"{"$setElementOrder/mergeItemPtr":[{"name":1},{"name":2}],"mergeItemPtr":[{"$setElementOrder/mergeItemPtr":[{"name":1},{"name":2}],"name":1,"mergeItemPtr":[{"name":1,"value":1}]}]}"#,
            r#"{"mergeItemPtr":[{"name":1,"other":"a","mergeItemPtr":[{"name":1,"value":1},{"name":2,"value":2,"other":"b"}]},{"name":2,"other":"b"}]}"#,
        ),
        (
            "merge lists of scalars (two-way)",
            r#"{"mergingIntList":[1,2]}"#,
            r#"{"$setElementOrder/mergingIntList":[1,2,3],"mergingIntList":[3]}"#,
            r#"{"mergingIntList":[1,2,3]}"#,
        ),
        (
            "merge lists of scalars (three-way)",
            r#"{"mergingIntList":[1,2,4]}"#,
            r#"{"$setElementOrder/mergingIntList":[1,2,3],"mergingIntList":[3]}"#,
            r#"{"mergingIntList":[1,2,3,4]}"#,
        ),
        (
            "add duplicate field to map in merging int list (three-way)",
            r#"{"mergingIntList":[1,2,3]}"#,
            r#"{}"#,
            r#"{"mergingIntList":[1,2,3]}"#,
        ),
        (
            "add an item in a list of primitives and preserve order (two-way)",
            r#"{"mergingIntList":[1,2]}"#,
            r#"{"$setElementOrder/mergingIntList":[3,1,2],"mergingIntList":[3]}"#,
            r#"{"mergingIntList":[3,1,2]}"#,
        ),
        (
            "add an item in a list of primitives and preserve order (three-way)",
            r#"{"mergingIntList":[1,4,2]}"#,
            r#"{"$setElementOrder/mergingIntList":[3,1,2],"mergingIntList":[3]}"#,
            r#"{"mergingIntList":[3,1,4,2]}"#,
        ),
        (
            "delete an item in a list of primitives and preserve order (two-way)",
            r#"{"mergingIntList":[1,2,3]}"#,
            r#"{"$setElementOrder/mergingIntList":[2,1],"$deleteFromPrimitiveList/mergingIntList":[3]}"#,
            r#"{"mergingIntList":[2,1]}"#,
        ),
        (
            "add an item in a list and preserve order (two-way)",
            r#"{"mergingList":[{"name":1},{"name":2,"value":2}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":3},{"name":1},{"name":2}],"mergingList":[{"name":3,"value":3}]}"#,
            r#"{"mergingList":[{"name":3,"value":3},{"name":1},{"name":2,"value":2}]}"#,
        ),
        (
            "add an item in a list and preserve order (three-way)",
            r#"{"mergingList":[{"name":1,"other":"a"},{"name":2,"value":2,"other":"b"}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":3},{"name":1},{"name":2}],"mergingList":[{"name":3,"value":3}]}"#,
            r#"{"mergingList":[{"name":3,"value":3},{"name":1,"other":"a"},{"name":2,"value":2,"other":"b"}]}"#,
        ),
        (
            "add multiple items in a list and preserve order (two-way)",
            r#"{"mergingList":[{"name":1},{"name":2,"value":2}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":1},{"name":4},{"name":2},{"name":3}],"mergingList":[{"name":4,"value":4},{"name":3,"value":3}]}"#,
            r#"{"mergingList":[{"name":1},{"name":4,"value":4},{"name":2,"value":2},{"name":3,"value":3}]}"#,
        ),
        (
            "add multiple items in a list and preserve order (three-way)",
            r#"{"mergingList":[{"name":1,"other":"a"},{"name":2,"value":2,"other":"b"}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":1},{"name":4},{"name":2},{"name":3}],"mergingList":[{"name":4,"value":4},{"name":3,"value":3}]}"#,
            r#"{"mergingList":[{"name":1,"other":"a"},{"name":4,"value":4},{"name":2,"value":2,"other":"b"},{"name":3,"value":3}]}"#,
        ),
        (
            "delete an item in a list and preserve order (two-way)",
            r#"{"mergingList":[{"name":1},{"name":3,"value":3},{"name":2,"value":2}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":2},{"name":1}],"mergingList":[{"name":3,"$patch":"delete"}]}"#,
            r#"{"mergingList":[{"name":2,"value":2},{"name":1}]}"#,
        ),
        (
            "delete an item in a list and preserve order (three-way)",
            r#"{"mergingList":[{"name":1,"other":"a"},{"name":2,"value":2,"other":"b"},{"name":3,"value":3}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":2},{"name":1}],"mergingList":[{"name":3,"$patch":"delete"}]}"#,
            r#"{"mergingList":[{"name":2,"value":2,"other":"b"},{"name":1,"other":"a"}]}"#,
        ),
        (
            "change an item in a list and preserve order (two-way)",
            r#"{"mergingList":[{"name":1},{"name":3,"value":3},{"name":2,"value":2}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":2},{"name":3},{"name":1}],"mergingList":[{"name":3,"value":"x"}]}"#,
            r#"{"mergingList":[{"name":2,"value":2},{"name":3,"value":"x"},{"name":1}]}"#,
        ),
        (
            "change an item in a list and preserve order (three-way)",
            r#"{"mergingList":[{"name":1,"other":"a"},{"name":2,"value":2,"other":"b"},{"name":3,"value":3}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":2},{"name":3},{"name":1}],"mergingList":[{"name":3,"value":"x"}]}"#,
            r#"{"mergingList":[{"name":2,"value":2,"other":"b"},{"name":3,"value":"x"},{"name":1,"other":"a"}]}"#,
        ),
        (
            "add and delete an item in a list and preserve order (two-way)",
            r#"{"mergingList":[{"name":1},{"name":3,"value":3},{"name":2,"value":2}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":4},{"name":2},{"name":1}],"mergingList":[{"name":4,"value":4},{"name":3,"$patch":"delete"}]}"#,
            r#"{"mergingList":[{"name":4,"value":4},{"name":2,"value":2},{"name":1}]}"#,
        ),
        (
            "add and delete an item in a list and preserve order (three-way)",
            r#"{"mergingList":[{"name":1,"other":"a"},{"name":2,"value":2,"other":"b"},{"name":3,"value":3}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":4},{"name":2},{"name":1}],"mergingList":[{"name":4,"value":4},{"name":3,"$patch":"delete"}]}"#,
            r#"{"mergingList":[{"name":4,"value":4},{"name":2,"value":2,"other":"b"},{"name":1,"other":"a"}]}"#,
        ),
        (
            "set elements order in a list (two-way)",
            r#"{"mergingList":[{"name":1},{"name":3,"value":3},{"name":4,"value":4},{"name":2,"value":2}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":4},{"name":2},{"name":3},{"name":1}]}"#,
            r#"{"mergingList":[{"name":4,"value":4},{"name":2,"value":2},{"name":3,"value":3},{"name":1}]}"#,
        ),
        (
            "set elements order in a list (three-way)",
            r#"{"mergingList":[{"name":1,"other":"a"},{"name":3,"value":3},{"name":4,"value":4},{"name":2,"value":2}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":4},{"name":2},{"name":3},{"name":1}]}"#,
            r#"{"mergingList":[{"name":4,"value":4},{"name":2,"value":2},{"name":3,"value":3},{"name":1,"other":"a"}]}"#,
        ),
        (
            "set elements order in a list with server-only items (three-way)",
            r#"{"mergingList":[{"name":1,"other":"a"},{"name":3,"value":3},{"name":4,"value":4},{"name":2,"value":2},{"name":9}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":4},{"name":2},{"name":3},{"name":1}]}"#,
            r#"{"mergingList":[{"name":4,"value":4},{"name":2,"value":2},{"name":3,"value":3},{"name":1,"other":"a"},{"name":9}]}"#,
        ),
        (
            "set elements order in a list with server-only items 2 (two-way)",
            r#"{"mergingList":[{"name":1},{"name":2,"value":2},{"name":3,"value":3},{"name":4,"value":4}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":2},{"name":1},{"name":4},{"name":3}]}"#,
            r#"{"mergingList":[{"name":2,"value":2},{"name":1},{"name":4,"value":4},{"name":3,"value":3}]}"#,
        ),
        (
            "set elements order in a list with server-only items 2 (three-way)",
            r#"{"mergingList":[{"name":1,"other":"a"},{"name":2,"value":2},{"name":9},{"name":3,"value":3},{"name":4,"value":4}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":2},{"name":1},{"name":4},{"name":3}]}"#,
            r#"{"mergingList":[{"name":2,"value":2},{"name":1,"other":"a"},{"name":9},{"name":4,"value":4},{"name":3,"value":3}]}"#,
        ),
        (
            "set elements order in a list with server-only items 3 (three-way)",
            r#"{"mergingList":[{"name":1,"other":"a"},{"name":2,"value":2},{"name":7},{"name":9},{"name":8},{"name":3,"value":3},{"name":4,"value":4}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":2},{"name":1},{"name":4},{"name":3}]}"#,
            r#"{"mergingList":[{"name":2,"value":2},{"name":1,"other":"a"},{"name":7},{"name":9},{"name":8},{"name":4,"value":4},{"name":3,"value":3}]}"#,
        ),
        (
            "add multiple items in a int list and preserve order (two-way)",
            r#"{"mergingIntList":[1,2]}"#,
            r#"{"$setElementOrder/mergingIntList":[1,4,2,3],"mergingIntList":[4,3]}"#,
            r#"{"mergingIntList":[1,4,2,3]}"#,
        ),
        (
            "delete an item in a int list and preserve order (two-way)",
            r#"{"mergingIntList":[1,3,2]}"#,
            r#"{"$setElementOrder/mergingIntList":[2,1],"$deleteFromPrimitiveList/mergingIntList":[3]}"#,
            r#"{"mergingIntList":[2,1]}"#,
        ),
        (
            "add and delete an item in a int list and preserve order (two-way)",
            r#"{"mergingIntList":[1,3,2]}"#,
            r#"{"$setElementOrder/mergingIntList":[4,2,1],"mergingIntList":[4],"$deleteFromPrimitiveList/mergingIntList":[3]}"#,
            r#"{"mergingIntList":[4,2,1]}"#,
        ),
        (
            "add and delete an item in a int list and preserve order (three-way)",
            r#"{"mergingIntList":[1,2,3]}"#,
            r#"{"$setElementOrder/mergingIntList":[4,2,1],"mergingIntList":[4],"$deleteFromPrimitiveList/mergingIntList":[3]}"#,
            r#"{"mergingIntList":[4,2,1]}"#,
        ),
        (
            "set elements order in a int list (two-way)",
            r#"{"mergingIntList":[1,3,4,2]}"#,
            r#"{"$setElementOrder/mergingIntList":[4,2,3,1]}"#,
            r#"{"mergingIntList":[4,2,3,1]}"#,
        ),
        (
            "set elements order in a int list with server-only items (three-way)",
            r#"{"mergingIntList":[1,3,4,2,9]}"#,
            r#"{"$setElementOrder/mergingIntList":[4,2,3,1]}"#,
            r#"{"mergingIntList":[4,2,3,1,9]}"#,
        ),
        (
            "set elements order in a int list with server-only items 2 (two-way)",
            r#"{"mergingIntList":[1,2,3,4]}"#,
            r#"{"$setElementOrder/mergingIntList":[2,1,4,3]}"#,
            r#"{"mergingIntList":[2,1,4,3]}"#,
        ),
        (
            "set elements order in a int list with server-only items 2 (three-way)",
            r#"{"mergingIntList":[1,2,9,3,4]}"#,
            r#"{"$setElementOrder/mergingIntList":[2,1,4,3]}"#,
            r#"{"mergingIntList":[2,1,9,4,3]}"#,
        ),
        (
            "set elements order in a int list with server-only items 3 (two-way)",
            r#"{"mergingIntList":[1,2,3,2,4]}"#,
            r#"{"$setElementOrder/mergingIntList":[2,1,4,3,2]}"#,
            r#"{"mergingIntList":[2,2,1,4,3]}"#,
        ),
        (
            "retainKeys map should clear defaulted field (two-way)",
            r#"{}"#,
            r#"{"retainKeysMap":{"other":"bar"}}"#,
            r#"{"retainKeysMap":{"other":"bar"}}"#,
        ),
        (
            "retainKeys map should clear defaulted field (three-way)",
            r#"{"retainKeysMap":{"value":"foo"}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["other"],"other":"bar"}}"#,
            r#"{"retainKeysMap":{"other":"bar"}}"#,
        ),
        (
            "retainKeys map should clear defaulted field with conflict (discriminated union) (two-way)",
            r#"{}"#,
            r#"{"retainKeysMap":{"name":"type2","other":"bar"}}"#,
            r#"{"retainKeysMap":{"name":"type2","other":"bar"}}"#,
        ),
        (
            "retainKeys map should clear defaulted field with conflict (discriminated union) (three-way)",
            r#"{"retainKeysMap":{"name":"type1","value":"foo"}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["name","other"],"name":"type2","other":"bar"}}"#,
            r#"{"retainKeysMap":{"name":"type2","other":"bar"}}"#,
        ),
        (
            "retainKeys map adds a field (two-way)",
            r#"{"retainKeysMap":{"name":"foo"}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["name","value"],"value":"bar"}}"#,
            r#"{"retainKeysMap":{"name":"foo","value":"bar"}}"#,
        ),
        (
            "retainKeys map adds a field and clear a field (three-way)",
            r#"{"retainKeysMap":{"name":"foo","other":"a"}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["name","value"],"value":"bar"}}"#,
            r#"{"retainKeysMap":{"name":"foo","value":"bar"}}"#,
        ),
        (
            "retainKeys map deletes a field (two-way)",
            r#"{"retainKeysMap":{"name":"foo","value":"bar"}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["name"],"value":null}}"#,
            r#"{"retainKeysMap":{"name":"foo"}}"#,
        ),
        (
            "retainKeys map deletes a field and clears a field (three-way)",
            r#"{"retainKeysMap":{"name":"foo","value":"bar","other":"a"}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["name"],"value":null}}"#,
            r#"{"retainKeysMap":{"name":"foo"}}"#,
        ),
        (
            "retainKeys map clears a field (two-way)",
            r#"{"retainKeysMap":{"name":"foo","value":"bar"}}"#,
            r#"{}"#,
            r#"{"retainKeysMap":{"name":"foo","value":"bar"}}"#,
        ),
        (
            "retainKeys map clears a field (three-way)",
            r#"{"retainKeysMap":{"name":"foo","value":"bar","other":"a"}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["name","value"]}}"#,
            r#"{"retainKeysMap":{"name":"foo","value":"bar"}}"#,
        ),
        (
            "retainKeys map nested map with no change (two-way)",
            r#"{"retainKeysMap":{"name":"foo","simpleMap":{"key1":"a"}}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["name","simpleMap","value"],"value":"bar"}}"#,
            r#"{"retainKeysMap":{"name":"foo","value":"bar","simpleMap":{"key1":"a"}}}"#,
        ),
        (
            "retainKeys map adds a field in a nested map (two-way)",
            r#"{"retainKeysMap":{"name":"foo","value":"bar","simpleMap":{"key1":"a"}}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["name","simpleMap","value"],"simpleMap":{"key2":"b"}}}"#,
            r#"{"retainKeysMap":{"name":"foo","value":"bar","simpleMap":{"key1":"a","key2":"b"}}}"#,
        ),
        (
            "retainKeys map adds a field in a nested map (three-way)",
            r#"{"retainKeysMap":{"name":"foo","value":"bar","simpleMap":{"key1":"a","key3":"c"}}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["name","simpleMap","value"],"simpleMap":{"key2":"b"}}}"#,
            r#"{"retainKeysMap":{"name":"foo","value":"bar","simpleMap":{"key1":"a","key2":"b","key3":"c"}}}"#,
        ),
        (
            "retainKeys map deletes a field in a nested map (two-way)",
            r#"{"retainKeysMap":{"name":"foo","value":"bar","simpleMap":{"key1":"a","key2":"b"}}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["name","simpleMap","value"],"simpleMap":{"key2":null}}}"#,
            r#"{"retainKeysMap":{"name":"foo","value":"bar","simpleMap":{"key1":"a"}}}"#,
        ),
        (
            "retainKeys map deletes a field in a nested map (three-way)",
            r#"{"retainKeysMap":{"name":"foo","value":"bar","simpleMap":{"key1":"a","key2":"b","key3":"c"}}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["name","simpleMap","value"],"simpleMap":{"key2":null}}}"#,
            r#"{"retainKeysMap":{"name":"foo","value":"bar","simpleMap":{"key1":"a","key3":"c"}}}"#,
        ),
        (
            "retainKeys map changes a field in a nested map (two-way)",
            r#"{"retainKeysMap":{"name":"foo","value":"bar","simpleMap":{"key1":"a","key2":"b"}}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["name","simpleMap","value"],"simpleMap":{"key1":"x"}}}"#,
            r#"{"retainKeysMap":{"name":"foo","value":"bar","simpleMap":{"key1":"x","key2":"b"}}}"#,
        ),
        (
            "retainKeys map changes a field in a nested map (three-way)",
            r#"{"retainKeysMap":{"name":"foo","value":"bar","simpleMap":{"key1":"a","key2":"b","key3":"c"}}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["name","simpleMap","value"],"simpleMap":{"key1":"x"}}}"#,
            r#"{"retainKeysMap":{"name":"foo","value":"bar","simpleMap":{"key1":"x","key2":"b","key3":"c"}}}"#,
        ),
        (
            "retainKeys map changes a field in a nested map with conflict (two-way)",
            r#"{"retainKeysMap":{"name":"foo","value":"bar","simpleMap":{"key1":"old","key2":"b"}}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["name","simpleMap","value"],"simpleMap":{"key1":"modified"}}}"#,
            r#"{"retainKeysMap":{"name":"foo","value":"bar","simpleMap":{"key1":"modified","key2":"b"}}}"#,
        ),
        (
            "retainKeys map changes a field in a nested map with conflict (three-way)",
            r#"{"retainKeysMap":{"name":"foo","value":"bar","simpleMap":{"key1":"new","key2":"b","key3":"c"}}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["name","simpleMap","value"],"simpleMap":{"key1":"modified"}}}"#,
            r#"{"retainKeysMap":{"name":"foo","value":"bar","simpleMap":{"key1":"modified","key2":"b","key3":"c"}}}"#,
        ),
        (
            "retainKeys map replaces non-merging list (two-way)",
            r#"{"retainKeysMap":{"name":"foo","value":"bar","nonMergingList":[{"name":"a"},{"name":"b"}]}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["name","nonMergingList","value"],"nonMergingList":[{"name":"a"},{"name":"c"},{"name":"b"}]}}"#,
            r#"{"retainKeysMap":{"name":"foo","value":"bar","nonMergingList":[{"name":"a"},{"name":"c"},{"name":"b"}]}}"#,
        ),
        (
            "retainKeys map nested non-merging list with no change (two-way)",
            r#"{"retainKeysMap":{"name":"foo","nonMergingList":[{"name":"a"},{"name":"b"}]}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["name","nonMergingList","value"],"value":"bar"}}"#,
            r#"{"retainKeysMap":{"name":"foo","value":"bar","nonMergingList":[{"name":"a"},{"name":"b"}]}}"#,
        ),
        (
            "retainKeys map nested non-merging list with no change with conflict (three-way)",
            r#"{"retainKeysMap":{"name":"foo","nonMergingList":[{"name":"a"},{"name":"b"},{"name":"c"}]}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["name","nonMergingList","value"],"value":"bar","nonMergingList":[{"name":"a"},{"name":"b"}]}}"#,
            r#"{"retainKeysMap":{"name":"foo","value":"bar","nonMergingList":[{"name":"a"},{"name":"b"}]}}"#,
        ),
        (
            "retainKeys map deletes nested non-merging list (two-way)",
            r#"{"retainKeysMap":{"name":"foo","nonMergingList":[{"name":"a"},{"name":"b"}]}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["name","value"],"value":"bar","nonMergingList":null}}"#,
            r#"{"retainKeysMap":{"name":"foo","value":"bar"}}"#,
        ),
        (
            "retainKeys map delete nested non-merging list with conflict (three-way)",
            r#"{"retainKeysMap":{"name":"foo","nonMergingList":[{"name":"a"},{"name":"b"},{"name":"c"}]}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["name","value"],"value":"bar","nonMergingList":null}}"#,
            r#"{"retainKeysMap":{"name":"foo","value":"bar"}}"#,
        ),
        (
            "retainKeys map nested merging int list with no change (two-way)",
            r#"{"retainKeysMap":{"name":"foo","mergingIntList":[1,2]}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["mergingIntList","name","value"],"value":"bar"}}"#,
            r#"{"retainKeysMap":{"name":"foo","value":"bar","mergingIntList":[1,2]}}"#,
        ),
        (
            "retainKeys map nested merging int list with no change (three-way)",
            r#"{"retainKeysMap":{"name":"foo","mergingIntList":[1,2,3]}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["mergingIntList","name","value"],"$setElementOrder/mergingIntList":[1,2],"value":"bar"}}"#,
            r#"{"retainKeysMap":{"name":"foo","value":"bar","mergingIntList":[1,2,3]}}"#,
        ),
        (
            "retainKeys map adds an item in nested merging int list (two-way)",
            r#"{"retainKeysMap":{"name":"foo","mergingIntList":[1,2]}}"#,
            r#"{"retainKeysMap":{"$setElementOrder/mergingIntList":[1,2,4],"$retainKeys":["mergingIntList","name"],"mergingIntList":[4]}}"#,
            r#"{"retainKeysMap":{"name":"foo","mergingIntList":[1,2,4]}}"#,
        ),
        (
            "retainKeys map adds an item in nested merging int list (three-way)",
            r#"{"retainKeysMap":{"name":"foo","mergingIntList":[1,2,3]}}"#,
            r#"{"retainKeysMap":{"$setElementOrder/mergingIntList":[1,2,4],"$retainKeys":["mergingIntList","name"],"mergingIntList":[4]}}"#,
            r#"{"retainKeysMap":{"name":"foo","mergingIntList":[1,2,4,3]}}"#,
        ),
        (
            "retainKeys map deletes an item in nested merging int list (two-way)",
            r#"{"retainKeysMap":{"name":"foo","mergingIntList":[1,2,3]}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["mergingIntList","name"],"$deleteFromPrimitiveList/mergingIntList":[2],"$setElementOrder/mergingIntList":[1,3]}}"#,
            r#"{"retainKeysMap":{"name":"foo","mergingIntList":[1,3]}}"#,
        ),
        (
            "retainKeys map deletes an item in nested merging int list (three-way)",
            r#"{"retainKeysMap":{"name":"foo","mergingIntList":[1,2,3,4]}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["mergingIntList","name"],"$deleteFromPrimitiveList/mergingIntList":[2],"$setElementOrder/mergingIntList":[1,3]}}"#,
            r#"{"retainKeysMap":{"name":"foo","mergingIntList":[1,3,4]}}"#,
        ),
        (
            "retainKeys map adds an item and deletes an item in nested merging int list (two-way)",
            r#"{"retainKeysMap":{"name":"foo","mergingIntList":[1,2,3]}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["mergingIntList","name"],"mergingIntList":[5],"$deleteFromPrimitiveList/mergingIntList":[2],"$setElementOrder/mergingIntList":[1,3,5]}}"#,
            r#"{"retainKeysMap":{"name":"foo","mergingIntList":[1,3,5]}}"#,
        ),
        (
            "retainKeys map adds an item and deletes an item in nested merging int list (three-way)",
            r#"{"retainKeysMap":{"name":"foo","mergingIntList":[1,2,3,4]}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["mergingIntList","name"],"mergingIntList":[5],"$deleteFromPrimitiveList/mergingIntList":[2],"$setElementOrder/mergingIntList":[1,3,5]}}"#,
            r#"{"retainKeysMap":{"name":"foo","mergingIntList":[1,3,5,4]}}"#,
        ),
        (
            "retainKeys map deletes nested merging int list (two-way)",
            r#"{"retainKeysMap":{"name":"foo","mergingIntList":[1,2,3]}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["name"],"mergingIntList":null}}"#,
            r#"{"retainKeysMap":{"name":"foo"}}"#,
        ),
        (
            "retainKeys map nested merging list with no change (two-way)",
            r#"{"retainKeysMap":{"name":"foo","mergingList":[{"name":"a"},{"name":"b"}]}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["mergingList","name","value"],"value":"bar"}}"#,
            r#"{"retainKeysMap":{"name":"foo","value":"bar","mergingList":[{"name":"a"},{"name":"b"}]}}"#,
        ),
        (
            "retainKeys map nested merging list with no change (three-way)",
            r#"{"retainKeysMap":{"name":"foo","mergingList":[{"name":"a"},{"name":"b"},{"name":"c"}]}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["mergingList","name","value"],"$setElementOrder/mergingList":[{"name":"a"},{"name":"b"}],"value":"bar"}}"#,
            r#"{"retainKeysMap":{"name":"foo","value":"bar","mergingList":[{"name":"a"},{"name":"b"},{"name":"c"}]}}"#,
        ),
        (
            "retainKeys map adds an item in nested merging list (two-way)",
            r#"{"retainKeysMap":{"name":"foo","mergingList":[{"name":"a"},{"name":"b"}]}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["mergingList","name"],"$setElementOrder/mergingList":[{"name":"a"},{"name":"b"},{"name":"c"}],"mergingList":[{"name":"c"}]}}"#,
            r#"{"retainKeysMap":{"name":"foo","mergingList":[{"name":"a"},{"name":"b"},{"name":"c"}]}}"#,
        ),
        (
            "retainKeys map adds an item in nested merging list (three-way)",
            r#"{"retainKeysMap":{"name":"foo","mergingList":[{"name":"a"},{"name":"b"},{"name":"x"}]}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["mergingList","name"],"$setElementOrder/mergingList":[{"name":"a"},{"name":"b"},{"name":"c"}],"mergingList":[{"name":"c"}]}}"#,
            r#"{"retainKeysMap":{"name":"foo","mergingList":[{"name":"a"},{"name":"b"},{"name":"c"},{"name":"x"}]}}"#,
        ),
        (
            "retainKeys map changes an item in nested merging list (two-way)",
            r#"{"retainKeysMap":{"name":"foo","mergingList":[{"name":"a"},{"name":"b","value":"foo"}]}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["mergingList","name"],"$setElementOrder/mergingList":[{"name":"a"},{"name":"b"}],"mergingList":[{"name":"b","value":"bar"}]}}"#,
            r#"{"retainKeysMap":{"name":"foo","mergingList":[{"name":"a"},{"name":"b","value":"bar"}]}}"#,
        ),
        (
            "retainKeys map changes an item in nested merging list (three-way)",
            r#"{"retainKeysMap":{"name":"foo","mergingList":[{"name":"a"},{"name":"b","value":"foo"},{"name":"x"}]}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["mergingList","name"],"$setElementOrder/mergingList":[{"name":"a"},{"name":"b"}],"mergingList":[{"name":"b","value":"bar"}]}}"#,
            r#"{"retainKeysMap":{"name":"foo","mergingList":[{"name":"a"},{"name":"b","value":"bar"},{"name":"x"}]}}"#,
        ),
        (
            "retainKeys map deletes nested merging list (two-way)",
            r#"{"retainKeysMap":{"name":"foo","mergingList":[{"name":"a"},{"name":"b"}]}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["name","value"],"value":"bar","mergingList":null}}"#,
            r#"{"retainKeysMap":{"name":"foo","value":"bar"}}"#,
        ),
        (
            "retainKeys map deletes an item in nested merging list (two-way)",
            r#"{"retainKeysMap":{"name":"foo","mergingList":[{"name":"a"},{"name":"b"}]}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["mergingList","name"],"$setElementOrder/mergingList":[{"name":"a"}],"mergingList":[{"name":"b","$patch":"delete"}]}}"#,
            r#"{"retainKeysMap":{"name":"foo","mergingList":[{"name":"a"}]}}"#,
        ),
        (
            "retainKeys map deletes an item in nested merging list (three-way)",
            r#"{"retainKeysMap":{"name":"foo","mergingList":[{"name":"a"},{"name":"b"},{"name":"x"}]}}"#,
            r#"{"retainKeysMap":{"$retainKeys":["mergingList","name"],"$setElementOrder/mergingList":[{"name":"a"}],"mergingList":[{"name":"b","$patch":"delete"}]}}"#,
            r#"{"retainKeysMap":{"name":"foo","mergingList":[{"name":"a"},{"name":"x"}]}}"#,
        ),
        (
            "retainKeys list of maps clears a field (two-way)",
            r#"{"retainKeysMergingList":[{"name":"bar"},{"name":"foo","value":"a"}]}"#,
            r#"{}"#,
            r#"{"retainKeysMergingList":[{"name":"bar"},{"name":"foo","value":"a"}]}"#,
        ),
        (
            "retainKeys list of maps clears a field (three-way)",
            r#"{"retainKeysMergingList":[{"name":"bar"},{"name":"foo","value":"a","other":"x"}]}"#,
            r#"{"$setElementOrder/retainKeysMergingList":[{"name":"bar"},{"name":"foo"}],"retainKeysMergingList":[{"$retainKeys":["name","value"],"name":"foo"}]}"#,
            r#"{"retainKeysMergingList":[{"name":"bar"},{"name":"foo","value":"a"}]}"#,
        ),
        (
            "retainKeys list of maps clears a field with conflict (two-way)",
            r#"{"retainKeysMergingList":[{"name":"bar"},{"name":"foo","value":"old"}]}"#,
            r#"{"$setElementOrder/retainKeysMergingList":[{"name":"bar"},{"name":"foo"}],"retainKeysMergingList":[{"$retainKeys":["name","value"],"name":"foo","value":"modified"}]}"#,
            r#"{"retainKeysMergingList":[{"name":"bar"},{"name":"foo","value":"modified"}]}"#,
        ),
        (
            "retainKeys list of maps clears a field with conflict (three-way)",
            r#"{"retainKeysMergingList":[{"name":"bar"},{"name":"foo","value":"new","other":"x"}]}"#,
            r#"{"$setElementOrder/retainKeysMergingList":[{"name":"bar"},{"name":"foo"}],"retainKeysMergingList":[{"$retainKeys":["name","value"],"name":"foo","value":"modified"}]}"#,
            r#"{"retainKeysMergingList":[{"name":"bar"},{"name":"foo","value":"modified"}]}"#,
        ),
        (
            "retainKeys list of maps changes a field and clear a field (two-way)",
            r#"{"retainKeysMergingList":[{"name":"bar"},{"name":"foo","value":"old"}]}"#,
            r#"{"$setElementOrder/retainKeysMergingList":[{"name":"bar"},{"name":"foo"}],"retainKeysMergingList":[{"$retainKeys":["name","value"],"name":"foo","value":"new"}]}"#,
            r#"{"retainKeysMergingList":[{"name":"bar"},{"name":"foo","value":"new"}]}"#,
        ),
        (
            "retainKeys list of maps changes a field and clear a field (three-way)",
            r#"{"retainKeysMergingList":[{"name":"bar"},{"name":"foo","value":"old","other":"x"}]}"#,
            r#"{"$setElementOrder/retainKeysMergingList":[{"name":"bar"},{"name":"foo"}],"retainKeysMergingList":[{"$retainKeys":["name","value"],"name":"foo","value":"new"}]}"#,
            r#"{"retainKeysMergingList":[{"name":"bar"},{"name":"foo","value":"new"}]}"#,
        ),
        (
            "retainKeys list of maps changes a field and clear a field with conflict (three-way)",
            r#"{"retainKeysMergingList":[{"name":"bar"},{"name":"foo","value":"modified","other":"x"}]}"#,
            r#"{"$setElementOrder/retainKeysMergingList":[{"name":"bar"},{"name":"foo"}],"retainKeysMergingList":[{"$retainKeys":["name","value"],"name":"foo","value":"new"}]}"#,
            r#"{"retainKeysMergingList":[{"name":"bar"},{"name":"foo","value":"new"}]}"#,
        ),
        (
            "retainKeys list of maps adds a field (two-way)",
            r#"{"retainKeysMergingList":[{"name":"bar"},{"name":"foo"}]}"#,
            r#"{"$setElementOrder/retainKeysMergingList":[{"name":"bar"},{"name":"foo"}],"retainKeysMergingList":[{"$retainKeys":["name","value"],"name":"foo","value":"a"}]}"#,
            r#"{"retainKeysMergingList":[{"name":"bar"},{"name":"foo","value":"a"}]}"#,
        ),
        (
            "retainKeys list of maps adds a field and clear a field (three-way)",
            r#"{"retainKeysMergingList":[{"name":"bar"},{"name":"foo","other":"x"}]}"#,
            r#"{"$setElementOrder/retainKeysMergingList":[{"name":"bar"},{"name":"foo"}],"retainKeysMergingList":[{"$retainKeys":["name","value"],"name":"foo","value":"a"}]}"#,
            r#"{"retainKeysMergingList":[{"name":"bar"},{"name":"foo","value":"a"}]}"#,
        ),
        (
            "retainKeys list of maps deletes a field (two-way)",
            r#"{"retainKeysMergingList":[{"name":"bar"},{"name":"foo","value":"a"}]}"#,
            r#"{"$setElementOrder/retainKeysMergingList":[{"name":"bar"},{"name":"foo"}],"retainKeysMergingList":[{"$retainKeys":["name"],"name":"foo","value":null}]}"#,
            r#"{"retainKeysMergingList":[{"name":"bar"},{"name":"foo"}]}"#,
        ),
        (
            "retainKeys list of maps deletes a field and clear a field (three-way)",
            r#"{"retainKeysMergingList":[{"name":"bar"},{"name":"foo","value":"a","other":"x"}]}"#,
            r#"{"$setElementOrder/retainKeysMergingList":[{"name":"bar"},{"name":"foo"}],"retainKeysMergingList":[{"$retainKeys":["name"],"name":"foo","value":null}]}"#,
            r#"{"retainKeysMergingList":[{"name":"bar"},{"name":"foo"}]}"#,
        ),
        (
            "delete and reorder in one list, reorder in another (two-way)",
            r#"{"mergingList":[{"name":"a","value":"a"},{"name":"b","value":"b"}],"mergeItemPtr":[{"name":"c","value":"c"},{"name":"d","value":"d"}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":"b"}],"$setElementOrder/mergeItemPtr":[{"name":"d"},{"name":"c"}],"mergingList":[{"$patch":"delete","name":"a"}]}"#,
            r#"{"mergingList":[{"name":"b","value":"b"}],"mergeItemPtr":[{"name":"d","value":"d"},{"name":"c","value":"c"}]}"#,
        ),
        (
            "$setElementOrder contains item that is not present in the list to be merged (two-way)",
            r#"{"mergingList":[{"name":1},{"name":3}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":3},{"name":2},{"name":1}],"mergingList":[{"name":3,"value":3},{"name":1,"value":1}]}"#,
            r#"{"mergingList":[{"name":3,"value":3},{"name":1,"value":1}]}"#,
        ),
        (
            "$setElementOrder contains item that is not present in the int list to be merged (two-way)",
            r#"{"mergingIntList":[1,3]}"#,
            r#"{"$setElementOrder/mergingIntList":[3,2,1]}"#,
            r#"{"mergingIntList":[3,1]}"#,
        ),
        (
            "$deleteFromPrimitiveList of nonexistent item in primitive list should not add the item to the list (two-way)",
            r#"{"mergingIntList":[1,2]}"#,
            r#"{"$deleteFromPrimitiveList/mergingIntList":[3]}"#,
            r#"{"mergingIntList":[1,2]}"#,
        ),
        (
            "$deleteFromPrimitiveList on empty primitive list should not add the item to the list (two-way)",
            r#"{"mergingIntList":null}"#,
            r#"{"$deleteFromPrimitiveList/mergingIntList":[3]}"#,
            r#"{"mergingIntList":null}"#,
        ),
        (
            "$deleteFromPrimitiveList on nonexistent primitive list should not add the primitive list (two-way)",
            r#"{"foo":["bar"]}"#,
            r#"{"$deleteFromPrimitiveList/mergingIntList":[3]}"#,
            r#"{"foo":["bar"]}"#,
        ),
        (
            "$deleteFromPrimitiveList should delete item from a list with merge patch strategy (two-way)",
            r#"{"mergingIntList":[1,2,3]}"#,
            r#"{"$deleteFromPrimitiveList/mergingIntList":[2]}"#,
            r#"{"mergingIntList":[1,3]}"#,
        ),
        (
            "$deleteFromPrimitiveList should delete item from a list without merge patch strategy (two-way)",
            r#"{"nonMergingIntList":[1,2,3]}"#,
            r#"{"$deleteFromPrimitiveList/nonMergingIntList":[2]}"#,
            r#"{"nonMergingIntList":[1,3]}"#,
        ),
        (
            "replace RawExtension field, rest unchanched (two-way)",
            r#"{"name":"my-object","value":"some-value","other":"current-other","replacingItem":{"Some":"Generic","Yaml":"Inside","The":"RawExtension","Field":"Period"}}"#,
            r#"{"mergingList":[{"name":1},{"name":2},{"name":3}],"replacingItem":{"Newly":"Modified","Yaml":"Inside","The":"RawExtension"}}"#,
            r#"{"name":"my-object","value":"some-value","other":"current-other","mergingList":[{"name":1},{"name":2},{"name":3}],"replacingItem":{"Newly":"Modified","Yaml":"Inside","The":"RawExtension"}}"#,
        ),
        (
            "replace RawExtension field, rest unchanched (three-way)",
            r#"{"name":"my-object","value":"some-value","other":"current-other","mergingList":[{"name":1},{"name":2},{"name":3}],"replacingItem":{"Some":"Generic","Yaml":"Inside","The":"RawExtension","Field":"Period"}}"#,
            r#"{"replacingItem":{"Newly":"Modified","Yaml":"Inside","The":"RawExtension"}}"#,
            r#"{"name":"my-object","value":"some-value","other":"current-other","mergingList":[{"name":1},{"name":2},{"name":3}],"replacingItem":{"Newly":"Modified","Yaml":"Inside","The":"RawExtension"}}"#,
        ),
        (
            "replace RawExtension field and merge list (two-way)",
            r#"{"name":"my-object","value":"some-value","other":"current-other","mergingList":[{"name":1}],"replacingItem":{"Some":"Generic","Yaml":"Inside","The":"RawExtension","Field":"Period"}}"#,
            r#"{"$setElementOrder/mergingList":[{"name":1},{"name":2}],"mergingList":[{"name":2}],"replacingItem":{"Newly":"Modified","Yaml":"Inside","The":"RawExtension"}}"#,
            r#"{"name":"my-object","value":"some-value","other":"current-other","mergingList":[{"name":1},{"name":2}],"replacingItem":{"Newly":"Modified","Yaml":"Inside","The":"RawExtension"}}"#,
        ),
        (
            "replace RawExtension field and merge list (three-way)",
            r#"{"name":"my-object","value":"some-value","other":"current-other","mergingList":[{"name":1},{"name":3}],"replacingItem":{"Some":"Generic","Yaml":"Inside","The":"RawExtension","Field":"Period"}}"#,
            r#"{"$setElementOrder/mergingList":[{"name":1},{"name":2}],"mergingList":[{"name":2}],"replacingItem":{"Newly":"Modified","Yaml":"Inside","The":"RawExtension"}}"#,
            r#"{"name":"my-object","value":"some-value","other":"current-other","mergingList":[{"name":1},{"name":2},{"name":3}],"replacingItem":{"Newly":"Modified","Yaml":"Inside","The":"RawExtension"}}"#,
        ),
    ];

    /// Upstream's cases that must fail, as (description, object, patch, part of the message).
    const UPSTREAM_ERROR_CASES: &[(&str, &str, &str, &str)] = &[
        (
            "should check if order in $setElementOrder and patch list match",
            r#"{"mergingList":[{"name":1},{"name":3},{"name":2}]}"#,
            r#"{"$setElementOrder/mergingList":[{"name":1},{"name":2},{"name":3}],"mergingList":[{"name":3,"value":3},{"name":1,"value":1}]}"#,
            "doesn't match",
        ),
        (
            "$setElementOrder contains item that is not present in the int list to be merged",
            r#"{"mergingIntList":[1,3,2]}"#,
            r#"{"$setElementOrder/mergingIntList":[1,2,3],"mergingIntList":[3,1]}"#,
            "doesn't match",
        ),
        (
            "missing merge key should error out",
            r#"{"mergingList":[{"name":1,"value":"a"}]}"#,
            r#"{"mergingList":[{"value":"b"}]}"#,
            "does not contain declared merge key",
        ),
    ];
}
