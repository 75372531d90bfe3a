//! The step graph: which steps `start` reaches, which reach `done`, and the
//! graph as DOT and Mermaid text and as an SVG picture for rustdoc (the same
//! text from build to build: steps in declaration order, every name
//! quoted).

use crate::ast::Succ;

/// Which steps can be reached from `start` (index `start`) along `edges`.
pub(crate) fn reachable(edges: &[Vec<Succ>], start: usize) -> Vec<bool> {
    let mut seen = vec![false; edges.len()];
    let mut todo = vec![start];
    seen[start] = true;
    while let Some(i) = todo.pop() {
        for s in &edges[i] {
            work::tick();
            if let Succ::Step(j) = *s
                && !seen[j]
            {
                seen[j] = true;
                todo.push(j);
            }
        }
    }
    seen
}

/// Which steps have a path to `done`: a walk backwards from the steps that
/// list `done`, along reversed edges, so linear in steps plus edges (a fixed
/// point over the steps took one pass per step of a chain).
pub(crate) fn reaches_done(edges: &[Vec<Succ>]) -> Vec<bool> {
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); edges.len()];
    for (i, e) in edges.iter().enumerate() {
        for s in e {
            work::tick();
            if let Succ::Step(j) = *s {
                preds[j].push(i);
            }
        }
    }
    let mut ok: Vec<bool> = edges.iter().map(|e| e.contains(&Succ::Done)).collect();
    let mut todo: Vec<usize> = (0..edges.len()).filter(|&i| ok[i]).collect();
    while let Some(j) = todo.pop() {
        for &i in &preds[j] {
            work::tick();
            if !ok[i] {
                ok[i] = true;
                todo.push(i);
            }
        }
    }
    ok
}

