//! SPDY/3.1 framing, as much of it as Kubernetes' port-forward uses
//! (moby/spdystream on the kubectl side): control frames (SYN_STREAM,
//! SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE) and data
//! frames, with header blocks in one zlib stream per direction primed with
//! the SPDY/3 dictionary. spdystream does no flow control, so window
//! updates are read and ignored.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

pub const VERSION: u16 = 3;
pub const SYN_STREAM: u16 = 1;
pub const SYN_REPLY: u16 = 2;
pub const RST_STREAM: u16 = 3;
pub const PING: u16 = 6;
pub const GOAWAY: u16 = 7;
pub const FLAG_FIN: u8 = 0x01;
/// Frames larger than this are refused (a header block or data frame from
/// kubectl is at most 32 KiB).
const MAX_FRAME: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    #[error("SPDY frame of {0} bytes is too large")]
    TooLarge(usize),
    #[error("SPDY version {0} is not supported")]
    Version(u16),
    #[error("malformed SPDY {0}")]
    Malformed(&'static str),
    #[error("SPDY header block: {0}")]
    Zlib(String),
}

/// The SPDY/3 header compression dictionary (draft 3, section 2.6.10.1):
/// length-prefixed common header names and values, then a run of common
/// status codes, reason phrases, dates and media types.
fn dictionary() -> Vec<u8> {
    const WORDS: &[&str] = &[
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ];
    const TAIL: &str = concat!(
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417",
        "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently",
        "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error",
        "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct ",
        "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,",
        "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,",
        "publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
    );
    let mut out = Vec::new();
    for w in WORDS {
        out.extend_from_slice(&(w.len() as u32).to_be_bytes());
        out.extend_from_slice(w.as_bytes());
    }
    out.extend_from_slice(TAIL.as_bytes());
    out
}

#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Control { kind: u16, flags: u8, data: Bytes },
    Data { stream: u32, flags: u8, data: Bytes },
}

/// Takes one whole frame off the front of `buf`, if it holds one.
pub fn parse(buf: &mut BytesMut) -> Result<Option<Frame>, SpdyError> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
    if len > MAX_FRAME {
        return Err(SpdyError::TooLarge(len));
    }
    if buf.len() < 8 + len {
        return Ok(None);
    }
    let head = buf.split_to(8);
    let data = buf.split_to(len).freeze();
    let flags = head[4];
    if head[0] & 0x80 != 0 {
        let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
        if version != VERSION {
            return Err(SpdyError::Version(version));
        }
        Ok(Some(Frame::Control {
            kind: u16::from_be_bytes([head[2], head[3]]),
            flags,
            data,
        }))
    } else {
        let stream = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        Ok(Some(Frame::Data {
            stream,
            flags,
            data,
        }))
    }
}

pub fn control(kind: u16, flags: u8, data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(8 + data.len());
    out.put_u16(0x8000 | VERSION);
    out.put_u16(kind);
    out.put_u32(((flags as u32) << 24) | data.len() as u32);
    out.put_slice(data);
    out.freeze()
}

pub fn data(stream: u32, fin: bool, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(8 + payload.len());
    out.put_u32(stream & 0x7fff_ffff);
    let flags = if fin { FLAG_FIN } else { 0 };
    out.put_u32(((flags as u32) << 24) | payload.len() as u32);
    out.put_slice(payload);
    out.freeze()
}

pub fn rst_stream(stream: u32, status: u32) -> Bytes {
    let mut body = Vec::with_capacity(8);
    body.extend_from_slice(&stream.to_be_bytes());
    body.extend_from_slice(&status.to_be_bytes());
    control(RST_STREAM, 0, &body)
}

fn be32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

/// A SYN_STREAM's stream ID and header block (still compressed).
pub fn syn_stream(data: &[u8]) -> Result<(u32, &[u8]), SpdyError> {
    let id = be32(data, 0).ok_or(SpdyError::Malformed("SYN_STREAM"))? & 0x7fff_ffff;
    let block = data.get(10..).ok_or(SpdyError::Malformed("SYN_STREAM"))?;
    Ok((id, block))
}

/// The two zlib streams of a session's header blocks.
pub struct HeaderCodec {
    inflate: Decompress,
    deflate: Compress,
    dict: Vec<u8>,
}

impl Default for HeaderCodec {
    fn default() -> HeaderCodec {
        let dict = dictionary();
        let mut deflate = Compress::new(Compression::default(), true);
        // Only fails for a stream already begun.
        let _ = deflate.set_dictionary(&dict);
        HeaderCodec {
            inflate: Decompress::new(true),
            deflate,
            dict,
        }
    }
}

