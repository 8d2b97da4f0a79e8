//! The daemon's standing to its config file in a `status` answer: once
//! per answer, when there is anything to say.

use serde::{Deserialize, Serialize};

/// What the running daemon has not taken from its config file, sent at the
/// end of a streamed `status` (in its `done` line) when anything: a reload
/// that was refused (the file is invalid; the daemon runs the config it had
/// before), and `[daemon]` keys changed in the file, which take effect at
/// the next restart. The reasons of a refused reload are in the daemon's
/// log only: they quote the file, which callers may not be allowed to read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigStatus {
    /// When the last reload was refused (Unix seconds); absent once one
    /// succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload_failed_at: Option<i64>,
    /// `[daemon]` keys whose value in the file is not the running one's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restart_needed: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::ConfigStatus;

    #[test]
    fn only_what_there_is_to_say_is_sent() {
        let status = ConfigStatus {
            reload_failed_at: Some(1_790_000_000),
            restart_needed: vec!["socket".into()],
        };
        let line = serde_json::to_string(&status).unwrap();
        assert_eq!(
            line,
            r#"{"reload_failed_at":1790000000,"restart_needed":["socket"]}"#
        );
        assert_eq!(serde_json::from_str::<ConfigStatus>(&line).unwrap(), status);
        let nothing: ConfigStatus = serde_json::from_str("{}").unwrap();
        assert_eq!(nothing, ConfigStatus::default());
    }
}
