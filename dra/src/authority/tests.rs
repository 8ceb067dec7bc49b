use std::path::Path;
use std::time::Duration;

use loona_hpack::Encoder;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use super::*;
use crate::registration_api::registration_client::RegistrationClient;
use crate::registration_api::registration_server::RegistrationServer;
use crate::registration_api::{InfoRequest, PluginInfo};
use crate::server::RegistrationService;

const SOCKET_PATH: &str = "/var/lib/kubelet/plugins_registry/smartnic.io-reg.sock";
/// The same path as grpc-go 1.82 (the kubelet's) sends it: escaped.
pub(crate) const SOCKET_PATH_ESCAPED: &str =
    "%2Fvar%2Flib%2Fkubelet%2Fplugins_registry%2Fsmartnic.io-reg.sock";
const GET_INFO: &str = "/pluginregistration.Registration/GetInfo";
const DATA: u8 = 0x0;
const SETTINGS: u8 = 0x4;
const RST_STREAM: u8 = 0x3;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;

/// The request headers of the kubelet's plugin watcher, in its order.
fn kubelet_headers(authority: &str) -> Vec<(&str, &str)> {
    vec![
        (":method", "POST"),
        (":scheme", "http"),
        (":path", GET_INFO),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("user-agent", "grpc-go/1.72.1"),
        ("te", "trailers"),
        ("grpc-timeout", "9999739u"),
    ]
}

