//! The storefront page: `GET /` on the public port answers a small HTML page (embedded at
//! compile time, no build step) that lists the toys with price and live stock, places orders
//! and looks them up, using only the frontend's own JSON API (`GET /products`,
//! `GET /products/<name>`, `POST /orders`, `GET /orders/<n>`), so it needs no network beyond
//! the store.
//!
//! It is answered before the JSON router because it is the one route whose body is not the
//! JSON envelope.

use http::Method;
use toystore_guest::{Request, StaticPage};

/// The page, with its CSS and JavaScript inline.
pub const PAGE: &str = include_str!("../assets/store.html");

/// Whether `req` asks for the storefront page (`GET /` or `GET /index.html`).
pub fn is_page(req: &Request) -> bool {
    req.method == Method::GET && matches!(req.path.as_str(), "/" | "" | "/index.html")
}

/// The page for `req`, if it asks for it (the entry serves it before the JSON router).
pub fn page(req: &Request) -> Option<StaticPage> {
    is_page(req).then_some(StaticPage { content_type: "text/html; charset=utf-8", body: PAGE })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_root_is_the_page() {
        assert!(is_page(&Request::new(Method::GET, "/", Vec::new())));
        assert!(is_page(&Request::new(Method::GET, "/?x=1", Vec::new())));
        assert!(!is_page(&Request::new(Method::POST, "/", Vec::new())));
        assert!(!is_page(&Request::new(Method::GET, "/products", Vec::new())));
        assert!(PAGE.contains("<title>"), "the page is embedded");
        assert_eq!(page(&Request::new(Method::GET, "/", Vec::new())).map(|p| p.body), Some(PAGE));
        assert_eq!(page(&Request::new(Method::GET, "/orders/1", Vec::new())), None);
    }
}
