//! The registration socket's front: a `:authority` that is not a URI authority becomes
//! `localhost`.
//!
//! The kubelet's plugin watcher dials `<registry-dir>/<name>.sock` as a gRPC target with a
//! unix dialer and without naming an authority, so gRPC sends the socket's path as the HTTP/2
//! `:authority` of its `GetInfo` call (grpc-go 1.82 escapes it:
//! `%2Fvar%2Flib%2Fkubelet%2Fplugins_registry%2Fsmartnic.io-reg.sock`). The HTTP/2 server
//! under tonic parses `:authority` as a URI authority, refuses the path ("malformed authority")
//! and resets the stream with `RST_STREAM` `PROTOCOL_ERROR`: the kubelet never registers the
//! driver. Its DRA service client names `localhost`, so only the registration socket is
//! fronted.
//!
//! [`Fronted`] wraps each accepted connection. Bytes to the client pass unchanged. Bytes from
//! the client are read as HTTP/2 (RFC 9113) by a [`Rewriter`]: the connection preface and every
//! frame but HEADERS and CONTINUATION pass verbatim. A header block is collected up to
//! END_HEADERS, decoded with the connection's HPACK decoder (RFC 7541), and sent on as one
//! HEADERS frame (plus CONTINUATION frames past [`MAX_FRAME`]) of literals without indexing:
//! the server's HPACK table stays empty whatever the client indexed, padding and priority
//! fields are dropped, dynamic-table size updates too. Every header keeps its name, value and
//! place except an unparsable `:authority`. A header block over [`MAX_BLOCK`] bytes, as sent
//! or decoded, a block that does not decode and a broken frame sequence close the connection.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use loona_hpack::Decoder;
use loona_hpack::decoder::DecoderError;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;
use tokio_stream::{Stream, StreamExt, wrappers::UnixListenerStream};
use tonic::transport::server::{Connected, UdsConnectInfo};

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Length of a frame header.
pub const FRAME_HEADER: usize = 9;
/// Largest payload of a frame sent to the server: the SETTINGS_MAX_FRAME_SIZE every peer takes.
pub const MAX_FRAME: usize = 16_384;
/// Largest header block accepted, as sent and as decoded.
pub const MAX_BLOCK: usize = 64 * 1024;
/// The HPACK dynamic table size the server allows the client (the HTTP/2 default, which the
/// server under tonic does not change); a size update over it is a decode error.
const TABLE_SIZE: usize = 4096;
/// Bytes read from the client at a time.
const READ_CHUNK: usize = 16 * 1024;

// Frame types and flags (RFC 9113 §6).
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// Why a registration connection is closed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    /// The first bytes are not the HTTP/2 client preface.
    #[error("the client did not open with the HTTP/2 connection preface")]
    Preface,
    /// A header block is larger than [`MAX_BLOCK`].
    #[error("the header block of stream {stream} is over {MAX_BLOCK} bytes")]
    TooLarge {
        /// The stream.
        stream: u32,
    },
    /// A padded HEADERS frame whose padding is not shorter than its payload.
    #[error("a HEADERS frame of stream {stream} has more padding than payload")]
    Padding {
        /// The stream.
        stream: u32,
    },
    /// A HEADERS frame with the PRIORITY flag and fewer than 5 bytes for its fields.
    #[error("a HEADERS frame of stream {stream} is too short for its priority fields")]
    Priority {
        /// The stream.
        stream: u32,
    },
    /// Another frame where a CONTINUATION of an open header block must come.
    #[error("a frame of type {kind:#x} on stream {got} inside the header block of stream {open}")]
    Interleaved {
        /// Type of the frame.
        kind: u8,
        /// Its stream.
        got: u32,
        /// The stream whose header block is open.
        open: u32,
    },
    /// A CONTINUATION frame with no open header block.
    #[error("a CONTINUATION frame on stream {stream} follows no HEADERS frame")]
    Continuation {
        /// The stream.
        stream: u32,
    },
    /// The header block is not valid HPACK for this connection.
    #[error("the header block of stream {stream} does not decode: {source}")]
    Hpack {
        /// The stream.
        stream: u32,
        /// The decoder's reason.
        #[source]
        source: DecoderError,
    },
}

/// A frame header.
#[derive(Clone, Copy, Debug)]
struct Head {
    len: usize,
    kind: u8,
    flags: u8,
    stream: u32,
}

impl Head {
    fn parse(b: &[u8; FRAME_HEADER]) -> Head {
        Head {
            len: usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        }
    }
}

/// A header block being collected.
#[derive(Debug)]
struct Open {
    stream: u32,
    end_stream: bool,
    block: Vec<u8>,
}

