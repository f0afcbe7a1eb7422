//! Authorization policies: actions, resource names, statements and a pure evaluator.
//!
//! Nothing here does I/O. Callers load a user's policies (attached directly or through
//! groups), build a [`PolicySet`] once per request and ask it about `(action, resource)`
//! pairs as often as they like — listings evaluate it once per item.
//!
//! # Actions
//!
//! Actions are namespaced verbs such as `catalog:CreateTable`; [`Action`] has a variant for
//! every known one (serialized as that string) and [`Action::ALL`] lists them. In a statement, an action pattern is
//! either an exact known action or a wildcard pattern (`*`, `catalog:*`, `catalog:Read*`)
//! that matches at least one known action.
//!
//! # Resources
//!
//! Resources are canonical strings built by the functions in [`resource`]:
//!
//! | resource          | canonical form                                                          |
//! |-------------------|-------------------------------------------------------------------------|
//! | everything        | `*`                                                                     |
//! | warehouse         | `sluice:catalog:::warehouse/<wh>`                                       |
//! | namespace `a.b`   | `sluice:catalog:::warehouse/<wh>/namespace/a/namespace/b`               |
//! | table `a.b.t`     | `sluice:catalog:::warehouse/<wh>/namespace/a/namespace/b/table/t`       |
//! | view `a.b.v`      | `sluice:catalog:::warehouse/<wh>/namespace/a/namespace/b/view/v`        |
//! | user / group      | `sluice:auth:::user/<name>`, `sluice:auth:::group/<name>`               |
//! | policy            | `sluice:auth:::policy/<name>`                                           |
//! | audit log         | `sluice:auth:::audit`                                                   |
//!
//! Storage actions (`storage:Sign`, `storage:VendCredentials`) apply to tables, so their
//! resources are table resources.
//!
//! **Escaping.** Every name segment is percent-encoded (uppercase hex, UTF-8 bytes) for the
//! characters `%`, `/`, `*`, `?`, whitespace and control characters; all other characters,
//! including non-ASCII letters, appear as they are. So a namespace literally named `a/b`
//! is `namespace/a%2Fb` (a pattern `.../namespace/a/*` meant for namespace `a` cannot match
//! it), a table named `*` is `table/%2A`, and `my table` is `table/my%20table`. In a *pattern*, `*` and
//! `?` are always wildcards; to name a literal `*` write `%2A`.
//!
//! # Patterns
//!
//! Resource and action patterns are globs: `*` matches any sequence of characters
//! (including `/`, so `.../namespace/finance/*` covers everything nested below namespace
//! `finance`, but not `finance` itself), `?` matches exactly one character. Matching is
//! case-sensitive. Valid resource patterns are `*` or `sluice:<service>:::<path>` with
//! service `catalog`, `auth` or `*` (see [`validate_statements`]).
//!
//! # Evaluation
//!
//! A statement matches when any of its action patterns matches the action and its resource
//! pattern matches the resource. Any matching `deny` wins (the first one in policy order,
//! then statement order, is reported); otherwise the first matching `allow` decides;
//! otherwise the request is implicitly denied.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
// The statement language is part of the wire format: defined once in sluice-api.
pub use sluice_api::policy::{Effect, Statement, StatementRef};

/// Declares [`Action`] from `Variant => "service:Verb"` pairs, so each action's wire
/// string is written exactly once.
macro_rules! declare_actions {
    ($( $(#[$meta:meta])* $variant:ident => $wire:literal, )*) => {
        /// Every known action. Serialized (and displayed) as its wire string, e.g.
        /// `catalog:CreateTable`; that string is what policies, audit entries and the
        /// explain endpoint carry.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Action {
            $( $(#[$meta])* $variant, )*
        }

        impl Action {
            /// Every action, in catalogue order.
            pub const ALL: &'static [Action] = &[$(Action::$variant),*];

            /// The wire string, e.g. `catalog:CreateTable`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Action::$variant => $wire,)*
                }
            }
        }

        impl std::str::FromStr for Action {
            type Err = UnknownActionError;

            /// Exact, case-sensitive: patterns such as `catalog:*` are not actions.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($wire => Ok(Action::$variant),)*
                    _ => Err(UnknownActionError(s.to_string())),
                }
            }
        }
    };
}

declare_actions! {
    CreateWarehouse => "warehouse:Create",
    ListWarehouses => "warehouse:List",
    ReadWarehouse => "warehouse:Read",
    UpdateWarehouse => "warehouse:Update",
    DeleteWarehouse => "warehouse:Delete",
    ListNamespaces => "catalog:ListNamespaces",
    CreateNamespace => "catalog:CreateNamespace",
    ReadNamespace => "catalog:ReadNamespace",
    UpdateNamespace => "catalog:UpdateNamespace",
    DropNamespace => "catalog:DropNamespace",
    ListTables => "catalog:ListTables",
    CreateTable => "catalog:CreateTable",
    ReadTable => "catalog:ReadTable",
    WriteTable => "catalog:WriteTable",
    DropTable => "catalog:DropTable",
    RenameTable => "catalog:RenameTable",
    ListViews => "catalog:ListViews",
    CreateView => "catalog:CreateView",
    ReadView => "catalog:ReadView",
    /// Commit a new version (or properties, location) to a view: the view API's "replace".
    ReplaceView => "catalog:ReplaceView",
    DropView => "catalog:DropView",
    RenameView => "catalog:RenameView",
    StorageSign => "storage:Sign",
    VendCredentials => "storage:VendCredentials",
    CreateUser => "auth:CreateUser",
    ReadUser => "auth:ReadUser",
    ListUsers => "auth:ListUsers",
    UpdateUser => "auth:UpdateUser",
    DeleteUser => "auth:DeleteUser",
    CreateGroup => "auth:CreateGroup",
    ReadGroup => "auth:ReadGroup",
    ListGroups => "auth:ListGroups",
    DeleteGroup => "auth:DeleteGroup",
    AddGroupMember => "auth:AddGroupMember",
    RemoveGroupMember => "auth:RemoveGroupMember",
    CreatePolicy => "auth:CreatePolicy",
    ReadPolicy => "auth:ReadPolicy",
    ListPolicies => "auth:ListPolicies",
    UpdatePolicy => "auth:UpdatePolicy",
    DeletePolicy => "auth:DeletePolicy",
    AttachPolicy => "auth:AttachPolicy",
    DetachPolicy => "auth:DetachPolicy",
    CreateCredentials => "auth:CreateCredentials",
    ListCredentials => "auth:ListCredentials",
    DeleteCredentials => "auth:DeleteCredentials",
    ReadAuditLog => "auth:ReadAuditLog",
    CheckPermission => "auth:CheckPermission",
    /// Read an object through the S3 gateway that lies outside every table (reading a
    /// table's files needs `catalog:ReadTable` on the table instead).
    S3GetObject => "s3:GetObject",
    /// Write an object outside every table through the S3 gateway.
    S3PutObject => "s3:PutObject",
    /// Delete an object outside every table through the S3 gateway.
    S3DeleteObject => "s3:DeleteObject",
}

