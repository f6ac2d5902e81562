//! The node agent (the kubelet): it registers this machine as a Node, keeps its Lease
//! and status fresh, and runs the pods bound to it in real containers through the
//! `runtime` crate, reporting their status back.
//!
//! Where to start reading:
//! - [`heartbeat`] registers the node ([`node`] builds what it writes) and renews its Lease.
//! - [`backoff`], [`env`] and [`quantity`] are pure helpers of the pod workers.

pub mod backoff;
pub mod container;
pub mod env;
pub mod etc;
pub mod heartbeat;
pub mod network;
pub mod node;
pub mod probe;
pub mod quantity;
pub mod status;
pub mod volumes;
