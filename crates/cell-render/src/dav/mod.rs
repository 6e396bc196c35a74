//! The DAV machine: Radicale (calendars and address books) and lighttpd's mod_webdav
//! (every user's files). Neither checks a password: both listen on the loopback the
//! machine shares with the cell, where the cell's firewall lets only the front door in,
//! and trust the `X-Remote-User` header the front door sets after checking the login.

use askama::Template;

use crate::{File, RenderError};

/// Radicale's port on the cell's loopback.
pub const CALENDAR_PORT: u16 = 5232;
/// lighttpd's port on the cell's loopback.
pub const FILES_PORT: u16 = 5233;
/// Where the machine sees the files of [`render`] (bound in read-only).
pub const CONFIG_DIR: &str = "/etc/cell-dav";
/// Where the machine sees every user's files home (`<dir>/<user>`), bound from the cell.
pub const FILES_DIR: &str = "/srv/files";
/// Beside the homes: lighttpd's per-user property and lock databases, out of reach of
/// any request.
pub const PROPS_DIR: &str = "/srv/files/.props";
/// Where the machine sees Radicale's collections, bound from the cell.
pub const COLLECTIONS_DIR: &str = "/var/lib/radicale/collections";

/// Everything the DAV machine is configured from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dav {
    /// The users whose files lighttpd serves, sorted; disabled users are left out (the
    /// front door refuses them first).
    pub users: Vec<String>,
}

/// Which service of the machine reads a file, so the cell reloads only that one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reader {
    Radicale,
    Lighttpd,
}

/// The files and which service reads each.
pub fn render(dav: &Dav) -> Result<Vec<(Reader, File)>, RenderError> {
    for user in &dav.users {
        let plain = !user.is_empty()
            && user.starts_with(|c: char| c.is_ascii_lowercase())
            && user
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
        if !plain {
            return Err(RenderError::Invalid(format!(
                "'{user}' is not a plain user name"
            )));
        }
    }
    let template =
        |template: &'static str| move |source| RenderError::Template { template, source };
    let file = |path, text: String| File {
        path,
        // askama drops a template's last newline.
        bytes: if text.ends_with('\n') {
            text
        } else {
            text + "\n"
        }
        .into_bytes(),
        mode: 0o644,
        group: None,
    };
    Ok(vec![
        (
            Reader::Radicale,
            file(
                "radicale/config",
                RadicaleConf {}.render().map_err(template("radicale"))?,
            ),
        ),
        (
            Reader::Lighttpd,
            file(
                "lighttpd/lighttpd.conf",
                LighttpdConf { dav }
                    .render()
                    .map_err(template("lighttpd.conf"))?,
            ),
        ),
    ])
}

#[derive(Template)]
#[template(path = "dav/radicale", escape = "none")]
struct RadicaleConf {}

impl RadicaleConf {
    fn port(&self) -> u16 {
        CALENDAR_PORT
    }
    fn collections(&self) -> &'static str {
        COLLECTIONS_DIR
    }
}

#[derive(Template)]
#[template(path = "dav/lighttpd.conf", escape = "none")]
struct LighttpdConf<'a> {
    dav: &'a Dav,
}

impl LighttpdConf<'_> {
    fn port(&self) -> u16 {
        FILES_PORT
    }
    fn files(&self) -> &'static str {
        FILES_DIR
    }
    fn props(&self) -> &'static str {
        PROPS_DIR
    }
}

#[cfg(test)]
mod tests;