impl HeaderCodec {
    /// Decodes a header block into lower-case names and values (values of
    /// a repeated header are NUL-joined, as SPDY sends them).
    pub fn decode(&mut self, mut block: &[u8]) -> Result<BTreeMap<String, String>, SpdyError> {
        let mut raw = Vec::with_capacity(block.len() * 4 + 256);
        loop {
            if raw.capacity() - raw.len() < 256 {
                raw.reserve(4096);
            }
            let before = self.inflate.total_in();
            let room = raw.capacity() - raw.len();
            let produced_before = raw.len();
            let result = self
                .inflate
                .decompress_vec(block, &mut raw, FlushDecompress::Sync);
            block = &block[(self.inflate.total_in() - before) as usize..];
            match result {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(&self.dict)
                        .map_err(|e| SpdyError::Zlib(e.to_string()))?;
                    continue;
                }
                Err(e) => return Err(SpdyError::Zlib(e.to_string())),
            }
            if block.is_empty() && raw.len() - produced_before < room {
                break;
            }
        }
        let mut headers = BTreeMap::new();
        let count = be32(&raw, 0).ok_or(SpdyError::Malformed("header block"))?;
        let mut at = 4;
        for _ in 0..count {
            let mut field = || -> Result<String, SpdyError> {
                let len = be32(&raw, at).ok_or(SpdyError::Malformed("header block"))? as usize;
                let value = raw
                    .get(at + 4..at + 4 + len)
                    .ok_or(SpdyError::Malformed("header block"))?;
                at += 4 + len;
                Ok(String::from_utf8_lossy(value).into_owned())
            };
            let name = field()?.to_ascii_lowercase();
            let value = field()?;
            headers.insert(name, value);
        }
        Ok(headers)
    }

    /// Encodes a header block (continuing this session's zlib stream).
    pub fn encode(&mut self, headers: &[(&str, &str)]) -> Result<Vec<u8>, SpdyError> {
        let mut raw = Vec::new();
        raw.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        for (k, v) in headers {
            for s in [k, v] {
                raw.extend_from_slice(&(s.len() as u32).to_be_bytes());
                raw.extend_from_slice(s.as_bytes());
            }
        }
        let mut out = Vec::with_capacity(raw.len() + 128);
        let mut input = &raw[..];
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(256);
            }
            let before = self.deflate.total_in();
            let room = out.capacity() - out.len();
            let produced_before = out.len();
            self.deflate
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::Zlib(e.to_string()))?;
            input = &input[(self.deflate.total_in() - before) as usize..];
            if input.is_empty() && out.len() - produced_before < room {
                return Ok(out);
            }
        }
    }

    /// A SYN_REPLY for `stream` with no headers.
    pub fn syn_reply(&mut self, stream: u32) -> Result<Bytes, SpdyError> {
        let block = self.encode(&[])?;
        let mut body = Vec::with_capacity(4 + block.len());
        body.extend_from_slice(&stream.to_be_bytes());
        body.extend_from_slice(&block);
        Ok(control(SYN_REPLY, 0, &body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_spdy3s() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        // zlib names a preset dictionary by its Adler-32 checksum.
        let (mut a, mut b) = (1u32, 0u32);
        for byte in &d {
            a = (a + *byte as u32) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 0xe3c6_a7c2);
    }

    #[test]
    fn header_blocks_round_trip_across_frames_of_one_stream() {
        // Our encoder stands in for the peer: one zlib stream, many blocks.
        let mut peer = HeaderCodec::default();
        let mut us = HeaderCodec::default();
        for id in ["0", "1", "2"] {
            let block = peer
                .encode(&[("streamtype", "data"), ("port", "8080"), ("requestid", id)])
                .expect("encode");
            let h = us.decode(&block).expect("decode");
            assert_eq!(h["streamtype"], "data");
            assert_eq!(h["port"], "8080");
            assert_eq!(h["requestid"], id);
        }
    }

    #[test]
    fn frames_parse_only_when_whole() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&data(5, true, b"hello"));
        buf.extend_from_slice(&control(PING, 0, &7u32.to_be_bytes())[..10]);
        assert_eq!(
            parse(&mut buf).expect("ok"),
            Some(Frame::Data {
                stream: 5,
                flags: FLAG_FIN,
                data: Bytes::from_static(b"hello")
            })
        );
        assert_eq!(parse(&mut buf).expect("ok"), None);
        buf.extend_from_slice(&7u32.to_be_bytes()[2..]);
        assert_eq!(
            parse(&mut buf).expect("ok"),
            Some(Frame::Control {
                kind: PING,
                flags: 0,
                data: Bytes::copy_from_slice(&7u32.to_be_bytes())
            })
        );
        let mut bad = BytesMut::from(&control(PING, 0, &[])[..]);
        bad[1] = 2;
        assert!(matches!(parse(&mut bad), Err(SpdyError::Version(2))));
    }
}