fn encode(enc: &mut Encoder<'_>, headers: &[(&str, &str)]) -> Vec<u8> {
    enc.encode(headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    frame_header(&mut f, payload.len(), kind, flags, stream);
    f.extend_from_slice(payload);
    f
}

/// The frames of `bytes` (after the preface).
fn frames_of(bytes: &[u8]) -> Vec<(Head, Vec<u8>)> {
    assert_eq!(&bytes[..PREFACE.len()], PREFACE);
    let mut rest = &bytes[PREFACE.len()..];
    let mut out = Vec::new();
    while !rest.is_empty() {
        let mut raw = [0; FRAME_HEADER];
        raw.copy_from_slice(&rest[..FRAME_HEADER]);
        let h = Head::parse(&raw);
        out.push((h, rest[FRAME_HEADER..FRAME_HEADER + h.len].to_vec()));
        rest = &rest[FRAME_HEADER + h.len..];
    }
    out
}

fn decoded(dec: &mut Decoder<'_>, block: &[u8]) -> Vec<(String, String)> {
    dec.decode(block)
        .expect("decodes")
        .into_iter()
        .map(|(n, v)| {
            (
                String::from_utf8(n).expect("utf-8"),
                String::from_utf8(v).expect("utf-8"),
            )
        })
        .collect()
}

fn owned(h: &[(&str, &str)]) -> Vec<(String, String)> {
    h.iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

/// The preface and `frames` through a new rewriter, in one piece.
fn rewrite(frames: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let mut r = Rewriter::new();
    r.push(PREFACE, &mut out)?;
    r.push(frames, &mut out)?;
    Ok(out)
}

#[test]
fn a_socket_path_authority_becomes_localhost_and_nothing_else_changes() {
    let mut enc = Encoder::new();
    let sent = kubelet_headers(SOCKET_PATH);
    let block = encode(&mut enc, &sent);
    let out = rewrite(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &block)).expect("rewrites");
    let fs = frames_of(&out);
    assert_eq!(fs.len(), 1);
    let (h, payload) = &fs[0];
    assert_eq!(
        (h.kind, h.flags, h.stream),
        (HEADERS, END_HEADERS | END_STREAM, 1)
    );
    let mut want = owned(&sent);
    want[3].1 = "localhost".to_owned();
    assert_eq!(decoded(&mut Decoder::new(), payload), want);
}

#[test]
fn header_blocks_are_sent_as_literals_without_indexing() {
    // the client's encoder indexes the first block and refers to its table in the second: the
    // server must get the same self-contained bytes both times
    let mut enc = Encoder::new();
    let sent = kubelet_headers(SOCKET_PATH);
    let first = encode(&mut enc, &sent);
    let second = encode(&mut enc, &sent);
    assert!(
        second.len() < first.len(),
        "the client's second block is indexed"
    );
    let mut input = frame(HEADERS, END_HEADERS, 1, &first);
    input.extend(frame(HEADERS, END_HEADERS, 3, &second));
    let out = rewrite(&input).expect("rewrites");
    let fs = frames_of(&out);
    assert_eq!(fs.len(), 2);
    assert_eq!(fs[0].1, fs[1].1);
    assert_eq!(fs[1].0.stream, 3);
    let mut expected = Vec::new();
    for (n, v) in &sent {
        let v = if *n == ":authority" { "localhost" } else { v };
        literal(&mut expected, n.as_bytes(), v.as_bytes());
    }
    assert_eq!(fs[0].1, expected);
    assert_eq!(fs[0].1[0], 0x00);
}

#[test]
fn a_valid_authority_is_left_as_sent() {
    for authority in ["localhost", "example.com:8443", "[::1]:50051", "10.0.0.1"] {
        let sent = kubelet_headers(authority);
        let block = encode(&mut Encoder::new(), &sent);
        let out = rewrite(&frame(HEADERS, END_HEADERS, 5, &block)).expect("rewrites");
        let fs = frames_of(&out);
        assert_eq!(decoded(&mut Decoder::new(), &fs[0].1), owned(&sent));
    }
}

#[test]
fn an_empty_or_unparsable_authority_becomes_localhost() {
    for authority in [
        SOCKET_PATH_ESCAPED,
        "",
        "unix:///run/x.sock",
        "a b",
        "host:port:x",
    ] {
        let sent = kubelet_headers(authority);
        let block = encode(&mut Encoder::new(), &sent);
        let out = rewrite(&frame(HEADERS, END_HEADERS, 1, &block)).expect("rewrites");
        let got = decoded(&mut Decoder::new(), &frames_of(&out)[0].1);
        assert_eq!(got[3], (":authority".to_owned(), "localhost".to_owned()));
    }
}

#[test]
fn continuation_padding_and_priority_make_one_plain_headers_frame() {
    let sent = kubelet_headers(SOCKET_PATH);
    let block = encode(&mut Encoder::new(), &sent);
    let (a, rest) = block.split_at(10);
    let (b, c) = rest.split_at(20);
    let mut payload = vec![7];
    payload.extend([0x80, 0, 0, 3, 200]); // exclusive dependency on stream 3, weight 201
    payload.extend(a);
    payload.extend([0; 7]);
    let mut input = frame(HEADERS, PADDED | PRIORITY | END_STREAM, 1, &payload);
    input.extend(frame(CONTINUATION, 0, 1, b));
    input.extend(frame(CONTINUATION, END_HEADERS, 1, c));
    input.extend(frame(DATA, 0x1, 1, &[0, 0, 0, 0, 0]));
    let out = rewrite(&input).expect("rewrites");
    let fs = frames_of(&out);
    assert_eq!(fs.len(), 2);
    assert_eq!(
        (fs[0].0.kind, fs[0].0.flags),
        (HEADERS, END_HEADERS | END_STREAM)
    );
    let mut want = owned(&sent);
    want[3].1 = "localhost".to_owned();
    assert_eq!(decoded(&mut Decoder::new(), &fs[0].1), want);
    assert_eq!(fs[1].0.kind, DATA);
    assert_eq!(fs[1].1, [0, 0, 0, 0, 0]);
}

#[test]
fn other_frames_pass_verbatim_in_order() {
    let block = encode(&mut Encoder::new(), &kubelet_headers(SOCKET_PATH));
    let settings = frame(SETTINGS, 0, 0, &[0, 4, 0, 1, 0, 0]);
    let window = frame(WINDOW_UPDATE, 0, 0, &[0, 0, 0x10, 0]);
    let data = frame(DATA, 0x1, 1, &[0, 0, 0, 0, 3, b'a', b'b', b'c']);
    let mut input = settings.clone();
    input.extend(&window);
    input.extend(frame(HEADERS, END_HEADERS, 1, &block));
    input.extend(&data);
    let out = rewrite(&input).expect("rewrites");
    let after = &out[PREFACE.len()..];
    assert_eq!(
        &after[..settings.len() + window.len()],
        [settings, window].concat()
    );
    assert!(out.ends_with(&data));
}

#[test]
fn input_in_any_pieces_gives_the_same_output() {
    let mut enc = Encoder::new();
    let mut input = PREFACE.to_vec();
    input.extend(frame(SETTINGS, 0, 0, &[]));
    for stream in [1, 3] {
        let block = encode(&mut enc, &kubelet_headers(SOCKET_PATH));
        let (a, b) = block.split_at(block.len() / 2);
        input.extend(frame(
            HEADERS,
            PADDED,
            stream,
            &[[2].as_slice(), a, &[0, 0]].concat(),
        ));
        input.extend(frame(CONTINUATION, END_HEADERS, stream, b));
        input.extend(frame(DATA, 0x1, stream, &[0; 300]));
    }
    let mut whole = Vec::new();
    Rewriter::new().push(&input, &mut whole).expect("rewrites");
    for size in [1, 2, 7, 9, 10, 64] {
        let mut r = Rewriter::new();
        let mut out = Vec::new();
        for piece in input.chunks(size) {
            r.push(piece, &mut out).expect("rewrites");
        }
        assert_eq!(out, whole, "pieces of {size}");
    }
}

#[test]
fn a_large_block_is_split_into_continuation_frames() {
    let big = "x".repeat(40_000);
    let sent = [
        (":method", "POST"),
        ("x-big", big.as_str()),
        (":authority", SOCKET_PATH),
    ];
    let block = encode(&mut Encoder::new(), &sent);
    let out = rewrite(&frame(HEADERS, END_HEADERS | END_STREAM, 7, &block)).expect("rewrites");
    let fs = frames_of(&out);
    let kinds: Vec<_> = fs.iter().map(|(h, _)| (h.kind, h.flags, h.len)).collect();
    let total: usize = fs.iter().map(|(h, _)| h.len).sum();
    assert_eq!(
        kinds,
        [
            (HEADERS, END_STREAM, MAX_FRAME),
            (CONTINUATION, 0, MAX_FRAME),
            (CONTINUATION, END_HEADERS, total - 2 * MAX_FRAME)
        ]
    );
    assert!(fs.iter().all(|(h, _)| h.stream == 7));
    let joined: Vec<u8> = fs.into_iter().flat_map(|(_, p)| p).collect();
    let got = decoded(&mut Decoder::new(), &joined);
    assert_eq!(got[1].1.len(), 40_000);
    assert_eq!(got[2].1, "localhost");
}

#[test]
fn an_oversize_block_is_refused_before_it_is_read() {
    // a frame header announcing more than the limit: refused without its payload
    let mut head = Vec::new();
    frame_header(&mut head, MAX_BLOCK + 1, HEADERS, END_HEADERS, 1);
    assert_eq!(rewrite(&head), Err(Error::TooLarge { stream: 1 }));
    // CONTINUATION frames adding up past it
    let chunk = vec![0x82; 16_000];
    let mut input = frame(HEADERS, 0, 3, &chunk);
    for _ in 0..4 {
        input.extend(frame(CONTINUATION, 0, 3, &chunk));
    }
    assert_eq!(rewrite(&input), Err(Error::TooLarge { stream: 3 }));
}

#[test]
fn a_block_that_decodes_past_the_limit_is_refused() {
    // one 4000-byte entry in the client's table, then 1-byte references to it
    let value = "v".repeat(4000);
    let mut enc = Encoder::new();
    let first = encode(&mut enc, &[("x-a", value.as_str())]);
    let mut input = frame(HEADERS, END_HEADERS, 1, &first);
    input.extend(frame(HEADERS, END_HEADERS, 3, &[0x80 | 62; 100]));
    assert_eq!(rewrite(&input), Err(Error::TooLarge { stream: 3 }));
}

#[test]
fn broken_framing_and_hpack_close_the_connection() {
    let mut out = Vec::new();
    assert_eq!(
        Rewriter::new().push(b"GET / HTTP/1.1\r\n", &mut out),
        Err(Error::Preface)
    );
    let block = encode(&mut Encoder::new(), &kubelet_headers(SOCKET_PATH));
    let cases = [
        (
            frame(CONTINUATION, END_HEADERS, 1, &block),
            Error::Continuation { stream: 1 },
        ),
        (
            [frame(HEADERS, 0, 1, &block), frame(DATA, 0, 1, &[])].concat(),
            Error::Interleaved {
                kind: DATA,
                got: 1,
                open: 1,
            },
        ),
        (
            [
                frame(HEADERS, 0, 1, &block),
                frame(CONTINUATION, END_HEADERS, 3, &[]),
            ]
            .concat(),
            Error::Interleaved {
                kind: CONTINUATION,
                got: 3,
                open: 1,
            },
        ),
        (
            [
                frame(HEADERS, 0, 1, &block),
                frame(HEADERS, END_HEADERS, 3, &[]),
            ]
            .concat(),
            Error::Interleaved {
                kind: HEADERS,
                got: 3,
                open: 1,
            },
        ),
        (
            frame(HEADERS, PADDED | END_HEADERS, 1, &[]),
            Error::Padding { stream: 1 },
        ),
        (
            frame(HEADERS, PADDED | END_HEADERS, 1, &[3, 0, 0]),
            Error::Padding { stream: 1 },
        ),
        (
            frame(HEADERS, PRIORITY | END_HEADERS, 1, &[0, 0, 0, 3]),
            Error::Priority { stream: 1 },
        ),
    ];
    for (input, want) in cases {
        assert_eq!(rewrite(&input), Err(want));
    }
    // an index past both tables; a table size update over the allowed size
    for bad in [vec![0xff, 0x7f], vec![0x3f, 0xe1, 0x3f, 0x82]] {
        assert!(matches!(
            rewrite(&frame(HEADERS, END_HEADERS, 1, &bad)),
            Err(Error::Hpack { stream: 1, .. })
        ));
    }
}

/// Deterministic pseudo-random bytes (xorshift).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn garbage_is_an_error_never_a_panic() {
    let block = encode(&mut Encoder::new(), &kubelet_headers(SOCKET_PATH));
    let valid = frame(HEADERS, END_HEADERS, 1, &block);
    for seed in 0..2000u64 {
        let n = noise(seed, 600);
        // random frames
        let _ = rewrite(&n);
        // random header blocks, with plausible frame headers
        let len = (n[0] as usize) % 200;
        let _ = rewrite(&frame(HEADERS, n[1] & 0x2d, 1, &n[2..2 + len]));
        // a valid request with a few bytes flipped
        let mut m = valid.clone();
        for k in 0..3 {
            let i = (n[k * 2] as usize * 256 + n[k * 2 + 1] as usize) % m.len();
            m[i] ^= n[10 + k] | 1;
        }
        let _ = rewrite(&m);
    }
}

