//! The boot menu's recovery entry: the running, blessed version's UKI booted into
//! `cell-recovery.target` (the recovery console and the network, nothing else), for when
//! the normal boot gets no further than the console. A type #1 entry on the ESP, rewritten
//! after each good boot so that it follows updates.
//!
//! systemd-stub takes the entry's `options` as the whole command line when Secure Boot
//! is off, so they repeat the running one (with `usrhash=`), plus the target.

use std::path::{Path, PathBuf};

pub const ENTRY: &str = "loader/entries/cell-recovery.conf";
const TARGET: &str = "systemd.unit=cell-recovery.target";

/// The command line for the recovery boot, from the running one.
pub fn recovery_cmdline(running: &str) -> String {
    running
        .split_whitespace()
        .filter(|word| {
            !(word.starts_with("systemd.unit=")
                || word.starts_with("BOOT_IMAGE=")
                || word.starts_with("initrd="))
        })
        .chain(std::iter::once(TARGET))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn render(version: &str, cmdline: &str) -> String {
    // A sort key after the UKIs' ("cell", from IMAGE_ID): never the default entry.
    format!(
        "title Personal Internet Cell recovery console ({version})\nsort-key zz-cell-recovery\nefi /EFI/Linux/cell_{version}.efi\noptions {cmdline}\n"
    )
}

/// Writes the entry for `version` if its UKI is on the ESP under its blessed name;
/// returns where, or None when there is no such UKI.
pub fn write(esp: &Path, version: &str, running_cmdline: &str) -> anyhow::Result<Option<PathBuf>> {
    use anyhow::Context;
    if !esp.join(format!("EFI/Linux/cell_{version}.efi")).is_file() {
        return Ok(None);
    }
    let path = esp.join(ENTRY);
    let dir = path.parent().context("the entry has a directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let content = render(version, &recovery_cmdline(running_cmdline));
    if std::fs::read_to_string(&path).ok().as_deref() == Some(content.as_str()) {
        return Ok(Some(path));
    }
    cell_store::atomic::write(&path, content.as_bytes(), 0o644)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNNING: &str = "console=tty0 console=ttyS0 rw systemd.getty_auto=0 usrhash=ab12 systemd.unit=multi-user.target";

    #[test]
    fn the_recovery_boot_keeps_the_verity_hash_and_changes_only_the_target() {
        assert_eq!(
            recovery_cmdline(RUNNING),
            "console=tty0 console=ttyS0 rw systemd.getty_auto=0 usrhash=ab12 systemd.unit=cell-recovery.target"
        );
    }

    #[test]
    fn written_only_for_a_blessed_uki_and_only_when_it_changes() {
        let esp = tempfile::tempdir().unwrap();
        assert_eq!(write(esp.path(), "2", RUNNING).unwrap(), None);
        std::fs::create_dir_all(esp.path().join("EFI/Linux")).unwrap();
        std::fs::write(esp.path().join("EFI/Linux/cell_2+3-0.efi"), "uki").unwrap();
        assert_eq!(
            write(esp.path(), "2", RUNNING).unwrap(),
            None,
            "still on trial"
        );
        std::fs::rename(
            esp.path().join("EFI/Linux/cell_2+3-0.efi"),
            esp.path().join("EFI/Linux/cell_2.efi"),
        )
        .unwrap();
        let path = write(esp.path(), "2", RUNNING).unwrap().unwrap();
        let entry = std::fs::read_to_string(&path).unwrap();
        assert!(entry.contains("efi /EFI/Linux/cell_2.efi\n"), "{entry}");
        assert!(entry.contains("usrhash=ab12 systemd.unit=cell-recovery.target\n"));
        assert!(entry.contains("sort-key zz-cell-recovery\n"));
    }
}
