//! Frames on the wire: request templates patched in place (no allocation per request), the
//! session handshake (after the TLS handshake with `--tls`), and a small blocking client for
//! setting up and cleaning up.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use rustls::{ClientConnection, StreamOwned};

use crate::tls::TlsClient;

use rzk_proto::{
    encode_request, xid, Acl, ConnectRequest, ConnectResponse, CreateRequest, ErrorCode, MultiOp,
    OpCode, Reader, ReplyHeader, Request,
};

/// Frames above this are refused as a protocol error (a reply of a benchmark op is small).
pub const MAX_REPLY_FRAME_BYTES: usize = 64 << 20;

/// Digits of a key number in a path: `{base}/k0000000042`.
pub const KEY_DIGITS: usize = 10;
/// Digits of a created node's sequence: `{base}/c/s00003-000000000042`.
pub const SEQ_DIGITS: usize = 12;

pub fn key_path(base: &str, key: u64) -> String {
    format!("{base}/k{key:0w$}", w = KEY_DIGITS)
}

pub fn create_dir(base: &str) -> String {
    format!("{base}/c")
}

pub fn created_path(base: &str, session: usize, seq: u64) -> String {
    format!("{base}/c/s{session:05}-{seq:0w$}", w = SEQ_DIGITS)
}

/// Writes `n` as zero-padded decimal into `out`, keeping the last digits if it is too long.
pub fn write_digits(out: &mut [u8], mut n: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// An encoded request frame with the offsets of the fields that change per request: the xid
/// (always at byte 4) and decimal number slots inside paths.
#[derive(Debug, Clone)]
pub struct Template {
    pub frame: Vec<u8>,
    /// (offset, width) of each number slot, in the order the request lists them.
    pub slots: Vec<(usize, usize)>,
}

impl Template {
    /// Encodes `request` and finds each of `slot_paths` (whose last `width` bytes are the
    /// number slot) in the frame.
    fn new(request: &Request, slot_paths: &[String], width: usize) -> Template {
        let frame = encode_request(1, request);
        let mut slots = Vec::new();
        let mut from = 8;
        for path in slot_paths {
            let at = find(&frame[from..], path.as_bytes())
                .map(|i| i + from)
                .expect("a request frame holds the paths it was built from");
            slots.push((at + path.len() - width, width));
            from = at + path.len();
        }
        Template { frame, slots }
    }

    /// Appends the frame to `out` with this xid and these slot numbers.
    pub fn append(&self, out: &mut Vec<u8>, xid: i32, numbers: &[u64]) {
        let start = out.len();
        out.extend_from_slice(&self.frame);
        out[start + 4..start + 8].copy_from_slice(&xid.to_be_bytes());
        for (&(offset, width), &n) in self.slots.iter().zip(numbers) {
            write_digits(&mut out[start + offset..start + offset + width], n);
        }
    }

    #[cfg(test)]
    pub fn op(&self) -> i32 {
        i32::from_be_bytes([self.frame[8], self.frame[9], self.frame[10], self.frame[11]])
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub fn create_request(path: String, data: Vec<u8>) -> Request {
    Request::Create(CreateRequest {
        op: OpCode::Create,
        path,
        data: Some(data),
        acl: Acl::open_unsafe(),
        flags: 0,
        ttl_ms: -1,
    })
}

pub fn value(size: usize) -> Vec<u8> {
    vec![b'x'; size]
}

/// The templates one session uses.
pub struct Templates {
    pub create: Template,
    pub set: Template,
    pub get: Template,
    pub exists: Template,
    pub multi: Template,
}

impl Templates {
    pub fn new(base: &str, session: usize, value_size: usize, multi_ops: usize) -> Templates {
        let data = value(value_size);
        let key0 = key_path(base, 0);
        let created0 = created_path(base, session, 0);
        // Distinct placeholders so each multi slot is found at its own place.
        let multi_paths: Vec<String> = (0..multi_ops as u64).map(|i| key_path(base, i)).collect();
        Templates {
            create: Template::new(
                &create_request(created0.clone(), data.clone()),
                &[created0],
                SEQ_DIGITS,
            ),
            set: Template::new(
                &Request::SetData {
                    path: key0.clone(),
                    data: Some(data.clone()),
                    version: -1,
                },
                std::slice::from_ref(&key0),
                KEY_DIGITS,
            ),
            get: Template::new(
                &Request::GetData {
                    path: key0.clone(),
                    watch: false,
                },
                std::slice::from_ref(&key0),
                KEY_DIGITS,
            ),
            exists: Template::new(
                &Request::Exists {
                    path: key0.clone(),
                    watch: false,
                },
                std::slice::from_ref(&key0),
                KEY_DIGITS,
            ),
            multi: Template::new(
                &Request::Multi(
                    multi_paths
                        .iter()
                        .map(|p| MultiOp::SetData {
                            path: p.clone(),
                            data: Some(data.clone()),
                            version: -1,
                        })
                        .collect(),
                ),
                &multi_paths,
                KEY_DIGITS,
            ),
        }
    }
}

/// The 12-byte ping frame (xid -2, op 11).
pub fn ping_frame() -> Vec<u8> {
    encode_request(xid::PING, &Request::Ping)
}

/// A readable name for a ZooKeeper error code, e.g. `NoNode(-101)`.
pub fn error_name(code: i32) -> String {
    match ErrorCode::from_i32(code) {
        Some(e) => format!("{e:?}({code})"),
        None => format!("Unknown({code})"),
    }
}

fn io_err(what: &str, host: &str, e: std::io::Error) -> String {
    format!("{host}: {what}: {e}")
}

/// A blocking connection: plain TCP, or TLS over it once the handshake is done.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Conn {
    /// The socket, and the TLS state that must keep driving it (for the measured sessions).
    pub fn into_parts(self) -> (TcpStream, Option<Box<ClientConnection>>) {
        match self {
            Conn::Plain(s) => (s, None),
            Conn::Tls(t) => {
                let (conn, sock) = t.into_parts();
                (sock, Some(Box::new(conn)))
            }
        }
    }

    /// "TLSv1_3 TLS13_AES_256_GCM_SHA384", or None for plain TCP.
    pub fn tls_description(&self) -> Option<String> {
        match self {
            Conn::Plain(_) => None,
            Conn::Tls(t) => Some(crate::tls::describe(&t.conn)),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(t) => t.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(t) => t.flush(),
        }
    }
}

/// Reads one length-prefixed frame into `buf` (resized to the frame body).
pub fn read_frame(stream: &mut impl Read, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let len = i32::from_be_bytes(len);
    if len < 0 || len as usize > MAX_REPLY_FRAME_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame length {len}"),
        ));
    }
    buf.resize(len as usize, 0);
    stream.read_exact(buf)
}

