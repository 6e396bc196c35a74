//! Typed settings and API types shared by celld, cell-web and cellctl. No I/O here.
//!
//! Every value that reaches the settings passes through a validated newtype ([`names`]),
//! so a `Settings` value that exists is a valid one; errors name the field they concern.

pub mod acme;
pub mod api;
pub mod dns;
mod field_error;
pub mod lan;
pub mod mail;
pub mod names;
pub mod net;
pub mod ntp;
pub mod settings;
pub mod update;
pub mod users;
pub mod vpn;

pub use api::{ApiError, Status, VERSION};
pub use field_error::FieldError;
pub use settings::Settings;
pub use users::{NewUsername, Role, User, Username};
