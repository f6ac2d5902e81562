//! Label selectors (the full set-based grammar of `labelSelector=`, and the structured
//! `matchLabels`/`matchExpressions` form) and field selectors (`fieldSelector=`).

use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("unable to parse requirement: {0}")]
    Parse(String),
    #[error("invalid field selector: {0}")]
    Field(String),
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Exists(String),
    DoesNotExist(String),
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    GreaterThan(String, i64),
    LessThan(String, i64),
}

impl Requirement {
    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        match self {
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|l| !vs.iter().any(|v| v == l)),
            Requirement::GreaterThan(k, n) => get(k).and_then(|l| l.parse::<i64>().ok()).is_some_and(|l| l > *n),
            Requirement::LessThan(k, n) => get(k).and_then(|l| l.parse::<i64>().ok()).is_some_and(|l| l < *n),
        }
    }
}

/// A parsed label selector: every requirement must hold. Empty selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses the string form (`a=b,c in (d,e),!f`).
    pub fn parse(s: &str) -> Result<LabelSelector, SelectorError> {
        let mut p = Lexer { s: s.as_bytes(), pos: 0 };
        let mut requirements = Vec::new();
        loop {
            p.skip_ws();
            if p.eof() {
                break;
            }
            requirements.push(p.requirement(s)?);
            p.skip_ws();
            if p.eof() {
                break;
            }
            if !p.eat(b",") {
                return Err(SelectorError::Parse(format!("found '{}', expected: ',' or 'end of string'", p.rest())));
            }
        }
        Ok(LabelSelector { requirements })
    }

    /// Builds from the structured `metav1.LabelSelector` JSON.
    pub fn from_json(sel: &Value) -> Result<LabelSelector, SelectorError> {
        let mut requirements = Vec::new();
        if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
            let sorted: BTreeMap<_, _> = ml.iter().collect();
            for (k, v) in sorted {
                requirements.push(Requirement::Equals(k.clone(), v.as_str().unwrap_or_default().to_string()));
            }
        }
        for e in sel.get("matchExpressions").and_then(Value::as_array).into_iter().flatten() {
            let key = e.get("key").and_then(Value::as_str).unwrap_or_default().to_string();
            let mut values: Vec<String> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|vs| vs.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default();
            values.sort();
            values.dedup();
            let r = match e.get("operator").and_then(Value::as_str).unwrap_or_default() {
                "In" => Requirement::In(key, values),
                "NotIn" => Requirement::NotIn(key, values),
                "Exists" => Requirement::Exists(key),
                "DoesNotExist" => Requirement::DoesNotExist(key),
                op => {
                    return Err(SelectorError::Parse(format!("{op:?} is not a valid label selector operator")));
                }
            };
            requirements.push(r);
        }
        Ok(LabelSelector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let empty = Map::new();
        let labels = labels.unwrap_or(&empty);
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether the labels of an object (its `metadata.labels`) match.
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.matches(obj.pointer("/metadata/labels").and_then(Value::as_object))
    }
}

