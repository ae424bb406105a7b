//! The commands the `toystore` binary runs: their arguments ([`cli`]), `serve` ([`serve`]:
//! start every service of the manifest) and `replica` ([`replica`]: kill, restart, pause a
//! running host's services through its admin endpoint).

pub mod cli;
pub mod replica;
pub mod serve;
