//! One route table per service: method + path pattern → a route id the service `match`es on.
//!
//! A service lists its routes once (`Router::new().get("/products/{name}", Route::Product)`),
//! and [`Router::at`] decides for every service alike: a path no pattern matches is 404
//! `no route for <method> <path>`, a known path with another method is 405
//! `method <method> not allowed on <path>`. Path parameters come back percent-decoded.
//!
//! The route ids are a plain `Copy` enum of the service, so handlers stay ordinary methods
//! borrowing the service (`async fn product(&self, name: &str)`), called from one `match` on
//! the id. Paths are matched segment by segment as the services always did: empty segments are
//! ignored, so `/products/` is `/products`.
//!
//! Every route has a [`Visibility`], given where the table is written (`get` / `post` are
//! public, `internal_get` / `internal_post` internal). A request that arrived on the public
//! listener ([`Request::listener`]) does not see internal routes at all: it gets exactly the
//! 404 (or 405) it would get if they were not in the table.

use http::Method;

use crate::request::{percent_decode, Listener};
use crate::{Reply, Request};

/// Who can reach a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Any request (the frontend's public API; every route of an internal-only service).
    Public,
    /// Only requests that arrived on an internal listener.
    Internal,
}

impl Visibility {
    fn admits(self, listener: Listener) -> bool {
        self == Visibility::Public || listener == Listener::Internal
    }
}

/// Method + path pattern → route id `R`. Patterns use [`matchit`] syntax: `/orders/{n}`.
#[derive(Debug, Clone)]
pub struct Router<R> {
    /// Pattern → the methods it answers, each with its route id and who can reach it.
    paths: matchit::Router<usize>,
    methods: Vec<Vec<(Method, Visibility, R)>>,
    patterns: Vec<String>,
}

/// The route a request matched, with its path parameters (percent-decoded).
#[derive(Debug, Clone, PartialEq)]
pub struct Matched<R> {
    pub route: R,
    params: Vec<(String, String)>,
}

impl<R> Matched<R> {
    /// The value of path parameter `name` (`""` if the pattern has no such parameter, which a
    /// unit test of the service's table would show at once).
    pub fn param(&self, name: &str) -> &str {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).unwrap_or("")
    }
}

impl<R: Copy> Default for Router<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: Copy> Router<R> {
    pub fn new() -> Self {
        Self { paths: matchit::Router::new(), methods: Vec::new(), patterns: Vec::new() }
    }

    pub fn get(self, pattern: &str, route: R) -> Self {
        self.route(Visibility::Public, Method::GET, pattern, route)
    }

    pub fn post(self, pattern: &str, route: R) -> Self {
        self.route(Visibility::Public, Method::POST, pattern, route)
    }

    /// A `GET` route answered on internal listeners only.
    pub fn internal_get(self, pattern: &str, route: R) -> Self {
        self.route(Visibility::Internal, Method::GET, pattern, route)
    }

    /// A `POST` route answered on internal listeners only.
    pub fn internal_post(self, pattern: &str, route: R) -> Self {
        self.route(Visibility::Internal, Method::POST, pattern, route)
    }

    /// Add `method pattern → route`, reachable as `visibility` says.
    ///
    /// # Panics
    /// On a pattern that is malformed or overlaps another one: route tables are fixed in the
    /// source, and each service's tests build its table.
    pub fn route(mut self, visibility: Visibility, method: Method, pattern: &str, route: R) -> Self {
        let slot = match self.patterns.iter().position(|p| p == pattern) {
            Some(slot) => slot,
            None => {
                let slot = self.patterns.len();
                if let Err(e) = self.paths.insert(pattern, slot) {
                    panic!("route table: cannot add {pattern}: {e}");
                }
                self.patterns.push(pattern.to_string());
                self.methods.push(Vec::new());
                slot
            }
        };
        self.methods[slot].push((method, visibility, route));
        self
    }

    /// The route for `req`, or the 404/405 reply to send instead. Only the routes visible from
    /// `req.listener` count: a path whose routes are all internal is 404 on a public listener.
    pub fn at(&self, req: &Request) -> Result<Matched<R>, Reply> {
        let path = normalise(&req.path);
        let no_route = || Reply::no_route(&req.method, &req.path);
        let Ok(found) = self.paths.at(&path) else {
            return Err(no_route());
        };
        let mut visible = self.methods[*found.value].iter().filter(|(_, v, _)| v.admits(req.listener)).peekable();
        if visible.peek().is_none() {
            return Err(no_route());
        }
        let Some(&(_, _, route)) = visible.find(|(m, _, _)| *m == req.method) else {
            return Err(Reply::method_not_allowed(&req.method, &req.path));
        };
        let params = found.params.iter().map(|(k, v)| (k.to_string(), percent_decode(v))).collect();
        Ok(Matched { route, params })
    }
}

