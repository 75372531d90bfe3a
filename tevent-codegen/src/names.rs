//! The names of what the attribute generates for request `Echo`: the step
//! handles (`EchoReadStep` for step `read`, `EchoStartStep` and
//! `EchoStarted` for `start`), `echo_send` / `echo_recv`, the hidden routes
//! trait, the names a step or an item of the block cannot take because
//! the generated code already uses them, and the path the generated code
//! names the `tevent` crate by (`crate = path`).

use proc_macro2::{Delimiter, Group, Span, TokenStream, TokenTree};
use syn::Ident;
use syn::ext::IdentExt;
use syn::spanned::Spanned;

/// Names a step cannot take: the methods every step handle already has
/// (through `Deref` to `tevent::StepCtl`), which a successor method of the
/// same name would hide, and `done`.
pub(crate) const RESERVED: &[&str] = &[
    "ev",
    "pending",
    "done",
    "set_endtime",
    "set_timeout",
    "reset_endtime",
    "set_cleanup",
    "set_cancel",
    "enable_profile",
];

/// The associated constants generated on the request type.
pub(crate) const GRAPH_CONSTS: &[&str] = &["STEPS", "GRAPH_DOT", "GRAPH_MERMAID"];

/// A step's (or a method's) name as the user means it: `r#read` and `read`
/// are the same step.
pub(crate) fn key(name: &Ident) -> String {
    name.unraw().to_string()
}

/// Why `name` cannot name a step, if it cannot: a keyword that has no raw
/// form (`self`, `Self`, `super`, `crate`, `_`), or another keyword written
/// plainly (which can be written raw).
pub(crate) fn bad_step_name(name: &str) -> Option<String> {
    if is_item_name(name) {
        return None;
    }
    Some(match name {
        "self" | "Self" | "super" | "crate" | "_" => format!(
            "`{name}` cannot name a step: it is a keyword with no raw form; choose another name"
        ),
        _ => format!(
            "`{name}` cannot name a step: it is a keyword (a step named like a keyword is written raw, `r#{name}`)"
        ),
    })
}

/// `read` or `client_done` as a type-name part: `Read`, `ClientDone`.
pub(crate) fn camel(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for part in s
        .trim_start_matches("r#")
        .split('_')
        .filter(|p| !p.is_empty())
    {
        let mut cs = part.chars();
        if let Some(c) = cs.next() {
            out.extend(c.to_uppercase());
            out.push_str(cs.as_str());
        }
    }
    out
}

