//! The API's one error type: an HTTP status, a stable machine-readable code and a message. Body
//! and query extractors that turn malformed input into such errors.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use sluice_sdk::api::ErrorCode;
use sluice_sdk::api::{ApiError, ErrorBody};

#[derive(Debug)]
pub struct ApiErr {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub details: Option<serde_json::Value>,
}

impl ApiErr {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiErr {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }
    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, what)
    }
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }
}

impl IntoResponse for ApiErr {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = %self.code, message = %self.message, "request failed");
        }
        let body = ErrorBody {
            error: ApiError {
                code: self.code,
                message: self.message,
                details: self.details,
            },
        };
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<crate::store::StoreError> for ApiErr {
    fn from(e: crate::store::StoreError) -> Self {
        if e.is_storage_full() {
            return ApiErr::new(
                StatusCode::INSUFFICIENT_STORAGE,
                ErrorCode::StorageFull,
                format!("the server's disk is full; nothing was written: {e}"),
            );
        }
        if let crate::store::StoreError::Ambiguous(m) = e {
            return ApiErr::new(StatusCode::CONFLICT, ErrorCode::Ambiguous, m);
        }
        ApiErr::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            e.to_string(),
        )
    }
}

impl From<crate::scheduler::CreateError> for ApiErr {
    fn from(e: crate::scheduler::CreateError) -> Self {
        use crate::scheduler::CreateError;
        match e {
            CreateError::Plan(m) => ApiErr::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::InvalidPipeline,
                m,
            ),
            e @ CreateError::KeyReused(_) => ApiErr::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::IdempotencyKeyReused,
                e.to_string(),
            ),
            CreateError::Store(e) => e.into(),
        }
    }
}

impl From<crate::scheduler::WorkerError> for ApiErr {
    fn from(e: crate::scheduler::WorkerError) -> Self {
        match e {
            crate::scheduler::WorkerError::UnknownWorker(_) => ApiErr::new(
                StatusCode::NOT_FOUND,
                ErrorCode::UnknownWorker,
                e.to_string(),
            ),
            crate::scheduler::WorkerError::Store(e) => e.into(),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiErr>;

/// A JSON body; anything malformed is a 400 `invalid_body` naming what is wrong, a body over the
/// server's limit a 413 `body_too_large` naming the limit.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned> FromRequest<super::App> for Body<T> {
    type Rejection = ApiErr;

    async fn from_request(req: Request, app: &super::App) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, app).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(rej) if rej.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(too_large(app.max_body))
            }
            Err(rej) => {
                let msg = match &rej {
                    JsonRejection::MissingJsonContentType(_) => {
                        "expected a JSON body with `Content-Type: application/json`".to_string()
                    }
                    other => format!("invalid JSON body: {}", other.body_text()),
                };
                Err(ApiErr::bad_request(ErrorCode::InvalidBody, msg))
            }
        }
    }
}

/// Checks a name a caller gives (a run's, a worker's, a file's): 1 to `max` bytes, not blank, no
/// control characters (a NUL byte or a newline in a name breaks every place that shows it).
pub fn check_name(field: &str, value: &str, max: usize) -> ApiResult<()> {
    if value.trim().is_empty() || value.len() > max {
        return Err(ApiErr::bad_request(
            ErrorCode::InvalidBody,
            format!("`{field}` must be 1 to {max} bytes, not blank"),
        ));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(ApiErr::bad_request(
            ErrorCode::InvalidBody,
            format!("`{field}` holds the control character {c:?}; names are printable text"),
        ));
    }
    Ok(())
}

/// The answer to a request body over the limit.
pub fn too_large(limit: usize) -> ApiErr {
    ApiErr::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::BodyTooLarge,
        format!("the request body is over the server's limit of {limit} bytes"),
    )
}

/// Query parameters; malformed ones are a 400 `invalid_query`.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiErr;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|rej: QueryRejection| {
                ApiErr::bad_request(
                    ErrorCode::InvalidQuery,
                    format!("invalid query: {}", rej.body_text()),
                )
            })
    }
}
