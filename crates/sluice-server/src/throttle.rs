//! Failed-authentication throttling: one token bucket per source address and one per
//! credential id (access key id, LDAP user name). Each failure takes a token; a bucket
//! refills at `per_minute` tokens a minute up to `per_minute`. While either bucket of a
//! request is empty the request is refused with 429 before any credential is checked, so
//! guessing is slowed to the refill rate whichever the attacker varies.
//!
//! Behind a reverse proxy every request has the proxy's address: the per-source limit then
//! applies to everyone together (size it accordingly, or turn throttling off with 0).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Beyond this many tracked sources (or ids) full buckets are forgotten, and if that is not
/// enough all of them: memory stays bounded when an attacker sprays addresses or ids.
const MAX_ENTRIES: usize = 100_000;

struct Bucket {
    tokens: f64,
    updated: Instant,
}

struct Buckets<K> {
    map: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq> Buckets<K> {
    fn new() -> Self {
        Buckets {
            map: Mutex::new(HashMap::new()),
        }
    }

    fn refill(b: &mut Bucket, now: Instant, capacity: f64) {
        let rate = capacity / 60.0;
        b.tokens = (b.tokens + now.saturating_duration_since(b.updated).as_secs_f64() * rate)
            .min(capacity);
        b.updated = now;
    }

    /// Time until the next attempt is allowed, if the bucket is empty.
    fn wait(&self, key: &K, capacity: f64, now: Instant) -> Option<Duration> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let b = map.get_mut(key)?;
        Self::refill(b, now, capacity);
        (b.tokens < 1.0).then(|| Duration::from_secs_f64((1.0 - b.tokens) * 60.0 / capacity))
    }

    fn take(&self, key: K, capacity: f64, now: Instant) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
            map.retain(|_, b| {
                Self::refill(b, now, capacity);
                b.tokens < capacity
            });
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        let b = map.entry(key).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        Self::refill(b, now, capacity);
        b.tokens = (b.tokens - 1.0).max(0.0);
    }
}

/// Shared by every request of one server (`AppState::throttle`).
pub struct AuthThrottle {
    per_minute: u32,
    sources: Buckets<IpAddr>,
    ids: Buckets<String>,
}

impl AuthThrottle {
    /// `per_minute` failures per source and per id (0 = never throttle).
    pub fn new(per_minute: u32) -> Self {
        AuthThrottle {
            per_minute,
            sources: Buckets::new(),
            ids: Buckets::new(),
        }
    }

    /// IPv6 clients usually hold a whole /64, so that is what counts as one source.
    fn source_key(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let s = v6.segments();
                    IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
                }
            },
            v4 => v4,
        }
    }

    /// How long the caller must wait, if this source or id has no attempts left.
    pub fn check(&self, source: Option<IpAddr>, id: Option<&str>) -> Option<Duration> {
        if self.per_minute == 0 {
            return None;
        }
        let cap = f64::from(self.per_minute);
        let now = Instant::now();
        let a = source.and_then(|ip| self.sources.wait(&Self::source_key(ip), cap, now));
        let b = id.and_then(|id| self.ids.wait(&id.to_string(), cap, now));
        a.max(b)
    }

    /// Counts one failed authentication against the source and the id.
    pub fn record_failure(&self, source: Option<IpAddr>, id: Option<&str>) {
        if self.per_minute == 0 {
            return;
        }
        let cap = f64::from(self.per_minute);
        let now = Instant::now();
        if let Some(ip) = source {
            self.sources.take(Self::source_key(ip), cap, now);
        }
        if let Some(id) = id {
            self.ids.take(id.to_string(), cap, now);
        }
    }
}

/// The id as it may appear in a log line: access key ids as they are, anything else (a user
/// name, or a secret pasted into the id field by mistake) only by length.
/// The console's login form shares the API's buckets.
impl sluice_console::LoginThrottle for AuthThrottle {
    fn check(&self, source: Option<IpAddr>, id: Option<&str>) -> Option<Duration> {
        AuthThrottle::check(self, source, id)
    }
    fn record_failure(&self, source: Option<IpAddr>, id: Option<&str>) {
        AuthThrottle::record_failure(self, source, id)
    }
}

pub fn loggable_id(id: Option<&str>) -> String {
    match id {
        None => "-".into(),
        Some(id) if sluice_core::AccessKeyId::parse(id).is_ok() => id.to_string(),
        Some(id) => format!("<{} characters>", id.chars().count()),
    }
}

/// Seconds for a `Retry-After` header (at least 1).
pub fn retry_after_secs(d: Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_failures_then_blocked_then_refilled() {
        let t = AuthThrottle::new(3);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert!(t.check(Some(ip), Some("k")).is_none());
            t.record_failure(Some(ip), Some("k"));
        }
        let wait = t.check(Some(ip), None).expect("source blocked");
        assert!(wait <= Duration::from_secs(20), "{wait:?}");
        assert!(
            t.check(None, Some("k")).is_some(),
            "id blocked from any source"
        );
        assert!(t
            .check(Some("192.0.2.2".parse().unwrap()), Some("other"))
            .is_none());
    }

    #[test]
    fn zero_disables() {
        let t = AuthThrottle::new(0);
        for _ in 0..100 {
            t.record_failure(Some("192.0.2.1".parse().unwrap()), Some("k"));
        }
        assert!(t
            .check(Some("192.0.2.1".parse().unwrap()), Some("k"))
            .is_none());
    }

    #[test]
    fn ipv6_counts_per_64() {
        let t = AuthThrottle::new(1);
        t.record_failure(Some("2001:db8::1".parse().unwrap()), None);
        assert!(t
            .check(Some("2001:db8::ffff".parse().unwrap()), None)
            .is_some());
        assert!(t
            .check(Some("2001:db8:0:1::1".parse().unwrap()), None)
            .is_none());
    }
}
