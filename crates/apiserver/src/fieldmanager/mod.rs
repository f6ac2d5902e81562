//! Field ownership: server-side apply and `metadata.managedFields`, as upstream's field
//! manager (k8s.io/apimachinery `managedfields/internal`, over structured-merge-diff)
//! does them, on objects as `serde_json::Value`.
//!
//! Start with [`update`], called on every non-apply write (create, update, patch) to
//! give the writer the fields it changed, and [`apply`], the `application/apply-patch`
//! verb. [`fieldpath`] holds the field sets and their `fieldsV1` encoding; `typed` the
//! schema-driven walks (field sets, comparison, merge, removal); `updater` who owns what
//! after a write; `managed` the managedFields entries.
//!
//! Upstream wraps its core in layers, each kept here in the same order: the version
//! check, kubectl's last-applied handling (for the manager `kubectl` only), the
//! "before-first-apply" owner of an object nobody tracked yet, the cap of ten update
//! managers, the manager identity, the merge of an update's fields into its manager, the
//! stripping of fields nobody may own (`metadata.name`, `resourceVersion`, ...), and the
//! structured merge itself.
//!
//! The caller still defaults the object [`apply`] returns (upstream defaults after the
//! merge) and resets the fields a strategy resets (status on the main resource, spec on
//! `status`); this module only keeps those fields out of everyone's ownership.

pub mod fieldpath;
mod managed;
mod typed;
mod updater;

pub use fieldpath::{FieldsError, Path, PathElement, Set};
pub use managed::{DecodeError, Operation};
pub use typed::TypedErrors;

use api::schema::Node;
use api::{ApiError, Cause};
use managed::{Managed, ManagerKey, VersionedSet};
use serde_json::{Map, Value};
use std::fmt;
use std::sync::OnceLock;
use updater::{UpdateError, Updater};

/// The annotation client-side apply keeps its last configuration in.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
const MAX_UPDATE_MANAGERS: usize = 10;
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// One field another manager owns with a different value than the apply sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub manager: String,
    pub operation: Operation,
    /// The API version of the owner's entry.
    pub api_version: String,
    /// Empty for the main resource.
    pub subresource: String,
    pub path: Path,
}

impl Conflict {
    /// The owner as upstream prints it: `"kubectl-client-side-apply" using apps/v1`,
    /// `"x" with subresource "status" using v1`, or just `"kubectl"` for an applier.
    pub fn owner(&self) -> String {
        let mut out = fieldpath::go_quote(&self.manager);
        if !self.subresource.is_empty() {
            out.push_str(" with subresource ");
            out.push_str(&fieldpath::go_quote(&self.subresource));
        }
        if self.operation == Operation::Update {
            out.push_str(" using ");
            out.push_str(&self.api_version);
        }
        out
    }

    /// The conflicting field, e.g. `.spec.template.spec.containers[name="nginx"].image`.
    pub fn field(&self) -> String {
        self.path.to_string()
    }
}

/// Why an apply was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// 409: fields owned by other managers would change; `force` takes them over.
    #[error("{}", conflicts_message(.0))]
    Conflicts(Vec<Conflict>),
    /// 400: the configuration is not one this resource accepts.
    #[error("{0}")]
    BadRequest(String),
    /// 500 (with no reason, as upstream answers): a malformed configuration or stored
    /// managedFields that the field manager cannot work with.
    #[error("{0}")]
    Internal(String),
}

impl ApplyError {
    /// The `Status` upstream answers with.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            ApplyError::Conflicts(conflicts) => ApiError::new(409, "Conflict", self.to_string()).with_causes(
                conflicts
                    .iter()
                    .map(|c| Cause::new("FieldManagerConflict", c.field(), format!("conflict with {}", c.owner())))
                    .collect(),
            ),
            ApplyError::BadRequest(message) => ApiError::bad_request(message.clone()),
            ApplyError::Internal(message) => ApiError::new(500, "", message.clone()),
        }
    }
}