/// A string that is not one of the known actions (exactly).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown action '{0}'")]
pub struct UnknownActionError(pub String);

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for Action {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// An action names itself in a statement's action list like its wire string.
impl From<Action> for String {
    fn from(a: Action) -> String {
        a.as_str().to_string()
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// Whether `action` is a known action (exactly; patterns are not actions).
pub fn is_known_action(action: &str) -> bool {
    action.parse::<Action>().is_ok()
}

/// Builders for canonical resource strings. See the [module docs](super) for the format
/// and the escaping of names.
pub mod resource {
    use std::fmt::Write as _;

    pub const CATALOG_PREFIX: &str = "sluice:catalog:::";
    pub const AUTH_PREFIX: &str = "sluice:auth:::";

    /// Every resource.
    pub fn all() -> String {
        "*".to_string()
    }

    /// `sluice:catalog:::warehouse/<name>`
    pub fn warehouse(name: &str) -> String {
        let mut s = String::with_capacity(CATALOG_PREFIX.len() + 10 + name.len());
        s.push_str(CATALOG_PREFIX);
        s.push_str("warehouse/");
        escape_into(&mut s, name);
        s
    }

    /// `sluice:catalog:::warehouse/<wh>/namespace/<l1>/namespace/<l2>...` — every level is
    /// prefixed with `namespace/`, so a level named `table` is never mistaken for a table.
    /// (With no levels this is just the warehouse resource.)
    pub fn namespace<S: AsRef<str>>(warehouse_name: &str, levels: &[S]) -> String {
        let mut s = warehouse(warehouse_name);
        for level in levels {
            s.push_str("/namespace/");
            escape_into(&mut s, level.as_ref());
        }
        s
    }

    /// `<namespace(wh, levels)>/table/<name>`
    pub fn table<S: AsRef<str>>(warehouse_name: &str, levels: &[S], name: &str) -> String {
        let mut s = namespace(warehouse_name, levels);
        s.push_str("/table/");
        escape_into(&mut s, name);
        s
    }

    /// `<namespace(wh, levels)>/view/<name>`
    pub fn view<S: AsRef<str>>(warehouse_name: &str, levels: &[S], name: &str) -> String {
        let mut s = namespace(warehouse_name, levels);
        s.push_str("/view/");
        escape_into(&mut s, name);
        s
    }

    /// `<warehouse(wh)>/object/<key>`: an object outside every table, for the `s3:*`
    /// actions. Each '/'-separated segment of the key is escaped like a name, so a key
    /// prefix reads as a path (`.../object/staging/*`).
    pub fn object(warehouse_name: &str, key: &str) -> String {
        let mut s = warehouse(warehouse_name);
        s.push_str("/object");
        for seg in key.split('/') {
            s.push('/');
            escape_into(&mut s, seg);
        }
        s
    }

    /// `sluice:auth:::user/<name>`
    pub fn user(name: &str) -> String {
        auth("user/", name)
    }

    /// `sluice:auth:::group/<name>`
    pub fn group(name: &str) -> String {
        auth("group/", name)
    }

    /// `sluice:auth:::policy/<name>`
    pub fn policy(name: &str) -> String {
        auth("policy/", name)
    }

    /// `sluice:auth:::audit`
    pub fn audit_log() -> String {
        format!("{AUTH_PREFIX}audit")
    }

    fn auth(kind: &str, name: &str) -> String {
        let mut s = String::with_capacity(AUTH_PREFIX.len() + kind.len() + name.len());
        s.push_str(AUTH_PREFIX);
        s.push_str(kind);
        escape_into(&mut s, name);
        s
    }

    /// Escapes one name segment the way the builders do: `%`, `/`, `*`, `?`, whitespace and
    /// control characters become `%XX` (uppercase hex of each UTF-8 byte); everything else
    /// is kept. Injective, so distinct names give distinct segments.
    pub fn escape_segment(name: &str) -> String {
        let mut s = String::with_capacity(name.len());
        escape_into(&mut s, name);
        s
    }

    fn needs_escape(c: char) -> bool {
        matches!(c, '%' | '/' | '*' | '?') || c.is_whitespace() || c.is_control()
    }

    fn escape_into(out: &mut String, name: &str) {
        for c in name.chars() {
            if needs_escape(c) {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "%{b:02X}");
                }
            } else {
                out.push(c);
            }
        }
    }
}

/// Most statements one policy may hold.
pub const MAX_STATEMENTS: usize = 100;

/// Why policy JSON or statements were rejected. The messages are meant for API callers
/// (HTTP 400). Statement numbers are 0-based positions in the statement list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("invalid policy statements JSON: {0}")]
    Json(String),
    #[error("a policy must have at least one statement")]
    NoStatements,
    #[error("a policy may have at most {MAX_STATEMENTS} statements, got {0}")]
    TooManyStatements(usize),
    #[error("statement {statement} has no actions")]
    NoActions { statement: usize },
    #[error(
        "unknown action '{action}' in statement {statement}{}",
        suggestion_suffix(.suggestion)
    )]
    UnknownAction {
        statement: usize,
        action: String,
        /// A known action equal to `action` ignoring case, if there is one.
        suggestion: Option<&'static str>,
    },
    #[error("action pattern '{pattern}' in statement {statement} matches no known action")]
    PatternMatchesNothing { statement: usize, pattern: String },
    #[error("malformed resource '{resource}' in statement {statement}: {reason}")]
    MalformedResource {
        statement: usize,
        resource: String,
        reason: String,
    },
}

fn suggestion_suffix(s: &Option<&'static str>) -> String {
    match s {
        Some(a) => format!(" (did you mean '{a}'? actions are case-sensitive)"),
        None => String::new(),
    }
}

/// Parses a JSON array of statements (the stored form). Does not validate them — stored
/// statements were validated when written; call [`validate_statements`] on new input.
pub fn parse_statements(json: &str) -> Result<Vec<Statement>, PolicyError> {
    serde_json::from_str(json).map_err(|e| PolicyError::Json(e.to_string()))
}

/// Checks statements submitted by an API caller. See the module docs for the grammar.
pub fn validate_statements(stmts: &[Statement]) -> Result<(), PolicyError> {
    if stmts.is_empty() {
        return Err(PolicyError::NoStatements);
    }
    if stmts.len() > MAX_STATEMENTS {
        return Err(PolicyError::TooManyStatements(stmts.len()));
    }
    for (i, st) in stmts.iter().enumerate() {
        if st.action.is_empty() {
            return Err(PolicyError::NoActions { statement: i });
        }
        for a in &st.action {
            validate_action(i, a)?;
        }
        validate_resource(&st.resource).map_err(|reason| PolicyError::MalformedResource {
            statement: i,
            resource: st.resource.clone(),
            reason,
        })?;
    }
    Ok(())
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?'])
}

fn validate_action(statement: usize, a: &str) -> Result<(), PolicyError> {
    if is_known_action(a) {
        return Ok(());
    }
    if has_wildcard(a) {
        if Action::ALL.iter().any(|k| glob_match(a, k.as_str())) {
            return Ok(());
        }
        return Err(PolicyError::PatternMatchesNothing {
            statement,
            pattern: a.to_string(),
        });
    }
    Err(PolicyError::UnknownAction {
        statement,
        action: a.to_string(),
        suggestion: Action::ALL
            .iter()
            .map(|k| k.as_str())
            .find(|k| k.eq_ignore_ascii_case(a)),
    })
}

/// Returns the reason a resource pattern is malformed.
fn validate_resource(r: &str) -> Result<(), String> {
    if r == "*" {
        return Ok(());
    }
    if r.is_empty() {
        return Err("resource is empty (use '*' for every resource)".into());
    }
    if r.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace or control characters \
                    (such characters in names are percent-encoded, e.g. a space is %20)"
            .into());
    }
    let Some(rest) = r.strip_prefix("sluice:") else {
        return Err("expected '*' or 'sluice:<service>:::<path>' \
                    (e.g. sluice:catalog:::warehouse/prod/*)"
            .into());
    };
    let Some((service, path)) = rest.split_once(":::") else {
        return Err("expected 'sluice:<service>:::<path>' (three colons before the path)".into());
    };
    if path.is_empty() {
        return Err("path after ':::' is empty (use '*' for everything)".into());
    }
    check_percent_escapes(path)?;
    match service {
        "*" => Ok(()),
        "catalog" => {
            if path == "*" || non_empty_after(path, "warehouse/") {
                Ok(())
            } else {
                Err("catalog path must be '*' or start with 'warehouse/<name>'".into())
            }
        }
        "auth" => {
            if path == "*"
                || non_empty_after(path, "user/")
                || non_empty_after(path, "group/")
                || non_empty_after(path, "policy/")
                || path.starts_with("audit")
            {
                Ok(())
            } else {
                Err("auth path must be '*', 'audit', or start with \
                     'user/<name>', 'group/<name>' or 'policy/<name>'"
                    .into())
            }
        }
        "storage" => Err(
            "service 'storage' has no resources of its own; storage actions \
                          apply to tables, so use 'sluice:catalog:::warehouse/...'"
                .into(),
        ),
        "" => Err("service is empty (expected 'catalog', 'auth' or '*')".into()),
        other => Err(format!(
            "unknown service '{other}' (expected 'catalog', 'auth' or '*')"
        )),
    }
}

