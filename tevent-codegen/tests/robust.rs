//! The attribute never panics and always gives some output, whatever it is
//! given: half-typed input (what an editor's analyzer expands while the user
//! types), every prefix and every single-token deletion of a real item, and
//! token soup. (The fuzz target in `fuzz/` pushes further.) And while the
//! user types, every generated name stays defined: each prefix of a request
//! (brackets closed, as an editor keeps them) once its block has begun, and
//! every request with one token of a step body deleted or replaced, defines
//! the send and receive functions and every handle type.

use proc_macro2::{TokenStream, TokenTree};

const ATTR: &str = "steps(start => [read], read => [write, done], write => [read])";

const ITEM: &str = r#"
impl<S: AsFd + 'static> Echo<S> where S: Clone {
    type Output = ();
    type Error = std::io::Error;

    /// Starts.
    pub(crate) fn start(to: EchoStartStep<'_, S>, sock: Rc<S>, n: usize) -> Next<Self> {
        let read = read_some_send(to.ev(), &sock, vec![0; n]);
        to.create(Echo { sock }).read(read)
    }

    fn read(&mut self, to: EchoReadStep<'_, S>, data: Vec<u8>) -> Next<Self> {
        if data.is_empty() { return to.done(()); }
        to.write(write_all_send(to.ev(), &self.sock, data))
    }

    #[cfg(unix)]
    fn write(&mut self, to: EchoWriteStep<'_, S>, r: Result<Vec<u8>, ReqError<std::io::Error>>) -> Next<Self> {
        to.read(read_some_send(to.ev(), &self.sock, r?))
    }
}
"#;

fn tokens(s: &str) -> Vec<TokenTree> {
    s.parse::<TokenStream>()
        .expect("lexes")
        .into_iter()
        .collect()
}

/// Every token tree, depth first, with the path to reach it (for deletions
/// inside groups).
fn flatten(ts: &[TokenTree]) -> usize {
    ts.iter()
        .map(|t| match t {
            TokenTree::Group(g) => 1 + flatten(&g.stream().into_iter().collect::<Vec<_>>()),
            _ => 1,
        })
        .sum()
}

/// `ts` without the `n`-th token tree (depth first).
fn delete(ts: &[TokenTree], n: &mut usize) -> Vec<TokenTree> {
    let mut out = Vec::new();
    for t in ts {
        if *n == 0 {
            *n = usize::MAX;
            continue;
        }
        if *n != usize::MAX {
            *n -= 1;
        }
        match t {
            TokenTree::Group(g) if *n != usize::MAX => {
                let inner: Vec<TokenTree> = g.stream().into_iter().collect();
                let kept = delete(&inner, n);
                let mut ng = proc_macro2::Group::new(g.delimiter(), kept.into_iter().collect());
                ng.set_span(g.span());
                out.push(TokenTree::Group(ng));
            }
            other => out.push(other.clone()),
        }
    }
    out
}

fn expand(attr: &[TokenTree], item: &[TokenTree]) -> TokenStream {
    tevent_codegen::expand(
        attr.iter().cloned().collect(),
        item.iter().cloned().collect(),
    )
}

#[test]
fn the_whole_item_expands_without_errors() {
    let out = tevent_codegen::try_expand(ATTR.parse().unwrap(), ITEM.parse().unwrap());
    assert!(out.is_ok(), "{:?}", out.err());
}

#[test]
fn every_prefix_of_the_item_and_of_the_attribute_gives_output() {
    let (attr, item) = (tokens(ATTR), tokens(ITEM));
    for n in 0..=item.len() {
        assert!(!expand(&attr, &item[..n]).is_empty() || n == 0);
    }
    for n in 0..=attr.len() {
        let out = expand(&attr[..n], &item);
        assert!(!out.is_empty());
    }
}

