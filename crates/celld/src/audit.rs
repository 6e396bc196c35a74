//! The audit log: append-only JSON lines, each entry carrying the hash of the one before,
//! so that editing, inserting or deleting an entry breaks the chain `verify` walks.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use cell_model::api::{AuditEntry, AuditVerification};
use sha2::{Digest, Sha256};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} line {line} is not an audit entry: {source}")]
    Parse {
        path: PathBuf,
        line: u64,
        #[source]
        source: serde_json::Error,
    },
}

/// What a new entry says; the log adds its position, time and chain.
#[derive(Debug, Clone, Default)]
pub struct Record {
    pub actor: String,
    pub source: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub changes: BTreeMap<String, String>,
}

impl Record {
    pub fn new(actor: impl Into<String>, action: impl Into<String>) -> Self {
        Self {
            actor: actor.into(),
            action: action.into(),
            ..Self::default()
        }
    }

    pub fn source(mut self, source: Option<String>) -> Self {
        self.source = source;
        self
    }

    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    pub fn change(mut self, field: impl Into<String>, what: impl Into<String>) -> Self {
        self.changes.insert(field.into(), what.into());
        self
    }
}

/// Which entries to list.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Filter {
    pub actor: Option<String>,
    /// Matches actions that start with it: `user` finds `user.create`, `user.delete`…
    pub action: Option<String>,
    /// Free text searched in target and changes.
    pub q: Option<String>,
    /// At most this many, newest first (default 200).
    pub limit: Option<usize>,
}

#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: File,
    last_hash: String,
    next_seq: u64,
    /// An entry whose append failed after its change was stored: written before any other.
    owed: Option<AuditEntry>,
}

impl AuditLog {
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let io = |action, source| AuditError::Io {
            action,
            path: path.to_owned(),
            source,
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| io("opening", e))?;
        let torn = set_aside_torn_tail(path, &file)?;
        // Only the last entry matters for appending; damage elsewhere is for `verify` to
        // report, and must not keep the cell from starting.
        let (last_hash, next_seq) = read_entries(path)?
            .last()
            .map(|e| (e.hash.clone(), e.seq + 1))
            .unwrap_or_else(|| (GENESIS.to_owned(), 1));
        let mut log = Self {
            path: path.to_owned(),
            file,
            last_hash,
            next_seq,
            owed: None,
        };
        if let Some((bytes, kept)) = torn {
            tracing::warn!(bytes, kept = %kept.display(), "the audit log ended in a torn entry; set it aside");
            log.append(
                Record::new("celld", "audit.recovered")
                    .change("torn_bytes", bytes.to_string())
                    .change("kept_in", kept.display().to_string()),
            )?;
        }
        Ok(log)
    }

    /// Appends one entry and makes it durable before returning it.
    pub fn append(&mut self, record: Record) -> Result<AuditEntry, AuditError> {
        self.pay_owed()?;
        let entry = self.prepare(record);
        self.write_prepared(entry.clone())?;
        Ok(entry)
    }

    /// The next entry for `record`, chained to the last one, not yet written: a commit
    /// records it with the settings before writing it here.
    pub fn prepare(&self, record: Record) -> AuditEntry {
        let mut entry = AuditEntry {
            seq: self.next_seq,
            time: jiff::Timestamp::now()
                .round(jiff::Unit::Millisecond)
                .map_or_else(|_| jiff::Timestamp::now().to_string(), |t| t.to_string()),
            actor: record.actor,
            source: record.source,
            action: record.action,
            target: record.target,
            changes: record.changes,
            prev: self.last_hash.clone(),
            hash: String::new(),
        };
        entry.hash = entry_hash(&entry);
        entry
    }

    /// Writes a prepared entry durably. When that fails the entry is owed: the log's
    /// position moves past it anyway and the next append writes it first, so the chain
    /// stays in order.
    pub fn write_prepared(&mut self, entry: AuditEntry) -> Result<(), AuditError> {
        self.last_hash = entry.hash.clone();
        self.next_seq = entry.seq + 1;
        if let Err(error) = self.write_line(&entry) {
            self.owed = Some(entry);
            return Err(error);
        }
        tracing::info!(seq = entry.seq, actor = %entry.actor, action = %entry.action, "audit");
        Ok(())
    }

    fn pay_owed(&mut self) -> Result<(), AuditError> {
        if let Some(owed) = self.owed.take() {
            if let Err(error) = self.write_line(&owed) {
                self.owed = Some(owed);
                return Err(error);
            }
            tracing::warn!(
                seq = owed.seq,
                "wrote an audit entry owed since a failed append"
            );
        }
        Ok(())
    }

    /// The position of the next entry and the hash it will chain to.
    pub fn head(&self) -> (u64, &str) {
        (self.next_seq, &self.last_hash)
    }

    fn write_line(&mut self, entry: &AuditEntry) -> Result<(), AuditError> {
        let mut line = serde_json::to_vec(entry).map_err(|source| AuditError::Parse {
            path: self.path.clone(),
            line: entry.seq,
            source,
        })?;
        line.push(b'\n');
        let io = |action, source| AuditError::Io {
            action,
            path: self.path.clone(),
            source,
        };
        let length = self.file.metadata().map_err(|e| io("reading", e))?.len();
        let written = self
            .file
            .write_all(&line)
            .and_then(|()| self.file.sync_data());
        if let Err(error) = written {
            // A partial line would break every later one: cut it off again.
            let _ = self.file.set_len(length);
            return Err(io("appending to", error));
        }
        Ok(())
    }

    /// Entries matching `filter`, newest first.
    pub fn list(&self, filter: &Filter) -> Result<Vec<AuditEntry>, AuditError> {
        let limit = filter.limit.unwrap_or(200);
        let query = filter.q.as_deref().map(str::to_lowercase);
        let mut entries: Vec<AuditEntry> = read_entries(&self.path)?
            .into_iter()
            .rev()
            .filter(|e| filter.actor.as_deref().is_none_or(|a| e.actor == a))
            .filter(|e| {
                filter
                    .action
                    .as_deref()
                    .is_none_or(|a| e.action.starts_with(a))
            })
            .filter(|e| {
                query.as_deref().is_none_or(|q| {
                    e.target.as_deref().unwrap_or("").to_lowercase().contains(q)
                        || e.changes.iter().any(|(k, v)| {
                            k.to_lowercase().contains(q) || v.to_lowercase().contains(q)
                        })
                })
            })
            .collect();
        entries.truncate(limit);
        Ok(entries)
    }

    /// Walks the chain from the start.
    pub fn verify(&self) -> Result<AuditVerification, AuditError> {
        verify_file(&self.path)
    }
}

