//! The API server.

pub mod decode;
pub mod patch;
