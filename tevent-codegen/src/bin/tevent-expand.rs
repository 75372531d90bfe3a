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
//! Exit status: 0 on success; 1 if the file does not parse or an item has
//! errors (each printed as `FILE:LINE:COLUMN: message`); 2 on a bad command
//! line (with the usage).

use std::path::PathBuf;
use std::process::ExitCode;

use proc_macro2::TokenStream;
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
/// without the attribute, and where it is.
struct Found {
    attr: TokenStream,
    item: TokenStream,
    line: usize,
}

/// Collects every `impl` block carrying `#[tevent_request]` (also inside
/// modules and function bodies).
#[derive(Default)]
struct Finder(Vec<Found>);

impl<'ast> Visit<'ast> for Finder {
    fn visit_item_impl(&mut self, imp: &'ast syn::ItemImpl) {
        let pos = imp.attrs.iter().position(|a| {
            a.path()
                .segments
                .last()
                .is_some_and(|s| s.ident == "tevent_request")
        });
        if let Some(pos) = pos {
            let mut item = imp.clone();
            let attr = item.attrs.remove(pos);
            let args = match attr.meta {
                syn::Meta::List(l) => l.tokens,
                _ => TokenStream::new(),
            };
            let line = attr.pound_token.span.start().line;
            self.0.push(Found {
                attr: args,
                item: quote::quote!(#item),
                line,
            });
        }
        syn::visit::visit_item_impl(self, imp);
    }
}

/// Prints `FILE:LINE:COLUMN: message` for each error.
fn report(file: &str, e: syn::Error) {
    for one in e {
        let at = one.span().start();
        eprintln!("{file}:{}:{}: {}", at.line, at.column + 1, one);
    }
}

fn main() -> ExitCode {
    let (mode, path) = match args() {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
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
            report(&name, e);
            return ExitCode::FAILURE;
        }
    };
    let mut finder = Finder::default();
    finder.visit_file(&file);
    if finder.0.is_empty() {
        eprintln!("tevent-expand: no #[tevent_request] item in {name}");
    }
    let mut failed = false;
    let mut first = true;
    for found in finder.0 {
        if !first {
            println!();
        }
        first = false;
        let printed = match mode {
            Mode::Expand => tevent_codegen::try_expand(found.attr, found.item).and_then(|ts| {
                let file: syn::File = syn::parse2(ts)?;
                Ok(format!(
                    "// #[tevent_request] at {name}:{}, expanded\n{}",
                    found.line,
                    prettyplease::unparse(&file)
                ))
            }),
            Mode::Dot => tevent_codegen::graph(found.attr, found.item)
                .map(|g| format!("// {} ({name}:{})\n{}", g.name, found.line, g.dot)),
            Mode::Mermaid => tevent_codegen::graph(found.attr, found.item)
                .map(|g| format!("%% {} ({name}:{})\n{}", g.name, found.line, g.mermaid)),
        };
        match printed {
            Ok(text) => print!("{text}"),
            Err(e) => {
                failed = true;
                report(&name, e);
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
