//! cell-recovery: the menu on the local console and the serial port that works when
//! celld, cell-web or the network do not: version, addresses, web UI address and health;
//! an administrator's password reset; the network back to DHCP; the previous version;
//! a factory reset; a root shell for whoever is at the machine.

pub mod console;
pub mod machine;

use std::io;
use std::path::Path;

/// Written by the console, acted on by `cell-factory-reset.service` early in the next boot.
pub const FACTORY_RESET_MARKER: &str = "/var/lib/cell-factory-reset";

/// Wipes the cell's state (everything in `state_dir`, the directory itself stays) when
/// `marker` asks for it, then removes the marker. Returns whether it wiped.
pub fn factory_reset_now(state_dir: &Path, marker: &Path) -> io::Result<bool> {
    if !marker.exists() {
        return Ok(false);
    }
    match std::fs::read_dir(state_dir) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry?;
                let path = entry.path();
                if entry.file_type()?.is_dir() {
                    std::fs::remove_dir_all(&path)?;
                } else {
                    std::fs::remove_file(&path)?;
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::remove_file(marker)?;
    nix::unistd::sync();
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_factory_reset_wipes_the_state_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("cell");
        std::fs::create_dir_all(state.join("secrets")).unwrap();
        std::fs::write(state.join("settings.toml"), "x").unwrap();
        std::fs::write(state.join("secrets/wg-server.age"), "x").unwrap();
        let marker = dir.path().join("cell-factory-reset");
        assert!(!factory_reset_now(&state, &marker).unwrap());
        assert!(
            state.join("settings.toml").exists(),
            "no marker, nothing wiped"
        );
        std::fs::write(&marker, "").unwrap();
        assert!(factory_reset_now(&state, &marker).unwrap());
        assert_eq!(std::fs::read_dir(&state).unwrap().count(), 0);
        assert!(state.exists() && !marker.exists());
    }
}
