//! The WASI 0.3 entry: one [`Service`] per instance (its state lives as long as the instance),
//! each request read into a [`toystore_guest::Request`] and answered by the service.

use crate::{Config, Service};

toystore_guest::export_service!(Service<toystore_guest::wasi::WasiNet> =
    Service::new(Config::from_env(), toystore_guest::wasi::WasiNet),
    after_reply = Service::after_reply);
