//! The node agent. [`server`] is its streaming endpoint on the kubelet port: logs,
//! exec, attach and port-forward, reached by the API server only.

pub mod server;
