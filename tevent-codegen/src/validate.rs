//! Every check of a `#[tevent_request]` item: the steps list (unknown,
//! duplicate, unreachable steps, steps with no path to `done`, `start`, names
//! the generated code cannot take), the block (`type Output` / `type Error`,
//! lifetime parameters, items named like generated ones), and each step
//! method's signature. All problems are reported together, each spanned on
//! the offending tokens.

use std::collections::{BTreeMap, BTreeSet};

use proc_macro2::Span;
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{
    FnArg, GenericArgument, GenericParam, ImplItem, ImplItemFn, Pat, PathArguments, ReturnType,
    Type,
};

use crate::ast::{Arg, Carried, Decl, Input, Machine, Request, Step, StepKind, Succ};
use crate::errors::Errors;
use crate::{graph, names};

/// Checks `req` (with what parsing already found in `errors`); the machine
/// to generate from, or every error. Each check is a function below, in
/// the order they run; `Errors` sorts what they find into source order.
pub(crate) fn validate(req: &Request, mut errors: Errors) -> Result<Machine<'_>, syn::Error> {
    let (output, error) = block_types(req, &mut errors);
    let decls = declarations(req, &mut errors);
    handle_clashes(req, &decls.declared, &mut errors);
    let start = decls.index.get("start").copied();
    let (edges, structure_ok) = successors(req, &decls, start, &mut errors);
    graph_checks(
        req,
        &decls.declared,
        start,
        &edges,
        structure_ok,
        &mut errors,
    );
    block_items(req, &mut errors);
    let (steps, methods) = step_methods(req, &decls, start, &edges, &mut errors);
    undeclared_methods(req, &methods, &decls.index, start, &mut errors);

    errors.into_result()?;
    let (Some(start), Some(_), Some(_)) = (start, output, error) else {
        // Reported above; not reached with an empty error list.
        return Err(syn::Error::new(req.steps_span, "incomplete request"));
    };
    let vis = steps
        .iter()
        .find(|s| names::key(s.name) == "start")
        .map(|s| s.method.vis.clone())
        .unwrap_or(syn::Visibility::Inherited);
    Ok(Machine {
        req,
        vis,
        steps,
        start,
    })
}

/// `type Output` and `type Error` of the block (each reported if missing).
fn block_types<'r>(req: &'r Request, errors: &mut Errors) -> (Option<&'r Type>, Option<&'r Type>) {
    let output = req.output.as_ref().map(|t| &t.ty);
    let error = req.error.as_ref().map(|t| &t.ty);
    if output.is_none() && !req.broken.contains("Output") {
        errors.spanned(
            &req.self_ty,
            "missing `type Output = ...;` in this impl block (what the request produces)",
        );
    }
    if error.is_none() && !req.broken.contains("Error") {
        errors.spanned(
            &req.self_ty,
            "missing `type Error = ...;` in this impl block (the request's own error type)",
        );
    }

    (output, error)
}

/// The steps list as declared: each name once, by name.
struct Declarations<'r> {
    /// A step's index in `declared`, by its name as the user means it.
    index: BTreeMap<String, usize>,
    /// In declaration order, without duplicates and without `done`.
    declared: Vec<&'r Decl>,
    /// Steps whose name is already reported as unusable: no further check
    /// about them (their method could not be written either).
    unusable: BTreeSet<String>,
}

