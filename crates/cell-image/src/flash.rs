//! `cell-image flash`: write a disk image to a whole block device (a USB stick, an SSD) and
//! read it back to prove it arrived. Refuses, before writing a byte, a device that anything
//! uses: mounted (it or a partition), swap, held by device-mapper/LVM/RAID, or backing `/`.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use cell_image::blockdev::{human_size, parse_mountinfo, parse_swaps, DevNum, Mount};
use nix::errno::Errno;
use nix::fcntl::{posix_fadvise, OFlag, PosixFadviseAdvice};
use sha2::{Digest, Sha256};

use crate::util::Progress;

const BLOCK: usize = 4 << 20;

pub struct Args {
    pub image: PathBuf,
    pub device: PathBuf,
    pub yes: bool,
}

/// A whole disk as sysfs shows it, with its partitions.
struct Disk {
    name: String,
    sys: PathBuf,
    /// The disk itself first, then its partitions: kernel name, device number, sysfs dir.
    members: Vec<(String, DevNum, PathBuf)>,
}

pub fn run(args: &Args) -> Result<()> {
    let image_meta = fs::metadata(&args.image)
        .with_context(|| format!("cannot read {}", args.image.display()))?;
    if !image_meta.is_file() {
        bail!("{} is not a regular file", args.image.display());
    }
    let image_len = image_meta.len();
    let disk = Disk::inspect(&args.device)?;
    disk.check_unused(&args.device)?;

    let size = disk.size()?;
    if image_len > size {
        bail!(
            "{} ({}) is larger than {} ({})",
            args.image.display(),
            human_size(image_len),
            args.device.display(),
            human_size(size)
        );
    }
    if read_trimmed(&disk.sys.join("ro")).as_deref() == Some("1") {
        bail!(
            "{} is read-only (a write-protect switch?)",
            args.device.display()
        );
    }

    if !args.yes {
        confirm(args, &disk, size, image_len)?;
    }

    let mut dev = OpenOptions::new()
        .read(true)
        .write(true)
        // Exclusive: the kernel refuses while anything holds the disk or a partition, and
        // nothing can mount it while we write.
        .custom_flags(OFlag::O_EXCL.bits())
        .open(&args.device)
        .map_err(|e| {
            if e.raw_os_error() == Some(Errno::EBUSY as i32) {
                anyhow::anyhow!(
                    "{} is busy: something holds it or one of its partitions",
                    args.device.display()
                )
            } else {
                anyhow::Error::new(e)
                    .context(format!("cannot open {} for writing", args.device.display()))
            }
        })?;
    let mut image =
        File::open(&args.image).with_context(|| format!("cannot open {}", args.image.display()))?;

    eprintln!(
        "cell-image: writing {} to {}",
        args.image.display(),
        args.device.display()
    );
    let written = copy_hashing(&mut image, &args.image, &mut dev, &args.device, image_len)?;
    dev.sync_all()
        .with_context(|| format!("cannot flush {}", args.device.display()))?;

    // Drop what the page cache holds of the device, so that the check reads the medium.
    let len = i64::try_from(image_len).context("the image is too large")?;
    posix_fadvise(&dev, 0, len, PosixFadviseAdvice::POSIX_FADV_DONTNEED)
        .with_context(|| format!("cannot drop the cached pages of {}", args.device.display()))?;
    dev.seek(SeekFrom::Start(0))
        .with_context(|| format!("cannot seek in {}", args.device.display()))?;
    eprintln!("cell-image: reading {} back", args.device.display());
    let read_back = hash_range(&mut dev, &args.device, image_len)?;

    if read_back != written {
        bail!(
            "verification failed: {} reads back as sha256 {} but the image is {}; the device may be faulty",
            args.device.display(),
            hex::encode(read_back),
            hex::encode(written)
        );
    }
    println!(
        "Wrote and verified {} ({}) on {} (sha256 {})",
        args.image.display(),
        human_size(image_len),
        args.device.display(),
        hex::encode(written)
    );
    Ok(())
}

