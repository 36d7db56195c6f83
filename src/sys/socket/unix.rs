//! What Unix-domain (`AF_UNIX`) sockets add to the generic wrappers of
//! [`super`] (socket, listen, send, recv, close): their addresses — a path
//! in the file system, an abstract name (Linux), or none — and the calls
//! that take or return one (bind, connect, accept4, getsockname, sendto,
//! recvfrom); `socketpair`; descriptor passing with `sendmsg`/`recvmsg` and
//! `SCM_RIGHTS`; and the peer's credentials, `SO_PEERCRED`.
//!
//! An address we pass has the length unix(7) gives: for a path
//! `offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1`, for an
//! abstract name `offsetof(…) + 1 + len` (the leading NUL, no trailing
//! one), and 2 (the family alone) to ask for autobind. Calls that fill an
//! address offer a whole `struct sockaddr_un` (110 bytes), as C programs
//! do, so strace shows `[110 => 2]`.
//! See <https://man7.org/linux/man-pages/man7/unix.7.html>.

use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::error::SysError;
use crate::trace::names::{self, quote, quote_max};
use crate::trace::{Call, Recorder, Shown};

/// `sizeof(struct sockaddr_un)`: what we offer the kernel to fill.
const UN_LEN: libc::socklen_t = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
/// `offsetof(struct sockaddr_un, sun_path)`.
const PATH_OFFSET: usize = std::mem::size_of::<libc::sa_family_t>();
/// `sizeof(sun_path)`.
pub const SUN_PATH_LEN: usize = 108;

/// The address of an `AF_UNIX` socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnixAddr {
    /// A name in the file system: `bind` creates a socket file there, which
    /// stays until someone unlinks it.
    Path(PathBuf),
    /// A Linux abstract name (`sun_path` starts with a NUL byte): no file;
    /// the name goes when its last socket closes. Shown as `@name`.
    Abstract(Vec<u8>),
    /// No name: an unbound socket; passed to `bind`, it asks for autobind.
    Unnamed,
}

impl UnixAddr {
    /// A path address; refused when empty, with a NUL byte, or longer than
    /// `sun_path` holds (107 bytes and the terminating NUL).
    pub fn path(p: &Path) -> Result<UnixAddr, String> {
        let b = p.as_os_str().as_bytes();
        if b.is_empty() {
            return Err("the socket path is empty".into());
        }
        if b.contains(&0) {
            return Err("the socket path contains a NUL byte".into());
        }
        if b.len() >= SUN_PATH_LEN {
            return Err(format!(
                "the socket path is {} bytes; a Unix socket path holds at most {} (sun_path is {SUN_PATH_LEN} bytes with its NUL)",
                b.len(),
                SUN_PATH_LEN - 1
            ));
        }
        Ok(UnixAddr::Path(p.to_path_buf()))
    }

    /// An abstract name; refused when empty or longer than 107 bytes.
    pub fn abstract_name(name: &[u8]) -> Result<UnixAddr, String> {
        if name.is_empty() {
            return Err("the abstract name after @ is empty".into());
        }
        if name.len() >= SUN_PATH_LEN {
            return Err(format!(
                "the abstract name is {} bytes; at most {}",
                name.len(),
                SUN_PATH_LEN - 1
            ));
        }
        Ok(UnixAddr::Abstract(name.to_vec()))
    }

    /// `@name` is an abstract name (as `ss` and strace show one), anything
    /// else a path.
    pub fn parse(arg: &Path) -> Result<UnixAddr, String> {
        match arg.as_os_str().as_bytes().strip_prefix(b"@") {
            Some(name) => UnixAddr::abstract_name(name),
            None => UnixAddr::path(arg),
        }
    }

