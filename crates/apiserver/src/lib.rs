//! The API server.

pub mod decode;
