//! What `dist/` ships, checked against the code and against the real tools
//! that will read it: the generated man pages, completions and system config
//! (from `tokend-dist-gen`), and the facts the units, the D-Bus files and the
//! sysusers file must agree on.
//!
//! The D-Bus policy and activation files are tested on real buses in
//! `tests/e2e/dist_dbus.rs`; `systemd-analyze` runs in `dist/check-units.sh` and
//! the package in `dist/deb/check.sh` (both steps of `tests/run.sh`).

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;
use tokend::cli::exit_status::MEANINGS;
use tokend::config::{self, BusKind, DEFAULT_KEY_CREDENTIAL, Environment, StoreKind};
use tokend::ipc::dbus::BUS_NAME;
use tokend_dist_gen::{DOCKER_HELPER, date_of_epoch, source_date};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The date the tests give the man pages.
const MAN_DATE: &str = "2026-12-04";
/// Runs the generator into a fresh directory.
fn generate() -> TempDir {
    let out = tempfile::tempdir().unwrap();
    tokend_dist_gen::generate(out.path(), MAN_DATE).expect("generate the packaged files");
    out
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, found);
            } else {
                let relative = path.strip_prefix(base).unwrap();
                found.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, dir, &mut found);
    found.sort();
    found
}

/// `program` is installed (tests of optional tools skip without it).
fn have(program: &str) -> bool {
    support::bus::find_program(program).is_some()
}

#[test]
fn generator_writes_every_page_completion_and_the_config() {
    let out = generate();
    let expected = [
        "completions/bash/tokenctl",
        "completions/bash/tokend",
        "completions/fish/tokenctl.fish",
        "completions/fish/tokend.fish",
        "completions/zsh/_tokenctl",
        "completions/zsh/_tokend",
        "etc/tokend/config.toml",
        "man/docker-credential-tokend.1",
        "man/tokenctl-credential-git.1",
        "man/tokenctl-credential-kubernetes.1",
        "man/tokenctl-credential.1",
        "man/tokenctl-exec.1",
        "man/tokenctl-login.1",
        "man/tokenctl-logout.1",
        "man/tokenctl-metrics.1",
        "man/tokenctl-status.1",
        "man/tokenctl-token.1",
        "man/tokenctl-version.1",
        "man/tokenctl.1",
        "man/tokend.8",
    ];
    assert_eq!(files(out.path()), expected);
    // dist/deb/check.sh lists the same files as installed paths.
    let check = read("dist/deb/check.sh");
    for page in expected.iter().filter_map(|f| f.strip_prefix("man/")) {
        let section = page.rsplit('.').next().unwrap();
        let installed = format!("./usr/share/man/man{section}/{page}.gz");
        assert!(
            check.contains(&installed),
            "check.sh does not expect {installed}"
        );
    }
    // Every program the package installs has a page (lintian's
    // no-manual-page), the docker helper's link too.
    let programs: Vec<&str> = check
        .lines()
        .filter_map(|l| l.split_once(" ./usr/bin/").map(|(_, program)| program))
        .collect();
    assert!(programs.contains(&DOCKER_HELPER), "{programs:?}");
    assert!(
        read("dist/deb/build.sh")
            .contains(&format!("ln -s tokenctl \"$root/usr/bin/{DOCKER_HELPER}\"")),
        "build.sh does not link {DOCKER_HELPER}"
    );
    for program in programs {
        assert!(
            ["1", "8"]
                .iter()
                .any(|section| expected.contains(&format!("man/{program}.{section}").as_str())),
            "no man page for /usr/bin/{program}"
        );
    }
}

