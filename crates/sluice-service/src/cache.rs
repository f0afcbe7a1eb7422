//! The one shape of this crate's keyed caches (effective policies, vended credentials, LDAP
//! Basic logins): a bounded moka map whose entries are refreshed by one caller per key at a
//! time. Each user says only what "still fresh" means for its values; failures are never
//! cached, so the next caller tries again. Single cached values (the storage crate's cloud
//! tokens) use `sluice_storage`'s `Refreshing`, the same contract for one slot.

use moka::future::Cache;
use moka::ops::compute::Op;
use std::future::Future;
use std::hash::Hash;
use std::time::Duration;

pub(crate) struct KeyedCache<K, V> {
    entries: Cache<K, V>,
}

impl<K, V> KeyedCache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// At most `capacity` entries (least useful evicted first), each dropped `ttl` after it
    /// was written when a TTL is given.
    pub(crate) fn new(capacity: u64, ttl: Option<Duration>) -> Self {
        let mut b = Cache::builder()
            .max_capacity(capacity)
            .support_invalidation_closures();
        if let Some(ttl) = ttl {
            b = b.time_to_live(ttl);
        }
        KeyedCache { entries: b.build() }
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
        // Hits take moka's read path; its compute path (a per-key lock and a write-log
        // entry) cost more than the rest of a cached request together.
        if let Some(v) = self.entries.get(&key).await.filter(|v| fresh(v)) {
            return Ok(v);
        }
        let mut out: Option<V> = None;
        let slot = &mut out;
        self.entries
            .entry(key)
            .and_try_compute_with(|current| {
                let kept = current.map(|e| e.into_value()).filter(|v| fresh(v));
                async move {
                    if let Some(v) = kept {
                        *slot = Some(v);
                        return Ok(Op::Nop);
                    }
                    let v = refresh().await?;
                    *slot = Some(v.clone());
                    Ok(Op::Put(v))
                }
            })
            .await?;
        // moka runs the compute closure exactly once per call, and both of its paths fill
        // the slot before returning Ok.
        Ok(out.expect("the compute closure always runs"))
    }

    pub(crate) fn clear(&self) {
        self.entries.invalidate_all();
    }

    /// Drops the entries whose key matches (e.g. everything of one warehouse).
    pub(crate) fn forget_if(&self, pred: impl Fn(&K) -> bool + Send + Sync + 'static) {
        // Only fails when closures were not enabled at build time, which `new` always does.
        let _ = self.entries.invalidate_entries_if(move |k, _| pred(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn single_flight_per_key_fresh_test_and_no_cached_errors() {
        let cache = Arc::new(KeyedCache::<u32, u32>::new(100, None));
        let e = cache
            .get_or_refresh(1, |_| true, || async { Err::<u32, _>("down") })
            .await;
        assert_eq!(e, Err("down"));
        let calls = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (cache, calls) = (cache.clone(), calls.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_refresh(
                            1,
                            |_| true,
                            || async {
                                calls.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                Ok::<_, ()>(7)
                            },
                        )
                        .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok(7));
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
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
}
