//! One error type for every operation, with a stable code per kind.

use std::sync::Arc;

use serde::Serialize;

use crate::status::Status;
use crate::transitions::Action;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The stable codes of DESIGN.md. Bindings, the CLI and the HTTP server all
/// expose exactly these strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    Unauthorized,
    NotFound,
    InvalidTransition,
    Conflict,
    ValidationError,
    StorageError,
    SchemaError,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 7] = [
        ErrorCode::Unauthorized,
        ErrorCode::NotFound,
        ErrorCode::InvalidTransition,
        ErrorCode::Conflict,
        ErrorCode::ValidationError,
        ErrorCode::StorageError,
        ErrorCode::SchemaError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::InvalidTransition => "INVALID_TRANSITION",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::ValidationError => "VALIDATION_ERROR",
            ErrorCode::StorageError => "STORAGE_ERROR",
            ErrorCode::SchemaError => "SCHEMA_ERROR",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// Missing, unknown or revoked API token. The message is fixed by the API
    /// reference and deliberately says nothing about which of the three it was.
    #[error("Unauthorized")]
    Unauthorized,

    /// No such record in this organization. Other organizations' records are
    /// reported the same way, so their existence does not leak.
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },

    #[error("cannot {action} callback {id}: it is {from}{}", allowed_from_hint(*action))]
    InvalidTransition {
        id: String,
        action: Action,
        from: Status,
    },

    /// A claim that can no longer do what was asked: already spent on a
    /// call, its callback recovered or finished since, or a token that is
    /// not the callback's claim. Code INVALID_TRANSITION.
    #[error("cannot {action} callback {id}: stale claim: {reason}")]
    StaleClaim {
        id: String,
        action: Action,
        reason: String,
    },

    /// The calling policy refuses the action now: outside the callback's
    /// calling window, past its deadline, or a follow-up the policy does
    /// not allow. `reason` says which, and when the next opening is.
    /// Code INVALID_TRANSITION.
    #[error("cannot {action} callback {id}: {reason}")]
    PolicyRefused {
        id: String,
        action: Action,
        reason: String,
    },

    #[error("{message}")]
    Conflict { message: String },

    /// Bad input: `field` names the offending input (as data: an item of a
    /// batch is `callbacks[3].to_number`), `rule` what it must be.
    #[error("{field}: {rule}")]
    Validation { field: FieldPath, rule: String },

    /// SQLite failed. `busy` is true when another writer held the database
    /// for longer than the busy timeout (HTTP maps that to 503). `cause` is
    /// the error it came from, when there is one (`source()`).
    #[error("storage error: {message}")]
    Storage {
        message: String,
        busy: bool,
        #[source]
        cause: Option<Cause>,
    },

    /// The file is not a callback store, or was migrated by a newer version.
    #[error("schema error: {message}")]
    Schema { message: String },
}

/// The error beneath a storage error (SQLite's, the system's random
/// source's), kept so that `source()` reaches it.
#[derive(Debug, Clone)]
pub struct Cause(Arc<dyn std::error::Error + Send + Sync>);

