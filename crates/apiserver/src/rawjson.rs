//! Edits of stored objects done on their JSON bytes.
//!
//! A stored object is its JSON without `metadata.resourceVersion` (the revision is
//! the store's). Sending a change to watchers needs that JSON with the revision put
//! back, and metadata-only watchers need just the `metadata` object: both are a scan
//! of the bytes for where `metadata` starts and ends, far cheaper than parsing the
//! object into a tree and serialising it again, which every change of every watched
//! resource would otherwise cost.

/// The byte range of the top-level `metadata` object's value (from its `{` to just
/// past its `}`), if the document is an object whose first `metadata` is an object.
///
/// The scan stops there: these are stored objects, serialised from maps (one
/// `metadata` at most) with their keys in order, so what follows (`spec`, `status`,
/// most of an object's bytes) is never read.
pub fn metadata_span(json: &[u8]) -> Option<(usize, usize)> {
    let mut s = Scan { b: json, i: 0 };
    s.ws();
    s.eat(b'{')?;
    s.ws();
    if s.peek()? == b'}' {
        return None;
    }
    loop {
        s.ws();
        let key = s.string()?;
        s.ws();
        s.eat(b':')?;
        s.ws();
        let start = s.i;
        s.value()?;
        if key == b"metadata" {
            return (json[start] == b'{').then_some((start, s.i));
        }
        s.ws();
        match s.next()? {
            b',' => continue,
            _ => return None,
        }
    }
}

/// The stored JSON of an object with `"resourceVersion":"<rv>"` put into its
/// metadata; `None` when the bytes are not the shape this expects (the caller then
/// takes the slow way), including when the metadata already has a resourceVersion.
pub fn with_resource_version(stored: &[u8], rv: i64) -> Option<Vec<u8>> {
    let (start, end) = metadata_span(stored)?;
    if has_key(&stored[start..end], b"resourceVersion")? {
        return None;
    }
    let field = format!("\"resourceVersion\":\"{rv}\"");
    let empty = stored[start + 1..end - 1].iter().all(u8::is_ascii_whitespace);
    let mut out = Vec::with_capacity(stored.len() + field.len() + 1);
    out.extend_from_slice(&stored[..=start]);
    out.extend_from_slice(field.as_bytes());
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(&stored[start + 1..]);
    Some(out)
}

/// The stored JSON of an object without its `metadata.managedFields`; `None` when
/// it has none (or the bytes are not the shape this expects).
pub fn without_managed_fields(json: &[u8]) -> Option<Vec<u8>> {
    let (start, end) = metadata_span(json)?;
    let (cut_from, cut_to) = member_span(&json[start..end], b"managedFields")?;
    let (cut_from, cut_to) = (start + cut_from, start + cut_to);
    let mut out = Vec::with_capacity(json.len() - (cut_to - cut_from));
    out.extend_from_slice(&json[..cut_from]);
    out.extend_from_slice(&json[cut_to..]);
    Some(out)
}

/// The bytes to cut from a JSON object (exactly one) to remove its member `key`,
/// with the comma that joined it to the others; `None` if it has no such member or
/// is not well formed.
fn member_span(object: &[u8], key: &[u8]) -> Option<(usize, usize)> {
    let Found::Member { key_start, value: (_, value_end), previous_end } = find(object, key, false)? else {
        return None;
    };
    // A later member is cut from where the one before it ended, so its leading comma
    // goes with it; the first is cut up to the next one.
    if let Some(end) = previous_end {
        return Some((end, value_end));
    }
    let mut s = Scan { b: object, i: value_end };
    s.ws();
    if s.next()? != b',' {
        return Some((key_start, value_end));
    }
    s.ws();
    Some((key_start, s.i))
}

/// Whether a stored object's metadata has `key`; `None` when the bytes are not the
/// shape this expects.
pub fn metadata_has_key(json: &[u8], key: &[u8]) -> Option<bool> {
    let (start, end) = metadata_span(json)?;
    has_key(&json[start..end], key)
}

/// Whether a JSON object (the bytes of exactly one) has `key` at its top level;
/// `None` if it is not well formed.
fn has_key(object: &[u8], key: &[u8]) -> Option<bool> {
    value_of(object, key).map(|m| m.is_some())
}

/// Where member `key` is, or would go, in a JSON object.
#[derive(Debug, PartialEq)]
pub enum Slot {
    /// The span of its value.
    Value(usize, usize),
    /// Where to insert `"key":value`, and whether a comma goes before or after it.
    Insert { at: usize, comma_before: bool, comma_after: bool },
}

/// Where member `key` of a JSON object (the bytes of exactly one) is, or where it
/// goes to keep the keys in order as a stored object (serialised from a sorted map)
/// has them: before the first greater key. `None` if the object is not well formed or
/// a key has an escape (its raw bytes would not sort as the key does).
pub fn slot(object: &[u8], key: &[u8]) -> Option<Slot> {
    Some(match find(object, key, true)? {
        Found::Member { value: (from, to), .. } => Slot::Value(from, to),
        Found::Absent(insert) => insert,
    })
}

