//! One update job, as celld asked for it in the request file: check the server, or
//! download, verify and install a version. Progress and outcome go to the state file,
//! which celld reads.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cell_model::update::{
    UpdateJob, UpdateOutcome, UpdatePhase, UpdateRequest, UpdateResult, UpdateState, UpdateUrl,
    REQUEST_FILE, STATE_FILE, UPDATE_DIR,
};

use crate::boot;
use crate::definitions::{self, Layout, Set};
use crate::progress::Progress;

/// Where the job reads and writes; the defaults are the device's.
#[derive(Debug, Clone)]
pub struct Paths {
    pub update_dir: PathBuf,
    pub definitions: PathBuf,
    pub sysupdate: PathBuf,
    pub os_release: PathBuf,
    pub layout: Layout,
}

impl Paths {
    pub fn device(state_dir: &Path) -> Self {
        Self {
            update_dir: state_dir.join(UPDATE_DIR),
            definitions: PathBuf::from("/run/cell-update"),
            sysupdate: PathBuf::from("/usr/lib/systemd/systemd-sysupdate"),
            os_release: PathBuf::from("/usr/lib/os-release"),
            layout: Layout::device(),
        }
    }

    pub fn state_file(&self) -> PathBuf {
        self.update_dir.join(STATE_FILE)
    }
}

/// The state file, or an empty state when there is none yet. A damaged file is set aside
/// (it only holds what can be found again) rather than stopping updates for good.
pub fn load_state(path: &Path) -> anyhow::Result<UpdateState> {
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(state) => Ok(state),
            Err(error) => {
                tracing::warn!(%error, path = %path.display(), "update state unreadable; starting afresh");
                let aside = path.with_extension("json.damaged");
                std::fs::rename(path, &aside)
                    .with_context(|| format!("moving {} aside", path.display()))?;
                Ok(UpdateState::default())
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(UpdateState::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

pub fn save_state(path: &Path, state: &UpdateState) -> anyhow::Result<()> {
    let dir = path.parent().context("the state file has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let bytes = serde_json::to_vec_pretty(state).context("encoding the update state")?;
    cell_store::atomic::write(path, &bytes, 0o600)
        .with_context(|| format!("writing {}", path.display()))
}

/// Serialises the writers of the state file (a job, and the bookkeeping after boot).
fn lock(update_dir: &Path) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    std::fs::create_dir_all(update_dir)
        .with_context(|| format!("creating {}", update_dir.display()))?;
    let path = update_dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| anyhow::anyhow!("locking {}: {errno}", path.display()))
}

/// The request celld wrote, removed once read so that starting the unit by hand does not
/// repeat it.
fn take_request(paths: &Paths) -> anyhow::Result<UpdateRequest> {
    let request_path = paths.update_dir.join(REQUEST_FILE);
    let bytes = std::fs::read(&request_path).with_context(|| {
        format!(
            "reading {} (celld writes it before starting this job)",
            request_path.display()
        )
    })?;
    std::fs::remove_file(&request_path)
        .with_context(|| format!("removing {}", request_path.display()))?;
    serde_json::from_slice(&bytes).context("decoding the update request")
}

/// Runs the job celld asked for. Whatever happens, the outcome ends up in the state file,
/// where the UI looks for it.
pub fn run_request(paths: &Paths) -> anyhow::Result<()> {
    let _lock = lock(&paths.update_dir)?;
    let mut job = Job::new(paths)?;
    let request = take_request(paths);
    let result = match &request {
        Ok(UpdateRequest::Check { url }) => job.check(url),
        Ok(UpdateRequest::Install { url, version }) => job.install(url, version),
        Err(error) => Err(anyhow::anyhow!("{error:#}")),
    };
    job.state.job = None;
    job.state.last_result = Some(match result {
        Ok(result) => result,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "update job failed");
            UpdateResult {
                outcome: UpdateOutcome::Failed,
                version: match &request {
                    Ok(UpdateRequest::Install { version, .. }) => Some(version.clone()),
                    _ => None,
                },
                message: format!("{error:#}"),
                at: jiff::Timestamp::now(),
                download_seconds: None,
                install_seconds: None,
            }
        }
    });
    job.save()
}

struct Job<'a> {
    paths: &'a Paths,
    state: UpdateState,
    last_saved: Option<Instant>,
}

impl<'a> Job<'a> {
    fn new(paths: &'a Paths) -> anyhow::Result<Self> {
        Ok(Self {
            paths,
            state: load_state(&paths.state_file())?,
            last_saved: None,
        })
    }

    fn save(&mut self) -> anyhow::Result<()> {
        self.last_saved = Some(Instant::now());
        save_state(&self.paths.state_file(), &self.state)
    }

    fn begin(&mut self, phase: UpdatePhase, version: Option<&str>) -> anyhow::Result<()> {
        self.state.job = Some(UpdateJob {
            phase,
            version: version.map(str::to_owned),
            percent: 0,
            detail: String::new(),
            started_at: jiff::Timestamp::now(),
        });
        self.save()
    }

