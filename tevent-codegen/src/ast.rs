//! The model of one `#[tevent_request]` item: what `parse` reads from the
//! attribute and the `impl` block ([`Request`]), and what `validate` makes
//! of it once every check passed ([`Machine`]).

use proc_macro2::Span;
use syn::{Attribute, Generics, Ident, ImplItem, ImplItemFn, ImplItemType, Type, Visibility};

/// The attribute and the `impl` block, as written.
pub(crate) struct Request {
    /// The `impl` block's attributes (kept on the re-emitted block).
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) generics: Generics,
    pub(crate) self_ty: Type,
    /// The last segment of the self type's path (`Echo` in `Echo<S>`).
    pub(crate) ident: Ident,
    /// `type Output = ...;`, moved into the `impl Request`.
    pub(crate) output: Option<ImplItemType>,
    /// `type Error = ...;`, moved into the `impl Request`.
    pub(crate) error: Option<ImplItemType>,
    /// The other `#[cfg]` alternatives of `type Output` and `type Error`
    /// (when each of them carries a `#[cfg]`), moved there too.
    pub(crate) alternatives: Vec<ImplItemType>,
    /// Every other item, in order (the step methods among them).
    pub(crate) items: Vec<ImplItem>,
    /// The attribute's `steps(...)`.
    pub(crate) decls: Vec<Decl>,
    /// Where the steps list is (the attribute, if it has none).
    pub(crate) steps_span: Span,
    /// Whether the attribute parsed (if not, `decls` is empty and no check
    /// that depends on the steps list is made: its error says it all).
    pub(crate) steps_parsed: bool,
    /// The attribute's `forever`, if given.
    pub(crate) forever: Option<Span>,
    /// The names of the block's items that did not parse (reported; no
    /// other error says they are missing).
    pub(crate) broken: std::collections::BTreeSet<String>,
    /// The attribute's `crate = path`: what the generated code calls
    /// `::tevent` (a renamed or re-exported dependency).
    pub(crate) krate: Option<syn::Path>,
}

/// One `name => [successor, ...]` of the steps list.
pub(crate) struct Decl {
    pub(crate) name: Ident,
    /// Declared steps or `done`.
    pub(crate) succ: Vec<Ident>,
}

impl Request {
    /// The methods of the block.
    pub(crate) fn methods(&self) -> impl Iterator<Item = &ImplItemFn> {
        self.items.iter().filter_map(|i| match i {
            ImplItem::Fn(f) => Some(f),
            _ => None,
        })
    }
}

/// A request whose declaration checked out: what `expand` generates from.
pub(crate) struct Machine<'a> {
    pub(crate) req: &'a Request,
    /// The visibility of the generated items: `start`'s.
    pub(crate) vis: Visibility,
    /// In declaration order; `steps[start]` is `start`.
    pub(crate) steps: Vec<Step<'a>>,
    pub(crate) start: usize,
}

/// One declared step with its method.
pub(crate) struct Step<'a> {
    pub(crate) name: &'a Ident,
    pub(crate) succ: Vec<Succ>,
    pub(crate) method: &'a ImplItemFn,
    pub(crate) kind: StepKind,
}

/// Where a step may go.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Succ {
    /// The step with this index.
    Step(usize),
    /// The request finishes.
    Done,
}

/// What a step method takes.
pub(crate) enum StepKind {
    /// `start`: its handle, then the send function's arguments.
    Start { args: Vec<Arg> },
    /// Any other step: its handle, what the subrequest gives it, then the
    /// values the transition into it carries.
    Resume {
        input: Box<Input>,
        carried: Vec<Carried>,
    },
}

/// A value a transition carries to its step: a parameter of the step after
/// what the subrequest gives it, a field of the step's variant of the
/// generated step enum, and a parameter of the successor method that leads
/// there.
pub(crate) struct Carried {
    /// The field's (and the successor method's parameter's) name: the
    /// parameter's, or `value{n}` for a pattern that is not a plain name.
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
}

/// One argument of `start` (and so of the send function).
pub(crate) struct Arg {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
    /// Its `#[cfg]`, `#[cfg_attr]` and lint attributes, which the send
    /// function's parameter carries too (and its `#[cfg]`, the argument
    /// passed on to `start`).
    pub(crate) attrs: Vec<Attribute>,
}

/// What a resumed step receives from the subrequest that finished, told by
/// the type of its last parameter.
pub(crate) enum Input {
    /// Any other type `T`: the subrequest's output (a subrequest with
    /// `Output = T`); a failure ends this request with the error converted
    /// by `From`, keeping timeouts, no memory and the other runtime outcomes.
    Output(Type),
    /// `Result<O, ReqError<E>>`: the whole result; the step handles failures.
    Full { ok: Box<Type>, err: Box<Type> },
    /// `Req<C>`: the finished subrequest itself.
    Raw(Type),
}
