//! The top-level modules of `src/` depend on each other one way only. A module's
//! dependencies are the other top-level modules its files name through `crate::` paths
//! (`use` statements and inline paths, tests included); the graph must have no cycle, so
//! that a domain type never imports the store and the config never calls into the engines.
//! This is part of the test command, so a cycle cannot come back unnoticed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The top-level modules from the top of the dependency order to the bottom, as README.md's
/// source map lists them: a module may depend only on modules after it (on the same line
/// means independent of each other). A new module has to be placed here.
const LAYERS: &[&[&str]] = &[
    &["server"],
    &["admin"],
    &["proxy"],
    &["worker"],
    &["app"],
    &["journal"],
    &["memory"],
    &["embed"],
    &["llm"],
    &["upstream"],
    &["metrics"],
    &["usage"],
    &["store"],
    &["graph_server", "auth"],
    &["deadlines", "shutdown"],
    &["telemetry", "http_error", "redaction"],
    &["config"],
    &["domain", "vector", "error", "secret"],
];

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`None` for the crate roots).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

/// Source text with comments and string literals blanked, so that a path mentioned in
/// prose or in a message is not taken for a dependency.
fn code_only(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"//") {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else if bytes[i..].starts_with(b"/*") {
            i += 2;
            while i < bytes.len() && !bytes[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if bytes[i] == b'"' {
            // A raw string's hashes never hold `crate::` paths that matter; skipping to the
            // next unescaped quote is enough for this source tree.
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                if bytes[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if bytes[i] == b'\'' && i + 2 < bytes.len() && bytes[i + 2] == b'\'' {
            // A char literal such as '"'.
            i += 3;
        } else {
            out.push(bytes[i] as char);
            i += 1;
        }
    }
    out
}

/// The top-level modules named after `crate::` (or a macro's `$crate::`) in `code`:
/// `crate::store::Store`, `crate::{domain::Session, store}` and nested groups alike.
fn crate_references(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        // `$crate::` in a macro is a dependency of the module that defines the macro too.
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The first name of each item of the group, at its own depth only.
            let mut depth = 1;
            let mut at_item_start = true;
            let mut chars = group.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => {
                        at_item_start = true;
                        continue;
                    }
                    c if c.is_whitespace() => continue,
                    _ => {}
                }
                if depth == 1 && at_item_start && (c.is_alphanumeric() || c == '_') {
                    let mut name = c.to_string();
                    while let Some(&next) = chars.peek() {
                        if !(next.is_alphanumeric() || next == '_') {
                            break;
                        }
                        name.push(next);
                        chars.next();
                    }
                    found.insert(name);
                }
                at_item_start = false;
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

fn module_graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph = Graph::new();
    for file in &files {
        if let Some(module) = module_of(&src, file) {
            graph.entry(module).or_default();
        }
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        let code = code_only(&std::fs::read_to_string(file).unwrap());
        let deps = crate_references(&code)
            .into_iter()
            .filter(|d| *d != module && modules.contains(d));
        graph.get_mut(&module).unwrap().extend(deps);
    }
    graph
}

/// The strongly connected components with more than one module (Tarjan), each sorted.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v.as_str()) {
            visit(&mut state, v);
        }
    }
    state.found
}

#[test]
fn top_level_modules_depend_one_way() {
    let graph = module_graph();
    assert!(
        graph.len() >= 10 && graph.contains_key("store") && graph["store"].contains("domain"),
        "the scan found too little to mean anything: {graph:?}"
    );
    let found = cycles(&graph);
    let edges: Vec<String> = graph
        .iter()
        .map(|(m, deps)| {
            format!(
                "{m} -> {}",
                deps.iter().cloned().collect::<Vec<_>>().join(" ")
            )
        })
        .collect();
    assert!(
        found.is_empty(),
        "import cycles between top-level modules: {found:?}\nthe graph:\n{}",
        edges.join("\n")
    );
}

#[test]
fn dependencies_point_down_the_documented_order() {
    let graph = module_graph();
    let layer_of = |module: &str| LAYERS.iter().position(|layer| layer.contains(&module));
    let unplaced: Vec<&String> = graph.keys().filter(|m| layer_of(m).is_none()).collect();
    assert!(
        unplaced.is_empty(),
        "modules missing from LAYERS (and from README.md's source map): {unplaced:?}"
    );
    let upward: Vec<String> = graph
        .iter()
        .flat_map(|(from, deps)| deps.iter().map(move |to| (from, to)))
        .filter(|(from, to)| layer_of(to) <= layer_of(from))
        .map(|(from, to)| format!("{from} -> {to}"))
        .collect();
    assert!(
        upward.is_empty(),
        "dependencies against the documented order: {upward:?}"
    );
}

#[test]
fn the_leaves_import_nothing_of_ours() {
    let graph = module_graph();
    for leaf in ["domain", "vector", "error", "secret"] {
        assert!(
            graph[leaf].is_empty(),
            "`{leaf}` is a leaf but imports {:?}",
            graph[leaf]
        );
    }
}

#[test]
fn references_are_read_from_every_path_form() {
    let code = code_only(
        "use crate::store::Store;\n\
         use crate::{domain::{Session, graph::GraphKind}, vector};\n\
         // crate::proxy is only mentioned\n\
         let x = \"crate::admin\"; let y = crate::metrics::Metrics::inc;\n\
         macro_rules! m { () => { $crate::config::X } }",
    );
    let found: Vec<String> = crate_references(&code).into_iter().collect();
    assert_eq!(found, ["config", "domain", "metrics", "store", "vector"]);
    assert!(crate_references("let a = my_crate::store::X;").is_empty());
}

#[test]
fn a_cycle_is_found_and_named() {
    let mut graph = Graph::new();
    for (from, to) in [
        ("config", "store"),
        ("store", "memory"),
        ("memory", "config"),
        ("domain", ""),
    ] {
        let deps = graph.entry(from.to_string()).or_default();
        if !to.is_empty() {
            deps.insert(to.to_string());
        }
    }
    assert_eq!(
        cycles(&graph),
        vec![vec!["config".to_string(), "memory".into(), "store".into()]]
    );
    graph.get_mut("memory").unwrap().clear();
    assert!(cycles(&graph).is_empty());
}
