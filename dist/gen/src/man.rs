//! The man pages: `tokend.8`, `tokenctl.1`, a `tokenctl-VERB.1` per verb
//! and `docker-credential-tokend.1`, from the clap definitions plus the
//! sections clap does not know (files, environment, signals, exit
//! statuses).

use std::io::{self, Write};
use std::path::Path;

use clap::CommandFactory;
use clap_mangen::Man;
use clap_mangen::roff::{Inline, Roff, bold, italic, roman};
use tokend::cli::exit_status::MEANINGS;
use tokend::cli::{TokenctlArgs, TokendArgs};
use tokend::config::{DEFAULT_KEY_CREDENTIAL, DEFAULT_USERNAME};

use crate::{DOCKER_HELPER, write};

/// DESCRIPTION of tokend(8): more than `--help`'s one line.
const TOKEND_DESCRIPTION: &str = "\
tokend keeps one OAuth 2.0 device-grant (RFC 8628) session per configured provider, \
refreshes its access token before it expires, keeps refresh tokens in a store so \
sessions survive restarts, and hands fresh access tokens to local programs: over a \
Unix socket (see tokenctl(1)) and over D-Bus as org.tokend.Broker1.

Each caller's role on a provider decides what it gets: allow_users, allow_groups and \
allow_units (systemd units) may use its tokens and see its status; manage_users and \
manage_groups may also log in and out. By default root and tokend's own user manage \
every provider and nobody else has a role; a caller with no role is told the provider \
does not exist.

It is meant to run under systemd: as the system service tokend.service (user tokend, \
system bus, config /etc/tokend/config.toml) or as a user's service \
(systemctl --user, session bus, the desktop keyring). It reports readiness and \
status to systemd, answers the watchdog, and logs to the journal when started by \
systemd, to standard error otherwise.";

/// DESCRIPTION of tokenctl(1).
const TOKENCTL_DESCRIPTION: &str = "\
tokenctl talks to tokend(8) over its Unix socket: it prints access tokens for \
scripts, runs device logins (showing the code, and a QR code when the terminal can), \
shows the state of each provider's session and ends sessions. Each verb has its own \
page, tokenctl-VERB(1).

