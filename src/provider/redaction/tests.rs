//! Echoes of a secret as providers and their frameworks spell them.

use super::{SHORTEST_FRAGMENT, redact, redact_plain};
use base64::Engine as _;
use std::fmt::Write as _;

const REFRESH_TOKEN: &str = "rt_Ref/resh+Tok=en99QQ";

fn redacted(text: &str) -> String {
    let mut text = text.to_owned();
    redact(&mut text, &[REFRESH_TOKEN]);
    text
}

/// Every byte percent-encoded, with lower-case hex digits.
fn lower_hex(secret: &str) -> String {
    secret.bytes().fold(String::new(), |mut spelled, b| {
        let _ = write!(spelled, "%{b:02x}");
        spelled
    })
}

#[test]
fn spellings_of_encoders_and_escapes_come_out() {
    let spellings = [
        // .NET's HttpUtility.UrlEncode: lower-case hex.
        "rt_Ref%2fresh%2bTok%3den99QQ".to_owned(),
        // Python's quote(): `/` left alone.
        "rt_Ref/resh%2BTok%3Den99QQ".to_owned(),
        lower_hex(REFRESH_TOKEN),
        // JSON's escaped solidus and \u escapes, in a text shown raw.
        r"rt_Ref\/resh+Tok=en99QQ".to_owned(),
        r"rt_Ref\u002fresh\u002BTok=en99QQ".to_owned(),
        // HTML character references.
        "rt_Ref&#x2F;resh&#43;Tok=en99QQ".to_owned(),
        "rt_Ref&#47;resh+Tok&#X3D;en99QQ".to_owned(),
        // Folded into lines, upper-cased.
        "rt_Ref/res\nh+Tok=en99QQ".to_owned(),
        "rt_Ref/res h+Tok=en99QQ".to_owned(),
        r"rt_Ref/res\nh+Tok=en99QQ".to_owned(),
        REFRESH_TOKEN.to_uppercase(),
    ];
    for spelled in spellings {
        let text = redacted(&format!("bad token {spelled} here"));
        assert_eq!(text, "bad token [redacted] here", "{spelled}");
    }
}

#[test]
fn a_run_of_the_secret_on_its_own_comes_out() {
    // Its first twelve characters, not at a cut.
    assert_eq!(
        redacted("bad token starting rt_Ref/resh+ is revoked"),
        "bad token starting [redacted] is revoked"
    );
    // Its middle, and its end.
    assert_eq!(redacted("…f/resh+Tok=e…"), "…[redacted]…");
    assert_eq!(redacted("ends Tok=en99QQ."), "ends [redacted].");
    // Fewer characters than a run stay, as words that share a few
    // letters with a secret do.
    let short = &REFRESH_TOKEN[3..3 + SHORTEST_FRAGMENT - 1];
    let text = format!("only {short} of it");
    assert_eq!(redacted(&text), text);
}

#[test]
fn base64_spellings_come_out_in_error_texts_only() {
    let standard = base64::engine::general_purpose::STANDARD;
    let whole = standard.encode(REFRESH_TOKEN);
    // What stays is the padding and the last character, which the bytes
    // after a secret inside a longer text would make too (a bit or two
    // of the secret's last one).
    let text = redacted(&format!("bad token {whole}"));
    assert_eq!(
        text,
        format!("bad token [redacted]{}", &whole[whole.len() - 3..])
    );
    // Inside a Basic credential, behind the client's id (each of the
    // three alignments).
    for id in ["c", "cl", "cli"] {
        let basic = standard.encode(format!("{id}:{REFRESH_TOKEN}"));
        let text = redacted(&format!("Authorization: Basic {basic}"));
        assert!(text.contains("[redacted]"), "{id}: {text}");
        assert!(!text.contains(&basic[basic.len() - 16..]), "{id}: {text}");
    }
    // The words of a success answer: read plain only.
    let mut scope = format!("read {whole}");
    redact_plain(&mut scope, &[REFRESH_TOKEN]);
    assert_eq!(scope, format!("read {whole}"));
}

#[test]
fn ordinary_words_stay_as_they_were() {
    let texts = [
        "The refresh token is invalid, expired or revoked (AADSTS700082).",
        "invalid_grant: token expired at 2026-12-07T12:00:00Z; %zz &#; &#x; &; \\u12",
        "Bad Request",
        "",
        "€ … ünïcödé %e2%82%ac",
    ];
    for text in texts {
        assert_eq!(redacted(text), text);
    }
}

#[test]
fn a_secret_with_characters_beyond_ascii_is_redacted_whole() {
    let mut text = "token «sécret-ümlaut-42» refused".to_owned();
    redact(&mut text, &["sécret-ümlaut-42"]);
    assert_eq!(text, "token «[redacted]» refused");
    let mut encoded = "token s%C3%A9cret-%C3%BCmlaut-42 refused".to_owned();
    redact(&mut encoded, &["sécret-ümlaut-42"]);
    assert_eq!(encoded, "token [redacted] refused");
}

#[test]
fn many_secrets_and_repeats_all_come_out() {
    let mut text = format!(
        "a={REFRESH_TOKEN} b={} c={REFRESH_TOKEN} d=cs-Secret-Value",
        lower_hex(REFRESH_TOKEN)
    );
    redact(&mut text, &[REFRESH_TOKEN, "cs-Secret-Value"]);
    assert_eq!(text, "a=[redacted] b=[redacted] c=[redacted] d=[redacted]");
}

#[test]
fn the_words_of_a_success_answer_lose_whole_secrets_only() {
    let mut scope = format!("read {} rt_Ref/resh+ write", lower_hex(REFRESH_TOKEN));
    redact_plain(&mut scope, &[REFRESH_TOKEN]);
    assert_eq!(scope, "read [redacted] rt_Ref/resh+ write");
}