#[test]
fn every_single_token_deletion_gives_output() {
    let (attr, item) = (tokens(ATTR), tokens(ITEM));
    for k in 0..flatten(&item) {
        let mut n = k;
        let cut = delete(&item, &mut n);
        let _ = expand(&attr, &cut);
    }
    for k in 0..flatten(&attr) {
        let mut n = k;
        let cut = delete(&attr, &mut n);
        let out = expand(&cut, &item);
        assert!(!out.is_empty());
    }
}

#[test]
fn token_soup_gives_output() {
    let pieces = [
        "steps", "(", ")", "[", "]", "=>", ",", "start", "done", "forever", "impl", "fn", "self",
        "&", "mut", "type", "Output", "=", ";", "{", "}", "<", ">", "'_", "Next", "Self", "::",
        "#", "!", "1", "\"s\"", "r#type", "async", "where",
    ];
    let mut seed = 0x1234_5678_u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..2000 {
        let len = (next() % 24) as usize;
        let mut s = String::new();
        for _ in 0..len {
            s.push_str(pieces[(next() % pieces.len() as u64) as usize]);
            s.push(' ');
        }
        // Only strings that lex (balanced delimiters) reach a macro.
        let Ok(ts) = s.parse::<TokenStream>() else {
            continue;
        };
        let _ = tevent_codegen::expand(ts.clone(), ITEM.parse().unwrap());
        let _ = tevent_codegen::expand(ATTR.parse().unwrap(), ts.clone());
        let _ = tevent_codegen::expand(ts.clone(), ts);
    }
}

/// Found by the fuzz target `graphs`: a step named with a raw identifier
/// (`r#type`) panicked in `Ident::new` while naming its handle method.
#[test]
fn raw_step_and_type_names_expand_and_keywords_are_errors() {
    let attr = "steps(start => [r#type], r#type => [done])"
        .parse()
        .unwrap();
    let item = "impl r#Match { type Output = (); type Error = (); \
        fn start(to: MatchStartStep<'_>) -> Next<Self> { to.create(r#Match).pending() } \
        fn r#type(&mut self, to: MatchTypeStep<'_>, _: ()) -> Next<Self> { to.done(()) } }"
        .parse()
        .unwrap();
    let out = tevent_codegen::try_expand(attr, item).expect("raw names expand");
    let text = out.to_string();
    assert!(text.contains("fn r#type"), "{text}");
    assert!(text.contains("MatchTypeStep"), "{text}");
    assert!(text.contains("fn match_send"), "{text}");

    let attr = "steps(start => [type], type => [done])".parse().unwrap();
    let item = "impl Echo { type Output = (); type Error = (); \
        fn start(to: EchoStartStep<'_>) -> Next<Self> { to.create(Echo).pending() } }"
        .parse()
        .unwrap();
    let e = tevent_codegen::try_expand(attr, item).unwrap_err();
    let messages: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("`type` cannot name a step: it is a keyword")),
        "{messages:?}"
    );
    // Its uses are not also reported as unknown steps.
    assert!(
        !messages.iter().any(|m| m.contains("unknown step")),
        "{messages:?}"
    );
}

/// A request of `n` steps in a chain (`s0 -> s1 -> ... -> done`).
fn chain(n: usize) -> (TokenStream, TokenStream) {
    let mut attr = String::from("steps(start => [s0], ");
    let mut item = String::from(
        "impl Long { type Output = (); type Error = (); \
         fn start(to: LongStartStep<'_>) -> Next<Self> { to.create(Long).pending() } ",
    );
    for i in 0..n {
        let next = if i + 1 == n {
            "done".to_string()
        } else {
            format!("s{}", i + 1)
        };
        attr.push_str(&format!("s{i} => [{next}], "));
        item.push_str(&format!(
            "fn s{i}(&mut self, to: LongS{i}Step<'_>, _: ()) -> Next<Self> {{ to.pending() }} "
        ));
    }
    attr.push(')');
    item.push('}');
    (attr.parse().unwrap(), item.parse().unwrap())
}