/// Checks the chain of the log at `path`: every entry's hash matches its content, links to
/// the one before, and positions count up from 1 without gaps.
pub fn verify_file(path: &Path) -> Result<AuditVerification, AuditError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(AuditVerification {
                entries: 0,
                intact: true,
                broken_at: None,
                problem: None,
                missing: None,
            })
        }
        Err(source) => {
            return Err(AuditError::Io {
                action: "reading",
                path: path.to_owned(),
                source,
            })
        }
    };
    let mut prev = GENESIS.to_owned();
    let mut count = 0u64;
    let broken = |at: u64, problem: String, entries: u64| AuditVerification {
        entries,
        intact: false,
        broken_at: Some(at),
        problem: Some(problem),
        missing: None,
    };
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let position = index as u64 + 1;
        let line = line.map_err(|source| AuditError::Io {
            action: "reading",
            path: path.to_owned(),
            source,
        })?;
        let entry: AuditEntry = match serde_json::from_str(&line) {
            Ok(entry) => entry,
            Err(e) => {
                return Ok(broken(
                    position,
                    format!("line {position} is not an entry: {e}"),
                    count,
                ))
            }
        };
        if entry.seq != position {
            return Ok(broken(position, format!("entry at line {position} says it is number {}: entries were removed or inserted", entry.seq), count));
        }
        if entry.prev != prev {
            return Ok(broken(
                position,
                format!("entry {position} does not follow the entry before it"),
                count,
            ));
        }
        if entry_hash(&entry) != entry.hash {
            return Ok(broken(
                position,
                format!("entry {position} was changed after it was written"),
                count,
            ));
        }
        prev = entry.hash;
        count += 1;
    }
    Ok(AuditVerification {
        entries: count,
        intact: true,
        broken_at: None,
        problem: None,
        missing: None,
    })
}

/// An append cut short by a power loss leaves a last line without its newline. It is not
/// an entry; it is moved to `<log>.torn-<time>` and the log cut back to its last complete
/// line, so that the chain goes on. Damage anywhere else is left for `verify` to report.
fn set_aside_torn_tail(path: &Path, file: &File) -> Result<Option<(u64, PathBuf)>, AuditError> {
    let io = |action, source| AuditError::Io {
        action,
        path: path.to_owned(),
        source,
    };
    let content = std::fs::read(path).map_err(|e| io("reading", e))?;
    if content.is_empty() || content.ends_with(b"\n") {
        return Ok(None);
    }
    let keep = content
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |newline| newline + 1);
    let tail = &content[keep..];
    let stamp = jiff::Timestamp::now().as_second();
    let aside = path.with_extension(format!("jsonl.torn-{stamp}"));
    cell_store::atomic::write(&aside, tail, 0o600).map_err(|e| {
        io(
            "setting aside the torn entry of",
            std::io::Error::other(e.to_string()),
        )
    })?;
    file.set_len(keep as u64).map_err(|e| io("truncating", e))?;
    file.sync_all().map_err(|e| io("flushing", e))?;
    Ok(Some((tail.len() as u64, aside)))
}

