//! What is emitted when the item has errors: the user's code, plus every
//! name the expansion would have defined, with lenient signatures and
//! bodies that are never run, so the compiler reports only the real errors
//! (no "cannot find type `EchoReadStep`" or "no method `write`" cascading
//! from them), and an editor's analyzer keeps completing.

use std::collections::{BTreeMap, BTreeSet};

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::visit_mut::VisitMut;
use syn::{FnArg, Ident, ImplItemFn, Pat, Type};

use crate::ast::Request;
use crate::expand::{
    Replace, deref_step, handle_generics, handle_lifetime, infer_handle, item_generics,
    replace_self,
};
use crate::names;

/// The stub for `req`: each part below, none of which can fail.
pub(crate) fn stub(req: &Request) -> TokenStream {
    let self_ty = &req.self_ty;
    let attrs = &req.attrs;
    let items = block_items(req);
    let g = item_generics(req);
    let (impl_g, _, where_c) = g.split_for_impl();
    let request = request_impl(req, &g);
    let lenient = lenient_routes(req, &g);
    let handles = handles(req, &g);
    let start = req.methods().find(|m| names::key(&m.sig.ident) == "start");
    let vis = start.map_or(syn::Visibility::Inherited, |m| m.vis.clone());
    let send_recv = send_recv(req, &g, start, &vis);
    let consts = graph_consts(req, &vis);
    quote! {
        #request
        #(#attrs)*
        impl #impl_g #self_ty #where_c {
            #(#items)*
        }
        #send_recv
        #[allow(dead_code)]
        impl #impl_g #self_ty #where_c {
            #(#consts)*
        }
        #lenient
        #(#handles)*
    }
}

