//! `cargo tevent-expand`: `tevent-expand` as a cargo subcommand. Installed
//! with it (`cargo install --path tevent-codegen`, or `cargo install
//! tevent-codegen`); cargo runs it for `cargo tevent-expand ARGS`. Without
//! a file, it looks through the current package's `.rs` files (but
//! `target/` and the directories of other packages; `--manifest-path`
//! names another package) for the request `--request` names.
//!
//! ```text
//! cargo tevent-expand --request Echo                  its expansion
//! cargo tevent-expand --request Echo --graph dot      its step graph in DOT
//! cargo tevent-expand --graph mermaid src/echo.rs     as tevent-expand does
//! ```

mod tool;

fn main() -> std::process::ExitCode {
    tool::main(tool::Invocation::Cargo)
}