/// Connects (and with `tls`, completes the TLS handshake) and opens a new session, all
/// blocking (TCP_NODELAY, I/O timeouts set).
pub fn connect(
    host: &str,
    tls: Option<&TlsClient>,
    session_timeout_ms: i32,
    io_timeout: Duration,
) -> Result<(Conn, ConnectResponse), String> {
    let addrs: Vec<_> = host
        .to_socket_addrs()
        .map_err(|e| io_err("cannot resolve", host, e))?
        .collect();
    let mut last = None;
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, io_timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let mut stream = match (stream, last) {
        (Some(s), _) => s,
        (None, Some(e)) => return Err(io_err("cannot connect", host, e)),
        (None, None) => return Err(format!("{host}: resolves to no address")),
    };
    stream
        .set_nodelay(true)
        .and_then(|_| stream.set_read_timeout(Some(io_timeout)))
        .and_then(|_| stream.set_write_timeout(Some(io_timeout)))
        .map_err(|e| io_err("socket options", host, e))?;
    let mut stream = match tls {
        None => Conn::Plain(stream),
        Some(tls) => {
            let mut conn = tls.connection(host)?;
            while conn.is_handshaking() {
                conn.complete_io(&mut stream)
                    .map_err(|e| io_err("TLS handshake", host, e))?;
            }
            Conn::Tls(Box::new(StreamOwned::new(conn, stream)))
        }
    };
    let request = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms: session_timeout_ms,
        session_id: 0,
        passwd: vec![0; 16],
        read_only: Some(false),
    };
    stream
        .write_all(&request.encode_frame())
        .and_then(|_| stream.flush())
        .map_err(|e| io_err("sending the connect request", host, e))?;
    let mut buf = Vec::new();
    read_frame(&mut stream, &mut buf).map_err(|e| io_err("reading the connect reply", host, e))?;
    let response =
        ConnectResponse::decode(&buf).map_err(|e| format!("{host}: bad connect reply: {e}"))?;
    if response.timeout_ms <= 0 || response.session_id == 0 {
        return Err(format!("{host}: the server refused the session"));
    }
    Ok((stream, response))
}

/// A blocking client for setup and cleanup: pipelines a stream of requests with a window.
pub struct SyncClient {
    pub host: String,
    stream: Conn,
    next_xid: i32,
    buf: Vec<u8>,
}

impl SyncClient {
    pub fn connect(
        host: &str,
        tls: Option<&TlsClient>,
        session_timeout_ms: i32,
    ) -> Result<SyncClient, String> {
        let (stream, _) = connect(host, tls, session_timeout_ms, Duration::from_secs(10))?;
        Ok(SyncClient {
            host: host.to_owned(),
            stream,
            next_xid: 1,
            buf: Vec::new(),
        })
    }

