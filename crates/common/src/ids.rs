//! Trace and span identifiers.

use std::fmt;

/// A 128-bit trace ID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TraceId(pub [u8; 16]);

/// A 64-bit span ID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SpanId(pub [u8; 8]);

/// Why a hex trace ID from a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceIdParseError {
    #[error("trace IDs can't be empty")]
    Empty,
    #[error("trace IDs can't be larger than 128 bits")]
    TooLong,
    #[error("trace IDs must be hex")]
    NotHex,
}

impl TraceId {
    /// Parses a hex trace ID as Tempo's `HexStringToTraceID` does: at most 32 hex digits, left
    /// padded with zeros to 16 bytes. An odd number of digits is padded too.
    pub fn from_hex(s: &str) -> Result<Self, TraceIdParseError> {
        if s.is_empty() {
            return Err(TraceIdParseError::Empty);
        }
        if s.len() > 32 {
            return Err(TraceIdParseError::TooLong);
        }
        if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TraceIdParseError::NotHex);
        }
        let mut padded = [b'0'; 32];
        padded[32 - s.len()..].copy_from_slice(s.as_bytes());
        let mut out = [0u8; 16];
        hex::decode_to_slice(padded, &mut out).map_err(|_| TraceIdParseError::NotHex)?;
        Ok(TraceId(out))
    }

    /// Takes exactly 16 bytes, or `None`.
    pub fn from_slice(b: &[u8]) -> Option<Self> {
        b.try_into().ok().map(TraceId)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Hex without leading zeros, as Tempo's `TraceIDToHexString` (search results,
    /// `TraceIDText`).
    pub fn to_trimmed_hex(&self) -> String {
        let h = self.to_hex();
        let t = h.trim_start_matches('0');
        if t.is_empty() { "0".into() } else { t.into() }
    }
}

impl SpanId {
    pub fn from_slice(b: &[u8]) -> Option<Self> {
        b.try_into().ok().map(SpanId)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({})", hex::encode(self.0))
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({})", hex::encode(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_are_left_padded() {
        let id = TraceId::from_hex("abc").unwrap();
        assert_eq!(id.to_hex(), "00000000000000000000000000000abc");
        let full = "0123456789abcdef0123456789ABCDEF";
        assert_eq!(
            TraceId::from_hex(full).unwrap().to_hex(),
            full.to_lowercase()
        );
    }

    #[test]
    fn bad_ids_are_refused() {
        assert_eq!(TraceId::from_hex(""), Err(TraceIdParseError::Empty));
        assert_eq!(
            TraceId::from_hex(&"1".repeat(33)),
            Err(TraceIdParseError::TooLong)
        );
        assert_eq!(TraceId::from_hex("xyz"), Err(TraceIdParseError::NotHex));
    }
}
