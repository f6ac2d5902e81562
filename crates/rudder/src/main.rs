//! `rudder`: one binary for the control plane and its tools. Each verb lives in its
//! own module; `main` parses the command line, sets up logging and runs the verb.

mod agent;
mod cluster_dns;
mod image;
mod join;
mod kubeconfig;
mod residency;
mod server;
mod shim;
mod sim;

use clap::{Parser, Subcommand, ValueEnum};

/// The API server allocates and frees many small objects per request (JSON trees):
/// with glibc's malloc a third of the server's CPU went to malloc and free under
/// load. With mimalloc, same code and run conditions, a create costs 0.090 instead
/// of 0.135 ms of server CPU and the scheduler benchmark binds 887 instead of 595
/// pods/s (BENCHMARKS.md). Built without transparent huge pages (`no_thp`), which
/// otherwise doubled the idle server's RSS.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "rudder", version, about = "A container orchestrator that speaks the Kubernetes API")]
struct Cli {
    /// Log format: human-readable text or JSON lines.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane and an agent for this node.
    Server(server::Args),
    /// Join a cluster as a node and run the pods bound to it.
    Agent(agent::Args),
    /// Print an admin kubeconfig for the cluster in a data dir.
    Kubeconfig(kubeconfig::Args),
    /// Simulate nodes that heartbeat and report their pods Running, for scale tests.
    Sim(sim::Args),
    /// Import, list and pull the images of this node.
    Image(image::Args),
    /// The per-container log shim the runtime starts (not for people).
    #[command(hide = true)]
    Shim(shim::Args),
}

fn main() -> anyhow::Result<()> {
    // A shim starts with every container: it goes before the whole command line's
    // parser is built (most of a shim's start-up, measured), as `rudder shim ...`
    // is how the runtime starts it.
    let mut args = std::env::args_os();
    if args.nth(1).is_some_and(|a| a == "shim") {
        std::process::exit(shim::run_args(args.collect()));
    }
    let cli = Cli::parse();
    if let Command::Shim(args) = &cli.command {
        std::process::exit(shim::run(args));
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    // The simulated nodes' work is small and evenly spread: on one thread it is not
    // handed between workers (waking and parking them cost it more than its work).
    let runtime = match cli.command {
        Command::Sim(_) => tokio::runtime::Builder::new_current_thread().enable_all().build()?,
        _ => tokio::runtime::Builder::new_multi_thread().enable_all().build()?,
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Server(args) => server::run(args).await,
            Command::Agent(args) => agent::run(args).await,
            Command::Kubeconfig(args) => kubeconfig::run(args),
            Command::Sim(args) => sim::run(args).await,
            Command::Image(args) => image::run(args).await,
            // Run before any of this, above.
            Command::Shim(_) => Ok(()),
        }
    })
}
