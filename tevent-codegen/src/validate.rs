//! Every check of a `#[tevent_request]` item: the steps list (unknown,
//! duplicate, unreachable steps, steps with no path to `done`, `start`),
//! `type Output` / `type Error`, and each step method's signature. All
//! problems are reported together, each spanned on the offending tokens.

use std::collections::BTreeMap;

use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, ImplItemFn, Pat, PathArguments, ReturnType, Type};

use crate::ast::{Arg, Input, Machine, Request, Step, StepKind, Succ};
use crate::errors::Errors;
use crate::{graph, names};

/// Checks `req` (with what parsing already found in `errors`); the machine
/// to generate from, or every error.
pub(crate) fn validate(req: &Request, mut errors: Errors) -> Result<Machine<'_>, syn::Error> {
    let output = req.output.as_ref().map(|t| &t.ty);
    let error = req.error.as_ref().map(|t| &t.ty);
    if output.is_none() {
        errors.spanned(
            &req.self_ty,
            "missing `type Output = ...;` in this impl block (what the request produces)",
        );
    }
    if error.is_none() {
        errors.spanned(
            &req.self_ty,
            "missing `type Error = ...;` in this impl block (the request's own error type)",
        );
    }

    // The steps list.
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut declared = Vec::new();
    for d in &req.decls {
        let name = d.name.to_string();
        if !names::is_item_name(&name) && name != "done" {
            // Reported, and still declared: its uses are not unknown steps.
            errors.at(
                d.name.span(),
                format!(
                    "`{name}` cannot name a step: it is a keyword (a step named like a keyword is written raw, `r#{name}`)"
                ),
            );
        }
        if name == "done" {
            errors.at(
                d.name.span(),
                "`done` is where a request finishes, not a step: list it as a successor (`step => [done]`)",
            );
        } else if let std::collections::btree_map::Entry::Vacant(slot) = index.entry(name.clone()) {
            slot.insert(declared.len());
            declared.push(d);
        } else {
            errors.at(d.name.span(), format!("step `{name}` is declared twice"));
        }
    }
    let mut structure_ok = true;
    let mut edges: Vec<Vec<Succ>> = Vec::with_capacity(declared.len());
    for d in &declared {
        let mut out = Vec::new();
        for s in &d.succ {
            let name = s.to_string();
            let succ = if name == "done" {
                if req.forever.is_some() {
                    errors.at(
                        s.span(),
                        "this request is declared `forever`: no step leads to `done`",
                    );
                }
                Succ::Done
            } else if let Some(&j) = index.get(&name) {
                Succ::Step(j)
            } else {
                structure_ok = false;
                let list = declared
                    .iter()
                    .map(|d| format!("`{}`", d.name))
                    .collect::<Vec<_>>()
                    .join(", ");
                errors.at(
                    s.span(),
                    format!(
                        "unknown step `{name}`: the declared steps are {list} (and `done` finishes the request)"
                    ),
                );
                continue;
            };
            if out.contains(&succ) {
                errors.at(s.span(), format!("`{name}` is listed twice as a successor"));
            } else {
                out.push(succ);
            }
        }
        edges.push(out);
    }
    let start = index.get("start").copied();
    if start.is_none() && !req.decls.is_empty() {
        errors.at(
            req.steps_span,
            "no `start` step: every request begins with `start` (`steps(start => [...], ...)`)",
        );
    }
    if let (Some(start), true) = (start, structure_ok) {
        let reached = graph::reachable(&edges, start);
        for (d, r) in declared.iter().zip(&reached) {
            if !r {
                errors.at(
                    d.name.span(),
                    format!(
                        "step `{}` is unreachable: no step that `start` leads to lists it as a successor",
                        d.name
                    ),
                );
            }
        }
        if req.forever.is_none() {
            let done = graph::reaches_done(&edges);
            for ((d, ok), r) in declared.iter().zip(&done).zip(&reached) {
                if !ok && *r {
                    errors.at(
                        d.name.span(),
                        format!(
                            "step `{}` has no path to `done`: the request could never finish from it \
                             (declare `forever` on a request that never finishes by itself)",
                            d.name
                        ),
                    );
                }
            }
        }
    }

    // The methods.
    let mut methods: BTreeMap<String, Vec<&ImplItemFn>> = BTreeMap::new();
    for m in req.methods() {
        methods.entry(m.sig.ident.to_string()).or_default().push(m);
    }
    let mut steps = Vec::with_capacity(declared.len());
    for (i, d) in declared.iter().enumerate() {
        let name = d.name.to_string();
        let Some(found) = methods.get(&name) else {
            errors.at(
                d.name.span(),
                format!("step `{name}` has no method: add `fn {name}(...)` to this impl block"),
            );
            continue;
        };
        let method = pick_method(&name, found, &mut errors);
        let kind = if Some(i) == start {
            start_signature(req, method, &mut errors)
        } else {
            resume_signature(req, &name, method, &mut errors)
        };
        if let Some(kind) = kind {
            steps.push(Step {
                name: &d.name,
                succ: edges.get(i).cloned().unwrap_or_default(),
                method,
                kind,
            });
        }
    }
    // A method that takes a step handle for a step nobody declared.
    for (name, ms) in &methods {
        if index.contains_key(name) || !req.steps_parsed {
            continue;
        }
        let expected = names::handle(&req.ident, name);
        let m = ms[0];
        if m.sig.inputs.iter().any(|a| arg_type_is(a, &expected)) {
            errors.at(
                m.sig.ident.span(),
                format!(
                    "method `{name}` takes the handle `{expected}`, but `{name}` is not in the steps list"
                ),
            );
        }
    }

    errors.into_result()?;
    let (Some(start), Some(_), Some(_)) = (start, output, error) else {
        // Reported above; not reached with an empty error list.
        return Err(syn::Error::new(req.steps_span, "incomplete request"));
    };
    let vis = steps
        .iter()
        .find(|s| s.name == "start")
        .map(|s| s.method.vis.clone())
        .unwrap_or(syn::Visibility::Inherited);
    Ok(Machine {
        req,
        vis,
        steps,
        start,
    })
}

