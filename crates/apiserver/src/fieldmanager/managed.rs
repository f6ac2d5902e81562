//! `metadata.managedFields`: decoding the entries into one field set per manager, and
//! encoding them back sorted as upstream sorts them.
//!
//! A manager is identified by its name, operation and subresource, and for `Update`
//! also by the API version: so one manager that applies owns one entry, while one that
//! updates through two versions owns two.

use super::fieldpath::{self, FieldsError, Set};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The operation a managedFields entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// Upstream's manager identifier: the entry without its fields and time, and without
/// the API version for `Apply`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ManagerKey {
    pub manager: String,
    pub operation: Operation,
    pub api_version: String,
    pub subresource: String,
}

impl ManagerKey {
    pub fn new(manager: &str, operation: Operation, api_version: &str, subresource: &str) -> ManagerKey {
        ManagerKey {
            manager: if manager.is_empty() { "unknown".to_string() } else { manager.to_string() },
            operation,
            api_version: if operation == Operation::Apply { String::new() } else { api_version.to_string() },
            subresource: subresource.to_string(),
        }
    }
}

/// The fields one manager owns, at the API version it last wrote them through.
///
/// An entry read from the store stays as stored and is edited in place: most writes
/// touch one or two managers, and decoding and re-encoding every entry would be most
/// of the cost of a write. The apply path decodes all entries; it needs whole sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VersionedSet {
    pub api_version: String,
    pub applied: bool,
    repr: Repr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Repr {
    /// The entry object as stored.
    Stored(Map<String, Value>),
    Decoded {
        set: Set,
        time: Option<String>,
    },
}

impl VersionedSet {
    pub fn new(set: Set, api_version: &str, applied: bool, time: Option<&str>) -> VersionedSet {
        VersionedSet {
            api_version: api_version.to_string(),
            applied,
            repr: Repr::Decoded { set, time: time.map(str::to_string) },
        }
    }

    pub fn time(&self) -> Option<&str> {
        match &self.repr {
            Repr::Stored(entry) => entry.get("time").and_then(Value::as_str),
            Repr::Decoded { time, .. } => time.as_deref(),
        }
    }

    pub fn set_time(&mut self, now: &str) {
        match &mut self.repr {
            Repr::Stored(entry) => {
                entry.insert("time".into(), Value::String(now.to_string()));
            }
            Repr::Decoded { time, .. } => *time = Some(now.to_string()),
        }
    }

    /// The stored `fieldsV1` object, created empty when missing.
    fn stored_fields(entry: &mut Map<String, Value>) -> Option<&mut Map<String, Value>> {
        if !entry.get("fieldsV1").is_some_and(Value::is_object) {
            entry.insert("fieldsV1".into(), Value::Object(Map::new()));
        }
        entry.get_mut("fieldsV1").and_then(Value::as_object_mut)
    }

    /// Decodes the fields if they are not yet.
    pub fn decode(&mut self) -> Result<(), DecodeError> {
        if let Repr::Stored(entry) = &self.repr {
            let set = match entry.get("fieldsV1") {
                None | Some(Value::Null) => Set::new(),
                Some(fields) => Set::from_fields_v1(fields)?,
            };
            let time = entry.get("time").and_then(Value::as_str).map(str::to_string);
            self.repr = Repr::Decoded { set, time };
        }
        Ok(())
    }

    /// The decoded fields; empty unless [`VersionedSet::decode`] ran.
    pub fn set(&self) -> &Set {
        static EMPTY: Set = Set::EMPTY;
        match &self.repr {
            Repr::Decoded { set, .. } => set,
            Repr::Stored(_) => &EMPTY,
        }
    }

    /// Takes the decoded fields out.
    pub fn into_set(mut self) -> Result<Set, DecodeError> {
        self.decode()?;
        match self.repr {
            Repr::Decoded { set, .. } => Ok(set),
            Repr::Stored(_) => Ok(Set::new()),
        }
    }

    pub fn intersects(&self, other: &Set) -> Result<bool, DecodeError> {
        match &self.repr {
            Repr::Decoded { set, .. } => Ok(set.intersects(other)),
            Repr::Stored(entry) => match entry.get("fieldsV1") {
                None | Some(Value::Null) => Ok(false),
                Some(fields) => Ok(fieldpath::fields_v1_intersects(fields, other)?),
            },
        }
    }

