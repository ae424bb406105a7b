//! The arguments of the host's commands (`toystore serve`, `toystore replica ...`); the
//! `toystore` binary (`cli/`) puts them next to the client's.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The manifest to run.
    #[arg(long, default_value = "toystore.toml")]
    pub manifest: PathBuf,
    /// Run only these services (`frontend`, `catalog`, `order-1`, ...); the others are reached
    /// at their manifest addresses, on whichever machine runs them.
    #[arg(long, value_delimiter = ',', num_args = 1.., conflicts_with = "host")]
    pub only: Vec<String>,
    /// Run the services of this `[[host]]` of the manifest, with its admin address.
    #[arg(long)]
    pub host: Option<String>,
}

impl ServeArgs {
    /// What part of the manifest this process runs.
    pub fn selection(&self) -> toystore_manifest::resolve::Selection {
        use toystore_manifest::resolve::Selection;
        match (&self.host, self.only.is_empty()) {
            (Some(host), _) => Selection::Host(host.clone()),
            (None, false) => Selection::Only(self.only.clone()),
            (None, true) => Selection::All,
        }
    }
}

#[derive(Debug, Args)]
pub struct ReplicaArgs {
    #[command(subcommand)]
    pub action: ReplicaAction,
    /// Address of the host's admin endpoint (default: from the manifest, the `[[host]]` that
    /// runs the replica, or every host for `list`; without host tables, `admin`).
    #[arg(long, global = true)]
    pub admin: Option<SocketAddr>,
    /// Manifest to read the admin addresses from.
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
    /// Freeze a replica like SIGSTOP: it keeps its port but answers nothing until resumed.
    Pause { id: u32 },
    /// Let a paused replica continue where it stopped.
    Resume { id: u32 },
}

