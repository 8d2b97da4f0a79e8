//! The command line of `tokend-dist-gen`: an option is never taken for the
//! output directory.

use std::process::Command;

fn run_in(dir: &std::path::Path, arg: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tokend-dist-gen"))
        .arg(arg)
        .current_dir(dir)
        .output()
        .expect("run tokend-dist-gen")
}

#[test]
fn help_prints_the_usage_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for arg in ["--help", "-h"] {
        let out = run_in(dir.path(), arg);
        assert!(out.status.success(), "{arg}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("usage: tokend-dist-gen OUT_DIR"));
    }
    let out = run_in(dir.path(), "--out");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown option --out"));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
}
