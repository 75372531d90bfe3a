//! Snapshot tests of the expansion: each `tests/expand/<case>.rs` holds one
//! `#[tevent_request]` item; its expansion, formatted with prettyplease, must
//! equal `tests/expand/<case>.expanded.rs` (reviewed like code). After a
//! deliberate change: `UPDATE_EXPECT=1 cargo test -p tevent-codegen --test
//! expand`, then review the diff.

use expect_test::expect_file;
use proc_macro2::TokenStream;

/// The expansion of the one `#[tevent_request]` item in `source`.
fn expand(source: &str) -> String {
    let file = syn::parse_file(source).expect("the case parses");
    let mut item = match file.items.into_iter().next() {
        Some(syn::Item::Impl(i)) => i,
        _ => panic!("the case is one impl block"),
    };
    let pos = item
        .attrs
        .iter()
        .position(|a| a.path().is_ident("tevent_request"))
        .expect("the impl has #[tevent_request]");
    let attr = item.attrs.remove(pos);
    let args = match attr.meta {
        syn::Meta::List(l) => l.tokens,
        _ => TokenStream::new(),
    };
    let out = tevent_codegen::try_expand(args, quote::quote!(#item))
        .unwrap_or_else(|e| panic!("expansion failed: {e}"));
    let file: syn::File = syn::parse2(out).expect("the expansion parses");
    prettyplease::unparse(&file)
}

macro_rules! case {
    ($name:ident) => {
        #[test]
        fn $name() {
            let source = include_str!(concat!("expand/", stringify!($name), ".rs"));
            expect_file![concat!("expand/", stringify!($name), ".expanded.rs")]
                .assert_eq(&expand(source));
        }
    };
}

case!(one_step);
case!(loop_);
case!(branch);
case!(fan_out);
case!(generic);
case!(forever);
case!(nesting);
case!(carried);
