//! Socket options: setsockopt with an int, a linger or a timeval value;
//! getsockopt with an int.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use nix::errno::Errno;

use crate::error::SysError;
use crate::trace::names;
use crate::trace::{Call, Recorder, Shown};

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
pub(crate) fn setsockopt_value<T>(
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

/// Corresponds to `getsockopt(2)` with an `int` value: `SO_ERROR` (the
/// pending error of a non-blocking connect), `SO_RCVBUF`… `shown` turns the
/// value into strace's notation (`[0]`, `[ECONNREFUSED]`).
///
/// # Errors
/// `ENOPROTOOPT`, `EBADF`, `ENOTSOCK`.
pub fn getsockopt_int(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    level: i32,
    name: i32,
    note: impl FnOnce(i32) -> String,
) -> Result<i32, SysError> {
    let raw = fd.as_raw_fd();
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    let pending = rec.begin(Call::new("getsockopt"));
    // SAFETY: `value` and `len` are live locals the kernel writes, and `len`
    // says how many bytes `value` has.
    let r = unsafe {
        libc::getsockopt(
            raw,
            level,
            name,
            std::ptr::from_mut(&mut value).cast(),
            &mut len,
        )
    };
    let r = Errno::result(r).map(|_| value);
    rec.end(pending, r, |r| {
        let v = *r.as_ref().unwrap_or(&0);
        let shown = if name == libc::SO_ERROR && level == libc::SOL_SOCKET && v != 0 {
            format!("[{}]", crate::render::errno::errno_name(Errno::from_raw(v)))
        } else {
            format!("[{v}]")
        };
        Shown::new(
            vec![
                raw.to_string(),
                names::socket_level(level),
                names::socket_option(level, name),
                shown,
                format!("[{len}]"),
            ],
            0,
            note(v),
        )
    })
}

/// Corresponds to `setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, name, len)`:
/// the socket sends and receives through interface `name` only (ping -I).
///
/// # Errors
/// `ENODEV` (no such interface), `EPERM` (needs CAP_NET_RAW).
pub fn setsockopt_device(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    name: &str,
) -> Result<(), SysError> {
    let raw = fd.as_raw_fd();
    // The name with its NUL, as iputils passes it.
    let mut bytes = name.as_bytes().to_vec();
    bytes.push(0);
    let len = bytes.len() as libc::socklen_t;
    rec.call(
        Call::new("setsockopt"),
        || {
            // SAFETY: `bytes` is a live buffer of `len` bytes the kernel only reads.
            let r = unsafe {
                libc::setsockopt(
                    raw,
                    libc::SOL_SOCKET,
                    libc::SO_BINDTODEVICE,
                    bytes.as_ptr().cast(),
                    len,
                )
            };
            Errno::result(r).map(drop)
        },
        |_| {
            Shown::new(
                vec![
                    raw.to_string(),
                    "SOL_SOCKET".into(),
                    "SO_BINDTODEVICE".into(),
                    names::quote(&bytes),
                    len.to_string(),
                ],
                0,
                format!("bound to interface {name}"),
            )
        },
    )
}
