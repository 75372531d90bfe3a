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
