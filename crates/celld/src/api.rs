//! celld's local JSON API, served on its Unix socket.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use cell_model::{ApiError, Status};

use crate::status::{self, StatusError};

pub fn router() -> Router {
    Router::new()
        .route("/v1/status", get(get_status))
        .fallback(not_found)
}

async fn get_status() -> Result<Json<Status>, AppError> {
    Ok(Json(status::current()?))
}

async fn not_found() -> AppError {
    AppError::NotFound
}

#[derive(Debug, thiserror::Error)]
enum AppError {
    #[error("no such route")]
    NotFound,
    #[error(transparent)]
    Status(#[from] StatusError),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let code = match &self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Status(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if code.is_server_error() {
            tracing::error!(error = %self, "local API request failed");
        }
        let body = ApiError {
            error: self.to_string(),
        };
        (code, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn get(path: &str) -> (StatusCode, serde_json::Value) {
        let response = router()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let code = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (code, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn status_reports_version_and_setup_not_done() {
        let (code, body) = get("/v1/status").await;
        assert_eq!(code, StatusCode::OK);
        let status: Status = serde_json::from_value(body).unwrap();
        assert_eq!(status.version, cell_model::VERSION);
        assert!(!status.setup_complete);
    }

    #[tokio::test]
    async fn unknown_routes_answer_json_404() {
        let (code, body) = get("/v1/nope").await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        assert_eq!(body["error"], "no such route");
    }
}
