//! Data transfer: sendto (send) and recvfrom (recv), with strace's
//! notation for the buffers and addresses.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;

use super::*;
use crate::error::SysError;
use crate::trace::names::{self, quote};
use crate::trace::{Call, Recorder, Shown};

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
                Some(a) => format!("{} sent to {a} as one datagram", names::bytes(*n)),
                None => format!("{} handed to the kernel to send", names::bytes(*n)),
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
    let mut call = Call::new("recvfrom").libc(libc_name);
    if rec.tracing() {
        call = call.may_wait(raw.to_string(), "waiting for data");
    }
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
    rec.end(pending, r, |r| {
        let fl = names::msg_flags(flags);
        let (data, ret, note) = match r {
            Ok(n) => {
                let n = (*n).min(cap);
                let note = match (want_addr, from) {
                    (true, Some(a)) => format!("a datagram of {} from {a}", names::bytes(n)),
                    (_, _) if n == 0 => {
                        "0 bytes: end of file — the peer closed its end".to_string()
                    }
                    _ if n == 1 => "1 byte arrived".to_string(),
                    _ => format!("{} arrived", names::bytes(n)),
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
