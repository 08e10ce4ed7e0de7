//! The `--db` value as the command shows it in its own messages: a file's
//! path, or a PostgreSQL URL with its password hidden, so that logs never
//! carry a secret.

use std::path::Path;

/// `db` for a log line: `postgres://app:***@host/db` for a URL with a
/// password, the path or URL itself otherwise.
pub fn shown(db: &Path) -> String {
    let text = db.display().to_string();
    let Some(scheme_end) = text.find("://").filter(|_| is_url(&text)) else {
        return text;
    };
    let rest = &text[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return text;
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &text[..scheme_end + 3],
            &rest[..colon],
            &rest[at..]
        ),
        None => text,
    }
}

fn is_url(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_urls_password_is_never_shown() {
        let cases = [
            (
                "postgres://app:s3cret@db.internal:5432/app?options=-csearch_path%3Dcb",
                "postgres://app:***@db.internal:5432/app?options=-csearch_path%3Dcb",
            ),
            (
                "postgresql://app:p@ss@host/db",
                "postgresql://app:***@host/db",
            ),
            ("postgres://app@host/db", "postgres://app@host/db"),
            ("postgres://host/db", "postgres://host/db"),
            ("./callbacks.db", "./callbacks.db"),
            ("/data/a:b@c.db", "/data/a:b@c.db"),
        ];
        for (given, expected) in cases {
            assert_eq!(shown(Path::new(given)), expected, "{given}");
        }
    }
}
