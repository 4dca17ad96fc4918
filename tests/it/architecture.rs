//! The module graph, read from the source: no import cycles between top-level modules, and every
//! dependency points down the layers (interfaces → wiring → capabilities → pipeline → shared parts
//! → database → leaves). A new `use crate::…` that points up or closes a cycle fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top to bottom. A module may use modules of its own layer (without a cycle) or of lower layers.
const LAYERS: &[(&str, &[&str])] = &[
    ("interfaces", &["main", "http", "console", "cli"]),
    ("wiring", &["app"]),
    // The pipeline's stages and offline verification sit with the capabilities: the describe
    // stage assigns retention from the rules; nothing below may know them.
    (
        "capabilities",
        &[
            "ingest",
            "cases",
            "keys",
            "tokens",
            "retention",
            "filing",
            "disposal",
            "fixity",
            "transfer",
            "digitised",
            "versions",
            "pipeline",
            "verify",
        ],
    ),
    (
        "shared parts",
        &[
            "evidence",
            "storage",
            "staging",
            "auth",
            "tasks",
            "documents",
        ],
    ),
    ("database", &["db"]),
    (
        "leaves",
        &[
            "lib",
            "config",
            "clock",
            "signing",
            "signing_sm2",
            "problem",
            "codes",
            "metrics",
            "telemetry",
            "xml",
            "failpoint",
        ],
    ),
];

fn top_module(rel: &Path) -> String {
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy()
        .to_string();
    first.trim_end_matches(".rs").to_string()
}

/// `crate::x` paths mentioned in a file, with `use crate::{a, b}` groups expanded.
fn crate_refs(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + 7..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let m = top_module(p.strip_prefix(&src).unwrap());
                let text = std::fs::read_to_string(&p).unwrap();
                let deps = g.entry(m.clone()).or_default();
                for d in crate_refs(&text) {
                    if d != m {
                        deps.insert(d);
                    }
                }
            }
        }
    }
    g
}

fn layer_of(m: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, ms)| ms.contains(&m))
}

#[test]
fn every_module_has_a_layer_and_dependencies_point_down() {
    let g = graph();
    let mut wrong = vec![];
    for (m, deps) in &g {
        let Some(lm) = layer_of(m) else {
            wrong.push(format!(
                "{m} is in no layer (add it to LAYERS in tests/it/architecture.rs)"
            ));
            continue;
        };
        for d in deps {
            match layer_of(d) {
                Some(ld) if ld >= lm => {}
                Some(ld) => wrong.push(format!(
                    "{m} ({}) uses {d} ({}), a layer above it",
                    LAYERS[lm].0, LAYERS[ld].0
                )),
                None => wrong.push(format!("{m} uses {d}, which is in no layer")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_import_cycles_between_modules() {
    let g = graph();
    // Depth-first search for a back edge; report the cycle it closes.
    fn visit(
        m: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        cycles: &mut Vec<String>,
    ) {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut c = path[i..].to_vec();
            c.push(m.to_string());
            cycles.push(c.join(" → "));
            return;
        }
        if done.contains(m) {
            return;
        }
        path.push(m.to_string());
        for d in g.get(m).into_iter().flatten() {
            visit(d, g, path, done, cycles);
        }
        path.pop();
        done.insert(m.to_string());
    }
    let mut cycles = vec![];
    let mut done = BTreeSet::new();
    for m in g.keys() {
        visit(m, &g, &mut vec![], &mut done, &mut cycles);
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_checker_sees_grouped_and_inline_paths() {
    let refs = crate_refs(
        "use crate::{db::Db, evidence};\nlet x = crate::filing::run(a);\n// crate::http in a comment\n",
    );
    assert_eq!(
        refs.into_iter().collect::<Vec<_>>(),
        vec!["db".to_string(), "evidence".into(), "filing".into()]
    );
}
