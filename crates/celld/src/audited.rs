//! Changes to the settings and their audit entries, stored together: every mutating route
//! commits through [`commit`], which describes the change field by field ([`describe`]),
//! records the entry it is about to append in `audit-head.json` (the audit head of the
//! generation: sequence number, hash, and the entry itself) before the settings are
//! stored, and appends the entry after. So no change is acknowledged without its entry,
//! no entry is written for a change that was not stored, an entry whose append failed is
//! written at the next start ([`heal`]), and a log whose tail was cut is told apart from a
//! log that simply has no more entries ([`verify`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use cell_model::api::{AuditEntry, AuditVerification};
use cell_model::Settings;
use cell_store::{StoreError, Stored};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::audit::{AuditError, AuditLog, Record};

pub const HEAD_FILE: &str = "audit-head.json";

/// Fields whose values never reach the log: only that they were set, changed or removed.
const SECRET_FIELDS: &[&str] = &[
    "password_hash",
    "totp_secret",
    "recovery_codes",
    "shell_password_hash",
    // An app password's hashes.
    "hash",
    "service_hash",
];

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the change is stored but its audit entry could not be written yet: {0}")]
    Audit(#[from] AuditError),
}

/// What a generation recorded of the audit log when it was committed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GenerationHead {
    pub generation: u64,
    pub entry: AuditEntry,
}

/// A settings store that audited commits go through.
pub trait SettingsCommit {
    fn current(&self) -> &Stored;
    fn commit(&mut self, settings: Settings) -> Result<&Stored, StoreError>;
}

impl SettingsCommit for cell_store::Store {
    fn current(&self) -> &Stored {
        cell_store::Store::current(self)
    }
    fn commit(&mut self, settings: Settings) -> Result<&Stored, StoreError> {
        cell_store::Store::commit(self, settings)
    }
}

/// Stores `next` as a new generation with `record` (its changes described from the
/// settings themselves) as its audit entry. Settings equal to the current ones store and
/// record nothing.
pub fn commit(
    store: &mut impl SettingsCommit,
    log: &mut AuditLog,
    state_dir: &Path,
    next: Settings,
    mut record: Record,
) -> Result<Stored, CommitError> {
    let before = store.current().clone();
    if before.settings == next && before.generation > 0 {
        return Ok(before);
    }
    for (field, change) in describe(&before.settings, &next) {
        record.changes.entry(field).or_insert(change);
    }
    let entry = log.prepare(record);
    let head = GenerationHead {
        generation: before.generation + 1,
        entry: entry.clone(),
    };
    let bytes = serde_json::to_vec(&head).unwrap_or_default();
    cell_store::atomic::write(&state_dir.join(HEAD_FILE), &bytes, 0o600)?;
    let stored = store.commit(next)?.clone();
    log.write_prepared(entry)?;
    Ok(stored)
}

fn read_head(state_dir: &Path) -> Option<GenerationHead> {
    let path = state_dir.join(HEAD_FILE);
    let bytes = std::fs::read(&path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(head) => Some(head),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "the audit head is unreadable");
            None
        }
    }
}

/// At start: writes the entry of the generation in force if its append never happened
/// (celld stopped, or the disk refused, between storing the change and logging it).
pub fn heal(log: &mut AuditLog, state_dir: &Path, generation: u64) -> Result<(), AuditError> {
    let Some(head) = read_head(state_dir) else {
        return Ok(());
    };
    let (next_seq, last_hash) = log.head();
    if head.generation == generation && head.entry.seq == next_seq && head.entry.prev == last_hash {
        tracing::warn!(
            seq = head.entry.seq,
            generation,
            "the audit entry of the settings in force was not in the log; writing it now"
        );
        log.write_prepared(head.entry)?;
    }
    Ok(())
}

/// The chain check of the log, and the check that its tail is all there: the generation
/// in force recorded the entry it was committed with, which the log must hold.
pub fn verify(
    log: &AuditLog,
    state_dir: &Path,
    generation: u64,
) -> Result<AuditVerification, AuditError> {
    let mut result = log.verify()?;
    let Some(head) = read_head(state_dir).filter(|h| h.generation <= generation) else {
        return Ok(result);
    };
    let last = result.entries;
    if result.intact && last < head.entry.seq {
        result.intact = false;
        result.missing = Some((last + 1, head.entry.seq));
        result.problem = Some(format!(
            "entries {} to {} are missing: the log ends at {last}, but generation {} of the settings was recorded as entry {}; its tail was cut",
            last + 1,
            head.entry.seq,
            head.generation,
            head.entry.seq
        ));
        result.broken_at = Some(last + 1);
    } else if result.intact {
        let listed = log.list(&crate::audit::Filter {
            limit: Some(usize::MAX),
            ..Default::default()
        })?;
        let held = listed.iter().find(|e| e.seq == head.entry.seq);
        if held.is_some_and(|e| e.hash != head.entry.hash) {
            result.intact = false;
            result.broken_at = Some(head.entry.seq);
            result.problem = Some(format!(
                "entry {} is not the one generation {} recorded: the log was rewritten from there",
                head.entry.seq, head.generation
            ));
        }
    }
    Ok(result)
}

