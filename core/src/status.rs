//! The five statuses of a callback. A leaf of the crate's modules: the
//! transition table, the error type and the records all name statuses, and
//! none of them is needed to say what a status is.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Scheduled,
    Dispatching,
    Dispatched,
    Cancelled,
    Failed,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Scheduled,
        Status::Dispatching,
        Status::Dispatched,
        Status::Cancelled,
        Status::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Scheduled => "scheduled",
            Status::Dispatching => "dispatching",
            Status::Dispatched => "dispatched",
            Status::Cancelled => "cancelled",
            Status::Failed => "failed",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