/// The block's items as the stub re-emits them: handles written `to: _`
/// typed, step return types `Next<Self>`, placeholders filled, a second
/// method of one name left out.
fn block_items(req: &Request) -> Vec<syn::ImplItem> {
    // A method whose handle is written `to: _` gets its handle type (each
    // such handle is defined below), so that a `_` is not reported as well.
    let declared: BTreeSet<String> = req.decls.iter().map(|d| names::key(&d.name)).collect();
    // A second method of one name, neither with a `#[cfg]`, is reported
    // (`defined twice`) and left out, so rustc's E0592 is not added.
    let mut seen: BTreeSet<String> = BTreeSet::new();
    req.items
        .iter()
        .filter(|item| match item {
            syn::ImplItem::Fn(f) if !crate::parse::has_cfg(&f.attrs) => {
                seen.insert(names::key(&f.sig.ident))
            }
            _ => true,
        })
        .map(|item| match item {
            syn::ImplItem::Fn(f) => {
                let mut f = f.clone();
                infer_handle(req, &mut f);
                // A step returns `Next<Self>`; another return type is
                // reported by validation, and not by rustc as well.
                if declared.contains(&names::key(&f.sig.ident)) || f.sig.ident == "start" {
                    next_of_self(&mut f.sig.output);
                }
                if fill_placeholders(&mut f) {
                    // Validation reported the `_`; its body is checked
                    // once the type is written.
                    f.block = syn::parse_quote!({ ::core::unreachable!() });
                    f.attrs.push(syn::parse_quote!(#[allow(unused_variables)]));
                }
                syn::ImplItem::Fn(f)
            }
            other => other.clone(),
        })
        .collect()
}

/// `impl Request` with the block's types as written (their `#[cfg]`s too),
/// or stand-ins for the missing ones.
fn request_impl(req: &Request, g: &syn::Generics) -> TokenStream {
    let self_ty = &req.self_ty;
    let (impl_g, _, where_c) = g.split_for_impl();
    let output = req.output.as_ref().map_or_else(
        || {
            quote!(
                type Output = ();
            )
        },
        |t| quote!(#t),
    );
    let error = req.error.as_ref().map_or_else(
        || {
            quote!(
                type Error = ::core::convert::Infallible;
            )
        },
        |t| quote!(#t),
    );
    let alternatives = &req.alternatives;

    quote! {
        impl #impl_g ::tevent::Request for #self_ty #where_c {
            #output
            #error
            #(#alternatives)*
        }
    }
}

/// Every name a step method could call on its handle, in one hidden trait
/// every handle implements (linear in the number of names), each taking
/// what the subrequest would be and the values a transition into that step
/// carries (as many as its method declares).
fn lenient_routes(req: &Request, g: &syn::Generics) -> TokenStream {
    let self_ty = &req.self_ty;
    let (impl_g, _, where_c) = g.split_for_impl();
    let mut calls: BTreeMap<String, usize> =
        req.decls.iter().map(|d| (names::key(&d.name), 0)).collect();
    for m in req.methods() {
        let typed = m
            .sig
            .inputs
            .iter()
            .filter(|a| matches!(a, FnArg::Typed(_)))
            .count();
        // The handle and the input come first; what follows is carried.
        calls.insert(names::key(&m.sig.ident), typed.saturating_sub(2));
    }
    calls.remove("start");
    for taken in names::RESERVED {
        calls.remove(*taken);
    }
    calls.insert("done".to_string(), 0);
    let calls: Vec<TokenStream> = calls
        .iter()
        .filter_map(|(c, carried)| raw_if_keyword(c).map(|c| (c, *carried)))
        .map(|(c, carried)| {
            let c = names::ident(&c, Span::call_site());
            let tys: Vec<Ident> = (0..carried).map(|k| format_ident!("__C{}", k)).collect();
            quote! {
                fn #c<__X #(, #tys)*>(&self, _: __X #(, _: #tys)*) -> ::tevent::Next<#self_ty> {
                    ::core::unreachable!()
                }
            }
        })
        .collect();
    let routes = names::routes(&req.ident);
    quote! {
        #[doc(hidden)]
        #[allow(dead_code, non_camel_case_types, non_snake_case)]
        trait #routes #impl_g #where_c {
            #(#calls)*
        }
    }
}

/// Every handle type a signature names, and one per declared step, with
/// `start`'s two.
fn handles(req: &Request, g: &syn::Generics) -> Vec<TokenStream> {
    let self_ty = &req.self_ty;
    let (_, ty_g, _) = g.split_for_impl();
    let hg = handle_generics(g);
    let hlt = handle_lifetime(&hg);
    let (h_impl, h_ty, h_where) = hg.split_for_impl();
    let routes = names::routes(&req.ident);
    let start_name = names::handle(&req.ident, "start");
    let mut handles: BTreeSet<String> = req
        .decls
        .iter()
        .map(|d| names::handle(&req.ident, &names::key(&d.name)))
        .collect();
    for m in req.methods() {
        handles.extend(handle_names(req, m));
    }
    handles.remove(&start_name);
    let mut out = Vec::new();
    for h in &handles {
        let h = names::ident(h, Span::call_site());
        out.push(quote! {
            #[allow(dead_code, missing_docs)]
            pub struct #h #h_impl (::tevent::StepCtl<#hlt, #self_ty>) #h_where;
        });
        out.push(deref_step(&h, &hg, self_ty));
        out.push(quote! {
            impl #h_impl #routes #ty_g for #h #h_ty #h_where {}
        });
    }
    let start_h = names::ident(&start_name, Span::call_site());
    let started = names::ident(&names::started(&req.ident), Span::call_site());
    out.push(quote! {
        #[allow(dead_code, missing_docs)]
        pub struct #start_h #h_impl (::tevent::StartCtl<#hlt, #self_ty>) #h_where;
        #[allow(dead_code, missing_docs)]
        pub struct #started #h_impl (::tevent::StepCtl<#hlt, #self_ty>) #h_where;
        impl #h_impl ::core::ops::Deref for #start_h #h_ty #h_where {
            type Target = ::tevent::StartCtl<#hlt, #self_ty>;
            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }
        impl #h_impl #start_h #h_ty #h_where {
            #[allow(dead_code, missing_docs)]
            pub fn create(self, _: #self_ty) -> #started #h_ty {
                ::core::unreachable!()
            }
        }
        impl #h_impl #routes #ty_g for #started #h_ty #h_where {}
        impl #h_impl #routes #ty_g for #start_h #h_ty #h_where {}
    });
    out.push(deref_step(&started, &hg, self_ty));

    out
}

