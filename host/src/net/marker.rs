//! The listener marker: which of a service's listeners a request arrived on, in a header only
//! the host sets. The frontend tells its public listener from its internal one by it, so a
//! client must never be able to supply it.

use toystore_manifest::resolve::Listener;

/// Mark a request as arriving on `listener`: every copy of the marker header a client may have
/// sent is removed, then the host's own is set. Components trust only this one (see
/// `toystore_manifest::listener`).
pub fn mark(headers: &mut http::HeaderMap, listener: Listener) {
    headers.remove(toystore_manifest::LISTENER_HEADER);
    headers.insert(toystore_manifest::LISTENER_HEADER, http::HeaderValue::from_static(listener.as_str()));
}