/// Every field `after` changes against `before`, as `dotted.path → "old → new"`. Lists of
/// named things (users, VPN devices) are keyed by name; secrets say only `set`, `changed`
/// or `removed`.
pub fn describe(before: &Settings, after: &Settings) -> BTreeMap<String, String> {
    let before = serde_json::to_value(before).unwrap_or_default();
    let after = serde_json::to_value(after).unwrap_or_default();
    let mut out = BTreeMap::new();
    walk("", Some(&before), Some(&after), &mut out);
    out
}

/// `describe` for two values of any serialisable type (the settings page's view of them).
pub fn describe_values<T: Serialize>(before: &T, after: &T) -> BTreeMap<String, String> {
    let before = serde_json::to_value(before).unwrap_or_default();
    let after = serde_json::to_value(after).unwrap_or_default();
    let mut out = BTreeMap::new();
    walk("", Some(&before), Some(&after), &mut out);
    out
}

fn walk(
    path: &str,
    before: Option<&Value>,
    after: Option<&Value>,
    out: &mut BTreeMap<String, String>,
) {
    let before = before.filter(|v| !v.is_null());
    let after = after.filter(|v| !v.is_null());
    if before == after {
        return;
    }
    let last = path.rsplit('.').next().unwrap_or(path);
    if SECRET_FIELDS.contains(&last) {
        let what = match (before, after) {
            (None, Some(_)) => "set",
            (Some(_), None) => "removed",
            _ => "changed",
        };
        out.insert(path.to_owned(), what.to_owned());
        return;
    }
    let before_map = as_map(before);
    let after_map = as_map(after);
    if let (Some(a), Some(b)) = (&before_map, &after_map) {
        let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        for key in keys {
            let child = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            walk(&child, a.get(key).copied(), b.get(key).copied(), out);
        }
        return;
    }
    out.insert(
        path.to_owned(),
        format!("{} → {}", show(before), show(after)),
    );
}

/// An object, or a list of objects that each have a different `name`, as a map keyed by
/// it (any other list of objects by position); nothing (None) counts as an empty map when
/// the other side is one.
fn as_map(value: Option<&Value>) -> Option<BTreeMap<String, &Value>> {
    match value {
        None => Some(BTreeMap::new()),
        Some(Value::Object(map)) => Some(map.iter().map(|(k, v)| (k.clone(), v)).collect()),
        Some(Value::Array(items)) if items.iter().all(Value::is_object) => {
            let named: BTreeMap<String, &Value> = items
                .iter()
                .filter_map(|i| Some((i.get("name")?.as_str()?.to_owned(), i)))
                .collect();
            if named.len() == items.len() {
                Some(named)
            } else {
                Some(
                    items
                        .iter()
                        .enumerate()
                        .map(|(n, i)| (n.to_string(), i))
                        .collect(),
                )
            }
        }
        Some(_) => None,
    }
}