/// The expansion grows linearly with the number of steps. It was quadratic
/// (a hidden method on every handle for every step it does not lead to):
/// 300 steps took a minute to type-check; now each handle only implements
/// one hidden routes trait.
#[test]
fn the_expansion_is_linear_in_the_number_of_steps() {
    let size = |n| {
        let (attr, item) = chain(n);
        let out = tevent_codegen::try_expand(attr, item).expect("a chain expands");
        flatten(&out.into_iter().collect::<Vec<_>>())
    };
    let (small, big) = (size(100), size(400));
    assert!(
        big < small * 5,
        "100 steps: {small} tokens, 400 steps: {big} tokens"
    );
}

/// Validation is linear in steps plus edges (the graph walks count their
/// work in `graph`'s unit tests); here the attribute reads and checks a
/// 20 000-step chain with `done` only at its end (its graph), expands a
/// dense graph (200 steps, each listing every other one: 40 000 edges), and
/// reports a missing `done` in one error.
#[test]
fn a_20000_step_chain_and_a_dense_graph_check_and_expand() {
    let (attr, item) = chain(20_000);
    let g = tevent_codegen::graph(attr, item).expect("a long chain checks");
    assert_eq!(g.steps.len(), 20_001);
    assert_eq!(g.edges.last(), Some(&(20_000, None)));

    let n = 200;
    let names: Vec<String> = (0..n).map(|i| format!("d{i}")).collect();
    let mut attr = format!("steps(start => [{}], ", names.join(", "));
    let mut item = String::from(
        "impl Dense { type Output = (); type Error = (); \
         fn start(to: _) -> Next<Self> { to.create(Dense).pending() } ",
    );
    for (i, name) in names.iter().enumerate() {
        let others: Vec<&str> = names
            .iter()
            .filter(|m| *m != name)
            .map(String::as_str)
            .collect();
        let done = if i == n - 1 { ", done" } else { "" };
        attr.push_str(&format!("{name} => [{}{done}], ", others.join(", ")));
        item.push_str(&format!(
            "fn {name}(&mut self, to: _, _: ()) -> Next<Self> {{ to.pending() }} "
        ));
    }
    attr.push(')');
    item.push('}');
    let out = tevent_codegen::try_expand(attr.parse().unwrap(), item.parse().unwrap())
        .expect("a dense graph expands");
    assert!(out.to_string().contains("fn dense_send"));
    // Without its `done`, every step is stuck: one error names them.
    let attr = attr.replace(", done", "");
    let e = tevent_codegen::try_expand(attr.parse().unwrap(), item.parse().unwrap())
        .expect_err("no path to done");
    let messages: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(
        messages[0].starts_with("steps `start`, `d0`, `d1`"),
        "{}",
        messages[0]
    );
}

/// Every message must name the token to change: none may be spanned on the
/// whole attribute (the call site) when the input has a token to point at.
#[test]
fn errors_about_steps_and_signatures_point_at_the_users_tokens() {
    let cases = [
        (
            "steps(start => [start, done])",
            "fn start(to: EStartStep<'_>) -> Next<Self> { todo!() }",
        ),
        (
            "steps()",
            "fn start(to: EStartStep<'_>) -> Next<Self> { todo!() }",
        ),
        (
            "steps",
            "fn start(to: EStartStep<'_>) -> Next<Self> { todo!() }",
        ),
        (
            "steps(start => [a], a => [done])",
            "fn start(to: EStartStep<'_>) -> Next<Self> { todo!() } \
             fn a(&mut self, to: EAStep<'_>, _: ()) -> Next<Self> where Self: Sized { todo!() }",
        ),
        (
            "steps(start => [a, A], a => [done], A => [done])",
            "fn start(to: EStartStep<'_>) -> Next<Self> { todo!() } \
             fn a(&mut self, to: EAStep<'_>, _: ()) -> Next<Self> { todo!() } \
             fn A(&mut self, to: EAStep<'_>, _: ()) -> Next<Self> { todo!() }",
        ),
        (
            "steps(start => [ev, self], ev => [done], self => [done])",
            "fn start(to: EStartStep<'_>) -> Next<Self> { todo!() }",
        ),
        (
            "steps(start => [done])",
            "fn start(to: EStartStep<'_>) -> Next<u32> { todo!() }",
        ),
    ];
    let call_site = format!("{:?}", proc_macro2::Span::call_site());
    for (attr, methods) in cases {
        let item = format!("impl E {{ type Output = (); type Error = (); {methods} }}");
        let e = tevent_codegen::try_expand(attr.parse().unwrap(), item.parse().unwrap())
            .expect_err(attr);
        for one in e {
            assert_ne!(
                format!("{:?}", one.span()),
                call_site,
                "{attr}: `{one}` is not on a token"
            );
        }
    }
}

