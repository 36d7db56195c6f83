//! Waits as the labs use them: for a descriptor, for time, for a child.
//!
//! Each is a `ppoll` that lets the stop signals in (see `sys::signal`), so
//! Ctrl-C ends any of them; the `?` on its error turns that into
//! [`Error::Interrupted`]. Only the bounded waits of a cleanup keep the stop
//! signals out, so a second Ctrl-C cannot leave a child unreaped.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::sys::poll::{self, Lets};
use crate::sys::{file, process};
use crate::trace::Recorder;

/// How long a child may take to clean up after SIGTERM before SIGKILL.
pub const GRACE: Duration = Duration::from_secs(2);

/// Waits until `fd` is readable (data, EOF, a connection to accept) or
/// `timeout` passes. Returns false on timeout.
pub fn readable(rec: &mut Recorder, fd: BorrowedFd<'_>, timeout: Option<Duration>) -> Result<bool> {
    let mut set = [poll::pollfd(fd, libc::POLLIN)];
    Ok(poll::ppoll(rec, &mut set, timeout, Lets::Stops)? > 0)
}

/// Waits until `fd` has room to write, or `timeout` passes. False on timeout.
pub fn writable(rec: &mut Recorder, fd: BorrowedFd<'_>, timeout: Option<Duration>) -> Result<bool> {
    let mut set = [poll::pollfd(fd, libc::POLLOUT)];
    Ok(poll::ppoll(rec, &mut set, timeout, Lets::Stops)? > 0)
}

/// Sleeps for `d`, unless a stop signal comes first.
pub fn sleep(rec: &mut Recorder, d: Duration) -> Result<()> {
    poll::sleep(rec, d)?;
    Ok(())
}

/// Waits for `child` to exit and reaps it: pidfd_open → ppoll → wait4 →
/// close. A stop signal during the wait returns [`Error::Interrupted`]; the
/// caller then stops the child with [`stop`].
pub fn reap(rec: &mut Recorder, child: Pid) -> Result<WaitStatus> {
    let pidfd = process::pidfd_open(rec, child)?;
    rec.waiting(format!("waiting for child {child} to exit"));
    let mut set = [poll::pollfd(pidfd.as_fd(), libc::POLLIN)];
    rec.note(format!("child {child} has exited: wait4() returns at once"));
    if let Err(e) = poll::ppoll(rec, &mut set, None, Lets::Stops) {
        let _ = file::close(rec, pidfd);
        return Err(e.into());
    }
    let st = process::wait4(rec, child, false);
    file::close(rec, pidfd)?;
    Ok(st?)
}

/// Stops a child this lab can no longer wait for normally: SIGTERM, up to
/// [`GRACE`] for it to clean up and exit, then SIGKILL; always reaped. The
/// waits here keep the stop signals out: they are bounded, and a second
/// Ctrl-C must not leave a zombie.
pub fn stop(rec: &mut Recorder, child: Pid) -> Result<WaitStatus> {
    rec.note(format!(
        "child {child} is asked to stop: it cleans up and exits (SIGKILL after {} s if it does not)",
        GRACE.as_secs()
    ));
    let _ = process::kill(rec, child, Signal::SIGTERM);
    let pidfd = match process::pidfd_open(rec, child) {
        Ok(fd) => Some(fd),
        // Without a pidfd there is no bounded wait: make sure wait4 returns.
        Err(_) => {
            let _ = process::kill(rec, child, Signal::SIGKILL);
            None
        }
    };
    if let Some(fd) = &pidfd {
        let mut set = [poll::pollfd(fd.as_fd(), libc::POLLIN)];
        rec.waiting(format!(
            "waiting up to {} s for child {child} to exit",
            GRACE.as_secs()
        ));
        match poll::ppoll(rec, &mut set, Some(GRACE), Lets::Nothing) {
            Ok(0) => {
                rec.note(format!(
                    "child {child} did not exit within {} s: SIGKILL cannot be caught or held",
                    GRACE.as_secs()
                ));
                let _ = process::kill(rec, child, Signal::SIGKILL);
            }
            Ok(_) => {}
            Err(_) => {
                let _ = process::kill(rec, child, Signal::SIGKILL);
            }
        }
    }
    let st = loop {
        match process::wait4(rec, child, false) {
            Err(e) if e.errno == Errno::EINTR => continue,
            r => break r,
        }
    };
    if let Some(fd) = pidfd {
        let _ = file::close(rec, fd);
    }
    Ok(st?)
}

/// The end of a lab's parent side: reaps `child` if `side` succeeded, stops
/// it otherwise (an error, or Ctrl-C). Returns the side's error first.
pub fn finish(rec: &mut Recorder, child: Pid, side: Result<()>) -> Result<WaitStatus> {
    match side {
        Ok(()) => match reap(rec, child) {
            Ok(st) => Ok(st),
            Err(e) => {
                let _ = stop(rec, child);
                Err(e)
            }
        },
        Err(e) => {
            let _ = stop(rec, child);
            Err(e)
        }
    }
}

/// Expects a child to have exited with status 0.
pub fn expect_exit_0(st: WaitStatus) -> Result<()> {
    match st {
        WaitStatus::Exited(_, 0) => Ok(()),
        other => Err(Error::protocol(process::wait_status_text(&other))),
    }
}
