//! The client commands' arguments (clap derive). `sluice serve` lives in main.rs.

use super::output::OutputFormat;
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Flags every client command accepts (before or after the subcommand). Each one, when
/// given, wins over the environment and the profile file.
#[derive(Args, Debug, Clone)]
pub struct GlobalOpts {
    /// Sluice server URL, e.g. https://sluice.example.com [env: SLUICE_ENDPOINT]
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Profile from the profile file to use [env: SLUICE_PROFILE]
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// Output format: aligned tables for people, or the raw JSON for scripts
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Allow plain http to non-loopback hosts and skip TLS certificate verification
    #[arg(long, global = true)]
    pub insecure: bool,
    /// PEM file with extra CA certificates to trust [env: SLUICE_CA_BUNDLE]
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_bundle: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Log in (runs the configured or chosen login flow, caches the token) and show who you are.
    Login(Box<LoginArgs>),
    /// Forget the cached token and the stored secret of the current profile/endpoint.
    Logout,
    /// Show the user you are authenticated as, with groups and policies.
    Whoami,
    /// Client configuration: profiles and the resolved settings.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Warehouses (storage locations holding catalogs).
    #[command(subcommand)]
    Warehouse(WarehouseCommand),
    /// Namespaces of a warehouse's catalog.
    #[command(subcommand)]
    Namespace(NamespaceCommand),
    /// Tables of a namespace.
    #[command(subcommand)]
    Table(TableCommand),
    /// Users.
    #[command(subcommand)]
    User(UserCommand),
    /// Groups and their members.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Authorization policies and their attachments.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Access keys (default: your own).
    #[command(subcommand)]
    Key(KeyCommand),
}

/// The login flows (`--method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Method {
    AccessKey,
    StaticToken,
    ClientCredentials,
    Pkce,
    Device,
    ExternalCommand,
    ApiKey,
    AwsRole,
    WebIdentity,
    Ldap,
}

#[derive(Args, Debug, Default)]
pub struct LoginArgs {
    /// Login flow [env: SLUICE_AUTH_METHOD] [default: from the profile, else access-key
    /// when a key is configured, else static-token when a token is]
    #[arg(long, value_enum)]
    pub method: Option<Method>,
    /// Save the settings this login used (endpoint, method, key id, client id, token URL,
    /// user name, scopes, ...) into the profile (the selected one, or `default`), and its
    /// secret (secret access key, client secret, API key, token) into the OS keyring, else a
    /// 0600 file beside the token cache; never into the profile file. On by default for the
    /// first login of a profile.
    #[arg(long, conflicts_with = "no_save")]
    pub save: bool,
    /// Save nothing: neither the settings nor the secret (the token is still cached).
    #[arg(long)]
    pub no_save: bool,
    /// Read the flow's secret (secret access key, token, client secret, API key or password)
    /// from standard input instead of a flag or the environment.
    #[arg(long)]
    pub secret_stdin: bool,

