//! What only Unix sockets do, each with both ends in one command:
//!
//! - `pair`: socketpair → clone; parent and child talk both ways over one
//!   pair of descriptors (a pipe is one-way: `pipe --duplex` needs two).
//! - `pass-fd`: the parent opens a file and sends the open descriptor over
//!   a socketpair (`sendmsg` with `SCM_RIGHTS`); the child's `recvmsg`
//!   gets a new descriptor, with another number, for the same open file,
//!   and reads the file through it.
//! - `cred`: a server asks the kernel who its client is (`getsockopt`
//!   `SO_PEERCRED`): pid, uid and gid, recorded at `connect()` — something
//!   no TCP server can learn.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::unistd::Pid;

use super::{accept_one, bind_named, connect, fresh_abstract, listen, unix_socket};
use crate::error::{Error, Result};
use crate::lab::repeater::{shown, RECV_SIZE};
use crate::lab::wait::{self, expect_exit_0};
use crate::lab::{child_exit, set_up, Made};
use crate::sys::file;
use crate::sys::process::{self, Forked};
use crate::sys::socket::{self, unix};
use crate::trace::names::printable;
use crate::trace::Recorder;

/// How long either end waits for the other.
const TIMEOUT: Duration = Duration::from_secs(10);

/// What the pass-fd child reads through the descriptor it is given.
const CONTENT: &[u8] =
    b"written by the parent; read by the child through a descriptor it never opened\n";

/// Waits for `fd` (ppoll, bounded) and receives once; None at EOF.
fn recv_one(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    waiting: &str,
) -> Result<Option<usize>> {
    rec.waiting(waiting);
    if !wait::readable(rec, fd, Some(TIMEOUT))? {
        return Err(Error::protocol(format!(
            "nothing within {} s",
            TIMEOUT.as_secs()
        )));
    }
    let n = socket::recv(rec, fd, buf, 0)?;
    Ok((n > 0).then_some(n))
}

/// socketpair + clone: one descriptor each, both directions.
pub(super) fn pair(rec: &mut Recorder, msg: &[u8]) -> Result<()> {
    let (a, b) = unix::socketpair(rec, libc::SOCK_STREAM | libc::SOCK_CLOEXEC)?;
    let forked = match process::fork(rec) {
        Ok(f) => f,
        Err(e) => {
            let _ = file::close(rec, a);
            let _ = file::close(rec, b);
            return Err(e.into());
        }
    };
    match forked {
        Forked::Child => child_exit(rec, |rec| {
            rec.note("the child keeps one end and closes the parent's");
            file::close(rec, a)?;
            let answered = (|| -> Result<()> {
                let mut buf = [0u8; RECV_SIZE];
                let Some(n) = recv_one(
                    rec,
                    b.as_fd(),
                    &mut buf,
                    "waiting for the parent's question",
                )?
                else {
                    return Err(Error::protocol("the parent closed without asking"));
                };
                let mut reply = b"child got: ".to_vec();
                reply.extend_from_slice(&buf[..n]);
                rec.note("the answer goes back on the descriptor the question came in on");
                socket::send(rec, b.as_fd(), &reply, libc::MSG_NOSIGNAL)?;
                Ok(())
            })();
            rec.note("the child closes its end: after the answer, the parent reads EOF");
            file::close(rec, b)?;
            answered
        }),
        Forked::Parent { child } => {
            let side = (|| -> Result<()> {
                rec.note("the parent keeps the other end: one descriptor for both directions");
                file::close(rec, b)?;
                socket::send(rec, a.as_fd(), msg, libc::MSG_NOSIGNAL)?;
                let mut buf = [0u8; RECV_SIZE + 16];
                let Some(n) = recv_one(
                    rec,
                    a.as_fd(),
                    &mut buf,
                    "waiting for the child's answer on the same descriptor",
                )?
                else {
                    return Err(Error::protocol("the child closed without answering"));
                };
                rec.message(format!(
                    "answer from the child, on the descriptor the question went out on: {} — one socketpair carries both directions, where `pipe --duplex` needs two pipes",
                    shown(&buf[..n])
                ));
                if recv_one(rec, a.as_fd(), &mut buf, "waiting for EOF")?.is_some() {
                    return Err(Error::protocol("the child sent more than its answer"));
                }
                file::close(rec, a)?;
                Ok(())
            })();
            expect_exit_0(wait::finish(rec, child, side)?)
        }
    }
}

/// What pass-fd made in the file system.
#[derive(Default)]
struct Created {
    dir: Option<Made>,
    file: Option<Made>,
}

/// The parent opens a file and passes the open descriptor to the child.
pub(super) fn pass_fd(rec: &mut Recorder) -> Result<()> {
    let mut created = Created::default();
    let result = pass_inner(rec, &mut created);
    if let Some(f) = created.file.take() {
        f.remove(rec, false, "the file is removed");
    }
    if let Some(d) = created.dir.take() {
        d.remove(rec, true, "the private directory is removed");
    }
    result
}

