//! What every toystore component shares.
//!
//! A component's logic is written against the plain types here ([`Request`], [`Reply`], the
//! [`Net`] trait) so that it compiles and unit-tests natively; only [`wasi`] (built for
//! `wasm32` alone) touches the WASI 0.3 bindings. A component's WASI entry is one line,
//! [`export_service!`]: it turns each WASI request into a [`Request`], calls the service, and
//! turns the [`Reply`] back. Each service routes through one [`Router`] table, which decides
//! 404 vs 405 and decodes path parameters for all of them alike.
//!
//! Durability lives in [`durable`] and [`lock`]: the files in a component's data directory are
//! the truth, guest memory is only a cache, and writers from any number of instances are
//! serialised through a lock file in that directory.

pub mod durable;
pub mod item;
pub mod lock;
pub mod net;
pub mod reply;
pub mod request;
pub mod router;
pub mod settings;
pub mod sync;
pub mod time;

#[cfg(target_arch = "wasm32")]
pub mod wasi;

/// The JSON envelope every body uses (`toystore-api`), re-exported so components need no
/// dependency of their own.
pub use toystore_api as api;
pub use item::ItemRequest;
pub use net::{CallError, Net, NetResponse};
pub use reply::Reply;
pub use request::{Listener, Request};
pub use reply::StaticPage;
pub use router::{Matched, Router, Visibility};

/// Work a service hands [`export_service!`] to run after its reply has been sent.
pub type AfterReply = ::std::pin::Pin<Box<dyn ::std::future::Future<Output = ()>>>;

/// The bindings, for [`export_service!`]'s expansion (components need no direct dependency).
#[doc(hidden)]
pub use wasip3;

/// Export a service as the component's `wasi:http/handler`: one line per component, e.g.
///
/// ```ignore
/// toystore_guest::export_service!(Frontend<toystore_guest::wasi::WasiNet> =
///     Frontend::new(Config::from_env(), toystore_guest::wasi::WasiNet));
/// ```
///
/// The service is built once per instance, on its first request, and lives as long as the
/// instance (its caches and in-memory state serve every later request). It needs an inherent
/// `async fn handle(&self, &Request) -> Reply`. A request that cannot be read (too large,
/// malformed) is answered with its error reply without reaching the service. Expands to
/// nothing except on wasm32, so the crate still builds and tests natively.
///
/// A service that also serves a fixed non-JSON document (the frontend's storefront page) names
/// a `fn(&Request) -> Option<StaticPage>` after `pages =`; it is asked first, so such documents
/// never pass through the JSON envelope:
///
/// ```ignore
/// toystore_guest::export_service!(Frontend<WasiNet> = Frontend::new(..), pages = storefront::page);
/// ```
///
/// Work that must not hold up the reply (the catalog's invalidations to the frontend) is named
/// after `after_reply =`: a `fn(Rc<Service>) -> Option<AfterReply>` asked once the reply is
/// ready; the future it returns is spawned and runs after the response has gone out (the
/// component-model task outlives its return value), driven by the same long-lived instance:
///
/// ```ignore
/// toystore_guest::export_service!(Catalog<WasiNet> = Catalog::new(..), after_reply = Catalog::after_reply);
/// ```
#[macro_export]
macro_rules! export_service {
    ($service:ty = $make:expr) => {
        $crate::export_service!($service = $make, pages = |_| None, after_reply = |_| None);
    };
    ($service:ty = $make:expr, pages = $pages:expr) => {
        $crate::export_service!($service = $make, pages = $pages, after_reply = |_| None);
    };
    ($service:ty = $make:expr, after_reply = $after:expr) => {
        $crate::export_service!($service = $make, pages = |_| None, after_reply = $after);
    };
    ($service:ty = $make:expr, pages = $pages:expr, after_reply = $after:expr) => {
        #[cfg(target_arch = "wasm32")]
        mod __toystore_entry {
            #[allow(unused_imports)]
            use super::*;
            use $crate::wasip3::http::types::{ErrorCode, Request, Response};

            ::std::thread_local! {
                static SERVICE: ::std::rc::Rc<$service> = ::std::rc::Rc::new($make);
            }

            struct Entry;
            $crate::wasip3::http::service::export!(Entry);

            impl $crate::wasip3::exports::http::handler::Guest for Entry {
                async fn handle(request: Request) -> Result<Response, ErrorCode> {
                    let service = SERVICE.with(::std::rc::Rc::clone);
                    let reply = match $crate::wasi::read_request(request).await {
                        Ok(req) => {
                            let pages: fn(&$crate::Request) -> Option<$crate::StaticPage> = $pages;
                            if let Some(page) = pages(&req) {
                                return $crate::wasi::page_response(page);
                            }
                            service.handle(&req).await
                        }
                        Err(reply) => reply,
                    };
                    let after: fn(::std::rc::Rc<$service>) -> Option<$crate::AfterReply> = $after;
                    if let Some(work) = after(service) {
                        // Detached: it runs after this function's value (the response) is
                        // returned, within the same component-model task.
                        drop($crate::wasip3::spawn_local(work));
                    }
                    $crate::wasi::into_response(reply)
                }
            }
        }
    };
}
