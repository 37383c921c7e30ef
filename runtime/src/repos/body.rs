//! Feeding an HTTP request body to git: gzip decoded on the fly, counted
//! against a cap, never held whole in memory.

use super::error::{RepoError, Result};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::io::Write;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Compressed input is inflated this many bytes at a time, so one step can
/// produce at most about a thousand times as much (deflate's best ratio)
/// before the cap is checked again.
const INFLATE_STEP: usize = 4096;

/// An incremental gzip decoder: compressed bytes in, plain bytes out, as
/// they arrive.
pub struct GzipStream {
    inner: flate2::write::GzDecoder<Vec<u8>>,
}

impl std::fmt::Debug for GzipStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GzipStream").finish_non_exhaustive()
    }
}

impl Default for GzipStream {
    fn default() -> Self {
        Self::new()
    }
}

impl GzipStream {
    pub fn new() -> Self {
        GzipStream {
            inner: flate2::write::GzDecoder::new(Vec::new()),
        }
    }

    /// Decodes `input` (any slice of the compressed stream) and returns the
    /// plain bytes it completed.
    pub fn feed(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        self.inner.write_all(input).map_err(|e| {
            RepoError::Gzip(if e.kind() == std::io::ErrorKind::WriteZero {
                "data after the end of the gzip stream".to_owned()
            } else {
                e.to_string()
            })
        })?;
        Ok(std::mem::take(self.inner.get_mut()))
    }

    /// Ends the stream: checks it was complete and returns the last bytes.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        self.inner.try_finish().map_err(|e| {
            RepoError::Gzip(format!("the gzip stream is truncated or corrupt: {e}"))
        })?;
        Ok(std::mem::take(self.inner.get_mut()))
    }
}

/// What a pump did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pumped {
    /// Plain (decoded) bytes read from the body.
    pub bytes: u64,
    /// git stopped reading before the body ended (it had refused the
    /// request); the rest was read and dropped so the client gets git's
    /// answer instead of a broken connection.
    pub drained: bool,
}

/// Copies `body` into `sink` (git's stdin), decoding gzip when asked, and
/// fails once more than `cap` plain bytes came. The sink is shut down at
/// the end, so git sees end of input. When the sink stops accepting (git
/// refused the request and exited), the rest of the body is read and
/// dropped, up to `drain_cap` bytes in all, so the client can finish
/// sending and read git's answer instead of hitting a reset connection.
pub async fn pump<S, E, W>(
    body: S,
    gzip: bool,
    cap: u64,
    drain_cap: u64,
    mut sink: W,
) -> Result<Pumped>
where
    S: Stream<Item = std::result::Result<Bytes, E>>,
    E: std::fmt::Display,
    W: AsyncWrite + Unpin,
{
    let mut body = std::pin::pin!(body);
    let mut decoder = gzip.then(GzipStream::new);
    let mut done = Pumped::default();
    let mut open = true;
    let too_large =
        |done: &Pumped| !(done.bytes <= cap || done.drained && done.bytes <= drain_cap.max(cap));
    let error = || RepoError::TooLarge { limit: cap };

    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| RepoError::Body(e.to_string()))?;
        match decoder.as_mut() {
            None => {
                done.bytes += chunk.len() as u64;
                if too_large(&done) {
                    return Err(error());
                }
                deliver(&mut sink, &chunk, &mut open, &mut done).await;
            }
            Some(decoder) => {
                for piece in chunk.chunks(INFLATE_STEP) {
                    let plain = decoder.feed(piece)?;
                    done.bytes += plain.len() as u64;
                    if too_large(&done) {
                        return Err(error());
                    }
                    deliver(&mut sink, &plain, &mut open, &mut done).await;
                }
            }
        }
    }
    if let Some(decoder) = decoder {
        let plain = decoder.finish()?;
        done.bytes += plain.len() as u64;
        if too_large(&done) {
            return Err(error());
        }
        deliver(&mut sink, &plain, &mut open, &mut done).await;
    }
    if open {
        let _ = sink.shutdown().await;
    }
    Ok(done)
}

