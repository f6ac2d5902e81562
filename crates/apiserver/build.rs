//! Gzips the upstream OpenAPI v3 documents the server serves, so the binary carries
//! about a tenth of their size (they are most of its data) and clients that accept
//! gzip, as kubectl's Go transport does, get the stored bytes as they are.

use std::io::Write;
use std::{env, fs, path::Path};

/// Must match `DOCUMENTS` in src/openapi.rs.
const SERVED: &[&str] = &[
    "api__v1",
    "apis__apps__v1",
    "apis__batch__v1",
    "apis__coordination.k8s.io__v1",
    "apis__discovery.k8s.io__v1",
    "apis__events.k8s.io__v1",
    "apis__policy__v1",
    "apis__scheduling.k8s.io__v1",
];

fn main() {
    // Read at run time: a build script compiled once may run for another checkout.
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let src = Path::new(&manifest).join("../api/openapi");
    let out = env::var("OUT_DIR").expect("OUT_DIR");
    println!("cargo:rerun-if-changed=build.rs");
    for doc in SERVED {
        let path = src.join(format!("{doc}.json"));
        println!("cargo:rerun-if-changed={}", path.display());
        let text = fs::read(&path).expect("read openapi document");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&text).expect("gzip");
        fs::write(Path::new(&out).join(format!("{doc}.json.gz")), gz.finish().expect("gzip")).expect("write");
    }
}
