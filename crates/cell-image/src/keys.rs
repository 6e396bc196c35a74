//! `cell-image keys`: the build machine's signing keys, made once and never overwritten.
//!
//! - `verity.key` + `verity.crt`: sign `/usr`'s dm-verity root hash (mkosi's VerityKey=).
//! - `gnupg/`: a GnuPG home with one ed25519 key that signs the update manifest
//!   (`SHA256SUMS.gpg`).
//! - `import-pubring.gpg`: that key's public part, which the image carries as
//!   `/usr/lib/systemd/import-pubring.gpg` for systemd-sysupdate to verify updates with.

use std::fs::{self, DirBuilder};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::util::{run_captured, temp_path, write_atomic};

pub const VERITY_SUBJECT: &str = "/CN=personal-internet-cell-verity";
pub const SIGNING_UID: &str = "Personal Internet Cell updates <updates@cell.invalid>";
pub const PUBRING: &str = "import-pubring.gpg";
pub const GNUPG_DIR: &str = "gnupg";

pub fn run(dir: &Path) -> Result<()> {
    private_dir(dir)?;
    verity_pair(dir)?;
    let gnupg = dir.join(GNUPG_DIR);
    private_dir(&gnupg)?;
    let result = signing_key(&gnupg).and_then(|()| pubring(dir, &gnupg));
    stop_agent(&gnupg);
    result
}

/// The GnuPG home under a keys directory, checked to exist.
pub fn gnupg_home(keys: &Path) -> Result<std::path::PathBuf> {
    let home = keys.join(GNUPG_DIR);
    if !home.is_dir() {
        bail!(
            "{} does not exist: make the signing key with `cell-image keys --dir {}`",
            home.display(),
            keys.display()
        );
    }
    Ok(home)
}

/// gpg starts an agent per home directory; stop it so that no daemon outlives the command.
pub fn stop_agent(gnupg: &Path) {
    let _ = Command::new("gpgconf")
        .arg("--homedir")
        .arg(gnupg)
        .args(["--kill", "gpg-agent"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn private_dir(dir: &Path) -> Result<()> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                    .with_context(|| format!("cannot restrict {} to its owner", dir.display()))?;
                println!("found   {} (mode {mode:04o}, now 0700)", dir.display());
            } else {
                println!("found   {}", dir.display());
            }
            Ok(())
        }
        Ok(_) => bail!("{} exists and is not a directory", dir.display()),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            // The umask may have taken bits away, never added any; make it exact.
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot set the mode of {}", dir.display()))?;
            println!("created {} (0700)", dir.display());
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("cannot inspect {}", dir.display())),
    }
}

fn exists(path: &Path) -> Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot inspect {}", path.display())),
    }
}

fn owner_only(path: &Path) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot set the mode of {}", path.display()))
}