impl std::fmt::Display for LabelSelector {
    /// The canonical string form, as `Scale.status.selector` carries it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(|r| match r {
                Requirement::Exists(k) => k.clone(),
                Requirement::DoesNotExist(k) => format!("!{k}"),
                Requirement::Equals(k, v) => format!("{k}={v}"),
                Requirement::NotEquals(k, v) => format!("{k}!={v}"),
                Requirement::In(k, vs) => format!("{k} in ({})", sorted(vs).join(",")),
                Requirement::NotIn(k, vs) => format!("{k} notin ({})", sorted(vs).join(",")),
                Requirement::GreaterThan(k, n) => format!("{k}>{n}"),
                Requirement::LessThan(k, n) => format!("{k}<{n}"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    fn eof(&self) -> bool {
        self.pos >= self.s.len()
    }
    fn rest(&self) -> String {
        String::from_utf8_lossy(&self.s[self.pos..]).into_owned()
    }
    fn skip_ws(&mut self) {
        while !self.eof() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }
    fn eat(&mut self, tok: &[u8]) -> bool {
        if self.s[self.pos..].starts_with(tok) {
            self.pos += tok.len();
            true
        } else {
            false
        }
    }
    /// A key or value: everything up to whitespace or an operator character.
    fn word(&mut self) -> String {
        let start = self.pos;
        while !self.eof() && !b" \t\n,=!()<>".contains(&self.s[self.pos]) {
            self.pos += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.pos]).into_owned()
    }
    fn keyword(&mut self, kw: &str) -> bool {
        let save = self.pos;
        let w = self.word();
        if w == kw {
            true
        } else {
            self.pos = save;
            false
        }
    }
    fn value_set(&mut self, whole: &str) -> Result<Vec<String>, SelectorError> {
        self.skip_ws();
        if !self.eat(b"(") {
            return Err(SelectorError::Parse(format!("{whole}: found '{}', expected: '('", self.rest())));
        }
        let mut values = Vec::new();
        loop {
            self.skip_ws();
            let v = self.word();
            check_value(&v)?;
            values.push(v);
            self.skip_ws();
            if self.eat(b")") {
                values.sort();
                values.dedup();
                return Ok(values);
            }
            if !self.eat(b",") {
                return Err(SelectorError::Parse(format!("{whole}: found '{}', expected: ',' or ')'", self.rest())));
            }
        }
    }
    fn requirement(&mut self, whole: &str) -> Result<Requirement, SelectorError> {
        if self.eat(b"!") {
            self.skip_ws();
            let key = self.word();
            check_key(&key)?;
            return Ok(Requirement::DoesNotExist(key));
        }
        let key = self.word();
        check_key(&key)?;
        self.skip_ws();
        if self.eof() || self.s[self.pos] == b',' {
            return Ok(Requirement::Exists(key));
        }
        if self.eat(b"==") || self.eat(b"=") {
            self.skip_ws();
            let v = self.word();
            check_value(&v)?;
            return Ok(Requirement::Equals(key, v));
        }
        if self.eat(b"!=") {
            self.skip_ws();
            let v = self.word();
            check_value(&v)?;
            return Ok(Requirement::NotEquals(key, v));
        }
        for (op, gt) in [(b">", true), (b"<", false)] {
            if self.eat(op) {
                self.skip_ws();
                let v = self.word();
                let n = v.parse::<i64>().map_err(|_| {
                    SelectorError::Parse(format!("{whole}: for 'Gt', 'Lt' operators, the value must be an integer"))
                })?;
                return Ok(if gt { Requirement::GreaterThan(key, n) } else { Requirement::LessThan(key, n) });
            }
        }
        if self.keyword("in") {
            return Ok(Requirement::In(key, self.value_set(whole)?));
        }
        if self.keyword("notin") {
            return Ok(Requirement::NotIn(key, self.value_set(whole)?));
        }
        Err(SelectorError::Parse(format!("{whole}: found '{}', expected: in, notin, =, ==, !=, gt, lt", self.rest())))
    }
}

fn check_key(k: &str) -> Result<(), SelectorError> {
    let errs = crate::validation::qualified_name(k);
    if let Some(e) = errs.first() {
        return Err(SelectorError::Parse(format!("key: Invalid value: {k:?}: {e}")));
    }
    Ok(())
}

fn check_value(v: &str) -> Result<(), SelectorError> {
    let errs = crate::validation::label_value(v);
    if let Some(e) = errs.first() {
        return Err(SelectorError::Parse(format!("values[0]: Invalid value: {v:?}: {e}")));
    }
    Ok(())
}

/// One term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTerm {
    pub field: String,
    pub value: String,
    pub equal: bool,
}

/// A parsed field selector (`a=b,c!=d`): every term must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    pub terms: Vec<FieldTerm>,
}

