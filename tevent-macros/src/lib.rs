//! The `#[tevent_request]` attribute, a thin shim: parsing, checks and code
//! generation live in `tevent-codegen` (a plain library, tested on its own
//! and shared with the `tevent-expand` tool). Use it through the `tevent`
//! crate, which re-exports it: `use tevent::tevent_request;`.

use proc_macro::TokenStream;

/// Turns an `impl` block of a request's state type, with the request's steps
/// declared in the attribute, into a checked tevent request.
///
/// ```
/// use tevent::{Context, Next, ReqError, tevent_request};
///
/// /// Parses a number, then doubles it in a second request.
/// struct Parse;
///
/// #[tevent_request(steps(start => [doubled], doubled => [done]))]
/// impl Parse {
///     type Output = u64;
///     type Error = String;
///
///     /// The send function's doc: parses `text`.
///     fn start(to: ParseStartStep<'_>, text: &str) -> Next<Self> {
///         let n: u64 = text.parse().map_err(|e| ReqError::User(format!("{e}")))?;
///         let double = double_send(to.ev(), n);
///         to.create(Parse).doubled(double)
///     }
///
///     /// Receives the output of the double request.
///     fn doubled(&mut self, to: ParseDoubledStep<'_>, v: u64) -> Next<Self> {
///         to.done(v)
///     }
/// }
///
/// struct Double;
///
/// #[tevent_request(steps(start => [done]))]
/// impl Double {
///     type Output = u64;
///     type Error = String;
///
///     fn start(to: DoubleStartStep<'_>, n: u64) -> Next<Self> {
///         to.create(Double).done(2 * n)
///     }
/// }
///
/// let ev = Context::new()?;
/// let req = parse_send(&ev, "21");
/// req.poll(&ev)?;
/// assert_eq!(parse_recv(req), Ok(42));
/// assert_eq!(Parse::STEPS, ["start", "doubled"]);
/// # Ok::<(), tevent::Error>(())
/// ```
///
/// # The attribute
///
/// `#[tevent_request(steps(step => [successor, ...], ...))]`, optionally with
/// `, forever` after the list. A successor is a declared step or `done` (the
/// step may finish the request). `start` is required and runs first. Every
/// step must be reachable from `start` and, unless the request is `forever`
/// (it never finishes by itself, like a server), have a path to `done`.
///
/// # The `impl` block
///
/// - `type Output = ...;` and `type Error = ...;` (they move into the
///   generated `impl Request`);
/// - `fn start(to: TStartStep<'_>, args...) -> Next<Self>`: no `self`; builds
///   the state and hands it over with `to.create(state)`, which returns the
///   handle of `start`'s successors. Its parameters after the handle are the
///   send function's;
/// - for every other step, `fn step(&mut self, to: TStepStep<'_>, input) ->
///   Next<Self>`, where `input` is the subrequest's output (a failure ends the
///   request, the error converted by `From`, runtime outcomes as they are),
///   its whole `Result<_, ReqError<_>>`, or the `Req<_>` itself.
///
/// A step's handle has one method per declared successor (each waits for a
/// subrequest whose end resumes that step), `done(output)` where the step may
/// finish, and, through `Deref` to `tevent::StepCtl`, `ev()`, `pending()`,
/// end times and hooks. Calling anything else does not compile.
///
/// # What is generated
///
/// For request `T`: `impl Request for T`; `t_send(ev, args..) -> Req<T>` and
/// `t_recv(req)`, with `start`'s visibility; the handle types; the glue between
/// the steps; `T::STEPS`, `T::GRAPH_DOT` and `T::GRAPH_MERMAID`; the graph in
/// the `impl` block's documentation. `Debug` of a request names the step(s)
/// it waits in (`T@step`).
///
/// # Errors
///
/// Every problem (unknown, duplicate or unreachable steps, a step with no path
/// to `done`, a missing `start`, `Output` or `Error`, a step method whose
/// signature does not fit, a malformed attribute) is a compile error spanned
/// on the offending token, all reported in one compile, with a stub emitted so
/// that nothing cascades.
///
/// The `tevent` crate's tutorial has the details, in the chapters its
/// documentation of this attribute links: chapter 5 (every rule, every
/// error, the mapping to C tevent's conventions) and chapter 6 (the
/// `tevent-expand` tool, the graphs, `Debug`, profiles).
#[proc_macro_attribute]
pub fn tevent_request(attr: TokenStream, item: TokenStream) -> TokenStream {
    tevent_codegen::expand(attr.into(), item.into()).into()
}
