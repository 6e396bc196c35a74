//! The settings store: one TOML document per generation under the state directory.
//!
//! ```text
//! /var/lib/cell/
//!   settings.toml            the current generation: schema, generation, settings
//!   history/<N>.toml         the last HISTORY_KEEP generations, the current one included
//!   lock                     held (flock) by the one process that owns the store
//! ```
//! Every write is atomic ([`atomic::write`]); a crash at any point leaves either the old
//! generation or the new one. Documents written by an older release are migrated on load.

pub mod atomic;
mod migrate;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use cell_model::Settings;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

pub use migrate::{Migration, SCHEMA};

const SETTINGS_FILE: &str = "settings.toml";
const HISTORY_DIR: &str = "history";
const LOCK_FILE: &str = "lock";
/// How many generations the history keeps, the current one included.
pub const HISTORY_KEEP: usize = 10;
/// Settings may hold names of things only the admin should know: owner-only.
const FILE_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o700;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the settings store {path} is in use by another process")]
    Locked { path: PathBuf },
    #[error("{path} is not a valid settings document: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path} has schema {found}, newer than this release understands ({supported}); refusing to touch it")]
    FutureSchema {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("migrating {path} from schema {from}: {message}")]
    Migrate {
        path: PathBuf,
        from: u32,
        message: String,
    },
    #[error("generation {generation} is not in the history")]
    NoSuchGeneration { generation: u64 },
    #[error("serialising the settings: {0}")]
    Serialize(#[from] toml::ser::Error),
}

impl StoreError {
    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }
}

/// One generation of the settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// 0 for the built-in defaults of a cell that has never stored anything; every
    /// commit that changes something adds one.
    pub generation: u64,
    pub settings: Settings,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    schema: u32,
    generation: u64,
    settings: Settings,
}

/// The open store. Only one process can hold it.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    current: Stored,
    _lock: Flock<File>,
}

impl Store {
    /// Opens (creating if needed) the store in `dir` and loads the current generation.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir.join(HISTORY_DIR))
            .map_err(|e| StoreError::io("creating", dir, e))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(FILE_MODE)
            .open(&lock_path)
            .map_err(|e| StoreError::io("opening", &lock_path, e))?;
        let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock).map_err(|_| {
            StoreError::Locked {
                path: dir.to_owned(),
            }
        })?;
        let current = load(&dir.join(SETTINGS_FILE), migrate::CHAIN)?.unwrap_or_else(|| Stored {
            generation: 0,
            settings: Settings::default(),
        });
        let store = Self {
            dir: dir.to_owned(),
            current,
            _lock: lock,
        };
        if store.current.generation > 0 {
            store.ensure_in_history()?;
        }
        Ok(store)
    }

    pub fn current(&self) -> &Stored {
        &self.current
    }

    /// Stores `settings` as the next generation and returns it. Storing settings equal to
    /// the current ones changes nothing and returns the current generation.
    pub fn commit(&mut self, settings: Settings) -> Result<&Stored, StoreError> {
        if settings == self.current.settings && self.current.generation > 0 {
            return Ok(&self.current);
        }
        let next = Stored {
            generation: self.current.generation + 1,
            settings,
        };
        let bytes = render(&next)?;
        atomic::write(&self.dir.join(SETTINGS_FILE), &bytes, FILE_MODE)?;
        tracing::info!(generation = next.generation, "settings committed");
        self.current = next;
        self.ensure_in_history()?;
        self.prune_history()?;
        Ok(&self.current)
    }

    /// Generations in the history, oldest first.
    pub fn history(&self) -> Result<Vec<u64>, StoreError> {
        let dir = self.dir.join(HISTORY_DIR);
        let entries = std::fs::read_dir(&dir).map_err(|e| StoreError::io("listing", &dir, e))?;
        let mut generations = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io("listing", &dir, e))?;
            let name = entry.file_name();
            if let Some(generation) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".toml"))
                .and_then(|n| n.parse::<u64>().ok())
            {
                generations.push(generation);
            }
        }
        generations.sort_unstable();
        Ok(generations)
    }

    /// One generation from the history.
    pub fn generation(&self, generation: u64) -> Result<Stored, StoreError> {
        load(&self.history_path(generation), migrate::CHAIN)?
            .ok_or(StoreError::NoSuchGeneration { generation })
    }

    fn history_path(&self, generation: u64) -> PathBuf {
        self.dir
            .join(HISTORY_DIR)
            .join(format!("{generation}.toml"))
    }

    fn ensure_in_history(&self) -> Result<(), StoreError> {
        let path = self.history_path(self.current.generation);
        if !path.exists() {
            atomic::write(&path, &render(&self.current)?, FILE_MODE)?;
        }
        Ok(())
    }

    fn prune_history(&self) -> Result<(), StoreError> {
        let generations = self.history()?;
        let excess = generations.len().saturating_sub(HISTORY_KEEP);
        for generation in &generations[..excess] {
            let path = self.history_path(*generation);
            std::fs::remove_file(&path).map_err(|e| StoreError::io("removing", &path, e))?;
        }
        if excess > 0 {
            atomic::sync_dir(&self.dir.join(HISTORY_DIR))?;
        }
        Ok(())
    }
}

