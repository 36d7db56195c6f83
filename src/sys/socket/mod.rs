//! Sockets: socket, setsockopt, bind, listen, accept4, connect, getsockname,
//! getpeername, sendto (send), recvfrom (recv), shutdown, and the epoll trio
//! epoll_create1 / epoll_ctl / epoll_wait.
//!
//! Options live in `opt.rs`, data transfer in `io.rs`, what Unix-domain
//! sockets add (their addresses, socketpair, SCM_RIGHTS, SO_PEERCRED) in
//! [`unix`]; the waits (ppoll, epoll) in [`super::poll`].
//!
//! The wrappers are generic — family, type and protocol are plain ints, and
//! addresses are [`SocketAddr`] — so the TCP, UDP, ping and sniff labs share
//! them; [`super::raw`] keeps only what raw and packet sockets add. An
//! address we pass is a `sockaddr_in` or `sockaddr_in6` of its true length
//! (16 or 28), as C programs pass it. Calls that fill a `sockaddr` are made
//! through `libc` with a `sockaddr_storage`, so the printed address length is
//! what the kernel saw (strace's `[128 => 16]`).
//!
//! Each wrapper has a default note; a lab replaces it with
//! [`Recorder::note`] before the call. Where the lab's note needs the call's
//! result (the new descriptor, the address), an `_explained` variant takes a
//! closure instead.
//!
//! glibc makes `send(2)` as `sendto(fd, buf, len, flags, NULL, 0)` and
//! `recv(2)` as `recvfrom(fd, buf, len, flags, NULL, NULL)` on x86-64 and
//! aarch64; that is what strace shows, so those are the names recorded.

use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{SockaddrIn, SockaddrIn6, SockaddrLike};

use crate::error::SysError;
use crate::trace::names;
use crate::trace::{Call, Recorder, Shown};

mod io;
mod opt;
pub mod unix;
pub use io::*;
pub(crate) use opt::setsockopt_value;
pub use opt::*;

/// `sizeof(struct sockaddr_storage)`: what we offer the kernel to fill.
pub(super) const STORAGE_LEN: libc::socklen_t =
    std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;

/// Calls `f` with `addr` as a `sockaddr_in` or `sockaddr_in6` of its true
/// length (16 or 28), as C programs pass it.
pub(super) fn with_sockaddr<R>(addr: &SocketAddr, f: impl FnOnce(&dyn SockaddrLike) -> R) -> R {
    match addr {
        SocketAddr::V4(a) => f(&SockaddrIn::from(*a)),
        SocketAddr::V6(a) => f(&SockaddrIn6::from(*a)),
    }
}

