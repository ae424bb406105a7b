//! toystore-client: the store's client-side products, one module each: the load client
//! ([`load`]), the seed's evaluation ([`eval`]), the benchmark ([`bench`]), the data-directory
//! fsck ([`check`]), and the harness that starts a real host process for them and the tests
//! ([`hostproc`]); [`args`] holds their command-line flags.
//!
//! The `toystore` host binary owns `main`; its `client`, `eval`, `bench` and `check`
//! subcommands take [`ClientArgs`], [`EvalArgs`], [`BenchArgs`] and [`CheckArgs`] and call
//! [`run_client`], [`run_eval`], [`run_bench`] and [`run_check`] (the data-directory fsck). Tests use [`run`] (a [`Report`] with the verification result, nothing printed).

pub mod args;
pub mod bench;
pub mod check;
pub mod eval;
pub mod hostproc;
pub mod load;

#[cfg(test)]
mod fake;

pub use args::{BenchArgs, ClientArgs, EvalArgs, HostArgs, SEED_TOYS};
pub use bench::run_bench;
pub use check::{run_check, CheckArgs};
pub use eval::run_eval;
pub use load::report::Report;
pub use load::run::{run, run_client, run_load, verify_orders};
pub use load::seed_env::SeedEnvError;
pub use load::stats::{Kind, Summary};
pub use load::verify::{PlacedOrder, Problem, Verification};
