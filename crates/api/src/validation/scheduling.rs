//! PriorityClass rules (upstream `pkg/apis/scheduling/validation`).

use super::field::{self, Bad, Path, get, int_of, opt_str, sub};
use super::meta;
use super::names::NameRule;
use crate::Cause;
use serde_json::Value;

/// The highest priority a user-defined class may have; above it are the system classes.
pub const HIGHEST_USER_DEFINABLE_PRIORITY: i64 = 1_000_000_000;
/// The priority classes every cluster has, with their values.
pub const SYSTEM_PRIORITY_CLASSES: &[(&str, i64)] =
    &[("system-node-critical", 2_000_001_000), ("system-cluster-critical", 2_000_000_000)];

const POLICIES: &[&str] = &["Never", "PreemptLowerPriority"];

pub fn validate_priority_class(pc: &Value) -> Vec<Cause> {
    let mut errs =
        meta::validate_object_meta(sub(pc, "metadata"), false, NameRule::Dns1123Subdomain, &Path::new("metadata"));
    let name = opt_str(sub(pc, "metadata"), "name").unwrap_or_default();
    let value = int_of(pc, "value").unwrap_or(0);
    match SYSTEM_PRIORITY_CLASSES.iter().find(|(n, _)| *n == name) {
        Some((_, v)) if *v != value => errs.push(field::forbidden(
            &Path::new("metadata").child("name"),
            &format!("{name:?} is a system priority class and its value must be {v}"),
        )),
        Some(_) => {}
        None if name.starts_with("system-") => errs.push(field::forbidden(
            &Path::new("metadata").child("name"),
            "priority class names with 'system-' prefix are reserved for system use only",
        )),
        None if value > HIGHEST_USER_DEFINABLE_PRIORITY => errs.push(field::forbidden(
            &Path::new("value"),
            &format!("maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE_PRIORITY}"),
        )),
        None => {}
    }
    if let Some(p) = opt_str(pc, "preemptionPolicy")
        && !POLICIES.contains(&p)
    {
        errs.push(field::not_supported(&Path::new("preemptionPolicy"), Bad::Str(p), POLICIES));
    }
    errs
}

pub fn validate_priority_class_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs = validate_priority_class(new);
    for key in ["value", "preemptionPolicy"] {
        if field::differs(get(new, key), get(old, key)) {
            errs.push(field::forbidden(&Path::new(key), "may not be changed in an update."));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn user_classes_stay_below_system_ones() {
        let ok = json!({"metadata":{"name":"high"},"value":1000,"preemptionPolicy":"Never"});
        assert!(validate_priority_class(&ok).is_empty());
        let too_high = json!({"metadata":{"name":"high"},"value":1_000_000_001});
        assert_eq!(validate_priority_class(&too_high)[0].field, "value");
        let reserved = json!({"metadata":{"name":"system-mine"},"value":1});
        assert_eq!(validate_priority_class(&reserved)[0].field, "metadata.name");
        let system = json!({"metadata":{"name":"system-node-critical"},"value":2_000_001_000});
        assert!(validate_priority_class(&system).is_empty());
        let changed = json!({"metadata":{"name":"high"},"value":7});
        assert!(validate_priority_class_update(&changed, &ok).iter().any(|c| c.field == "value"));
    }
}