fn conflicts_message(conflicts: &[Conflict]) -> String {
    if let [c] = conflicts {
        return format!("Apply failed with 1 conflict: conflict with {}: {}", c.owner(), c.path);
    }
    let mut by_owner: Vec<(String, Vec<&Path>)> = Vec::new();
    let mut sorted: Vec<&Conflict> = conflicts.iter().collect();
    sorted.sort_by(|a, b| {
        (&a.manager, a.operation, &a.api_version, &a.subresource).cmp(&(
            &b.manager,
            b.operation,
            &b.api_version,
            &b.subresource,
        ))
    });
    for c in sorted {
        let owner = c.owner();
        match by_owner.last_mut() {
            Some((o, paths)) if *o == owner => paths.push(&c.path),
            _ => by_owner.push((owner, vec![&c.path])),
        }
    }
    let mut lines = Vec::new();
    for (owner, paths) in by_owner {
        lines.push(format!("conflicts with {owner}:"));
        lines.extend(paths.into_iter().map(|p| format!("- {p}")));
    }
    format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conflict with {}: {}", self.owner(), self.path)
    }
}

/// Records a non-apply write (operation `Update`) in `new`'s `metadata.managedFields`:
/// `manager` gains every field that differs between `old` (`None` on create) and `new`,
/// and every other manager loses them (and is dropped once it owns nothing).
///
/// The managers start from the ones `new` carries if the client sent any, or `old`'s.
/// An explicit `managedFields: []` clears them, and an object already stored without
/// managedFields stays untracked, as upstream. On a subresource the client's entries are
/// ignored. Status is nobody's on the main resource, spec nobody's on `status`. Should
/// the ownership not be computable (a malformed object), `old`'s entries are kept.
pub fn update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    api_version: &str,
    now: &str,
    schema: &Node,
) {
    let Some(new_obj) = new.as_object_mut() else {
        return;
    };
    let subresource = subresource.unwrap_or("");
    let live = old.unwrap_or_else(|| empty_object());
    let sent = new_obj.get_mut("metadata").and_then(Value::as_object_mut).and_then(|m| m.remove("managedFields"));
    let managed = decode_live_or_new(live, sent, !subresource.is_empty());
    match update_managed(live, new, managed, manager, subresource, api_version, now, schema) {
        Ok(managed) => set_managed_fields(new, managed.encode()),
        Err(_) => set_managed_fields(new, live.pointer("/metadata/managedFields").cloned()),
    }
}

/// Applies `config` for `manager` (operation `Apply`) to `live` (`None` to create) and
/// returns the new object with its managedFields. Fields of other managers whose value
/// would change are conflicts unless `force`, which takes them over. Fields `manager`
/// applied before and no longer applies are removed unless another manager owns them.
/// `now` is the RFC 3339 time recorded for the change.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    schema: &Node,
    api_version: &str,
    now: &str,
) -> Result<Value, ApplyError> {
    apply_subresource(live, config, manager, None, force, schema, api_version, now)
}

