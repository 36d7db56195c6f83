//! The seed's TCP repeater: server socket → setsockopt(SO_REUSEADDR) → bind
//! → listen → accept4 → recvfrom/sendto … → close; client socket → connect
//! → sendto → recvfrom … → close.
//!
//! Three server models, each traced:
//! - `iterative` (the seed's): one client at a time; the next waits in the
//!   listen backlog. "q" stops the server. An idle client is dropped after
//!   `--idle-timeout`, so it cannot hold the others out for good.
//! - `fork`: one child per connection, at most `--max-children` at once;
//!   SIGCHLD ends the parent's wait so it reaps each finished child at once.
//!   A failed fork (RLIMIT_NPROC) closes that one connection and backs off.
//! - `poll`: one process, non-blocking sockets, epoll_pwait for readiness;
//!   a reply that does not fit waits in a fixed per-connection buffer.
//!
//! Every wait is a ppoll or epoll_pwait that lets Ctrl-C in (see
//! `sys::signal`); the accept4 or recvfrom after it returns at once.
//!
//! Where the seed's server is wrong: `recv()` returning 0 means the peer
//! closed (EOF). The seed's `if data:` skips it and loops forever, spinning
//! at 100% CPU; this server closes the connection and goes back to accept.

mod blocking;
mod client;
mod polling;

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;

use crate::error::{Error, Result, SysError};
use crate::lab::repeater::{self, family};
use crate::lab::wait;
use crate::sys::{file, socket};
use crate::trace::Recorder;

pub(crate) use blocking::converse;
pub use client::{client, demo, StdinLines};
pub(crate) use client::{exchange, interactive};

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
    /// Drop a client that sends nothing for this long (iterative and fork).
    pub idle: Option<Duration>,
    /// At most this many children at once (fork model).
    pub max_children: usize,
}

impl ServerConfig {
    /// A server with the defaults for everything but the address and model.
    pub fn new(listen: SocketAddr, model: Model) -> Self {
        ServerConfig {
            listen,
            backlog: 5,
            model,
            limit: None,
            prefix: repeater::SEED_PREFIX.as_bytes().to_vec(),
            idle: Some(DEFAULT_IDLE),
            max_children: DEFAULT_MAX_CHILDREN,
        }
    }
}

/// How long an iterative server waits for a silent client by default.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(60);
/// How many connections the fork model serves at once by default.
pub const DEFAULT_MAX_CHILDREN: usize = 64;

/// A validated `tcp client`: messages to send, or None to read stdin lines.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub connect: SocketAddr,
    pub messages: Option<Vec<Vec<u8>>>,
    /// How long to wait for each reply.
    pub timeout: Duration,
}

/// What ended one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    Quit,
    Eof,
    Reset,
    /// The client sent nothing for the idle timeout.
    Idle,
}

/// Both ends send with MSG_NOSIGNAL (a peer that vanished gives EPIPE, not
/// a SIGPIPE that would kill the whole server) and MSG_DONTWAIT (a peer
/// that does not read makes send() say EAGAIN; we then wait in ppoll, where
/// Ctrl-C can reach us, for at most [`SEND_STALL`]).
const SEND_FLAGS: i32 = libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT;

/// How long a send may wait for a peer that does not read.
const SEND_STALL: Duration = Duration::from_secs(10);

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
    match cfg.model {
        Model::Iterative => blocking::iterative(rec, lst, cfg),
        Model::Fork => blocking::forking(rec, lst, cfg),
        Model::Poll => polling::polling(rec, lst, cfg),
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

/// Sends all of `data`. A peer that does not read fills the socket: send()
/// says EAGAIN and we wait for room in ppoll, for at most [`SEND_STALL`].
/// Returns None when the peer is gone (EPIPE, ECONNRESET) or stalled.
pub(crate) fn send_all(
    rec: &mut Recorder,
    conn: &OwnedFd,
    data: &[u8],
    who: &str,
) -> Result<Option<()>> {
    let mut off = 0;
    // Each pass sends at least one byte, waits, or returns.
    while off < data.len() {
        match socket::send(rec, conn.as_fd(), &data[off..], SEND_FLAGS) {
            Ok(n) => off += n,
            Err(e) if e.errno == Errno::EPIPE || e.errno == Errno::ECONNRESET => {
                rec.message(format!(
                    "{who} is gone: the reply cannot be delivered (MSG_NOSIGNAL turned SIGPIPE into EPIPE, so the server lives on)"
                ));
                return Ok(None);
            }
            Err(e) if e.errno == Errno::EAGAIN => {
                rec.waiting(format!(
                    "{who} is not reading: waiting up to {} s for room in the socket",
                    SEND_STALL.as_secs()
                ));
                if !wait::writable(rec, conn.as_fd(), Some(SEND_STALL))? {
                    rec.message(format!(
                        "{who} has not read its replies for {} s: giving up on it",
                        SEND_STALL.as_secs()
                    ));
                    return Ok(None);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Some(()))
}

pub(crate) fn close_conn(rec: &mut Recorder, conn: OwnedFd, ending: Ending) -> Result<()> {
    rec.note(match ending {
        Ending::Quit => "the server closes the connection: the client's recv() returns 0 (EOF)",
        Ending::Eof => "both sides have closed: the connection is gone",
        Ending::Reset => "the reset connection's descriptor is released",
        Ending::Idle => "the idle connection is closed: the client's next recv() returns 0 (EOF)",
    });
    file::close(rec, conn)?;
    Ok(())
}

/// Whether a wait ended because a signal other than a stop signal (SIGCHLD)
/// came: the caller goes round again. A stop signal is an error instead.
fn woken_by_child(e: &SysError) -> bool {
    e.errno == Errno::EINTR && crate::sys::signal::stop_pending().is_none()
}
