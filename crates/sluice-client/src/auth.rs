//! The authenticator trait and the token manager that attaches, caches and refreshes tokens.

use crate::cache::TokenCache;
use crate::error::{ClientError, Result};
use base64::Engine;
use chrono::{DateTime, Utc};
use sluice_core::Secret;
use std::sync::Arc;

/// An access token (and maybe a refresh token) with its expiry.
#[derive(Clone, Debug)]
pub struct Token {
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl Token {
    /// A token that never expires as far as the client knows (static tokens, or a server
    /// that sent no `expires_in`).
    pub fn new(access_token: impl Into<String>) -> Token {
        Token {
            access_token: Secret::new(access_token.into()),
            refresh_token: None,
            expires_at: None,
        }
    }

    /// True once `expires_at` has passed (never for a token without expiry).
    pub fn is_expired(&self) -> bool {
        self.expires_at.is_some_and(|e| e <= Utc::now())
    }
}

/// What a login flow may use: the HTTP client every call must go through (so CA bundle,
/// proxy and timeouts apply to IdP calls too), the Sluice endpoint, and the server's auth
/// metadata (`/.well-known/oauth-authorization-server`), fetched lazily and cached.
#[derive(Clone)]
pub struct AuthContext {
    pub http: reqwest::Client,
    pub endpoint: url::Url,
    pub metadata: Arc<tokio::sync::OnceCell<serde_json::Value>>,
}

impl AuthContext {
    /// A context with an empty metadata cache.
    pub fn new(http: reqwest::Client, endpoint: url::Url) -> AuthContext {
        AuthContext {
            http,
            endpoint,
            metadata: Arc::new(tokio::sync::OnceCell::new()),
        }
    }

    /// The server's auth metadata (cached after the first successful fetch; a failed fetch
    /// is retried by the next caller).
    pub async fn server_metadata(&self) -> Result<&serde_json::Value> {
        self.metadata
            .get_or_try_init(|| async {
                let url = join_segments(
                    &self.endpoint,
                    &[".well-known", "oauth-authorization-server"],
                );
                let resp = self
                    .http
                    .get(url.clone())
                    .header(reqwest::header::ACCEPT, "application/json")
                    .send()
                    .await
                    .map_err(|e| ClientError::transport(&url, &e))?;
                if !resp.status().is_success() {
                    return Err(ClientError::from_response(resp).await);
                }
                let v: serde_json::Value = resp.json().await.map_err(|e| {
                    ClientError::Protocol(format!("the auth metadata at {url} is not JSON: {e}"))
                })?;
                if !v.is_object() {
                    return Err(ClientError::Protocol(format!(
                        "the auth metadata at {url} is not a JSON object"
                    )));
                }
                Ok(v)
            })
            .await
    }

