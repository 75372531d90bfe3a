//! Reading the attribute's arguments and the `impl` block into a
//! [`Request`]. Syntax errors are collected, not fatal: a malformed steps
//! list still gives a `Request` (with no steps), so a stub can be emitted.

use std::collections::BTreeSet;

use proc_macro2::{Span, TokenStream};
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Ident, ImplItem, ItemImpl, Token, Type};

use crate::ast::{Decl, Request};
use crate::errors::Errors;

/// The attribute's grammar, quoted in syntax errors.
pub(crate) const SYNTAX: &str = "the attribute reads `#[tevent_request(steps(start => [next, ...], next => [done], ...))]` \
     (one successor needs no brackets, and a run of single successors chains: `start => read => done`), \
     with `, forever` after the list for a request that never finishes by itself, and \
     `crate = path` for a renamed or re-exported `tevent`";

/// What the input turned out to be.
pub(crate) enum Parsed {
    /// An `impl` block (with the attribute's steps, unless `errors` says the
    /// attribute was malformed).
    Impl(Box<Request>, Errors),
    /// Not something the attribute applies to: the item goes back unchanged.
    Other(TokenStream, syn::Error),
}

/// Reads `#[tevent_request(attr)] item`.
pub(crate) fn parse(attr: TokenStream, item: TokenStream) -> Parsed {
    let mut errors = Errors::default();
    let mut broken = BTreeSet::new();
    // The block with its methods' bodies kept as tokens (a syntax error in
    // a body is rustc's to report, once, and changes nothing here); an item
    // whose signature does not parse is reported and left out.
    let parsed = (|input: ParseStream<'_>| opaque_impl(input, &mut errors, &mut broken))
        .parse2(item.clone());
    let imp = match parsed {
        Ok(imp) => imp,
        Err(e) => {
            let msg = match syn::parse2::<syn::Item>(item.clone()) {
                Ok(other) => syn::Error::new(
                    item_span(&other),
                    "#[tevent_request] goes on an `impl` block of the request's state type",
                ),
                Err(_) => e,
            };
            return Parsed::Other(item, msg);
        }
    };
    let attr_span = attr_span(&attr);
    let mut krate = None;
    let (decls, steps_span, forever, parsed) = match parse_args.parse2(attr) {
        Ok(Args {
            decls,
            steps_span,
            forever,
            krate: k,
        }) => {
            krate = k;
            if steps_span.is_none() {
                errors.at(attr_span, format!("no `steps(...)` list: {SYNTAX}"));
            }
            (
                decls,
                steps_span.unwrap_or(attr_span),
                forever,
                steps_span.is_some(),
            )
        }
        Err(e) => {
            errors.at(e.span(), format!("{e}: {SYNTAX}"));
            (Vec::new(), attr_span, None, false)
        }
    };
    match request(imp, (decls, steps_span, parsed), forever, &mut errors) {
        Some(mut req) => {
            req.broken = broken;
            req.krate = krate;
            Parsed::Impl(Box::new(req), errors)
        }
        None => {
            let why = match errors.into_result() {
                Err(e) => e,
                Ok(()) => syn::Error::new(attr_span, "#[tevent_request] cannot use this item"),
            };
            // An `impl` block the attribute cannot use (a trait impl, an
            // impl of an unnamed type) is written for it, with steps and
            // `type Output` that would each add rustc's error beside ours
            // (E0407, E0390, E0658): it is left out.
            Parsed::Other(TokenStream::new(), why)
        }
    }
}

/// The span to report "this is not an impl" at.
fn item_span(item: &syn::Item) -> Span {
    match item {
        syn::Item::Struct(s) => s.ident.span(),
        syn::Item::Enum(e) => e.ident.span(),
        syn::Item::Fn(f) => f.sig.ident.span(),
        other => other.span(),
    }
}

/// Where the attribute's arguments are (the call site if there are none).
fn attr_span(attr: &TokenStream) -> Span {
    let mut tokens = attr.clone().into_iter();
    match tokens.next() {
        Some(first) => {
            let start = first.span();
            tokens
                .last()
                .and_then(|l| start.join(l.span()))
                .unwrap_or(start)
        }
        None => Span::call_site(),
    }
}

struct Args {
    decls: Vec<Decl>,
    steps_span: Option<Span>,
    forever: Option<Span>,
    krate: Option<syn::Path>,
}

fn parse_args(input: ParseStream<'_>) -> syn::Result<Args> {
    let mut args = Args {
        decls: Vec::new(),
        steps_span: None,
        forever: None,
        krate: None,
    };
    while !input.is_empty() {
        let key: Ident = input.call(syn::ext::IdentExt::parse_any)?;
        match key.to_string().as_str() {
            "steps" => {
                if args.steps_span.is_some() {
                    return Err(syn::Error::new(key.span(), "`steps` given twice"));
                }
                args.steps_span = Some(key.span());
                if !input.peek(syn::token::Paren) {
                    return Err(syn::Error::new(
                        key.span(),
                        "`steps` takes its list in parentheses",
                    ));
                }
                let content;
                syn::parenthesized!(content in input);
                let decls = Punctuated::<Vec<Decl>, Token![,]>::parse_terminated_with(
                    &content, parse_decl,
                )?;
                args.decls = decls.into_iter().flatten().collect();
            }
            "forever" => {
                if args.forever.is_some() {
                    return Err(syn::Error::new(key.span(), "`forever` given twice"));
                }
                args.forever = Some(key.span());
            }
            "crate" => {
                if args.krate.is_some() {
                    return Err(syn::Error::new(key.span(), "`crate` given twice"));
                }
                if !input.peek(Token![=]) {
                    return Err(syn::Error::new(
                        key.span(),
                        "`crate` takes the path `tevent` is known by: `crate = tv`",
                    ));
                }
                input.parse::<Token![=]>()?;
                args.krate = Some(input.call(syn::Path::parse_mod_style)?);
            }
            other => {
                return Err(syn::Error::new(
                    key.span(),
                    format!("unknown argument `{other}`"),
                ));
            }
        }
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(args)
}

/// `name => [a, b, ...]`, `name => a` (one successor), or a chain of
/// single successors, `a => b => c => [d, e]`, which declares each step in
/// it with the next as its successor.
fn parse_decl(input: ParseStream<'_>) -> syn::Result<Vec<Decl>> {
    let mut name: Ident = input.call(syn::ext::IdentExt::parse_any)?;
    let mut decls = Vec::new();
    loop {
        input.parse::<Token![=>]>()?;
        if input.peek(syn::token::Bracket) {
            let content;
            syn::bracketed!(content in input);
            let succ = Punctuated::<Ident, Token![,]>::parse_terminated_with(&content, |c| {
                c.call(syn::ext::IdentExt::parse_any)
            })?;
            if input.peek(Token![=>]) {
                return Err(syn::Error::new(
                    input.span(),
                    "a bracketed list ends a chain (`a => b => [c, d]`): declare what follows on its own (`c => ...`)",
                ));
            }
            decls.push(Decl {
                name,
                succ: succ.into_iter().collect(),
            });
            return Ok(decls);
        }
        let next: Ident = input.call(syn::ext::IdentExt::parse_any)?;
        decls.push(Decl {
            name,
            succ: vec![next.clone()],
        });
        if !input.peek(Token![=>]) {
            return Ok(decls);
        }
        name = next;
    }
}

/// `impl<..> Type where .. { items }` with each method's body kept as the
/// tokens it is (`syn` would parse every statement): the attribute reads
/// only signatures. An item that does not parse is reported in `errors` and
/// skipped (up to the next `;` or `{..}` at its level), so the other items,
/// and every name the expansion defines, are still there. A trait impl or
/// anything else that is not an inherent impl is left to `syn`'s parser.
fn opaque_impl(
    input: ParseStream<'_>,
    errors: &mut Errors,
    broken: &mut BTreeSet<String>,
) -> syn::Result<ItemImpl> {
    let fork = input.fork();
    let attrs = fork.call(syn::Attribute::parse_outer)?;
    if fork.peek(Token![unsafe]) || fork.peek(Token![default]) || !fork.peek(Token![impl]) {
        return input.parse();
    }
    let impl_token: Token![impl] = fork.parse()?;
    let mut generics: syn::Generics = fork.parse()?;
    let self_ty: Type = fork.parse()?;
    if fork.peek(Token![for]) || fork.peek(Token![!]) {
        return input.parse(); // a trait impl: reported from syn's model
    }
    generics.where_clause = fork.parse()?;
    let content;
    let brace_token = syn::braced!(content in fork);
    let mut attrs = attrs;
    attrs.extend(content.call(syn::Attribute::parse_inner)?);
    let mut items = Vec::new();
    while !content.is_empty() {
        match impl_item(&content) {
            Ok(item) => items.push(item),
            Err(e) => {
                // rustc reports its own syntax error too (it parses the
                // item before the attribute runs), but not always: syn may
                // not know a newer syntax. This error makes sure the item
                // does not compile without the method it leaves out, and
                // says so; no other error follows from the missing item.
                errors.at(
                    e.span(),
                    format!("{e}: #[tevent_request] cannot read this item, and leaves it out"),
                );
                if let Some(name) = item_name(&content) {
                    broken.insert(name);
                }
                skip_item(&content)?;
            }
        }
    }
    let imp = ItemImpl {
        attrs,
        modifiers: syn::ImplModifiers::default(),
        unsafety: None,
        impl_token,
        generics,
        trait_: None,
        self_ty: Box::new(self_ty),
        brace_token,
        items,
    };
    use syn::parse::discouraged::Speculative;
    input.advance_to(&fork);
    Ok(imp)
}

/// One item of the block: a method with its body as tokens, or any other
/// item as `syn` reads it.
fn impl_item(input: ParseStream<'_>) -> syn::Result<ImplItem> {
    let fork = input.fork();
    let attrs = fork.call(syn::Attribute::parse_outer)?;
    let vis: syn::Visibility = fork.parse()?;
    let mut modifiers = syn::FnModifiers::default();
    modifiers.defaultness = fork.parse()?;
    // `const`, `async`, `unsafe`, `extern "abi"` may come before `fn`.
    let ahead = fork.fork();
    let _ = ahead.parse::<Option<Token![const]>>();
    let _ = ahead.parse::<Option<Token![async]>>();
    let _ = ahead.parse::<Option<Token![unsafe]>>();
    if ahead.peek(Token![extern]) {
        let _ = ahead.parse::<Token![extern]>();
        let _ = ahead.parse::<Option<syn::LitStr>>();
    }
    if !ahead.peek(Token![fn]) {
        return input.parse();
    }
    let sig: syn::Signature = fork.parse()?;
    let body = match fork.parse::<proc_macro2::Group>() {
        Ok(g) if g.delimiter() == proc_macro2::Delimiter::Brace => g,
        _ => {
            return Err(syn::Error::new(
                fork.span(),
                "expected the method's body, `{ ... }`",
            ));
        }
    };
    use syn::parse::discouraged::Speculative;
    input.advance_to(&fork);
    let brace_token = syn::token::Brace {
        span: body.delim_span(),
    };
    Ok(ImplItem::Fn(syn::ImplItemFn {
        attrs,
        vis,
        modifiers,
        sig,
        block: syn::Block {
            brace_token,
            stmts: vec![syn::Stmt::Item(syn::Item::Verbatim(body.stream()))],
        },
    }))
}

/// The name of the method or associated type that starts `input`, if it
/// can be read.
fn item_name(input: ParseStream<'_>) -> Option<String> {
    let fork = input.fork();
    fork.call(syn::Attribute::parse_outer).ok()?;
    fork.parse::<syn::Visibility>().ok()?;
    while !fork.is_empty() {
        if fork.peek(Token![fn]) || fork.peek(Token![type]) {
            fork.parse::<proc_macro2::TokenTree>().ok()?;
            let name: Ident = fork.call(syn::ext::IdentExt::parse_any).ok()?;
            return Some(crate::names::key(&name));
        }
        if fork.peek(Token![;]) || fork.peek(syn::token::Brace) {
            return None;
        }
        fork.parse::<proc_macro2::TokenTree>().ok()?;
    }
    None
}

/// Skips an item that did not parse, returning its tokens: up to and
/// including the next `;` or brace group at this level (or to the end).
fn skip_item(input: ParseStream<'_>) -> syn::Result<TokenStream> {
    input.step(|cursor| {
        let mut rest = *cursor;
        let mut tokens = TokenStream::new();
        while let Some((tt, next)) = rest.token_tree() {
            rest = next;
            tokens.extend([tt.clone()]);
            match tt {
                proc_macro2::TokenTree::Punct(p) if p.as_char() == ';' => break,
                proc_macro2::TokenTree::Group(g)
                    if g.delimiter() == proc_macro2::Delimiter::Brace =>
                {
                    break;
                }
                _ => {}
            }
        }
        Ok((tokens, rest))
    })
}

/// Splits the `impl` block into the model; `None` (with the reason in
/// `errors`) if it is not an inherent impl of a named type.
fn request(
    imp: ItemImpl,
    (decls, steps_span, steps_parsed): (Vec<Decl>, Span, bool),
    forever: Option<Span>,
    errors: &mut Errors,
) -> Option<Request> {
    if let Some((path, _)) = &imp.trait_ {
        errors.spanned(
            path,
            "#[tevent_request] goes on an inherent `impl` block (it writes the `impl Request` itself)",
        );
        return None;
    }
    let ident = match &*imp.self_ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| s.ident.clone()),
        _ => None,
    };
    let Some(ident) = ident else {
        errors.spanned(
            &imp.self_ty,
            "#[tevent_request] goes on an `impl` block of a named struct or enum (the request's state)",
        );
        return None;
    };
    // A second `#[tevent_request]` on the block (which would run again on
    // what this one emits): reported, and not emitted again.
    let mut attrs = imp.attrs;
    attrs.retain(|a| {
        let again = a
            .path()
            .segments
            .last()
            .is_some_and(|s| s.ident == "tevent_request");
        if again {
            errors.spanned(
                a,
                "#[tevent_request] is given twice on this block: one attribute declares all the steps",
            );
        }
        !again
    });
    let mut output: Option<syn::ImplItemType> = None;
    let mut error: Option<syn::ImplItemType> = None;
    let mut alternatives = Vec::new();
    let mut items = Vec::with_capacity(imp.items.len());
    for item in imp.items {
        match item {
            ImplItem::Type(t) if t.ident == "Output" || t.ident == "Error" => {
                if !t.generics.params.is_empty() {
                    errors.spanned(
                        &t.generics,
                        "`type Output` and `type Error` take no generic parameters",
                    );
                }
                let slot = if t.ident == "Output" {
                    &mut output
                } else {
                    &mut error
                };
                match slot {
                    None => *slot = Some(t),
                    Some(first) if has_cfg(&first.attrs) && has_cfg(&t.attrs) => {
                        alternatives.push(t);
                    }
                    Some(_) => errors.at(
                        t.ident.span(),
                        format!(
                            "`type {}` is given twice (alternatives each carry a `#[cfg]`)",
                            t.ident
                        ),
                    ),
                }
            }
            other => items.push(other),
        }
    }
    Some(Request {
        attrs,
        generics: imp.generics,
        self_ty: *imp.self_ty,
        ident,
        output,
        error,
        alternatives,
        items,
        decls,
        steps_span,
        steps_parsed,
        forever,
        broken: BTreeSet::new(),
        krate: None,
    })
}

/// Whether an item carries a `#[cfg]`.
pub(crate) fn has_cfg(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| a.path().is_ident("cfg"))
}
