//! The wasmtime side that every service shares: one [`Engine`], one [`Linker`], and each
//! distinct component file compiled once into a pre-instance ([`ProxyPre`]). The three order
//! replicas run the same file, so they share one compiled component.
//!
//! A service's instance lives in a [`Store<StoreData>`]; [`Runtime::new_store`] builds one with the
//! service's WASI context: only its own data directory preopened as `/data`, its environment,
//! and the host's stdout/stderr so a guest's `eprintln!` shows up in the host's log.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::handler::ProxyPre;
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::net::outgoing::{Hooks, Outgoing};
use crate::wasm::alloc;
use crate::wasm::spin_guard;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot set up the wasmtime engine: {0}")]
    Engine(String),
    #[error("cannot load component {path}: {message}")]
    Component { path: PathBuf, message: String },
    #[error("cannot preopen the data directory {path}: {message}")]
    Preopen { path: PathBuf, message: String },
}

/// The data of one store: WASI and wasi-http state of one instance.
pub struct StoreData {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: Hooks,
    /// The spin guard's state: every host call below marks it (see `spin_guard`).
    pub spin: spin_guard::Watch,
}

impl spin_guard::Watched for StoreData {
    fn watch(&mut self) -> &mut spin_guard::Watch {
        &mut self.spin
    }
}

impl WasiView for StoreData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        self.spin.host_called = true;
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for StoreData {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        self.spin.host_called = true;
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

/// What a service needs to start an instance: the compiled component and its WASI setup.
pub struct InstanceSpec {
    pub pre: Arc<ProxyPre<StoreData>>,
    pub env: Vec<(String, String)>,
    pub data_dir: PathBuf,
}

pub struct Runtime {
    engine: Engine,
    linker: Linker<StoreData>,
    components: HashMap<PathBuf, Arc<ProxyPre<StoreData>>>,
    outgoing: Outgoing,
}

impl Runtime {
    pub fn new(outgoing: Outgoing) -> Result<Self, RuntimeError> {
        let mut config = Config::new();
        // WASI 0.3 (wasip3) components export an async `wasi:http/handler`.
        config.wasm_component_model_async(true);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling()));
        // Guest code checks an epoch counter so that a spinning call can be cut (see `spin_guard`).
        config.epoch_interruption(true);
        // Components compile on one thread. In parallel, each compiling thread fills its own
        // malloc arena, and the host's peak RSS is their sum (a third more, eval/bench.md);
        // serial compiling costs about a second once per start on 2 cores.
        config.parallel_compilation(false);
        // `TOYSTORE_PERF_MAP=1`: write /tmp/perf-<pid>.map, so that `perf report` on the host
        // names the guests' functions instead of showing their JIT code as bare addresses.
        if std::env::var("TOYSTORE_PERF_MAP").is_ok_and(|v| !v.is_empty() && v != "0") {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = match Engine::new(&config) {
            Ok(engine) => engine,
            // E.g. a process with a small address-space limit: the pools cannot be reserved.
            // Serving still works, only each concurrent call maps its own stack.
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "pooling allocator unavailable; allocating on demand");
                config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
                Engine::new(&config).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?
            }
        };

        spin_guard::start_ticker(&engine).map_err(|e| RuntimeError::Engine(format!("cannot start the epoch ticker: {e}")))?;

        let mut linker = Linker::new(&engine);
        let link = |linker: &mut Linker<StoreData>| -> wasmtime::Result<()> {
            // Rust std on wasm32-wasip2 still imports the p2 cli/io/filesystem interfaces.
            wasmtime_wasi::p2::add_to_linker_async(linker)?;
            wasmtime_wasi::p3::add_to_linker(linker)?;
            wasmtime_wasi_http::p3::add_to_linker(linker)?;
            Ok(())
        };
        link(&mut linker).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        Ok(Self { engine, linker, components: HashMap::new(), outgoing })
    }

    /// Compile `path` (once; later calls for the same file return the same pre-instance).
    pub fn load(&mut self, path: &Path) -> Result<Arc<ProxyPre<StoreData>>, RuntimeError> {
        if let Some(pre) = self.components.get(path) {
            return Ok(pre.clone());
        }
        let err = |message: String| RuntimeError::Component { path: path.to_path_buf(), message };
        let component = Component::from_file(&self.engine, path).map_err(|e| err(format!("{e:#}")))?;
        let pre = self.linker.instantiate_pre(&component).map_err(|e| err(format!("{e:#}")))?;
        let pre = ServicePre::new(pre).map_err(|e| {
            err(format!("it does not export wasi:http/handler@0.3 (a WASI 0.3 HTTP service): {e:#}"))
        })?;
        let pre = Arc::new(ProxyPre::P3(pre));
        self.components.insert(path.to_path_buf(), pre.clone());
        // What cranelift freed: without this the next compile adds its own on top.
        alloc::release_freed_memory();
        Ok(pre)
    }

    /// A fresh store for one instance of `spec`, with the spin guard armed; `spin_cuts` counts
    /// the times it cut this service.
    pub fn new_store(&self, spec: &InstanceSpec, spin_cuts: Arc<AtomicU64>) -> Result<Store<StoreData>, RuntimeError> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.inherit_stdout().inherit_stderr().envs(&spec.env);
        // A guest's file calls (the catalog's `catalog.csv`, a replica's log and epoch file) run
        // on the service's own thread instead of tokio's blocking pool. They are blocking calls
        // for the guest either way (sync p2 imports: the instance waits for each one); through
        // the pool every open, stat, read and close cost a hand-over to a pool thread and a
        // wake-up back (~20 context switches per catalog lookup, measured with `perf stat`).
        // Files here are small and in the page cache; an fsync holds the service's thread for
        // its duration, which the instance waited for anyway. The spin guard is unaffected: a
        // file call is a host call, which resets it (see `spin_guard`). Must be set before the
        // preopen, which takes the setting with it.
        wasi.allow_blocking_current_thread(true);
        wasi.preopened_dir(&spec.data_dir, "/data", FsPerms::ReadWrite).map_err(|e| {
            RuntimeError::Preopen { path: spec.data_dir.clone(), message: format!("{e:#}") }
        })?;
        let host = StoreData {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: self.outgoing.hooks(),
            spin: spin_guard::Watch::default(),
        };
        let mut store = Store::new(&self.engine, host);
        spin_guard::watch(&mut store, spin_cuts);
        Ok(store)
    }
}

/// Sizes of the pooling allocator.
///
/// Every concurrent guest call (each request in flight on an instance) runs on its own fiber
/// stack. With on-demand allocation wasmtime keeps only the store's last stack, so under
/// concurrency nearly every call mmaps a fresh stack and munmaps it afterwards (a page-table
/// change, and on 2 cores a TLB shootdown, per request). The pool reserves the stacks once and
/// hands them out again; unzeroed stacks stay resident, so RSS is bounded by the stacks that
/// were in use at the same time, not by the pool's size (which is address space only).
///
/// A host runs 5 instances (frontend, catalog, 3 order replicas); restarts return their slots
/// first. Requests in flight are bounded per service by `service::MAX_IN_FLIGHT`; a call that
/// finds no free stack fails with 500 rather than hanging.
fn pooling() -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(32)
        .total_core_instances(256)
        .max_core_instances_per_component(32)
        .total_memories(64)
        .max_memories_per_component(4)
        .total_tables(256)
        .max_tables_per_component(16)
        .total_stacks(4096);
    pool
}
