//! Sockets: socket, setsockopt, bind, listen, accept4, connect, getsockname,
//! getpeername, sendto (send), recvfrom (recv), shutdown, and the epoll trio
//! epoll_create1 / epoll_ctl / epoll_wait.
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
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{SockaddrIn, SockaddrIn6, SockaddrLike};

use crate::error::SysError;
use crate::trace::names::{self, quote};
use crate::trace::{Call, Recorder, Shown};

/// `sizeof(struct sockaddr_storage)`: what we offer the kernel to fill.
const STORAGE_LEN: libc::socklen_t =
    std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;

/// Calls `f` with `addr` as a `sockaddr_in` or `sockaddr_in6` of its true
/// length (16 or 28), as C programs pass it.
fn with_sockaddr<R>(addr: &SocketAddr, f: impl FnOnce(&dyn SockaddrLike) -> R) -> R {
    match addr {
        SocketAddr::V4(a) => f(&SockaddrIn::from(*a)),
        SocketAddr::V6(a) => f(&SockaddrIn6::from(*a)),
    }
}

/// Turns a `sockaddr` the kernel wrote into a [`SocketAddr`], when it is IP.
fn from_storage(ss: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
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
fn storage_notation(ss: &libc::sockaddr_storage, len: libc::socklen_t) -> String {
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
fn len_notation(offered: libc::socklen_t, got: libc::socklen_t) -> String {
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

/// Corresponds to `setsockopt(2)` with an `int` value (SO_REUSEADDR, …).
/// See <https://man7.org/linux/man-pages/man2/setsockopt.2.html>.
///
/// # Errors
/// `ENOPROTOOPT`, `EINVAL`, `EBADF`, `ENOTSOCK`.
pub fn setsockopt_int(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    level: i32,
    name: i32,
    value: i32,
) -> Result<(), SysError> {
    setsockopt_value(rec, fd, level, name, &value, format!("[{value}]"))
}

/// Corresponds to `setsockopt(fd, SOL_SOCKET, SO_LINGER, …)`. With `on` and
/// 0 seconds, close() discards unsent data and sends a reset (RST).
pub fn setsockopt_linger(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    on: bool,
    secs: i32,
) -> Result<(), SysError> {
    let l = libc::linger {
        l_onoff: i32::from(on),
        l_linger: secs,
    };
    let shown = format!("{{l_onoff={}, l_linger={secs}}}", l.l_onoff);
    setsockopt_value(rec, fd, libc::SOL_SOCKET, libc::SO_LINGER, &l, shown)
}

/// Corresponds to `setsockopt(2)` with a `struct timeval` (SO_RCVTIMEO,
/// SO_SNDTIMEO): a blocking call then fails with EAGAIN after `d`.
pub fn setsockopt_timeval(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    level: i32,
    name: i32,
    d: Duration,
) -> Result<(), SysError> {
    let tv = libc::timeval {
        tv_sec: d.as_secs() as libc::time_t,
        tv_usec: libc::suseconds_t::from(d.subsec_micros()),
    };
    let shown = format!("{{tv_sec={}, tv_usec={}}}", tv.tv_sec, tv.tv_usec);
    setsockopt_value(rec, fd, level, name, &tv, shown)
}

/// `setsockopt(fd, level, name, value, sizeof *value)`, the option value
/// shown as `shown` (strace's notation for it). For the typed wrappers here
/// and the raw-socket filters in [`super::raw`].
pub(super) fn setsockopt_value<T>(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    level: i32,
    name: i32,
    value: &T,
    shown: String,
) -> Result<(), SysError> {
    let raw = fd.as_raw_fd();
    let len = std::mem::size_of::<T>() as libc::socklen_t;
    rec.call(
        Call::new("setsockopt"),
        || {
            // SAFETY: `value` is a live reference to exactly `len` bytes,
            // borrowed for the whole call; the kernel only reads (copies) them.
            let r = unsafe {
                libc::setsockopt(raw, level, name, std::ptr::from_ref(value).cast(), len)
            };
            Errno::result(r).map(drop)
        },
        |_| {
            Shown::new(
                vec![
                    raw.to_string(),
                    names::socket_level(level),
                    names::socket_option(level, name),
                    shown,
                    len.to_string(),
                ],
                0,
                "option set",
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

/// Corresponds to `send(2)`, which glibc makes as
/// `sendto(fd, buf, len, flags, NULL, 0)`: send on a connected socket.
/// See <https://man7.org/linux/man-pages/man2/send.2.html>.
///
/// Returns how many bytes the kernel took (a blocking stream socket takes
/// them all unless interrupted; a non-blocking one may take fewer).
///
/// # Errors
/// `EPIPE` (the peer is gone; SIGPIPE too unless MSG_NOSIGNAL), `ECONNRESET`,
/// `EAGAIN` (non-blocking, no room), `EMSGSIZE` (datagram too big).
pub fn send(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    data: &[u8],
    flags: i32,
) -> Result<usize, SysError> {
    sendto_inner(rec, fd, data, flags, None, "send")
}

/// Corresponds to `sendto(2)`: send one datagram to `to` (or, with `None`,
/// on a connected socket).
/// See <https://man7.org/linux/man-pages/man2/sendto.2.html>.
///
/// # Errors
/// As [`send`], plus `EACCES` (broadcast without SO_BROADCAST).
pub fn sendto(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    data: &[u8],
    flags: i32,
    to: Option<&SocketAddr>,
) -> Result<usize, SysError> {
    sendto_inner(rec, fd, data, flags, to, "sendto")
}

fn sendto_inner(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    data: &[u8],
    flags: i32,
    to: Option<&SocketAddr>,
    libc_name: &'static str,
) -> Result<usize, SysError> {
    let raw = fd.as_raw_fd();
    // Under --quiet nothing is formatted on the way in (the arguments only
    // once the step is shown).
    let mut call = Call::new("sendto").libc(libc_name);
    if rec.tracing() {
        call = call.may_wait(
            format!(
                "{raw}, {}, {}, {}",
                quote(data),
                data.len(),
                names::msg_flags(flags)
            ),
            "waiting for room in the socket's send buffer",
        );
    }
    rec.call(
        call,
        || {
            let send = |p: *const libc::sockaddr, l: libc::socklen_t| {
                // SAFETY: `data` is a live slice of `data.len()` bytes the
                // kernel only reads; `p`/`l` are a valid sockaddr of length
                // `l` borrowed for this call, or NULL/0.
                let r = unsafe { libc::sendto(raw, data.as_ptr().cast(), data.len(), flags, p, l) };
                Errno::result(r).map(|n| n as usize)
            };
            match to {
                Some(a) => with_sockaddr(a, |sa| send(sa.as_ptr(), sa.len())),
                None => send(std::ptr::null(), 0),
            }
        },
        |r| sendto_shown(raw, data, flags, to, r),
    )
}

/// [`sendto`] of a message that carries its own send time, as ping's echo
/// request does: `stamp` writes the time into `data` inside the step, after
/// the step is announced and its clock started, as the very last thing
/// before the syscall. Nothing of ours (the recorder's bookkeeping, the
/// address conversion) then lies between the time written and the kernel
/// taking the packet, as in iputils ping, where only gettimeofday and the
/// checksum precede sendto. The step shows the stamped bytes, and `explain`
/// gives its note from them (called only when steps are shown).
///
/// Returns what `stamp` returned (the send time).
///
/// # Errors
/// As [`sendto`].
pub fn sendto_stamped<T>(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    data: &mut [u8],
    flags: i32,
    to: &SocketAddr,
    stamp: impl FnOnce(&mut [u8]) -> T,
    explain: impl FnOnce(&[u8]) -> String,
) -> Result<T, SysError> {
    let raw = fd.as_raw_fd();
    let mut call = Call::new("sendto");
    if rec.tracing() {
        // The bytes are not final yet: the marker names the descriptor only.
        call = call.may_wait(
            raw.to_string(),
            "waiting for room in the socket's send buffer",
        );
    }
    let pending = rec.begin(call);
    let (stamped, result) = with_sockaddr(to, |sa| {
        let stamped = stamp(data);
        // SAFETY: `data` is a live slice of `data.len()` bytes the kernel
        // only reads; `sa` is a valid sockaddr of its length, borrowed for
        // this call.
        let r = unsafe {
            libc::sendto(
                raw,
                data.as_ptr().cast(),
                data.len(),
                flags,
                sa.as_ptr(),
                sa.len(),
            )
        };
        (stamped, Errno::result(r).map(|n| n as usize))
    });
    let data = &*data;
    rec.end(pending, result, |r| {
        let mut shown = sendto_shown(raw, data, flags, Some(to), r);
        if matches!(r, Ok(n) if *n == data.len()) {
            shown.note = explain(data);
        }
        shown
    })
    .map(|_| stamped)
}

/// How a finished sendto is shown: strace's arguments and the default note.
fn sendto_shown(
    raw: RawFd,
    data: &[u8],
    flags: i32,
    to: Option<&SocketAddr>,
    r: &nix::Result<usize>,
) -> Shown {
    let (ret, note) = match r {
        Ok(n) if *n == data.len() => (
            *n as i64,
            match to {
                Some(a) => format!("{n} bytes sent to {a} as one datagram"),
                None => format!("{n} bytes handed to the kernel to send"),
            },
        ),
        Ok(n) => (
            *n as i64,
            format!("short send: the kernel took {n} of {} bytes", data.len()),
        ),
        Err(_) => (-1, String::new()),
    };
    let (addr_arg, len_arg) = match to {
        Some(a) => (names::sockaddr(a), names::sockaddr_len(a).to_string()),
        None => ("NULL".to_string(), "0".to_string()),
    };
    Shown::new(
        vec![
            raw.to_string(),
            quote(data),
            data.len().to_string(),
            names::msg_flags(flags),
            addr_arg,
            len_arg,
        ],
        ret,
        note,
    )
}

/// Corresponds to `recv(2)`, which glibc makes as
/// `recvfrom(fd, buf, len, flags, NULL, NULL)`.
/// See <https://man7.org/linux/man-pages/man2/recv.2.html>.
///
/// Returns the number of bytes received; on a stream socket 0 is end of file
/// (the peer closed or shut down its sending side).
///
/// # Errors
/// `EAGAIN` (non-blocking and nothing there, or SO_RCVTIMEO expired),
/// `ECONNRESET` (the peer reset the connection), `EINTR`.
pub fn recv(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    flags: i32,
) -> Result<usize, SysError> {
    recvfrom_inner(rec, fd, buf, flags, false).map(|(n, _)| n)
}

/// Corresponds to `recvfrom(2)`: receive one datagram and learn its sender.
/// See <https://man7.org/linux/man-pages/man2/recvfrom.2.html>.
///
/// A datagram longer than `buf` is cut to fit, the rest is discarded.
///
/// # Errors
/// As [`recv`].
pub fn recvfrom(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    flags: i32,
) -> Result<(usize, Option<SocketAddr>), SysError> {
    recvfrom_inner(rec, fd, buf, flags, true)
}

fn recvfrom_inner(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    flags: i32,
    want_addr: bool,
) -> Result<(usize, Option<SocketAddr>), SysError> {
    let raw = fd.as_raw_fd();
    let libc_name = if want_addr { "recvfrom" } else { "recv" };
    let call = Call::new("recvfrom")
        .libc(libc_name)
        .may_wait(raw.to_string(), "waiting for data");
    let cap = buf.len();
    let ptr = buf.as_ptr();
    let mut ss = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = STORAGE_LEN;
    let pending = rec.begin(call);
    let r = if want_addr {
        // SAFETY: `buf` is a live, writable slice of `cap` bytes; `ss` is a
        // zeroed sockaddr_storage of `len` bytes the kernel fills at most.
        unsafe {
            libc::recvfrom(
                raw,
                buf.as_mut_ptr().cast(),
                cap,
                flags,
                ss.as_mut_ptr().cast(),
                &mut len,
            )
        }
    } else {
        // SAFETY: `buf` is a live, writable slice of `cap` bytes; NULL
        // address and length pointers are allowed.
        unsafe {
            libc::recvfrom(
                raw,
                buf.as_mut_ptr().cast(),
                cap,
                flags,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        }
    };
    let r = Errno::result(r).map(|n| n as usize);
    // SAFETY: zero-initialised, and possibly filled in by the kernel.
    let ss = unsafe { ss.assume_init() };
    let from = match r {
        Ok(_) if want_addr => from_storage(&ss, len),
        _ => None,
    };
    let fl = names::msg_flags(flags);
    rec.end(pending, r, |r| {
        let (data, ret, note) = match r {
            Ok(n) => {
                let n = (*n).min(cap);
                let note = match (want_addr, from) {
                    (true, Some(a)) => format!("a datagram of {n} bytes from {a}"),
                    (_, _) if n == 0 => {
                        "0 bytes: end of file — the peer closed its end".to_string()
                    }
                    _ if n == 1 => "1 byte arrived".to_string(),
                    _ => format!("{n} bytes arrived"),
                };
                (quote(&buf[..n]), n as i64, note)
            }
            Err(_) => (crate::sys::ptr(ptr), -1, String::new()),
        };
        let (a, l) = match (want_addr, r) {
            (false, _) => ("NULL".to_string(), "NULL".to_string()),
            (true, Ok(_)) => (storage_notation(&ss, len), len_notation(STORAGE_LEN, len)),
            (true, Err(_)) => (crate::sys::ptr(&ss), format!("[{STORAGE_LEN}]")),
        };
        Shown::new(
            vec![raw.to_string(), data, cap.to_string(), fl.clone(), a, l],
            ret,
            note,
        )
    })
    .map(|n| (n, from))
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

/// Corresponds to `epoll_create1(2)`: a new epoll instance, as a descriptor.
/// See <https://man7.org/linux/man-pages/man2/epoll_create1.2.html>.
///
/// # Errors
/// `EMFILE`, `ENOMEM`.
pub fn epoll_create1(rec: &mut Recorder, flags: i32) -> Result<OwnedFd, SysError> {
    rec.call(
        Call::new("epoll_create1").changes_fds(),
        || {
            // SAFETY: epoll_create1() takes an int and returns a new descriptor.
            let fd = unsafe { libc::epoll_create1(flags) };
            Errno::result(fd).map(|fd| {
                // SAFETY: `fd` was just returned by epoll_create1 and nothing else owns it.
                unsafe { OwnedFd::from_raw_fd(fd) }
            })
        },
        |r| {
            let ret = r.as_ref().map_or(-1, |fd| i64::from(fd.as_raw_fd()));
            let fl = if flags & libc::EPOLL_CLOEXEC != 0 {
                "EPOLL_CLOEXEC"
            } else {
                "0"
            };
            Shown::new(
                vec![fl.into()],
                ret,
                format!(
                    "an epoll instance as fd {ret}: the set of descriptors this process watches"
                ),
            )
        },
    )
}

/// Corresponds to `epoll_ctl(2)`: add (EPOLL_CTL_ADD), change
/// (EPOLL_CTL_MOD) or remove (EPOLL_CTL_DEL) `fd` in the watched set, with
/// `events` and `data` (which `epoll_wait` hands back; here the fd).
/// See <https://man7.org/linux/man-pages/man2/epoll_ctl.2.html>.
///
/// # Errors
/// `EEXIST` (already added), `ENOENT` (not in the set), `EBADF`.
pub fn epoll_ctl(
    rec: &mut Recorder,
    epfd: BorrowedFd<'_>,
    op: i32,
    fd: RawFd,
    events: u32,
    data: u64,
) -> Result<(), SysError> {
    let ep = epfd.as_raw_fd();
    let mut ev = libc::epoll_event { events, u64: data };
    rec.call(
        Call::new("epoll_ctl"),
        || {
            let p = if op == libc::EPOLL_CTL_DEL {
                std::ptr::null_mut()
            } else {
                std::ptr::from_mut(&mut ev)
            };
            // SAFETY: `p` is NULL (allowed for EPOLL_CTL_DEL) or points to a
            // live epoll_event the kernel only reads.
            Errno::result(unsafe { libc::epoll_ctl(ep, op, fd, p) }).map(drop)
        },
        |_| {
            let ev_arg = if op == libc::EPOLL_CTL_DEL {
                "NULL".to_string()
            } else {
                event_notation(events, data)
            };
            let note = match op {
                libc::EPOLL_CTL_ADD => {
                    format!("fd {fd} is watched for {}", names::epoll_events(events))
                }
                libc::EPOLL_CTL_MOD => {
                    format!("fd {fd} is now watched for {}", names::epoll_events(events))
                }
                _ => format!("fd {fd} is no longer watched"),
            };
            Shown::new(
                vec![ep.to_string(), names::epoll_op(op), fd.to_string(), ev_arg],
                0,
                note,
            )
        },
    )
}

fn event_notation(events: u32, data: u64) -> String {
    format!(
        "{{events={}, data={{u32={}, u64={data}}}}}",
        names::epoll_events(events),
        data as u32
    )
}

/// Corresponds to `epoll_wait(2)`: sleep until a watched descriptor is
/// ready or `timeout_ms` passes (-1: no limit). Returns how many entries of
/// `out` were filled.
/// See <https://man7.org/linux/man-pages/man2/epoll_wait.2.html>.
///
/// # Errors
/// `EINTR` (a handled signal arrived).
pub fn epoll_wait(
    rec: &mut Recorder,
    epfd: BorrowedFd<'_>,
    out: &mut [libc::epoll_event],
    timeout_ms: i32,
) -> Result<usize, SysError> {
    let ep = epfd.as_raw_fd();
    let max = out.len().min(i32::MAX as usize);
    let mut call = Call::new("epoll_wait");
    if timeout_ms != 0 {
        call = call.waits(
            ep.to_string(),
            "waiting for any watched descriptor to be ready",
        );
    }
    let pending = rec.begin(call);
    // SAFETY: `out` is a live, writable array of `max` epoll_events.
    let r = unsafe { libc::epoll_wait(ep, out.as_mut_ptr(), max as i32, timeout_ms) };
    let r = Errno::result(r).map(|n| n as usize);
    rec.end(pending, r, |r| {
        let (list, ret) = match r {
            Ok(n) => {
                let items: Vec<String> = out[..*n]
                    .iter()
                    .map(|e| {
                        let (events, data) = (e.events, e.u64);
                        event_notation(events, data)
                    })
                    .collect();
                (format!("[{}]", items.join(", ")), *n as i64)
            }
            Err(_) => (crate::sys::ptr(out.as_ptr()), -1),
        };
        let note = match r {
            Ok(0) => format!("nothing became ready within {timeout_ms} ms"),
            Ok(1) => "1 descriptor is ready".to_string(),
            Ok(n) => format!("{n} descriptors are ready"),
            Err(_) => String::new(),
        };
        let mut shown = Shown::new(
            vec![
                ep.to_string(),
                list,
                max.to_string(),
                timeout_ms.to_string(),
            ],
            ret,
            note,
        );
        if matches!(r, Ok(0)) {
            shown = shown.ret_note("(Timeout)");
        }
        shown
    })
}

/// Corresponds to `ppoll(2)` on one descriptor, with no timeout and with
/// every signal unblocked for the duration of the wait. A signal that was
/// blocked (and so held pending) before the call interrupts it at once:
/// this closes the race between checking a flag set by a handler and going
/// to sleep. See <https://man7.org/linux/man-pages/man2/ppoll.2.html>.
///
/// # Errors
/// `EINTR` (a handled signal arrived, maybe one held pending until now).
pub fn ppoll_unblocked(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    events: nix::poll::PollFlags,
) -> Result<nix::poll::PollFlags, SysError> {
    use nix::poll::{PollFd, PollFlags};
    let raw = fd.as_raw_fd();
    let ev = names::poll_events(events.bits());
    let call = Call::new("ppoll").waits(
        format!("[{{fd={raw}, events={ev}}}], 1, NULL, []"),
        "waiting for a client; SIGCHLD may interrupt",
    );
    let mut fds = [PollFd::new(fd, events)];
    let pending = rec.begin(call);
    let r = nix::poll::ppoll(&mut fds, None, Some(nix::sys::signal::SigSet::empty()));
    let revents = fds[0].revents().unwrap_or(PollFlags::empty());
    rec.end(pending, r, |r| {
        let n = *r.as_ref().unwrap_or(&-1);
        let mut shown = Shown::new(
            vec![
                format!("[{{fd={raw}, events={ev}}}]"),
                "1".into(),
                "NULL".into(),
                "[]".into(),
                "8".into(),
            ],
            i64::from(n),
            format!("fd {raw} is ready: a connection is waiting to be accepted"),
        );
        if n > 0 {
            shown = shown.ret_note(format!(
                "([{{fd={raw}, revents={}}}])",
                names::poll_events(revents.bits())
            ));
        }
        shown
    })
    .map(|_| revents)
}
