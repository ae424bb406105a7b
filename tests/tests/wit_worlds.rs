//! Each built component imports nothing outside its world in `wit/services.wit`.
//!
//! The worlds promise that a component needs only standard WASI (so it also runs under the stock
//! `wasmtime serve`). This test holds the built components to that promise: it decodes each
//! `target/wasm32-wasip2/release/toystore_<name>.wasm`, lists the interfaces it imports, and
//! fails on any that its world (with the worlds it includes, resolved against `wit/deps`) does
//! not name — apart from the WASI 0.2 interfaces that Rust std's `wasm32-wasip2` runtime adds,
//! listed one by one in [`RUST_STD_WASI_P2`]. A missing component fails too (build first:
//! `just build`). `hello` has no toystore world: it is held to the plain `wasi:http/service`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use wit_component::DecodedWasm;
use wit_parser::{PackageId, Resolve, WorldItem, WorldKey};

/// What Rust std (wasm32-wasip2) imports on its own for args, environment, stdio, exit, clocks
/// and files, whatever the component's world says. Nothing else outside a world is allowed.
const RUST_STD_WASI_P2: &[&str] = &[
    "wasi:cli/environment@0.2",
    "wasi:cli/exit@0.2",
    "wasi:cli/stdin@0.2",
    "wasi:cli/stdout@0.2",
    "wasi:cli/stderr@0.2",
    "wasi:cli/terminal-input@0.2",
    "wasi:cli/terminal-output@0.2",
    "wasi:cli/terminal-stdin@0.2",
    "wasi:cli/terminal-stdout@0.2",
    "wasi:cli/terminal-stderr@0.2",
    "wasi:io/error@0.2",
    "wasi:io/streams@0.2",
    "wasi:io/poll@0.2",
    "wasi:filesystem/types@0.2",
    "wasi:filesystem/preopens@0.2",
    "wasi:clocks/monotonic-clock@0.2",
    "wasi:clocks/wall-clock@0.2",
    "wasi:random/insecure-seed@0.2",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `wit/` with its deps, and the toystore package in it.
fn worlds() -> (Resolve, PackageId) {
    let mut resolve = Resolve::default();
    let (pkg, _) = resolve.push_dir(root().join("wit")).expect("wit/ parses");
    (resolve, pkg)
}

/// The interfaces a world imports, as `namespace:package/interface@version` (includes and
/// the interfaces its imports use are already elaborated by the resolver).
fn world_imports(resolve: &Resolve, pkg: PackageId, world: &str) -> BTreeSet<String> {
    let id = resolve.select_world(&[pkg], Some(world)).unwrap_or_else(|e| panic!("world {world}: {e}"));
    imports_of(resolve, &resolve.worlds[id].imports)
}

fn imports_of(resolve: &Resolve, imports: &wit_parser::IndexMap<WorldKey, WorldItem>) -> BTreeSet<String> {
    imports
        .iter()
        .filter_map(|(key, item)| match (key, item) {
            (WorldKey::Interface(id), WorldItem::Interface { .. }) => resolve.id_of(*id),
            (WorldKey::Name(name), WorldItem::Interface { .. }) => Some(name.clone()),
            // Functions and types imported directly by a world.
            (WorldKey::Name(name), _) => Some(name.clone()),
            (WorldKey::Interface(id), _) => resolve.id_of(*id),
        })
        .collect()
}

/// The interfaces the built component `name` imports.
fn component_imports(name: &str) -> BTreeSet<String> {
    let path = root().join(format!("target/wasm32-wasip2/release/toystore_{name}.wasm"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!("{}: {e}; build the components first (`just build`)", path.display())
    });
    let decoded = wit_component::decode(&bytes).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
    let DecodedWasm::Component(resolve, world) = decoded else {
        panic!("{} is a core module, not a component", path.display())
    };
    imports_of(&resolve, &resolve.worlds[world].imports)
}

/// `wasi:cli/stdout@0.2.4` is allowed by `wasi:cli/stdout@0.2` (std's patch version moves).
fn allowed_by_std(import: &str) -> bool {
    RUST_STD_WASI_P2.iter().any(|p| import.strip_prefix(p).is_some_and(|rest| rest.starts_with('.')))
}

/// The imports of component `name` that neither `allowed` nor Rust std's list covers.
fn outside(name: &str, allowed: &BTreeSet<String>) -> Vec<String> {
    component_imports(name).into_iter().filter(|i| !allowed.contains(i) && !allowed_by_std(i)).collect()
}

fn check(component: &str, allowed: &BTreeSet<String>, world: &str) {
    let extra = outside(component, allowed);
    assert!(
        extra.is_empty(),
        "toystore_{component}.wasm imports {extra:?}, which its world `{world}` does not name \
         (its world allows {allowed:?} plus Rust std's WASI 0.2 list)"
    );
}

#[test]
fn frontend_imports_only_its_world() {
    let (resolve, pkg) = worlds();
    check("frontend", &world_imports(&resolve, pkg, "frontend"), "frontend");
}

#[test]
fn catalog_imports_only_its_world() {
    let (resolve, pkg) = worlds();
    check("catalog", &world_imports(&resolve, pkg, "catalog"), "catalog");
}

#[test]
fn order_imports_only_its_world() {
    let (resolve, pkg) = worlds();
    check("order", &world_imports(&resolve, pkg, "order"), "order");
}

#[test]
fn hello_imports_only_the_http_service_world() {
    let (resolve, _) = worlds();
    let http = resolve
        .package_names
        .iter()
        .find(|(name, _)| name.namespace == "wasi" && name.name == "http")
        .map(|(_, id)| *id)
        .expect("wit/deps has wasi:http");
    check("hello", &world_imports(&resolve, http, "service"), "wasi:http/service");
}

/// The check itself can fail: a world granting only `wasi:http/types` leaves the order
/// component's outgoing calls, clocks and randomness (all WASI 0.3) outside it.
#[test]
fn a_narrower_world_is_reported() {
    let narrow = BTreeSet::from(["wasi:http/types@0.3.2".to_string()]);
    let extra = outside("order", &narrow);
    assert!(extra.contains(&"wasi:http/client@0.3.2".to_string()), "{extra:?}");
    assert!(extra.iter().all(|i| i.ends_with("@0.3.2")), "std's WASI 0.2 imports stay allowed: {extra:?}");
}

