//! Configuration files for the service machines, rendered from askama text templates.
//! Pure: the caller (celld's machine applier) gathers the values from the settings and
//! writes the files; golden-file tests pin what each template produces.

pub mod dav;
pub mod mail;

/// A rendered file: its path below the machine's configuration directory, its bytes, and
/// its mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub path: &'static str,
    pub bytes: Vec<u8>,
    pub mode: u32,
    /// Readable by the machine's service user of this name too (its group), not only by
    /// the machine's root.
    pub group: Option<&'static str>,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("rendering {template}: {source}")]
    Template {
        template: &'static str,
        #[source]
        source: askama::Error,
    },
    #[error("{0}")]
    Invalid(String),
}
