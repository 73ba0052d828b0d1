//! Errors as HTTP answers: `{"error": "..."}` with a status that says whose fault it is.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use sea_orm::DbErr;
use tenancy_core::TenancyError;

/// An error answered to the client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// The status (for tests and logs).
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<DbErr> for ApiError {
    fn from(e: DbErr) -> Self {
        let text = e.to_string();
        if let Some(framework) = TenancyError::from_db_err(&e) {
            // A statement the framework refused is a bug in the application, not the client.
            tracing::error!("refused by the tenancy framework: {framework}");
        } else if text.contains("UNIQUE") || text.contains("unique") || text.contains("Duplicate") {
            return Self {
                status: StatusCode::CONFLICT,
                message: "already exists".into(),
            };
        } else {
            tracing::error!("database error: {text}");
        }
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "internal error".into(),
        }
    }
}

impl From<TenancyError> for ApiError {
    fn from(e: TenancyError) -> Self {
        let status = match &e {
            TenancyError::UnknownStorefront { .. } => StatusCode::NOT_FOUND,
            TenancyError::Config { .. } | TenancyError::InvalidStorefrontId { .. } => {
                StatusCode::BAD_REQUEST
            }
            TenancyError::Move { .. } | TenancyError::Validation { .. } => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self {
            status,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}