    /// `path` (e.g. `/v1/oauth/tokens`) under the Sluice endpoint, keeping any path prefix the
    /// endpoint has (`https://host/sluice` + `/v1/...` = `https://host/sluice/v1/...`).
    pub fn url(&self, path: &str) -> Result<url::Url> {
        join_path(&self.endpoint, path)
    }
}

/// Appends a raw (already percent-encoded) path, optionally with a query, to `base`.
/// `Url::join` would instead *replace* the last segment of a base without a trailing slash.
pub fn join_path(base: &url::Url, path: &str) -> Result<url::Url> {
    let s = format!(
        "{}/{}",
        base.as_str().trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    url::Url::parse(&s)
        .map_err(|e| ClientError::Other(format!("invalid request path '{path}': {e}")))
}

/// Appends path segments to `base`, percent-encoding each one (so a name containing `/`,
/// `%` or a namespace separator stays one segment).
pub fn join_segments(base: &url::Url, segments: &[&str]) -> url::Url {
    let mut u = base.clone();
    u.set_query(None);
    u.set_fragment(None);
    if let Ok(mut segs) = u.path_segments_mut() {
        segs.pop_if_empty();
        segs.extend(segments);
    }
    u
}

/// One login flow. `authenticate` runs the (possibly interactive) initial flow; `refresh`
/// renews a token non-interactively (return Ok(None) when the flow cannot refresh).
#[async_trait::async_trait]
pub trait Authenticator: Send + Sync {
    fn name(&self) -> &'static str;
    /// Identifies the principal for the token cache, e.g. the client id or user name
    /// (combined with the endpoint by the cache). None = do not cache.
    fn cache_identity(&self) -> Option<String>;
    async fn authenticate(&self, ctx: &AuthContext) -> Result<Token>;
    async fn refresh(&self, ctx: &AuthContext, current: &Token) -> Result<Option<Token>> {
        let _ = (ctx, current);
        Ok(None)
    }
    /// Basic-auth credentials to send instead of a bearer token (access keys in Basic mode).
    fn basic_credentials(&self) -> Option<(String, Secret)> {
        None
    }
    /// Whether `authenticate` needs a person (a browser, a device approval, a secret that
    /// is not at hand). A non-interactive `TokenManager` never runs it outside `login`.
    fn needs_person(&self) -> bool {
        false
    }
}

/// How close to expiry a token is renewed before use: a request started just before expiry
/// must not arrive just after it.
const REFRESH_MARGIN_SECS: i64 = 60;

/// How long a renew waits for another process's renew of the same token cache (a token
/// request is bounded by the HTTP timeouts, so a longer wait means a stuck process).
const RENEW_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(90);

struct State {
    token: Option<Token>,
    /// When the current token was obtained (None for one loaded from the cache). Used to
    /// shrink the refresh margin for tokens that live less than two margins, which would
    /// otherwise be renewed on every call.
    obtained_at: Option<DateTime<Utc>>,
    /// Counts renew attempts (successful or not). A caller that waited for the lock and sees
    /// a different count knows someone else just renewed and uses that outcome instead of
    /// renewing again: this is what makes concurrent callers share one refresh.
    attempt: u64,
    /// The error of the latest attempt, if it failed (handed to the callers that waited on it).
    last_failure: Option<ClientError>,
    cache_checked: bool,
    /// Whether a token was there (in memory or the cache) before: tells "session expired"
    /// from "not logged in".
    had_token: bool,
}

/// Holds the current token for one client; refreshes proactively before expiry and once on
/// a 401; many concurrent callers share one refresh (single flight).
pub struct TokenManager {
    authenticator: Arc<dyn Authenticator>,
    ctx: AuthContext,
    cache: Option<Arc<TokenCache>>,
    cache_identity: Option<String>,
    /// Short critical sections only, never held across an await.
    state: std::sync::Mutex<State>,
    /// Held for the whole of a renew (the network round trip or the interactive login), so
    /// only one runs at a time.
    renew_lock: tokio::sync::Mutex<()>,
    /// Whether ordinary calls may run a flow that needs a person (see `non_interactive`).
    interactive: bool,
    /// The profile named in `LoginRequired` errors.
    profile: Option<String>,
}

impl TokenManager {
    pub fn new(
        authenticator: Arc<dyn Authenticator>,
        ctx: AuthContext,
        cache: Option<Arc<crate::cache::TokenCache>>,
    ) -> Self {
        // Basic credentials are sent as they are; there is no token to cache.
        let cache_identity = if authenticator.basic_credentials().is_some() {
            None
        } else {
            authenticator.cache_identity()
        };
        TokenManager {
            authenticator,
            ctx,
            cache,
            cache_identity,
            state: std::sync::Mutex::new(State {
                token: None,
                obtained_at: None,
                attempt: 0,
                last_failure: None,
                cache_checked: false,
                had_token: false,
            }),
            renew_lock: tokio::sync::Mutex::new(()),
            interactive: true,
            profile: None,
        }
    }

    /// Ordinary calls never start a browser login or device approval (or any flow whose
    /// authenticator `needs_person`): when the token cannot be renewed silently they fail
    /// with `ClientError::LoginRequired` naming `profile`. Only `login()` runs such flows.
    /// For command-line tools and services that use a login made earlier.
    pub fn non_interactive(mut self, profile: Option<String>) -> Self {
        self.interactive = false;
        self.profile = profile;
        self
    }

    pub fn context(&self) -> &AuthContext {
        &self.ctx
    }

    pub fn authenticator(&self) -> &Arc<dyn Authenticator> {
        &self.authenticator
    }

    /// Whether this manager sends fixed Basic credentials instead of tokens.
    pub fn is_basic(&self) -> bool {
        self.authenticator.basic_credentials().is_some()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave State inconsistent (plain field
        // writes), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn basic(&self) -> Option<String> {
        self.authenticator.basic_credentials().map(|(id, secret)| {
            let raw = format!("{id}:{}", secret.expose());
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            )
        })
    }

    fn bearer(t: &Token) -> String {
        format!("Bearer {}", t.access_token.expose())
    }

    fn is_fresh(t: &Token, obtained_at: Option<DateTime<Utc>>) -> bool {
        let Some(exp) = t.expires_at else { return true };
        let mut margin = chrono::Duration::seconds(REFRESH_MARGIN_SECS);
        if let Some(o) = obtained_at {
            margin = margin.min((exp - o) / 2);
        }
        exp - margin > Utc::now()
    }

    fn fresh_header(&self) -> Option<String> {
        let st = self.state();
        st.token
            .as_ref()
            .filter(|t| Self::is_fresh(t, st.obtained_at))
            .map(Self::bearer)
    }

    /// Loads the cached token once per manager (before the first renew decision). Expired
    /// tokens are skipped unless they carry a refresh token.
    fn load_cache_once(&self) {
        if std::mem::replace(&mut self.state().cache_checked, true) {
            return;
        }
        let (Some(cache), Some(id)) = (&self.cache, &self.cache_identity) else {
            return;
        };
        let Some((t, obtained_at)) = cache.load_entry(self.ctx.endpoint.as_str(), id) else {
            return;
        };
        self.state().had_token = true;
        if t.is_expired() && t.refresh_token.is_none() {
            tracing::debug!("the cached token has expired");
            return;
        }
        let mut st = self.state();
        if st.token.is_none() {
            st.token = Some(t);
            st.obtained_at = obtained_at;
        }
    }

    /// The value for the authorization header (`Bearer …` or `Basic …`).
    pub async fn authorization(&self) -> Result<String> {
        if let Some(b) = self.basic() {
            return Ok(b);
        }
        if let Some(h) = self.fresh_header() {
            return Ok(h);
        }
        let seen = self.state().attempt;
        let _renewing = self.renew_lock.lock().await;
        if let Some(outcome) = self.outcome_since(seen, true) {
            return outcome;
        }
        self.load_cache_once();
        if let Some(h) = self.fresh_header() {
            return Ok(h);
        }
        match self.renew().await {
            Ok(t) => Ok(Self::bearer(&t)),
            Err(e) => self.still_valid(&e).ok_or(e),
        }
    }

    /// Called after a 401 with the header value that was rejected: refresh once (unless
    /// someone already did) and return the new value. In Basic mode (nothing to refresh)
    /// this returns the same credentials, which tells the caller not to retry.
    pub async fn on_unauthorized(&self, rejected: &str) -> Result<String> {
        if let Some(b) = self.basic() {
            return Ok(b);
        }
        let seen = self.state().attempt;
        let _renewing = self.renew_lock.lock().await;
        if let Some(outcome) = self.outcome_since(seen, false) {
            return outcome;
        }
        self.load_cache_once();
        {
            // Someone renewed before we even got here: use theirs.
            let st = self.state();
            if let Some(t) = st.token.as_ref().filter(|t| !t.is_expired()) {
                let h = Self::bearer(t);
                if h != rejected {
                    return Ok(h);
                }
            }
        }
        self.renew().await.map(|t| Self::bearer(&t))
    }

    /// If another caller finished a renew while we waited for the lock, its outcome.
    fn outcome_since(&self, seen: u64, allow_still_valid: bool) -> Option<Result<String>> {
        let st = self.state();
        if st.attempt == seen {
            return None;
        }
        if let Some(e) = st.last_failure.clone() {
            drop(st);
            return Some(
                match allow_still_valid.then(|| self.still_valid(&e)).flatten() {
                    Some(h) => Ok(h),
                    None => Err(e),
                },
            );
        }
        st.token.as_ref().map(|t| Ok(Self::bearer(t)))
    }

    /// After a failed proactive renew: the current token if it has not actually expired
    /// (a flaky IdP should not fail requests that would still succeed).
    fn still_valid(&self, why: &ClientError) -> Option<String> {
        let st = self.state();
        let t = st.token.as_ref().filter(|t| !t.is_expired())?;
        if matches!(why, ClientError::LoginRequired { .. }) {
            // Expected for flows that cannot renew on their own: not worth a warning.
            tracing::debug!(
                "the token cannot be renewed without a login; using it until it expires"
            );
        } else {
            tracing::warn!("could not renew the token; using the current one until it expires");
        }
        Some(Self::bearer(t))
    }

    /// Renews with the renew lock held: `refresh()` with the refresh token if there is one
    /// (a response without a new refresh token keeps the old one), else — or if that fails or
    /// cannot refresh — `authenticate()` again (for interactive flows, the initial login).
    async fn renew(&self) -> Result<Token> {
        let _across_processes = self.lock_renewal_across_processes().await;
        if let Some(outcome) = self.renewed_by_another_process() {
            return outcome;
        }
        let current = self.state().token.clone();
        let ctx = &self.ctx;
        let result = match current.filter(|t| t.refresh_token.is_some()) {
            Some(cur) => match self.authenticator.refresh(ctx, &cur).await {
                Ok(Some(mut t)) => {
                    if t.refresh_token.is_none() {
                        t.refresh_token = cur.refresh_token.clone();
                    }
                    Ok(t)
                }
                Ok(None) => self.authenticate_again().await,
                Err(e) => {
                    tracing::info!("refreshing the token failed ({e}); logging in again");
                    self.authenticate_again().await
                }
            },
            None => self.authenticate_again().await,
        };
        self.record(result)
    }

    /// Waits until no other process sharing the token cache is renewing (see
    /// `TokenCache::try_lock_renewal`). Gives up after `RENEW_LOCK_WAIT`, or at once when the
    /// lock file cannot be used: renewing twice is better than not at all.
    async fn lock_renewal_across_processes(&self) -> Option<crate::cache::RenewLock> {
        let cache = self.cache.as_ref()?;
        let deadline = tokio::time::Instant::now() + RENEW_LOCK_WAIT;
        loop {
            match cache.try_lock_renewal() {
                Ok(Some(lock)) => return Some(lock),
                Ok(None) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(25)).await;
                }
                Ok(None) => {
                    tracing::warn!(
                        "another process has been renewing the token for {} s; renewing anyway",
                        RENEW_LOCK_WAIT.as_secs()
                    );
                    return None;
                }
                Err(e) => {
                    tracing::debug!(
                        "cannot lock {} ({e}); renewing without it",
                        cache.lock_path().display()
                    );
                    return None;
                }
            }
        }
    }