const SYSFS: &str = "/sys";

impl Disk {
    fn inspect(device: &Path) -> Result<Self> {
        let meta =
            fs::metadata(device).with_context(|| format!("cannot read {}", device.display()))?;
        if !meta.file_type().is_block_device() {
            bail!("{} is not a block device", device.display());
        }
        let num = DevNum {
            major: nix::sys::stat::major(meta.rdev()),
            minor: nix::sys::stat::minor(meta.rdev()),
        };
        Self::at(Path::new(SYSFS), num)
            .with_context(|| format!("cannot inspect {} ({num})", device.display()))
    }

    /// The disk with device number `num` in the sysfs mounted at `sysfs`.
    fn at(sysfs: &Path, num: DevNum) -> Result<Self> {
        let link = sysfs.join(format!("dev/block/{num}"));
        let sys = fs::canonicalize(&link)
            .with_context(|| format!("cannot resolve {}", link.display()))?;
        let name = file_name(&sys);
        if sys.join("partition").exists() {
            let parent = sys.parent().map(file_name).unwrap_or_default();
            bail!("{name} is a partition of {parent}: flash the whole disk, /dev/{parent}");
        }
        let mut members = vec![(name.clone(), num, sys.clone())];
        for entry in fs::read_dir(&sys).with_context(|| format!("cannot list {}", sys.display()))? {
            let path = entry
                .with_context(|| format!("cannot list {}", sys.display()))?
                .path();
            if !path.join("partition").exists() {
                continue;
            }
            let dev = read_trimmed(&path.join("dev"))
                .and_then(|d| DevNum::parse(&d))
                .with_context(|| format!("cannot read the device number of {}", path.display()))?;
            members.push((file_name(&path), dev, path));
        }
        Ok(Self { name, sys, members })
    }

    /// Refuses, naming every reason, a disk that anything uses.
    fn check_unused(&self, device: &Path) -> Result<()> {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")
            .context("cannot read /proc/self/mountinfo")?;
        let mounts: Vec<(Mount, Option<DevNum>)> = parse_mountinfo(&mountinfo)
            .into_iter()
            .map(|m| {
                let source = m
                    .source
                    .starts_with("/dev/")
                    .then(|| block_dev_num(Path::new(&m.source)))
                    .flatten();
                (m, source)
            })
            .collect();
        let swaps: Vec<DevNum> = fs::read_to_string("/proc/swaps")
            .map(|text| parse_swaps(&text))
            .unwrap_or_default()
            .iter()
            .filter_map(|file| block_dev_num(Path::new(file)))
            .collect();
        let problems = self.uses(Path::new(SYSFS), &mounts, &swaps);
        if problems.is_empty() {
            return Ok(());
        }
        bail!(
            "refusing to write to {} ({}):\n  - {}",
            device.display(),
            self.name,
            problems.join("\n  - ")
        )
    }

