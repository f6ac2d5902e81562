//! Server-side Table columns and rows: what `kubectl get` prints.
//!
//! kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and prints the cells
//! the server computes, so these are ports of upstream's printers
//! (`pkg/printers/internalversion/printers.go`, v1.33). Like the API server, we always
//! compute the wide form: every column, priority-1 ones included; kubectl hides those
//! unless `-o wide`.
//!
//! Upstream prints objects after decoding, which applies defaults; where a default shows
//! in a cell (a Deployment's `replicas`, a Service's `type`), an object that lacks the
//! field is printed as if defaulted.
//!
//! Start with [`columns`] and [`row`].

mod columns;
mod core;
mod descriptions;
mod event;
mod fields;
mod pod;
mod time;
mod workloads;

pub use time::human_duration;

use crate::Resource;
use serde_json::{Value, json};

/// One column of a Table, as `meta.k8s.io/v1` `TableColumnDefinition` carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnDefinition {
    pub name: &'static str,
    /// An OpenAPI type: `string`, `integer`, `boolean`, ...
    pub type_: &'static str,
    /// An OpenAPI format; `name` marks the column holding the object's name.
    pub format: &'static str,
    pub description: &'static str,
    /// 0 is always shown; 1 only with `-o wide`.
    pub priority: i32,
}

/// Which printer a resource uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Printer {
    Pod,
    Node,
    Namespace,
    Service,
    Endpoints,
    EndpointSlice,
    ConfigMap,
    Secret,
    ServiceAccount,
    Event,
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    ControllerRevision,
    Job,
    CronJob,
    PodDisruptionBudget,
    PriorityClass,
    Lease,
    Default,
}

impl Printer {
    fn of(resource: &Resource) -> Printer {
        match (resource.group, resource.kind) {
            ("", "Pod") => Printer::Pod,
            ("", "Node") => Printer::Node,
            ("", "Namespace") => Printer::Namespace,
            ("", "Service") => Printer::Service,
            ("", "Endpoints") => Printer::Endpoints,
            ("discovery.k8s.io", "EndpointSlice") => Printer::EndpointSlice,
            ("", "ConfigMap") => Printer::ConfigMap,
            ("", "Secret") => Printer::Secret,
            ("", "ServiceAccount") => Printer::ServiceAccount,
            // Upstream converts events.k8s.io events to the core type and prints them alike.
            ("", "Event") | ("events.k8s.io", "Event") => Printer::Event,
            ("apps", "Deployment") => Printer::Deployment,
            ("apps", "ReplicaSet") => Printer::ReplicaSet,
            ("apps", "StatefulSet") => Printer::StatefulSet,
            ("apps", "DaemonSet") => Printer::DaemonSet,
            ("apps", "ControllerRevision") => Printer::ControllerRevision,
            ("batch", "Job") => Printer::Job,
            ("batch", "CronJob") => Printer::CronJob,
            ("policy", "PodDisruptionBudget") => Printer::PodDisruptionBudget,
            ("scheduling.k8s.io", "PriorityClass") => Printer::PriorityClass,
            ("coordination.k8s.io", "Lease") => Printer::Lease,
            _ => Printer::Default,
        }
    }