    /// With the renewal lock held: a fresh token that another process put into the cache
    /// after this one last looked, taken as this renew's outcome (not stored again).
    fn renewed_by_another_process(&self) -> Option<Result<Token>> {
        let (cache, id) = (self.cache.as_ref()?, self.cache_identity.as_ref()?);
        let (cached, obtained_at) = cache.load_entry(self.ctx.endpoint.as_str(), id)?;
        let mut st = self.state();
        let ours = st.token.as_ref().map(|t| t.access_token.expose());
        if ours == Some(cached.access_token.expose()) || !Self::is_fresh(&cached, obtained_at) {
            return None;
        }
        st.attempt += 1;
        st.token = Some(cached.clone());
        st.obtained_at = obtained_at;
        st.last_failure = None;
        st.had_token = true;
        Some(Ok(cached))
    }

    /// The flow's initial authentication, unless it needs a person and this manager is
    /// non-interactive: then the caller is told to log in.
    async fn authenticate_again(&self) -> Result<Token> {
        if !self.interactive && self.authenticator.needs_person() {
            let expired = {
                let st = self.state();
                st.had_token || st.token.is_some()
            };
            return Err(ClientError::LoginRequired {
                profile: self.profile.clone(),
                expired,
            });
        }
        self.authenticator.authenticate(&self.ctx).await
    }

