//! The one API error type and its single mapping to HTTP.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::payments::stk::StartError;
use crate::vouchers::BatchError;

/// Every way an API call can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing or unknown bearer token.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The request could not be read (malformed JSON, bad path or query syntax).
    #[error("{message}")]
    BadRequest {
        /// Machine-readable code.
        code: &'static str,
        /// Human-readable detail.
        message: String,
    },
    /// Well-formed input that breaks a rule.
    #[error("{0}")]
    Validation(String),
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// Conflicts with existing data (duplicate name, plan in use, ...).
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than the endpoint takes.
    #[error("{0}")]
    TooLarge(String),
    /// Wrong Content-Type.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The phone already has an M-Pesa prompt waiting for the customer.
    #[error("{0}")]
    PhoneBusy(String),
    /// Too many requests from this address or for this phone; try again after this many
    /// seconds.
    #[error("too many requests; try again in {retry_after} seconds")]
    RateLimited {
        /// Seconds, for `Retry-After`.
        retry_after: u64,
    },
    /// An upstream service (M-Pesa) refused or failed.
    #[error("{0}")]
    BadGateway(String),
    /// A feature that is not configured.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else: logged once, answered with a generic 500.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Error body: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Inside [`ErrorBody`].
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code: unauthorized, bad_request, malformed_json,
    /// validation_failed, not_found, conflict, phone_busy, rate_limited, payload_too_large,
    /// unsupported_media_type, method_not_allowed, upstream_error, not_configured,
    /// internal_error.
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

/// Builds a JSON error response.
pub fn error_response(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.to_owned(),
            message: message.into(),
        },
    };
    (status, Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, *code),
            Self::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::PhoneBusy(_) => (StatusCode::CONFLICT, "phone_busy"),
            Self::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::BadGateway(_) => (StatusCode::BAD_GATEWAY, "upstream_error"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_configured"),
            Self::Unexpected(e) => {
                // The only place internal errors are logged.
                tracing::error!(error = format!("{e:#}"), "internal error");
                return error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "internal error; see the daemon log",
                );
            }
        };
        let mut resp = error_response(status, code, self.to_string());
        if let Self::RateLimited { retry_after } = self {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(retry_after),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::JsonDataError(e) => Self::Validation(e.body_text()),
            JsonRejection::JsonSyntaxError(e) => Self::BadRequest {
                code: "malformed_json",
                message: e.body_text(),
            },
            JsonRejection::MissingJsonContentType(e) => Self::UnsupportedMediaType(e.body_text()),
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::TooLarge(other.body_text())
            }
            other => Self::BadRequest {
                code: "bad_request",
                message: other.body_text(),
            },
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        Self::BadRequest {
            code: "bad_request",
            message: r.body_text(),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::BadRequest {
            code: "bad_request",
            message: r.body_text(),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::RowNotFound = e {
            return Self::NotFound("not found".to_owned());
        }
        if let Some(db) = e.as_database_error() {
            let constraint = db.constraint().unwrap_or("");
            match db.code().as_deref() {
                Some("23505") => return Self::Conflict(conflict_message(constraint)),
                Some("23503") => {
                    return Self::Validation(
                        "plan_id does not refer to an existing plan".to_owned(),
                    );
                }
                Some("23514") => {
                    return Self::Validation(format!(
                        "value rejected by the database rule {constraint}"
                    ));
                }
                Some("22P02" | "22003" | "22001") => {
                    return Self::Validation(db.message().to_owned());
                }
                _ => {}
            }
        }
        Self::Unexpected(anyhow::Error::new(e).context("database error"))
    }
}

impl From<StartError> for ApiError {
    fn from(e: StartError) -> Self {
        match e {
            StartError::Invalid(why) => Self::Validation(why),
            e @ StartError::PhoneBusy(_) => Self::PhoneBusy(e.to_string()),
            StartError::Daraja(e) if e.is_subscriber_locked() => Self::PhoneBusy(format!(
                "M-Pesa is still busy with an earlier prompt to this phone: {e}"
            )),
            e @ StartError::Daraja(_) => Self::BadGateway(e.to_string()),
            StartError::Voucher(BatchError::Invalid(why)) => Self::Validation(why),
            StartError::Voucher(BatchError::Db(e)) | StartError::Db(e) => e.into(),
            StartError::Voucher(e) => Self::Unexpected(anyhow::Error::new(e)),
        }
    }
}

fn conflict_message(constraint: &str) -> String {
    match constraint {
        "plans_name_key" => "a plan with this name already exists",
        "routers_name_key" => "a router with this name already exists",
        "routers_ip_key" => "a router with this ip already exists",
        "subscribers_username_key" => "a subscriber with this username already exists",
        "subscribers_static_ip_key" => "another subscriber already has this static_ip",
        "subscribers_mac_key" => "another subscriber is already bound to this mac",
        _ => "conflicts with an existing record",
    }
    .to_owned()
}
