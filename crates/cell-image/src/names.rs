//! The names of published files and the `SHA256SUMS` manifest systemd-sysupdate reads.

use std::fmt;

use crate::gpt::normalize_uuid;
use crate::version::ImageVersion;

/// The manifest and its detached signature; never listed in the manifest itself.
pub const SHA256SUMS: &str = "SHA256SUMS";
pub const SHA256SUMS_GPG: &str = "SHA256SUMS.gpg";

/// The three partitions of one version of `/usr` (x86-64 type GUIDs from the Discoverable
/// Partitions Specification).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartKind {
    Usr,
    UsrVerity,
    UsrVeritySig,
}

impl PartKind {
    pub const ALL: [PartKind; 3] = [PartKind::Usr, PartKind::UsrVerity, PartKind::UsrVeritySig];

    pub fn type_guid(self) -> &'static str {
        match self {
            PartKind::Usr => "8484680C-9521-48C6-9C11-B0720656F69E",
            PartKind::UsrVerity => "77FF5F63-E7B6-4633-ACF4-1565B864C0E6",
            PartKind::UsrVeritySig => "E7BB33FB-06CF-4E81-8273-E543B413E2E2",
        }
    }

    /// The suffix after `cell_<V>` in the partition's GPT name.
    fn name_suffix(self) -> &'static str {
        match self {
            PartKind::Usr => "",
            PartKind::UsrVerity => "_hash",
            PartKind::UsrVeritySig => "_sig",
        }
    }

    /// The suffix after `cell_<V>_<uuid>` in the published file's name.
    fn file_suffix(self) -> &'static str {
        match self {
            PartKind::Usr => ".usr.raw.xz",
            PartKind::UsrVerity => ".usr-verity.raw.xz",
            PartKind::UsrVeritySig => ".usr-verity-sig.raw.xz",
        }
    }

    /// The GPT partition name the image gives this partition of version `v`.
    pub fn partition_name(self, v: &ImageVersion) -> String {
        format!("cell_{v}{}", self.name_suffix())
    }

    /// `cell_<V>_<uuid>.usr.raw.xz` and the like; `uuid` lower case with dashes.
    pub fn file_name(self, v: &ImageVersion, uuid: &str) -> String {
        format!("cell_{v}_{uuid}{}", self.file_suffix())
    }
}

impl fmt::Display for PartKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PartKind::Usr => "usr",
            PartKind::UsrVerity => "usr-verity",
            PartKind::UsrVeritySig => "usr-verity-sig",
        })
    }
}

/// The unified kernel image, published uncompressed.
pub fn uki_file_name(v: &ImageVersion) -> String {
    format!("cell_{v}.efi")
}

