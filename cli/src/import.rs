//! `import`: JSON Lines, one callback a line (the body of `POST
//! /v1/callbacks`, `idempotency_key` included), created in one transaction:
//! all of them or none. Progress goes to stderr when it is a terminal.

use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::Path;

use callback_store::input;
use callback_store::{Error, Organization};
use callback_store_http::request;
use serde_json::{json, Value};

use crate::Failure;

/// How often progress is shown while reading.
const PROGRESS_EVERY: usize = 1000;

pub fn run(org: &Organization, file: Option<&Path>) -> Result<Value, Failure> {
    let input: Box<dyn Read> = match file {
        None => Box::new(std::io::stdin().lock()),
        Some(path) if path.as_os_str() == "-" => Box::new(std::io::stdin().lock()),
        Some(path) => Box::new(
            std::fs::File::open(path)
                .map_err(|e| Failure::Other(format!("cannot read {}: {e}", path.display())))?,
        ),
    };
    let progress = std::io::stderr().is_terminal();
    let mut batch = Vec::new();
    let mut line_numbers = Vec::new();
    for (index, line) in BufReader::new(input).lines().enumerate() {
        let number = index + 1;
        let line = line.map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => Failure::Store(Error::validation(
                format!("line {number}"),
                "must be UTF-8 text",
            )),
            _ => Failure::Other(format!("cannot read line {number}: {e}")),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let map = request::json_object(&format!("line {number}"), line.as_bytes())?;
        let new = input::new_callback(map).map_err(|e| at_line(e, number))?;
        batch.push(new);
        line_numbers.push(number);
        if progress && batch.len() % PROGRESS_EVERY == 0 {
            eprint!("\rread {} callbacks", batch.len());
        }
    }
    let count = batch.len();
    if progress {
        eprintln!("\rread {count} callbacks; writing them in one transaction…");
    }
    let created = org
        .create_many(batch)
        .map_err(|e| by_line(e, &line_numbers))?;
    if progress {
        eprintln!("imported {count} callbacks");
    }
    let ids: Vec<&str> = created.iter().map(|c| c.id.as_str()).collect();
    Ok(json!({"imported": count, "ids": ids}))
}

/// A validation error of line `number`'s fields names the line:
/// `line 7: to_number`.
fn at_line(err: Error, number: usize) -> Error {
    match err {
        Error::Validation { field, rule } => Error::Validation {
            field: format!("line {number}: {field}").into(),
            rule,
        },
        other => other,
    }
}

/// `callbacks[3].to_number` (the store's path for the 4th item of the batch)
/// becomes `line 7: to_number`, the line it came from.
fn by_line(err: Error, line_numbers: &[usize]) -> Error {
    let Error::Validation { field, rule } = err else {
        return err;
    };
    let item = field
        .split_item()
        .map(|((_, index), inside)| (index, inside));
    match item.and_then(|(index, inside)| Some((*line_numbers.get(index)?, inside))) {
        Some((line, inside)) => at_line(Error::validation(inside, rule), line),
        None => Error::Validation { field, rule },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_item_indexes_are_reported_as_line_numbers() {
        let err = by_line(
            Error::validation("to_number", "bad").within_item("callbacks", 1),
            &[2, 5, 9],
        );
        assert_eq!(err.to_string(), "line 5: to_number: bad");
    }
}
