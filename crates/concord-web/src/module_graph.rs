//! A check that the crate's modules import each other without a circle: every `crate::a::b`
//! path in a file is an edge from that file's module to module `a` (or `a::b` for `panels`);
//! `crate::X` for a root item is an edge to the root. Panels depend on the session, not on each
//! other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn module_of(rel: &str) -> String {
    let rel = rel.trim_end_matches(".rs").trim_end_matches("/mod");
    if rel == "main" || rel == "lib" {
        "crate".into()
    } else {
        rel.replace('/', "::")
    }
}

fn edges(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src is readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(src).expect("under src").to_string_lossy().into_owned();
            let from = module_of(&rel);
            let text = std::fs::read_to_string(&path).expect("readable");
            let set: &mut BTreeSet<String> = graph.entry(from.clone()).or_default();
            for (i, _) in text.match_indices("crate::") {
                let rest = &text[i + "crate::".len()..];
                let segs: Vec<&str> = rest
                    .split("::")
                    .take(2)
                    .map(|s| s.split(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or(""))
                    .collect();
                let first = segs.first().copied().unwrap_or("");
                let is_module = src.join(format!("{first}.rs")).exists() || src.join(first).is_dir();
                let to = match (first, segs.get(1)) {
                    ("panels", Some(p)) if !p.is_empty() => format!("panels::{p}"),
                    (m, _) if is_module => m.to_string(),
                    _ => "crate".into(),
                };
                // A module's own items and the root's `mod` lines are not imports.
                if to != from && from != "crate" {
                    set.insert(to);
                }
            }
        }
    }
    graph
}

/// A circle in the graph, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut cycle = path[i..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_modules_import_each_other_without_a_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = edges(&src);
    assert!(graph.contains_key("session") && graph.contains_key("panels::outputs"), "{graph:?}");
    assert!(graph["panels::outputs"].contains("session"), "the panels read the session");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import circle: {}", cycle.join(" → "));
    }
    // No panel imports another panel.
    for (from, to) in &graph {
        if from.starts_with("panels::") {
            let others: Vec<&String> = to.iter().filter(|t| t.starts_with("panels::")).collect();
            assert!(others.is_empty(), "{from} imports {others:?}");
        }
    }
}

#[test]
fn the_check_finds_a_circle() {
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(find_cycle(&g), Some(vec!["a".into(), "b".into(), "a".into()]));
    g.insert("b".to_string(), BTreeSet::new());
    assert_eq!(find_cycle(&g), None);
}