/// The send and receive functions, with `start`'s arguments if it has any.
fn send_recv(
    req: &Request,
    g: &syn::Generics,
    start: Option<&ImplItemFn>,
    vis: &syn::Visibility,
) -> TokenStream {
    let self_ty = &req.self_ty;
    let (impl_g, _, where_c) = g.split_for_impl();
    let send = names::send(&req.ident);
    let recv = names::recv(&req.ident);
    let args: Vec<(Ident, Type, Vec<syn::Attribute>)> = start
        .map(|m| {
            // The handle comes first; a first parameter that is not one
            // (reported) is taken for an argument, as the caller meant it.
            let typed = m.sig.inputs.iter().filter(|a| matches!(a, FnArg::Typed(_)));
            let handle = typed.clone().next().is_some_and(|a| {
                crate::validate::is_handle(a, &names::handle(&req.ident, "start"))
            });
            typed
                .skip(usize::from(handle))
                .enumerate()
                .filter_map(|(n, a)| match a {
                    FnArg::Typed(t) => {
                        let id = match &*t.pat {
                            Pat::Ident(p) => p.ident.clone(),
                            _ => format_ident!("__arg{}", n),
                        };
                        // Its `#[cfg]` too: off, the caller passes nothing.
                        let cfgs = t
                            .attrs
                            .iter()
                            .filter(|a| a.path().is_ident("cfg"))
                            .cloned()
                            .collect();
                        Some((id, replace_self(&t.ty, self_ty), cfgs))
                    }
                    FnArg::Receiver(_) => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let mut arg_names = Vec::new();
    let mut arg_tys = Vec::new();
    let mut arg_cfgs = Vec::new();
    for (n, t, c) in args {
        arg_names.push(n);
        arg_tys.push(t);
        arg_cfgs.push(c);
    }
    let mut send_g = g.clone();
    if let Some(m) = start {
        let mut start_g = m.sig.generics.clone();
        Replace(self_ty).visit_generics_mut(&mut start_g);
        send_g.params.extend(start_g.params);
    }
    // A lifetime parameter of the block (reported) is not made `'static` in
    // the send function, which returns the request for `'static`: a caller
    // that passes a borrow gets no error of its own (E0597) beside ours.
    let lifetimes: BTreeSet<String> = req
        .generics
        .lifetimes()
        .map(|l| l.lifetime.ident.to_string())
        .collect();
    let mut send_ty = self_ty.clone();
    if !lifetimes.is_empty() {
        for p in send_g.params.iter_mut() {
            if let syn::GenericParam::Lifetime(l) = p {
                l.bounds.clear();
                l.colon_token = None;
            }
        }
        if let Some(w) = send_g.where_clause.as_mut() {
            let kept: syn::punctuated::Punctuated<syn::WherePredicate, syn::Token![,]> = w
                .predicates
                .iter()
                .filter(|p| !matches!(p, syn::WherePredicate::Lifetime(_)))
                .cloned()
                .collect();
            w.predicates = kept;
        }
        struct Static<'a>(&'a BTreeSet<String>);
        impl VisitMut for Static<'_> {
            fn visit_lifetime_mut(&mut self, l: &mut syn::Lifetime) {
                if self.0.contains(&l.ident.to_string()) {
                    *l = syn::Lifetime::new("'static", l.span());
                }
            }
        }
        Static(&lifetimes).visit_type_mut(&mut send_ty);
    }
    let (g_impl, _, g_where) = send_g.split_for_impl();
    quote! {
        #[allow(dead_code, missing_docs, unused_variables)]
        #vis fn #send #g_impl (ev: &::tevent::Context, #(#(#arg_cfgs)* #arg_names: #arg_tys),*) -> ::tevent::Req<#send_ty> #g_where {
            ::core::unreachable!()
        }
        #[allow(dead_code, missing_docs)]
        #vis fn #recv #impl_g (
            req: ::tevent::Req<#self_ty>,
        ) -> ::core::result::Result<
            <#self_ty as ::tevent::Request>::Output,
            ::tevent::ReqError<<#self_ty as ::tevent::Request>::Error>,
        > #where_c {
            ::core::unreachable!()
        }
    }
}