    /// The address as `struct sockaddr_un` and the length to pass with it.
    fn to_raw(&self) -> (libc::sockaddr_un, libc::socklen_t) {
        // SAFETY: sockaddr_un is plain old data; all-zero bytes are valid.
        let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let len = match self {
            UnixAddr::Path(p) => {
                let b = p.as_os_str().as_bytes();
                for (d, s) in sa.sun_path.iter_mut().zip(b) {
                    *d = *s as libc::c_char;
                }
                PATH_OFFSET + b.len() + 1
            }
            UnixAddr::Abstract(name) => {
                for (d, s) in sa.sun_path[1..].iter_mut().zip(name) {
                    *d = *s as libc::c_char;
                }
                PATH_OFFSET + 1 + name.len()
            }
            UnixAddr::Unnamed => PATH_OFFSET,
        };
        (sa, len as libc::socklen_t)
    }

    /// An address the kernel wrote, `len` bytes of it.
    fn from_raw(sa: &libc::sockaddr_un, len: libc::socklen_t) -> UnixAddr {
        let n = (len as usize).saturating_sub(PATH_OFFSET).min(SUN_PATH_LEN);
        let bytes: Vec<u8> = sa.sun_path[..n].iter().map(|&c| c as u8).collect();
        match bytes.split_first() {
            None => UnixAddr::Unnamed,
            Some((0, name)) => UnixAddr::Abstract(name.to_vec()),
            Some(_) => {
                let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                UnixAddr::Path(PathBuf::from(std::ffi::OsStr::from_bytes(&bytes[..end])))
            }
        }
    }

    /// strace's notation: `{sa_family=AF_UNIX, sun_path="/tmp/s"}`,
    /// `{sa_family=AF_UNIX, sun_path=@"name"}`, `{sa_family=AF_UNIX}`.
    pub fn notation(&self) -> String {
        match self {
            UnixAddr::Path(p) => format!(
                "{{sa_family=AF_UNIX, sun_path={}}}",
                quote_max(p.as_os_str().as_bytes(), SUN_PATH_LEN)
            ),
            UnixAddr::Abstract(n) => format!(
                "{{sa_family=AF_UNIX, sun_path=@{}}}",
                quote_max(n, SUN_PATH_LEN)
            ),
            UnixAddr::Unnamed => "{sa_family=AF_UNIX}".into(),
        }
    }

    /// How a person reads it: the path, `@name`, or `(unnamed)`.
    pub fn shown(&self) -> String {
        match self {
            UnixAddr::Path(p) => names::printable(p.as_os_str().as_bytes()),
            UnixAddr::Abstract(n) => format!("@{}", names::printable(n)),
            UnixAddr::Unnamed => "(unnamed)".into(),
        }
    }

    /// The length passed to bind, connect or sendto (strace's last argument).
    pub fn sockaddr_len(&self) -> usize {
        self.to_raw().1 as usize
    }

    pub fn is_unnamed(&self) -> bool {
        *self == UnixAddr::Unnamed
    }
}

/// Corresponds to `socketpair(2)` with `AF_UNIX`: two sockets connected to
/// each other, as a pair of descriptors; each end reads what the other
/// writes, both ways. See <https://man7.org/linux/man-pages/man2/socketpair.2.html>.
///
/// # Errors
/// `EMFILE`, `EOPNOTSUPP`.
pub fn socketpair(rec: &mut Recorder, ty: i32) -> Result<(OwnedFd, OwnedFd), SysError> {
    let mut fds: [RawFd; 2] = [-1, -1];
    let pending = rec.begin(Call::new("socketpair").changes_fds());
    // SAFETY: `fds` is a live array of two ints the kernel fills.
    let r = Errno::result(unsafe { libc::socketpair(libc::AF_UNIX, ty, 0, fds.as_mut_ptr()) }).map(
        |_| {
            // SAFETY: socketpair succeeded: both are new descriptors nothing else owns.
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
        },
    );
    rec.end(pending, r, |r| {
        let (arr, note) = match r {
            Ok((a, b)) => {
                let (a, b) = (a.as_raw_fd(), b.as_raw_fd());
                (
                    format!("[{a}, {b}]"),
                    format!("fd {a} and fd {b} are two connected sockets: what one end sends, the other reads — both ways"),
                )
            }
            Err(_) => (crate::sys::ptr(fds.as_ptr()), String::new()),
        };
        Shown::new(
            vec!["AF_UNIX".into(), names::socket_type(ty), "0".into(), arr],
            0,
            note,
        )
    })
}