/// The registration server, fronted or not, on a fresh socket.
async fn registration_server(dir: &Path, fronted: bool) -> std::path::PathBuf {
    let path = dir.join("smartnic.io-reg.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    let router = tonic::transport::Server::builder().add_service(RegistrationServer::new(
        RegistrationService {
            endpoint: dir.join("dra.sock"),
        },
    ));
    if fronted {
        tokio::spawn(router.serve_with_incoming(incoming(listener)));
    } else {
        tokio::spawn(router.serve_with_incoming(UnixListenerStream::new(listener)));
    }
    path
}

/// What the server answered on stream 1.
#[derive(Debug, Default)]
pub(crate) struct Answer {
    /// Response headers, then trailers.
    pub(crate) headers: Vec<Vec<(String, String)>>,
    /// The DATA frames' payloads.
    pub(crate) data: Vec<u8>,
    /// The RST_STREAM error code.
    pub(crate) reset: Option<u32>,
    pub(crate) goaway: bool,
}

/// Sends GetInfo as the kubelet's plugin watcher does (`:authority` the socket's path) and
/// reads the answer frame by frame.
pub(crate) async fn kubelet_get_info(socket: &Path, authority: &str) -> Answer {
    let mut conn = UnixStream::connect(socket).await.expect("connect");
    let mut req = PREFACE.to_vec();
    req.extend(frame(SETTINGS, 0, 0, &[]));
    let block = encode(&mut Encoder::new(), &kubelet_headers(authority));
    req.extend(frame(HEADERS, END_HEADERS, 1, &block));
    req.extend(frame(DATA, END_STREAM, 1, &[0, 0, 0, 0, 0]));
    conn.write_all(&req).await.expect("write");
    let mut dec = Decoder::new();
    let mut answer = Answer::default();
    let read = async {
        loop {
            let mut raw = [0; FRAME_HEADER];
            if conn.read_exact(&mut raw).await.is_err() {
                return;
            }
            let h = Head::parse(&raw);
            let mut payload = vec![0; h.len];
            conn.read_exact(&mut payload).await.expect("payload");
            match h.kind {
                SETTINGS if h.flags & 0x1 == 0 => {
                    conn.write_all(&frame(SETTINGS, 0x1, 0, &[]))
                        .await
                        .expect("ack");
                }
                HEADERS if h.stream == 1 => answer.headers.push(decoded(&mut dec, &payload)),
                DATA if h.stream == 1 => answer.data.extend(&payload),
                RST_STREAM if h.stream == 1 => {
                    answer.reset = Some(u32::from_be_bytes(payload[..4].try_into().expect("4")));
                    return;
                }
                GOAWAY => {
                    answer.goaway = true;
                    return;
                }
                _ => {}
            }
            if h.stream == 1 && h.flags & END_STREAM != 0 {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("an answer within 10 s");
    answer
}

#[tokio::test]
async fn the_kubelets_get_info_succeeds_behind_the_front() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = registration_server(dir.path(), true).await;
    for authority in [SOCKET_PATH, SOCKET_PATH_ESCAPED] {
        let a = kubelet_get_info(&socket, authority).await;
        assert_eq!(a.reset, None);
        assert!(!a.goaway);
        assert_eq!(a.headers.len(), 2, "response headers and trailers: {a:?}");
        assert!(a.headers[0].contains(&(":status".to_owned(), "200".to_owned())));
        assert!(a.headers[1].contains(&("grpc-status".to_owned(), "0".to_owned())));
        assert_eq!(a.data[0], 0, "not compressed");
        let len = u32::from_be_bytes(a.data[1..5].try_into().expect("4")) as usize;
        assert_eq!(a.data.len(), 5 + len);
        let info = PluginInfo::decode(&a.data[5..]).expect("PluginInfo");
        assert_eq!(info.name, "smartnic.io");
        assert_eq!(info.r#type, "DRAPlugin");
        assert_eq!(
            info.endpoint,
            dir.path().join("dra.sock").display().to_string()
        );
    }
}

#[tokio::test]
async fn without_the_front_the_kubelets_get_info_is_reset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = registration_server(dir.path(), false).await;
    for authority in [SOCKET_PATH, SOCKET_PATH_ESCAPED] {
        let a = kubelet_get_info(&socket, authority).await;
        assert_eq!(a.reset, Some(1), "RST_STREAM PROTOCOL_ERROR: {a:?}");
        assert!(a.headers.is_empty());
    }
}

#[tokio::test]
async fn a_grpc_client_calls_through_the_front_repeatedly() {
    // h2's own encoder: Huffman strings and indexed references across calls
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = registration_server(dir.path(), true).await;
    let channel = device_plugin::kubelet::connect(&socket)
        .await
        .expect("connect");
    let mut client = RegistrationClient::new(channel);
    for _ in 0..3 {
        let info = client
            .get_info(InfoRequest {})
            .await
            .expect("GetInfo")
            .into_inner();
        assert_eq!(info.name, "smartnic.io");
    }
}

#[tokio::test]
async fn a_bad_header_block_closes_the_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = registration_server(dir.path(), true).await;
    let mut conn = UnixStream::connect(&socket).await.expect("connect");
    let mut req = PREFACE.to_vec();
    req.extend(frame(SETTINGS, 0, 0, &[]));
    req.extend(frame(HEADERS, END_HEADERS, 1, &[0xff, 0x7f]));
    conn.write_all(&req).await.expect("write");
    let mut all = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut all)).await;
    assert!(closed.is_ok(), "the server closes the connection");
}
