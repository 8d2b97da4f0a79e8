//! Rust source as tokens, with comments and literals gone: enough to find
//! module paths and the braces of inline modules, no more.

/// A token of Rust source with comments and literals gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Token {
    Ident(String),
    PathSep,
    Punct(char),
    /// A string literal's contents (only `#[path = "…"]` needs one).
    Str(String),
}

pub(super) fn tokenize(text: &str) -> Vec<Token> {
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
