//! API tokens: random, shown once, stored as a SHA-256 hash. Tokens carry
//! 256 bits of randomness, so a fast hash is enough: there is nothing to
//! brute-force that a slow password hash would protect.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

const TOKEN_PREFIX: &str = "cbs_";

pub(crate) fn new_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::storage_from(format!("the system's random source failed: {e}"), e))?;
    Ok(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

pub(crate) fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The token of an Authorization value: `Bearer <token>` (scheme in any
/// case) or the bare token. Anything else (another scheme, spaces inside,
/// nothing at all) yields None.
pub(crate) fn token_of(authorization: &str) -> Option<&str> {
    let value = authorization.trim();
    let token = match value.split_once(char::is_whitespace) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        Some(_) => return None,
        None if value.eq_ignore_ascii_case("bearer") => return None,
        None => value,
    };
    let valid = !token.is_empty()
        && token.len() <= 512
        && !token.chars().any(|c| c.is_whitespace() || c.is_control());
    valid.then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_bare_tokens_are_accepted() {
        assert_eq!(token_of("Bearer abc"), Some("abc"));
        assert_eq!(token_of("bearer   abc "), Some("abc"));
        assert_eq!(token_of("abc"), Some("abc"));
        for bad in [
            "",
            "Bearer",
            "Bearer ",
            "Basic abc",
            "Bearer a b",
            "Bearer a\u{0}",
        ] {
            assert_eq!(token_of(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn tokens_are_distinct_and_url_safe() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
    }
}
