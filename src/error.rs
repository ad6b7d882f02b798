//! The one error type. It renders the contract's JSON (`{"error": {code, message, details}}`),
//! logs an internal cause once, and never shows that cause to a client.
use poem::{IntoResponse, Response, http::StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

pub type Result<T, E = AppError> = std::result::Result<T, E>;

/// One invalid field of a request: `field` names it as the client wrote it (`fileUrl`, `body`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{message}")]
    Validation {
        message: String,
        details: Vec<FieldError>,
    },
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    NotFound(&'static str),
    /// A known path asked with a method it does not have; `allow` lists the ones it has.
    #[error("Method not allowed")]
    MethodNotAllowed { allow: String },
    #[error("{0}")]
    Conflict(String),
    #[error("Request body is too large")]
    PayloadTooLarge,
    #[error("Request body must be application/json")]
    UnsupportedMediaType,
    #[error("Too many attempts, try again later")]
    RateLimited { retry_after_secs: u64 },
    #[error("Service temporarily unavailable")]
    Unavailable,
    #[error("Internal server error")]
    Internal(#[source] anyhow_like::Cause),
}

/// The contract's error codes (CONTRACT §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    ValidationError,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    RateLimited,
    Internal,
    Unavailable,
}

impl ErrorCode {
    pub const ALL: [Self; 11] = [
        Self::ValidationError,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::Conflict,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::RateLimited,
        Self::Internal,
        Self::Unavailable,
    ];

    /// Each code has one status, and each status one code (the OpenAPI document relies on it).
    pub fn status(self) -> StatusCode {
        match self {
            Self::ValidationError => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

/// `{code, message, details?}`: HTTP error bodies and socket acks alike.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    /// Only for `VALIDATION_ERROR`: every invalid field.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub details: Option<Vec<FieldError>>,
}

/// A boxed internal cause; kept private to logs.
pub mod anyhow_like {
    pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;
}

impl AppError {
    pub fn validation(details: Vec<FieldError>) -> Self {
        let message = match details.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            _ => "Invalid request".into(),
        };
        Self::Validation { message, details }
    }

    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    pub fn internal(cause: impl Into<anyhow_like::Cause>) -> Self {
        Self::Internal(cause.into())
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Validation { .. } => ErrorCode::ValidationError,
            Self::Unauthorized(_) => ErrorCode::Unauthorized,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::MethodNotAllowed { .. } => ErrorCode::MethodNotAllowed,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::PayloadTooLarge => ErrorCode::PayloadTooLarge,
            Self::UnsupportedMediaType => ErrorCode::UnsupportedMediaType,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Unavailable => ErrorCode::Unavailable,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.code().status()
    }

    /// The `{code, message, details?}` object, shared by HTTP bodies and socket acks.
    pub fn body(&self) -> serde_json::Value {
        serde_json::to_value(self.error_body()).unwrap_or_default()
    }

    fn error_body(&self) -> ErrorBody {
        let details = match self {
            Self::Validation { details, .. } => Some(details.clone()),
            _ => None,
        };
        ErrorBody {
            code: self.code(),
            message: self.to_string(),
            details,
        }
    }

    /// Logs the internal cause (once, here) for the variants that have one.
    pub fn log(&self) {
        match self {
            Self::Internal(cause) => tracing::error!(error = %cause, "internal error"),
            Self::Unavailable => tracing::warn!("database unavailable"),
            _ => {}
        }
    }
}

impl From<rusqlite::Error> for AppError {
    fn from(err: rusqlite::Error) -> Self {
        Self::internal(err)
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(err: sea_orm::DbErr) -> Self {
        use sea_orm::DbErr;
        match err {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => {
                if matches!(
                    err,
                    DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout)
                ) {
                    crate::metrics::DB_POOL_TIMEOUTS.inc();
                }
                tracing::warn!(error = %err, "database connection failed");
                Self::Unavailable
            }
            other => Self::internal(other),
        }
    }
}

impl From<sea_orm::TransactionError<AppError>> for AppError {
    fn from(err: sea_orm::TransactionError<AppError>) -> Self {
        match err {
            sea_orm::TransactionError::Connection(db) => db.into(),
            sea_orm::TransactionError::Transaction(app) => app,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.log();
        let mut resp = Response::builder()
            .status(self.status())
            .content_type("application/json")
            .body(
                serde_json::to_string(&ErrorEnvelope {
                    error: self.error_body(),
                })
                .unwrap_or_default(),
            );
        match self {
            Self::RateLimited { retry_after_secs } => {
                resp.headers_mut()
                    .insert("retry-after", retry_after_secs.max(1).into());
            }
            Self::MethodNotAllowed { allow } => {
                if let Ok(allow) = allow.parse() {
                    resp.headers_mut().insert("allow", allow);
                }
            }
            _ => {}
        }
        resp
    }
}

impl From<AppError> for poem::Error {
    fn from(err: AppError) -> Self {
        poem::Error::from_response(err.into_response())
    }
}
