//! Requests of any kind on hyper's HTTP/1.1 client connection: uploads
//! (streamed while the response is read), upgrades, and every method the
//! lean path does not take. A request sent on a pooled connection that
//! turns out to be gone before the request was written is sent again on
//! the next one.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

use super::{Pool, Pooled, SendError, connect_tcp};
use crate::forward::ProxyBody;

/// The sending half of one upstream connection.
type Sender = http1::SendRequest<ProxyBody>;

impl Pooled for Sender {
    fn usable(&mut self) -> bool {
        // Connections are pooled only once ready; one that is not any
        // more has closed.
        self.is_ready()
    }
}

thread_local! {
    static POOL: RefCell<Pool<Sender>> = RefCell::new(Pool::default());
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

/// Opens a connection to `authority` and starts its task.
async fn connect(authority: &Authority, timeout: Duration) -> Result<Sender, SendError> {
    let stream = connect_tcp(authority, timeout).await?;
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

/// Sends `req` to `authority`. Returns the response and the connection,
/// to be released when the response body has ended.
pub(super) async fn send(
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