/// The first `k` token trees of `ts`, depth first, with every group that
/// the cut opens closed (what an editor with matched brackets holds while
/// the user types).
fn prefix(ts: &[TokenTree], k: &mut usize) -> Vec<TokenTree> {
    let mut out = Vec::new();
    for t in ts {
        if *k == 0 {
            break;
        }
        *k -= 1;
        match t {
            TokenTree::Group(g) => {
                let inner: Vec<TokenTree> = g.stream().into_iter().collect();
                let kept = prefix(&inner, k);
                let mut ng = proc_macro2::Group::new(g.delimiter(), kept.into_iter().collect());
                ng.set_span(g.span());
                out.push(TokenTree::Group(ng));
            }
            other => out.push(other.clone()),
        }
    }
    out
}

/// `ts` with its `n`-th token tree (depth first) replaced by `with`.
fn replace(ts: &[TokenTree], n: &mut usize, with: &TokenTree) -> Vec<TokenTree> {
    let mut out = Vec::new();
    for t in ts {
        if *n == 0 {
            *n = usize::MAX;
            out.push(with.clone());
            continue;
        }
        if *n != usize::MAX {
            *n -= 1;
        }
        match t {
            TokenTree::Group(g) if *n != usize::MAX => {
                let inner: Vec<TokenTree> = g.stream().into_iter().collect();
                let kept = replace(&inner, n, with);
                let mut ng = proc_macro2::Group::new(g.delimiter(), kept.into_iter().collect());
                ng.set_span(g.span());
                out.push(TokenTree::Group(ng));
            }
            other => out.push(other.clone()),
        }
    }
    out
}

/// The functions and structs an expansion defines at its top level: the
/// name after each `fn` and `struct` outside any group (the user's
/// half-typed items, re-emitted for rustc to report, need not parse).
fn defined(out: &TokenStream) -> std::collections::BTreeSet<String> {
    let trees: Vec<TokenTree> = out.clone().into_iter().collect();
    trees
        .windows(2)
        .filter_map(|w| match (&w[0], &w[1]) {
            (TokenTree::Ident(k), TokenTree::Ident(name)) if k == "fn" || k == "struct" => {
                Some(name.to_string())
            }
            _ => None,
        })
        .collect()
}