/// The client-to-server half of one connection: HTTP/2 bytes in, the same bytes out with
/// every header block re-encoded and an unparsable `:authority` replaced by `localhost`.
pub struct Rewriter {
    decoder: Decoder<'static>,
    /// Bytes of the preface seen so far.
    preface: usize,
    /// A frame header being read, then the payload of a HEADERS or CONTINUATION frame.
    buf: Vec<u8>,
    /// Payload bytes of a passed-through frame still to come.
    passing: usize,
    open: Option<Open>,
}

impl Default for Rewriter {
    fn default() -> Self {
        Self::new()
    }
}

impl Rewriter {
    /// A rewriter for a new connection.
    pub fn new() -> Rewriter {
        let mut decoder = Decoder::new();
        decoder.set_max_allowed_table_size(TABLE_SIZE);
        Rewriter {
            decoder,
            preface: 0,
            buf: Vec::with_capacity(FRAME_HEADER),
            passing: 0,
            open: None,
        }
    }

    /// Takes the next bytes from the client and appends what the server is to get to `out`.
    /// Bytes of an incomplete header frame are held until the rest arrives. After an error the
    /// connection is unusable.
    pub fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        if self.preface < PREFACE.len() {
            let n = input.len().min(PREFACE.len() - self.preface);
            if input[..n] != PREFACE[self.preface..self.preface + n] {
                return Err(Error::Preface);
            }
            out.extend_from_slice(&input[..n]);
            self.preface += n;
            input = &input[n..];
        }
        loop {
            if self.passing > 0 {
                let n = input.len().min(self.passing);
                out.extend_from_slice(&input[..n]);
                self.passing -= n;
                input = &input[n..];
                if self.passing > 0 {
                    return Ok(());
                }
            }
            if !take_up_to(&mut self.buf, &mut input, FRAME_HEADER) {
                return Ok(());
            }
            let mut raw = [0; FRAME_HEADER];
            raw.copy_from_slice(&self.buf[..FRAME_HEADER]);
            let head = Head::parse(&raw);
            if head.kind != HEADERS && head.kind != CONTINUATION {
                if let Some(open) = &self.open {
                    return Err(Error::Interleaved {
                        kind: head.kind,
                        got: head.stream,
                        open: open.stream,
                    });
                }
                out.extend_from_slice(&raw);
                self.buf.clear();
                self.passing = head.len;
                continue;
            }
            let held = self.open.as_ref().map_or(0, |o| o.block.len());
            if head.len.saturating_add(held) > MAX_BLOCK {
                return Err(Error::TooLarge {
                    stream: head.stream,
                });
            }
            if !take_up_to(&mut self.buf, &mut input, FRAME_HEADER + head.len) {
                return Ok(());
            }
            let payload = self.buf.split_off(FRAME_HEADER);
            self.buf.clear();
            self.header_frame(head, &payload, out)?;
        }
    }

    fn header_frame(&mut self, head: Head, payload: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        match (head.kind, self.open.as_mut()) {
            (HEADERS, None) => {
                self.open = Some(Open {
                    stream: head.stream,
                    end_stream: head.flags & END_STREAM != 0,
                    block: fragment(head, payload)?.to_vec(),
                });
            }
            (CONTINUATION, Some(open)) if open.stream == head.stream => {
                open.block.extend_from_slice(payload);
            }
            (kind, Some(open)) => {
                return Err(Error::Interleaved {
                    kind,
                    got: head.stream,
                    open: open.stream,
                });
            }
            (_, None) => {
                return Err(Error::Continuation {
                    stream: head.stream,
                });
            }
        }
        if head.flags & END_HEADERS != 0
            && let Some(open) = self.open.take()
        {
            self.finish(open, out)?;
        }
        Ok(())
    }

    /// Decodes a complete header block and appends its re-encoded frames to `out`.
    fn finish(&mut self, open: Open, out: &mut Vec<u8>) -> Result<(), Error> {
        let stream = open.stream;
        let mut block = Vec::with_capacity(open.block.len() + 16);
        let mut over = false;
        self.decoder
            .decode_with_cb(&open.block, |name, value| {
                if over {
                    return;
                }
                if &*name == b":authority" && http::uri::Authority::try_from(&*value).is_err() {
                    tracing::debug!(
                        authority = ?String::from_utf8_lossy(&value),
                        stream,
                        "an :authority that is not a URI authority is sent on as localhost"
                    );
                    literal(&mut block, &name, b"localhost");
                } else {
                    literal(&mut block, &name, &value);
                }
                over = block.len() > MAX_BLOCK;
            })
            .map_err(|source| Error::Hpack { stream, source })?;
        if over {
            return Err(Error::TooLarge { stream });
        }
        frames(stream, open.end_stream, &block, out);
        Ok(())
    }
}

