//! rtnetlink, the kernel's own interface for network configuration (what
//! `ip` speaks): `socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE)`, then each
//! request a `sendmsg` of an RTM_* message to the kernel (port id 0) and
//! each answer a `recvmsg`. Both steps print the messages decoded, as
//! strace 6.1 does (see [`crate::packet::netlink::notation`]).
//! See <https://man7.org/linux/man-pages/man7/rtnetlink.7.html>.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;

use crate::error::SysError;
use crate::packet::netlink::notation;
use crate::trace::{Call, Recorder, Shown};

/// `{sa_family=AF_NETLINK, nl_pid=0, nl_groups=00000000}`: the kernel.
const KERNEL: &str = "{sa_family=AF_NETLINK, nl_pid=0, nl_groups=00000000}";

fn kernel_addr() -> libc::sockaddr_nl {
    // SAFETY: sockaddr_nl is plain old data; all-zero bytes are a valid value.
    let mut nl: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    nl.nl_family = libc::AF_NETLINK as u16;
    nl
}

const NL_LEN: usize = std::mem::size_of::<libc::sockaddr_nl>();

/// Corresponds to `socket(AF_NETLINK, SOCK_RAW|SOCK_CLOEXEC, NETLINK_ROUTE)`:
/// a socket that talks to the kernel's routing subsystem of the network
/// namespace this process is in *now*; it stays bound to that namespace.
///
/// # Errors
/// `EMFILE`, `ENOBUFS`.
pub fn socket(
    rec: &mut Recorder,
    explain: impl FnOnce(i32) -> String,
) -> Result<OwnedFd, SysError> {
    super::socket::socket_explained(
        rec,
        libc::AF_NETLINK,
        libc::SOCK_RAW | libc::SOCK_CLOEXEC,
        libc::NETLINK_ROUTE,
        explain,
    )
}

/// The `struct msghdr` of a netlink step, in strace's notation.
fn msghdr(iov: &str, iov_len: usize, flags: &str) -> String {
    format!(
        "{{msg_name={KERNEL}, msg_namelen={NL_LEN}, msg_iov=[{{iov_base={iov}, iov_len={iov_len}}}], msg_iovlen=1, msg_controllen=0, msg_flags={flags}}}"
    )
}

/// Corresponds to `sendmsg(2)` of the netlink messages in `msg` to the
/// kernel. The kernel acts on a request during this call; its answer is
/// queued on the socket before sendmsg returns.
/// See <https://man7.org/linux/man-pages/man2/sendmsg.2.html>.
///
/// # Errors
/// `ENOBUFS`, `EPERM` is *not* here: a refused request is an NLMSG_ERROR
/// in the answer.
pub fn sendmsg(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    msg: &[u8],
    note: impl FnOnce() -> String,
) -> Result<usize, SysError> {
    let raw = fd.as_raw_fd();
    let addr = kernel_addr();
    rec.call(
        Call::new("sendmsg"),
        || {
            let mut iov = libc::iovec {
                iov_base: msg.as_ptr().cast_mut().cast(),
                iov_len: msg.len(),
            };
            // SAFETY: msghdr is plain old data; all-zero bytes are a valid value.
            let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
            hdr.msg_name = std::ptr::from_ref(&addr).cast_mut().cast();
            hdr.msg_namelen = NL_LEN as u32;
            hdr.msg_iov = &mut iov;
            hdr.msg_iovlen = 1;
            // SAFETY: `hdr` points at `addr` and at one iovec over `msg`,
            // all alive for the call; sendmsg only reads through them.
            let n = unsafe { libc::sendmsg(raw, &hdr, 0) };
            Errno::result(n).map(|n| n as usize)
        },
        |r| {
            let ret = r.as_ref().map_or(-1, |n| *n as i64);
            Shown::new(
                vec![
                    raw.to_string(),
                    msghdr(&notation::messages(msg), msg.len(), "0"),
                    "0".into(),
                ],
                ret,
                note(),
            )
        },
    )
}