/// [`apply`] through a subresource (`kubectl apply --server-side --subresource=status`).
#[allow(clippy::too_many_arguments)]
pub fn apply_subresource(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    subresource: Option<&str>,
    force: bool,
    schema: &Node,
    api_version: &str,
    now: &str,
) -> Result<Value, ApplyError> {
    check_kind(config, schema, api_version)?;
    if config.pointer("/metadata/managedFields").is_some_and(|m| !m.is_null()) {
        return Err(ApplyError::BadRequest("metadata.managedFields must be nil".into()));
    }
    let managed = Managed::decode(live.and_then(|l| l.pointer("/metadata/managedFields")).cloned(), false)
        .map_err(|e| ApplyError::Internal(format!("failed to decode managed fields: {e}")))?;
    let mut live_obj = live.cloned().unwrap_or_else(|| empty_object().clone());
    if let Some(meta) = live_obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    let subresource = subresource.unwrap_or("");
    let ty = typed::root(schema);
    let ctx = ApplyContext {
        updater: Updater { ty, reset: reset_fields(subresource) },
        manager,
        subresource,
        api_version,
        now,
    };

    let retry = (manager == "kubectl").then(|| managed.clone());
    let (mut obj, managed) = match (ctx.apply_once(&live_obj, config, managed, force), retry) {
        // kubectl moving from client-side to server-side apply: conflicts on fields its
        // last client-side configuration set, and that still hold that value, are its own.
        (Err(ApplyError::Conflicts(conflicts)), Some(managed)) => {
            let Some(allowed) = live.and_then(|l| allowed_conflicts_from_last_applied(l, ty, api_version)) else {
                return Err(ApplyError::Conflicts(conflicts));
            };
            let remaining: Vec<Conflict> = conflicts.iter().filter(|c| !allowed.has(&c.path.0)).cloned().collect();
            if !remaining.is_empty() {
                return Err(ApplyError::Conflicts(remaining));
            }
            ctx.apply_once(&live_obj, config, managed, true)?
        }
        (other, _) => other?,
    };
    if manager == "kubectl" && has_last_applied(&obj) {
        set_last_applied(&mut obj, build_last_applied(config));
    }
    set_managed_fields(&mut obj, managed.encode());
    Ok(obj)
}

struct ApplyContext<'a> {
    updater: Updater<'a>,
    manager: &'a str,
    subresource: &'a str,
    api_version: &'a str,
    now: &'a str,
}

impl ApplyContext<'_> {
    fn apply_once(
        &self,
        live: &Value,
        config: &Value,
        mut managed: Managed,
        force: bool,
    ) -> Result<(Value, Managed), ApplyError> {
        if managed.fields.is_empty() {
            // Whoever wrote the object before anyone tracked it owns what is there.
            let key = ManagerKey::new("before-first-apply", Operation::Update, self.api_version, self.subresource);
            record_update(&self.updater, empty_object(), live, &mut managed, key, self.api_version, self.now).map_err(
                |e| ApplyError::Internal(format!("failed to create manager for existing fields: {}", describe(e))),
            )?;
        }
        typed::validate(config, self.updater.ty).map_err(|e| {
            ApplyError::Internal(format!("failed to create typed patch object ({}): {e}", describe_object(config)))
        })?;
        let key = ManagerKey::new(self.manager, Operation::Apply, self.api_version, self.subresource);
        let new = self.updater.apply(live, config, self.api_version, &mut managed.fields, &key, force).map_err(
            |e| match e {
                UpdateError::Conflicts(list) => ApplyError::Conflicts(
                    list.into_iter()
                        .map(|(key, api_version, path)| Conflict {
                            manager: key.manager,
                            operation: key.operation,
                            api_version,
                            subresource: key.subresource,
                            path,
                        })
                        .collect(),
                ),
                UpdateError::Typed(message) => ApplyError::Internal(message),
            },
        )?;
        strip_meta(&mut managed, &key)?;
        let obj = match new {
            Some(mut obj) => {
                if let Some(vs) = managed.fields.get_mut(&key) {
                    vs.set_time(self.now);
                }
                drop_null_fields(&mut obj);
                obj
            }
            None => live.clone(),
        };
        Ok((obj, managed))
    }
}

fn describe(e: UpdateError) -> String {
    match e {
        UpdateError::Typed(message) => message,
        UpdateError::Conflicts(list) => format!("{} unexpected conflicts", list.len()),
    }
}

