//! The load client (`toystore client`): sessions in the seed's pattern (look up a toy, order
//! with probability p), each request over a keep-alive connection ([`conn`]) with retries
//! ([`call`]), counted ([`stats`]), then every acknowledged order read back and checked
//! ([`verify`]), summed up in a [`report::Report`]; [`run`] ties it together.

pub mod call;
pub mod conn;
pub mod report;
pub mod run;
pub mod seed_env;
pub mod session;
pub mod stats;
pub mod verify;
