//! The three patch engines behind `PATCH`, as pure functions over `serde_json::Value`.
//!
//! Start with [`PatchType::from_content_type`], which picks the engine from the request's
//! media type: [`json`] (RFC 6902), [`merge`] (RFC 7386) or [`strategic`] (Kubernetes'
//! strategic merge patch, driven by the `x-kubernetes-patch-*` schema extensions).
//! Server-side apply (`application/apply-patch+yaml`) is recognised here but lives elsewhere.
//!
//! Error messages follow upstream's wording (`evanphx/json-patch` v4 for JSON patch,
//! `k8s.io/apimachinery/pkg/util/strategicpatch` for strategic merge patch) because they reach
//! users verbatim inside `Status` messages.

pub mod json;
pub mod merge;
pub mod strategic;

use thiserror::Error;

/// The media types a `PATCH` request may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`: RFC 6902 operations.
    Json,
    /// `application/merge-patch+json`: RFC 7386 JSON merge patch.
    Merge,
    /// `application/strategic-merge-patch+json`: merge patch with list merge keys and directives.
    Strategic,
    /// `application/apply-patch+yaml`: server-side apply.
    Apply,
}

impl PatchType {
    /// The patch type named by a `Content-Type` header value, ignoring parameters such as
    /// `; charset=utf-8` and letter case. `None` for anything else (upstream answers 415).
    pub fn from_content_type(content_type: &str) -> Option<PatchType> {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        [PatchType::Json, PatchType::Merge, PatchType::Strategic, PatchType::Apply]
            .into_iter()
            .find(|t| t.media_type().eq_ignore_ascii_case(essence))
    }