#[allow(clippy::too_many_arguments)]
fn update_managed(
    live: &Value,
    new: &Value,
    mut managed: Managed,
    manager: &str,
    subresource: &str,
    api_version: &str,
    now: &str,
    schema: &Node,
) -> Result<Managed, UpdateError> {
    // An object stored without managedFields is not tracked until someone applies.
    if managed.fields.is_empty() && live.pointer("/metadata/uid").and_then(Value::as_str).is_some_and(|u| !u.is_empty())
    {
        return Ok(managed);
    }
    let updater = Updater { ty: typed::root(schema), reset: reset_fields(subresource) };
    let key = ManagerKey::new(manager, Operation::Update, api_version, subresource);
    record_update(&updater, live, new, &mut managed, key, api_version, now)?;
    Ok(managed)
}

/// Gives `key` the fields that changed from `old` to `new`, added to what it owned.
fn record_update(
    updater: &Updater<'_>,
    old: &Value,
    new: &Value,
    managed: &mut Managed,
    key: ManagerKey,
    api_version: &str,
    now: &str,
) -> Result<(), UpdateError> {
    let mut set = updater.update_current(old, new, &mut managed.fields)?;
    set.difference_in_place(strip_set());
    if !set.is_empty() {
        match managed.fields.get_mut(&key) {
            Some(previous) => {
                previous.add(set).map_err(|e| UpdateError::Typed(e.to_string()))?;
                previous.set_time(now);
            }
            None => {
                managed.fields.insert(key, VersionedSet::new(set, api_version, false, Some(now)));
            }
        }
    }
    managed.cap_update_managers(MAX_UPDATE_MANAGERS).map_err(|e| UpdateError::Typed(e.to_string()))
}

/// Upstream's `decodeLiveOrNew`: the client's entries unless it sent none (or only
/// unreadable ones), an explicit reset, or a subresource write. Entries equal to the
/// stored ones were checked when stored and are decoded only as needed.
fn decode_live_or_new(live: &Value, sent: Option<Value>, subresource: bool) -> Managed {
    let stored = live.pointer("/metadata/managedFields");
    let from_live = || Managed::decode(stored.cloned(), false).unwrap_or_default();
    if subresource {
        return from_live();
    }
    if managed::is_reset(sent.as_ref()) {
        return Managed::default();
    }
    let known = sent.as_ref().zip(stored).is_some_and(|(s, l)| fieldpath::values_equal(s, l));
    match Managed::decode(sent, !known) {
        Ok(m) if !m.fields.is_empty() => m,
        _ => from_live(),
    }
}

fn strip_meta(managed: &mut Managed, key: &ManagerKey) -> Result<(), ApplyError> {
    if let Some(vs) = managed.fields.get_mut(key) {
        vs.remove(strip_set()).map_err(|e| ApplyError::Internal(e.to_string()))?;
        if vs.is_empty() {
            managed.fields.remove(key);
        }
    }
    Ok(())
}

/// Fields no manager ever owns.
fn strip_set() -> &'static Set {
    static STRIP: OnceLock<Set> = OnceLock::new();
    STRIP.get_or_init(|| {
        let mut s = Set::new();
        for top in ["apiVersion", "kind", "metadata"] {
            s.insert(&Path::fields(&[top]).0);
        }
        for meta in [
            "name",
            "namespace",
            "creationTimestamp",
            "selfLink",
            "uid",
            "clusterName",
            "generation",
            "managedFields",
            "resourceVersion",
        ] {
            s.insert(&Path::fields(&["metadata", meta]).0);
        }
        s
    })
}

/// The fields a write through `subresource` cannot set.
fn reset_fields(subresource: &str) -> &'static Set {
    static STATUS: OnceLock<Set> = OnceLock::new();
    static SPEC: OnceLock<Set> = OnceLock::new();
    let (cell, field) = if subresource == "status" { (&SPEC, "spec") } else { (&STATUS, "status") };
    cell.get_or_init(|| {
        let mut s = Set::new();
        s.insert(&Path::fields(&[field]).0);
        s
    })
}

fn empty_object() -> &'static Value {
    static EMPTY: OnceLock<Value> = OnceLock::new();
    EMPTY.get_or_init(|| Value::Object(Map::new()))
}