/// Corresponds to `bind(2)` with an `AF_UNIX` address. A path creates a
/// socket file (never over an existing name, symlinks included: EADDRINUSE);
/// [`UnixAddr::Unnamed`] asks for autobind, an abstract name the kernel picks.
/// See <https://man7.org/linux/man-pages/man7/unix.7.html>.
///
/// # Errors
/// `EADDRINUSE` (the name exists, even as a stale socket file), `ENOENT`
/// (no such directory), `EACCES`, `EINVAL` (already bound).
pub fn bind(rec: &mut Recorder, fd: BorrowedFd<'_>, addr: &UnixAddr) -> Result<(), SysError> {
    let raw = fd.as_raw_fd();
    let (sa, len) = addr.to_raw();
    rec.call(
        Call::new("bind"),
        || {
            // SAFETY: `sa` is a valid sockaddr_un of which the first `len`
            // bytes are the address; bind only reads them.
            let rc = unsafe { libc::bind(raw, std::ptr::from_ref(&sa).cast(), len) };
            Errno::result(rc).map(drop)
        },
        |_| {
            let note = match addr {
                UnixAddr::Path(_) => format!(
                    "fd {raw} is bound to {}: a socket file now exists there",
                    addr.shown()
                ),
                UnixAddr::Abstract(_) => format!(
                    "fd {raw} is bound to the abstract name {}: no file is made",
                    addr.shown()
                ),
                UnixAddr::Unnamed => {
                    format!("autobind: the kernel gave fd {raw} an abstract name of its own")
                }
            };
            Shown::new(
                vec![raw.to_string(), addr.notation(), len.to_string()],
                0,
                note,
            )
        },
    )
}

/// Corresponds to `connect(2)` with an `AF_UNIX` address. A path is looked
/// up like open(2) would (it needs write permission on the socket file).
/// For a stream socket it waits while the listener's backlog is full.
/// See <https://man7.org/linux/man-pages/man7/unix.7.html>.
///
/// # Errors
/// `ECONNREFUSED` (nobody listens: a stale socket file), `ENOENT`,
/// `EACCES`, `EAGAIN` (non-blocking, backlog full), `EINTR`.
pub fn connect(rec: &mut Recorder, fd: BorrowedFd<'_>, addr: &UnixAddr) -> Result<(), SysError> {
    let raw = fd.as_raw_fd();
    let (sa, len) = addr.to_raw();
    let call = Call::new("connect").may_wait(
        format!("{raw}, {}, {len}", addr.notation()),
        "waiting for room in the listener's backlog",
    );
    rec.call(
        call,
        || {
            // SAFETY: as for bind: a valid sockaddr_un read for `len` bytes.
            let rc = unsafe { libc::connect(raw, std::ptr::from_ref(&sa).cast(), len) };
            Errno::result(rc).map(drop)
        },
        |_| {
            Shown::new(
                vec![raw.to_string(), addr.notation(), len.to_string()],
                0,
                format!("connected to {}", addr.shown()),
            )
        },
    )
}

fn len_notation(got: libc::socklen_t) -> String {
    if got == UN_LEN {
        format!("[{got}]")
    } else {
        format!("[{UN_LEN} => {got}]")
    }
}

