//! The lean HTTP/1.1 client for requests without a body (GET, HEAD,
//! OPTIONS): the request's own task writes the head to the socket and reads
//! the response from it, so a proxied visit costs no connection task, no
//! channel and no wake-up between tasks.
//!
//! The response is read as RFC 9112 section 6.3 says, and strictly, since a
//! proxy that finds a message's end elsewhere than the app meant can be made
//! to hand one visitor another's response:
//! - HEAD requests, 204 and 304 have no body; interim 1xx responses are
//!   read and dropped; 101 was not asked for and is refused;
//! - `Transfer-Encoding` ending in `chunked` is decoded ([`super::chunked`]);
//!   any other transfer coding runs to the close. With `Transfer-Encoding`,
//!   `Content-Length` is dropped and the connection is not reused;
//! - `Content-Length` must be one decimal number (repeats must agree);
//! - without either, the body runs to the close.
//!
//! A connection is pooled again only when its response ended exactly where
//! its framing said, the app did not ask to close it, and nothing follows.

use std::cell::RefCell;
use std::io::ErrorKind;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::request::Parts;
use http::uri::Authority;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Version};
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::chunked::{Chunked, Step};
use super::{Pool, Pooled, SendError, connect_tcp};
use crate::forward::BoxError;

/// Largest response head read, in bytes (hyper's client default).
const MAX_HEAD: usize = 8192 + 4096 * 100;
/// Most header fields in a response head.
const MAX_HEADERS: usize = 100;
/// Room made in the read buffer before each read.
const READ_CHUNK: usize = 16 * 1024;

/// One connection to an upstream and what was read from it but not used.
#[derive(Debug)]
pub(crate) struct Conn {
    io: TcpStream,
    buf: BytesMut,
}

impl Pooled for Conn {
    /// Whether the idle connection is still open: nothing arrived on it
    /// (an app that closes it sends FIN, which marks it readable). The
    /// check costs no system call unless the socket is marked readable.
    fn usable(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                matches!(self.io.try_read(&mut [0u8; 1]), Err(e) if e.kind() == ErrorKind::WouldBlock)
            }
        }
    }
}

thread_local! {
    static POOL: RefCell<Pool<Conn>> = RefCell::new(Pool::default());
}

fn put(authority: &Authority, conn: Conn) {
    let now = Instant::now();
    // A thread being torn down has no pool left: the connection closes.
    let _ = POOL.try_with(|p| p.borrow_mut().put(authority.as_str(), conn, now));
}

/// The request head as sent: `METHOD target HTTP/1.1`, then the headers.
fn encode_head(parts: &Parts) -> Vec<u8> {
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let method = parts.method.as_str();
    let mut len = method.len() + target.len() + 14;
    for (k, v) in &parts.headers {
        len += k.as_str().len() + v.len() + 4;
    }
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (k, v) in &parts.headers {
        out.extend_from_slice(k.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// How a response body ends.
#[derive(Debug)]
enum Framing {
    /// It has none.
    Empty,
    /// After this many more bytes.
    Length(u64),
    /// At the last chunk.
    Chunked(Chunked),
    /// When the app closes the connection.
    UntilClose,
}

/// A parsed response head.
struct Head {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
}

fn invalid(why: impl std::fmt::Display) -> SendError {
    SendError::Protocol(format!("invalid response from the app: {why}"))
}

/// Parses a response head off the front of `buf`: `None` while it is
/// incomplete. The header values share the head's bytes.
fn parse_head(buf: &mut BytesMut) -> Result<Option<Head>, SendError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut slots);
    let len = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(invalid(e)),
    };
    let code = res.code.unwrap_or_default();
    let version = match res.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    // Where each name and value lies in the head, to slice them out of
    // it once it is frozen.
    let base = buf.as_ptr() as usize;
    let mut spans = [[0u32; 4]; MAX_HEADERS];
    let count = res.headers.len();
    for (span, h) in spans.iter_mut().zip(res.headers.iter()) {
        let at = |p: *const u8| (p as usize - base) as u32;
        *span = [
            at(h.name.as_ptr()),
            h.name.len() as u32,
            at(h.value.as_ptr()),
            h.value.len() as u32,
        ];
    }
    let head = buf.split_to(len).freeze();
    let status = StatusCode::from_u16(code).map_err(invalid)?;
    // Room for what the proxy adds on the way out (request id, security
    // and embedding headers, a sticky cookie) without growing the map.
    let mut headers = HeaderMap::with_capacity(count + 8);
    for &[ns, nl, vs, vl] in &spans[..count] {
        let (ns, nl, vs, vl) = (ns as usize, nl as usize, vs as usize, vl as usize);
        let name = HeaderName::from_bytes(&head[ns..ns + nl]).map_err(invalid)?;
        let value = HeaderValue::from_maybe_shared(head.slice(vs..vs + vl)).map_err(invalid)?;
        headers.append(name, value);
    }
    Ok(Some(Head {
        status,
        version,
        headers,
    }))
}

