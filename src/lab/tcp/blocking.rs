//! The models on blocking sockets: `iterative` (the seed's) and `fork`.
//! Each accept, and each recv of the iterative server, is preceded by a
//! ppoll that lets Ctrl-C in. A fork child, which does nothing but serve
//! its one connection, lets the stop signals in for good and waits in
//! `recvfrom` itself, as the seed's server does: two syscalls per message
//! instead of three (SO_RCVTIMEO keeps the idle timeout).

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use super::{accept_error, close_conn, peer_name, send_all, woken_by_child, Ending, ServerConfig};
use crate::error::{Error, Result, SysError};
use crate::lab::repeater::{is_quit, reply_into, shown, RECV_SIZE};
use crate::lab::{child_exit, wait};
use crate::sys::poll::{self, Lets};
use crate::sys::process::{self, Forked};
use crate::sys::{file, signal, socket};
use crate::trace::Recorder;

/// accept4 on a blocking listener; None when there was nothing to take after all.
fn accept(rec: &mut Recorder, lst: &OwnedFd) -> Result<Option<(OwnedFd, Option<SocketAddr>)>> {
    match socket::accept4(rec, lst.as_fd(), libc::SOCK_CLOEXEC) {
        Ok(c) => Ok(Some(c)),
        Err(e) if e.errno == Errno::ECONNABORTED => Ok(None),
        Err(e) => Err(accept_error(e)),
    }
}

/// Where a conversation waits for the next message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitIn {
    /// In a ppoll before each recv (the stop signals are held otherwise).
    Ppoll,
    /// In the recv itself, the stop signals let in for good
    /// ([`signal::let_stops_in`]), the idle timeout as SO_RCVTIMEO.
    Recv,
}

/// One connection on a blocking stream socket (TCP or Unix), as in the
/// seed: recv, reply, until "q", EOF, a reset, or `idle` without a message.
/// `who` names the peer in messages.
pub(crate) fn converse(
    rec: &mut Recorder,
    conn: &OwnedFd,
    who: &str,
    prefix: &[u8],
    idle: Option<Duration>,
) -> Result<Ending> {
    converse_waiting(rec, conn, who, prefix, idle, WaitIn::Ppoll)
}