async fn deliver<W: AsyncWrite + Unpin>(
    sink: &mut W,
    data: &[u8],
    open: &mut bool,
    done: &mut Pumped,
) {
    if !*open || data.is_empty() {
        return;
    }
    if let Err(e) = sink.write_all(data).await {
        tracing::debug!(error = %e, "git stopped reading the request; dropping the rest");
        *open = false;
        done.drained = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn sample(n: usize) -> Vec<u8> {
        // Compressible but not trivial.
        (0..n)
            .map(|i| (i * 7 % 251) as u8 ^ (i / 1000) as u8)
            .collect()
    }

    fn chunks(data: &[u8], size: usize) -> Vec<std::result::Result<Bytes, String>> {
        data.chunks(size)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect()
    }

    #[test]
    fn gzip_stream_decodes_in_any_split() {
        let plain = sample(200_000);
        let packed = gzip(&plain);
        for step in [1, 7, 512, 4096, packed.len()] {
            let mut dec = GzipStream::new();
            let mut out = Vec::new();
            for piece in packed.chunks(step) {
                out.extend(dec.feed(piece).unwrap());
            }
            out.extend(dec.finish().unwrap());
            assert_eq!(out, plain, "split into {step}-byte pieces");
        }
    }

    #[test]
    fn gzip_stream_refuses_garbage_and_truncation() {
        let mut dec = GzipStream::new();
        assert!(matches!(
            dec.feed(b"this is not gzip at all"),
            Err(RepoError::Gzip(_))
        ));

        let packed = gzip(&sample(10_000));
        let mut dec = GzipStream::new();
        dec.feed(&packed[..packed.len() / 2]).unwrap();
        let err = dec.finish().unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[tokio::test]
    async fn pump_decodes_gzip_into_the_sink() {
        let plain = sample(300_000);
        let packed = gzip(&plain);
        let mut sink = Vec::new();
        let done = pump(
            futures_util::stream::iter(chunks(&packed, 1000)),
            true,
            1 << 20,
            1 << 20,
            &mut sink,
        )
        .await
        .unwrap();
        assert_eq!(sink, plain);
        assert_eq!(done.bytes, plain.len() as u64);
        assert!(!done.drained);
    }

    #[tokio::test]
    async fn pump_caps_plain_and_decoded_bytes() {
        let plain = vec![0u8; 100_000];
        let mut sink = Vec::new();
        let err = pump(
            futures_util::stream::iter(chunks(&plain, 4096)),
            false,
            50_000,
            50_000,
            &mut sink,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, RepoError::TooLarge { limit: 50_000 }),
            "{err}"
        );
        assert!(sink.len() <= 50_000);

        // A gzip bomb: tiny compressed, large plain.
        let bomb = gzip(&vec![0u8; 50 << 20]);
        assert!(bomb.len() < 100_000);
        let mut sink = Vec::new();
        let err = pump(
            futures_util::stream::iter(chunks(&bomb, 8192)),
            true,
            1 << 20,
            1 << 20,
            &mut sink,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, RepoError::TooLarge { .. }), "{err}");
        assert!(sink.len() <= 1 << 20);
    }

    #[tokio::test]
    async fn pump_drains_after_the_reader_goes_away() {
        let (writer, reader) = tokio::io::duplex(1024);
        drop(reader);
        let data = vec![1u8; 10_000];
        let done = pump(
            futures_util::stream::iter(chunks(&data, 1000)),
            false,
            5_000,
            20_000,
            writer,
        )
        .await
        .unwrap();
        assert!(done.drained);
        assert_eq!(done.bytes, 10_000);

        // Draining has its own, larger cap.
        let (writer, reader) = tokio::io::duplex(1024);
        drop(reader);
        let err = pump(
            futures_util::stream::iter(chunks(&data, 1000)),
            false,
            2_000,
            5_000,
            writer,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, RepoError::TooLarge { limit: 2_000 }), "{err}");
    }
}