#[test]
fn man_pages_render_without_warnings_and_document_the_interface() {
    let out = generate();
    let man = out.path().join("man");
    // roff writes '-' as "\-"; the checks read the text as printed.
    let source = |page: &str| {
        std::fs::read_to_string(man.join(page))
            .unwrap()
            .replace("\\-", "-")
    };
    let tokend = source("tokend.8");
    for needed in [
        "--config",
        "--check",
        "SIGHUP",
        "EXIT STATUS",
        "/etc/tokend/config.toml",
    ] {
        assert!(tokend.contains(needed), "tokend.8 lacks {needed}");
    }
    let tokenctl = source("tokenctl.1");
    for (status, meaning) in MEANINGS {
        // A .TP entry: the status in bold, then the meaning (roff escapes
        // some punctuation in it, an apostrophe as \*(Aq: the letters
        // that start it are enough).
        let word: String = meaning
            .chars()
            .take_while(|c| c.is_alphanumeric())
            .collect();
        assert!(!word.is_empty(), "{meaning}");
        assert!(
            tokenctl.contains(&format!("\\fB{status}\\fR\n{word}")),
            "tokenctl.1 lacks exit status {status} ({meaning})"
        );
    }
    for verb in ["token", "login", "status", "logout", "metrics", "version"] {
        assert!(
            tokenctl.contains(&format!("tokenctl-{verb}(1)")),
            "no {verb}"
        );
    }
    // The docker helper's page: what it is and the protocol's actions.
    let docker = source(&format!("{DOCKER_HELPER}.1"));
    for needed in [
        "tokenctl(1)",
        "credHelpers",
        "TOKEND_SOCKET",
        "EXIT STATUS",
        // The one-account form, and what it says of a host it does not serve.
        "docker-credential-tokend-NAME",
        "tokend-NAME",
        "exit status 7",
    ] {
        assert!(docker.contains(needed), "{DOCKER_HELPER}.1 lacks {needed}");
    }
    for action in ["get", "list", "store", "erase", "version"] {
        assert!(
            docker.contains(&format!("\\fB{action}\\fR")),
            "{DOCKER_HELPER}.1 lacks the action {action}"
        );
    }
    if !have("groff") {
        eprintln!("groff is not installed: rendering not checked");
        return;
    }
    for page in files(&man) {
        let rendered = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(man.join(&page))
            .output()
            .expect("run groff");
        let warnings = String::from_utf8_lossy(&rendered.stderr);
        assert!(
            rendered.status.success() && warnings.is_empty(),
            "{page}: {warnings}"
        );
    }
}

/// The arguments of a man page's `.TH` line: title, section, date, source,
/// manual (quotes dropped).
fn title_line(page: &str) -> Vec<String> {
    let line = page
        .lines()
        .find(|l| l.starts_with(".TH "))
        .expect("a .TH line");
    let mut args = Vec::new();
    let mut rest = line[".TH ".len()..].trim_start();
    while !rest.is_empty() {
        let (arg, after) = match rest.strip_prefix('"') {
            Some(quoted) => quoted.split_once('"').unwrap_or((quoted, "")),
            None => rest.split_once(' ').unwrap_or((rest, "")),
        };
        args.push(arg.to_owned());
        rest = after.trim_start();
    }
    args
}

#[test]
fn man_pages_are_dated_from_the_source_not_the_build() {
    // lintian and man(1) show the date of .TH; a build's wall clock there
    // makes every build of the same source differ.
    let out = generate();
    let man = out.path().join("man");
    for page in files(&man) {
        let text = std::fs::read_to_string(man.join(&page)).unwrap();
        let title = title_line(&text);
        assert_eq!(title.len(), 5, "{page}: {title:?}");
        assert_eq!(title[2], MAN_DATE, "{page}: {title:?}");
        assert!(title[3].starts_with("tokend "), "{page}: {title:?}");
    }

    // Where the date comes from: SOURCE_DATE_EPOCH, in UTC ...
    for (seconds, date) in [
        (0, "1970-01-01"),
        (951_782_400, "2000-02-29"),
        (951_868_799, "2000-02-29"),
        (951_868_800, "2000-03-01"),
        (1_790_000_000, "2026-09-21"),
        (4_107_542_400, "2100-03-01"),
        (253_402_300_799, "9999-12-31"),
    ] {
        assert_eq!(date_of_epoch(seconds), date, "{seconds}");
    }
    assert_eq!(
        source_date(Some("1790000000")).unwrap().as_deref(),
        Some("2026-09-21")
    );
    assert!(source_date(Some("yesterday")).is_err());
    assert!(source_date(Some("-1")).is_err());
    // ... else the last commit's date, as dist/deb/build.sh dates the
    // changelog (when this is a git checkout).
    let last_commit = Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "log",
            "-1",
            "--format=%ct",
        ])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok()?.trim().parse().ok());
    match last_commit {
        Some(seconds) => {
            assert_eq!(source_date(None).unwrap(), Some(date_of_epoch(seconds)));
            assert_eq!(source_date(Some("")).unwrap(), Some(date_of_epoch(seconds)));
        }
        None => eprintln!("not a git checkout: the date of the last commit is not checked"),
    }
    // build.sh sets SOURCE_DATE_EPOCH before it runs the generator, so the
    // pages and the changelog have the same date (dist/deb/check.sh
    // compares them in the package).
    let build = read("dist/deb/build.sh");
    let export = build
        .find("export SOURCE_DATE_EPOCH")
        .expect("build.sh exports it");
    let run = build
        .find("\"$release/tokend-dist-gen\"")
        .expect("build.sh runs the generator");
    assert!(
        export < run,
        "build.sh runs the generator before it sets SOURCE_DATE_EPOCH"
    );
}

