//! `toystore`: the one command users run. A thin shell: it parses the arguments and hands each
//! subcommand to the library that does the work, so the runtime (`toystore-host`) never links
//! the load client and its plotting, progress-bar and histogram crates, and the client never
//! links wasmtime.
//!
//! - `serve`, `replica`: [`toystore_host`];
//! - `client`, `eval`, `bench`, `check`: [`toystore_client`].

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(name = "toystore", version, about = "A toy store made of WebAssembly components, run under wasmtime")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the services of the manifest (all, or those of `--only` / `--host`) until Ctrl-C.
    Serve(toystore_host::ServeArgs),
    /// List, kill, restart, pause or resume order replicas (asking the host that runs each one).
    Replica(toystore_host::ReplicaArgs),

    /// The load client: look up random toys, order with probability `--prob`, verify every
    /// order at the end (exit status 1 on any mismatch).
    Client(toystore_client::ClientArgs),
    /// The seed's evaluation (5 clients, p = 0..0.8, cache on/off, a failure run) -> eval/.
    Eval(toystore_client::EvalArgs),
    /// Throughput, latency and memory, with ratios against a baseline measured in the same run.
    Bench(toystore_client::BenchArgs),
    /// Check a store's data directories (running or stopped; reads only): the replicas agree
    /// on their committed prefix, numbers are contiguous, keys unique, and the catalog's stock
    /// is conserved. Exit 0 all good, 1 a violation, 2 usage.
    Check(toystore_client::CheckArgs),
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let url_given = client_url_given(&matches);
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, url_given)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether `toystore client` was given `--url` on the command line (else the seed's `.env`, if
/// any, names the frontend).
fn client_url_given(matches: &ArgMatches) -> bool {
    matches.subcommand_matches("client").is_some_and(|m| m.value_source("url") == Some(ValueSource::CommandLine))
}

async fn run(command: Command, url_given: bool) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => {
            if let Err(e) = toystore_host::serve(&args.manifest, &args.selection()).await {
                // A wrong `--only` / `--host` is a usage error, like clap's own.
                if e.downcast_ref::<toystore_host::ManifestError>().is_some_and(toystore_host::ManifestError::is_usage) {
                    eprintln!("error: {e:#}");
                    return Ok(ExitCode::from(2));
                }
                return Err(e);
            }
        }
        Command::Replica(args) => toystore_host::replica(args).await?,
        Command::Client(mut args) => {
            if !url_given {
                let cwd = std::env::current_dir().context("cannot tell the current directory (to look for the seed's .env)")?;
                let from = toystore_client::load::seed_env::apply(&mut args, url_given, &cwd)
                    .context("reading the frontend's address from the seed's .env (give --url to skip it)")?;
                if let Some(file) = from {
                    eprintln!("toystore client: frontend {} from {}", args.url, file.display());
                }
            }
            return toystore_client::run_client(args).await;
        }
        Command::Eval(args) => return toystore_client::run_eval(args).await,
        Command::Bench(args) => return toystore_client::run_bench(args).await,
        Command::Check(args) => return toystore_client::run_check(args),
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

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use toystore_host::{ReplicaAction, ReplicaArgs, ServeArgs};

    #[test]
    fn only_a_url_on_the_command_line_counts_as_given() {
        let given = |args: &[&str]| client_url_given(&Cli::command().try_get_matches_from(args).unwrap());
        assert!(!given(&["toystore", "client"]));
        assert!(given(&["toystore", "client", "--url", "http://127.0.0.1:8080"]), "even the default's own value");
        assert!(given(&["toystore", "client", "--prob", "1", "--url=http://h:1"]));
        assert!(!given(&["toystore", "check", "--manifest", "m.toml"]));
    }

    #[test]
    fn parses_serve_and_replica_commands() {
        let cli = Cli::try_parse_from(["toystore", "serve", "--manifest", "/tmp/m.toml"]).unwrap();
        assert!(matches!(cli.command, Command::Serve(ServeArgs { ref manifest, .. }) if manifest == Path::new("/tmp/m.toml")));

        let cli = Cli::try_parse_from(["toystore", "serve", "--only", "catalog,order-1", "--only", "order-2"]).unwrap();
        let Command::Serve(args) = cli.command else { panic!("serve") };
        assert_eq!(args.selection(), toystore_host::Selection::Only(vec!["catalog".into(), "order-1".into(), "order-2".into()]));
        let cli = Cli::try_parse_from(["toystore", "serve", "--host", "b"]).unwrap();
        let Command::Serve(args) = cli.command else { panic!("serve") };
        assert_eq!(args.selection(), toystore_host::Selection::Host("b".into()));
        assert!(Cli::try_parse_from(["toystore", "serve", "--host", "b", "--only", "frontend"]).is_err());

        let cli = Cli::try_parse_from(["toystore", "replica", "kill", "2", "--admin", "127.0.0.1:9000"]).unwrap();
        let Command::Replica(args) = cli.command else { panic!("replica") };
        assert!(matches!(args.action, ReplicaAction::Kill { id: 2 }));
        assert_eq!(args.admin, Some("127.0.0.1:9000".parse().unwrap()));
        assert_eq!(args.manifest, PathBuf::from("toystore.toml"));

        let cli = Cli::try_parse_from(["toystore", "replica", "--admin", "127.0.0.1:9000", "list"]).unwrap();
        assert!(matches!(cli.command, Command::Replica(ReplicaArgs { action: ReplicaAction::List, .. })));
        assert!(Cli::try_parse_from(["toystore", "replica", "kill", "x"]).is_err());

        let cli = Cli::try_parse_from(["toystore", "replica", "pause", "2"]).unwrap();
        assert!(matches!(cli.command, Command::Replica(ReplicaArgs { action: ReplicaAction::Pause { id: 2 }, .. })));
        let cli = Cli::try_parse_from(["toystore", "replica", "resume", "3"]).unwrap();
        assert!(matches!(cli.command, Command::Replica(ReplicaArgs { action: ReplicaAction::Resume { id: 3 }, .. })));
    }

    #[test]
    fn parses_check() {
        let cli = Cli::try_parse_from(["toystore", "check", "--catalog", "c", "--replica", "a", "--replica", "b", "--json"]).unwrap();
        let Command::Check(args) = cli.command else { panic!("check") };
        assert_eq!((args.catalog, args.replica, args.json, args.strict), (Some("c".into()), vec!["a".into(), "b".into()], true, false));
        let cli = Cli::try_parse_from(["toystore", "check", "--manifest", "m.toml", "--quiet-point"]).unwrap();
        let Command::Check(args) = cli.command else { panic!("check") };
        assert!(args.strict && args.manifest == Some("m.toml".into()));
    }
}
