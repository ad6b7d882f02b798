//! Validated input types. Each is built by `parse`, which names the offending field; past the
//! boundary the rest of the code trusts them.
use serde_json::Value;

use super::Role;

mod json;
use crate::error::{AppError, FieldError, Result};
pub use json::{from_json, from_slice};

/// PostgreSQL's text cannot hold U+0000 (the write would fail as an internal error), so no
/// stored text may contain it, on SQLite either; the document's patterns say the same.
fn no_nul(field: &str, raw: &str) -> Result<(), FieldError> {
    match raw.contains('\0') {
        true => Err(FieldError::new(field, "must not contain U+0000")),
        false => Ok(()),
    }
}

fn text(field: &str, raw: &str, max: usize) -> Result<String, FieldError> {
    no_nul(field, raw)?;
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if trimmed.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(trimmed.to_string())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTitle(pub String);

impl SourceTitle {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        text("title", raw, 300).map(Self)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileUrl(pub String);

impl FileUrl {
    /// An absolute URI (RFC 3986: ASCII, anything else percent-encoded, which is what the
    /// document's `format: uri` means) starting `http://` or `https://`, with a host.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let err = |m: &str| FieldError::new("fileUrl", m);
        if raw.len() > 2048 {
            return Err(err("must be at most 2048 characters"));
        }
        let bad = || err("must be an absolute http or https URL");
        let rest = raw
            .strip_prefix("https://")
            .or_else(|| raw.strip_prefix("http://"));
        if !rest.is_some_and(uri_characters) {
            return Err(bad());
        }
        let url = url::Url::parse(raw).map_err(|_| bad())?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad());
        }
        Ok(Self(raw.to_string()))
    }
}

/// RFC 3986's characters: unreserved, reserved, and `%` only before two hex digits. The
/// document's `fileUrl` pattern says the same.
fn uri_characters(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        i += match bytes[i] {
            b'%' if bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) =>
            {
                3
            }
            b if b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=".contains(&b) => 1,
            _ => return false,
        };
    }
    !bytes.is_empty()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultName(pub String);

impl VaultName {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        text("name", raw, 200).map(Self)
    }
}

pub fn description(raw: &str) -> Result<String, FieldError> {
    no_nul("description", raw)?;
    let trimmed = raw.trim();
    if trimmed.chars().count() > 2000 {
        return Err(FieldError::new(
            "description",
            "must be at most 2000 characters",
        ));
    }
    Ok(trimmed.to_string())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(pub String);

impl Email {
    /// Lower-cased: emails are unique regardless of case.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let email = raw.trim().to_lowercase();
        let valid = email.len() <= 320
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            })
            && !email.chars().any(|c| c.is_whitespace() || c.is_control());
        if valid {
            Ok(Self(email))
        } else {
            Err(FieldError::new("email", "must be a valid email address"))
        }
    }
}

pub fn user_name(raw: &str) -> Result<String, FieldError> {
    text("name", raw, 200)
}

/// 8–256 characters; checked before any hashing work is spent on it.
pub fn new_password(raw: &str) -> Result<String, FieldError> {
    match raw.chars().count() {
        0..8 => Err(FieldError::new("password", "must be at least 8 characters")),
        257.. => Err(FieldError::new(
            "password",
            "must be at most 256 characters",
        )),
        _ => Ok(raw.to_string()),
    }
}

pub fn role(raw: &str) -> Result<Role, FieldError> {
    match raw {
        "owner" => Ok(Role::Owner),
        "contributor" => Ok(Role::Contributor),
        "viewer" => Ok(Role::Viewer),
        _ => Err(FieldError::new(
            "role",
            "must be one of owner, contributor, viewer",
        )),
    }
}

pub fn id(field: &str, raw: &str) -> Result<uuid::Uuid, FieldError> {
    uuid::Uuid::parse_str(raw).map_err(|_| FieldError::new(field, "must be a UUID"))
}

/// Collects every field error of a request before failing, so a client sees them all at once.
#[derive(Default)]
pub struct Checker(Vec<FieldError>);

impl Checker {
    pub fn check<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        result.map_err(|e| self.0.push(e)).ok()
    }
    pub fn finish(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(AppError::validation(self.0))
        }
    }
}

/// Reads a typed field out of a loose JSON object (socket payloads), naming it on failure.
pub fn field<'a>(obj: &'a Value, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(SourceTitle::parse("  A  ").unwrap().0, "A");
        assert!(SourceTitle::parse("   ").is_err());
        assert!(SourceTitle::parse(&"x".repeat(300)).is_ok());
        assert!(SourceTitle::parse(&"x".repeat(301)).is_err());
    }

    #[test]
    fn file_urls_must_be_absolute_http() {
        assert!(FileUrl::parse("https://example.com/a.pdf").is_ok());
        for bad in [
            "javascript:alert(1)",
            "/relative.pdf",
            "ftp://x.org/a",
            "http://",
            "notaurl",
            "https://Ï",
            "HTTP://example.com/",
            "https://example.com/a b",
            "https://example.com/%zz",
            "https:\\\\example.com",
        ] {
            assert!(FileUrl::parse(bad).is_err(), "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(2030));
        assert!(FileUrl::parse(&long).is_err());
    }

    #[test]
    fn emails_are_lowercased() {
        assert_eq!(
            Email::parse(" Owner@Demo.COM ").unwrap().0,
            "owner@demo.com"
        );
        assert!(Email::parse("nobody").is_err());
        assert!(Email::parse("a@b").is_err());
    }

    #[test]
    fn passwords_are_bounded_by_characters() {
        assert!(new_password("1234567").is_err());
        assert!(new_password("12345678").is_ok());
        assert!(new_password(&"é".repeat(256)).is_ok());
        assert!(new_password(&"x".repeat(257)).is_err());
    }
}
