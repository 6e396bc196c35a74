//! The cell's units and their journal, for administrators: each unit's state, since when
//! and its restarts; journal lines filtered by unit, priority and text, and followed by
//! cursor. Logs name users and addresses, so only administrators read them.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::Json;
use cell_model::api::{LogPage, UnitState};

use super::extract::Admin;
use super::AppError;
use crate::daemon::Daemon;
use crate::journal::{LogQuery, CELL_UNITS};

pub async fn units_get(
    State(daemon): State<Arc<Daemon>>,
    _admin: Admin,
) -> Result<Json<Vec<UnitState>>, AppError> {
    daemon
        .system
        .unit_states(CELL_UNITS)
        .await
        .map(Json)
        .map_err(|e| AppError::Internal(e.to_string()))
}

pub async fn logs_get(
    State(daemon): State<Arc<Daemon>>,
    _admin: Admin,
    query: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<LogPage>, AppError> {
    let Query(query) = query.map_err(|e| AppError::BadRequest(e.body_text()))?;
    query.validate()?;
    match daemon.system.journal(&query).await {
        Ok(page) => Ok(Json(page)),
        // A well-formed cursor the journal does not know (rotated away, another machine).
        Err(crate::system::SystemError::Journal(message))
            if query.after.is_some() && message.contains("cursor") =>
        {
            Err(AppError::field(
                "after",
                "the journal has no such cursor (its lines may have been rotated away)",
            ))
        }
        Err(error) => Err(AppError::Internal(error.to_string())),
    }
}
