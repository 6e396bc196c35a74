//! The transfer definitions systemd-sysupdate works from, rendered for the configured
//! update URL. Three sets, so that nothing reaches a slot before it is verified:
//!
//! - `check`: the server's files against the slots, only ever listed;
//! - `download`: the server's files into the cache on the root file system, each checked
//!   against the signed SHA256SUMS (a bad signature or checksum leaves nothing behind);
//! - `install`: the cache into the inactive slot's partitions and the UKI into the ESP,
//!   with boot counting.
//!
//! Published names (made by `cell-image publish`): `cell_<v>_<uuid>.usr.raw.xz`,
//! `….usr-verity.raw.xz`, `….usr-verity-sig.raw.xz` (the UUID becomes the partition's,
//! which is how the UKI's `usrhash=` finds them) and `cell_<v>.efi`.

use std::path::{Path, PathBuf};

use cell_model::update::UpdateUrl;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Set {
    Check,
    Download,
    Install,
}

impl Set {
    pub fn dir_name(self) -> &'static str {
        match self {
            Self::Check => "check.d",
            Self::Download => "download.d",
            Self::Install => "install.d",
        }
    }
}

/// Where the sets read and write on this machine.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Verified downloads wait here until they are installed.
    pub cache: PathBuf,
    /// The disk holding the slots (`auto`: the one the root file system is on).
    pub disk: String,
    /// Where UKIs go, relative to the boot partition (`PathRelativeTo=boot`), or an
    /// absolute directory when `uki_relative_to_boot` is false.
    pub uki_dir: String,
    pub uki_relative_to_boot: bool,
    /// Boot attempts a new version gets before systemd-boot falls back.
    pub tries: u32,
}

impl Layout {
    /// The cache is the job's own (`CacheDirectory=cell-update`), out of celld's reach:
    /// what was verified there is what gets installed.
    pub fn device() -> Self {
        Self {
            cache: PathBuf::from("/var/cache/cell-update"),
            disk: "auto".to_owned(),
            uki_dir: "/EFI/Linux".to_owned(),
            uki_relative_to_boot: true,
            tries: 3,
        }
    }
}

/// The running version (`IMAGE_VERSION`, `%A`) is never the slot made room in: with
/// two slots, the one to overwrite is the other one, even when it holds a newer version
/// (after a rollback) or one installed and not yet booted.
const PROTECT_RUNNING: &str = "ProtectVersion=%A\n";

struct Partition {
    /// In the published file name.
    file: &'static str,
    /// sysupdate's `MatchPartitionType=`.
    partition_type: &'static str,
    /// The partition label is `cell_<v><label_suffix>`.
    label_suffix: &'static str,
}

const PARTITIONS: [Partition; 3] = [
    Partition {
        file: "usr",
        partition_type: "usr",
        label_suffix: "",
    },
    Partition {
        file: "usr-verity",
        partition_type: "usr-verity",
        label_suffix: "_hash",
    },
    Partition {
        file: "usr-verity-sig",
        partition_type: "usr-verity-sig",
        label_suffix: "_sig",
    },
];

/// (file name, content) of every transfer in `set`.
pub fn render(set: Set, url: &UpdateUrl, layout: &Layout) -> Vec<(String, String)> {
    let cache = layout.cache.display();
    let mut files = Vec::new();
    for (index, part) in PARTITIONS.iter().enumerate() {
        let published = format!("cell_@v_@u.{}.raw.xz", part.file);
        let cached = format!("cell_@v_@u.{}.raw", part.file);
        let slot = format!(
            "Type=partition\nPath={}\nMatchPartitionType={}\nMatchPattern=cell_@v{}\nReadOnly=1\nInstancesMax=2\n{PROTECT_RUNNING}",
            layout.disk, part.partition_type, part.label_suffix
        );
        let body = match set {
            Set::Check => transfer(true, &url_source(url, &published), &slot),
            Set::Download => transfer(
                true,
                &url_source(url, &published),
                &cache_target(&cache, &cached),
            ),
            Set::Install => transfer(false, &cache_source(&cache, &cached), &slot),
        };
        files.push((format!("{}-{}.transfer", 10 + index, part.file), body));
    }
    let uki_slot = format!(
        "Type=regular-file\nPath={}\n{}MatchPattern=cell_@v+@l-@d.efi cell_@v+@l.efi cell_@v.efi\nMode=0444\nTriesLeft={}\nTriesDone=0\nInstancesMax=2\n{PROTECT_RUNNING}",
        layout.uki_dir,
        if layout.uki_relative_to_boot { "PathRelativeTo=boot\n" } else { "" },
        layout.tries
    );
    let uki = match set {
        Set::Check => transfer(true, &url_source(url, "cell_@v.efi"), &uki_slot),
        Set::Download => transfer(
            true,
            &url_source(url, "cell_@v.efi"),
            &cache_target(&cache, "cell_@v.efi"),
        ),
        Set::Install => transfer(false, &cache_source(&cache, "cell_@v.efi"), &uki_slot),
    };
    files.push(("20-uki.transfer".to_owned(), uki));
    files
}