/// Corresponds to `accept4(2)` on a listening `AF_UNIX` socket. The peer's
/// address is usually unnamed (`{sa_family=AF_UNIX}`): a client need not
/// bind. See <https://man7.org/linux/man-pages/man2/accept.2.html>.
///
/// # Errors
/// `EAGAIN`, `EINTR`, `EMFILE`.
pub fn accept4(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    flags: i32,
) -> Result<(OwnedFd, UnixAddr), SysError> {
    let raw = fd.as_raw_fd();
    let call = Call::new("accept4")
        .may_wait(raw.to_string(), "waiting for a client to connect")
        .changes_fds();
    let mut sa = MaybeUninit::<libc::sockaddr_un>::zeroed();
    let mut len = UN_LEN;
    let pending = rec.begin(call);
    // SAFETY: `sa` is a zeroed sockaddr_un and `len` its size: the kernel
    // writes at most `len` bytes and stores the real length.
    let r = unsafe { libc::accept4(raw, sa.as_mut_ptr().cast(), &mut len, flags) };
    let r = Errno::result(r).map(|new| {
        // SAFETY: `new` was just returned by accept4 and nothing else owns it.
        unsafe { OwnedFd::from_raw_fd(new) }
    });
    // SAFETY: zero-initialised, and possibly filled in by the kernel.
    let sa = unsafe { sa.assume_init() };
    let peer = UnixAddr::from_raw(&sa, len);
    let fl = if flags & libc::SOCK_CLOEXEC != 0 {
        "SOCK_CLOEXEC"
    } else {
        "0"
    };
    rec.end(pending, r, |r| match r {
        Ok(new) => {
            let new = new.as_raw_fd();
            Shown::new(
                vec![raw.to_string(), peer.notation(), len_notation(len), fl.into()],
                i64::from(new),
                format!("a client is connected: fd {new} is this one connection; fd {raw} keeps listening"),
            )
        }
        Err(_) => Shown::new(
            vec![raw.to_string(), crate::sys::ptr(&sa), format!("[{UN_LEN}]"), fl.into()],
            -1,
            String::new(),
        ),
    })
    .map(|fd| (fd, peer))
}

/// Corresponds to `getsockname(2)` on an `AF_UNIX` socket: its own name
/// (after autobind, the abstract name the kernel picked).
/// See <https://man7.org/linux/man-pages/man2/getsockname.2.html>.
pub fn getsockname(rec: &mut Recorder, fd: BorrowedFd<'_>) -> Result<UnixAddr, SysError> {
    let raw = fd.as_raw_fd();
    let mut sa = MaybeUninit::<libc::sockaddr_un>::zeroed();
    let mut len = UN_LEN;
    let pending = rec.begin(Call::new("getsockname"));
    // SAFETY: a zeroed sockaddr_un of `len` bytes that the kernel fills at most.
    let r = Errno::result(unsafe { libc::getsockname(raw, sa.as_mut_ptr().cast(), &mut len) });
    // SAFETY: zero-initialised, and possibly filled in by the kernel.
    let sa = unsafe { sa.assume_init() };
    let addr = UnixAddr::from_raw(&sa, len);
    rec.end(pending, r, |r| {
        let (a, l) = match r {
            Ok(_) => (addr.notation(), len_notation(len)),
            Err(_) => (crate::sys::ptr(&sa), format!("[{UN_LEN}]")),
        };
        Shown::new(
            vec![raw.to_string(), a, l],
            0,
            format!("fd {raw} is named {}", addr.shown()),
        )
    })
    .map(|_| addr)
}