/// The graph constants the block does not define itself (a clash is
/// reported; the user's item stays).
fn graph_consts(req: &Request, vis: &syn::Visibility) -> Vec<TokenStream> {
    let own: BTreeSet<String> = req
        .items
        .iter()
        .filter_map(|i| match i {
            syn::ImplItem::Const(c) => Some(names::key(&c.ident)),
            syn::ImplItem::Fn(f) => Some(names::key(&f.sig.ident)),
            syn::ImplItem::Type(t) => Some(names::key(&t.ident)),
            _ => None,
        })
        .collect();
    names::GRAPH_CONSTS
        .iter()
        .filter(|c| !own.contains(**c))
        .map(|c| {
            let (ty, value) = if *c == "STEPS" {
                (quote!(&'static [&'static str]), quote!(&[]))
            } else {
                (quote!(&'static str), quote!(""))
            };
            let c = Ident::new(c, Span::call_site());
            quote! {
                #[allow(missing_docs)]
                #vis const #c: #ty = #value;
            }
        })
        .collect()
}

/// A step's `Next<Other>` made `Next<Self>` (keeping the user's path to
/// `Next`): validation reports it, and rustc must not add "`Other` is not a
/// `Request`". Any other return type stays (validation reports it; the
/// body matches it).
fn next_of_self(output: &mut syn::ReturnType) {
    if let syn::ReturnType::Type(_, ty) = output
        && let Type::Path(p) = &mut **ty
        && p.qself.is_none()
        && let Some(last) = p.path.segments.last_mut()
        && last.ident == "Next"
    {
        last.arguments = syn::PathArguments::AngleBracketed(syn::parse_quote!(<Self>));
    }
}

/// Replaces each `_` left in `f`'s parameter types (after the handle's,
/// which [`infer_handle`] fills) with `()`, so the compiler does not
/// report the `_` validation reported; whether there was one.
fn fill_placeholders(f: &mut ImplItemFn) -> bool {
    struct Fill(bool);
    impl VisitMut for Fill {
        fn visit_type_mut(&mut self, ty: &mut Type) {
            if matches!(ty, Type::Infer(_)) {
                *ty = syn::parse_quote!(());
                self.0 = true;
            } else {
                syn::visit_mut::visit_type_mut(self, ty);
            }
        }
    }
    let mut fill = Fill(false);
    for a in &mut f.sig.inputs {
        if let FnArg::Typed(t) = a {
            fill.visit_type_mut(&mut t.ty);
        }
    }
    fill.0
}

/// A name as it can be written as a method: `type` raw (`r#type`); `None`
/// for a name that cannot name a method at all (`self`, `_`).
fn raw_if_keyword(name: &str) -> Option<String> {
    if names::is_item_name(name) {
        Some(name.to_string())
    } else {
        let raw = format!("r#{name}");
        names::is_item_name(&raw).then_some(raw)
    }
}

/// The handle types of this request that `m`'s signature names (or leaves
/// to the attribute, `to: _`).
fn handle_names(req: &Request, m: &ImplItemFn) -> Vec<String> {
    let prefix = req.ident.to_string();
    let inferred = m.sig.inputs.iter().find_map(|a| match a {
        FnArg::Typed(t) => Some(matches!(*t.ty, Type::Infer(_))),
        FnArg::Receiver(_) => None,
    });
    if inferred == Some(true) {
        return vec![names::handle(&req.ident, &names::key(&m.sig.ident))];
    }
    m.sig
        .inputs
        .iter()
        .filter_map(|a| match a {
            FnArg::Typed(t) => match &*t.ty {
                Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
                _ => None,
            },
            FnArg::Receiver(_) => None,
        })
        .filter(|n| n.starts_with(&prefix) && n.ends_with("Step") && n.len() > prefix.len() + 4)
        .collect()
}
