//! The `cell-image` binary end to end: keys, publish (a small GPT disk made with sfdisk),
//! build (with a stand-in mkosi) and flash (on loop devices, as root).
//!
//! Tests that need a tool this machine lacks, or root, say so on stderr and pass.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

const MIB: u64 = 1 << 20;
const USR_UUID: &str = "11111111-2222-3333-4444-555555555555";
const HASH_UUID: &str = "66666666-7777-8888-9999-AAAAAAAAAAAA";
const SIG_UUID: &str = "BBBBBBBB-CCCC-DDDD-EEEE-FFFFFFFFFFFF";

fn cell_image() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cell-image"))
}

fn have(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    if !missing.is_empty() {
        eprintln!("skipped: {} not installed (make deps)", missing.join(", "));
    }
    missing.is_empty()
}

fn is_root() -> bool {
    let root = fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    if !root {
        eprintln!("skipped: needs root for loop devices");
    }
    root
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn fails(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command runs");
    assert!(
        !out.status.success(),
        "{cmd:?} should have failed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Deterministic bytes that compress a little: noise with runs of zeros.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if (i / 4096) % 3 == 0 {
                0
            } else {
                x.to_le_bytes()[0]
            }
        })
        .collect()
}

/// A partition of the test disk: its name and where its bytes are.
struct Part {
    offset: u64,
    bytes: Vec<u8>,
}

/// A 10 MiB GPT disk like mkosi's: an ESP, then usr, usr-verity and usr-verity-sig named
/// `names`, each filled with its own pattern; and a UKI beside it (`.efi`).
fn make_disk(dir: &Path, file: &str, names: [&str; 3], seed: u64) -> (PathBuf, Vec<Part>) {
    let disk = dir.join(file);
    run(Command::new("truncate").args(["-s", "10M"]).arg(&disk));
    let script = format!(
        "label: gpt\n\
         start=2048, size=2048, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp\n\
         start=4096, size=8192, type=8484680C-9521-48C6-9C11-B0720656F69E, uuid={USR_UUID}, name={}\n\
         start=12288, size=2048, type=77ff5f63-e7b6-4633-acf4-1565b864c0e6, uuid={HASH_UUID}, name={}\n\
         start=14336, size=32, type=E7BB33FB-06CF-4E81-8273-E543B413E2E2, uuid={SIG_UUID}, name={}\n",
        names[0], names[1], names[2]
    );
    let mut sfdisk = Command::new("sfdisk")
        .arg("-q")
        .arg(&disk)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("sfdisk runs");
    sfdisk
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("script");
    assert!(sfdisk.wait().expect("sfdisk").success());

    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(&disk)
        .expect("disk opens");
    let parts: Vec<Part> = [(4096u64, 8192usize), (12288, 2048), (14336, 32)]
        .iter()
        .enumerate()
        .map(|(i, &(start, sectors))| Part {
            offset: start * 512,
            bytes: pattern(seed + i as u64, sectors * 512),
        })
        .collect();
    for p in &parts {
        f.seek(SeekFrom::Start(p.offset)).expect("seek");
        f.write_all(&p.bytes).expect("fill partition");
    }
    fs::write(disk.with_extension("efi"), format!("UKI {seed}")).expect("uki");
    (disk, parts)
}

