//! The one shape of every credential and token cache in this crate: a single value, reused
//! while the caller's freshness test (relative to the value's own expiry) passes, refreshed
//! by one caller at a time.

use std::future::Future;

use tokio::sync::Mutex;

/// A cached value with single-flight refresh. The lock is held across the refresh, so
/// concurrent callers that find the value stale wait for one refresh instead of each making
/// their own request; a failed refresh caches nothing and the next caller tries again.
pub(crate) struct Refreshing<T>(Mutex<Option<T>>);

impl<T> Default for Refreshing<T> {
    fn default() -> Self {
        Refreshing(Mutex::new(None))
    }
}

impl<T: Clone> Refreshing<T> {
    /// The cached value if `fresh` accepts it, otherwise the result of `refresh` (cached
    /// when it succeeds).
    pub(crate) async fn get<E, F, Fut>(
        &self,
        fresh: impl Fn(&T) -> bool,
        refresh: F,
    ) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut slot = self.0.lock().await;
        if let Some(v) = slot.as_ref().filter(|v| fresh(v)) {
            return Ok(v.clone());
        }
        let v = refresh().await?;
        *slot = Some(v.clone());
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn single_flight_and_no_cached_errors() {
        let cache = Arc::new(Refreshing::<u32>::default());
        let calls = Arc::new(AtomicUsize::new(0));
        // A failure is returned and not kept.
        let e = cache
            .get(|_| true, || async { Err::<u32, _>("down") })
            .await;
        assert_eq!(e, Err("down"));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (cache, calls) = (cache.clone(), calls.clone());
                tokio::spawn(async move {
                    cache
                        .get(
                            |_| true,
                            || async {
                                calls.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
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
        // Stale: refreshed again.
        let v = cache.get(|_| false, || async { Ok::<_, ()>(8) }).await;
        assert_eq!(v, Ok(8));
    }
}
