//! The `poll` model: one process, non-blocking sockets and epoll_pwait.
//! A reply that does not fit waits in a fixed per-connection buffer, and
//! the connection is then watched for room (EPOLLOUT) instead of requests.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::{accept_error, peer_name, Ending, ServerConfig};
use crate::error::Result;
use crate::lab::repeater::{is_quit, reply_into, shown, RECV_SIZE};
use crate::sys::poll::{self, Lets};
use crate::sys::{file, socket};
use crate::trace::Recorder;

/// MSG_NOSIGNAL only: these sockets are non-blocking already.
const SEND_FLAGS: i32 = libc::MSG_NOSIGNAL;

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

pub(super) fn polling(rec: &mut Recorder, lst: OwnedFd, cfg: &ServerConfig) -> Result<()> {
    let ep = poll::epoll_create1(rec, libc::EPOLL_CLOEXEC)?;
    let lfd = lst.as_raw_fd();
    watch_in(rec, ep.as_fd(), lfd)?;
    let mut lst = Some(lst);
    let mut conns: HashMap<RawFd, Conn> = HashMap::new();
    let mut accepted = 0usize;
    // Set while the listener is out of the epoll set after EMFILE: when it
    // rejoins (a connection closed, or the back-off ran out) and how long
    // the next back-off is.
    let mut paused: Option<Instant> = None;
    let mut backoff = Duration::from_millis(100);
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
            let timeout_ms = match paused {
                Some(until) if lst.is_some() => {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        rec.note("the back-off is over: the listener rejoins the epoll set to try accept() again");
                        watch_in(rec, ep.as_fd(), lfd)?;
                        paused = None;
                        continue;
                    }
                    left.as_millis().clamp(1, 60_000) as i32
                }
                _ => -1,
            };
            if paused.is_some() {
                rec.waiting(format!(
                    "out of descriptors: waiting up to {timeout_ms} ms before accepting again"
                ));
            }
            let n = poll::epoll_pwait(rec, ep.as_fd(), &mut events, timeout_ms, Lets::Stops)?;
            for ev in &events[..n] {
                let (bits, data) = (ev.events, ev.u64);
                let fd = data as RawFd;
                if lst.as_ref().is_some_and(|l| l.as_raw_fd() == fd) {
                    if let Some(l) = &lst {
                        match poll_accept(rec, ep.as_fd(), l)? {
                            Accepted::Conn(c) => {
                                accepted += 1;
                                backoff = Duration::from_millis(100);
                                conns.insert(c.fd.as_raw_fd(), c);
                            }
                            Accepted::Nothing => {}
                            Accepted::OutOfFds => {
                                // Level-triggered: a listener left in the set
                                // would wake us at once, forever. It rejoins
                                // when a connection closes, or after a back-off
                                // (with no connection open, none will close).
                                rec.note(format!("out of descriptors: the listener leaves the epoll set until a connection closes or {} ms pass; the new client waits in the backlog", backoff.as_millis()));
                                poll::epoll_ctl(rec, ep.as_fd(), libc::EPOLL_CTL_DEL, lfd, 0, 0)?;
                                paused = Some(Instant::now() + backoff);
                                backoff = (backoff * 2).min(Duration::from_secs(2));
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
                            Ending::Reset | Ending::Idle => "the reset connection is released (and leaves the epoll set)",
                        });
                        file::close(rec, c.fd)?;
                        if paused.is_some() && lst.is_some() {
                            rec.note(
                                "a descriptor is free again: the listener rejoins the epoll set",
                            );
                            watch_in(rec, ep.as_fd(), lfd)?;
                            paused = None;
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
    let who = &conn.who;
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
    if rec.tracing() {
        rec.message(format!("message from {who}: {}", shown(msg)));
    }
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
