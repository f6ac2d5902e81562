//! OpenAPI: the upstream v3 documents of the served group-versions, built into the
//! binary gzipped (build.rs) and served as they are (kubectl reads them for `explain`, for apply's
//! validation check and for patch metadata), and a minimal v2 protobuf document.

use bytes::Bytes;
use serde_json::{Map, Value, json};
use std::io::Read;
use std::sync::OnceLock;

macro_rules! doc {
    ($path:literal, $file:literal) => {
        ($path, include_bytes!(concat!(env!("OUT_DIR"), "/", $file, ".gz")) as &[u8])
    };
}

/// (path under /openapi/v3/, gzipped document).
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
    /// Each document unzipped, on first request by a client that does not take gzip.
    plain: Vec<OnceLock<Bytes>>,
}

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let hashes: Vec<String> = DOCUMENTS.iter().map(|(_, d)| hash(d)).collect();
        let mut paths = Map::new();
        for ((path, _), h) in DOCUMENTS.iter().zip(&hashes) {
            paths.insert(path.to_string(), json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={h}")}));
        }
        let plain = DOCUMENTS.iter().map(|_| OnceLock::new()).collect();
        Index { root: Bytes::from(json!({"paths": Value::Object(paths)}).to_string()), hashes, plain }
    })
}

/// The `/openapi/v3` root listing.
pub fn root() -> Bytes {
    index().root.clone()
}

/// One group-version document as the client can take it.
pub struct Document {
    pub body: Bytes,
    /// The body is gzip (`Content-Encoding: gzip`).
    pub gzip: bool,
    /// The request named the document's current hash, so the answer may be cached forever.
    pub immutable: bool,
}

/// One group-version document, gzipped when the client accepts that.
pub fn document(path: &str, query_hash: Option<&str>, accepts_gzip: bool) -> Option<Document> {
    let i = DOCUMENTS.iter().position(|(p, _)| *p == path)?;
    let index = index();
    let immutable = query_hash.is_some_and(|h| h == index.hashes[i]);
    let gz = DOCUMENTS[i].1;
    if accepts_gzip {
        return Some(Document { body: Bytes::from_static(gz), gzip: true, immutable });
    }
    let body = index.plain[i].get_or_init(|| {
        let mut out = Vec::with_capacity(gz.len() * 10);
        // The bytes were made by build.rs from files in the repository; failing to
        // unzip them would be a build defect, answered as an empty document.
        let _ = flate2::read::GzDecoder::new(gz).read_to_end(&mut out);
        Bytes::from(out)
    });
    Some(Document { body: body.clone(), gzip: false, immutable })
}

/// Whether an `Accept-Encoding` value takes gzip (and does not refuse it with q=0).
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    accept_encoding.is_some_and(|v| {
        v.split(',').any(|part| {
            let mut it = part.split(';').map(str::trim);
            let coding = it.next().unwrap_or_default();
            let refused = it.any(|p| p.replace(' ', "") == "q=0" || p.replace(' ', "") == "q=0.0");
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_lists_every_document_with_its_hash() {
        let root: Value = serde_json::from_slice(&root()).unwrap();
        let url = root["paths"]["apis/apps/v1"]["serverRelativeURL"].as_str().unwrap();
        let h = url.split("hash=").nth(1).unwrap();
        let doc = document("apis/apps/v1", Some(h), false).unwrap();
        assert!(doc.immutable && !doc.gzip);
        let parsed: Value = serde_json::from_slice(&doc.body).unwrap();
        assert!(parsed["paths"].as_object().unwrap().keys().any(|k| k.contains("deployments")));
        assert!(!document("apis/apps/v1", Some("stale"), false).unwrap().immutable);
        assert!(document("apis/nope/v1", None, false).is_none());
        // Gzipped, it is the same document.
        let gz = document("apis/apps/v1", Some(h), true).unwrap();
        assert!(gz.gzip && gz.body.len() * 5 < doc.body.len());
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&gz.body[..]).read_to_end(&mut plain).unwrap();
        assert_eq!(plain, doc.body);
    }

    #[test]
    fn gzip_is_taken_only_when_accepted() {
        assert!(accepts_gzip(Some("gzip")));
        assert!(accepts_gzip(Some("deflate, gzip;q=1.0, *;q=0.5")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(None));
    }
}
