//! The cell's units and their journal, for the Units and logs page, the API and cellctl:
//! which units belong to the cell, what a log query may ask (checked before anything
//! runs), and journalctl's JSON read into lines. Only the cell's own units can be asked
//! for; the text filter is matched here, as plain text (no pattern reaches journalctl).

use std::collections::HashMap;

use cell_model::api::{LogLine, LogPage};
use cell_model::FieldError;
use serde::Deserialize;

/// Every unit of the cell, in the order the page lists them.
pub const CELL_UNITS: &[&str] = &[
    "celld.service",
    "cell-web.service",
    "cell-dns.service",
    crate::ntp::NTP_UNIT,
    crate::lan::DHCP_UNIT,
    "cell-update.service",
    "cell-health-check.service",
    "systemd-networkd.service",
    "systemd-resolved.service",
    // The service machines: their boot and what systemd-nspawn says of them (their
    // daemons log into the machine's own journal).
    crate::reconcile::mail::MAIL_UNIT,
    "cell-machine-reload@mail:postfix.service",
    "cell-machine-reload@mail:dovecot.service",
    "cell-machine-reload@mail:opendkim.service",
    crate::system::MAIL_FLUSH_UNIT,
    crate::dav::DAV_UNIT,
    "cell-machine-reload@dav:radicale.service",
    "cell-machine-reload@dav:lighttpd.service",
];

pub const DEFAULT_LINES: usize = 200;
pub const MAX_LINES: usize = 1000;
/// How far back a text search looks (matches are the newest `limit` among these).
pub const SEARCH_WINDOW: usize = 10_000;
const MAX_TEXT: usize = 200;
const MAX_CURSOR: usize = 512;

/// `GET /v1/logs?unit=&priority=&text=&after=&limit=` as asked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// One of [`CELL_UNITS`]; none: all of them.
    pub unit: Option<String>,
    /// The least important priority shown (0–7; 4: warnings and worse).
    pub priority: Option<u8>,
    /// Lines containing this text, whatever its case.
    pub text: Option<String>,
    /// Only lines after this cursor (following).
    pub after: Option<String>,
    pub limit: Option<usize>,
}

impl LogQuery {
    pub fn validate(&self) -> Result<(), FieldError> {
        if let Some(unit) = &self.unit {
            if !CELL_UNITS.contains(&unit.as_str()) {
                return Err(FieldError::new(
                    "unit",
                    format!(
                        "'{unit}' is not one of the cell's units ({})",
                        CELL_UNITS.join(", ")
                    ),
                ));
            }
        }
        if self.priority.is_some_and(|p| p > 7) {
            return Err(FieldError::new(
                "priority",
                "a priority is 0 (emergency) to 7 (debug)",
            ));
        }
        if let Some(text) = &self.text {
            if text.chars().count() > MAX_TEXT || text.chars().any(char::is_control) {
                return Err(FieldError::new(
                    "text",
                    format!("at most {MAX_TEXT} characters, no control characters"),
                ));
            }
        }
        if let Some(after) = &self.after {
            // `s=…;i=…;b=…;m=…;t=…;x=…`: hexadecimal values, the ids (s, b) 128 bits.
            let cursor_like = after.len() <= MAX_CURSOR
                && after.split(';').all(|part| {
                    part.split_once('=').is_some_and(|(key, value)| {
                        let hex = !value.is_empty() && value.chars().all(|c| c.is_ascii_hexdigit());
                        match key {
                            "s" | "b" => hex && value.len() == 32,
                            "i" | "m" | "t" | "x" => hex,
                            _ => false,
                        }
                    })
                });
            if !cursor_like {
                return Err(FieldError::new("after", "not a journal cursor"));
            }
        }
        if self.limit.is_some_and(|l| l == 0 || l > MAX_LINES) {
            return Err(FieldError::new("limit", format!("1 to {MAX_LINES} lines")));
        }
        Ok(())
    }

