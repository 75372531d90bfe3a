//! The code generator behind `#[tevent_request]`.
//!
//! It is a plain library (not a proc-macro crate) so that its phases, parse →
//! validate → expand → graph, can be tested as ordinary functions with snapshot
//! tests, and reused by the `tevent-expand` command-line tool that prints an
//! expansion or a step graph. The attribute is the subject of a later
//! milestone; this crate fixes its place in the workspace.
