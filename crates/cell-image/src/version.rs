//! The image version: it names the image, its partitions and every published file.

use std::fmt;

/// GPT partition names hold at most 36 UTF-16 units and the longest one we write is
/// `cell_<version>_hash` (10 characters around the version).
pub const MAX_VERSION_LEN: usize = 36 - "cell_".len() - "_hash".len();

/// A version that fits every name it ends up in: `[A-Za-z0-9._-]`, starting with a digit,
/// at most [`MAX_VERSION_LEN`] characters. `+` is refused in particular because systemd-boot
/// reads what follows it in a UKI's name as the boot counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageVersion(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("the image version is empty")]
    Empty,
    #[error("image version {version:?} must start with a digit")]
    FirstNotDigit { version: String },
    #[error(
        "image version {version:?} contains '+': systemd-boot reads what follows '+' in a UKI's name as its boot counter"
    )]
    Plus { version: String },
    #[error("image version {version:?} contains {ch:?}: only A-Z, a-z, 0-9, '.' and '-' are allowed ('_' separates the version in file names and partition labels)")]
    BadChar { version: String, ch: char },
    #[error(
        "image version {version:?} is {len} characters long; at most {max} fit in the GPT partition name cell_<version>_hash (36 UTF-16 units)",
        max = MAX_VERSION_LEN
    )]
    TooLong { version: String, len: usize },
}

impl ImageVersion {
    pub fn parse(version: &str) -> Result<Self, VersionError> {
        let owned = || version.to_owned();
        let first = version.chars().next().ok_or(VersionError::Empty)?;
        if let Some(ch) = version
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-')))
        {
            return Err(if ch == '+' {
                VersionError::Plus { version: owned() }
            } else {
                VersionError::BadChar {
                    version: owned(),
                    ch,
                }
            });
        }
        if !first.is_ascii_digit() {
            return Err(VersionError::FirstNotDigit { version: owned() });
        }
        // Only ASCII is left, so bytes, characters and UTF-16 units agree.
        if version.len() > MAX_VERSION_LEN {
            return Err(VersionError::TooLong {
                version: owned(),
                len: version.len(),
            });
        }
        Ok(Self(owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ImageVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ImageVersion {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_versions_the_makefile_makes() {
        for v in [
            "0.1.0-53-ga5b0902f",
            "0.1.0-53-ga5b0902f.dirty",
            "9.9.9",
            "1",
            "2026.11.27",
        ] {
            assert_eq!(
                ImageVersion::parse(v).map(|v| v.to_string()),
                Ok(v.to_owned()),
                "{v}"
            );
        }
    }

    #[test]
    fn the_longest_version_still_fits_the_hash_partition_name() {
        assert_eq!(MAX_VERSION_LEN, 26);
        let longest = format!("1{}", "a".repeat(25));
        let v = ImageVersion::parse(&longest).expect("26 characters fit");
        assert_eq!(format!("cell_{v}_hash").encode_utf16().count(), 36);
        let too_long = format!("1{}", "a".repeat(26));
        assert_eq!(
            ImageVersion::parse(&too_long),
            Err(VersionError::TooLong {
                version: too_long.clone(),
                len: 27
            })
        );
        // The Makefile's 0.1.0-<count>-g<8 hex>.dirty fits while the commit count has at
        // most four digits (five without .dirty).
        assert!(ImageVersion::parse("0.1.0-9999-g0123abcd.dirty").is_ok());
        assert!(ImageVersion::parse("0.1.0-99999-g0123abcd").is_ok());
        assert!(ImageVersion::parse("0.1.0-10000-g0123abcd.dirty").is_err());
    }

    #[test]
    fn refuses_what_breaks_file_and_partition_names() {
        assert_eq!(ImageVersion::parse(""), Err(VersionError::Empty));
        assert!(matches!(
            ImageVersion::parse("v1.0"),
            Err(VersionError::FirstNotDigit { .. })
        ));
        assert!(matches!(
            ImageVersion::parse(".1"),
            Err(VersionError::FirstNotDigit { .. })
        ));
        assert!(matches!(
            ImageVersion::parse("1.0+3"),
            Err(VersionError::Plus { .. })
        ));
        for (v, ch) in [
            ("1.0/..", '/'),
            ("1_2", '_'),
            ("1 0", ' '),
            ("1.0é", 'é'),
            ("1\n", '\n'),
            ("1:2", ':'),
        ] {
            assert_eq!(
                ImageVersion::parse(v),
                Err(VersionError::BadChar {
                    version: v.to_owned(),
                    ch
                }),
                "{v:?}"
            );
        }
    }

    #[test]
    fn errors_name_the_version_and_the_rule() {
        let e = ImageVersion::parse("1.0+1").expect_err("plus").to_string();
        assert!(e.contains("\"1.0+1\"") && e.contains("boot counter"), "{e}");
        let e = ImageVersion::parse(&"1".repeat(30))
            .expect_err("long")
            .to_string();
        assert!(
            e.contains("30 characters") && e.contains("at most 26"),
            "{e}"
        );
    }
}
