//! HTTP in and out, below everything else: the response and body types ([`body`]), the host's
//! own JSON replies ([`reply`]), the check of every request head ([`head`]), the listener
//! marker ([`marker`]), the accept loop ([`listener`]), and a guest's outgoing calls: through
//! the pooled client ([`outgoing`]) or handed over in process ([`directory`]), with the same
//! timeouts either way ([`call_timeouts`]). Nothing here knows about instances or services.

pub mod body;
pub mod call_timeouts;
pub mod directory;
pub mod head;
pub mod listener;
pub mod marker;
pub mod outgoing;
pub mod reply;