    /// Stores the outcome of a renew or login, and saves a new token to the cache.
    fn record(&self, result: Result<Token>) -> Result<Token> {
        {
            let mut st = self.state();
            st.attempt += 1;
            match &result {
                Ok(t) => {
                    st.token = Some(t.clone());
                    st.obtained_at = Some(Utc::now());
                    st.last_failure = None;
                    st.had_token = true;
                }
                Err(e) => st.last_failure = Some(e.clone()),
            }
        }
        if let (Ok(t), Some(cache), Some(id)) = (&result, &self.cache, &self.cache_identity) {
            cache.store(self.ctx.endpoint.as_str(), id, t);
        }
        result
    }

    /// Runs the initial flow now (ignoring any current or cached token), keeps and caches the
    /// result. For `sluice login`. In Basic mode there is nothing to obtain: returns an error.
    pub async fn login(&self) -> Result<Token> {
        if self.is_basic() {
            return Err(ClientError::Config(format!(
                "the {} method sends the access key with every request; there is no login to run",
                self.authenticator.name()
            )));
        }
        let _renewing = self.renew_lock.lock().await;
        self.state().cache_checked = true;
        let result = self.authenticator.authenticate(&self.ctx).await;
        self.record(result)
    }

    /// The token in use (loading it from the cache if not done yet), without any network
    /// call; None in Basic mode or before the first login. For status displays.
    pub async fn current_token(&self) -> Option<Token> {
        let _renewing = self.renew_lock.lock().await;
        self.load_cache_once();
        self.state().token.clone()
    }