    /// Sends every request (at most `window` outstanding) and calls `on_reply(index, err)`
    /// for each reply in order. Stops sending at `deadline`; returns how many were answered.
    pub fn pipeline(
        &mut self,
        requests: &mut dyn Iterator<Item = Request>,
        window: usize,
        deadline: Instant,
        on_reply: &mut dyn FnMut(u64, i32) -> Result<(), String>,
    ) -> Result<u64, String> {
        let mut outstanding: std::collections::VecDeque<(i32, u64)> = Default::default();
        let mut sent = 0u64;
        let mut answered = 0u64;
        let mut out = Vec::new();
        let mut exhausted = false;
        loop {
            out.clear();
            while !exhausted && outstanding.len() < window.max(1) && Instant::now() < deadline {
                match requests.next() {
                    Some(r) => {
                        let xid = self.next_xid;
                        self.next_xid = self.next_xid.checked_add(1).unwrap_or(1);
                        out.extend_from_slice(&encode_request(xid, &r));
                        outstanding.push_back((xid, sent));
                        sent += 1;
                    }
                    None => exhausted = true,
                }
            }
            if !out.is_empty() {
                self.stream
                    .write_all(&out)
                    .and_then(|_| self.stream.flush())
                    .map_err(|e| io_err("sending", &self.host, e))?;
            }
            let Some((want, index)) = outstanding.pop_front() else {
                return Ok(answered);
            };
            let header = loop {
                read_frame(&mut self.stream, &mut self.buf)
                    .map_err(|e| io_err("reading a reply", &self.host, e))?;
                let header = ReplyHeader::decode(&mut Reader::new(&self.buf))
                    .map_err(|e| format!("{}: bad reply: {e}", self.host))?;
                if header.xid != xid::WATCH_EVENT && header.xid != xid::PING {
                    break header;
                }
            };
            if header.xid != want {
                return Err(format!(
                    "{}: reply xid {} where {want} was due",
                    self.host, header.xid
                ));
            }
            answered += 1;
            on_reply(index, header.err)?;
            if Instant::now() >= deadline && outstanding.is_empty() {
                return Ok(answered);
            }
        }
    }

    /// What TLS the connection negotiated (None: plain TCP).
    pub fn tls_description(&self) -> Option<String> {
        self.stream.tls_description()
    }

    /// One request; returns the reply's error code.
    pub fn call(&mut self, request: Request) -> Result<i32, String> {
        let mut err = 0;
        self.pipeline(
            &mut std::iter::once(request),
            1,
            Instant::now() + Duration::from_secs(10),
            &mut |_, e| {
                err = e;
                Ok(())
            },
        )?;
        Ok(err)
    }

    /// Closes the session (best effort).
    pub fn close(mut self) {
        let _ = self.call(Request::CloseSession);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rzk_proto::decode_request;

    #[test]
    fn digits_are_zero_padded_and_truncated_from_the_left() {
        let mut b = [0u8; 5];
        write_digits(&mut b, 42);
        assert_eq!(&b, b"00042");
        write_digits(&mut b, 1_234_567);
        assert_eq!(&b, b"34567");
    }

    #[test]
    fn patched_templates_decode_to_the_intended_requests() {
        let t = Templates::new("/rzk-bench-1-2", 7, 5, 3);
        let mut out = Vec::new();
        t.set.append(&mut out, 99, &[123]);
        let (h, r) = decode_request(&out[4..]).unwrap();
        assert_eq!(h.xid, 99);
        assert_eq!(
            r,
            Request::SetData {
                path: "/rzk-bench-1-2/k0000000123".into(),
                data: Some(b"xxxxx".to_vec()),
                version: -1
            }
        );
        out.clear();
        t.create.append(&mut out, 5, &[77]);
        let (_, r) = decode_request(&out[4..]).unwrap();
        let Request::Create(c) = r else { panic!() };
        assert_eq!(c.path, "/rzk-bench-1-2/c/s00007-000000000077");
        assert_eq!(c.path, created_path("/rzk-bench-1-2", 7, 77));
        out.clear();
        t.multi.append(&mut out, 6, &[9, 8, 7]);
        let (_, r) = decode_request(&out[4..]).unwrap();
        let Request::Multi(ops) = r else { panic!() };
        let paths: Vec<_> = ops.iter().map(|o| o.path().to_owned()).collect();
        assert_eq!(
            paths,
            [
                "/rzk-bench-1-2/k0000000009",
                "/rzk-bench-1-2/k0000000008",
                "/rzk-bench-1-2/k0000000007"
            ]
        );
        assert_eq!(t.get.op(), OpCode::GetData.code());
        assert_eq!(t.exists.op(), OpCode::Exists.code());
        // Two requests back to back in one buffer stay independent.
        out.clear();
        t.get.append(&mut out, 1, &[1]);
        t.get.append(&mut out, 2, &[2]);
        let n = t.get.frame.len();
        assert_eq!(decode_request(&out[n + 4..]).unwrap().0.xid, 2);
    }

    #[test]
    fn ping_frame_is_xid_minus_two_op_eleven() {
        let f = ping_frame();
        assert_eq!(f, [0, 0, 0, 8, 0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 11]);
    }

    #[test]
    fn error_names() {
        assert_eq!(error_name(-101), "NoNode(-101)");
        assert_eq!(error_name(-999), "Unknown(-999)");
    }
}
