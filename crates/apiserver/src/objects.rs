//! Objects in the store: JSON values under `/registry/...` keys, with the store's
//! mod-revision as their `resourceVersion` (never stored in the value itself, as
//! upstream's etcd3 storage does), and store failures turned into API errors.

use api::{ApiError, Resource};
use bytes::Bytes;
use serde_json::Value;
use std::sync::Arc;
use store::{Compare, KeyValue, Op, OpResult, RangeRequest, RangeResponse, Store, StoreError, Txn};

/// An object as a write left it: the object its callers go on with (its
/// `resourceVersion` set) and, when the write stored it as served, the bytes stored
/// with their revision. The answer to the write is those bytes with the revision
/// spliced in, as a GET of it would be, instead of a second serialisation of `obj`.
pub struct Written {
    pub obj: Value,
    stored: Option<(Bytes, i64)>,
}

impl Written {
    /// An object whose answer is serialised from it: nothing was stored (a dry run,
    /// a write that changed nothing), or the write went another way than
    /// [`Objects::create_stored`] and [`Objects::update_stored`] (Services, whose
    /// addresses are written in the same transaction; an update that completes a
    /// deletion).
    pub fn unstored(obj: Value) -> Written {
        Written { obj, stored: None }
    }

    /// What a write stored; a kind stored in another version than it is served in is
    /// answered from `obj`.
    fn stored(res: &Resource, obj: Value, bytes: Bytes, revision: i64) -> Written {
        let stored = api::convert::is_identity(res).then_some((bytes, revision));
        Written { obj, stored }
    }

    /// The object as JSON: the stored bytes with the revision spliced in when there
    /// are any, else `obj` serialised.
    pub fn json(&self) -> Vec<u8> {
        self.stored
            .as_ref()
            .and_then(|(bytes, rev)| crate::rawjson::with_resource_version(bytes, *rev))
            .unwrap_or_else(|| serde_json::to_vec(&self.obj).unwrap_or_default())
    }
}

pub struct Objects {
    pub store: Arc<dyn Store>,
}

/// Maps a store failure to the status a client should see.
pub fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Compacted { requested, compacted } => {
            ApiError::expired(format!("too old resource version: {requested} ({compacted})"))
        }
        StoreError::FutureRevision { requested, .. } => ApiError::timeout(format!(
            "Too large resource version: {requested}, current: the server is still catching up"
        ))
        .with_cause(api::Cause::new("ResourceVersionTooLarge", "", "Too large resource version")),
        other => ApiError::internal(other.to_string()),
    }
}

/// Sets `metadata.resourceVersion`.
pub fn set_resource_version(obj: &mut Value, rv: i64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

/// Parses a stored value and stamps its revision.
pub fn decode(kv: &KeyValue) -> Result<Value, ApiError> {
    let mut obj: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("stored object {} does not decode: {e}", kv.key)))?;
    set_resource_version(&mut obj, kv.mod_revision);
    Ok(obj)
}

/// Parses a stored value into the shape `res` serves.
pub fn decode_as(res: &Resource, kv: &KeyValue) -> Result<Value, ApiError> {
    Ok(api::convert::from_storage(res, decode(kv)?))
}

/// The stored bytes of an object: its storage shape without `resourceVersion`.
/// Written straight from the object (no copy of it), as every write does this.
pub(crate) fn encode(res: &Resource, obj: &Value) -> Bytes {
    if api::convert::is_identity(res) {
        return Bytes::from(serde_json::to_vec(&Omitting(obj, &["resourceVersion"])).unwrap_or_default());
    }
    let copy = api::convert::to_storage(res, obj.clone());
    Bytes::from(serde_json::to_vec(&Omitting(&copy, &["resourceVersion"])).unwrap_or_default())
}

/// Serialises an object as it is, except the named members of its `metadata`.
pub(crate) struct Omitting<'a>(pub &'a Value, pub &'a [&'a str]);