    fn definitions(&self, set: Set, url: &UpdateUrl) -> anyhow::Result<PathBuf> {
        let dir = self.paths.definitions.join(set.dir_name());
        definitions::write(&dir, &definitions::render(set, url, &self.paths.layout))
            .with_context(|| format!("writing the transfer definitions in {}", dir.display()))?;
        Ok(dir)
    }

    fn check(&mut self, url: &UpdateUrl) -> anyhow::Result<UpdateResult> {
        self.begin(UpdatePhase::Checking, None)?;
        let definitions = self.definitions(Set::Check, url)?;
        let listing: Listing =
            serde_json::from_slice(&self.sysupdate_output(&definitions, &["list"])?)
                .context("reading systemd-sysupdate's list")?;
        let running = boot::running_version(&self.paths.os_release)
            .with_context(|| format!("reading {}", self.paths.os_release.display()))?
            .context("this image carries no IMAGE_VERSION")?;
        // sysupdate lists newest first: what comes before the running version is newer.
        // Without the running version in the list there is no telling what is newer.
        anyhow::ensure!(
            listing.all.contains(&running),
            "systemd-sysupdate does not list the running version {running} among the installed ones; cannot tell which versions are newer"
        );
        let newer = listing.all.iter().take_while(|v| **v != running);
        let mut available = Vec::new();
        for version in newer {
            if self.state.failed.contains(version) || self.state.pending.as_ref() == Some(version) {
                continue;
            }
            let details: VersionDetails =
                serde_json::from_slice(&self.sysupdate_output(&definitions, &["list", version])?)
                    .with_context(|| format!("reading systemd-sysupdate's details of {version}"))?;
            if details.available {
                available.push(version.clone());
            }
        }
        let message = match available.first() {
            Some(newest) => format!("{newest} is available (running {running})"),
            None => format!("{running} is up to date"),
        };
        self.state.available = available;
        self.state.checked_at = Some(jiff::Timestamp::now());
        Ok(UpdateResult {
            outcome: UpdateOutcome::Checked,
            version: self.state.available.first().cloned(),
            message,
            at: jiff::Timestamp::now(),
            download_seconds: None,
            install_seconds: None,
        })
    }

    fn install(&mut self, url: &UpdateUrl, version: &str) -> anyhow::Result<UpdateResult> {
        cell_model::update::validate_version(version).map_err(|e| anyhow::anyhow!("{e}"))?;
        if self.state.failed.iter().any(|v| v == version) {
            bail!("{version} was rolled back after failing its health check; it is not installed again");
        }
        let cache = self.paths.layout.cache.clone();
        empty_dir(&cache)?;
        let outcome = self.download_and_install(url, version);
        if let Err(error) = empty_dir(&cache) {
            tracing::warn!(
                error = format!("{error:#}"),
                "could not empty the download cache"
            );
        }
        let (download, install) = outcome?;
        self.state.pending = Some(version.to_owned());
        Ok(UpdateResult {
            outcome: UpdateOutcome::Installed,
            version: Some(version.to_owned()),
            message: format!(
                "{version} is installed in the other slot and starts at the next reboot"
            ),
            at: jiff::Timestamp::now(),
            download_seconds: Some(download.as_secs_f64()),
            install_seconds: Some(install.as_secs_f64()),
        })
    }

    fn download_and_install(
        &mut self,
        url: &UpdateUrl,
        version: &str,
    ) -> anyhow::Result<(Duration, Duration)> {
        self.begin(UpdatePhase::Downloading, Some(version))?;
        let definitions = self.definitions(Set::Download, url)?;
        let started = Instant::now();
        self.sysupdate_update(&definitions, version)
            .with_context(|| {
                format!("downloading and verifying {version} failed; nothing was installed")
            })?;
        let download = started.elapsed();

        self.begin(UpdatePhase::Installing, Some(version))?;
        let definitions = self.definitions(Set::Install, url)?;
        let started = Instant::now();
        self.sysupdate_update(&definitions, version)
            .with_context(|| format!("installing {version} into the inactive slot failed"))?;
        Ok((download, started.elapsed()))
    }

    fn sysupdate(&self, definitions: &Path) -> Command {
        let mut command = Command::new(&self.paths.sysupdate);
        command
            .arg(format!("--definitions={}", definitions.display()))
            .args(["--no-pager", "--json=short"])
            // Its log comes to us (and from us to the journal), not straight to the journal.
            .env("SYSTEMD_LOG_TARGET", "console")
            .env("SYSTEMD_LOG_COLOR", "0")
            .stdin(Stdio::null());
        command
    }

    fn sysupdate_output(&self, definitions: &Path, args: &[&str]) -> anyhow::Result<Vec<u8>> {
        let output = self
            .sysupdate(definitions)
            .args(args)
            .output()
            .with_context(|| format!("running {}", self.paths.sysupdate.display()))?;
        let log = String::from_utf8_lossy(&output.stderr);
        for line in log.lines() {
            tracing::debug!(line, "sysupdate");
        }
        if !output.status.success() {
            let mut progress = Progress::new(1);
            log.lines().for_each(|l| {
                progress.feed(l);
            });
            bail!(
                "systemd-sysupdate {} failed ({}): {}",
                args.join(" "),
                output.status,
                progress.failure()
            );
        }
        Ok(output.stdout)
    }

