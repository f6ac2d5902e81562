//! The Kubernetes API vocabulary, without I/O.
//!
//! Start with [`registry`], the table of served resources. [`schema`] holds the
//! structural schemas compacted from the upstream OpenAPI documents; [`selector`]
//! parses and matches label and field selectors; [`status`] turns failures into
//! `Status` objects; [`defaults`] fills in what upstream's scheme defaults, and
//! [`validation`] holds upstream's name and field rules; [`table`] computes the
//! columns and rows `kubectl get` prints. [`cron`] reads CronJob schedules for both
//! validation and the CronJob controller.

pub mod convert;
pub mod cron;
pub mod defaults;
pub mod fields;
pub mod project;
pub mod registry;
pub mod rootca;
pub mod schema;
pub mod selector;
pub mod status;
pub mod table;
pub mod time;
pub mod validation;

pub use registry::{Resource, Subresource};
pub use status::{ApiError, Cause};
