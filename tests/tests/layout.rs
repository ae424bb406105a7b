//! The house has no modules that import each other in a circle (see `toystore_e2e::circles`):
//! checked over every crate of the workspace, and — so that the check itself can be trusted —
//! over small crates written here that do have one.

use std::fs;
use std::path::Path;

use toystore_e2e::circles::{crate_paths, crate_sources, code_outside_tests, Graph};
use toystore_e2e::workspace_root;

fn names(graph: &Graph, circle: &[Vec<String>], root: &Path) -> String {
    let files: Vec<String> = circle.iter().map(|m| graph.file(m).strip_prefix(root).unwrap_or(graph.file(m)).display().to_string()).collect();
    files.join(", ")
}

#[test]
fn no_crate_of_the_workspace_has_modules_in_a_circle() {
    let root = workspace_root();
    let sources = crate_sources(&root).expect("list the crates");
    assert!(sources.len() >= 8, "found only {sources:?}: the walk missed crates");
    let mut found = Vec::new();
    for src in &sources {
        let graph = Graph::of_crate(src).unwrap_or_else(|e| panic!("read {}: {e}", src.display()));
        for circle in graph.circles() {
            found.push(format!("circle of {}: {}", circle.len(), names(&graph, &circle, &root)));
        }
    }
    assert!(found.is_empty(), "modules that import each other in a circle:\n{}", found.join("\n"));
}

/// Write `files` (path under `src`, text) as a crate in a temporary directory.
fn write_crate(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (path, text) in files {
        let path = dir.path().join("src").join(path);
        fs::create_dir_all(path.parent().expect("a parent")).expect("create the module directory");
        fs::write(path, text).expect("write a module");
    }
    dir
}

#[test]
fn a_circle_through_nested_use_trees_is_found_and_a_parent_child_pair_is_not() {
    let dir = write_crate(&[
        ("lib.rs", "mod net; mod wasm; pub use net::body::Response;"),
        ("net/mod.rs", "pub mod body; pub mod listener;"),
        ("net/body.rs", "pub struct Response;"),
        // The arrow that points back up: listener → wasm::instance → net::listener.
        ("net/listener.rs", "use crate::{net::body::Response, wasm::{instance::Job}};"),
        ("wasm/mod.rs", "pub mod instance; use crate::wasm::instance::Job as _J;"),
        ("wasm/instance.rs", "pub struct Job; fn f() { crate::net::listener::bind(); }"),
    ]);
    let graph = Graph::of_crate(&dir.path().join("src")).expect("read the crate");
    let circles = graph.circles();
    let expected = vec![vec![vec!["net".to_string(), "listener".to_string()], vec!["wasm".to_string(), "instance".to_string()]]];
    assert_eq!(circles, expected, "the listener ↔ instance circle, and nothing for wasm/mod.rs ↔ its child");
}

#[test]
fn comments_strings_and_tests_are_not_imports() {
    let dir = write_crate(&[
        ("lib.rs", "mod a; mod b;"),
        (
            "a.rs",
            "//! See [`crate::b`].\n/* crate::b::X */ const URL: &str = \"http://x/crate::b::Y\";\n\
             const R: &str = r#\"crate::b\"#; fn f<'a>(x: &'a str) -> char { 'b' }\n\
             #[cfg(test)] mod tests { use crate::b::Y; }",
        ),
        ("b.rs", "use crate::a; pub struct X; pub struct Y;"),
    ]);
    let graph = Graph::of_crate(&dir.path().join("src")).expect("read the crate");
    assert!(graph.circles().is_empty(), "only b → a is real; a names b only in comments, literals and tests");

    // The same crate with one real import from a to b is a circle.
    fs::write(dir.path().join("src/a.rs"), "use crate::b::X;").expect("rewrite a.rs");
    let graph = Graph::of_crate(&dir.path().join("src")).expect("read the crate");
    assert_eq!(graph.circles().len(), 1, "a ↔ b");
}

#[test]
fn use_trees_expand_to_every_path_they_name() {
    let code = code_outside_tests("use crate::{a::{self, b::C}, d}; let x = crate::e::f(); use other::crate_x;");
    let paths = crate_paths(&code);
    let want: Vec<Vec<String>> =
        [vec!["a"], vec!["a", "b", "C"], vec!["d"], vec!["e", "f"]].iter().map(|p| p.iter().map(|s| s.to_string()).collect()).collect();
    assert_eq!(paths, want);
}
