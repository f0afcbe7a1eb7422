//! Sluice client SDK. `Client` is cheap to clone and thread-safe; configuration is resolved
//! once with precedence code > environment > profile file; an `Authenticator` obtains and
//! refreshes tokens (one refresh for many concurrent callers); tokens are cached in the OS
//! keyring or a 0600 file. Must not depend on any server crate.

pub mod auth;
pub mod cache;
pub mod client;
pub mod config;
pub mod error;
pub mod flows;
mod fsutil;
pub mod http;
pub mod types;

pub use auth::{AuthContext, Authenticator, Token, TokenManager};
pub use cache::TokenCache;
pub use client::{Client, Request};
pub use config::{AuthMethod, ClientConfig, ConfigOverrides, Profile, ProfileFile};
pub use error::{ClientError, Result};
pub use types::*;

// The HTTP types in this API (`Method`, `Response`, `RequestBuilder`), so callers need no
// reqwest dependency of their own (and never a mismatched version).
pub use reqwest::{self, Method};
