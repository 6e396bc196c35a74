//! The one-time setup code that proves physical or console access. Generated on the first
//! boot, kept until setup completes (so a restart does not change what the screen shows),
//! shown on the local console and serial port through agetty's issue file.

use std::path::{Path, PathBuf};

use cell_store::atomic;

use crate::passwords;

/// The setup code, in the state directory, until the cell is set up.
pub const CODE_FILE: &str = "setup-code";
/// celld writes the banner into its runtime directory; tmpfiles links it into
/// /run/issue.d, where agetty on tty1 and ttyS0 shows it above the login prompt.
pub const ISSUE_FILE: &str = "console.issue";
/// The banner carries the code that claims the cell: root's alone (agetty, which shows
/// it on the console, runs as root); cell-web, in celld's group, must not read it.
const BANNER_MODE: u32 = 0o600;

#[derive(Debug, thiserror::Error)]
pub enum SetupCodeError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] cell_store::StoreError),
}

#[derive(Debug)]
pub struct SetupCode {
    state_file: PathBuf,
    issue_file: PathBuf,
    code: Option<String>,
}

impl SetupCode {
    /// Loads the code, creating one if the cell is not set up; `setup_complete` removes it.
    pub fn prepare(
        state_dir: &Path,
        run_dir: &Path,
        setup_complete: bool,
    ) -> Result<Self, SetupCodeError> {
        let mut this = Self {
            state_file: state_dir.join(CODE_FILE),
            issue_file: run_dir.join(ISSUE_FILE),
            code: None,
        };
        if setup_complete {
            this.retire()?;
            return Ok(this);
        }
        let code = match std::fs::read_to_string(&this.state_file) {
            Ok(code) if passwords::normalise_code(&code).len() == 8 => code.trim().to_owned(),
            Ok(_) | Err(_) => {
                let code = passwords::random_code(2);
                atomic::write(&this.state_file, code.as_bytes(), 0o600)?;
                code
            }
        };
        let banner = format!(
            "\nPersonal Internet Cell: open https://\\4/ (or https://cell.local/) in a browser to set it up.\nSetup code: {code}\n\n"
        );
        atomic::write(&this.issue_file, banner.as_bytes(), BANNER_MODE)?;
        this.code = Some(code);
        Ok(this)
    }

    /// The code, while the cell can still be claimed.
    pub fn current(&self) -> Option<&str> {
        self.code.as_deref()
    }

    pub fn matches(&self, offered: &str) -> bool {
        self.code.as_deref().is_some_and(|code| {
            passwords::same(
                passwords::normalise_code(code).as_bytes(),
                passwords::normalise_code(offered).as_bytes(),
            )
        })
    }

    /// Setup is done: the code is spent, and the console shows where the UI is instead.
    pub fn retire(&mut self) -> Result<(), SetupCodeError> {
        self.code = None;
        match std::fs::remove_file(&self.state_file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(SetupCodeError::Io {
                    action: "removing",
                    path: self.state_file.clone(),
                    source,
                })
            }
        }
        let banner = "\nPersonal Internet Cell: web UI at https://\\4/\n\n";
        atomic::write(&self.issue_file, banner.as_bytes(), BANNER_MODE)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_survives_a_restart_and_is_shown_on_the_console() {
        let dir = tempfile::tempdir().unwrap();
        let first = SetupCode::prepare(dir.path(), dir.path(), false).unwrap();
        let code = first.current().unwrap().to_owned();
        let second = SetupCode::prepare(dir.path(), dir.path(), false).unwrap();
        assert_eq!(second.current(), Some(code.as_str()));
        let issue = std::fs::read_to_string(dir.path().join(ISSUE_FILE)).unwrap();
        assert!(issue.contains(&format!("Setup code: {code}")), "{issue}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(ISSUE_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "only root reads the banner");
    }

    #[test]
    fn matching_forgives_case_and_dashes_only() {
        let dir = tempfile::tempdir().unwrap();
        let setup = SetupCode::prepare(dir.path(), dir.path(), false).unwrap();
        let code = setup.current().unwrap().to_owned();
        assert!(setup.matches(&code.to_lowercase().replace('-', "")));
        assert!(!setup.matches("AAAA-AAAA") || code == "AAAA-AAAA");
        assert!(!setup.matches(""));
    }

    #[test]
    fn retiring_spends_the_code() {
        let dir = tempfile::tempdir().unwrap();
        let mut setup = SetupCode::prepare(dir.path(), dir.path(), false).unwrap();
        let code = setup.current().unwrap().to_owned();
        setup.retire().unwrap();
        assert!(!setup.matches(&code));
        assert!(!dir.path().join(CODE_FILE).exists());
        let issue = std::fs::read_to_string(dir.path().join(ISSUE_FILE)).unwrap();
        assert!(!issue.contains("Setup code"), "{issue}");
    }
}
