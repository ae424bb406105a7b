//! `toystore`: the host that runs the toy store's WebAssembly components under wasmtime, and
//! the command-line tools around it.
//!
//! Reading order, from the socket to the guest and back:
//! - [`manifest`]: what to run (`toystore.toml`), parsed and validated;
//! - [`runtime`]: the shared wasmtime engine, linker and compiled components;
//! - [`service`]: one service's lifecycle (start, kill, restart, stop);
//! - [`server`]: the hyper listener that turns requests into jobs;
//! - [`supervisor`]: keeps one instance alive, restarting it after a trap;
//! - [`instance`]: one instance serving many jobs concurrently (`run_concurrent`);
//! - [`outgoing`]: how a component's outgoing HTTP calls are sent (a pooled client);
//! - [`ticker`], [`admin`], [`datadir`], [`reply`]: the timer, the admin endpoint, data
//!   directories and the host's own JSON replies;
//! - [`cli`], [`serve`], [`replica_cli`]: the commands.

mod admin;
mod cli;
mod datadir;
mod head;
mod instance;
mod manifest;
mod outgoing;
mod replica_cli;
mod reply;
mod runtime;
mod serve;
mod server;
mod service;
mod spin;
mod supervisor;
mod ticker;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => serve::serve(&args.manifest).await?,
        Command::Replica(args) => replica_cli::run(args).await?,
        Command::Client(args) => return toystore_client::run_client(args).await,
        Command::Eval(args) => return toystore_client::run_eval(args).await,
        Command::Bench(args) => return toystore_client::run_bench(args).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// Log to stderr; the filter comes from `TOYSTORE_LOG`, else `RUST_LOG`, else `info`.
fn init_tracing() {
    let filter = std::env::var("TOYSTORE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|spec| EnvFilter::try_new(spec).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    // Colours only on a terminal: logs are often redirected to files (tests, CI).
    let ansi = std::io::stderr().is_terminal();
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
}
