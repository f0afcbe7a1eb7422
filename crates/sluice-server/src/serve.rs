//! The HTTP/1.1 listener. hyper is driven directly instead of through `axum::serve`, which
//! has no header-read or idle timeout and no connection cap: a client trickling header
//! lines, or one that keeps an idle keep-alive connection open, would hold a connection
//! (and a task) forever.

use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use sluice_storage::sendable::{self, FileSlice};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::ready;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::Interest;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Per-connection limits (config `header_read_timeout_seconds`, `idle_timeout_seconds`,
/// `max_connections`).
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// From the first byte of a request head to its last.
    pub header_read_timeout: Duration,
    /// No request in flight and no byte read or written for this long closes the
    /// connection (keep-alive idle, and clients that stop reading a response).
    pub idle_timeout: Duration,
    /// Connections beyond this wait in the listen backlog until one closes.
    pub max_connections: usize,
}

/// hyper refuses heads with more header lines than this with its own (empty) 431; the
/// router's stricter limits (app.rs) answer in the JSON error model below it.
const HYPER_MAX_HEADERS: usize = 256;

const NONE: u64 = u64::MAX;

/// What one connection is doing, shared by its I/O wrapper, its service and its watchdog.
struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds since `epoch` of the last byte read or written, or of the end of the
    /// last request.
    last_io: AtomicU64,
    /// Milliseconds since `epoch` of the first byte of a request head not yet handed to
    /// the router (`NONE` when there is none).
    head_started: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_io: AtomicU64::new(0),
            head_started: AtomicU64::new(NONE),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn on_read(&self) {
        let now = self.now_ms();
        self.last_io.store(now, Ordering::Relaxed);
        // Bytes while no request is in flight begin the next head.
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let _ =
                self.head_started
                    .compare_exchange(NONE, now, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    fn on_write(&self) {
        self.last_io.store(self.now_ms(), Ordering::Relaxed);
    }

    /// When the connection is to be dropped: `None` while a request is in flight (the
    /// request timeout covers it).
    fn deadline(&self, limits: &ConnectionLimits) -> Option<u64> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let head = self.head_started.load(Ordering::Acquire);
        Some(if head != NONE {
            head + limits.header_read_timeout.as_millis() as u64
        } else {
            self.last_io.load(Ordering::Relaxed) + limits.idle_timeout.as_millis() as u64
        })
    }
}

