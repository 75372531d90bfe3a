//! The `tevent-expand` tool, shared by its two binaries: `tevent-expand`
//! (`tevent-expand [OPTIONS] FILE.rs`) and `cargo-tevent-expand`, the same
//! as a cargo subcommand (`cargo tevent-expand [OPTIONS] [FILE.rs]`), which
//! without a file looks for the request in the current package.
//!
//! It prints what `#[tevent_request]` generates, or the step graphs, for
//! the `#[tevent_request]` items of a Rust source file: offline, on
//! stable, without compiling anything (it runs the attribute's own code
//! generator, `tevent-codegen`, and formats the result with
//! `prettyplease`).
//!
//! Exit status: 0 on success; 1 if the file does not parse, has no
//! `#[tevent_request]` item (or none named by `--request`, then the names
//! it has are listed), or an item has errors (each printed as
//! `FILE:LINE:COLUMN: message`); 2 on a bad command line (with the usage).
//! The attribute is found by its name, also under a renamed import (`use
//! tevent::tevent_request as req;`).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use proc_macro2::{LineColumn, Span, TokenStream};
use syn::visit::Visit;

/// How the tool was started.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Invocation {
    /// `tevent-expand`: a file is required.
    Direct,
    /// `cargo tevent-expand` (the `cargo-tevent-expand` binary): without a
    /// file, the current package's sources are searched.
    Cargo,
}

const USAGE: &str = "usage: tevent-expand [--request NAME] [--graph dot|mermaid] FILE.rs
       cargo tevent-expand [--request NAME] [--graph dot|mermaid] [--manifest-path PATH] [FILE.rs]

Prints the #[tevent_request] items of FILE.rs expanded and formatted, or,
with --graph, their step graphs as one Graphviz DOT or Mermaid document.
As a cargo subcommand without FILE.rs, it looks through the .rs files of
the current package (but target/ and other packages' directories).

options:
  --request NAME        only the request whose type is NAME (exit 1, listing
                        the requests found, if there is none)
  --graph dot|mermaid   print the step graph instead of the expansion: one
                        DOT digraph (a cluster per request when there are
                        several) or one Mermaid diagram (one request: name
                        it with --request when the file has several)
  --manifest-path PATH  (cargo tevent-expand) the package's Cargo.toml,
                        instead of the one above the current directory
  -h, --help            print this help";

/// What to print.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Expand,
    Dot,
    Mermaid,
}

/// The command line.
struct Options {
    mode: Mode,
    request: Option<String>,
    file: Option<PathBuf>,
    manifest: Option<PathBuf>,
}

fn args(how: Invocation) -> Result<Option<Options>, lexopt::Error> {
    use lexopt::prelude::*;
    let mut o = Options {
        mode: Mode::Expand,
        request: None,
        file: None,
        manifest: None,
    };
    let mut parser = lexopt::Parser::from_env();
    let mut first = true;
    while let Some(arg) = parser.next()? {
        // cargo runs `cargo-tevent-expand tevent-expand ARGS...`.
        let subcommand_name = first && how == Invocation::Cargo;
        first = false;
        match arg {
            Value(v) if subcommand_name && v == "tevent-expand" => {}
            Short('h') | Long("help") => return Ok(None),
            Long("graph") => {
                o.mode = match parser.value()?.string()?.as_str() {
                    "dot" => Mode::Dot,
                    "mermaid" => Mode::Mermaid,
                    other => {
                        return Err(lexopt::Error::from(format!(
                            "--graph takes `dot` or `mermaid`, not `{other}`"
                        )));
                    }
                }
            }
            Long("request") => o.request = Some(parser.value()?.string()?),
            Long("manifest-path") if how == Invocation::Cargo => {
                o.manifest = Some(PathBuf::from(parser.value()?));
            }
            Value(v) if o.file.is_none() => o.file = Some(PathBuf::from(v)),
            _ => return Err(arg.unexpected()),
        }
    }
    if o.file.is_none() && how == Invocation::Direct {
        return Err(lexopt::Error::from("missing FILE.rs"));
    }
    Ok(Some(o))
}

/// One `#[tevent_request]` item: the attribute's arguments, the item
/// without the attribute, and where the attribute is.
struct Found {
    attr: TokenStream,
    item: TokenStream,
    at: LineColumn,
    /// The file it is in, as named on the command line or found.
    file: String,
    /// The request's name: the type of the `impl` block (`None` for an
    /// item that is not one, which the code generator then reports).
    name: Option<String>,
}