/// `EchoServer` or `HTTPRequest` as a function-name part: `echo_server`,
/// `http_request`.
pub(crate) fn snake(s: &str) -> String {
    let chars: Vec<char> = s.trim_start_matches("r#").chars().collect();
    let mut out = String::with_capacity(s.len() + 4);
    for (i, c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev_lower =
                i > 0 && (chars[i - 1].is_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_uppercase();
            if i > 0 && (prev_lower || (prev_upper && next_lower)) && !out.ends_with('_') {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(*c);
        }
    }
    out
}

/// A type's name without `r#`.
fn bare(ty: &Ident) -> String {
    let s = ty.to_string();
    s.strip_prefix("r#")
        .map_or_else(|| s.clone(), str::to_string)
}

/// The handle type of step `step` of request `ty`: `EchoReadStep`.
pub(crate) fn handle(ty: &Ident, step: &str) -> String {
    format!("{}{}Step", bare(ty), camel(step))
}

/// The handle of `start`'s successors (after `create`): `EchoStarted`.
pub(crate) fn started(ty: &Ident) -> String {
    format!("{}Started", bare(ty))
}

/// Whether `s` can name an item: an identifier (`r#` allowed), not a
/// keyword unless raw.
pub(crate) fn is_item_name(s: &str) -> bool {
    syn::parse_str::<Ident>(s).is_ok()
}

/// An identifier for `name` at `span`, raw if `name` is written raw; never
/// panics (a name that cannot be an identifier, which the checks report
/// first, becomes a placeholder).
pub(crate) fn ident(name: &str, span: Span) -> Ident {
    let raw = name.strip_prefix("r#");
    let text = raw.unwrap_or(name);
    let plain = !text.is_empty()
        && text
            .chars()
            .next()
            .is_some_and(|c| c == '_' || c.is_alphabetic())
        && text.chars().all(|c| c == '_' || c.is_alphanumeric())
        && text != "_";
    match (plain, raw.is_some()) {
        (false, _) => Ident::new("__tevent_request_bad_name", span),
        (true, true) if !matches!(text, "self" | "Self" | "super" | "crate") => {
            Ident::new_raw(text, span)
        }
        // A keyword of some editions only (`gen` from 2024, `async`,
        // `await`, `dyn` and `try` from 2018): written raw, which every
        // edition reads as the same name, so the generated code means the
        // user's name whatever edition the compiler takes it for.
        (true, false) if matches!(text, "gen" | "async" | "await" | "dyn" | "try") => {
            Ident::new_raw(text, span)
        }
        _ => Ident::new(text, span),
    }
}

/// The step enum of request `ty`: `EchoStep`.
pub(crate) fn step_enum(ty: &Ident) -> Ident {
    ident(&format!("{}Step", bare(ty)), ty.span())
}

/// The step-name enum of request `ty`: `EchoStepName`.
pub(crate) fn step_name_enum(ty: &Ident) -> Ident {
    ident(&format!("{}StepName", bare(ty)), ty.span())
}

/// The hidden trait that gives every step handle of request `ty` a method
/// for each step it does not lead to (so that calling one says so):
/// `EchoRoutes`.
pub(crate) fn routes(ty: &Ident) -> Ident {
    ident(&format!("{}Routes", bare(ty)), Span::call_site())
}

/// `EchoLeadsTo`: the bound of the routes a step does not declare, whose
/// message lists the request's steps.
pub(crate) fn leads_to(ty: &Ident) -> Ident {
    ident(&format!("{}LeadsTo", bare(ty)), Span::call_site())
}

/// `EchoStartRoutes`: the routes of `start`'s handle before `create`.
pub(crate) fn start_routes(ty: &Ident) -> Ident {
    ident(&format!("{}StartRoutes", bare(ty)), Span::call_site())
}

/// `echo_send`.
pub(crate) fn send(ty: &Ident) -> Ident {
    ident(&format!("{}_send", snake(&bare(ty))), ty.span())
}

/// `echo_recv`.
pub(crate) fn recv(ty: &Ident) -> Ident {
    ident(&format!("{}_recv", snake(&bare(ty))), ty.span())
}

/// Whether `attr` sets a lint level (`allow`, `expect`, `warn`, `deny`,
/// `forbid`): the attributes of `start` and its parameters that the send
/// function carries too.
pub(crate) fn is_lint_attr(attr: &syn::Attribute) -> bool {
    ["allow", "expect", "warn", "deny", "forbid"]
        .iter()
        .any(|l| attr.path().is_ident(l))
}

/// `attr` as a generated item carries it: an `#[expect(..)]` becomes an
/// `#[allow(..)]` (the generated item may not trip what the user's item
/// does, and an unmet expectation would warn on code the user cannot see).
pub(crate) fn carried_lint_attr(attr: &syn::Attribute) -> syn::Attribute {
    let mut a = attr.clone();
    if let syn::Meta::List(list) = &mut a.meta
        && list.path.is_ident("expect")
    {
        list.path = syn::Path::from(Ident::new("allow", list.path.span()));
    }
    a
}

/// `tokens` with every path that starts `::tevent` starting with `krate`
/// instead (the attribute's `crate = path`, for a renamed or re-exported
/// dependency); unchanged without one. A `::tevent` after a name
/// (`crate::tevent::x`, `my::tevent`) is not a crate root and stays.
pub(crate) fn rebase(tokens: TokenStream, krate: Option<&syn::Path>) -> TokenStream {
    match krate {
        Some(path) => rebase_in(tokens, &quote::quote!(#path)),
        None => tokens,
    }
}

fn rebase_in(tokens: TokenStream, krate: &TokenStream) -> TokenStream {
    // Keywords after which a path starts (`<T as ::tevent::Request>`).
    const BEFORE_PATH: &[&str] = &[
        "as", "dyn", "impl", "for", "in", "mut", "const", "return", "where", "move", "use", "let",
        "if", "match", "while", "else", "ref", "unsafe", "static", "pub", "type", "fn", "break",
    ];
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out = Vec::with_capacity(trees.len());
    let mut i = 0;
    while i < trees.len() {
        if let (TokenTree::Punct(a), Some(TokenTree::Punct(b)), Some(TokenTree::Ident(name))) =
            (&trees[i], trees.get(i + 1), trees.get(i + 2))
        {
            let root = match i.checked_sub(1).map(|p| &trees[p]) {
                Some(TokenTree::Ident(prev)) => BEFORE_PATH.contains(&prev.to_string().as_str()),
                _ => true,
            };
            if root && a.as_char() == ':' && b.as_char() == ':' && name == "tevent" {
                out.extend(krate.clone());
                i += 3;
                continue;
            }
        }
        out.push(match &trees[i] {
            TokenTree::Group(g) => {
                let mut inner = Group::new(g.delimiter(), rebase_in(g.stream(), krate));
                inner.set_span(g.span());
                if g.delimiter() == Delimiter::None {
                    TokenTree::Group(inner)
                } else {
                    inner.into()
                }
            }
            other => other.clone(),
        });
        i += 1;
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_rust_conventions() {
        assert_eq!(camel("read"), "Read");
        assert_eq!(camel("client_done"), "ClientDone");
        assert_eq!(camel("_x__y"), "XY");
        assert_eq!(snake("Echo"), "echo");
        assert_eq!(snake("EchoServer"), "echo_server");
        assert_eq!(snake("HTTPRequest"), "http_request");
        assert_eq!(snake("Read2Bytes"), "read2_bytes");
        let ty = Ident::new("EchoServer", Span::call_site());
        assert_eq!(handle(&ty, "client_done"), "EchoServerClientDoneStep");
        assert_eq!(send(&ty).to_string(), "echo_server_send");
    }

    #[test]
    fn rebase_replaces_only_the_crate_root() {
        let path: syn::Path = syn::parse_quote!(tv);
        let tokens = quote::quote! {
            fn f(r: ::tevent::Req<X>) -> <X as ::tevent::Request>::Output { crate::tevent::g(::tevent::h()) }
        };
        let out = rebase(tokens, Some(&path)).to_string();
        assert_eq!(
            out,
            quote::quote! {
                fn f(r: tv::Req<X>) -> <X as tv::Request>::Output { crate::tevent::g(tv::h()) }
            }
            .to_string()
        );
    }
}