    /// Whether there is a token here or in the cache, expired or not (what `logout` would
    /// remove).
    pub async fn has_token(&self) -> bool {
        let _renewing = self.renew_lock.lock().await;
        self.load_cache_once();
        let st = self.state();
        st.token.is_some() || st.had_token
    }

    /// Replaces the current token (e.g. one obtained out of band) and caches it.
    pub async fn set_token(&self, token: Token) {
        let _renewing = self.renew_lock.lock().await;
        self.state().cache_checked = true;
        let _ = self.record(Ok(token));
    }

    /// Forgets the token here and in the cache.
    pub async fn logout(&self) -> Result<()> {
        let _renewing = self.renew_lock.lock().await;
        {
            let mut st = self.state();
            st.token = None;
            st.obtained_at = None;
            st.cache_checked = true;
            st.last_failure = None;
        }
        if let (Some(cache), Some(id)) = (&self.cache, &self.cache_identity) {
            cache.delete(self.ctx.endpoint.as_str(), id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts calls; hands out `tok-N` tokens that live `ttl` seconds (negative: already
    /// expired) with refresh token `ref-N` when `with_refresh`.
    struct Counting {
        authenticate: AtomicUsize,
        refresh: AtomicUsize,
        ttl: i64,
        with_refresh: bool,
        /// Refresh responses omit the refresh token (the manager must keep the old one).
        refresh_omits_rt: bool,
        fail: bool,
        identity: Option<String>,
    }

    impl Counting {
        fn new(ttl: i64) -> Self {
            Counting {
                authenticate: AtomicUsize::new(0),
                refresh: AtomicUsize::new(0),
                ttl,
                with_refresh: false,
                refresh_omits_rt: false,
                fail: false,
                identity: None,
            }
        }
        fn token(&self, n: usize, rt: bool) -> Token {
            Token {
                access_token: Secret::new(format!("tok-{n}")),
                refresh_token: rt.then(|| Secret::new(format!("ref-{n}"))),
                expires_at: Some(Utc::now() + chrono::Duration::seconds(self.ttl)),
            }
        }
        fn calls(&self) -> (usize, usize) {
            (
                self.authenticate.load(Ordering::SeqCst),
                self.refresh.load(Ordering::SeqCst),
            )
        }
    }

    #[async_trait::async_trait]
    impl Authenticator for Counting {
        fn name(&self) -> &'static str {
            "counting"
        }
        fn cache_identity(&self) -> Option<String> {
            self.identity.clone()
        }
        async fn authenticate(&self, _ctx: &AuthContext) -> Result<Token> {
            let n = self.authenticate.fetch_add(1, Ordering::SeqCst) + 1;
            // Yield so other tasks pile up behind the lock while this one is "on the network".
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            if self.fail {
                return Err(ClientError::Auth("the IdP said no".into()));
            }
            Ok(self.token(n, self.with_refresh))
        }
        async fn refresh(&self, _ctx: &AuthContext, current: &Token) -> Result<Option<Token>> {
            assert!(current.refresh_token.is_some());
            let n = self.refresh.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            Ok(Some(self.token(100 + n, !self.refresh_omits_rt)))
        }
    }

    fn ctx() -> AuthContext {
        AuthContext::new(
            reqwest::Client::new(),
            url::Url::parse("http://127.0.0.1:9").unwrap(),
        )
    }

    fn expired(rt: Option<&str>) -> Token {
        Token {
            access_token: Secret::new("old"),
            refresh_token: rt.map(Secret::new),
            expires_at: Some(Utc::now() - chrono::Duration::seconds(5)),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn thousand_callers_one_authenticate() {
        let auth = Arc::new(Counting::new(3600));
        let m = Arc::new(TokenManager::new(auth.clone(), ctx(), None));
        m.set_token(expired(None)).await;
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let m = m.clone();
                tokio::spawn(async move { m.authorization().await.unwrap() })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), "Bearer tok-1");
        }
        assert_eq!(auth.calls(), (1, 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hundred_rejections_one_refresh() {
        let mut a = Counting::new(3600);
        a.with_refresh = true;
        let auth = Arc::new(a);
        let m = Arc::new(TokenManager::new(auth.clone(), ctx(), None));
        let first = m.authorization().await.unwrap();
        assert_eq!(first, "Bearer tok-1");
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let (m, rejected) = (m.clone(), first.clone());
                tokio::spawn(async move { m.on_unauthorized(&rejected).await.unwrap() })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), "Bearer tok-101");
        }
        assert_eq!(auth.calls(), (1, 1));
        // A late rejection of the old token does not refresh again.
        assert_eq!(m.on_unauthorized(&first).await.unwrap(), "Bearer tok-101");
        assert_eq!(auth.calls(), (1, 1));
    }

    #[tokio::test]
    async fn refresh_keeps_old_refresh_token_and_proactive_margin() {
        let mut a = Counting::new(30); // lives 30 s: inside the 60 s margin from the start
        a.with_refresh = true;
        a.refresh_omits_rt = true;
        let auth = Arc::new(a);
        let m = TokenManager::new(auth.clone(), ctx(), None);
        // A short-lived fresh token is not renewed on every call.
        assert_eq!(m.authorization().await.unwrap(), "Bearer tok-1");
        assert_eq!(m.authorization().await.unwrap(), "Bearer tok-1");
        assert_eq!(auth.calls(), (1, 0));

        // Near expiry (cached-style token, no obtained_at): refreshed proactively.
        m.set_token(Token {
            access_token: Secret::new("near"),
            refresh_token: Some(Secret::new("rt-keep")),
            expires_at: Some(Utc::now() + chrono::Duration::seconds(30)),
        })
        .await;
        m.state().obtained_at = None;
        assert_eq!(m.authorization().await.unwrap(), "Bearer tok-101");
        assert_eq!(auth.calls(), (1, 1));
        let cur = m.current_token().await.unwrap();
        assert_eq!(cur.refresh_token.unwrap().expose(), "rt-keep");
    }

    #[tokio::test]
    async fn failures_are_returned_and_shared() {
        let mut a = Counting::new(3600);
        a.fail = true;
        let auth = Arc::new(a);
        let m = Arc::new(TokenManager::new(auth.clone(), ctx(), None));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let m = m.clone();
                tokio::spawn(async move { m.authorization().await })
            })
            .collect();
        for t in tasks {
            let e = t.await.unwrap().unwrap_err();
            assert!(e.to_string().contains("the IdP said no"), "{e}");
        }
        // Callers that waited on the failed attempt shared its error instead of retrying.
        assert!(auth.calls().0 < 20, "{:?}", auth.calls());
        // A later call tries again.
        let before = auth.calls().0;
        assert!(m.authorization().await.is_err());
        assert_eq!(auth.calls().0, before + 1);
    }

