//! Whether a time zone exists on this system: the model checks a name's form, this checks
//! that tzdata has it, so that a typo is refused at once instead of failing when applied.

use std::path::Path;

use cell_model::names::Timezone;

const ZONEINFO: &str = "/usr/share/zoneinfo";

#[derive(Debug, thiserror::Error)]
#[error("'{zone}' is not a known time zone; use a name such as Europe/Berlin")]
pub struct UnknownZone {
    pub zone: String,
}

/// Refuses a zone tzdata does not have. Without a zoneinfo directory at all there is
/// nothing to check against, and the name is taken on trust.
pub fn check(zone: &Timezone) -> Result<(), UnknownZone> {
    check_in(Path::new(ZONEINFO), zone)
}

fn check_in(zoneinfo: &Path, zone: &Timezone) -> Result<(), UnknownZone> {
    if !zoneinfo.is_dir() {
        tracing::warn!(dir = %zoneinfo.display(), "no time zone database; cannot check zone names");
        return Ok(());
    }
    // The name's form (letters, digits, `_+-`, `/` between parts) keeps this inside the
    // directory.
    if zoneinfo.join(zone.as_str()).is_file() {
        Ok(())
    } else {
        Err(UnknownZone {
            zone: zone.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_zones_pass_and_unknown_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("Europe")).unwrap();
        std::fs::write(dir.path().join("Europe/Berlin"), b"TZif").unwrap();
        let zone = |s: &str| Timezone::parse(s).unwrap();
        assert!(check_in(dir.path(), &zone("Europe/Berlin")).is_ok());
        let err = check_in(dir.path(), &zone("Mars/Olympus")).unwrap_err();
        assert!(err.to_string().contains("Mars/Olympus"), "{err}");
        assert!(
            check_in(dir.path(), &zone("Europe")).is_err(),
            "a directory is not a zone"
        );
        assert!(check_in(&dir.path().join("missing"), &zone("Mars/Olympus")).is_ok());
    }
}
