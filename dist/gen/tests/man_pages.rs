//! What the generated man pages say that a reader acts on: tokend(8)'s
//! exit statuses, which the units' comments point to for what is not
//! restarted.

use std::process::Command;

/// The text of tokend(8)'s EXIT STATUS section, from the generator's
/// output.
fn tokend_exit_status_section() -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tokend-dist-gen"))
        .arg(dir.path())
        .output()
        .expect("run tokend-dist-gen");
    assert!(out.status.success(), "{out:?}");
    let page = std::fs::read_to_string(dir.path().join("man/tokend.8")).unwrap();
    let start = page
        .find(".SH \"EXIT STATUS\"")
        .expect("an EXIT STATUS section");
    let rest = &page[start + 1..];
    let end = rest.find("\n.SH ").unwrap_or(rest.len());
    rest[..end].to_owned()
}

/// Every start failure that exits 2 (not restarted) is listed under 2: a
/// `socket_group` the daemon cannot give and no CA certificate exit 2 since
/// they were told apart from a failure a restart may mend.
#[test]
fn tokend_8_lists_every_start_failure_that_exits_2() {
    let section = tokend_exit_status_section();
    let two = section
        .split(".TP")
        .find(|item| item.trim_start().starts_with("\\fB2\\fR"))
        .unwrap_or_else(|| panic!("no item for 2 in:\n{section}"));
    for cause in ["socket_group", "CA certificate", "socket path"] {
        assert!(two.contains(cause), "{cause:?} not under 2:\n{two}");
    }
}
