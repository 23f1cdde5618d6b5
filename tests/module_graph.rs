//! The module graph of each product crate has no cycles: a top-level module that uses
//! `crate::b` depends on `b`, and no chain of such uses leads back to where it started.
//! Cargo keeps the crates' arrows one way; this keeps the modules inside them so.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module → the top-level modules its (non-test) code names as `crate::…`.
type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`None` for the crate root, tests and test support).
fn top_module(root: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(root).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    let stem = file.file_stem()?.to_str()?;
    let test_only = stem.contains("tests") || stem.contains("test_support");
    (!matches!(name, "lib" | "main") && !test_only).then(|| name.to_string())
}

/// The `crate::name` paths in `code` before its first `#[cfg(test)]` (test modules come last).
fn crate_references(code: &str) -> BTreeSet<String> {
    let code = code.split("#[cfg(test)]").next().unwrap_or_default();
    code.match_indices("crate::")
        .filter(|(at, _)| {
            // Skip `$crate::` in macros and identifiers that merely end in "crate".
            let before = code[..*at].chars().next_back();
            !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$')
        })
        .map(|(at, _)| {
            code[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

fn graph(root: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let mut graph = Graph::new();
    for file in files {
        let Some(module) = top_module(root, &file) else {
            continue;
        };
        let code = std::fs::read_to_string(&file).expect("readable source file");
        let uses = graph.entry(module.clone()).or_default();
        uses.extend(crate_references(&code).into_iter().filter(|name| *name != module));
    }
    graph
}

/// A cycle in `graph`, as the modules along it, if there is one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(node: &str, graph: &Graph, path: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_product_crate_has_a_module_cycle() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    for crate_src in ["src", "crates/reverie-core/src", "crates/reverie-api/src"] {
        let graph = graph(&workspace.join(crate_src));
        assert!(graph.len() > 3, "{crate_src}: too few modules found: {graph:?}");
        if let Some(cycle) = find_cycle(&graph) {
            panic!("{crate_src}: module cycle {}", cycle.join(" → "));
        }
    }
}

#[test]
fn a_cycle_is_found_and_named() {
    let graph: Graph =
        [("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")]
            .into_iter()
            .fold(Graph::new(), |mut graph, (from, to)| {
                graph.entry(from.into()).or_default().insert(to.into());
                graph
            });
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let acyclic: Graph = [("a".to_string(), BTreeSet::from(["b".to_string()]))].into();
    assert_eq!(find_cycle(&acyclic), None);
}

#[test]
fn references_are_read_from_code_before_its_tests() {
    let code =
        "use crate::store::X;\nfn f() { crate::metrics::m(); $crate::no(); }\n#[cfg(test)]\nmod t { use crate::cli; }";
    assert_eq!(
        crate_references(code),
        BTreeSet::from(["store".to_string(), "metrics".to_string()])
    );
}
