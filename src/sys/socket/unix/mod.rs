//! What Unix-domain (`AF_UNIX`) sockets add to the generic wrappers of
//! [`super`] (socket, listen, send, recv, close): their addresses — a path
//! in the file system, an abstract name (Linux), or none — and the calls
//! that take or return one (bind, connect, accept4, getsockname, sendto,
//! recvfrom). What only they do — `socketpair`, descriptor passing with
//! `sendmsg`/`recvmsg` and `SCM_RIGHTS`, the peer's credentials with
//! `SO_PEERCRED` — is in `rights.rs`.
//!
//! An address we pass has the length unix(7) gives: for a path
//! `offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1`, for an
//! abstract name `offsetof(…) + 1 + len` (the leading NUL, no trailing
//! one), and 2 (the family alone) to ask for autobind. Calls that fill an
//! address offer a whole `struct sockaddr_un` (110 bytes), as C programs
//! do, so strace shows `[110 => 2]`.
//! See <https://man7.org/linux/man-pages/man7/unix.7.html>.

use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::error::SysError;
use crate::trace::names::{self, quote, quote_max};
use crate::trace::{Call, Recorder, Shown};

mod rights;
pub use rights::*;

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
        |r| {
            let shown = Shown::new(
                vec![raw.to_string(), addr.notation(), len.to_string()],
                0,
                format!("connected to {}", addr.shown()),
            );
            match r {
                Err(Errno::ECONNREFUSED) => shown.err_note(
                    "nobody listens on this name: a socket file whose socket is gone (stale), or a socket that does not listen",
                ),
                Err(Errno::ENOENT) => shown.err_note("no socket file at that path"),
                Err(Errno::EACCES) => shown.err_note("connect() needs write permission on the socket file (and search permission on its directories)"),
                _ => shown,
            }
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
}
