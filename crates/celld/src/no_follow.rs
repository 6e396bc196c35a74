//! Walking directories that the service machines own without ever following a link
//! their processes could put there: every directory is opened with O_NOFOLLOW and
//! O_DIRECTORY, every entry relative to its directory's descriptor, starting from a
//! directory only the cell's root can change.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Component, Path};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

/// A directory opened without following a link, whose entries are opened relative to it:
/// one swapped for a link while it is walked is never followed.
pub struct OpenDir(OwnedFd);

/// What an entry of an [`OpenDir`] is, opened.
pub enum Child {
    Dir(OpenDir),
    File(File),
    /// A link, a device, a pipe, or gone since it was listed.
    Other,
}

fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

impl OpenDir {
    /// The directory `path` below `base` (a directory only the cell's root can change),
    /// each step below it taken without following a link; none when a step is missing or
    /// is not a directory.
    pub fn beneath(base: &Path, path: &Path) -> io::Result<Option<Self>> {
        let Ok(relative) = path.strip_prefix(base) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not below {}", path.display(), base.display()),
            ));
        };
        let mut dir = match nix::fcntl::open(
            base,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => Self(fd),
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        for component in relative.components() {
            let Component::Normal(name) = component else {
                return Ok(None);
            };
            match dir.child(name)? {
                Child::Dir(next) => dir = next,
                _ => return Ok(None),
            }
        }
        Ok(Some(dir))
    }

    /// Its entries' names, sorted.
    pub fn names(&self) -> io::Result<Vec<OsString>> {
        use std::os::unix::ffi::OsStrExt;
        // A description of its own, so that listing does not move a shared offset.
        let mut dir = nix::dir::Dir::openat(&self.0, ".", dir_flags(), Mode::empty())?;
        let mut names = Vec::new();
        for entry in dir.iter() {
            let bytes = entry?.file_name().to_bytes().to_owned();
            if bytes != b"." && bytes != b".." {
                names.push(OsStr::from_bytes(&bytes).to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    pub fn child(&self, name: &OsStr) -> io::Result<Child> {
        match nix::fcntl::openat(&self.0, name, dir_flags(), Mode::empty()) {
            Ok(fd) => return Ok(Child::Dir(Self(fd))),
            Err(Errno::ENOTDIR) => {}
            Err(Errno::ELOOP | Errno::ENOENT) => return Ok(Child::Other),
            Err(e) => return Err(e.into()),
        }
        // Never waits on a pipe someone left there.
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
        match nix::fcntl::openat(&self.0, name, flags, Mode::empty()) {
            Ok(fd) => {
                let file = File::from(fd);
                Ok(if file.metadata()?.is_file() {
                    Child::File(file)
                } else {
                    Child::Other
                })
            }
            Err(Errno::ELOOP | Errno::ENOENT | Errno::ENXIO) => Ok(Child::Other),
            Err(e) => Err(e.into()),
        }
    }

    /// The bytes of every regular file below it (links not followed, not counted).
    pub fn usage(&self) -> io::Result<u64> {
        use nix::fcntl::AtFlags;
        use nix::sys::stat::SFlag;
        let mut total = 0u64;
        for name in self.names()? {
            let stat = match nix::sys::stat::fstatat(
                &self.0,
                name.as_os_str(),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            ) {
                Ok(stat) => stat,
                // Moved or deleted while we walk (the user is working in it).
                Err(Errno::ENOENT) => continue,
                Err(e) => return Err(e.into()),
            };
            match SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT {
                SFlag::S_IFREG => {
                    total = total.saturating_add(u64::try_from(stat.st_size).unwrap_or(0));
                }
                SFlag::S_IFDIR => {
                    if let Child::Dir(sub) = self.child(&name)? {
                        total = total.saturating_add(sub.usage()?);
                    }
                }
                _ => {}
            }
        }
        Ok(total)
    }
}
