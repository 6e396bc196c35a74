//! The image builder's own tool: the pure parts (version rules, the GPT of a built image,
//! published file names, the SHA256SUMS manifest, what the kernel says about block devices).
//! `main.rs` and its modules do the I/O: `keys`, `build`, `publish` and `flash`.

pub mod blockdev;
pub mod gpt;
pub mod names;
pub mod version;

pub use gpt::{GptError, PartitionTable, UsrPart, UsrSet};
pub use names::{PartKind, SumsError};
pub use version::{ImageVersion, VersionError};
