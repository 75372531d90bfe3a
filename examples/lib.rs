//! Shared code of the example programs (kept in a library so the tests can
//! drive it in-process).

pub mod cli;
pub mod echo;
pub mod line;
