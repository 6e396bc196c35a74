use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cell_model::{ApiError, FieldError};

use crate::audit::AuditError;
use crate::setup_code::SetupCodeError;

/// Every way a local API request can fail, and its status code.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(#[from] FieldError),
    #[error("{0}")]
    BadRequest(String),
    #[error("wrong username, password or code")]
    Unauthorized,
    #[error("log in first: there is no session, or it has ended")]
    NotLoggedIn,
    #[error("the cell is busy checking other passwords; try again in a moment")]
    Busy,
    #[error("a second factor is required")]
    SecondFactorRequired,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("too many failed attempts; try again in {retry_after} s")]
    TooManyAttempts { retry_after: u64 },
    #[error(transparent)]
    Store(#[from] cell_store::StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    SetupCode(#[from] SetupCodeError),
    #[error(transparent)]
    Commit(#[from] crate::audited::CommitError),
    #[error("{0}")]
    Internal(String),
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Invalid(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized | Self::SecondFactorRequired | Self::NotLoggedIn => {
                StatusCode::UNAUTHORIZED
            }
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooManyAttempts { .. } | Self::Busy => StatusCode::TOO_MANY_REQUESTS,
            Self::Store(_)
            | Self::Audit(_)
            | Self::SetupCode(_)
            | Self::Commit(_)
            | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid(FieldError::new(field, message))
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "local API request failed");
        }
        let field = match &self {
            Self::Invalid(e) => Some(e.field.clone()),
            Self::SecondFactorRequired => Some("second_factor".to_owned()),
            _ => None,
        };
        let error = match &self {
            Self::Invalid(e) => e.message.clone(),
            // Internal details go to the journal, not to the caller.
            _ if status.is_server_error() => "internal error; see the cell's log".to_owned(),
            other => other.to_string(),
        };
        let mut response = (status, Json(ApiError { error, field })).into_response();
        let retry_after = match self {
            Self::TooManyAttempts { retry_after } => Some(retry_after),
            Self::Busy => Some(1),
            _ => None,
        };
        if let Some(value) = retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

impl From<crate::passwords::Busy> for AppError {
    fn from(_: crate::passwords::Busy) -> Self {
        Self::Busy
    }
}
