//! The DAV machine (systemd-nspawn@dav): Radicale's and lighttpd's configuration rendered
//! from the settings into /var/lib/cell/dav/config, a calendar, an address book and a
//! files home for every user, and the machine itself, running while calendar, files or
//! webdav is on. A change reloads only the service that reads the changed file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cell_model::{FieldError, Settings};
use cell_render::dav::{self, Dav, Reader};

use super::files::{ensure_dir, write_owned_if_changed, FileError, MachineIds};
use super::{Applier, ApplyError, ApplyFuture, Pass, UNCHANGED};
use crate::dav::{DAV_UID_BASE, DAV_UNIT};
use crate::system::Machine;

const MACHINE: &str = "dav";
/// Radicale's collections, as its multifilesystem storage lays them out.
const COLLECTION_ROOT: &str = "collections/collection-root";
/// What a new user's calendar and address book are made with (Radicale's `.Radicale.props`).
const CALENDAR_PROPS: &str = r#"{"C:supported-calendar-component-set": "VEVENT,VTODO,VJOURNAL", "D:displayname": "Calendar", "tag": "VCALENDAR"}"#;
const CONTACTS_PROPS: &str = r#"{"D:displayname": "Contacts", "tag": "VADDRESSBOOK"}"#;

pub struct DavApplier {
    system: Arc<dyn Machine>,
    /// /var/lib/cell/dav: config/, collections/, files/.
    state: PathBuf,
    /// The machine's tree (/usr/lib/machines/dav), whose users own its state.
    tree: PathBuf,
    /// Whether the state is given to the machine's users (always on the cell; off in
    /// unprivileged tests, where everything stays the test's own).
    machine_owners: bool,
    /// Services whose files changed but whose reload has not succeeded yet.
    pending: std::sync::Mutex<BTreeSet<Reader>>,
}

impl DavApplier {
    pub fn new(
        system: Arc<dyn Machine>,
        state: PathBuf,
        tree: PathBuf,
        machine_owners: bool,
    ) -> Self {
        Self {
            system,
            state,
            tree,
            machine_owners,
            pending: Default::default(),
        }
    }
}

/// The machine off, or its files and the users to provision (every user, disabled ones
/// too: their data is kept).
pub enum DavPlan {
    Off,
    On {
        files: Vec<(Reader, cell_render::File)>,
        users: Vec<String>,
    },
}

impl Applier for DavApplier {
    type Plan = DavPlan;

    fn name(&self) -> &'static str {
        "dav"
    }

    /// The machine's web servers trust the identity header: the firewall rule that keeps
    /// every process but the front door from their ports must be in place first.
    fn requires(&self) -> &'static [&'static str] {
        &[super::vpn::FIREWALL]
    }

    fn fail_closed(&self, _plan: &DavPlan) -> Option<DavPlan> {
        Some(DavPlan::Off)
    }

    fn plan(&self, settings: &Settings) -> Result<DavPlan, FieldError> {
        if !crate::dav::wanted(settings) {
            return Ok(DavPlan::Off);
        }
        let mut users: Vec<String> = settings.users.iter().map(|u| u.name.to_string()).collect();
        users.sort();
        let config = Dav {
            users: settings
                .users
                .iter()
                .filter(|u| !u.disabled)
                .map(|u| u.name.to_string())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        };
        let files = dav::render(&config)
            .map_err(|e| FieldError::new("services", format!("the DAV machine: {e}")))?;
        Ok(DavPlan::On { files, users })
    }

    fn apply<'a>(&'a self, plan: &'a DavPlan, _pass: Pass) -> ApplyFuture<'a> {
        Box::pin(async move {
            let running = self.running().await?;
            let DavPlan::On { files, users } = plan else {
                if running {
                    self.system.stop_unit(DAV_UNIT).await?;
                    return Ok("dav machine stopped".to_owned());
                }
                return Ok(UNCHANGED.to_owned());
            };
            let state = self.state.clone();
            let tree = self.tree.clone();
            let files = files.clone();
            let users = users.clone();
            let owners = if self.machine_owners {
                Owners::of_machine(&tree)?
            } else {
                Owners::all(super::files::own_ids())
            };
            let (changed, provisioned) =
                tokio::task::spawn_blocking(move || write_machine(&state, &owners, &files, &users))
                    .await
                    .map_err(|e| ApplyError::File {
                        path: self.state.clone(),
                        message: e.to_string(),
                    })??;
            let changed: BTreeSet<Reader> = {
                let mut pending = crate::sync::lock(&self.pending);
                pending.extend(changed);
                pending.clone()
            };
            let provisioned = if provisioned.is_empty() {
                String::new()
            } else {
                format!("; provisioned {}", provisioned.join(", "))
            };
            if !running {
                self.system.start_unit(DAV_UNIT).await?;
                crate::sync::lock(&self.pending).clear();
                return Ok(format!("dav machine started{provisioned}"));
            }
            let mut reloaded = Vec::new();
            for (reader, unit) in [
                (Reader::Radicale, "radicale.service"),
                (Reader::Lighttpd, "lighttpd.service"),
            ] {
                if changed.contains(&reader) {
                    self.system.reload_in_machine(MACHINE, unit).await?;
                    crate::sync::lock(&self.pending).remove(&reader);
                    reloaded.push(unit);
                }
            }
            Ok(match (reloaded.is_empty(), provisioned.is_empty()) {
                (true, true) => UNCHANGED.to_owned(),
                (true, false) => provisioned.trim_start_matches("; ").to_owned(),
                (false, _) => format!("reloaded {}{provisioned}", reloaded.join(", ")),
            })
        })
    }
}