/// Corresponds to `sendto(2)` of one datagram to an `AF_UNIX` address.
/// See <https://man7.org/linux/man-pages/man2/sendto.2.html>.
///
/// # Errors
/// `ECONNREFUSED` (nobody is bound there), `ENOENT`, `EAGAIN` (the
/// receiver's queue is full and MSG_DONTWAIT), `EMSGSIZE`.
pub fn sendto(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    data: &[u8],
    flags: i32,
    to: &UnixAddr,
) -> Result<usize, SysError> {
    let raw = fd.as_raw_fd();
    let (sa, len) = to.to_raw();
    let call =
        Call::new("sendto").may_wait(raw.to_string(), "waiting for room in the receiver's queue");
    rec.call(
        call,
        || {
            // SAFETY: `data` is a live slice the kernel only reads; `sa` a
            // valid sockaddr_un read for `len` bytes.
            let r = unsafe {
                libc::sendto(
                    raw,
                    data.as_ptr().cast(),
                    data.len(),
                    flags,
                    std::ptr::from_ref(&sa).cast(),
                    len,
                )
            };
            Errno::result(r).map(|n| n as usize)
        },
        |r| {
            let n = *r.as_ref().unwrap_or(&0);
            Shown::new(
                vec![
                    raw.to_string(),
                    quote(data),
                    data.len().to_string(),
                    names::msg_flags(flags),
                    to.notation(),
                    len.to_string(),
                ],
                n as i64,
                format!("{n} bytes sent to {} as one datagram", to.shown()),
            )
        },
    )
}

/// Corresponds to `recvfrom(2)` on an `AF_UNIX` datagram socket: one
/// datagram and the sender's name. An unnamed sender gives length 0, and
/// strace then prints the buffer's address, as ipclab does.
/// See <https://man7.org/linux/man-pages/man2/recvfrom.2.html>.
///
/// # Errors
/// `EAGAIN`, `EINTR`.
pub fn recvfrom(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    flags: i32,
) -> Result<(usize, UnixAddr), SysError> {
    let raw = fd.as_raw_fd();
    let cap = buf.len();
    let ptr = buf.as_ptr();
    let call = Call::new("recvfrom").may_wait(raw.to_string(), "waiting for a datagram");
    let mut sa = MaybeUninit::<libc::sockaddr_un>::zeroed();
    let mut len = UN_LEN;
    let pending = rec.begin(call);
    // SAFETY: `buf` is a live, writable slice of `cap` bytes; `sa` a zeroed
    // sockaddr_un of `len` bytes the kernel fills at most.
    let r = unsafe {
        libc::recvfrom(
            raw,
            buf.as_mut_ptr().cast(),
            cap,
            flags,
            sa.as_mut_ptr().cast(),
            &mut len,
        )
    };
    let r = Errno::result(r).map(|n| n as usize);
    // SAFETY: zero-initialised, and possibly filled in by the kernel.
    let sa = unsafe { sa.assume_init() };
    let from = UnixAddr::from_raw(&sa, len);
    let fl = names::msg_flags(flags);
    rec.end(pending, r, |r| match r {
        Ok(n) => {
            let n = (*n).min(cap);
            let a = if len == 0 {
                crate::sys::ptr(&sa)
            } else {
                from.notation()
            };
            Shown::new(
                vec![
                    raw.to_string(),
                    quote(&buf[..n]),
                    cap.to_string(),
                    fl.clone(),
                    a,
                    len_notation(len),
                ],
                n as i64,
                format!(
                    "a datagram of {n} byte{} from {}",
                    if n == 1 { "" } else { "s" },
                    from.shown()
                ),
            )
        }
        Err(_) => Shown::new(
            vec![
                raw.to_string(),
                crate::sys::ptr(ptr),
                cap.to_string(),
                fl.clone(),
                crate::sys::ptr(&sa),
                format!("[{UN_LEN}]"),
            ],
            -1,
            String::new(),
        ),
    })
    .map(|n| (n, from))
}

/// At most this many descriptors travel in one message here.
pub const MAX_FDS: usize = 4;

/// Room for one `SCM_RIGHTS` control message of up to [`MAX_FDS`] ints,
/// aligned as `struct cmsghdr` needs.
#[repr(C, align(8))]
struct ControlBuf([u8; 64]);

/// `CMSG_LEN` and `CMSG_SPACE` for `n` descriptors.
fn cmsg_sizes(n: usize) -> (usize, usize) {
    let data = (n * std::mem::size_of::<RawFd>()) as u32;
    // SAFETY: CMSG_LEN and CMSG_SPACE are arithmetic on their argument.
    unsafe {
        (
            libc::CMSG_LEN(data) as usize,
            libc::CMSG_SPACE(data) as usize,
        )
    }
}

