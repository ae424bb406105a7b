//! `GET /orders/<n>`: answered only by a leader, and only with what is committed
//! (ARCHITECTURE.md, "Reads"). The decision is [`decide_read`]; this file does the one network
//! round it may ask for.

use futures::future::join_all;
use http::Method;
use toystore_guest::{api, Net, Reply};

use crate::protocol::Status;
use crate::replica::{decide_read, tally_confirm, Confirmation, ReadDecision};
use crate::node::Service;

impl<N: Net + 'static> Service<N> {
    pub(crate) async fn get_order(&self, n: &str) -> Reply {
        let Ok(n) = n.parse::<i64>() else { return Reply::bad_request(format!("order number must be an integer, got {n:?}")) };
        // No order ever has a negative number, whoever leads.
        let Ok(n) = u64::try_from(n) else { return Reply::not_found(format!("order {n} not found")) };
        let mut confirmed = None;
        // At most two rounds: a second confirmation is needed only if we renewed meanwhile.
        for _ in 0..2 {
            let view = self.state.borrow().read_view();
            // Where order `n` is in our log; past the end if we do not hold it.
            let index = self.read_log(|log| log.index_of(n).unwrap_or((log.last() + 1) as u64)).unwrap_or(0);
            match decide_read(view, index, confirmed) {
                ReadDecision::Answer => return self.committed_order(n),
                ReadDecision::NotLeader => return self.not_leader(),
                ReadDecision::Absent => return Reply::not_found(format!("order {n} not found")),
                ReadDecision::ConfirmLeadership(epoch) => match self.confirm_leadership(epoch).await {
                    Confirmation::Leading => confirmed = Some(epoch),
                    Confirmation::Superseded(newer) => {
                        self.state.borrow_mut().observe_promise(newer);
                        return self.not_leader();
                    }
                    Confirmation::Unsure => {
                        return Reply::unavailable(format!(
                            "cannot tell whether order {n} exists: no majority of replicas answered"
                        ))
                    }
                },
            }
        }
        Reply::unavailable("leadership changed during the read; retry")
    }

    /// Order `n`, which the decision found committed, with the unit price it was admitted at.
    fn committed_order(&self, n: u64) -> Reply {
        match self.read_log(|log| log.order(n).map(|(_, o)| o)).flatten() {
            Some(o) => Reply::ok(api::order_data(o.number, &o.name, o.quantity, o.price_number())),
            // A committed entry is in the leader's log; reaching this is a bug, not a 404.
            None => Reply::internal(format!("order {n} is committed but missing from the local log")),
        }
    }

    /// One round to the peers asking what they promised (`/get_last_order_number`, which
    /// promises nothing): do a majority still not know of an epoch newer than ours?
    pub(crate) async fn confirm_leadership(&self, epoch: u64) -> Confirmation {
        let peers = self.cfg.peers();
        let asks = peers.iter().map(|p| async move {
            let url = format!("{}/get_last_order_number", p.url);
            match self.net.call(Method::GET, &url, None, self.cfg.timeout).await {
                Ok(r) if r.is_success() => r.data::<Status>().ok().map(|st| st.epoch),
                _ => None,
            }
        });
        let promised = join_all(asks).await;
        tally_confirm(epoch, &promised, self.cfg.majority())
    }
}
