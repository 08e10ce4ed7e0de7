//! The error every binding raises: one variant (one exception class) per
//! code of DESIGN.md, each carrying that same `code` string and the message.

use callback_store::{self as core, ErrorCode};

pub type Result<T, E = CallbackStoreError> = std::result::Result<T, E>;

/// An error of the callback store. Each variant is one code; `code` is that
/// code as a string (`"NOT_FOUND"`, ...), `reason` the human message (the
/// API body's `error`). Python: `CallbackStoreError.NotFound`, Kotlin:
/// `CallbackStoreException.NotFound`, Swift: `CallbackStoreError.NotFound`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum CallbackStoreError {
    /// Missing, unknown or revoked API token.
    #[error("{reason}")]
    Unauthorized { code: String, reason: String },
    /// No such callback (or key) in this organization.
    #[error("{reason}")]
    NotFound { code: String, reason: String },
    /// The action is not allowed from the callback's current status.
    #[error("{reason}")]
    InvalidTransition { code: String, reason: String },
    /// An idempotency key reused with a different payload.
    #[error("{reason}")]
    Conflict { code: String, reason: String },
    /// Bad input: the reason names the field and the rule.
    #[error("{reason}")]
    ValidationError { code: String, reason: String },
    /// The database failed (SQLite, or PostgreSQL: unreachable, lost); `busy`
    /// when another writer held it past the busy timeout, or PostgreSQL could
    /// not be reached before it.
    #[error("{reason}")]
    StorageError {
        code: String,
        reason: String,
        busy: bool,
    },
    /// The file is not a callback store, or was migrated by a newer version.
    #[error("{reason}")]
    SchemaError { code: String, reason: String },
}

impl CallbackStoreError {
    /// The stable code, e.g. `NOT_FOUND`.
    pub fn code(&self) -> String {
        match self {
            CallbackStoreError::Unauthorized { code, .. }
            | CallbackStoreError::NotFound { code, .. }
            | CallbackStoreError::InvalidTransition { code, .. }
            | CallbackStoreError::Conflict { code, .. }
            | CallbackStoreError::ValidationError { code, .. }
            | CallbackStoreError::StorageError { code, .. }
            | CallbackStoreError::SchemaError { code, .. } => code.clone(),
        }
    }
}

impl From<core::Error> for CallbackStoreError {
    fn from(err: core::Error) -> Self {
        let code = err.code().as_str().to_owned();
        let reason = err.to_string();
        match err.code() {
            ErrorCode::Unauthorized => CallbackStoreError::Unauthorized { code, reason },
            ErrorCode::NotFound => CallbackStoreError::NotFound { code, reason },
            ErrorCode::InvalidTransition => CallbackStoreError::InvalidTransition { code, reason },
            ErrorCode::Conflict => CallbackStoreError::Conflict { code, reason },
            ErrorCode::ValidationError => CallbackStoreError::ValidationError { code, reason },
            ErrorCode::StorageError => CallbackStoreError::StorageError {
                code,
                reason,
                busy: err.is_busy(),
            },
            ErrorCode::SchemaError => CallbackStoreError::SchemaError { code, reason },
        }
    }
}

/// What a foreign `Dispatcher.place_call` raises to say the call could not
/// be placed; `reason` becomes the callback's `failure_cause`. Any other
/// exception does the same with its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum DispatchError {
    #[error("{reason}")]
    Failed { reason: String },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for DispatchError {
    fn from(err: uniffi::UnexpectedUniFFICallbackError) -> Self {
        DispatchError::Failed {
            reason: foreign_message(&err.reason),
        }
    }
}

/// The message of an exception that a foreign dispatcher raised without
/// wrapping it in `DispatchError`. Kotlin hands over the whole stack trace
/// (`java.lang.IllegalStateException: line busy\n\tat ...`): keep the
/// message. Python's package hands over `str(exception)`, Swift
/// `String(describing:)`; those are kept as they are.
pub(crate) fn foreign_message(reason: &str) -> String {
    let Some(at) = reason.find("\n\tat ") else {
        return reason.to_owned();
    };
    let head = reason[..at].trim_end();
    match head.split_once(": ") {
        Some((class, message)) if is_jvm_class_name(class) => message.to_owned(),
        _ => head.to_owned(),
    }
}

fn is_jvm_class_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '$' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_code_maps_to_its_variant_with_the_same_code() {
        let errors = [
            core::Error::Unauthorized,
            core::Error::NotFound {
                kind: "callback",
                id: "cb_1".into(),
            },
            // The calling policy's refusals (outside a window, attempts
            // used up, ...) are INVALID_TRANSITION too.
            core::Error::PolicyRefused {
                id: "cb_1".into(),
                action: core::Action::Retry,
                reason: "attempt 3 was the last".into(),
            },
            core::Error::Conflict {
                message: "x".into(),
            },
            core::Error::validation("to_number", "must be E.164"),
            core::Error::storage("locked", true),
            core::Error::Schema {
                message: "newer".into(),
            },
        ];
        for err in errors {
            let code = err.code().as_str();
            let message = err.to_string();
            let ffi = CallbackStoreError::from(err);
            assert_eq!(ffi.code(), code);
            assert_eq!(ffi.to_string(), message);
        }
    }

    #[test]
    fn jvm_stack_traces_are_reduced_to_the_message() {
        let trace =
            "java.lang.IllegalStateException: line busy: try later\n\tat Foo.bar(Foo.kt:3)\n";
        assert_eq!(foreign_message(trace), "line busy: try later");
        let no_message = "java.lang.NullPointerException\n\tat Foo.bar(Foo.kt:3)";
        assert_eq!(
            foreign_message(no_message),
            "java.lang.NullPointerException"
        );
        assert_eq!(foreign_message("no answer"), "no answer");
        assert_eq!(foreign_message("a: b"), "a: b");
    }
}