    #[tokio::test]
    async fn cache_load_save_and_logout() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Arc::new(TokenCache::new(dir.path().join("tokens.json"), false));
        let endpoint = ctx().endpoint.to_string();
        let mut a = Counting::new(3600);
        a.identity = Some("me".into());
        let auth = Arc::new(a);

        // Saved after authenticate.
        let m = TokenManager::new(auth.clone(), ctx(), Some(cache.clone()));
        assert_eq!(m.authorization().await.unwrap(), "Bearer tok-1");
        assert_eq!(
            cache.load(&endpoint, "me").unwrap().access_token.expose(),
            "tok-1"
        );

        // A new manager starts from the cache.
        let m2 = TokenManager::new(auth.clone(), ctx(), Some(cache.clone()));
        assert_eq!(m2.authorization().await.unwrap(), "Bearer tok-1");
        assert_eq!(auth.calls(), (1, 0));

        // Expired without a refresh token: skipped.
        cache.store(&endpoint, "me", &expired(None));
        let m3 = TokenManager::new(auth.clone(), ctx(), Some(cache.clone()));
        assert_eq!(m3.authorization().await.unwrap(), "Bearer tok-2");

        // Expired with a refresh token: used for a refresh.
        cache.store(&endpoint, "me", &expired(Some("r")));
        let m4 = TokenManager::new(auth.clone(), ctx(), Some(cache.clone()));
        assert_eq!(m4.authorization().await.unwrap(), "Bearer tok-101");
        assert_eq!(auth.calls(), (2, 1));
        assert_eq!(
            cache.load(&endpoint, "me").unwrap().access_token.expose(),
            "tok-101"
        );

