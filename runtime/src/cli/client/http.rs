//! The HTTP client for the hub's API: JSON calls, the errors the hub
//! explains in `X-Error-Message`, and the server-sent log streams.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::{EXIT_AUTH, EXIT_FAILED, EXIT_NOT_FOUND, EXIT_UNREACHABLE, EXIT_USAGE, Failure};

/// How long a request may take to answer (not counting log streams).
const TIMEOUT: Duration = Duration::from_secs(60);

/// A failed API call.
#[derive(Debug, Clone)]
pub enum ApiError {
    /// No answer: the connection failed or timed out.
    Unreachable(String),
    /// An answer with an error status.
    Status {
        status: u16,
        message: String,
        code: Option<String>,
    },
    /// An answer that is not what the API promises.
    Invalid(String),
}

/// A client for one hub, with or without a token.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub token: Option<String>,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

impl Api {
    /// A client for `base` (`http://` or `https://`, no trailing slash).
    pub fn new(base: &str, token: Option<String>) -> Result<Api, Failure> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = if base.starts_with("https://") {
            builder
                .with_provider_and_native_roots(provider)
                .map_err(|e| {
                    Failure::failed(format!(
                        "cannot load this system's trusted certificates for {base} ({e}); install the CA certificates or use http://"
                    ))
                })?
        } else {
            // Plain HTTP: the TLS half is never used.
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| Failure::failed(format!("TLS setup failed: {e}")))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            builder.with_tls_config(config)
        };
        let connector = builder.https_or_http().enable_http1().build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Api {
            base: base.to_owned(),
            token,
            client,
        })
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<http::Response<Incoming>, ApiError> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(
                http::header::USER_AGENT,
                concat!("spaceport-cli/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(t) = &self.token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let bytes = match body {
            Some(b) => {
                req = req.header(http::header::CONTENT_TYPE, "application/json");
                Bytes::from(b.to_string())
            }
            None => Bytes::new(),
        };
        let req = req
            .body(Full::new(bytes))
            .map_err(|e| ApiError::Invalid(format!("bad request: {e}")))?;
        let resp = tokio::time::timeout(TIMEOUT, self.client.request(req))
            .await
            .map_err(|_| ApiError::Unreachable(format!("no answer within {TIMEOUT:?}")))?
            .map_err(|e| ApiError::Unreachable(describe(&e)))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let from_header = header("x-error-message");
        let code = header("x-error-code");
        let message = match from_header {
            Some(m) => m,
            None => {
                let body = tokio::time::timeout(TIMEOUT, resp.into_body().collect())
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| {
                        String::from_utf8_lossy(&body)
                            .lines()
                            .next()
                            .unwrap_or_default()
                            .chars()
                            .take(200)
                            .collect()
                    })
            }
        };
        Err(ApiError::Status {
            status,
            message,
            code,
        })
    }

    /// A JSON call; the JSON answer.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let resp = self.send(method, path, body).await?;
        let bytes = tokio::time::timeout(TIMEOUT, resp.into_body().collect())
            .await
            .map_err(|_| ApiError::Unreachable("the answer stalled".into()))?
            .map_err(|e| ApiError::Unreachable(describe(&e)))?
            .to_bytes();
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::Invalid(format!("the answer is not JSON: {e}")))
    }

    pub async fn get(&self, path: &str) -> Result<Value, ApiError> {
        self.call("GET", path, None).await
    }

    /// A server-sent event stream of log lines.
    pub async fn log_stream(&self, path: &str) -> Result<LogStream, ApiError> {
        let resp = self.send("GET", path, None).await?;
        Ok(LogStream {
            body: resp.into_body(),
            buf: Vec::new(),
            ready: VecDeque::new(),
        })
    }
}

/// The chain of causes of a connection error, on one line.
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// One log line as the hub sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub line: String,
    pub timestamp: Option<String>,
}

/// The `data:` events of a log stream, one line each.
#[derive(Debug)]
pub struct LogStream {
    body: Incoming,
    buf: Vec<u8>,
    ready: VecDeque<LogLine>,
}

