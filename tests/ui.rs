//! Compile-fail tests of `#[tevent_request]`: one file per check in
//! `tests/ui/` (and in `tests/ui/pass/`, what must build and run), each with the compiler output it must produce (`.stderr`,
//! reviewed and committed). rustc's wording changes between releases, so
//! they run only on the toolchain they were recorded with (below); on any
//! other they are reported as ignored, never silently re-recorded. To
//! re-record after a deliberate change: `TRYBUILD=overwrite cargo test -p
//! tests --test ui`, then review the `.stderr` diffs.

#[rustversion::attr(
    not(stable(1.95)),
    ignore = "the .stderr files were recorded with rustc 1.95"
)]
#[test]
fn tevent_request_compile_errors() {
    let t = trybuild::TestCases::new();
    // A `pass` case makes trybuild build every case instead of only
    // checking it: some graph checks run when code is generated.
    t.pass("ui/pass/*.rs");
    t.compile_fail("ui/*.rs");
}

/// No committed compiler output names a generated item the user cannot
/// see: an identifier with `__` (or a `__private` path) in a `.stderr` must
/// be one the test's own source writes (the sealing tests call `__done` on
/// purpose).
#[test]
fn no_expected_error_names_a_hidden_item() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("tests/ui") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "stderr") {
            continue;
        }
        let stderr = std::fs::read_to_string(&path).expect("stderr");
        let source = std::fs::read_to_string(path.with_extension("rs")).expect("its source");
        for word in stderr.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
            // (A run of `_` alone is a span's underline.)
            if word.contains("__") && word.chars().any(|c| c != '_') {
                assert!(
                    source.contains(word),
                    "{} names `{word}`, which its source does not write",
                    path.display()
                );
            }
        }
        checked += 1;
    }
    assert!(checked > 40, "only {checked} .stderr files");
}
