//! Errors as HTTP responses: the store's codes with the statuses of the
//! design's error table, plus the few the HTTP layer adds itself. Every error
//! response is the JSON body `{"error": "...", "code": "..."}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use callback_store::{Error, ErrorCode};
use serde::Serialize;

/// Codes only the HTTP layer produces: the store never returns them.
pub const METHOD_NOT_ALLOWED: &str = "METHOD_NOT_ALLOWED";
/// A bug (a panicked task): never expected, reported rather than hidden.
pub const INTERNAL_ERROR: &str = "INTERNAL_ERROR";

/// The largest request body the API reads: 256 KiB.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// An error answer: a status, the API's body and, for some, a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: String,
    pub code: &'static str,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    code: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, error: impl Into<String>) -> Self {
        ApiError {
            status,
            error: error.into(),
            code,
        }
    }

    /// A VALIDATION_ERROR (400) naming the field and the rule.
    pub fn validation(field: &str, rule: impl std::fmt::Display) -> Self {
        Error::validation(field, rule.to_string()).into()
    }

    pub fn unauthorized() -> Self {
        Error::Unauthorized.into()
    }

    pub fn route_not_found(method: &str, path: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound.as_str(),
            format!("no route for {method} {path}"),
        )
    }

    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            METHOD_NOT_ALLOWED,
            format!("{path} does not accept {method}"),
        )
    }

    pub fn body_too_large() -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::ValidationError.as_str(),
            format!("body: must be at most {MAX_BODY_BYTES} bytes"),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_ERROR, message)
    }

    /// The JSON body, exactly as sent.
    pub fn body_json(&self) -> String {
        serde_json::to_string(&Body {
            error: &self.error,
            code: self.code,
        })
        .expect("two strings serialize")
    }
}

/// The HTTP status of a store error, per the design's error table.
pub fn status_of(err: &Error) -> StatusCode {
    match err.code() {
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::InvalidTransition | ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::ValidationError => StatusCode::BAD_REQUEST,
        ErrorCode::StorageError if err.is_busy() => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::StorageError | ErrorCode::SchemaError => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        ApiError {
            status: status_of(&err),
            error: err.to_string(),
            code: err.code().as_str(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.body_json(),
        )
            .into_response();
        let headers = response.headers_mut();
        match self.status {
            StatusCode::UNAUTHORIZED => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthorized_body_is_exactly_the_reference_body() {
        assert_eq!(
            ApiError::unauthorized().body_json(),
            r#"{"error":"Unauthorized","code":"UNAUTHORIZED"}"#
        );
        assert_eq!(ApiError::unauthorized().status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn every_store_code_has_the_status_of_the_error_table() {
        let cases = [
            (Error::Unauthorized, 401),
            (
                Error::NotFound {
                    kind: "callback",
                    id: "cb_x".into(),
                },
                404,
            ),
            (
                Error::InvalidTransition {
                    id: "cb_x".into(),
                    action: callback_store::Action::Cancel,
                    from: callback_store::Status::Dispatched,
                },
                409,
            ),
            (
                Error::Conflict {
                    message: "again".into(),
                },
                409,
            ),
            (Error::validation("limit", "too big"), 400),
            (Error::storage("locked", true), 503),
            (Error::storage("disk full", false), 500),
            (
                Error::Schema {
                    message: "newer".into(),
                },
                500,
            ),
        ];
        for (err, status) in cases {
            let code = err.code().as_str();
            let api = ApiError::from(err);
            assert_eq!(api.status.as_u16(), status, "{code}");
            assert_eq!(api.code, code);
        }
    }
}
