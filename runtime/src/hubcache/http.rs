//! The little HTTP the cache needs from a hub: JSON metadata and file
//! downloads (with a resume offset), over http or https.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Where files come from: spaceport itself, huggingface.co or a mirror.
#[derive(Clone)]
pub struct Upstream {
    endpoint: String,
    token: Option<String>,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// A response being read.
pub type Incoming = hyper::Response<hyper::body::Incoming>;

impl Upstream {
    /// An upstream at `endpoint` (no trailing slash), with a token for
    /// private repos.
    pub fn new(endpoint: &str, token: Option<String>) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = if endpoint.starts_with("https://") {
            builder
                .with_provider_and_native_roots(provider)
                .map_err(|e| format!("cannot load the trusted certificates for {endpoint}: {e}"))?
        } else {
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS setup failed: {e}"))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            builder.with_tls_config(config)
        };
        let connector = builder.https_or_http().enable_http1().build();
        Ok(Upstream {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            token: token.filter(|t| !t.is_empty()),
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// GET `path` (from the endpoint on), with `Range: bytes=<from>-`
    /// when `from` is set; follows up to five redirects.
    pub async fn get(&self, path: &str, from: Option<u64>) -> Result<Incoming, String> {
        let mut url = format!("{}{path}", self.endpoint);
        for _ in 0..5 {
            let mut req = hyper::Request::get(&url).header("user-agent", "spaceport-cache");
            if let Some(t) = &self.token
                && url.starts_with(&self.endpoint)
            {
                req = req.header("authorization", format!("Bearer {t}"));
            }
            if let Some(n) = from.filter(|n| *n > 0) {
                req = req.header("range", format!("bytes={n}-"));
            }
            let req = req
                .body(Empty::new())
                .map_err(|e| format!("invalid request {url}: {e}"))?;
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| format!("GET {url} failed: {e}"))?;
            if resp.status().is_redirection()
                && let Some(loc) = resp.headers().get("location").and_then(|v| v.to_str().ok())
            {
                url = if loc.starts_with('/') {
                    let origin_end = self
                        .endpoint
                        .find("://")
                        .and_then(|i| self.endpoint[i + 3..].find('/').map(|j| i + 3 + j))
                        .unwrap_or(self.endpoint.len());
                    format!("{}{loc}", &self.endpoint[..origin_end])
                } else {
                    loc.to_owned()
                };
                continue;
            }
            return Ok(resp);
        }
        Err(format!("too many redirects from {path}"))
    }

    /// GET and parse JSON; a clear error for anything but 200.
    pub async fn json(&self, path: &str) -> Result<serde_json::Value, String> {
        let resp = self.get(path, None).await?;
        let status = resp.status();
        let why = resp
            .headers()
            .get("x-error-message")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("failed to read {path}: {e}"))?
            .to_bytes();
        if !status.is_success() {
            return Err(format!(
                "{}{path} answered {status}{}",
                self.endpoint,
                why.map(|w| format!(": {w}")).unwrap_or_default()
            ));
        }
        serde_json::from_slice(&body).map_err(|e| format!("{path} is not JSON: {e}"))
    }
}
