//! The units, D-Bus files, sysusers file and the .deb's relations and
//! maintainer scripts: the facts they must agree on.

use super::*;

/// The values of `key=` in an INI-like file (systemd units, D-Bus
/// activation files), comments skipped.
fn values(text: &str, key: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_owned)
        .collect()
}

#[test]
fn units_bus_files_and_sysusers_agree() {
    let system = read("dist/systemd/tokend.service");
    let user = read("dist/systemd/user/tokend.service");
    let system_activation = read("dist/dbus/system-services/org.tokend.Broker1.service");
    let session_activation = read("dist/dbus/services/org.tokend.Broker1.service");
    let policy = read("dist/dbus/org.tokend.Broker1.conf");
    let sysusers = read("dist/systemd/tokend.sysusers");

    for unit in [&system, &user] {
        assert_eq!(values(unit, "Type"), ["notify"]);
        assert_eq!(values(unit, "NotifyAccess"), ["main"]);
        assert_eq!(values(unit, "ExecReload"), ["/bin/kill -HUP $MAINPID"]);
        assert_eq!(values(unit, "RuntimeDirectory"), ["tokend"]);
        assert_eq!(values(unit, "Restart"), ["on-failure"]);
    }
    // An invalid config fails every restart the same way: the units do not
    // restart on tokend's exit status for it (tokend(8), EXIT STATUS).
    let dir = tempfile::tempdir().unwrap();
    let invalid = dir.path().join("config.toml");
    std::fs::write(&invalid, "[daemon]\nbus = \"sesion\"\n").unwrap();
    let checked = Command::new(env!("CARGO_BIN_EXE_tokend"))
        .arg("--config")
        .arg(&invalid)
        .output()
        .unwrap();
    let config_error = checked.status.code().expect("tokend exits").to_string();
    assert_ne!(config_error, "0", "{checked:?}");
    for unit in [&system, &user] {
        assert_eq!(
            values(unit, "RestartPreventExitStatus"),
            [config_error.as_str()]
        );
    }
    assert_eq!(
        values(&system, "ExecStart"),
        ["/usr/bin/tokend --config /etc/tokend/config.toml"]
    );
    assert_eq!(values(&user, "ExecStart"), ["/usr/bin/tokend"]);
    // The users and groups the config names are looked up at start, and a
    // name not found is a config error that is not restarted: the system
    // service starts after the name service (sssd, LDAP) can answer.
    assert!(
        values(&system, "After").contains(&"nss-user-lookup.target".to_owned()),
        "{:?}",
        values(&system, "After")
    );
    assert_eq!(values(&user, "WantedBy"), ["default.target"]);

    // One name for the service user everywhere.
    assert_eq!(values(&system, "User"), ["tokend"]);
    // Two groups: the socket's (the daemon's primary group, which users
    // join) and the config's (supplementary, no members).
    assert_eq!(values(&system, "Group"), ["tokend-clients"]);
    assert_eq!(values(&system, "SupplementaryGroups"), ["tokend"]);
    assert!(
        sysusers
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["g", "tokend-clients"]))
    );
    assert_eq!(values(&system_activation, "User"), ["tokend"]);
    assert!(policy.contains(r#"<policy user="tokend">"#));
    assert!(
        sysusers
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["u", "tokend"]))
    );

    // One bus name, the one the daemon takes, and one unit name.
    for activation in [&system_activation, &session_activation] {
        assert_eq!(values(activation, "Name"), [BUS_NAME]);
        assert_eq!(values(activation, "SystemdService"), ["tokend.service"]);
    }
    assert_eq!(values(&system_activation, "Exec"), ["/bin/false"]);

    // The store key: the credential the daemon reads by default, at the
    // same place in the unit and in the packaged config's instructions.
    let credential = format!(
        "LoadCredentialEncrypted={DEFAULT_KEY_CREDENTIAL}:/etc/credstore.encrypted/{DEFAULT_KEY_CREDENTIAL}"
    );
    assert!(
        system.contains(&format!("#{credential}\n")),
        "unit lacks {credential}"
    );
    let out = generate();
    let config = std::fs::read_to_string(out.path().join("etc/tokend/config.toml")).unwrap();
    assert!(
        config.contains(&credential),
        "packaged config lacks {credential}"
    );
    assert_eq!(values(&session_activation, "Exec"), ["/usr/bin/tokend"]);
    assert!(policy.contains(&format!(r#"<allow own="{BUS_NAME}"/>"#)));
}

/// The relationship fields (Depends, Recommends, Suggests, ...) of the
/// control file `dist/deb/build.sh` writes, with the libraries
/// dpkg-shlibdeps finds as `$auto`, as cargo-deb writes them.
fn build_sh_relations() -> std::collections::BTreeMap<String, String> {
    read("dist/deb/build.sh")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("printf '"))
        .filter_map(|l| l.split_once(": "))
        .filter(|(field, _)| RELATIONS.contains(&field.to_ascii_lowercase().as_str()))
        .map(|(field, value)| {
            let value = value.split("\\n'").next().unwrap().replace("%s", "$auto");
            (field.to_ascii_lowercase(), value)
        })
        .collect()
}

const RELATIONS: &[&str] = &[
    "pre-depends",
    "depends",
    "recommends",
    "suggests",
    "enhances",
    "breaks",
    "conflicts",
    "replaces",
    "provides",
];
#[test]
fn both_package_builds_depend_on_a_system_bus() {
    // The packaged config serves the system bus (see
    // packaged_config_starts_the_system_service_with_no_providers): without
    // one the service fails at start, so a system bus is a dependency, not
    // a recommendation. Named the Debian way, for dbus or dbus-broker.
    let from_build_sh = build_sh_relations();
    let manifest: toml::Table = read("Cargo.toml").parse().unwrap();
    let metadata = &manifest["package"]["metadata"]["deb"];
    let from_cargo_deb: std::collections::BTreeMap<String, String> = RELATIONS
        .iter()
        .filter_map(|field| {
            Some((
                field.to_string(),
                metadata.get(*field)?.as_str()?.to_owned(),
            ))
        })
        .collect();
    // dist/deb/build.sh and `cargo deb` make the same package.
    assert_eq!(from_build_sh, from_cargo_deb);
    let depends: Vec<&str> = from_build_sh["depends"].split(", ").collect();
    assert!(
        depends.contains(&"default-dbus-system-bus | dbus-system-bus"),
        "{depends:?}"
    );
}

/// The commands a maintainer script runs: its lines without comments,
/// split into words.
fn script_words(script: &str) -> Vec<String> {
    read(&format!("dist/deb/{script}"))
        .lines()
        .map(|l| l.split('#').next().unwrap())
        .flat_map(|l| {
            l.split(|c: char| c.is_whitespace() || ";|&()`$".contains(c))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

#[test]
fn maintainer_scripts_create_the_users_with_what_the_package_depends_on() {
    // The users come from the sysusers.d file the package installs (the
    // one systemd-sysusers.service applies at boot), made by
    // systemd-sysusers in postinst; the package depends on it as
    // debhelper's dh_installsysusers does, a real package first. No adduser:
    // lintian's maintainer-script-needs-depends-on-adduser, for an adduser
    // that was only an alternative of the dependency.
    let relations = build_sh_relations();
    let depends: Vec<&str> = relations["depends"].split(", ").collect();
    assert!(
        depends.contains(&"systemd | systemd-standalone-sysusers | systemd-sysusers"),
        "{depends:?}"
    );
    let build = read("dist/deb/build.sh");
    assert!(
        build.contains("dist/systemd/tokend.sysusers /usr/lib/sysusers.d/tokend.conf"),
        "build.sh does not install the sysusers file as tokend.conf"
    );
    let postinst = script_words("postinst");
    let sysusers = postinst
        .iter()
        .position(|w| w == "systemd-sysusers")
        .expect("postinst runs systemd-sysusers");
    assert!(
        postinst[sysusers..]
            .iter()
            .take(4)
            .any(|w| w == "tokend.conf"),
        "postinst does not apply tokend.conf: {:?}",
        &postinst[sysusers..]
    );
    for script in ["postinst", "prerm", "postrm"] {
        for tool in ["adduser", "addgroup", "deluser", "delgroup"] {
            assert!(
                !script_words(script).iter().any(|w| w == tool) || depends.contains(&"adduser"),
                "{script} runs {tool}, which the package does not depend on"
            );
        }
    }
    // The user unit serves the session bus a user's login gets from
    // dbus-user-session (the system unit needs none).
    assert_eq!(
        relations.get("recommends").map(String::as_str),
        Some("dbus-user-session")
    );
}

/// A purge under `DPKG_ROOT` (dpkg's chrootless install into another
/// root) deletes that root's stored sessions, never the running system's:
/// postrm honoured `DPKG_ROOT` for the units' links but not for
/// `/var/lib/tokend`. Run with a `PATH` of `rm` and `rmdir` alone, so
/// nothing else of the system is touched (no deb-systemd-helper).
#[test]
fn a_purge_under_dpkg_root_stays_in_that_root() {
    let root = tempfile::tempdir().unwrap();
    let bin = root.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for tool in ["rm", "rmdir"] {
        let found = crate::support::bus::find_program(tool).expect(tool);
        std::os::unix::fs::symlink(found, bin.join(tool)).unwrap();
    }
    let sessions = root.path().join("var/lib/tokend/sessions");
    std::fs::create_dir_all(&sessions).unwrap();
    std::fs::write(sessions.join("demo.session"), b"sealed").unwrap();
    std::fs::create_dir_all(root.path().join("etc/tokend")).unwrap();
    let out = Command::new("/bin/sh")
        .arg(repo("dist/deb/postrm"))
        .arg("purge")
        .env_clear()
        .env("PATH", &bin)
        .env("DPKG_ROOT", root.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!root.path().join("var/lib/tokend").exists());
    assert!(!root.path().join("etc/tokend").exists());
}

/// An install or removal under `DPKG_ROOT` leaves the running system
/// alone: postinst restarted, and prerm stopped, the host's tokend (a
/// memory store's sessions gone), and the target's config kept the
/// host's paths. Run with a `PATH` of stand-ins that log their calls (the
/// host's systemd calls are made only where `/run/systemd/system` exists,
/// so on a machine not run by systemd only deb-systemd-helper shows).
#[test]
fn an_install_and_removal_under_dpkg_root_stay_in_that_root() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let root = tempfile::tempdir().unwrap();
    let (bin, target) = (root.path().join("bin"), root.path().join("target"));
    std::fs::create_dir_all(target.join("etc/tokend")).unwrap();
    std::fs::create_dir(&bin).unwrap();
    std::fs::write(target.join("etc/group"), "tokend:x:4977:\n").unwrap();
    let config = target.join("etc/tokend/config.toml");
    std::fs::write(&config, "[daemon]\n").unwrap();
    let calls = root.path().join("calls");
    for tool in [
        "systemd-sysusers",
        "dpkg-statoverride",
        "deb-systemd-helper",
        "deb-systemd-invoke",
        "systemctl",
    ] {
        // dpkg-statoverride: no override listed.
        let status = i32::from(tool == "dpkg-statoverride");
        let script = format!(
            "#!/bin/sh\necho \"{tool} $*\" >> '{}'\nexit {status}\n",
            calls.display()
        );
        std::fs::write(bin.join(tool), script).unwrap();
        std::fs::set_permissions(bin.join(tool), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for tool in ["sed", "chown", "chmod", "cat"] {
        let found = crate::support::bus::find_program(tool).expect(tool);
        std::os::unix::fs::symlink(found, bin.join(tool)).unwrap();
    }
    for (script, args) in [
        ("postinst", ["configure", "0.0.9"]),
        ("prerm", ["remove", ""]),
    ] {
        let out = Command::new("/bin/sh")
            .arg(repo(&format!("dist/deb/{script}")))
            .args(args.iter().filter(|a| !a.is_empty()))
            .env_clear()
            .env("PATH", &bin)
            .env("DPKG_ROOT", &target)
            .output()
            .unwrap();
        assert!(out.status.success(), "{script}: {out:?}");
    }
    let called = std::fs::read_to_string(&calls).unwrap_or_default();
    for host in ["deb-systemd-invoke", "systemctl", "deb-systemd-helper"] {
        assert!(!called.contains(host), "{called}");
    }
    assert!(
        called.contains(&format!("systemd-sysusers --root={}", target.display())),
        "{called}"
    );
    let meta = std::fs::metadata(&config).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o777),
        (0, 4977, 0o640)
    );
}

/// The set-up scripts take rustup's toolchain when the cargo on `PATH` is
/// older than the crate's `rust-version` (a distribution's: Debian 12's
/// 1.63 failed the build with a manifest error), and keep a new enough one.
#[test]
fn the_setup_scripts_want_a_new_enough_cargo() {
    let dir = tempfile::tempdir().unwrap();
    for script in ["dist/demo.sh", "tests/run.sh"] {
        for (version, needs) in [("1.63.0", true), ("1.200.0", false)] {
            let cargo = dir.path().join("cargo");
            std::fs::write(
                &cargo,
                format!("#!/bin/sh\necho 'cargo {version} (0 2030-01-01)'\n"),
            )
            .unwrap();
            std::fs::set_permissions(&cargo, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
            // The script sources the check; the check, as it sources it.
            let check = format!(
                "grep -qx '. dist/rust-toolchain.sh' {script} && . dist/rust-toolchain.sh && needs_rustup"
            );
            let out = Command::new("bash")
                .args(["-c", &check])
                .current_dir(repo(""))
                .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
                .output()
                .unwrap();
            assert_eq!(
                out.status.success(),
                needs,
                "{script} with cargo {version}: {out:?}"
            );
        }
    }
}

/// rustup's own stable older than the crate's `rust-version` (installed
/// long ago): the set-up scripts install the new stable and build with it
/// (`RUSTUP_TOOLCHAIN`), where sourcing `~/.cargo/env` left the old cargo
/// and the build failed on the manifest, without making it the user's
/// default (`rustup default`: a toolchain pinned for other work was
/// lost); with no rustup to update, they stop saying why. Fakes of cargo
/// and rustup: rustup records its calls and, at `toolchain install`, has a
/// new stable that cargo runs as when `RUSTUP_TOOLCHAIN` names it.
#[test]
fn the_setup_scripts_update_an_old_rustup_toolchain() {
    use std::os::unix::fs::PermissionsExt as _;
    for with_rustup in [true, false] {
        // A machine's own rustup on PATH would be asked instead of none.
        if !with_rustup && std::path::Path::new("/usr/bin/rustup").exists() {
            continue;
        }
        let home = tempfile::tempdir().unwrap();
        let bin = home.path().join(".cargo/bin");
        std::fs::create_dir_all(&bin).unwrap();
        let write = |name: &str, text: String| {
            std::fs::write(bin.join(name), text).unwrap();
            std::fs::set_permissions(bin.join(name), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        };
        let installed = home.path().join("installed");
        write(
            "cargo",
            format!(
                "#!/bin/sh\nif [ \"$RUSTUP_TOOLCHAIN\" = stable ] && [ -f '{installed}' ]; then \
                 echo 'cargo 1.200.0 (0 2030-01-01)'; else echo 'cargo 1.80.0 (0 2024-07-01)'; fi\n",
                installed = installed.display()
            ),
        );
        if with_rustup {
            write(
                "rustup",
                format!(
                    "#!/bin/sh\necho \"rustup $*\" >> '{calls}'\n\
                     [ \"$1\" = toolchain ] && touch '{installed}'\nexit 0\n",
                    calls = home.path().join("calls").display(),
                    installed = installed.display()
                ),
            );
        }
        std::fs::write(
            home.path().join(".cargo/env"),
            format!("PATH=\"{}:$PATH\"\n", bin.display()),
        )
        .unwrap();
        let out = Command::new("bash")
            .args([
                "-c",
                ". dist/rust-toolchain.sh && use_new_enough_rust rustfmt clippy && cargo --version",
            ])
            .current_dir(repo(""))
            .env("HOME", home.path())
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap();
        let calls = std::fs::read_to_string(home.path().join("calls")).unwrap_or_default();
        if with_rustup {
            assert!(out.status.success(), "{out:?}");
            assert!(
                calls.contains(
                    "rustup toolchain install stable --profile minimal -c rustfmt,clippy"
                ) && !calls.contains("rustup default"),
                "{calls}"
            );
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("cargo 1.200.0"),
                "{out:?}"
            );
        } else {
            assert!(!out.status.success(), "{out:?}");
            assert!(
                String::from_utf8_lossy(&out.stderr).contains(
                    "cargo 1.80.0 (0 2024-07-01) is older than Cargo.toml's rust-version"
                ),
                "{out:?}"
            );
        }
    }
}
