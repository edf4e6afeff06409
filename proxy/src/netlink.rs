//! A netlink socket speaking nf_tables, for the nftables backend's
//! incremental updates: one batch (`BATCH_BEGIN`, messages, `BATCH_END`) is
//! one transaction, as `nft -f` sends it, but over a socket kept open for
//! the proxy's lifetime. Running `nft` instead costs a process start, a
//! cache fetch (nft 1.0.6 lists every chain of the table before an `add
//! rule` or `add element`) and, on exit, the kernel's RCU grace period
//! before a socket that committed a transaction may close: tens of
//! milliseconds with 10,000 chains, against well under one here.
//!
//! This module only frames messages ([`Msg`], [`Batch`]) and talks to the
//! kernel; [`crate::nftcompile`] decides what the messages say.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, sendto,
    setsockopt, socket, sockopt,
};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_APPEND: u16 = 0x800;
const NLA_F_NESTED: u16 = 0x8000;
/// `NFPROTO_IPV4`: our table is an `ip` table.
pub const FAMILY_IP: u8 = 2;
/// Larger batches go through `nft -f` (a full resync, thousands of
/// changed Services at once): the kernel must hold a batch in the
/// socket's send buffer.
pub const MAX_BATCH: usize = 1 << 20;
const SOCKET_BUFFER: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("cannot open a netlink socket: {0}")]
    Open(#[source] Errno),
    #[error("cannot enter the network namespace {path}: {source}")]
    Netns {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("netlink I/O failed: {0}")]
    Io(#[source] Errno),
    #[error("the kernel refused `{what}`: {errno}")]
    Refused { what: String, errno: Errno },
    #[error("the kernel did not acknowledge the transaction")]
    NoAck,
}

/// One netlink message being built: header, `nfgenmsg`, attributes.
#[derive(Debug)]
pub struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Msg {
    /// An nf_tables message (`kind` is `NFT_MSG_*`).
    pub fn new(kind: u16, flags: u16, family: u8) -> Msg {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set by `bytes`
        buf.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | kind).to_ne_bytes());
        buf.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // sequence, set by the batch
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port: the kernel fills it
        buf.extend_from_slice(&[family, 0, 0, 0]); // nfgenmsg: version 0, res_id 0
        Msg {
            buf,
            nests: Vec::new(),
        }
    }

    fn attr_header(&mut self, ty: u16, len: usize) {
        // Attribute lengths are u16 by the protocol; ours are tiny.
        let len = u16::try_from(4 + len).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    pub fn bytes(&mut self, ty: u16, data: &[u8]) -> &mut Msg {
        self.attr_header(ty, data.len());
        self.buf.extend_from_slice(data);
        self.pad();
        self
    }

    /// A NUL-terminated string, as the kernel's `NLA_STRING`s are sent.
    pub fn str(&mut self, ty: u16, s: &str) -> &mut Msg {
        self.attr_header(ty, s.len() + 1);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        self.pad();
        self
    }

    /// nf_tables integers are big-endian.
    pub fn u32(&mut self, ty: u16, v: u32) -> &mut Msg {
        self.bytes(ty, &v.to_be_bytes())
    }

    pub fn u64(&mut self, ty: u16, v: u64) -> &mut Msg {
        self.bytes(ty, &v.to_be_bytes())
    }

    /// Opens a nested attribute, closed by [`Msg::end`].
    pub fn nest(&mut self, ty: u16) -> &mut Msg {
        self.nests.push(self.buf.len());
        self.attr_header(ty | NLA_F_NESTED, 0);
        self
    }

    pub fn end(&mut self) -> &mut Msg {
        if let Some(start) = self.nests.pop() {
            let len = u16::try_from(self.buf.len() - start).unwrap_or(u16::MAX);
            self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }
}

/// Messages sent as one transaction, each with what it does (for errors).
#[derive(Debug, Default)]
pub struct Batch {
    msgs: Vec<(Msg, String)>,
}

impl Batch {
    pub fn push(&mut self, msg: Msg, what: String) {
        self.msgs.push((msg, what));
    }

    pub fn len(&self) -> usize {
        self.msgs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    /// The framed batch, sequence numbers from `seq`; the last message asks
    /// for an acknowledgement, so that success is an answer, not silence.
    fn frame(&self, seq: u32) -> Vec<u8> {
        let control = |kind: u16, seq: u32| {
            let mut m = Vec::with_capacity(20);
            m.extend_from_slice(&20u32.to_ne_bytes());
            m.extend_from_slice(&kind.to_ne_bytes());
            m.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
            m.extend_from_slice(&seq.to_ne_bytes());
            m.extend_from_slice(&0u32.to_ne_bytes());
            // nfgenmsg with res_id = the nf_tables subsystem (big-endian).
            m.extend_from_slice(&[0, 0, 0, NFNL_SUBSYS_NFTABLES as u8]);
            m
        };
        let mut out = control(NFNL_MSG_BATCH_BEGIN, seq);
        let last = self.msgs.len();
        for (i, (m, _)) in self.msgs.iter().enumerate() {
            let start = out.len();
            out.extend_from_slice(&m.buf);
            let len = u32::try_from(m.buf.len()).unwrap_or(u32::MAX);
            out[start..start + 4].copy_from_slice(&len.to_ne_bytes());
            let s = seq + 1 + i as u32;
            out[start + 8..start + 12].copy_from_slice(&s.to_ne_bytes());
            if i + 1 == last {
                let flags = u16::from_ne_bytes([out[start + 6], out[start + 7]]) | NLM_F_ACK;
                out[start + 6..start + 8].copy_from_slice(&flags.to_ne_bytes());
            }
        }
        out.extend(control(NFNL_MSG_BATCH_END, seq + 1 + last as u32));
        out
    }

    /// The framed size, to decide between the socket and `nft -f`.
    pub fn size(&self) -> usize {
        40 + self.msgs.iter().map(|(m, _)| m.buf.len()).sum::<usize>()
    }
}

/// An nf_tables netlink socket in one network namespace.
#[derive(Debug)]
pub struct Socket {
    fd: OwnedFd,
    seq: std::sync::atomic::AtomicU32,
}

impl Socket {
    /// A socket in this process's network namespace, or in the one at
    /// `netns` (a `/run/netns/NAME` file): a socket stays in the namespace
    /// it was created in, so a short-lived thread enters it to create it.
    pub fn open(netns: Option<&Path>) -> Result<Socket, NetlinkError> {
        let Some(path) = netns else {
            return Socket::open_here();
        };
        let file = std::fs::File::open(path).map_err(|source| NetlinkError::Netns {
            path: path.display().to_string(),
            source,
        })?;
        let path = path.display().to_string();
        std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                    NetlinkError::Netns {
                        path: path.clone(),
                        source: e.into(),
                    }
                })?;
                Socket::open_here()
            })
            .join()
            .unwrap_or_else(|_| {
                Err(NetlinkError::Netns {
                    path: path.clone(),
                    source: std::io::Error::other("the thread entering it panicked"),
                })
            })
        })
    }

    fn open_here() -> Result<Socket, NetlinkError> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkNetFilter,
        )
        .map_err(NetlinkError::Open)?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(NetlinkError::Open)?;
        // As nft does: room for a large batch and for its error answers.
        // The *Force options need CAP_NET_ADMIN, which a proxy has; the
        // plain ones are the fallback.
        if setsockopt(&fd, sockopt::SndBufForce, &SOCKET_BUFFER).is_err() {
            let _ = setsockopt(&fd, sockopt::SndBuf, &SOCKET_BUFFER);
        }
        if setsockopt(&fd, sockopt::RcvBufForce, &SOCKET_BUFFER).is_err() {
            let _ = setsockopt(&fd, sockopt::RcvBuf, &SOCKET_BUFFER);
        }
        Ok(Socket {
            fd,
            seq: std::sync::atomic::AtomicU32::new(1),
        })
    }

    /// Sends `batch` as one transaction. The kernel handles a batch within
    /// the send, so its answers (errors, and the last message's
    /// acknowledgement) are queued when `sendto` returns.
    pub fn apply(&self, batch: &Batch) -> Result<(), NetlinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let n = batch.len() as u32 + 2;
        let seq = self.seq.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        self.drain();
        let bytes = batch.frame(seq);
        sendto(
            self.fd.as_raw_fd(),
            &bytes,
            &NetlinkAddr::new(0, 0),
            MsgFlags::empty(),
        )
        .map_err(NetlinkError::Io)?;
        let last = seq + n - 2;
        let mut acked = false;
        let mut refused: Option<NetlinkError> = None;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let len = match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(len) => len,
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(NetlinkError::Io(e)),
            };
            for (ty, msg_seq, payload) in messages(&buf[..len]) {
                if ty != NLMSG_ERROR || payload.len() < 4 {
                    continue;
                }
                let code = i32::from_ne_bytes([payload[0], payload[1], payload[2], payload[3]]);
                if code == 0 {
                    acked |= msg_seq == last;
                } else if refused.is_none() {
                    let what = msg_seq
                        .checked_sub(seq + 1)
                        .and_then(|i| batch.msgs.get(i as usize))
                        .map_or_else(|| "the transaction".to_string(), |(_, w)| w.clone());
                    refused = Some(NetlinkError::Refused {
                        what,
                        errno: Errno::from_raw(-code),
                    });
                }
            }
        }
        match refused {
            Some(e) => Err(e),
            None if acked => Ok(()),
            None => Err(NetlinkError::NoAck),
        }
    }

    /// Drops answers left from an earlier transaction (none expected).
    fn drain(&self) {
        let mut buf = [0u8; 4096];
        while let Ok(len) = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
            if len == 0 {
                break;
            }
        }
    }
}

