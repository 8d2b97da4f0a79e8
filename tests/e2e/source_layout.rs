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
//! Circles in the parts being rewritten elsewhere are listed in
//! [`TOLERATED`]; the list is exact, so a circle that goes away must leave
//! it, and it can only shrink.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Circles allowed for now, each as `parent: member, member, …` (the
/// members sorted, `crate` for the top level). Only under `broker` and
/// `ipc::dbus`, which are being rewritten.
const TOLERATED: &[&str] = &[
    // `impl Session` continued in a sibling (issue 13: the session rewrite).
    "broker: login, session",
    // The D-Bus object's calls and its introspection data.
    "ipc::dbus: calls, introspect",
];

/// Where tolerated circles may be.
const TOLERATED_UNDER: &[&str] = &["broker", "ipc::dbus"];

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

/// The library's source files, sorted.
fn library_files(src: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![src.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                if path != src.join("bin") {
                    dirs.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") && path != src.join("main.rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The modules and the uses between them (`crate` is the root; others
/// are named without `crate::`).
#[derive(Debug, Default)]
struct ModuleGraph {
    modules: BTreeSet<String>,
    edges: BTreeSet<(String, String)>,
}

impl ModuleGraph {
    fn scan(src: &Path, files: &[PathBuf]) -> Self {
        // Which module each file is: by its place, unless a `#[path]`
        // declaration says otherwise.
        let mut module_of: BTreeMap<PathBuf, String> = files
            .iter()
            .map(|file| (file.clone(), module_by_place(src, file)))
            .collect();
        let texts: BTreeMap<&PathBuf, Vec<Token>> = files
            .iter()
            .map(|file| {
                let text = std::fs::read_to_string(file).expect("read source");
                (file, tokenize(&text))
            })
            .collect();
        for (file, tokens) in &texts {
            let module = module_of[*file].clone();
            for (path, name) in path_declarations(tokens) {
                let target = file.parent().expect("dir").join(path);
                module_of.insert(target, join(&module, &name));
            }
        }
        let mut graph = Self {
            modules: module_of.values().cloned().collect(),
            ..Self::default()
        };
        for (file, tokens) in &texts {
            let module = &module_of[*file];
            for (inline, path) in paths(tokens) {
                let at = inline.iter().fold(module.clone(), |m, name| join(&m, name));
                if let Some(target) = graph.resolve(&at, &path)
                    && target != *module
                {
                    graph.edges.insert((module.clone(), target));
                }
            }
        }
        graph
    }

    /// The deepest module `path` names, used from module `at` (which may be
    /// an inline module, not in `modules`).
    fn resolve(&self, at: &str, path: &[String]) -> Option<String> {
        let mut segments = path.iter().peekable();
        let mut base = match segments.peek().map(|s| s.as_str()) {
            Some("crate") => {
                segments.next();
                "crate".to_owned()
            }
            Some("super") => {
                let mut base = at.to_owned();
                while segments.peek().is_some_and(|s| *s == "super") {
                    segments.next();
                    base = parent(&base)?;
                }
                base
            }
            Some("self") => {
                segments.next();
                at.to_owned()
            }
            // A 2018 path naming a child of the current module (`use
            // secrets::FileAccess`); anything else is another crate.
            Some(first) if self.modules.contains(&join(at, first)) => at.to_owned(),
            _ => return None,
        };
        for segment in segments {
            let next = join(&base, segment);
            if !self.modules.contains(&next) {
                break;
            }
            base = next;
        }
        // From an inline module, its file's module is the one in the graph.
        while !self.modules.contains(&base) {
            base = parent(&base)?;
        }
        Some(base)
    }
}

fn module_by_place(src: &Path, file: &Path) -> String {
    let relative = file
        .strip_prefix(src)
        .expect("under src")
        .with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts
        .last()
        .is_some_and(|last| last == "mod" || last == "lib")
    {
        parts.pop();
    }
    if parts.is_empty() {
        "crate".to_owned()
    } else {
        parts.join("::")
    }
}

fn join(module: &str, name: &str) -> String {
    if module == "crate" {
        name.to_owned()
    } else {
        format!("{module}::{name}")
    }
}

fn parent(module: &str) -> Option<String> {
    match module.rsplit_once("::") {
        Some((parent, _)) => Some(parent.to_owned()),
        None if module == "crate" => None,
        None => Some("crate".to_owned()),
    }
}

/// A token of Rust source with comments and literals gone.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    PathSep,
    Punct(char),
    /// A string literal's contents (only `#[path = "…"]` needs one).
    Str(String),
}

fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '"' {
            let (literal, end) = string_literal(&chars, i + 1);
            tokens.push(Token::Str(literal));
            i = end;
        } else if c == '\'' {
            // A char literal ('x', '\n', '{'), else a lifetime ('a).
            if next == Some('\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let ident: String = chars[start..i].iter().collect();
            // Raw and byte strings: r"…", r#"…"#, b"…", br#"…"#.
            let hashes = chars[i..].iter().take_while(|c| **c == '#').count();
            if matches!(ident.as_str(), "r" | "br" | "b" | "cr" | "c")
                && chars.get(i + hashes) == Some(&'"')
            {
                let raw = ident.contains('r');
                let (literal, end) = if raw {
                    raw_string_literal(&chars, i + hashes + 1, hashes)
                } else {
                    string_literal(&chars, i + 1)
                };
                tokens.push(Token::Str(literal));
                i = end;
            } else {
                tokens.push(Token::Ident(ident));
            }
        } else if c == ':' && next == Some(':') {
            tokens.push(Token::PathSep);
            i += 2;
        } else {
            if !c.is_whitespace() {
                tokens.push(Token::Punct(c));
            }
            i += 1;
        }
    }
    tokens
}

/// A "…" literal starting after its quote: its text and where it ends.
fn string_literal(chars: &[char], mut i: usize) -> (String, usize) {
    let mut literal = String::new();
    while i < chars.len() && chars[i] != '"' {
        if chars[i] == '\\' {
            i += 1;
        }
        if let Some(c) = chars.get(i) {
            literal.push(*c);
        }
        i += 1;
    }
    (literal, i + 1)
}

/// A raw literal starting after its quote, closed by `"` and `hashes` #s.
fn raw_string_literal(chars: &[char], mut i: usize, hashes: usize) -> (String, usize) {
    let start = i;
    while i < chars.len() {
        if chars[i] == '"' && chars[i + 1..].iter().take(hashes).all(|c| *c == '#') {
            return (chars[start..i].iter().collect(), i + 1 + hashes);
        }
        i += 1;
    }
    (chars[start..].iter().collect(), chars.len())
}

/// `#[path = "file.rs"] mod name;` declarations: (file, name).
fn path_declarations(tokens: &[Token]) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        if token != &Token::Ident("path".into())
            || i == 0
            || tokens[i - 1] != Token::Punct('[')
            || tokens.get(i + 1) != Some(&Token::Punct('='))
        {
            continue;
        }
        let Some(Token::Str(file)) = tokens.get(i + 2) else {
            continue;
        };
        // `] mod name ;`, possibly with `pub` and other attributes between.
        let name = tokens[i + 3..]
            .iter()
            .take(12)
            .skip_while(|t| **t != Token::Ident("mod".into()))
            .nth(1);
        if let Some(Token::Ident(name)) = name {
            found.push((file.clone(), name.clone()));
        }
    }
    found
}

