//! Taking secrets out of a provider's words before tokend shows them.
//!
//! Providers may echo a request in their error text (a debugging proxy, a
//! framework's default error page, a confused server quoting the token it
//! refused), and that text reaches logs, `status`, D-Bus and the callers of
//! `token`, use-only users among them. An echo is rarely spelled as the
//! secret was sent: form and URL encoders differ (lower-case hex, `/` left
//! alone), JSON and HTML escape characters, text is folded into lines,
//! upper-cased or cut, and the Authorization header is base64. So a secret
//! is looked for as the text reads once decoded, not as bytes:
//!
//! - each character of the secret may be written as itself (in either
//!   case), percent-encoded (`%2f`, `%2F`), JSON-escaped (`\/`, `\u002f`)
//!   or as an HTML character reference (`&#47;`, `&#x2F;`, `&amp;`);
//! - white space (a line break, a JSON `\n`) may stand between any two;
//! - in error texts, any run of [`SHORTEST_FRAGMENT`] characters of the
//!   secret counts (a start quoted on its own, a line's half), not only
//!   the whole, and so do its base64 spellings (at each of the three
//!   alignments a longer base64 text may put it at), for secrets of up to
//!   [`LONGEST_BASE64`] bytes (a client secret in a Basic credential; not
//!   a JWT, already base64).
//!
//! Taking out more than the secret costs nothing but a few characters of
//! an error's wording; a secret shown costs the session. The words of a
//! success answer (a grant's scope, read at every refresh, with the new
//! tokens among the secrets) are looked at for whole secrets only, which
//! costs a microsecond or two where runs of a kilobyte JWT cost tens.

use base64::Engine as _;
use zeroize::Zeroizing;

/// What a secret is replaced by.
const REDACTED: &str = "[redacted]";

/// Secrets shorter than this are left alone: no real one is, and replacing
/// them would garble the text.
const SHORTEST_SECRET: usize = 4;

/// The shortest run of a secret's characters taken out where it stands
/// without the rest. Eight characters of a random token tell nothing of
/// the remainder but are more than any word of prose shares with one.
pub(crate) const SHORTEST_FRAGMENT: usize = 8;

/// The longest secret whose base64 spellings are looked for.
const LONGEST_BASE64: usize = 512;

/// How much of a secret an echo must spell to be taken out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Echo {
    /// The whole secret (or its start before a cut).
    Whole,
    /// Any run of [`SHORTEST_FRAGMENT`] of its characters, or of its
    /// base64 spellings.
    Part,
}

/// Replaces every echo of each of `secrets` in `text` (see the module
/// doc), runs of it and its base64 spellings included, by `[redacted]`,
/// and the start of one cut off where provider text was cut short.
pub(crate) fn redact<S: AsRef<str>>(text: &mut String, secrets: &[S]) {
    redact_spellings(text, secrets, Echo::Part);
}

/// [`redact`] of whole secrets only: for the words of a success answer
/// (a grant's scope and token type), read at every refresh, which no
/// encoder has been through.
pub(crate) fn redact_plain<S: AsRef<str>>(text: &mut String, secrets: &[S]) {
    redact_spellings(text, secrets, Echo::Whole);
}

fn redact_spellings<S: AsRef<str>>(text: &mut String, secrets: &[S], echo: Echo) {
    let secrets: Vec<&[u8]> = secrets
        .iter()
        .map(|s| s.as_ref().as_bytes())
        .filter(|s| s.len() >= SHORTEST_SECRET)
        .collect();
    if secrets.is_empty() || text.is_empty() {
        return;
    }
    // A whole secret is spelled in at least as many bytes as it has
    // (white space aside): one longer than the text cannot be in it.
    let mut forms: Vec<Zeroizing<Vec<u8>>> = secrets
        .iter()
        .filter(|s| {
            echo == Echo::Part
                || s.iter().filter(|b| !b.is_ascii_whitespace()).count() <= text.len()
        })
        .map(|s| normalized(s))
        .collect();
    if echo == Echo::Part {
        for secret in secrets.iter().filter(|s| s.len() <= LONGEST_BASE64) {
            forms.extend(base64_spellings(secret).map(|f| normalized(&f)));
        }
    }
    let reading = Reading::of(text);
    let mut hidden: Vec<(usize, usize)> = Vec::new();
    for form in forms.iter().filter(|f| f.len() >= SHORTEST_SECRET) {
        hidden.extend(reading.echoes_of(form, echo));
    }
    replace_ranges(text, hidden);
    if !text.contains("…") && !text.contains("...") {
        return;
    }
    for secret in &secrets {
        let Ok(secret) = std::str::from_utf8(secret) else {
            continue;
        };
        // A copy of the secret: wiped when dropped.
        let encoded = Zeroizing::new(
            url::form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>(),
        );
        redact_cut_off(text, secret);
        redact_cut_off(text, &encoded);
    }
}