impl serde::Serialize for Omitting<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Value::Object(top) = self.0 else { return self.0.serialize(s) };
        if self.1.is_empty() {
            return self.0.serialize(s);
        }
        let mut map = s.serialize_map(Some(top.len()))?;
        for (k, v) in top {
            match (k.as_str(), v) {
                ("metadata", Value::Object(meta)) => {
                    map.serialize_entry(k, &Skipping(meta, self.1))?;
                }
                _ => map.serialize_entry(k, v)?,
            }
        }
        map.end()
    }
}

struct Skipping<'a>(&'a serde_json::Map<String, Value>, &'a [&'a str]);

impl serde::Serialize for Skipping<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        for (k, v) in self.0.iter().filter(|(k, _)| !self.1.contains(&k.as_str())) {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Whether two objects are the same apart from `metadata.resourceVersion`, compared
/// in place (an update that changes nothing is not written).
pub fn same_but_version(a: &Value, b: &Value) -> bool {
    same_but(a, b, None)
}

/// [`same_but_version`], and apart from the top-level `member` when one is named.
pub fn same_but(a: &Value, b: &Value, member: Option<&str>) -> bool {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let compared = |k: &String| Some(k.as_str()) != member;
            a.keys().filter(|k| compared(k)).count() == b.keys().filter(|k| compared(k)).count()
                && a.iter().filter(|(k, _)| compared(k)).all(|(k, va)| match (k.as_str(), va, b.get(k)) {
                    ("metadata", Value::Object(ma), Some(Value::Object(mb))) => {
                        let count = |m: &serde_json::Map<String, Value>| {
                            m.keys().filter(|k| k.as_str() != "resourceVersion").count()
                        };
                        count(ma) == count(mb)
                            && ma
                                .iter()
                                .filter(|(k, _)| k.as_str() != "resourceVersion")
                                .all(|(k, v)| mb.get(k) == Some(v))
                    }
                    (_, va, Some(vb)) => va == vb,
                    (_, _, None) => false,
                })
        }
        _ => member.is_none() && a == b,
    }
}

fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default()
}

impl Objects {
    pub fn new(store: Arc<dyn Store>) -> Objects {
        Objects { store }
    }

    /// The object and its revision, if it exists.
    pub async fn get(&self, res: &Resource, key: &str) -> Result<Option<(Value, i64)>, ApiError> {
        match self.get_stored(key).await? {
            Some(kv) => Ok(Some((decode_as(res, &kv)?, kv.mod_revision))),
            None => Ok(None),
        }
    }

    /// The stored bytes under `key`, unparsed, if there are any.
    pub async fn get_stored(&self, key: &str) -> Result<Option<KeyValue>, ApiError> {
        self.store.get(key).await.map_err(store_error)
    }

    /// Writes a new object; 409 AlreadyExists if the key is taken.
    pub async fn create(&self, res: &Resource, key: &str, obj: Value) -> Result<Value, ApiError> {
        Ok(self.create_stored(res, key, obj).await?.obj)
    }

    /// [`Objects::create`], keeping the bytes stored for an answer made from them.
    pub async fn create_stored(&self, res: &Resource, key: &str, mut obj: Value) -> Result<Written, ApiError> {
        let value = encode(res, &obj);
        let txn = Txn::new().when([Compare::absent(key)]).and_then([Op::Put { key: key.into(), value: value.clone() }]);
        let resp = self.store.txn(txn).await.map_err(store_error)?;
        if !resp.succeeded {
            return Err(ApiError::already_exists(res, name_of(&obj)));
        }
        set_resource_version(&mut obj, resp.revision);
        Ok(Written::stored(res, obj, value, resp.revision))
    }

    /// Replaces an object whose revision is still `expected`; 409 Conflict otherwise,
    /// 404 if it is gone.
    pub async fn update(&self, res: &Resource, key: &str, obj: Value, expected: i64) -> Result<Value, ApiError> {
        Ok(self.update_stored(res, key, obj, expected).await?.obj)
    }

