//! Answering a request: route it, load the log on the first one, and hand it to the handler
//! of its route; `/health`, `/ping` and `/tick` are answered here. The state the handlers work
//! on is [`crate::node`]'s.

use std::rc::Rc;

use serde_json::json;
use toystore_guest::lock::DirAccess;
use toystore_api::ReplicaPing;
use toystore_guest::{Net, Reply, Request};

use crate::node::Service;
use crate::replicators::Deferred;
use crate::routes::Route;

impl<N: Net + 'static> Service<N> {
    /// Answer one request. Replicators this request started and that are still running are
    /// left for [`Self::after_reply`] as it returns (see [`crate::commit`]).
    pub async fn handle(self: &Rc<Self>, req: &Request) -> Reply {
        let deferred = Deferred::default();
        let reply = self.route(req, &deferred).await;
        self.defer(deferred);
        reply
    }

    async fn route(self: &Rc<Self>, req: &Request, deferred: &Deferred) -> Reply {
        let matched = self.routes.at(req);
        // The first request of any kind loads the local log (and cuts a torn tail). After that,
        // `/ping` and `/health` answer from memory — no lock, no file — so a replica busy
        // writing still answers its health checks at once; and under exclusive access memory is
        // the files, so only the steps that write or decide on the promise touch them.
        let from_memory = self.loaded()
            && (self.cfg.dir_access == DirAccess::Exclusive
                || matches!(&matched, Ok(m) if matches!(m.route, Route::Ping | Route::Health)));
        if !from_memory {
            if let Err(reply) = self.on_disk(|_, _| ()).await {
                return reply;
            }
        }
        let matched = match matched {
            Ok(m) => m,
            Err(reply) => return reply,
        };
        match matched.route {
            Route::Health => self.health(),
            Route::Ping => match crate::seed::ping_message(req) {
                Ok(message) => self.ping(message).await,
                Err(reply) => reply,
            },
            Route::PlaceOrder => self.place_order(req, deferred).await,
            Route::Order => self.get_order(matched.param("n")).await,
            Route::OrderByQuery => self.order_by_query(req).await,
            Route::Synchronize => self.synchronize().await,
            Route::LeaderSelection => self.leader_selection().await,
            Route::InformReplica => self.inform_replica(req),
            Route::Fence => self.fence(req).await,
            Route::ReplicateOrder => self.replicate_order(req).await,
            Route::LastOrderNumber => self.last_order_number().await,
            Route::MissedOrders => self.missed_orders(matched.param("n")).await,
            Route::Tick => self.tick().await,
            Route::Trap => panic!("order replica {}: trap requested via /debug/trap", self.cfg.id),
            // Burns CPU without ever calling the host, for the host's spin guard to cut.
            Route::Spin => loop {
                std::hint::black_box(());
            },
        }
    }

    fn health(&self) -> Reply {
        let s = self.state.borrow();
        Reply::ok(json!({
            "status": "ok", "id": self.cfg.id, "role": s.role().name(), "synced": s.synced(),
            "last": self.position().last,
        }))
    }

    /// `GET /ping`: healthy only once the start-up resync is done, so the frontend never makes
    /// a replica leader while it may still be missing orders its peers have. The seed's ping
    /// (`?message=Ping`) gets its `message` answer beside the store's fields.
    async fn ping(&self, message: Option<&str>) -> Reply {
        if !self.state.borrow().synced() {
            self.resync().await;
        }
        let s = self.state.borrow();
        if !s.synced() {
            return Reply::unavailable(format!("replica {} is still catching up with its peers", self.cfg.id));
        }
        let leader = s.named_leader();
        let last_order = self.read_log(|log| log.next_number() as i64 - 1).unwrap_or(-1);
        Reply::ok(ReplicaPing {
            id: self.cfg.id,
            leader,
            epoch: s.promised(),
            last: self.position().last,
            last_order,
            synced: true,
            role: s.role().ping_role(),
            message: message.map(str::to_string),
        })
    }

    /// `POST /tick`: finish the start-up resync if it is not done; a follower also checks
    /// whether a peer is ahead of it (it missed orders while slow) and catches up; a leader
    /// checks it still leads and pushes committed orders the catalog has not applied yet.
    async fn tick(&self) -> Reply {
        let (synced, follower, leader) = {
            let s = self.state.borrow();
            (s.synced(), s.is_follower(), s.is_leader())
        };
        if !synced {
            self.resync().await;
        } else if follower {
            self.follower_tick().await;
        } else if leader {
            self.leader_tick().await;
        }
        let s = self.state.borrow();
        Reply::ok(json!({ "synced": s.synced(), "role": s.role().name(), "last": self.position().last }))
    }
}
