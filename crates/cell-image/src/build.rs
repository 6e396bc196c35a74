//! `cell-image build`: one mkosi build into an emptied output directory.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use cell_image::ImageVersion;

use crate::util::run_inherited;

/// mkosi.conf's CacheDirectory=, relative to the directory mkosi runs in.
pub const CACHE_DIR: &str = "build/mkosi.cache";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The flashable UEFI disk image
    Disk,
    /// A directory tree of the same content, for systemd-nspawn
    Directory,
}

impl Format {
    fn as_str(self) -> &'static str {
        match self {
            Format::Disk => "disk",
            Format::Directory => "directory",
        }
    }
}

pub fn run(
    version: &ImageVersion,
    format: Format,
    output_dir: &Path,
    extra_trees: &[String],
) -> Result<()> {
    for tree in extra_trees {
        let src = tree.split_once(':').map_or(tree.as_str(), |(src, _)| src);
        if src.is_empty() {
            bail!("--extra-tree {tree:?} names no source directory");
        }
        if !Path::new(src).exists() {
            bail!("--extra-tree {tree:?}: {src} does not exist");
        }
    }
    let machines = machines_dir(output_dir)?;
    empty_dir(output_dir)?;
    fs::create_dir_all(CACHE_DIR).with_context(|| format!("cannot create {CACHE_DIR}"))?;

    let mut mkosi = Command::new("mkosi");
    mkosi
        .arg(format!("--image-version={version}"))
        .arg(format!("--format={}", format.as_str()))
        .arg(format!("--output-dir={}", output_dir.display()))
        .arg(format!(
            "--environment={MACHINES_ENV}={}",
            machines.display()
        ));
    for tree in extra_trees {
        mkosi.arg(format!("--extra-tree={tree}"));
    }
    mkosi.arg("build");
    eprintln!(
        "cell-image: building {} image {version} into {}",
        format.as_str(),
        output_dir.display()
    );
    run_inherited(&mut mkosi)
}

/// The variable that tells image/finalize.sh where the machine sub-images were built.
const MACHINES_ENV: &str = "CELL_MACHINES_DIR";

/// The sub-images' output directory as image/finalize.sh sees it: relative to the
/// repository, which mkosi mounts as the scripts' working directory (and nothing else of
/// the build host's file system).
fn machines_dir(output_dir: &Path) -> Result<std::path::PathBuf> {
    let cwd = std::env::current_dir().context("cannot find the working directory")?;
    let absolute = cwd.join(output_dir);
    let relative = absolute.strip_prefix(&cwd).map_err(|_| {
        anyhow::anyhow!(
            "the output directory {} is outside {}: mkosi's scripts could not reach the \
             machine images built there",
            output_dir.display(),
            cwd.display()
        )
    })?;
    if relative
        .components()
        .any(|c| c == std::path::Component::ParentDir)
    {
        bail!(
            "the output directory {} leaves the repository: mkosi's scripts could not reach \
             the machine images built there",
            output_dir.display()
        );
    }
    Ok(relative.to_owned())
}

/// Removes `dir` with everything in it and makes it again, refusing directories whose loss
/// would hurt far more than a rebuild: `/`, the working directory or one of its parents.
fn empty_dir(dir: &Path) -> Result<()> {
    if dir.as_os_str().is_empty() {
        bail!("the output directory is empty");
    }
    match fs::canonicalize(dir) {
        Ok(real) => {
            let cwd = std::env::current_dir().context("cannot find the working directory")?;
            if real == Path::new("/") || cwd.starts_with(&real) {
                bail!(
                    "refusing to empty {} ({}): it holds the working directory",
                    dir.display(),
                    real.display()
                );
            }
            if !real.is_dir() {
                bail!("{} exists and is not a directory", dir.display());
            }
            fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", dir.display())),
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}