    /// What uses the disk or one of its partitions: mounts (by device number, or by the
    /// source device for file systems like btrfs that report an anonymous one), swap,
    /// holders (device-mapper, LVM, RAID), and the stack of devices under `/`.
    fn uses(
        &self,
        sysfs: &Path,
        mounts: &[(Mount, Option<DevNum>)],
        swaps: &[DevNum],
    ) -> Vec<String> {
        let ours: BTreeMap<DevNum, &str> = self
            .members
            .iter()
            .map(|(name, dev, _)| (*dev, name.as_str()))
            .collect();
        let which = |dev: &DevNum| ours.get(dev).copied();
        let mut problems = Vec::new();

        for (m, source) in mounts {
            if let Some(name) = which(&m.dev).or_else(|| source.as_ref().and_then(which)) {
                problems.push(format!(
                    "{name} is mounted on {} ({})",
                    m.mount_point, m.fs_type
                ));
            }
        }
        for name in swaps.iter().filter_map(which) {
            problems.push(format!("{name} is in use as swap"));
        }
        for (name, _, sys) in &self.members {
            let Ok(entries) = fs::read_dir(sys.join("holders")) else {
                continue;
            };
            for entry in entries.flatten() {
                let holder = entry.file_name().to_string_lossy().into_owned();
                let what = match read_trimmed(&entry.path().join("dm/name")) {
                    Some(dm) => format!("{holder} ({dm})"),
                    None => holder,
                };
                problems.push(format!(
                    "{name} is held by {what} (device-mapper, LVM, RAID or similar)"
                ));
            }
        }

        // The devices under `/`, through any stack of device-mapper or RAID devices.
        if let Some((root, source)) = mounts.iter().rev().find(|(m, _)| m.mount_point == "/") {
            let mut under = Vec::new();
            for dev in std::iter::once(root.dev).chain(*source) {
                if let Ok(sys) = fs::canonicalize(sysfs.join(format!("dev/block/{dev}"))) {
                    underlying(&sys, &mut under, 0);
                }
            }
            let backs_root = under.iter().any(|p| {
                p == &self.sys
                    || (p.join("partition").exists() && p.parent() == Some(self.sys.as_path()))
            });
            if backs_root {
                problems.push(format!("{} backs the root file system /", self.name));
            }
        }
        problems.sort();
        problems.dedup();
        problems
    }
    /// The size in bytes: sysfs counts 512-byte sectors whatever the logical block size.
    fn size(&self) -> Result<u64> {
        read_trimmed(&self.sys.join("size"))
            .and_then(|s| s.parse::<u64>().ok())
            .and_then(|sectors| sectors.checked_mul(512))
            .with_context(|| format!("cannot read the size of {}", self.name))
    }

    fn model(&self) -> String {
        let device = self.sys.join("device");
        let words: Vec<String> = ["vendor", "model"]
            .iter()
            .filter_map(|f| read_trimmed(&device.join(f)))
            .filter(|s| !s.is_empty())
            .collect();
        if !words.is_empty() {
            return words.join(" ");
        }
        match read_trimmed(&self.sys.join("loop/backing_file")) {
            Some(file) => format!("loop device backed by {file}"),
            None => "unknown model".to_owned(),
        }
    }
}

fn confirm(args: &Args, disk: &Disk, size: u64, image_len: u64) -> Result<()> {
    let removable = read_trimmed(&disk.sys.join("removable")).as_deref() == Some("1");
    eprintln!(
        "{} ({}): {}, {}{}",
        args.device.display(),
        disk.name,
        disk.model(),
        human_size(size),
        if removable { ", removable" } else { "" }
    );
    for (name, _, sys) in disk.members.iter().skip(1) {
        let bytes = read_trimmed(&sys.join("size"))
            .and_then(|s| s.parse::<u64>().ok())
            .map(|s| s.saturating_mul(512));
        eprintln!(
            "  partition {name}: {}",
            bytes.map_or_else(|| "size unknown".to_owned(), human_size)
        );
    }
    eprintln!(
        "Everything on it will be replaced by {} ({}).",
        args.image.display(),
        human_size(image_len)
    );
    eprint!("Type the device's name ({}) to go on: ", disk.name);
    io::stderr().flush().ok();
    let mut answer = String::new();
    let read = io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("cannot read the answer")?;
    let answer = answer.trim();
    let accepted = [
        disk.name.clone(),
        format!("/dev/{}", disk.name),
        args.device.display().to_string(),
    ];
    if read == 0 || answer.is_empty() || !accepted.iter().any(|a| a == answer) {
        bail!("not confirmed; nothing was written");
    }
    Ok(())
}

