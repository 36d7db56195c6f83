//! The seed's TCP repeater: server socket → setsockopt(SO_REUSEADDR) → bind
//! → listen → accept4 → recvfrom/sendto … → close; client socket → connect
//! → sendto → recvfrom … → close.
//!
//! Three server models, each traced:
//! - `iterative` (the seed's): one client at a time; the next waits in the
//!   listen backlog. "q" stops the server.
//! - `fork`: one child per connection; SIGCHLD interrupts accept so the
//!   parent reaps finished children (wait4 WNOHANG) at once.
//! - `poll`: one process, non-blocking sockets, epoll_wait for readiness;
//!   a reply that does not fit waits in a fixed per-connection buffer.
//!
//! Where the seed's server is wrong: `recv()` returning 0 means the peer
//! closed (EOF). The seed's `if data:` skips it and loops forever, spinning
//! at 100% CPU; this server closes the connection and goes back to accept.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::poll::PollFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use crate::error::{Error, Result, SysError};
use crate::lab::repeater::{self, family, is_quit, reply_into, shown, RECV_SIZE};
use crate::lab::{child_exit, StopSignals};
use crate::sys::process::{self, Disposition, Forked};
use crate::sys::{file, poll, socket};
use crate::trace::Recorder;

/// How the server handles more than one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    Iterative,
    Fork,
    Poll,
}

impl Model {
    pub fn name(self) -> &'static str {
        match self {
            Model::Iterative => "iterative",
            Model::Fork => "fork",
            Model::Poll => "poll",
        }
    }
}

/// A validated `tcp server`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub backlog: i32,
    pub model: Model,
    /// Stop after this many connections have been accepted and served.
    pub limit: Option<usize>,
    pub prefix: Vec<u8>,
}

/// A validated `tcp client`: messages to send, or None to read stdin lines.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub connect: SocketAddr,
    pub messages: Option<Vec<Vec<u8>>>,
}

/// What ended one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Quit,
    Eof,
    Reset,
}

/// Both ends of a conversation send with MSG_NOSIGNAL: a peer that vanished
/// then gives EPIPE instead of a SIGPIPE that would kill the whole server.
const SEND_FLAGS: i32 = libc::MSG_NOSIGNAL;

/// How long a blocking send may wait for a client that does not read.
const SEND_STALL: std::time::Duration = std::time::Duration::from_secs(10);

fn stop_signal() -> Option<i32> {
    if process::take_caught(Signal::SIGINT) {
        Some(libc::SIGINT)
    } else if process::take_caught(Signal::SIGTERM) {
        Some(libc::SIGTERM)
    } else {
        None
    }
}

