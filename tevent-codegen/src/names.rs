//! The names of what the attribute generates for request `Echo`: the step
//! handles (`EchoReadStep` for step `read`, `EchoStartStep` and
//! `EchoStarted` for `start`), and `echo_send` / `echo_recv`.

use proc_macro2::Span;
use syn::Ident;

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

/// The handle type of step `step` of request `ty`: `EchoReadStep`.
pub(crate) fn handle(ty: &Ident, step: &str) -> String {
    format!("{}{}Step", ty, camel(step))
}

/// The handle of `start`'s successors (after `create`): `EchoStarted`.
pub(crate) fn started(ty: &Ident) -> String {
    format!("{ty}Started")
}

/// An identifier at `span`.
pub(crate) fn ident(name: &str, span: Span) -> Ident {
    Ident::new(name, span)
}

/// `echo_send`.
pub(crate) fn send(ty: &Ident) -> Ident {
    Ident::new(&format!("{}_send", snake(&ty.to_string())), ty.span())
}

/// `echo_recv`.
pub(crate) fn recv(ty: &Ident) -> Ident {
    Ident::new(&format!("{}_recv", snake(&ty.to_string())), ty.span())
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
