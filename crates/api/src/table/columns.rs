//! The column sets of upstream's printers (`pkg/printers/internalversion`, v1.33), in
//! their order, with their types and priorities. Some types look wrong (a "string"
//! column holding integers); they are upstream's, and kubectl does not mind.

use super::ColumnDefinition;
use super::descriptions as d;

const fn col(name: &'static str, type_: &'static str, description: &'static str) -> ColumnDefinition {
    ColumnDefinition { name, type_, format: "", description, priority: 0 }
}

/// A column `kubectl get` shows only with `-o wide`.
const fn wide(name: &'static str, type_: &'static str, description: &'static str) -> ColumnDefinition {
    ColumnDefinition { name, type_, format: "", description, priority: 1 }
}

const NAME: ColumnDefinition =
    ColumnDefinition { name: "Name", type_: "string", format: "name", description: d::NAME, priority: 0 };
const AGE: ColumnDefinition = col("Age", "string", d::AGE);
const CONTAINERS: ColumnDefinition = wide("Containers", "string", d::CONTAINERS);
const IMAGES: ColumnDefinition = wide("Images", "string", d::IMAGES);

pub(crate) static DEFAULT: &[ColumnDefinition] = &[NAME, AGE];

pub(crate) static POD: &[ColumnDefinition] = &[
    NAME,
    col("Ready", "string", d::POD_READY),
    col("Status", "string", d::POD_STATUS),
    col("Restarts", "string", d::POD_RESTARTS),
    AGE,
    wide("IP", "string", d::POD_IP),
    wide("Node", "string", d::POD_NODE),
    wide("Nominated Node", "string", d::POD_NOMINATED),
    wide("Readiness Gates", "string", d::POD_GATES),
];

pub(crate) static NODE: &[ColumnDefinition] = &[
    NAME,
    col("Status", "string", d::NODE_STATUS),
    col("Roles", "string", d::NODE_ROLES),
    AGE,
    col("Version", "string", d::NODE_KUBELET),
    wide("Internal-IP", "string", d::NODE_ADDRESSES),
    wide("External-IP", "string", d::NODE_ADDRESSES),
    wide("OS-Image", "string", d::NODE_OS_IMAGE),
    wide("Kernel-Version", "string", d::NODE_KERNEL),
    wide("Container-Runtime", "string", d::NODE_RUNTIME),
];

pub(crate) static NAMESPACE: &[ColumnDefinition] = &[NAME, col("Status", "string", d::NS_STATUS), AGE];

pub(crate) static SERVICE: &[ColumnDefinition] = &[
    NAME,
    col("Type", "string", d::SVC_TYPE),
    col("Cluster-IP", "string", d::SVC_CLUSTER_IP),
    col("External-IP", "string", d::SVC_EXTERNAL_IPS),
    col("Port(s)", "string", d::SVC_PORTS),
    AGE,
    wide("Selector", "string", d::SVC_SELECTOR),
];

pub(crate) static ENDPOINTS: &[ColumnDefinition] = &[NAME, col("Endpoints", "string", d::EP_SUBSETS), AGE];

pub(crate) static ENDPOINT_SLICE: &[ColumnDefinition] = &[
    NAME,
    col("AddressType", "string", d::EPS_ADDRESS_TYPE),
    col("Ports", "string", d::EPS_PORTS),
    col("Endpoints", "string", d::EPS_ENDPOINTS),
    AGE,
];

pub(crate) static CONFIG_MAP: &[ColumnDefinition] = &[NAME, col("Data", "string", d::CM_DATA), AGE];

pub(crate) static SECRET: &[ColumnDefinition] =
    &[NAME, col("Type", "string", d::SECRET_TYPE), col("Data", "string", d::SECRET_DATA), AGE];

pub(crate) static SERVICE_ACCOUNT: &[ColumnDefinition] = &[NAME, col("Secrets", "string", d::SA_SECRETS), AGE];

