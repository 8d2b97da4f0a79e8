//! Reading `multipart/form-data` bodies (RFC 7578), for the dialects that
//! take them and for the record of any request that sends one.

use bytes::Bytes;

/// The text parts of a `multipart/form-data` body (RFC 7578), enough for
/// what HTTP clients send: one `name` per part, no nested multiparts.
pub(crate) fn multipart_pairs(
    content_type: &str,
    body: &Bytes,
) -> Result<Vec<(String, String)>, String> {
    let boundary = content_type
        .split(';')
        .skip(1)
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .map(|b| b.trim_matches('"'))
        .filter(|b| !b.is_empty())
        .ok_or("multipart/form-data without a boundary")?;
    let text = std::str::from_utf8(body).map_err(|_| "the multipart body is not UTF-8")?;
    let delimiter = format!("--{boundary}");
    let mut parts = text.split(delimiter.as_str());
    if !parts
        .next()
        .is_some_and(|preamble| preamble.trim().is_empty())
    {
        return Err("the multipart body does not start with its boundary".into());
    }
    let mut pairs = Vec::new();
    for part in parts {
        if part.starts_with("--") {
            return Ok(pairs);
        }
        let part = part
            .strip_prefix("\r\n")
            .ok_or("a multipart boundary without CRLF")?;
        let (head, value) = part
            .split_once("\r\n\r\n")
            .ok_or("a multipart part without headers")?;
        let name = head
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))
            .flat_map(|l| l.split(';'))
            .find_map(|p| p.trim().strip_prefix("name="))
            .map(|n| n.trim_matches('"').to_owned())
            .ok_or("a multipart part without a name")?;
        let value = value.strip_suffix("\r\n").unwrap_or(value);
        pairs.push((name, value.to_owned()));
    }
    Err("the multipart body has no closing boundary".into())
}