/// Whether the connection may carry another request after this response.
fn keep_alive(version: Version, headers: &HeaderMap) -> bool {
    let mut keep = version == Version::HTTP_11;
    for v in headers.get_all(CONNECTION) {
        for token in v.as_bytes().split(|&b| b == b',') {
            let token = token.trim_ascii();
            if token.eq_ignore_ascii_case(b"close") {
                return false;
            }
            if token.eq_ignore_ascii_case(b"keep-alive") {
                keep = true;
            }
        }
    }
    keep
}

/// The body's framing, and whether the connection may be reused after it.
/// May drop `Content-Length` (when `Transfer-Encoding` overrides it).
fn framing(head_request: bool, head: &mut Head) -> Result<(Framing, bool), SendError> {
    let mut reuse = keep_alive(head.version, &head.headers);
    if head_request || matches!(head.status.as_u16(), 204 | 304) {
        return Ok((Framing::Empty, reuse));
    }
    if head.headers.contains_key(TRANSFER_ENCODING) {
        let chunked = head
            .headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .next_back()
            .and_then(|v| v.as_bytes().rsplit(|&b| b == b',').next())
            .is_some_and(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        if head.headers.remove(CONTENT_LENGTH).is_some() || head.version == Version::HTTP_10 {
            reuse = false;
        }
        return Ok(if chunked {
            (Framing::Chunked(Chunked::default()), reuse)
        } else {
            (Framing::UntilClose, false)
        });
    }
    let mut length = None;
    for v in head.headers.get_all(CONTENT_LENGTH) {
        for part in v.as_bytes().split(|&b| b == b',') {
            let n = parse_length(part.trim_ascii()).ok_or_else(|| invalid("bad Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(invalid("conflicting Content-Length values"));
            }
            length = Some(n);
        }
    }
    Ok(match length {
        Some(n) => (Framing::Length(n), reuse),
        None => (Framing::UntilClose, false),
    })
}

/// A Content-Length value: decimal digits only (no sign, no space).
fn parse_length(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

/// How an exchange on one connection failed.
enum Failed {
    /// Nothing of a response came back: a pooled connection the app had
    /// closed, so the request may go again on another.
    NoResponse(std::io::Error),
    /// Anything else.
    Other(SendError),
}

/// Writes the request head and reads the final response head.
async fn exchange(conn: &mut Conn, request: &[u8]) -> Result<Head, Failed> {
    conn.io
        .write_all(request)
        .await
        .map_err(Failed::NoResponse)?;
    let mut received = false;
    loop {
        if !conn.buf.is_empty() {
            received = true;
            if let Some(head) = parse_head(&mut conn.buf).map_err(Failed::Other)? {
                match head.status.as_u16() {
                    101 => return Err(Failed::Other(invalid("switched protocols unasked"))),
                    // Interim (100 Continue, 103 Early Hints): the final one follows.
                    100..=199 => continue,
                    _ => return Ok(head),
                }
            }
            if conn.buf.len() >= MAX_HEAD {
                return Err(Failed::Other(invalid("response head too large")));
            }
        }
        conn.buf.reserve(READ_CHUNK);
        let closed = match conn.io.read_buf(&mut conn.buf).await {
            Ok(0) => std::io::Error::new(ErrorKind::UnexpectedEof, "connection closed"),
            Ok(_) => continue,
            Err(e) => e,
        };
        return Err(if received {
            Failed::Other(SendError::Protocol(format!(
                "the app closed the connection in the middle of the response head: {closed}"
            )))
        } else {
            Failed::NoResponse(closed)
        });
    }
}

/// Sends the bodiless request `parts` to `authority` and reads the
/// response head; the body streams from the returned response.
pub(super) async fn send(
    authority: &Authority,
    parts: &Parts,
    connect_timeout: Duration,
) -> Result<Response<LeanBody>, SendError> {
    let request = encode_head(parts);
    let head_request = parts.method == Method::HEAD;
    loop {
        let pooled = POOL.with(|p| p.borrow_mut().checkout(authority.as_str(), Instant::now()));
        let reused = pooled.is_some();
        let mut conn = match pooled {
            Some(c) => c,
            None => Conn {
                // Boxed: a new connection is the rare case.
                io: Box::pin(connect_tcp(authority, connect_timeout)).await?,
                buf: BytesMut::new(),
            },
        };
        let mut head = match exchange(&mut conn, &request).await {
            Ok(h) => h,
            // Closed while pooled: the next pooled one, or a new one.
            Err(Failed::NoResponse(_)) if reused => continue,
            Err(Failed::NoResponse(e)) => {
                return Err(SendError::Protocol(format!(
                    "the app closed the connection without a response: {e}"
                )));
            }
            Err(Failed::Other(e)) => return Err(e),
        };
        let (framing, reuse) = framing(head_request, &mut head)?;
        let mut body = LeanBody {
            conn: Some(conn),
            authority: authority.clone(),
            framing,
            reuse,
        };
        if matches!(body.framing, Framing::Empty | Framing::Length(0)) {
            body.finish();
        }
        let mut resp = Response::new(body);
        *resp.status_mut() = head.status;
        *resp.version_mut() = head.version;
        *resp.headers_mut() = head.headers;
        return Ok(resp);
    }
}

/// A response body read from its connection, which goes back to the pool
/// when the body ends as its framing said.
#[derive(Debug)]
pub(crate) struct LeanBody {
    /// `None` once the body has ended (or failed).
    conn: Option<Conn>,
    authority: Authority,
    framing: Framing,
    reuse: bool,
}

impl LeanBody {
    /// The body has ended: pool the connection when it may carry another
    /// request and nothing was sent past the response.
    fn finish(&mut self) {
        if let Some(conn) = self.conn.take()
            && self.reuse
            && conn.buf.is_empty()
        {
            put(&self.authority, conn);
        }
    }

    fn fail(&mut self, e: impl Into<BoxError>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.conn = None;
        Poll::Ready(Some(Err(e.into())))
    }
}

impl Body for LeanBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let data = match &mut this.framing {
                Framing::Empty => None,
                Framing::Length(_) if conn.buf.is_empty() => None,
                Framing::Length(left) => {
                    let n = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(conn.buf.len());
                    *left -= n as u64;
                    Some(conn.buf.split_to(n).freeze())
                }
                Framing::Chunked(dec) => match dec.decode(&mut conn.buf) {
                    Ok(Step::Data(d)) => Some(d),
                    Ok(Step::NeedMore) => None,
                    Ok(Step::Done) => {
                        this.finish();
                        return Poll::Ready(None);
                    }
                    Err(e) => return this.fail(e),
                },
                Framing::UntilClose if conn.buf.is_empty() => None,
                Framing::UntilClose => Some(conn.buf.split().freeze()),
            };
            if let Some(data) = data {
                if matches!(this.framing, Framing::Length(0)) {
                    this.finish();
                }
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            if matches!(this.framing, Framing::Empty | Framing::Length(0)) {
                this.finish();
                return Poll::Ready(None);
            }
            conn.buf.reserve(READ_CHUNK);
            let read = ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut conn.io),
                cx,
                &mut conn.buf
            ));
            match read {
                Ok(0) if matches!(this.framing, Framing::UntilClose) => {
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    return this
                        .fail("the app closed the connection before the response body ended");
                }
                Ok(_) => {}
                Err(e) => return this.fail(e),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Empty => SizeHint::with_exact(0),
            Framing::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_of(raw: &str) -> Result<Option<Head>, SendError> {
        parse_head(&mut BytesMut::from(raw.as_bytes()))
    }

    fn framing_of(raw: &str, head_request: bool) -> Result<(Framing, bool), SendError> {
        let mut head = head_of(raw)?.expect("a whole head");
        framing(head_request, &mut head)
    }

    #[test]
    fn heads_parse_and_leave_the_body_in_the_buffer() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 404 Not Found\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 2\r\n\r\nhi"[..],
        );
        let head = parse_head(&mut buf).unwrap().unwrap();
        assert_eq!(head.status, 404);
        assert_eq!(head.version, Version::HTTP_11);
        let xa: Vec<_> = head.headers.get_all("x-a").iter().collect();
        assert_eq!(xa, ["1", "2"]);
        assert_eq!(&buf[..], b"hi");
        assert!(head_of("HTTP/1.1 200 OK\r\nX-A: 1\r\n").unwrap().is_none());
        assert!(head_of("HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n").is_err());
        assert!(head_of("HTTP/1.1 2000 OK\r\n\r\n").is_err());
        assert!(head_of("SSH-2.0-OpenSSH\r\n\r\n").is_err());
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: v\r\n")).collect();
        assert!(head_of(&format!("HTTP/1.1 200 OK\r\n{many}\r\n")).is_err());
    }

    #[test]
    fn framing_follows_the_rfc_and_refuses_ambiguity() {
        let f = |raw: &str| framing_of(raw, false);
        assert!(matches!(
            f("HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n").unwrap(),
            (Framing::Length(12), true)
        ));
        assert!(matches!(
            f("HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\ncontent-length: 5\r\n\r\n").unwrap(),
            (Framing::Length(5), true)
        ));
        for bad in ["5, 6", "-1", "+5", "0x5", "5 5", "", "99999999999999999999"] {
            let raw = format!("HTTP/1.1 200 OK\r\ncontent-length: {bad}\r\n\r\n");
            assert!(f(&raw).is_err(), "Content-Length {bad:?}");
        }
        assert!(matches!(
            f("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n").unwrap(),
            (Framing::Chunked(_), true)
        ));
        // Both: chunked wins, Content-Length goes, the connection is not reused.
        let mut head =
            head_of("HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n")
                .unwrap()
                .unwrap();
        assert!(matches!(
            framing(false, &mut head).unwrap(),
            (Framing::Chunked(_), false)
        ));
        assert!(!head.headers.contains_key(CONTENT_LENGTH));
        assert!(matches!(
            f("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n").unwrap(),
            (Framing::UntilClose, false)
        ));
        assert!(matches!(
            f("HTTP/1.1 200 OK\r\n\r\n").unwrap(),
            (Framing::UntilClose, false)
        ));
        assert!(matches!(
            f("HTTP/1.1 204 No Content\r\ncontent-length: 7\r\n\r\n").unwrap(),
            (Framing::Empty, true)
        ));
        assert!(matches!(
            f("HTTP/1.1 304 Not Modified\r\ntransfer-encoding: chunked\r\n\r\n").unwrap(),
            (Framing::Empty, true)
        ));
        assert!(matches!(
            framing_of("HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n", true).unwrap(),
            (Framing::Empty, true)
        ));
    }

    #[test]
    fn keep_alive_follows_version_and_connection() {
        let f = |raw: &str| framing_of(raw, false).unwrap().1;
        assert!(!f(
            "HTTP/1.1 200 OK\r\nconnection: Close\r\ncontent-length: 0\r\n\r\n"
        ));
        assert!(!f(
            "HTTP/1.1 200 OK\r\nconnection: keep-alive, close\r\ncontent-length: 0\r\n\r\n"
        ));
        assert!(!f("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n"));
        assert!(f(
            "HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n"
        ));
        assert!(f("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"));
    }

    #[test]
    fn request_heads_are_written_as_given() {
        let req = http::Request::get("/a/b?c=d")
            .header("host", "app:7860")
            .header("x-two", "1")
            .header("x-two", "2")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let head = encode_head(&parts);
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "GET /a/b?c=d HTTP/1.1\r\nhost: app:7860\r\nx-two: 1\r\nx-two: 2\r\n\r\n"
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_bytes_parse_or_fail_without_panic(
                input in proptest::collection::vec(any::<u8>(), 0..512),
                head_request in any::<bool>(),
            ) {
                let mut buf = BytesMut::from(&input[..]);
                if let Ok(Some(mut head)) = parse_head(&mut buf) {
                    let _ = framing(head_request, &mut head);
                }
            }

            #[test]
            fn heads_with_any_headers_parse_back(
                headers in proptest::collection::vec(("[a-z][a-z0-9-]{0,20}", "[ -~]{0,40}"), 0..20),
                code in 200u16..600,
            ) {
                let mut raw = format!("HTTP/1.1 {code} X\r\n");
                for (k, v) in &headers {
                    raw.push_str(&format!("{k}: {v}\r\n"));
                }
                raw.push_str("\r\nbody");
                let mut buf = BytesMut::from(raw.as_bytes());
                let head = parse_head(&mut buf).unwrap().unwrap();
                prop_assert_eq!(head.status.as_u16(), code);
                prop_assert_eq!(head.headers.len(), headers.len());
                for (k, v) in &headers {
                    let got: Vec<_> = head.headers.get_all(k.as_str()).iter().map(|x| x.as_bytes().to_vec()).collect();
                    prop_assert!(got.contains(&v.trim().as_bytes().to_vec()), "{} {:?}", k, got);
                }
                prop_assert_eq!(&buf[..], b"body");
            }
        }
    }
}
