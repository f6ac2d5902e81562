//! The container runtime under the agent. It knows nothing about the Kubernetes API:
//! the agent asks it for images, root filesystems and containers.
//!
//! Where to start reading:
//! - [`distribution::Puller`] pulls an image ([`reference::Reference`]) from a registry
//!   (mirrors and credentials from [`registries::RegistryConfig`]) into the
//!   content-addressed [`images::ImageStore`]; [`import`] reads image archives into it;
//!   [`policy`] decides when to pull.
//! - [`snapshot::Snapshotter`] unpacks layers once each ([`unpack`], whiteouts as
//!   overlayfs wants them) and [`snapshot::mount_rootfs`] stacks them for a container.
//! - [`spec::generate`] turns what the agent wants into an OCI runtime spec.
//! - [`container::Runtime`] is the narrow contract with the OCI runtime;
//!   [`runc::Runc`] drives the real runc, with a log [`shim`] per container that writes
//!   the CRI log file and the exit status, and outlives the agent. A start is
//!   announced with [`container::Runtime::warm_up`], so that the kernel's cgroup
//!   attach lock ([`attach_lock`]) is paid for while the agent still prepares.
//!
//! On disk, under the data dir: `images/` (blobs and index), `snapshots/<chainID>/fs`,
//! `runc/` (runc's state); bundles and log files go where the caller says.

pub mod attach_lock;
pub mod auth;
pub mod container;
pub mod digest;
pub mod distribution;
pub mod images;
pub mod import;
pub mod launcher;
pub mod logfile;
pub mod oci;
pub mod policy;
pub mod recording;
pub mod reference;
pub mod registries;
pub mod runc;
pub mod sandbox;
pub mod shim;
pub mod snapshot;
pub mod spec;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transport;
pub mod unpack;

pub use container::{
    AttachIo, ContainerState, CreateOptions, ExecOptions, ExecProcess, ExitStatus, Resizer, Runtime, RuntimeError,
    Status,
};
pub use digest::Digest;
pub use distribution::{PullError, Puller};
pub use images::{Image, ImageStore};
pub use reference::Reference;
pub use registries::{Credentials, RegistryConfig};