fn non_empty_after(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| !rest.is_empty())
}

fn check_percent_escapes(path: &str) -> Result<(), String> {
    let b = path.as_bytes();
    let upper_hex = |c: u8| c.is_ascii_digit() || (b'A'..=b'F').contains(&c);
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 2 < b.len() && upper_hex(b[i + 1]) && upper_hex(b[i + 2]) {
                i += 3;
                continue;
            }
            return Err(
                "'%' must start a percent-escape of two uppercase hex digits \
                        (e.g. %2F for '/', %2A for a literal '*')"
                    .into(),
            );
        }
        i += 1;
    }
    Ok(())
}

/// Glob match: `*` matches any sequence (including `/` and the empty one), `?` exactly one
/// character; everything else matches itself, case-sensitively.
///
/// Iterative two-pointer algorithm with single-star backtracking: O(len(pattern) ×
/// len(text)) in the worst case, no recursion, no allocation.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    let (mut pi, mut ti) = (0usize, 0usize);
    // Position after the last `*` seen, and the text position it is currently matched up to.
    let mut star: Option<(usize, usize)> = None;
    // Invariant: `ti` is always on a char boundary when the pattern is at `*` or `?`, and
    // when backtracking, because literal bytes are compared whole UTF-8 sequences at a time
    // (a lead byte only equals a lead byte of the same length).
    while ti < t.len() {
        if pi < p.len() {
            match p[pi] {
                b'*' => {
                    pi += 1;
                    star = Some((pi, ti));
                    continue;
                }
                b'?' => {
                    pi += 1;
                    ti += utf8_len(t[ti]);
                    continue;
                }
                c if c == t[ti] => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) => {
                // Let the last `*` swallow one more character and retry from there.
                let st = st + utf8_len(t[st]);
                star = Some((sp, st));
                pi = sp;
                ti = st;
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

fn utf8_len(lead: u8) -> usize {
    match lead {
        0x00..=0x7F => 1,
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        _ => 2,
    }
}

/// A compiled pattern with fast paths for the common shapes.
#[derive(Debug, Clone)]
enum Pattern {
    Any,
    Exact(Box<str>),
    Prefix(Box<str>),
    Glob(Box<str>),
}

impl Pattern {
    fn compile(p: &str) -> Self {
        if !has_wildcard(p) {
            return Pattern::Exact(p.into());
        }
        if p.bytes().all(|b| b == b'*') {
            return Pattern::Any;
        }
        if let Some(prefix) = p.strip_suffix('*') {
            if !has_wildcard(prefix) {
                return Pattern::Prefix(prefix.into());
            }
        }
        Pattern::Glob(p.into())
    }

    #[inline]
    fn matches(&self, s: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Exact(e) => **e == *s,
            Pattern::Prefix(pre) => s.starts_with(&**pre),
            Pattern::Glob(g) => glob_match(g, s),
        }
    }
}

/// A named list of statements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub name: String,
    pub statements: Vec<Statement>,
}

impl Policy {
    pub fn new(name: impl Into<String>, statements: Vec<Statement>) -> Self {
        Policy {
            name: name.into(),
            statements,
        }
    }
}

/// Name of the policy every user implicitly has over their own user resource.
pub const SELF_SERVICE_POLICY: &str = "builtin:self-service";

/// Lets a user read themselves and manage their own access keys.
pub fn builtin_self_service(user_name: &str) -> Policy {
    Policy::new(
        SELF_SERVICE_POLICY,
        vec![Statement::allow(
            [
                Action::ReadUser,
                Action::CreateCredentials,
                Action::ListCredentials,
                Action::DeleteCredentials,
            ],
            resource::user(user_name),
        )],
    )
}

/// The four default groups and their built-in policies: `(group, policy name, statements)`.
pub fn default_group_policies() -> Vec<(&'static str, &'static str, Vec<Statement>)> {
    use Action::*;
    vec![
        (
            "Viewers",
            "CatalogReadOnly",
            vec![Statement::allow(
                [
                    "catalog:List*",
                    "catalog:Read*",
                    ListWarehouses.as_str(),
                    ReadWarehouse.as_str(),
                    // Reading data needs vended credentials or signatures; both are
                    // capped at read-only for a caller without catalog:WriteTable.
                    "storage:*",
                ],
                "*",
            )],
        ),
        (
            "Developers",
            "CatalogReadWrite",
            vec![Statement::allow(
                [
                    "catalog:*",
                    ListWarehouses.as_str(),
                    ReadWarehouse.as_str(),
                    "storage:*",
                ],
                "*",
            )],
        ),
        (
            "SuperUsers",
            "CatalogAndWarehouseAdmin",
            vec![Statement::allow(
                ["catalog:*", "warehouse:*", "storage:*"],
                "*",
            )],
        ),
        ("Admins", "FullAccess", vec![Statement::allow(["*"], "*")]),
    ]
}

/// The outcome of evaluating one request. `decided_by` is None for an implicit deny.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub allowed: bool,
    pub decided_by: Option<StatementRef>,
}

impl Decision {
    /// A one-line human explanation, e.g. for audit entries or 403 bodies.
    pub fn explain(&self) -> String {
        match &self.decided_by {
            Some(r) if self.allowed => format!(
                "allowed by statement {} of policy '{}'",
                r.statement, r.policy
            ),
            Some(r) => format!(
                "denied by statement {} of policy '{}'",
                r.statement, r.policy
            ),
            None => "denied: no policy statement allows this".to_string(),
        }
    }
}

#[derive(Debug, Clone)]
struct CompiledStatement {
    policy: usize,
    index: usize,
    effect: Effect,
    actions: Box<[Pattern]>,
    resource: Pattern,
}

impl CompiledStatement {
    fn matches_action(&self, action: &str) -> bool {
        self.actions.iter().any(|p| p.matches(action))
    }
}

#[derive(Debug, Clone)]
struct PolicyInfo {
    policy: Policy,
    /// How the policy reaches the user: `None` = attached directly, `Some(g)` = via group.
    sources: Vec<Option<String>>,
}

/// Ids (into `PolicySet::statements`) of statements, in evaluation order.
#[derive(Debug, Clone, Default)]
struct Candidates {
    deny: Box<[u32]>,
    allow: Box<[u32]>,
}

/// The compiled policies of one principal. Build it once per request (or cache it); every
/// evaluation then only checks resource patterns of statements whose actions can match.
#[derive(Debug, Clone)]
pub struct PolicySet {
    policies: Vec<PolicyInfo>,
    statements: Vec<CompiledStatement>,
    /// Candidates per action, indexed by the action's position in [`Action::ALL`] (its
    /// discriminant). Every evaluated action is known, so a statement naming only actions
    /// that do not exist (stored before they were retired, say) is simply never a candidate.
    by_action: Vec<Candidates>,
}

impl Default for PolicySet {
    /// The empty set: everything is implicitly denied.
    fn default() -> Self {
        PolicySet::new(Vec::new())
    }
}

impl PolicySet {
    /// Builds a set from policies in evaluation order (all treated as directly attached).
    pub fn new(policies: Vec<Policy>) -> Self {
        Self::with_sources(policies.into_iter().map(|p| (p, None)))
    }

    /// Builds a set from `(policy, via_group)` pairs, e.g. a store's effective policies.
    /// The same policy (equal name and statements) reached several ways is evaluated once
    /// at its first position; all the ways are kept for [`sources`](Self::sources).
    pub fn with_sources<I>(policies: I) -> Self
    where
        I: IntoIterator<Item = (Policy, Option<String>)>,
    {
        let mut infos: Vec<PolicyInfo> = Vec::new();
        for (policy, via) in policies {
            if let Some(info) = infos.iter_mut().find(|i| i.policy == policy) {
                if !info.sources.contains(&via) {
                    info.sources.push(via);
                }
            } else {
                infos.push(PolicyInfo {
                    policy,
                    sources: vec![via],
                });
            }
        }

        let mut statements = Vec::new();
        for (pi, info) in infos.iter().enumerate() {
            for (si, st) in info.policy.statements.iter().enumerate() {
                statements.push(CompiledStatement {
                    policy: pi,
                    index: si,
                    effect: st.effect,
                    actions: st.action.iter().map(|a| Pattern::compile(a)).collect(),
                    resource: Pattern::compile(&st.resource),
                });
            }
        }

        let candidates = |filter: &dyn Fn(&CompiledStatement) -> bool| {
            let pick = |effect: Effect| -> Box<[u32]> {
                statements
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.effect == effect && filter(s))
                    .map(|(i, _)| i as u32)
                    .collect()
            };
            Candidates {
                deny: pick(Effect::Deny),
                allow: pick(Effect::Allow),
            }
        };
        let by_action = Action::ALL
            .iter()
            .map(|a| candidates(&|s| s.matches_action(a.as_str())))
            .collect();

