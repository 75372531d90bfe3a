//! The code generator behind `#[tevent_request]`.
//!
//! A plain library (not a proc-macro crate), so that its phases can be tested
//! as ordinary functions (snapshot tests of [`expand`]) and reused by the
//! `tevent-expand` tool, which prints an expansion or a step graph:
//!
//! - `parse`: the attribute's steps list and the `impl` block into a model;
//! - `validate`: every check, all errors collected, each spanned;
//! - `expand`: the generated code from a checked model;
//! - `graph`: reachability, paths to `done`, DOT and Mermaid text;
//! - `stub`: what is emitted beside the errors so that no error cascades.
//!
//! The attribute itself is documented with the `tevent` crate
//! (`tevent::tevent_request`) and in `docs/05-tevent-request-macro.md`.

mod ast;
mod errors;
mod expand;
mod graph;
mod names;
mod parse;
mod stub;
mod validate;

use proc_macro2::TokenStream;

/// Expands `#[tevent_request(attr)] item`. Never fails: on errors the
/// result holds a `compile_error!` for each (spanned on the offending
/// tokens) and a stub of everything the expansion would define.
pub fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    match parse::parse(attr, item) {
        parse::Parsed::Other(item, e) => {
            let errors = e.to_compile_error();
            quote::quote!(#errors #item)
        }
        parse::Parsed::Impl(req, errors) => match validate::validate(&req, errors) {
            Ok(m) => names::rebase(expand::expand(&m), req.krate.as_ref()),
            Err(e) => {
                let errors = e.to_compile_error();
                let stub = names::rebase(stub::stub(&req), req.krate.as_ref());
                quote::quote!(#errors #stub)
            }
        },
    }
}

/// Expands `#[tevent_request(attr)] item`, or returns every error (one
/// `syn::Error` holding them all; iterate it for each).
pub fn try_expand(attr: TokenStream, item: TokenStream) -> Result<TokenStream, syn::Error> {
    match parse::parse(attr, item) {
        parse::Parsed::Other(_, e) => Err(e),
        parse::Parsed::Impl(req, errors) => validate::validate(&req, errors)
            .map(|m| names::rebase(expand::expand(&m), req.krate.as_ref())),
    }
}

/// The step graph of a `#[tevent_request]` item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Graph {
    /// The request type's name.
    pub name: String,
    /// The graph in Graphviz DOT.
    pub dot: String,
    /// The graph as a Mermaid state diagram.
    pub mermaid: String,
    /// The step names, in declaration order.
    pub steps: Vec<String>,
    /// The index in `steps` of the step the request starts in.
    pub start: usize,
    /// Every edge, from a step (an index in `steps`) to a step, or to
    /// `done` (`None`).
    pub edges: Vec<(usize, Option<usize>)>,
}

/// The step graphs of several requests as one Graphviz DOT digraph named
/// `title`, with a cluster per request (`dot -Tsvg` draws them as one
/// picture; several `digraph`s in one input give several pictures, which
/// is not one valid SVG file).
pub fn dot_document(title: &str, graphs: &[&Graph]) -> String {
    graph::dot_clusters(title, graphs)
}

/// The step graph of `#[tevent_request(attr)] item`, or every error.
pub fn graph(attr: TokenStream, item: TokenStream) -> Result<Graph, syn::Error> {
    match parse::parse(attr, item) {
        parse::Parsed::Other(_, e) => Err(e),
        parse::Parsed::Impl(req, errors) => {
            let m = validate::validate(&req, errors)?;
            let names: Vec<String> = m.steps.iter().map(|s| names::key(s.name)).collect();
            let edges: Vec<_> = m.steps.iter().map(|s| s.succ.clone()).collect();
            Ok(Graph {
                name: names::key(&req.ident),
                dot: graph::dot(&names::key(&req.ident), &names, &edges, m.start),
                mermaid: graph::mermaid(&names, &edges, m.start),
                edges: graph::edge_list(&edges),
                steps: names,
                start: m.start,
            })
        }
    }
}