    fn limit(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_LINES)
    }

    fn text(&self) -> Option<String> {
        self.text
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_lowercase)
    }

    /// journalctl's arguments for this (validated) query.
    pub fn journalctl_args(&self) -> Vec<String> {
        let mut args = vec![
            "--output=json".to_owned(),
            "--no-pager".to_owned(),
            "--quiet".to_owned(),
        ];
        match &self.unit {
            Some(unit) => args.push(format!("--unit={unit}")),
            None => args.extend(CELL_UNITS.iter().map(|unit| format!("--unit={unit}"))),
        }
        if let Some(priority) = self.priority {
            args.push(format!("--priority={priority}"));
        }
        // A text search looks further back; the newest matches are kept.
        let lines = if self.text().is_some() {
            SEARCH_WINDOW
        } else {
            self.limit()
        };
        // From the cursor forward, at most this many.
        if let Some(after) = &self.after {
            args.push(format!("--after-cursor={after}"));
        }
        args.push(format!("--lines={lines}"));
        args
    }

    /// Reads journalctl's JSON output into the page this query asks for.
    pub fn page(&self, json_lines: &str) -> LogPage {
        let text = self.text();
        let mut lines: Vec<LogLine> = json_lines
            .lines()
            .filter_map(parse_line)
            .filter(|line| {
                text.as_ref()
                    .is_none_or(|t| line.message.to_lowercase().contains(t.as_str()))
            })
            .collect();
        let cursor = json_lines
            .lines()
            .rev()
            .find_map(parse_line)
            .map(|line| line.cursor)
            .or_else(|| self.after.clone());
        let keep = self.limit();
        if lines.len() > keep {
            lines.drain(..lines.len() - keep);
        }
        LogPage { lines, cursor }
    }
}

/// A journal field: journalctl prints text as a string, binary as an array of bytes.
#[derive(Deserialize)]
#[serde(untagged)]
enum Field {
    Text(String),
    Bytes(Vec<u8>),
}

