//! Over-the-air updates: where they come from (settings), what celld asks the update job
//! to do (the request), and what the job reports back (the state). No I/O here: celld
//! writes the request and reads the state, `cell-update` (root, run by systemd) does the
//! opposite.

use serde::{Deserialize, Serialize};

use crate::FieldError;

/// Relative to the state directory: the update job's working directory.
pub const UPDATE_DIR: &str = "update";
/// In [`UPDATE_DIR`]: what celld asks of the next job.
pub const REQUEST_FILE: &str = "request.json";
/// In [`UPDATE_DIR`]: what the jobs found and did.
pub const STATE_FILE: &str = "state.json";
/// The unit that runs one job (`cell-update run`), started by celld.
pub const JOB_UNIT: &str = "cell-update.service";
/// The longest version an update may carry: GPT partition labels hold 36 characters and
/// the longest of ours is `cell_<version>_hash`.
pub const VERSION_MAX: usize = 26;
const URL_MAX: usize = 512;

/// The update settings: the directory the cell's updates are published in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSettings {
    /// `http(s)://host[:port]/path` of a directory made by `cell-image publish`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<UpdateUrl>,
}

impl UpdateSettings {
    pub fn is_default(&self) -> bool {
        self == &Self::default()
    }
}

/// A validated update source URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UpdateUrl(String);

impl UpdateUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UpdateUrl {
    type Error = FieldError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let refuse = |message: &str| Err(FieldError::new("url", message));
        let rest = value
            .strip_prefix("https://")
            .or_else(|| value.strip_prefix("http://"));
        let Some(rest) = rest else {
            return refuse("must start with http:// or https://");
        };
        if value.len() > URL_MAX {
            return refuse("is longer than 512 characters");
        }
        // The URL goes into sysupdate's transfer files, one setting per line: nothing that
        // could end a line or be read as a specifier.
        if let Some(bad) = value
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '%' | '"' | '\\'))
        {
            return refuse(&format!("may not contain {bad:?}"));
        }
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if host.is_empty() || host.starts_with(':') || host.contains('@') {
            return refuse("needs a host name or address (and no user name)");
        }
        if rest.contains(['?', '#']) {
            return refuse("may not carry a query or fragment: it names a directory");
        }
        Ok(Self(value.trim_end_matches('/').to_owned()))
    }
}

impl From<UpdateUrl> for String {
    fn from(value: UpdateUrl) -> Self {
        value.0
    }
}

impl std::fmt::Display for UpdateUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a version the way sysupdate and our partition labels need it: digits first,
/// then letters, digits, `.` or `-` (`_` separates the version in file names and labels),
/// at most [`VERSION_MAX`] characters.
pub fn validate_version(version: &str) -> Result<(), FieldError> {
    let refuse = |message: &str| Err(FieldError::new("version", message));
    if !version.starts_with(|c: char| c.is_ascii_digit()) {
        return refuse("must start with a digit");
    }
    if version.len() > VERSION_MAX {
        return refuse("is longer than 26 characters");
    }
    if let Some(bad) = version
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-')))
    {
        return refuse(&format!("may not contain {bad:?}"));
    }
    Ok(())
}

/// What celld asks the next job (`cell-update run`) to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum UpdateRequest {
    /// Ask the update server which versions it has.
    Check { url: UpdateUrl },
    /// Download, verify and install `version` into the inactive slot.
    Install { url: UpdateUrl, version: String },
}

/// What the update jobs found and did; written by `cell-update`, read by celld.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateState {
    /// When the update server was last asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<jiff::Timestamp>,
    /// Versions the server offers that are newer than the running one and have not failed,
    /// newest first.
    #[serde(default)]
    pub available: Vec<String>,
    /// Versions that were installed and then rolled back: never offered again.
    #[serde(default)]
    pub failed: Vec<String>,
    /// Installed into the other slot; runs after the next reboot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
    /// The job that is running (or was, if it died).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<UpdateJob>,
    /// The outcome of the last job, or of the last update at boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<UpdateResult>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdatePhase {
    Checking,
    Downloading,
    Installing,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateJob {
    pub phase: UpdatePhase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Of the current phase, 0–100.
    pub percent: u8,
    /// What is being done right now, e.g. the file being downloaded.
    pub detail: String,
    pub started_at: jiff::Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateOutcome {
    /// The server was asked; `available` is fresh.
    Checked,
    /// Installed into the other slot; a reboot starts it.
    Installed,
    /// The machine rebooted into the new version and it passed its health check.
    Updated,
    /// The new version failed its health check on every try; the old one runs again.
    RolledBack,
    /// The job failed (network, verification, disk); nothing was installed.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateResult {
    pub outcome: UpdateOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub message: String,
    pub at: jiff::Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_seconds: Option<f64>,
}

/// `GET /v1/update`: everything the Updates page shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateView {
    /// The running version.
    pub current: String,
    /// Where updates come from; none until an administrator sets it.
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<jiff::Timestamp>,
    pub available: Vec<String>,
    pub failed: Vec<String>,
    pub pending: Option<String>,
    /// The job running now, with its progress.
    pub job: Option<UpdateJob>,
    pub last_result: Option<UpdateResult>,
    /// When the machine will reboot, if a reboot is scheduled.
    pub reboot_at: Option<jiff::Timestamp>,
}

/// `PUT /v1/update`: the update URL (null removes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSettingsEdit {
    pub url: Option<String>,
}

/// `POST /v1/update/install`: a version, or the newest available when absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallRequest {
    #[serde(default)]
    pub version: Option<String>,
}

/// `POST /v1/update/reboot`: when (RFC 3339); now when absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebootRequest {
    #[serde(default)]
    pub at: Option<jiff::Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Result<UpdateUrl, FieldError> {
        UpdateUrl::try_from(s.to_owned())
    }

    #[test]
    fn update_urls_name_a_directory_over_http() {
        assert_eq!(
            url("http://10.0.2.2:8000/cell/").unwrap().as_str(),
            "http://10.0.2.2:8000/cell"
        );
        assert!(url("https://updates.example.org").is_ok());
        for bad in [
            "ftp://x/",
            "http://",
            "http:///path",
            "http://user@host/",
            "http://host/a b",
            "http://host/a\nb",
            "http://host/%v",
            "http://host/?q=1",
            "file:///etc",
        ] {
            let error = url(bad).unwrap_err();
            assert_eq!(error.field, "url", "{bad}");
        }
    }

    #[test]
    fn versions_fit_partition_labels() {
        assert!(validate_version("0.1.0-53-ga5b0902f").is_ok());
        assert!(validate_version("0.1.0-153-ga5b0902f.dirty.2").is_err());
        assert!(validate_version("v1").is_err());
        assert!(validate_version("1+3").is_err());
        assert!(validate_version("1/../x").is_err());
        assert!(
            validate_version("1_2").is_err(),
            "'_' would split file names"
        );
    }

    #[test]
    fn requests_carry_their_action() {
        let request = UpdateRequest::Install {
            url: url("http://h/u").unwrap(),
            version: "1.2".into(),
        };
        let json = serde_json::to_string(&request).unwrap();
        assert_eq!(
            json,
            r#"{"action":"install","url":"http://h/u","version":"1.2"}"#
        );
        assert_eq!(
            serde_json::from_str::<UpdateRequest>(&json).unwrap(),
            request
        );
        assert!(serde_json::from_str::<UpdateRequest>(r#"{"action":"check","url":"x"}"#).is_err());
    }
}