/// Copies `len` bytes in 4 MiB blocks with a progress line; returns their SHA-256.
fn copy_hashing(
    from: &mut File,
    from_path: &Path,
    to: &mut File,
    to_path: &Path,
    len: u64,
) -> Result<[u8; 32]> {
    let mut buf = vec![0u8; BLOCK];
    let mut hasher = Sha256::new();
    let mut progress = Progress::new("writing", len);
    let mut done = 0u64;
    loop {
        let n = read_full(from, &mut buf)
            .with_context(|| format!("cannot read {}", from_path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n])
            .with_context(|| format!("cannot write to {} at byte {done}", to_path.display()))?;
        done += n as u64;
        progress.update(done);
    }
    if done != len {
        bail!(
            "{} changed size while it was written ({done} of {len} bytes)",
            from_path.display()
        );
    }
    progress.finish();
    Ok(hasher.finalize().into())
}

/// The SHA-256 of the first `len` bytes from the current position.
fn hash_range(from: &mut File, path: &Path, len: u64) -> Result<[u8; 32]> {
    let mut buf = vec![0u8; BLOCK];
    let mut hasher = Sha256::new();
    let mut progress = Progress::new("verifying", len);
    let mut reader = from.take(len);
    let mut done = 0u64;
    loop {
        let n = read_full(&mut reader, &mut buf)
            .with_context(|| format!("cannot read {} back", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        done += n as u64;
        progress.update(done);
    }
    if done != len {
        bail!("{} ended after {done} of {len} bytes", path.display());
    }
    progress.finish();
    Ok(hasher.finalize().into())
}

/// Fills `buf` unless the input ends first; returns how much it read.
fn read_full(from: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match from.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// `sys` and every device below it through `slaves/` (device-mapper, RAID).
fn underlying(sys: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    if depth > 16 || out.iter().any(|p| p == sys) {
        return;
    }
    out.push(sys.to_owned());
    if let Ok(entries) = fs::read_dir(sys.join("slaves")) {
        for entry in entries.flatten() {
            if let Ok(slave) = fs::canonicalize(entry.path()) {
                underlying(&slave, out, depth + 1);
            }
        }
    }
}

fn block_dev_num(path: &Path) -> Option<DevNum> {
    let meta = fs::metadata(path).ok()?;
    meta.file_type().is_block_device().then(|| DevNum {
        major: nix::sys::stat::major(meta.rdev()),
        minor: nix::sys::stat::minor(meta.rdev()),
    })
}

fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn dev(major: u64, minor: u64) -> DevNum {
        DevNum { major, minor }
    }

    fn mount(dev: DevNum, at: &str, source: Option<DevNum>) -> (Mount, Option<DevNum>) {
        let m = Mount {
            dev,
            mount_point: at.into(),
            fs_type: "ext4".into(),
            source: "/dev/x".into(),
        };
        (m, source)
    }

    /// A sysfs with loop9 (7:9) and its partition loop9p1 (259:5), an unrelated sda with
    /// sda1 (8:1), and dm-1 (254:1) stacked on loop9p1.
    fn fake_sysfs() -> tempfile::TempDir {
        let root = tempfile::TempDir::new().expect("tempdir");
        let r = root.path();
        let write = |rel: &str, text: &str| {
            let path = r.join(rel);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(path, text).expect("write");
        };
        write("devices/virtual/block/loop9/dev", "7:9\n");
        write("devices/virtual/block/loop9/size", "65536\n");
        write("devices/virtual/block/loop9/loop9p1/dev", "259:5\n");
        write("devices/virtual/block/loop9/loop9p1/partition", "1\n");
        write("devices/pci0/block/sda/dev", "8:0\n");
        write("devices/pci0/block/sda/sda1/dev", "8:1\n");
        write("devices/pci0/block/sda/sda1/partition", "1\n");
        write("devices/virtual/block/dm-1/dev", "254:1\n");
        write("devices/virtual/block/dm-1/dm/name", "vg-root\n");
        for dir in [
            "devices/virtual/block/loop9/holders",
            "devices/virtual/block/loop9/loop9p1/holders",
        ] {
            fs::create_dir_all(r.join(dir)).expect("mkdir");
        }
        fs::create_dir_all(r.join("devices/virtual/block/dm-1/slaves")).expect("mkdir");
        fs::create_dir_all(r.join("dev/block")).expect("mkdir");
        for (num, target) in [
            ("7:9", "devices/virtual/block/loop9"),
            ("259:5", "devices/virtual/block/loop9/loop9p1"),
            ("8:0", "devices/pci0/block/sda"),
            ("8:1", "devices/pci0/block/sda/sda1"),
            ("254:1", "devices/virtual/block/dm-1"),
        ] {
            symlink(r.join(target), r.join("dev/block").join(num)).expect("symlink");
        }
        root
    }

    #[test]
    fn a_disk_nothing_uses_is_free() {
        let sysfs = fake_sysfs();
        let disk = Disk::at(sysfs.path(), dev(7, 9)).expect("disk");
        assert_eq!(disk.name, "loop9");
        let names: Vec<_> = disk
            .members
            .iter()
            .map(|(n, d, _)| (n.as_str(), *d))
            .collect();
        assert_eq!(names, [("loop9", dev(7, 9)), ("loop9p1", dev(259, 5))]);
        let mounts = [
            mount(dev(8, 1), "/", None),
            mount(dev(0, 21), "/proc", None),
        ];
        assert_eq!(
            disk.uses(sysfs.path(), &mounts, &[dev(8, 2)]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn mounts_swap_holders_and_root_are_all_named() {
        let sysfs = fake_sysfs();
        let r = sysfs.path();
        let disk = Disk::at(r, dev(7, 9)).expect("disk");
        let mounts = [
            mount(dev(259, 5), "/media/stick", None),
            // btrfs reports an anonymous device number; its source is the partition.
            mount(dev(0, 45), "/home", Some(dev(259, 5))),
        ];
        assert_eq!(
            disk.uses(r, &mounts, &[dev(7, 9)]),
            [
                "loop9 is in use as swap",
                "loop9p1 is mounted on /home (ext4)",
                "loop9p1 is mounted on /media/stick (ext4)",
            ]
        );

        // dm-1 (vg-root) sits on loop9p1 and is mounted as /.
        fs::create_dir_all(r.join("devices/virtual/block/loop9/loop9p1/holders/dm-1/dm"))
            .expect("mkdir");
        fs::write(
            r.join("devices/virtual/block/loop9/loop9p1/holders/dm-1/dm/name"),
            "vg-root\n",
        )
        .expect("write");
        symlink(
            r.join("devices/virtual/block/loop9/loop9p1"),
            r.join("devices/virtual/block/dm-1/slaves/loop9p1"),
        )
        .expect("symlink");
        let root = [mount(dev(254, 1), "/", None)];
        assert_eq!(
            disk.uses(r, &root, &[]),
            [
                "loop9 backs the root file system /",
                "loop9p1 is held by dm-1 (vg-root) (device-mapper, LVM, RAID or similar)",
            ]
        );
    }

    #[test]
    fn partitions_are_not_flashed() {
        let sysfs = fake_sysfs();
        let err = Disk::at(sysfs.path(), dev(259, 5))
            .err()
            .expect("a partition");
        assert!(
            err.to_string().contains("loop9p1 is a partition of loop9"),
            "{err}"
        );
        assert!(Disk::at(sysfs.path(), dev(1, 1)).is_err());
    }

    #[test]
    fn read_full_fills_the_buffer_across_short_reads() {
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(3).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut buf = [0u8; 8];
        let mut src = Trickle(b"0123456789");
        assert_eq!(read_full(&mut src, &mut buf).expect("read"), 8);
        assert_eq!(&buf, b"01234567");
        assert_eq!(read_full(&mut src, &mut buf).expect("read"), 2);
        assert_eq!(read_full(&mut src, &mut buf).expect("read"), 0);
    }
}