/// The declared steps; `done` declared as a step, names a step cannot
/// take, and steps declared twice are reported.
fn declarations<'r>(req: &'r Request, errors: &mut Errors) -> Declarations<'r> {
    // The steps list. Names are compared as the user means them: `r#read`
    // and `read` are one step.
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut declared = Vec::new();
    let mut unusable: BTreeSet<String> = BTreeSet::new();
    for d in &req.decls {
        let name = names::key(&d.name);
        if name == "done" {
            errors.at(
                d.name.span(),
                "`done` is where a request finishes, not a step: list it as a successor (`step => [done]`)",
            );
            continue;
        }
        if let Some(why) = names::bad_step_name(&d.name.to_string()) {
            // Reported, and still declared: its uses are not unknown steps.
            errors.at(d.name.span(), why);
            unusable.insert(name.clone());
        } else if names::RESERVED.contains(&name.as_str()) {
            errors.at(
                d.name.span(),
                format!(
                    "a step cannot be named `{name}`: every step's handle already has a method `{name}` \
                     (`to.{name}(..)`), which a successor of that name would hide; rename the step"
                ),
            );
            unusable.insert(name.clone());
        }
        if let std::collections::btree_map::Entry::Vacant(slot) = index.entry(name.clone()) {
            slot.insert(declared.len());
            declared.push(d);
        } else {
            errors.at(d.name.span(), format!("step `{name}` is declared twice"));
        }
    }
    Declarations {
        index,
        declared,
        unusable,
    }
}

/// Two steps whose handle types would have one name (`client_done` and
/// `clientDone`, or `Start` and `start`).
fn handle_clashes(req: &Request, declared: &[&Decl], errors: &mut Errors) {
    let mut handles: BTreeMap<String, String> = BTreeMap::new();
    for d in declared {
        let name = names::key(&d.name);
        let h = names::handle(&req.ident, &name);
        match handles.get(&h) {
            Some(first) => errors.at(
                d.name.span(),
                format!(
                    "steps `{first}` and `{name}` would both have the handle type `{h}`: rename one of them"
                ),
            ),
            None => {
                handles.insert(h, name);
            }
        }
    }
}

