//! Arbitrary step lists over well-formed step methods: any graph (unknown,
//! duplicate, unreachable steps, missing paths to `done`, `forever`, missing
//! methods) either expands to code that parses as Rust or gives spanned
//! errors, never a panic; and a graph that expands is one the checks accept
//! (every step reachable, a path to `done` unless `forever`).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 8] = ["start", "read", "write", "wait", "done", "node", "r#type", "end"];

#[derive(Arbitrary, Debug)]
struct Spec {
    /// (step name index, successor name indices)
    steps: Vec<(u8, Vec<u8>)>,
    forever: bool,
    /// Names of methods to leave out of the block.
    missing: Vec<u8>,
    /// How each resumed step takes its input: output, whole result, request.
    input: Vec<u8>,
}

fn name(i: u8) -> &'static str {
    NAMES[i as usize % NAMES.len()]
}

fuzz_target!(|spec: Spec| {
    let mut attr = String::from("steps(");
    for (n, succ) in &spec.steps {
        attr.push_str(name(*n));
        attr.push_str(" => [");
        for s in succ {
            attr.push_str(name(*s));
            attr.push_str(", ");
        }
        attr.push_str("], ");
    }
    attr.push(')');
    if spec.forever {
        attr.push_str(", forever");
    }
    let mut item = String::from(
        "impl Echo { type Output = (); type Error = std::io::Error;\n\
         fn start(to: EchoStartStep<'_>) -> Next<Self> { to.create(Echo).pending() }\n",
    );
    let mut seen = Vec::new();
    for (i, (n, _)) in spec.steps.iter().enumerate() {
        let nm = name(*n);
        if nm == "start" || nm == "done" || seen.contains(&nm) {
            continue;
        }
        seen.push(nm);
        if spec.missing.iter().any(|m| name(*m) == nm) {
            continue;
        }
        let camel: String = nm
            .trim_start_matches("r#")
            .split('_')
            .map(|p| p[..1].to_uppercase() + &p[1..])
            .collect();
        let input = match spec.input.get(i).copied().unwrap_or(0) % 3 {
            0 => "Vec<u8>",
            1 => "Result<Vec<u8>, ReqError<std::io::Error>>",
            _ => "Req<Wakeup>",
        };
        item.push_str(&format!(
            "fn {nm}(&mut self, to: Echo{camel}Step<'_>, _x: {input}) -> Next<Self> {{ to.pending() }}\n"
        ));
    }
    item.push('}');
    let (Ok(attr), Ok(item)) = (attr.parse(), item.parse()) else {
        return;
    };
    match tevent_codegen::try_expand(attr, item) {
        Ok(out) => {
            syn::parse2::<syn::File>(out).expect("a successful expansion parses");
        }
        Err(e) => assert!(e.into_iter().count() > 0),
    }
});
