//! Validated names for warehouses, namespaces and tables. Validation lives here so every
//! entry point (REST, management, CLI) rejects the same inputs with the same message.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdentError(pub String);

impl IdentError {
    pub fn new(msg: impl Into<String>) -> Self {
        IdentError(msg.into())
    }
}

const MAX_PART: usize = 255;

fn check_part(kind: &str, s: &str) -> Result<(), IdentError> {
    if s.is_empty() {
        return Err(IdentError::new(format!("{kind} must not be empty")));
    }
    if s.len() > MAX_PART {
        return Err(IdentError::new(format!(
            "{kind} is longer than {MAX_PART} bytes"
        )));
    }
    // Control characters (incl. the 0x1F separator the store uses to join namespace
    // levels) would make names ambiguous or unprintable.
    if s.chars().any(|c| c.is_control()) {
        return Err(IdentError::new(format!(
            "{kind} must not contain control characters"
        )));
    }
    Ok(())
}

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WarehouseName(String);

impl WarehouseName {
    pub fn parse(s: &str) -> Result<Self, IdentError> {
        check_part("warehouse name", s)?;
        if s.contains('/') {
            return Err(IdentError::new("warehouse name must not contain '/'"));
        }
        if s.trim() != s {
            return Err(IdentError::new(
                "warehouse name must not start or end with whitespace",
            ));
        }
        Ok(WarehouseName(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl fmt::Display for WarehouseName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for WarehouseName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A (possibly nested) namespace: one or more levels.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NamespaceName(Vec<String>);

/// Depth bound: deep enough for any real layout, small enough that a hostile request cannot
/// make us build absurd keys.
pub const MAX_NAMESPACE_DEPTH: usize = 16;

impl NamespaceName {
    pub fn new(parts: Vec<String>) -> Result<Self, IdentError> {
        if parts.is_empty() {
            return Err(IdentError::new("namespace must have at least one level"));
        }
        if parts.len() > MAX_NAMESPACE_DEPTH {
            return Err(IdentError::new(format!(
                "namespace is nested deeper than {MAX_NAMESPACE_DEPTH} levels"
            )));
        }
        for p in &parts {
            check_part("namespace level", p)?;
        }
        Ok(NamespaceName(parts))
    }
    /// Parses the REST path form: levels separated by the unit separator 0x1F
    /// (already percent-decoded).
    pub fn from_rest_path(s: &str) -> Result<Self, IdentError> {
        Self::new(s.split('\u{1f}').map(str::to_string).collect())
    }
    pub fn parts(&self) -> &[String] {
        &self.0
    }
    pub fn into_parts(self) -> Vec<String> {
        self.0
    }
    pub fn parent(&self) -> Option<NamespaceName> {
        if self.0.len() > 1 {
            Some(NamespaceName(self.0[..self.0.len() - 1].to_vec()))
        } else {
            None
        }
    }
    /// Key used by stores: levels joined by 0x1F (which no level may contain).
    pub fn storage_key(&self) -> String {
        self.0.join("\u{1f}")
    }
    pub fn from_storage_key(s: &str) -> Self {
        NamespaceName(s.split('\u{1f}').map(str::to_string).collect())
    }
}
impl fmt::Display for NamespaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("."))
    }
}
impl fmt::Debug for NamespaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableName(String);

impl TableName {
    pub fn parse(s: &str) -> Result<Self, IdentError> {
        check_part("table name", s)?;
        Ok(TableName(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn namespace_rules() {
        assert!(NamespaceName::new(vec![]).is_err());
        assert!(NamespaceName::new(vec!["".into()]).is_err());
        assert!(NamespaceName::new(vec!["a\u{1f}b".into()]).is_err());
        let n = NamespaceName::from_rest_path("a\u{1f}b").unwrap();
        assert_eq!(n.parts(), ["a", "b"]);
        assert_eq!(n.parent().unwrap().parts(), ["a"]);
        assert_eq!(NamespaceName::from_storage_key(&n.storage_key()), n);
    }
    #[test]
    fn warehouse_rules() {
        assert!(WarehouseName::parse("prod").is_ok());
        assert!(WarehouseName::parse("a/b").is_err());
        assert!(WarehouseName::parse(" x").is_err());
        assert!(TableName::parse("").is_err());
    }
}
