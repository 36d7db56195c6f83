//! The serving loop the matchmaker and the server share: one process, a
//! UDP socket and a TCP listener on the same port, connections kept in an
//! epoll set: epoll_pwait → recvfrom / accept4 / recvfrom on a connection →
//! decode → the program's answer → sendto / send.
//!
//! What every RPC server must do before the program sees a call (RFC 5531
//! §9) happens here, and each case is printed: bytes that are not a
//! message are dropped (a UDP datagram) or skipped (a TCP record); a call
//! for another RPC version gets RPC_MISMATCH; a malformed credential
//! AUTH_BADCRED; a flavor other than AUTH_NONE and AUTH_SYS
//! AUTH_REJECTEDCRED (libtirpc's answer); a record mark over 1 MiB, or a
//! stream cut inside a record, closes that connection.
//!
//! Memory stays bounded whatever peers send: one fixed 64 KiB receive
//! buffer, at most [`Limits::conns`] connections each holding at most one
//! record of 1 MiB, and a connection silent for [`Limits::idle`] is closed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::wire::{self, Inbound, Sent};
use crate::error::{Error, Result};
use crate::packet::rpc::auth::{AUTH_BADCRED, AUTH_BADVERF, AUTH_NONE, AUTH_REJECTEDCRED};
use crate::packet::rpc::record::RecordReader;
use crate::packet::rpc::{CallBody, MessageBody, OpaqueAuth, RejectedReply, RpcMessage};
use crate::sys::poll::{self, Lets};
use crate::sys::{file, socket};
use crate::trace::Recorder;

/// The sockets a service answers on.
pub struct Endpoints {
    pub udp: Option<OwnedFd>,
    pub tcp: Option<OwnedFd>,
    /// The address they are bound to (the same port for both).
    pub addr: SocketAddr,
}

/// A UDP socket and a TCP listener on the same port of `addr` (or only
/// one of them). Port 0 lets the kernel pick the TCP port, and the UDP
/// socket then asks for that same number; should UDP have it taken, both
/// are closed and another pair tried.
pub fn bind(rec: &mut Recorder, addr: SocketAddr, udp: bool, tcp: bool) -> Result<Endpoints> {
    if !tcp {
        let (u, local) = crate::lab::udp::bound_socket(rec, &addr)?;
        return Ok(Endpoints {
            udp: Some(u),
            tcp: None,
            addr: local,
        });
    }
    for _ in 0..5 {
        let (lst, local) = crate::lab::tcp::listener(rec, &addr, 64, false)?;
        if !udp {
            return Ok(Endpoints {
                udp: None,
                tcp: Some(lst),
                addr: local,
            });
        }
        rec.note(format!(
            "the UDP side takes the same port number, {}: one port for both, as port 111 is",
            local.port()
        ));
        match crate::lab::udp::bound_socket(rec, &local) {
            Ok((u, _)) => {
                return Ok(Endpoints {
                    udp: Some(u),
                    tcp: Some(lst),
                    addr: local,
                })
            }
            Err(Error::SysHint(e, _)) if e.errno == Errno::EADDRINUSE && addr.port() == 0 => {
                rec.note("a UDP socket holds that number already: try another pair");
                file::close(rec, lst)?;
            }
            Err(e) => {
                let _ = file::close(rec, lst);
                return Err(e);
            }
        }
    }
    Err(Error::protocol(
        "could not find a port free for both TCP and UDP in 5 tries",
    ))
}

/// Closes endpoints that will not be served.
pub fn close(rec: &mut Recorder, ends: Endpoints) {
    for fd in [ends.tcp, ends.udp].into_iter().flatten() {
        let _ = file::close(rec, fd);
    }
}

/// How much a service takes on at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub conns: usize,
    pub idle: Duration,
}

/// One call, decoded, with where it came from.
pub struct Request<'a> {
    pub xid: u32,
    pub call: &'a CallBody,
    pub peer: SocketAddr,
    pub tcp: bool,
    /// The address of this machine the caller reached, when known.
    pub local: Option<SocketAddr>,
}

/// A reply and what its results say (for the printed line).
pub struct Answer {
    pub msg: RpcMessage,
    pub results: Option<String>,
}

impl Answer {
    pub fn new(msg: RpcMessage, results: impl Into<Option<String>>) -> Self {
        Answer {
            msg,
            results: results.into(),
        }
    }
}

