//! Arbitrary text, split into an attribute and an item, fed to the code
//! generator: it never panics; it either expands or returns at least one
//! spanned error (and `expand`, the macro's entry point, always gives some
//! output). An expansion of an item that is valid Rust parses as Rust; step
//! bodies are the user's tokens, passed through, so a body with a syntax
//! error expands to code that carries it for rustc to report.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proc_macro2::TokenStream;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The attribute is what comes before the first newline.
    let (attr, item) = text.split_once('\n').unwrap_or(("", &text));
    let (Ok(attr), Ok(item)) = (attr.parse::<TokenStream>(), item.parse::<TokenStream>()) else {
        // A macro only ever sees text that lexes.
        return;
    };
    match tevent_codegen::try_expand(attr.clone(), item.clone()) {
        Ok(out) => {
            if syn::parse2::<syn::ItemImpl>(item.clone()).is_ok() {
                syn::parse2::<syn::File>(out).expect("the expansion of valid Rust parses");
            }
        }
        Err(e) => assert!(e.into_iter().count() > 0),
    }
    assert!(!tevent_codegen::expand(attr, item).is_empty());
});