/// socket → setsockopt(SO_REUSEADDR) → bind → listen (→ getsockname for port 0).
pub fn listener(
    rec: &mut Recorder,
    addr: &SocketAddr,
    backlog: i32,
    nonblock: bool,
) -> Result<(OwnedFd, SocketAddr)> {
    let mut ty = libc::SOCK_STREAM | libc::SOCK_CLOEXEC;
    if nonblock {
        ty |= libc::SOCK_NONBLOCK;
    }
    if nonblock {
        rec.note("a non-blocking listening socket: accept() returns EAGAIN instead of sleeping");
    }
    let fd = socket::socket(rec, family(addr), ty, libc::IPPROTO_TCP)?;
    crate::lab::set_up(rec, fd, |rec, fd| {
        rec.note(
            "SO_REUSEADDR: bind() works even while old connections on this port sit in TIME_WAIT \
             (about 60 s after a close) — without it a restarted server fails with EADDRINUSE",
        );
        socket::setsockopt_int(rec, fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
        if let Err(e) = socket::bind(rec, fd, addr) {
            let hint = match e.errno {
                Errno::EADDRINUSE => format!(
                    "another socket already listens on {addr}: stop it, or pick another port (port 0 lets the kernel choose)"
                ),
                Errno::EACCES => format!(
                    "port {} is below 1024: it needs root or CAP_NET_BIND_SERVICE; use a port ≥ 1024",
                    addr.port()
                ),
                Errno::EADDRNOTAVAIL => format!(
                    "{} is not an address of this machine; use 0.0.0.0, 127.0.0.1, [::] or [::1]",
                    addr.ip()
                ),
                _ => format!("cannot bind {addr}"),
            };
            return Err(Error::SysHint(e, hint));
        }
        socket::listen(rec, fd, backlog)?;
        let local = repeater::local_address(rec, fd, addr)?;
        Ok(local)
    })
}

/// `ipclab tcp server`.
pub fn server(rec: &mut Recorder, cfg: &ServerConfig) -> Result<()> {
    let (lst, local) = listener(rec, &cfg.listen, cfg.backlog, cfg.model == Model::Poll)?;
    rec.message(format!(
        "listening on {local} ({} model); try: ipclab tcp client --connect {}",
        cfg.model.name(),
        connectable(&local)
    ));
    serve(rec, lst, cfg)
}

/// The address a client on this machine would use to reach `local`.
fn connectable(local: &SocketAddr) -> SocketAddr {
    let mut a = *local;
    if a.ip().is_unspecified() {
        a.set_ip(match a {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    a
}

/// Runs the chosen model on a listening socket until it stops.
pub fn serve(rec: &mut Recorder, lst: OwnedFd, cfg: &ServerConfig) -> Result<()> {
    let signals = StopSignals::catch(rec)?;
    let result = match cfg.model {
        Model::Iterative => iterative(rec, lst, cfg),
        Model::Fork => forking(rec, lst, cfg),
        Model::Poll => polling(rec, lst, cfg),
    };
    signals.restore(rec);
    result
}

/// accept4 on a blocking listener; EINTR from a stop signal ends the server.
fn accept_blocking(
    rec: &mut Recorder,
    lst: &OwnedFd,
    waiting: Option<&str>,
) -> Result<Option<(OwnedFd, Option<SocketAddr>)>> {
    if let Some(w) = waiting {
        rec.waiting(w);
    }
    match socket::accept4(rec, lst.as_fd(), libc::SOCK_CLOEXEC) {
        Ok(c) => Ok(Some(c)),
        Err(e) if e.errno == Errno::EINTR || e.errno == Errno::ECONNABORTED => {
            if let Some(sig) = stop_signal() {
                return Err(Error::Interrupted(sig));
            }
            Ok(None)
        }
        Err(e) => Err(accept_error(e)),
    }
}

fn accept_error(e: SysError) -> Error {
    if e.errno == Errno::EMFILE || e.errno == Errno::ENFILE {
        return Error::SysHint(
            e,
            "out of descriptors: the connection stays queued; raise `ulimit -n` or close idle clients".into(),
        );
    }
    e.into()
}

fn peer_name(peer: Option<SocketAddr>) -> String {
    peer.map_or_else(|| "the client".to_string(), |p| p.to_string())
}

/// One connection on a blocking socket, as in the seed: recv, reply, until
/// "q", EOF or a reset.
fn converse(
    rec: &mut Recorder,
    conn: &OwnedFd,
    peer: Option<SocketAddr>,
    prefix: &[u8],
) -> Result<Ending> {
    let who = peer_name(peer);
    rec.note(format!(
        "SO_SNDTIMEO {} s: a client that sends but never reads its replies fills its receive window; \
         send() then gives up after this long instead of stalling the server for good",
        SEND_STALL.as_secs()
    ));
    socket::setsockopt_timeval(
        rec,
        conn.as_fd(),
        libc::SOL_SOCKET,
        libc::SO_SNDTIMEO,
        SEND_STALL,
    )?;
    let mut buf = [0u8; RECV_SIZE];
    let mut reply = Vec::with_capacity(prefix.len() + RECV_SIZE);
    loop {
        rec.waiting(format!("waiting for {who} to send"));
        let n = match socket::recv(rec, conn.as_fd(), &mut buf, 0) {
            Ok(n) => n,
            Err(e) if e.errno == Errno::ECONNRESET => {
                rec.message(format!(
                    "{who} reset the connection (RST): nothing more will come; closing it"
                ));
                return Ok(Ending::Reset);
            }
            Err(e) if e.errno == Errno::EINTR => match stop_signal() {
                Some(sig) => return Err(Error::Interrupted(sig)),
                None => continue,
            },
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            rec.message(format!(
                "recv() = 0 is EOF: {who} closed its end. The seed's server (`if data:`) would \
                 loop here forever at 100% CPU; this one closes the connection"
            ));
            return Ok(Ending::Eof);
        }
        let msg = &buf[..n];
        if is_quit(msg) {
            rec.message(format!("{who} sent \"q\": closing this connection"));
            return Ok(Ending::Quit);
        }
        rec.message(format!("message from {who}: {}", shown(msg)));
        reply_into(&mut reply, prefix, msg);
        if send_all(rec, conn, &reply, &who)?.is_none() {
            return Ok(Ending::Reset);
        }
    }
}

/// Sends all of `data` on a blocking socket (a signal can cut a send short).
/// Returns None when the peer is gone (EPIPE, ECONNRESET).
fn send_all(rec: &mut Recorder, conn: &OwnedFd, data: &[u8], who: &str) -> Result<Option<()>> {
    let mut off = 0;
    // Each pass sends at least one byte or returns: bounded by data.len().
    while off < data.len() {
        match socket::send(rec, conn.as_fd(), &data[off..], SEND_FLAGS) {
            Ok(n) => off += n,
            Err(e) if e.errno == Errno::EPIPE || e.errno == Errno::ECONNRESET => {
                rec.message(format!(
                    "{who} is gone: the reply cannot be delivered (MSG_NOSIGNAL turned SIGPIPE into EPIPE, so the server lives on)"
                ));
                return Ok(None);
            }
            Err(e) if e.errno == Errno::EINTR => {
                if let Some(sig) = stop_signal() {
                    return Err(Error::Interrupted(sig));
                }
            }
            Err(e) if e.errno == Errno::EAGAIN => {
                rec.message(format!(
                    "{who} has not read its replies for {} s (SO_SNDTIMEO): giving up on it",
                    SEND_STALL.as_secs()
                ));
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Some(()))
}

fn close_conn(rec: &mut Recorder, conn: OwnedFd, ending: Ending) -> Result<()> {
    rec.note(match ending {
        Ending::Quit => "the server closes the connection: the client's recv() returns 0 (EOF)",
        Ending::Eof => "both sides have closed: the connection is gone",
        Ending::Reset => "the reset connection's descriptor is released",
    });
    file::close(rec, conn)?;
    Ok(())
}

fn iterative(rec: &mut Recorder, lst: OwnedFd, cfg: &ServerConfig) -> Result<()> {
    let mut served = 0usize;
    let result = (|| -> Result<()> {
        loop {
            let Some((conn, peer)) = accept_blocking(
                rec,
                &lst,
                Some(
                    "waiting for a client; while one is served, others wait in the listen backlog",
                ),
            )?
            else {
                continue;
            };
            let ending = converse(rec, &conn, peer, &cfg.prefix);
            let ending = match ending {
                Ok(e) => e,
                Err(e) => {
                    let _ = file::close(rec, conn);
                    return Err(e);
                }
            };
            close_conn(rec, conn, ending)?;
            served += 1;
            if ending == Ending::Quit {
                rec.message("\"q\" also stops the iterative server, as in the seed");
                return Ok(());
            }
            if cfg.limit.is_some_and(|l| served >= l) {
                return Ok(());
            }
            rec.message("back to accept(): the next client in the backlog is served now");
        }
    })();
    rec.note("the listening socket is closed: new connection attempts are refused");
    file::close(rec, lst)?;
    result
}

fn forking(rec: &mut Recorder, lst: OwnedFd, cfg: &ServerConfig) -> Result<()> {
    rec.note(
        "SIGCHLD now interrupts the wait for clients (no SA_RESTART): the parent reaps each finished child at once, so no zombies pile up",
    );
    process::sigaction(rec, Signal::SIGCHLD, Disposition::Catch)?;
    rec.note(
        "SIGCHLD is held back except inside ppoll(): a child that ends between the check for \
         finished children and the wait still wakes the server (no zombie lingers)",
    );
    process::sigprocmask(rec, true, Signal::SIGCHLD)?;
    let mut children: Vec<Pid> = Vec::new();
    let mut accepted = 0usize;
    let mut lst = Some(lst);
    let result = (|| -> Result<()> {
        loop {
            if process::take_caught(Signal::SIGCHLD) {
                reap_finished(rec, &mut children)?;
            }
            if cfg.limit.is_some_and(|l| accepted >= l) {
                return Ok(());
            }
            let Some(l) = lst.as_ref() else {
                return Ok(());
            };
            match poll::ppoll_unblocked(rec, l.as_fd(), PollFlags::POLLIN) {
                Ok(_) => {}
                Err(e) if e.errno == Errno::EINTR => {
                    if let Some(sig) = stop_signal() {
                        return Err(Error::Interrupted(sig));
                    }
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            let Some((conn, peer)) = accept_blocking(rec, l, None)? else {
                continue;
            };
            accepted += 1;
            match process::fork(rec)? {
                Forked::Child => child_exit(rec, |rec| {
                    rec.note("the child has no children of its own: SIGCHLD need not be held back");
                    process::sigprocmask(rec, false, Signal::SIGCHLD)?;
                    if let Some(l) = lst.take() {
                        rec.note("the child closes its copy of the listening socket: only the parent accepts");
                        file::close(rec, l)?;
                    }
                    let ending = converse(rec, &conn, peer, &cfg.prefix)?;
                    close_conn(rec, conn, ending)
                }),
                Forked::Parent { child } => {
                    children.push(child);
                    rec.note(
                        "the parent closes its copy of the connection: the child owns it now \
                         (if both kept it, the client would never see EOF)",
                    );
                    file::close(rec, conn)?;
                }
            }
        }
    })();
    let closed = match lst.take() {
        Some(l) => {
            rec.note("the listening socket is closed: new connection attempts are refused");
            file::close(rec, l)
        }
        None => Ok(()),
    };
    if matches!(result, Err(Error::Interrupted(_))) {
        for &c in &children {
            let _ = process::kill(rec, c, Signal::SIGTERM);
        }
    }
    // Every child is reaped, whatever happened above.
    for c in children {
        loop {
            match process::wait4(rec, c, false) {
                Err(e) if e.errno == Errno::EINTR => continue,
                _ => break,
            }
        }
    }
    result?;
    closed?;
    Ok(())
}

/// wait4(child, WNOHANG) for each known child: reaps those that finished.
/// (Not wait4(-1): a lab that runs this server in a child of its own must
/// not have its other children reaped here.)
fn reap_finished(rec: &mut Recorder, children: &mut Vec<Pid>) -> Result<()> {
    let mut alive = Vec::with_capacity(children.len());
    for &c in children.iter() {
        match process::wait4(rec, c, true) {
            Ok(WaitStatus::StillAlive) => alive.push(c),
            Ok(_)
            | Err(SysError {
                errno: Errno::ECHILD,
                ..
            }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    *children = alive;
    Ok(())
}

/// One client of the poll model.
struct Conn {
    fd: OwnedFd,
    who: String,
    /// A reply the socket had no room for; at most prefix + RECV_SIZE bytes.
    pending: Vec<u8>,
    sent: usize,
    /// Watched for EPOLLOUT (a reply is stuck) instead of EPOLLIN.
    watching_out: bool,
}

/// Adds `fd` to the epoll set for reading, with itself as the event's data.
fn watch_in(rec: &mut Recorder, ep: std::os::fd::BorrowedFd<'_>, fd: RawFd) -> Result<()> {
    poll::epoll_ctl(
        rec,
        ep,
        libc::EPOLL_CTL_ADD,
        fd,
        libc::EPOLLIN as u32,
        fd as u64,
    )?;
    Ok(())
}

fn polling(rec: &mut Recorder, lst: OwnedFd, cfg: &ServerConfig) -> Result<()> {
    let ep = poll::epoll_create1(rec, libc::EPOLL_CLOEXEC)?;
    let lfd = lst.as_raw_fd();
    watch_in(rec, ep.as_fd(), lfd)?;
    let mut lst = Some(lst);
    let mut conns: HashMap<RawFd, Conn> = HashMap::new();
    let mut accepted = 0usize;
    let mut paused = false;
    let mut buf = [0u8; RECV_SIZE];
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
    let result = (|| -> Result<()> {
        loop {
            if cfg.limit.is_some_and(|l| accepted >= l) {
                if let Some(l) = lst.take() {
                    rec.note("enough connections accepted: the listening socket is closed (and leaves the epoll set)");
                    file::close(rec, l)?;
                }
                if conns.is_empty() {
                    return Ok(());
                }
            }
            let n = match poll::epoll_wait(rec, ep.as_fd(), &mut events, -1) {
                Ok(n) => n,
                Err(e) if e.errno == Errno::EINTR => match stop_signal() {
                    Some(sig) => return Err(Error::Interrupted(sig)),
                    None => continue,
                },
                Err(e) => return Err(e.into()),
            };
            for ev in &events[..n] {
                let (bits, data) = (ev.events, ev.u64);
                let fd = data as RawFd;
                if lst.as_ref().is_some_and(|l| l.as_raw_fd() == fd) {
                    if let Some(l) = &lst {
                        match poll_accept(rec, ep.as_fd(), l)? {
                            Accepted::Conn(c) => {
                                accepted += 1;
                                conns.insert(c.fd.as_raw_fd(), c);
                            }
                            Accepted::Nothing => {}
                            Accepted::OutOfFds => {
                                // Level-triggered: a listener left in the set
                                // would wake us at once, forever.
                                rec.note("out of descriptors: the listener leaves the epoll set until a connection closes; the new client waits in the backlog");
                                poll::epoll_ctl(rec, ep.as_fd(), libc::EPOLL_CTL_DEL, lfd, 0, 0)?;
                                paused = true;
                            }
                        }
                    }
                    continue;
                }
                let Some(conn) = conns.get_mut(&fd) else {
                    continue;
                };
                let done = if conn.watching_out {
                    poll_flush(rec, ep.as_fd(), conn)?
                } else if bits & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
                    poll_read(rec, ep.as_fd(), conn, &mut buf, &cfg.prefix)?
                } else {
                    None
                };
                if let Some(ending) = done {
                    if let Some(c) = conns.remove(&fd) {
                        rec.note(match ending {
                            Ending::Quit => "closed after \"q\" (closing also removes it from the epoll set); the client's recv() returns 0",
                            Ending::Eof => "closed after EOF (closing also removes it from the epoll set)",
                            Ending::Reset => "the reset connection is released (and leaves the epoll set)",
                        });
                        file::close(rec, c.fd)?;
                        if paused && lst.is_some() {
                            rec.note(
                                "a descriptor is free again: the listener rejoins the epoll set",
                            );
                            watch_in(rec, ep.as_fd(), lfd)?;
                            paused = false;
                        }
                    }
                }
            }
        }
    })();
    for (_, c) in conns.drain() {
        let _ = file::close(rec, c.fd);
    }
    if let Some(l) = lst.take() {
        rec.note("the listening socket is closed: new connection attempts are refused");
        let _ = file::close(rec, l);
    }
    file::close(rec, ep)?;
    result
}

/// What one accept4 on the non-blocking listener gave.
enum Accepted {
    Conn(Conn),
    /// Nothing to take after all (EAGAIN, ECONNABORTED, EINTR).
    Nothing,
    /// EMFILE/ENFILE: the connection stays queued until a descriptor frees up.
    OutOfFds,
}

fn poll_accept(
    rec: &mut Recorder,
    ep: std::os::fd::BorrowedFd<'_>,
    lst: &OwnedFd,
) -> Result<Accepted> {
    let (fd, peer) =
        match socket::accept4(rec, lst.as_fd(), libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK) {
            Ok(c) => c,
            Err(e) if matches!(e.errno, Errno::EAGAIN | Errno::ECONNABORTED | Errno::EINTR) => {
                return Ok(Accepted::Nothing)
            }
            Err(e) if matches!(e.errno, Errno::EMFILE | Errno::ENFILE) => {
                return Ok(Accepted::OutOfFds)
            }
            Err(e) => return Err(accept_error(e)),
        };
    let (fd, ()) = crate::lab::set_up(rec, fd, |rec, c| watch_in(rec, ep, c.as_raw_fd()))?;
    Ok(Accepted::Conn(Conn {
        fd,
        who: peer_name(peer),
        pending: Vec::new(),
        sent: 0,
        watching_out: false,
    }))
}

/// One recv on a readable connection; returns how it ended, if it did.
fn poll_read(
    rec: &mut Recorder,
    ep: std::os::fd::BorrowedFd<'_>,
    conn: &mut Conn,
    buf: &mut [u8],
    prefix: &[u8],
) -> Result<Option<Ending>> {
    let who = conn.who.clone();
    let n = match socket::recv(rec, conn.fd.as_fd(), buf, 0) {
        Ok(n) => n,
        Err(e) if e.errno == Errno::EAGAIN || e.errno == Errno::EINTR => return Ok(None),
        Err(e) if e.errno == Errno::ECONNRESET => {
            rec.message(format!(
                "{who} reset the connection (RST); the other clients carry on"
            ));
            return Ok(Some(Ending::Reset));
        }
        Err(e) => return Err(e.into()),
    };
    if n == 0 {
        rec.message(format!(
            "recv() = 0 is EOF: {who} closed its end (the seed's server would spin here forever)"
        ));
        return Ok(Some(Ending::Eof));
    }
    let msg = &buf[..n];
    if is_quit(msg) {
        rec.message(format!(
            "{who} sent \"q\": closing this connection; the server keeps serving the others"
        ));
        return Ok(Some(Ending::Quit));
    }
    rec.message(format!("message from {who}: {}", shown(msg)));
    reply_into(&mut conn.pending, prefix, msg);
    conn.sent = 0;
    poll_flush(rec, ep, conn)
}

/// Sends what is pending without blocking. When the socket is full, the rest
/// waits: the connection is watched for EPOLLOUT only, so nothing more is
/// read from it (and buffered) until the client reads its replies.
fn poll_flush(
    rec: &mut Recorder,
    ep: std::os::fd::BorrowedFd<'_>,
    conn: &mut Conn,
) -> Result<Option<Ending>> {
    let raw = conn.fd.as_raw_fd();
    match socket::send(rec, conn.fd.as_fd(), &conn.pending[conn.sent..], SEND_FLAGS) {
        Ok(n) => conn.sent += n,
        Err(e) if e.errno == Errno::EAGAIN || e.errno == Errno::EINTR => {}
        Err(e) if e.errno == Errno::EPIPE || e.errno == Errno::ECONNRESET => {
            rec.message(format!(
                "{} is gone: the reply cannot be delivered",
                conn.who
            ));
            return Ok(Some(Ending::Reset));
        }
        Err(e) => return Err(e.into()),
    }
    if conn.sent < conn.pending.len() {
        if !conn.watching_out {
            rec.note(format!(
                "{} is not reading its replies: stop reading from it and wait for room (EPOLLOUT); \
                 its further requests wait in the kernel, not in our memory",
                conn.who
            ));
            poll::epoll_ctl(
                rec,
                ep,
                libc::EPOLL_CTL_MOD,
                raw,
                libc::EPOLLOUT as u32,
                raw as u64,
            )?;
            conn.watching_out = true;
        }
        return Ok(None);
    }
    conn.pending.clear();
    conn.sent = 0;
    if conn.watching_out {
        rec.note("the reply is out: watch for requests again");
        poll::epoll_ctl(
            rec,
            ep,
            libc::EPOLL_CTL_MOD,
            raw,
            libc::EPOLLIN as u32,
            raw as u64,
        )?;
        conn.watching_out = false;
    }
    Ok(None)
}

/// `ipclab tcp client`.
pub fn client(rec: &mut Recorder, cfg: &ClientConfig) -> Result<()> {
    let sock = connect(rec, &cfg.connect, None)?;
    let result = match &cfg.messages {
        Some(list) => {
            let mut r = Ok(());
            for m in list {
                match exchange(rec, &sock, m) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        r = Err(e);
                        break;
                    }
                }
            }
            r
        }
        None => interactive(rec, &sock),
    };
    file::close(rec, sock)?;
    result
}

/// socket → connect, with each classic failure explained.
fn connect(rec: &mut Recorder, addr: &SocketAddr, note: Option<&str>) -> Result<OwnedFd> {
    let sock = socket::socket(
        rec,
        family(addr),
        libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
        libc::IPPROTO_TCP,
    )?;
    rec.note(note.unwrap_or(
        "the three-way handshake (SYN, SYN-ACK, ACK) is done: the connection exists (the server may not have accept()ed it yet)",
    ));
    rec.waiting("waiting for the handshake");
    if let Err(e) = socket::connect(rec, sock.as_fd(), addr) {
        let hint = match e.errno {
            Errno::ECONNREFUSED => format!(
                "nobody is listening on {addr}: the kernel answered the SYN with a RST — start `ipclab tcp server --listen {addr}` first"
            ),
            Errno::ETIMEDOUT => format!(
                "no answer to the SYNs from {addr}: the host is down or a firewall drops them silently"
            ),
            Errno::EHOSTUNREACH | Errno::ENETUNREACH => format!(
                "no route to {}: an ICMP unreachable came back, or this machine has no route there",
                addr.ip()
            ),
            _ => format!("cannot connect to {addr}"),
        };
        let _ = file::close(rec, sock);
        return Err(Error::SysHint(e, hint));
    }
    Ok(sock)
}

/// Sends one message and waits for the reply. Returns false once the
/// conversation is over ("q" sent and the server closed).
fn exchange(rec: &mut Recorder, sock: &OwnedFd, msg: &[u8]) -> Result<bool> {
    let who = "the server";
    if is_quit(msg) {
        rec.note("\"q\" sent: the server closes this connection (the iterative one also stops)");
    } else {
        rec.note(
            "sent; the client now waits for the reply before sending more — TCP has no message \
             boundaries, so two quick sends could reach the server as one recv()",
        );
    }
    if send_all(rec, sock, msg, who)?.is_none() {
        return Err(Error::protocol("the server closed the connection"));
    }
    let mut buf = [0u8; 4 * RECV_SIZE];
    if is_quit(msg) {
        // The seed's server closes without a reply; read until it does.
        for _ in 0..64 {
            rec.waiting("waiting for the server to close the connection");
            match socket::recv(rec, sock.as_fd(), &mut buf, 0) {
                Ok(0) => {
                    rec.message("the server closed the connection after \"q\": recv() = 0 is EOF");
                    return Ok(false);
                }
                Ok(n) => rec.message(format!("reply: {}", shown(&buf[..n]))),
                Err(e) if e.errno == Errno::ECONNRESET => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(false);
    }
    rec.waiting("waiting for the reply");
    match socket::recv(rec, sock.as_fd(), &mut buf, 0) {
        Ok(0) => Err(Error::protocol(
            "the server closed the connection without replying (recv() = 0, EOF)",
        )),
        Ok(n) => {
            rec.message(format!("reply: {}", shown(&buf[..n])));
            Ok(true)
        }
        Err(e) => Err(e.into()),
    }
}

/// Lines from stdin, read with traced read(2) calls into a fixed buffer.
pub struct StdinLines {
    buf: [u8; RECV_SIZE],
    len: usize,
    eof: bool,
}

impl Default for StdinLines {
    fn default() -> Self {
        StdinLines {
            buf: [0; RECV_SIZE],
            len: 0,
            eof: false,
        }
    }
}

impl StdinLines {
    /// The next line without its newline (and "\r"); a line longer than
    /// 1024 bytes comes in 1024-byte pieces. None at end of input.
    pub fn next_line(&mut self, rec: &mut Recorder) -> Result<Option<Vec<u8>>> {
        loop {
            if let Some(i) = self.buf[..self.len].iter().position(|&b| b == b'\n') {
                let mut line = self.buf[..i].to_vec();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.buf.copy_within(i + 1..self.len, 0);
                self.len -= i + 1;
                return Ok(Some(line));
            }
            if self.len >= RECV_SIZE || (self.eof && self.len > 0) {
                let n = self.len.min(RECV_SIZE);
                let line = self.buf[..n].to_vec();
                self.buf.copy_within(n..self.len, 0);
                self.len -= n;
                return Ok(Some(line));
            }
            if self.eof {
                return Ok(None);
            }
            let stdin = std::io::stdin();
            rec.waiting("waiting for a line on stdin (Ctrl-D ends)");
            // Not empty: a full buffer was handed out as a piece above.
            let n = file::read(rec, stdin.as_fd(), &mut self.buf[self.len..])?;
            if n == 0 {
                self.eof = true;
            }
            self.len += n;
        }
    }
}

fn interactive(rec: &mut Recorder, sock: &OwnedFd) -> Result<()> {
    rec.message("type a message and Enter to send it to the repeater server; \"q\" quits (the newline is not sent)");
    let mut lines = StdinLines::default();
    while let Some(line) = lines.next_line(rec)? {
        if line.is_empty() {
            rec.message("empty line: nothing sent (a 0-byte send carries nothing over TCP, and no reply would come)");
            continue;
        }
        if !exchange(rec, sock, &line)? {
            return Ok(());
        }
    }
    rec.message("end of input: closing the connection (the server's recv() returns 0)");
    Ok(())
}

/// `ipclab tcp demo`: the client here, the server in a child; two
/// connections, so the model's handling of a second client shows.
pub fn demo(rec: &mut Recorder, model: Model) -> Result<()> {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("a valid literal address");
    let (lst, addr) = listener(rec, &any, 5, model == Model::Poll)?;
    let cfg = ServerConfig {
        listen: addr,
        backlog: 5,
        model,
        limit: Some(2),
        prefix: repeater::SEED_PREFIX.as_bytes().to_vec(),
    };
    match process::fork(rec)? {
        Forked::Child => child_exit(rec, |rec| serve(rec, lst, &cfg)),
        Forked::Parent { child } => {
            rec.note(
                "the client closes its copy of the listening socket: the server child owns it",
            );
            let side = file::close(rec, lst)
                .map_err(Error::from)
                .and_then(|()| demo_client(rec, &addr, model));
            if side.is_err() {
                let _ = process::kill(rec, child, Signal::SIGTERM);
            }
            let reaped = process::wait4(rec, child, false);
            side?;
            match reaped? {
                WaitStatus::Exited(_, 0) => Ok(()),
                other => Err(Error::protocol(format!(
                    "the server {}",
                    process::wait_status_text(&other)
                ))),
            }
        }
    }
}

fn demo_client(rec: &mut Recorder, addr: &SocketAddr, model: Model) -> Result<()> {
    rec.message(format!("client A connects to {addr}"));
    let a = connect(rec, addr, None)?;
    exchange(rec, &a, b"hello")?;
    exchange(rec, &a, "你好，复读机".as_bytes())?;
    rec.message("client B connects while A is still connected");
    let b = connect(
        rec,
        addr,
        Some("connected, though the server has not called accept() for B: the kernel did the handshake alone, and B waits in the listen backlog"),
    )?;
    rec.note("B's request is sent; it waits in B's receive queue on the server side until someone reads it");
    send_all(rec, &b, b"I am the second client", "the server")?;
    let ms: u16 = if model == Model::Iterative { 500 } else { 5000 };
    rec.waiting(format!("waiting at most {ms} ms for B's reply"));
    let ready = file::poll(rec, b.as_fd(), PollFlags::POLLIN, ms)?;
    if ready.is_empty() {
        rec.message(format!(
            "no reply for B within {ms} ms: the {} server is busy with A — B waits in the backlog until A is done",
            model.name()
        ));
    } else {
        rec.message(format!(
            "B got its reply while A is still connected: the {} server serves clients concurrently",
            model.name()
        ));
    }
    rec.note("A closes without sending \"q\": the server's recv() on A returns 0 (EOF)");
    file::close(rec, a)?;
    let mut buf = [0u8; 4 * RECV_SIZE];
    rec.waiting("waiting for B's reply");
    let n = socket::recv(rec, b.as_fd(), &mut buf, 0)?;
    if n == 0 {
        return Err(Error::protocol("the server closed B without replying"));
    }
    rec.message(format!("reply to B: {}", shown(&buf[..n])));
    exchange(rec, &b, b"q")?;
    file::close(rec, b)?;
    Ok(())
}