#[test]
fn completions_parse_and_know_every_verb() {
    let out = generate();
    let completions = out.path().join("completions");
    for (shell, check) in [("bash", "-n"), ("zsh", "-n"), ("fish", "--no-execute")] {
        if !have(shell) {
            eprintln!("{shell} is not installed: its completions are not parsed");
            continue;
        }
        for file in files(&completions.join(shell)) {
            let path = completions.join(shell).join(&file);
            let parsed = Command::new(shell).arg(check).arg(&path).output().unwrap();
            assert!(
                parsed.status.success(),
                "{shell} {check} {file}: {}",
                String::from_utf8_lossy(&parsed.stderr)
            );
        }
    }
    let bash = std::fs::read_to_string(completions.join("bash/tokenctl")).unwrap();
    for verb in [
        "token",
        "login",
        "status",
        "logout",
        "metrics",
        "version",
        "--socket",
        "--min-valid",
    ] {
        assert!(bash.contains(verb), "bash completion lacks {verb}");
    }
}

/// The text of `page`'s SYNOPSIS line, fonts dropped: `tokend [--config <PATH>] …`.
fn synopsis(man_dir: &Path, page: &str) -> String {
    let source = std::fs::read_to_string(man_dir.join(page)).unwrap();
    let mut lines = source.lines();
    lines.find(|l| *l == ".SH SYNOPSIS");
    let line = lines
        .next()
        .unwrap_or_else(|| panic!("{page} has no SYNOPSIS"));
    ["\\fB", "\\fI", "\\fR"]
        .iter()
        .fold(line.replace("\\-", "-"), |text, font| {
            text.replace(font, "")
        })
}

#[test]
fn man_page_synopses_show_every_options_value() {
    use clap::CommandFactory as _;
    use tokend::cli::{TokenctlArgs, TokendArgs};

    let out = generate();
    let man = out.path().join("man");
    let mut tokenctl = TokenctlArgs::command();
    tokenctl.build();
    let mut tokend = TokendArgs::command();
    tokend.build();
    let mut pages = vec![
        ("tokend.8".to_owned(), &tokend),
        ("tokenctl.1".to_owned(), &tokenctl),
    ];
    for verb in tokenctl
        .get_subcommands()
        .filter(|v| v.get_name() != "help")
    {
        pages.push((format!("tokenctl-{}.1", verb.get_name()), verb));
    }
    for (page, cmd) in pages {
        let synopsis = synopsis(&man, &page);
        for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            let (Some(long), Some(values)) = (arg.get_long(), arg.get_value_names()) else {
                continue;
            };
            if arg.get_num_args().is_some_and(|n| n.takes_values()) {
                let shown = format!("[--{long} <{}>]", values.join(" "));
                assert!(
                    synopsis.contains(&shown),
                    "{page}: no {shown} in: {synopsis}"
                );
            }
        }
    }
    assert!(
        synopsis(&man, "tokend.8").starts_with("tokend [--config <PATH>] [--check]"),
        "{}",
        synopsis(&man, "tokend.8")
    );
    assert!(
        synopsis(&man, "tokenctl-exec.1").ends_with("<NAME> -- <COMMAND>..."),
        "{}",
        synopsis(&man, "tokenctl-exec.1")
    );
}

#[test]
fn tokend_man_page_names_both_credentials_it_reads() {
    // $CREDENTIALS_DIRECTORY holds the client secrets of
    // client_secret_credential and the store key (src/config/store.rs).
    let out = generate();
    let page = std::fs::read_to_string(out.path().join("man/tokend.8"))
        .unwrap()
        .replace("\\-", "-");
    let environment = page
        .split(".SH ENVIRONMENT")
        .nth(1)
        .and_then(|rest| rest.split(".SH ").next())
        .expect("tokend.8 has an ENVIRONMENT section");
    for needed in [
        "CREDENTIALS_DIRECTORY",
        "client_secret_credential",
        DEFAULT_KEY_CREDENTIAL,
        "store_key_credential",
    ] {
        assert!(environment.contains(needed), "ENVIRONMENT lacks {needed}");
    }
}

mod config_examples;
mod packaging;