impl Cause {
    pub fn new(err: impl std::error::Error + Send + Sync + 'static) -> Cause {
        Cause(Arc::new(err))
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Errors have no identity to compare: two causes are equal when they say
/// the same.
impl PartialEq for Cause {
    fn eq(&self, other: &Cause) -> bool {
        self.to_string() == other.to_string()
    }
}

/// Where a bad input is, as data: field names, and the positions of items
/// in lists. Shown as `callbacks[3].to_number`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldPath {
    segments: Vec<PathSegment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSegment {
    /// A field (or argument, header, query parameter) by name.
    Field(String),
    /// An item of the list named by the segment before it.
    Item(usize),
}

impl FieldPath {
    pub fn segments(&self) -> &[PathSegment] {
        &self.segments
    }

    /// Item `index` of the list `list` itself: `retry_intervals[1]`.
    pub fn item(list: &str, index: usize) -> FieldPath {
        FieldPath {
            segments: vec![
                PathSegment::Field(list.to_owned()),
                PathSegment::Item(index),
            ],
        }
    }

    /// This path inside item `index` of the list `list`.
    pub fn within_item(self, list: &str, index: usize) -> FieldPath {
        let mut segments = vec![
            PathSegment::Field(list.to_owned()),
            PathSegment::Item(index),
        ];
        segments.extend(self.segments);
        FieldPath { segments }
    }

    /// The item of a list this path starts in, as (list, index), and the
    /// path inside that item: `callbacks[3].to_number` gives
    /// `("callbacks", 3)` and `to_number`.
    pub fn split_item(&self) -> Option<((&str, usize), FieldPath)> {
        match self.segments.as_slice() {
            [PathSegment::Field(list), PathSegment::Item(index), rest @ ..] => Some((
                (list.as_str(), *index),
                FieldPath {
                    segments: rest.to_vec(),
                },
            )),
            _ => None,
        }
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                PathSegment::Field(name) if i == 0 => f.write_str(name)?,
                PathSegment::Field(name) => write!(f, ".{name}")?,
                PathSegment::Item(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

impl From<&str> for FieldPath {
    fn from(name: &str) -> Self {
        FieldPath::from(name.to_owned())
    }
}

impl From<String> for FieldPath {
    fn from(name: String) -> Self {
        FieldPath {
            segments: vec![PathSegment::Field(name)],
        }
    }
}

impl From<&String> for FieldPath {
    fn from(name: &String) -> Self {
        FieldPath::from(name.clone())
    }
}

impl PartialEq<str> for FieldPath {
    fn eq(&self, other: &str) -> bool {
        self.to_string().as_str() == other
    }
}

impl PartialEq<&str> for FieldPath {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

fn allowed_from_hint(action: Action) -> String {
    let from: Vec<&str> = crate::transitions::sources(action)
        .chain(crate::transitions::follows_up_from(action))
        .map(Status::as_str)
        .collect();
    match from.as_slice() {
        [] => String::new(),
        [one] => format!(" (only a {one} callback can be {})", action.past_tense()),
        many => format!(
            " (only a callback that is {} can be {})",
            many.join(" or "),
            action.past_tense()
        ),
    }
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Unauthorized => ErrorCode::Unauthorized,
            Error::NotFound { .. } => ErrorCode::NotFound,
            Error::InvalidTransition { .. }
            | Error::StaleClaim { .. }
            | Error::PolicyRefused { .. } => ErrorCode::InvalidTransition,
            Error::Conflict { .. } => ErrorCode::Conflict,
            Error::Validation { .. } => ErrorCode::ValidationError,
            Error::Storage { .. } => ErrorCode::StorageError,
            Error::Schema { .. } => ErrorCode::SchemaError,
        }
    }

    pub fn validation(field: impl Into<FieldPath>, rule: impl Into<String>) -> Self {
        Error::Validation {
            field: field.into(),
            rule: rule.into(),
        }
    }

    /// NOT_FOUND for an agent without a calling policy of its own: what
    /// `clear_agent_calling_policy` answers, and what a door that reads one
    /// agent's override (`agent_calling_policy` is None) answers too.
    pub fn agent_policy_not_found(agent_id: &str) -> Self {
        Error::NotFound {
            kind: "calling policy of agent",
            id: agent_id.to_owned(),
        }
    }

    pub(crate) fn callback_not_found(id: &str) -> Self {
        Error::NotFound {
            kind: "callback",
            id: id.to_owned(),
        }
    }

    pub(crate) fn schema(message: impl Into<String>) -> Self {
        Error::Schema {
            message: message.into(),
        }
    }

    /// Places the field of a validation error inside item `index` of the
    /// list `list`: `to_number` becomes `callbacks[3].to_number`.
    pub fn within_item(self, list: &str, index: usize) -> Self {
        match self {
            Error::Validation { field, rule } => Error::Validation {
                field: field.within_item(list, index),
                rule,
            },
            other => other,
        }
    }

    /// A storage error with no underlying error to keep.
    pub fn storage(message: impl Into<String>, busy: bool) -> Self {
        Error::Storage {
            message: message.into(),
            busy,
            cause: None,
        }
    }

    /// A storage error that came from `cause`.
    pub fn storage_from(
        message: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Storage {
            message: message.into(),
            busy: false,
            cause: Some(Cause::new(cause)),
        }
    }

    pub fn is_busy(&self) -> bool {
        matches!(self, Error::Storage { busy: true, .. })
    }

    /// The API's error body for this error.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.to_string(),
            code: self.code(),
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Self {
        let busy = matches!(
            err.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        );
        let message = match err.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                format!(
                    "the database stayed locked by another writer past the busy timeout ({err})"
                )
            }
            Some(rusqlite::ErrorCode::DiskFull) => {
                format!("the disk is full; nothing was written ({err})")
            }
            Some(rusqlite::ErrorCode::CannotOpen) => format!(
                "cannot open the database file, or create its -wal and -shm files beside it: \
                 check that its folder exists and is writable ({err})"
            ),
            Some(rusqlite::ErrorCode::ReadOnly) => {
                format!("the database file or its folder is read-only ({err})")
            }
            Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
                format!("the database file is corrupt ({err})")
            }
            _ => err.to_string(),
        };
        Error::Storage {
            message,
            busy,
            cause: Some(Cause::new(err)),
        }
    }
}

/// Whether a PostgreSQL error is the connection breaking (or failing to be
/// made) rather than the server refusing a statement.
#[cfg(feature = "postgres")]
pub(crate) fn connection_lost(err: &postgres::Error) -> bool {
    err.code().is_none()
        && (err.is_closed()
            || std::error::Error::source(err).is_some_and(|s| s.is::<std::io::Error>()))
}

/// What a PostgreSQL error says, in full: the server's message and SQLSTATE,
/// or the client's error with every cause beneath it ("error connecting to
/// server: Connection refused (os error 111)"): the client's own text alone
/// often leaves out what went wrong.
#[cfg(feature = "postgres")]
pub(crate) fn describe_postgres(err: &postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

/// PostgreSQL's errors. Those that a later try may not meet are busy (retried
/// until the operation's deadline, then HTTP 503): a serialization failure
/// or deadlock, a lock wait past `lock_timeout`, a server shutting down or
/// starting up, too many connections, a lost connection, and a unique
/// violation of the idempotency index (two creates with one key raced: the
/// retry finds the winner's callback).
#[cfg(feature = "postgres")]
impl From<postgres::Error> for Error {
    fn from(err: postgres::Error) -> Self {
        use postgres::error::SqlState;
        let busy = match err.code() {
            Some(code) => {
                [
                    SqlState::T_R_SERIALIZATION_FAILURE,
                    SqlState::T_R_DEADLOCK_DETECTED,
                    SqlState::LOCK_NOT_AVAILABLE,
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::TOO_MANY_CONNECTIONS,
                ]
                .contains(code)
                    || (*code == SqlState::UNIQUE_VIOLATION
                        && err.as_db_error().and_then(|e| e.constraint())
                            == Some("callbacks_idempotency"))
            }
            None => connection_lost(&err),
        };
        let message = format!("PostgreSQL: {}", describe_postgres(&err));
        Error::Storage {
            message,
            busy,
            cause: Some(Cause::new(err)),
        }
    }
}

/// The API's error body: `{"error": "...", "code": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorBody {
    pub error: String,
    pub code: ErrorCode,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthorized_body_is_exactly_the_api_reference_body() {
        let json = serde_json::to_string(&Error::Unauthorized.body()).unwrap();
        assert_eq!(json, r#"{"error":"Unauthorized","code":"UNAUTHORIZED"}"#);
    }

    #[test]
    fn every_code_serializes_as_its_string() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn a_storage_error_keeps_the_sqlite_error_it_came_from() {
        let err = crate::Store::open("/no/such/folder/callbacks.db").unwrap_err();
        assert_eq!(err.code(), ErrorCode::StorageError);
        let cause = std::error::Error::source(&err).expect("the SQLite error is kept");
        assert!(
            err.to_string().contains(&cause.to_string()),
            "{err} / {cause}"
        );
        let from_sqlite = Error::from(rusqlite::Error::QueryReturnedNoRows);
        let cause = std::error::Error::source(&from_sqlite).unwrap();
        assert_eq!(
            cause.to_string(),
            rusqlite::Error::QueryReturnedNoRows.to_string()
        );
    }

    #[test]
    fn invalid_transition_message_names_action_and_status() {
        let err = Error::InvalidTransition {
            id: "cb_1".into(),
            action: Action::Cancel,
            from: Status::Dispatched,
        };
        let msg = err.to_string();
        assert!(msg.contains("cancel"), "{msg}");
        assert!(msg.contains("dispatched"), "{msg}");
        assert!(msg.contains("only a scheduled callback"), "{msg}");
    }
}
