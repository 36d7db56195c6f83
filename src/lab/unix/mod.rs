//! Unix-domain sockets: the socket family most local client–server software
//! uses (databases, X11, systemd, Docker). The calls are the TCP and UDP
//! ones — socket, bind, listen, accept4, connect, sendto, recvfrom — with
//! `AF_UNIX` and a file-system path or an abstract name for an address;
//! then what only they can do: `socketpair`, passing an open descriptor to
//! another process (`sendmsg` with `SCM_RIGHTS`), and learning who the peer
//! is from the kernel (`SO_PEERCRED`).
//!
//! - `demo` (demo.rs): server (parent) and client (child) over a path in a
//!   private directory or an abstract name, stream or datagram, then the
//!   stale socket file that makes the next `bind` fail with EADDRINUSE.
//! - `server PATH` / `client PATH` (ends.rs): one end each, for two
//!   terminals, with the FIFO commands' care: never follow a symlink, never
//!   remove what ipclab did not create.
//! - `pair`, `pass-fd`, `cred` (pair.rs).
//!
//! Every wait is a ppoll that lets Ctrl-C in (see `sys::signal`); a
//! `connect`, which cannot wait in ppoll, runs inside
//! `sys::signal::interruptible`. Paths the run creates are [`Made`] and
//! removed on every way out.

mod demo;
mod ends;
mod pair;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::lab::{wait, Made};
use crate::sys::socket::unix::{self, UnixAddr};
use crate::sys::{file, signal, socket};
use crate::trace::Recorder;

/// A validated `ipclab unix …`.
#[derive(Debug, Clone)]
pub enum UnixConfig {
    Demo {
        dgram: bool,
        abstract_name: bool,
    },
    Server {
        addr: UnixAddr,
    },
    Client {
        addr: UnixAddr,
        messages: Option<Vec<Vec<u8>>>,
        timeout: Duration,
    },
    Pair {
        message: Vec<u8>,
    },
    PassFd,
    Cred,
}

/// Runs the Unix-socket lab.
pub fn run(rec: &mut Recorder, cfg: &UnixConfig) -> Result<()> {
    match cfg {
        UnixConfig::Demo {
            dgram,
            abstract_name,
        } => demo::run(rec, *dgram, *abstract_name),
        UnixConfig::Server { addr } => ends::server(rec, addr),
        UnixConfig::Client {
            addr,
            messages,
            timeout,
        } => ends::client(rec, addr, messages.as_deref(), *timeout),
        UnixConfig::Pair { message } => pair::pair(rec, message),
        UnixConfig::PassFd => pair::pass_fd(rec),
        UnixConfig::Cred => pair::cred(rec),
    }
}

/// Checks a socket address given on the command line: a path, or `@NAME`
/// for an abstract name.
pub fn check_address(arg: &Path) -> Result<UnixAddr> {
    UnixAddr::parse(arg).map_err(|why| {
        Error::usage(format!(
            "{:?}: {why}; give a path such as /tmp/ipclab.sock, or @name for an abstract name",
            arg.display().to_string()
        ))
    })
}

/// Checks `unix pair --message`: 1 to 1024 bytes (the child reads 1024
/// bytes per recv(), as the seed's server does).
pub fn check_message(msg: &str) -> Result<Vec<u8>> {
    let max = crate::lab::repeater::RECV_SIZE;
    if msg.is_empty() || msg.len() > max {
        return Err(Error::usage(format!(
            "--message is {} bytes; give 1 to {max} (the child reads {max} bytes per recv())",
            msg.len()
        )));
    }
    Ok(msg.as_bytes().to_vec())
}

/// The longest name the demo's private directory can have, with "/sock".
const DEMO_NAME: &str = "/ipclab-4194304-ffffffff/sock";

/// Whether $TMPDIR leaves room for the demo's socket path in `sun_path`
/// (checked before any step: a too long TMPDIR is bad input).
pub fn check_tmpdir() -> Result<()> {
    let dir = std::env::temp_dir();
    let len = dir.as_os_str().len() + DEMO_NAME.len();
    if len >= unix::SUN_PATH_LEN {
        return Err(Error::usage(format!(
            "TMPDIR {:?} is too long for a socket path inside it ({len} bytes; sun_path holds {}): set TMPDIR=/tmp, or use --abstract",
            dir.display().to_string(),
            unix::SUN_PATH_LEN - 1
        )));
    }
    Ok(())
}

