//! The Kubernetes CRI container log format, one record per line:
//! `2016-10-06T00:17:09.669794202Z stdout F text`. `F` ends a line of the
//! container's output; `P` is a piece of a longer line (the writer splits
//! lines past [`MAX_LINE`] so one endless line cannot grow memory).

use jiff::Timestamp;

/// Longest piece written as one record (containerd's CRI plugin uses 16 KiB).
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One parsed record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<'a> {
    pub time: Timestamp,
    pub stream: Stream,
    /// `false` for a `P` piece: the line goes on in the next record.
    pub full: bool,
    pub content: &'a [u8],
}

/// Appends one record (`content` without its newline) to `out`.
pub fn encode(out: &mut Vec<u8>, time: Timestamp, stream: Stream, full: bool, content: &[u8]) {
    out.extend_from_slice(time.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_str().as_bytes());
    out.extend_from_slice(if full { b" F " } else { b" P " });
    out.extend_from_slice(content);
    out.push(b'\n');
}

/// Parses one line of a log file (without its newline); `None` for a
/// malformed one, which readers skip as the kubelet does.
pub fn parse(line: &[u8]) -> Option<Record<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let full = match parts.next()? {
        b"F" => true,
        b"P" => false,
        _ => return None,
    };
    Some(Record {
        time,
        stream,
        full,
        content: parts.next().unwrap_or_default(),
    })
}

/// Splits a stream's bytes into records: complete lines come out as `F`,
/// pieces of an over-long line as `P`; the rest waits for more input.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Feeds `data`; `emit(full, content)` is called per record.
    pub fn push(&mut self, data: &[u8], mut emit: impl FnMut(bool, &[u8])) {
        self.pending.extend_from_slice(data);
        let mut start = 0;
        while let Some(nl) = self.pending[start..].iter().position(|b| *b == b'\n') {
            let end = start + nl;
            let mut piece = start;
            while end - piece > MAX_LINE {
                emit(false, &self.pending[piece..piece + MAX_LINE]);
                piece += MAX_LINE;
            }
            emit(true, &self.pending[piece..end]);
            start = end + 1;
        }
        while self.pending.len() - start >= MAX_LINE {
            emit(false, &self.pending[start..start + MAX_LINE]);
            start += MAX_LINE;
        }
        self.pending.drain(..start);
    }

    /// At end of stream an unterminated last line still counts as a line.
    pub fn finish(&mut self, mut emit: impl FnMut(bool, &[u8])) {
        if !self.pending.is_empty() {
            emit(true, &self.pending);
            self.pending.clear();
        }
    }
}

/// The container's output as it wrote it, from a whole CRI log file
/// (tests and `kubectl logs` without options).
pub fn plain_text(file: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in file.split(|b| *b == b'\n') {
        if let Some(r) = parse(line) {
            out.extend_from_slice(r.content);
            if r.full {
                out.push(b'\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<(bool, Vec<u8>)> {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, |full, content| out.push((full, content.to_vec())));
        }
        s.finish(|full, content| out.push((full, content.to_vec())));
        out
    }

    #[test]
    fn records_round_trip_through_encode_and_parse() {
        let t: Timestamp = "2016-10-06T00:17:09.669794202Z".parse().expect("time");
        let mut out = Vec::new();
        encode(&mut out, t, Stream::Stderr, false, b"a b c");
        assert_eq!(out, b"2016-10-06T00:17:09.669794202Z stderr P a b c\n");
        let r = parse(&out[..out.len() - 1]).expect("parses");
        assert_eq!(
            r,
            Record {
                time: t,
                stream: Stream::Stderr,
                full: false,
                content: b"a b c"
            }
        );
    }

    #[test]
    fn malformed_lines_are_rejected() {
        assert!(parse(b"").is_none());
        assert!(parse(b"yesterday stdout F x").is_none());
        assert!(parse(b"2016-10-06T00:17:09Z stdin F x").is_none());
        assert!(parse(b"2016-10-06T00:17:09Z stdout X x").is_none());
        assert_eq!(
            parse(b"2016-10-06T00:17:09Z stdout F").map(|r| r.content.len()),
            Some(0)
        );
    }

    #[test]
    fn splitter_joins_chunks_into_lines_and_flushes_the_last() {
        assert_eq!(
            split(&[b"he", b"llo\nwor", b"ld\n\nend"]),
            vec![
                (true, b"hello".to_vec()),
                (true, b"world".to_vec()),
                (true, b"".to_vec()),
                (true, b"end".to_vec()),
            ]
        );
    }

    #[test]
    fn splitter_cuts_over_long_lines_into_partial_records() {
        let long = vec![b'x'; MAX_LINE * 2 + 5];
        let mut input = long.clone();
        input.push(b'\n');
        let out = split(&[&input]);
        assert_eq!(out.len(), 3);
        assert!(!out[0].0 && !out[1].0 && out[2].0);
        assert_eq!(out[2].1.len(), 5);
        let mut file = Vec::new();
        let t = Timestamp::UNIX_EPOCH;
        for (full, c) in &out {
            encode(&mut file, t, Stream::Stdout, *full, c);
        }
        assert_eq!(plain_text(&file), input);
    }
}
