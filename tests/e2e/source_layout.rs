//! The library's modules import one another in one direction: no circles.
//!
//! Scans `src/**/*.rs` (the library; `src/bin/` are crates of their own)
//! for the paths that name other modules (`use crate::…`, `use super::…`,
//! `use self::…`, a child's name in a `use`, and `crate::…`/`super::…` in
//! code), resolves each to the deepest module it names, and looks for
//! circles.
//!
//! **The rule.** A module using its own ancestor or descendant is not a
//! circle: `mod.rs` re-exporting a child, and a child using its parent's
//! types, is how Rust modules are built. Every other use is lifted to the
//! level where the two meet: `config::parse` using `provider::dialects` is
//! `config` using `provider`. A circle is then a set of sibling modules
//! that reach one another (a strongly connected component of the lifted
//! graph): `config` → `provider` → `config` is one however deep the uses
//! sit. Inline modules (`mod tests { … }`) belong to their file's module;
//! `#[path]` files to the module that declares them.
//!
//! None is tolerated today. Should one ever have to be, for a rewrite in
//! progress, it goes in [`TOLERATED`] under a parent named in
//! [`TOLERATED_UNDER`]; the list is exact, so a circle that goes away must
//! leave it, and it can only shrink.
//!
//! Also here: the core uses no front-end type, and the repository's top
//! level holds only the fixed layout.

mod circles;
mod graph;
mod tokens;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use circles::{Circle, circles};
use graph::{ModuleGraph, library_files};

/// Circles allowed for now, each as `parent: member, member, …` (the
/// members sorted, `crate` for the top level): none. (The last two, the
/// broker's `login`/`session` and the D-Bus `calls`/`introspect`, were
/// removed by the session's state machine and by the D-Bus method table's
/// own module.)
const TOLERATED: &[&str] = &[];

/// Where tolerated circles may be: nowhere.
const TOLERATED_UNDER: &[&str] = &[];

#[test]
fn the_library_has_no_import_circles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = library_files(&src);
    assert!(
        files.len() > 20,
        "found only {} files in {}",
        files.len(),
        src.display()
    );
    let graph = ModuleGraph::scan(&src, &files);
    assert!(
        graph.modules.contains("provider::dialects::trakt") && graph.edges.len() > 50,
        "the scan found too little: {} modules, {} uses",
        graph.modules.len(),
        graph.edges.len()
    );
    let found: BTreeMap<String, String> = circles(&graph.edges)
        .into_iter()
        .map(|circle| (circle.name(), circle.example))
        .collect();
    let mut problems = Vec::new();
    for (name, example) in &found {
        if !TOLERATED.contains(&name.as_str()) {
            problems.push(format!("import circle {name}: {example}"));
        }
    }
    for name in TOLERATED {
        if !found.contains_key(*name) {
            problems.push(format!(
                "`{name}` is listed in TOLERATED but is no circle any more: remove it"
            ));
        }
        let parent = name.split_once(": ").map_or(*name, |(parent, _)| parent);
        if !TOLERATED_UNDER
            .iter()
            .any(|under| parent == *under || parent.starts_with(&format!("{under}::")))
        {
            problems.push(format!(
                "`{name}` may not be tolerated: only circles under {TOLERATED_UNDER:?} may"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The core's modules: they own the state and the decisions.
const CORE: &[&str] = &["broker", "config", "provider", "store"];

/// What the core may not use: the front-ends and their wire types. The
/// front-ends map the core's reports and error kinds to these.
const FRONT_ENDS: &[&str] = &["protocol", "ipc", "client", "cli"];

#[test]
fn the_core_uses_no_front_end_or_wire_type() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = ModuleGraph::scan(&src, &library_files(&src));
    let within = |module: &str, tops: &[&str]| {
        tops.iter()
            .any(|top| module == *top || module.starts_with(&format!("{top}::")))
    };
    assert!(
        graph
            .edges
            .iter()
            .any(|(from, to)| within(from, &["ipc"]) && within(to, &["broker"])),
        "the scan found no front-end using the broker"
    );
    let wrong: Vec<String> = graph
        .edges
        .iter()
        .filter(|(from, to)| within(from, CORE) && within(to, FRONT_ENDS))
        .map(|(from, to)| format!("{from} → {to}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "core modules use front-end modules (map in the front-end instead):\n{}",
        wrong.join("\n")
    );
}

/// The repository's top level: the layout others rely on (the brief's
/// `Cargo.toml`, `src/`, `dist/`, `config/`, `tests/`, `README.md`, `.ci/`),
/// with the lock file, the benchmarks and `.gitignore`. A stray file
/// committed at the top (a log, a scratch config) fails here.
const TOP_LEVEL: &[&str] = &[
    ".ci",
    ".gitignore",
    "Cargo.lock",
    "Cargo.toml",
    "README.md",
    "benches",
    "config",
    "dist",
    "src",
    "tests",
];

#[test]
fn the_top_level_holds_only_the_fixed_layout() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // What git tracks, not what lies in the work tree (builds, scratch
    // files); a copy without git (a source package) has nothing to check.
    let listed = std::process::Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root)
        .output();
    let Ok(listed) = listed.map_err(|e| eprintln!("skipped: no git ({e})")) else {
        return;
    };
    if !listed.status.success() {
        eprintln!("skipped: not a git checkout");
        return;
    }
    let tops: BTreeSet<String> = String::from_utf8_lossy(&listed.stdout)
        .split('\0')
        .filter(|path| !path.is_empty())
        .map(|path| path.split('/').next().unwrap_or(path).to_owned())
        .collect();
    let unexpected: Vec<&String> = tops
        .iter()
        .filter(|top| !TOP_LEVEL.contains(&top.as_str()))
        .collect();
    assert!(
        unexpected.is_empty(),
        "tracked at the top level but not part of the layout: {unexpected:?}"
    );
    assert!(
        tops.contains("src") && tops.contains("Cargo.toml"),
        "{tops:?}"
    );
}

#[test]
fn the_circle_finder_finds_circles_and_only_circles() {
    let edges = |list: &[(&str, &str)]| -> BTreeSet<(String, String)> {
        list.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    };
    // Parent and child using each other: no circle.
    assert!(circles(&edges(&[("a", "a::x"), ("a::x", "a")])).is_empty());
    // A chain: no circle.
    assert!(circles(&edges(&[("a", "b"), ("b::y", "c"), ("a::x", "c::z")])).is_empty());
    // Deep uses lifted to their siblings: a::x → b and b::y → a is a ↔ b.
    let found = circles(&edges(&[("a::x", "b"), ("b::y", "a"), ("c", "a")]));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].name(), "crate: a, b");
    assert!(found[0].example.contains("a::x → b"), "{found:?}");
    // Two circles at different levels, one of three members.
    let found = circles(&edges(&[
        ("p::a", "p::b"),
        ("p::b", "p::c::deep"),
        ("p::c", "p::a"),
        ("q", "r"),
        ("r", "q"),
    ]));
    let names: Vec<String> = found.iter().map(Circle::name).collect();
    assert_eq!(names, ["crate: q, r", "p: a, b, c"]);
}

