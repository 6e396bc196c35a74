//! Types of the local and public APIs.

use serde::{Deserialize, Serialize};

/// The product version compiled into every binary. The Makefile sets `CELL_VERSION` to the
/// same value it gives mkosi as the image version, so what a page shows is what was flashed.
pub const VERSION: &str = match option_env!("CELL_VERSION") {
    Some(version) => version,
    None => env!("CARGO_PKG_VERSION"),
};

/// Answer of `GET /v1/status` on celld's local socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Version of the running cell software.
    pub version: String,
    /// The machine's hostname.
    pub hostname: String,
    /// Seconds since the machine booted.
    pub uptime_seconds: u64,
    /// Whether the first-boot setup wizard has been completed.
    pub setup_complete: bool,
}

/// Body of every error answer of the APIs. `field` names the input that was refused, as a
/// dotted path (`identity.cell_name`), when the error is about one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_has_a_stable_wire_form() {
        let status = Status {
            version: "1.2.3".into(),
            hostname: "cell".into(),
            uptime_seconds: 42,
            setup_complete: false,
        };
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "version": "1.2.3",
                "hostname": "cell",
                "uptime_seconds": 42,
                "setup_complete": false,
            })
        );
        assert_eq!(serde_json::from_value::<Status>(json).unwrap(), status);
    }

    #[test]
    fn status_rejects_missing_fields() {
        let partial = serde_json::json!({ "version": "1", "hostname": "cell" });
        assert!(serde_json::from_value::<Status>(partial).is_err());
    }
}