/// Counts a request in flight from its dispatch until its response (or the connection) is
/// dropped.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(a: &Arc<Activity>) -> Self {
        a.in_flight.fetch_add(1, Ordering::AcqRel);
        a.head_started.store(NONE, Ordering::Release);
        InFlight(a.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.last_io.store(self.0.now_ms(), Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Resolves when the connection has broken one of its limits. Requests and reads never
/// wake it (that cost a task wake-up and a timer update per request); it looks at the
/// connection at least every quarter header-read timeout instead, so a head that starts
/// while it sleeps is still timed out from its first byte.
async fn watchdog(a: Arc<Activity>, limits: ConnectionLimits) {
    let look_every = (limits.header_read_timeout / 4)
        .min(limits.idle_timeout)
        .max(Duration::from_millis(50));
    loop {
        let wait = match a.deadline(&limits) {
            // A request is running: the request timeout covers it.
            None => look_every,
            Some(deadline) => {
                let now = a.now_ms();
                if now >= deadline {
                    return;
                }
                Duration::from_millis(deadline - now).min(look_every)
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// The TCP stream, reporting reads and writes to the connection's `Activity`, and sending
/// body chunks that are regions of a local file (`sluice_storage::sendable`: the S3
/// gateway's GetObject of a file warehouse) with `sendfile(2)`, so those bytes are never
/// copied through user space.
struct TrackedIo {
    inner: TcpStream,
    activity: Arc<Activity>,
}

#[cfg(target_os = "linux")]
/// One `sendfile` call sends at most this much (Linux's own cap is just under 2 GiB).
const MAX_SENDFILE: usize = 1 << 30;

impl TrackedIo {
    fn poll_sendfile(&self, cx: &mut Context<'_>, s: &FileSlice) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.inner.poll_write_ready(cx))?;
            let mut offset = s.offset;
            let sent = self.inner.try_io(Interest::WRITABLE, || {
                send_file(&self.inner, s, &mut offset)
            });
            match sent {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                // 0 for a file cut short under the response: hyper then fails the connection
                // (WriteZero), as a failed read would.
                r => return Poll::Ready(r),
            }
        }
    }

    fn wrote(&self, r: &Poll<io::Result<usize>>) {
        if matches!(r, Poll::Ready(Ok(n)) if *n > 0) {
            self.activity.on_write();
        }
    }
}

#[cfg(target_os = "linux")]
fn send_file(sock: &TcpStream, s: &FileSlice, offset: &mut u64) -> io::Result<usize> {
    rustix::fs::sendfile(sock, &*s.file, Some(offset), s.len.min(MAX_SENDFILE))
        .map_err(io::Error::from)
}

/// `sluice_storage::sendable` makes no regions on other systems.
#[cfg(not(target_os = "linux"))]
fn send_file(_: &TcpStream, _: &FileSlice, _: &mut u64) -> io::Result<usize> {
    Err(io::ErrorKind::Unsupported.into())
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        r
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = match sendable::file_slice(buf) {
            Some(s) => self.poll_sendfile(cx, &s),
            None => Pin::new(&mut self.inner).poll_write(cx, buf),
        };
        self.wrote(&r);
        r
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // hyper queues body chunks as they are (the stream is vectored), so a region shows
        // up as one slice; what precedes it in the batch (the response head) goes first.
        let region = bufs
            .iter()
            .enumerate()
            .find_map(|(i, b)| sendable::file_slice(b).map(|s| (i, s)));
        let r = match region {
            Some((0, s)) => self.poll_sendfile(cx, &s),
            Some((i, _)) => Pin::new(&mut self.inner).poll_write_vectored(cx, &bufs[..i]),
            None => Pin::new(&mut self.inner).poll_write_vectored(cx, bufs),
        };
        self.wrote(&r);
        r
    }
    fn is_write_vectored(&self) -> bool {
        // Also what keeps hyper from copying body chunks into its own buffer.
        true
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Whether the client waits for `100 Continue` before it sends the request body.
fn expects_continue(req: &hyper::Request<Incoming>) -> bool {
    req.headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
        && !hyper::body::Body::is_end_stream(req.body())
}

/// A client that sent `Expect: 100-continue` and got a final answer instead of `100
/// Continue` may leave the body unsent (botocore does) and reuse the connection: the
/// server cannot tell the body's bytes from the next request's, and would read the start of
/// that request as the rest of this body. RFC 9110 §10.1.1 has the server say it will
/// close instead; hyper then closes after the response.
fn close_after(resp: &mut axum::response::Response) {
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
}

/// A request body that notes when it has been read to its end.
struct NotesEnd<B> {
    inner: B,
    read: Arc<AtomicBool>,
}

impl<B: hyper::body::Body + Unpin> hyper::body::Body for NotesEnd<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(r, Poll::Ready(None)) {
            self.read.store(true, Ordering::Release);
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, lets
/// in-flight requests finish and closes idle connections. Each request carries
/// `ConnectInfo<SocketAddr>` with the peer address.
pub async fn serve<S>(
    listener: TcpListener,
    router: S,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()>
where
    S: tower::Service<
            axum::http::Request<axum::body::Body>,
            Response = axum::response::Response,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    // The watchdog times heads and idle connections. hyper's own head timeout would arm and
    // cancel a timer for every request on a keep-alive connection; a head whose bytes all
    // came while the previous request ran is bounded by the idle timeout instead.
    http.header_read_timeout(None)
        .max_headers(HYPER_MAX_HEADERS)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("the connection semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        activity.on_write();
        let io = TokioIo::new(TrackedIo {
            inner: stream,
            activity: activity.clone(),
        });
        let svc_activity = activity.clone();
        let router = router.clone();
        let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            let guard = InFlight::start(&svc_activity);
            req.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move {
                // Boxing the body here costs nothing extra: a router boxes any other type.
                let resp = if expects_continue(&req) {
                    let read = Arc::new(AtomicBool::new(false));
                    let req = req.map(|inner| {
                        axum::body::Body::new(NotesEnd {
                            inner,
                            read: read.clone(),
                        })
                    });
                    let mut resp = router.oneshot(req).await;
                    if let Ok(r) = &mut resp {
                        if !read.load(Ordering::Acquire) {
                            close_after(r);
                        }
                    }
                    resp
                } else {
                    router.oneshot(req.map(axum::body::Body::new)).await
                };
                drop(guard);
                resp
            }
        });
        let conn = graceful.watch(http.serve_connection(io, svc));
        tokio::spawn(async move {
            tokio::select! {
                r = conn => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, peer = %peer, "connection ended with an error");
                    }
                }
                _ = watchdog(activity, limits) => {
                    tracing::debug!(peer = %peer, "closing a slow or idle connection");
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
