//! Files the appliers render for other services: written atomically, and only when their
//! bytes differ from what is there (so an unchanged file triggers no reload).

use std::path::{Path, PathBuf};

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
        let (uid, gid) = own_ids();
        std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(failed)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).map_err(failed)?;
    }
    if (meta.uid(), meta.gid()) != owner {
        std::os::unix::fs::chown(dir, Some(owner.0), Some(owner.1)).map_err(failed)?;
    }
    Ok(())
}

/// celld's own user and group (root's on the cell).
pub fn own_ids() -> (u32, u32) {
    (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    )
}

/// The machine's users or groups (name, id inside the machine) from its tree's
/// /etc/passwd or /etc/group (`file`).
pub fn machine_ids(tree: &Path, file: &str) -> Result<Vec<(String, u32)>, FileError> {
    let path = tree.join("etc").join(file);
    let text = std::fs::read_to_string(&path).map_err(|e| FileError {
        path: path.clone(),
        message: e.to_string(),
    })?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let gid = fields.nth(1)?.parse().ok()?;
            Some((name.to_owned(), gid))
        })
        .collect())
}

/// A machine's users and groups, as ids on the cell (shifted by the machine's base).
pub struct MachineIds<'a> {
    tree: &'a Path,
    base: u32,
    users: Vec<(String, u32)>,
    groups: Vec<(String, u32)>,
}

impl<'a> MachineIds<'a> {
    /// Reads the tree's /etc/passwd and /etc/group; `base` is the machine's root on the
    /// cell.
    pub fn read(tree: &'a Path, base: u32) -> Result<Self, FileError> {
        Ok(Self {
            tree,
            base,
            users: machine_ids(tree, "passwd")?,
            groups: machine_ids(tree, "group")?,
        })
    }

    pub fn user(&self, name: &str) -> Result<u32, FileError> {
        self.find(&self.users, name, "passwd")
    }

    pub fn group(&self, name: &str) -> Result<u32, FileError> {
        self.find(&self.groups, name, "group")
    }

    fn find(&self, ids: &[(String, u32)], name: &str, file: &str) -> Result<u32, FileError> {
        ids.iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| self.base + id)
            .ok_or_else(|| FileError {
                path: self.tree.join("etc").join(file),
                message: format!("the machine has no {name}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_read_from_the_machine_tree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\ndovecot:x:105:\nbroken\n",
        )
        .unwrap();
        assert_eq!(
            machine_ids(dir.path(), "group").unwrap(),
            vec![("root".to_owned(), 0), ("dovecot".to_owned(), 105)]
        );
    }
}
