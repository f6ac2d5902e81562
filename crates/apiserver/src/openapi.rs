//! OpenAPI: the upstream v3 documents of the served group-versions, built into the
//! binary and served as they are (kubectl reads them for `explain`, for apply's
//! validation check and for patch metadata), and a minimal v2 protobuf document.

use bytes::Bytes;
use serde_json::{Map, Value, json};
use std::sync::OnceLock;

macro_rules! doc {
    ($path:literal, $file:literal) => {
        ($path, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../api/openapi/", $file)) as &[u8])
    };
}

/// (path under /openapi/v3/, document).
static DOCUMENTS: &[(&str, &[u8])] = &[
    doc!("api/v1", "api__v1.json"),
    doc!("apis/apps/v1", "apis__apps__v1.json"),
    doc!("apis/batch/v1", "apis__batch__v1.json"),
    doc!("apis/coordination.k8s.io/v1", "apis__coordination.k8s.io__v1.json"),
    doc!("apis/discovery.k8s.io/v1", "apis__discovery.k8s.io__v1.json"),
    doc!("apis/events.k8s.io/v1", "apis__events.k8s.io__v1.json"),
    doc!("apis/policy/v1", "apis__policy__v1.json"),
    doc!("apis/scheduling.k8s.io/v1", "apis__scheduling.k8s.io__v1.json"),
];

/// The media type kubectl parses for the v2 document (its own Accept spelling, with
/// `@`, does not parse as a media type, so it must not be echoed).
pub const V2_CONTENT_TYPE: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// A valid gnostic `openapi.v2.Document` holding only `swagger: "2.0"`: enough for
/// kubectl 1.27/1.28 to go on to the v3 documents, which carry the schemas.
pub const V2_DOCUMENT: &[u8] = &[0x0a, 0x03, b'2', b'.', b'0'];

fn hash(doc: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA512, doc);
    d.as_ref().iter().map(|b| format!("{b:02X}")).collect()
}

struct Index {
    root: Bytes,
    hashes: Vec<String>,
}

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let hashes: Vec<String> = DOCUMENTS.iter().map(|(_, d)| hash(d)).collect();
        let mut paths = Map::new();
        for ((path, _), h) in DOCUMENTS.iter().zip(&hashes) {
            paths.insert(path.to_string(), json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={h}")}));
        }
        Index { root: Bytes::from(json!({"paths": Value::Object(paths)}).to_string()), hashes }
    })
}

/// The `/openapi/v3` root listing.
pub fn root() -> Bytes {
    index().root.clone()
}

/// One group-version document, and whether the request named its current hash (then
/// the answer may be cached forever).
pub fn document(path: &str, query_hash: Option<&str>) -> Option<(Bytes, bool)> {
    let i = DOCUMENTS.iter().position(|(p, _)| *p == path)?;
    let immutable = query_hash.is_some_and(|h| h == index().hashes[i]);
    Some((Bytes::from_static(DOCUMENTS[i].1), immutable))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_lists_every_document_with_its_hash() {
        let root: Value = serde_json::from_slice(&root()).unwrap();
        let url = root["paths"]["apis/apps/v1"]["serverRelativeURL"].as_str().unwrap();
        let h = url.split("hash=").nth(1).unwrap();
        let (doc, immutable) = document("apis/apps/v1", Some(h)).unwrap();
        assert!(immutable);
        let parsed: Value = serde_json::from_slice(&doc).unwrap();
        assert!(parsed["paths"].as_object().unwrap().keys().any(|k| k.contains("deployments")));
        assert!(!document("apis/apps/v1", Some("stale")).unwrap().1);
        assert!(document("apis/nope/v1", None).is_none());
    }
}
