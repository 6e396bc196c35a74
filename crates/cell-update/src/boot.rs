//! What the boot says about an update: the running version (os-release), the versions
//! whose UKIs are on the ESP with their boot counters, and whether this boot has been
//! judged yet (systemd-bless-boot).

use std::path::Path;

use cell_model::update::{UpdateOutcome, UpdateResult, UpdateState};

/// `IMAGE_VERSION=` of the running image.
pub fn running_version(os_release: &Path) -> std::io::Result<Option<String>> {
    Ok(cell_systemd::image_version_in(&std::fs::read_to_string(
        os_release,
    )?))
}

/// One UKI of ours on the ESP: `cell_<version>[+<left>[-<done>]].efi`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootEntry {
    pub version: String,
    /// None once systemd-bless-boot marked it good (the counter is gone).
    pub tries_left: Option<u32>,
}

impl BootEntry {
    pub fn parse(file_name: &str) -> Option<Self> {
        let stem = file_name.strip_prefix("cell_")?.strip_suffix(".efi")?;
        let (version, counter) = match stem.split_once('+') {
            Some((version, counter)) => (version, Some(counter)),
            None => (stem, None),
        };
        let tries_left = match counter {
            Some(counter) => Some(counter.split('-').next()?.parse().ok()?),
            None => None,
        };
        (!version.is_empty()).then(|| Self {
            version: version.to_owned(),
            tries_left,
        })
    }

    /// Out of tries: systemd-boot no longer picks it by itself.
    pub fn is_bad(&self) -> bool {
        self.tries_left == Some(0)
    }
}

pub fn boot_entries(uki_dir: &Path) -> std::io::Result<Vec<BootEntry>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(uki_dir)? {
        if let Some(parsed) = entry?.file_name().to_str().and_then(BootEntry::parse) {
            entries.push(parsed);
        }
    }
    Ok(entries)
}

/// systemd-bless-boot's verdict on this boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootVerdict {
    /// Booted an entry without a counter, or one already blessed.
    Good,
    /// A version on trial, not yet judged.
    Indeterminate,
    Bad,
}

impl BootVerdict {
    /// From `systemd-bless-boot status` (`good`, `bad`, `indeterminate`, `clean`).
    pub fn parse(status: &str) -> Self {
        match status.trim() {
            "indeterminate" => Self::Indeterminate,
            "bad" => Self::Bad,
            _ => Self::Good,
        }
    }
}

/// After a boot: did the pending update start and pass its health check, or run out of
/// tries and get rolled back? Returns true when `state` changed.
pub fn settle(
    state: &mut UpdateState,
    running: &str,
    entries: &[BootEntry],
    verdict: BootVerdict,
    now: jiff::Timestamp,
) -> bool {
    let Some(pending) = state.pending.clone() else {
        return false;
    };
    if pending == running {
        if verdict != BootVerdict::Good {
            return false; // still on trial: the health check decides
        }
        state.pending = None;
        // What was newer than the old version may be older than this one: check again.
        state.available.clear();
        state.checked_at = None;
        state.last_result = Some(UpdateResult {
            outcome: UpdateOutcome::Updated,
            version: Some(pending.clone()),
            message: format!("updated to {pending}"),
            at: now,
            download_seconds: None,
            install_seconds: None,
        });
        return true;
    }
    let rolled_back = entries
        .iter()
        .any(|entry| entry.version == pending && entry.is_bad());
    if !rolled_back {
        return false; // not booted yet (or the previous version was chosen by hand)
    }
    state.pending = None;
    state.available.retain(|v| v != &pending);
    if !state.failed.contains(&pending) {
        state.failed.push(pending.clone());
    }
    state.last_result = Some(UpdateResult {
        outcome: UpdateOutcome::RolledBack,
        version: Some(pending.clone()),
        message: format!(
            "{pending} did not pass its health check on any of its boots; {running} runs again and {pending} will not be offered again"
        ),
        at: now,
        download_seconds: None,
        install_seconds: None,
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000).unwrap()
    }

    #[test]
    fn reads_boot_entries_with_their_counters() {
        assert_eq!(
            BootEntry::parse("cell_0.1.0-53-ga.2+3-0.efi"),
            Some(BootEntry {
                version: "0.1.0-53-ga.2".into(),
                tries_left: Some(3)
            })
        );
        assert!(BootEntry::parse("cell_1.2+0-3.efi").unwrap().is_bad());
        assert_eq!(BootEntry::parse("cell_1.2.efi").unwrap().tries_left, None);
        assert_eq!(
            BootEntry::parse("cell_1.2+2.efi").unwrap().tries_left,
            Some(2)
        );
        assert_eq!(BootEntry::parse("debian.efi"), None);
        assert_eq!(BootEntry::parse("cell_1+x.efi"), None);
    }

    #[test]
    fn reads_the_image_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("os-release");
        std::fs::write(
            &path,
            "ID=debian\nIMAGE_ID=\"cell\"\nIMAGE_VERSION=\"0.1.0-5-gab\"\n",
        )
        .unwrap();
        assert_eq!(
            running_version(&path).unwrap().as_deref(),
            Some("0.1.0-5-gab")
        );
        std::fs::write(&path, "ID=debian\n").unwrap();
        assert_eq!(running_version(&path).unwrap(), None);
    }

    fn pending(version: &str) -> UpdateState {
        UpdateState {
            pending: Some(version.into()),
            available: vec![version.into()],
            ..Default::default()
        }
    }

    #[test]
    fn a_healthy_new_version_is_recorded_once_blessed() {
        let mut state = pending("2");
        assert!(!settle(
            &mut state,
            "2",
            &[],
            BootVerdict::Indeterminate,
            now()
        ));
        assert_eq!(state.pending.as_deref(), Some("2"));
        assert!(settle(&mut state, "2", &[], BootVerdict::Good, now()));
        assert_eq!(state.pending, None);
        assert!(state.available.is_empty());
        let result = state.last_result.unwrap();
        assert_eq!(result.outcome, UpdateOutcome::Updated);
        assert_eq!(result.version.as_deref(), Some("2"));
    }

    #[test]
    fn a_version_out_of_tries_is_failed_for_good() {
        let mut state = pending("3");
        let trying = [BootEntry {
            version: "3".into(),
            tries_left: Some(1),
        }];
        assert!(!settle(&mut state, "2", &trying, BootVerdict::Good, now()));
        let exhausted = [
            BootEntry {
                version: "2".into(),
                tries_left: None,
            },
            BootEntry {
                version: "3".into(),
                tries_left: Some(0),
            },
        ];
        assert!(settle(
            &mut state,
            "2",
            &exhausted,
            BootVerdict::Good,
            now()
        ));
        assert_eq!(state.failed, ["3"]);
        assert_eq!(state.pending, None);
        assert!(state.available.is_empty());
        let result = state.last_result.clone().unwrap();
        assert_eq!(result.outcome, UpdateOutcome::RolledBack);
        assert!(
            result.message.contains("2 runs again"),
            "{}",
            result.message
        );
        // A second boot changes nothing.
        assert!(!settle(
            &mut state,
            "2",
            &exhausted,
            BootVerdict::Good,
            now()
        ));
    }

    #[test]
    fn bless_boot_verdicts() {
        assert_eq!(
            BootVerdict::parse("indeterminate\n"),
            BootVerdict::Indeterminate
        );
        assert_eq!(BootVerdict::parse("clean"), BootVerdict::Good);
        assert_eq!(BootVerdict::parse("good"), BootVerdict::Good);
        assert_eq!(BootVerdict::parse("bad"), BootVerdict::Bad);
    }
}