/// Every path that may name a module, with the inline modules it sits in.
fn paths(tokens: &[Token]) -> Vec<(Vec<String>, Vec<String>)> {
    let mut found = Vec::new();
    // Inline modules open around this point, with the brace depth each
    // opened at.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < tokens.len() {
        let here: Vec<String> = inline.iter().map(|(name, _)| name.clone()).collect();
        match &tokens[i] {
            Token::Ident(word) if word == "mod" => {
                if let (Some(Token::Ident(name)), Some(Token::Punct('{'))) =
                    (tokens.get(i + 1), tokens.get(i + 2))
                {
                    inline.push((name.clone(), depth));
                    depth += 1;
                    i += 3;
                    continue;
                }
            }
            Token::Ident(word) if word == "use" => {
                let end = tokens[i..]
                    .iter()
                    .position(|t| *t == Token::Punct(';'))
                    .map_or(tokens.len(), |p| i + p);
                for path in expand_use(&tokens[i + 1..end]) {
                    found.push((here.clone(), path));
                }
                i = end + 1;
                continue;
            }
            Token::Ident(word)
                if (word == "crate" || word == "super")
                    && tokens.get(i + 1) == Some(&Token::PathSep)
                    && (i == 0 || tokens[i - 1] != Token::PathSep) =>
            {
                let mut path = vec![word.clone()];
                let mut j = i + 1;
                while tokens.get(j) == Some(&Token::PathSep) {
                    let Some(Token::Ident(segment)) = tokens.get(j + 1) else {
                        break;
                    };
                    path.push(segment.clone());
                    j += 2;
                }
                found.push((here, path));
                i = j;
                continue;
            }
            Token::Punct('{') => depth += 1,
            Token::Punct('}') => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, at)| *at == depth) {
                    inline.pop();
                }
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// The paths of a use tree (`a::{b, c::{self, D}}` → `a::b`, `a::c`, `a::c::D`).
fn expand_use(tokens: &[Token]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut i = 0;
    expand_tree(tokens, &mut i, &[], &mut out);
    out
}