/// Corresponds to `recvmsg(2)` with MSG_DONTWAIT on a netlink socket: the
/// kernel's answer, which sendmsg already queued (a dump's next part is
/// made during this call), so it never waits; nothing queued is EAGAIN.
/// `explain` writes the note from the bytes received.
///
/// # Errors
/// `EAGAIN` (nothing queued), `ENOBUFS` (messages were lost).
pub fn recvmsg(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    explain: impl FnOnce(&[u8]) -> String,
) -> Result<usize, SysError> {
    let raw = fd.as_raw_fd();
    let cap = buf.len();
    let mut addr = kernel_addr();
    let pending = rec.begin(Call::new("recvmsg"));
    let (result, flags_out) = {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: cap,
        };
        // SAFETY: msghdr is plain old data; all-zero bytes are a valid value.
        let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
        hdr.msg_name = std::ptr::from_mut(&mut addr).cast();
        hdr.msg_namelen = NL_LEN as u32;
        hdr.msg_iov = &mut iov;
        hdr.msg_iovlen = 1;
        // SAFETY: `hdr` points at `addr` and at one iovec over `buf`, both
        // alive and writable for the call; the kernel writes at most
        // `cap` bytes and one sockaddr_nl.
        let n = unsafe { libc::recvmsg(raw, &mut hdr, libc::MSG_DONTWAIT) };
        (Errno::result(n).map(|n| n as usize), hdr.msg_flags)
    };
    rec.end(pending, result, |r| {
        let (iov, ret, note) = match r {
            Ok(n) => {
                let got = &buf[..(*n).min(cap)];
                (notation::messages(got), *n as i64, explain(got))
            }
            Err(_) => (crate::sys::ptr(buf.as_ptr()), -1, String::new()),
        };
        let fl = crate::trace::names::msg_flags(flags_out);
        Shown::new(
            vec![
                raw.to_string(),
                msghdr(&iov, cap, &fl),
                "MSG_DONTWAIT".into(),
            ],
            ret,
            note,
        )
    })
}

/// Corresponds to `ioctl(fd, SIOCGIFFLAGS, &ifr)`: interface `name`'s flags
/// in the namespace of the socket `fd`. IFF_RUNNING means the kernel has
/// seen the carrier come up and activated the queue that sends — only
/// then does a packet leave. See
/// <https://man7.org/linux/man-pages/man7/netdevice.7.html>.
///
/// # Errors
/// `ENODEV` (no such interface).
pub fn ioctl_siocgifflags(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    name: &str,
    explain: impl FnOnce(u32) -> String,
) -> Result<u32, SysError> {
    let raw = fd.as_raw_fd();
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(SysError {
            call: "ioctl",
            errno: Errno::EINVAL,
        });
    }
    // SAFETY: ifreq is plain old data; all-zero bytes are a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    let name_arg = format!("ifr_name={}", crate::trace::names::quote(bytes));
    rec.call(
        Call::new("ioctl"),
        || {
            // SAFETY: `ifr` is a valid, NUL-terminated ifreq that outlives
            // the call; SIOCGIFFLAGS writes only ifr_flags inside it.
            let rc = unsafe { libc::ioctl(raw, libc::SIOCGIFFLAGS, &mut ifr) };
            Errno::result(rc)?;
            // SAFETY: on success SIOCGIFFLAGS filled the ifru_flags member.
            Ok(u32::from(unsafe { ifr.ifr_ifru.ifru_flags } as u16))
        },
        |r| {
            let (arg, note) = match r {
                Ok(f) => (
                    format!(
                        "{{{name_arg}, ifr_flags={}}}",
                        crate::packet::netlink::names::bits(
                            *f,
                            crate::packet::netlink::names::IFF,
                            "0"
                        )
                    ),
                    explain(*f),
                ),
                Err(_) => (format!("{{{name_arg}}}"), String::new()),
            };
            Shown::new(vec![raw.to_string(), "SIOCGIFFLAGS".into(), arg], 0, note)
        },
    )
}
