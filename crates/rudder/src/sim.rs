//! `rudder sim`: simulated nodes for scale tests and benchmarks (see the `sim` crate).
//! They join like an agent, with the server URL and the node token.

use crate::join;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// The API server, e.g. https://10.0.0.1:6443.
    #[arg(long)]
    server: String,
    /// The join token (DATA_DIR/node-token on the server).
    #[arg(long)]
    token: String,
    /// How many nodes to simulate.
    #[arg(long)]
    nodes: usize,
    /// Node names are PREFIX-0 … PREFIX-(N-1).
    #[arg(long, default_value = "sim")]
    prefix: String,
    /// Each node's CPU capacity.
    #[arg(long, default_value = "8")]
    cpu: String,
    /// Each node's memory capacity.
    #[arg(long, default_value = "32Gi")]
    memory: String,
    /// How many pods each node takes.
    #[arg(long, default_value_t = 110)]
    pods: u32,
    /// How often each node renews its Lease (e.g. 2s, 500ms).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    heartbeat: Duration,
    /// The most API requests in flight at once (besides the pod watch).
    #[arg(long, default_value_t = 64)]
    max_in_flight: usize,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    ::sim::parse_duration(s).map_err(|e| e.to_string())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let opts = ::sim::Options {
        nodes: args.nodes,
        prefix: args.prefix,
        cpu: args.cpu,
        memory: args.memory,
        pods: args.pods,
        heartbeat: args.heartbeat,
        max_in_flight: args.max_in_flight,
        ..::sim::Options::default()
    };
    opts.validate()?;
    let (client, _ca) = join::client(&args.server, &args.token, "rudder-sim").await?;
    tokio::select! {
        result = ::sim::run(client, opts) => result?,
        () = crate::server::shutdown_signal() => {
            // Nodes that die do not deregister: leave them to go NotReady.
            tracing::info!("stopping; the simulated nodes stop heartbeating");
        }
    }
    Ok(())
}
