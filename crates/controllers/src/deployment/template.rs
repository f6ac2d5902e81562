//! Pod templates as the deployment controller compares and names them: the
//! `pod-template-hash` that names a Deployment's ReplicaSets, and template equality
//! "ignoring the hash", which is how a rollback finds the ReplicaSet it returns to.
//!
//! Upstream hashes the Go struct of the template as `go-spew` prints it (FNV-32a, then
//! `rand.SafeEncodeString`). That printing depends on Go's field layout, which we do
//! not have, and changes whenever upstream adds a field to the pod spec. We keep the
//! parts that matter to users: FNV-32a, the collision count mixed in the same way, and
//! the same alphabet and length, over a canonical JSON form of the template. The names
//! look like upstream's (`web-7d4b9c8f5`) but are not the same strings.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

/// The label a Deployment adds to its ReplicaSets, their selectors and their pods.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// The alphabet of upstream's `rand.SafeEncodeString`: no vowels, no confusable digits.
const SAFE_ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-1a, 32 bits.
pub fn fnv32a(data: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in data {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// Maps every byte of `s` onto the safe alphabet, as upstream's `SafeEncodeString`.
pub fn safe_encode(s: &str) -> String {
    s.bytes().map(|b| SAFE_ALPHANUMS[usize::from(b) % SAFE_ALPHANUMS.len()] as char).collect()
}

/// The `pod-template-hash` of a template (without the hash label) and the
/// deployment's `status.collisionCount`.
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut bytes = Vec::new();
    write_canonical(&canonical(template), &mut bytes);
    if let Some(count) = collision_count {
        // Upstream writes the count as a little-endian uint32 into an 8-byte buffer.
        let mut buf = [0u8; 8];
        buf[..4].copy_from_slice(&(count as u32).to_le_bytes());
        bytes.extend_from_slice(&buf);
    }
    safe_encode(&fnv32a(&bytes).to_string())
}

/// Whether two templates are the same but for the hash label, with the zero values
/// a client may or may not spell out (`creationTimestamp: null`, `resources: {}`)
/// counted as absent, as upstream's semantic equality does.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    canonical(a) == canonical(b)
}

/// The template as JSON without the hash label and without empty values.
fn canonical(template: &PodTemplateSpec) -> Value {
    let mut v = serde_json::to_value(template).unwrap_or(Value::Null);
    if let Some(labels) = v.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
        labels.remove(POD_TEMPLATE_HASH);
    }
    prune(&mut v);
    v
}

/// Removes nulls, empty objects and empty arrays, innermost first. Returns whether
/// `v` itself is now empty.
fn prune(v: &mut Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => {
            m.retain(|_, child| !prune(child));
            m.is_empty()
        }
        Value::Array(a) => {
            // Elements stay (their position matters); only their insides are pruned.
            for child in a.iter_mut() {
                prune(child);
            }
            a.is_empty()
        }
        _ => false,
    }
}

/// JSON with object keys sorted, whatever map the JSON library was built with.
fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(Value::String((*k).clone()).to_string().as_bytes());
                out.push(b':');
                write_canonical(&m[k.as_str()], out);
            }
            out.push(b'}');
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(x, out);
            }
            out.push(b']');
        }
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(json: Value) -> PodTemplateSpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn fnv_and_alphabet_match_the_reference_values() {
        // Reference values of FNV-1a 32.
        assert_eq!(fnv32a(b""), 0x811c9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c292c);
        assert_eq!(fnv32a(b"foobar"), 0xbf9cf968);
        // Digits map as upstream's alphabet maps '0'..'9' (48..57 mod 27), which is why
        // upstream's hashes use only 4-9, b, c, d and f.
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
    }

    #[test]
    fn hashes_look_like_upstream_and_change_with_template_and_collisions() {
        let t = template(serde_json::json!({"metadata":{"labels":{"app":"web"}},
            "spec":{"containers":[{"name":"nginx","image":"nginx:1.25"}]}}));
        let h = compute_hash(&t, None);
        assert!((1..=10).contains(&h.len()) && h.bytes().all(|b| SAFE_ALPHANUMS.contains(&b)), "{h}");
        assert_eq!(h, compute_hash(&t.clone(), None));
        assert_ne!(h, compute_hash(&t, Some(1)));
        assert_ne!(compute_hash(&t, Some(1)), compute_hash(&t, Some(2)));
        let other = template(serde_json::json!({"metadata":{"labels":{"app":"web"}},
            "spec":{"containers":[{"name":"nginx","image":"nginx:1.26"}]}}));
        assert_ne!(h, compute_hash(&other, None));
    }

    #[test]
    fn equality_ignores_the_hash_label_and_spelled_out_zero_values() {
        let stored = template(serde_json::json!({
            "metadata":{"labels":{"app":"web","pod-template-hash":"abc"}},
            "spec":{"containers":[{"name":"nginx","image":"nginx:1.25","ports":[{"containerPort":80,"protocol":"TCP"}]}],
                    "restartPolicy":"Always"}}));
        // What `kubectl rollout undo` sends back.
        let undo = template(serde_json::json!({
            "metadata":{"creationTimestamp":null,"labels":{"app":"web"}},
            "spec":{"containers":[{"name":"nginx","image":"nginx:1.25","ports":[{"containerPort":80,"protocol":"TCP"}],
                    "resources":{}}],"restartPolicy":"Always"}}));
        assert!(equal_ignore_hash(&stored, &undo));
        let changed = template(serde_json::json!({
            "metadata":{"labels":{"app":"web"},"annotations":{"kubectl.kubernetes.io/restartedAt":"now"}},
            "spec":{"containers":[{"name":"nginx","image":"nginx:1.25","ports":[{"containerPort":80,"protocol":"TCP"}]}],
                    "restartPolicy":"Always"}}));
        assert!(!equal_ignore_hash(&stored, &changed));
        // The hash label does not change the hash either.
        assert_eq!(compute_hash(&stored, None), compute_hash(&undo, None));
    }
}
