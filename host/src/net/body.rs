//! The two types every HTTP part of the host speaks: the response a guest (or the host itself)
//! answers with, and a body built from bytes. They live here, apart from the code that serves
//! or sends them, so that everything else can use them without importing that code.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::WasiBody;

/// What a service answers: a response whose body streams out of the instance (or out of the
/// host, for its own replies).
pub type Response = http::Response<WasiBody>;

/// A body holding `bytes`, in the type wasi-http uses.
pub fn full_body(bytes: Bytes) -> WasiBody {
    Full::new(bytes).map_err(|never| match never {}).boxed_unsync()
}
