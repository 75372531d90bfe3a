//! The `#[tevent_request]` attribute, a thin shim: parsing, checks and code
//! generation live in `tevent-codegen` (a plain library, tested on its own
//! and shared with the `tevent-expand` tool). Use it through the `tevent`
//! crate, which re-exports it and documents it: `use tevent::tevent_request;`.

use proc_macro::TokenStream;

/// Turns an `impl` block of a request's state type, with the request's steps
/// declared in the attribute, into a checked request: `impl Request`, a
/// typed handle per step, `<name>_send` / `<name>_recv`, the glue between
/// the steps, and the step graph. See `tevent::tevent_request` for the full
/// description.
#[proc_macro_attribute]
pub fn tevent_request(attr: TokenStream, item: TokenStream) -> TokenStream {
    tevent_codegen::expand(attr.into(), item.into()).into()
}