/// Whether `name` is one of the files [`PartKind::file_name`] or [`uki_file_name`] make for
/// version `v` — exactly, so that version `1` does not claim the files of version `1.1`.
pub fn belongs_to_version(name: &str, v: &ImageVersion) -> bool {
    if name == uki_file_name(v) {
        return true;
    }
    let Some(rest) = name.strip_prefix(&format!("cell_{v}_")) else {
        return false;
    };
    let (Some(uuid), Some(suffix)) = (rest.get(..36), rest.get(36..)) else {
        return false;
    };
    normalize_uuid(uuid).as_deref() == Some(uuid)
        && PartKind::ALL.iter().any(|k| k.file_suffix() == suffix)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SumsError {
    #[error("cannot list {name:?} in SHA256SUMS: names with line breaks, backslashes or other control characters are refused")]
    Name { name: String },
    #[error("{name:?} is listed twice")]
    Duplicate { name: String },
}

/// `SHA256SUMS` as `sha256sum` writes it and systemd-sysupdate reads it: `<64 hex>  <name>\n`,
/// sorted by name.
pub fn format_sha256sums(entries: &[(String, [u8; 32])]) -> Result<String, SumsError> {
    let mut sorted: Vec<&(String, [u8; 32])> = entries.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::with_capacity(sorted.len() * 128);
    for (i, (name, digest)) in sorted.iter().enumerate() {
        if name.is_empty() || name.chars().any(|c| c.is_control() || c == '\\') {
            return Err(SumsError::Name { name: name.clone() });
        }
        if i > 0 && sorted[i - 1].0 == *name {
            return Err(SumsError::Duplicate { name: name.clone() });
        }
        out.push_str(&hex::encode(digest));
        out.push_str("  ");
        out.push_str(name);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> ImageVersion {
        ImageVersion::parse(s).expect("valid version")
    }

    #[test]
    fn file_names_follow_the_sysupdate_patterns() {
        let ver = v("0.1.0-53-ga5b0902f");
        let uuid = "0a39aad1-2409-c7c5-6c0c-d6e1b7ee0a56";
        assert_eq!(
            PartKind::Usr.file_name(&ver, uuid),
            "cell_0.1.0-53-ga5b0902f_0a39aad1-2409-c7c5-6c0c-d6e1b7ee0a56.usr.raw.xz"
        );
        assert_eq!(
            PartKind::UsrVerity.file_name(&ver, uuid),
            "cell_0.1.0-53-ga5b0902f_0a39aad1-2409-c7c5-6c0c-d6e1b7ee0a56.usr-verity.raw.xz"
        );
        assert_eq!(
            PartKind::UsrVeritySig.file_name(&ver, uuid),
            "cell_0.1.0-53-ga5b0902f_0a39aad1-2409-c7c5-6c0c-d6e1b7ee0a56.usr-verity-sig.raw.xz"
        );
        assert_eq!(uki_file_name(&ver), "cell_0.1.0-53-ga5b0902f.efi");
        assert_eq!(
            PartKind::Usr.partition_name(&ver),
            "cell_0.1.0-53-ga5b0902f"
        );
        assert_eq!(
            PartKind::UsrVerity.partition_name(&ver),
            "cell_0.1.0-53-ga5b0902f_hash"
        );
        assert_eq!(
            PartKind::UsrVeritySig.partition_name(&ver),
            "cell_0.1.0-53-ga5b0902f_sig"
        );
    }

    #[test]
    fn files_belong_to_exactly_one_version() {
        let one = v("1");
        let uuid = "0a39aad1-2409-c7c5-6c0c-d6e1b7ee0a56";
        for kind in PartKind::ALL {
            assert!(belongs_to_version(&kind.file_name(&one, uuid), &one));
            assert!(!belongs_to_version(&kind.file_name(&v("1.1"), uuid), &one));
        }
        assert!(belongs_to_version("cell_1.efi", &one));
        for other in [
            "cell_1.efi.tmp",
            "cell_10.efi",
            "cell_1_0A39AAD1-2409-C7C5-6C0C-D6E1B7EE0A56.usr.raw.xz",
            "cell_1_0a39aad1-2409-c7c5-6c0c-d6e1b7ee0a56.usr.raw",
            "cell_1_x.usr.raw.xz",
            "cell_1_",
            "cell_1_0a39aad1-2409-c7c5-6c0c-d6e1b7ee0aé.usr.raw.xz",
            "SHA256SUMS",
        ] {
            assert!(!belongs_to_version(other, &one), "{other}");
        }
    }

    #[test]
    fn sums_are_sorted_two_spaced_and_newline_terminated() {
        let entries = vec![
            ("cell_2.efi".to_owned(), [0xab; 32]),
            ("cell_10.efi".to_owned(), [0x01; 32]),
        ];
        let text = format_sha256sums(&entries).expect("formats");
        assert_eq!(
            text,
            format!(
                "{}  cell_10.efi\n{}  cell_2.efi\n",
                "01".repeat(32),
                "ab".repeat(32)
            )
        );
        assert_eq!(format_sha256sums(&[]).expect("empty"), "");
    }

    #[test]
    fn sums_refuse_names_sha256sum_would_escape() {
        for name in ["a\nb", "a\\b", "tab\there", ""] {
            let err = format_sha256sums(&[(name.to_owned(), [0; 32])]).expect_err(name);
            assert_eq!(
                err,
                SumsError::Name {
                    name: name.to_owned()
                }
            );
        }
        let twice = [("a".to_owned(), [0; 32]), ("a".to_owned(), [1; 32])];
        assert_eq!(
            format_sha256sums(&twice),
            Err(SumsError::Duplicate {
                name: "a".to_owned()
            })
        );
    }
}