        PolicySet {
            policies: infos,
            statements,
            by_action,
        }
    }

    /// Evaluates one request and says which statement decided it.
    pub fn evaluate(&self, action: Action, resource: &str) -> Decision {
        self.decision(self.decide(action, resource))
    }

    /// Like [`evaluate`](Self::evaluate) for an action given by its wire name, which need
    /// not be a known action: statements match it by their action patterns as they would
    /// match a known one (so `catalog:*` covers `catalog:Anything`, and an action added to
    /// the catalogue later is covered by the wildcards already stored).
    pub fn evaluate_name(&self, action: &str, resource: &str) -> Decision {
        self.decision(self.decide_name(action, resource))
    }

    /// Like [`is_allowed`](Self::is_allowed) for an action given by its wire name.
    pub fn is_allowed_name(&self, action: &str, resource: &str) -> bool {
        self.decide_name(action, resource)
            .is_some_and(|id| self.statements[id].effect == Effect::Allow)
    }

    fn decision(&self, decided_by: Option<usize>) -> Decision {
        match decided_by {
            None => Decision {
                allowed: false,
                decided_by: None,
            },
            Some(id) => {
                let s = &self.statements[id];
                Decision {
                    allowed: s.effect == Effect::Allow,
                    decided_by: Some(StatementRef {
                        policy: self.policies[s.policy].policy.name.clone(),
                        statement: s.index,
                        effect: s.effect,
                    }),
                }
            }
        }
    }

    /// Like [`evaluate`](Self::evaluate) without building the explanation (no allocation).
    pub fn is_allowed(&self, action: Action, resource: &str) -> bool {
        self.decide(action, resource)
            .is_some_and(|id| self.statements[id].effect == Effect::Allow)
    }

    /// The deciding statement's id: the first matching deny, else the first matching allow.
    fn decide(&self, action: Action, resource: &str) -> Option<usize> {
        let cands = &self.by_action[action as usize];
        let hit = |ids: &[u32]| {
            ids.iter()
                .map(|&i| i as usize)
                .find(|&i| self.statements[i].resource.matches(resource))
        };
        hit(&cands.deny).or_else(|| hit(&cands.allow))
    }

    /// [`decide`](Self::decide) for a wire name; an unknown one is checked against every
    /// statement, in the same order.
    fn decide_name(&self, action: &str, resource: &str) -> Option<usize> {
        if let Ok(known) = action.parse::<Action>() {
            return self.decide(known, resource);
        }
        let hit = |effect: Effect| {
            self.statements.iter().position(|s| {
                s.effect == effect && s.matches_action(action) && s.resource.matches(resource)
            })
        };
        hit(Effect::Deny).or_else(|| hit(Effect::Allow))
    }

    /// The policies in evaluation order (deduplicated).
    pub fn policies(&self) -> impl Iterator<Item = &Policy> {
        self.policies.iter().map(|i| &i.policy)
    }

    /// How the named policy reaches the principal: `None` = attached directly, `Some(g)` =
    /// through group `g`. Empty if the set has no such policy.
    pub fn sources(&self, policy: &str) -> Vec<Option<&str>> {
        self.policies
            .iter()
            .filter(|i| i.policy.name == policy)
            .flat_map(|i| i.sources.iter().map(Option::as_deref))
            .collect()
    }

    /// True when the set has no statements (everything is implicitly denied).
    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::Action::*;
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn default_policy(group: &str) -> Policy {
        let (_, name, stmts) = default_group_policies()
            .into_iter()
            .find(|(g, _, _)| *g == group)
            .unwrap();
        Policy::new(name, stmts)
    }

    #[test]
    fn action_list_is_consistent() {
        let mut seen = std::collections::HashSet::new();
        for (i, action) in Action::ALL.iter().enumerate() {
            let a = action.as_str();
            assert!(seen.insert(a), "duplicate action {a}");
            let (svc, verb) = a.split_once(':').unwrap();
            assert!(
                ["warehouse", "catalog", "storage", "auth", "s3"].contains(&svc),
                "{a}"
            );
            assert!(verb.chars().all(|c| c.is_ascii_alphabetic()), "{a}");
            assert!(is_known_action(a));
            // The evaluator indexes its candidates by discriminant.
            assert_eq!(*action as usize, i, "{a}");
            assert_eq!(a.parse::<Action>(), Ok(*action));
            assert_eq!(action.to_string(), a);
            assert_eq!(serde_json::to_value(action).unwrap(), a);
            assert_eq!(
                serde_json::from_value::<Action>(serde_json::json!(a)).unwrap(),
                *action
            );
        }
        assert_eq!(Action::ALL.len(), 5 + 17 + 2 + 23 + 3);
        assert!(!is_known_action("catalog:*"));
        assert!("catalog:readtable".parse::<Action>().is_err());
        assert!(serde_json::from_value::<Action>(serde_json::json!("catalog:*")).is_err());
    }

    #[test]
    fn object_resources_read_as_paths_and_need_explicit_grants() {
        assert_eq!(
            resource::object("wh", "staging/a b/x*.csv"),
            "sluice:catalog:::warehouse/wh/object/staging/a%20b/x%2A.csv"
        );
        let staging = PolicySet::new(vec![Policy::new(
            "staging",
            vec![Statement::allow(
                ["s3:GetObject"],
                "sluice:catalog:::warehouse/wh/object/staging/*",
            )],
        )]);
        assert!(staging.is_allowed(Action::S3GetObject, &resource::object("wh", "staging/f")));
        assert!(!staging.is_allowed(Action::S3GetObject, &resource::object("wh", "other/f")));
        assert!(!staging.is_allowed(Action::S3PutObject, &resource::object("wh", "staging/f")));
        // The default groups' catalog and storage rights do not reach objects outside tables.
        for group in ["Viewers", "Developers", "SuperUsers"] {
            let set = PolicySet::new(vec![default_policy(group)]);
            assert!(!set.is_allowed(Action::S3GetObject, &resource::object("wh", "x")));
        }
        validate_statements(&[Statement::allow(
            ["s3:*"],
            "sluice:catalog:::warehouse/wh/object/*",
        )])
        .unwrap();
    }

    #[test]
    fn views_have_their_own_resources_and_default_groups_cover_them() {
        let v = resource::view("prod", &["a", "b"], "v*");
        assert_eq!(
            v,
            "sluice:catalog:::warehouse/prod/namespace/a/namespace/b/view/v%2A"
        );
        // A table and a view of the same name are different resources.
        assert_ne!(
            resource::view("w", &["a"], "x"),
            resource::table("w", &["a"], "x")
        );
        let viewers = PolicySet::new(vec![default_policy("Viewers")]);
        let devs = PolicySet::new(vec![default_policy("Developers")]);
        for read in [ReadView, ListViews] {
            assert!(viewers.is_allowed(read, &v), "{read}");
            assert!(devs.is_allowed(read, &v), "{read}");
        }
        for write in [CreateView, ReplaceView, DropView, RenameView] {
            assert!(!viewers.is_allowed(write, &v), "{write}");
            assert!(devs.is_allowed(write, &v), "{write}");
        }
    }

    #[test]
    fn resource_builders() {
        assert_eq!(resource::all(), "*");
        assert_eq!(
            resource::warehouse("prod"),
            "sluice:catalog:::warehouse/prod"
        );
        assert_eq!(
            resource::namespace("prod", &s(&["a", "b"])),
            "sluice:catalog:::warehouse/prod/namespace/a/namespace/b"
        );
        // &[&str] works too.
        assert_eq!(
            resource::table("prod", &["a"], "t"),
            "sluice:catalog:::warehouse/prod/namespace/a/table/t"
        );
        let levels: Vec<String> = s(&["x", "table"]);
        assert_eq!(
            resource::namespace("w", &levels),
            "sluice:catalog:::warehouse/w/namespace/x/namespace/table"
        );
        assert_eq!(resource::user("alice"), "sluice:auth:::user/alice");
        assert_eq!(resource::group("devs"), "sluice:auth:::group/devs");
        assert_eq!(resource::policy("p"), "sluice:auth:::policy/p");
        assert_eq!(resource::audit_log(), "sluice:auth:::audit");
    }

    #[test]
    fn escaping() {
        assert_eq!(resource::escape_segment("a/b"), "a%2Fb");
        assert_eq!(resource::escape_segment("*"), "%2A");
        assert_eq!(resource::escape_segment("a?%"), "a%3F%25");
        assert_eq!(resource::escape_segment("my table"), "my%20table");
        assert_eq!(resource::escape_segment("tab\there"), "tab%09here");
        assert_eq!(resource::escape_segment("données"), "données");
        assert_eq!(resource::escape_segment("a\u{85}"), "a%C2%85");
        assert_eq!(resource::escape_segment("a:b.c-d_e"), "a:b.c-d_e");
        // Injective: '%' itself is escaped, so "%2F" and "/" differ.
        assert_ne!(
            resource::escape_segment("%2F"),
            resource::escape_segment("/")
        );
        assert_eq!(
            resource::table("w/x", &["a/b"], "t*"),
            "sluice:catalog:::warehouse/w%2Fx/namespace/a%2Fb/table/t%2A"
        );
        // Escaped resources are accepted as exact patterns.
        validate_statements(&[Statement::allow(
            [ReadTable],
            resource::table("w", &["my ns"], "t*"),
        )])
        .unwrap();
    }

    #[test]
    fn glob() {
        let cases: &[(&str, &str, bool)] = &[
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("*", "anything/at/all", true),
            ("a", "a", true),
            ("a", "A", false),
            ("a*", "a", true),
            ("a*", "abc", true),
            ("a*", "ba", false),
            ("*c", "abc", true),
            ("*c", "abcd", false),
            ("a*c", "ac", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbcd", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a?c", "abbc", false),
            ("?", "", false),
            ("??", "é", false),
            ("?", "é", true),
            ("a?c", "aéc", true),
            ("*é", "xxé", true),
            ("é*", "éa", true),
            ("*è", "é", false),
            ("**a**", "bab", true),
            ("*a*b", "xaxxb", true),
            ("*a*b", "xbxxa", false),
            ("ab*cd*ef", "abXcdYcdZef", true),
            ("ab*cd*ef", "abXcdYcdZe", false),
            ("*?", "", false),
            ("*?", "x", true),
            ("mississippi", "mississippi", true),
            ("m*iss*ppi", "mississippi", true),
            ("m*issi*?pi", "mississippi", true),
        ];
        for (p, t, want) in cases {
            assert_eq!(glob_match(p, t), *want, "pattern {p:?} text {t:?}");
            assert_eq!(
                Pattern::compile(p).matches(t),
                *want,
                "compiled {p:?} text {t:?}"
            );
        }
    }

    #[test]
    fn glob_pathological_is_fast() {
        let text = "a".repeat(20_000);
        assert!(!glob_match("*a*a*a*a*b", &text));
        assert!(!glob_match(
            "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b",
            &text
        ));
        assert!(glob_match("*a*a*a*a*a", &text));
        let pat = format!("{}b", "*a".repeat(500));
        assert!(!glob_match(&pat, &text));
        assert!(!glob_match(&"?".repeat(20_001), &text));
        assert!(glob_match(&"?".repeat(20_000), &text));
    }

    #[test]
    fn evaluator_table() {
        type Expected = Option<(&'static str, usize, Effect)>;
        let wh = |ns: &[&str]| resource::namespace("prod", ns);
        let tbl = |ns: &[&str], t: &str| resource::table("prod", ns, t);
        let ns_pat = |rest: &str| format!("sluice:catalog:::warehouse/prod/namespace/{rest}");
        let one = |name: &str, stmts: Vec<Statement>| vec![Policy::new(name, stmts)];

        let finance_star = ns_pat("finance/*");
        let fin_star = ns_pat("fin*");
        let a_star = ns_pat("a/*");
        let a_exact = ns_pat("a");
        let q_pat = ns_pat("t?");

        let cases: Vec<(Vec<Policy>, Action, String, bool, Expected)> = vec![
            // exact match
            (
                one("p", vec![Statement::allow([ReadTable], tbl(&["a"], "t"))]),
                ReadTable,
                tbl(&["a"], "t"),
                true,
                Some(("p", 0, Effect::Allow)),
            ),
            (
                one("p", vec![Statement::allow([ReadTable], tbl(&["a"], "t"))]),
                WriteTable,
                tbl(&["a"], "t"),
                false,
                None,
            ),
            (
                one("p", vec![Statement::allow([ReadTable], tbl(&["a"], "t"))]),
                ReadTable,
                tbl(&["a"], "t2"),
                false,
                None,
            ),
            // action wildcards
            (
                one("p", vec![Statement::allow(["catalog:*"], "*")]),
                DropTable,
                tbl(&["a"], "t"),
                true,
                Some(("p", 0, Effect::Allow)),
            ),
            (
                one("p", vec![Statement::allow(["catalog:*"], "*")]),
                CreateWarehouse,
                resource::warehouse("w"),
                false,
                None,
            ),
            (
                one("p", vec![Statement::allow(["*"], "*")]),
                CreateUser,
                resource::user("bob"),
                true,
                Some(("p", 0, Effect::Allow)),
            ),
            (
                one("p", vec![Statement::allow(["catalog:Read*"], "*")]),
                ReadNamespace,
                wh(&["a"]),
                true,
                Some(("p", 0, Effect::Allow)),
            ),
            (
                one("p", vec![Statement::allow(["catalog:Read*"], "*")]),
                RenameTable,
                tbl(&["a"], "t"),
                false,
                None,
            ),
            // second action in the list matches
            (
                one("p", vec![Statement::allow([ListTables, ReadTable], "*")]),
                ReadTable,
                tbl(&["a"], "t"),
                true,
                Some(("p", 0, Effect::Allow)),
            ),
            // resource wildcards and nesting
            (
                one(
                    "p",
                    vec![Statement::allow([ReadNamespace], finance_star.clone())],
                ),
                ReadNamespace,
                wh(&["finance", "q1"]),
                true,
                Some(("p", 0, Effect::Allow)),
            ),
            (
                one(
                    "p",
                    vec![Statement::allow([ReadTable], finance_star.clone())],
                ),
                ReadTable,
                tbl(&["finance"], "t"),
                true,
                Some(("p", 0, Effect::Allow)),
            ),
            (
                one(
                    "p",
                    vec![Statement::allow([ReadTable], finance_star.clone())],
                ),
                ReadTable,
                tbl(&["finance", "q1", "deep"], "t"),
                true,
                Some(("p", 0, Effect::Allow)),
            ),
            (
                one(
                    "p",
                    vec![Statement::allow([ReadNamespace], finance_star.clone())],
                ),
                ReadNamespace,
                wh(&["finance"]),
                false,
                None,
            ),
            (
                one(
                    "p",
                    vec![Statement::allow([ReadNamespace], finance_star.clone())],
                ),
                ReadNamespace,
                wh(&["finance2"]),
                false,
                None,
            ),
            (
                one(
                    "p",
                    vec![Statement::allow([ReadTable], finance_star.clone())],
                ),
                ReadTable,
                tbl(&["finance2"], "t"),
                false,
                None,
            ),
            (
                one(
                    "p",
                    vec![Statement::allow([ReadTable], finance_star.clone())],
                ),
                ReadTable,
                resource::table("dev", &["finance"], "t"),
                false,
                None,
            ),
            (
                one(
                    "p",
                    vec![Statement::allow([ReadNamespace], fin_star.clone())],
                ),
                ReadNamespace,
                wh(&["finance2"]),
                true,
                Some(("p", 0, Effect::Allow)),
            ),
            (
                one(
                    "p",
                    vec![Statement::allow([ReadNamespace], fin_star.clone())],
                ),
                ReadNamespace,
                wh(&["finance"]),
                true,
                Some(("p", 0, Effect::Allow)),
            ),
            (
                one(
                    "p",
                    vec![Statement::allow(
                        [ReadWarehouse],
                        "sluice:catalog:::warehouse/*",
                    )],
                ),
                ReadWarehouse,
                resource::warehouse("anything"),
                true,
                Some(("p", 0, Effect::Allow)),
            ),
            // a catalog pattern never covers auth resources
            (
                one("p", vec![Statement::allow(["*"], "sluice:catalog:::*")]),
                ReadUser,
                resource::user("bob"),
                false,
                None,
            ),
            (
                one("p", vec![Statement::allow(["*"], "sluice:*:::*")]),
                ReadUser,
                resource::user("bob"),
                true,
                Some(("p", 0, Effect::Allow)),
            ),
            // `?`
            (
                one("p", vec![Statement::allow([ReadNamespace], q_pat.clone())]),
                ReadNamespace,
                wh(&["t1"]),
                true,
                Some(("p", 0, Effect::Allow)),
            ),
            (
                one("p", vec![Statement::allow([ReadNamespace], q_pat.clone())]),
                ReadNamespace,
                wh(&["t"]),
                false,
                None,
            ),
            (
                one("p", vec![Statement::allow([ReadNamespace], q_pat.clone())]),
                ReadNamespace,
                wh(&["t12"]),
                false,
                None,
            ),
            (
                one("p", vec![Statement::allow(["catalog:ReadTabl?"], "*")]),
                ReadTable,
                tbl(&["a"], "t"),
                true,
                Some(("p", 0, Effect::Allow)),
            ),
            // escaping: names that look like structure or wildcards cannot match `a`
            (
                one("p", vec![Statement::allow([ReadTable], a_star.clone())]),
                ReadTable,
                tbl(&["a/b"], "t"),
                false,
                None,
            ),
            (
                one(
                    "p",
                    vec![Statement::allow([ReadNamespace], a_exact.clone())],
                ),
                ReadNamespace,
                wh(&["*"]),
                false,
                None,
            ),
            (
                one(
                    "p",
                    vec![Statement::allow([ReadNamespace], a_exact.clone())],
                ),
                ReadNamespace,
                wh(&["a/b"]),
                false,
                None,
            ),
            (
                one("p", vec![Statement::allow([ReadTable], a_star.clone())]),
                ReadTable,
                tbl(&["a"], "t"),
                true,
                Some(("p", 0, Effect::Allow)),
            ),
            (
                one("p", vec![Statement::allow([ReadNamespace], ns_pat("%2A"))]),
                ReadNamespace,
                wh(&["*"]),
                true,
                Some(("p", 0, Effect::Allow)),
            ),
            (
                one("p", vec![Statement::allow([ReadNamespace], ns_pat("%2A"))]),
                ReadNamespace,
                wh(&["a"]),
                false,
                None,
            ),
            // a namespace level named `table` is not a table
            (
                one(
                    "p",
                    vec![Statement::allow(
                        [ReadTable],
                        "sluice:catalog:::warehouse/prod/namespace/x/table/*",
                    )],
                ),
                ReadTable,
                tbl(&["x", "table"], "t"),
                false,
                None,
            ),
            // deny wins across policies, regardless of policy order
            (
                vec![
                    Policy::new("allow-all", vec![Statement::allow(["*"], "*")]),
                    Policy::new(
                        "no-drop",
                        vec![Statement::deny([DropTable], finance_star.clone())],
                    ),
                ],
                DropTable,
                tbl(&["finance"], "t"),
                false,
                Some(("no-drop", 0, Effect::Deny)),
            ),
            (
                vec![
                    Policy::new(
                        "no-drop",
                        vec![Statement::deny([DropTable], finance_star.clone())],
                    ),
                    Policy::new("allow-all", vec![Statement::allow(["*"], "*")]),
                ],
                DropTable,
                tbl(&["finance"], "t"),
                false,
                Some(("no-drop", 0, Effect::Deny)),
            ),
            (
                vec![
                    Policy::new(
                        "no-drop",
                        vec![Statement::deny([DropTable], finance_star.clone())],
                    ),
                    Policy::new("allow-all", vec![Statement::allow(["*"], "*")]),
                ],
                DropTable,
                tbl(&["other"], "t"),
                true,
                Some(("allow-all", 0, Effect::Allow)),
            ),
            // deny wins within a policy, regardless of statement order
            (
                one(
                    "mixed",
                    vec![
                        Statement::allow(["catalog:*"], "*"),
                        Statement::deny([DropTable], "*"),
                    ],
                ),
                DropTable,
                tbl(&["a"], "t"),
                false,
                Some(("mixed", 1, Effect::Deny)),
            ),
            (
                one(
                    "mixed",
                    vec![
                        Statement::deny([DropTable], "*"),
                        Statement::allow(["catalog:*"], "*"),
                    ],
                ),
                DropTable,
                tbl(&["a"], "t"),
                false,
                Some(("mixed", 0, Effect::Deny)),
            ),
            // first matching deny / allow in policy then statement order is reported
            (
                vec![
                    Policy::new(
                        "p1",
                        vec![
                            Statement::allow([ReadTable], "sluice:catalog:::warehouse/x/*"),
                            Statement::deny(["catalog:Drop*"], "*"),
                        ],
                    ),
                    Policy::new("p2", vec![Statement::deny(["*"], "*")]),
                ],
                DropTable,
                tbl(&["a"], "t"),
                false,
                Some(("p1", 1, Effect::Deny)),
            ),
            (
                vec![
                    Policy::new("p1", vec![Statement::allow([ListTables], "*")]),
                    Policy::new(
                        "p2",
                        vec![
                            Statement::allow([WriteTable], "*"),
                            Statement::allow([ReadTable], "*"),
                        ],
                    ),
                    Policy::new("p3", vec![Statement::allow(["*"], "*")]),
                ],
                ReadTable,
                tbl(&["a"], "t"),
                true,
                Some(("p2", 1, Effect::Allow)),
            ),
            // a deny that does not match the resource does not interfere
            (
                vec![
                    Policy::new("d", vec![Statement::deny(["*"], fin_star.clone())]),
                    Policy::new("a", vec![Statement::allow(["*"], "*")]),
                ],
                ReadTable,
                tbl(&["sales"], "t"),
                true,
                Some(("a", 0, Effect::Allow)),
            ),
            // no policies / no match → implicit deny
            (vec![], ReadTable, tbl(&["a"], "t"), false, None),
            (
                one(
                    "p",
                    vec![Statement::allow(
                        [ReadTable],
                        "sluice:catalog:::warehouse/dev/*",
                    )],
                ),
                ReadTable,
                tbl(&["a"], "t"),
                false,
                None,
            ),
            // default policies: Viewers
            (
                vec![default_policy("Viewers")],
                ReadTable,
                tbl(&["a"], "t"),
                true,
                Some(("CatalogReadOnly", 0, Effect::Allow)),
            ),
            (
                vec![default_policy("Viewers")],
                ListNamespaces,
                resource::warehouse("prod"),
                true,
                Some(("CatalogReadOnly", 0, Effect::Allow)),
            ),
            (
                vec![default_policy("Viewers")],
                ReadWarehouse,
                resource::warehouse("prod"),
                true,
                Some(("CatalogReadOnly", 0, Effect::Allow)),
            ),
            (
                vec![default_policy("Viewers")],
                WriteTable,
                tbl(&["a"], "t"),
                false,
                None,
            ),
            (
                vec![default_policy("Viewers")],
                CreateTable,
                wh(&["a"]),
                false,
                None,
            ),
            (
                vec![default_policy("Viewers")],
                DropTable,
                tbl(&["a"], "t"),
                false,
                None,
            ),
            // Viewers get read-only storage access to what they can read (the access
            // level is capped by catalog:WriteTable, not by this action).
            (
                vec![default_policy("Viewers")],
                VendCredentials,
                tbl(&["a"], "t"),
                true,
                Some(("CatalogReadOnly", 0, Effect::Allow)),
            ),
            (
                vec![default_policy("Viewers")],
                ListUsers,
                "*".into(),
                false,
                None,
            ),
            (
                vec![default_policy("Viewers")],
                ReadUser,
                resource::user("alice"),
                false,
                None,
            ),
            (
                vec![default_policy("Viewers")],
                CreateWarehouse,
                resource::warehouse("w"),
                false,
                None,
            ),
            // Developers
            (
                vec![default_policy("Developers")],
                WriteTable,
                tbl(&["a"], "t"),
                true,
                Some(("CatalogReadWrite", 0, Effect::Allow)),
            ),
            (
                vec![default_policy("Developers")],
                VendCredentials,
                tbl(&["a"], "t"),
                true,
                Some(("CatalogReadWrite", 0, Effect::Allow)),
            ),
            (
                vec![default_policy("Developers")],
                CreateWarehouse,
                resource::warehouse("w"),
                false,
                None,
            ),
            (
                vec![default_policy("Developers")],
                DeleteWarehouse,
                resource::warehouse("w"),
                false,
                None,
            ),
            (
                vec![default_policy("Developers")],
                CreateUser,
                resource::user("x"),
                false,
                None,
            ),
            // SuperUsers
            (
                vec![default_policy("SuperUsers")],
                CreateWarehouse,
                resource::warehouse("w"),
                true,
                Some(("CatalogAndWarehouseAdmin", 0, Effect::Allow)),
            ),
            (
                vec![default_policy("SuperUsers")],
                CreateUser,
                resource::user("x"),
                false,
                None,
            ),
            (
                vec![default_policy("SuperUsers")],
                ReadAuditLog,
                resource::audit_log(),
                false,
                None,
            ),
            // Admins
            (
                vec![default_policy("Admins")],
                CreateUser,
                resource::user("x"),
                true,
                Some(("FullAccess", 0, Effect::Allow)),
            ),
            (
                vec![default_policy("Admins")],
                ReadAuditLog,
                resource::audit_log(),
                true,
                Some(("FullAccess", 0, Effect::Allow)),
            ),
            (
                vec![default_policy("Admins")],
                DeleteWarehouse,
                resource::warehouse("w"),
                true,
                Some(("FullAccess", 0, Effect::Allow)),
            ),
            // self-service
            (
                vec![builtin_self_service("alice")],
                CreateCredentials,
                resource::user("alice"),
                true,
                Some((SELF_SERVICE_POLICY, 0, Effect::Allow)),
            ),
            (
                vec![builtin_self_service("alice")],
                ReadUser,
                resource::user("alice"),
                true,
                Some((SELF_SERVICE_POLICY, 0, Effect::Allow)),
            ),
            (
                vec![builtin_self_service("alice")],
                CreateCredentials,
                resource::user("bob"),
                false,
                None,
            ),
            (
                vec![builtin_self_service("alice")],
                CreateCredentials,
                resource::user("alice2"),
                false,
                None,
            ),
            (
                vec![builtin_self_service("alice")],
                UpdateUser,
                resource::user("alice"),
                false,
                None,
            ),
            (
                vec![builtin_self_service("alice")],
                DeleteUser,
                resource::user("alice"),
                false,
                None,
            ),
            // a user named `*` gets no power over others
            (
                vec![builtin_self_service("*")],
                ListCredentials,
                resource::user("bob"),
                false,
                None,
            ),
            (
                vec![builtin_self_service("*")],
                ListCredentials,
                resource::user("*"),
                true,
                Some((SELF_SERVICE_POLICY, 0, Effect::Allow)),
            ),
        ];

        // unknown action names (see `evaluate_name`) are only matched by patterns that
        // cover them
        let unknown: Vec<(Vec<Policy>, &str, String, bool, Expected)> = vec![
            (
                one("p", vec![Statement::allow(["catalog:*"], "*")]),
                "catalog:Fly",
                tbl(&["a"], "t"),
                true,
                Some(("p", 0, Effect::Allow)),
            ),
            (
                one("p", vec![Statement::allow([ReadTable], "*")]),
                "catalog:Fly",
                tbl(&["a"], "t"),
                false,
                None,
            ),
            (
                vec![
                    Policy::new("d", vec![Statement::deny(["catalog:F*"], "*")]),
                    Policy::new("a", vec![Statement::allow(["*"], "*")]),
                ],
                "catalog:Fly",
                tbl(&["a"], "t"),
                false,
                Some(("d", 0, Effect::Deny)),
            ),
        ];
        for (n, (policies, action, res, allowed, by)) in unknown.into_iter().enumerate() {
            let set = PolicySet::new(policies);
            let d = set.evaluate_name(action, &res);
            let want = by.map(|(policy, statement, effect)| StatementRef {
                policy: policy.to_string(),
                statement,
                effect,
            });
            assert_eq!(
                d,
                Decision {
                    allowed,
                    decided_by: want
                },
                "unknown case {n}: {action} on {res}"
            );
            assert_eq!(
                set.is_allowed_name(action, &res),
                allowed,
                "unknown case {n} is_allowed"
            );
        }

        for (n, (policies, action, res, allowed, by)) in cases.into_iter().enumerate() {
            let set = PolicySet::new(policies);
            // A known action decides the same by name as by variant.
            assert_eq!(
                set.evaluate_name(action.as_str(), &res),
                set.evaluate(action, &res),
                "case {n} by name"
            );
            let d = set.evaluate(action, &res);
            let want = by.map(|(policy, statement, effect)| StatementRef {
                policy: policy.to_string(),
                statement,
                effect,
            });
            assert_eq!(
                d,
                Decision {
                    allowed,
                    decided_by: want
                },
                "case {n}: {action} on {res}"
            );
            assert_eq!(set.is_allowed(action, &res), allowed, "case {n} is_allowed");
        }
    }

    #[test]
    fn default_policies_validate_and_cover_groups() {
        let d = default_group_policies();
        let groups: Vec<_> = d.iter().map(|(g, _, _)| *g).collect();
        assert_eq!(groups, ["Viewers", "Developers", "SuperUsers", "Admins"]);
        for (_, _, stmts) in &d {
            validate_statements(stmts).unwrap();
        }
        validate_statements(&builtin_self_service("a b/c").statements).unwrap();
    }

    #[test]
    fn sources_and_dedup() {
        let dev = default_policy("Developers");
        let mine = Policy::new("mine", vec![Statement::deny([DropTable], "*")]);
        let set = PolicySet::with_sources(vec![
            (mine.clone(), None),
            (dev.clone(), Some("Developers".to_string())),
            (dev.clone(), Some("Team".to_string())),
            (dev.clone(), Some("Team".to_string())),
        ]);
        assert_eq!(set.policies().count(), 2);
        assert_eq!(
            set.sources("CatalogReadWrite"),
            [Some("Developers"), Some("Team")]
        );
        assert_eq!(set.sources("mine"), [None]);
        assert!(set.sources("nope").is_empty());
        let d = set.evaluate(DropTable, &resource::table("w", &["a"], "t"));
        assert_eq!(d.explain(), "denied by statement 0 of policy 'mine'");
        let d = set.evaluate(WriteTable, &resource::table("w", &["a"], "t"));
        assert_eq!(
            d.explain(),
            "allowed by statement 0 of policy 'CatalogReadWrite'"
        );
        let d = set.evaluate(CreateUser, &resource::user("x"));
        assert_eq!(d.explain(), "denied: no policy statement allows this");
        assert!(PolicySet::default().is_empty());
        assert!(!PolicySet::default().is_allowed(ReadTable, "*"));
    }

    #[test]
    fn decision_serializes() {
        let set = PolicySet::new(vec![default_policy("Admins")]);
        let v = serde_json::to_value(set.evaluate(CreateUser, &resource::user("x"))).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "allowed": true,
                "decided_by": {"policy": "FullAccess", "statement": 0, "effect": "allow"}
            })
        );
        let v = serde_json::to_value(PolicySet::default().evaluate(CreateUser, "*")).unwrap();
        assert_eq!(v, serde_json::json!({"allowed": false, "decided_by": null}));
    }

    fn err(json: &str) -> String {
        let stmts = parse_statements(json).unwrap();
        validate_statements(&stmts).unwrap_err().to_string()
    }

    #[test]
    fn parsing() {
        let stmts = parse_statements(
            r#"[{"effect":"allow","action":"catalog:ReadTable","resource":"*"},
                {"effect":"deny","action":["catalog:*","warehouse:Create"],"resource":"sluice:catalog:::warehouse/p"}]"#,
        )
        .unwrap();
        assert_eq!(stmts[0], Statement::allow([ReadTable], "*"));
        assert_eq!(
            stmts[1],
            Statement::deny(
                ["catalog:*", CreateWarehouse.as_str()],
                "sluice:catalog:::warehouse/p"
            )
        );
        validate_statements(&stmts).unwrap();
        // Always serialized with an array, and round-trips.
        let json = serde_json::to_string(&stmts).unwrap();
        assert!(json.contains(r#""action":["catalog:ReadTable"]"#), "{json}");
        assert_eq!(parse_statements(&json).unwrap(), stmts);
        // Capitalized effects are accepted too.
        assert_eq!(
            parse_statements(r#"[{"effect":"Deny","action":"*","resource":"*"}]"#).unwrap()[0]
                .effect,
            Effect::Deny
        );

        let bad = |json: &str, needle: &str| {
            let e = parse_statements(json).unwrap_err().to_string();
            assert!(e.contains(needle), "{json}: {e}");
        };
        bad(
            r#"[{"effect":"allow","action":"*","resource":"*","extra":1}]"#,
            "unknown field `extra`",
        );
        bad(
            r#"[{"effect":"permit","action":"*","resource":"*"}]"#,
            "unknown variant `permit`",
        );
        bad(
            r#"[{"effect":"allow","action":5,"resource":"*"}]"#,
            "an action string or an array",
        );
        bad(
            r#"[{"effect":"allow","resource":"*"}]"#,
            "missing field `action`",
        );
        bad(
            r#"{"effect":"allow","action":"*","resource":"*"}"#,
            "invalid type",
        );
        bad("not json", "invalid policy statements JSON");
    }

    #[test]
    fn validation() {
        assert_eq!(err("[]"), "a policy must have at least one statement");
        let many: Vec<_> = (0..101).map(|_| Statement::allow(["*"], "*")).collect();
        assert_eq!(
            validate_statements(&many).unwrap_err(),
            PolicyError::TooManyStatements(101)
        );
        validate_statements(&many[..100]).unwrap();
        assert_eq!(
            err(r#"[{"effect":"allow","action":[],"resource":"*"}]"#),
            "statement 0 has no actions"
        );
        assert_eq!(
            err(r#"[{"effect":"allow","action":"catalog:Fly","resource":"*"}]"#),
            "unknown action 'catalog:Fly' in statement 0"
        );
        assert_eq!(
            err(r#"[{"effect":"allow","action":"*","resource":"*"},
                    {"effect":"allow","action":["catalog:ReadTable","catalog:readtable"],"resource":"*"}]"#),
            "unknown action 'catalog:readtable' in statement 1 \
             (did you mean 'catalog:ReadTable'? actions are case-sensitive)"
        );
        assert_eq!(
            err(r#"[{"effect":"allow","action":"","resource":"*"}]"#),
            "unknown action '' in statement 0"
        );
        assert_eq!(
            err(r#"[{"effect":"allow","action":"catalog:Zz*","resource":"*"}]"#),
            "action pattern 'catalog:Zz*' in statement 0 matches no known action"
        );
        for ok in [
            "*",
            "catalog:*",
            "catalog:Read*",
            "*:Create*",
            "auth:*Policy",
            "storage:Sign",
        ] {
            validate_statements(&[Statement::allow([ok], "*")])
                .unwrap_or_else(|e| panic!("{ok}: {e}"));
        }

        for ok in [
            "*",
            "sluice:*:::*",
            "sluice:*:::anything/here",
            "sluice:catalog:::*",
            "sluice:catalog:::warehouse/*",
            "sluice:catalog:::warehouse/prod",
            "sluice:catalog:::warehouse/prod/namespace/finance/*",
            "sluice:catalog:::warehouse/prod/namespace/a%2Fb/table/t%2A",
            "sluice:auth:::*",
            "sluice:auth:::user/alice",
            "sluice:auth:::user/*",
            "sluice:auth:::group/devs",
            "sluice:auth:::policy/p*",
            "sluice:auth:::audit",
        ] {
            validate_statements(&[Statement::allow(["*"], ok)])
                .unwrap_or_else(|e| panic!("{ok}: {e}"));
        }

        let malformed = |res: &str, why: &str| {
            let e =
                validate_statements(&[Statement::allow(["*"], "*"), Statement::allow(["*"], res)])
                    .unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!("malformed resource '{res}' in statement 1: ")),
                "{msg}"
            );
            assert!(msg.contains(why), "{res}: {msg}");
            assert!(matches!(
                e,
                PolicyError::MalformedResource { statement: 1, .. }
            ));
        };
        malformed("", "empty");
        malformed(
            "warehouse/prod",
            "expected '*' or 'sluice:<service>:::<path>'",
        );
        malformed("arn:aws:s3:::bucket", "expected '*' or 'sluice:");
        malformed("sluice:catalog:warehouse/prod", "three colons");
        malformed("sluice:catalog:::", "path after ':::' is empty");
        malformed("sluice:catalog:::namespace/a", "catalog path must be");
        malformed("sluice:catalog:::warehouse/", "catalog path must be");
        malformed("sluice:catalog:::warehouse*", "catalog path must be");
        malformed("sluice:auth:::users/alice", "auth path must be");
        malformed("sluice:auth:::user/", "auth path must be");
        malformed(
            "sluice:storage:::warehouse/p",
            "storage actions apply to tables",
        );
        malformed("sluice:kafka:::x", "unknown service 'kafka'");
        malformed("sluice::::x", "service is empty");
        malformed("sluice:catalog:::warehouse/my wh", "whitespace");
        malformed("sluice:catalog:::warehouse/a\u{7}", "control");
        malformed(" *", "whitespace");
        malformed("sluice:catalog:::warehouse/a%2f", "percent-escape");
        malformed("sluice:catalog:::warehouse/a%", "percent-escape");
        malformed("sluice:catalog:::warehouse/a%2", "percent-escape");
        malformed("sluice:catalog:::warehouse/a%zz", "percent-escape");
    }

    #[test]
    fn many_evaluations() {
        // 20 policies with a mix of shapes; 10k table resources across namespaces.
        let mut policies = Vec::new();
        for i in 0..20 {
            policies.push(Policy::new(
                format!("p{i}"),
                vec![
                    Statement::allow(
                        ["catalog:Read*", ListTables.as_str()],
                        format!("sluice:catalog:::warehouse/prod/namespace/team{i}/*"),
                    ),
                    Statement::deny(
                        [DropTable.as_str(), "storage:*"],
                        format!(
                            "sluice:catalog:::warehouse/prod/namespace/team{i}/*/table/secret?"
                        ),
                    ),
                    Statement::allow(
                        [WriteTable],
                        format!("sluice:catalog:::warehouse/prod/namespace/team{i}/table/t1*"),
                    ),
                ],
            ));
        }
        let set = PolicySet::new(policies);
        let mut allowed = 0;
        for n in 0..10_000 {
            let res = resource::table(
                "prod",
                &[format!("team{}", n % 25), "x".to_string()],
                &format!("t{n}"),
            );
            if set.is_allowed(ReadTable, &res) {
                allowed += 1;
            }
            let _ = set.evaluate(WriteTable, &res);
        }
        assert_eq!(allowed, 8_000);
        let secret = resource::table("prod", &["team3", "x"], "secret1");
        assert!(set.is_allowed(ReadTable, &secret));
        assert_eq!(
            set.evaluate(DropTable, &secret).decided_by.unwrap().policy,
            "p3"
        );
    }

    #[test]
    fn policy_set_is_send_sync() {
        fn check<T: Send + Sync + Clone>() {}
        check::<PolicySet>();
        check::<Decision>();
    }
}
