//! Progress of one systemd-sysupdate run, read from its log: it announces each transfer
//! ("Acquiring SOURCE → TARGET..."), and its helpers report percentages
//! ("Got 45% of URL." while downloading, "Imported 45%." while writing).

/// Follows one run of `transfers` transfers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    transfers: usize,
    started: usize,
    current_percent: u8,
    /// The file being transferred now.
    pub detail: String,
    /// The last lines that were not progress, for the error message if the run fails.
    recent: Vec<String>,
}

const RECENT_KEPT: usize = 4;

impl Progress {
    pub fn new(transfers: usize) -> Self {
        Self {
            transfers: transfers.max(1),
            started: 0,
            current_percent: 0,
            detail: String::new(),
            recent: Vec::new(),
        }
    }

    /// Takes one log line; true when the overall percentage or detail changed.
    pub fn feed(&mut self, line: &str) -> bool {
        let line = line.trim();
        if let Some(rest) = line
            .split_once("Acquiring ")
            .map(|(_, rest)| rest)
            .filter(|_| !line.contains("manifest"))
        {
            let source = rest.split(" → ").next().unwrap_or(rest);
            self.detail = source.rsplit('/').next().unwrap_or(source).to_owned();
            self.started = (self.started + 1).min(self.transfers);
            self.current_percent = 0;
            return true;
        }
        if let Some(percent) = percent_in(line) {
            let changed = percent != self.current_percent;
            self.current_percent = percent;
            return changed;
        }
        if !line.is_empty() {
            if self.recent.len() == RECENT_KEPT {
                self.recent.remove(0);
            }
            self.recent.push(line.to_owned());
        }
        false
    }

    /// Of the whole run, 0–100.
    pub fn percent(&self) -> u8 {
        if self.started == 0 {
            return 0;
        }
        let done = (self.started - 1) as u64 * 100 + u64::from(self.current_percent);
        (done / self.transfers as u64).min(100) as u8
    }

    /// What went wrong, in sysupdate's words: its last lines that were not progress.
    pub fn failure(&self) -> String {
        self.recent
            .iter()
            .filter(|l| !matches!(l.as_str(), "Exiting." | "Operation completed successfully."))
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// "Got 45% of http://…" or "Imported 45%." → 45.
fn percent_in(line: &str) -> Option<u8> {
    let rest = line
        .strip_prefix("Got ")
        .or_else(|| line.strip_prefix("Imported "))?;
    let number = rest.split('%').next()?;
    number.parse::<u8>().ok().filter(|p| *p <= 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOWNLOAD: &str = "\
Discovering installed instances…
⤵️ Acquiring manifest file http://127.0.0.1:18999/SHA256SUMS…
Signature verification succeeded.
Selected update '0.1.0-53-ga.2' for install.
⤵️ Acquiring http://h/cell_0.1.0-53-ga.2_1111.usr.raw.xz → /var/lib/cell/update/cache/cell_0.1.0-53-ga.2_1111.usr.raw...
Downloading 136.5M for http://h/cell_0.1.0-53-ga.2_1111.usr.raw.xz.
Got 40% of http://h/cell_0.1.0-53-ga.2_1111.usr.raw.xz. 3s left at 20.1M/s.
Got 100% of http://h/cell_0.1.0-53-ga.2_1111.usr.raw.xz.
Successfully acquired 'http://h/cell_0.1.0-53-ga.2_1111.usr.raw.xz'.
⤵️ Acquiring http://h/cell_0.1.0-53-ga.2_2222.usr-verity.raw.xz → /var/lib/cell/update/cache/x...
Got 50% of http://h/cell_0.1.0-53-ga.2_2222.usr-verity.raw.xz.";

    #[test]
    fn follows_transfers_and_their_percentages() {
        let mut progress = Progress::new(4);
        let mut seen = Vec::new();
        for line in DOWNLOAD.lines() {
            if progress.feed(line) {
                seen.push(progress.percent());
            }
        }
        // usr 0 → 40 → 100 (a quarter of the run), then the verity file half done.
        assert_eq!(seen, [0, 10, 25, 25, 37]);
        assert_eq!(progress.detail, "cell_0.1.0-53-ga.2_2222.usr-verity.raw.xz");
    }

    #[test]
    fn installs_report_imported_percentages() {
        let mut progress = Progress::new(4);
        progress.feed("⤵️ Acquiring /var/lib/cell/update/cache/a.usr.raw → /proc/self/fd/3p5...");
        progress.feed("Imported 78%.");
        assert_eq!(progress.percent(), 19);
        assert_eq!(progress.detail, "a.usr.raw");
    }

    #[test]
    fn a_failure_is_told_in_sysupdates_last_words() {
        let mut progress = Progress::new(4);
        for line in [
            "Got 3% of http://h/x.",
            "Failed to retrieve image file.",
            "Operation completed successfully.",
            "(sd-pull-raw) failed with exit status 1: Input/output error",
        ] {
            progress.feed(line);
        }
        assert_eq!(
            progress.failure(),
            "Failed to retrieve image file. (sd-pull-raw) failed with exit status 1: Input/output error"
        );
    }
}
