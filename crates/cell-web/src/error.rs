//! Every way a page request can fail, and what the browser is shown for it.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use celld_client::ClientError;

use crate::pages::Nav;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("page not found")]
    NotFound,
    #[error("not allowed")]
    Forbidden,
    #[error("the form was sent from elsewhere or has expired")]
    BadCsrf,
    #[error("celld is not answering: {0}")]
    CelldUnavailable(#[from] ClientError),
    #[error("rendering a page: {0}")]
    Render(#[from] askama::Error),
    #[error("{0}")]
    Internal(String),
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorView<'a> {
    version: &'a str,
    nav: Option<Nav>,
    notice: Option<String>,
    heading: &'a str,
    message: &'a str,
}

impl AppError {
    fn status(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Forbidden | Self::BadCsrf => StatusCode::FORBIDDEN,
            Self::CelldUnavailable(ClientError::Refused { status, .. }) => {
                StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            Self::CelldUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Render(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the person in front of the browser is told; internal details stay in the log.
    fn explanation(&self) -> (&'static str, String) {
        match self {
            Self::NotFound => ("Page not found", "There is no page at this address.".into()),
            Self::Forbidden => ("Not allowed", "Your account may not open this page.".into()),
            Self::BadCsrf => (
                "Please try again",
                "This form was sent from another page or has expired. Go back, reload and send it again.".into(),
            ),
            Self::CelldUnavailable(ClientError::Refused { message, .. }) => {
                ("That did not work", message.clone())
            }
            Self::CelldUnavailable(_) => (
                "The cell is starting or busy",
                "The cell's core service is not answering right now. Try again in a moment; \
                 if this persists, the recovery menu on the cell's console shows its status."
                    .into(),
            ),
            Self::Render(_) | Self::Internal(_) => (
                "Something went wrong",
                "This page could not be shown. The cell's log has the details.".into(),
            ),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let (heading, message) = self.explanation();
        let view = ErrorView {
            version: cell_systemd::image_version(),
            nav: None,
            notice: None,
            heading,
            message: &message,
        };
        match view.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(error) => {
                tracing::error!(%error, "rendering the error page failed");
                (status, heading).into_response()
            }
        }
    }
}
