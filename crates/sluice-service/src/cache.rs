//! The one shape of this crate's keyed caches (effective policies, vended credentials, LDAP
//! Basic logins, principals): a bounded map whose entries are refreshed by one caller per key
//! at a time. Each user says only what "still fresh" means for its values; failures are never
//! cached, so the next caller tries again. Single cached values (the storage crate's cloud
//! tokens) use `sluice_storage`'s `Refreshing`, the same contract for one slot.

use std::future::Future;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A `quick_cache` map: its hits are a shard read lock and a clone, which matters on the
/// paths every request takes (principals, policies, signing keys).
pub(crate) struct KeyedCache<K, V> {
    entries: quick_cache::sync::Cache<K, Written<V>>,
    ttl: Option<Duration>,
}

#[derive(Clone)]
struct Written<V> {
    value: V,
    at: Instant,
}

impl<K, V> KeyedCache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// At most `capacity` entries (the least useful evicted first), each dropped `ttl` after
    /// it was written when a TTL is given.
    pub(crate) fn new(capacity: u64, ttl: Option<Duration>) -> Self {
        KeyedCache {
            entries: quick_cache::sync::Cache::new(usize::try_from(capacity).unwrap_or(usize::MAX)),
            ttl,
        }
    }

    fn live(&self, w: &Written<V>, fresh: &impl Fn(&V) -> bool) -> bool {
        self.ttl.is_none_or(|ttl| w.at.elapsed() < ttl) && fresh(&w.value)
    }

    /// The cached value for `key` if `fresh` accepts it, otherwise `refresh`'s (cached when
    /// it succeeds). Concurrent callers for one key queue behind a single refresh (a caller
    /// that finds a fresh value does not wait).
    pub(crate) async fn get_or_refresh<E, F, Fut>(
        &self,
        key: K,
        fresh: impl Fn(&V) -> bool,
        refresh: F,
    ) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        loop {
            match self.entries.get_value_or_guard_async(&key).await {
                Ok(w) if self.live(&w, &fresh) => return Ok(w.value),
                // Stale: drop it (unless someone already replaced it) and queue again, so
                // that one caller refreshes while the others wait for its value.
                Ok(_) => {
                    self.entries.remove_if(&key, |w| !self.live(w, &fresh));
                }
                Err(guard) => {
                    // A failed refresh drops the guard: the next waiter refreshes itself.
                    let value = refresh().await?;
                    // Fails only when the slot was cleared meanwhile: the value is still this
                    // caller's answer, it just is not kept.
                    let _ = guard.insert(Written {
                        value: value.clone(),
                        at: Instant::now(),
                    });
                    return Ok(value);
                }
            }
        }
    }

    pub(crate) fn clear(&self) {
        self.entries.clear();
    }

    /// Drops the entries whose key matches (e.g. everything of one warehouse).
    pub(crate) fn forget_if(&self, pred: impl Fn(&K) -> bool + Send + Sync + 'static) {
        self.entries.retain(|k, _| !pred(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Eight callers at once for key 1, each taking `stale` (if any) as not fresh and
    /// refreshing slowly to `new`; each must get `new`. Returns how many refreshes ran.
    async fn eight_callers(
        cache: &Arc<KeyedCache<u32, u32>>,
        stale: Option<u32>,
        new: u32,
    ) -> usize {
        let calls = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (cache, calls) = (cache.clone(), calls.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_refresh(
                            1,
                            |v| Some(*v) != stale,
                            || async {
                                calls.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                Ok::<_, ()>(new)
                            },
                        )
                        .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok(new));
        }
        calls.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn single_flight_per_key_fresh_test_and_no_cached_errors() {
        let cache = Arc::new(KeyedCache::<u32, u32>::new(100, None));
        let e = cache
            .get_or_refresh(1, |_| true, || async { Err::<u32, _>("down") })
            .await;
        assert_eq!(e, Err("down"));
        assert_eq!(
            eight_callers(&cache, None, 7).await,
            1,
            "one refresh for eight callers"
        );
        // Another key is independent; a stale value is refreshed.
        assert_eq!(
            cache
                .get_or_refresh(2, |_| true, || async { Ok::<_, ()>(9) })
                .await,
            Ok(9)
        );
        assert_eq!(
            cache
                .get_or_refresh(1, |v| *v != 7, || async { Ok::<_, ()>(8) })
                .await,
            Ok(8)
        );
        cache.forget_if(|k| *k == 1);
        assert_eq!(
            cache
                .get_or_refresh(1, |_| true, || async { Ok::<_, ()>(10) })
                .await,
            Ok(10)
        );
        cache.clear();
        assert_eq!(
            cache
                .get_or_refresh(2, |_| true, || async { Ok::<_, ()>(11) })
                .await,
            Ok(11)
        );
    }

    #[tokio::test]
    async fn a_stale_value_is_refreshed_once_for_all_waiting_callers() {
        let cache = Arc::new(KeyedCache::<u32, u32>::new(100, None));
        let _ = cache
            .get_or_refresh(1, |_| true, || async { Ok::<_, ()>(7) })
            .await;
        assert_eq!(eight_callers(&cache, Some(7), 8).await, 1);
    }

    #[tokio::test]
    async fn entries_expire_after_the_ttl() {
        let cache = KeyedCache::<u32, u32>::new(100, Some(Duration::from_millis(50)));
        let get = |v: u32| cache.get_or_refresh(1, |_| true, move || async move { Ok::<_, ()>(v) });
        assert_eq!(get(1).await, Ok(1));
        assert_eq!(get(2).await, Ok(1), "still within the TTL");
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(get(3).await, Ok(3), "expired, refreshed");
    }
}