impl Found {
    /// `Name (file:line)`, for lists.
    fn place(&self) -> String {
        format!(
            "{} ({}:{})",
            self.name.as_deref().unwrap_or("(not an impl block)"),
            self.file,
            self.at.line
        )
    }
}

/// The type an `impl` block is for, without its path and generics.
fn impl_name(item: &syn::Item) -> Option<String> {
    let syn::Item::Impl(i) = item else {
        return None;
    };
    match &*i.self_ty {
        syn::Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    }
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
    file: String,
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
                name: impl_name(&copy),
                item: quote::quote!(#copy),
                at,
                file: self.file.clone(),
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
                file: self.file.clone(),
                name: None,
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

/// The `#[tevent_request]` items of one source file; `Err` with the
/// file's error (it cannot be read or does not parse).
fn items_of(path: &Path, name: &str) -> Result<Vec<Found>, String> {
    let source = std::fs::read_to_string(path)
        .map_err(|e| format!("tevent-expand: cannot read {name}: {e}"))?;
    let file = syn::parse_file(&source).map_err(|e| {
        e.into_iter()
            .map(|one| {
                let at = one.span().start();
                format!("{name}:{}:{}: {one}", at.line, at.column + 1)
            })
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let mut finder = Finder {
        names: attribute_names(&file),
        found: Vec::new(),
        file: name.to_string(),
    };
    finder.visit_file(&file);
    Ok(finder.found)
}

/// The root of the package `manifest` names, or the nearest one above the
/// current directory.
fn package_root(manifest: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(m) = manifest {
        return m
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .map(Path::to_path_buf)
            .ok_or_else(|| format!("tevent-expand: {} names no directory", m.display()));
    }
    let here =
        std::env::current_dir().map_err(|e| format!("tevent-expand: no current directory: {e}"))?;
    let mut dir = here.as_path();
    loop {
        let toml = dir.join("Cargo.toml");
        if let Ok(text) = std::fs::read_to_string(&toml)
            && text.lines().any(|l| l.trim() == "[package]")
        {
            return Ok(dir.to_path_buf());
        }
        dir = dir.parent().ok_or_else(|| {
            format!(
                "tevent-expand: no package (a Cargo.toml with [package]) at or above {}: give FILE.rs or --manifest-path",
                here.display()
            )
        })?;
    }
}

/// The `.rs` files of a package (under its root, leaving out `target/`,
/// hidden directories and the directories of other packages: those with
/// a `Cargo.toml` of their own), sorted, so the output is the same from run
/// to run.
fn package_sources(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name();
            let name = name.to_string_lossy();
            let Ok(t) = e.file_type() else { continue };
            let other_package = || p.join("Cargo.toml").exists();
            if t.is_dir() && name != "target" && !name.starts_with('.') && !other_package() {
                dirs.push(p);
            } else if t.is_file() && name.ends_with(".rs") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// A path as the user reads it: relative to the current directory when it
/// is under it.
fn shown(p: &Path) -> String {
    let rel = std::env::current_dir()
        .ok()
        .and_then(|here| p.strip_prefix(here).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| p.to_path_buf());
    if rel.as_os_str().is_empty() {
        ".".to_string()
    } else {
        rel.display().to_string()
    }
}

/// `Name (file:line), ...` of `found`.
fn listed(found: &[Found]) -> String {
    found
        .iter()
        .map(Found::place)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs the tool.
pub(crate) fn main(how: Invocation) -> ExitCode {
    let o = match args(how) {
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
    // Every #[tevent_request] item of the file, or of the package.
    let Some((found, whence, title)) = gather(&o) else {
        return ExitCode::FAILURE;
    };
    if found.is_empty() {
        eprintln!("tevent-expand: no #[tevent_request] item in {whence}");
        return ExitCode::FAILURE;
    }
    let chosen: Vec<&Found> = match &o.request {
        Some(want) => {
            let named: Vec<&Found> = found
                .iter()
                .filter(|f| f.name.as_deref() == Some(want.as_str()))
                .collect();
            if named.is_empty() {
                eprintln!(
                    "tevent-expand: no request named `{want}` in {whence}; the requests there: {}",
                    listed(&found)
                );
                return ExitCode::FAILURE;
            }
            named
        }
        None => found.iter().collect(),
    };
    // A Mermaid document is one diagram; a DOT one is a digraph with a
    // cluster per request.
    let several = chosen.len() > 1;
    if several && o.mode == Mode::Mermaid {
        eprintln!(
            "tevent-expand: {} requests in {whence} (a Mermaid document holds one diagram): name one with --request NAME: {}",
            chosen.len(),
            chosen
                .iter()
                .map(|f| f.place())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return ExitCode::FAILURE;
    }
    let (texts, graphs, failed) = print_each(&o, chosen);
    let text = if o.mode == Mode::Dot && graphs.len() > 1 {
        // One digraph, a cluster per request: `dot -Tsvg` draws one
        // picture (several digraphs would be several SVG documents in one
        // output, which is no valid SVG file).
        let places: Vec<String> = graphs
            .iter()
            .map(|(g, place)| format!("{} ({place})", g.name))
            .collect();
        let refs: Vec<&tevent_codegen::Graph> = graphs.iter().map(|(g, _)| g).collect();
        format!(
            "// {whence}: {}\n{}",
            places.join(", "),
            tevent_codegen::dot_document(&title, &refs)
        )
    } else {
        texts.join("\n")
    };
    if !text.is_empty()
        && let Err(e) = out(&text)
    {
        // The reader is gone (`tevent-expand .. | head`): stop quietly,
        // as a filter does; any other failure is one.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("tevent-expand: cannot write: {e}");
            return ExitCode::FAILURE;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Every `#[tevent_request]` item of the file, or of the package, with how
/// to name where they were looked for, and a title for a DOT document;
/// `None` (said on stderr) if the file or the package cannot be read.
fn gather(o: &Options) -> Option<(Vec<Found>, String, String)> {
    match &o.file {
        Some(path) => {
            let name = path.display().to_string();
            match items_of(path, &name) {
                Ok(f) => Some((f, name.clone(), name)),
                Err(e) => {
                    eprintln!("{e}");
                    None
                }
            }
        }
        None => {
            let root = match package_root(o.manifest.as_deref()) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("{e}");
                    return None;
                }
            };
            let mut all = Vec::new();
            let mut skipped = Vec::new();
            for f in package_sources(&root) {
                match items_of(&f, &shown(&f)) {
                    Ok(mut found) => all.append(&mut found),
                    Err(e) => skipped.push(e),
                }
            }
            if all.is_empty() || o.request.is_some() {
                // Files that do not parse might hold what was asked for.
                for e in &skipped {
                    eprintln!("tevent-expand: skipped a file that does not parse: {e}");
                }
            }
            let title = std::fs::canonicalize(&root)
                .ok()
                .and_then(|r| r.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "package".to_string());
            Some((all, format!("the package at {}", shown(&root)), title))
        }
    }
}

/// Each chosen request as the mode asks (its expansion or its graph), the
/// graphs for a DOT document of several, and whether any failed (its
/// errors said on stderr, each at its place).
fn print_each(
    o: &Options,
    chosen: Vec<&Found>,
) -> (Vec<String>, Vec<(tevent_codegen::Graph, String)>, bool) {
    let mut failed = false;
    let mut texts = Vec::new();
    let mut graphs = Vec::new();
    for found in chosen {
        let printed = match o.mode {
            Mode::Expand => tevent_codegen::try_expand(found.attr.clone(), found.item.clone())
                .and_then(format)
                .map(|text| {
                    format!(
                        "// #[tevent_request] at {}:{}, expanded\n{text}",
                        found.file, found.at.line
                    )
                }),
            Mode::Dot | Mode::Mermaid => {
                tevent_codegen::graph(found.attr.clone(), found.item.clone()).map(|g| {
                    let text = if o.mode == Mode::Dot {
                        format!(
                            "// {} ({}:{})\n{}",
                            g.name, found.file, found.at.line, g.dot
                        )
                    } else {
                        format!(
                            "%% {} ({}:{})\n{}",
                            g.name, found.file, found.at.line, g.mermaid
                        )
                    };
                    graphs.push((g, format!("{}:{}", found.file, found.at.line)));
                    text
                })
            }
        };
        match printed {
            Ok(text) => texts.push(text),
            Err(e) => {
                failed = true;
                report(&found.file, e, Some(found.at));
            }
        }
    }
    (texts, graphs, failed)
}
