//! Tenant identifiers, validated as Tempo (dskit) validates `X-Scope-OrgID`.

use std::fmt;
use std::sync::Arc;

/// The tenant every request belongs to when multitenancy is disabled.
pub const SINGLE_TENANT: &str = "single-tenant";

/// A validated tenant ID: characters `[A-Za-z0-9!-_.*'()]`, at most 150 of them, not `.` or `..`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

/// Why a tenant ID was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantIdError {
    #[error("no org id")]
    Missing,
    #[error("tenant ID is too long: max 150 characters")]
    TooLong,
    #[error("tenant ID is '.' or '..'")]
    Dots,
    #[error("tenant ID '{id}' contains unsupported character '{ch}'")]
    BadChar { id: String, ch: char },
}

impl TenantId {
    pub fn new(id: &str) -> Result<Self, TenantIdError> {
        if id.is_empty() {
            return Err(TenantIdError::Missing);
        }
        if id.len() > 150 {
            return Err(TenantIdError::TooLong);
        }
        if id == "." || id == ".." {
            return Err(TenantIdError::Dots);
        }
        if let Some(ch) = id.chars().find(|c| !valid_char(*c)) {
            return Err(TenantIdError::BadChar {
                id: id.to_string(),
                ch,
            });
        }
        Ok(TenantId(id.into()))
    }

    pub fn single() -> Self {
        TenantId(SINGLE_TENANT.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn valid_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '!' | '-' | '_' | '.' | '*' | '\'' | '(' | ')')
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_like_dskit() {
        assert!(TenantId::new("team-a_1.(x)*'!").is_ok());
        assert_eq!(TenantId::new(""), Err(TenantIdError::Missing));
        assert_eq!(TenantId::new(".."), Err(TenantIdError::Dots));
        assert!(matches!(
            TenantId::new("a|b"),
            Err(TenantIdError::BadChar { ch: '|', .. })
        ));
        assert!(matches!(
            TenantId::new("a/b"),
            Err(TenantIdError::BadChar { ch: '/', .. })
        ));
        assert_eq!(TenantId::new(&"a".repeat(151)), Err(TenantIdError::TooLong));
    }
}
