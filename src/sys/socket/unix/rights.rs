//! What only Unix-domain sockets do: `socketpair`; passing open
//! descriptors to another process (`sendmsg`/`recvmsg` with an
//! `SCM_RIGHTS` control message); and asking the kernel who the peer is
//! (`getsockopt` `SO_PEERCRED`).
//! See <https://man7.org/linux/man-pages/man7/unix.7.html>.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

use crate::error::SysError;
use crate::trace::names::{self, quote};
use crate::trace::{Call, Recorder, Shown};

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
    fn one_passed_descriptor_takes_strace_sizes() {
        assert_eq!(cmsg_sizes(1), (20, 24));
        assert_eq!(
            rights_notation(&[5]),
            "[{cmsg_len=20, cmsg_level=SOL_SOCKET, cmsg_type=SCM_RIGHTS, cmsg_data=[5]}]"
        );
    }
}