/// Turns a `sockaddr` the kernel wrote into a [`SocketAddr`], when it is IP.
pub(super) fn from_storage(
    ss: &libc::sockaddr_storage,
    len: libc::socklen_t,
) -> Option<SocketAddr> {
    let len = len as usize;
    match i32::from(ss.ss_family) {
        libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: sockaddr_storage is sized and aligned for every sockaddr
            // type, and the kernel wrote an AF_INET address of full length.
            let sin = unsafe { &*std::ptr::from_ref(ss).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for an AF_INET6 address of full length.
            let sin6 = unsafe { &*std::ptr::from_ref(ss).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                u32::from_be(sin6.sin6_flowinfo),
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// A kernel-written address as strace prints it.
pub(super) fn storage_notation(ss: &libc::sockaddr_storage, len: libc::socklen_t) -> String {
    match from_storage(ss, len) {
        Some(a) => names::sockaddr(&a),
        None if len == 0 => "NULL".into(),
        None => format!(
            "{{sa_family={}, …}}",
            names::address_family(i32::from(ss.ss_family))
        ),
    }
}

/// The value-result length as strace prints it: `[16]`, or `[128 => 16]`.
pub(super) fn len_notation(offered: libc::socklen_t, got: libc::socklen_t) -> String {
    if offered == got {
        format!("[{got}]")
    } else {
        format!("[{offered} => {got}]")
    }
}

/// Corresponds to `socket(2)`. See <https://man7.org/linux/man-pages/man2/socket.2.html>.
///
/// `ty` may carry `SOCK_NONBLOCK` and `SOCK_CLOEXEC`; `protocol` is passed
/// as given (for `AF_PACKET` already in network order, `htons(ETH_P_ALL)`).
///
/// # Errors
/// `EPERM` (raw or packet socket without CAP_NET_RAW), `EACCES` (ping socket
/// outside `net.ipv4.ping_group_range`), `EAFNOSUPPORT` (no IPv6),
/// `EPROTONOSUPPORT`, `EMFILE`.
pub fn socket(
    rec: &mut Recorder,
    domain: i32,
    ty: i32,
    protocol: i32,
) -> Result<OwnedFd, SysError> {
    let kind = match ty & 0xf {
        libc::SOCK_STREAM => "stream (TCP) socket",
        libc::SOCK_DGRAM => "datagram (UDP) socket",
        libc::SOCK_RAW => "raw socket",
        _ => "socket",
    };
    socket_explained(rec, domain, ty, protocol, |fd| {
        format!("a new {kind} as fd {fd}, with no address yet")
    })
}

/// As [`socket`], with the note written by `explain` from the new
/// descriptor (called only when the step is shown).
pub fn socket_explained(
    rec: &mut Recorder,
    domain: i32,
    ty: i32,
    protocol: i32,
    explain: impl FnOnce(RawFd) -> String,
) -> Result<OwnedFd, SysError> {
    rec.call(
        Call::new("socket").changes_fds(),
        || {
            // SAFETY: socket() takes plain integers and returns a new
            // descriptor or -1; it touches no memory of ours.
            let fd = unsafe { libc::socket(domain, ty, protocol) };
            Errno::result(fd).map(|fd| {
                // SAFETY: `fd` was just returned by socket(), is open, and
                // nothing else owns it.
                unsafe { OwnedFd::from_raw_fd(fd) }
            })
        },
        |r| {
            let (ret, note) = match r {
                Ok(fd) => (i64::from(fd.as_raw_fd()), explain(fd.as_raw_fd())),
                Err(_) => (-1, String::new()),
            };
            Shown::new(
                vec![
                    names::address_family(domain),
                    names::socket_type(ty),
                    names::protocol(domain, protocol),
                ],
                ret,
                note,
            )
        },
    )
}

/// Corresponds to `bind(2)`: give the socket `fd` the local address `addr`.
/// See <https://man7.org/linux/man-pages/man2/bind.2.html>.
///
/// # Errors
/// `EADDRINUSE`, `EACCES` (a port below 1024 without CAP_NET_BIND_SERVICE),
/// `EADDRNOTAVAIL` (not an address of this machine).
pub fn bind(rec: &mut Recorder, fd: BorrowedFd<'_>, addr: &SocketAddr) -> Result<(), SysError> {
    let raw = fd.as_raw_fd();
    rec.call(
        Call::new("bind"),
        || with_sockaddr(addr, |sa| nix::sys::socket::bind(raw, sa)),
        |_| {
            Shown::new(
                vec![
                    raw.to_string(),
                    names::sockaddr(addr),
                    names::sockaddr_len(addr).to_string(),
                ],
                0,
                format!("fd {raw} now owns {addr}"),
            )
        },
    )
}

/// Corresponds to `listen(2)`: turn `fd` into a listening socket whose queue
/// of completed, not yet accepted connections holds `backlog`.
/// See <https://man7.org/linux/man-pages/man2/listen.2.html>.
///
/// # Errors
/// `EADDRINUSE` (another socket listens on the port), `EOPNOTSUPP`.
pub fn listen(rec: &mut Recorder, fd: BorrowedFd<'_>, backlog: i32) -> Result<(), SysError> {
    let raw = fd.as_raw_fd();
    rec.call(
        Call::new("listen"),
        || {
            // SAFETY: listen() takes a descriptor and an int; no memory.
            Errno::result(unsafe { libc::listen(raw, backlog) }).map(drop)
        },
        |_| {
            Shown::new(
                vec![raw.to_string(), backlog.to_string()],
                0,
                format!(
                    "listening: the kernel now completes handshakes and queues up to {backlog} connections for accept()"
                ),
            )
        },
    )
}

/// Corresponds to `accept4(2)` (nix and glibc's `accept` make it too):
/// take the next completed connection off the queue of listening socket `fd`.
/// `flags` (SOCK_CLOEXEC, SOCK_NONBLOCK) apply to the new socket.
/// See <https://man7.org/linux/man-pages/man2/accept.2.html>.
///
/// Blocks while the queue is empty unless `fd` is non-blocking; a lab
/// expecting it to wait says so with [`Recorder::waiting`].
///
/// # Errors
/// `EAGAIN` (non-blocking, no connection), `EINTR`, `ECONNABORTED`, `EMFILE`.
pub fn accept4(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    flags: i32,
) -> Result<(OwnedFd, Option<SocketAddr>), SysError> {
    let raw = fd.as_raw_fd();
    accept4_explained(rec, fd, flags, |new, peer| {
        let who = peer.map_or("a client".to_string(), |p| p.to_string());
        format!("{who} is connected: fd {new} is this one connection; fd {raw} keeps listening")
    })
}

/// As [`accept4`], with the note written by `explain` from the new
/// descriptor and the peer's address (called only when the step is shown).
pub fn accept4_explained(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    flags: i32,
    explain: impl FnOnce(RawFd, Option<SocketAddr>) -> String,
) -> Result<(OwnedFd, Option<SocketAddr>), SysError> {
    let raw = fd.as_raw_fd();
    let call = Call::new("accept4")
        .may_wait(raw.to_string(), "waiting for a client to connect")
        .changes_fds();
    let mut ss = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = STORAGE_LEN;
    let pending = rec.begin(call);
    // SAFETY: `ss` is a zeroed sockaddr_storage and `len` its size, so the
    // kernel writes at most `len` bytes into it and stores the real length.
    let r = unsafe { libc::accept4(raw, ss.as_mut_ptr().cast(), &mut len, flags) };
    let r = Errno::result(r).map(|new| {
        // SAFETY: `new` was just returned by accept4 and nothing else owns it.
        unsafe { OwnedFd::from_raw_fd(new) }
    });
    // SAFETY: zero-initialised, and possibly filled in by the kernel.
    let ss = unsafe { ss.assume_init() };
    let peer = if r.is_ok() {
        from_storage(&ss, len)
    } else {
        None
    };
    let fl = accept_flags(flags);
    rec.end(pending, r, |r| match r {
        Ok(new) => {
            let new = new.as_raw_fd();
            Shown::new(
                vec![
                    raw.to_string(),
                    storage_notation(&ss, len),
                    len_notation(STORAGE_LEN, len),
                    fl,
                ],
                i64::from(new),
                explain(new, peer),
            )
        }
        Err(_) => Shown::new(
            vec![
                raw.to_string(),
                crate::sys::ptr(&ss),
                format!("[{STORAGE_LEN}]"),
                fl,
            ],
            -1,
            String::new(),
        ),
    })
    .map(|fd| (fd, peer))
}

fn accept_flags(flags: i32) -> String {
    let mut parts = Vec::new();
    if flags & libc::SOCK_CLOEXEC != 0 {
        parts.push("SOCK_CLOEXEC");
    }
    if flags & libc::SOCK_NONBLOCK != 0 {
        parts.push("SOCK_NONBLOCK");
    }
    if parts.is_empty() {
        "0".into()
    } else {
        parts.join("|")
    }
}

/// Corresponds to `connect(2)`. For TCP this is the three-way handshake;
/// for UDP it only fixes the default destination.
/// See <https://man7.org/linux/man-pages/man2/connect.2.html>.
///
/// # Errors
/// `ECONNREFUSED` (nobody listens: a RST came back), `ETIMEDOUT` (no answer
/// to the SYNs), `EHOSTUNREACH`/`ENETUNREACH` (no route), `EINPROGRESS`
/// (non-blocking), `EINTR`.
pub fn connect(rec: &mut Recorder, fd: BorrowedFd<'_>, addr: &SocketAddr) -> Result<(), SysError> {
    let raw = fd.as_raw_fd();
    let len = names::sockaddr_len(addr);
    let call = Call::new("connect").may_wait(
        format!("{raw}, {}, {len}", names::sockaddr(addr)),
        "waiting for the handshake",
    );
    rec.call(
        call,
        || with_sockaddr(addr, |sa| nix::sys::socket::connect(raw, sa)),
        |_| {
            Shown::new(
                vec![raw.to_string(), names::sockaddr(addr), len.to_string()],
                0,
                format!("connected to {addr}"),
            )
        },
    )
}

/// Corresponds to `getsockname(2)`: the local address of `fd` — after
/// binding port 0, the port the kernel picked.
/// See <https://man7.org/linux/man-pages/man2/getsockname.2.html>.
pub fn getsockname(rec: &mut Recorder, fd: BorrowedFd<'_>) -> Result<Option<SocketAddr>, SysError> {
    let raw = fd.as_raw_fd();
    getsockname_explained(rec, fd, |a| format!("the local address of fd {raw} is {a}"))
}

/// As [`getsockname`], with the note written by `explain` from the address
/// (called only when the step is shown and the address is IPv4 or IPv6).
pub fn getsockname_explained(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    explain: impl FnOnce(&SocketAddr) -> String,
) -> Result<Option<SocketAddr>, SysError> {
    name_call(rec, fd, "getsockname", libc::getsockname, explain)
}

/// Corresponds to `getpeername(2)`: the address of the connected peer.
/// See <https://man7.org/linux/man-pages/man2/getpeername.2.html>.
///
/// # Errors
/// `ENOTCONN`.
pub fn getpeername(rec: &mut Recorder, fd: BorrowedFd<'_>) -> Result<Option<SocketAddr>, SysError> {
    let raw = fd.as_raw_fd();
    name_call(rec, fd, "getpeername", libc::getpeername, |a| {
        format!("the peer of fd {raw} is {a}")
    })
}

type NameFn = unsafe extern "C" fn(RawFd, *mut libc::sockaddr, *mut libc::socklen_t) -> libc::c_int;

fn name_call(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    name: &'static str,
    f: NameFn,
    explain: impl FnOnce(&SocketAddr) -> String,
) -> Result<Option<SocketAddr>, SysError> {
    let raw = fd.as_raw_fd();
    let mut ss = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = STORAGE_LEN;
    let pending = rec.begin(Call::new(name));
    // SAFETY: `f` is getsockname or getpeername; `ss` is a zeroed
    // sockaddr_storage of `len` bytes that the kernel fills at most.
    let r = Errno::result(unsafe { f(raw, ss.as_mut_ptr().cast(), &mut len) });
    // SAFETY: zero-initialised, and possibly filled in by the kernel.
    let ss = unsafe { ss.assume_init() };
    let addr = from_storage(&ss, len);
    rec.end(pending, r, |r| {
        let (a, l) = match r {
            Ok(_) => (storage_notation(&ss, len), len_notation(STORAGE_LEN, len)),
            Err(_) => (crate::sys::ptr(&ss), format!("[{STORAGE_LEN}]")),
        };
        let note = addr.as_ref().map_or(String::new(), explain);
        Shown::new(vec![raw.to_string(), a, l], 0, note)
    })
    .map(|_| addr)
}

/// Corresponds to `shutdown(2)`: end one or both directions of a connection
/// while keeping the descriptor (SHUT_WR sends FIN: the peer reads EOF).
/// See <https://man7.org/linux/man-pages/man2/shutdown.2.html>.
///
/// # Errors
/// `ENOTCONN`.
pub fn shutdown(rec: &mut Recorder, fd: BorrowedFd<'_>, how: i32) -> Result<(), SysError> {
    let raw = fd.as_raw_fd();
    rec.call(
        Call::new("shutdown"),
        || {
            // SAFETY: shutdown() takes a descriptor and an int; no memory.
            Errno::result(unsafe { libc::shutdown(raw, how) }).map(drop)
        },
        |_| {
            Shown::new(
                vec![raw.to_string(), names::shutdown_how(how)],
                0,
                "this side will send no more: the peer's recv() returns 0 (EOF) once it has read everything",
            )
        },
    )
}
