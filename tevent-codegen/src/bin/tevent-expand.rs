//! `tevent-expand`: prints what `#[tevent_request]` generates, or the step
//! graphs, for the `#[tevent_request]` items of a Rust source file (see
//! `tool`, shared with `cargo-tevent-expand`, and `tevent-expand --help`).
//!
//! ```text
//! tevent-expand FILE.rs                                 the expansions, formatted
//! tevent-expand --graph dot FILE.rs | dot -Tsvg > g.svg the step graphs, one DOT digraph
//! tevent-expand --request Echo --graph mermaid FILE.rs  one request's graph as Mermaid
//! ```

mod tool;

fn main() -> std::process::ExitCode {
    tool::main(tool::Invocation::Direct)
}