/// One method for a step; `#[cfg]` alternatives must agree on the signature.
fn pick_method<'a>(name: &str, found: &[&'a ImplItemFn], errors: &mut Errors) -> &'a ImplItemFn {
    let first = found[0];
    if found.len() > 1 {
        let all_cfg = found
            .iter()
            .all(|m| m.attrs.iter().any(|a| a.path().is_ident("cfg")));
        let sig = |m: &ImplItemFn| {
            let s = &m.sig;
            (
                s.inputs.to_token_stream().to_string(),
                s.output.to_token_stream().to_string(),
            )
        };
        for m in &found[1..] {
            if !all_cfg {
                errors.at(
                    m.sig.ident.span(),
                    format!("step `{name}` is defined twice"),
                );
            } else if sig(m) != sig(first) {
                errors.at(
                    m.sig.ident.span(),
                    format!(
                        "the `#[cfg]` alternatives of step `{name}` must have the same signature"
                    ),
                );
            }
        }
    }
    first
}

/// Whether a parameter's type is (a path ending in) `name`.
fn arg_type_is(arg: &FnArg, name: &str) -> bool {
    match arg {
        FnArg::Typed(t) => last_ident(&t.ty).is_some_and(|i| i == name),
        FnArg::Receiver(_) => false,
    }
}

/// The last path segment of a type, if it is a path.
fn last_ident(ty: &Type) -> Option<&syn::Ident> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| &s.ident),
        _ => None,
    }
}

