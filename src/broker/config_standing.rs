//! How the running daemon stands to its config file: whether the last
//! reload failed, and which `[daemon]` keys changed in the file since the
//! start (they take effect at the next restart). Both were in the log
//! alone; a person who ran `systemctl reload` and looks at `systemctl
//! status`, `tokenctl status` or the metrics learns it there too.

use std::sync::Mutex;
use std::time::SystemTime;

/// The daemon's standing to its config file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigStanding {
    /// When the last reload was refused (an invalid file); `None` once a
    /// reload succeeds. The reasons are in the log only: they quote the
    /// file, which callers of `status` may not be allowed to read.
    pub reload_failed_at: Option<SystemTime>,
    /// The `[daemon]` keys whose value in the file differs from the
    /// running daemon's, as of the last successful reload.
    pub restart_needed: Vec<&'static str>,
}

impl ConfigStanding {
    /// Whether there is anything to say.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.reload_failed_at.is_none() && self.restart_needed.is_empty()
    }

    /// What to add to systemd's `STATUS=` line, when anything.
    #[must_use]
    pub fn status_note(&self) -> Option<String> {
        let mut notes = Vec::new();
        if self.reload_failed_at.is_some() {
            notes.push(
                "the last reload failed (see the log); running the previous config".to_owned(),
            );
        }
        if !self.restart_needed.is_empty() {
            notes.push(format!(
                "a restart is needed for {}",
                self.restart_needed.join(", ")
            ));
        }
        (!notes.is_empty()).then(|| notes.join("; "))
    }
}

/// Where the broker keeps it (its methods are in `status`, beside the
/// other things `status` reports).
#[derive(Debug, Default)]
pub(crate) struct ConfigStandingCell(pub(super) Mutex<ConfigStanding>);
