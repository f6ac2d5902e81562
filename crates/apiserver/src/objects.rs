//! Objects in the store: JSON values under `/registry/...` keys, with the store's
//! mod-revision as their `resourceVersion` (never stored in the value itself, as
//! upstream's etcd3 storage does), and store failures turned into API errors.

use api::{ApiError, Resource};
use bytes::Bytes;
use serde_json::Value;
use std::sync::Arc;
use store::{Compare, KeyValue, Op, OpResult, RangeRequest, RangeResponse, Store, StoreError, Txn};

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

pub(crate) fn encode(res: &Resource, obj: &Value) -> Bytes {
    let mut copy = api::convert::to_storage(res, obj.clone());
    if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    Bytes::from(serde_json::to_vec(&copy).unwrap_or_default())
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
        match self.store.get(key).await.map_err(store_error)? {
            Some(kv) => Ok(Some((decode_as(res, &kv)?, kv.mod_revision))),
            None => Ok(None),
        }
    }

    /// Writes a new object; 409 AlreadyExists if the key is taken.
    pub async fn create(&self, res: &Resource, key: &str, mut obj: Value) -> Result<Value, ApiError> {
        let txn =
            Txn::new().when([Compare::absent(key)]).and_then([Op::Put { key: key.into(), value: encode(res, &obj) }]);
        let resp = self.store.txn(txn).await.map_err(store_error)?;
        if !resp.succeeded {
            return Err(ApiError::already_exists(res, name_of(&obj)));
        }
        set_resource_version(&mut obj, resp.revision);
        Ok(obj)
    }

    /// Replaces an object whose revision is still `expected`; 409 Conflict otherwise,
    /// 404 if it is gone.
    pub async fn update(&self, res: &Resource, key: &str, mut obj: Value, expected: i64) -> Result<Value, ApiError> {
        let txn = Txn::new()
            .when([Compare::mod_revision(key, expected)])
            .and_then([Op::Put { key: key.into(), value: encode(res, &obj) }])
            .or_else([Op::get(key)]);
        let resp = self.store.txn(txn).await.map_err(store_error)?;
        if !resp.succeeded {
            return match resp.results.first() {
                Some(OpResult::Get(Some(_))) => Err(ApiError::stale(res, name_of(&obj))),
                _ => Err(ApiError::not_found(res, name_of(&obj))),
            };
        }
        set_resource_version(&mut obj, resp.revision);
        Ok(obj)
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
