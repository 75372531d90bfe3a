//! The doc examples of `tevent`: every public type and every `*_send`
//! function has one, and no two are the same (an example copied onto the
//! next item teaches nothing new; the item links to the one that shows it).
//! Read from the source, the way rustdoc finds them: the fenced blocks of
//! each item's `///` comment, outside modules marked `#[doc(hidden)]`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, tests excepted.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("source dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(path);
        }
    }
}

/// A documented item: where it is, what it is, and its doc examples.
struct Item {
    at: String,
    kind: String,
    name: String,
    examples: Vec<String>,
}

/// The documented items of one file, outside `#[doc(hidden)]` modules.
fn items(path: &Path, rel: &str) -> Vec<Item> {
    let text = std::fs::read_to_string(path).expect("source");
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let (mut doc, mut hidden_attr) = (Vec::new(), false);
    // The brace depth, and the depth at which a hidden module began.
    let (mut depth, mut hidden_from): (i64, Option<i64>) = (0, None);
    for (n, line) in lines.iter().enumerate() {
        let t = line.trim();
        if let Some(d) = t.strip_prefix("///").or_else(|| t.strip_prefix("//!")) {
            doc.push(d.strip_prefix(' ').unwrap_or(d).to_string());
            continue;
        }
        if t.starts_with("//") {
            continue;
        }
        if t.starts_with("#[") {
            hidden_attr |= t.starts_with("#[doc(hidden)]");
            // A fence written as `#[cfg_attr(feature = "..", doc = "```")]`
            // (a runnable example when the feature is on; the
            // `cfg_attr(not(..))` twin is the same fence).
            if t.starts_with("#[cfg_attr(feature")
                && let Some((_, d)) = t.split_once("doc = \"")
            {
                doc.push(d.trim_end_matches(")]").trim_end_matches('"').to_string());
            }
            continue;
        }
        let words: Vec<&str> = t
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .collect();
        if hidden_attr && words.starts_with(&["pub", "mod"]) && t.ends_with('{') {
            hidden_from.get_or_insert(depth);
        }
        if hidden_from.is_none()
            && !hidden_attr
            && t.starts_with("pub ")
            && !t.starts_with("pub(")
            && let Some(k) = words
                .iter()
                .position(|w| matches!(*w, "struct" | "enum" | "trait" | "fn" | "type"))
            && let Some(name) = words.get(k + 1)
        {
            out.push(Item {
                at: format!("{rel}:{}", n + 1),
                kind: words[k].to_string(),
                name: name.to_string(),
                examples: examples(&doc),
            });
        }
        depth += t.matches('{').count() as i64 - t.matches('}').count() as i64;
        if hidden_from.is_some_and(|d| depth <= d) {
            hidden_from = None;
        }
        doc.clear();
        hidden_attr = false;
    }
    out
}

/// The fenced code blocks of a doc comment (not `text` ones).
fn examples(doc: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    // Inside a fence: the code so far, or `None` for a `text` block.
    let mut fence: Option<Option<String>> = None;
    for l in doc {
        let t = l.trim_start();
        if t.starts_with("```") {
            fence = match fence.take() {
                Some(Some(body)) => {
                    out.push(body);
                    None
                }
                Some(None) => None,
                None if t.starts_with("```text") => Some(None),
                None => Some(Some(String::new())),
            };
        } else if let Some(Some(body)) = fence.as_mut() {
            body.push_str(l);
            body.push('\n');
        }
    }
    out
}

fn tevent_items() -> Vec<Item> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tevent/src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            let rel = f.strip_prefix(&root).unwrap().display().to_string();
            items(f, &rel)
        })
        .collect()
}

#[test]
fn every_public_type_and_send_function_of_tevent_has_an_example() {
    let items = tevent_items();
    let checked: Vec<&Item> = items
        .iter()
        .filter(|i| {
            matches!(i.kind.as_str(), "struct" | "enum" | "trait")
                || (i.kind == "fn" && i.name.ends_with("_send"))
        })
        .collect();
    let missing: Vec<String> = checked
        .iter()
        .filter(|i| i.examples.is_empty())
        .map(|i| format!("{} {} {}", i.at, i.kind, i.name))
        .collect();
    assert!(
        missing.is_empty(),
        "without an example:\n{}",
        missing.join("\n")
    );
    assert!(checked.len() > 60, "only {} items found", checked.len());
}

#[test]
fn no_two_doc_examples_of_tevent_are_the_same() {
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for item in tevent_items() {
        for e in item.examples {
            seen.entry(e)
                .or_default()
                .push(format!("{} {}", item.at, item.name));
        }
    }
    let copies: Vec<String> = seen
        .values()
        .filter(|at| at.len() > 1)
        .map(|at| at.join(", "))
        .collect();
    assert!(
        copies.is_empty(),
        "the same example on several items (link to one instead):\n{}",
        copies.join("\n")
    );
    assert!(seen.len() > 150, "only {} examples found", seen.len());
}