fn keys(dir: &Path) -> PathBuf {
    let keys = dir.join("keys");
    run(cell_image().arg("keys").arg("--dir").arg(&keys));
    keys
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("exists").permissions().mode() & 0o7777
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn keys_are_made_once_and_never_overwritten() {
    if !have(&["openssl", "gpg", "gpgconf"]) {
        return;
    }
    let tmp = TempDir::new().expect("tempdir");
    let dir = tmp.path().join("build/keys");
    let first = run(cell_image().arg("keys").arg("--dir").arg(&dir));
    let first = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.contains("created") && first.contains("signing key"),
        "{first}"
    );
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("verity.key")), 0o600);
    assert_eq!(mode(&dir.join("gnupg")), 0o700);
    let files = ["verity.key", "verity.crt", "import-pubring.gpg"];
    let before: Vec<Vec<u8>> = files
        .iter()
        .map(|f| fs::read(dir.join(f)).expect("key file"))
        .collect();
    assert!(!before[2].is_empty());

    let second = run(cell_image().arg("keys").arg("--dir").arg(&dir));
    let second = String::from_utf8_lossy(&second.stdout);
    assert!(!second.contains("created"), "{second}");
    assert_eq!(second.matches("found").count(), 6, "{second}");
    let after: Vec<Vec<u8>> = files
        .iter()
        .map(|f| fs::read(dir.join(f)).expect("key file"))
        .collect();
    assert_eq!(before, after);

    // A lost certificate is made again from the key that is still there.
    fs::remove_file(dir.join("verity.crt")).expect("rm crt");
    run(cell_image().arg("keys").arg("--dir").arg(&dir));
    assert_eq!(fs::read(dir.join("verity.key")).expect("key"), before[0]);
    let modulus = |arg: &str, file: &str| {
        let out = run(Command::new("openssl")
            .args([arg, "-noout", "-modulus", "-in"])
            .arg(dir.join(file)));
        out.stdout
    };
    assert_eq!(modulus("x509", "verity.crt"), modulus("rsa", "verity.key"));

    // A keyring that does not match the signing key is an error, not silently replaced.
    fs::write(dir.join("import-pubring.gpg"), b"stale").expect("write");
    let err = fails(cell_image().arg("keys").arg("--dir").arg(&dir));
    assert!(err.contains("does not hold the public keys"), "{err}");
    assert_eq!(
        fs::read(dir.join("import-pubring.gpg")).expect("pubring"),
        b"stale"
    );

    // A certificate without its key cannot be repaired without overwriting something.
    let lone = tmp.path().join("lone");
    fs::create_dir(&lone).expect("mkdir");
    fs::write(lone.join("verity.crt"), b"cert").expect("write");
    let err = fails(cell_image().arg("keys").arg("--dir").arg(&lone));
    assert!(err.contains("verity.key does not"), "{err}");
    assert_eq!(fs::read(lone.join("verity.crt")).expect("crt"), b"cert");
}

