//! The accept loop: axum's `serve`, plus what it leaves out and an outsider used
//! (issue: idle and half-sent connections were never closed, and one address could
//! hold as many as the process had file descriptors):
//! * a request's head must arrive within `header_read_timeout_secs`, and a kept-alive
//!   connection that sends nothing for as long is closed (hyper's timer; an open event
//!   stream is a response being written, not a head being read, so it stays);
//! * one client network (an address; an IPv6 /64) holds at most
//!   `max_connections_per_address` connections at once, and the server `max_connections`;
//!   further ones are closed as accepted. Trusted proxies are not counted per address;
//! * a client that reads nothing of an answer for `write_stall_timeout_secs` is
//!   disconnected (an answer nobody reads held its connection and buffers for ever).
//!
//! Graceful shutdown is axum's: stop accepting, let open requests finish.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// What one connection and one address may hold.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// Connections one address may hold open at once; 0: no limit.
    pub per_address: usize,
    /// Connections the server holds at once; 0: no limit.
    pub total: usize,
    /// Time for a request's head to arrive, and for an idle kept-alive connection.
    pub header_read: Duration,
    /// Time a write may wait on a client that reads nothing.
    pub write_stall: Duration,
    /// Addresses not counted (reverse proxies carry many clients).
    pub exempt: Vec<ipnet::IpNet>,
}

/// Open connections per address; a [`Held`] gives its place back when dropped.
#[derive(Default)]
struct OpenPerAddress(Mutex<HashMap<IpAddr, usize>>);

struct Held {
    open: Arc<OpenPerAddress>,
    ip: IpAddr,
}

impl OpenPerAddress {
    /// A place for one more connection from `ip`, unless it holds `limit` already.
    fn take(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<Held> {
        let mut open = self.0.lock().ok()?;
        let count = open.entry(ip).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(Held {
            open: self.clone(),
            ip,
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Ok(mut open) = self.open.0.lock()
            && let Some(count) = open.get_mut(&self.ip)
        {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets open requests
/// finish. Handlers see the peer as `ConnectInfo<SocketAddr>`, as with axum's serve.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let open = Arc::new(OpenPerAddress::default());
    let all = Arc::new(OpenPerAddress::default());
    let everyone = IpAddr::from([0, 0, 0, 0]);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    tokio::spawn(async move {
        shutdown.await;
        drop(stop_rx);
    });
    let (done_tx, done_rx) = tokio::sync::watch::channel(());
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: wait rather than spin, as axum does.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop_tx.closed() => break,
        };
        let in_total = if limits.total == 0 {
            None
        } else {
            match all.take(everyone, limits.total) {
                Some(h) => Some(h),
                None => {
                    tracing::warn!(%peer, "connection refused: max_connections reached");
                    drop(tcp);
                    continue;
                }
            }
        };
        let exempt = limits.exempt.iter().any(|net| net.contains(&peer.ip()));
        let held = if exempt || limits.per_address == 0 {
            None
        } else {
            // Counted per client network (an IPv6 /64), as every other budget is.
            match open.take(crate::auth::client_network(peer.ip()), limits.per_address) {
                Some(h) => Some(h),
                None => {
                    tracing::debug!(%peer, "connection refused: too many from this address");
                    drop(tcp);
                    continue;
                }
            }
        };
        // Answers are small and latency matters more than packet count.
        let _ = tcp.set_nodelay(true);
        let router = router.clone();
        let service = TowerToHyperService::new(tower::service_fn(
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                router.clone().oneshot(request.map(axum::body::Body::new))
            },
        ));
        let stop = stop_tx.clone();
        let done = done_rx.clone();
        let header_read = limits.header_read;
        let io = WriteDeadline::new(tcp, limits.write_stall);
        tokio::spawn(async move {
            let _held = (held, in_total);
            let _done = done;
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read)
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades();
            tokio::pin!(conn);
            let mut stopping = std::pin::pin!(stop.closed());
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::trace!(%peer, error = %e, "connection ended");
                        }
                        break;
                    }
                    _ = &mut stopping => conn.as_mut().graceful_shutdown(),
                }
            }
        });
    }
    drop(listener);
    drop(done_rx);
    // Every connection task holds a receiver: closed when the last one ends.
    done_tx.closed().await;
}

/// A connection whose writes fail once one has waited `limit` on a client reading
/// nothing; reads pass through.
struct WriteDeadline<T> {
    inner: T,
    limit: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> WriteDeadline<T> {
    fn new(inner: T, limit: Duration) -> Self {
        WriteDeadline {
            inner,
            limit,
            stalled: None,
        }
    }

    /// What a write that made progress (`Ready`) or did not (`Pending`) means: the
    /// stall's clock is reset, or runs, and past the limit the write fails.
    fn judge<R>(&mut self, cx: &mut Context<'_>, done: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if done.is_ready() {
            self.stalled = None;
            return done;
        }
        let limit = self.limit;
        let clock = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match clock.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing of the answer for write_stall_timeout_secs",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let done = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.judge(cx, done)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let done = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.judge(cx, done)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let done = Pin::new(&mut this.inner).poll_flush(cx);
        this.judge(cx, done)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let done = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.judge(cx, done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_its_limit_and_gets_places_back() {
        let open = Arc::new(OpenPerAddress::default());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let a = open.take(ip, 2).expect("first");
        let _b = open.take(ip, 2).expect("second");
        assert!(open.take(ip, 2).is_none(), "a third is refused");
        assert!(open.take(other, 2).is_some(), "others are not");
        drop(a);
        assert!(
            open.take(ip, 2).is_some(),
            "a place given back is taken again"
        );
    }
}
