//! What an account keeps in the service machines: its mailbox, its calendars and address
//! books, its files home. Where each lies, the export of all of it as one tar archive
//! (the maildir as it is, each calendar as one `.ics`, each address book as one `.vcf`,
//! the files as they are), and their removal when the account is deleted.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use axum::body::Bytes;

use crate::no_follow::{Child, OpenDir};

/// One kind of an account's data, below celld's state directory.
pub struct Location {
    pub path: PathBuf,
    /// The directory above it that only the cell's root can change: the walk starts
    /// there and follows no link below it.
    base: PathBuf,
    /// How a person calls it ("a mailbox").
    pub what: &'static str,
    /// Its place in the export.
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Mailbox,
    Collections,
    Files,
    /// The files' WebDAV properties and locks: removed with the account, not exported.
    FileProperties,
}

/// Every place an account `name` keeps data in.
pub fn locations(state_dir: &Path, name: &str) -> Vec<Location> {
    let dav = state_dir.join(crate::dav::STATE_DIR);
    let mail = state_dir.join("mail");
    vec![
        Location {
            path: mail.join("mailboxes").join(name),
            base: mail,
            what: "a mailbox",
            kind: Kind::Mailbox,
        },
        Location {
            path: dav.join("collections/collection-root").join(name),
            base: dav.clone(),
            what: "calendars and address books",
            kind: Kind::Collections,
        },
        Location {
            path: dav.join("files").join(name),
            base: dav.clone(),
            what: "files",
            kind: Kind::Files,
        },
        Location {
            path: dav.join("files/.props").join(format!("{name}.sqlite")),
            base: dav,
            what: "file properties",
            kind: Kind::FileProperties,
        },
    ]
}

/// The first kind of data an account `name` has on the cell, if any.
pub fn leftover(state_dir: &Path, name: &str) -> Option<&'static str> {
    locations(state_dir, name)
        .into_iter()
        .find(|l| l.kind != Kind::FileProperties && l.path.symlink_metadata().is_ok())
        .map(|l| l.what)
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("removing {path}: {source}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing the export: {0}")]
    Write(#[source] io::Error),
}

/// Removes everything account `name` keeps; what is already gone is fine. Returns how
/// many of its places held something.
pub fn remove(state_dir: &Path, name: &str) -> Result<usize, DataError> {
    let mut removed = 0;
    for location in locations(state_dir, name) {
        let path = &location.path;
        let result = match path.symlink_metadata() {
            Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
            Ok(_) => fs::remove_file(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(DataError::Remove {
                    path: path.clone(),
                    source,
                })
            }
        }
    }
    Ok(removed)
}

/// Writes account `name`'s data to `out` as a tar archive whose entries are under
/// `<name>/`: `mail/` (the maildir), `calendars/<name>.ics`, `contacts/<name>.vcf` and
/// `files/`. Only regular files and directories are taken; links are skipped.
pub fn export(state_dir: &Path, name: &str, out: impl Write) -> Result<(), DataError> {
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Deterministic);
    let root = PathBuf::from(name);
    for location in locations(state_dir, name) {
        match location.kind {
            Kind::Mailbox => add_tree(&mut tar, &location, &root.join("mail"), dovecot_index)?,
            Kind::Files => add_tree(&mut tar, &location, &root.join("files"), |_| false)?,
            Kind::Collections => add_collections(&mut tar, &location, &root)?,
            Kind::FileProperties => {}
        }
    }
    tar.into_inner()
        .map_err(DataError::Write)?
        .flush()
        .map_err(DataError::Write)
}

fn read_error(path: &Path) -> impl FnOnce(io::Error) -> DataError + '_ {
    move |source| DataError::Read {
        path: path.to_owned(),
        source,
    }
}

/// Dovecot's indexes and caches beside the messages: rebuilt by any server, useless to
/// another program.
fn dovecot_index(name: &str) -> bool {
    name.starts_with("dovecot.index") || name.starts_with("dovecot.list.index")
}

/// The directory at `path` (when it is one) under `inside`, without the files `skip` names.
fn add_tree<W: Write>(
    tar: &mut tar::Builder<W>,
    location: &Location,
    inside: &Path,
    skip: fn(&str) -> bool,
) -> Result<(), DataError> {
    match location.open()? {
        Some(dir) => add_dir(tar, &dir, &location.path, inside, skip),
        None => Ok(()),
    }
}

impl Location {
    /// Its directory, reached from `base` without following a link; none when it is
    /// missing or not a directory.
    fn open(&self) -> Result<Option<OpenDir>, DataError> {
        OpenDir::beneath(&self.base, &self.path).map_err(read_error(&self.path))
    }
}