fn set_managed_fields(obj: &mut Value, entries: Option<Value>) {
    let Some(obj) = obj.as_object_mut() else {
        return;
    };
    match entries {
        Some(entries) => {
            let meta = obj.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
            if let Some(meta) = meta.as_object_mut() {
                meta.insert("managedFields".into(), entries);
            }
        }
        None => {
            if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("managedFields");
            }
        }
    }
}

/// Upstream turns the merged object back into a typed one, where a null field is an
/// absent one; the removal of pruned fields leaves such nulls behind.
fn drop_null_fields(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_null_fields);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null_fields),
        _ => {}
    }
}

fn group_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

/// Go's `GroupVersionKind.String()`: `apps/v1, Kind=Deployment`, `/v1, Kind=Pod`.
fn gvk_string(api_version: &str, kind: &str) -> String {
    let (group, version) = group_version(api_version);
    format!("{group}/{version}, Kind={kind}")
}

fn describe_object(obj: &Value) -> String {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or("");
    format!("{}/{}; {}", s("/metadata/namespace"), s("/metadata/name"), gvk_string(s("/apiVersion"), s("/kind")))
}

fn check_kind(config: &Value, schema: &Node, api_version: &str) -> Result<(), ApplyError> {
    let got_version = config.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let got_kind = config.get("kind").and_then(Value::as_str).unwrap_or("");
    let (group, version) = group_version(api_version);
    let expected_kind = schema.gvk.iter().find(|(g, v, _)| g == group && v == version).map(|(_, _, k)| k.as_str());
    if got_version != api_version || expected_kind.is_some_and(|k| k != got_kind) {
        return Err(ApplyError::BadRequest(format!("invalid object type: {}", gvk_string(got_version, got_kind))));
    }
    Ok(())
}

fn last_applied(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/annotations")?.get(LAST_APPLIED_ANNOTATION)?.as_str().filter(|s| !s.is_empty())
}

fn has_last_applied(obj: &Value) -> bool {
    last_applied(obj).is_some()
}

/// The fields kubectl's last client-side configuration set that still hold the value
/// it set: conflicts there are kubectl's own and do not stop its first server-side apply.
fn allowed_conflicts_from_last_applied(live: &Value, ty: typed::Ty<'_>, api_version: &str) -> Option<Set> {
    let last: Value = serde_json::from_str(last_applied(live)?).ok()?;
    if last.get("apiVersion").and_then(Value::as_str) != Some(api_version) {
        return None;
    }
    typed::validate(&last, ty).ok()?;
    let set = typed::to_field_set(&last, ty).ok()?;
    let compare = typed::compare(Some(&last), Some(live), ty).ok()?;
    Some(set.difference(&compare.modified).difference(&compare.added).difference(&compare.removed))
}

/// The configuration without the annotation, encoded as Go's JSON encoder writes it.
fn build_last_applied(config: &Value) -> String {
    let mut config = config.clone();
    if let Some(annotations) = config.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
        annotations.remove(LAST_APPLIED_ANNOTATION);
    }
    let mut out = String::new();
    fieldpath::write_go_json(&mut out, &config);
    out.push('\n');
    out
}

fn set_last_applied(obj: &mut Value, value: String) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let annotations = meta.entry("annotations").or_insert_with(|| Value::Object(Map::new()));
    let Some(annotations) = annotations.as_object_mut() else {
        return;
    };
    annotations.insert(LAST_APPLIED_ANNOTATION.into(), Value::String(value));
    let size: usize = annotations.iter().map(|(k, v)| k.len() + v.as_str().map_or(0, str::len)).sum();
    if size > TOTAL_ANNOTATION_SIZE_LIMIT {
        annotations.remove(LAST_APPLIED_ANNOTATION);
    }
}

#[cfg(test)]
mod tests;
