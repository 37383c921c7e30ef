//! Connections to upstreams: HTTP/1.1 over TCP, opened with a timeout and
//! kept for reuse in a pool per thread and per upstream address.
//!
//! Two ways to send, chosen per request by [`send`]:
//! - [`lean`]: GET, HEAD and OPTIONS without a body, which is nearly every
//!   page, asset and poll. The exchange runs inside the request's own task:
//!   the head is written straight to the socket and the response read from
//!   it, with no connection task, channel or wake-up in between.
//! - [`full`]: everything else (request bodies, upgrades), on hyper's
//!   client connection, which streams an upload while reading the response.
//!
//! The pools are per thread because a connection belongs to the thread
//! that opened it: a request that reuses a connection of its own thread
//! wakes nothing on another thread. A connection goes back to its pool only
//! once its response has been read to the end; an upgraded connection, a
//! response cut short or a connection the upstream closed is never reused.

mod chunked;
mod full;
mod lean;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::Authority;
use http::{Method, Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::net::TcpStream;

use crate::forward::{BoxError, ProxyBody};
pub(crate) use full::Reuse;

/// How long an unused connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Unused connections kept per upstream (per thread and pool).
const MAX_IDLE_PER_UPSTREAM: usize = 256;
/// How often a pool drops expired and closed connections of upstreams
/// no longer asked for.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// FNV-1a: the pool's keys are short and not chosen by clients, so a fast
/// hash beats the default SipHash (measured: the legacy client's SipHash
/// of its pool key was 4% of the proxy's instructions).
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A connection a pool can keep.
trait Pooled {
    /// Whether it can take a request now; one that cannot has closed.
    fn usable(&mut self) -> bool;
}

struct Idle<C> {
    conn: C,
    since: Instant,
}

/// Unused connections by upstream address.
struct Pool<C> {
    idle: HashMap<Box<str>, Vec<Idle<C>>, BuildHasherDefault<Fnv>>,
    swept: Option<Instant>,
}

impl<C> Default for Pool<C> {
    fn default() -> Self {
        Pool {
            idle: HashMap::default(),
            swept: None,
        }
    }
}

impl<C: Pooled> Pool<C> {
    /// The most recently pooled connection to `authority` that can take a
    /// request now.
    fn checkout(&mut self, authority: &str, now: Instant) -> Option<C> {
        let list = self.idle.get_mut(authority)?;
        while let Some(mut c) = list.pop() {
            if now.duration_since(c.since) < IDLE_TIMEOUT && c.conn.usable() {
                return Some(c.conn);
            }
        }
        None
    }

    /// Keeps `conn`, which its owner found able to take a request.
    fn put(&mut self, authority: &str, conn: C, now: Instant) {
        if self
            .swept
            .is_none_or(|t| now.duration_since(t) >= SWEEP_EVERY)
        {
            self.swept = Some(now);
            self.idle.retain(|_, list| {
                list.retain_mut(|c| now.duration_since(c.since) < IDLE_TIMEOUT && c.conn.usable());
                !list.is_empty()
            });
        }
        let list = match self.idle.get_mut(authority) {
            Some(l) => l,
            None => self.idle.entry(authority.into()).or_default(),
        };
        if list.len() < MAX_IDLE_PER_UPSTREAM {
            list.push(Idle { conn, since: now });
        }
    }
}

/// Why a request could not be exchanged with an upstream.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No connection could be opened: the upstream is down or unreachable.
    Connect(String),
    /// The connection failed during the exchange (hyper's client).
    Http(hyper::Error),
    /// The connection failed, or the app answered what is not HTTP/1.1
    /// (the lean client).
    Protocol(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(why) | SendError::Protocol(why) => f.write_str(why),
            SendError::Http(e) => {
                write!(f, "{e}")?;
                let mut cur = std::error::Error::source(e);
                while let Some(err) = cur {
                    write!(f, ": {err}")?;
                    cur = err.source();
                }
                Ok(())
            }
        }
    }
}

/// Opens a TCP connection to `authority` (`host:port`) within `timeout`.
async fn connect_tcp(authority: &Authority, timeout: Duration) -> Result<TcpStream, SendError> {
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = authority.port_u16().unwrap_or(80);
    let stream = match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(SendError::Connect(format!("connect to {authority}: {e}"))),
        Err(_) => {
            return Err(SendError::Connect(format!(
                "connect to {authority} timed out after {timeout:?}"
            )));
        }
    };
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Whether `req` may take the lean path: a method whose request carries
/// no body by its nature and is safe to send again when a pooled
/// connection proves closed, no body, and no protocol switch.
fn takes_lean_path(req: &Request<ProxyBody>, upgrade: bool) -> bool {
    !upgrade
        && matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        && req.body().is_end_stream()
}

/// Sends `req` (origin-form target, `Host` set, hop-by-hop headers gone)
/// to `authority`, on a pooled connection when one is free, else on a new
/// one. Returns the response and, for hyper's client, the connection to
/// release when the response body has ended (a lean response body pools
/// its connection itself).
pub(crate) async fn send(
    authority: &Authority,
    req: Request<ProxyBody>,
    upgrade: bool,
    connect_timeout: Duration,
) -> Result<(Response<UpstreamBody>, Option<Reuse>), SendError> {
    if takes_lean_path(&req, upgrade) {
        let (parts, _) = req.into_parts();
        let resp = lean::send(authority, &parts, connect_timeout).await?;
        return Ok((resp.map(UpstreamBody::Lean), None));
    }
    // Boxed so that the lean path's future, which every visit moves
    // around, does not carry room for this one.
    let (resp, reuse) = Box::pin(full::send(authority, req, connect_timeout)).await?;
    Ok((resp.map(UpstreamBody::Full), Some(reuse)))
}

/// A response body from an upstream, from either client.
#[derive(Debug)]
pub(crate) enum UpstreamBody {
    /// From hyper's client connection.
    Full(Incoming),
    /// Read by the lean client.
    Lean(lean::LeanBody),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpstreamBody::Full(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            UpstreamBody::Lean(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Full(b) => b.is_end_stream(),
            UpstreamBody::Lean(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Full(b) => b.size_hint(),
            UpstreamBody::Lean(b) => b.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_the_reference_values() {
        let mut h = Fnv::default();
        h.write(b"a");
        assert_eq!(h.finish(), 0xaf63_dc4c_8601_ec8c);
        let mut h = Fnv::default();
        h.write(b"foobar");
        assert_eq!(h.finish(), 0x8594_4171_f739_67e8);
    }

    struct Fake(bool);
    impl Pooled for Fake {
        fn usable(&mut self) -> bool {
            self.0
        }
    }

    #[test]
    fn the_pool_hands_out_live_connections_newest_first_and_keeps_a_bound() {
        let now = Instant::now();
        let mut pool = Pool::default();
        pool.put("a:1", Fake(true), now);
        pool.put("a:1", Fake(false), now);
        assert!(
            pool.checkout("a:1", now).is_some(),
            "a closed one is passed over"
        );
        assert!(pool.checkout("a:1", now).is_none());
        assert!(pool.checkout("b:1", now).is_none());
        pool.put("a:1", Fake(true), now);
        assert!(
            pool.checkout("a:1", now + IDLE_TIMEOUT).is_none(),
            "expired"
        );
        for _ in 0..MAX_IDLE_PER_UPSTREAM + 5 {
            pool.put("a:1", Fake(true), now);
        }
        assert_eq!(pool.idle["a:1"].len(), MAX_IDLE_PER_UPSTREAM);
    }
}