/// `secret` as a [`Reading`] compares it: ASCII lower case, without white
/// space.
fn normalized(secret: &[u8]) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(
        secret
            .iter()
            .filter(|b| !b.is_ascii_whitespace())
            .map(u8::to_ascii_lowercase)
            .collect(),
    )
}

/// The base64 spellings of `secret` (standard and URL-safe alphabets),
/// starting at its first three bytes: inside a longer base64 text (`id:`
/// before it in a Basic credential) it starts at one of those alignments.
/// The last character, which the bytes after the secret also make, is
/// left out where the secret's end does not close a group.
fn base64_spellings(secret: &[u8]) -> impl Iterator<Item = Zeroizing<Vec<u8>>> + '_ {
    (0..3usize)
        .filter(move |&skip| secret.len() >= skip + SHORTEST_SECRET)
        .flat_map(move |skip| {
            let tail = &secret[skip..];
            [
                base64::engine::general_purpose::STANDARD_NO_PAD,
                base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ]
            .map(|engine| {
                let mut spelled = Zeroizing::new(engine.encode(tail).into_bytes());
                if !tail.len().is_multiple_of(3) {
                    spelled.pop();
                }
                spelled
            })
        })
}

/// A text as an echo is compared with it: each character decoded (see the
/// module doc) to one lower-case byte, white space left out, with where in
/// the text it was written.
struct Reading {
    bytes: Zeroizing<Vec<u8>>,
    spans: Vec<(usize, usize)>,
}

impl Reading {
    fn of(text: &str) -> Self {
        let raw = text.as_bytes();
        let mut bytes = Zeroizing::new(Vec::with_capacity(raw.len()));
        let mut spans = Vec::with_capacity(raw.len());
        let mut at = 0;
        while at < raw.len() {
            let (byte, len) = decoded_at(raw, at);
            if !byte.is_ascii_whitespace() {
                bytes.push(byte.to_ascii_lowercase());
                spans.push((at, at + len));
            }
            at += len;
        }
        Self { bytes, spans }
    }

    /// The ranges of the text (byte offsets) that spell `form`
    /// (normalized), or for [`Echo::Part`] runs of it of
    /// [`SHORTEST_FRAGMENT`] characters or more.
    fn echoes_of(&self, form: &[u8], echo: Echo) -> Vec<(usize, usize)> {
        let run = form.len().min(SHORTEST_FRAGMENT);
        if self.bytes.len() < run {
            return Vec::new();
        }
        // Every run of the text's characters as a key, sorted, and a
        // bitmap of their hashes that turns most of the form's runs away
        // before the search.
        let mut seen = [0u64; 64];
        let mut runs: Vec<(u64, usize)> = Vec::with_capacity(self.bytes.len() + 1 - run);
        for_each_run(&self.bytes, run, |at, key| {
            let (word, bit) = bit_of(key);
            seen[word] |= bit;
            runs.push((key, at));
        });
        runs.sort_unstable();
        if echo == Echo::Whole {
            let key = packed(&form[..run]);
            let first = runs.partition_point(|(k, _)| *k < key);
            return runs[first..]
                .iter()
                .take_while(|(k, _)| *k == key)
                .filter(|(_, at)| self.bytes.get(*at..at + form.len()) == Some(form))
                .map(|(_, at)| (self.spans[*at].0, self.spans[at + form.len() - 1].1))
                .collect();
        }
        let mut hits: Vec<usize> = Vec::new();
        for_each_run(form, run, |_, key| {
            let (word, bit) = bit_of(key);
            if seen[word] & bit == 0 {
                return;
            }
            let first = runs.partition_point(|(k, _)| *k < key);
            hits.extend(
                runs[first..]
                    .iter()
                    .take_while(|(k, _)| *k == key)
                    .map(|(_, at)| *at),
            );
        });
        hits.into_iter()
            .map(|at| (self.spans[at].0, self.spans[at + run - 1].1))
            .collect()
    }
}

/// Up to eight bytes packed into one number (a run's key).
fn packed(run: &[u8]) -> u64 {
    run.iter().fold(0, |key, b| (key << 8) | u64::from(*b))
}