fn fd_list(fds: &[RawFd]) -> String {
    let v: Vec<String> = fds.iter().map(|f| f.to_string()).collect();
    format!("[{}]", v.join(", "))
}

fn rights_notation(fds: &[RawFd]) -> String {
    let (len, _) = cmsg_sizes(fds.len());
    format!(
        "[{{cmsg_len={len}, cmsg_level=SOL_SOCKET, cmsg_type=SCM_RIGHTS, cmsg_data={}}}]",
        fd_list(fds)
    )
}

/// Corresponds to `sendmsg(2)` of `data` with `fds` as an `SCM_RIGHTS`
/// control message: the kernel puts a reference to each open file into the
/// message; the receiver gets new descriptors for the same open files.
/// See <https://man7.org/linux/man-pages/man7/unix.7.html>.
///
/// # Errors
/// `EBADF` (not an open descriptor), `ETOOMANYREFS`, `EPIPE`, `EAGAIN`.
pub fn sendmsg_fds(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> Result<usize, SysError> {
    let raw = fd.as_raw_fd();
    let passed: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let (cmsg_len, space) = cmsg_sizes(passed.len());
    let mut control = ControlBuf([0; 64]);
    let call = Call::new("sendmsg").may_wait(raw.to_string(), "waiting for room in the socket");
    rec.call(
        call,
        || {
            if passed.is_empty() || passed.len() > MAX_FDS {
                return Err(Errno::EINVAL);
            }
            let mut iov = libc::iovec {
                iov_base: data.as_ptr().cast_mut().cast(),
                iov_len: data.len(),
            };
            // SAFETY: msghdr is plain old data; all-zero is a valid value
            // (NULL name, no iovecs, no control).
            let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
            mh.msg_iov = &mut iov;
            mh.msg_iovlen = 1;
            mh.msg_control = control.0.as_mut_ptr().cast();
            mh.msg_controllen = space as _;
            // SAFETY: `mh` points at `control`, which is 8-byte aligned and
            // at least `space` (CMSG_SPACE for these fds, at most 32) bytes
            // long, so CMSG_FIRSTHDR is a valid header and CMSG_DATA has room
            // for the ints copied; `iov` points at `data`, which sendmsg only
            // reads. Everything outlives the call.
            let r = unsafe {
                let c = libc::CMSG_FIRSTHDR(&mh);
                (*c).cmsg_level = libc::SOL_SOCKET;
                (*c).cmsg_type = libc::SCM_RIGHTS;
                (*c).cmsg_len = cmsg_len as _;
                std::ptr::copy_nonoverlapping(
                    passed.as_ptr(),
                    libc::CMSG_DATA(c).cast::<RawFd>(),
                    passed.len(),
                );
                libc::sendmsg(raw, &mh, 0)
            };
            Errno::result(r).map(|n| n as usize)
        },
        |r| {
            let n = *r.as_ref().unwrap_or(&0);
            let msg = format!(
                "{{msg_name=NULL, msg_namelen=0, msg_iov=[{{iov_base={}, iov_len={}}}], msg_iovlen=1, msg_control={}, msg_controllen={space}, msg_flags=0}}",
                quote(data),
                data.len(),
                rights_notation(&passed)
            );
            Shown::new(
                vec![raw.to_string(), msg, "0".into()],
                n as i64,
                format!(
                    "{n} byte(s) and descriptor {} sent: the kernel now holds a reference to that open file, in the message",
                    fd_list(&passed)
                ),
            )
        },
    )
}

/// What [`recvmsg_fds`] received.
#[derive(Debug)]
pub struct WithFds {
    pub len: usize,
    /// New descriptors for the open files the sender passed.
    pub fds: Vec<OwnedFd>,
    /// MSG_CTRUNC: descriptors did not fit and were closed by the kernel.
    pub truncated: bool,
}

/// Corresponds to `recvmsg(2)` with room for an `SCM_RIGHTS` control
/// message and `MSG_CMSG_CLOEXEC` (the new descriptors are close-on-exec).
/// Each passed descriptor arrives as the lowest free number in *this*
/// process: a new descriptor for the sender's open file (same offset, same
/// flags), not its number. See <https://man7.org/linux/man-pages/man7/unix.7.html>.
///
/// # Errors
/// `EAGAIN`, `EINTR`, `EMFILE` (no room for the passed descriptors).
pub fn recvmsg_fds(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
) -> Result<WithFds, SysError> {
    let raw = fd.as_raw_fd();
    let cap = buf.len();
    let (_, offered) = cmsg_sizes(MAX_FDS);
    let mut control = ControlBuf([0; 64]);
    let call = Call::new("recvmsg")
        .may_wait(raw.to_string(), "waiting for a message")
        .changes_fds();
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: cap,
    };
    // SAFETY: msghdr is plain old data; all-zero is a valid value.
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control.0.as_mut_ptr().cast();
    mh.msg_controllen = offered as _;
    let pending = rec.begin(call);
    // SAFETY: `iov` points at `buf` (writable, `cap` bytes) and
    // `msg_control` at `control` (8-byte aligned, `offered` ≤ 64 bytes);
    // the kernel writes at most that much into each, and both outlive the call.
    let r = Errno::result(unsafe { libc::recvmsg(raw, &mut mh, libc::MSG_CMSG_CLOEXEC) })
        .map(|n| n as usize);
    let mut got: Vec<RawFd> = Vec::new();
    if r.is_ok() {
        // SAFETY: after a successful recvmsg, msg_controllen says how much
        // of `control` the kernel filled; CMSG_FIRSTHDR/NXTHDR walk only
        // inside that, and each SCM_RIGHTS payload is an array of ints.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&mh);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                    let data = libc::CMSG_DATA(c).cast::<RawFd>();
                    let n =
                        ((*c).cmsg_len as usize - cmsg_sizes(0).0) / std::mem::size_of::<RawFd>();
                    for i in 0..n {
                        got.push(std::ptr::read_unaligned(data.add(i)));
                    }
                }
                c = libc::CMSG_NXTHDR(&mh, c);
            }
        }
    }
    let controllen = mh.msg_controllen as usize;
    let flags = mh.msg_flags;
    let r = r.map(|n| WithFds {
        len: n,
        fds: got
            .iter()
            // SAFETY: the kernel installed these descriptors in this process
            // for this message; nothing else owns them yet.
            .map(|&f| unsafe { OwnedFd::from_raw_fd(f) })
            .collect(),
        truncated: flags & libc::MSG_CTRUNC != 0,
    });
    rec.end(pending, r, |r| match r {
        Ok(w) => {
            let n = w.len.min(cap);
            let control = if controllen == 0 {
                String::new()
            } else {
                format!("msg_control={}, ", rights_notation(&got))
            };
            let msg = format!(
                "{{msg_name=NULL, msg_namelen=0, msg_iov=[{{iov_base={}, iov_len={cap}}}], msg_iovlen=1, {control}msg_controllen={controllen}, msg_flags={}}}",
                quote(&buf[..n]),
                names::msg_flags(flags)
            );
            let note = match (n, got.as_slice()) {
                (0, _) => "0 bytes: end of file — the peer closed its end".to_string(),
                (_, []) => format!("{n} byte(s), no descriptor"),
                (_, fds) => format!(
                    "{n} byte(s) and new descriptor {} here: the sender's open file, under this process's lowest free number",
                    fd_list(fds)
                ),
            };
            Shown::new(
                vec![raw.to_string(), msg, "MSG_CMSG_CLOEXEC".into()],
                n as i64,
                note,
            )
        }
        Err(_) => Shown::new(
            vec![raw.to_string(), crate::sys::ptr(&mh), "MSG_CMSG_CLOEXEC".into()],
            -1,
            String::new(),
        ),
    })
}

