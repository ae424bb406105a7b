//! Operations: the admin endpoint ([`admin`]), metrics (recorded by the serving path through
//! [`metrics`]' one-line hooks, completed from the components by [`scrape`]), the operations
//! page ([`page`]), pausing a service like SIGSTOP ([`pause`]) and the timer that ticks the
//! services ([`ticker`]).

pub mod admin;
pub mod metrics;
pub mod page;
pub mod pause;
pub mod scrape;
pub mod ticker;