    /// Gives up the fields in `other`.
    pub fn remove(&mut self, other: &Set) -> Result<(), DecodeError> {
        match &mut self.repr {
            Repr::Decoded { set, .. } => set.difference_in_place(other),
            Repr::Stored(entry) => {
                if let Some(fields) = Self::stored_fields(entry) {
                    fieldpath::fields_v1_remove(fields, other)?;
                }
            }
        }
        Ok(())
    }

    /// Takes the fields in `other` too.
    pub fn add(&mut self, other: Set) -> Result<(), DecodeError> {
        match &mut self.repr {
            Repr::Decoded { set, .. } => set.union_in_place(other),
            Repr::Stored(entry) => {
                if let Some(fields) = Self::stored_fields(entry) {
                    fieldpath::fields_v1_insert(fields, &other)?;
                }
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        match &self.repr {
            Repr::Decoded { set, .. } => set.is_empty(),
            Repr::Stored(entry) => entry.get("fieldsV1").is_none_or(fieldpath::fields_v1_is_empty),
        }
    }

    fn encode(self, key: &ManagerKey) -> Value {
        let (set, time) = match self.repr {
            Repr::Stored(entry) => return Value::Object(entry),
            Repr::Decoded { set, time } => (set, time),
        };
        let operation = if self.applied { Operation::Apply } else { key.operation };
        let mut entry = Map::new();
        entry.insert("manager".into(), json!(key.manager));
        entry.insert("operation".into(), json!(operation.as_str()));
        entry.insert("apiVersion".into(), json!(self.api_version));
        if let Some(time) = time {
            entry.insert("time".into(), json!(time));
        }
        entry.insert("fieldsType".into(), json!("FieldsV1"));
        entry.insert("fieldsV1".into(), set.to_fields_v1());
        if !key.subresource.is_empty() {
            entry.insert("subresource".into(), json!(key.subresource));
        }
        Value::Object(entry)
    }
}

pub(crate) type Managers = BTreeMap<ManagerKey, VersionedSet>;

/// Every manager's fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Managed {
    pub fields: Managers,
}

/// Why stored managedFields could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("managedFields must be a list")]
    NotAList,
    #[error("managed fields entry {0} must be an object")]
    NotAnObject(usize),
    #[error("operation must be `Apply` or `Update`")]
    Operation,
    #[error("apiVersion must not be empty")]
    ApiVersion,
    #[error("missing fieldsType in managed fields entry {0}")]
    MissingFieldsType(usize),
    #[error("invalid fieldsType {1:?} in managed fields entry {0}")]
    FieldsType(usize, String),
    #[error("error decoding versioned set: error decoding set: {0}")]
    Fields(#[from] FieldsError),
}

fn str_field<'a>(entry: &'a Map<String, Value>, name: &str) -> &'a str {
    entry.get(name).and_then(Value::as_str).unwrap_or("")
}

impl Managed {
    /// Reads `metadata.managedFields`; absent or null is no managers. The fields of each
    /// entry are decoded now when `eager`, else when first needed.
    pub fn decode(entries: Option<Value>, eager: bool) -> Result<Managed, DecodeError> {
        let mut managed = Managed::default();
        let entries = match entries {
            None | Some(Value::Null) => return Ok(managed),
            Some(Value::Array(entries)) => entries,
            Some(_) => return Err(DecodeError::NotAList),
        };
        for (i, entry) in entries.into_iter().enumerate() {
            let Value::Object(fields) = &entry else { return Err(DecodeError::NotAnObject(i)) };
            let operation = match str_field(fields, "operation") {
                "Apply" => Operation::Apply,
                "Update" => Operation::Update,
                _ => return Err(DecodeError::Operation),
            };
            let api_version = str_field(fields, "apiVersion").to_string();
            if api_version.is_empty() {
                return Err(DecodeError::ApiVersion);
            }
            match str_field(fields, "fieldsType") {
                "FieldsV1" => {}
                "" => return Err(DecodeError::MissingFieldsType(i)),
                other => return Err(DecodeError::FieldsType(i, other.to_string())),
            }
            let key = ManagerKey {
                manager: str_field(fields, "manager").to_string(),
                operation,
                api_version: if operation == Operation::Apply { String::new() } else { api_version.clone() },
                subresource: str_field(fields, "subresource").to_string(),
            };
            let Value::Object(entry) = entry else { return Err(DecodeError::NotAnObject(i)) };
            let mut vs =
                VersionedSet { api_version, applied: operation == Operation::Apply, repr: Repr::Stored(entry) };
            if eager {
                vs.decode()?;
            }
            managed.fields.insert(key, vs);
        }
        Ok(managed)
    }

