//! The state the per-follower replicators share (which are running, whether our own batch is
//! being fsync'd, the work left for after a reply, the progress signal orders wait on). The
//! replicators themselves, and the wait for a majority, are [`crate::commit`].

use std::cell::RefCell;
use std::collections::HashSet;

use futures::future::LocalBoxFuture;
use tokio::sync::watch;

/// Work a request leaves to be driven after its reply (see the module docs).
pub(crate) type Deferred = RefCell<Vec<LocalBoxFuture<'static, ()>>>;

/// The replicators' shared bookkeeping, owned by the node ([`crate::node::Service`]); what
/// they do with it is [`crate::commit`]'s.
pub(crate) struct Replicators {
    /// Followers with a replicator running (at most one each).
    pub(crate) running: RefCell<HashSet<u32>>,
    /// A batch of ours is being fsync'd (`order.rs`): the commit index may still move with it.
    pub(crate) syncing: std::cell::Cell<bool>,
    /// Replicators whose request already answered, to be driven after its reply.
    pub(crate) leftover: RefCell<Vec<LocalBoxFuture<'static, ()>>>,
    /// Bumped whenever a follower's match index, the commit index, a suspect mark or the set of
    /// running replicators changes: what waiting orders watch.
    pub(crate) progress: watch::Sender<()>,
}

impl Replicators {
    pub(crate) fn new() -> Replicators {
        Replicators { running: RefCell::new(HashSet::new()), syncing: std::cell::Cell::new(false), leftover: RefCell::new(Vec::new()), progress: watch::Sender::new(()) }
    }

    pub(crate) fn progressed(&self) {
        self.progress.send_replace(());
    }

    /// Mark our own fsync of a batch as under way until the guard is dropped.
    pub(crate) fn syncing(&self) -> Syncing<'_> {
        self.syncing.set(true);
        Syncing(self)
    }
}

/// Our own fsync of a batch is under way while this lives.
pub(crate) struct Syncing<'a>(&'a Replicators);

impl Drop for Syncing<'_> {
    fn drop(&mut self) {
        self.0.syncing.set(false);
        self.0.progressed();
    }
}