/// `/` followed by the non-empty segments: `//products/` → `/products`.
fn normalise(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    format!("/{}", segments.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Id {
        List,
        One,
        Buy,
        Stats,
        Drop,
        Reset,
    }

    fn table() -> Router<Id> {
        Router::new()
            .get("/products", Id::List)
            .get("/products/{name}", Id::One)
            .post("/buy", Id::Buy)
            .internal_get("/cache/stats", Id::Stats)
            .internal_post("/invalidate/{name}", Id::Drop)
            // A public path with one internal method.
            .internal_post("/products", Id::Reset)
    }

    fn at(method: Method, path: &str) -> Result<Matched<Id>, Reply> {
        at_on(Listener::Internal, method, path)
    }

    fn at_on(listener: Listener, method: Method, path: &str) -> Result<Matched<Id>, Reply> {
        table().at(&Request::new(method, path, "").on(listener))
    }

    #[test]
    fn matches_method_and_pattern_with_decoded_params() {
        assert_eq!(at(Method::GET, "/products").unwrap().route, Id::List);
        let one = at(Method::GET, "/products/Tux%20Jr%2F2?x=1").unwrap();
        assert_eq!(one.route, Id::One);
        assert_eq!(one.param("name"), "Tux Jr/2");
        assert_eq!(at(Method::POST, "/buy").unwrap().route, Id::Buy);
        assert_eq!(at(Method::GET, "/cache/stats").unwrap().route, Id::Stats);
    }

    #[test]
    fn empty_segments_are_ignored() {
        assert_eq!(at(Method::GET, "/products/").unwrap().route, Id::List);
        assert_eq!(at(Method::GET, "//products//Tux").unwrap().param("name"), "Tux");
    }

    #[test]
    fn unknown_path_is_404_and_wrong_method_is_405() {
        let missing = at(Method::GET, "/nope/x").unwrap_err();
        assert_eq!(missing.status, 404);
        assert_eq!(missing.error_message(), Some("no route for GET /nope/x"));
        assert_eq!(at(Method::GET, "/products/a/b").unwrap_err().status, 404);
        let wrong = at(Method::DELETE, "/products/Tux").unwrap_err();
        assert_eq!(wrong.status, 405);
        assert_eq!(wrong.error_message(), Some("method DELETE not allowed on /products/Tux"));
        assert_eq!(at(Method::GET, "/buy").unwrap_err().status, 405);
    }

    #[test]
    fn internal_routes_are_unknown_on_the_public_listener() {
        let public = |method, path| at_on(Listener::Public, method, path);
        assert_eq!(at(Method::GET, "/cache/stats").unwrap().route, Id::Stats);
        assert_eq!(at(Method::POST, "/invalidate/Tux").unwrap().param("name"), "Tux");
        // Exactly the reply of a path that is not in the table at all.
        for (method, path) in [(Method::GET, "/cache/stats"), (Method::POST, "/invalidate/Tux"), (Method::DELETE, "/cache/stats")] {
            let hidden = public(method.clone(), path).unwrap_err();
            let unknown = Router::<Id>::new().at(&Request::new(method, path, "")).unwrap_err();
            assert_eq!((hidden.status, hidden.error_message()), (404, unknown.error_message()), "{path}");
        }
        // A public path's internal method is as if absent: 405, like any other method.
        assert_eq!(public(Method::POST, "/products").unwrap_err().status, 405);
        assert_eq!(at(Method::POST, "/products").unwrap().route, Id::Reset);
        // Public routes answer on both listeners.
        assert_eq!(public(Method::GET, "/products/Tux").unwrap().route, Id::One);
        assert_eq!(public(Method::POST, "/buy").unwrap().route, Id::Buy);
    }

    #[test]
    #[should_panic(expected = "cannot add")]
    fn overlapping_patterns_are_refused_when_the_table_is_built() {
        let _ = Router::new().get("/orders/{n}", 1).get("/orders/{m}", 2);
    }
}