    /// The media type of this patch type, as upstream lists it in `acceptedPatchTypes`.
    pub fn media_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::Strategic => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

/// Why a patch could not be applied. Messages read like upstream's.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PatchError {
    // ---- JSON patch (RFC 6902) ----
    /// The body is not a JSON array of operation objects.
    #[error("json: cannot unmarshal {found} into Go value of type jsonpatch.Patch")]
    NotAnOperationList { found: &'static str },
    /// More operations than upstream's `maxJSONPatchOperations`.
    #[error("The allowed maximum operations in a JSON patch is {max}, got {got}")]
    TooManyOperations { max: usize, got: usize },
    /// `op` is missing or not one of the six operations.
    #[error("Unexpected kind: {op}")]
    UnknownOperation { op: String },
    /// `path` (or `from`, for move and copy) is missing or not a string.
    #[error("{op} operation failed to decode {field}: missing value")]
    MissingOperationField { op: &'static str, field: &'static str },
    /// The parent of `path` does not exist (or is not an object or array).
    #[error("{op} operation does not apply: doc is missing path: \"{path}\": missing value")]
    MissingPath { op: &'static str, path: String },
    /// The parent of `path`, `from` or the destination does not exist, or (replace) an array
    /// index is out of range.
    #[error("{op} operation does not apply: doc is missing {what}: {path}: missing value")]
    MissingLocation { op: &'static str, what: &'static str, path: String },
    /// The parent of a `test` path does not exist.
    #[error("test operation does not apply: is missing path: {path}: missing value")]
    TestMissingPath { path: String },
    /// The final step of a pointer failed inside its container.
    #[error("error in {op} for {what}: '{at}': {cause}")]
    Location { op: &'static str, what: &'static str, at: String, cause: LocationError },
    /// `replace` of the whole document with something that is not an object or array.
    #[error("replace operation value must be object or array")]
    RootNotContainer,
    /// A `test` operation found a different value.
    #[error("testing value {path} failed: test failed")]
    TestFailed { path: String },

    // ---- strategic merge patch ----
    /// The original object or the patch is not a JSON object.
    #[error("invalid JSON document")]
    InvalidDocument,
    /// `$patch` holds something other than `replace` or `delete` (on a map) or
    /// `replace`/`delete` (on a list element).
    #[error("unknown patch type: {directive} in map: {map}")]
    UnknownPatchDirective { directive: String, map: String },
    /// `$patch: merge` on a list element, which upstream has never implemented.
    #[error("merging lists cannot yet be specified in the patch")]
    MergeDirectiveInList,
    /// A list element lacks the list's merge key.
    #[error("map: {map} does not contain declared merge key: {key}")]
    NoMergeKey { map: String, key: String },
    /// A list of maps has patch strategy `merge` but no merge key.
    #[error("cannot merge lists without merge key for {field}")]
    NoMergeKeyDeclared { field: String },
    /// A value has the wrong JSON type, e.g. a list element that is not a map.
    #[error("expected a {expected}, but received a {actual}")]
    WrongType { expected: &'static str, actual: &'static str },
    /// A list element of a list of maps is not a map.
    #[error("value for key {index} is not a map")]
    ElementNotAMap { index: usize },
    /// A list holds lists.
    #[error("lists of lists are not supported")]
    ListOfLists,
    /// A merged list mixes element types (or holds nulls).
    #[error("list element types are not identical: {lists}")]
    MixedListTypes { lists: String },
    /// `$setElementOrder` on a list that is empty in both the object and the patch.
    #[error("no elements in any of the given slices")]
    EmptyLists,
    /// `$deleteFromPrimitiveList` without `/<field>`.
    #[error("invalid patch format of primitive list")]
    BadPrimitiveList,
    /// `$retainKeys` is not a list, or the patch sets a key it does not list.
    #[error("invalid patch format of retainKeys")]
    BadRetainKeys,
    /// `$setElementOrder` without `/<field>`, or not a list.
    #[error("invalid patch format of setElementOrder list")]
    BadSetElementOrder,
    /// The patch list orders its elements differently from `$setElementOrder`.
    #[error("The order in patch list:\n{patch}\n doesn't match $setElementOrder list:\n{order}\n")]
    OrderMismatch { patch: String, order: String },
    /// A directive names a field the kind's schema does not have.
    #[error("unable to find api field {field:?}")]
    UnknownField { field: String },
    /// `$setElementOrder` names a field that is not a list.
    #[error("expected slice or array type for field {field:?}")]
    NotAList { field: String },
}

/// What went wrong at the last step of a JSON pointer, inside its container.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LocationError {
    #[error("Unable to remove nonexistent key: {key}: missing value")]
    NonexistentKey { key: String },
    #[error("Unable to access invalid index: {index}: invalid index referenced")]
    InvalidIndex { index: i64 },
    /// The token of an `add` is neither an integer nor `-`.
    #[error("value was not a proper array index: '{token}': strconv.Atoi: parsing {token:?}: invalid syntax")]
    NotAnArrayIndex { token: String },
    /// The token is not an integer.
    #[error("strconv.Atoi: parsing {token:?}: invalid syntax")]
    NotAnIndex { token: String },
}

impl PatchError {
    /// The HTTP status upstream answers with for this failure: 400 for malformed
    /// patches, 413 for too many operations, 422 when a well-formed patch does not apply.
    /// Upstream answers 500 for the strategic-merge errors it does not classify; we treat
    /// those as the client's fault too (422), since they all come from the patch's content.
    pub fn status_code(&self) -> u16 {
        use PatchError::*;
        match self {
            NotAnOperationList { .. } | InvalidDocument | BadPrimitiveList | BadRetainKeys | BadSetElementOrder => 400,
            TooManyOperations { .. } => 413,
            _ => 422,
        }
    }
}

/// Go's `%v` rendering of a decoded JSON value (`map[k:v]`, `[a b]`), used where upstream
/// prints values inside error messages.
pub(crate) fn go_format(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(go_format).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(map) => {
            // Go's fmt sorts map keys.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let entries: Vec<String> = entries.into_iter().map(|(k, v)| format!("{k}:{}", go_format(v))).collect();
            format!("map[{}]", entries.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_types_pick_the_engine() {
        assert_eq!(PatchType::from_content_type("application/json-patch+json"), Some(PatchType::Json));
        assert_eq!(PatchType::from_content_type("application/merge-patch+json; charset=utf-8"), Some(PatchType::Merge));
        assert_eq!(
            PatchType::from_content_type(" Application/Strategic-Merge-Patch+JSON "),
            Some(PatchType::Strategic)
        );
        assert_eq!(PatchType::from_content_type("application/apply-patch+yaml"), Some(PatchType::Apply));
        assert_eq!(PatchType::from_content_type("application/json"), None);
        assert_eq!(PatchType::from_content_type(""), None);
        for t in [PatchType::Json, PatchType::Merge, PatchType::Strategic, PatchType::Apply] {
            assert_eq!(PatchType::from_content_type(t.media_type()), Some(t));
        }
    }

    #[test]
    fn values_print_like_go() {
        let v = json!({"name": "a", "$patch": "delete", "ports": [1, 2], "x": null});
        assert_eq!(go_format(&v), "map[$patch:delete name:a ports:[1 2] x:<nil>]");
    }

    #[test]
    fn errors_read_like_upstream() {
        let e = PatchError::MissingPath { op: "add", path: "/spec/foo".into() };
        assert_eq!(e.to_string(), r#"add operation does not apply: doc is missing path: "/spec/foo": missing value"#);
        assert_eq!(PatchError::TestFailed { path: "/x".into() }.to_string(), "testing value /x failed: test failed");
        let e = PatchError::Location {
            op: "add",
            what: "path",
            at: "/a/x".into(),
            cause: LocationError::NotAnArrayIndex { token: "x".into() },
        };
        assert_eq!(
            e.to_string(),
            r#"error in add for path: '/a/x': value was not a proper array index: 'x': strconv.Atoi: parsing "x": invalid syntax"#
        );
        assert_eq!(e.status_code(), 422);
        assert_eq!(PatchError::BadRetainKeys.status_code(), 400);
    }
}
