//! The scheduler: places every pending pod on the best healthy node.
//!
//! Start with [`core`], the pure decision ([`core::Scheduler::schedule`] over a
//! [`core::Snapshot`]: filter, score, choose; and preemption), tested with plain
//! data. [`shell`] keeps that snapshot current from watches, queues pending pods
//! by priority with backoff, and binds through `pods/binding`; [`run`] starts it.

pub mod core;
pub mod shell;

pub use shell::run;
