//! The module graph of a source tree: which file is which module, and
//! which module uses which.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::tokens::{Token, tokenize};

/// The library's source files, sorted.
pub(super) fn library_files(src: &Path) -> Vec<PathBuf> {
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
pub(super) struct ModuleGraph {
    pub modules: BTreeSet<String>,
    pub edges: BTreeSet<(String, String)>,
}

impl ModuleGraph {
    pub(super) fn scan(src: &Path, files: &[PathBuf]) -> Self {
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

pub(super) fn parent(module: &str) -> Option<String> {
    match module.rsplit_once("::") {
        Some((parent, _)) => Some(parent.to_owned()),
        None if module == "crate" => None,
        None => Some("crate".to_owned()),
    }
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