tokenctl token prints the token and a newline on standard output and nothing \
else, so that it can be piped straight into a header (never put it in a \
command's arguments, which every local user can read in /proc); every \
failure is one line on standard error and an exit status from the table below.";

/// Writes every man page into `dir`, `date` in their title lines.
pub(crate) fn write_man_pages(dir: &Path, date: &str) -> io::Result<()> {
    let source = format!("tokend {}", env!("CARGO_PKG_VERSION"));
    let page = |cmd: clap::Command, section: &str| {
        Man::new(cmd)
            .section(section)
            .date(date)
            .source(source.clone())
            .manual("tokend manual")
    };

    let mut text = Vec::new();
    let mut tokend_cmd = TokendArgs::command().long_about(TOKEND_DESCRIPTION);
    tokend_cmd.build();
    let tokend = page(tokend_cmd.clone(), "8");
    render_head(&tokend, &mut text)?;
    tokend_sections().to_writer(&mut text)?;
    tokend.render_version_section(&mut text)?;
    let text = with_synopsis(text, &tokend_cmd)?;
    write(&dir.join(tokend.get_filename()), &text)?;

    // `help` is clap's, not a verb worth a page; the pages of the verbs get
    // the global options through `build()`.
    let mut tokenctl = TokenctlArgs::command().disable_help_subcommand(true);
    tokenctl.build();
    // A page for every verb and every verb below one (`tokenctl credential
    // git`, which `tokenctl-credential(1)` names in its SEE ALSO).
    let mut verbs: Vec<&clap::Command> = tokenctl.get_subcommands().collect();
    while let Some(verb) = verbs.pop() {
        verbs.extend(verb.get_subcommands());
        let man = page(verb.clone(), "1");
        let mut text = Vec::new();
        man.render(&mut text)?;
        let text = with_synopsis(text, verb)?;
        write(&dir.join(man.get_filename()), &text)?;
    }
    let mut text = Vec::new();
    // The exit statuses get a section of their own below, not clap's
    // "EXTRA" rendering of the --help footer.
    let tokenctl = tokenctl
        .after_help(None::<&str>)
        .long_about(TOKENCTL_DESCRIPTION);
    let man = page(tokenctl.clone(), "1");
    render_head(&man, &mut text)?;
    man.render_subcommands_section(&mut text)?;
    tokenctl_sections().to_writer(&mut text)?;
    man.render_version_section(&mut text)?;
    let text = with_synopsis(text, &tokenctl)?;
    write(&dir.join(man.get_filename()), &text)?;

    let mut text = Vec::new();
    docker_helper_page(&source, date).to_writer(&mut text)?;
    write(&dir.join(format!("{DOCKER_HELPER}.1")), &text)
}

/// docker-credential-tokend(1): tokenctl under the helper's name, which
/// has no clap definition (it takes one action word, as the protocol says).
fn docker_helper_page(source: &str, date: &str) -> Roff {
    let mut roff = Roff::new();
    roff.control("TH", [DOCKER_HELPER, "1", date, source, "tokend manual"]);
    roff.control("SH", ["NAME"]);
    roff.text([roman(format!(
        "{DOCKER_HELPER} - tokend's credential helper for docker, podman, skopeo and buildah"
    ))]);
    roff.control("SH", ["SYNOPSIS"]);
    roff.text([
        bold(DOCKER_HELPER),
        roman(" "),
        bold("get"),
        roman("|"),
        bold("list"),
        roman("|"),
        bold("store"),
        roman("|"),
        bold("erase"),
        roman("|"),
        bold("version"),
    ]);
    roff.control("SH", ["DESCRIPTION"]);
    roff.text([roman(format!(
        "{DOCKER_HELPER} is tokenctl(1) under another name (a symbolic link to it): \
         started under this name, tokenctl speaks the docker-credential-helpers protocol \
         instead of taking verbs. Container tools run it with one action as its argument \
         and the request on standard input, and read the answer, or the error message, \
         on standard output. Every error but \"credentials not found in native \
         keychain\" is written on standard error too, after the helper's name: docker \
         reads standard output only to tell that one from the rest, and shows standard \
         error. It asks tokend(8) over its socket, as tokenctl does, for a \
         token of the provider whose hosts key lists the registry's host."
    ))]);
    roff.control("PP", []);
    roff.text([roman(
        "To use it for a registry, name it in ~/.docker/config.json (or \
         containers-auth.json) without its docker-credential- prefix:",
    )]);
    roff.control("PP", []);
    roff.text([italic(r#"{ "credHelpers": { "ghcr.io": "tokend" } }"#)]);
    roff.control("PP", []);
    roff.text([roman(format!(
        "Installed as {DOCKER_HELPER}-NAME (another symbolic link to tokenctl, named \
         \"tokend-NAME\" in credHelpers), it answers with provider NAME's token only: \
         for two accounts at one registry, whose hosts both list it, where \
         {DOCKER_HELPER} refuses to guess."
    ))]);
    docker_helper_actions(&mut roff);
    roff.control("SH", ["ENVIRONMENT"]);
    item(
        &mut roff,
        "TOKEND_SOCKET",
        "The daemon's socket, when not the default (as for tokenctl; empty counts as unset).",
    );
    item(
        &mut roff,
        "TOKEND_SOCKET_OWNER",
        "The user, by name or uid, whose tokend serves that socket when it is not root, you or tokend (as for tokenctl).",
    );
    roff.control("SH", ["EXIT STATUS"]);
    roff.text([roman(
        "0 on success, 1 when there are no credentials for the server or on a refused \
         store, 2 for an unknown action or no server URL; the other statuses are \
         tokenctl's (3: tokend not reachable, 4: login required, ...), see tokenctl(1).",
    )]);
    see_also(&mut roff, &[("tokenctl", "1"), ("tokend", "8")]);
    roff
}

/// docker-credential-tokend(1)'s ACTIONS section: what each action does.
fn docker_helper_actions(roff: &mut Roff) {
    roff.control("SH", ["ACTIONS"]);
    item(
        roff,
        "get",
        &format!(
            "Standard input is the registry's server URL. The answer is \
             {{\"ServerURL\",\"Username\",\"Secret\"}}: the token of the provider whose \
             hosts has the URL's host, as user name its git_username (default \
             {DEFAULT_USERNAME}). Without such a provider: the protocol's \
             \"credentials not found in native keychain\" and exit status 1; with two, \
             an error naming both (no token sent) and exit status 1. As \
             {DOCKER_HELPER}-NAME: provider NAME's token if its hosts list the host (or \
             it has none); else an error naming the hosts it serves (exit status 1), or \
             that no provider NAME may be used (exit status 7). \
             A URL with http:// is refused (a token is never sent in the clear), \
             except to a loopback address."
        ),
    );
    item(
        roff,
        "list",
        &format!(
            "{{\"HOST\": \"USERNAME\", ...}} for every host of every provider the user may \
             use (of provider NAME only, as {DOCKER_HELPER}-NAME), but a host two of them \
             list, for which get answers with no token."
        ),
    );
    item(
        roff,
        "store",
        "Succeeds, keeping nothing, when handed what get answers now for the server \
         (the provider's user name and current token), as docker login REGISTRY does \
         with the credentials it got from get; anything else is refused (exit status 1): \
         tokens come from tokenctl login, and docker login is not needed.",
    );
    item(
        roff,
        "erase",
        "Nothing to erase: succeeds. get goes on answering with tokend's token (docker \
         logout does not log out of the provider; tokenctl logout NAME does).",
    );
    item(roff, "version", "The version of tokenctl.");
}

/// `page` (clap_mangen's rendering of `cmd`) with the line under SYNOPSIS
/// replaced by [`synopsis`]'s: clap_mangen 0.3 leaves out the values of
/// options (`[--config]` for `[--config <PATH>]`).
///
/// # Errors
/// The page has no SYNOPSIS section of one line.
fn with_synopsis(page: Vec<u8>, cmd: &clap::Command) -> io::Result<Vec<u8>> {
    const HEADING: &str = "\n.SH SYNOPSIS\n";
    let page =
        String::from_utf8(page).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let no_synopsis = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the page of {} has no one-line SYNOPSIS", cmd.get_name()),
        )
    };
    let start = page.find(HEADING).ok_or_else(no_synopsis)? + HEADING.len();
    let end = start + page[start..].find('\n').ok_or_else(no_synopsis)? + 1;
    let mut roff = Roff::new();
    roff.text(synopsis(cmd));
    Ok(format!("{}{}{}", &page[..start], roff.to_roff(), &page[end..]).into_bytes())
}

/// The SYNOPSIS line of `cmd` (built), as clap_mangen writes it but with
/// each option's value, and `--` before an argument that comes after it,
/// as `--help` shows them: `tokenctl exec [--env <VAR>] … <NAME> -- <COMMAND>...`.
fn synopsis(cmd: &clap::Command) -> Vec<Inline> {
    let name = cmd.get_bin_name().unwrap_or_else(|| cmd.get_name());
    let mut line = vec![bold(name)];
    let mut options: Vec<&clap::Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !a.is_positional())
        .collect();
    // clap_mangen's order: by display order, then name; required ones last.
    options.sort_by_key(|a| {
        let name = match (a.get_short(), a.get_long()) {
            (Some(short), _) => short.to_ascii_lowercase().to_string(),
            (None, Some(long)) => long.to_owned(),
            (None, None) => String::new(),
        };
        (a.is_required_set(), a.get_display_order(), name)
    });
    for arg in options {
        let (open, close) = if arg.is_required_set() {
            (" <", ">")
        } else {
            (" [", "]")
        };
        line.push(roman(open));
        match (arg.get_short(), arg.get_long()) {
            (Some(short), Some(long)) => {
                line.push(bold(format!("-{short}")));
                line.push(roman("|"));
                line.push(bold(format!("--{long}")));
            }
            (Some(short), None) => line.push(bold(format!("-{short}"))),
            (None, Some(long)) => line.push(bold(format!("--{long}"))),
            (None, None) => continue,
        }
        if arg.get_num_args().is_some_and(|n| n.takes_values()) {
            line.push(roman(" "));
            line.push(italic(format!("<{}>", value_name(arg))));
        }
        line.push(roman(close));
    }
    for arg in cmd.get_positionals().filter(|a| !a.is_hide_set()) {
        if arg.is_last_set() {
            line.push(roman(" --"));
        }
        let (open, close) = if arg.is_required_set() {
            (" <", ">")
        } else {
            (" [", "]")
        };
        line.push(roman(open));
        line.push(italic(value_name(arg)));
        line.push(roman(close));
        if arg.get_num_args().is_some_and(|n| n.max_values() > 1) {
            line.push(roman("..."));
        }
    }
    if cmd.has_subcommands() {
        let (open, close) = if cmd.is_subcommand_required_set() {
            (" <", ">")
        } else {
            (" [", "]")
        };
        line.push(roman(open));
        line.push(italic(cmd.get_subcommand_value_name().unwrap_or("COMMAND")));
        line.push(roman(close));
    }
    line
}

/// The name of `arg`'s value: its value_name, else its id in capitals.
fn value_name(arg: &clap::Arg) -> String {
    arg.get_value_names().map_or_else(
        || arg.get_id().as_str().to_uppercase(),
        |names| names.join(" "),
    )
}

/// Title, NAME, SYNOPSIS, DESCRIPTION and OPTIONS, as clap renders them
/// (the SYNOPSIS line is then redone by [`with_synopsis`]).
fn render_head(man: &Man, out: &mut dyn Write) -> io::Result<()> {
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)
}