/// [`converse`], waiting where `wait_in` says.
pub(crate) fn converse_waiting(
    rec: &mut Recorder,
    conn: &OwnedFd,
    who: &str,
    prefix: &[u8],
    idle: Option<Duration>,
    wait_in: WaitIn,
) -> Result<Ending> {
    let mut buf = [0u8; RECV_SIZE];
    let mut reply = Vec::with_capacity(prefix.len() + RECV_SIZE);
    if let (WaitIn::Recv, Some(d)) = (wait_in, idle) {
        rec.note(format!(
            "SO_RCVTIMEO: a recv that waits {} s for this client returns EAGAIN (the idle timeout)",
            d.as_secs_f64()
        ));
        socket::setsockopt_timeval(rec, conn.as_fd(), libc::SOL_SOCKET, libc::SO_RCVTIMEO, d)?;
    }
    loop {
        if rec.tracing() {
            rec.waiting(match idle {
                Some(d) => format!("waiting up to {} s for {who} to send", d.as_secs_f64()),
                None => format!("waiting for {who} to send"),
            });
        }
        let idle_said = |rec: &mut Recorder| {
            rec.message(format!(
                "{who} sent nothing for {} s (--idle-timeout): closing it, so a silent client cannot hold the server",
                idle.map_or(0.0, |d| d.as_secs_f64())
            ));
        };
        let got = match wait_in {
            WaitIn::Ppoll => {
                if !wait::readable(rec, conn.as_fd(), idle)? {
                    idle_said(rec);
                    return Ok(Ending::Idle);
                }
                socket::recv(rec, conn.as_fd(), &mut buf, 0)
            }
            WaitIn::Recv => {
                let r = signal::in_window(rec, "recvfrom", |rec| {
                    socket::recv(rec, conn.as_fd(), &mut buf, 0)
                });
                match r {
                    Err(e) if e.errno == Errno::EAGAIN && idle.is_some() => {
                        idle_said(rec);
                        return Ok(Ending::Idle);
                    }
                    // A signal that is not a stop (none is expected): again.
                    Err(e) if e.errno == Errno::EINTR && signal::stop_pending().is_none() => {
                        continue
                    }
                    r => r,
                }
            }
        };
        let n = match got {
            Ok(n) => n,
            Err(e) if e.errno == Errno::ECONNRESET => {
                rec.message(format!(
                    "{who} reset the connection (RST): nothing more will come; closing it"
                ));
                return Ok(Ending::Reset);
            }
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
        if rec.tracing() {
            rec.message(format!("message from {who}: {}", shown(msg)));
        }
        reply_into(&mut reply, prefix, msg);
        if send_all(rec, conn, &reply, who)?.is_none() {
            return Ok(Ending::Reset);
        }
    }
}

pub(super) fn iterative(rec: &mut Recorder, lst: OwnedFd, cfg: &ServerConfig) -> Result<()> {
    let mut served = 0usize;
    let result = (|| -> Result<()> {
        loop {
            rec.waiting(
                "waiting for a client; while one is served, others wait in the listen backlog",
            );
            wait::readable(rec, lst.as_fd(), None)?;
            let Some((conn, peer)) = accept(rec, &lst)? else {
                continue;
            };
            let ending = match converse(rec, &conn, &peer_name(peer), &cfg.prefix, cfg.idle) {
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
            if rec.tracing() {
                rec.message("back to accept(): the next client in the backlog is served now");
            }
        }
    })();
    rec.note("the listening socket is closed: new connection attempts are refused");
    file::close(rec, lst)?;
    result
}

/// The longest pause after a failed fork.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

pub(super) fn forking(rec: &mut Recorder, lst: OwnedFd, cfg: &ServerConfig) -> Result<()> {
    signal::catch_children(rec)?;
    let mut children: Vec<Pid> = Vec::new();
    let mut accepted = 0usize;
    let mut backoff = Duration::from_millis(100);
    let mut at_cap_said = false;
    let mut lst = Some(lst);
    let result = (|| -> Result<()> {
        loop {
            if signal::take_caught(Signal::SIGCHLD) {
                reap_finished(rec, &mut children)?;
            }
            if cfg.limit.is_some_and(|l| accepted >= l) {
                return Ok(());
            }
            let Some(l) = lst.as_ref() else {
                return Ok(());
            };
            if children.len() >= cfg.max_children {
                if !at_cap_said {
                    rec.message(format!(
                        "{} children serve clients now (--max-children): new clients wait in the backlog until one ends",
                        children.len()
                    ));
                    at_cap_said = true;
                }
                rec.waiting("at the cap: waiting for a child to end (SIGCHLD)");
                match poll::ppoll(rec, &mut [], None, Lets::StopsAndChildren) {
                    Err(e) if woken_by_child(&e) => continue,
                    Err(e) => return Err(e.into()),
                    Ok(_) => continue,
                }
            }
            at_cap_said = false;
            rec.waiting("waiting for a client; SIGCHLD also ends the wait, so finished children are reaped at once");
            let mut set = [poll::pollfd(l.as_fd(), libc::POLLIN)];
            match poll::ppoll(rec, &mut set, None, Lets::StopsAndChildren) {
                Ok(_) => {}
                Err(e) if woken_by_child(&e) => continue,
                Err(e) => return Err(e.into()),
            }
            let Some((conn, peer)) = accept(rec, l)? else {
                continue;
            };
            accepted += 1;
            let forked = match process::fork(rec) {
                Ok(f) => f,
                Err(e) if matches!(e.errno, Errno::EAGAIN | Errno::ENOMEM) => {
                    rec.note(format!(
                        "fork failed ({}): this one client is turned away — its connection is closed — and the server carries on",
                        if e.errno == Errno::EAGAIN { "the process limit, RLIMIT_NPROC, is reached" } else { "out of memory" }
                    ));
                    file::close(rec, conn)?;
                    rec.note(format!(
                        "a pause of {} ms before the next accept; a child that ends cuts it short",
                        backoff.as_millis()
                    ));
                    match poll::ppoll(rec, &mut [], Some(backoff), Lets::StopsAndChildren) {
                        Ok(_) => {}
                        Err(e) if woken_by_child(&e) => {}
                        Err(e) => return Err(e.into()),
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            match forked {
                Forked::Child => child_exit(rec, |rec| {
                    if let Some(l) = lst.take() {
                        rec.note("the child closes its copy of the listening socket: only the parent accepts");
                        file::close(rec, l)?;
                    }
                    signal::let_stops_in(rec)?;
                    let ending = converse_waiting(
                        rec,
                        &conn,
                        &peer_name(peer),
                        &cfg.prefix,
                        cfg.idle,
                        WaitIn::Recv,
                    );
                    match ending {
                        Ok(ending) => close_conn(rec, conn, ending),
                        Err(e) => {
                            let _ = file::close(rec, conn);
                            Err(e)
                        }
                    }
                }),
                Forked::Parent { child } => {
                    backoff = Duration::from_millis(100);
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
    // Every child is reaped, whatever happened above: after a stop or an
    // error each is asked to stop; otherwise each ends its own connection.
    let stopping = result.is_err();
    for c in children {
        let _ = if stopping {
            wait::stop(rec, c)
        } else {
            wait::reap(rec, c).or_else(|_| wait::stop(rec, c))
        };
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
            Err(e) => return Err(Error::from(e)),
        }
    }
    *children = alive;
    Ok(())
}