/// Moves bytes from `input` to `buf` until it holds `want`; whether it does.
fn take_up_to(buf: &mut Vec<u8>, input: &mut &[u8], want: usize) -> bool {
    let n = want.saturating_sub(buf.len()).min(input.len());
    buf.extend_from_slice(&input[..n]);
    *input = &input[n..];
    buf.len() >= want
}

/// The header block fragment of a HEADERS frame: without padding and priority fields.
fn fragment(head: Head, payload: &[u8]) -> Result<&[u8], Error> {
    let stream = head.stream;
    let mut p = payload;
    if head.flags & PADDED != 0 {
        let (&pad, rest) = p.split_first().ok_or(Error::Padding { stream })?;
        let keep = rest
            .len()
            .checked_sub(usize::from(pad))
            .ok_or(Error::Padding { stream })?;
        p = &rest[..keep];
    }
    if head.flags & PRIORITY != 0 {
        p = p.get(5..).ok_or(Error::Priority { stream })?;
    }
    Ok(p)
}

/// Appends a literal header field without indexing, new name (RFC 7541 §6.2.2), no Huffman.
fn literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x00);
    integer(out, name.len(), 7);
    out.extend_from_slice(name);
    integer(out, value.len(), 7);
    out.extend_from_slice(value);
}

/// Appends `n` as an HPACK integer with a `prefix`-bit prefix, the bits above it zero
/// (RFC 7541 §5.1).
fn integer(out: &mut Vec<u8>, mut n: usize, prefix: u32) {
    let max = (1usize << prefix) - 1;
    if n < max {
        out.push(n as u8);
        return;
    }
    out.push(max as u8);
    n -= max;
    while n >= 0x80 {
        out.push((n & 0x7f) as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Appends `block` as a HEADERS frame followed by CONTINUATION frames of at most [`MAX_FRAME`]
/// bytes each; END_HEADERS on the last.
fn frames(stream: u32, end_stream: bool, block: &[u8], out: &mut Vec<u8>) {
    let count = block.len().div_ceil(MAX_FRAME).max(1);
    for i in 0..count {
        let chunk = &block[i * MAX_FRAME..block.len().min((i + 1) * MAX_FRAME)];
        let (kind, mut flags) = if i == 0 {
            (HEADERS, if end_stream { END_STREAM } else { 0 })
        } else {
            (CONTINUATION, 0)
        };
        if i + 1 == count {
            flags |= END_HEADERS;
        }
        frame_header(out, chunk.len(), kind, flags, stream);
        out.extend_from_slice(chunk);
    }
}

/// Appends a frame header.
fn frame_header(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
}

/// A registration connection: reads come from the client through a [`Rewriter`], writes go
/// to the client unchanged.
pub struct Fronted {
    inner: UnixStream,
    rewriter: Rewriter,
    raw: Box<[u8]>,
    out: Vec<u8>,
    sent: usize,
    failed: bool,
}

impl Fronted {
    /// Fronts an accepted connection.
    pub fn new(inner: UnixStream) -> Fronted {
        Fronted {
            inner,
            rewriter: Rewriter::new(),
            raw: vec![0; READ_CHUNK].into_boxed_slice(),
            out: Vec::new(),
            sent: 0,
            failed: false,
        }
    }
}

/// The connections accepted on `listener`, each [`Fronted`].
pub fn incoming(
    listener: tokio::net::UnixListener,
) -> impl Stream<Item = io::Result<Fronted>> + Send + 'static {
    UnixListenerStream::new(listener).map(|c| c.map(Fronted::new))
}

impl AsyncRead for Fronted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.sent < this.out.len() {
                let n = buf.remaining().min(this.out.len() - this.sent);
                buf.put_slice(&this.out[this.sent..this.sent + n]);
                this.sent += n;
                return Poll::Ready(Ok(()));
            }
            if this.failed {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "refused HTTP/2 input on the registration socket",
                )));
            }
            this.out.clear();
            this.sent = 0;
            let mut raw = ReadBuf::new(&mut this.raw);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut raw))?;
            if raw.filled().is_empty() {
                return Poll::Ready(Ok(()));
            }
            if let Err(e) = this.rewriter.push(raw.filled(), &mut this.out) {
                let pid = this.inner.peer_cred().ok().and_then(|c| c.pid());
                tracing::warn!(?pid, "closing a connection to the registration socket: {e}");
                this.failed = true;
                // the frames before the bad one are still the server's: it answers them
            }
        }
    }
}

impl AsyncWrite for Fronted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl Connected for Fronted {
    type ConnectInfo = UdsConnectInfo;

    fn connect_info(&self) -> UdsConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
pub(crate) mod tests;
