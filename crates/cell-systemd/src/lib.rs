//! systemd integration shared by the cell's daemons.

use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt, EnvFilter};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("connecting to the journal: {0}")]
    Journal(#[source] std::io::Error),
    #[error("a global tracing subscriber is already installed")]
    SubscriberInstalled(#[source] tracing_subscriber::util::TryInitError),
    #[error("notifying systemd through $NOTIFY_SOCKET: {0}")]
    Notify(#[source] std::io::Error),
}

/// Where log records go: journald when systemd connected our output to the journal
/// (it sets `$JOURNAL_STREAM`), human-readable stderr everywhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    Journald,
    Stderr,
}

impl LogTarget {
    pub fn detect() -> Self {
        if std::env::var_os("JOURNAL_STREAM").is_some() {
            Self::Journald
        } else {
            Self::Stderr
        }
    }
}

/// Installs the global tracing subscriber. The level comes from `$CELL_LOG`
/// (`tracing_subscriber` filter syntax), `info` when unset or invalid.
pub fn init_logging(syslog_identifier: &str) -> Result<LogTarget, Error> {
    init_logging_with(syslog_identifier, "info")
}

/// [`init_logging`] with another filter when `$CELL_LOG` is unset, e.g. to keep a library
/// that logs every request at `info` quiet.
pub fn init_logging_with(
    syslog_identifier: &str,
    default_filter: &str,
) -> Result<LogTarget, Error> {
    let filter =
        EnvFilter::try_from_env("CELL_LOG").unwrap_or_else(|_| EnvFilter::new(default_filter));
    let target = LogTarget::detect();
    let registry = tracing_subscriber::registry().with(filter);
    match target {
        LogTarget::Journald => {
            let journal = tracing_journald::layer()
                .map_err(Error::Journal)?
                .with_syslog_identifier(syslog_identifier.to_owned());
            registry.with(journal).try_init()
        }
        LogTarget::Stderr => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init(),
    }
    .map_err(Error::SubscriberInstalled)?;
    Ok(target)
}

/// Tells the service manager that start-up is complete (`READY=1`). Outside systemd
/// (no `$NOTIFY_SOCKET`) this does nothing.
pub fn notify_ready() -> Result<(), Error> {
    sd_notify::notify(false, &[sd_notify::NotifyState::Ready]).map_err(Error::Notify)
}

/// Tells the service manager that the daemon is shutting down (`STOPPING=1`).
pub fn notify_stopping() -> Result<(), Error> {
    sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]).map_err(Error::Notify)
}

/// Resolves when the service manager asks us to stop (SIGTERM) or on Ctrl-C, after
/// telling systemd that shutdown has begun.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGTERM; stopping on Ctrl-C only");
            if let Err(error) = tokio::signal::ctrl_c().await {
                tracing::warn!(%error, "cannot watch Ctrl-C either; stopping now");
            }
        }
    }
    if let Err(error) = notify_stopping() {
        tracing::warn!(%error, "could not tell systemd that we are stopping");
    }
}

/// The version of the running image (`IMAGE_VERSION` in /usr/lib/os-release): what users
/// see and what updates compare. Off the device, the software's own version.
pub fn image_version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        std::fs::read_to_string("/usr/lib/os-release")
            .ok()
            .and_then(|text| image_version_in(&text))
            .unwrap_or_else(|| cell_model::VERSION.to_owned())
    })
}

/// `IMAGE_VERSION=` in the text of an os-release file.
pub fn image_version_in(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|line| {
        line.strip_prefix("IMAGE_VERSION=")
            .map(|v| v.trim_matches(['"', '\'']).to_owned())
            .filter(|v| !v.is_empty())
    })
}

#[cfg(test)]
mod image_version_tests {
    #[test]
    fn reads_image_version_from_os_release() {
        let text = "NAME=Debian\nIMAGE_ID=\"cell\"\nIMAGE_VERSION=\"0.1.0-53-ga5b0902f\"\n";
        assert_eq!(
            super::image_version_in(text).as_deref(),
            Some("0.1.0-53-ga5b0902f")
        );
        assert_eq!(
            super::image_version_in("NAME=Debian\nIMAGE_VERSION=\n"),
            None
        );
    }
}
