//! The cell's update job (root, started by celld through systemd) and its boot-time
//! bookkeeping. systemd-sysupdate does the transfers; this crate decides what to ask of
//! it and records what happened where celld can read it.

pub mod boot;
pub mod definitions;
pub mod job;
pub mod progress;
pub mod recovery_entry;
