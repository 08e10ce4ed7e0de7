//! Keyset cursors: the position after the last row of a page, signed with the
//! file's secret and bound to the query that made it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::model::ListQuery;
use crate::time::to_micros;

const VERSION: u8 = 1;
const FINGERPRINT_LEN: usize = 8;
const TAG_LEN: usize = 16;
const BODY_LEN: usize = 1 + FINGERPRINT_LEN + 8 + 8;

/// Where the next page starts: after the row with this sort key and seq.
/// The sort key is the row's scheduled_at for `scheduled_asc` and unused
/// (0) for `created_desc`, which pages by seq alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    pub sort_key: i64,
    pub seq: i64,
}

/// What a cursor is bound to: the organization, every filter and the order,
/// but not the limit (a caller may change the page size between pages).
pub(crate) fn fingerprint(organization_id: &str, query: &ListQuery) -> [u8; FINGERPRINT_LEN] {
    // Destructured without `..`: a new filter cannot be forgotten here.
    let ListQuery {
        status,
        source_session_id,
        agent_id,
        to_number,
        scheduled_after,
        scheduled_before,
        order,
        limit: _,
        cursor: _,
    } = query;
    let canonical = serde_json::json!([
        organization_id,
        status.map(|s| s.as_str()),
        source_session_id,
        agent_id,
        to_number,
        scheduled_after.map(to_micros),
        scheduled_before.map(to_micros),
        order.as_str(),
    ]);
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    let mut out = [0u8; FINGERPRINT_LEN];
    out.copy_from_slice(&digest[..FINGERPRINT_LEN]);
    out
}

fn mac(secret: &[u8]) -> Hmac<Sha256> {
    <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes a key of any length")
}

pub(crate) fn encode(secret: &[u8], fingerprint: [u8; FINGERPRINT_LEN], pos: Position) -> String {
    let mut bytes = Vec::with_capacity(BODY_LEN + TAG_LEN);
    bytes.push(VERSION);
    bytes.extend_from_slice(&fingerprint);
    bytes.extend_from_slice(&pos.sort_key.to_be_bytes());
    bytes.extend_from_slice(&pos.seq.to_be_bytes());
    let mut m = mac(secret);
    m.update(&bytes);
    bytes.extend_from_slice(&m.finalize().into_bytes()[..TAG_LEN]);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The rule a list cursor from another query breaks.
pub(crate) const OTHER_QUERY: &str =
    "was issued for a different query: keep the filters and order of the request that returned it";

/// `field` is the parameter that carried the cursor and `mismatch` the rule
/// a cursor of another query (or feed) breaks, for the errors.
pub(crate) fn decode(
    field: &str,
    mismatch: &str,
    secret: &[u8],
    fingerprint: [u8; FINGERPRINT_LEN],
    text: &str,
) -> Result<Position> {
    let malformed = || {
        Error::validation(
            field,
            "is not a cursor this store issued: pass the next_cursor of the previous page unchanged",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| malformed())?;
    if bytes.len() != BODY_LEN + TAG_LEN || bytes[0] != VERSION {
        return Err(malformed());
    }
    let (body, tag) = bytes.split_at(BODY_LEN);
    let mut m = mac(secret);
    m.update(body);
    m.verify_truncated_left(tag).map_err(|_| malformed())?;
    if body[1..1 + FINGERPRINT_LEN] != fingerprint {
        return Err(Error::validation(field, mismatch));
    }
    let int_at = |at: usize| i64::from_be_bytes(body[at..at + 8].try_into().expect("8 bytes"));
    Ok(Position {
        sort_key: int_at(1 + FINGERPRINT_LEN),
        seq: int_at(1 + FINGERPRINT_LEN + 8),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Status;

    #[test]
    fn a_cursor_round_trips_only_with_its_secret_and_query() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let q = ListQuery::default();
        let fp = fingerprint("org", &q);
        let pos = Position {
            sort_key: -5,
            seq: 42,
        };
        let text = encode(secret, fp, pos);
        assert_eq!(
            decode("cursor", OTHER_QUERY, secret, fp, &text).unwrap(),
            pos
        );

        let other = ListQuery {
            status: Some(Status::Failed),
            ..q.clone()
        };
        let err = decode(
            "cursor",
            OTHER_QUERY,
            secret,
            fingerprint("org", &other),
            &text,
        )
        .unwrap_err();
        assert!(err.to_string().contains("different query"), "{err}");
        let err = decode(
            "cursor",
            OTHER_QUERY,
            secret,
            fingerprint("org2", &q),
            &text,
        )
        .unwrap_err();
        assert!(err.to_string().contains("different query"), "{err}");
        assert!(decode("cursor", OTHER_QUERY, b"another secret", fp, &text).is_err());
        let q_limit = ListQuery { limit: 7, ..q };
        assert_eq!(
            decode(
                "cursor",
                OTHER_QUERY,
                secret,
                fingerprint("org", &q_limit),
                &text
            )
            .unwrap(),
            pos
        );
    }

    #[test]
    fn every_single_character_change_of_a_cursor_is_rejected() {
        let secret = b"secret";
        let fp = fingerprint("org", &ListQuery::default());
        let text = encode(
            secret,
            fp,
            Position {
                sort_key: 1,
                seq: 2,
            },
        );
        for i in 0..text.len() {
            for replacement in ['A', 'z', '0', '-', '_'] {
                let mut chars: Vec<char> = text.chars().collect();
                if chars[i] == replacement {
                    continue;
                }
                chars[i] = replacement;
                let tampered: String = chars.into_iter().collect();
                let err = decode("cursor", OTHER_QUERY, secret, fp, &tampered).unwrap_err();
                assert_eq!(err.code(), crate::ErrorCode::ValidationError);
            }
        }
        for junk in ["", "abc", "!!!!", &"A".repeat(10_000)] {
            assert!(decode("cursor", OTHER_QUERY, secret, fp, junk).is_err());
        }
    }
}