#[test]
fn publish_compresses_signs_and_lists_every_version() {
    if !have(&[
        "openssl",
        "gpg",
        "gpgconf",
        "sfdisk",
        "xz",
        "sha256sum",
        "truncate",
    ]) {
        return;
    }
    let tmp = TempDir::new().expect("tempdir");
    let keys = keys(tmp.path());
    let (disk, parts) = make_disk(
        tmp.path(),
        "cell_9.9.9.raw",
        ["cell_9.9.9", "cell_9.9.9_hash", "cell_9.9.9_sig"],
        1,
    );
    let out = tmp.path().join("update");
    let publish = |disk: &Path, extra: &[&str]| {
        let mut cmd = cell_image();
        cmd.arg("publish")
            .arg("--image")
            .arg(disk)
            .arg("--keys")
            .arg(&keys)
            .arg("--out")
            .arg(&out)
            .args(extra);
        cmd
    };
    let report = run(&mut publish(&disk, &[]));
    let stdout = String::from_utf8_lossy(&report.stdout);
    assert!(
        stdout.contains("for this version; the full image is 10.0 MiB"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&report.stderr);
    assert!(
        stderr.contains("compressing the usr-verity partition \"cell_9.9.9_hash\""),
        "{stderr}"
    );

    let usr = format!("cell_9.9.9_{}.usr.raw.xz", USR_UUID.to_lowercase());
    let hash = format!("cell_9.9.9_{}.usr-verity.raw.xz", HASH_UUID.to_lowercase());
    let sig = format!(
        "cell_9.9.9_{}.usr-verity-sig.raw.xz",
        SIG_UUID.to_lowercase()
    );
    let mut expected = vec![
        "SHA256SUMS".to_owned(),
        "SHA256SUMS.gpg".to_owned(),
        "cell_9.9.9.efi".to_owned(),
    ];
    expected.extend([usr.clone(), hash.clone(), sig.clone()]);
    expected.sort();
    assert_eq!(names_in(&out), expected);
    assert_eq!(fs::read(out.join("cell_9.9.9.efi")).expect("uki"), b"UKI 1");

    // Each file decompresses to exactly its partition's bytes.
    for (name, part) in [&usr, &hash, &sig].iter().zip(&parts) {
        let raw = run(Command::new("xz").arg("-dc").arg(out.join(name))).stdout;
        assert!(
            raw == part.bytes,
            "{name} does not decompress to the partition at {}",
            part.offset
        );
    }

    let check_manifest = |count: usize| {
        let sums = fs::read_to_string(out.join("SHA256SUMS")).expect("SHA256SUMS");
        let names: Vec<&str> = sums
            .lines()
            .map(|l| l.split_once("  ").expect("two spaces").1)
            .collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        assert_eq!(names.len(), count, "{sums}");
        run(Command::new("sha256sum")
            .args(["--strict", "-c", "SHA256SUMS"])
            .current_dir(&out));
        let gnupghome = tmp.path().join("verify-gnupg");
        fs::create_dir_all(&gnupghome).expect("mkdir");
        fs::set_permissions(&gnupghome, fs::Permissions::from_mode(0o700)).expect("chmod");
        run(Command::new("gpg")
            .env("GNUPGHOME", &gnupghome)
            .args(["--batch", "--no-default-keyring", "--keyring"])
            .arg(keys.join("import-pubring.gpg"))
            .arg("--verify")
            .arg(out.join("SHA256SUMS.gpg"))
            .arg(out.join("SHA256SUMS")));
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", &gnupghome)
            .args(["--kill", "all"])
            .status();
    };
    check_manifest(4);

    // The same version again is refused, and replaced on request.
    let err = fails(&mut publish(&disk, &[]));
    assert!(
        err.contains("already holds version 9.9.9") && err.contains("--replace"),
        "{err}"
    );
    run(&mut publish(&disk, &["--replace"]));
    assert_eq!(names_in(&out), expected);
    check_manifest(4);

    // A second version lands beside the first; the manifest covers both.
    let other = tmp.path().join("other");
    fs::create_dir(&other).expect("mkdir");
    let (disk2, _) = make_disk(
        &other,
        "cell_9.9.10.raw",
        ["cell_9.9.10", "cell_9.9.10_hash", "cell_9.9.10_sig"],
        7,
    );
    run(&mut publish(&disk2, &[]));
    assert_eq!(names_in(&out).len(), 10);
    check_manifest(8);
    // A manifest with a stale signature would fail the check above; make sure it is the new one.
    let sums = fs::read_to_string(out.join("SHA256SUMS")).expect("SHA256SUMS");
    assert!(
        sums.contains("cell_9.9.10.efi") && sums.contains(&usr),
        "{sums}"
    );
    assert!(
        !names_in(&out).iter().any(|n| n.starts_with('.')),
        "temporary files left behind"
    );
}

#[test]
fn publish_refuses_partitions_with_other_names() {
    if !have(&["openssl", "gpg", "gpgconf", "sfdisk", "truncate"]) {
        return;
    }
    let tmp = TempDir::new().expect("tempdir");
    let keys = keys(tmp.path());
    let out = tmp.path().join("update");
    for (names, expect) in [
        (
            ["cell_9.9.9", "cell_9.9.9_verity", "cell_9.9.9_verity_sig"],
            "expected \"cell_9.9.9_hash\"",
        ),
        (
            ["cell_9.9.9", "cell_9.9.9_hash", "cell_9.9.8_sig"],
            "expected \"cell_9.9.9_sig\"",
        ),
        (
            ["usr", "usr_hash", "usr_sig"],
            "must be named cell_<version>",
        ),
        (
            ["cell_9.9.9+1", "cell_9.9.9+1_hash", "cell_9.9.9+1_sig"],
            "boot counter",
        ),
    ] {
        let (disk, _) = make_disk(tmp.path(), "disk.raw", names, 3);
        let err = fails(
            cell_image()
                .arg("publish")
                .arg("--image")
                .arg(&disk)
                .arg("--keys")
                .arg(&keys)
                .arg("--out")
                .arg(&out),
        );
        assert!(err.contains(expect), "{names:?}: {err}");
        assert!(
            !out.exists() || names_in(&out).is_empty(),
            "{names:?} left files behind"
        );
    }
}

#[test]
fn build_runs_mkosi_with_the_version_in_an_emptied_output_dir() {
    let tmp = TempDir::new().expect("tempdir");
    let bin = tmp.path().join("bin");
    fs::create_dir(&bin).expect("mkdir");
    let fake = bin.join("mkosi");
    fs::write(
        &fake,
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > mkosi.args\n[ -d build/mkosi.cache ] || exit 9\nexit ${FAKE_MKOSI_EXIT:-0}\n",
    )
    .expect("fake mkosi");
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let work = tmp.path().join("repo");
    fs::create_dir_all(work.join("build/image/disk")).expect("mkdir");
    fs::create_dir_all(work.join("extra")).expect("mkdir");
    fs::write(work.join("build/image/disk/old.raw"), b"old").expect("old output");
    let build = |version: &str| {
        let mut cmd = cell_image();
        cmd.current_dir(&work).env("PATH", &path).args([
            "build",
            "--version",
            version,
            "--format",
            "disk",
            "--output-dir",
            "build/image/disk",
            "--extra-tree",
            "extra:/usr/lib/extra",
        ]);
        cmd
    };

    run(&mut build("0.1.0-53-ga5b0902f.dirty"));
    assert_eq!(
        fs::read_to_string(work.join("mkosi.args")).expect("mkosi ran"),
        "--image-version=0.1.0-53-ga5b0902f.dirty\n--format=disk\n--output-dir=build/image/disk\n\
         --environment=CELL_MACHINES_DIR=build/image/disk\n--extra-tree=extra:/usr/lib/extra\nbuild\n"
    );
    assert!(work.join("build/mkosi.cache").is_dir());
    assert!(
        names_in(&work.join("build/image/disk")).is_empty(),
        "the output directory was not emptied"
    );

    fs::remove_file(work.join("mkosi.args")).expect("rm");
    for bad in ["v1", "1.0+2", "1/2", "012345678901234567890123456"] {
        let err = fails(&mut build(bad));
        assert!(
            err.contains(bad) || err.contains("invalid value"),
            "{bad}: {err}"
        );
        assert!(!work.join("mkosi.args").exists(), "mkosi ran for {bad}");
    }

    let err = fails(build("1.0").env("FAKE_MKOSI_EXIT", "3"));
    assert!(
        err.contains("mkosi") && err.contains("exit status: 3"),
        "{err}"
    );

    // mkosi's scripts see the repository only: machines built elsewhere would be lost.
    let _ = fs::remove_file(work.join("mkosi.args"));
    let elsewhere = tmp.path().join("elsewhere");
    let err = fails(cell_image().current_dir(&work).env("PATH", &path).args([
        "build",
        "--version",
        "1.0",
        "--format",
        "disk",
        "--output-dir",
        elsewhere.to_str().expect("utf-8 path"),
    ]));
    assert!(err.contains("outside"), "{err}");
    assert!(
        !work.join("mkosi.args").exists(),
        "mkosi ran for an outside directory"
    );
    assert!(
        !elsewhere.exists(),
        "the refused directory was made or emptied"
    );

    let err = fails(cell_image().current_dir(&work).env("PATH", &path).args([
        "build",
        "--version",
        "1.0",
        "--format",
        "directory",
        "--output-dir",
        ".",
    ]));
    assert!(err.contains("refusing to empty"), "{err}");
}

#[test]
fn flash_refuses_what_is_not_a_block_device() {
    let tmp = TempDir::new().expect("tempdir");
    let image = tmp.path().join("cell.raw");
    fs::write(&image, vec![0u8; 4096]).expect("image");
    let target = tmp.path().join("target");
    fs::write(&target, b"precious").expect("target");
    let err = fails(
        cell_image()
            .arg("flash")
            .arg("--image")
            .arg(&image)
            .arg("--device")
            .arg(&target)
            .arg("--yes"),
    );
    assert!(err.contains("is not a block device"), "{err}");
    assert_eq!(fs::read(&target).expect("target"), b"precious");
}

/// A loop device over a file, detached when dropped.
struct Loop {
    dev: PathBuf,
}

impl Loop {
    fn attach(file: &Path) -> Option<Self> {
        let out = Command::new("losetup")
            .args(["-f", "--show", "-P"])
            .arg(file)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "skipped: losetup failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
        Some(Self {
            dev: PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()),
        })
    }

    fn name(&self) -> String {
        self.dev
            .file_name()
            .expect("device name")
            .to_string_lossy()
            .into_owned()
    }

    fn read(&self, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        File::open(&self.dev)
            .expect("open device")
            .read_exact(&mut buf)
            .expect("read device");
        buf
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

/// A mount, unmounted when dropped (before the loop device under it is detached, as locals
/// drop in reverse order).
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn sparse_file(path: &Path, len: u64) {
    File::create(path)
        .and_then(|f| f.set_len(len))
        .expect("sparse file");
}

#[test]
fn flash_writes_a_loop_device_and_reads_it_back() {
    if !is_root() || !have(&["losetup", "sfdisk", "truncate"]) {
        return;
    }
    let tmp = TempDir::new().expect("tempdir");
    let (image, _) = make_disk(
        tmp.path(),
        "cell_9.9.9.raw",
        ["cell_9.9.9", "cell_9.9.9_hash", "cell_9.9.9_sig"],
        5,
    );
    let image_bytes = fs::read(&image).expect("image");
    let backing = tmp.path().join("stick.img");
    sparse_file(&backing, 32 * MIB);
    let Some(stick) = Loop::attach(&backing) else {
        return;
    };

    // Without --yes it asks for the device's name; a wrong answer writes nothing.
    let mut flash = Command::new(env!("CARGO_BIN_EXE_cell-image"));
    flash
        .arg("flash")
        .arg("--image")
        .arg(&image)
        .arg("--device")
        .arg(&stick.dev);
    let answer = |cmd: &mut Command, text: &str| {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("answer");
        child.wait_with_output().expect("waits")
    };
    let refused = answer(&mut flash, "sda\n");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("loop device backed by") && stderr.contains("not confirmed"),
        "{stderr}"
    );
    assert!(
        stick.read(image_bytes.len()).iter().all(|&b| b == 0),
        "written without confirmation"
    );

    let confirmed = answer(&mut flash, &format!("{}\n", stick.name()));
    assert!(
        confirmed.status.success(),
        "{}",
        String::from_utf8_lossy(&confirmed.stderr)
    );
    assert!(
        stick.read(image_bytes.len()) == image_bytes,
        "the device does not hold the image"
    );

    // --yes skips the question; the result is the same.
    fs::OpenOptions::new()
        .write(true)
        .open(&stick.dev)
        .and_then(|mut f| {
            f.write_all(&vec![0xa5; image_bytes.len()])
                .and_then(|()| f.sync_all())
        })
        .expect("scribble");
    let out = run(cell_image()
        .arg("flash")
        .arg("--image")
        .arg(&image)
        .arg("--device")
        .arg(&stick.dev)
        .arg("--yes"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Wrote and verified"));
    assert!(
        stick.read(image_bytes.len()) == image_bytes,
        "the device does not hold the image"
    );

    // An image larger than the device is refused before anything is written.
    let big = tmp.path().join("big.raw");
    sparse_file(&big, 33 * MIB);
    let err = fails(
        cell_image()
            .arg("flash")
            .arg("--image")
            .arg(&big)
            .arg("--device")
            .arg(&stick.dev)
            .arg("--yes"),
    );
    assert!(err.contains("is larger than"), "{err}");
    assert!(stick.read(image_bytes.len()) == image_bytes);
}

#[test]
fn flash_refuses_a_device_with_a_mounted_partition() {
    if !is_root()
        || !have(&[
            "losetup",
            "sfdisk",
            "partx",
            "mkfs.ext4",
            "mount",
            "umount",
            "mknod",
            "truncate",
        ])
    {
        return;
    }
    let tmp = TempDir::new().expect("tempdir");
    let (image, _) = make_disk(
        tmp.path(),
        "cell_9.9.9.raw",
        ["cell_9.9.9", "cell_9.9.9_hash", "cell_9.9.9_sig"],
        9,
    );
    let backing = tmp.path().join("disk.img");
    sparse_file(&backing, 32 * MIB);
    let mut sfdisk = Command::new("sfdisk")
        .arg("-q")
        .arg(&backing)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("sfdisk");
    sfdisk
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"label: gpt\nsize=16MiB, type=linux\n")
        .expect("script");
    assert!(sfdisk.wait().expect("sfdisk").success());
    let Some(disk) = Loop::attach(&backing) else {
        return;
    };

    // The kernel may not have scanned the table yet; ask it, then wait for sysfs.
    let part_sys = PathBuf::from(format!("/sys/class/block/{}p1", disk.name()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !part_sys.join("dev").exists() {
        let _ = Command::new("partx")
            .arg("-a")
            .arg(&disk.dev)
            .stderr(Stdio::null())
            .status();
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            part_sys.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Our own device node: /dev may be a plain tmpfs without udev, or hold stale nodes.
    let dev = fs::read_to_string(part_sys.join("dev")).expect("dev");
    let (major, minor) = dev.trim().split_once(':').expect("maj:min");
    let node = tmp.path().join("part1");
    run(Command::new("mknod").arg(&node).args(["b", major, minor]));
    run(Command::new("mkfs.ext4").arg("-q").arg(&node));
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).expect("mkdir");
    run(Command::new("mount").arg(&node).arg(&mnt));
    let mounted = Mounted(mnt.clone());
    fs::write(mnt.join("precious"), b"data").expect("write on the mounted file system");

    let before = disk.read(image.metadata().expect("image").len() as usize);
    let err = fails(
        cell_image()
            .arg("flash")
            .arg("--image")
            .arg(&image)
            .arg("--device")
            .arg(&disk.dev)
            .arg("--yes"),
    );
    assert!(
        err.contains("refusing to write")
            && err.contains(&format!(
                "{}p1 is mounted on {}",
                disk.name(),
                mnt.display()
            )),
        "{err}"
    );
    assert!(disk.read(before.len()) == before, "the device changed");

    // A partition itself is refused too: only whole disks are flashed.
    let err = fails(
        cell_image()
            .arg("flash")
            .arg("--image")
            .arg(&image)
            .arg("--device")
            .arg(&node)
            .arg("--yes"),
    );
    assert!(err.contains("is a partition of"), "{err}");
    drop(mounted);
    assert_eq!(fs::read(mnt.join("precious")).ok(), None, "still mounted");
}
