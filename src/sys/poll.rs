//! Waiting: epoll and ppoll.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

use crate::error::SysError;
use crate::trace::names;
use crate::trace::{Call, Recorder, Shown};

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
