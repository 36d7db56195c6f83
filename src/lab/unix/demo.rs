//! `ipclab unix demo [--dgram] [--abstract]`: the notes' repeater over a
//! Unix socket, both ends in one command.
//!
//! Stream: socket → bind (a path in a private directory: the socket file
//! appears) → listen → clone; the client (child) socket → connect → "hello"
//! → "q"; the server (parent) accept4 → recvfrom/sendto → close. Datagram:
//! no listen, accept or connect; the client autobinds (`bind` with the
//! family alone), or the server could not answer it. Then the lesson of
//! the socket file: it outlives the socket, so the next `bind` to that path
//! fails with EADDRINUSE and a `connect` with ECONNREFUSED, until someone
//! unlinks it. An abstract name (`--abstract`) has no file: it goes with
//! its last socket, and binding it again just works.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;

use super::{accept_one, bind_named, connect, fresh_abstract, inside, listen, unix_socket};
use crate::error::{Error, Result};
use crate::lab::repeater::{is_quit, reply_into, shown, RECV_SIZE, SEED_PREFIX};
use crate::lab::tcp::{close_conn, converse, exchange};
use crate::lab::wait::{self, expect_exit_0};
use crate::lab::{child_exit, set_up, Made};
use crate::sys::process::{self, Forked};
use crate::sys::socket::{unix, unix::UnixAddr};
use crate::sys::{file, signal};
use crate::trace::Recorder;

/// How long either end waits for the other.
const DEMO_TIMEOUT: Duration = Duration::from_secs(10);
/// The most datagrams the datagram server takes before giving up on "q".
const MAX_DATAGRAMS: usize = 16;

/// What the demo made in the file system, to remove on every way out.
#[derive(Default)]
struct Created {
    dir: Option<Made>,
    sock: Option<Made>,
}

pub(super) fn run(rec: &mut Recorder, dgram: bool, abstract_name: bool) -> Result<()> {
    let mut created = Created::default();
    let result = run_inner(rec, dgram, abstract_name, &mut created);
    if let Some(m) = created.sock.take() {
        m.remove(
            rec,
            false,
            "the socket file is removed: close() never removes it — the server must unlink it itself",
        );
    }
    if let Some(d) = created.dir.take() {
        d.remove(rec, true, "the private directory is removed");
    }
    result
}

fn run_inner(
    rec: &mut Recorder,
    dgram: bool,
    abstract_name: bool,
    created: &mut Created,
) -> Result<()> {
    let addr = if abstract_name {
        fresh_abstract()
    } else {
        let dir = Made::private_dir(rec)?;
        let addr = inside(&dir.path, "sock");
        created.dir = Some(dir);
        addr?
    };
    let ty = if dgram {
        libc::SOCK_DGRAM
    } else {
        libc::SOCK_STREAM
    };
    let srv = unix_socket(rec, ty)?;
    let (srv, made) = set_up(rec, srv, |rec, fd| {
        let made = bind_named(rec, fd, &addr)?;
        if !dgram {
            listen(rec, fd)?;
        }
        Ok(made)
    })?;
    created.sock = made;
    rec.message(format!(
        "the server's fd {} is bound to {}; the client, a child, will reach it by that name",
        std::os::fd::AsRawFd::as_raw_fd(&srv),
        addr.shown()
    ));
    let forked = match process::fork(rec) {
        Ok(f) => f,
        Err(e) => {
            let _ = file::close(rec, srv);
            return Err(e.into());
        }
    };
    match forked {
        Forked::Child => child_exit(rec, |rec| {
            rec.note("the client does not use the server's socket: it closes its copy");
            file::close(rec, srv)?;
            if dgram {
                datagram_client(rec, &addr)
            } else {
                stream_client(rec, &addr)
            }
        }),
        Forked::Parent { child } => {
            let side = if dgram {
                datagram_server(rec, &srv)
            } else {
                stream_server(rec, &srv)
            };
            rec.note(if dgram {
                "the server's socket is closed"
            } else {
                "the listening socket is closed: new connection attempts are refused"
            });
            let closed = file::close(rec, srv).map_err(Error::from);
            let side = side.and(closed);
            expect_exit_0(wait::finish(rec, child, side)?)?;
            afterwards(rec, &addr, ty)
        }
    }
}

fn stream_server(rec: &mut Recorder, lst: &OwnedFd) -> Result<()> {
    let conn = accept_one(rec, lst, "waiting for the client to connect")?;
    let ending = converse(
        rec,
        &conn,
        "the client",
        SEED_PREFIX.as_bytes(),
        Some(DEMO_TIMEOUT),
    );
    match ending {
        Ok(e) => close_conn(rec, conn, e),
        Err(e) => {
            let _ = file::close(rec, conn);
            Err(e)
        }
    }
}

fn stream_client(rec: &mut Recorder, addr: &UnixAddr) -> Result<()> {
    let sock = connect(rec, addr)?;
    let talked = (|| -> Result<()> {
        exchange(rec, &sock, b"hello", DEMO_TIMEOUT)?;
        exchange(rec, &sock, b"q", DEMO_TIMEOUT)?;
        Ok(())
    })();
    file::close(rec, sock)?;
    talked
}