fn transfer(verify: bool, source: &str, target: &str) -> String {
    format!(
        "# Written by cell-update for this job; see /usr/share/doc/cell/README.md.\n[Transfer]\nVerify={}\n\n[Source]\n{source}\n[Target]\n{target}",
        if verify { "yes" } else { "no" }
    )
}

fn url_source(url: &UpdateUrl, pattern: &str) -> String {
    format!("Type=url-file\nPath={url}\nMatchPattern={pattern}\n")
}

fn cache_source(cache: &impl std::fmt::Display, pattern: &str) -> String {
    format!("Type=regular-file\nPath={cache}\nMatchPattern={pattern}\n")
}

fn cache_target(cache: &impl std::fmt::Display, pattern: &str) -> String {
    format!("Type=regular-file\nPath={cache}\nMatchPattern={pattern}\nInstancesMax=2\n")
}

/// Replaces `dir` with the rendered set.
pub fn write(dir: &Path, files: &[(String, String)]) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(dir)?;
    for (name, content) in files {
        std::fs::write(dir.join(name), content)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url() -> UpdateUrl {
        UpdateUrl::try_from("http://10.0.2.2:8000/cell".to_owned()).unwrap()
    }

    fn layout() -> Layout {
        Layout::device()
    }

    #[test]
    fn downloads_are_verified_and_land_in_the_cache_only() {
        let files = render(Set::Download, &url(), &layout());
        assert_eq!(files.len(), 4);
        for (name, body) in &files {
            assert!(body.contains("Verify=yes"), "{name}");
            assert!(body.contains("Path=http://10.0.2.2:8000/cell\n"), "{name}");
            assert!(
                body.contains("[Target]\nType=regular-file\nPath=/var/cache/cell-update\n"),
                "{name}"
            );
            assert!(!body.contains("Type=partition"), "{name}");
        }
        assert!(files[0].1.contains("MatchPattern=cell_@v_@u.usr.raw.xz\n"));
    }

    #[test]
    fn installs_fill_the_slot_partitions_and_count_boots() {
        let files = render(Set::Install, &url(), &layout());
        let names: Vec<_> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "10-usr.transfer",
                "11-usr-verity.transfer",
                "12-usr-verity-sig.transfer",
                "20-uki.transfer"
            ]
        );
        assert!(files[1]
            .1
            .contains("MatchPartitionType=usr-verity\nMatchPattern=cell_@v_hash\n"));
        assert!(files[2].1.contains("MatchPattern=cell_@v_sig\n"));
        assert!(files[0].1.contains("[Source]\nType=regular-file\nPath=/var/cache/cell-update\nMatchPattern=cell_@v_@u.usr.raw\n"));
        let uki = &files[3].1;
        assert!(uki.contains("PathRelativeTo=boot\n"));
        assert!(uki.contains("TriesLeft=3\n"));
        for (name, body) in &files {
            assert!(
                body.contains("ProtectVersion=%A\n"),
                "{name} keeps the running version"
            );
        }
        assert!(uki.contains("MatchPattern=cell_@v+@l-@d.efi cell_@v+@l.efi cell_@v.efi\n"));
        assert!(!uki.contains("http"));
    }

    #[test]
    fn write_replaces_the_previous_set() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("install.d");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("stale.transfer"), "old").unwrap();
        write(&target, &render(Set::Check, &url(), &layout())).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(&target)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names.len(), 4);
        assert!(!names.contains(&"stale.transfer".to_owned()));
    }
}
