//! `tevent-expand`: prints what `#[tevent_request]` generates, or the step
//! graphs, for every `#[tevent_request]` item of a Rust source file. Offline,
//! on stable, without compiling anything: it runs the attribute's own code
//! generator (`tevent-codegen`) and formats the result with `prettyplease`.
//!
//! ```text
//! tevent-expand FILE.rs                   the expansions, formatted
//! tevent-expand --graph dot FILE.rs       the step graphs in Graphviz DOT
//! tevent-expand --graph mermaid FILE.rs   the step graphs as Mermaid
//! ```
//!
//! Exit status: 0 on success; 1 if the file does not parse, has no
//! `#[tevent_request]` item, or an item has errors (each printed as
//! `FILE:LINE:COLUMN: message`); 2 on a bad command line (with the usage).
//! The attribute is found by its name, also under a renamed import (`use
//! tevent::tevent_request as req;`).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use proc_macro2::{LineColumn, Span, TokenStream};
use syn::visit::Visit;

const USAGE: &str = "usage: tevent-expand [--graph dot|mermaid] FILE.rs

Prints every #[tevent_request] item of FILE.rs expanded and formatted, or,
with --graph, the step graph of each (Graphviz DOT or Mermaid).

options:
  --graph dot|mermaid   print the step graphs instead of the expansions
  -h, --help            print this help";

/// What to print.
#[derive(Clone, Copy)]
enum Mode {
    Expand,
    Dot,
    Mermaid,
}

fn args() -> Result<Option<(Mode, PathBuf)>, lexopt::Error> {
    use lexopt::prelude::*;
    let mut mode = Mode::Expand;
    let mut file = None;
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(None),
            Long("graph") => {
                mode = match parser.value()?.string()?.as_str() {
                    "dot" => Mode::Dot,
                    "mermaid" => Mode::Mermaid,
                    other => {
                        return Err(lexopt::Error::from(format!(
                            "--graph takes `dot` or `mermaid`, not `{other}`"
                        )));
                    }
                }
            }
            Value(v) if file.is_none() => file = Some(PathBuf::from(v)),
            _ => return Err(arg.unexpected()),
        }
    }
    match file {
        Some(f) => Ok(Some((mode, f))),
        None => Err(lexopt::Error::from("missing FILE.rs")),
    }
}

/// One `#[tevent_request]` item: the attribute's arguments, the item
/// without the attribute, and where the attribute is.
struct Found {
    attr: TokenStream,
    item: TokenStream,
    at: LineColumn,
}

/// The names the attribute goes by in the file: `tevent_request`, and any
/// `use tevent::tevent_request as other;`.
fn attribute_names(file: &syn::File) -> BTreeSet<String> {
    struct Uses(BTreeSet<String>);
    impl<'ast> Visit<'ast> for Uses {
        fn visit_use_rename(&mut self, r: &'ast syn::UseRename) {
            if r.ident == "tevent_request" {
                self.0.insert(r.rename.to_string());
            }
        }
    }
    let mut uses = Uses(BTreeSet::from(["tevent_request".to_string()]));
    uses.visit_file(file);
    uses.0
}

/// Collects every item carrying `#[tevent_request]` (also inside modules,
/// function bodies and impl blocks): the `impl` blocks it is meant for, and
/// any other item, which the code generator then reports.
struct Finder {
    names: BTreeSet<String>,
    found: Vec<Found>,
}