    /// The entries to store, or `None` when no manager owns anything (the field is then
    /// left out, as upstream leaves it nil). Sorted by operation, time (to the second),
    /// manager, API version and subresource.
    pub fn encode(self) -> Option<Value> {
        if self.fields.is_empty() {
            return None;
        }
        let mut entries: Vec<(ManagerKey, VersionedSet)> = self.fields.into_iter().collect();
        let operation = |k: &ManagerKey, vs: &VersionedSet| if vs.applied { Operation::Apply } else { k.operation };
        entries.sort_by(|(ka, a), (kb, b)| {
            operation(ka, a)
                .cmp(&operation(kb, b))
                .then_with(|| seconds(a.time()).cmp(&seconds(b.time())))
                .then_with(|| ka.manager.cmp(&kb.manager))
                .then_with(|| a.api_version.cmp(&b.api_version))
                .then_with(|| ka.subresource.cmp(&kb.subresource))
        });
        Some(Value::Array(entries.into_iter().map(|(key, vs)| vs.encode(&key)).collect()))
    }

    /// Folds the oldest `Update` managers into one `ancient-changes` entry per API
    /// version once there are more than `max` of them, as upstream's capManagersManager.
    pub fn cap_update_managers(&mut self, max: usize) -> Result<(), DecodeError> {
        let mut updaters: Vec<ManagerKey> =
            self.fields.iter().filter(|(_, vs)| !vs.applied).map(|(k, _)| k.clone()).collect();
        if updaters.len() <= max {
            return Ok(());
        }
        updaters.sort_by(|a, b| {
            let time = |k: &ManagerKey| seconds(self.fields.get(k).and_then(VersionedSet::time));
            time(a).cmp(&time(b)).then_with(|| a.cmp(b))
        });
        let mut first_per_version: BTreeMap<String, ManagerKey> = BTreeMap::new();
        let mut length = updaters.len();
        for manager in updaters {
            if length <= max {
                break;
            }
            let Some(api_version) = self.fields.get(&manager).map(|vs| vs.api_version.clone()) else { continue };
            let bucket = ManagerKey::new("ancient-changes", Operation::Update, &api_version, "");
            match first_per_version.get(&api_version) {
                Some(first) => {
                    if !self.fields.contains_key(&bucket)
                        && let Some(s) = self.fields.remove(first)
                    {
                        self.fields.insert(bucket.clone(), s);
                    }
                    let Some(vs) = self.fields.remove(&manager) else { continue };
                    let time = vs.time().map(str::to_string);
                    let (api_version, applied) = (vs.api_version.clone(), vs.applied);
                    let mut set = vs.into_set()?;
                    if let Some(previous) = self.fields.remove(&bucket) {
                        set.union_in_place(previous.into_set()?);
                    }
                    self.fields.insert(bucket, VersionedSet::new(set, &api_version, applied, time.as_deref()));
                    length -= 1;
                }
                None => {
                    first_per_version.insert(api_version, manager);
                }
            }
        }
        Ok(())
    }
}

/// Whether a client asked to clear managedFields: an explicit empty list, or a list of
/// one empty entry.
pub(crate) fn is_reset(entries: Option<&Value>) -> bool {
    match entries {
        Some(Value::Array(a)) if a.is_empty() => true,
        Some(Value::Array(a)) if a.len() == 1 => match &a[0] {
            Value::Object(entry) => entry.values().all(|v| match v {
                Value::Null => true,
                Value::String(s) => s.is_empty(),
                _ => false,
            }),
            _ => false,
        },
        _ => false,
    }
}

/// Seconds since the epoch of an RFC 3339 time; missing or unreadable times sort first,
/// as upstream sorts a nil time.
fn seconds(time: Option<&str>) -> i64 {
    time.and_then(unix_seconds).unwrap_or(0)
}

