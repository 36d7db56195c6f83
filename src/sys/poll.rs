//! Waiting: ppoll and epoll — the one place a stop signal is let in.
//!
//! Every wait of every lab goes through [`ppoll`] or [`epoll_pwait`] with a
//! signal mask that lets in what the wait is ready for ([`Lets`]): the stop
//! signals, which ipclab otherwise holds (see [`super::signal`]), and
//! SIGCHLD where a child's end matters. The call after the wait (read,
//! accept, recvfrom…) then finds its descriptor ready and does not block.
//!
//! A wait that lets the stop signals in is not made at all when one was
//! already caught (during an earlier wait, say): it returns EINTR at once,
//! and no step is printed for a call that did not happen.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;

use crate::error::SysError;
use crate::trace::names;
use crate::trace::{Call, Recorder, Shown};

pub use super::signal::Lets;
use super::signal::{self, set_notation, wait_mask};

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
/// `events` and `data` (which `epoll_pwait` hands back; here the fd).
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

/// EINTR without a call: a stop signal was caught before this wait began.
fn already_stopped(call: &'static str, lets: Lets) -> Result<(), SysError> {
    if lets.stops() && signal::stop_pending().is_some() {
        return Err(SysError {
            call,
            errno: Errno::EINTR,
        });
    }
    Ok(())
}

fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos().into(),
    }
}

fn timespec_notation(ts: &libc::timespec) -> String {
    format!("{{tv_sec={}, tv_nsec={}}}", ts.tv_sec, ts.tv_nsec)
}

/// One entry of a ppoll set.
pub fn pollfd(fd: BorrowedFd<'_>, events: i16) -> libc::pollfd {
    libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    }
}

fn pollfds_notation(fds: &[libc::pollfd], revents: bool) -> String {
    let items: Vec<String> = fds
        .iter()
        .filter(|p| !revents || p.revents != 0)
        .map(|p| {
            if revents {
                format!("{{fd={}, revents={}}}", p.fd, names::poll_events(p.revents))
            } else {
                format!("{{fd={}, events={}}}", p.fd, names::poll_events(p.events))
            }
        })
        .collect();
    format!("[{}]", items.join(", "))
}

/// What the ready entries of a ppoll set say, for a person.
fn ready_note(fds: &[libc::pollfd]) -> String {
    let parts: Vec<String> = fds
        .iter()
        .filter(|p| p.revents != 0)
        .map(|p| {
            let r = p.revents;
            let what = if r & (libc::POLLERR | libc::POLLNVAL) != 0 {
                "an error is waiting to be read"
            } else if r & libc::POLLIN != 0 && r & libc::POLLHUP != 0 {
                "data to read, and the other end has closed"
            } else if r & libc::POLLIN != 0 {
                "ready to read: the next call returns at once"
            } else if r & libc::POLLHUP != 0 {
                "the other end has closed: reading gives EOF"
            } else if r & libc::POLLOUT != 0 {
                "room to write"
            } else {
                "ready"
            };
            format!("fd {}: {what}", p.fd)
        })
        .collect();
    parts.join("; ")
}

