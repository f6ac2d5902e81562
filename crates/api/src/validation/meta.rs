//! `ObjectMeta` on create and update, labels, annotations, owner references, finalizers
//! and structured label selectors (`k8s.io/apimachinery/pkg/api/validation` and
//! `pkg/apis/meta/v1/validation`, plus core's finalizer-name rule).

use super::field::{self, Bad, Path, get, go_quote, obj, str_of};
use super::names::{self, NameRule};
use crate::selector::LabelSelector;
use crate::status::Cause;
use serde_json::{Map, Value};

pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;
pub const FIELD_IMMUTABLE: &str = "field is immutable";
pub const IS_NEGATIVE: &str = "must be greater than or equal to 0";

const STANDARD_FINALIZERS: &[&str] = &["kubernetes", "orphan", "foregroundDeletion"];

pub fn validate_labels(labels: Option<&Map<String, Value>>, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    for (k, v) in labels.into_iter().flatten() {
        errs.extend(validate_label_name(k, path));
        let value = v.as_str().unwrap_or_default();
        for msg in names::label_value(value) {
            errs.push(field::invalid(path, Bad::Str(value), &msg));
        }
    }
    errs
}

pub fn validate_label_name(name: &str, path: &Path) -> Vec<Cause> {
    names::qualified_name(name).iter().map(|msg| field::invalid(path, Bad::Str(name), msg)).collect()
}

