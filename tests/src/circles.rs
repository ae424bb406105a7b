//! Which files of a crate import each other in a circle.
//!
//! A file's edges are the `crate::` paths it names outside comments, string literals and its
//! `#[cfg(test)]` tail (tests may reach anywhere). A path is credited to the longest module of
//! the crate that is a file (`crate::net::body::Response` → `src/net/body.rs`); edges between a
//! file and its own ancestors or descendants are not counted, since a parent declaring and
//! re-exporting its children is the ordinary shape. Any strongly connected set of two or more
//! files is a circle: somewhere in it an arrow points back up, and a reader following the
//! layers finds a module that needs the one they came from.
//!
//! `just test` runs this over every crate of the workspace (`tests/tests/layout.rs`), so a
//! circle fails the build where it is introduced.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// A module of the crate, as the path from its root (`["net", "body"]`; the root is `[]`).
pub type ModPath = Vec<String>;

/// One crate's modules that are files, with the modules each one imports.
#[derive(Debug, Default)]
pub struct Graph {
    files: BTreeMap<ModPath, PathBuf>,
    edges: BTreeMap<ModPath, BTreeSet<ModPath>>,
}

impl Graph {
    /// Read every `.rs` file under `src` (one crate's source root; `src/bin` is skipped: each
    /// binary there is a crate of its own).
    pub fn of_crate(src: &Path) -> io::Result<Graph> {
        let mut graph = Graph::default();
        for file in rust_files(src)? {
            if let Some(module) = module_of(src, &file) {
                graph.files.insert(module, file);
            }
        }
        for (module, file) in &graph.files {
            let text = fs::read_to_string(file)?;
            let mut targets = BTreeSet::new();
            for path in crate_paths(&code_outside_tests(&text)) {
                let Some(target) = graph.longest_file_module(&path) else { continue };
                let related = target.starts_with(module) || module.starts_with(&target);
                if !related {
                    targets.insert(target);
                }
            }
            graph.edges.insert(module.clone(), targets);
        }
        Ok(graph)
    }

    fn longest_file_module(&self, path: &[String]) -> Option<ModPath> {
        (1..=path.len()).rev().map(|n| path[..n].to_vec()).find(|prefix| self.files.contains_key(prefix))
    }

    /// The file of `module`.
    pub fn file(&self, module: &ModPath) -> &Path {
        &self.files[module]
    }

    /// Every circle: the sets of two or more files that reach each other (Tarjan's strongly
    /// connected components), each sorted, in a stable order.
    pub fn circles(&self) -> Vec<Vec<ModPath>> {
        let mut tarjan = Tarjan { graph: self, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), on_stack: BTreeSet::new(), next: 0, found: Vec::new() };
        for module in self.files.keys() {
            if !tarjan.index.contains_key(module) {
                tarjan.visit(module);
            }
        }
        let mut circles: Vec<Vec<ModPath>> = tarjan.found.into_iter().filter(|c| c.len() > 1).collect();
        for circle in &mut circles {
            circle.sort();
        }
        circles.sort();
        circles
    }
}

struct Tarjan<'a> {
    graph: &'a Graph,
    index: BTreeMap<ModPath, usize>,
    low: BTreeMap<ModPath, usize>,
    stack: Vec<ModPath>,
    on_stack: BTreeSet<ModPath>,
    next: usize,
    found: Vec<Vec<ModPath>>,
}

impl Tarjan<'_> {
    // Recursive: a crate has at most a few dozen files, far from any stack limit.
    fn visit(&mut self, v: &ModPath) {
        self.index.insert(v.clone(), self.next);
        self.low.insert(v.clone(), self.next);
        self.next += 1;
        self.stack.push(v.clone());
        self.on_stack.insert(v.clone());
        let graph = self.graph;
        for w in graph.edges.get(v).into_iter().flatten() {
            if !self.index.contains_key(w) {
                self.visit(w);
                let low = self.low[v].min(self.low[w]);
                self.low.insert(v.clone(), low);
            } else if self.on_stack.contains(w) {
                let low = self.low[v].min(self.index[w]);
                self.low.insert(v.clone(), low);
            }
        }
        if self.low[v] == self.index[v] {
            let mut component = Vec::new();
            while let Some(w) = self.stack.pop() {
                self.on_stack.remove(&w);
                let done = &w == v;
                component.push(w);
                if done {
                    break;
                }
            }
            self.found.push(component);
        }
    }
}

