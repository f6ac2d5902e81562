//! Ownership bookkeeping for one write, as structured-merge-diff's `merge.Updater`:
//! who loses which fields when an object changes, and how an apply merges, prunes what
//! its manager stopped applying, and detects conflicts.

use super::fieldpath::{Path, Set};
use super::managed::{ManagerKey, Managers, VersionedSet};
use super::typed::{self, Comparison, Ty, TypedErrors};
use serde_json::Value;

fn decode_error(e: super::managed::DecodeError) -> UpdateError {
    UpdateError::Typed(format!("failed to decode managed fields: {e}"))
}

/// Why an update of the ownership could not be made.
#[derive(Debug)]
pub(crate) enum UpdateError {
    /// Fields other managers own and this write changes, by manager.
    Conflicts(Vec<(ManagerKey, String, Path)>),
    Typed(String),
}

pub(crate) struct Updater<'a> {
    pub ty: Ty<'a>,
    /// Fields the write cannot set (status on the main resource, spec on `status`):
    /// nobody gains or loses them through this write.
    pub reset: &'a Set,
}

impl Updater<'_> {
    /// Compares the objects, takes changed fields away from every manager but
    /// `workflow`, and fails on such fields unless `force`.
    fn update(
        &self,
        old: &Value,
        new: &Value,
        managers: &mut Managers,
        workflow: Option<&ManagerKey>,
        force: bool,
    ) -> Result<Comparison, UpdateError> {
        if workflow.is_some() && managers.keys().all(|k| Some(k) == workflow) {
            // Nobody else to take fields from: the comparison would change nothing.
            managers.retain(|_, vs| !vs.is_empty());
            return Ok(Comparison::default());
        }
        let mut compare = typed::compare(Some(old), Some(new), self.ty)
            .map_err(|e| UpdateError::Typed(format!("failed to compare objects: {e}")))?;
        compare.exclude(self.reset);
        if compare.is_empty() {
            managers.retain(|_, vs| !vs.is_empty());
            return Ok(compare);
        }
        let changed = [&compare.modified, &compare.added];
        let mut conflicts: Vec<(ManagerKey, Set)> = Vec::new();
        for (key, vs) in managers.iter_mut() {
            if Some(key) == workflow {
                continue;
            }
            for part in changed {
                if part.is_empty() || !vs.intersects(part).map_err(decode_error)? {
                    continue;
                }
                if force {
                    // Taking a changed set away is taking away exactly what it shares with it.
                    vs.remove(part).map_err(decode_error)?;
                } else {
                    vs.decode().map_err(decode_error)?;
                    conflicts.push((key.clone(), vs.set().intersection(part)));
                }
            }
        }
        if !conflicts.is_empty() {
            let mut out = Vec::new();
            for (key, set) in conflicts {
                let api_version = managers.get(&key).map(|vs| vs.api_version.clone()).unwrap_or_default();
                for path in set.paths() {
                    out.push((key.clone(), api_version.clone(), path));
                }
            }
            return Err(UpdateError::Conflicts(out));
        }
        if !compare.removed.is_empty() {
            for (key, vs) in managers.iter_mut() {
                if Some(key) != workflow && vs.intersects(&compare.removed).map_err(decode_error)? {
                    vs.remove(&compare.removed).map_err(decode_error)?;
                }
            }
        }
        managers.retain(|_, vs| !vs.is_empty());
        Ok(compare)
    }

    /// A non-apply write: returns the fields the writer changed (upstream's
    /// `current-operation` set), after taking them from everyone else.
    pub fn update_current(&self, old: &Value, new: &Value, managers: &mut Managers) -> Result<Set, UpdateError> {
        let Comparison { modified, mut added, .. } = self.update(old, new, managers, None, true)?;
        added.union_in_place(modified);
        added.recursive_difference_in_place(self.reset);
        Ok(added)
    }

    /// An apply by `key`: merges `config` into `live`, records what `key` now applies,
    /// prunes what it applied before and no longer does, and moves or refuses the
    /// fields of other managers it changes. `None` when the object does not change.
    pub fn apply(
        &self,
        live: &Value,
        config: &Value,
        api_version: &str,
        managers: &mut Managers,
        key: &ManagerKey,
        force: bool,
    ) -> Result<Option<Value>, UpdateError> {
        let typed_err = |what: &str, e: TypedErrors| UpdateError::Typed(format!("{what}: {e}"));
        let merged = typed::merge(Some(live), Some(config), self.ty)
            .map_err(|e| typed_err("failed to merge config", e))?
            .unwrap_or(Value::Null);
        let mut set = typed::to_field_set(config, self.ty).map_err(|e| typed_err("failed to get field set", e))?;
        set.recursive_difference_in_place(self.reset);
        let (last, time) = match managers.remove(key) {
            Some(last) => {
                let time = last.time().map(str::to_string);
                (Some(last.into_set().map_err(decode_error)?), time)
            }
            None => (None, None),
        };
        // Pruning keeps the merged object as it is when nothing applied before is
        // missing now: every such field is still owned, by the applier itself.
        let prune = last.filter(|l| !l.is_empty() && !l.is_subset(&set));
        managers.insert(key.clone(), VersionedSet::new(set, api_version, true, time.as_deref()));
        let new = match prune {
            Some(last) => {
                for vs in managers.values_mut() {
                    vs.decode().map_err(decode_error)?;
                }
                self.prune(merged, managers, &last).map_err(|e| typed_err("failed to prune fields", e))?
            }
            None => merged,
        };
        self.update(live, &new, managers, Some(key), force)?;
        Ok(if super::fieldpath::values_equal(live, &new) { None } else { Some(new) })
    }

    /// Removes what the applier applied last time and no longer applies, unless another
    /// manager (or the applier's new configuration) still owns it.
    fn prune(&self, merged: Value, managers: &Managers, last: &Set) -> Result<Value, TypedErrors> {
        let ensure = |s: &Set| typed::ensure_named_fields_are_members(s, self.ty);
        let last_set = ensure(last);
        let pruned = typed::remove_items(&merged, &last_set, self.ty);

        // Add back what some manager still owns.
        let mut owned = Set::new();
        for vs in managers.values() {
            owned = owned.union(vs.set());
        }
        let merged_set = ensure(&typed::to_field_set(&merged, self.ty)?);
        let pruned_set = ensure(&typed::to_field_set(&pruned, self.ty)?);
        let drop = merged_set.difference(&pruned_set.union(&ensure(&owned)));
        let pruned = typed::remove_items(&merged, &drop, self.ty);

        // Add back what nobody owns and the applier never applied.
        let pruned_set = ensure(&typed::to_field_set(&pruned, self.ty)?);
        let drop = merged_set.difference(&pruned_set).intersection(&last_set);
        Ok(typed::remove_items(&merged, &drop, self.ty))
    }
}
