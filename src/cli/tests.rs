use clap::{CommandFactory, Parser};

use super::exit_status::{LOGIN_FAILED, help_text};
use super::{TokenctlArgs, TokenctlCommand, TokendArgs};

#[test]
fn command_lines_are_consistent() {
    TokenctlArgs::command().debug_assert();
    TokendArgs::command().debug_assert();
}

#[test]
fn help_documents_exit_statuses() {
    let help = TokenctlArgs::command().render_long_help().to_string();
    assert!(help.contains("Exit status:"), "{help}");
    assert!(help.contains("4  login required"), "{help}");
}

#[test]
fn help_lists_every_status_once() {
    let help = help_text();
    for status in 0..=LOGIN_FAILED {
        assert_eq!(
            help.matches(&format!("  {status}  ")).count(),
            1,
            "status {status} in\n{help}"
        );
    }
}

#[test]
fn global_options_go_anywhere() {
    let cli = TokenctlArgs::try_parse_from(["tokenctl", "token", "gh", "--json", "--socket", "/s"])
        .unwrap();
    assert!(cli.json);
    assert_eq!(cli.socket.as_deref(), Some(std::path::Path::new("/s")));
    let TokenctlCommand::Token { min_valid, .. } = cli.command else {
        panic!("not token")
    };
    assert_eq!(min_valid, None, "no --min-valid: the daemon's own margin");
}