pub(crate) fn unix_seconds(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let n = |from: usize, to: usize| t.get(from..to)?.parse::<i64>().ok();
    let (year, month, day) = (n(0, 4)?, n(5, 7)?, n(8, 10)?);
    let (hour, minute, second) = (n(11, 13)?, n(14, 16)?, n(17, 19)?);
    let mut rest = &t[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            sign * (rest.get(1..3)?.parse::<i64>().ok()? * 3600 + rest.get(4..6)?.parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + hour * 3600 + minute * 60 + second - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_sort_as_upstream() {
        let entries = json!([
            {"manager": "b", "operation": "Update", "apiVersion": "apps/v1", "time": "2024-01-01T00:00:02Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
            {"manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "time": "2024-01-01T00:00:09Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}}}},
            {"manager": "a", "operation": "Update", "apiVersion": "apps/v1", "time": "2024-01-01T00:00:02Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:replicas": {}}}, "subresource": "status"}
        ]);
        let managed = Managed::decode(Some(entries.clone()), true).unwrap();
        assert_eq!(managed.fields.len(), 3);
        let out = managed.clone().encode().unwrap();
        let order: Vec<_> = out.as_array().unwrap().iter().map(|e| e["manager"].as_str().unwrap()).collect();
        assert_eq!(order, ["kubectl", "a", "b"]);
        assert_eq!(out[1]["subresource"], "status");
        assert_eq!(out[0]["apiVersion"], "apps/v1");
        assert!(out[0].get("subresource").is_none());
        // Re-encoding what was decoded gives the same entries, whether reused or rebuilt.
        let mut rebuilt = Managed::default();
        for (k, vs) in managed.fields.clone() {
            let (api_version, applied, time) = (vs.api_version.clone(), vs.applied, vs.time().map(str::to_string));
            rebuilt.fields.insert(k, VersionedSet::new(vs.into_set().unwrap(), &api_version, applied, time.as_deref()));
        }
        assert_eq!(rebuilt.encode().unwrap(), out);
        let lazy = Managed::decode(Some(entries), false).unwrap();
        assert_eq!(lazy.encode().unwrap(), out);
    }

    #[test]
    fn bad_entries_are_rejected() {
        let bad = |e: Value| Managed::decode(Some(json!([e])), true).unwrap_err();
        assert_eq!(
            bad(json!({"operation": "Patch", "apiVersion": "v1", "fieldsType": "FieldsV1"})),
            DecodeError::Operation
        );
        assert_eq!(bad(json!({"operation": "Apply", "fieldsType": "FieldsV1"})), DecodeError::ApiVersion);
        assert_eq!(bad(json!({"operation": "Apply", "apiVersion": "v1"})), DecodeError::MissingFieldsType(0));
        assert!(matches!(
            bad(json!({"operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV2"})),
            DecodeError::FieldsType(0, _)
        ));
        assert!(matches!(
            bad(json!({"operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"x": {}}})),
            DecodeError::Fields(_)
        ));
    }

    #[test]
    fn reset_requests_are_recognised() {
        assert!(is_reset(Some(&json!([]))));
        assert!(is_reset(Some(&json!([{}]))));
        assert!(!is_reset(None));
        assert!(!is_reset(Some(&json!([{"manager": "x"}]))));
    }

    #[test]
    fn times_parse_to_epoch_seconds() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_seconds("2024-03-01T12:30:05Z"), Some(1709296205));
        assert_eq!(unix_seconds("2024-03-01T13:30:05.123+01:00"), Some(1709296205));
        assert_eq!(unix_seconds("yesterday"), None);
    }

    #[test]
    fn old_updaters_fold_into_ancient_changes() {
        let mut managed = Managed::default();
        for i in 0..12 {
            let key = ManagerKey::new(&format!("m{i:02}"), Operation::Update, "v1", "");
            let mut set = Set::new();
            set.insert(&[super::super::fieldpath::PathElement::field(format!("f{i}"))]);
            let time = format!("2024-01-01T00:00:{i:02}Z");
            managed.fields.insert(key, VersionedSet::new(set, "v1", false, Some(&time)));
        }
        managed.cap_update_managers(10).unwrap();
        assert_eq!(managed.fields.len(), 10);
        let ancient = &managed.fields[&ManagerKey::new("ancient-changes", Operation::Update, "v1", "")];
        assert_eq!(ancient.set().len(), 3);
        assert_eq!(ancient.time(), Some("2024-01-01T00:00:02Z"));
        assert!(!managed.fields.contains_key(&ManagerKey::new("m00", Operation::Update, "v1", "")));
        assert!(managed.fields.contains_key(&ManagerKey::new("m03", Operation::Update, "v1", "")));
    }
}