/// A program served by [`serve`].
pub trait Program {
    /// Answers one call (after the checks above). None: send nothing.
    fn call(&mut self, rec: &mut Recorder, req: &Request<'_>) -> Result<Option<Answer>>;
    /// Whether to drop this UDP request on purpose (injected loss).
    fn drop_request(&mut self) -> bool {
        false
    }
    /// Whether to drop this UDP reply on purpose.
    fn drop_reply(&mut self) -> bool {
        false
    }
    /// What the drops are called in the printed lines (the option).
    fn drop_names(&self) -> (String, String) {
        (String::new(), String::new())
    }
}

struct Conn {
    fd: OwnedFd,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    reader: RecordReader,
    last: Instant,
}

/// Serves `ends` with `prog` until a stop signal (returned as the error)
/// or a failed syscall. Closes every descriptor it holds on the way out,
/// the endpoints included.
pub fn serve(
    rec: &mut Recorder,
    ends: Endpoints,
    prog: &mut dyn Program,
    limits: Limits,
) -> Result<()> {
    let ep = poll::epoll_create1(rec, libc::EPOLL_CLOEXEC)?;
    let mut conns: HashMap<RawFd, Conn> = HashMap::new();
    let result = run(rec, &ends, &ep, &mut conns, prog, limits);
    for (_, c) in conns.drain() {
        let _ = file::close(rec, c.fd);
    }
    if let Some(t) = ends.tcp {
        rec.note("the listening socket is closed: new connections are refused");
        let _ = file::close(rec, t);
    }
    if let Some(u) = ends.udp {
        rec.note("the UDP socket is closed: datagrams to its port now get ICMP port unreachable");
        let _ = file::close(rec, u);
    }
    let _ = file::close(rec, ep);
    result
}

fn watch(rec: &mut Recorder, ep: &OwnedFd, fd: RawFd) -> Result<()> {
    poll::epoll_ctl(
        rec,
        ep.as_fd(),
        libc::EPOLL_CTL_ADD,
        fd,
        libc::EPOLLIN as u32,
        fd as u64,
    )?;
    Ok(())
}

fn run(
    rec: &mut Recorder,
    ends: &Endpoints,
    ep: &OwnedFd,
    conns: &mut HashMap<RawFd, Conn>,
    prog: &mut dyn Program,
    limits: Limits,
) -> Result<()> {
    let udp = ends.udp.as_ref().map(AsRawFd::as_raw_fd);
    let tcp = ends.tcp.as_ref().map(AsRawFd::as_raw_fd);
    for fd in [udp, tcp].into_iter().flatten() {
        watch(rec, ep, fd)?;
    }
    // Fixed, the largest UDP datagram: nothing a peer sends makes it grow.
    let mut buf = vec![0u8; 65536];
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 32];
    loop {
        let timeout = conns
            .values()
            .map(|c| (c.last + limits.idle).saturating_duration_since(Instant::now()))
            .min()
            .map_or(-1, |d| d.as_millis().clamp(1, 3_600_000) as i32);
        rec.waiting("waiting for a call on any socket");
        let n = poll::epoll_pwait(rec, ep.as_fd(), &mut events, timeout, Lets::Stops)?;
        if n == 0 {
            close_idle(rec, conns, limits.idle)?;
            continue;
        }
        for ev in &events[..n] {
            let fd = ev.u64 as RawFd;
            if Some(fd) == udp {
                if let Some(u) = &ends.udp {
                    datagram(rec, u, ends.addr, prog, &mut buf)?;
                }
            } else if Some(fd) == tcp {
                if let Some(t) = &ends.tcp {
                    accept(rec, t, ep, ends.addr, conns, limits)?;
                }
            } else if let Some(conn) = conns.get_mut(&fd) {
                if !stream(rec, conn, prog, &mut buf)? {
                    if let Some(c) = conns.remove(&fd) {
                        file::close(rec, c.fd)?;
                    }
                }
            }
        }
    }
}

