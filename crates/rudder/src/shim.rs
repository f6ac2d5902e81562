//! `rudder shim`: the per-container log shim the runc driver starts (hidden; see
//! `runtime::shim`). It holds the container's output pipes, writes the CRI log file
//! and the exit status, and outlives the agent.

use std::ffi::OsString;

#[derive(clap::Args)]
pub struct Args {
    /// The shim's flags, parsed by the runtime crate so that driver and shim agree.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

/// Runs the shim and returns its exit code (the caller exits with it, before any
/// async runtime or logging is set up: the shim needs neither).
pub fn run(args: &Args) -> i32 {
    run_args(args.args.clone())
}

/// [`run`] over the arguments after `shim` (`--launcher` makes it the shim launcher).
pub fn run_args(args: Vec<OsString>) -> i32 {
    runtime::shim::main(args)
}