fn pass_inner(rec: &mut Recorder, created: &mut Created) -> Result<()> {
    let dir = Made::private_dir(rec)?;
    let path = dir.path.join("passed.txt");
    created.dir = Some(dir);
    rec.note("the file the descriptor will refer to, made and filled before the fork: the child inherits no descriptor for it");
    let fd = file::openat_mode(
        rec,
        &path,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        0o600,
    )?;
    let (fd, made) = set_up(rec, fd, |rec, fd| {
        let made = Made::look(rec, &path, "file")?;
        if file::write(rec, fd, CONTENT)? != CONTENT.len() {
            return Err(Error::protocol("a short write to a new file"));
        }
        Ok(made)
    })?;
    created.file = Some(made);
    file::close(rec, fd)?;
    let (a, b) = unix::socketpair(rec, libc::SOCK_STREAM | libc::SOCK_CLOEXEC)?;
    let forked = match process::fork(rec) {
        Ok(f) => f,
        Err(e) => {
            let _ = file::close(rec, a);
            let _ = file::close(rec, b);
            return Err(e.into());
        }
    };
    match forked {
        Forked::Child => child_exit(rec, |rec| {
            rec.note("the child keeps one end and closes the parent's");
            file::close(rec, a)?;
            let got = receive(rec, b.as_fd());
            file::close(rec, b)?;
            got
        }),
        Forked::Parent { child } => {
            let side = (|| -> Result<()> {
                rec.note("the parent keeps the other end");
                file::close(rec, b)?;
                rec.note("the parent opens the file for reading: a new open file, at offset 0");
                let f = file::openat(
                    rec,
                    &path,
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    None,
                )?;
                // The data byte(s) carry the parent's number for it, for the child to compare.
                let number = f.as_raw_fd().to_string();
                let sent = unix::sendmsg_fds(rec, a.as_fd(), number.as_bytes(), &[f.as_fd()]);
                rec.note("the parent's own descriptor is closed: the open file lives on, held by the message in flight");
                file::close(rec, f)?;
                sent?;
                rec.note("the parent's end is closed: the message stays queued for the child");
                file::close(rec, a)?;
                Ok(())
            })();
            expect_exit_0(wait::finish(rec, child, side)?)
        }
    }
}

/// The child's side of pass-fd: receive the descriptor, read the file.
fn receive(rec: &mut Recorder, sock: BorrowedFd<'_>) -> Result<()> {
    let mut buf = [0u8; 16];
    rec.waiting("waiting for the parent's message");
    if !wait::readable(rec, sock, Some(TIMEOUT))? {
        return Err(Error::protocol("no message from the parent"));
    }
    let mut got = unix::recvmsg_fds(rec, sock, &mut buf)?;
    let theirs = printable(&buf[..got.len]);
    if got.fds.is_empty() {
        return Err(Error::protocol(if got.truncated {
            "the descriptor did not fit (MSG_CTRUNC)"
        } else {
            "a message without a descriptor"
        }));
    }
    let f: OwnedFd = got.fds.remove(0);
    for extra in got.fds {
        file::close(rec, extra)?;
    }
    rec.message(format!(
        "fd {} here is what the parent holds as fd {theirs} (the number it sent as data): another number, the same open file — same offset, same flags",
        f.as_raw_fd()
    ));
    let mut data = [0u8; 256];
    // A regular file is always ready: this read does not block.
    let read = file::read(rec, f.as_fd(), &mut data);
    rec.note("the passed descriptor is closed: the open file is released");
    file::close(rec, f)?;
    let n = read?;
    rec.message(format!(
        "read through the passed descriptor: {}",
        printable(data[..n].strip_suffix(b"\n").unwrap_or(&data[..n]))
    ));
    if &data[..n] != CONTENT {
        return Err(Error::protocol("the passed descriptor read something else"));
    }
    Ok(())
}

/// A server learns its client's pid, uid and gid from the kernel.
pub(super) fn cred(rec: &mut Recorder) -> Result<()> {
    let addr = fresh_abstract();
    let lst = unix_socket(rec, libc::SOCK_STREAM)?;
    let (lst, _) = set_up(rec, lst, |rec, fd| {
        bind_named(rec, fd, &addr)?;
        listen(rec, fd)?;
        Ok(())
    })?;
    let forked = match process::fork(rec) {
        Ok(f) => f,
        Err(e) => {
            let _ = file::close(rec, lst);
            return Err(e.into());
        }
    };
    match forked {
        Forked::Child => child_exit(rec, |rec| {
            rec.note("the client does not use the listening socket: it closes its copy");
            file::close(rec, lst)?;
            let s = connect(rec, &addr)?;
            let mut buf = [0u8; 16];
            let ended = recv_one(rec, s.as_fd(), &mut buf, "waiting for the server to close");
            file::close(rec, s)?;
            match ended? {
                None => Ok(()),
                Some(_) => Err(Error::protocol("the server sent data")),
            }
        }),
        Forked::Parent { child } => {
            let side = server_side(rec, &lst, child);
            rec.note("the listening socket is closed; the abstract name goes with it");
            let closed = file::close(rec, lst).map_err(Error::from);
            expect_exit_0(wait::finish(rec, child, side.and(closed))?)
        }
    }
}

fn server_side(rec: &mut Recorder, lst: &OwnedFd, child: Pid) -> Result<()> {
    let conn = accept_one(rec, lst, "waiting for the client to connect")?;
    rec.note(
        "asked of the kernel, not of the client: the pid, uid and gid it recorded at connect()",
    );
    let cred = unix::getsockopt_peercred(rec, conn.as_fd());
    rec.note("the server closes the connection: the client reads EOF and exits");
    file::close(rec, conn)?;
    let cred = cred?;
    rec.message(format!(
        "the client is pid {}, uid {}, gid {} — the kernel says so, and the client cannot make it say otherwise. A TCP server learns only an address and a port: to know who calls, it must ask for a password or a certificate",
        cred.pid, cred.uid, cred.gid
    ));
    if cred.pid != child.as_raw() {
        return Err(Error::protocol(format!(
            "SO_PEERCRED named pid {}, but the client is pid {child}",
            cred.pid
        )));
    }
    rec.message(format!("pid {child} is indeed the child forked above"));
    Ok(())
}
