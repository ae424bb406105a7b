//! Which listener a request arrived on, and how a component learns it.
//!
//! The frontend has two listeners on the same instance: the **public** one (`listen`, the
//! store's API) and the **internal** one (`internal_listen`: cache invalidations from the
//! catalog, the host's ticks and scrapes). Its internal routes answer only on the internal one.
//!
//! The host tells the component by a request header, [`LISTENER_HEADER`], that it sets on every
//! request it forwards after removing any copy the client sent, so a client cannot forge it.
//! Under the stock `wasmtime serve` there is no host to vouch for that header: anyone can send
//! it. So a component trusts it only when its environment says the host marks requests
//! ([`InternalRoutes::Marked`], which the host sets); by default ([`InternalRoutes::Off`]) every
//! request counts as public, whatever it carries, and internal routes are unreachable.
//! [`InternalRoutes::On`] opens them to every request, for a stock `wasmtime serve` on a port
//! that only other services can reach.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The request header naming the listener a request arrived on (`public` or `internal`).
pub const LISTENER_HEADER: &str = "toystore-listener";

/// A listener of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Listener {
    /// The address clients use (the frontend's `listen`).
    Public,
    /// An address only other services and the host use (the frontend's `internal_listen`, and
    /// every listener of the catalog and the order replicas).
    Internal,
}

impl Listener {
    /// The value of [`LISTENER_HEADER`].
    pub fn as_str(self) -> &'static str {
        match self {
            Listener::Public => "public",
            Listener::Internal => "internal",
        }
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Listener {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "public" => Ok(Listener::Public),
            "internal" => Ok(Listener::Internal),
            other => Err(format!("`{other}` is not a listener (public or internal)")),
        }
    }
}

/// `INTERNAL_ROUTES`: who may use a component's internal routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InternalRoutes {
    /// Nobody (the default: the stock `wasmtime serve`, one port, possibly public).
    /// [`LISTENER_HEADER`] is ignored, since any client could have sent it.
    #[default]
    Off,
    /// Requests the host marked as arriving on an internal listener (`toystore serve` sets this
    /// and marks every request).
    Marked,
    /// Every request (a stock `wasmtime serve` on a port only other services can reach).
    On,
}

impl InternalRoutes {
    /// The listener a request counts as arriving on, given its [`LISTENER_HEADER`] value.
    /// Anything but a trusted, well-formed `internal` mark is public.
    pub fn listener(self, mark: Option<&str>) -> Listener {
        match self {
            InternalRoutes::Off => Listener::Public,
            InternalRoutes::On => Listener::Internal,
            InternalRoutes::Marked => match mark.map(str::parse) {
                Some(Ok(listener)) => listener,
                _ => Listener::Public,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_counts_only_when_the_host_is_said_to_set_it() {
        use InternalRoutes::*;
        use Listener::*;
        // The stock runtime: a forged mark changes nothing.
        assert_eq!(Off.listener(Some("internal")), Public);
        assert_eq!(Off.listener(None), Public);
        // Under the host: its mark decides; a missing or garbled one is public.
        assert_eq!(Marked.listener(Some("internal")), Internal);
        assert_eq!(Marked.listener(Some("public")), Public);
        assert_eq!(Marked.listener(None), Public);
        assert_eq!(Marked.listener(Some("Internal ")), Public);
        // Opened explicitly.
        assert_eq!(On.listener(None), Internal);
        assert_eq!(On.listener(Some("public")), Internal);
    }

    #[test]
    fn listener_names_round_trip() {
        for l in [Listener::Public, Listener::Internal] {
            assert_eq!(l.as_str().parse::<Listener>(), Ok(l));
        }
        assert!("both".parse::<Listener>().is_err());
    }
}