fn add_dir<W: Write>(
    tar: &mut tar::Builder<W>,
    dir: &OpenDir,
    path: &Path,
    inside: &Path,
    skip: fn(&str) -> bool,
) -> Result<(), DataError> {
    add_directory(tar, inside)?;
    for name in dir.names().map_err(read_error(path))? {
        if skip(&name.to_string_lossy()) {
            continue;
        }
        let child_path = path.join(&name);
        let entry = inside.join(&name);
        match dir.child(&name).map_err(read_error(&child_path))? {
            Child::Dir(sub) => add_dir(tar, &sub, &child_path, &entry, skip)?,
            Child::File(file) => {
                let size = file.metadata().map_err(read_error(&child_path))?.len();
                let mut header = file_header(size);
                // Exactly `size` bytes, however the file changes while it is read.
                let body = file.take(size).chain(io::repeat(0)).take(size);
                tar.append_data(&mut header, &entry, body)
                    .map_err(DataError::Write)?;
            }
            Child::Other => {}
        }
    }
    Ok(())
}

/// A regular file's text in `dir`; none when it is missing or not a regular file.
fn read_text(dir: &OpenDir, path: &Path, name: &str) -> Result<Option<String>, DataError> {
    let at = path.join(name);
    match dir
        .child(std::ffi::OsStr::new(name))
        .map_err(read_error(&at))?
    {
        Child::File(file) => io::read_to_string(file).map(Some).map_err(read_error(&at)),
        _ => Ok(None),
    }
}

fn file_header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header
}

fn add_directory<W: Write>(tar: &mut tar::Builder<W>, name: &Path) -> Result<(), DataError> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_size(0);
    header.set_mode(0o755);
    header.set_mtime(0);
    tar.append_data(&mut header, name, io::empty())
        .map_err(DataError::Write)
}

fn add_text<W: Write>(tar: &mut tar::Builder<W>, name: &Path, text: &str) -> Result<(), DataError> {
    let mut header = file_header(text.len() as u64);
    tar.append_data(&mut header, name, text.as_bytes())
        .map_err(DataError::Write)
}

/// Each of Radicale's collections (one directory per calendar or address book, one file
/// per item, `.Radicale.props` saying which it is) as one file.
fn add_collections<W: Write>(
    tar: &mut tar::Builder<W>,
    location: &Location,
    root: &Path,
) -> Result<(), DataError> {
    let path = &location.path;
    let Some(dir) = location.open()? else {
        return Ok(());
    };
    for name in dir.names().map_err(read_error(path))? {
        let collection = name.to_string_lossy().into_owned();
        let collection_path = path.join(&name);
        if collection.starts_with('.') {
            continue;
        }
        let Child::Dir(collection_dir) = dir.child(&name).map_err(read_error(&collection_path))?
        else {
            continue;
        };
        let Some(props) = read_text(&collection_dir, &collection_path, ".Radicale.props")? else {
            continue;
        };
        let tag = serde_json::from_str::<serde_json::Value>(&props)
            .ok()
            .and_then(|v| v.get("tag").and_then(|t| t.as_str()).map(str::to_owned));
        let mut items = Vec::new();
        for item in collection_dir
            .names()
            .map_err(read_error(&collection_path))?
        {
            let item = item.to_string_lossy().into_owned();
            if item.starts_with('.') {
                continue;
            }
            if let Some(text) = read_text(&collection_dir, &collection_path, &item)? {
                items.push(text);
            }
        }
        match tag.as_deref() {
            Some("VCALENDAR") => add_text(
                tar,
                &root.join("calendars").join(format!("{collection}.ics")),
                &merge_calendars(&items),
            )?,
            Some("VADDRESSBOOK") => add_text(
                tar,
                &root.join("contacts").join(format!("{collection}.vcf")),
                &merge_cards(&items),
            )?,
            _ => {}
        }
    }
    Ok(())
}

fn crlf_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(|line| line.trim_end_matches('\r'))
}

/// The items' components (events, tasks, their time zones once each) in one calendar.
pub fn merge_calendars(items: &[String]) -> String {
    let mut out = String::from(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Personal Internet Cell//export//EN\r\n",
    );
    let mut zones = BTreeSet::new();
    for item in items {
        let mut depth = 0usize;
        let mut block: Vec<&str> = Vec::new();
        for line in crlf_lines(item) {
            let upper = line.to_ascii_uppercase();
            if upper.starts_with("BEGIN:") {
                depth += 1;
            }
            if depth >= 2 {
                block.push(line);
            }
            if upper.starts_with("END:") {
                depth = depth.saturating_sub(1);
                if depth == 1 && !block.is_empty() {
                    let zone = block[0].eq_ignore_ascii_case("BEGIN:VTIMEZONE").then(|| {
                        block
                            .iter()
                            .find(|l| l.to_ascii_uppercase().starts_with("TZID"))
                            .map(|l| l.to_string())
                            .unwrap_or_default()
                    });
                    if zone.is_none_or(|tzid| zones.insert(tzid)) {
                        for line in &block {
                            out.push_str(line);
                            out.push_str("\r\n");
                        }
                    }
                    block.clear();
                }
            }
        }
    }
    out.push_str("END:VCALENDAR\r\n");
    out
}