impl DavApplier {
    async fn running(&self) -> Result<bool, ApplyError> {
        let health = self.system.unit_health(&[DAV_UNIT]).await?;
        Ok(health
            .first()
            .is_some_and(|h| matches!(h.state.as_str(), "active" | "activating" | "reloading")))
    }
}

/// Who owns what in the machine's state, as (uid, gid) on the cell.
#[derive(Clone, Copy)]
struct Owners {
    /// celld's own: it writes into these (it has no CAP_DAC_OVERRIDE).
    cell: (u32, u32),
    /// The machine's root: its configuration files.
    machine_root: (u32, u32),
    radicale: (u32, u32),
    /// lighttpd's user: the files homes.
    www: (u32, u32),
}

impl Owners {
    fn of_machine(tree: &Path) -> Result<Self, FileError> {
        let ids = MachineIds::read(tree, DAV_UID_BASE)?;
        Ok(Self {
            cell: super::files::own_ids(),
            machine_root: (DAV_UID_BASE, DAV_UID_BASE),
            radicale: (ids.user("radicale")?, ids.group("radicale")?),
            www: (ids.user("www-data")?, ids.group("www-data")?),
        })
    }

    fn all(ids: (u32, u32)) -> Self {
        Self {
            cell: ids,
            machine_root: ids,
            radicale: ids,
            www: ids,
        }
    }
}

/// Makes the state directories and every user's homes, writes every file whose bytes
/// differ; which services read a changed file, and which users were provisioned.
fn write_machine(
    state: &Path,
    owners: &Owners,
    files: &[(Reader, cell_render::File)],
    users: &[String],
) -> Result<(BTreeSet<Reader>, Vec<String>), FileError> {
    let Owners {
        cell,
        machine_root,
        radicale,
        www,
    } = *owners;
    let config = state.join("config");
    let collection_root = state.join(COLLECTION_ROOT);
    for (dir, owner, mode) in [
        (state.to_owned(), cell, 0o700),
        (config.clone(), cell, 0o755),
        (config.join("radicale"), cell, 0o755),
        (config.join("lighttpd"), cell, 0o755),
        (state.join("collections"), radicale, 0o750),
        (state.join("files"), cell, 0o755),
        (state.join("files/.props"), www, 0o700),
    ] {
        ensure_dir(&dir, owner, mode)?;
    }
    if collection_root.exists() {
        ensure_dir(&collection_root, radicale, 0o750)?;
    } else {
        borrowed(&state.join("collections"), cell, radicale, || {
            ensure_dir(&collection_root, radicale, 0o750)
        })?;
    }
    let mut changed = BTreeSet::new();
    for (reader, file) in files {
        if write_owned_if_changed(
            &config.join(file.path),
            &file.bytes,
            file.mode,
            machine_root,
        )? {
            changed.insert(*reader);
        }
    }
    let mut provisioned = Vec::new();
    for user in users {
        ensure_dir(&state.join("files").join(user), www, 0o700)?;
        if !collection_root.join(user).exists() {
            provision_collections(&collection_root, user, cell, radicale)?;
            provisioned.push(user.clone());
        }
    }
    Ok((changed, provisioned))
}

/// Runs `work` with `dir` (one of the machine's, owned by `owner`) given to celld for the
/// moment it takes, then hands it back: celld makes nothing in a directory it does not own
/// (it has no CAP_DAC_OVERRIDE).
fn borrowed(
    dir: &Path,
    cell: (u32, u32),
    owner: (u32, u32),
    work: impl FnOnce() -> Result<(), FileError>,
) -> Result<(), FileError> {
    chown(dir, cell)?;
    let done = work();
    let returned = chown(dir, owner);
    done.and(returned)
}