fn read_entries(path: &Path) -> Result<Vec<AuditEntry>, AuditError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(AuditError::Io {
                action: "reading",
                path: path.to_owned(),
                source,
            })
        }
    };
    let mut entries = Vec::new();
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| AuditError::Io {
            action: "reading",
            path: path.to_owned(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(&line) {
            Ok(entry) => entries.push(entry),
            Err(error) => {
                tracing::warn!(path = %path.display(), line = index + 1, %error, "skipping an unreadable audit line");
            }
        }
    }
    Ok(entries)
}

/// SHA-256 over the entry's JSON with an empty `hash`: field order is fixed by the struct.
fn entry_hash(entry: &AuditEntry) -> String {
    let mut unhashed = entry.clone();
    unhashed.hash = String::new();
    let bytes = serde_json::to_vec(&unhashed).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_with(dir: &Path, n: usize) -> AuditLog {
        let mut log = AuditLog::open(&dir.join("audit.jsonl")).unwrap();
        for i in 0..n {
            log.append(
                Record::new("alice", "settings.update")
                    .change("identity.timezone", format!("UTC → Zone/{i}")),
            )
            .unwrap();
        }
        log
    }

    fn rewrite(path: &Path, edit: impl FnOnce(&mut Vec<String>)) {
        let mut lines: Vec<String> = std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        edit(&mut lines);
        std::fs::write(path, lines.join("\n") + "\n").unwrap();
    }

    #[test]
    fn an_untouched_log_verifies_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        drop(log_with(dir.path(), 3));
        let mut log = AuditLog::open(&dir.path().join("audit.jsonl")).unwrap();
        assert_eq!(
            log.append(Record::new("bob", "user.create")).unwrap().seq,
            4
        );
        let result = log.verify().unwrap();
        assert!(result.intact, "{result:?}");
        assert_eq!(result.entries, 4);
    }

    #[test]
    fn editing_an_entry_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with(dir.path(), 3);
        rewrite(&dir.path().join("audit.jsonl"), |lines| {
            lines[1] = lines[1].replace("alice", "mallory");
        });
        let result = log.verify().unwrap();
        assert!(!result.intact);
        assert_eq!(result.broken_at, Some(2));
    }

    #[test]
    fn deleting_an_entry_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with(dir.path(), 3);
        rewrite(&dir.path().join("audit.jsonl"), |lines| {
            lines.remove(1);
        });
        let result = log.verify().unwrap();
        assert!(!result.intact);
        assert_eq!(result.broken_at, Some(2));
    }

    #[test]
    fn a_torn_last_entry_is_set_aside_and_the_chain_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        drop(log_with(dir.path(), 2));
        let path = dir.path().join("audit.jsonl");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(br#"{"seq":3,"time":"2026-"#);
        std::fs::write(&path, &bytes).unwrap();

        let mut log = AuditLog::open(&path).unwrap();
        let next = log.append(Record::new("bob", "user.create")).unwrap();
        assert_eq!(next.seq, 4, "entry 3 records the recovery");
        let result = log.verify().unwrap();
        assert!(result.intact, "{result:?}");
        let recovered = &log
            .list(&Filter {
                action: Some("audit".into()),
                ..Filter::default()
            })
            .unwrap()[0];
        assert_eq!(recovered.changes["torn_bytes"], "22");
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("torn-"))
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(
            std::fs::read(aside[0].path()).unwrap(),
            br#"{"seq":3,"time":"2026-"#
        );
    }

    #[test]
    fn damage_inside_the_log_is_reported_not_repaired() {
        let dir = tempfile::tempdir().unwrap();
        drop(log_with(dir.path(), 3));
        let path = dir.path().join("audit.jsonl");
        rewrite(&path, |lines| lines[1] = "garbage".into());
        let mut log = AuditLog::open(&path).expect("celld still starts");
        assert_eq!(
            log.append(Record::new("bob", "user.create")).unwrap().seq,
            4
        );
        let result = log.verify().unwrap();
        assert_eq!(result.broken_at, Some(2), "{result:?}");
        let listed: Vec<u64> = log
            .list(&Filter::default())
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(listed, vec![4, 3, 1]);
        assert!(
            std::fs::read_to_string(&path).unwrap().contains("garbage"),
            "nothing was cut away"
        );
    }

    #[test]
    fn filters_by_actor_action_and_text() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = log_with(dir.path(), 2);
        log.append(Record::new("root", "user.create").target("bob"))
            .unwrap();
        let by_actor = log
            .list(&Filter {
                actor: Some("root".into()),
                ..Filter::default()
            })
            .unwrap();
        assert_eq!(by_actor.len(), 1);
        let by_action = log
            .list(&Filter {
                action: Some("settings".into()),
                ..Filter::default()
            })
            .unwrap();
        assert_eq!(by_action.len(), 2);
        assert_eq!(by_action[0].seq, 2, "newest first");
        let by_text = log
            .list(&Filter {
                q: Some("zone/1".into()),
                ..Filter::default()
            })
            .unwrap();
        assert_eq!(by_text.len(), 1);
    }
}