impl Finder {
    /// Takes the attribute off `attrs`, if it is there: its arguments and
    /// where it is.
    fn take(&self, attrs: &mut Vec<syn::Attribute>) -> Option<(TokenStream, LineColumn)> {
        let pos = attrs.iter().position(|a| {
            a.path()
                .segments
                .last()
                .is_some_and(|s| self.names.contains(&s.ident.to_string()))
        })?;
        let attr = attrs.remove(pos);
        let at = attr.pound_token.span.start();
        let args = match attr.meta {
            syn::Meta::List(l) => l.tokens,
            // `#[tevent_request = ...]`: what follows the name, which the
            // code generator reports as it does for rustc.
            syn::Meta::NameValue(nv) => {
                let (eq, value) = (nv.eq_token, nv.value);
                quote::quote!(#eq #value)
            }
            syn::Meta::Path(_) => TokenStream::new(),
        };
        Some((args, at))
    }
}

/// The attributes of an item, for the kinds that have them.
fn item_attrs(item: &mut syn::Item) -> Option<&mut Vec<syn::Attribute>> {
    use syn::Item::*;
    Some(match item {
        Const(i) => &mut i.attrs,
        Enum(i) => &mut i.attrs,
        ExternCrate(i) => &mut i.attrs,
        Fn(i) => &mut i.attrs,
        ForeignMod(i) => &mut i.attrs,
        Impl(i) => &mut i.attrs,
        Macro(i) => &mut i.attrs,
        Mod(i) => &mut i.attrs,
        Static(i) => &mut i.attrs,
        Struct(i) => &mut i.attrs,
        Trait(i) => &mut i.attrs,
        TraitAlias(i) => &mut i.attrs,
        Type(i) => &mut i.attrs,
        Union(i) => &mut i.attrs,
        Use(i) => &mut i.attrs,
        _ => return None,
    })
}

impl<'ast> Visit<'ast> for Finder {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let mut copy = item.clone();
        if let Some(attrs) = item_attrs(&mut copy)
            && let Some((attr, at)) = self.take(attrs)
        {
            self.found.push(Found {
                attr,
                item: quote::quote!(#copy),
                at,
            });
        }
        syn::visit::visit_item(self, item);
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        let mut copy = f.clone();
        if let Some((attr, at)) = self.take(&mut copy.attrs) {
            self.found.push(Found {
                attr,
                item: quote::quote!(#copy),
                at,
            });
        }
        syn::visit::visit_impl_item_fn(self, f);
    }
}

/// Prints `FILE:LINE:COLUMN: message` for each error; an error with no
/// place of its own (about the attribute as a whole) is at the attribute.
fn report(file: &str, e: syn::Error, attr: Option<LineColumn>) {
    let nowhere = format!("{:?}", Span::call_site());
    for one in e {
        let mut at = one.span().start();
        if let Some(attr) = attr
            && format!("{:?}", one.span()) == nowhere
        {
            at = attr;
        }
        eprintln!("{file}:{}:{}: {}", at.line, at.column + 1, one);
    }
}

/// Formats an expansion. prettyplease panics on what it cannot print (a
/// `fn f();` without a body, which rustc rejects too): that is an error
/// here (reported at the attribute), not a crash.
fn format(ts: TokenStream) -> Result<String, syn::Error> {
    let file: syn::File = syn::parse2(ts)?;
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let printed = std::panic::catch_unwind(|| prettyplease::unparse(&file));
    std::panic::set_hook(hook);
    printed.map_err(|panic| {
        let why = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("unknown item");
        syn::Error::new(
            Span::call_site(),
            format!(
                "cannot print this expansion ({why}): the item holds something that is not Rust rustc accepts"
            ),
        )
    })
}

/// Writes to stdout; `Err` once the reader went away (`| head`).
fn out(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

fn main() -> ExitCode {
    let (mode, path) = match args() {
        Ok(Some(a)) => a,
        Ok(None) => {
            let _ = out(&format!("{USAGE}\n"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("tevent-expand: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let name = path.display().to_string();
    let source = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tevent-expand: cannot read {name}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let file = match syn::parse_file(&source) {
        Ok(f) => f,
        Err(e) => {
            report(&name, e, None);
            return ExitCode::FAILURE;
        }
    };
    let mut finder = Finder {
        names: attribute_names(&file),
        found: Vec::new(),
    };
    finder.visit_file(&file);
    if finder.found.is_empty() {
        eprintln!("tevent-expand: no #[tevent_request] item in {name}");
        return ExitCode::FAILURE;
    }
    let mut failed = false;
    let mut first = true;
    for found in finder.found {
        let printed = match mode {
            Mode::Expand => tevent_codegen::try_expand(found.attr, found.item)
                .and_then(format)
                .map(|text| {
                    format!(
                        "// #[tevent_request] at {name}:{}, expanded\n{text}",
                        found.at.line
                    )
                }),
            Mode::Dot => tevent_codegen::graph(found.attr, found.item)
                .map(|g| format!("// {} ({name}:{})\n{}", g.name, found.at.line, g.dot)),
            Mode::Mermaid => tevent_codegen::graph(found.attr, found.item)
                .map(|g| format!("%% {} ({name}:{})\n{}", g.name, found.at.line, g.mermaid)),
        };
        match printed {
            Ok(text) => {
                let sep = if first { "" } else { "\n" };
                first = false;
                if let Err(e) = out(&format!("{sep}{text}")) {
                    // The reader is gone (`tevent-expand .. | head`): stop
                    // quietly, as a filter does; any other failure is one.
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        return ExitCode::SUCCESS;
                    }
                    eprintln!("tevent-expand: cannot write: {e}");
                    return ExitCode::FAILURE;
                }
            }
            Err(e) => {
                failed = true;
                report(&name, e, Some(found.at));
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