/// One `.TP` entry: a bold term, then its description.
fn item(roff: &mut Roff, term: &str, text: &str) {
    roff.control("TP", []);
    roff.text([bold(term)]);
    roff.text([roman(text)]);
}

fn see_also(roff: &mut Roff, pages: &[(&str, &str)]) {
    roff.control("SH", ["SEE ALSO"]);
    let mut inlines = Vec::new();
    for (i, (name, section)) in pages.iter().enumerate() {
        if i > 0 {
            inlines.push(roman(", "));
        }
        inlines.push(bold(*name));
        inlines.push(roman(format!("({section})")));
    }
    roff.text(inlines);
}

fn tokend_sections() -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["SIGNALS"]);
    item(
        &mut roff,
        "SIGTERM, SIGINT",
        "Stop: answer the requests in flight, let running refreshes finish, then exit.",
    );
    item(
        &mut roff,
        "SIGHUP",
        "Reload the config: added providers appear, removed ones go, unchanged ones keep \
         their sessions. An invalid config is logged and the running one kept.",
    );

    roff.control("SH", ["EXIT STATUS"]);
    item(
        &mut roff,
        "0",
        "Stopped cleanly, or (--check) the config is valid.",
    );
    item(
        &mut roff,
        "1",
        "The daemon could not start or run, or it stopped because it lost its D-Bus \
         connection (the service manager is to start it again).",
    );
    item(
        &mut roff,
        "2",
        "The config is invalid or unreadable; every problem is printed as file:line:col: message. \
         Also, at a start: a socket path that is not safe (a directory others may write to), or \
         that holds something other than a socket; a socket_group the daemon cannot give the \
         socket (its user is not in the group, or the units' system-call filter forbids it: \
         make the socket's directory set-group-ID); no CA certificate could be loaded \
         (SSL_CERT_FILE or SSL_CERT_DIR wrong, or hidden by the unit). A start again would fail \
         the same way, so the units do not restart it.",
    );

    roff.control("SH", ["ENVIRONMENT"]);
    item(
        &mut roff,
        "TOKEND_CONFIG",
        "The config file when --config is not given.",
    );
    item(
        &mut roff,
        "RUST_LOG",
        "Log filter (error, warn, info, debug, trace, or per module); overrides log_level.",
    );
    item(
        &mut roff,
        "XDG_CONFIG_HOME, XDG_RUNTIME_DIR",
        "Where a user's daemon finds its config and puts its socket.",
    );
    item(
        &mut roff,
        "STATE_DIRECTORY, XDG_STATE_HOME, HOME",
        "Where the encrypted-file store keeps its records when state_directory is not set, \
         and where any daemon notes logouts its store has not carried out yet: \
         the service's state directory (set by systemd), else /var/lib/tokend for root, \
         else $XDG_STATE_HOME/tokend (~/.local/state/tokend).",
    );
    item(
        &mut roff,
        "RUNTIME_DIRECTORY, CREDENTIALS_DIRECTORY, NOTIFY_SOCKET, WATCHDOG_USEC",
        &format!(
            "Set by systemd: the socket goes in the runtime directory; the credentials \
             directory holds the encrypted-file store's key (the credential \
             {DEFAULT_KEY_CREDENTIAL}, or the one store_key_credential names, unless \
             store_key_file is set) and the client secrets of client_secret_credential; \
             readiness, status and watchdog pings go to the notify socket."
        ),
    );
    item(
        &mut roff,
        "DBUS_SESSION_BUS_ADDRESS, DBUS_SYSTEM_BUS_ADDRESS",
        "The buses, when not at their usual places.",
    );

    tokend_files(&mut roff);
    see_also(
        &mut roff,
        &[
            ("tokenctl", "1"),
            ("systemctl", "1"),
            ("busctl", "1"),
            ("systemd.exec", "5"),
        ],
    );
    roff
}

