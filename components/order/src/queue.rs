//! The group-commit queue's items: an order waiting to be numbered in the next batch, and where
//! it ended up. The batching itself is [`crate::order`]'s.

use futures::channel::oneshot;
use toystore_guest::Reply;

use crate::admission::Admission;
use crate::log::Order;
use crate::protocol::NewOrder;

/// An order waiting in the queue for the next batch, and where its slot is to be sent.
pub(crate) struct Ticket {
    pub(crate) order: NewOrder,
    pub(crate) slot: oneshot::Sender<Result<Slot, Reply>>,
}

/// Where an order ended up in its batch.
#[derive(Debug, Clone)]
pub(crate) enum Slot {
    /// A new order record at `index`, numbered `number`, in `epoch`.
    New { epoch: u64, index: u64, number: u64 },
    /// The key is already in the log (maybe not committed yet) at `index`, in the leadership
    /// of `epoch`.
    Existing { epoch: u64, index: u64, order: Order },
    /// The stock view said no (or could not tell): nothing was written for it.
    Refused(Admission),
}