fn show(value: Option<&Value>) -> String {
    match value {
        None => "(none)".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.is_empty() => "(none)".to_owned(),
        // Never a whole record: it could carry a secret the walk did not reach.
        Some(Value::Array(items)) if items.iter().any(|i| i.is_object() || i.is_array()) => {
            format!("({} entries)", items.len())
        }
        Some(Value::Object(_)) => "(a record)".to_owned(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| show(Some(i)))
            .collect::<Vec<_>>()
            .join(", "),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn describe_json(before: Value, after: Value) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        walk("", Some(&before), Some(&after), &mut out);
        out
    }

    #[test]
    fn every_leaf_is_named_and_named_lists_are_keyed() {
        let before = json!({"identity": {"timezone": "UTC"}, "vpn": {"peers": [
            {"name": "phone", "keepalive": 25, "access": {"files": true}, "endpoint": null}
        ]}});
        let after = json!({"identity": {"timezone": "Europe/Berlin"}, "vpn": {"peers": [
            {"name": "phone", "keepalive": 0, "access": {"files": false}, "endpoint": "x.org"},
            {"name": "tablet", "keepalive": 5}
        ]}});
        let changes = describe_json(before, after);
        assert_eq!(changes["identity.timezone"], "UTC → Europe/Berlin");
        assert_eq!(changes["vpn.peers.phone.keepalive"], "25 → 0");
        assert_eq!(changes["vpn.peers.phone.access.files"], "true → false");
        assert_eq!(changes["vpn.peers.phone.endpoint"], "(none) → x.org");
        assert_eq!(changes["vpn.peers.tablet.keepalive"], "(none) → 5");
        assert_eq!(changes.len(), 6, "{changes:?}");
    }

    #[test]
    fn secrets_are_never_shown() {
        let before = json!({"users": [{"name": "bob", "password_hash": "$argon2id$old"}]});
        let after = json!({"users": [
            {"name": "bob", "password_hash": "$argon2id$new", "totp_secret": "SEED"},
            {"name": "carol", "password_hash": "$argon2id$carol", "recovery_codes": ["$a", "$b"]}
        ]});
        let changes = describe_json(before, after);
        let same_name = describe_json(
            json!({"records": []}),
            json!({"records": [{"name": "a", "type": "A"}, {"name": "a", "type": "AAAA"}]}),
        );
        assert_eq!(same_name["records.0.type"], "(none) → A");
        assert_eq!(
            same_name["records.1.type"], "(none) → AAAA",
            "{same_name:?}"
        );
        let from_nobody = describe_json(
            json!({"users": []}),
            json!({"users": [{"name": "bob", "password_hash": "$argon2id$x"}]}),
        );
        assert_eq!(from_nobody["users.bob.password_hash"], "set");
        let app_password = describe_json(
            json!({"users": [{"name": "bob", "app_passwords": []}]}),
            json!({"users": [{"name": "bob", "app_passwords": [{"id": "abcd", "name": "phone", "hash": "$argon2id$app"}]}]}),
        );
        assert!(
            !format!("{app_password:?}").contains("argon2"),
            "{app_password:?}"
        );
        assert_eq!(changes["users.bob.password_hash"], "changed");
        assert_eq!(changes["users.bob.totp_secret"], "set");
        assert_eq!(changes["users.carol.password_hash"], "set");
        assert_eq!(changes["users.carol.recovery_codes"], "set");
        let text = format!("{changes:?}");
        for secret in ["$argon2id", "SEED", "$a"] {
            assert!(!text.contains(secret), "{text}");
        }
    }

    #[test]
    fn a_cut_tail_is_reported_with_the_missing_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = cell_store::Store::open(dir.path()).unwrap();
        let mut log = AuditLog::open(&dir.path().join("audit.jsonl")).unwrap();
        for zone in ["Europe/Berlin", "Europe/Paris", "Europe/Rome"] {
            let mut next = store.current().settings.clone();
            next.identity.timezone = cell_model::names::Timezone::parse(zone).unwrap();
            commit(
                &mut store,
                &mut log,
                dir.path(),
                next,
                Record::new("alice", "settings.update"),
            )
            .unwrap();
        }
        log.append(Record::new("-", "auth.failure")).unwrap();
        let generation = store.current().generation;
        assert!(verify(&log, dir.path(), generation).unwrap().intact);

        let path = dir.path().join("audit.jsonl");
        let text = std::fs::read_to_string(&path).unwrap();
        let kept: Vec<&str> = text.lines().take(1).collect();
        std::fs::write(&path, kept.join("\n") + "\n").unwrap();
        let result = verify(&log, dir.path(), generation).unwrap();
        assert!(!result.intact);
        assert_eq!(result.missing, Some((2, 3)), "{result:?}");
        assert!(result
            .problem
            .unwrap()
            .contains("entries 2 to 3 are missing"));
    }

    #[test]
    fn an_entry_lost_after_its_commit_is_written_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = cell_store::Store::open(dir.path()).unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut log = AuditLog::open(&path).unwrap();
        let mut next = store.current().settings.clone();
        next.identity.timezone = cell_model::names::Timezone::parse("Europe/Berlin").unwrap();
        commit(
            &mut store,
            &mut log,
            dir.path(),
            next,
            Record::new("alice", "settings.update"),
        )
        .unwrap();
        drop(log);
        std::fs::write(&path, "").unwrap(); // as if the append never reached the disk
        let mut log = AuditLog::open(&path).unwrap();
        heal(&mut log, dir.path(), store.current().generation).unwrap();
        let result = verify(&log, dir.path(), store.current().generation).unwrap();
        assert!(result.intact, "{result:?}");
        assert_eq!(result.entries, 1);
    }
}
