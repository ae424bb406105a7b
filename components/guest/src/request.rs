//! An incoming request, already read whole: toystore bodies are small JSON documents.

use http::Method;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;

use crate::Reply;
pub use toystore_manifest::Listener;

/// Largest body a component accepts; anything bigger gets 413 before it is read further.
pub const MAX_BODY_BYTES: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// The path without the query string, e.g. `/products/Tux`.
    pub path: String,
    pub query: Option<String>,
    /// Header names are lower-case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The listener it arrived on, as far as the component can trust it (see
    /// `toystore_manifest::listener`): internal routes answer only on [`Listener::Internal`].
    pub listener: Listener,
}

impl Request {
    pub fn new(method: Method, path_and_query: &str, body: impl Into<Vec<u8>>) -> Self {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (path_and_query.to_string(), None),
        };
        Self { method, path, query, headers: Vec::new(), body: body.into(), listener: Listener::Public }
    }

    /// The same request, as arriving on `listener` (a new request is public).
    pub fn on(mut self, listener: Listener) -> Self {
        self.listener = listener;
        self
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// Non-empty path segments, percent-decoded: `/products/Tux` gives `["products", "Tux"]`.
    pub fn segments(&self) -> Vec<String> {
        self.path.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect()
    }

    /// The value the query string gives for `keys`, percent-decoded: `?name=Tux` (the first of
    /// `keys` present wins; `+` is a space, as in forms) or a bare `?Tux` (the seed document's
    /// spelling, `GET /product?<toy_name>`). `None` when there is no such value or it is empty.
    pub fn query_value(&self, keys: &[&str]) -> Option<String> {
        let query = self.query.as_deref().filter(|q| !q.is_empty())?;
        let value = if query.contains('=') {
            let pairs: Vec<(&str, &str)> = query.split('&').filter_map(|pair| pair.split_once('=')).collect();
            let raw = keys.iter().find_map(|k| pairs.iter().find(|(name, _)| name == k).map(|(_, v)| *v))?;
            percent_decode(&raw.replace('+', " "))
        } else {
            percent_decode(query)
        };
        Some(value).filter(|v| !v.is_empty())
    }

    /// Parse the body as JSON into `T`, or a 400 reply that says what is wrong.
    /// The Content-Type is not checked: the seed's clients do not always set it.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Reply> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Err(Reply::bad_request("request body must be a JSON object"));
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| Reply::bad_request(format!("invalid JSON body: {e}")))
    }
}

/// What [`encode_segment`] escapes: everything but the RFC 3986 unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encode one URL path segment (all but RFC 3986 unreserved characters): the inverse
/// of the decoding [`Request::segments`] does on the receiving side.
pub fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// Decode `%XX` escapes (invalid escapes are kept as they are, invalid UTF-8 becomes U+FFFD).
pub fn percent_decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_query_and_segments() {
        let r = Request::new(Method::GET, "/products/Tux%20Jr?x=1", "");
        assert_eq!(r.path, "/products/Tux%20Jr");
        assert_eq!(r.query.as_deref(), Some("x=1"));
        assert_eq!(r.segments(), vec!["products", "Tux Jr"]);
        assert_eq!(Request::new(Method::GET, "/a/%zz", "").segments(), vec!["a", "%zz"]);
        assert_eq!(Request::new(Method::GET, "/a/%4", "").segments(), vec!["a", "%4"]);
    }

    #[test]
    fn encode_is_the_inverse_of_segments() {
        assert_eq!(encode_segment("Tux"), "Tux");
        assert_eq!(encode_segment("a b/c%é"), "a%20b%2Fc%25%C3%A9");
        let r = Request::new(Method::GET, &format!("/products/{}", encode_segment("a b/c%é")), "");
        assert_eq!(r.segments(), vec!["products", "a b/c%é"]);
    }

    #[test]
    fn query_values_bare_or_named() {
        let q = |pq: &str| Request::new(Method::GET, pq, "").query_value(&["name", "toy"]);
        assert_eq!(q("/product?Tux"), Some("Tux".into()));
        assert_eq!(q("/product?Tux%20Jr"), Some("Tux Jr".into()));
        assert_eq!(q("/product?name=Tux+Jr"), Some("Tux Jr".into()));
        assert_eq!(q("/product?x=1&toy=Fox"), Some("Fox".into()));
        assert_eq!(q("/product?name=Tux&toy=Fox"), Some("Tux".into()), "the first key named wins");
        assert_eq!(q("/product?x=1"), None);
        assert_eq!(q("/product?"), None);
        assert_eq!(q("/product?name="), None);
        assert_eq!(q("/product"), None);
    }

    #[test]
    fn json_errors_are_400() {
        #[derive(serde::Deserialize, Debug)]
        struct T {
            #[allow(dead_code)]
            a: u32,
        }
        let empty = Request::new(Method::POST, "/x", "");
        assert_eq!(empty.json::<T>().unwrap_err().status, 400);
        let bad = Request::new(Method::POST, "/x", "{nope");
        assert_eq!(bad.json::<T>().unwrap_err().status, 400);
        let good = Request::new(Method::POST, "/x", r#"{"a": 1}"#);
        assert!(good.json::<T>().is_ok());
    }

    #[test]
    fn headers_are_case_insensitive() {
        let r = Request::new(Method::GET, "/", "").with_header("Idempotency-Key", "k1");
        assert_eq!(r.header("idempotency-key"), Some("k1"));
    }
}