impl LogStream {
    /// The next line; `None` when the hub closed the stream.
    pub async fn next(&mut self) -> Result<Option<LogLine>, ApiError> {
        loop {
            if let Some(l) = self.ready.pop_front() {
                return Ok(Some(l));
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(ApiError::Unreachable(describe(&e))),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                        self.drain();
                    }
                }
            }
        }
    }

    fn drain(&mut self) {
        while let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = self.buf.drain(..=i).collect();
            let text = String::from_utf8_lossy(&raw);
            if let Some(l) = parse_event_line(text.trim_end_matches(['\n', '\r'])) {
                self.ready.push_back(l);
            }
        }
    }
}

/// A `data: {"data": "...\n", "timestamp": "..."}` line; other SSE lines
/// (comments, keep-alives, event names) give nothing.
pub fn parse_event_line(line: &str) -> Option<LogLine> {
    let data = line.strip_prefix("data:")?;
    let data = data.strip_prefix(' ').unwrap_or(data);
    match serde_json::from_str::<Value>(data) {
        Ok(v) if v["data"].is_string() => Some(LogLine {
            line: v["data"]
                .as_str()
                .unwrap_or_default()
                .trim_end_matches(['\n', '\r'])
                .to_owned(),
            timestamp: v["timestamp"].as_str().map(str::to_owned),
        }),
        _ => Some(LogLine {
            line: data.to_owned(),
            timestamp: None,
        }),
    }
}

/// Turns an API error into a one-line failure saying what to do next.
/// `space` names the Space the call was about, for a not-found answer.
pub fn failure(e: ApiError, api: &Api, space: Option<&str>) -> Failure {
    match e {
        ApiError::Unreachable(why) => Failure::new(
            EXIT_UNREACHABLE,
            format!(
                "cannot reach the hub at {} ({why}); start it with `spaceport up`, or point --url / SPACEPORT_URL at it",
                api.base
            ),
        ),
        ApiError::Invalid(why) => Failure::failed(format!(
            "{} answered in a way spaceport does not understand ({why}); is it a spaceport hub?",
            api.base
        )),
        ApiError::Status {
            status: 401,
            message,
            ..
        } => {
            if api.token.is_none() {
                Failure::new(
                    EXIT_AUTH,
                    format!(
                        "{} wants a token ({message}); run `spaceport login` or set SPACEPORT_TOKEN",
                        api.base
                    ),
                )
            } else {
                Failure::new(
                    EXIT_AUTH,
                    format!(
                        "the token was refused (401: {message}); run `spaceport login` with a valid token"
                    ),
                )
            }
        }
        ApiError::Status {
            status: 403,
            message,
            ..
        } => Failure::new(
            EXIT_AUTH,
            format!("the token may not do this (403: {message}); use a token with write access"),
        ),
        ApiError::Status {
            status: 404,
            message,
            code,
        } => match space {
            Some(s) if code.as_deref() == Some("RepoNotFound") || code.is_none() => Failure::new(
                EXIT_NOT_FOUND,
                format!("no Space {s} on {}; `spaceport ls` lists yours", api.base),
            )
            .with_detail(code.is_none().then_some(message)),
            _ => Failure::new(EXIT_NOT_FOUND, format!("not found: {message}")),
        },
        ApiError::Status {
            status: 400 | 422,
            message,
            ..
        } => Failure::new(
            EXIT_USAGE,
            format!("the hub refused the request: {message}"),
        ),
        ApiError::Status {
            status, message, ..
        } => Failure::new(EXIT_FAILED, format!("the hub answered {status}: {message}")),
    }
}

impl Failure {
    /// Adds the hub's own words when they say more than the summary.
    fn with_detail(mut self, detail: Option<String>) -> Self {
        if let Some(d) = detail.filter(|d| !d.is_empty() && !d.starts_with("Repository Not Found"))
        {
            self.message = format!("{} ({d})", self.message);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_carry_the_log_line() {
        let l =
            parse_event_line(r#"data: {"data":"Step 1/2 : FROM x\n","timestamp":"t"}"#).unwrap();
        assert_eq!(l.line, "Step 1/2 : FROM x");
        assert_eq!(l.timestamp.as_deref(), Some("t"));
        assert!(parse_event_line(": keep-alive").is_none());
        assert!(parse_event_line("").is_none());
    }
}