#[test]
fn the_scanner_resolves_paths_as_rustc_does() {
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("lib.rs", "mod a;\nmod b;\n");
    write(
        "a/mod.rs",
        "mod x;\nuse x::Thing;\n// use crate::b::Gone;\nconst S: &str = \"crate::b::InString\";\n#[path = \"a_tests.rs\"]\nmod tests;\n",
    );
    write(
        "a/x.rs",
        "use super::super::b::{self, y::{Y, Z}};\nfn f() { let _ = crate::b::y::Y; }\nmod tests {\n    use super::*;\n    use super::super::Other;\n}\n",
    );
    write("a/a_tests.rs", "use super::x;\nuse crate::b::y;\n");
    write("b/mod.rs", "pub mod y;\n");
    write(
        "b/y.rs",
        "pub struct Y;\nfn g(_: &'static str, _: char) -> char { '{' }\n",
    );
    let files = library_files(dir.path());
    let graph = ModuleGraph::scan(dir.path(), &files);
    let modules: Vec<&str> = graph.modules.iter().map(String::as_str).collect();
    assert_eq!(modules, ["a", "a::tests", "a::x", "b", "b::y", "crate"]);
    let edges: Vec<String> = graph
        .edges
        .iter()
        .map(|(from, to)| format!("{from} → {to}"))
        .collect();
    assert_eq!(
        edges,
        [
            "a → a::x",
            "a::tests → a::x",
            "a::tests → b::y",
            "a::x → a",
            "a::x → b",
            "a::x → b::y"
        ]
    );
}

/// Every event the daemon logs (`event = "NAME"` in the library) is in the
/// README's table of log events, which an operator reads to know what a
/// journal line means and what to search for.
#[test]
fn every_logged_event_is_in_the_readme() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let table = readme
        .split_once("| event | level | when |")
        .expect("the README's table of log events")
        .1;
    let table: String = table
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .collect();
    let mut events = BTreeSet::new();
    for file in library_files(&root.join("src")) {
        let text = std::fs::read_to_string(&file).expect("read a source file");
        for (at, _) in text.match_indices("event = \"") {
            let name: String = text[at + "event = \"".len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() {
                events.insert(name);
            }
        }
    }
    assert!(events.len() > 30, "found only {events:?}");
    let missing: Vec<&String> = events
        .iter()
        .filter(|name| !table.contains(&format!("`{name}`")))
        .collect();
    assert!(missing.is_empty(), "not in the README's table: {missing:?}");
}
