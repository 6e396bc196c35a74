//! Writing a file so that, whatever happens, readers see the old content or the new one:
//! temporary file, fsync, rename over the target, fsync the directory.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::StoreError;

/// Replaces `path` with `bytes`, created with permission `mode`.
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    write_owned(path, bytes, mode, None)
}

/// Like [`write`], the file owned by `owner` (uid, gid) from the moment it appears, so a
/// reader that may only read it as that owner never meets it unreadable.
pub fn write_owned(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<(), StoreError> {
    let dir = path.parent().ok_or_else(|| {
        StoreError::io(
            "locating the directory of",
            path,
            std::io::ErrorKind::InvalidInput.into(),
        )
    })?;
    let name = path
        .file_name()
        .ok_or_else(|| StoreError::io("naming", path, std::io::ErrorKind::InvalidInput.into()))?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(|e| StoreError::io("creating", &tmp, e))?;
        if let Some((uid, gid)) = owner {
            // The mode as asked, whatever the umask, while the file is still ours to
            // change (after the chown it is not, without CAP_FOWNER).
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(mode))
                .map_err(|e| StoreError::io("setting the mode of", &tmp, e))?;
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))
                .map_err(|e| StoreError::io("giving away", &tmp, e))?;
        }
        file.write_all(bytes)
            .map_err(|e| StoreError::io("writing", &tmp, e))?;
        file.sync_all()
            .map_err(|e| StoreError::io("flushing", &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| StoreError::io("renaming into place", path, e))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        // Best effort: a leftover temporary file is harmless, it is overwritten next time.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Makes a rename or removal in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("flushing the directory", dir, e))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn replaces_content_and_sets_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.toml");
        write(&path, b"one", 0o600).unwrap();
        write(&path, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temporary file left behind");
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.toml");
        write(&path, b"old", 0o600).unwrap();
        // Renaming a file over a directory fails: the old content must survive.
        let blocked = dir.path().join("sub");
        std::fs::create_dir(&blocked).unwrap();
        assert!(write(&blocked, b"new", 0o600).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }
}