        m4.logout().await.unwrap();
        assert!(cache.load(&endpoint, "me").is_none());
        assert!(m4.current_token().await.is_none());
    }

    /// Managers with their own `TokenCache` over one file stand in for separate processes
    /// (the renewal lock is taken per open file, so they exclude each other like processes).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn processes_sharing_a_cache_renew_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens.json");
        let endpoint = ctx().endpoint.to_string();
        let mut a = Counting::new(3600);
        a.identity = Some("me".into());
        a.with_refresh = true;
        let auth = Arc::new(a);
        TokenCache::new(&file, false).store(&endpoint, "me", &expired(Some("r")));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let cache = Arc::new(TokenCache::new(&file, false));
                let m = TokenManager::new(auth.clone(), ctx(), Some(cache));
                tokio::spawn(async move { m.authorization().await.unwrap() })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), "Bearer tok-101");
        }
        assert_eq!(auth.calls(), (0, 1), "one refresh between them");
        // The lock is released: the next renewal goes ahead.
        let cache = Arc::new(TokenCache::new(&file, false));
        cache.store(&endpoint, "me", &expired(Some("r2")));
        let m = TokenManager::new(auth.clone(), ctx(), Some(cache.clone()));
        assert_eq!(m.authorization().await.unwrap(), "Bearer tok-102");
        assert!(cache.try_lock_renewal().unwrap().is_some());
    }

    struct Basic;
    #[async_trait::async_trait]
    impl Authenticator for Basic {
        fn name(&self) -> &'static str {
            "basic"
        }
        fn cache_identity(&self) -> Option<String> {
            Some("AKIA".into())
        }
        async fn authenticate(&self, _ctx: &AuthContext) -> Result<Token> {
            unreachable!("Basic mode never authenticates")
        }
        fn basic_credentials(&self) -> Option<(String, Secret)> {
            Some(("AKIA".into(), Secret::new("s")))
        }
    }

    #[tokio::test]
    async fn basic_mode() {
        let m = TokenManager::new(Arc::new(Basic), ctx(), None);
        let h = m.authorization().await.unwrap();
        assert_eq!(
            h,
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("AKIA:s")
            )
        );
        assert_eq!(m.on_unauthorized(&h).await.unwrap(), h);
        assert!(m.login().await.is_err());
    }

    #[test]
    fn url_joining_keeps_prefixes() {
        let base = url::Url::parse("https://h/sluice").unwrap();
        assert_eq!(
            join_path(&base, "/v1/config?warehouse=a").unwrap().as_str(),
            "https://h/sluice/v1/config?warehouse=a"
        );
        let base = url::Url::parse("https://h/").unwrap();
        assert_eq!(join_path(&base, "v1/x").unwrap().as_str(), "https://h/v1/x");
        assert_eq!(
            join_segments(&base, &["v1", "p", "namespaces", "a\u{1f}b/c"]).as_str(),
            "https://h/v1/p/namespaces/a%1Fb%2Fc"
        );
    }
}