/// The span of member `key`'s value in a JSON object (the bytes of exactly one),
/// whatever order its keys are in: `Some(None)` if it has no such member, `None` if it
/// is not well formed.
pub fn value_of(object: &[u8], key: &[u8]) -> Option<Option<(usize, usize)>> {
    Some(match find(object, key, false)? {
        Found::Member { value, .. } => Some(value),
        Found::Absent(_) => None,
    })
}

/// What [`find`] found.
enum Found {
    /// Where the member's key starts, its value's span, and where the member before
    /// it ended (none for the first).
    Member { key_start: usize, value: (usize, usize), previous_end: Option<usize> },
    /// No such member: where it would go, a [`Slot::Insert`].
    Absent(Slot),
}

/// Member `key` of a JSON object (the bytes of exactly one). With `sorted`, the keys
/// are taken to be in order, as in stored objects: the search stops at the first
/// greater key, and a key with an escape (whose raw bytes would not sort as it does)
/// gives `None`; without, the whole object is read before `key` is said to be absent.
fn find(object: &[u8], key: &[u8], sorted: bool) -> Option<Found> {
    let insert = |at, comma_before, comma_after| Some(Found::Absent(Slot::Insert { at, comma_before, comma_after }));
    let mut s = Scan { b: object, i: 0 };
    s.eat(b'{')?;
    let mut previous_end = None;
    loop {
        s.ws();
        if s.peek()? == b'}' {
            return match previous_end {
                Some(at) => insert(at, true, false),
                None => insert(s.i, false, false),
            };
        }
        let key_start = s.i;
        let this = s.string()?;
        if sorted && this.contains(&b'\\') {
            return None;
        }
        if sorted && this > key {
            return insert(key_start, false, true);
        }
        s.ws();
        s.eat(b':')?;
        s.ws();
        let value_start = s.i;
        s.value()?;
        if this == key {
            return Some(Found::Member { key_start, value: (value_start, s.i), previous_end });
        }
        previous_end = Some(s.i);
        s.ws();
        match s.next()? {
            b',' => {}
            b'}' => return insert(previous_end?, true, false),
            _ => return None,
        }
    }
}

/// The bytes of a member for [`Slot::Insert`]: `"key":value` with its commas.
pub fn member_text(key: &str, value: &[u8], comma_before: bool, comma_after: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + value.len() + 5);
    if comma_before {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    out.extend_from_slice(value);
    if comma_after {
        out.push(b',');
    }
    out
}

/// `json` with each `(from, to, bytes)` replacing the bytes in `from..to`; the
/// ranges must not overlap.
pub fn splice(json: &[u8], mut edits: Vec<(usize, usize, Vec<u8>)>) -> Vec<u8> {
    edits.sort_by_key(|e| e.0);
    let mut out = Vec::with_capacity(json.len() + edits.iter().map(|e| e.2.len()).sum::<usize>());
    let mut at = 0;
    for (from, to, bytes) in edits {
        out.extend_from_slice(&json[at..from]);
        out.extend_from_slice(&bytes);
        at = to;
    }
    out.extend_from_slice(&json[at..]);
    out
}

struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    /// A string; returns its raw bytes between the quotes (escapes left as they are,
    /// which is enough to compare keys that have none).
    fn string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            // Most of a JSON document's bytes are in its strings: jump to the next
            // quote or escape rather than looking at each byte.
            self.i += memchr::memchr2(b'"', b'\\', &self.b[self.i..])?;
            match self.next()? {
                b'"' => return Some(&self.b[start..self.i - 1]),
                _ => {
                    self.next()?;
                }
            }
        }
    }

    /// Skips one value of any kind.
    fn value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' | b'[' => {
                // Nesting is tracked by depth alone; strings are skipped whole so
                // brackets inside them do not count.
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
            }
            _ => {
                // A number, true, false or null: up to the next delimiter.
                let start = self.i;
                while self.peek().is_some_and(|c| !matches!(c, b',' | b'}' | b']') && !c.is_ascii_whitespace()) {
                    self.i += 1;
                }
                (self.i > start).then_some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn parse(b: &[u8]) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn leaves_out_managed_fields_wherever_they_stand() {
        let mf = json!([{"manager": "m", "fieldsV1": {"f:metadata": {"f:managedFields": {}}}}]);
        for meta in [
            json!({"managedFields": mf, "name": "x\\", "labels": {"managedFields": "v\\\""}}),
            json!({"name": "x", "managedFields": mf, "uid": "u"}),
            json!({"name": "x", "uid": "u", "managedFields": mf}),
            json!({"managedFields": mf}),
        ] {
            let obj =
                json!({"apiVersion": "v1", "data": {"managedFields": "}\"{["}, "kind": "ConfigMap", "metadata": meta});
            let out = without_managed_fields(&serde_json::to_vec(&obj).unwrap()).unwrap();
            let mut want = obj.clone();
            want["metadata"].as_object_mut().unwrap().remove("managedFields");
            assert_eq!(parse(&out), want, "{}", String::from_utf8_lossy(&out));
        }
        // Spaced out, as another writer might have stored it.
        let spaced = br#"{ "metadata" : { "name" : "x" , "managedFields" : [ {"a": 1} ] } , "kind": "K" }"#;
        assert_eq!(parse(&without_managed_fields(spaced).unwrap()), json!({"metadata": {"name": "x"}, "kind": "K"}));
        let none = serde_json::to_vec(&json!({"metadata": {"name": "x"}, "spec": {"managedFields": []}})).unwrap();
        assert_eq!(without_managed_fields(&none), None);
    }

    #[test]
    fn puts_the_revision_into_the_metadata() {
        let obj = json!({
            "apiVersion": "v1",
            "data": {"a": "}\"{[", "b": [1, {"c": "metadata"}]},
            "kind": "ConfigMap",
            "metadata": {"name": "x", "labels": {"k": "v"}, "managedFields": [{"fieldsV1": {"f:data": {}}}]},
            "z": true,
        });
        let stored = serde_json::to_vec(&obj).unwrap();
        let out = with_resource_version(&stored, 42).unwrap();
        let mut want = obj.clone();
        want["metadata"]["resourceVersion"] = json!("42");
        assert_eq!(parse(&out), want);

        let (start, end) = metadata_span(&out).unwrap();
        assert_eq!(parse(&out[start..end]), want["metadata"]);
    }

    #[test]
    fn empty_metadata_and_whitespace() {
        let out = with_resource_version(br#" { "metadata" : { } , "n": -1.5e3 } "#, 7).unwrap();
        assert_eq!(parse(&out), json!({"metadata": {"resourceVersion": "7"}, "n": -1500.0}));
    }

    #[test]
    fn finds_keys_of_the_metadata_only() {
        let obj =
            json!({"metadata": {"name": "x", "labels": {"deletionTimestamp": "a"}}, "spec": {"deletionTimestamp": 1}});
        let bytes = serde_json::to_vec(&obj).unwrap();
        assert_eq!(metadata_has_key(&bytes, b"deletionTimestamp"), Some(false));
        assert_eq!(metadata_has_key(&bytes, b"name"), Some(true));
        let marked = serde_json::to_vec(&json!({"metadata": {"deletionTimestamp": null}})).unwrap();
        assert_eq!(metadata_has_key(&marked, b"deletionTimestamp"), Some(true));
        assert_eq!(metadata_has_key(b"[]", b"name"), None);
    }

    #[test]
    fn slots_keep_the_keys_in_order() {
        let o = br#"{"b":1,"d":{"x":[1]}}"#;
        assert_eq!(slot(o, b"b"), Some(Slot::Value(5, 6)));
        assert_eq!(slot(o, b"d"), Some(Slot::Value(11, 20)));
        assert_eq!(slot(o, b"a"), Some(Slot::Insert { at: 1, comma_before: false, comma_after: true }));
        assert_eq!(slot(o, b"c"), Some(Slot::Insert { at: 7, comma_before: false, comma_after: true }));
        assert_eq!(slot(o, b"e"), Some(Slot::Insert { at: 20, comma_before: true, comma_after: false }));
        assert_eq!(slot(b"{ }", b"a"), Some(Slot::Insert { at: 2, comma_before: false, comma_after: false }));
        for key in ["a", "c", "e"] {
            let Some(Slot::Insert { at, comma_before, comma_after }) = slot(o, key.as_bytes()) else { panic!() };
            let out = splice(o, vec![(at, at, member_text(key, b"0", comma_before, comma_after))]);
            let mut want: Value = parse(o);
            want[key] = 0.into();
            assert_eq!(out, serde_json::to_vec(&want).unwrap());
        }
        assert_eq!(slot(br#"{"a\u0062":1}"#, b"c"), None, "an escaped key");
        assert_eq!(slot(br#"{"a":1"#, b"b"), None);
        assert_eq!(slot(b"[]", b"a"), None);
    }

    #[test]
    fn declines_what_it_cannot_do_safely() {
        // No metadata, metadata not an object, already versioned, truncated.
        assert_eq!(with_resource_version(br#"{"kind":"X"}"#, 1), None);
        assert_eq!(with_resource_version(br#"{"metadata":null}"#, 1), None);
        assert_eq!(with_resource_version(br#"{"metadata":{"resourceVersion":"3"}}"#, 1), None);
        assert_eq!(with_resource_version(br#"{"metadata":{"name":"x""#, 1), None);
        assert_eq!(with_resource_version(b"[]", 1), None);
        assert_eq!(with_resource_version(b"", 1), None);
        // A nested "metadata" is not the object's.
        assert_eq!(metadata_span(br#"{"spec":{"metadata":{}}}"#), None);
        assert_eq!(metadata_span(br#"{"metadata":{"a":1"#), None);
        // Nothing after the metadata is read: stored objects are serialised from
        // maps, which repeat no key, and are whole.
        let spec = br#"{"kind":"X","metadata":{"a":"}"},"spec":{"#;
        assert_eq!(metadata_span(spec), Some((23, 32)));
    }
}