fn rust_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(rust_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(out)
}

/// The module a file under `src` is: `src/lib.rs` → `[]`, `src/net/mod.rs` → `["net"]`,
/// `src/net/body.rs` → `["net", "body"]`; `None` for `src/bin/*` (separate crates).
pub fn module_of(src: &Path, file: &Path) -> Option<ModPath> {
    let relative = file.strip_prefix(src).ok()?.with_extension("");
    let mut parts: ModPath = relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    if parts.first().is_some_and(|p| p == "bin") {
        return None;
    }
    if parts.last().is_some_and(|p| matches!(p.as_str(), "lib" | "main" | "mod")) {
        parts.pop();
    }
    Some(parts)
}

/// `text` without comments and string/char literals (each replaced by a space), cut at its
/// first `#[cfg(test)]`.
pub fn code_outside_tests(text: &str) -> String {
    let code = strip_comments_and_literals(text);
    match code.find("#[cfg(test)]") {
        Some(i) => code[..i].to_string(),
        None => code,
    }
}

fn strip_comments_and_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            // Block comments nest in Rust.
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !is_ident_char(i.checked_sub(1).map(|p| chars[p])) {
            // A raw string: r"..." or r#"..."#, closed by a quote and as many hashes.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                match chars.get(j) {
                    None => break,
                    Some('"') if (1..=hashes).all(|h| chars.get(j + h) == Some(&'#')) => {
                        j += 1 + hashes;
                        break;
                    }
                    Some(_) => j += 1,
                }
            }
            i = j;
            out.push(' ');
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(' ');
        } else if c == '\'' && (chars.get(i + 2) == Some(&'\'') || next == Some('\\')) {
            // A char literal ('x', '\n', '\u{..}'); otherwise a lifetime, kept as it is.
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(' ');
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn is_ident_char(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || c == '_')
}

/// Every path `code` names through `crate::`, with use-trees expanded:
/// `use crate::{a::{b, c}, d};` names `a::b`, `a::c` and `d`.
pub fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let tokens = tokenize(code);
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let preceded_by_path = i > 0 && tokens[i - 1] == "::";
        if tokens[i] == "crate" && !preceded_by_path && tokens.get(i + 1).is_some_and(|t| t == "::") {
            i = use_tree(&tokens, i + 2, Vec::new(), &mut out);
        } else {
            i += 1;
        }
    }
    out
}

/// Parse one use-tree (or plain path) starting at `tokens[i]` under `prefix`; returns the index
/// after it.
fn use_tree(tokens: &[String], mut i: usize, mut prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    loop {
        match tokens.get(i).map(String::as_str) {
            Some("{") => {
                i += 1;
                loop {
                    match tokens.get(i).map(String::as_str) {
                        None => return i,
                        Some("}") => return i + 1,
                        Some(",") => i += 1,
                        Some(_) => i = use_tree(tokens, i, prefix.clone(), out),
                    }
                }
            }
            Some(name) if is_ident(name) => {
                if name != "self" {
                    prefix.push(name.to_string());
                }
                i += 1;
                if tokens.get(i).is_some_and(|t| t == "::") {
                    i += 1;
                    continue;
                }
                if !prefix.is_empty() {
                    out.push(prefix);
                }
                return i;
            }
            _ => {
                if !prefix.is_empty() {
                    out.push(prefix);
                }
                return i;
            }
        }
    }
}

fn is_ident(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_') && s.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// Identifiers, `::`, and single punctuation characters; whitespace dropped.
fn tokenize(code: &str) -> Vec<String> {
    let chars: Vec<char> = code.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(chars[start..i].iter().collect());
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            tokens.push("::".into());
            i += 2;
        } else {
            tokens.push(c.to_string());
            i += 1;
        }
    }
    tokens
}

/// The source roots of the workspace's crates under `root`: every `src` next to a
/// `Cargo.toml`, outside `target` and hidden directories.
pub fn crate_sources(root: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        if dir.join("Cargo.toml").is_file() && dir.join("src").is_dir() {
            out.push(dir.join("src"));
        }
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if path.is_dir() && name != "target" && name != "node_modules" && !name.starts_with('.') {
                dirs.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}
