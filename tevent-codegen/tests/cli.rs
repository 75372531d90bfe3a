//! The `tevent-expand` tool, run as a user would: expansions, graphs, errors
//! as `FILE:LINE:COLUMN: message`, and its command line (usage, exit 2).

use std::process::{Command, Output};

fn tool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tevent-expand"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("tevent-expand runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn prints_every_item_of_a_file_expanded_and_formatted() {
    let out = tool(&["tests/cli/two.rs"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        stdout.contains("// #[tevent_request] at tests/cli/two.rs:6, expanded"),
        "{stdout}"
    );
    assert!(
        stdout.contains("// #[tevent_request] at tests/cli/two.rs:21, expanded"),
        "{stdout}"
    );
    assert!(
        stdout.contains("fn quick_send(ev: &::tevent::Context) -> ::tevent::Req<Quick>"),
        "{stdout}"
    );
    assert!(stdout.contains("pub(crate) fn nap_send("), "{stdout}");
    // Formatted Rust: the two expansions, one after the other, parse.
    syn::parse_file(&stdout).expect("the printed expansions are Rust");
}

#[test]
fn prints_the_step_graphs_as_one_document() {
    // Two requests: one DOT digraph, a cluster each.
    let out = tool(&["--graph", "dot", "tests/cli/two.rs"]);
    assert_eq!(out.status.code(), Some(0));
    let dot = text(&out.stdout);
    assert!(
        dot.starts_with(
            "// tests/cli/two.rs: Quick (tests/cli/two.rs:6), Nap (tests/cli/two.rs:21)\ndigraph \"tests/cli/two.rs\" {\n"
        ),
        "{dot}"
    );
    assert_eq!(dot.matches("digraph").count(), 1, "{dot}");
    assert!(
        dot.contains("    subgraph \"cluster_0\" {\n        label=\"Quick\";"),
        "{dot}"
    );
    assert!(
        dot.contains("    subgraph \"cluster_1\" {\n        label=\"Nap\";"),
        "{dot}"
    );
    assert!(
        dot.contains("        r1_s0 -> r1_s1;\n        r1_s1 -> r1_done;"),
        "{dot}"
    );

    // One request, picked with --request: its own digraph.
    let out = tool(&["--graph", "dot", "--request", "Nap", "tests/cli/two.rs"]);
    assert_eq!(out.status.code(), Some(0));
    let dot = text(&out.stdout);
    assert!(
        dot.starts_with("// Nap (tests/cli/two.rs:21)\ndigraph \"Nap\" {"),
        "{dot}"
    );
    assert!(dot.contains("s0 -> s1;\n    s1 -> \"done\";"), "{dot}");

    // Mermaid: one diagram per document, so one request.
    let out = tool(&["--graph", "mermaid", "--request", "Nap", "tests/cli/two.rs"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        "%% Nap (tests/cli/two.rs:21)\nstateDiagram-v2\n    state \"start\" as s0\n    state \"woke\" as s1\n    [*] --> s0\n    s0 --> s1\n    s1 --> [*]\n"
    );
    let out = tool(&["--graph", "mermaid", "tests/cli/two.rs"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr).trim_end(),
        "tevent-expand: 2 requests in tests/cli/two.rs (a Mermaid document holds one diagram): name one with --request NAME: Quick (tests/cli/two.rs:6), Nap (tests/cli/two.rs:21)"
    );
}

/// `--request` on a name the file does not have: exit 1, and the names it
/// has.
#[test]
fn an_unknown_request_exits_1_with_the_names_found() {
    for mode in [&[][..], &["--graph", "dot"], &["--graph", "mermaid"]] {
        let mut args = mode.to_vec();
        args.extend(["--request", "Nope", "tests/cli/two.rs"]);
        let out = tool(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty());
        assert_eq!(
            text(&out.stderr).trim_end(),
            "tevent-expand: no request named `Nope` in tests/cli/two.rs; the requests there: Quick (tests/cli/two.rs:6), Nap (tests/cli/two.rs:21)"
        );
    }
    // The expansion of the one named.
    let out = tool(&["--request", "Quick", "tests/cli/two.rs"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("fn quick_send("), "{stdout}");
    assert!(!stdout.contains("fn nap_send("), "{stdout}");
}

/// The recipe: `tevent-expand --graph dot examples/echo.rs | dot
/// -Tsvg` gave two SVG documents in one file (two digraphs). Now one
/// digraph: Graphviz, where installed, draws it as one valid SVG document;
/// without it, the DOT text is checked for one digraph with balanced
/// braces and a cluster per request.
#[test]
fn the_graph_of_a_file_with_several_requests_is_one_valid_svg() {
    let out = tool(&["--graph", "dot", "../examples/echo.rs"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let dot = text(&out.stdout);
    // The structure, always.
    assert_eq!(dot.matches("digraph ").count(), 1, "{dot}");
    assert_eq!(dot.matches('{').count(), dot.matches('}').count(), "{dot}");
    assert!(dot.trim_end().ends_with('}'), "{dot}");
    assert_eq!(dot.matches("subgraph \"cluster_").count(), 2, "{dot}");
    assert!(dot.contains("label=\"Echo\";") && dot.contains("label=\"EchoServer\";"));
    // Graphviz, if it is there.
    let graphviz = Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let Ok(mut child) = graphviz else {
        eprintln!("(Graphviz's dot is not installed: the structural check only)");
        return;
    };
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), dot.as_bytes()).unwrap();
    let svg = child.wait_with_output().unwrap();
    assert!(svg.status.success(), "{}", text(&svg.stderr));
    let svg = text(&svg.stdout);
    assert_eq!(svg.matches("<?xml").count(), 1, "one document");
    assert_eq!(svg.matches("<svg").count(), 1, "one picture");
    assert!(svg.trim_end().ends_with("</svg>"));
    for step in ["start", "read", "write", "accepted", "retry", "client_done"] {
        assert!(svg.contains(&format!(">{step}</text>")), "{step}");
    }
}

/// `cargo tevent-expand` (the `cargo-tevent-expand` binary, as cargo runs
/// it) in a user's package: finds the file of the request `--request`
/// names, anywhere in the package; errors keep `FILE:LINE:COLUMN`.
#[test]
fn the_cargo_subcommand_finds_the_request_in_the_package() {
    let dir = std::env::temp_dir().join(format!("tevent-expand-pkg-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("src/deep")).unwrap();
    std::fs::create_dir_all(dir.join("target/debug")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"mine\"\nversion = \"0.1.0\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("src/lib.rs"), "mod deep;\n").unwrap();
    std::fs::copy("tests/cli/two.rs", dir.join("src/deep/mod.rs")).unwrap();
    // Not part of the package: never read.
    std::fs::write(dir.join("target/debug/junk.rs"), "fn (").unwrap();
    let cargo_tool = |args: &[&str], cwd: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_cargo-tevent-expand"))
            .arg("tevent-expand")
            .args(args)
            .current_dir(cwd)
            .output()
            .expect("cargo-tevent-expand runs")
    };
    let out = cargo_tool(&["--request", "Nap", "--graph", "dot"], &dir.join("src"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("// Nap (deep/mod.rs:21)\ndigraph \"Nap\" {"),
        "{}",
        text(&out.stdout)
    );
    // From elsewhere, with --manifest-path; a file given works as in
    // tevent-expand.
    let manifest = dir.join("Cargo.toml");
    let out = cargo_tool(
        &[
            "--manifest-path",
            manifest.to_str().unwrap(),
            "--request",
            "Quick",
        ],
        &std::env::temp_dir(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("fn quick_send("));
    let out = cargo_tool(&["--request", "Nope"], &dir);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no request named `Nope` in the package at .; the requests there: Quick (src/deep/mod.rs:6), Nap (src/deep/mod.rs:21)"),
        "{stderr}"
    );
    // Errors at their place, relative to where it runs.
    std::fs::copy("tests/cli/bad.rs", dir.join("src/bad.rs")).unwrap();
    let out = cargo_tool(&["--request", "Bad"], &dir);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("src/bad.rs:5:34: unknown step `nowhere`"),
        "{stderr}"
    );
    // Outside any package.
    let out = cargo_tool(&["--request", "Nap"], std::path::Path::new("/"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no package"),
        "{}",
        text(&out.stderr)
    );
    // Run as `cargo-tevent-expand` by hand (without the subcommand's
    // name), it works too; its usage names both forms.
    let out = Command::new(env!("CARGO_BIN_EXE_cargo-tevent-expand"))
        .args(["--help"])
        .output()
        .unwrap();
    assert!(text(&out.stdout).contains("cargo tevent-expand [--request NAME]"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_invalid_item_gives_each_error_at_its_place_in_source_order_and_exit_1() {
    let out = tool(&["tests/cli/bad.rs"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            "tests/cli/bad.rs:5:34: unknown step `nowhere`: the declared steps are `start` (and `done` finishes the request)",
            "tests/cli/bad.rs:6:6: missing `type Output = ...;` in this impl block (what the request produces)",
            "tests/cli/bad.rs:6:6: missing `type Error = ...;` in this impl block (the request's own error type)",
        ],
        "{stderr}"
    );
}

#[test]
fn a_file_that_does_not_parse_is_reported_at_its_place() {
    let dir = std::env::temp_dir().join(format!("tevent-expand-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("broken.rs");
    std::fs::write(&file, "fn main() {\n    let x = ;\n}\n").unwrap();
    let out = tool(&[file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!("{}:2:13: ", file.display())),
        "{stderr}"
    );
    let out = tool(&[dir.join("missing.rs").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bad_command_line_prints_the_usage_and_exits_2() {
    for args in [
        &[][..],
        &["--graph", "svg", "tests/cli/two.rs"],
        &["--graph"],
        &["--verbose", "tests/cli/two.rs"],
        &["a.rs", "b.rs"],
        &["--request"],
        &["--manifest-path", "Cargo.toml", "tests/cli/two.rs"],
    ] {
        let out = tool(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("usage: tevent-expand"),
            "{args:?}: {stderr}"
        );
    }
    let out = tool(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("usage: tevent-expand"));
}

/// Writes `source` to a fresh temporary file and runs the tool on it.
fn tool_on(name: &str, source: &str, args: &[&str]) -> Output {
    let dir = std::env::temp_dir().join(format!("tevent-expand-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{name}.rs"));
    std::fs::write(&file, source).unwrap();
    let mut all: Vec<&str> = args.to_vec();
    all.push(file.to_str().unwrap());
    let out = tool(&all);
    std::fs::remove_dir_all(&dir).unwrap();
    out
}

/// `tevent-expand FILE | head -1` panicked ("failed printing to stdout:
/// Broken pipe"): a reader that went away now ends the tool quietly.
#[test]
fn a_reader_that_goes_away_is_not_a_panic() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_tevent-expand"))
        .arg("tests/cli/two.rs")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(writer)
        .output()
        .expect("tevent-expand runs");
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

/// prettyplease panicked on an item it cannot print (`fn f();` in an impl,
/// which rustc rejects too): now an error at the item, exit 1.
#[test]
fn an_expansion_that_cannot_be_printed_is_an_error() {
    let out = tool_on(
        "verbatim",
        "struct E;\n#[tevent_request(steps(start => [done]))]\nimpl E {\n    type Output = ();\n    type Error = ();\n    fn nobody();\n    fn start(to: EStartStep<'_>) -> Next<Self> { to.create(E).done(()) }\n}\n",
        &[],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("verbatim.rs:6:16: expected the method's body"),
        "{stderr}"
    );
}

/// The attribute under a renamed import was not found ("no
/// #[tevent_request] item", exit 0); on another item than an impl it was
/// not reported; and a file without any item exited 0.
#[test]
fn finds_the_attribute_by_any_name_and_on_any_item() {
    let out = tool_on(
        "renamed",
        "use tevent::{Next, tevent_request as req};\nstruct E;\n#[req(steps(start => [done]))]\nimpl E {\n    type Output = ();\n    type Error = ();\n    fn start(to: EStartStep<'_>) -> Next<Self> { to.create(E).done(()) }\n}\n",
        &["--graph", "mermaid"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("%% E ("),
        "{}",
        text(&out.stdout)
    );

    let out = tool_on(
        "on_fn",
        "use tevent::tevent_request;\n#[tevent_request(steps(start => [done]))]\nfn start() {}\n",
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("on_fn.rs:3:4: #[tevent_request] goes on an `impl` block"),
        "{stderr}"
    );

    let out = tool_on("nothing", "fn main() {}\n", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no #[tevent_request] item"));
}

/// An error about the attribute as a whole (`#[tevent_request]` without
/// arguments) was reported at 1:1, the start of the file: now at the
/// attribute.
#[test]
fn an_error_about_the_whole_attribute_is_at_the_attribute() {
    let out = tool_on(
        "bare",
        "struct E;\n\n    #[tevent_request]\nimpl E {\n    type Output = ();\n    type Error = ();\n}\n",
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.contains("bare.rs:3:5: no `steps(...)` list"),
        "{stderr}"
    );
}