fn verity_pair(dir: &Path) -> Result<()> {
    let key = dir.join("verity.key");
    let crt = dir.join("verity.crt");
    match (exists(&key)?, exists(&crt)?) {
        (true, true) => {
            let mode = fs::metadata(&key)
                .with_context(|| format!("cannot inspect {}", key.display()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                owner_only(&key)?;
                println!(
                    "found   {} (mode {:04o}, now 0600)",
                    key.display(),
                    mode & 0o7777
                );
            } else {
                println!("found   {}", key.display());
            }
            println!("found   {}", crt.display());
        }
        (false, false) => {
            let (tmp_key, tmp_crt) = (temp_path(dir, "verity.key"), temp_path(dir, "verity.crt"));
            let made = run_captured(
                Command::new("openssl")
                    .args([
                        "req",
                        "-x509",
                        "-newkey",
                        "rsa:2048",
                        "-nodes",
                        "-days",
                        "3650",
                        "-subj",
                        VERITY_SUBJECT,
                    ])
                    .arg("-keyout")
                    .arg(&tmp_key)
                    .arg("-out")
                    .arg(&tmp_crt),
            )
            .and_then(|_| owner_only(&tmp_key))
            .and_then(|()| {
                fs::rename(&tmp_key, &key)
                    .with_context(|| format!("cannot rename {}", tmp_key.display()))?;
                fs::rename(&tmp_crt, &crt)
                    .with_context(|| format!("cannot rename {}", tmp_crt.display()))
            });
            if made.is_err() {
                let _ = fs::remove_file(&tmp_key);
                let _ = fs::remove_file(&tmp_crt);
            }
            made?;
            println!("created {} (RSA 2048, 0600)", key.display());
            println!("created {} ({VERITY_SUBJECT}, 10 years)", crt.display());
        }
        (true, false) => {
            let tmp_crt = temp_path(dir, "verity.crt");
            let made = run_captured(
                Command::new("openssl")
                    .args([
                        "req",
                        "-x509",
                        "-new",
                        "-days",
                        "3650",
                        "-subj",
                        VERITY_SUBJECT,
                    ])
                    .arg("-key")
                    .arg(&key)
                    .arg("-out")
                    .arg(&tmp_crt),
            )
            .and_then(|_| {
                fs::rename(&tmp_crt, &crt)
                    .with_context(|| format!("cannot rename {}", tmp_crt.display()))
            });
            if made.is_err() {
                let _ = fs::remove_file(&tmp_crt);
            }
            made?;
            println!("found   {}", key.display());
            println!("created {} (from the existing key)", crt.display());
        }
        (false, true) => bail!(
            "{} exists but {} does not; a certificate without its key cannot sign anything. \
             Remove {} to make a new pair.",
            crt.display(),
            key.display(),
            crt.display()
        ),
    }
    Ok(())
}

fn gpg(home: &Path) -> Command {
    let mut cmd = Command::new("gpg");
    cmd.arg("--homedir").arg(home).arg("--batch");
    cmd
}

/// The fingerprints of the secret keys in a GnuPG home, from `--with-colons` output.
pub fn secret_fingerprints(home: &Path) -> Result<Vec<String>> {
    let out = run_captured(gpg(home).args(["--with-colons", "--list-secret-keys"]))?;
    Ok(parse_secret_fingerprints(&String::from_utf8_lossy(
        &out.stdout,
    )))
}

fn parse_secret_fingerprints(colons: &str) -> Vec<String> {
    let mut fprs = Vec::new();
    let mut after_sec = false;
    for line in colons.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.first().copied() {
            Some("sec") => after_sec = true,
            Some("fpr") if after_sec => {
                if let Some(fpr) = fields.get(9).filter(|f| !f.is_empty()) {
                    fprs.push((*fpr).to_owned());
                }
                after_sec = false;
            }
            _ => {}
        }
    }
    fprs
}

fn signing_key(home: &Path) -> Result<()> {
    let existing = secret_fingerprints(home)?;
    if !existing.is_empty() {
        for fpr in &existing {
            println!("found   signing key {fpr} in {}", home.display());
        }
        return Ok(());
    }
    run_captured(gpg(home).args([
        "--passphrase",
        "",
        "--quick-gen-key",
        SIGNING_UID,
        "ed25519",
        "sign",
        "never",
    ]))?;
    let made = secret_fingerprints(home)?;
    let Some(fpr) = made.first() else {
        bail!("gpg made no secret key in {}", home.display());
    };
    println!(
        "created signing key {fpr} (ed25519, no passphrase) in {}",
        home.display()
    );
    Ok(())
}

fn pubring(dir: &Path, home: &Path) -> Result<()> {
    let exported = run_captured(gpg(home).arg("--export"))?.stdout;
    if exported.is_empty() {
        bail!("gpg exported no public key from {}", home.display());
    }
    let path = dir.join(PUBRING);
    match fs::read(&path) {
        Ok(existing) if existing == exported => {
            println!("found   {}", path.display());
            Ok(())
        }
        Ok(_) => bail!(
            "{} does not hold the public keys of {}: images built with it would refuse the updates \
             signed now. Remove it (and rebuild the image) to export it again.",
            path.display(),
            home.display()
        ),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            write_atomic(dir, PUBRING, &exported, 0o644)?;
            println!(
                "created {} (the keyring the image verifies updates with)",
                path.display()
            );
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_come_from_the_fpr_line_after_each_sec() {
        let colons = "\
sec:u:255:22:70F07C383F51A684:1795784338:::u:::scSC:::+::ed25519:::0:
fpr:::::::::0EE9E68412DE6E5EBB93BE2070F07C383F51A684:
grp:::::::::F9B40B276B7362295DAA6E0295A841A9D0DD351B:
uid:u::::1795784338::6B5C7D634C269A8E0148EF23DC6512C01183D06E::Personal Internet Cell updates <updates@cell.invalid>::::::::::0:
ssb:u:255:18:1111111111111111:1795784338::::::e:::+::cv25519::
fpr:::::::::2222222222222222222222222222222222222222:
";
        assert_eq!(
            parse_secret_fingerprints(colons),
            ["0EE9E68412DE6E5EBB93BE2070F07C383F51A684"]
        );
        assert!(parse_secret_fingerprints("").is_empty());
    }
}
