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

/// No committed compiler output names an item the user cannot see: no
/// identifier with `__` (a generated or hidden name) and no `__private`
/// path, not even in the sealing tests, which call the runtime's glue by
/// hand through `tevent::route`.
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
        for word in stderr.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
            // (A run of `_` alone is a span's underline.)
            assert!(
                !(word.contains("__") && word.chars().any(|c| c != '_')),
                "{} names `{word}`",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(checked > 40, "only {checked} .stderr files");
}
