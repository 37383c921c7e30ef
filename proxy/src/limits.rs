//! Limits and timeouts: how big a request may be and how long the proxy waits.
//!
//! Header size is capped both by the HTTP/1 read buffer and HTTP/2 header
//! list (set on the server in [`crate::server`]) and by an explicit sum here,
//! answered with 431. Bodies are capped by `Content-Length` up front (413) and
//! by counting while streaming, so chunked uploads cannot exceed it either.
//! This module holds numbers and checks; it never buffers a body.

use std::time::Duration;

use http::HeaderMap;

/// Size limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Total bytes of request header names and values.
    pub max_header_bytes: usize,
    /// Request body bytes (uploads).
    pub max_body_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: 64 * 1024,
            max_body_bytes: 1 << 30,
        }
    }
}

/// Timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Opening a TCP connection to an upstream (then 502 and ejection).
    pub connect: Duration,
    /// From sending a request to the upstream's response head (then 504).
    pub response_head: Duration,
    /// A client must send its request head within this (slow clients).
    pub client_header: Duration,
    /// Completing a TLS handshake.
    pub tls_handshake: Duration,
    /// How long shutdown waits for open connections to finish.
    pub drain: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            response_head: Duration::from_secs(300),
            client_header: Duration::from_secs(30),
            tls_handshake: Duration::from_secs(10),
            drain: Duration::from_secs(30),
        }
    }
}

/// Sum of header name and value bytes (the HTTP/2 accounting adds 32 per
/// field; so do we, so both protocols see one limit).
pub fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 32)
        .sum()
}

/// The declared body length, if any.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes_counts_names_values_and_overhead() {
        let mut h = HeaderMap::new();
        h.insert("x-a", "12345".parse().unwrap());
        assert_eq!(header_bytes(&h), 3 + 5 + 32);
    }

    #[test]
    fn content_length_parses_or_is_absent() {
        let mut h = HeaderMap::new();
        assert_eq!(content_length(&h), None);
        h.insert("content-length", "42".parse().unwrap());
        assert_eq!(content_length(&h), Some(42));
    }
}