/// The peer's credentials as the kernel recorded them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

/// Corresponds to `getsockopt(fd, SOL_SOCKET, SO_PEERCRED, …)`: the pid,
/// uid and gid of the process at the other end, as the kernel recorded
/// them when it connected (or called socketpair) — not anything the peer
/// says about itself. See <https://man7.org/linux/man-pages/man7/unix.7.html>.
///
/// # Errors
/// `ENOTCONN`, `ENOPROTOOPT` (not a Unix socket).
pub fn getsockopt_peercred(rec: &mut Recorder, fd: BorrowedFd<'_>) -> Result<PeerCred, SysError> {
    let raw = fd.as_raw_fd();
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    let pending = rec.begin(Call::new("getsockopt"));
    // SAFETY: `cred` is a live ucred and `len` its size: the kernel writes
    // at most `len` bytes into it and stores the length.
    let rc = unsafe {
        libc::getsockopt(
            raw,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            std::ptr::from_mut(&mut cred).cast(),
            &mut len,
        )
    };
    let r = Errno::result(rc).map(|_| PeerCred {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
    });
    rec.end(pending, r, |r| {
        let v = match r {
            Ok(c) => format!("{{pid={}, uid={}, gid={}}}", c.pid, c.uid, c.gid),
            Err(_) => crate::sys::ptr(&cred),
        };
        Shown::new(
            vec![
                raw.to_string(),
                "SOL_SOCKET".into(),
                "SO_PEERCRED".into(),
                v,
                format!("[{len}]"),
            ],
            0,
            "the kernel's record of who is at the other end",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_read_as_strace_prints_them() {
        let p = UnixAddr::path(Path::new("/tmp/x/sock")).expect("valid");
        assert_eq!(
            p.notation(),
            r#"{sa_family=AF_UNIX, sun_path="/tmp/x/sock"}"#
        );
        assert_eq!(p.sockaddr_len(), 2 + 11 + 1);
        let a = UnixAddr::parse(Path::new("@ipclab")).expect("valid");
        assert_eq!(a.notation(), r#"{sa_family=AF_UNIX, sun_path=@"ipclab"}"#);
        assert_eq!(a.sockaddr_len(), 2 + 1 + 6);
        assert_eq!(a.shown(), "@ipclab");
        assert_eq!(UnixAddr::Unnamed.notation(), "{sa_family=AF_UNIX}");
        assert_eq!(UnixAddr::Unnamed.sockaddr_len(), 2);
    }

    #[test]
    fn addresses_round_trip_through_sockaddr_un() {
        for a in [
            UnixAddr::path(Path::new("/tmp/s")).expect("valid"),
            UnixAddr::abstract_name(b"x\0y").expect("valid"),
            UnixAddr::Unnamed,
        ] {
            let (sa, len) = a.to_raw();
            assert_eq!(UnixAddr::from_raw(&sa, len), a);
        }
    }

    #[test]
    fn long_or_empty_paths_are_refused() {
        assert!(UnixAddr::path(Path::new(&"a".repeat(107))).is_ok());
        assert!(UnixAddr::path(Path::new(&"a".repeat(108))).is_err());
        assert!(UnixAddr::path(Path::new("")).is_err());
        assert!(UnixAddr::parse(Path::new("@")).is_err());
    }

    #[test]
    fn one_passed_descriptor_takes_strace_sizes() {
        assert_eq!(cmsg_sizes(1), (20, 24));
        assert_eq!(
            rights_notation(&[5]),
            "[{cmsg_len=20, cmsg_level=SOL_SOCKET, cmsg_type=SCM_RIGHTS, cmsg_data=[5]}]"
        );
    }
}
