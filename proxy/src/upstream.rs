//! Connections to upstreams: HTTP/1.1 over TCP, opened with a timeout and
//! kept for reuse in a pool per thread and per upstream address.
//!
//! The pool is per thread because a connection's task runs on the thread
//! that opened it: a request that reuses a connection of its own thread
//! wakes nothing on another thread. A connection goes back to the pool only
//! when its response has been read to the end (see [`Reuse`]); an upgraded
//! connection, a response cut short or a connection the upstream closed is
//! never reused. A request sent on a pooled connection that turns out to be
//! gone before the request was written is sent again on the next one.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::forward::ProxyBody;

/// The sending half of one upstream connection.
pub(crate) type Sender = http1::SendRequest<ProxyBody>;

/// How long an unused connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Unused connections kept per upstream (per thread).
const MAX_IDLE_PER_UPSTREAM: usize = 256;
/// How often the pool drops expired and closed connections of upstreams
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

struct Idle {
    sender: Sender,
    since: Instant,
}

#[derive(Default)]
struct Pool {
    idle: HashMap<Box<str>, Vec<Idle>, BuildHasherDefault<Fnv>>,
    swept: Option<Instant>,
}

impl Pool {
    /// A pooled connection that can take a request now (connections are
    /// pooled only once ready; one that is not any more has closed).
    fn checkout(&mut self, authority: &str, now: Instant) -> Option<Sender> {
        let list = self.idle.get_mut(authority)?;
        while let Some(c) = list.pop() {
            if c.sender.is_ready() && now.duration_since(c.since) < IDLE_TIMEOUT {
                return Some(c.sender);
            }
        }
        None
    }

    fn put(&mut self, authority: &str, sender: Sender, now: Instant) {
        if self
            .swept
            .is_none_or(|t| now.duration_since(t) >= SWEEP_EVERY)
        {
            self.swept = Some(now);
            self.idle.retain(|_, list| {
                list.retain(|c| c.sender.is_ready() && now.duration_since(c.since) < IDLE_TIMEOUT);
                !list.is_empty()
            });
        }
        if !sender.is_ready() {
            return;
        }
        let list = match self.idle.get_mut(authority) {
            Some(l) => l,
            None => self.idle.entry(authority.into()).or_default(),
        };
        if list.len() < MAX_IDLE_PER_UPSTREAM {
            list.push(Idle { sender, since: now });
        }
    }
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

/// Why a request could not be exchanged with an upstream.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No connection could be opened: the upstream is down or unreachable.
    Connect(String),
    /// The connection failed during the exchange.
    Http(hyper::Error),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(why) => f.write_str(why),
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

/// A connection to hand back once its response has been read to the end.
#[derive(Debug)]
pub(crate) struct Reuse {
    authority: Authority,
    sender: Sender,
}

impl Reuse {
    /// Puts the connection back in this thread's pool once it can take a
    /// request: at once when it can now, else when it can (a response may
    /// end before its request's body has been sent, when the app answered
    /// early), from a task that waits for that. A connection that closes
    /// meanwhile is dropped.
    pub(crate) fn release(self) {
        if self.sender.is_ready() {
            put(&self.authority, self.sender);
        } else if !self.sender.is_closed()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let Reuse {
                authority,
                mut sender,
            } = self;
            rt.spawn(async move {
                if sender.ready().await.is_ok() {
                    put(&authority, sender);
                }
            });
        }
    }
}

fn put(authority: &Authority, sender: Sender) {
    let now = Instant::now();
    // A thread being torn down has no pool left: the connection closes.
    let _ = POOL.try_with(|p| p.borrow_mut().put(authority.as_str(), sender, now));
}

/// Opens a connection to `authority` (`host:port`) and starts its task.
async fn connect(authority: &Authority, timeout: Duration) -> Result<Sender, SendError> {
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
    let (sender, conn) = http1::Builder::new()
        // Proxied heads and small bodies: one copied buffer and one write
        // beat vectored writes (measured with proxy/bench/run.sh).
        .writev(false)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(SendError::Http)?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

/// Sends `req` (origin-form target, `Host` set) to `authority`, on a pooled
/// connection when one is free, else on a new one. Returns the response and
/// the connection, to be released when the response body has ended.
pub(crate) async fn send(
    authority: &Authority,
    mut req: Request<ProxyBody>,
    connect_timeout: Duration,
) -> Result<(Response<Incoming>, Reuse), SendError> {
    loop {
        let pooled = POOL.with(|p| p.borrow_mut().checkout(authority.as_str(), Instant::now()));
        let Some(mut sender) = pooled else { break };
        match sender.try_send_request(req).await {
            Ok(resp) => {
                return Ok((
                    resp,
                    Reuse {
                        authority: authority.clone(),
                        sender,
                    },
                ));
            }
            Err(mut e) => match e.take_message() {
                // Not written: the connection was gone; try the next one.
                Some(r) => req = r,
                None => return Err(SendError::Http(e.into_error())),
            },
        }
    }
    let mut sender = connect(authority, connect_timeout).await?;
    let resp = sender.send_request(req).await.map_err(SendError::Http)?;
    Ok((
        resp,
        Reuse {
            authority: authority.clone(),
            sender,
        },
    ))
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
}
