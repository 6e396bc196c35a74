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
