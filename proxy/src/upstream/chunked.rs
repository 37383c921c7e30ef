//! The chunked transfer coding (RFC 9112 section 7.1), decoded as bytes
//! arrive. Pure: it reads from a buffer and hands out data, and never
//! touches a socket.
//!
//! Strict on purpose: a proxy that reads a message's end differently from
//! the app that wrote it can be made to splice two responses together, so
//! every line must end in CRLF, sizes are plain hexadecimal that fits 64
//! bits, and extension and trailer sections are bounded. Extensions and
//! trailers are read and dropped.

use bytes::{Buf, Bytes, BytesMut};

/// Longest chunk extension accepted, in bytes.
const MAX_EXTENSION: usize = 4096;
/// Longest trailer section accepted, in bytes.
const MAX_TRAILERS: usize = 16 * 1024;

/// What one step of decoding gave.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Body bytes.
    Data(Bytes),
    /// The buffer ran out before the next piece: read more, then call again.
    NeedMore,
    /// The message has ended (last chunk and trailers read).
    Done,
}

/// Why a chunked body could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid chunked body from the app: {0}")]
pub(crate) struct ChunkError(&'static str);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the size's hex digits; `digits` read so far.
    Size { value: u64, digits: u8 },
    /// Whitespace after the size, before `;` or CR.
    SizeSpace { value: u64 },
    /// A chunk extension, up to CR.
    Extension { value: u64, len: usize },
    /// The LF that ends the size line.
    SizeLf { value: u64 },
    /// Chunk data, this many bytes still to come.
    Data(u64),
    /// The CR after chunk data.
    DataCr,
    /// The LF after chunk data.
    DataLf,
    /// The start of a trailer line, or the CR of the final empty line.
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    /// The LF that ends a trailer line.
    TrailerLf,
    /// The LF of the final empty line.
    EndLf,
    /// The message has ended.
    Done,
}

/// The decoder of one chunked body.
#[derive(Debug, Clone)]
pub(crate) struct Chunked {
    state: State,
    trailers: usize,
}

impl Default for Chunked {
    fn default() -> Self {
        Chunked {
            state: State::Size {
                value: 0,
                digits: 0,
            },
            trailers: 0,
        }
    }
}