pub fn validate_annotations(annotations: Option<&Map<String, Value>>, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut total = 0usize;
    for (k, v) in annotations.into_iter().flatten() {
        // Case does not matter for annotation keys.
        for msg in names::qualified_name(&k.to_lowercase()) {
            errs.push(field::invalid(path, Bad::Str(k), &msg));
        }
        total += k.len() + v.as_str().map(str::len).unwrap_or_default();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(field::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errs
}

fn validate_owner_references(refs: &[Value], path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut first_controller: Option<String> = None;
    for r in refs {
        let api_version = str_of(r, "apiVersion");
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        if version.is_empty() {
            errs.push(field::invalid(&path.child("apiVersion"), Bad::Str(api_version), "version must not be empty"));
        }
        let kind = str_of(r, "kind");
        if kind.is_empty() {
            errs.push(field::invalid(&path.child("kind"), Bad::Str(kind), "kind must not be empty"));
        }
        if str_of(r, "name").is_empty() {
            errs.push(field::invalid(&path.child("name"), Bad::Str(""), "name must not be empty"));
        }
        if str_of(r, "uid").is_empty() {
            errs.push(field::invalid(&path.child("uid"), Bad::Str(""), "uid must not be empty"));
        }
        if group.is_empty() && version == "v1" && kind == "Event" {
            errs.push(field::invalid(path, Bad::Json(r), "/v1, Kind=Event is disallowed from being an owner"));
        }
        if field::bool_of(r, "controller") == Some(true) {
            let name = format!("{}/{}", kind, str_of(r, "name"));
            match &first_controller {
                Some(first) => errs.push(field::invalid(
                    path,
                    Bad::Json(&Value::Array(refs.to_vec())),
                    &format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {name}"
                    ),
                )),
                None => first_controller = Some(name),
            }
        }
    }
    errs
}

fn validate_finalizers(finalizers: &[Value], path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut orphan = false;
    let mut foreground = false;
    for f in finalizers {
        let name = f.as_str().unwrap_or_default();
        for msg in names::qualified_name(name) {
            errs.push(field::invalid(path, Bad::Str(name), &msg));
        }
        orphan |= name == "orphan";
        foreground |= name == "foregroundDeletion";
    }
    if orphan && foreground {
        errs.push(field::invalid(
            path,
            Bad::Json(&Value::Array(finalizers.to_vec())),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    errs
}

/// Core's extra rule: an unqualified finalizer must be one of the standard ones.
fn validate_kube_finalizers(finalizers: &[Value], path: &Path) -> Vec<Cause> {
    finalizers
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            let name = f.as_str().unwrap_or_default();
            (!name.contains('/') && !STANDARD_FINALIZERS.contains(&name)).then(|| {
                field::invalid(
                    &path.index(i),
                    Bad::Str(name),
                    "name is neither a standard finalizer name nor is it fully qualified",
                )
            })
        })
        .collect()
}

pub fn validate_nonnegative(value: i64, path: &Path) -> Vec<Cause> {
    if value < 0 { vec![field::invalid(path, Bad::Int(value), IS_NEGATIVE)] } else { Vec::new() }
}

/// `ValidateObjectMeta` (core's, with the finalizer-name rule) for a create.
pub fn validate_object_meta(meta: &Value, namespaced: bool, rule: NameRule, path: &Path) -> Vec<Cause> {
    let mut errs = common_object_meta(meta, namespaced, rule, path);
    errs.extend(validate_kube_finalizers(field::arr(meta, "finalizers"), &path.child("finalizers")));
    errs
}

/// The checks every object passes whatever its kind (`ValidateObjectMetaAccessor`).
pub fn common_object_meta(meta: &Value, namespaced: bool, rule: NameRule, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let generate_name = str_of(meta, "generateName");
    if !generate_name.is_empty() {
        for msg in rule.check(generate_name, true) {
            errs.push(field::invalid(&path.child("generateName"), Bad::Str(generate_name), &msg));
        }
    }
    let name = str_of(meta, "name");
    if name.is_empty() {
        errs.push(field::required(&path.child("name"), "name or generateName is required"));
    } else {
        for msg in rule.check(name, false) {
            errs.push(field::invalid(&path.child("name"), Bad::Str(name), &msg));
        }
    }
    let namespace = str_of(meta, "namespace");
    if namespaced {
        if namespace.is_empty() {
            errs.push(field::required(&path.child("namespace"), ""));
        } else {
            for msg in NameRule::Dns1123Label.check(namespace, false) {
                errs.push(field::invalid(&path.child("namespace"), Bad::Str(namespace), &msg));
            }
        }
    } else if !namespace.is_empty() {
        errs.push(field::forbidden(&path.child("namespace"), "not allowed on this type"));
    }
    errs.extend(validate_nonnegative(field::int_of(meta, "generation").unwrap_or(0), &path.child("generation")));
    errs.extend(validate_labels(obj(meta, "labels"), &path.child("labels")));
    errs.extend(validate_annotations(obj(meta, "annotations"), &path.child("annotations")));
    errs.extend(validate_owner_references(field::arr(meta, "ownerReferences"), &path.child("ownerReferences")));
    errs.extend(validate_finalizers(field::arr(meta, "finalizers"), &path.child("finalizers")));
    errs
}

fn immutable(new: Option<&Value>, old: Option<&Value>, path: &Path) -> Option<Cause> {
    field::differs(new, old).then(|| {
        let null = Value::Null;
        field::invalid(path, Bad::Json(new.unwrap_or(&null)), FIELD_IMMUTABLE)
    })
}

/// `ValidateObjectMetaUpdate` (core's): identity fields are immutable, finalizers may not
/// be added while deleting, and the update must name a resourceVersion.
pub fn validate_object_meta_update(new: &Value, old: &Value, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    if get(old, "deletionTimestamp").is_some() {
        let old_f: Vec<&str> = field::arr(old, "finalizers").iter().filter_map(Value::as_str).collect();
        let mut extra: Vec<&str> =
            field::arr(new, "finalizers").iter().filter_map(Value::as_str).filter(|f| !old_f.contains(f)).collect();
        extra.sort();
        extra.dedup();
        if !extra.is_empty() {
            let list: Vec<String> = extra.iter().map(|s| go_quote(s)).collect();
            errs.push(field::forbidden(
                &path.child("finalizers"),
                &format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    list.join(", ")
                ),
            ));
        }
    }
    let rv = str_of(new, "resourceVersion");
    if rv.is_empty() {
        errs.push(field::invalid(&path.child("resourceVersion"), Bad::Str(rv), "must be specified for an update"));
    }
    let (new_gen, old_gen) =
        (field::int_of(new, "generation").unwrap_or(0), field::int_of(old, "generation").unwrap_or(0));
    if new_gen < old_gen {
        errs.push(field::invalid(&path.child("generation"), Bad::Int(new_gen), "must not be decremented"));
    }
    for key in ["name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"] {
        // Upstream compares Go zero values, so an absent string equals "".
        let norm = |v: &Value| -> Option<Value> {
            match v.get(key) {
                Some(Value::String(s)) if s.is_empty() => None,
                other => other.filter(|x| !x.is_null()).cloned(),
            }
        };
        let (n, o) = (norm(new), norm(old));
        if n != o {
            errs.extend(immutable(n.as_ref(), o.as_ref(), &path.child(key)));
        }
    }
    errs.extend(validate_labels(obj(new, "labels"), &path.child("labels")));
    errs.extend(validate_annotations(obj(new, "annotations"), &path.child("annotations")));
    errs.extend(validate_owner_references(field::arr(new, "ownerReferences"), &path.child("ownerReferences")));
    errs.extend(validate_kube_finalizers(field::arr(new, "finalizers"), &path.child("finalizers")));
    errs
}

/// `ValidateLabelSelector`: operators, keys and values.
pub fn validate_label_selector(sel: Option<&Value>, path: &Path) -> Vec<Cause> {
    let Some(sel) = sel else { return Vec::new() };
    let mut errs = validate_labels(obj(sel, "matchLabels"), &path.child("matchLabels"));
    for (i, e) in field::arr(sel, "matchExpressions").iter().enumerate() {
        let p = path.child("matchExpressions").index(i);
        let values = field::arr(e, "values");
        match str_of(e, "operator") {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(field::required(
                        &p.child("values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(field::forbidden(
                        &p.child("values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            op => errs.push(field::invalid(&p.child("operator"), Bad::Str(op), "not a valid selector operator")),
        }
        errs.extend(validate_label_name(str_of(e, "key"), &p.child("key")));
        for (j, v) in values.iter().enumerate() {
            let v = v.as_str().unwrap_or_default();
            for msg in names::label_value(v) {
                errs.push(field::invalid(&p.child("values").index(j), Bad::Str(v), &msg));
            }
        }
    }
    errs
}

/// `LabelSelectorAsSelector`: a missing selector selects nothing, an empty one everything.
pub enum Selector {
    Nothing,
    Some(LabelSelector),
}

impl Selector {
    /// `None` when the selector does not convert (bad operator, `In` without values).
    pub fn from(sel: Option<&Value>) -> Option<Selector> {
        let Some(sel) = sel else {
            return Some(Selector::Nothing);
        };
        for e in field::arr(sel, "matchExpressions") {
            if matches!(str_of(e, "operator"), "In" | "NotIn") && field::arr(e, "values").is_empty() {
                return None;
            }
        }
        LabelSelector::from_json(sel).ok().map(Selector::Some)
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, Selector::Some(s) if s.is_empty())
    }

    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        match self {
            Selector::Nothing => false,
            Selector::Some(s) => s.matches(labels),
        }
    }
}

/// Whether a `LabelSelector` JSON has neither labels nor expressions.
pub fn selector_has_no_terms(sel: &Value) -> bool {
    obj(sel, "matchLabels").is_none_or(Map::is_empty) && field::arr(sel, "matchExpressions").is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(errs: &[Cause]) -> Vec<&str> {
        errs.iter().map(|c| c.field.as_str()).collect()
    }

    #[test]
    fn name_is_required_unless_generated() {
        let errs = validate_object_meta(
            &json!({"namespace": "default"}),
            true,
            NameRule::Dns1123Subdomain,
            &Path::new("metadata"),
        );
        assert_eq!(errs[0].message, "Required value: name or generateName is required");
        assert_eq!(errs[0].field, "metadata.name");
        let errs = validate_object_meta(
            &json!({"generateName": "web-", "name": "web-x1", "namespace": "default"}),
            true,
            NameRule::Dns1123Subdomain,
            &Path::new("metadata"),
        );
        assert!(errs.is_empty(), "{errs:?}");
    }

    #[test]
    fn namespace_rules_follow_scope() {
        let m = Path::new("metadata");
        let errs = validate_object_meta(&json!({"name": "a"}), true, NameRule::Dns1123Subdomain, &m);
        assert_eq!(fields(&errs), vec!["metadata.namespace"]);
        let errs = validate_object_meta(&json!({"name": "a", "namespace": "x"}), false, NameRule::Dns1123Label, &m);
        assert_eq!(errs[0].message, "Forbidden: not allowed on this type");
        let errs = validate_object_meta(&json!({"name": "a", "namespace": "Bad_ns"}), true, NameRule::Dns1123Label, &m);
        assert_eq!(fields(&errs), vec!["metadata.namespace"]);
    }

    #[test]
    fn labels_annotations_finalizers_and_owners() {
        let m = Path::new("metadata");
        let meta = json!({
            "name": "a", "namespace": "d",
            "labels": {"ok": "v", "bad key": "v", "k": "bad value"},
            "annotations": {"Example.com/Key": "x", "a/b/c": "y"},
            "finalizers": ["example.com/f", "custom", "orphan", "foregroundDeletion"],
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r", "uid": "u", "controller": true},
                {"apiVersion": "apps/", "kind": "", "name": "", "uid": "", "controller": true},
                {"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "u"}
            ]
        });
        let errs = validate_object_meta(&meta, true, NameRule::Dns1123Subdomain, &m);
        let f = fields(&errs);
        assert_eq!(f.iter().filter(|x| **x == "metadata.labels").count(), 2);
        assert_eq!(f.iter().filter(|x| **x == "metadata.annotations").count(), 1);
        assert!(f.contains(&"metadata.ownerReferences.apiVersion"));
        assert!(f.contains(&"metadata.ownerReferences.kind"));
        assert!(f.contains(&"metadata.ownerReferences.name"));
        assert!(f.contains(&"metadata.ownerReferences.uid"));
        assert!(errs.iter().any(|c| { c.message.contains("Only one reference can have Controller set to true") }));
        assert!(errs.iter().any(|c| c.message.contains("/v1, Kind=Event is disallowed")));
        assert!(f.contains(&"metadata.finalizers[1]"));
        assert!(errs.iter().any(|c| c.message.contains("cannot be both set")));
    }

    #[test]
    fn annotation_total_size_is_limited() {
        let meta =
            json!({"name": "a", "namespace": "d", "annotations": {"k": "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT)}});
        let errs = validate_object_meta(&meta, true, NameRule::Dns1123Subdomain, &Path::new("metadata"));
        assert_eq!(errs[0].reason, "FieldValueTooLong");
        assert_eq!(errs[0].message, "Too long: may not be more than 262144 bytes");
    }

    #[test]
    fn updates_keep_identity() {
        let old = json!({"name": "a", "namespace": "d", "uid": "1", "resourceVersion": "5", "generation": 2,
            "deletionTimestamp": "2024-01-01T00:00:00Z", "finalizers": ["a.io/x"]});
        let new =
            json!({"name": "b", "namespace": "d", "uid": "2", "generation": 1, "finalizers": ["a.io/x", "a.io/y"]});
        let errs = validate_object_meta_update(&new, &old, &Path::new("metadata"));
        let f = fields(&errs);
        assert!(f.contains(&"metadata.name"));
        assert!(f.contains(&"metadata.uid"));
        assert!(f.contains(&"metadata.resourceVersion"));
        assert!(f.contains(&"metadata.generation"));
        assert!(f.contains(&"metadata.deletionTimestamp"));
        assert!(errs.iter().any(|c| c.message
            == "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"a.io/y\"}"));
        let same = json!({"name": "a", "namespace": "d", "uid": "1", "resourceVersion": "5", "generation": 2});
        let old2 = json!({"name": "a", "namespace": "d", "uid": "1", "resourceVersion": "4", "generation": 2});
        assert!(validate_object_meta_update(&same, &old2, &Path::new("metadata")).is_empty());
    }

    #[test]
    fn selectors() {
        let p = Path::new("spec.selector");
        let sel = json!({"matchExpressions": [
            {"key": "a", "operator": "In"},
            {"key": "b", "operator": "Exists", "values": ["x"]},
            {"key": "c", "operator": "Bogus"}
        ]});
        let errs = validate_label_selector(Some(&sel), &p);
        assert_eq!(
            fields(&errs),
            vec![
                "spec.selector.matchExpressions[0].values",
                "spec.selector.matchExpressions[1].values",
                "spec.selector.matchExpressions[2].operator"
            ]
        );
        assert!(Selector::from(Some(&sel)).is_none());
        let s = Selector::from(Some(&json!({"matchLabels": {"app": "web"}}))).unwrap();
        assert!(s.matches(json!({"app": "web", "x": "y"}).as_object()));
        assert!(!Selector::from(None).unwrap().matches(json!({}).as_object()));
        assert!(Selector::from(Some(&json!({}))).unwrap().is_empty());
        assert!(selector_has_no_terms(&json!({"matchLabels": {}})));
    }
}
