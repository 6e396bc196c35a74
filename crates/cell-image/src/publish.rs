//! `cell-image publish`: turn a built disk image into an update systemd-sysupdate can fetch:
//! its three `/usr` partitions compressed, its UKI, and a signed `SHA256SUMS` over everything
//! in the directory (so that several versions can be served from one place).

use std::fs::{self, File};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use cell_image::blockdev::human_size;
use cell_image::names::{
    belongs_to_version, format_sha256sums, uki_file_name, SHA256SUMS, SHA256SUMS_GPG,
};
use cell_image::{ImageVersion, PartitionTable, UsrPart, UsrSet};
use sha2::{Digest, Sha256};

use crate::keys::{gnupg_home, stop_agent};
use crate::util::{run_captured, sync_dir, temp_path, Progress, TempFiles};

const CHUNK: usize = 1 << 20;

pub struct Args {
    pub image: PathBuf,
    pub keys: PathBuf,
    pub out: PathBuf,
    pub uki: Option<PathBuf>,
    pub replace: bool,
}

pub fn run(args: &Args) -> Result<()> {
    let home = gnupg_home(&args.keys)?;
    let image_meta = fs::metadata(&args.image)
        .with_context(|| format!("cannot read {}", args.image.display()))?;
    if !image_meta.is_file() {
        bail!(
            "{} is not a regular file (publish reads a built disk image)",
            args.image.display()
        );
    }
    let set = read_usr_set(&args.image)?;
    let version = &set.version;
    if set.end() > image_meta.len() {
        bail!(
            "{} is {} bytes long, but its partitions end at byte {}: the image is truncated",
            args.image.display(),
            image_meta.len(),
            set.end()
        );
    }
    let uki = match &args.uki {
        Some(uki) => uki.clone(),
        None => default_uki(&args.image)?,
    };
    if !fs::metadata(&uki)
        .with_context(|| format!("cannot read the UKI {}", uki.display()))?
        .is_file()
    {
        bail!("the UKI {} is not a regular file", uki.display());
    }

    fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let previous = version_files(&args.out, version)?;
    if !previous.is_empty() && !args.replace {
        bail!(
            "{} already holds version {version} ({}); pass --replace to publish it again",
            args.out.display(),
            previous.join(", ")
        );
    }

    eprintln!(
        "cell-image: publishing version {version} from {} to {}",
        args.image.display(),
        args.out.display()
    );
    let mut temps = TempFiles::default();
    let mut staged: Vec<(String, PathBuf)> = Vec::new();
    let mut image =
        File::open(&args.image).with_context(|| format!("cannot open {}", args.image.display()))?;
    for part in &set.parts {
        let name = part.kind.file_name(version, &part.uuid);
        let tmp = temp_path(&args.out, &name);
        temps.add(&tmp);
        eprintln!(
            "cell-image: compressing the {} partition {:?} ({}) into {name}",
            part.kind,
            part.name,
            human_size(part.length)
        );
        compress(&mut image, &args.image, part, &tmp)?;
        staged.push((name, tmp));
    }
    let uki_name = uki_file_name(version);
    let uki_tmp = temp_path(&args.out, &uki_name);
    temps.add(&uki_tmp);
    eprintln!(
        "cell-image: copying the UKI {} into {uki_name}",
        uki.display()
    );
    fs::copy(&uki, &uki_tmp)
        .and_then(|_| File::open(&uki_tmp)?.sync_all())
        .with_context(|| format!("cannot copy {} to {}", uki.display(), uki_tmp.display()))?;
    staged.push((uki_name, uki_tmp));

    // Only now, with every new file complete, does the directory change.
    for old in previous
        .iter()
        .filter(|old| !staged.iter().any(|(name, _)| name == *old))
    {
        let path = args.out.join(old);
        fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
        eprintln!("cell-image: removed {old} (replaced)");
    }
    for (name, tmp) in &staged {
        let target = args.out.join(name);
        fs::rename(tmp, &target)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), target.display()))?;
        temps.keep(tmp);
    }
    sync_dir(&args.out)?;

    let listed = write_sums(&args.out)?;
    let sign_result = sign(&args.out, &home, &mut temps);
    stop_agent(&home);
    sign_result?;

    let mut total = 0;
    let width = staged.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    println!("Published version {version} in {}:", args.out.display());
    for (i, (name, _)) in staged.iter().enumerate() {
        let path = args.out.join(name);
        let size = fs::metadata(&path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .len();
        total += size;
        let from = match set.parts.get(i) {
            Some(part) => format!(
                "  ({}, {} uncompressed)",
                part.kind,
                human_size(part.length)
            ),
            None => "  (UKI)".to_owned(),
        };
        println!("  {name:<width$}  {:>10}{from}", human_size(size));
    }
    #[allow(clippy::cast_precision_loss)] // a percentage for people
    let percent = total as f64 * 100.0 / image_meta.len().max(1) as f64;
    println!(
        "  {} for this version; the full image is {} ({percent:.1}%)",
        human_size(total),
        human_size(image_meta.len())
    );
    println!("  {SHA256SUMS} lists {listed} files and is signed in {SHA256SUMS_GPG}");
    Ok(())
}

