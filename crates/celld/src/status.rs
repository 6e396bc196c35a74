//! What the machine is and how long it has been up.

use std::path::{Path, PathBuf};

use cell_model::{Settings, Status};

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("reading {path}: {source}")]
    ReadUptime {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} does not start with a number of seconds: {content:?}")]
    ParseUptime { path: PathBuf, content: String },
    #[error("reading the hostname: {0}")]
    Hostname(#[source] nix::Error),
}

const PROC_UPTIME: &str = "/proc/uptime";

/// The units whose health the dashboard shows.
pub const MONITORED_UNITS: &[&str] = &[
    "celld.service",
    "cell-web.service",
    "cell-dns.service",
    crate::ntp::NTP_UNIT,
    "systemd-networkd.service",
    "systemd-resolved.service",
];

/// Collects the current status of the machine running `settings` of `generation`; unit
/// health is added by the caller.
pub fn current(generation: u64, settings: &Settings) -> Result<Status, StatusError> {
    Ok(Status {
        units: Vec::new(),
        appliers: Vec::new(),
        pending_change: None,
        auth: Default::default(),
        version: cell_systemd::image_version().to_owned(),
        hostname: hostname()?,
        uptime_seconds: uptime_seconds(Path::new(PROC_UPTIME))?,
        setup_complete: settings.setup_complete,
        generation,
        cell_name: settings.identity.cell_name.to_string(),
    })
}

fn hostname() -> Result<String, StatusError> {
    let name = nix::unistd::gethostname().map_err(StatusError::Hostname)?;
    Ok(name.to_string_lossy().into_owned())
}

fn uptime_seconds(path: &Path) -> Result<u64, StatusError> {
    let content = std::fs::read_to_string(path).map_err(|source| StatusError::ReadUptime {
        path: path.to_owned(),
        source,
    })?;
    parse_uptime(&content).ok_or_else(|| StatusError::ParseUptime {
        path: path.to_owned(),
        content,
    })
}

/// `/proc/uptime` holds "<seconds up> <seconds idle>", both with two decimals.
fn parse_uptime(content: &str) -> Option<u64> {
    let first = content.split_ascii_whitespace().next()?;
    let whole = first.split_once('.').map_or(first, |(whole, _)| whole);
    whole.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_uptime() {
        assert_eq!(parse_uptime("12345.67 54321.00\n"), Some(12345));
        assert_eq!(parse_uptime("7 1"), Some(7));
    }

    #[test]
    fn rejects_garbage_uptime() {
        assert_eq!(parse_uptime(""), None);
        assert_eq!(parse_uptime("abc 1.0"), None);
        assert_eq!(parse_uptime("-3.0 1.0"), None);
    }

    #[test]
    fn reports_a_missing_uptime_file_with_its_path() {
        let err = uptime_seconds(Path::new("/nonexistent/uptime")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/uptime"), "{err}");
    }

    #[test]
    fn current_status_describes_this_machine() {
        let status = current(3, &Settings::default()).unwrap();
        assert_eq!(status.version, cell_model::VERSION);
        assert!(!status.hostname.is_empty());
        assert!(!status.setup_complete);
        assert_eq!(status.generation, 3);
        assert_eq!(status.cell_name, "cell");
    }
}
