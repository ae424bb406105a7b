//! toystore-client: the load client, the seed's evaluation and the benchmark.
//!
//! The `toystore` host binary owns `main`; its `client`, `eval`, `bench` and `check`
//! subcommands take [`ClientArgs`], [`EvalArgs`], [`BenchArgs`] and [`CheckArgs`] and call
//! [`run_client`], [`run_eval`], [`run_bench`] and [`run_check`] (the data-directory fsck). Tests use [`run`] (a [`Report`] with the verification result, nothing printed).

pub mod args;
pub mod bench;
pub mod call;
pub mod check;
pub mod conn;
pub mod eval;
pub mod hostproc;
pub mod hostspeed;
pub mod plot;
pub mod report;
pub mod run;
pub mod seed_env;
pub mod session;
pub mod stats;
pub mod verify;

#[cfg(test)]
mod fake;

pub use args::{BenchArgs, ClientArgs, EvalArgs, HostArgs, SEED_TOYS};
pub use bench::run_bench;
pub use check::{run_check, CheckArgs};
pub use eval::run_eval;
pub use report::Report;
pub use run::{run, run_client, run_load, verify_orders};
pub use seed_env::SeedEnvError;
pub use stats::{Kind, Summary};
pub use verify::{PlacedOrder, Problem, Verification};
