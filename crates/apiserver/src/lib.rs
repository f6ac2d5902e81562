//! The API server.

pub mod decode;
pub mod fieldmanager;
pub mod patch;
