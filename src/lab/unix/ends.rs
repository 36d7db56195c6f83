//! `ipclab unix server PATH` and `ipclab unix client PATH`: one end each,
//! for two terminals (`@NAME` for an abstract name).
//!
//! The server is the notes' iterative repeater: socket → bind → listen →
//! (accept4 → recvfrom/sendto … → close)… until a client sends "q"; then it
//! closes and removes the socket file it made. Like the FIFO commands it
//! looks first (`lstat`) and refuses a path where anything exists — a
//! regular file, a symlink, a socket file someone else's server may still
//! use — and at the end removes only the file it made, if it is still that
//! one. `bind` itself never follows a symlink or replaces a file (it fails
//! with EADDRINUSE), so a file appearing in between is safe too. The client
//! refuses a path that is not a socket file (`connect` would follow a
//! symlink), then connects and sends each `--send` message, or stdin's lines.

use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;

use super::{accept_one, bind_named, connect, listen, unix_socket};
use crate::error::{Error, Result};
use crate::lab::repeater::SEED_PREFIX;
use crate::lab::tcp::{close_conn, converse, exchange, interactive, Ending, DEFAULT_IDLE};
use crate::lab::{set_up, Made};
use crate::sys::file;
use crate::sys::socket::unix::UnixAddr;
use crate::trace::Recorder;

/// `ipclab unix server PATH`.
pub(super) fn server(rec: &mut Recorder, addr: &UnixAddr) -> Result<()> {
    let mut made: Option<Made> = None;
    let result = serve(rec, addr, &mut made);
    if let Some(m) = made.take() {
        m.remove(
            rec,
            false,
            "the socket file this server made is removed, so the next server can bind the path",
        );
    }
    result
}

fn serve(rec: &mut Recorder, addr: &UnixAddr, made: &mut Option<Made>) -> Result<()> {
    if let UnixAddr::Path(p) = addr {
        nothing_there(rec, p)?;
    }
    let lst = unix_socket(rec, libc::SOCK_STREAM)?;
    let (lst, m) = set_up(rec, lst, |rec, fd| {
        let m = bind_named(rec, fd, addr)?;
        listen(rec, fd)?;
        Ok(m)
    })?;
    *made = m;
    let shown = addr.shown();
    rec.message(format!(
        "listening on {shown}; try: ipclab unix client {shown} --send hello --send q"
    ));
    let result = (|| -> Result<()> {
        loop {
            let conn = accept_one(
                rec,
                &lst,
                "waiting for a client; while one is served, others wait in the listen backlog",
            )?;
            let ending = match converse(
                rec,
                &conn,
                "the client",
                SEED_PREFIX.as_bytes(),
                Some(DEFAULT_IDLE),
            ) {
                Ok(e) => e,
                Err(e) => {
                    let _ = file::close(rec, conn);
                    return Err(e);
                }
            };
            close_conn(rec, conn, ending)?;
            if ending == Ending::Quit {
                rec.message("\"q\" also stops the server, as in the seed");
                return Ok(());
            }
            rec.message("back to accept(): the next client is served now");
        }
    })();
    rec.note("the listening socket is closed: connect() to the path is refused from now on");
    file::close(rec, lst)?;
    result
}

/// The server's path must be free. Anything there is refused (exit 2) and
/// left as it is: never followed, replaced or removed.
fn nothing_there(rec: &mut Recorder, p: &Path) -> Result<()> {
    rec.note_err("nothing there yet: bind() will create the socket file");
    match file::lstat(rec, p) {
        Ok(st) => {
            let is_socket = st.st_mode & libc::S_IFMT == libc::S_IFSOCK;
            Err(Error::usage(format!(
                "{} exists and is {}{}; ipclab never replaces, follows or removes what it did not create — give a new path",
                p.display(),
                file::kind_text(st.st_mode),
                if is_socket {
                    " (a server may be using it, or it is stale: remove it with rm once sure no server uses it)"
                } else {
                    ""
                }
            )))
        }
        Err(e) if e.errno == Errno::ENOENT => Ok(()),
        Err(e) => Err(Error::SysHint(e, format!("cannot look at {}", p.display()))),
    }
}

/// The client's path must be a socket file: connect() would follow a symlink.
fn a_socket_there(rec: &mut Recorder, p: &Path) -> Result<()> {
    match file::lstat(rec, p) {
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFSOCK => Ok(()),
        Ok(st) => Err(Error::usage(format!(
            "{} is {}, not a socket file{} — give the socket's own path",
            p.display(),
            file::kind_text(st.st_mode),
            if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                "; ipclab never follows a symbolic link (connect() would)"
            } else {
                ""
            }
        ))),
        Err(e) if e.errno == Errno::ENOENT => Err(Error::SysHint(
            e,
            format!(
                "no socket at {}: start `ipclab unix server {}` first",
                p.display(),
                p.display()
            ),
        )),
        Err(e) => Err(Error::SysHint(e, format!("cannot look at {}", p.display()))),
    }
}

/// `ipclab unix client PATH`.
pub(super) fn client(
    rec: &mut Recorder,
    addr: &UnixAddr,
    messages: Option<&[Vec<u8>]>,
    timeout: Duration,
) -> Result<()> {
    if let UnixAddr::Path(p) = addr {
        a_socket_there(rec, p)?;
    }
    let sock = connect(rec, addr)?;
    let result = match messages {
        Some(list) => (|| -> Result<()> {
            for m in list {
                if !exchange(rec, &sock, m, timeout)? {
                    break;
                }
            }
            Ok(())
        })(),
        None => interactive(rec, &sock, timeout),
    };
    file::close(rec, sock)?;
    result
}