/// A fresh abstract name, private to this run: `@ipclab-PID-NANOS`.
fn fresh_abstract() -> UnixAddr {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    UnixAddr::Abstract(format!("ipclab-{}-{nanos:08x}", std::process::id()).into_bytes())
}

/// A path inside the private directory `dir`, checked to fit `sun_path`.
fn inside(dir: &Path, name: &str) -> Result<UnixAddr> {
    let p: PathBuf = dir.join(name);
    UnixAddr::path(&p).map_err(|why| Error::usage(format!("{}: {why}", p.display())))
}

/// `socket(AF_UNIX, ty|SOCK_CLOEXEC, 0)`.
fn unix_socket(rec: &mut Recorder, ty: i32) -> Result<OwnedFd> {
    let kind = if ty == libc::SOCK_DGRAM {
        "datagram"
    } else {
        "stream"
    };
    Ok(socket::socket_explained(
        rec,
        libc::AF_UNIX,
        ty | libc::SOCK_CLOEXEC,
        0,
        |fd| {
            format!("a new Unix {kind} socket as fd {fd}: the calls are TCP's and UDP's, the address will be a name on this machine")
        },
    )?)
}

/// bind, with the classic failures explained; records a socket file made.
fn bind_named(rec: &mut Recorder, fd: BorrowedFd<'_>, addr: &UnixAddr) -> Result<Option<Made>> {
    if let Err(e) = unix::bind(rec, fd, addr) {
        let shown = addr.shown();
        let hint = match e.errno {
            Errno::EADDRINUSE => format!(
                "{shown} is taken: a file (perhaps a stale socket file) or a listening socket has that name already"
            ),
            Errno::ENOENT => format!("the directory of {shown} does not exist"),
            Errno::EACCES => format!("no permission to create {shown}"),
            _ => format!("cannot bind {shown}"),
        };
        return Err(Error::SysHint(e, hint));
    }
    match addr {
        UnixAddr::Path(p) => {
            let made = Made::look(rec, p, "socket file")?;
            rec.message(format!(
                "the socket file has mode {:04o} (0777 less the umask): connect() needs write permission on it, so this mode is who may connect",
                made.mode & 0o7777
            ));
            Ok(Some(made))
        }
        _ => Ok(None),
    }
}

/// listen(fd, 5), with what it means for a Unix socket.
fn listen(rec: &mut Recorder, fd: BorrowedFd<'_>) -> Result<()> {
    rec.note("listening: connect() calls to this name now queue here, up to 5, for accept() — no handshake, no packets");
    socket::listen(rec, fd, 5)?;
    Ok(())
}

/// socket → connect (a call the stop signals may interrupt), each classic
/// failure explained.
fn connect(rec: &mut Recorder, addr: &UnixAddr) -> Result<OwnedFd> {
    let sock = unix_socket(rec, libc::SOCK_STREAM)?;
    rec.note(
        "connected: the server's kernel side queued this connection at once (no handshake on the wire); accept() will take it",
    );
    let done = signal::interruptible(rec, |rec| unix::connect(rec, sock.as_fd(), addr));
    if let Err(e) = done {
        let shown = addr.shown();
        let hint = match e.errno {
            Errno::EINTR => {
                let _ = file::close(rec, sock);
                return Err(e.into());
            }
            Errno::ECONNREFUSED => format!(
                "nobody listens on {shown}: a socket file whose server is gone (stale), or a socket that does not listen"
            ),
            Errno::ENOENT => format!(
                "no socket at {shown}: start `ipclab unix server {shown}` first"
            ),
            Errno::EACCES => format!("no write permission on the socket file {shown}"),
            _ => format!("cannot connect to {shown}"),
        };
        let _ = file::close(rec, sock);
        return Err(Error::SysHint(e, hint));
    }
    Ok(sock)
}

/// Waits for a client (ppoll), then accept4.
fn accept_one(rec: &mut Recorder, lst: &OwnedFd, waiting: &str) -> Result<OwnedFd> {
    rec.waiting(waiting);
    wait::readable(rec, lst.as_fd(), None)?;
    let (conn, _) = unix::accept4(rec, lst.as_fd(), libc::SOCK_CLOEXEC)?;
    Ok(conn)
}