    /// access-key: access key id [env: SLUICE_ACCESS_KEY_ID]
    #[arg(long, help_heading = "Flow options", value_name = "ID")]
    pub access_key_id: Option<String>,
    /// access-key: secret access key (prefer SLUICE_SECRET_ACCESS_KEY or --secret-stdin)
    #[arg(long, help_heading = "Flow options", value_name = "SECRET")]
    pub secret_access_key: Option<String>,
    /// access-key: exchange the key for a token instead of sending it on every call
    #[arg(long, help_heading = "Flow options")]
    pub exchange_access_key: bool,
    /// static-token: the bearer token (prefer SLUICE_TOKEN or --secret-stdin)
    #[arg(long, help_heading = "Flow options", value_name = "TOKEN")]
    pub token: Option<String>,
    /// client-credentials, pkce, device: OAuth2 client id [env: SLUICE_CLIENT_ID]
    #[arg(long, help_heading = "Flow options", value_name = "ID")]
    pub client_id: Option<String>,
    /// client-credentials: OAuth2 client secret (prefer SLUICE_CLIENT_SECRET or --secret-stdin)
    #[arg(long, help_heading = "Flow options", value_name = "SECRET")]
    pub client_secret: Option<String>,
    /// client-credentials: token endpoint of an external identity provider [env: SLUICE_TOKEN_URL]
    #[arg(long, help_heading = "Flow options", value_name = "URL")]
    pub token_url: Option<String>,
    /// OAuth2 audience [env: SLUICE_AUDIENCE]
    #[arg(long, help_heading = "Flow options")]
    pub audience: Option<String>,
    /// OAuth2 scope; repeat for several [env: SLUICE_SCOPES, space-separated]
    #[arg(long = "scope", help_heading = "Flow options", value_name = "SCOPE")]
    pub scopes: Vec<String>,
    /// pkce: loopback port for the browser redirect (0 = any free port) [env: SLUICE_REDIRECT_PORT]
    #[arg(long, help_heading = "Flow options", value_name = "PORT")]
    pub redirect_port: Option<u16>,
    /// pkce, device: give up waiting for the browser/device after this many seconds
    #[arg(long, help_heading = "Flow options", value_name = "SECONDS")]
    pub login_timeout: Option<u64>,
    /// external-command: command whose standard output is the token [env: SLUICE_TOKEN_COMMAND]
    #[arg(long, help_heading = "Flow options", value_name = "COMMAND")]
    pub token_command: Option<String>,
    /// api-key: the API key (prefer SLUICE_API_KEY or --secret-stdin)
    #[arg(long, help_heading = "Flow options", value_name = "KEY")]
    pub api_key: Option<String>,
    /// ldap: user name [env: SLUICE_USERNAME]
    #[arg(long, help_heading = "Flow options")]
    pub username: Option<String>,
    /// ldap: password (prefer SLUICE_PASSWORD or --secret-stdin)
    #[arg(long, help_heading = "Flow options")]
    pub password: Option<String>,
    /// aws-role: AWS region for the signed GetCallerIdentity [env: SLUICE_AWS_REGION]
    #[arg(long, help_heading = "Flow options")]
    pub aws_region: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// List the profiles in the profile file; `*` marks the active one.
    Profiles,
    /// Show the resolved settings (flags > environment > profile), secrets masked.
    Show,
}

/// A warehouse, by name or id.
#[derive(Args, Debug)]
pub struct WarehouseRef {
    /// Warehouse name or id
    #[arg(value_name = "WAREHOUSE")]
    pub warehouse: String,
}

#[derive(Subcommand, Debug)]
pub enum WarehouseCommand {
    /// Create a warehouse (its storage is probed before it is saved).
    Create {
        /// Warehouse name
        #[arg(long)]
        name: String,
        /// Storage profile JSON, or @FILE, e.g. '{"type":"file","root":"/data/lake"}'
        #[arg(long, value_name = "JSON|@FILE")]
        storage_profile: String,
        /// Storage credential JSON, or @FILE (never shown again)
        #[arg(long, value_name = "JSON|@FILE")]
        storage_credential: Option<String>,
        /// Delete profile JSON, or @FILE: '{"type":"hard"}' (default) or '{"type":"soft","expiration-seconds":N}'
        #[arg(long, value_name = "JSON|@FILE")]
        delete_profile: Option<String>,
    },
    /// List warehouses.
    List,
    /// Show one warehouse.
    Get(WarehouseRef),
    /// Delete a warehouse (it must be empty).
    Delete(WarehouseRef),
    /// Rename a warehouse (catalog clients keep working: they use its id).
    Rename {
        #[command(flatten)]
        warehouse: WarehouseRef,
        /// New name
        #[arg(value_name = "NEW_NAME")]
        new_name: String,
    },
    /// Allow catalog access to a warehouse again.
    Activate(WarehouseRef),
    /// Refuse catalog access to a warehouse (it is kept).
    Deactivate(WarehouseRef),
}

