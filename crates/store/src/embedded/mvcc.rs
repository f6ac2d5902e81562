//! The in-memory multi-version index: every key's versions since the last compaction,
//! and the event history watches replay from.

use crate::{Event, EventType, KeyValue, RangeRequest, RangeResponse, StoreError};
use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;

#[derive(Debug, Clone)]
struct Version {
    mod_revision: i64,
    create_revision: i64,
    /// `None` marks a deletion.
    value: Option<Bytes>,
}

/// One write of a transaction, as logged and applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub key: String,
    /// `None` deletes.
    pub value: Option<Bytes>,
}

#[derive(Debug, Default)]
pub(crate) struct Mvcc {
    /// Versions of each key, oldest first.
    keys: BTreeMap<String, Vec<Version>>,
    pub revision: i64,
    /// Revisions at or below this can no longer be read or watched.
    pub compacted: i64,
    /// Every event after `compacted`, in revision order.
    events: VecDeque<Event>,
    /// Bytes held by the newest live versions (to decide when the file needs rewriting).
    pub live_bytes: u64,
    /// Bytes held only for history: superseded versions and recorded events (to keep
    /// the history window within a memory budget).
    pub history_bytes: u64,
}

/// What one recorded event costs beyond the values it shares with the versions.
fn event_cost(key: &str) -> u64 {
    2 * key.len() as u64 + 128
}

impl Mvcc {
    /// The newest live value of a key.
    pub fn latest(&self, key: &str) -> Option<KeyValue> {
        let v = self.keys.get(key)?.last()?;
        Some(KeyValue {
            key: key.to_string(),
            value: v.value.clone()?,
            create_revision: v.create_revision,
            mod_revision: v.mod_revision,
        })
    }

    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, StoreError> {
        let rev = if req.revision <= 0 { self.revision } else { req.revision };
        if rev > self.revision {
            return Err(StoreError::FutureRevision { requested: rev, current: self.revision });
        }
        if rev < self.compacted {
            return Err(StoreError::Compacted { requested: rev, compacted: self.compacted });
        }
        let mut resp = RangeResponse { revision: self.revision, ..Default::default() };
        let upper = match &req.range_end {
            None => Bound::Included(req.key.as_str()),
            Some(end) if end.is_empty() => Bound::Unbounded,
            Some(end) => Bound::Excluded(end.as_str()),
        };
        if let Bound::Excluded(end) = upper
            && end <= req.key.as_str()
        {
            return Ok(resp);
        }
        let iter = self.keys.range::<str, _>((Bound::Included(req.key.as_str()), upper));
        for (key, versions) in iter {
            let Some(v) = visible_at(versions, rev) else {
                continue;
            };
            let Some(value) = &v.value else { continue };
            resp.count += 1;
            if req.limit > 0 && resp.kvs.len() as i64 >= req.limit {
                resp.more = true;
                continue;
            }
            resp.kvs.push(KeyValue {
                key: key.clone(),
                value: value.clone(),
                create_revision: v.create_revision,
                mod_revision: v.mod_revision,
            });
        }
        Ok(resp)
    }

    /// Applies the changes of one transaction at `revision`, returning its events.
    pub fn apply(&mut self, revision: i64, changes: Vec<Change>, record: bool) -> Vec<Event> {
        let mut events = Vec::with_capacity(changes.len());
        for c in changes {
            let prev = self.latest(&c.key);
            if let Some(p) = &prev {
                let size = (p.key.len() + p.value.len()) as u64;
                self.live_bytes -= size;
                if record {
                    self.history_bytes += size;
                }
            }
            let (kind, version, kv) = match c.value {
                Some(value) => {
                    self.live_bytes += (c.key.len() + value.len()) as u64;
                    let create_revision = prev.as_ref().map_or(revision, |p| p.create_revision);
                    let kv =
                        KeyValue { key: c.key.clone(), value: value.clone(), create_revision, mod_revision: revision };
                    (EventType::Put, Version { mod_revision: revision, create_revision, value: Some(value) }, kv)
                }
                None => {
                    if prev.is_none() {
                        continue;
                    }
                    let kv = KeyValue {
                        key: c.key.clone(),
                        value: Bytes::new(),
                        create_revision: 0,
                        mod_revision: revision,
                    };
                    (EventType::Delete, Version { mod_revision: revision, create_revision: 0, value: None }, kv)
                }
            };
            let versions = self.keys.entry(c.key).or_default();
            if !record {
                // Replaying the log at start-up keeps no history.
                versions.clear();
            }
            versions.push(version);
            if record {
                self.history_bytes += event_cost(&kv.key);
                events.push(Event { kind, kv, prev });
            }
        }
        self.revision = self.revision.max(revision);
        if record {
            self.events.extend(events.iter().cloned());
        }
        events
    }