fn expand_tree(tokens: &[Token], i: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let mut path = prefix.to_vec();
    while *i < tokens.len() {
        match &tokens[*i] {
            Token::Ident(word) if word == "as" => {
                *i += 2;
                break;
            }
            Token::Ident(word) if word == "self" && !path.is_empty() => *i += 1,
            Token::Ident(word) => {
                path.push(word.clone());
                *i += 1;
            }
            Token::Punct('{') => {
                *i += 1;
                while *i < tokens.len() && tokens[*i] != Token::Punct('}') {
                    expand_tree(tokens, i, &path, out);
                    if tokens.get(*i) == Some(&Token::Punct(',')) {
                        *i += 1;
                    }
                }
                *i += 1;
                return;
            }
            Token::Punct(',' | '}') => break,
            _ => *i += 1,
        }
    }
    if path.len() > prefix.len() || !prefix.is_empty() {
        out.push(path);
    }
}

/// Sibling modules that reach one another.
#[derive(Debug)]
struct Circle {
    parent: String,
    members: Vec<String>,
    /// One way round, as the uses that make it (`a::x → b, b::y → a`).
    example: String,
}

impl Circle {
    fn name(&self) -> String {
        let short: Vec<&str> = self
            .members
            .iter()
            .map(|m| m.rsplit("::").next().unwrap_or(m))
            .collect();
        format!("{}: {}", self.parent, short.join(", "))
    }
}

/// The circles of `edges` by the rule at the top of this file.
fn circles(edges: &BTreeSet<(String, String)>) -> Vec<Circle> {
    // Each use lifted to the children of the two modules' closest common
    // ancestor, keeping one use that made it, for the message.
    let mut lifted: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (from, to) in edges {
        let (a, b) = (lineage(from), lineage(to));
        let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
        let (Some(a_side), Some(b_side)) = (a.get(common), b.get(common)) else {
            continue; // one is the other's ancestor
        };
        lifted
            .entry(a_side.clone())
            .or_default()
            .entry(b_side.clone())
            .or_insert_with(|| format!("{from} → {to}"));
    }
    let nodes: BTreeSet<String> = lifted
        .iter()
        .flat_map(|(from, tos)| std::iter::once(from.clone()).chain(tos.keys().cloned()))
        .collect();
    let mut circles = Vec::new();
    let mut placed = BTreeSet::new();
    for node in &nodes {
        if placed.contains(node) {
            continue;
        }
        let forward = reachable(&lifted, node);
        let members: Vec<String> = forward
            .iter()
            .filter(|other| reachable(&lifted, other).contains(node))
            .cloned()
            .collect();
        if members.len() < 2 {
            continue;
        }
        placed.extend(members.iter().cloned());
        circles.push(Circle {
            parent: parent(&members[0]).unwrap_or_default(),
            example: example_cycle(&lifted, &members),
            members,
        });
    }
    circles.sort_by_key(Circle::name);
    circles
}

/// `a::b::c` → [`a`, `a::b`, `a::b::c`].
fn lineage(module: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = String::new();
    for part in module.split("::") {
        at = if at.is_empty() {
            part.to_owned()
        } else {
            format!("{at}::{part}")
        };
        out.push(at.clone());
    }
    out
}

/// Every node reachable from `start` (itself included only through a cycle).
fn reachable(graph: &BTreeMap<String, BTreeMap<String, String>>, start: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![start.to_owned()];
    while let Some(node) = stack.pop() {
        for next in graph.get(&node).into_iter().flat_map(BTreeMap::keys) {
            if seen.insert(next.clone()) {
                stack.push(next.clone());
            }
        }
    }
    seen
}

/// One way round a circle, from its first member back to it, named by the
/// uses that make each step.
fn example_cycle(graph: &BTreeMap<String, BTreeMap<String, String>>, members: &[String]) -> String {
    let start = &members[0];
    // Breadth-first within the circle for the shortest way back.
    let mut came_from: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start.clone()]);
    while let Some(node) = queue.pop_front() {
        for next in graph.get(&node).into_iter().flat_map(BTreeMap::keys) {
            if !members.contains(next) || came_from.contains_key(next) {
                continue;
            }
            came_from.insert(next.clone(), node.clone());
            if next == start {
                queue.clear();
                break;
            }
            queue.push_back(next.clone());
        }
    }
    let mut steps = Vec::new();
    let mut at = start.clone();
    while let Some(from) = came_from.get(&at) {
        steps.push(graph[from][&at].clone());
        at = from.clone();
        if at == *start {
            break;
        }
    }
    steps.reverse();
    steps.join(", ")
}