/// Calls `each` with the start and the key (its bytes packed into one
/// number) of every run of `run` bytes (at most eight) of `bytes`.
fn for_each_run(bytes: &[u8], run: usize, mut each: impl FnMut(usize, u64)) {
    let mask = if run >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * run)) - 1
    };
    let mut key = 0u64;
    for (i, byte) in bytes.iter().enumerate() {
        key = (key << 8) | u64::from(*byte);
        if i + 1 >= run {
            each(i + 1 - run, key & mask);
        }
    }
}

/// Where a run's key falls in a 4096-bit bitmap: the word and its bit.
fn bit_of(key: u64) -> (usize, u64) {
    let hash = key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52;
    (usize::try_from(hash >> 6).unwrap_or(0), 1 << (hash & 63))
}

/// The character written at `at`, decoded, and how many bytes spell it.
fn decoded_at(raw: &[u8], at: usize) -> (u8, usize) {
    let rest = &raw[at..];
    let hex = |digits: &[u8]| {
        std::str::from_utf8(digits)
            .ok()
            .and_then(|d| u8::from_str_radix(d, 16).ok())
    };
    match rest {
        [b'%', a, b, ..] if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => {
            (hex(&rest[1..3]).unwrap_or(b'%'), 3)
        }
        [b'\\', b'u', ..] if rest.len() >= 6 && rest[2..6].iter().all(u8::is_ascii_hexdigit) => {
            match u16::from_str_radix(std::str::from_utf8(&rest[2..6]).unwrap_or(""), 16) {
                Ok(code) if code < 0x80 => (u8::try_from(code).unwrap_or(b'\\'), 6),
                _ => (b'\\', 1),
            }
        }
        [b'\\', b'n' | b'r' | b't', ..] => (b' ', 2),
        [b'\\', escaped @ (b'/' | b'\\' | b'"'), ..] => (*escaped, 2),
        [b'&', ..] => html_reference(rest).unwrap_or((b'&', 1)),
        [byte, ..] => (*byte, 1),
        [] => (0, 1),
    }
}

/// An HTML character reference at the start of `text` (`&#47;`, `&#x2F;`,
/// `&amp;`) naming an ASCII character, and its length.
fn html_reference(text: &[u8]) -> Option<(u8, usize)> {
    if text.starts_with(b"&amp;") {
        return Some((b'&', 5));
    }
    if text.get(1) != Some(&b'#') {
        return None;
    }
    let end = text.iter().take(10).position(|b| *b == b';')?;
    let body = std::str::from_utf8(text.get(2..end)?).ok()?;
    if body.is_empty() {
        return None;
    }
    let code = match body.strip_prefix(['x', 'X']) {
        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
        None => body.parse::<u32>().ok()?,
    };
    u8::try_from(code)
        .ok()
        .filter(u8::is_ascii)
        .map(|b| (b, end + 1))
}

/// Replaces `ranges` (byte offsets, in any order, overlapping) of `text`
/// by one `[redacted]` per run of touching ranges, widened to whole
/// characters.
fn replace_ranges(text: &mut String, mut ranges: Vec<(usize, usize)>) {
    if ranges.is_empty() {
        return;
    }
    ranges.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    for (mut start, mut end) in merged.into_iter().rev() {
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        while !text.is_char_boundary(end) {
            end += 1;
        }
        text.replace_range(start..end, REDACTED);
    }
}

/// Replaces the start of `secret` (4 bytes or more) that `text` holds just
/// before a cut: provider text is capped (`clean_detail` ends it with
/// `…` there) before tokend knows which secrets it must not show, and a
/// refresh token of a thousand characters echoed near the cap is cut
/// inside, where the whole secret is no longer found. A provider's own
/// cut, `...` (`refresh token rt_abc123... not accepted`), is one too.
fn redact_cut_off(text: &mut String, secret: &str) {
    for cut_mark in ["…", "..."] {
        let mut from = 0;
        while let Some(cut) = text[from..].find(cut_mark).map(|at| at + from) {
            let before = &text[..cut];
            let kept = (SHORTEST_SECRET..secret.len())
                .rev()
                .find(|&n| secret.is_char_boundary(n) && before.ends_with(&secret[..n]));
            from = cut + cut_mark.len();
            if let Some(n) = kept {
                text.replace_range(cut - n..cut, REDACTED);
                from = cut - n + REDACTED.len() + cut_mark.len();
            }
        }
    }
}

#[cfg(test)]
mod tests;