fn render(stored: &Stored) -> Result<Vec<u8>, StoreError> {
    let document = Document {
        schema: SCHEMA,
        generation: stored.generation,
        settings: stored.settings.clone(),
    };
    let mut text = String::from("# Personal Internet Cell settings. Written by celld; edit through the web UI, API or cellctl.\n");
    text.push_str(&toml::to_string(&document)?);
    Ok(text.into_bytes())
}

/// Reads the document at `path`, migrating it to the current schema; `None` if absent.
fn load(path: &Path, chain: &[Migration]) -> Result<Option<Stored>, StoreError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("reading", path, e)),
    };
    let parse_error = |message: String| StoreError::Parse {
        path: path.to_owned(),
        message,
    };
    let table: toml::Table = toml::from_str(&text).map_err(|e| parse_error(e.to_string()))?;
    let table = migrate::to_current(table, chain, path)?;
    let document: Document = table
        .try_into()
        .map_err(|e: toml::de::Error| parse_error(e.to_string()))?;
    Ok(Some(Stored {
        generation: document.generation,
        settings: document.settings,
    }))
}

#[cfg(test)]
mod tests {
    use cell_model::names::CellName;

    use super::*;

    fn named(name: &str) -> Settings {
        let mut settings = Settings::default();
        settings.identity.cell_name = CellName::parse(name).unwrap();
        settings
    }

    #[test]
    fn a_new_store_holds_the_defaults_at_generation_zero() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.current().generation, 0);
        assert_eq!(store.current().settings, Settings::default());
        assert!(!dir.path().join(SETTINGS_FILE).exists());
    }

    #[test]
    fn commits_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = Store::open(dir.path()).unwrap();
            assert_eq!(store.commit(named("home")).unwrap().generation, 1);
            assert_eq!(store.commit(named("office")).unwrap().generation, 2);
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.current().generation, 2);
        assert_eq!(store.current().settings, named("office"));
    }

    #[test]
    fn committing_the_same_settings_adds_no_generation() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store.commit(named("home")).unwrap();
        assert_eq!(store.commit(named("home")).unwrap().generation, 1);
        assert_eq!(store.history().unwrap(), vec![1]);
    }

    #[test]
    fn history_keeps_the_last_ten_generations() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        for i in 1..=13 {
            store.commit(named(&format!("c{i}"))).unwrap();
        }
        assert_eq!(store.history().unwrap(), (4..=13).collect::<Vec<_>>());
        assert_eq!(store.generation(4).unwrap().settings, named("c4"));
        assert!(matches!(
            store.generation(3),
            Err(StoreError::NoSuchGeneration { generation: 3 })
        ));
    }

    #[test]
    fn only_one_process_holds_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        let second = Store::open(dir.path()).unwrap_err();
        assert!(matches!(second, StoreError::Locked { .. }), "{second}");
    }

    #[test]
    fn files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store.commit(named("home")).unwrap();
        for path in [
            dir.path().join(SETTINGS_FILE),
            dir.path().join("history/1.toml"),
        ] {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
    }

    #[test]
    fn a_corrupt_document_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(SETTINGS_FILE),
            "schema = 1\ngeneration = \"x\"\n",
        )
        .unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Parse { .. }), "{err}");
        assert!(err.to_string().contains("settings.toml"), "{err}");
    }

    #[test]
    fn an_invalid_value_on_disk_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store.commit(named("home")).unwrap();
        drop(store);
        let path = dir.path().join(SETTINGS_FILE);
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("\"home\"", "\"bad name\"");
        std::fs::write(&path, text).unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("bad name"), "{err}");
    }

    #[test]
    fn a_document_from_a_newer_release_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SETTINGS_FILE);
        let text = format!("schema = {}\ngeneration = 7\n", SCHEMA + 1);
        std::fs::write(&path, &text).unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::FutureSchema { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }
}
