//! Procedural macros for `tevent`.
//!
//! This crate will hold the `#[tevent_request]` attribute as a thin shim: all
//! parsing, validation and expansion live in `tevent-codegen`, a plain library
//! that can be unit-tested and reused by the `tevent-expand` tool. The attribute
//! itself is the subject of a later milestone; the crate is part of the
//! workspace now so its place and dependencies are fixed.