    /// [`Objects::update`], keeping the bytes stored for an answer made from them.
    pub async fn update_stored(
        &self,
        res: &Resource,
        key: &str,
        mut obj: Value,
        expected: i64,
    ) -> Result<Written, ApiError> {
        let value = encode(res, &obj);
        let revision = self.update_bytes(res, key, name_of(&obj), value.clone(), expected).await?;
        set_resource_version(&mut obj, revision);
        Ok(Written::stored(res, obj, value, revision))
    }

    /// [`Objects::update`] of bytes already in their stored form (an edit of the
    /// stored bytes that never parsed them); returns the write's revision.
    pub async fn update_bytes(
        &self,
        res: &Resource,
        key: &str,
        name: &str,
        value: Bytes,
        expected: i64,
    ) -> Result<i64, ApiError> {
        let txn = Txn::new()
            .when([Compare::mod_revision(key, expected)])
            .and_then([Op::Put { key: key.into(), value }])
            .or_else([Op::get(key)]);
        let resp = self.store.txn(txn).await.map_err(store_error)?;
        if !resp.succeeded {
            return match resp.results.first() {
                Some(OpResult::Get(Some(_))) => Err(ApiError::stale(res, name)),
                _ => Err(ApiError::not_found(res, name)),
            };
        }
        Ok(resp.revision)
    }

    /// Removes an object whose revision is still `expected`. Returns its last state,
    /// stamped with the deletion's revision.
    pub async fn delete(&self, res: &Resource, key: &str, name: &str, expected: i64) -> Result<Value, ApiError> {
        let txn =
            Txn::new().when([Compare::mod_revision(key, expected)]).and_then([Op::delete(key)]).or_else([Op::get(key)]);
        let resp = self.store.txn(txn).await.map_err(store_error)?;
        match resp.results.into_iter().next() {
            Some(OpResult::Delete { prev: Some(prev) }) if resp.succeeded => {
                let mut obj = decode_as(res, &prev)?;
                set_resource_version(&mut obj, resp.revision);
                Ok(obj)
            }
            Some(OpResult::Get(Some(_))) => Err(ApiError::stale(res, name)),
            _ => Err(ApiError::not_found(res, name)),
        }
    }

    /// One page of a range.
    pub async fn range(&self, req: RangeRequest) -> Result<RangeResponse, ApiError> {
        self.store.range(req).await.map_err(store_error)
    }

    pub async fn current_revision(&self) -> Result<i64, ApiError> {
        self.store.current_revision().await.map_err(store_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stored_bytes_leave_out_the_version_only() {
        let res = api::registry::find("", "v1", "configmaps").unwrap();
        let obj = json!({"kind": "ConfigMap", "metadata": {"name": "c", "resourceVersion": "7", "uid": "u"}, "data": {"a": "b"}});
        let stored: Value = serde_json::from_slice(&encode(res, &obj)).unwrap();
        assert_eq!(stored, json!({"kind": "ConfigMap", "metadata": {"name": "c", "uid": "u"}, "data": {"a": "b"}}));
    }

    #[test]
    fn objects_differing_only_in_version_are_the_same() {
        let a = json!({"metadata": {"name": "c", "resourceVersion": "7"}, "data": {"a": "b"}});
        let b = json!({"metadata": {"name": "c", "resourceVersion": "9"}, "data": {"a": "b"}});
        let unversioned = json!({"metadata": {"name": "c"}, "data": {"a": "b"}});
        assert!(same_but_version(&a, &b) && same_but_version(&a, &unversioned) && same_but_version(&unversioned, &b));
        let changed = json!({"metadata": {"name": "c", "resourceVersion": "7"}, "data": {"a": "c"}});
        assert!(!same_but_version(&a, &changed));
        let labelled = json!({"metadata": {"name": "c", "labels": {}}, "data": {"a": "b"}});
        assert!(!same_but_version(&a, &labelled));
        let extra = json!({"metadata": {"name": "c"}, "data": {"a": "b"}, "binaryData": {}});
        assert!(!same_but_version(&a, &extra));
    }
}
