//! Compacts the upstream OpenAPI v3 documents into the schema index the API server walks
//! at run time (unknown-field checks, strategic merge keys, server-side apply list types).
//! Doing it here keeps multi-megabyte JSON parsing out of server start-up.

use serde_json::{Map, Value, json};
use std::{env, fs, path::Path};

/// The group-versions whose documents are built into the binary and served.
pub const SERVED_DOCUMENTS: &[&str] = &[
    "api__v1",
    "apis__apps__v1",
    "apis__autoscaling__v1",
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
    let dir = Path::new(&manifest).join("openapi");
    println!("cargo:rerun-if-changed=build.rs");
    let mut defs = Map::new();
    for doc in SERVED_DOCUMENTS {
        let path = dir.join(format!("{doc}.json"));
        println!("cargo:rerun-if-changed={}", path.display());
        let text = fs::read_to_string(&path).expect("read openapi document");
        let value: Value = serde_json::from_str(&text).expect("parse openapi document");
        let schemas = value["components"]["schemas"].as_object().expect("components.schemas");
        for (name, schema) in schemas {
            if !defs.contains_key(name) {
                defs.insert(name.clone(), compact(schema, true));
            }
        }
    }
    let out = Path::new(&env::var("OUT_DIR").unwrap()).join("schemas.json");
    fs::write(out, serde_json::to_vec(&Value::Object(defs)).unwrap()).unwrap();
}

/// One schema node in the compact form `api::schema::Node` deserialises.
fn compact(s: &Value, top: bool) -> Value {
    let mut n = Map::new();
    // `allOf: [{$ref}]` is how the v3 documents attach a description to a reference.
    let reference = s.get("$ref").or_else(|| s.get("allOf").and_then(|a| a.get(0)).and_then(|r| r.get("$ref")));
    let ty = if let Some(r) = reference {
        let name = r.as_str().unwrap().trim_start_matches("#/components/schemas/");
        n.insert("r".into(), json!(name));
        "ref"
    } else if s.get("x-kubernetes-int-or-string") == Some(&json!(true))
        || s.get("format") == Some(&json!("int-or-string"))
    {
        "intorstring"
    } else if s.get("oneOf").is_some() {
        // Quantity: a string or a number on input, always a string on output.
        "quantity"
    } else {
        match s.get("type").and_then(Value::as_str) {
            Some("string") => "string",
            Some("integer") => "integer",
            Some("number") => "number",
            Some("boolean") => "boolean",
            Some("array") => {
                n.insert("i".into(), compact(&s["items"], false));
                "array"
            }
            Some("object") | None => {
                let props = s.get("properties").and_then(Value::as_object);
                let additional = s.get("additionalProperties").filter(|a| a.is_object());
                if props.is_none() && additional.is_none() {
                    "any"
                } else {
                    if let Some(props) = props {
                        let p: Map<String, Value> = props.iter().map(|(k, v)| (k.clone(), compact(v, false))).collect();
                        n.insert("p".into(), Value::Object(p));
                    }
                    if let Some(a) = additional {
                        n.insert("a".into(), compact(a, false));
                    }
                    "object"
                }
            }
            Some(other) => panic!("unexpected schema type {other}"),
        }
    };
    n.insert("t".into(), json!(ty));
    if s.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true)) {
        n.insert("t".into(), json!("any"));
    }
    for (from, to) in [
        ("x-kubernetes-patch-strategy", "ps"),
        ("x-kubernetes-patch-merge-key", "mk"),
        ("x-kubernetes-list-type", "lt"),
        ("x-kubernetes-list-map-keys", "lk"),
        ("x-kubernetes-map-type", "mt"),
        ("required", "req"),
    ] {
        if let Some(v) = s.get(from) {
            n.insert(to.into(), v.clone());
        }
    }
    if let Some(g) = s.get("x-kubernetes-group-version-kind").filter(|_| top) {
        {
            let gvks: Vec<Value> =
                g.as_array().unwrap().iter().map(|g| json!([g["group"], g["version"], g["kind"]])).collect();
            n.insert("gvk".into(), Value::Array(gvks));
        }
    }
    Value::Object(n)
}
