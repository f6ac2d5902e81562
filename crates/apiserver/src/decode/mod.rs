pub mod protobuf;

pub use protobuf::{DecodeError, decode};