/// Corresponds to `ppoll(2)`: sleeps until one of `fds` is ready, `timeout`
/// passes (None: no limit), or a signal that `lets` lets in arrives. Fills
/// each entry's `revents` and returns how many are ready (0: timeout). With
/// no descriptors it is an interruptible sleep.
/// See <https://man7.org/linux/man-pages/man2/ppoll.2.html>.
///
/// # Errors
/// `EINTR` (a signal it let in arrived, or a stop signal had already been
/// caught: then the call is not made), `EINVAL`, `ENOMEM`.
pub fn ppoll(
    rec: &mut Recorder,
    fds: &mut [libc::pollfd],
    timeout: Option<Duration>,
    lets: Lets,
) -> Result<usize, SysError> {
    already_stopped("ppoll", lets)?;
    let (mask_bits, mask) = wait_mask(lets);
    let asked = timeout.map(timespec);
    let mut left = asked;
    let n = fds.len();
    // The arguments as they are before the call; formatted only when steps
    // are shown (a quiet server's wait allocates nothing).
    let before = rec.tracing().then(|| {
        let tnote = asked.as_ref().map_or("NULL".to_string(), timespec_notation);
        let list = if fds.is_empty() {
            "NULL".to_string()
        } else {
            pollfds_notation(fds, false)
        };
        (list, tnote)
    });
    let mut call = Call::new("ppoll");
    if let (Some((list, tnote)), false) = (&before, timeout == Some(Duration::ZERO)) {
        let reason = if fds.is_empty() {
            "sleeping"
        } else {
            "waiting for a descriptor to be ready"
        };
        call = call.waits(
            format!("{list}, {n}, {tnote}, {}", set_notation(mask_bits)),
            reason,
        );
    }
    let pending = rec.begin(call);
    let fds_ptr = if fds.is_empty() {
        std::ptr::null_mut()
    } else {
        fds.as_mut_ptr()
    };
    let t_ptr = left
        .as_mut()
        .map_or(std::ptr::null_mut(), std::ptr::from_mut);
    // The raw syscall, not glibc's wrapper: glibc hands the kernel a copy of
    // the timeout, so the time left (which strace shows) would be lost.
    // SAFETY: `fds_ptr` is NULL with n = 0 or points to `n` live pollfds
    // the kernel may write; `t_ptr` is NULL or a live timespec the kernel
    // updates with the time left; `mask` is a valid sigset whose first 8
    // bytes (the kernel's sigset_t, the size passed) are the mask.
    let r = unsafe {
        libc::syscall(
            libc::SYS_ppoll,
            fds_ptr,
            n as libc::nfds_t,
            t_ptr,
            std::ptr::from_ref(mask.as_ref()),
            8usize,
        )
    };
    let r = Errno::result(r).map(|v| v as usize);
    rec.end(pending, r, |r| {
        let ret = r.as_ref().map_or(-1, |&v| v as i64);
        let (list, tnote) = before.unwrap_or_default();
        let note = match r {
            Ok(0) if fds.is_empty() => "slept".to_string(),
            Ok(0) => "nothing became ready in time".to_string(),
            Ok(_) => ready_note(fds),
            Err(_) => String::new(),
        };
        let mut shown = Shown::new(
            vec![
                list,
                n.to_string(),
                tnote,
                set_notation(mask_bits),
                "8".into(),
            ],
            ret,
            note,
        );
        match r {
            Ok(0) => shown = shown.ret_note("(Timeout)"),
            Ok(_) => {
                let got = pollfds_notation(fds, true);
                shown = shown.ret_note(match &left {
                    Some(l) => format!("({got}, left {})", timespec_notation(l)),
                    None => format!("({got})"),
                });
            }
            Err(_) => {}
        }
        shown
    })
}

/// An interruptible sleep: `ppoll(NULL, 0, {d}, mask, 8)`. Ok when the time
/// has passed.
///
/// # Errors
/// `EINTR` when a stop signal arrives first.
pub fn sleep(rec: &mut Recorder, d: Duration) -> Result<(), SysError> {
    ppoll(rec, &mut [], Some(d), Lets::Stops).map(drop)
}

/// Corresponds to `epoll_pwait(2)`: sleeps until a watched descriptor is
/// ready, `timeout_ms` passes (-1: no limit), or a signal that `lets` lets
/// in arrives. Returns how many entries of `out` were filled.
/// See <https://man7.org/linux/man-pages/man2/epoll_wait.2.html>.
///
/// # Errors
/// `EINTR` (as for [`ppoll`]).
pub fn epoll_pwait(
    rec: &mut Recorder,
    epfd: BorrowedFd<'_>,
    out: &mut [libc::epoll_event],
    timeout_ms: i32,
    lets: Lets,
) -> Result<usize, SysError> {
    already_stopped("epoll_pwait", lets)?;
    let (mask_bits, mask) = wait_mask(lets);
    let ep = epfd.as_raw_fd();
    let max = out.len().min(i32::MAX as usize);
    let mut call = Call::new("epoll_pwait");
    if timeout_ms != 0 && rec.tracing() {
        call = call.waits(
            ep.to_string(),
            "waiting for any watched descriptor to be ready",
        );
    }
    let pending = rec.begin(call);
    // SAFETY: `out` is a live, writable array of `max` epoll_events and
    // `mask` a valid sigset_t for the length of the call.
    let r = unsafe {
        libc::epoll_pwait(
            ep,
            out.as_mut_ptr(),
            max as i32,
            timeout_ms,
            std::ptr::from_ref(mask.as_ref()),
        )
    };
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
                set_notation(mask_bits),
                "8".into(),
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