impl FieldSelector {
    pub fn parse(s: &str) -> Result<FieldSelector, SelectorError> {
        let mut terms = Vec::new();
        for part in split_unescaped(s, ',') {
            if part.is_empty() {
                continue;
            }
            let (field, value, equal) = if let Some(i) = find_unescaped(&part, "!=") {
                (&part[..i], &part[i + 2..], false)
            } else if let Some(i) = find_unescaped(&part, "==") {
                (&part[..i], &part[i + 2..], true)
            } else if let Some(i) = find_unescaped(&part, "=") {
                (&part[..i], &part[i + 1..], true)
            } else {
                return Err(SelectorError::Field(format!("invalid selector: '{s}'; can't understand '{part}'")));
            };
            terms.push(FieldTerm { field: field.trim().to_string(), value: unescape(value), equal });
        }
        Ok(FieldSelector { terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Checks every term against `fields`, which yields the value of a supported field
    /// label or `None` for an unsupported one (an error, as upstream).
    pub fn matches(&self, fields: impl Fn(&str) -> Option<String>) -> Result<bool, SelectorError> {
        for t in &self.terms {
            let Some(v) = fields(&t.field) else {
                return Err(SelectorError::Field(format!("field label not supported: {}", t.field)));
            };
            if (v == t.value) != t.equal {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The value a term requires for `field` (`metadata.name=x`), if any.
    pub fn required_value(&self, field: &str) -> Option<&str> {
        self.terms.iter().find(|t| t.equal && t.field == field).map(|t| t.value.as_str())
    }
}

fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push('\\');
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    if escaped {
        cur.push('\\');
    }
    out.push(cur);
    out
}

fn find_unescaped(s: &str, pat: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            i += 2;
            continue;
        }
        // Bytes, not `s[i..]`: `i` steps through multi-byte characters (and past an
        // escaped one) one byte at a time, and an ASCII pattern only matches at a
        // character boundary anyway.
        if b[i..].starts_with(pat.as_bytes()) {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn field_selectors_with_non_ascii_text_parse() {
        let s = FieldSelector::parse("metadata.name=é,spec.nodeName!=ü\\é,x\\é==y").unwrap();
        assert_eq!(s.required_value("metadata.name"), Some("é"));
        assert_eq!(s.terms[1].value, "üé");
        assert_eq!(s.terms[2].field, "x\\é");
        assert!(FieldSelector::parse("é").is_err());
    }

    #[test]
    fn parses_every_operator() {
        let s = LabelSelector::parse("a=b, c==d,e!=f,g in (h, i),j notin (k),l,!m,n>3,o<9").unwrap();
        assert_eq!(s.requirements.len(), 9);
        let l = labels(json!({"a":"b","c":"d","g":"i","l":"x","n":"4","o":"1"}));
        assert!(s.matches(Some(&l)));
        let l2 = labels(json!({"a":"b","c":"d","g":"i","l":"x","n":"4","o":"1","m":"present"}));
        assert!(!s.matches(Some(&l2)));
    }

    #[test]
    fn not_equals_matches_absent() {
        let s = LabelSelector::parse("tier!=db").unwrap();
        assert!(s.matches(None));
        assert!(LabelSelector::parse("").unwrap().matches(None));
    }

    #[test]
    fn rejects_garbage() {
        assert!(LabelSelector::parse("a in b").is_err());
        assert!(LabelSelector::parse("a=b=c").is_err());
        assert!(LabelSelector::parse("-bad=x").is_err());
    }

    #[test]
    fn structured_selectors_round_trip_to_strings() {
        let s = LabelSelector::from_json(&json!({"matchLabels":{"app":"web"},
            "matchExpressions":[{"key":"tier","operator":"In","values":["b","a"]}]}))
        .unwrap();
        assert_eq!(s.to_string(), "app=web,tier in (a,b)");
        assert_eq!(LabelSelector::parse(&s.to_string()).unwrap(), s);
    }

    #[test]
    fn field_selectors() {
        let f = FieldSelector::parse("status.phase!=Succeeded,status.phase!=Failed,spec.nodeName=n1").unwrap();
        let ok = f
            .matches(|k| match k {
                "status.phase" => Some("Running".into()),
                "spec.nodeName" => Some("n1".into()),
                _ => None,
            })
            .unwrap();
        assert!(ok);
        let empty = FieldSelector::parse("involvedObject.namespace=").unwrap();
        assert_eq!(empty.terms[0].value, "");
        assert!(FieldSelector::parse("bogus").is_err());
        assert!(f.matches(|_| None).is_err());
        assert_eq!(FieldSelector::parse(r"a=x\,y").unwrap().terms[0].value, "x,y");
    }
}