    fn columns(self) -> &'static [ColumnDefinition] {
        match self {
            Printer::Pod => columns::POD,
            Printer::Node => columns::NODE,
            Printer::Namespace => columns::NAMESPACE,
            Printer::Service => columns::SERVICE,
            Printer::Endpoints => columns::ENDPOINTS,
            Printer::EndpointSlice => columns::ENDPOINT_SLICE,
            Printer::ConfigMap => columns::CONFIG_MAP,
            Printer::Secret => columns::SECRET,
            Printer::ServiceAccount => columns::SERVICE_ACCOUNT,
            Printer::Event => columns::EVENT,
            Printer::Deployment => columns::DEPLOYMENT,
            Printer::ReplicaSet => columns::REPLICA_SET,
            Printer::StatefulSet => columns::STATEFUL_SET,
            Printer::DaemonSet => columns::DAEMON_SET,
            Printer::ControllerRevision => columns::CONTROLLER_REVISION,
            Printer::Job => columns::JOB,
            Printer::CronJob => columns::CRON_JOB,
            Printer::PodDisruptionBudget => columns::POD_DISRUPTION_BUDGET,
            Printer::PriorityClass => columns::PRIORITY_CLASS,
            Printer::Lease => columns::LEASE,
            Printer::Default => columns::DEFAULT,
        }
    }

    fn row(self, obj: &Value, now: time::Nanos) -> Vec<Value> {
        match self {
            Printer::Pod => pod::row(obj, now),
            Printer::Node => core::node(obj, now),
            Printer::Namespace => core::namespace(obj, now),
            Printer::Service => core::service(obj, now),
            Printer::Endpoints => core::endpoints(obj, now),
            Printer::EndpointSlice => core::endpoint_slice(obj, now),
            Printer::ConfigMap => core::config_map(obj, now),
            Printer::Secret => core::secret(obj, now),
            Printer::ServiceAccount => core::service_account(obj, now),
            Printer::Event => event::row(obj, now),
            Printer::Deployment => workloads::deployment(obj, now),
            Printer::ReplicaSet => workloads::replica_set(obj, now),
            Printer::StatefulSet => workloads::stateful_set(obj, now),
            Printer::DaemonSet => workloads::daemon_set(obj, now),
            Printer::ControllerRevision => workloads::controller_revision(obj, now),
            Printer::Job => workloads::job(obj, now),
            Printer::CronJob => workloads::cron_job(obj, now),
            Printer::PodDisruptionBudget => workloads::pod_disruption_budget(obj, now),
            Printer::PriorityClass => core::priority_class(obj, now),
            Printer::Lease => core::lease(obj, now),
            Printer::Default => vec![fields::name(obj), age(obj, now)],
        }
    }
}

/// The columns of a resource's Table, every priority included ("Name", "Age" for
/// kinds without a printer of their own).
pub fn columns(resource: &Resource) -> &'static [ColumnDefinition] {
    Printer::of(resource).columns()
}

/// The cells of one object's row, one per entry of [`columns`], typed as upstream types
/// them (strings and integers). `now_unix_seconds` is the clock the ages are taken from.
/// Never panics: missing or mistyped fields print as upstream prints zero values.
pub fn row(resource: &Resource, obj: &Value, now_unix_seconds: i64) -> Vec<Value> {
    let now = time::Nanos::from(now_unix_seconds) * 1_000_000_000;
    Printer::of(resource).row(obj, now)
}

/// The `columnDefinitions` array of a `meta.k8s.io/v1` Table.
pub fn column_definitions_json(resource: &Resource) -> Value {
    Value::Array(
        columns(resource)
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "type": c.type_,
                    "format": c.format,
                    "description": c.description,
                    "priority": c.priority,
                })
            })
            .collect(),
    )
}

/// The Age cell: time since `metadata.creationTimestamp`.
fn age(obj: &Value, now: time::Nanos) -> Value {
    Value::from(time::since(fields::time_at(obj, "/metadata/creationTimestamp"), now))
}

/// What the per-kind tests share: a fixed clock and a shortcut to one row.
#[cfg(test)]
pub(crate) mod testing {
    use serde_json::Value;

    /// 2025-06-01T12:00:00Z.
    pub const NOW: i64 = 1_748_779_200;

