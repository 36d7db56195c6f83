//! The measured loops of `bench ipc`, on both ends: untraced calls through
//! `sys::fast`, no allocation, no formatting, buffers reused.
//!
//! The parent drives; the child obeys one 16-byte order at a time, sent on
//! the same channel: echo `count` messages of `size` bytes, swallow `bytes`
//! in `chunk`-byte pieces and say so with one byte, answer `count` RPC NULL
//! calls, or quit.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;

use crate::error::Error;
use crate::packet::rpc::{AcceptStat, MessageBody, ReplyBody, RpcMessage};
use crate::sys::fast::{self, Ring};

/// One end of a two-way channel.
pub enum Chan<'m> {
    /// Descriptors: two pipes or FIFOs (rx ≠ tx), or one socket (rx = tx).
    Fd {
        rx: BorrowedFd<'m>,
        tx: BorrowedFd<'m>,
    },
    /// Two shared-memory rings, one per direction.
    Shm { rx: Ring<'m>, tx: Ring<'m> },
}

impl Chan<'_> {
    fn send(&self, data: &[u8]) -> Result<(), Errno> {
        match self {
            Chan::Fd { tx, .. } => fast::write_all(*tx, data),
            Chan::Shm { tx, .. } => tx.write_all(data),
        }
    }

    /// Fills `buf`; EPIPE when the peer closed first.
    fn recv(&self, buf: &mut [u8]) -> Result<(), Errno> {
        match self {
            Chan::Fd { rx, .. } => match fast::read_exact(*rx, buf)? {
                true => Ok(()),
                false => Err(Errno::EPIPE),
            },
            Chan::Shm { rx, .. } => rx.read_exact(buf),
        }
    }

    /// One read: one datagram, or what a stream has (at most `buf.len()`).
    fn recv_some(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        match self {
            Chan::Fd { rx, .. } => match fast::read(*rx, buf)? {
                0 => Err(Errno::EPIPE),
                n => Ok(n),
            },
            Chan::Shm { rx, .. } => rx.read_exact(buf).map(|()| buf.len()),
        }
    }
}

/// An order from the parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Quit,
    Echo { size: u32, count: u64 },
    Swallow { chunk: u32, bytes: u64 },
    Rpc { stream: bool, count: u64 },
}

impl Order {
    fn encode(self) -> [u8; 16] {
        let (op, a, b) = match self {
            Order::Quit => (0u32, 0u32, 0u64),
            Order::Echo { size, count } => (1, size, count),
            Order::Swallow { chunk, bytes } => (2, chunk, bytes),
            Order::Rpc { stream, count } => (3, u32::from(stream), count),
        };
        let mut h = [0u8; 16];
        h[..4].copy_from_slice(&op.to_le_bytes());
        h[4..8].copy_from_slice(&a.to_le_bytes());
        h[8..].copy_from_slice(&b.to_le_bytes());
        h
    }

    fn decode(h: &[u8; 16]) -> Option<Order> {
        let op = u32::from_le_bytes(h[..4].try_into().ok()?);
        let a = u32::from_le_bytes(h[4..8].try_into().ok()?);
        let b = u64::from_le_bytes(h[8..].try_into().ok()?);
        Some(match op {
            0 => Order::Quit,
            1 => Order::Echo { size: a, count: b },
            2 => Order::Swallow { chunk: a, bytes: b },
            3 => Order::Rpc {
                stream: a != 0,
                count: b,
            },
            _ => return None,
        })
    }
}

/// The program number of the bench's NULL calls (from the range RFC 5531
/// leaves to users, 0x20000000–0x3fffffff), version 1, procedure 0.
pub const RPC_PROG: u32 = 0x2000_1bec;

/// The child's side: obeys orders until told to quit, or the parent goes.
pub fn obey(chan: &Chan<'_>, buf: &mut [u8]) -> Result<(), Errno> {
    let reply = RpcMessage::success(0, Vec::new())
        .encode()
        .map_err(|_| Errno::EINVAL)?;
    let mut marked = Vec::with_capacity(reply.len() + 4);
    marked.extend_from_slice(&(0x8000_0000u32 | reply.len() as u32).to_be_bytes());
    marked.extend_from_slice(&reply);
    loop {
        let mut h = [0u8; 16];
        match chan.recv(&mut h) {
            Ok(()) => {}
            Err(Errno::EPIPE) => return Ok(()),
            Err(e) => return Err(e),
        }
        match Order::decode(&h).ok_or(Errno::EPROTO)? {
            Order::Quit => return Ok(()),
            Order::Echo { size, count } => {
                let m = buf.get_mut(..size as usize).ok_or(Errno::EMSGSIZE)?;
                for _ in 0..count {
                    chan.recv(m)?;
                    chan.send(m)?;
                }
            }
            Order::Swallow { chunk, bytes } => {
                let mut left = bytes;
                while left > 0 {
                    let n = left.min(u64::from(chunk)) as usize;
                    chan.recv(buf.get_mut(..n).ok_or(Errno::EMSGSIZE)?)?;
                    left -= n as u64;
                }
                chan.send(&[1])?;
            }
            Order::Rpc { stream, count } => {
                let out: &mut [u8] = if stream {
                    &mut marked
                } else {
                    &mut marked[4..]
                };
                for _ in 0..count {
                    let len = recv_rpc(chan, stream, buf)?;
                    let msg = RpcMessage::decode(&buf[..len]).map_err(|_| Errno::EBADMSG)?;
                    let ok = msg
                        .as_call()
                        .is_some_and(|c| c.prog == RPC_PROG && c.vers == 1 && c.proc == 0);
                    if !ok {
                        return Err(Errno::EBADMSG);
                    }
                    let at = if stream { 4 } else { 0 };
                    out[at..at + 4].copy_from_slice(&msg.xid.to_be_bytes());
                    chan.send(out)?;
                }
            }
        }
    }
}