    /// Inserts a value as read from a snapshot.
    pub fn load(&mut self, key: String, value: Bytes, create_revision: i64, mod_revision: i64) {
        self.live_bytes += (key.len() + value.len()) as u64;
        self.keys.insert(key, vec![Version { mod_revision, create_revision, value: Some(value) }]);
    }

    /// Forgets history at or below `revision`, keeping each key's newest value.
    pub fn compact(&mut self, revision: i64) {
        let revision = revision.min(self.revision);
        if revision <= self.compacted {
            return;
        }
        let mut freed = 0u64;
        self.keys.retain(|key, versions| {
            // Keep the newest version at or below the compaction point, and all after it.
            let keep_from = versions.iter().rposition(|v| v.mod_revision <= revision).unwrap_or(0);
            for v in versions.drain(..keep_from) {
                freed += v.value.map_or(0, |b| (key.len() + b.len()) as u64);
            }
            !(versions.len() == 1 && versions[0].value.is_none() && versions[0].mod_revision <= revision)
        });
        while self.events.front().is_some_and(|e| e.kv.mod_revision <= revision) {
            if let Some(e) = self.events.pop_front() {
                freed += event_cost(&e.kv.key);
            }
        }
        self.history_bytes = self.history_bytes.saturating_sub(freed);
        self.compacted = revision;
    }

    /// Events under `prefix` with a revision of at least `from`.
    pub fn events_since(&self, from: i64, prefix: &str) -> Result<Vec<Event>, StoreError> {
        if from <= self.compacted {
            return Err(StoreError::Compacted { requested: from, compacted: self.compacted });
        }
        let start = self.events.partition_point(|e| e.kv.mod_revision < from);
        Ok(self.events.range(start..).filter(|e| e.kv.key.starts_with(prefix)).cloned().collect())
    }

    /// Every live key with its newest value, for writing a snapshot.
    pub fn live(&self) -> impl Iterator<Item = KeyValue> + '_ {
        self.keys.keys().filter_map(|k| self.latest(k))
    }
}

fn visible_at(versions: &[Version], rev: i64) -> Option<&Version> {
    let idx = versions.partition_point(|v| v.mod_revision <= rev);
    if idx == 0 { None } else { Some(&versions[idx - 1]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str, v: &str) -> Change {
        Change { key: k.into(), value: Some(Bytes::from(v.to_string())) }
    }

    #[test]
    fn reads_old_revisions_until_compacted() {
        let mut m = Mvcc::default();
        m.apply(1, vec![put("a", "1")], true);
        m.apply(2, vec![put("a", "2")], true);
        m.apply(3, vec![Change { key: "a".into(), value: None }], true);
        let at = |m: &Mvcc, r| m.range(&RangeRequest::key("a").at_revision(r)).map(|r| r.kvs);
        assert_eq!(at(&m, 1).unwrap()[0].value, "1");
        assert_eq!(at(&m, 2).unwrap()[0].value, "2");
        assert!(at(&m, 3).unwrap().is_empty());
        m.compact(2);
        assert!(at(&m, 1).is_err());
        assert_eq!(at(&m, 2).unwrap()[0].value, "2");
        m.compact(3);
        assert!(m.keys.is_empty());
        assert_eq!(m.live_bytes, 0);
        assert_eq!(m.history_bytes, 0, "compacting everything frees all history");
    }
}