pub(crate) static EVENT: &[ColumnDefinition] = &[
    col("Last Seen", "string", d::EV_LAST),
    col("Type", "string", d::EV_TYPE),
    col("Reason", "string", d::EV_REASON),
    col("Object", "string", d::EV_OBJECT),
    wide("Subobject", "string", d::EV_SUBOBJECT),
    wide("Source", "string", d::EV_SOURCE),
    col("Message", "string", d::EV_MESSAGE),
    wide("First Seen", "string", d::EV_FIRST),
    wide("Count", "string", d::EV_COUNT),
    ColumnDefinition { name: "Name", type_: "string", format: "name", description: d::NAME, priority: 1 },
];

pub(crate) static DEPLOYMENT: &[ColumnDefinition] = &[
    NAME,
    col("Ready", "string", d::READY_PODS),
    col("Up-to-date", "string", d::DEPLOY_UPDATED),
    col("Available", "string", d::DEPLOY_AVAILABLE),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", d::DEPLOY_SELECTOR),
];

pub(crate) static REPLICA_SET: &[ColumnDefinition] = &[
    NAME,
    col("Desired", "integer", d::RS_DESIRED),
    col("Current", "integer", d::RS_CURRENT),
    col("Ready", "integer", d::RS_READY),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", d::RS_SELECTOR),
];

pub(crate) static STATEFUL_SET: &[ColumnDefinition] =
    &[NAME, col("Ready", "string", d::READY_PODS), AGE, CONTAINERS, IMAGES];

pub(crate) static DAEMON_SET: &[ColumnDefinition] = &[
    NAME,
    col("Desired", "integer", d::DS_DESIRED),
    col("Current", "integer", d::DS_CURRENT),
    col("Ready", "integer", d::DS_READY),
    col("Up-to-date", "integer", d::DS_UPDATED),
    col("Available", "integer", d::DS_AVAILABLE),
    col("Node Selector", "string", d::DS_NODE_SELECTOR),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", d::DS_SELECTOR),
];

pub(crate) static CONTROLLER_REVISION: &[ColumnDefinition] =
    &[NAME, col("Controller", "string", d::CR_CONTROLLER), col("Revision", "string", d::CR_REVISION), AGE];

pub(crate) static JOB: &[ColumnDefinition] = &[
    NAME,
    col("Status", "string", d::JOB_STATUS),
    col("Completions", "string", d::JOB_SUCCEEDED),
    col("Duration", "string", d::JOB_DURATION),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", d::JOB_SELECTOR),
];

pub(crate) static CRON_JOB: &[ColumnDefinition] = &[
    NAME,
    col("Schedule", "string", d::CJ_SCHEDULE),
    col("Timezone", "string", d::CJ_TIMEZONE),
    col("Suspend", "boolean", d::CJ_SUSPEND),
    col("Active", "integer", d::CJ_ACTIVE),
    col("Last Schedule", "string", d::CJ_LAST_SCHEDULE),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", d::JOB_SELECTOR),
];

pub(crate) static POD_DISRUPTION_BUDGET: &[ColumnDefinition] = &[
    NAME,
    col("Min Available", "string", d::PDB_MIN_AVAILABLE),
    col("Max Unavailable", "string", d::PDB_MAX_UNAVAILABLE),
    col("Allowed Disruptions", "integer", d::PDB_ALLOWED),
    AGE,
];

pub(crate) static PRIORITY_CLASS: &[ColumnDefinition] = &[
    NAME,
    col("Value", "integer", d::PRIORITY_CLASS_VALUE),
    col("Global-Default", "boolean", d::PRIORITY_CLASS_GLOBAL_DEFAULT),
    AGE,
    col("PreemptionPolicy", "string", d::PRIORITY_CLASS_PREEMPTION_POLICY),
];

pub(crate) static LEASE: &[ColumnDefinition] = &[NAME, col("Holder", "string", d::LEASE_HOLDER), AGE];
