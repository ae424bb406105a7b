//! Command-line interface of the `toystore` binary.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "toystore", version, about = "A toy store made of WebAssembly components, run under wasmtime")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every service of the manifest (frontend, catalog, order replicas) until Ctrl-C.
    Serve(ServeArgs),
    /// List, kill or restart the order replicas of a running `toystore serve`.
    Replica(ReplicaArgs),

    /// The load client: look up random toys, order with probability `--prob`, verify every
    /// order at the end (exit status 1 on any mismatch).
    Client(toystore_client::ClientArgs),
    /// The seed's evaluation (5 clients, p = 0..0.8, cache on/off, a failure run) -> eval/.
    Eval(toystore_client::EvalArgs),
    /// Throughput, latency and memory, with ratios against a baseline measured in the same run.
    Bench(toystore_client::BenchArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The manifest to run.
    #[arg(long, default_value = "toystore.toml")]
    pub manifest: PathBuf,
}

#[derive(Debug, Args)]
pub struct ReplicaArgs {
    #[command(subcommand)]
    pub action: ReplicaAction,
    /// Address of the host's admin endpoint (default: `admin` from the manifest).
    #[arg(long, global = true)]
    pub admin: Option<SocketAddr>,
    /// Manifest to read the admin address from.
    #[arg(long, global = true, default_value = "toystore.toml")]
    pub manifest: PathBuf,
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub enum ReplicaAction {
    /// Show each replica's state, crash count and who leads.
    List,
    /// Stop a replica abruptly (listener closed, in-flight requests cut).
    Kill { id: u32 },
    /// Start a fresh instance of a replica on its port and data directory.
    Restart { id: u32 },
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_serve_and_replica_commands() {
        let cli = Cli::try_parse_from(["toystore", "serve", "--manifest", "/tmp/m.toml"]).unwrap();
        assert!(matches!(cli.command, Command::Serve(ServeArgs { manifest }) if manifest == std::path::Path::new("/tmp/m.toml")));

        let cli = Cli::try_parse_from(["toystore", "replica", "kill", "2", "--admin", "127.0.0.1:9000"]).unwrap();
        let Command::Replica(args) = cli.command else { panic!("replica") };
        assert!(matches!(args.action, ReplicaAction::Kill { id: 2 }));
        assert_eq!(args.admin, Some("127.0.0.1:9000".parse().unwrap()));
        assert_eq!(args.manifest, PathBuf::from("toystore.toml"));

        let cli = Cli::try_parse_from(["toystore", "replica", "--admin", "127.0.0.1:9000", "list"]).unwrap();
        assert!(matches!(cli.command, Command::Replica(ReplicaArgs { action: ReplicaAction::List, .. })));
        assert!(Cli::try_parse_from(["toystore", "replica", "kill", "x"]).is_err());
    }
}