fn chown(path: &Path, owner: (u32, u32)) -> Result<(), FileError> {
    std::os::unix::fs::chown(path, Some(owner.0), Some(owner.1)).map_err(|e| FileError {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// A new user's calendar and address book, in Radicale's storage, handed over to Radicale
/// complete.
fn provision_collections(
    collection_root: &Path,
    user: &str,
    cell: (u32, u32),
    radicale: (u32, u32),
) -> Result<(), FileError> {
    let failed = |path: &Path| {
        let path = path.to_owned();
        move |e: std::io::Error| FileError {
            path,
            message: e.to_string(),
        }
    };
    borrowed(collection_root, cell, radicale, || {
        let home = collection_root.join(user);
        let mut made = vec![home.clone()];
        std::fs::create_dir(&home).map_err(failed(&home))?;
        for (name, props) in [("calendar", CALENDAR_PROPS), ("contacts", CONTACTS_PROPS)] {
            let collection = home.join(name);
            std::fs::create_dir(&collection).map_err(failed(&collection))?;
            let file = collection.join(".Radicale.props");
            cell_store::atomic::write(&file, props.as_bytes(), 0o600).map_err(|e| FileError {
                path: file.clone(),
                message: e.to_string(),
            })?;
            made.extend([collection, file]);
        }
        made.iter().try_for_each(|path| chown(path, radicale))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applier(dir: &Path) -> (DavApplier, Arc<crate::system::RecordedSystem>) {
        let tree = dir.join("tree");
        std::fs::create_dir_all(tree.join("etc")).unwrap();
        std::fs::write(
            tree.join("etc/group"),
            "root:x:0:\nwww-data:x:33:\nradicale:x:101:\n",
        )
        .unwrap();
        std::fs::write(
            tree.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nwww-data:x:33:33::/var/www:/bin/false\nradicale:x:100:101::/:/bin/false\n",
        )
        .unwrap();
        let system = Arc::new(crate::system::RecordedSystem::default());
        let applier = DavApplier::new(system.clone(), dir.join("dav"), tree, true);
        (applier, system)
    }

    fn settings() -> Settings {
        let mut settings = Settings::default();
        settings.services.calendar = true;
        for name in ["alice", "bob"] {
            settings.users.push(cell_model::User {
                name: cell_model::Username::parse(name).unwrap(),
                role: cell_model::Role::Admin,
                disabled: false,
                password_hash: cell_model::users::Secret::new("$argon2id$x".into()),
                totp_secret: None,
                recovery_codes: Vec::new(),
                app_passwords: Vec::new(),
                mail_aliases: Vec::new(),
                files_quota_mib: None,
            });
        }
        settings
    }

    #[test]
    fn off_without_any_dav_service() {
        let dir = tempfile::tempdir().unwrap();
        let (applier, _) = applier(dir.path());
        let mut settings = settings();
        settings.services.calendar = false;
        settings.services.mail = true;
        assert!(matches!(applier.plan(&settings).unwrap(), DavPlan::Off));
    }

    #[tokio::test]
    async fn users_are_provisioned_once_and_a_change_reloads_only_its_reader() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: giving files to the machine's users needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (applier, system) = applier(dir.path());
        let pass = Pass {
            generation: 1,
            verify: true,
        };
        let plan = applier.plan(&settings()).unwrap();
        assert_eq!(
            applier.apply(&plan, pass).await.unwrap(),
            "dav machine started; provisioned alice, bob"
        );
        // The recording system does not run what it starts; the machine is up from here.
        crate::system::System::restart_unit(system.as_ref(), DAV_UNIT)
            .await
            .unwrap();
        let props = dir
            .path()
            .join("dav/collections/collection-root/alice/calendar/.Radicale.props");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&props).unwrap().uid(), DAV_UID_BASE + 100);
        let root = dir.path().join("dav/collections/collection-root");
        assert_eq!(std::fs::metadata(&root).unwrap().uid(), DAV_UID_BASE + 100);
        let home = dir.path().join("dav/files/bob");
        assert_eq!(std::fs::metadata(&home).unwrap().uid(), DAV_UID_BASE + 33);
        // A user's own changes to their collections are theirs: not provisioned again.
        std::fs::remove_dir_all(root.join("alice/contacts")).unwrap();
        let before = system.requests().len();
        assert_eq!(applier.apply(&plan, pass).await.unwrap(), UNCHANGED);
        assert_eq!(system.requests().len(), before);
        assert!(!root.join("alice/contacts").exists());
        let mut disabled = settings();
        disabled.users[1].disabled = true;
        let plan = applier.plan(&disabled).unwrap();
        assert_eq!(
            applier.apply(&plan, pass).await.unwrap(),
            "reloaded lighttpd.service"
        );
    }
}
