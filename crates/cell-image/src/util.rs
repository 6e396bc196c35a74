//! Small helpers the commands share: running tools, atomic files, progress on stderr.

use std::fs::{self, File};
use std::io::{self, IsTerminal, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The command line as the user would type it, for messages.
pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| {
            let a = a.to_string_lossy();
            if a.is_empty() || a.contains(char::is_whitespace) {
                format!("'{a}'")
            } else {
                a.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` with its output captured; on failure the error names the command, its exit
/// status and what it printed.
pub fn run_captured(cmd: &mut Command) -> Result<Output> {
    let line = describe(cmd);
    let out = cmd.stdin(Stdio::null()).output().with_context(|| {
        format!(
            "cannot run {line} (is {} installed?)",
            cmd.get_program().to_string_lossy()
        )
    })?;
    if !out.status.success() {
        let mut printed = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        let stdout = String::from_utf8_lossy(&out.stdout);
        if printed.is_empty() {
            printed = stdout.trim().to_owned();
        }
        bail!(
            "{line} failed ({}){}{printed}",
            out.status,
            if printed.is_empty() { "" } else { ":\n" }
        );
    }
    Ok(out)
}

/// Runs `cmd` with the terminal's stdin, stdout and stderr.
pub fn run_inherited(cmd: &mut Command) -> Result<()> {
    let line = describe(cmd);
    let status = cmd.status().with_context(|| {
        format!(
            "cannot run {line} (is {} installed?)",
            cmd.get_program().to_string_lossy()
        )
    })?;
    if !status.success() {
        bail!("{line} failed ({status})");
    }
    Ok(())
}

/// `dir/.name.tmp`: hidden, so a half-written file is never mistaken for a published one.
pub fn temp_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.tmp"))
}

/// Makes a directory's earlier renames durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync directory {}", dir.display()))
}

/// Writes `dir/name` atomically: a temporary file, fsync, rename, fsync of the directory.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<()> {
    let tmp = temp_path(dir, name);
    let target = dir.join(name);
    let result = (|| -> Result<()> {
        let mut f =
            File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        f.set_permissions(fs::Permissions::from_mode(mode))
            .and_then(|()| f.write_all(bytes))
            .and_then(|()| f.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        fs::rename(&tmp, &target)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), target.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(dir)
}

/// Removes the files it holds when dropped, unless they were [`TempFiles::keep`]t: no
/// half-written file outlives a failed command.
#[derive(Default)]
pub struct TempFiles(Vec<PathBuf>);

impl TempFiles {
    pub fn add(&mut self, path: &Path) {
        self.0.push(path.to_owned());
    }

    pub fn keep(&mut self, path: &Path) {
        self.0.retain(|p| p != path);
    }
}

impl Drop for TempFiles {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = fs::remove_file(p);
        }
    }
}

/// A progress line on stderr: rewritten in place on a terminal, every 10% otherwise.
pub struct Progress {
    label: String,
    total: u64,
    start: Instant,
    last_print: Option<Instant>,
    last_decile: u64,
    tty: bool,
}

impl Progress {
    pub fn new(label: impl Into<String>, total: u64) -> Self {
        Self {
            label: label.into(),
            total,
            start: Instant::now(),
            last_print: None,
            last_decile: 0,
            tty: io::stderr().is_terminal(),
        }
    }

    pub fn update(&mut self, done: u64) {
        let percent = done
            .saturating_mul(100)
            .checked_div(self.total)
            .unwrap_or(100);
        if self.tty {
            if self
                .last_print
                .is_some_and(|t| t.elapsed() < Duration::from_millis(250))
            {
                return;
            }
            eprint!("\r{}\x1b[K", self.line(done, percent));
            self.last_print = Some(Instant::now());
        } else if percent / 10 > self.last_decile && done < self.total {
            self.last_decile = percent / 10;
            eprintln!("{}", self.line(done, percent));
        }
    }

    pub fn finish(&mut self) {
        let line = self.line(self.total, 100);
        if self.tty {
            eprintln!("\r{line}\x1b[K");
        } else {
            eprintln!("{line}");
        }
    }

    fn line(&self, done: u64, percent: u64) -> String {
        const MIB: f64 = 1024.0 * 1024.0;
        let secs = self.start.elapsed().as_secs_f64().max(0.001);
        let (done_mib, total_mib) = (done as f64 / MIB, self.total as f64 / MIB);
        format!(
            "  {}: {percent:>3}%  {done_mib:.1}/{total_mib:.1} MiB  {:.1} MiB/s",
            self.label,
            done_mib / secs
        )
    }
}
