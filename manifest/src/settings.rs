//! `[settings]`: the knobs of the components and of the host's timer, typed, with every default
//! here and nowhere else.

use serde::{Deserialize, Serialize};

/// The `[settings]` table of `toystore.toml`. A missing key takes its default; an unknown key
/// is an error (serde names it and lists the known ones).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The frontend caches product lookups.
    pub cache_enabled: bool,
    /// LRU entries of the frontend's cache (the default is smaller than the 10 toys, so
    /// eviction happens).
    pub cache_capacity: usize,
    /// Backstop age limit of a cache entry in seconds (0 = none), for invalidations lost while
    /// the frontend was unreachable.
    pub cache_ttl_secs: u64,
    /// How often the catalog restocks (0 = never by the clock).
    pub restock_interval_secs: u64,
    /// A toy with at most this many left is restocked...
    pub restock_threshold: u64,
    /// ...back to this many.
    pub restock_amount: u64,
    /// How often the host calls each component's `POST /tick`.
    pub tick_interval_ms: u64,
    /// How often the frontend pings the order leader.
    pub health_check_interval_ms: u64,
    /// Consecutive failed health checks after which the frontend drops its leader and selects
    /// again (a leader that refuses the connection or names another leader is dropped at
    /// once). A busy leader answers late, not never: one slow ping must not start a fail-over.
    pub leader_miss_limit: u32,
    /// Timeout of every call between services.
    pub call_timeout_ms: u64,
    /// Enables `POST /debug/trap`, which makes a component trap (for the tests only).
    pub debug_routes: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            cache_enabled: true,
            cache_capacity: 5,
            cache_ttl_secs: 30,
            restock_interval_secs: 10,
            restock_threshold: 10,
            restock_amount: 100,
            tick_interval_ms: 1000,
            health_check_interval_ms: 1000,
            leader_miss_limit: 3,
            call_timeout_ms: 2000,
            debug_routes: false,
        }
    }
}

impl Settings {
    /// The keys of `[settings]`, in declaration order. A unit test keeps this list equal to the
    /// struct's fields; components use it to pick their settings out of the environment.
    pub const KEYS: &'static [&'static str] = &[
        "cache_enabled",
        "cache_capacity",
        "cache_ttl_secs",
        "restock_interval_secs",
        "restock_threshold",
        "restock_amount",
        "tick_interval_ms",
        "health_check_interval_ms",
        "leader_miss_limit",
        "call_timeout_ms",
        "debug_routes",
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_the_fields() {
        let value = serde_json::to_value(Settings::default()).unwrap();
        let mut fields: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
        let mut keys = Settings::KEYS.to_vec();
        fields.sort_unstable();
        keys.sort_unstable();
        assert_eq!(fields, keys);
    }

    #[test]
    fn unknown_keys_are_named_with_the_known_ones() {
        let err = serde_json::from_str::<Settings>(r#"{"cache_capacty": 50}"#).unwrap_err().to_string();
        assert!(err.contains("cache_capacty"), "{err}");
        assert!(err.contains("cache_capacity") && err.contains("call_timeout_ms"), "{err}");
        let partial: Settings = serde_json::from_str(r#"{"cache_capacity": 50}"#).unwrap();
        assert_eq!(partial, Settings { cache_capacity: 50, ..Settings::default() });
    }
}