/// The datagram server: each datagram answered to its sender, until "q".
fn datagram_server(rec: &mut Recorder, srv: &OwnedFd) -> Result<()> {
    let mut buf = [0u8; RECV_SIZE];
    let mut reply = Vec::with_capacity(SEED_PREFIX.len() + RECV_SIZE);
    for _ in 0..MAX_DATAGRAMS {
        rec.waiting("waiting for a datagram");
        if !wait::readable(rec, srv.as_fd(), Some(DEMO_TIMEOUT))? {
            return Err(Error::protocol(format!(
                "no datagram within {} s",
                DEMO_TIMEOUT.as_secs()
            )));
        }
        let (n, from) = unix::recvfrom(rec, srv.as_fd(), &mut buf, 0)?;
        let msg = &buf[..n];
        if is_quit(msg) {
            rec.message(format!("{} sent \"q\": the server stops", from.shown()));
            return Ok(());
        }
        rec.message(format!("datagram from {}: {}", from.shown(), shown(msg)));
        if from.is_unnamed() {
            rec.message("the sender has no name: there is no address to answer to");
            continue;
        }
        reply_into(&mut reply, SEED_PREFIX.as_bytes(), msg);
        rec.note_err("the reply cannot be delivered (the client's queue is full, or the client is gone): it is dropped, and the server goes on");
        match unix::sendto(rec, srv.as_fd(), &reply, libc::MSG_DONTWAIT, &from) {
            Ok(_) => {}
            Err(e) if e.errno == Errno::EAGAIN || e.errno == Errno::ECONNREFUSED => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::protocol(format!(
        "no \"q\" among {MAX_DATAGRAMS} datagrams"
    )))
}

fn datagram_client(rec: &mut Recorder, addr: &UnixAddr) -> Result<()> {
    let sock = unix_socket(rec, libc::SOCK_DGRAM)?;
    let talked = (|| -> Result<()> {
        rec.note(
            "autobind: a Unix datagram socket gets no name by sending (a UDP one gets a port), and a server cannot answer a sender without one — so the client binds with the family alone and the kernel picks an abstract name",
        );
        unix::bind(rec, sock.as_fd(), &UnixAddr::Unnamed)?;
        rec.note("the name the kernel picked: the server's replies come here");
        unix::getsockname(rec, sock.as_fd())?;
        unix::sendto(rec, sock.as_fd(), b"hello", 0, addr)?;
        let mut buf = [0u8; 4 * RECV_SIZE];
        rec.waiting(format!(
            "waiting up to {} s for the reply",
            DEMO_TIMEOUT.as_secs()
        ));
        if !wait::readable(rec, sock.as_fd(), Some(DEMO_TIMEOUT))? {
            return Err(Error::protocol("no reply from the server"));
        }
        let (n, _) = unix::recvfrom(rec, sock.as_fd(), &mut buf, 0)?;
        rec.message(format!(
            "reply: {} — a Unix datagram is never lost: where UDP drops, a full queue makes sendto() wait",
            shown(&buf[..n])
        ));
        rec.note("\"q\": the server stops; no reply comes to this one");
        unix::sendto(rec, sock.as_fd(), b"q", 0, addr)?;
        Ok(())
    })();
    file::close(rec, sock)?;
    talked
}

/// After the server is gone: a path's socket file is still there (bind
/// fails, connect is refused); an abstract name is free again.
fn afterwards(rec: &mut Recorder, addr: &UnixAddr, ty: i32) -> Result<()> {
    let sock = unix_socket(rec, ty)?;
    let result = (|| -> Result<()> {
        if let UnixAddr::Abstract(_) = addr {
            rec.note("the abstract name went away with its last socket: binding it again just works — nothing to unlink, nothing stale");
            unix::bind(rec, sock.as_fd(), addr)?;
            return Ok(());
        }
        rec.note_err(
            "the socket file outlived its socket: while it exists, bind() to that path fails — a restarted server must unlink it first",
        );
        match unix::bind(rec, sock.as_fd(), addr) {
            Err(e) if e.errno == Errno::EADDRINUSE => {}
            Err(e) => return Err(e.into()),
            Ok(()) => {
                return Err(Error::protocol(
                    "bind to the old socket file succeeded: the file was gone",
                ))
            }
        }
        rec.note_err(
            "a stale socket file: a name with no socket behind it, so connect() is refused",
        );
        // Refused at once when nothing listens; inside the window all the
        // same, since a connect() could wait (for room in a backlog).
        match signal::interruptible(rec, |rec| unix::connect(rec, sock.as_fd(), addr)) {
            Err(e) if e.errno == Errno::ECONNREFUSED => {}
            Err(e) => return Err(e.into()),
            Ok(()) => return Err(Error::protocol("connect to the old socket file succeeded")),
        }
        rec.message(
            "a stale socket file: servers unlink their path at exit, or before bind() once sure no one listens there — ipclab removes it now",
        );
        Ok(())
    })();
    file::close(rec, sock)?;
    result
}