impl Chunked {
    /// Decodes what `buf` holds: consumes framing bytes, and returns the
    /// next run of data (taken out of `buf`), `NeedMore`, or `Done`.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Step, ChunkError> {
        loop {
            if let State::Data(left) = self.state {
                if buf.is_empty() {
                    return Ok(Step::NeedMore);
                }
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                let left = left - n as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data(left)
                };
                return Ok(Step::Data(buf.split_to(n).freeze()));
            }
            if self.state == State::Done {
                return Ok(Step::Done);
            }
            let Some(&b) = buf.first() else {
                return Ok(Step::NeedMore);
            };
            buf.advance(1);
            self.state = self.next(b)?;
        }
    }

    /// The state after one framing byte.
    fn next(&mut self, b: u8) -> Result<State, ChunkError> {
        let bad = |why| Err(ChunkError(why));
        Ok(match self.state {
            State::Size { value, digits } => match hex(b) {
                Some(d) => {
                    if digits >= 16 {
                        return bad("chunk size too large");
                    }
                    State::Size {
                        value: value << 4 | u64::from(d),
                        digits: digits + 1,
                    }
                }
                None if digits == 0 => return bad("chunk size missing"),
                None => match b {
                    b' ' | b'\t' => State::SizeSpace { value },
                    b';' => State::Extension { value, len: 0 },
                    b'\r' => State::SizeLf { value },
                    _ => return bad("invalid character in chunk size"),
                },
            },
            State::SizeSpace { value } => match b {
                b' ' | b'\t' => State::SizeSpace { value },
                b';' => State::Extension { value, len: 0 },
                b'\r' => State::SizeLf { value },
                _ => return bad("invalid character after chunk size"),
            },
            State::Extension { value, len } => match b {
                b'\r' => State::SizeLf { value },
                b'\n' => return bad("bare LF in chunk extension"),
                _ if len >= MAX_EXTENSION => return bad("chunk extension too long"),
                _ => State::Extension {
                    value,
                    len: len + 1,
                },
            },
            State::SizeLf { value } => match b {
                b'\n' if value == 0 => State::TrailerStart,
                b'\n' => State::Data(value),
                _ => return bad("chunk size line not ended by CRLF"),
            },
            State::DataCr => match b {
                b'\r' => State::DataLf,
                _ => return bad("chunk data longer than its size"),
            },
            State::DataLf => match b {
                b'\n' => State::Size {
                    value: 0,
                    digits: 0,
                },
                _ => return bad("chunk data not ended by CRLF"),
            },
            State::TrailerStart => match b {
                b'\r' => State::EndLf,
                b'\n' => return bad("bare LF in trailers"),
                _ => self.trailer_byte()?,
            },
            State::Trailer => match b {
                b'\r' => State::TrailerLf,
                b'\n' => return bad("bare LF in trailers"),
                _ => self.trailer_byte()?,
            },
            State::TrailerLf => match b {
                b'\n' => State::TrailerStart,
                _ => return bad("trailer line not ended by CRLF"),
            },
            State::EndLf => match b {
                b'\n' => State::Done,
                _ => return bad("chunked body not ended by CRLF"),
            },
            State::Data(_) | State::Done => unreachable!("handled by decode"),
        })
    }

    fn trailer_byte(&mut self) -> Result<State, ChunkError> {
        self.trailers += 1;
        if self.trailers > MAX_TRAILERS {
            return Err(ChunkError("trailers too long"));
        }
        Ok(State::Trailer)
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes: the body, and whether
    /// the end was reached, or the error.
    fn decode_in_pieces(input: &[u8], step: usize) -> Result<(Vec<u8>, bool, usize), ChunkError> {
        let mut dec = Chunked::default();
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut fed = 0;
        loop {
            match dec.decode(&mut buf)? {
                Step::Data(d) => body.extend_from_slice(&d),
                Step::Done => return Ok((body, true, buf.len() + input.len() - fed)),
                Step::NeedMore if fed == input.len() => return Ok((body, false, 0)),
                Step::NeedMore => {
                    let end = (fed + step).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn decodes_whatever_the_pieces_and_leaves_what_follows() {
        let input =
            b"5\r\nhello\r\n1;name=value\r\n \r\nA \r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        for step in [1, 2, 3, 7, 64, input.len()] {
            let (body, done, left) = decode_in_pieces(input, step).unwrap();
            assert_eq!(body, b"hello 0123456789", "pieces of {step}");
            assert!(done, "pieces of {step}");
            assert_eq!(
                left, 4,
                "the bytes after the body stay unread (pieces of {step})"
            );
        }
    }

    #[test]
    fn an_unfinished_body_is_not_done() {
        let (body, done, _) = decode_in_pieces(b"5\r\nhel", 2).unwrap();
        assert_eq!(body, b"hel");
        assert!(!done);
        let (_, done, _) = decode_in_pieces(b"0\r\n\r", 1).unwrap();
        assert!(!done);
    }

    #[test]
    fn refuses_framing_that_could_be_read_two_ways() {
        let cases: [(&[u8], &str); 12] = [
            (b"\r\n", "chunk size missing"),
            (b"-1\r\n", "chunk size missing"),
            (b"+5\r\n", "chunk size missing"),
            (b"0x5\r\n", "invalid character in chunk size"),
            (b"5\nhello\r\n", "invalid character in chunk size"),
            (b"5\r\rhello", "chunk size line not ended by CRLF"),
            (b"5\r\nhelloX", "chunk data longer than its size"),
            (b"5\r\nhello\rX", "chunk data not ended by CRLF"),
            (b"11111111111111111\r\n", "chunk size too large"),
            (b"5 x\r\n", "invalid character after chunk size"),
            (b"5;a\nb\r\n", "bare LF in chunk extension"),
            (b"0\r\nX: 1\n\r\n", "bare LF in trailers"),
        ];
        for (input, why) in cases {
            assert_eq!(
                decode_in_pieces(input, 1).unwrap_err(),
                ChunkError(why),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn the_largest_size_that_fits_is_taken_and_bounds_hold() {
        let mut dec = Chunked::default();
        let mut buf = BytesMut::from(&b"ffffffffffffffff\r\nab"[..]);
        assert_eq!(
            dec.decode(&mut buf).unwrap(),
            Step::Data(Bytes::from_static(b"ab"))
        );
        assert_eq!(dec.state, State::Data(u64::MAX - 2));
        let long_ext = [b"1;".as_slice(), &[b'x'; MAX_EXTENSION + 1]].concat();
        assert_eq!(
            decode_in_pieces(&long_ext, 512).unwrap_err(),
            ChunkError("chunk extension too long")
        );
        let long_trailer = [b"0\r\n".as_slice(), &[b'x'; MAX_TRAILERS + 1]].concat();
        assert_eq!(
            decode_in_pieces(&long_trailer, 512).unwrap_err(),
            ChunkError("trailers too long")
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// `chunks` in the chunked coding, with an extension on every
        /// other size line and a trailer.
        fn encode(chunks: &[Vec<u8>]) -> Vec<u8> {
            let mut out = Vec::new();
            for (i, c) in chunks.iter().filter(|c| !c.is_empty()).enumerate() {
                let ext = if i % 2 == 0 { "" } else { ";a=b" };
                out.extend_from_slice(format!("{:x}{ext}\r\n", c.len()).as_bytes());
                out.extend_from_slice(c);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\nx-t: 1\r\n\r\n");
            out
        }

        proptest! {
            #[test]
            fn any_body_in_any_pieces_comes_back_whole(
                chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
                step in 1usize..64,
            ) {
                let input = [encode(&chunks), b"NEXT".to_vec()].concat();
                let (body, done, left) = decode_in_pieces(&input, step).unwrap();
                prop_assert_eq!(body, chunks.concat());
                prop_assert!(done);
                prop_assert_eq!(left, 4);
            }

            #[test]
            fn any_bytes_decode_or_fail_without_panic_or_invented_data(
                input in proptest::collection::vec(any::<u8>(), 0..512),
                step in 1usize..32,
            ) {
                if let Ok((body, _, _)) = decode_in_pieces(&input, step) {
                    prop_assert!(body.len() <= input.len());
                }
            }
        }
    }
}