impl Field {
    fn text(self) -> String {
        match self {
            Self::Text(text) => text,
            Self::Bytes(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        }
    }
}

fn parse_line(line: &str) -> Option<LogLine> {
    let mut fields: HashMap<String, serde_json::Value> = serde_json::from_str(line).ok()?;
    let mut take = |name: &str| {
        fields
            .remove(name)
            .and_then(|value| serde_json::from_value::<Field>(value).ok())
            .map(Field::text)
    };
    let cursor = take("__CURSOR")?;
    let micros: i64 = take("__REALTIME_TIMESTAMP")?.parse().ok()?;
    let unit = take("_SYSTEMD_UNIT")
        .or_else(|| take("UNIT"))
        .or_else(|| take("SYSLOG_IDENTIFIER"))
        .unwrap_or_default();
    let priority = take("PRIORITY").and_then(|p| p.parse().ok()).unwrap_or(6);
    let mut message = take("MESSAGE").unwrap_or_default();
    // The cell's daemons log structured fields (tracing-journald names them `F_…`): they
    // are part of what a person reads, e.g. `audit action=auth.login actor=alice`.
    let mut structured: Vec<(String, String)> = fields
        .into_iter()
        .filter_map(|(name, value)| {
            let key = name.strip_prefix("F_")?.to_ascii_lowercase();
            let value = serde_json::from_value::<Field>(value).ok()?.text();
            Some((key, value))
        })
        .collect();
    structured.sort();
    for (key, value) in structured {
        message.push_str(&format!(" {key}={value}"));
    }
    Some(LogLine {
        cursor,
        at: jiff::Timestamp::from_microsecond(micros).ok()?,
        unit,
        priority,
        message,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const JOURNAL: &str = r#"{"__CURSOR":"s=0123456789abcdef0123456789abcdef;i=1","__REALTIME_TIMESTAMP":"1764771000000000","_SYSTEMD_UNIT":"celld.service","PRIORITY":"6","MESSAGE":"audit","F_SEQ":"2","F_ACTION":"auth.login","CODE_LINE":"7"}
{"__CURSOR":"s=0123456789abcdef0123456789abcdef;i=2","__REALTIME_TIMESTAMP":"1764771001000000","_SYSTEMD_UNIT":"cell-web.service","PRIORITY":"4","MESSAGE":[99,97,110,110,111,116,32,97,115,107]}
{"__CURSOR":"s=0123456789abcdef0123456789abcdef;i=3","__REALTIME_TIMESTAMP":"1764771002000000","UNIT":"celld.service","PRIORITY":"3","MESSAGE":"Cannot reach the CA: Connection REFUSED"}
not json
"#;

    #[test]
    fn only_the_cells_units_and_sane_values_are_asked_for() {
        assert_eq!(LogQuery::default().validate(), Ok(()));
        let bad = [
            LogQuery {
                unit: Some("sshd.service".into()),
                ..Default::default()
            },
            LogQuery {
                priority: Some(8),
                ..Default::default()
            },
            LogQuery {
                text: Some("a\nb".into()),
                ..Default::default()
            },
            LogQuery {
                text: Some("x".repeat(201)),
                ..Default::default()
            },
            LogQuery {
                after: Some("--output=export".into()),
                ..Default::default()
            },
            LogQuery {
                after: Some(String::new()),
                ..Default::default()
            },
            LogQuery {
                limit: Some(0),
                ..Default::default()
            },
            LogQuery {
                limit: Some(1001),
                ..Default::default()
            },
        ];
        let fields: Vec<String> = bad
            .iter()
            .map(|q| q.validate().unwrap_err().field)
            .collect();
        assert_eq!(
            fields,
            ["unit", "priority", "text", "text", "after", "after", "limit", "limit"]
        );
        let query = LogQuery {
            unit: Some("cell-web.service".into()),
            priority: Some(4),
            after: Some("s=0123456789abcdef0123456789abcdef;i=2".into()),
            ..Default::default()
        };
        assert_eq!(query.validate(), Ok(()));
        assert_eq!(
            query.journalctl_args(),
            [
                "--output=json",
                "--no-pager",
                "--quiet",
                "--unit=cell-web.service",
                "--priority=4",
                "--after-cursor=s=0123456789abcdef0123456789abcdef;i=2",
                "--lines=200"
            ]
        );
        let all = LogQuery::default().journalctl_args();
        assert_eq!(
            all.iter().filter(|a| a.starts_with("--unit=")).count(),
            CELL_UNITS.len()
        );
    }

    #[test]
    fn journal_json_becomes_lines_filtered_by_text() {
        let page = LogQuery::default().page(JOURNAL);
        assert_eq!(page.lines.len(), 3);
        assert_eq!(page.lines[0].unit, "celld.service");
        assert_eq!(
            page.lines[0].message, "audit action=auth.login seq=2",
            "with its fields"
        );
        assert_eq!(page.lines[0].at.as_second(), 1_764_771_000);
        assert_eq!(
            page.lines[1].message, "cannot ask",
            "binary fields as bytes"
        );
        assert_eq!(page.lines[1].priority, 4);
        assert_eq!(
            page.lines[2].unit, "celld.service",
            "UNIT when _SYSTEMD_UNIT is absent"
        );
        assert_eq!(
            page.cursor.as_deref(),
            Some("s=0123456789abcdef0123456789abcdef;i=3")
        );
        let text = LogQuery {
            text: Some("connection refused".into()),
            ..Default::default()
        };
        let found = text.page(JOURNAL);
        assert_eq!(found.lines.len(), 1);
        assert_eq!(found.lines[0].priority, 3);
        assert_eq!(
            found.cursor.as_deref(),
            Some("s=0123456789abcdef0123456789abcdef;i=3"),
            "follows from the last line read"
        );
        let limited = LogQuery {
            limit: Some(2),
            ..Default::default()
        };
        let page = limited.page(JOURNAL);
        assert_eq!(page.lines.len(), 2);
        assert_eq!(
            page.lines[0].cursor, "s=0123456789abcdef0123456789abcdef;i=2",
            "the newest are kept"
        );
        // Nothing new after a cursor: the cursor stays.
        let after = LogQuery {
            after: Some("s=0123456789abcdef0123456789abcdef;i=3".into()),
            ..Default::default()
        };
        assert_eq!(
            after.page("").cursor.as_deref(),
            Some("s=0123456789abcdef0123456789abcdef;i=3")
        );
    }
}