/// A namespace: `--namespace a.b` or `--namespace a --namespace b` (repeat to give levels
/// that contain dots).
#[derive(Args, Debug, Clone)]
pub struct NamespaceSel {
    /// Warehouse name or id
    #[arg(long, short = 'w', env = "SLUICE_WAREHOUSE", value_name = "WAREHOUSE")]
    pub warehouse: String,
    /// Namespace: dotted (`a.b`), or repeat the flag once per level
    #[arg(long, short = 'n', value_name = "NAMESPACE", required = true)]
    pub namespace: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum NamespaceCommand {
    /// List namespaces (top level, or the children of --parent).
    List {
        /// Warehouse name or id
        #[arg(long, short = 'w', env = "SLUICE_WAREHOUSE", value_name = "WAREHOUSE")]
        warehouse: String,
        /// Parent namespace: dotted, or repeat once per level
        #[arg(long, value_name = "NAMESPACE")]
        parent: Vec<String>,
    },
    /// Create a namespace.
    Create {
        #[command(flatten)]
        ns: NamespaceSel,
        /// Property KEY=VALUE; repeat for several
        #[arg(long = "property", short = 'p', value_name = "KEY=VALUE")]
        properties: Vec<String>,
    },
    /// Show a namespace and its properties.
    Get {
        #[command(flatten)]
        ns: NamespaceSel,
    },
    /// Drop an empty namespace.
    Drop {
        #[command(flatten)]
        ns: NamespaceSel,
    },
}

#[derive(Subcommand, Debug)]
pub enum TableCommand {
    /// List the tables of a namespace.
    List {
        #[command(flatten)]
        ns: NamespaceSel,
    },
    /// Show a table's location, schema and snapshots.
    Get {
        #[command(flatten)]
        ns: NamespaceSel,
        /// Table name
        #[arg(value_name = "TABLE")]
        table: String,
    },
    /// Drop a table.
    Drop {
        #[command(flatten)]
        ns: NamespaceSel,
        /// Table name
        #[arg(value_name = "TABLE")]
        table: String,
        /// Also delete the table's data and metadata files
        #[arg(long)]
        purge: bool,
    },
    /// Rename a table, optionally moving it to another namespace of the same warehouse.
    Rename {
        #[command(flatten)]
        ns: NamespaceSel,
        /// Current table name
        #[arg(value_name = "TABLE")]
        table: String,
        /// New table name
        #[arg(value_name = "NEW_NAME")]
        new_name: String,
        /// Move to this namespace (dotted, or repeat once per level) [default: the same]
        #[arg(long, value_name = "NAMESPACE")]
        to_namespace: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user (then give it access with groups or policies, and a key with `key create`).
    Create {
        /// User name
        name: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        friendly_name: Option<String>,
    },
    /// List users.
    List,
    /// Show a user.
    Get {
        /// User name
        name: String,
    },
    /// Delete a user (its keys and tokens stop working).
    Delete {
        /// User name
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// Create a group.
    Create {
        /// Group name
        name: String,
        #[arg(long)]
        description: Option<String>,
    },
    /// List groups.
    List,
    /// Show a group.
    Get {
        /// Group name
        name: String,
    },
    /// Delete a group.
    Delete {
        /// Group name
        name: String,
    },
    /// Add a user to a group.
    AddMember {
        /// Group name
        group: String,
        /// User name
        user: String,
    },
    /// Remove a user from a group.
    RemoveMember {
        /// Group name
        group: String,
        /// User name
        user: String,
    },
    /// List a group's members.
    Members {
        /// Group name
        group: String,
    },
}

/// Exactly one principal a policy is attached to or detached from.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct AttachTarget {
    /// User name
    #[arg(long)]
    pub user: Option<String>,
    /// Group name
    #[arg(long)]
    pub group: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Create a policy.
    Create {
        /// Policy name
        name: String,
        /// Statements JSON, or @FILE: '[{"effect":"allow","action":["catalog:ReadTable"],"resource":"sluice:catalog:::warehouse/prod/*"}]'
        #[arg(long, value_name = "JSON|@FILE")]
        statements: String,
        #[arg(long)]
        description: Option<String>,
    },
    /// List policies.
    List,
    /// Show a policy with its statements.
    Get {
        /// Policy name
        name: String,
    },
    /// Replace a policy's statements (and description).
    Update {
        /// Policy name
        name: String,
        /// Statements JSON, or @FILE
        #[arg(long, value_name = "JSON|@FILE")]
        statements: String,
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a policy.
    Delete {
        /// Policy name
        name: String,
    },
    /// Attach a policy to a user or a group.
    Attach {
        /// Policy name
        name: String,
        #[command(flatten)]
        target: AttachTarget,
    },
    /// Detach a policy from a user or a group.
    Detach {
        /// Policy name
        name: String,
        #[command(flatten)]
        target: AttachTarget,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Create an access key; its secret is shown ONCE.
    Create {
        /// Owner [default: yourself]
        #[arg(long)]
        user: Option<String>,
    },
    /// List access keys (ids only; secrets are never shown again).
    List {
        /// Owner [default: yourself]
        #[arg(long)]
        user: Option<String>,
    },
    /// Delete an access key (tokens minted from it stop working too).
    Delete {
        /// Access key id
        #[arg(value_name = "ACCESS_KEY_ID")]
        key: String,
        /// Owner [default: yourself]
        #[arg(long)]
        user: Option<String>,
    },
}
