//! The code listings of the tutorial that mirror a file of the repository:
//! chapter 5 shows the requests of `examples/fetch.rs` beside their
//! `async`/`await` equivalent and reports both lengths, and lists every
//! error of the attribute with its UI test. These tests keep the listing
//! equal to the file's text, the reported ratio true, and the error table
//! and `tests/ui/` naming the same tests.

use std::path::Path;

/// The text of `rel`, a path from the repository's root.
fn read(rel: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The body of the first fenced block after the line containing `marker`.
fn listing_after(doc: &str, marker: &str) -> String {
    let at = doc
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in the chapter"));
    let rest = &doc[at..];
    let open = rest.find("```rust").expect("a fenced block follows");
    let body = &rest[open..];
    let body = &body[body.find('\n').expect("the fence line ends") + 1..];
    let close = body.find("\n```").expect("the block is closed");
    body[..close + 1].to_string()
}

/// Lines that are neither blank nor comments (`//`, `///`, `//!`).
fn code_lines(text: &str) -> usize {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .count()
}

const CHAPTER: &str = "docs/05-tevent-request-macro.md";

#[test]
fn the_fetch_listing_is_the_example_text() {
    let doc = read(CHAPTER);
    let listing = listing_after(&doc, "<!-- fetch.rs requests");
    let file = read("examples/fetch.rs");
    assert!(
        file.contains(&listing),
        "the listing in {CHAPTER} differs from examples/fetch.rs: copy the requests again\n{listing}"
    );
}

#[test]
fn the_fetch_requests_are_at_most_one_and_a_half_times_the_async_fns() {
    let doc = read(CHAPTER);
    let ours = code_lines(&listing_after(&doc, "<!-- fetch.rs requests"));
    let theirs = code_lines(&listing_after(&doc, "<!-- fetch, async"));
    let reported = format!("**{ours} lines of\nrequests against {theirs} of `async fn`s");
    assert!(
        doc.contains(&reported),
        "the chapter must report {ours} against {theirs} (as `{reported}`)"
    );
    assert!(
        ours * 2 <= theirs * 3,
        "{ours} lines of requests against {theirs}: more than 1.5 times"
    );
}

/// The names in backquotes of the last column of chapter 5's error table.
fn error_table_tests(doc: &str) -> std::collections::BTreeSet<String> {
    let at = doc
        .find("| message | cause | UI test (`tests/ui/`) |")
        .expect("the error table");
    doc[at..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .flat_map(|row| {
            let last = row.trim_end_matches('|').rsplit('|').next().unwrap_or("");
            last.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_error_table_and_the_ui_tests_name_the_same_tests() {
    let doc = read(CHAPTER);
    let in_table = error_table_tests(&doc);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    let on_disk: std::collections::BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("tests/ui")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let missing: Vec<_> = on_disk.difference(&in_table).collect();
    let stale: Vec<_> = in_table.difference(&on_disk).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "UI tests without a row in chapter 5's error table: {missing:?}; rows naming no UI test: {stale:?}"
    );
    assert!(
        in_table.len() > 40,
        "only {} tests in the table",
        in_table.len()
    );
}
