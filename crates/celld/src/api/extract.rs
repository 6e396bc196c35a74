//! Request extractors: validated JSON bodies whose errors name the field, and the actor a
//! request acts for.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use cell_model::{FieldError, Role, Username};
use serde::de::DeserializeOwned;

use super::AppError;
use crate::daemon::Daemon;
use crate::peer::Peer;
use crate::sessions::{Active, Origin};
use crate::sync::lock;

/// Header cell-web forwards a browser's session token in (from its cookie).
pub const SESSION_HEADER: &str = "x-cell-session";
/// Header cell-web sets to the client's address.
pub const SOURCE_HEADER: &str = "x-cell-source";
/// Header cell-web sets to the client's User-Agent, at login (for the Sessions list).
pub const USER_AGENT_HEADER: &str = "x-cell-user-agent";

/// A JSON body, parsed into a validated type. Any refusal is a 400 naming the field.
pub struct ValidJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ValidJson<T> {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, AppError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| AppError::BadRequest(format!("reading the request body: {e}")))?;
        parse_json(&bytes).map(ValidJson).map_err(AppError::Invalid)
    }
}

/// Parses JSON, naming the offending field as a dotted path.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, FieldError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let mut field = error.path().to_string();
        if field == "." {
            field.clear();
        }
        let message = error.inner().to_string();
        // serde reports a missing field at its parent; name the field itself.
        if let Some(name) = quoted_after(&message, "missing field `") {
            field = if field.is_empty() {
                name
            } else {
                format!("{field}.{name}")
            };
        }
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_owned();
        FieldError::new(
            if field.is_empty() {
                "body".to_owned()
            } else {
                field
            },
            message,
        )
    })
}

fn quoted_after(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?;
    rest.split('`').next().map(str::to_owned)
}

/// Who a request acts for, and from where.
#[derive(Debug, Clone)]
pub struct Actor {
    /// A username, or `root` for a root process on the machine (cellctl).
    pub name: String,
    /// A user of the cell (None for root).
    pub user: Option<(Username, Role)>,
    pub source: Option<String>,
    /// The session the request came with (None for root).
    pub session: Option<Active>,
}

impl Actor {
    pub fn is_admin(&self) -> bool {
        match &self.user {
            None => self.name == "root",
            Some((_, role)) => *role == Role::Admin,
        }
    }

    pub fn is(&self, name: &Username) -> bool {
        self.user.as_ref().is_some_and(|(user, _)| user == name)
    }
}

fn header(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// The request's actor: the user of the session whose token came with it (which celld
/// resolves itself: it must be live, its user enabled and their credentials unchanged),
/// or root when a root process asks without one. Anything else is not logged in.
impl FromRequestParts<Arc<Daemon>> for Actor {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, daemon: &Arc<Daemon>) -> Result<Self, AppError> {
        let source = header(parts, SOURCE_HEADER);
        let ConnectInfo(peer) = ConnectInfo::<Peer>::from_request_parts(parts, daemon)
            .await
            .map_err(|_| AppError::Internal("no peer credentials on the connection".into()))?;
        let Some(token) = header(parts, SESSION_HEADER) else {
            return if peer.is_root() {
                Ok(Self {
                    name: "root".into(),
                    user: None,
                    source,
                    session: None,
                })
            } else {
                Err(AppError::NotLoggedIn)
            };
        };
        let settings = lock(&daemon.store).current().settings.clone();
        let active = lock(&daemon.sessions)
            .resolve(&token, &settings, jiff::Timestamp::now())
            .ok_or(AppError::NotLoggedIn)?;
        Ok(Self {
            name: active.user.to_string(),
            user: Some((active.user.clone(), active.role)),
            source,
            session: Some(active),
        })
    }
}

/// An actor allowed to manage the cell: root, or an enabled admin.
pub struct Admin(pub Actor);

impl FromRequestParts<Arc<Daemon>> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, daemon: &Arc<Daemon>) -> Result<Self, AppError> {
        let actor = Actor::from_request_parts(parts, daemon).await?;
        if actor.is_admin() {
            Ok(Self(actor))
        } else {
            Err(AppError::Forbidden("this needs an administrator".into()))
        }
    }
}

/// The client's address as cell-web reports it, for throttling and the audit log.
pub struct Source(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Source {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        Ok(Self(header(parts, SOURCE_HEADER)))
    }
}

/// Where a login comes from: address and browser, as cell-web reports them.
pub struct LoginOrigin(pub Origin);

impl<S: Send + Sync> FromRequestParts<S> for LoginOrigin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        Ok(Self(Origin {
            source: header(parts, SOURCE_HEADER),
            user_agent: header(parts, USER_AGENT_HEADER),
        }))
    }
}

/// An optional JSON body: absent (empty) is `None`, present must parse.
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, AppError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| AppError::BadRequest(format!("reading the request body: {e}")))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(None));
        }
        parse_json(&bytes)
            .map(|v| Self(Some(v)))
            .map_err(AppError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use cell_model::api::EditableSettings;

    use super::*;

    #[test]
    fn invalid_values_name_their_field() {
        let body = br#"{"identity":{"cell_name":"bad name","domain":{"mode":"internal"},"timezone":"UTC"}}"#;
        let err = parse_json::<EditableSettings>(body).unwrap_err();
        assert_eq!(err.field, "identity.cell_name");
    }

    #[test]
    fn missing_and_unknown_fields_are_named() {
        let missing = br#"{"identity":{"cell_name":"home","domain":{"mode":"internal"}}}"#;
        assert_eq!(
            parse_json::<EditableSettings>(missing).unwrap_err().field,
            "identity.timezone"
        );
        let unknown = br#"{"identity":{"cell_name":"home","domain":{"mode":"internal"},"timezone":"UTC","x":1}}"#;
        assert_eq!(
            parse_json::<EditableSettings>(unknown).unwrap_err().field,
            "identity.x"
        );
        assert_eq!(
            parse_json::<EditableSettings>(b"not json")
                .unwrap_err()
                .field,
            "body"
        );
    }
}
