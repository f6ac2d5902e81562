//! Reading a few fields out of a JSON document without building the rest of it.
//!
//! The watch cache needs, for every change, only what selectors read of the object
//! and of its previous state (name, namespace, labels, a handful of field labels).
//! Building the whole `Value` tree for that costs a B-tree map and an allocation per
//! field of a pod; here the parser walks the document and keeps only the values on
//! the wanted paths, skipping everything else without allocating.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

/// The values at plain JSON pointers (`/metadata/labels`; no escapes, no array
/// indices) of a JSON document, in the same places of a new object: what
/// `obj.pointer(p)` would give for each `p`, and nothing else. Pointers that do not
/// resolve are left out.
pub fn project(json: &[u8], pointers: &[&str]) -> Result<Value, serde_json::Error> {
    let paths: Vec<Vec<&str>> = pointers.iter().map(|p| p.split('/').skip(1).collect()).collect();
    let paths: Vec<&[&str]> = paths.iter().map(Vec::as_slice).collect();
    let mut de = serde_json::Deserializer::from_slice(json);
    let out = Paths(&paths).deserialize(&mut de)?;
    de.end()?;
    Ok(out.unwrap_or_else(|| Value::Object(Map::new())))
}

/// The paths still wanted below the current value; an empty path means "this whole
/// value".
struct Paths<'a>(&'a [&'a [&'a str]]);

impl<'de> DeserializeSeed<'de> for Paths<'_> {
    type Value = Option<Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<Value>, D::Error> {
        if self.0.iter().any(|p| p.is_empty()) {
            return serde::Deserialize::deserialize(d).map(Some);
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Paths<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Value>, A::Error> {
        let mut out = Map::new();
        let mut below: Vec<&[&str]> = Vec::new();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            below.clear();
            below.extend(self.0.iter().filter(|p| p[0] == key.0).map(|p| &p[1..]));
            if below.is_empty() {
                map.next_value::<IgnoredAny>()?;
            } else if let Some(v) = map.next_value_seed(Paths(&below))? {
                out.insert(key.0.into_owned(), v);
            }
        }
        Ok((!out.is_empty()).then_some(Value::Object(out)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<Value>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Option<Value>, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Option<Value>, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Option<Value>, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Option<Value>, E> {
        Ok(None)
    }

    fn visit_str<E>(self, _: &str) -> Result<Option<Value>, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Option<Value>, E> {
        Ok(None)
    }
}

/// An object key, borrowed from the input unless it had escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key<'de>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn by_pointer(doc: &Value, pointers: &[&str]) -> Value {
        // The slow way, for comparison: the whole tree, then each pointer.
        let mut out = json!({});
        for p in pointers {
            if let Some(v) = doc.pointer(p) {
                let mut at = &mut out;
                let parts: Vec<&str> = p.split('/').skip(1).collect();
                for (i, part) in parts.iter().enumerate() {
                    if i + 1 == parts.len() {
                        at[*part] = v.clone();
                    } else {
                        if at.get(*part).is_none() {
                            at[*part] = json!({});
                        }
                        at = &mut at[*part];
                    }
                }
            }
        }
        out
    }

    #[test]
    fn keeps_exactly_the_values_on_the_paths() {
        let doc = json!({
            "apiVersion": "v1",
            "metadata": {"name": "p", "labels": {"a": "b", "c": ""}, "managedFields": [{"x": {"y": 1}}]},
            "spec": {"nodeName": "n", "hostNetwork": false, "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running", "podIP": null, "conditions": []},
            "esc\"aped": {"k": "v"},
        });
        let pointers = [
            "/metadata/name",
            "/metadata/namespace",
            "/metadata/labels",
            "/spec/nodeName",
            "/spec/hostNetwork",
            "/status/phase",
            "/status/podIP",
            "/esc\"aped/k",
            "/apiVersion/deeper",
        ];
        let bytes = serde_json::to_vec(&doc).unwrap();
        let got = project(&bytes, &pointers).unwrap();
        assert_eq!(got, by_pointer(&doc, &pointers));
        assert_eq!(got["metadata"], json!({"name": "p", "labels": {"a": "b", "c": ""}}));
        assert_eq!(got["status"]["podIP"], Value::Null);
        assert!(got["spec"].get("containers").is_none());
        // A key written with escapes still matches its unescaped pointer.
        let escaped = br#"{"m\u0065tadata":{"name":"x"}}"#;
        assert_eq!(project(escaped, &["/metadata/name"]).unwrap(), json!({"metadata": {"name": "x"}}));
    }

    #[test]
    fn no_match_gives_an_empty_object_and_bad_json_an_error() {
        assert_eq!(project(br#"{"a":[1,{"b":2}],"c":"d"}"#, &["/metadata/name"]).unwrap(), json!({}));
        assert_eq!(project(b"[1,2]", &["/a"]).unwrap(), json!({}));
        assert!(project(br#"{"metadata":{"name":"x"}"#, &["/metadata/name"]).is_err());
        assert!(project(br#"{"a":1} trailing"#, &["/a"]).is_err());
    }
}
