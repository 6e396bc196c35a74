//! Files the appliers render for other services: written atomically, and only when their
//! bytes differ from what is there (so an unchanged file triggers no reload).

use std::path::PathBuf;

use super::ApplyError;

/// Writes `bytes` to `path` (creating its directory) unless it already holds them;
/// whether it wrote.
pub async fn write_if_changed(
    path: PathBuf,
    bytes: Vec<u8>,
    mode: u32,
) -> Result<bool, ApplyError> {
    let target = path.clone();
    tokio::task::spawn_blocking(move || -> Result<bool, String> {
        if std::fs::read(&target).is_ok_and(|old| old == bytes) {
            return Ok(false);
        }
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        cell_store::atomic::write(&target, &bytes, mode).map_err(|e| e.to_string())?;
        Ok(true)
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|written| written)
    .map_err(|message| ApplyError::File { path, message })
}

/// A file or directory the machines' appliers could not make, in a blocking task (small,
/// unlike [`ApplyError`], which it becomes).
#[derive(Debug)]
pub struct FileError {
    pub path: std::path::PathBuf,
    pub message: String,
}

impl From<FileError> for ApplyError {
    fn from(error: FileError) -> Self {
        ApplyError::File {
            path: error.path,
            message: error.message,
        }
    }
}

/// Writes `bytes` to `path` owned by `owner` (uid, gid) with `mode`, unless it already
/// holds them so; whether it wrote. For files a machine reads as one of its own users.
pub fn write_owned_if_changed(
    path: &std::path::Path,
    bytes: &[u8],
    mode: u32,
    owner: (u32, u32),
) -> Result<bool, FileError> {
    use std::os::unix::fs::MetadataExt;
    let same = std::fs::metadata(path).is_ok_and(|meta| {
        (meta.uid(), meta.gid()) == owner
            && meta.mode() & 0o7777 == mode
            && std::fs::read(path).is_ok_and(|old| old == bytes)
    });
    if same {
        return Ok(false);
    }
    cell_store::atomic::write_owned(path, bytes, mode, Some(owner)).map_err(|e| FileError {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    Ok(true)
}

/// Makes `dir` (and its parents) and gives it `owner` and `mode`.
pub fn ensure_dir(dir: &std::path::Path, owner: (u32, u32), mode: u32) -> Result<(), FileError> {
    use std::os::unix::fs::PermissionsExt;
    let failed = |e: std::io::Error| FileError {
        path: dir.to_owned(),
        message: e.to_string(),
    };
    use std::os::unix::fs::MetadataExt;
    std::fs::create_dir_all(dir).map_err(failed)?;
    let meta = std::fs::metadata(dir).map_err(failed)?;
    if meta.mode() & 0o7777 != mode {
        // celld may change the mode of its own directories only (no CAP_FOWNER).
        std::os::unix::fs::chown(dir, Some(0), Some(0)).map_err(failed)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).map_err(failed)?;
    }
    if (meta.uid(), meta.gid()) != owner {
        std::os::unix::fs::chown(dir, Some(owner.0), Some(owner.1)).map_err(failed)?;
    }
    Ok(())
}
