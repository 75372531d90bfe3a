//! What is emitted when the item has errors: the user's code, plus every
//! name the expansion would have defined, with lenient signatures and
//! bodies that are never run, so the compiler reports only the real errors
//! (no "cannot find type `EchoReadStep`" or "no method `write`" cascading
//! from them), and an editor's analyzer keeps completing.

use std::collections::BTreeSet;

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{FnArg, Ident, ImplItemFn, Pat, Type};

use crate::ast::Request;
use crate::expand::{deref_step, handle_generics, replace_self};
use crate::names;

/// The stub for `req`.
pub(crate) fn stub(req: &Request) -> TokenStream {
    let self_ty = &req.self_ty;
    let attrs = &req.attrs;
    let items = &req.items;
    let (impl_g, _, where_c) = req.generics.split_for_impl();
    let hg = handle_generics(&req.generics);
    let (h_impl, h_ty, h_where) = hg.split_for_impl();

    let output = req
        .output
        .as_ref()
        .map_or_else(|| quote!(()), |t| replace_ty(&t.ty, self_ty));
    let error = req.error.as_ref().map_or_else(
        || quote!(::core::convert::Infallible),
        |t| replace_ty(&t.ty, self_ty),
    );

    // Every name a step method could call on its handle.
    let mut calls: BTreeSet<String> = req.decls.iter().map(|d| d.name.to_string()).collect();
    calls.extend(req.methods().map(|m| m.sig.ident.to_string()));
    calls.remove("start");
    for taken in RESERVED {
        calls.remove(*taken);
    }
    calls.insert("done".to_string());
    let calls: Vec<Ident> = calls
        .iter()
        .filter(|c| names::is_item_name(c))
        .map(|c| names::ident(c, proc_macro2::Span::call_site()))
        .collect();
    let lenient = quote! {
        #(
            #[allow(dead_code, missing_docs)]
            pub fn #calls<__X>(&self, _: __X) -> ::tevent::Next<#self_ty> {
                ::core::unreachable!()
            }
        )*
    };

    // Every handle type a signature names, and one per declared step.
    let start_name = names::handle(&req.ident, "start");
    let mut handles: BTreeSet<String> = req
        .decls
        .iter()
        .map(|d| names::handle(&req.ident, &d.name.to_string()))
        .collect();
    for m in req.methods() {
        handles.extend(handle_names(req, m));
    }
    handles.remove(&start_name);
    let mut out = Vec::new();
    for h in &handles {
        let h = names::ident(h, proc_macro2::Span::call_site());
        out.push(quote! {
            #[allow(dead_code, missing_docs)]
            pub struct #h #h_impl (::tevent::StepCtl<'__a, #self_ty>) #h_where;
        });
        out.push(deref_step(&h, &hg, self_ty));
        out.push(quote! {
            impl #h_impl #h #h_ty #h_where { #lenient }
        });
    }
    let start_h = names::ident(&start_name, proc_macro2::Span::call_site());
    let started = names::ident(&names::started(&req.ident), proc_macro2::Span::call_site());
    out.push(quote! {
        #[allow(dead_code, missing_docs)]
        pub struct #start_h #h_impl (::tevent::StartCtl<'__a, #self_ty>) #h_where;
        #[allow(dead_code, missing_docs)]
        pub struct #started #h_impl (::tevent::StepCtl<'__a, #self_ty>) #h_where;
        impl #h_impl ::core::ops::Deref for #start_h #h_ty #h_where {
            type Target = ::tevent::StartCtl<'__a, #self_ty>;
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
        impl #h_impl #started #h_ty #h_where { #lenient }
    });
    out.push(deref_step(&started, &hg, self_ty));

    // The send and receive functions, with `start`'s arguments if it has any.
    let send = names::send(&req.ident);
    let recv = names::recv(&req.ident);
    let start = req.methods().find(|m| m.sig.ident == "start");
    let vis = start.map_or(syn::Visibility::Inherited, |m| m.vis.clone());
    let args: Vec<(Ident, Type)> = start
        .map(|m| {
            m.sig
                .inputs
                .iter()
                .skip(1)
                .enumerate()
                .filter_map(|(n, a)| match a {
                    FnArg::Typed(t) => {
                        let id = match &*t.pat {
                            Pat::Ident(p) => p.ident.clone(),
                            _ => format_ident!("__arg{}", n),
                        };
                        Some((id, replace_self(&t.ty, self_ty)))
                    }
                    FnArg::Receiver(_) => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let (arg_names, arg_tys): (Vec<_>, Vec<_>) = args.into_iter().unzip();
    let mut g = req.generics.clone();
    if let Some(m) = start {
        g.params.extend(m.sig.generics.params.iter().cloned());
    }
    let (g_impl, _, g_where) = g.split_for_impl();

    quote! {
        impl #impl_g ::tevent::Request for #self_ty #where_c {
            type Output = #output;
            type Error = #error;
        }
        #(#attrs)*
        impl #impl_g #self_ty #where_c {
            #(#items)*
        }
        #[allow(dead_code, missing_docs, unused_variables)]
        #vis fn #send #g_impl (ev: &::tevent::Context, #(#arg_names: #arg_tys),*) -> ::tevent::Req<#self_ty> #g_where {
            ::core::unreachable!()
        }
        #[allow(dead_code, missing_docs)]
        #vis fn #recv #impl_g (req: ::tevent::Req<#self_ty>) -> ::core::result::Result<#output, ::tevent::ReqError<#error>> #where_c {
            ::core::unreachable!()
        }
        #[allow(dead_code)]
        impl #impl_g #self_ty #where_c {
            #[allow(missing_docs)]
            #vis const STEPS: &'static [&'static str] = &[];
            #[allow(missing_docs)]
            #vis const GRAPH_DOT: &'static str = "";
            #[allow(missing_docs)]
            #vis const GRAPH_MERMAID: &'static str = "";
        }
        #(#out)*
    }
}

/// Names a step handle may not take: the handles' own methods.
pub(crate) const RESERVED: &[&str] = &[
    "ev",
    "pending",
    "done",
    "create",
    "set_endtime",
    "set_timeout",
    "reset_endtime",
    "set_cleanup",
    "set_cancel",
    "enable_profile",
];

/// The handle types of this request that `m`'s signature names.
fn handle_names(req: &Request, m: &ImplItemFn) -> Vec<String> {
    let prefix = req.ident.to_string();
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

fn replace_ty(ty: &Type, self_ty: &Type) -> TokenStream {
    let t = replace_self(ty, self_ty);
    quote!(#t)
}
