//! Validation as upstream does it for the served kinds: names, labels, annotations,
//! required and immutable fields. Every failure is a [`Cause`] naming its field.

mod names;

pub use names::*;