/// The unit tests' count of the graph walks' inner steps (nothing outside
/// them), to check that the checks stay linear without timing them.
mod work {
    #[cfg(test)]
    thread_local! {
        pub(super) static STEPS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    #[inline(always)]
    pub(super) fn tick() {
        #[cfg(test)]
        STEPS.with(|s| s.set(s.get() + 1));
    }
}

/// A string as a double-quoted DOT / Mermaid label.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The graph in Graphviz DOT: a box per step, `start` entered from a point,
/// `done` a double circle.
pub(crate) fn dot(request: &str, names: &[String], edges: &[Vec<Succ>], start: usize) -> String {
    let mut out = format!("digraph {} {{\n", quoted(request));
    out.push_str("    node [shape=box];\n");
    out.push_str("    \"\" [shape=point];\n");
    let done = edges.iter().any(|e| e.contains(&Succ::Done));
    if done {
        out.push_str("    \"done\" [shape=doublecircle, label=\"done\"];\n");
    }
    // Step nodes get their own ids, so a step may be named like a DOT keyword
    // (`node`, `edge`, `graph`) or like `done`.
    for (i, n) in names.iter().enumerate() {
        out.push_str(&format!("    s{i} [label={}];\n", quoted(n)));
    }
    out.push_str(&format!("    \"\" -> s{start};\n"));
    for (i, e) in edges.iter().enumerate() {
        for s in e {
            match s {
                Succ::Step(j) => out.push_str(&format!("    s{i} -> s{j};\n")),
                Succ::Done => out.push_str(&format!("    s{i} -> \"done\";\n")),
            }
        }
    }
    out.push_str("}\n");
    out
}

/// The graph as a Mermaid state diagram (`stateDiagram-v2`): `[*]` enters
/// `start`, and a step that may finish the request leads to `[*]`.
pub(crate) fn mermaid(names: &[String], edges: &[Vec<Succ>], start: usize) -> String {
    let mut out = String::from("stateDiagram-v2\n");
    // Ids `s0`, `s1`, ... with the names as labels: no step name can clash
    // with Mermaid's own words (`state`, `end`, `note`, ...).
    for (i, n) in names.iter().enumerate() {
        out.push_str(&format!("    state {} as s{i}\n", quoted(n)));
    }
    out.push_str(&format!("    [*] --> s{start}\n"));
    for (i, e) in edges.iter().enumerate() {
        for s in e {
            match s {
                Succ::Step(j) => out.push_str(&format!("    s{i} --> s{j}\n")),
                Succ::Done => out.push_str(&format!("    s{i} --> [*]\n")),
            }
        }
    }
    out
}

/// `s` with `&`, `<`, `>` and `"` escaped for XML text and attributes.
fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The graph as one line of inline SVG, which rustdoc passes through into
/// the page (a picture in any browser, offline, with no script): the
/// start point, a box per step in declaration order from top to bottom,
/// `done` a double circle at the bottom; an edge to the next box a
/// straight arrow, other forward edges arcs on the right, edges back (and a
/// step to itself) arcs on the left.
pub(crate) fn svg(names: &[String], edges: &[Vec<Succ>], start: usize) -> String {
    const ROW: usize = 48;
    const TOP: usize = 36;
    let widest = names.iter().map(|n| n.chars().count()).max().unwrap_or(4);
    let box_w = 24 + 8 * widest;
    let x0 = 40 + 8 * names.len().min(20);
    let cx = x0 + box_w / 2;
    let y = |i: usize| TOP + i * ROW;
    let done_at = names.len();
    let has_done = edges.iter().any(|e| e.contains(&Succ::Done));
    let rows = names.len() + usize::from(has_done);
    let width = x0 + box_w + 40 + 8 * names.len().min(20);
    let height = TOP + rows * ROW;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"13\" \
         role=\"img\"><title>step graph</title><defs><marker id=\"tevent-arrow\" \
         viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" \
         markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0L10,5L0,10z\" \
         fill=\"currentColor\"/></marker></defs><g stroke=\"currentColor\" \
         fill=\"none\" color=\"#888\">"
    );
    // The start point and its arrow.
    out.push_str(&format!(
        "<circle cx=\"{cx}\" cy=\"8\" r=\"5\" fill=\"currentColor\"/>"
    ));
    let line = |out: &mut String, x1: usize, y1: usize, x2: usize, y2: usize| {
        out.push_str(&format!(
            "<line x1=\"{x1}\" y1=\"{y1}\" x2=\"{x2}\" y2=\"{y2}\" \
             marker-end=\"url(#tevent-arrow)\"/>"
        ));
    };
    if start == 0 {
        line(&mut out, cx, 13, cx, y(0) - 14);
    } else {
        let yy = y(start);
        out.push_str(&format!(
            "<path d=\"M{cx},13 C{},13 {},{yy} {},{yy}\" marker-end=\"url(#tevent-arrow)\"/>",
            x0 - 30,
            x0 - 30,
            x0
        ));
    }
    let mut arc = 0;
    for (i, e) in edges.iter().enumerate() {
        for s in e {
            let j = match s {
                Succ::Step(j) => *j,
                Succ::Done => done_at,
            };
            // Where an edge ends: a box's edge, or the `done` circle's.
            let (half_h, right) = if j == done_at {
                (9, cx + 9)
            } else {
                (14, x0 + box_w)
            };
            if j == i + 1 {
                line(&mut out, cx, y(i) + 14, cx, y(j) - half_h);
                continue;
            }
            arc += 1;
            let bend = 16 + 6 * (arc % 8) + 4 * i.abs_diff(j).min(10);
            let (x, to_x, side) = if j > i {
                (x0 + box_w, right, x0 + box_w + bend)
            } else {
                (x0, x0, x0.saturating_sub(bend))
            };
            let (y1, y2) = (y(i), y(j));
            let (y1, y2) = if i == j { (y1 - 6, y2 + 6) } else { (y1, y2) };
            out.push_str(&format!(
                "<path d=\"M{x},{y1} C{side},{y1} {side},{y2} {to_x},{y2}\" \
                 marker-end=\"url(#tevent-arrow)\"/>"
            ));
        }
    }
    out.push_str("</g><g fill=\"none\" stroke=\"currentColor\">");
    for (i, n) in names.iter().enumerate() {
        let top = y(i) - 14;
        out.push_str(&format!(
            "<rect x=\"{x0}\" y=\"{top}\" width=\"{box_w}\" height=\"28\" rx=\"6\"/>\
             <text x=\"{cx}\" y=\"{}\" text-anchor=\"middle\" stroke=\"none\" \
             fill=\"currentColor\">{}</text>",
            y(i) + 5,
            xml(n)
        ));
    }
    if has_done {
        let yy = y(done_at);
        out.push_str(&format!(
            "<circle cx=\"{cx}\" cy=\"{yy}\" r=\"9\"/><circle cx=\"{cx}\" cy=\"{yy}\" r=\"5\" \
             fill=\"currentColor\"/>"
        ));
    }
    out.push_str("</g></svg>");
    out
}