/// The items' vCards, one after another, as a `.vcf` holds several.
pub fn merge_cards(items: &[String]) -> String {
    let mut out = String::new();
    for item in items {
        for line in crlf_lines(item) {
            if line.is_empty() {
                continue;
            }
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out
}

/// A `Write` that hands what is written to an async receiver in pieces: an export is
/// written on a blocking thread while the answer streams it. When the receiver is gone
/// (the client left), writing fails and the export stops.
pub struct ChannelWriter {
    sender: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    pending: Vec<u8>,
}

const PIECE: usize = 256 * 1024;

impl ChannelWriter {
    pub fn new(sender: tokio::sync::mpsc::Sender<io::Result<Bytes>>) -> Self {
        Self {
            sender,
            pending: Vec::with_capacity(PIECE),
        }
    }

    fn send_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::replace(
            &mut self.pending,
            Vec::with_capacity(PIECE),
        ));
        self.sender
            .blocking_send(Ok(piece))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the download was abandoned"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(data);
        if self.pending.len() >= PIECE {
            self.send_pending()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_pending()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    const EVENT: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\nBEGIN:VTIMEZONE\r\nTZID:Europe/Paris\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:one\r\nSUMMARY:Dentist\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn calendars_merge_into_one_with_each_time_zone_once() {
        let second = EVENT
            .replace("UID:one", "UID:two")
            .replace("Dentist", "Lunch");
        let merged = merge_calendars(&[EVENT.to_owned(), second]);
        assert!(merged.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"));
        assert!(merged.ends_with("END:VCALENDAR\r\n"));
        assert_eq!(merged.matches("BEGIN:VEVENT").count(), 2);
        assert_eq!(merged.matches("BEGIN:VTIMEZONE").count(), 1);
        assert_eq!(merged.matches("BEGIN:STANDARD").count(), 1);
        assert_eq!(merged.matches("BEGIN:VCALENDAR").count(), 1);
        assert!(merged.contains("SUMMARY:Lunch\r\n"));
        assert!(!merged.contains("PRODID:-//x"));
    }

    #[test]
    fn an_export_holds_mail_calendars_contacts_and_files_and_removal_clears_them() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path();
        write(
            &state.join("mail/mailboxes/alice/Maildir/cur/1.m"),
            "Subject: hi\r\n\r\nbody",
        );
        write(
            &state.join("mail/mailboxes/alice/Maildir/dovecot.index.cache"),
            "\0index",
        );
        write(
            &state.join("mail/mailboxes/alice/Maildir/dovecot-uidlist"),
            "3 V1 N2\n",
        );
        let root = state.join("dav/collections/collection-root/alice");
        write(
            &root.join("calendar/.Radicale.props"),
            r#"{"tag": "VCALENDAR"}"#,
        );
        write(&root.join("calendar/a.ics"), EVENT);
        write(&root.join("calendar/.Radicale.cache/item/a.ics"), "cache");
        write(
            &root.join("contacts/.Radicale.props"),
            r#"{"tag": "VADDRESSBOOK"}"#,
        );
        write(
            &root.join("contacts/b.vcf"),
            "BEGIN:VCARD\nFN:Bob\nEND:VCARD\n",
        );
        write(&state.join("dav/files/alice/docs/note.txt"), "hello");
        write(&state.join("dav/files/.props/alice.sqlite"), "props");
        std::os::unix::fs::symlink("/etc/shadow", state.join("dav/files/alice/link")).unwrap();
        // A directory link (what a swapped directory would be) and a pipe are passed by.
        std::os::unix::fs::symlink(
            state.join("dav/files/bob"),
            state.join("dav/files/alice/dirlink"),
        )
        .unwrap();
        nix::unistd::mkfifo(
            &state.join("dav/files/alice/pipe"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        // Another account's data stays out of it.
        write(&state.join("dav/files/bob/secret.txt"), "bob's");

        let mut archive = Vec::new();
        export(state, "alice", &mut archive).unwrap();
        let mut seen = std::collections::BTreeMap::new();
        for entry in tar::Archive::new(&archive[..]).entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            seen.insert(path, text);
        }
        assert_eq!(
            seen["alice/mail/Maildir/cur/1.m"], "Subject: hi\r\n\r\nbody",
            "{seen:?}"
        );
        assert_eq!(seen["alice/files/docs/note.txt"], "hello");
        assert!(seen["alice/calendars/calendar.ics"].contains("SUMMARY:Dentist"));
        assert_eq!(
            seen["alice/contacts/contacts.vcf"],
            "BEGIN:VCARD\r\nFN:Bob\r\nEND:VCARD\r\n"
        );
        assert!(
            !seen.keys().any(|k| k.contains("link")
                || k.contains("bob")
                || k.contains("cache")
                || k.contains("pipe")),
            "{seen:?}"
        );
        assert!(
            seen.contains_key("alice/mail/Maildir/dovecot-uidlist"),
            "{seen:?}"
        );

        assert_eq!(leftover(state, "alice"), Some("a mailbox"));
        assert_eq!(remove(state, "alice").unwrap(), 4);
        assert_eq!(leftover(state, "alice"), None);
        assert!(!state.join("dav/files/.props/alice.sqlite").exists());
        assert!(state.join("dav/files/bob/secret.txt").exists());
        assert_eq!(remove(state, "alice").unwrap(), 0, "removing again is fine");
    }
}