/// The generic type arguments of a path type's last segment.
fn type_args(ty: &Type) -> Vec<&Type> {
    let Type::Path(p) = ty else {
        return Vec::new();
    };
    let Some(seg) = p.path.segments.last() else {
        return Vec::new();
    };
    match &seg.arguments {
        PathArguments::AngleBracketed(a) => a
            .args
            .iter()
            .filter_map(|g| match g {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// How the user should write step `step`'s handle type: `EchoReadStep<'_, S>`.
fn handle_hint(req: &Request, step: &str) -> String {
    let mut args = vec!["'_".to_string()];
    for p in req.generics.params.iter() {
        match p {
            syn::GenericParam::Type(t) => args.push(t.ident.to_string()),
            syn::GenericParam::Const(c) => args.push(c.ident.to_string()),
            syn::GenericParam::Lifetime(l) => args.push(l.lifetime.to_string()),
        }
    }
    format!("{}<{}>", names::handle(&req.ident, step), args.join(", "))
}

/// Checks what every step method shares: not async, const, unsafe or
/// variadic; returns `Next<...>`.
fn common_signature(m: &ImplItemFn, errors: &mut Errors) {
    let s = &m.sig;
    if let Some(a) = &s.asyncness {
        errors.spanned(
            a,
            "a step is not `async`: it runs to completion and returns what comes next",
        );
    }
    if let Some(c) = &s.constness {
        errors.spanned(c, "a step cannot be `const`");
    }
    if !matches!(s.safety, syn::Safety::Default) {
        errors.spanned(s.fn_token, "a step cannot be `unsafe`");
    }
    if let Some(v) = &s.variadic {
        errors.spanned(v, "a step takes no variadic arguments");
    }
    let ok = match &s.output {
        ReturnType::Type(_, ty) => last_ident(ty).is_some_and(|i| i == "Next"),
        ReturnType::Default => false,
    };
    if !ok {
        let span = match &s.output {
            ReturnType::Type(_, ty) => ty.span(),
            ReturnType::Default => s.paren_token.span.close(),
        };
        errors.at(
            span,
            "a step returns `Next<Self>` (what its handle builds: `to.done(..)`, `to.pending()`, or a successor method)",
        );
    }
}

/// `fn start(to: EchoStartStep<'_>, args...) -> Next<Self>`
fn start_signature(req: &Request, m: &ImplItemFn, errors: &mut Errors) -> Option<StepKind> {
    common_signature(m, errors);
    let before = errors_len(errors);
    let expected = names::handle(&req.ident, "start");
    let mut inputs = m.sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r)) => {
            errors.spanned(
                r,
                format!(
                    "`start` takes no `self`: it builds the state; its first parameter is its handle, `{}`",
                    handle_hint(req, "start")
                ),
            );
        }
        Some(a @ FnArg::Typed(_)) if arg_type_is(a, &expected) => {}
        Some(FnArg::Typed(t)) => errors.spanned(
            &t.ty,
            format!(
                "the first parameter of `start` is its handle, `{}`",
                handle_hint(req, "start")
            ),
        ),
        None => errors.at(
            m.sig.paren_token.span.join(),
            format!(
                "`start` takes its handle, `{}`, then the arguments of `{}`",
                handle_hint(req, "start"),
                names::send(&req.ident)
            ),
        ),
    }
    let mut args = Vec::new();
    for (n, a) in inputs.enumerate() {
        match a {
            FnArg::Typed(t) => {
                let ident = match &*t.pat {
                    Pat::Ident(p) if p.subpat.is_none() => p.ident.clone(),
                    _ => syn::Ident::new(&format!("__arg{n}"), t.pat.span()),
                };
                args.push(Arg {
                    ident,
                    ty: (*t.ty).clone(),
                });
            }
            FnArg::Receiver(r) => errors.spanned(r, "`start` takes no `self`"),
        }
    }
    (errors_len(errors) == before).then_some(StepKind::Start { args })
}

/// `fn read(&mut self, to: EchoReadStep<'_>, input: T) -> Next<Self>`
fn resume_signature(
    req: &Request,
    name: &str,
    m: &ImplItemFn,
    errors: &mut Errors,
) -> Option<StepKind> {
    common_signature(m, errors);
    let before = errors_len(errors);
    let s = &m.sig;
    if !s.generics.params.is_empty() || s.generics.where_clause.is_some() {
        errors.spanned(
            &s.generics,
            "a step has no generic parameters of its own: the glue calls it with what the subrequest gives",
        );
    }
    let shape = format!(
        "step `{name}` takes `&mut self`, its handle (`{}`) and what it receives \
         (the subrequest's output, its whole `Result<_, ReqError<_>>`, or the `Req<_>`)",
        handle_hint(req, name)
    );
    let inputs: Vec<&FnArg> = s.inputs.iter().collect();
    match inputs.first() {
        Some(FnArg::Receiver(r)) => {
            let ok = matches!(&r.kind, syn::ReceiverKind::Reference(_, _, Some(_)));
            if !ok {
                errors.spanned(
                    r,
                    format!("a step takes `&mut self` (the request's state); {shape}"),
                );
            }
        }
        Some(FnArg::Typed(t)) => {
            errors.spanned(t, format!("a step takes `&mut self` first; {shape}"))
        }
        None => errors.at(s.paren_token.span.join(), shape.clone()),
    }
    let expected = names::handle(&req.ident, name);
    match inputs.get(1) {
        Some(a @ FnArg::Typed(_)) if arg_type_is(a, &expected) => {}
        Some(FnArg::Typed(t)) => errors.spanned(
            &t.ty,
            format!(
                "the handle of step `{name}` is `{}`",
                handle_hint(req, name)
            ),
        ),
        Some(FnArg::Receiver(_)) | None => {
            if inputs.len() == 1 {
                errors.at(s.paren_token.span.join(), shape.clone());
            }
        }
    }
    let input = match inputs.get(2) {
        Some(FnArg::Typed(t)) => Some(classify(&t.ty)),
        _ => {
            if inputs.len() == 2 {
                errors.at(s.paren_token.span.join(), shape.clone());
            }
            None
        }
    };
    if let Some(extra) = inputs.get(3) {
        errors.spanned(extra, shape);
    }
    match input {
        Some(i) if errors_len(errors) == before => Some(StepKind::Resume(Box::new(i))),
        _ => None,
    }
}

/// Tells the three kinds of step input apart by the parameter's type.
fn classify(ty: &Type) -> Input {
    match last_ident(ty).map(|i| i.to_string()).as_deref() {
        Some("Req") => {
            if let [c] = type_args(ty)[..] {
                return Input::Raw(c.clone());
            }
        }
        Some("Result") => {
            if let [ok, err] = type_args(ty)[..]
                && last_ident(err).is_some_and(|i| i == "ReqError")
                && let [e] = type_args(err)[..]
            {
                return Input::Full {
                    ok: Box::new(ok.clone()),
                    err: Box::new(e.clone()),
                };
            }
        }
        _ => {}
    }
    Input::Output(ty.clone())
}

/// How many errors have been collected (to tell whether a check added one).
fn errors_len(errors: &Errors) -> usize {
    errors.count()
}
