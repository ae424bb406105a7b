//! The seed document's own requests to an order replica, where they differ from the store's:
//! `GET /ping?message=Ping` (its health check), `GET /synchronize` (a follower catches up; the
//! answer names the latest order number) and `GET /orders?<order_number>` (how its frontend
//! asks for an order). README, "The seed's API, route by route".

use serde_json::json;
use toystore_guest::{Net, Reply, Request};

use crate::node::Service;

/// What the seed's `/ping` answers when the check passes.
pub const PING_ANSWER: &str = "Order service is responsive";

/// The seed's ping carries `message=Ping`; the store's own pings carry no `message`. Any other
/// `message` is a caller that meant something else: 400, and nothing happens.
pub(crate) fn ping_message(req: &Request) -> Result<Option<&'static str>, Reply> {
    match req.query_value(&["message"]) {
        None => Ok(None),
        Some(m) if m == "Ping" => Ok(Some(PING_ANSWER)),
        Some(m) => Err(Reply::bad_request(format!("`message` must be \"Ping\", got {m:?}"))),
    }
}

impl<N: Net + 'static> Service<N> {
    /// `GET /synchronize`: a follower catches up now with the most up-to-date reachable peer
    /// (what its tick does anyway, here on the caller's request and waited for); a replica
    /// still starting first finishes its start-up resync; a leader's log is the one the others
    /// copy, so it only answers. The answer is the replica's position afterwards, with
    /// `last_order`, the number of the latest order in its log (-1: none).
    pub(crate) async fn synchronize(&self) -> Reply {
        let (synced, follower) = {
            let s = self.state.borrow();
            (s.synced(), s.is_follower())
        };
        if !synced {
            self.resync().await;
        } else if follower {
            let caught_up = {
                let _one_at_a_time = self.sync_lock.lock().await;
                self.catch_up().await
            };
            if !caught_up {
                return Reply::unavailable(format!(
                    "replica {} could not copy the log of a peer that is ahead; retry",
                    self.cfg.id
                ));
            }
        }
        let s = self.state.borrow();
        if !s.synced() {
            return Reply::unavailable(format!("replica {} is still catching up with its peers", self.cfg.id));
        }
        let last_order = self.read_log(|log| log.next_number() as i64 - 1).unwrap_or(-1);
        Reply::ok(json!({
            "id": self.cfg.id, "role": s.role().name(), "synced": true, "last": self.position().last,
            "last_order": last_order,
        }))
    }

    /// `GET /orders?<n>` (or `?order_number=` / `?number=`): `GET /orders/<n>`.
    pub(crate) async fn order_by_query(&self, req: &Request) -> Reply {
        match req.query_value(&["order_number", "number"]) {
            Some(n) => self.get_order(&n).await,
            None => Reply::bad_request("name the order: /orders?<number>, /orders?order_number=<n> or /orders/<n>"),
        }
    }
}

#[cfg(test)]
mod tests {
    use http::Method;

    use super::*;

    #[test]
    fn only_ping_is_the_seeds_message() {
        let ping = |pq: &str| ping_message(&Request::new(Method::GET, pq, ""));
        assert_eq!(ping("/ping").unwrap(), None, "the store's own ping");
        assert_eq!(ping("/ping?x=1").unwrap(), None);
        assert_eq!(ping("/ping?message=Ping").unwrap(), Some(PING_ANSWER));
        assert_eq!(ping("/ping?id=3&message=Ping").unwrap(), Some(PING_ANSWER));
        assert_eq!(ping("/ping?Ping").unwrap(), Some(PING_ANSWER), "a bare query is the message");
        for bad in ["/ping?message=ping", "/ping?message=Pong", "/ping?message=Ping%20", "/ping?Pong"] {
            let r = ping(bad).unwrap_err();
            assert_eq!(r.status, 400, "{bad}");
            assert!(r.error_message().unwrap_or("").contains("must be \"Ping\""), "{bad}: {:?}", r.body);
        }
    }
}
