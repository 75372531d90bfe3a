//! The names of what the attribute generates for request `Echo`: the step
//! handles (`EchoReadStep` for step `read`, `EchoStartStep` and
//! `EchoStarted` for `start`), `echo_send` / `echo_recv`, the hidden routes
//! trait, and the names a step or an item of the block cannot take because
//! the generated code already uses them.

use proc_macro2::Span;
use syn::Ident;
use syn::ext::IdentExt;

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
}