/// Receives one RPC message: one datagram, or one record (4-byte mark with
/// the last-fragment bit, then the body) on a stream.
fn recv_rpc(chan: &Chan<'_>, stream: bool, buf: &mut [u8]) -> Result<usize, Errno> {
    if !stream {
        return chan.recv_some(buf);
    }
    let mut mark = [0u8; 4];
    chan.recv(&mut mark)?;
    let m = u32::from_be_bytes(mark);
    let len = (m & 0x7fff_ffff) as usize;
    if m & 0x8000_0000 == 0 || len > buf.len() {
        return Err(Errno::EBADMSG);
    }
    chan.recv(&mut buf[..len])?;
    Ok(len)
}

/// Buffers the parent reuses across every loop.
pub struct Bufs {
    pub out: Vec<u8>,
    pub back: Vec<u8>,
    /// A NULL call (record-marked: the mark is the first 4 bytes).
    call: Vec<u8>,
}

impl Bufs {
    pub fn new(size: usize) -> Self {
        let out = (0..size).map(|i| (i % 251) as u8).collect();
        let body = RpcMessage::call(
            0,
            RPC_PROG,
            1,
            0,
            crate::packet::rpc::auth::OpaqueAuth::None,
            Vec::new(),
        )
        .encode()
        .unwrap_or_default();
        let mut call = (0x8000_0000u32 | body.len() as u32).to_be_bytes().to_vec();
        call.extend_from_slice(&body);
        Bufs {
            out,
            back: vec![0; size.max(4096)],
            call,
        }
    }
}

/// `count` round trips of `size` bytes; checks each reply; the time they took.
pub fn round_trips(
    chan: &Chan<'_>,
    b: &mut Bufs,
    size: usize,
    count: u64,
) -> Result<Duration, Errno> {
    if fast::stopping() {
        return Err(Errno::EINTR);
    }
    chan.send(
        &Order::Echo {
            size: size as u32,
            count,
        }
        .encode(),
    )?;
    let (out, back) = (&b.out[..size], &mut b.back[..size]);
    let t = Instant::now();
    for _ in 0..count {
        chan.send(out)?;
        chan.recv(back)?;
        if back != out {
            return Err(Errno::EBADMSG);
        }
    }
    Ok(t.elapsed())
}

/// Streams `bytes` in `chunk`-byte writes; the time until the child said
/// it had them all.
pub fn stream(chan: &Chan<'_>, b: &mut Bufs, chunk: usize, bytes: u64) -> Result<Duration, Errno> {
    if fast::stopping() {
        return Err(Errno::EINTR);
    }
    chan.send(
        &Order::Swallow {
            chunk: chunk as u32,
            bytes,
        }
        .encode(),
    )?;
    let t = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk as u64) as usize;
        chan.send(&b.out[..n])?;
        left -= n as u64;
    }
    let mut ack = [0u8; 1];
    chan.recv(&mut ack)?;
    Ok(t.elapsed())
}

/// `count` NULL calls; checks each reply's xid and status.
pub fn rpc_calls(
    chan: &Chan<'_>,
    b: &mut Bufs,
    stream: bool,
    count: u64,
    xid: &mut u32,
) -> Result<Duration, Errno> {
    if fast::stopping() {
        return Err(Errno::EINTR);
    }
    chan.send(&Order::Rpc { stream, count }.encode())?;
    let t = Instant::now();
    for _ in 0..count {
        *xid = xid.wrapping_add(1);
        b.call[4..8].copy_from_slice(&xid.to_be_bytes());
        chan.send(if stream { &b.call } else { &b.call[4..] })?;
        let len = recv_rpc(chan, stream, &mut b.back)?;
        let msg = RpcMessage::decode(&b.back[..len]).map_err(|_| Errno::EBADMSG)?;
        let ok = msg.xid == *xid
            && matches!(
                msg.body,
                MessageBody::Reply(ReplyBody::Accepted {
                    stat: AcceptStat::Success(_),
                    ..
                })
            );
        if !ok {
            return Err(Errno::EBADMSG);
        }
    }
    Ok(t.elapsed())
}

/// Tells the child to end its loop.
pub fn quit(chan: &Chan<'_>) -> Result<(), Errno> {
    chan.send(&Order::Quit.encode())
}

/// A loop's failure as the run's error: a stop signal is the stop.
pub fn loop_error(e: Errno, what: &str) -> Error {
    if let Some(sig) = crate::os::stop_pending() {
        return Error::Interrupted(sig);
    }
    let why = match e {
        Errno::EPIPE => "the other end went away".to_string(),
        Errno::EBADMSG => "a reply was not what was sent".to_string(),
        Errno::EAGAIN => "no reply within the receive timeout (a datagram was lost?)".to_string(),
        e => format!("{} ({})", e.desc(), e),
    };
    Error::protocol(format!("the {what} loop stopped: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_survive_the_wire() {
        for o in [
            Order::Quit,
            Order::Echo { size: 32, count: 7 },
            Order::Swallow {
                chunk: 65536,
                bytes: 1 << 40,
            },
            Order::Rpc {
                stream: true,
                count: 3,
            },
        ] {
            assert_eq!(Order::decode(&o.encode()), Some(o));
        }
        let mut h = Order::Quit.encode();
        h[0] = 9;
        assert_eq!(Order::decode(&h), None);
    }
}