/// tokend(8)'s FILES: what it reads and writes, where.
fn tokend_files(roff: &mut Roff) {
    roff.control("SH", ["FILES"]);
    item(
        roff,
        "/etc/tokend/config.toml",
        "Config of the system service (tokend.service) and of root.",
    );
    item(
        roff,
        "~/.config/tokend/config.toml",
        "Config of a user's daemon (systemctl --user start tokend).",
    );
    item(
        roff,
        "/run/tokend/tokend.sock, $XDG_RUNTIME_DIR/tokend/tokend.sock",
        "The socket of the system service and of a user's daemon.",
    );
    item(
        roff,
        "/var/lib/tokend/sessions/, ~/.local/state/tokend/sessions/",
        "The encrypted-file store's records (NAME.session, sealed), in the state directory.",
    );
    item(
        roff,
        "/var/lib/tokend/pending-logouts, ~/.local/state/tokend/pending-logouts, \
         ~/.local/state/tokend/pending-logouts-secret-service",
        "Logouts whose record the store could not delete yet (provider names and times, \
         no secret; the last for the Secret Service): the next start deletes those records \
         instead of restoring them.",
    );
    item(
        roff,
        "/usr/share/doc/tokend/examples/",
        "Example configs, with every key explained.",
    );
}

fn tokenctl_sections() -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["EXIT STATUS"]);
    roff.text([roman(
        "Scripts may branch on these; they never change meaning.",
    )]);
    for (status, meaning) in MEANINGS {
        item(&mut roff, &status.to_string(), meaning);
    }
    roff.control("SH", ["EXAMPLES"]);
    roff.text([roman(
        "A header for curl, refreshed first if it has less than five minutes left (curl reads it from its input, not its arguments):",
    )]);
    roff.control("PP", []);
    roff.text([italic(
        "tokenctl token github --min-valid 300 | sed 's/^/Authorization: Bearer /' | curl -H @- https://api.github.com/user",
    )]);
    roff.control("SH", ["ENVIRONMENT"]);
    item(
        &mut roff,
        "TOKEND_SOCKET",
        "The daemon's socket, when --socket is not given.",
    );
    item(
        &mut roff,
        "TOKEND_SOCKET_OWNER",
        "The user, by name or uid, whose tokend serves that socket when it is not root, you or tokend, when --socket-owner is not given.",
    );
    item(&mut roff, "NO_COLOR", "When set and not empty, no colors.");
    see_also(&mut roff, &[("tokend", "8")]);
    roff
}