    /// `systemd-sysupdate update VERSION`, its progress copied into the state as it goes.
    fn sysupdate_update(&mut self, definitions: &Path, version: &str) -> anyhow::Result<()> {
        let mut child = self
            .sysupdate(definitions)
            .args(["update", version])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {}", self.paths.sysupdate.display()))?;
        let stderr = child
            .stderr
            .take()
            .context("sysupdate's log is not readable")?;
        let mut progress = Progress::new(4);
        for line in BufReader::new(stderr).lines() {
            let line = line.context("reading sysupdate's log")?;
            tracing::info!(line, "sysupdate");
            if progress.feed(&line)
                && self
                    .last_saved
                    .is_none_or(|t| t.elapsed() >= Duration::from_millis(500))
            {
                if let Some(job) = self.state.job.as_mut() {
                    job.percent = progress.percent();
                    job.detail = progress.detail.clone();
                }
                self.save()?;
            }
        }
        let status = child.wait().context("waiting for systemd-sysupdate")?;
        if !status.success() {
            bail!("systemd-sysupdate {status}: {}", progress.failure());
        }
        if let Some(job) = self.state.job.as_mut() {
            job.percent = 100;
        }
        self.save()
    }
}

#[derive(serde::Deserialize)]
struct Listing {
    #[serde(default)]
    all: Vec<String>,
}

#[derive(serde::Deserialize)]
struct VersionDetails {
    #[serde(default)]
    available: bool,
}

/// Removes what is in `dir` (creating it if need be), not `dir` itself: systemd may have
/// mounted it (`CacheDirectory=`).
fn empty_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let entries = std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
    for entry in entries {
        let path = entry
            .with_context(|| format!("listing {}", dir.display()))?
            .path();
        let removed = if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}

/// After boot (cell-update-boot.service): settles a pending update, clears a job that a
/// reboot interrupted, and points the boot menu's recovery entry at a good version.
pub fn after_boot(paths: &Paths, esp: &Path, verdict: boot::BootVerdict) -> anyhow::Result<()> {
    let uki_dir = esp.join("EFI/Linux");
    let uki_dir = uki_dir.as_path();
    let _lock = lock(&paths.update_dir)?;
    let mut state = load_state(&paths.state_file())?;
    let mut changed = false;
    if let Some(job) = state.job.take() {
        changed = true;
        state.last_result = Some(UpdateResult {
            outcome: UpdateOutcome::Failed,
            version: job.version,
            message:
                "the update job was interrupted (the machine restarted); nothing was installed"
                    .to_owned(),
            at: jiff::Timestamp::now(),
            download_seconds: None,
            install_seconds: None,
        });
    }
    let running = boot::running_version(&paths.os_release)
        .with_context(|| format!("reading {}", paths.os_release.display()))?
        .unwrap_or_default();
    let entries = boot::boot_entries(uki_dir).unwrap_or_else(|error| {
        tracing::warn!(%error, dir = %uki_dir.display(), "cannot list the boot entries");
        Vec::new()
    });
    changed |= boot::settle(
        &mut state,
        &running,
        &entries,
        verdict,
        jiff::Timestamp::now(),
    );
    if verdict == boot::BootVerdict::Good && !running.is_empty() {
        let written = std::fs::read_to_string("/proc/cmdline")
            .context("reading /proc/cmdline")
            .and_then(|cmdline| crate::recovery_entry::write(esp, &running, cmdline.trim()));
        match written {
            Ok(Some(path)) => {
                tracing::info!(entry = %path.display(), "recovery boot entry in place")
            }
            Ok(None) => tracing::info!(
                version = running,
                "this version's UKI is not blessed; the recovery entry stays as it is"
            ),
            Err(error) => tracing::warn!(
                error = format!("{error:#}"),
                "could not write the recovery boot entry"
            ),
        }
    }
    if changed {
        if let Some(result) = &state.last_result {
            tracing::info!(outcome = ?result.outcome, message = %result.message, "update outcome");
        }
        save_state(&paths.state_file(), &state)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emptying_keeps_the_directory_and_removes_everything_in_it() {
        let root = tempfile::tempdir().unwrap();
        let cache = root.path().join("cache");
        empty_dir(&cache).unwrap();
        std::fs::write(cache.join("cell_2.efi"), "uki").unwrap();
        std::fs::create_dir(cache.join(".#partial")).unwrap();
        std::fs::write(cache.join(".#partial/x"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", cache.join("link")).unwrap();
        let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&cache).unwrap());
        empty_dir(&cache).unwrap();
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 0);
        let after = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&cache).unwrap());
        assert_eq!(inode, after, "the directory itself stays");
        assert!(
            std::path::Path::new("/etc").exists(),
            "a symlink is removed, not followed"
        );
    }
}