    pub fn cells(group: &str, plural: &str, obj: &Value) -> Vec<Value> {
        let r = crate::registry::RESOURCES.iter().find(|r| r.group == group && r.plural == plural);
        super::row(r.expect("served resource"), obj, NOW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{RESOURCES, find};

    use super::testing::NOW;

    #[test]
    fn every_served_resource_has_its_own_printer() {
        for r in RESOURCES {
            assert_ne!(Printer::of(r), Printer::Default, "{} has no printer", r.kind);
        }
    }

    #[test]
    fn minimal_objects_fill_every_column_without_panicking() {
        for r in RESOURCES {
            for obj in [json!({}), json!(null), json!({"metadata": {"name": "x"}, "spec": 3, "status": []})] {
                let cells = row(r, &obj, NOW);
                assert_eq!(cells.len(), columns(r).len(), "{}", r.kind);
                assert!(cells.iter().all(|c| c.is_string() || c.is_i64() || c.is_boolean()), "{}: {cells:?}", r.kind);
            }
        }
    }

    #[test]
    fn cell_types_follow_upstream_cells() {
        // Upstream's cells are Go strings or int64s; this pins which is which per column,
        // since kubectl right-aligns neither but `-o json` of a Table shows the difference.
        let ints = |kind: &str| -> Vec<usize> {
            match kind {
                "ConfigMap" => vec![1],
                "Secret" => vec![2],
                "ServiceAccount" => vec![1],
                "Event" => vec![8],
                "Deployment" => vec![2, 3],
                "ReplicaSet" => vec![1, 2, 3],
                "DaemonSet" => vec![1, 2, 3, 4, 5],
                "ControllerRevision" => vec![2],
                "CronJob" => vec![4],
                "PodDisruptionBudget" => vec![3],
                "PriorityClass" => vec![1],
                _ => vec![],
            }
        };
        for r in RESOURCES {
            let cells = row(r, &json!({"metadata": {"name": "x"}}), NOW);
            for (i, c) in cells.iter().enumerate() {
                assert_eq!(c.is_i64(), ints(r.kind).contains(&i), "{} column {}", r.kind, columns(r)[i].name);
            }
        }
    }

    #[test]
    fn unknown_kinds_get_name_and_age() {
        let r = Resource { kind: "Widget", group: "example.com", ..*find("", "v1", "pods").unwrap() };
        let cols: Vec<_> = columns(&r).iter().map(|c| c.name).collect();
        assert_eq!(cols, ["Name", "Age"]);
        let obj = json!({"metadata": {"name": "w1", "creationTimestamp": "2025-06-01T11:00:00Z"}});
        assert_eq!(row(&r, &obj, NOW), [json!("w1"), json!("60m")]);
    }

    #[test]
    fn column_definitions_carry_every_wire_field() {
        let pods = find("", "v1", "pods").unwrap();
        let defs = column_definitions_json(pods);
        let defs = defs.as_array().unwrap();
        assert_eq!(defs.len(), 9);
        assert_eq!(defs[0]["name"], "Name");
        assert_eq!(defs[0]["type"], "string");
        assert_eq!(defs[0]["format"], "name");
        assert_eq!(defs[0]["priority"], 0);
        assert!(defs[0]["description"].as_str().unwrap().starts_with("Name must be unique"));
        assert_eq!(defs[3]["name"], "Restarts");
        assert_eq!(defs[3]["format"], "");
        assert_eq!(defs[5]["name"], "IP");
        assert_eq!(defs[5]["priority"], 1);
        for d in defs {
            let keys: Vec<_> = d.as_object().unwrap().keys().cloned().collect();
            assert_eq!(keys.len(), 5, "{d}");
        }
    }

    #[test]
    fn column_sets_match_upstream() {
        let names = |g: &str, p: &str| -> Vec<(&'static str, i32)> {
            columns(find(g, "v1", p).unwrap()).iter().map(|c| (c.name, c.priority)).collect()
        };
        assert_eq!(
            names("", "events"),
            [
                ("Last Seen", 0),
                ("Type", 0),
                ("Reason", 0),
                ("Object", 0),
                ("Subobject", 1),
                ("Source", 1),
                ("Message", 0),
                ("First Seen", 1),
                ("Count", 1),
                ("Name", 1)
            ]
        );
        assert_eq!(names("events.k8s.io", "events"), names("", "events"));
        assert_eq!(
            names("batch", "cronjobs"),
            [
                ("Name", 0),
                ("Schedule", 0),
                ("Timezone", 0),
                ("Suspend", 0),
                ("Active", 0),
                ("Last Schedule", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1)
            ]
        );
        assert_eq!(names("", "serviceaccounts"), [("Name", 0), ("Secrets", 0), ("Age", 0)]);
    }
}