fn read_usr_set(image: &Path) -> Result<UsrSet> {
    let out = run_captured(Command::new("sfdisk").arg("--json").arg(image))?;
    let json =
        String::from_utf8(out.stdout).context("sfdisk printed something other than UTF-8")?;
    let table = PartitionTable::from_sfdisk_json(&json)
        .with_context(|| format!("cannot read the partition table of {}", image.display()))?;
    UsrSet::from_table(&table)
        .with_context(|| format!("{} is not a publishable image", image.display()))
}

/// mkosi writes the UKI beside the disk: `cell_V.raw` → `cell_V.efi`.
fn default_uki(image: &Path) -> Result<PathBuf> {
    if image.extension().is_some_and(|e| e == "raw") {
        Ok(image.with_extension("efi"))
    } else {
        bail!(
            "{} does not end in .raw, so the UKI beside it is unknown: pass --uki",
            image.display()
        )
    }
}

/// The published files of `version` already in `dir`, sorted.
fn version_files(dir: &Path, version: &ImageVersion) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        if let Some(name) = entry.file_name().to_str() {
            if belongs_to_version(name, version) {
                names.push(name.to_owned());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// Streams the partition's bytes through `xz -T0 -6 -c` into `tmp`.
fn compress(image: &mut File, image_path: &Path, part: &UsrPart, tmp: &Path) -> Result<()> {
    let out = File::create(tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut xz = Command::new("xz")
        .args(["-T0", "-6", "-c"])
        .stdin(Stdio::piped())
        .stdout(out)
        .spawn()
        .context("cannot run xz (is xz-utils installed?)")?;
    let mut progress = Progress::new(format!("{} partition", part.kind), part.length);
    let fed = match xz.stdin.take() {
        Some(mut stdin) => feed(image, image_path, part, &mut stdin, &mut progress),
        None => Err(anyhow::anyhow!("xz has no standard input")),
    };
    // stdin is closed here, so xz sees the end of its input.
    let status = xz.wait().context("cannot wait for xz")?;
    if !status.success() {
        bail!(
            "xz -T0 -6 -c failed ({status}) compressing the {} partition",
            part.kind
        );
    }
    fed?;
    progress.finish();
    File::open(tmp)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync {}", tmp.display()))
}

fn feed(
    image: &mut File,
    image_path: &Path,
    part: &UsrPart,
    to: &mut impl Write,
    progress: &mut Progress,
) -> Result<()> {
    image
        .seek(SeekFrom::Start(part.offset))
        .with_context(|| format!("cannot seek in {}", image_path.display()))?;
    let mut reader = Read::take(&mut *image, part.length);
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", image_path.display()))
            }
        };
        to.write_all(&buf[..n]).context("cannot write to xz")?;
        done += n as u64;
        progress.update(done);
    }
    if done != part.length {
        bail!(
            "{} ends inside the {} partition",
            image_path.display(),
            part.kind
        );
    }
    Ok(())
}

/// Regenerates `SHA256SUMS` over every regular file in `dir` but the manifest, its signature
/// and hidden (temporary) files. Returns how many files it lists.
fn write_sums(dir: &Path) -> Result<usize> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let os_name = entry.file_name();
        let Some(name) = os_name.to_str() else {
            bail!(
                "{} holds a file whose name is not UTF-8: {:?}",
                dir.display(),
                os_name
            );
        };
        if name == SHA256SUMS || name == SHA256SUMS_GPG || name.starts_with('.') {
            continue;
        }
        let file_type = entry
            .file_type()
            .with_context(|| format!("cannot inspect {}", entry.path().display()))?;
        if !file_type.is_file() {
            continue;
        }
        entries.push((name.to_owned(), sha256_file(&entry.path())?));
    }
    let text = format_sha256sums(&entries)
        .with_context(|| format!("cannot write {}", dir.join(SHA256SUMS).display()))?;
    crate::util::write_atomic(dir, SHA256SUMS, text.as_bytes(), 0o644)?;
    Ok(entries.len())
}

pub fn sha256_file(path: &Path) -> Result<[u8; 32]> {
    let mut f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }
    Ok(hasher.finalize().into())
}

/// `SHA256SUMS.gpg`, a detached binary signature, replaced atomically.
fn sign(dir: &Path, home: &Path, temps: &mut TempFiles) -> Result<()> {
    let tmp = temp_path(dir, SHA256SUMS_GPG);
    temps.add(&tmp);
    run_captured(
        Command::new("gpg")
            .arg("--homedir")
            .arg(home)
            .args(["--batch", "--yes", "--detach-sign", "--output"])
            .arg(&tmp)
            .arg(dir.join(SHA256SUMS)),
    )?;
    File::open(&tmp)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync {}", tmp.display()))?;
    let target = dir.join(SHA256SUMS_GPG);
    fs::rename(&tmp, &target)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), target.display()))?;
    temps.keep(&tmp);
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uki_lies_beside_the_disk() {
        assert_eq!(
            default_uki(Path::new("build/image/disk/cell_1.2.raw")).expect("raw"),
            Path::new("build/image/disk/cell_1.2.efi")
        );
        assert!(default_uki(Path::new("disk.img")).is_err());
    }
}
