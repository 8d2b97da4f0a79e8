//! The paths `SSL_CERT_FILE` and `SSL_CERT_DIR` name, looked at before the
//! HTTP client loads its CA certificates from them.
//!
//! The loader passes over a path it cannot read as long as another path
//! gives a certificate: a typo in `SSL_CERT_FILE` beside a working
//! `SSL_CERT_DIR` (or the reverse) leaves out the private CA meant to be
//! there with no word, and the first login fails with "UnknownIssuer",
//! naming no variable. Each such path is said at the start and by
//! `tokend --check`, and so is a file with no PEM certificate in it (a
//! DER file, which the loader does not read). A directory's files are not
//! looked into. (When no certificate loads at all, the client cannot
//! be built, and the start stops: see `HttpClient::new`.)

use std::path::Path;

/// A problem with each path that `SSL_CERT_FILE` or `SSL_CERT_DIR` (read
/// through `var`) names and that cannot be read as such: a file for
/// `SSL_CERT_FILE`, directories (`:`-separated) for `SSL_CERT_DIR`.
/// Opening is enough: the certificates themselves are the loader's to read.
#[must_use]
pub fn unusable_ca_paths(var: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(file) = var("SSL_CERT_FILE").filter(|f| !f.is_empty())
        && let Some(why) = unreadable(Path::new(&file), false)
    {
        problems.push(said("SSL_CERT_FILE", &file, &why));
    }
    if let Some(dirs) = var("SSL_CERT_DIR") {
        for dir in dirs.split(':').filter(|d| !d.is_empty()) {
            if let Some(why) = unreadable(Path::new(dir), true) {
                problems.push(said("SSL_CERT_DIR", dir, &why));
            }
        }
    }
    problems
}

/// Why `path` cannot be read as a file (`dir` false) or a directory.
fn unreadable(path: &Path, dir: bool) -> Option<String> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) => return Some(e.to_string()),
    };
    if dir && !meta.is_dir() {
        return Some("not a directory".to_owned());
    }
    if !dir && meta.is_dir() {
        return Some("a directory, not a file (SSL_CERT_DIR takes directories)".to_owned());
    }
    if dir {
        return std::fs::read_dir(path).err().map(|e| e.to_string());
    }
    match std::fs::File::open(path).and_then(holds_a_pem_certificate) {
        Ok(true) => None,
        Ok(false) => Some(format!(
            "no PEM certificate in it, the only kind read: a DER one (.cer, .der) is \
             converted with `openssl x509 -inform der -in {0} -out {0}.pem`",
            path.display().to_string().escape_debug()
        )),
        Err(e) => Some(e.to_string()),
    }
}

/// Whether `file` holds a PEM certificate's first line: read a line at a
/// time, up to the first (a bundle's first lines, as a rule), so nothing
/// but one line is kept.
fn holds_a_pem_certificate(file: std::fs::File) -> std::io::Result<bool> {
    use std::io::BufRead as _;
    let mut lines = std::io::BufReader::new(file);
    let mut line = Vec::new();
    loop {
        line.clear();
        if lines.read_until(b'\n', &mut line)? == 0 {
            return Ok(false);
        }
        if line
            .trim_ascii_start()
            .starts_with(b"-----BEGIN CERTIFICATE-----")
        {
            return Ok(true);
        }
    }
}

fn said(variable: &str, path: &str, why: &str) -> String {
    format!(
        "{variable} names {}, which cannot be read ({why}): the CA certificates meant to be \
         there are not trusted, and a provider whose certificate one of them signed fails \
         with UnknownIssuer (a typo? a unit's ProtectHome= hides /home)",
        path.escape_debug()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path of either variable that cannot be read is named with why;
    /// readable ones, and unset or empty variables, say nothing.
    #[test]
    fn each_unreadable_path_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, "# a bundle\n-----BEGIN CERTIFICATE-----\nMIIB\n").unwrap();
        let (dir_text, file_text) = (dir.path().display().to_string(), file.display().to_string());
        let vars = |cert_file: &str, cert_dir: &str| {
            let (cert_file, cert_dir) = (cert_file.to_owned(), cert_dir.to_owned());
            unusable_ca_paths(&move |name| match name {
                "SSL_CERT_FILE" => Some(cert_file.clone()),
                "SSL_CERT_DIR" => Some(cert_dir.clone()),
                _ => None,
            })
        };
        assert!(vars(&file_text, &dir_text).is_empty());
        assert!(vars("", "").is_empty());
        assert!(unusable_ca_paths(&|_| None).is_empty());
        let typo = format!("{file_text}x");
        let said = vars(&typo, &dir_text);
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].starts_with(&format!(
                "SSL_CERT_FILE names {typo}, which cannot be read (No such file"
            )),
            "{said:?}"
        );
        let said = vars(
            &file_text,
            &format!("{dir_text}:/nonexistent-ca-dir::{file_text}"),
        );
        assert_eq!(said.len(), 2, "{said:?}");
        assert!(
            said[0].contains("SSL_CERT_DIR names /nonexistent-ca-dir,"),
            "{said:?}"
        );
        assert!(said[1].contains("(not a directory)"), "{said:?}");
        let said = vars(&dir_text, &dir_text);
        assert!(said[0].contains("a directory, not a file"), "{said:?}");
        // A DER certificate (binary, no PEM lines), or a key alone.
        let der = dir.path().join("ca.der");
        std::fs::write(&der, [0x30, 0x82, 0x01, 0x0a, b'\n', 0x02]).unwrap();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nMIIE\n").unwrap();
        for path in [der, key] {
            let said = vars(&path.display().to_string(), &dir_text);
            assert_eq!(said.len(), 1, "{said:?}");
            assert!(said[0].contains("no PEM certificate in it"), "{said:?}");
        }
    }
}