/// The edges as `(from, to)` pairs, `to` `None` for `done` (for
/// [`crate::Graph::edges`]).
pub(crate) fn edge_list(edges: &[Vec<Succ>]) -> Vec<(usize, Option<usize>)> {
    let mut out = Vec::new();
    for (i, e) in edges.iter().enumerate() {
        for s in e {
            out.push((
                i,
                match s {
                    Succ::Step(j) => Some(*j),
                    Succ::Done => None,
                },
            ));
        }
    }
    out
}

/// Several requests' step graphs as one Graphviz DOT digraph named
/// `title`: one cluster per request (`subgraph "cluster_N"`, labelled with
/// its name), drawn as [`dot`] draws one, every id prefixed with the
/// request's place (`r0_s1`), so that no two requests' steps are taken for
/// one another.
pub(crate) fn dot_clusters(title: &str, graphs: &[&crate::Graph]) -> String {
    let mut out = format!("digraph {} {{\n", quoted(title));
    out.push_str("    node [shape=box];\n");
    for (r, g) in graphs.iter().enumerate() {
        out.push_str(&format!("    subgraph \"cluster_{r}\" {{\n"));
        out.push_str(&format!("        label={};\n", quoted(&g.name)));
        out.push_str(&format!("        r{r}_entry [shape=point];\n"));
        if g.edges.iter().any(|(_, to)| to.is_none()) {
            out.push_str(&format!(
                "        r{r}_done [shape=doublecircle, label=\"done\"];\n"
            ));
        }
        for (i, n) in g.steps.iter().enumerate() {
            out.push_str(&format!("        r{r}_s{i} [label={}];\n", quoted(n)));
        }
        out.push_str(&format!("        r{r}_entry -> r{r}_s{};\n", g.start));
        for (from, to) in &g.edges {
            match to {
                Some(j) => out.push_str(&format!("        r{r}_s{from} -> r{r}_s{j};\n")),
                None => out.push_str(&format!("        r{r}_s{from} -> r{r}_done;\n")),
            }
        }
        out.push_str("    }\n");
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo() -> (Vec<String>, Vec<Vec<Succ>>) {
        let names = ["start", "read", "write"].map(String::from).to_vec();
        let edges = vec![
            vec![Succ::Step(1)],
            vec![Succ::Step(2), Succ::Done],
            vec![Succ::Step(1)],
        ];
        (names, edges)
    }

    #[test]
    fn reachability_and_paths_to_done() {
        let (_, mut edges) = echo();
        assert_eq!(reachable(&edges, 0), [true, true, true]);
        assert_eq!(reaches_done(&edges), [true, true, true]);
        // write stops going back to read: nothing else changes it reaches.
        edges[2].clear();
        assert_eq!(reaches_done(&edges), [true, true, false]);
        edges[0].clear();
        assert_eq!(reachable(&edges, 0), [true, false, false]);
    }

    #[test]
    fn dot_and_mermaid_quote_every_name() {
        let names = ["start", "node", "end"].map(String::from).to_vec();
        let edges = vec![vec![Succ::Step(1)], vec![Succ::Step(2)], vec![Succ::Done]];
        let d = dot("Odd\"Name", &names, &edges, 0);
        assert!(d.starts_with("digraph \"Odd\\\"Name\" {\n"), "{d}");
        assert!(d.contains("s1 [label=\"node\"];"), "{d}");
        assert!(d.contains("s2 -> \"done\";"), "{d}");
        let one = crate::Graph {
            name: "Odd\"Name".into(),
            dot: d.clone(),
            mermaid: String::new(),
            steps: names.clone(),
            start: 0,
            edges: edge_list(&edges),
        };
        let both = dot_clusters("two", &[&one, &one]);
        assert!(both.starts_with("digraph \"two\" {\n"), "{both}");
        assert!(
            both.contains("subgraph \"cluster_1\" {\n        label=\"Odd\\\"Name\";"),
            "{both}"
        );
        assert!(both.contains("        r1_s2 -> r1_done;\n"), "{both}");
        assert!(both.contains("        r0_entry -> r0_s0;\n"), "{both}");
        assert_eq!(both.matches("digraph").count(), 1);
        let m = mermaid(&names, &edges, 0);
        assert_eq!(
            m,
            "stateDiagram-v2\n    state \"start\" as s0\n    state \"node\" as s1\n    state \"end\" as s2\n    [*] --> s0\n    s0 --> s1\n    s1 --> s2\n    s2 --> [*]\n"
        );
    }
    /// Runs `f`, returning its result and the inner steps it took.
    fn counted<T>(f: impl FnOnce() -> T) -> (T, usize) {
        work::STEPS.with(|s| s.set(0));
        let out = f();
        (out, work::STEPS.with(std::cell::Cell::get))
    }

    #[test]
    fn a_20000_step_chain_is_walked_in_linear_work() {
        let n = 20_000;
        // s0 -> s1 -> ... -> s(n-1) -> done: only the last lists `done`,
        // the worst case of a fixed point over the steps.
        let edges: Vec<Vec<Succ>> = (0..n)
            .map(|i| {
                vec![if i + 1 == n {
                    Succ::Done
                } else {
                    Succ::Step(i + 1)
                }]
            })
            .collect();
        let (ok, work) = counted(|| reaches_done(&edges));
        assert!(ok.iter().all(|&b| b));
        assert!(work <= 2 * n, "{work} steps for {n} steps and {n} edges");
        let (seen, work) = counted(|| reachable(&edges, 0));
        assert!(seen.iter().all(|&b| b));
        assert!(work <= n, "{work}");
    }

    #[test]
    fn a_dense_graph_is_walked_in_linear_work() {
        // 300 steps, each leading to every other step, the last to done too.
        let n = 300;
        let edges: Vec<Vec<Succ>> = (0..n)
            .map(|i| {
                let mut e: Vec<Succ> = (0..n).filter(|&j| j != i).map(Succ::Step).collect();
                if i == n - 1 {
                    e.push(Succ::Done);
                }
                e
            })
            .collect();
        let e: usize = edges.iter().map(Vec::len).sum();
        let (ok, work) = counted(|| reaches_done(&edges));
        assert!(ok.iter().all(|&b| b));
        assert!(work <= 2 * e, "{work} steps for {e} edges");
        let (seen, work) = counted(|| reachable(&edges, 0));
        assert!(seen.iter().all(|&b| b));
        assert!(work <= e, "{work}");
    }

    #[test]
    fn the_svg_has_a_box_per_step_an_arrow_per_edge_and_escaped_names() {
        let names = ["start", "a<b", "write"].map(String::from).to_vec();
        let (_, edges) = echo();
        let svg = svg(&names, &edges, 0);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>"));
        // One line (rustdoc passes an HTML block through only if it has no
        // blank line), a box and a label per step, an arrow per edge plus
        // the start's.
        assert!(!svg.contains('\n'));
        assert_eq!(svg.matches("<rect ").count(), 3);
        assert_eq!(svg.matches("<text ").count(), 3);
        let edge_count: usize = edges.iter().map(Vec::len).sum();
        assert_eq!(svg.matches("marker-end=").count(), edge_count + 1);
        assert!(svg.contains(">a&lt;b</text>"), "{svg}");
        // `done`: the ringed dot.
        assert_eq!(svg.matches("<circle ").count(), 3);
    }
}
