//! The policy statement language as JSON: `{"effect","action","resource"}`. What the
//! actions and resources mean, validation and evaluation live in `sluice-auth::policy`.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;

/// Whether a statement grants or forbids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    #[serde(alias = "Allow")]
    Allow,
    #[serde(alias = "Deny")]
    Deny,
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        })
    }
}

/// One rule of a policy. On input, `action` may be a single string or an array; it is
/// always serialized as an array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    pub effect: Effect,
    #[serde(deserialize_with = "one_or_many")]
    pub action: Vec<String>,
    pub resource: String,
}

impl Statement {
    pub fn new<I, S>(effect: Effect, action: I, resource: impl Into<String>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Statement {
            effect,
            action: action.into_iter().map(Into::into).collect(),
            resource: resource.into(),
        }
    }

    pub fn allow<I, S>(action: I, resource: impl Into<String>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::new(Effect::Allow, action, resource)
    }

    pub fn deny<I, S>(action: I, resource: impl Into<String>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::new(Effect::Deny, action, resource)
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an action string or an array of action strings")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(vec![v.to_string()])
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(vec![v])
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
            while let Some(s) = seq.next_element::<String>()? {
                out.push(s);
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

/// Which statement decided a `sluice_auth::policy::Decision`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementRef {
    pub policy: String,
    /// 0-based index into the policy's statements.
    pub statement: usize,
    pub effect: Effect,
}

// Schema-only twins of `Statement` and `Effect`: the served document names them
// `Statement` and `Effect` and documents `action` as a list (one string is accepted too).

/// One policy statement (the schema of `sluice_auth::policy::Statement`).
#[derive(ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
#[schema(as = Statement)]
#[allow(dead_code)]
pub struct StatementSchema {
    effect: EffectSchema,
    /// One action or a list of them (`catalog:ReadTable`, `catalog:*`, ...).
    #[schema(value_type = Vec<String>, min_items = 1)]
    action: Vec<String>,
    /// `*`, or a resource pattern such as `sluice:catalog:::warehouse/prod/*`: service
    /// `catalog` (`*` or `warehouse/…`), `auth` (`*`, `user/…`, `group/…`, `policy/…`,
    /// `audit…`) or `*`; no whitespace or control characters; `%` only in escapes of two
    /// uppercase hex digits.
    #[schema(
        pattern = "^(?:\\*|sluice:(?:\\*:::(?:[^%\\s\\x00-\\x1f\\x7f-\\x9f]|%[0-9A-F]{2})+|catalog:::(?:\\*|warehouse/(?:[^%\\s\\x00-\\x1f\\x7f-\\x9f]|%[0-9A-F]{2})+)|auth:::(?:\\*|(?:user|group|policy)/(?:[^%\\s\\x00-\\x1f\\x7f-\\x9f]|%[0-9A-F]{2})+|audit(?:[^%\\s\\x00-\\x1f\\x7f-\\x9f]|%[0-9A-F]{2})*)))$"
    )]
    resource: String,
}

#[derive(ToSchema, Serialize, Deserialize)]
#[schema(as = Effect)]
#[allow(dead_code)]
#[serde(rename_all = "lowercase")]
pub enum EffectSchema {
    Allow,
    Deny,
}