/// Realistic requests (the attribute, the block, and what they define).
const REQUESTS: &[(&str, &str, &[&str])] = &[
    (
        ATTR,
        ITEM,
        &[
            "echo_send",
            "echo_recv",
            "EchoStartStep",
            "EchoStarted",
            "EchoReadStep",
            "EchoWriteStep",
        ],
    ),
    (
        "steps(start => connected => written => replied => done)",
        r#"
impl Attempt {
    type Output = String;
    type Error = io::Error;

    fn start(to: _, of: &Fetch) -> Next<Self> {
        let to = to.create(Attempt);
        to.set_timeout(of.timeout)?;
        to.connected(connect_send(to.ev(), of.addr), of.line.clone())
    }

    fn connected(&mut self, to: _, sock: TcpStream, line: String) -> Next<Self> {
        let sock = Rc::new(sock);
        to.written(write_all_send(to.ev(), &sock, line + "\n"), sock)
    }

    fn written(&mut self, to: _, _line: String, sock: Rc<TcpStream>) -> Next<Self> {
        to.replied(read_until_send(to.ev(), &sock, b'\n', MAX_LINE))
    }

    fn replied(&mut self, to: _, reply: Vec<u8>) -> Next<Self> {
        if reply.last() != Some(&b'\n') {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        to.done(String::from_utf8_lossy(&reply).trim_end().to_string())
    }
}
"#,
        &[
            "attempt_send",
            "attempt_recv",
            "AttemptStartStep",
            "AttemptStarted",
            "AttemptConnectedStep",
            "AttemptWrittenStep",
            "AttemptRepliedStep",
        ],
    ),
];

fn assert_defines(out: &TokenStream, names: &[&str], what: &dyn Fn() -> String) {
    let have = defined(out);
    for n in names {
        assert!(have.contains(*n), "{} does not define `{n}`", what());
    }
}

#[test]
fn every_prefix_once_the_block_begins_defines_every_generated_name() {
    for (attr, item, names) in REQUESTS {
        let (attr, item) = (tokens(attr), tokens(item));
        // The block's `{` is the last top-level tree: from the tree that
        // opens it on, the block has begun.
        let before_block: usize = flatten(&item[..item.len() - 1]);
        for k in before_block + 1..=flatten(&item) {
            let cut = prefix(&item, &mut { k });
            let out = expand(&attr, &cut);
            assert_defines(&out, names, &|| {
                format!(
                    "the prefix of {k} tokens `{}`",
                    cut.iter().cloned().collect::<TokenStream>()
                )
            });
        }
    }
}

#[test]
fn every_step_body_with_one_token_deleted_or_replaced_defines_every_generated_name() {
    let with: [TokenTree; 3] = [
        TokenTree::Punct(proc_macro2::Punct::new(';', proc_macro2::Spacing::Alone)),
        TokenTree::Ident(proc_macro2::Ident::new("x", proc_macro2::Span::call_site())),
        TokenTree::Punct(proc_macro2::Punct::new('.', proc_macro2::Spacing::Alone)),
    ];
    for (attr, item, names) in REQUESTS {
        let (attr, item) = (tokens(attr), tokens(item));
        let TokenTree::Group(block) = item.last().expect("a block") else {
            panic!("the block");
        };
        let inner: Vec<TokenTree> = block.stream().into_iter().collect();
        // The token trees of the bodies: every brace group inside the block
        // (depth first, by index in `inner`'s flattening).
        let mut bodies = Vec::new();
        let mut at = 0;
        for t in &inner {
            if let TokenTree::Group(g) = t
                && g.delimiter() == proc_macro2::Delimiter::Brace
            {
                let n = flatten(&g.stream().into_iter().collect::<Vec<_>>());
                bodies.extend(at + 1..at + 1 + n);
            }
            at += flatten(std::slice::from_ref(t));
        }
        assert!(bodies.len() > 50, "{} body tokens", bodies.len());
        let rebuild = |inner: Vec<TokenTree>| {
            let mut g = proc_macro2::Group::new(block.delimiter(), inner.into_iter().collect());
            g.set_span(block.span());
            let mut it = item[..item.len() - 1].to_vec();
            it.push(TokenTree::Group(g));
            it
        };
        for &n in &bodies {
            let cut = rebuild(delete(&inner, &mut { n }));
            assert_defines(&expand(&attr, &cut), names, &|| {
                format!("deleting body token {n}")
            });
            for w in &with {
                let changed = rebuild(replace(&inner, &mut { n }, w));
                assert_defines(&expand(&attr, &changed), names, &|| {
                    format!("replacing body token {n} with `{w}`")
                });
            }
        }
    }
}