/// Each step's successors (indexes, or `done`), and whether every
/// successor named a step (if not, the graph checks would only repeat it).
fn successors(
    req: &Request,
    decls: &Declarations<'_>,
    start: Option<usize>,
    errors: &mut Errors,
) -> (Vec<Vec<Succ>>, bool) {
    let (index, declared) = (&decls.index, &decls.declared);
    let mut structure_ok = true;
    let mut edges: Vec<Vec<Succ>> = Vec::with_capacity(declared.len());
    for d in declared {
        let mut out = Vec::new();
        let mut listed = std::collections::HashSet::new();
        for s in &d.succ {
            let name = names::key(s);
            let succ = if name == "done" {
                if req.forever.is_some() {
                    errors.at(
                        s.span(),
                        "this request is declared `forever`: no step leads to `done`",
                    );
                }
                Succ::Done
            } else if let Some(&j) = index.get(&name) {
                if Some(j) == start {
                    errors.at(
                        s.span(),
                        "`start` cannot be a successor: it runs once, first, and builds the state \
                         (give the work to repeat a step of its own, and list that one)",
                    );
                    continue;
                }
                Succ::Step(j)
            } else {
                structure_ok = false;
                let list = declared
                    .iter()
                    .map(|d| format!("`{}`", names::key(&d.name)))
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
            // A set of what the list named so far, not a search of it: a
            // step may list many successors.
            let key = match succ {
                Succ::Step(j) => j,
                Succ::Done => usize::MAX,
            };
            if !listed.insert(key) {
                errors.at(s.span(), format!("`{name}` is listed twice as a successor"));
            } else {
                out.push(succ);
            }
        }
        edges.push(out);
    }
    (edges, structure_ok)
}

/// The graph: a `start`, every step reachable from it, and (unless the
/// request is `forever`) a path to `done` from each.
fn graph_checks(
    req: &Request,
    declared: &[&Decl],
    start: Option<usize>,
    edges: &[Vec<Succ>],
    structure_ok: bool,
    errors: &mut Errors,
) {
    if start.is_none() && req.steps_parsed {
        if req.decls.is_empty() {
            errors.at(
                req.steps_span,
                "the steps list is empty: every request has at least `start` (`steps(start => [done])`)",
            );
        } else {
            errors.at(
                req.steps_span,
                "no `start` step: every request begins with `start` (`steps(start => [...], ...)`)",
            );
        }
    }
    if let (Some(start), true) = (start, structure_ok) {
        let reached = graph::reachable(edges, start);
        for (d, r) in declared.iter().zip(&reached) {
            if !r {
                errors.at(
                    d.name.span(),
                    format!(
                        "step `{}` is unreachable: no step that `start` leads to lists it as a successor",
                        names::key(&d.name)
                    ),
                );
            }
        }
        if req.forever.is_none() {
            // One error for all of them (they share one cause: no step
            // among them lists `done`), at the first.
            let done = graph::reaches_done(edges);
            let stuck: Vec<&syn::Ident> = declared
                .iter()
                .zip(&done)
                .zip(&reached)
                .filter(|((_, ok), r)| !**ok && **r)
                .map(|((d, _), _)| &d.name)
                .collect();
            if let Some(first) = stuck.first() {
                let list = stuck
                    .iter()
                    .map(|n| format!("`{}`", names::key(n)))
                    .collect::<Vec<_>>()
                    .join(", ");
                let (what, it) = if stuck.len() == 1 {
                    (format!("step {list} has"), "it")
                } else {
                    (format!("steps {list} have"), "them")
                };
                errors.at(
                    first.span(),
                    format!(
                        "{what} no path to `done`: the request could never finish from {it} \
                         (list `done` as a successor of one of them, or declare `forever` on a \
                         request that never finishes by itself)"
                    ),
                );
            }
        }
    }
}

/// The type and the block: no lifetime parameter, no item named like the
/// generated graph constants.
fn block_items(req: &Request, errors: &mut Errors) {
    for p in &req.generics.params {
        if let GenericParam::Lifetime(l) = p {
            errors.spanned(
                &l.lifetime,
                format!(
                    "a request's state lives in the event loop, so it is `'static` and has no lifetime \
                     parameter `{}`: write the block for `{}`, or let the state own its data",
                    l.lifetime,
                    static_self_ty(req)
                ),
            );
        }
    }
    for item in &req.items {
        let ident = match item {
            ImplItem::Const(c) => &c.ident,
            ImplItem::Fn(f) => &f.sig.ident,
            ImplItem::Type(t) => &t.ident,
            _ => continue,
        };
        if names::GRAPH_CONSTS.contains(&names::key(ident).as_str()) {
            errors.at(
                ident.span(),
                format!(
                    "`{ident}` is generated by #[tevent_request] (the step graph, `{}::{ident}`): rename this item",
                    req.ident
                ),
            );
        }
    }
}

/// The method of each declared step with its signature checked, and the
/// block's methods by name.
fn step_methods<'r>(
    req: &'r Request,
    decls: &Declarations<'r>,
    start: Option<usize>,
    edges: &[Vec<Succ>],
    errors: &mut Errors,
) -> (Vec<Step<'r>>, BTreeMap<String, Vec<&'r ImplItemFn>>) {
    let mut methods: BTreeMap<String, Vec<&ImplItemFn>> = BTreeMap::new();
    for m in req.methods() {
        methods.entry(names::key(&m.sig.ident)).or_default().push(m);
    }
    let mut steps = Vec::with_capacity(decls.declared.len());
    for (i, d) in decls.declared.iter().enumerate() {
        let name = names::key(&d.name);
        if decls.unusable.contains(&name) {
            continue;
        }
        let Some(found) = methods.get(&name) else {
            if req.broken.contains(&name) {
                continue; // its syntax error is reported
            }
            errors.at(
                d.name.span(),
                format!(
                    "step `{name}` has no method: add `fn {}(...)` to this impl block",
                    d.name
                ),
            );
            continue;
        };
        let method = pick_method(&name, found, errors);
        let kind = if Some(i) == start {
            start_signature(req, method, errors)
        } else {
            resume_signature(req, &name, method, errors)
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
    (steps, methods)
}

/// A method that takes a step handle for a step nobody declared.
fn undeclared_methods(
    req: &Request,
    methods: &BTreeMap<String, Vec<&ImplItemFn>>,
    index: &BTreeMap<String, usize>,
    start: Option<usize>,
    errors: &mut Errors,
) {
    for (name, ms) in methods {
        // (A `start` missing from the list is reported above.)
        if index.contains_key(name) || !req.steps_parsed || (name == "start" && start.is_none()) {
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
}

/// The self type with its lifetime parameters `'static`: `Echo<'static>`.
fn static_self_ty(req: &Request) -> String {
    struct Static;
    impl syn::visit_mut::VisitMut for Static {
        fn visit_lifetime_mut(&mut self, l: &mut syn::Lifetime) {
            l.ident = syn::Ident::new("static", l.ident.span());
        }
    }
    let mut ty = req.self_ty.clone();
    syn::visit_mut::VisitMut::visit_type_mut(&mut Static, &mut ty);
    ty.to_token_stream()
        .to_string()
        .replace(" < ", "<")
        .replace(" >", ">")
        .replace("< ", "<")
        .replace(" ,", ",")
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

/// Whether a parameter is a step's handle: its type is `expected` (a path
/// ending in it) or `_`, which the expansion fills in.
pub(crate) fn is_handle(arg: &FnArg, expected: &str) -> bool {
    matches!(arg, FnArg::Typed(t) if matches!(*t.ty, Type::Infer(_))) || arg_type_is(arg, expected)
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

/// Whether `ty` names the request's own type: `Self`, or a path ending in
/// the type's name (`Echo`, `Echo<S>`, `crate::Echo`).
fn is_self_type(req: &Request, ty: &Type) -> bool {
    last_ident(ty).is_some_and(|i| i == "Self" || names::key(i) == names::key(&req.ident))
}

/// Checks what every step method shares: not async, const, unsafe, extern
/// or variadic; returns `Next<Self>`.
fn common_signature(req: &Request, m: &ImplItemFn, errors: &mut Errors) {
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
    match &s.safety {
        syn::Safety::Unsafe(u) => errors.spanned(
            u,
            "a step cannot be `unsafe`: its glue calls it as safe code (keep the `unsafe` blocks inside it)",
        ),
        syn::Safety::Safe(t) => errors.spanned(t, "a step is a plain `fn`: remove `safe`"),
        _ => {}
    }
    if let Some(abi) = &s.abi {
        errors.spanned(
            abi,
            "a step is a Rust `fn`: remove the `extern` (its glue calls it, never foreign code)",
        );
    }
    if let Some(v) = &s.variadic {
        errors.spanned(v, "a step takes no variadic arguments");
    }
    const RETURNS: &str = "a step returns `Next<Self>` (what its handle builds: `to.done(..)`, `to.pending()`, or a successor method)";
    match &s.output {
        ReturnType::Type(_, ty) if last_ident(ty).is_some_and(|i| i == "Next") => {
            // `Next` without arguments is rustc's to report; `Next<Other>`
            // would only fail later, in generated code.
            if let [arg] = type_args(ty)[..]
                && !is_self_type(req, arg)
            {
                errors.spanned(
                    arg,
                    format!("{RETURNS}: `Next` of this request, `{}`", req.ident),
                );
            }
        }
        ReturnType::Type(_, ty) => errors.at(ty.span(), RETURNS),
        ReturnType::Default => errors.at(s.paren_token.span.close(), RETURNS),
    }
}

/// The first type in `ty` that cannot be matched against what a generated
/// function passes: `_` or `impl Trait`.
fn inexact_type(ty: &Type) -> Option<&Type> {
    struct Find<'a>(Option<&'a Type>);
    impl<'a> Visit<'a> for Find<'a> {
        fn visit_type(&mut self, ty: &'a Type) {
            if self.0.is_some() {
                return;
            }
            if matches!(ty, Type::Infer(_) | Type::ImplTrait(_)) {
                self.0 = Some(ty);
                return;
            }
            syn::visit::visit_type(self, ty);
        }
    }
    let mut f = Find(None);
    f.visit_type(ty);
    f.0
}

/// `fn start(to: EchoStartStep<'_>, args...) -> Next<Self>`
fn start_signature(req: &Request, m: &ImplItemFn, errors: &mut Errors) -> Option<StepKind> {
    common_signature(req, m, errors);
    let before = errors_len(errors);
    let expected = names::handle(&req.ident, "start");
    let mut inputs = m.sig.inputs.iter().peekable();
    // A `self` is reported once; what follows it is read as if it were not
    // there (its handle, then the send function's arguments), so the
    // handle is not reported as an argument too.
    if let Some(FnArg::Receiver(r)) = inputs.peek() {
        errors.spanned(
            r,
            format!(
                "`start` takes no `self`: it builds the state; its first parameter is its handle, `{}`",
                handle_hint(req, "start")
            ),
        );
        inputs.next();
    }
    match inputs.next() {
        Some(FnArg::Receiver(_)) => {}
        Some(a @ FnArg::Typed(_)) if is_handle(a, &expected) => {}
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
                if let Some(Type::Infer(u)) = inexact_type(&t.ty) {
                    errors.spanned(
                        u,
                        format!(
                            "the arguments of `start` are those of `{}`: write this type out",
                            names::send(&req.ident)
                        ),
                    );
                }
                let ident = match &*t.pat {
                    Pat::Ident(p) if p.subpat.is_none() => p.ident.clone(),
                    _ => syn::Ident::new(&format!("__arg{n}"), t.pat.span()),
                };
                args.push(Arg {
                    ident,
                    ty: (*t.ty).clone(),
                    attrs: t
                        .attrs
                        .iter()
                        .filter(|a| {
                            a.path().is_ident("cfg")
                                || a.path().is_ident("cfg_attr")
                                || names::is_lint_attr(a)
                        })
                        .cloned()
                        .collect(),
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
    common_signature(req, m, errors);
    let before = errors_len(errors);
    let s = &m.sig;
    const NO_GENERICS: &str = "a step has no generic parameters of its own: the glue calls it with what the subrequest gives";
    if !s.generics.params.is_empty() {
        errors.spanned(&s.generics, NO_GENERICS);
    } else if let Some(w) = &s.generics.where_clause {
        errors.spanned(w, NO_GENERICS);
    }
    let hint = handle_hint(req, name);
    let shape = format!(
        "step `{name}` takes `&mut self`, its handle (`{hint}`), what it receives \
         (the subrequest's output, its whole `Result<_, ReqError<_>>`, or the `Req<_>`), \
         then any values the transition into it carries"
    );
    let inputs: Vec<&FnArg> = s.inputs.iter().collect();
    // The parameters after `&mut self` (all of them if it is missing: one
    // error for it, and the rest checked where the user put them).
    let rest: &[&FnArg] = match inputs.first() {
        Some(FnArg::Receiver(r)) => {
            let ok = match &r.kind {
                syn::ReceiverKind::Reference(_, _, Some(_)) => true,
                syn::ReceiverKind::Typed(_, ty) => matches!(
                    &**ty,
                    Type::Reference(rf) if rf.mutability.is_some() && is_self_type(req, &rf.elem)
                ),
                _ => false,
            };
            if !ok {
                errors.spanned(
                    r,
                    format!("a step takes `&mut self` (the request's state); {shape}"),
                );
            }
            &inputs[1..]
        }
        Some(FnArg::Typed(t)) => {
            errors.at(
                t.span(),
                format!("a step takes `&mut self` first (the request's state); {shape}"),
            );
            &inputs[..]
        }
        None => {
            errors.at(s.paren_token.span.join(), shape);
            return None;
        }
    };
    let expected = names::handle(&req.ident, name);
    match rest.first() {
        Some(a @ FnArg::Typed(_)) if is_handle(a, &expected) => {}
        Some(FnArg::Typed(t)) => {
            let later = rest.iter().skip(1).any(|a| arg_type_is(a, &expected));
            let msg = if later {
                format!(
                    "the handle of step `{name}`, `{hint}`, comes right after `&mut self`, before what the step receives"
                )
            } else {
                format!("the handle of step `{name}` is `{hint}`")
            };
            errors.spanned(&t.ty, msg);
        }
        Some(FnArg::Receiver(r)) => errors.spanned(r, shape.clone()),
        None => errors.at(s.paren_token.span.join(), shape.clone()),
    }
    let input = match rest.get(1) {
        Some(FnArg::Typed(t)) => {
            if let Some(bad) = inexact_type(&t.ty) {
                errors.spanned(
                    bad,
                    "a step's input is written out: the glue matches it against the subrequest's output \
                     (`_` and `impl Trait` cannot be matched; name the type)",
                );
            }
            Some(classify(&t.ty))
        }
        Some(FnArg::Receiver(r)) => {
            errors.spanned(r, shape.clone());
            None
        }
        None => {
            if rest.len() == 1 {
                errors.at(s.paren_token.span.join(), shape.clone());
            }
            None
        }
    };
    let carried = carried_values(req, name, rest.get(2..).unwrap_or_default(), errors);
    match input {
        Some(i) if errors_len(errors) == before => Some(StepKind::Resume {
            input: Box::new(i),
            carried,
        }),
        _ => None,
    }
}

/// The values a step's transition carries: its parameters after what the
/// subrequest gives it. Each becomes a field of the step's variant of the
/// step enum, named after the parameter (a pattern gets `value{n}`), and a
/// parameter of the successor methods that lead to the step.
fn carried_values(
    req: &Request,
    step: &str,
    params: &[&FnArg],
    errors: &mut Errors,
) -> Vec<Carried> {
    let mut out: Vec<Carried> = Vec::new();
    for (n, a) in params.iter().enumerate() {
        let t = match a {
            FnArg::Typed(t) => t,
            FnArg::Receiver(r) => {
                errors.spanned(r, "`self` comes first in a step");
                continue;
            }
        };
        if let Some(bad) = inexact_type(&t.ty) {
            errors.spanned(
                bad,
                format!(
                    "a value carried to step `{step}` is written out: it is a field of `{}` \
                     (`_` and `impl Trait` cannot be; name the type)",
                    names::step_enum(&req.ident)
                ),
            );
            continue;
        }
        if let Some(lt) = borrowed_type(&t.ty) {
            errors.at(
                lt,
                format!(
                    "a value carried to step `{step}` waits in the request until the step runs, \
                     so it cannot borrow: carry an owned value (or a `'static` one)"
                ),
            );
            continue;
        }
        let ident = match &*t.pat {
            Pat::Ident(p) if p.subpat.is_none() && p.by_ref.is_none() => p.ident.clone(),
            other => syn::Ident::new(&format!("value{n}"), other.span()),
        };
        // Two parameters of one name are the compiler's to report (E0415);
        // the enum's fields stay distinct meanwhile.
        let ident = if out
            .iter()
            .any(|c| names::key(&c.ident) == names::key(&ident))
        {
            syn::Ident::new(&format!("value{n}"), ident.span())
        } else {
            ident
        };
        out.push(Carried {
            ident,
            ty: (*t.ty).clone(),
        });
    }
    out
}

/// Where `ty` borrows something that is not `'static`: a reference without
/// `'static`, or a lifetime argument other than `'static`.
fn borrowed_type(ty: &Type) -> Option<Span> {
    struct Find(Option<Span>);
    impl<'a> Visit<'a> for Find {
        fn visit_type_reference(&mut self, r: &'a syn::TypeReference) {
            match &r.lifetime {
                Some(l) if l.ident == "static" => syn::visit::visit_type_reference(self, r),
                Some(l) => self.0 = self.0.or(Some(l.span())),
                None => self.0 = self.0.or(Some(r.and_token.span)),
            }
        }
        fn visit_lifetime(&mut self, l: &'a syn::Lifetime) {
            if l.ident != "static" {
                self.0 = self.0.or(Some(l.span()));
            }
        }
    }
    let mut f = Find(None);
    f.visit_type(ty);
    f.0
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
