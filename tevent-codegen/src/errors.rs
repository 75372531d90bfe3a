//! Every error found in one item, collected so the user sees all of them in
//! one compile (each a `syn::Error` spanned on the offending tokens).

use proc_macro2::Span;
use std::fmt::Display;

/// The errors of one `#[tevent_request]` item.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    /// Adds `message` at `span`.
    pub(crate) fn at(&mut self, span: Span, message: impl Display) {
        self.push(syn::Error::new(span, message));
    }

    /// Adds `message` spanning `tokens`.
    pub(crate) fn spanned(&mut self, tokens: impl quote::ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Adds an error (which may hold several).
    pub(crate) fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    /// How many errors were found.
    pub(crate) fn count(&self) -> usize {
        self.0.as_ref().map_or(0, |e| e.clone().into_iter().count())
    }

    /// All of them as one error, if any, in source order (the order the
    /// checks ran in is not the user's).
    pub(crate) fn into_result(self) -> Result<(), syn::Error> {
        let Some(all) = self.0 else {
            return Ok(());
        };
        let mut each: Vec<syn::Error> = all.into_iter().collect();
        // Stable: errors at one place, or where the compiler gives no
        // position (0:0), keep the order they were found in.
        each.sort_by_key(|e| {
            let at = e.span().start();
            (at.line, at.column)
        });
        let mut each = each.into_iter();
        let mut out = each.next().expect("one error at least");
        for e in each {
            out.combine(e);
        }
        Err(out)
    }
}