/// `(type, sequence, payload)` of each message in a datagram; a truncated
/// or malformed tail is ignored.
fn messages(mut data: &[u8]) -> Vec<(u16, u32, &[u8])> {
    let mut out = Vec::new();
    while data.len() >= 16 {
        let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
        if len < 16 || len > data.len() {
            break;
        }
        let ty = u16::from_ne_bytes([data[4], data[5]]);
        let seq = u32::from_ne_bytes([data[8], data[9], data[10], data[11]]);
        out.push((ty, seq, &data[16..len]));
        data = &data[len.next_multiple_of(4).min(data.len())..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_and_nests_carry_their_length() {
        let mut m = Msg::new(6, NLM_F_CREATE, FAMILY_IP);
        m.str(1, "fkx").nest(4).u32(1, 7).end();
        let b = &m.buf;
        // Header (16) + nfgenmsg (4), then "fkx\0" in an 8-byte attribute.
        assert_eq!(&b[20..28], &[8, 0, 1, 0, b'f', b'k', b'x', 0]);
        // The nest: 4 + an 8-byte u32 attribute, flagged nested.
        assert_eq!(u16::from_ne_bytes([b[28], b[29]]), 12);
        assert_eq!(u16::from_ne_bytes([b[30], b[31]]), 4 | NLA_F_NESTED);
        assert_eq!(&b[36..40], &7u32.to_be_bytes());
    }

    #[test]
    fn a_batch_is_framed_with_sequences_and_an_ack_on_the_last_message() {
        let mut batch = Batch::default();
        batch.push(Msg::new(3, NLM_F_CREATE, FAMILY_IP), "one".into());
        batch.push(Msg::new(3, NLM_F_CREATE, FAMILY_IP), "two".into());
        let bytes = batch.frame(100);
        let msgs = messages(&bytes);
        let seqs: Vec<u32> = msgs.iter().map(|m| m.1).collect();
        assert_eq!(seqs, [100, 101, 102, 103]);
        let types: Vec<u16> = msgs.iter().map(|m| m.0).collect();
        assert_eq!(types, [16, (10 << 8) | 3, (10 << 8) | 3, 17]);
        let flags = |i: usize| {
            let start = 20 * i;
            u16::from_ne_bytes([bytes[start + 6], bytes[start + 7]])
        };
        assert_eq!(flags(1) & NLM_F_ACK, 0);
        assert_eq!(flags(2) & NLM_F_ACK, NLM_F_ACK);
        assert_eq!(bytes.len(), batch.size());
    }

    #[test]
    fn a_truncated_datagram_yields_only_its_whole_messages() {
        let mut batch = Batch::default();
        batch.push(Msg::new(3, 0, FAMILY_IP), "one".into());
        let bytes = batch.frame(1);
        assert_eq!(messages(&bytes[..30]).len(), 1);
    }
}