fn close_idle(rec: &mut Recorder, conns: &mut HashMap<RawFd, Conn>, idle: Duration) -> Result<()> {
    let now = Instant::now();
    let quiet: Vec<RawFd> = conns
        .iter()
        .filter(|(_, c)| now.duration_since(c.last) >= idle)
        .map(|(&fd, _)| fd)
        .collect();
    for fd in quiet {
        if let Some(c) = conns.remove(&fd) {
            rec.note(format!(
                "{} sent nothing for {} s: its connection is closed, so idle clients cannot hold every slot",
                c.peer,
                idle.as_secs()
            ));
            file::close(rec, c.fd)?;
        }
    }
    Ok(())
}

/// The address a caller reached, for universal addresses: the bound one,
/// or on a wildcard socket the loopback address when the caller is local.
fn reached(bound: SocketAddr, peer: SocketAddr) -> Option<SocketAddr> {
    if !bound.ip().is_unspecified() {
        return Some(bound);
    }
    peer.ip().is_loopback().then(|| super::reachable(bound))
}

fn datagram(
    rec: &mut Recorder,
    sock: &OwnedFd,
    bound: SocketAddr,
    prog: &mut dyn Program,
    buf: &mut [u8],
) -> Result<()> {
    let (n, from) = match socket::recvfrom(rec, sock.as_fd(), buf, libc::MSG_DONTWAIT) {
        Ok(r) => r,
        // Nothing after all, or an ICMP error for an earlier reply.
        Err(e) if matches!(e.errno, Errno::EAGAIN | Errno::ECONNREFUSED) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let Some(peer) = from else { return Ok(()) };
    if prog.drop_request() {
        let what = RpcMessage::decode(&buf[..n])
            .map_or_else(|e| e.to_string(), |m| wire::describe(&m, None));
        rec.message(format!(
            "dropped on purpose ({}): {what} — as if lost on the way, the server never sees it",
            prog.drop_names().0
        ));
        return Ok(());
    }
    let Some(answer) = process(rec, &buf[..n], peer, false, reached(bound, peer), prog)? else {
        return Ok(());
    };
    let line = wire::describe(&answer.msg, answer.results.as_deref());
    if prog.drop_reply() {
        rec.message(format!(
            "reply dropped on purpose ({}): {line} — the call has run, but the client will never hear",
            prog.drop_names().1
        ));
        return Ok(());
    }
    let (wire_bytes, _) = wire::encode(&answer.msg, false, false, &[])
        .map_err(|e| crate::error::Error::protocol(format!("cannot encode the reply: {e}")))?;
    rec.message(format!("reply to {peer}: {line}"));
    rec.note(format!("the reply goes back to {peer} as one datagram"));
    wire::send_datagram(rec, sock.as_fd(), &wire_bytes, &peer)?;
    Ok(())
}

fn accept(
    rec: &mut Recorder,
    lst: &OwnedFd,
    ep: &OwnedFd,
    bound: SocketAddr,
    conns: &mut HashMap<RawFd, Conn>,
    limits: Limits,
) -> Result<()> {
    let (fd, peer) =
        match socket::accept4(rec, lst.as_fd(), libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK) {
            Ok(c) => c,
            Err(e) if matches!(e.errno, Errno::EAGAIN | Errno::ECONNABORTED | Errno::EINTR) => {
                return Ok(())
            }
            Err(e) if matches!(e.errno, Errno::EMFILE | Errno::ENFILE) => {
                rec.message("out of descriptors: the connection waits in the backlog");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
    let peer = peer.unwrap_or(bound);
    if conns.len() >= limits.conns {
        rec.note(format!(
            "{} connections are open already (the limit): {peer} is closed at once, so memory stays bounded",
            limits.conns
        ));
        file::close(rec, fd)?;
        return Ok(());
    }
    let mut local = reached(bound, peer);
    if local.is_none() {
        rec.note(
            "which of this machine's addresses the caller reached: rpcbind answers GETADDR with it",
        );
        local = socket::getsockname(rec, fd.as_fd())?;
    }
    let raw = fd.as_raw_fd();
    let (fd, ()) = crate::lab::set_up(rec, fd, |rec, _| watch(rec, ep, raw))?;
    conns.insert(
        raw,
        Conn {
            fd,
            peer,
            local,
            reader: RecordReader::new(),
            last: Instant::now(),
        },
    );
    Ok(())
}

/// Reads what a connection sent and answers each complete record. False
/// when the connection is to be closed.
fn stream(
    rec: &mut Recorder,
    conn: &mut Conn,
    prog: &mut dyn Program,
    buf: &mut [u8],
) -> Result<bool> {
    conn.last = Instant::now();
    let (records, keep) = match wire::read_stream(rec, conn.fd.as_fd(), &mut conn.reader, buf)? {
        Inbound::Records(r) => (r, true),
        Inbound::Eof { mid_record } => {
            if mid_record {
                rec.message(format!(
                    "{} closed the connection inside a record ({} bytes of it held): a truncated message, dropped",
                    conn.peer,
                    conn.reader.buffered()
                ));
            }
            rec.note(format!(
                "{} closed its end (recv() = 0): the server closes this connection",
                conn.peer
            ));
            return Ok(false);
        }
        Inbound::Reset => {
            rec.message(format!("{} reset the connection", conn.peer));
            return Ok(false);
        }
        Inbound::Broken(r, e) => {
            rec.message(format!(
                "{}: {e} — refused from the mark's 4 bytes, nothing allocated; record marking has no way \
                 to skip it, so the connection is closed after answering what came before",
                conn.peer
            ));
            (r, false)
        }
    };
    for r in records {
        let Some(answer) = process(rec, &r.data, conn.peer, true, conn.local, prog)? else {
            continue;
        };
        let line = wire::describe(&answer.msg, answer.results.as_deref());
        let (wire_bytes, _) = wire::encode(&answer.msg, true, false, &[])
            .map_err(|e| crate::error::Error::protocol(format!("cannot encode the reply: {e}")))?;
        rec.message(format!("reply to {}: {line}", conn.peer));
        rec.note("the reply goes back as one record behind its record mark");
        if wire::send_record(rec, conn.fd.as_fd(), &wire_bytes, Duration::from_secs(2))?
            == Sent::Gone
        {
            rec.message(format!(
                "{} is gone or not reading: the connection is closed",
                conn.peer
            ));
            return Ok(false);
        }
    }
    if !keep {
        rec.note("the connection is closed: its stream can no longer be cut into records");
    }
    Ok(keep)
}

/// Checks one message and hands a call to the program.
fn process(
    rec: &mut Recorder,
    bytes: &[u8],
    peer: SocketAddr,
    tcp: bool,
    local: Option<SocketAddr>,
    prog: &mut dyn Program,
) -> Result<Option<Answer>> {
    let msg = match RpcMessage::decode(bytes) {
        Ok(m) => m,
        Err(e) => {
            return Ok(match e.reply() {
                Some(reply) => {
                    rec.message(format!("from {peer}: {e}: answered as RFC 5531 says"));
                    Some(Answer::new(reply, None))
                }
                None => {
                    rec.message(format!(
                        "from {peer}: {e} ({} bytes): no xid to answer to, so nothing is sent",
                        bytes.len()
                    ));
                    None
                }
            });
        }
    };
    let MessageBody::Call(call) = &msg.body else {
        rec.message(format!(
            "from {peer}: a REPLY where a CALL was expected: ignored"
        ));
        return Ok(None);
    };
    rec.message(format!("from {peer}: {}", wire::call_line(msg.xid, call)));
    let refuse = |stat: u32| {
        Some(Answer::new(
            RpcMessage::denied(msg.xid, RejectedReply::AuthError(stat)),
            None,
        ))
    };
    match &call.cred {
        OpaqueAuth::None | OpaqueAuth::Sys(_) => {}
        OpaqueAuth::Other {
            flavor: AUTH_NONE, ..
        } => {
            rec.message("an AUTH_NONE credential with a body: refused with AUTH_BADCRED");
            return Ok(refuse(AUTH_BADCRED));
        }
        OpaqueAuth::Other { flavor, .. } => {
            rec.message(format!(
                "credential flavor {flavor} is not accepted here (AUTH_NONE and AUTH_SYS are): \
                 refused with AUTH_REJECTEDCRED, as libtirpc does"
            ));
            return Ok(refuse(AUTH_REJECTEDCRED));
        }
    }
    if call.verf != OpaqueAuth::None {
        rec.message("a verifier other than AUTH_NONE: refused with AUTH_BADVERF");
        return Ok(refuse(AUTH_BADVERF));
    }
    let req = Request {
        xid: msg.xid,
        call,
        peer,
        tcp,
        local,
    };
    prog.call(rec, &req)
}
