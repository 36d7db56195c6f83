//! Signals: rt_sigaction, rt_sigprocmask, setitimer — and the rule that
//! makes every command stop cleanly without ever losing a signal.
//!
//! The rule: from the first step of a run, SIGHUP, SIGINT and SIGTERM are
//! caught *and held* (blocked). A held signal waits, pending, until the
//! process lets it in, and ipclab lets the stop signals in only while it
//! waits: each wait is a `ppoll` or `epoll_pwait` whose signal mask leaves
//! them out (see [`super::poll`]). So a signal can arrive only where the lab
//! is ready for it, never in the gap between "was there a signal?" and the
//! blocking call that follows — the classic race that lost signals before
//! (issue 7). The handler only records the signal; the wait returns EINTR,
//! and the lab cleans up and exits 128+N.
//!
//! Some waits cannot be a ppoll: `open()` of a FIFO, which blocks in the
//! kernel until the other end opens, `connect()`, and `futex(FUTEX_WAIT)`,
//! which waits on a word of memory. [`interruptible`] makes such a call
//! with the stop signals let in for that call alone. To close the same race
//! there, a stop signal that lands while such a window is open makes the
//! handler arm a repeating 10 ms timer (`setitimer`, in the handler, so not
//! a printed step); its SIGALRM interrupts the call even if the stop signal
//! came an instant before the call began. The window disarms it, as a step.
//! See <https://man7.org/linux/man-pages/man7/signal.7.html>.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};

use crate::error::SysError;
use crate::os;
use crate::trace::{Call, Recorder, Shown};

/// The signals this process holds blocked, as our own sigprocmask calls set
/// them (forked children inherit both the kernel's mask and this copy).
static HELD: AtomicU64 = AtomicU64::new(0);
/// SIGALRM is caught in this process (for the window's timer).
static ALARM_CAUGHT: AtomicBool = AtomicBool::new(false);
/// SIGCHLD is caught and held in this process.
static CHILDREN_CAUGHT: AtomicBool = AtomicBool::new(false);

/// SIGHUP, SIGINT, SIGTERM.
pub const STOPS: [Signal; 3] = [Signal::SIGHUP, Signal::SIGINT, Signal::SIGTERM];

fn bit(sig: Signal) -> u64 {
    1u64 << (sig as i32)
}

fn bits(sigs: &[Signal]) -> u64 {
    sigs.iter().fold(0, |b, &s| b | bit(s))
}

fn set_of(b: u64) -> SigSet {
    let mut set = SigSet::empty();
    for s in Signal::iterator() {
        if b & bit(s) != 0 {
            set.add(s);
        }
    }
    set
}

/// A signal set as strace prints it: `[HUP INT TERM]`, `[]`.
pub fn set_notation(b: u64) -> String {
    let names: Vec<&str> = Signal::iterator()
        .filter(|&s| b & bit(s) != 0)
        .map(|s| s.as_str().trim_start_matches("SIG"))
        .collect();
    format!("[{}]", names.join(" "))
}

/// The first stop signal caught, as a number, if any.
pub fn stop_pending() -> Option<i32> {
    os::stop_pending()
}

/// Whether `sig` was caught since the last call for it (and clears it).
pub fn take_caught(sig: Signal) -> bool {
    os::take_caught(sig as i32)
}

/// Which held signals a wait lets in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lets {
    /// The stop signals: Ctrl-C ends the wait. Every ordinary wait.
    Stops,
    /// The stop signals and SIGCHLD: a wait that a child's end must cut short.
    StopsAndChildren,
    /// None: a bounded wait during cleanup, which a second Ctrl-C must not cut.
    Nothing,
}

impl Lets {
    pub fn stops(self) -> bool {
        self != Lets::Nothing
    }
}

/// The signal mask a ppoll or epoll_pwait installs for the length of a wait
/// that lets `lets` in: what this process holds, minus those. As bits and as a set.
pub fn wait_mask(lets: Lets) -> (u64, SigSet) {
    let mut b = HELD.load(Ordering::SeqCst);
    match lets {
        Lets::Stops => b &= !bits(&STOPS),
        Lets::StopsAndChildren => b &= !(bits(&STOPS) | bit(Signal::SIGCHLD)),
        Lets::Nothing => {}
    }
    (b, set_of(b))
}

/// Corresponds to `sigprocmask(2)`, made as `rt_sigprocmask(2)`: hold
/// (block) or let in (unblock) `sigs` for this process; a held signal waits,
/// pending, until let in. See <https://man7.org/linux/man-pages/man2/sigprocmask.2.html>.
///
/// # Errors
/// `EINVAL`, which cannot happen for the values given here.
pub fn sigprocmask(
    rec: &mut Recorder,
    block: bool,
    sigs: &[Signal],
    note: impl Into<String>,
) -> Result<(), SysError> {
    let how = if block {
        SigmaskHow::SIG_BLOCK
    } else {
        SigmaskHow::SIG_UNBLOCK
    };
    let b = bits(sigs);
    let set = set_of(b);
    let note = note.into();
    rec.call(
        Call::new("rt_sigprocmask").libc("sigprocmask"),
        || {
            let r = nix::sys::signal::sigprocmask(how, Some(&set), None);
            if r.is_ok() {
                if block {
                    HELD.fetch_or(b, Ordering::SeqCst);
                } else {
                    HELD.fetch_and(!b, Ordering::SeqCst);
                }
            }
            r
        },
        |_| {
            let h = if block { "SIG_BLOCK" } else { "SIG_UNBLOCK" };
            Shown::new(
                vec![h.into(), set_notation(b), "NULL".into(), "8".into()],
                0,
                note,
            )
        },
    )
}

/// The first steps of every command: hold the stop signals, then catch them.
///
/// Held first, so a signal that comes while the handlers are being
/// installed waits for the first wait instead of killing the process
/// half-way through setting up.
pub fn hold_stops(rec: &mut Recorder) -> Result<(), SysError> {
    sigprocmask(
        rec,
        true,
        &STOPS,
        "SIGHUP, SIGINT (Ctrl-C) and SIGTERM are held from here on: ipclab lets them in only while it \
         waits (in ppoll), so none can slip in between a check and a blocking call and be lost",
    )?;
    for sig in STOPS {
        sigaction(rec, sig, Disposition::Catch)?;
    }
    Ok(())
}

/// Catches and holds SIGCHLD, once per process: a child's end can then cut
/// short a wait that lets it in ([`Lets::StopsAndChildren`]).
pub fn catch_children(rec: &mut Recorder) -> Result<(), SysError> {
    if CHILDREN_CAUGHT.load(Ordering::SeqCst) {
        return Ok(());
    }
    rec.note("SIGCHLD is caught: the end of a child can now interrupt a wait that lets it in");
    sigaction(rec, Signal::SIGCHLD, Disposition::Catch)?;
    sigprocmask(
        rec,
        true,
        &[Signal::SIGCHLD],
        "SIGCHLD is held too, except inside the waits that expect it: a child that ends between \
         the check for finished children and the wait still wakes it (no zombie lingers)",
    )?;
    CHILDREN_CAUGHT.store(true, Ordering::SeqCst);
    Ok(())
}

/// Runs a blocking call that cannot wait in ppoll (the `open()` of a FIFO,
/// `connect()`, `FUTEX_WAIT`) with the stop signals let in for that call
/// alone: unblock, call, block.
///
/// If a stop signal was already held, it is delivered by the unblock itself
/// and the call is not made (an EINTR error, which the lab turns into
/// "interrupted"). A signal landing after that check is caught by the
/// handler's timer (see the module doc).
pub fn interruptible<T>(
    rec: &mut Recorder,
    run: impl FnOnce(&mut Recorder) -> Result<T, SysError>,
) -> Result<T, SysError> {
    let notes = rec.stash();
    if !ALARM_CAUGHT.load(Ordering::SeqCst) {
        sigaction(rec, Signal::SIGALRM, Disposition::Catch)?;
        ALARM_CAUGHT.store(true, Ordering::SeqCst);
    }
    os::set_window(true);
    let opened = sigprocmask(
        rec,
        false,
        &STOPS,
        "the stop signals are let in for the next call alone: it cannot wait in ppoll, so Ctrl-C must be able to interrupt the call itself",
    );
    let result = match opened {
        Err(e) => Err(e),
        Ok(()) if os::stop_pending().is_some() => Err(SysError {
            call: "rt_sigprocmask",
            errno: nix::errno::Errno::EINTR,
        }),
        Ok(()) => {
            rec.unstash(notes);
            run(rec)
        }
    };
    os::set_window(false);
    let closed = sigprocmask(rec, true, &STOPS, "held again");
    if os::take_kicked() {
        rec.message(
            "a stop signal came while that call could block: the handler also armed a repeating \
             10 ms timer (setitimer, made inside the handler), whose SIGALRM interrupts the call \
             even if the signal came an instant before it began",
        );
        let _ = setitimer_off(rec);
    }
    let v = result?;
    closed?;
    Ok(v)
}

/// Lets the stop signals in for the rest of this process's life: for a
/// process that waits in its blocking calls themselves (a forked
/// connection child waits in `recvfrom`, as the notes' server does) rather
/// than in a ppoll before each. Each such call then runs in
/// [`in_window`]. One `rt_sigprocmask` here instead of a `ppoll` per
/// message.
pub fn let_stops_in(rec: &mut Recorder) -> Result<(), SysError> {
    if !ALARM_CAUGHT.load(Ordering::SeqCst) {
        sigaction(rec, Signal::SIGALRM, Disposition::Catch)?;
        ALARM_CAUGHT.store(true, Ordering::SeqCst);
    }
    sigprocmask(
        rec,
        false,
        &STOPS,
        "the stop signals are let in from here on: this process waits in its blocking calls themselves, which Ctrl-C interrupts (EINTR)",
    )
}

/// Runs a blocking call in a process that lets the stop signals in (see
/// [`let_stops_in`]), with no syscall around it: the window is opened (an
/// atomic store) before the check for a stop that already came, so a
/// signal after the check finds the window open and its handler arms the
/// timer whose SIGALRM interrupts the call even if it had not begun.
pub fn in_window<T>(
    rec: &mut Recorder,
    call: &'static str,
    run: impl FnOnce(&mut Recorder) -> Result<T, SysError>,
) -> Result<T, SysError> {
    os::set_window(true);
    let result = if os::stop_pending().is_some() {
        Err(SysError {
            call,
            errno: nix::errno::Errno::EINTR,
        })
    } else {
        run(rec)
    };
    os::set_window(false);
    if os::take_kicked() {
        rec.message(
            "a stop signal came while that call could block: the handler also armed a repeating \
             10 ms timer (setitimer, made inside the handler), whose SIGALRM interrupts the call \
             even if the signal came an instant before it began",
        );
        let _ = setitimer_off(rec);
    }
    result
}

/// Corresponds to `setitimer(2)` with ITIMER_REAL and a zero value: stops
/// the real-time timer. See <https://man7.org/linux/man-pages/man2/setitimer.2.html>.
pub fn setitimer_off(rec: &mut Recorder) -> Result<(), SysError> {
    let zero = libc::itimerval {
        it_interval: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        it_value: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
    };
    rec.call(
        Call::new("setitimer"),
        || {
            // SAFETY: `zero` is a valid itimerval that outlives the call; a
            // NULL old value is allowed.
            let r = unsafe { libc::setitimer(libc::ITIMER_REAL, &zero, std::ptr::null_mut()) };
            nix::errno::Errno::result(r).map(drop)
        },
        |_| {
            Shown::new(
                vec![
                    "ITIMER_REAL".into(),
                    "{it_interval={tv_sec=0, tv_usec=0}, it_value={tv_sec=0, tv_usec=0}}".into(),
                    "NULL".into(),
                ],
                0,
                "the handler's timer is stopped",
            )
        },
    )
}

/// A signal's disposition before [`sigaction`] changed it; [`restore`] puts it back.
#[derive(Debug, Clone, Copy)]
pub struct Previous {
    sig: Signal,
    action: SigAction,
}

/// What [`sigaction`] installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Ignore,
    Default,
    /// Record the signal and interrupt a wait that lets it in (no
    /// SA_RESTART), so the lab can clean up and exit.
    Catch,
}

/// Corresponds to `sigaction(2)`, made as `rt_sigaction(2)`.
/// See <https://man7.org/linux/man-pages/man2/sigaction.2.html>.
///
/// Returns the disposition it replaced, for [`restore`].
///
/// # Errors
/// `EINVAL` for SIGKILL/SIGSTOP.
pub fn sigaction(rec: &mut Recorder, sig: Signal, disp: Disposition) -> Result<Previous, SysError> {
    let handler = match disp {
        Disposition::Ignore => SigHandler::SigIgn,
        Disposition::Default => SigHandler::SigDfl,
        Disposition::Catch => SigHandler::SigAction(os::on_signal),
    };
    let flags = if disp == Disposition::Catch {
        SaFlags::SA_SIGINFO
    } else {
        SaFlags::empty()
    };
    let action = SigAction::new(handler, flags, SigSet::empty());
    let call = Call::new("rt_sigaction").libc("sigaction");
    // SAFETY: the handlers installed are SIG_IGN, SIG_DFL or `os::on_signal`,
    // which only stores to atomics and calls setitimer: async-signal-safe.
    rec.call(
        call,
        || unsafe { nix::sys::signal::sigaction(sig, &action) },
        |r| {
            let new = format!(
                "{{sa_handler={}, sa_mask=[], sa_flags={}}}",
                handler_name(handler),
                if disp == Disposition::Catch {
                    "SA_RESTORER|SA_SIGINFO"
                } else {
                    "SA_RESTORER"
                }
            );
            let old = match r {
                Ok(old) => format!("{{sa_handler={}, …}}", handler_name(old.handler())),
                Err(_) => "0x…".to_string(),
            };
            let name = sig.as_str();
            let note = match (disp, sig) {
                (Disposition::Ignore, _) => format!("{name} is ignored from now on"),
                (Disposition::Default, _) => format!("{name} gets its default action back"),
                (Disposition::Catch, Signal::SIGALRM) => {
                    "SIGALRM is caught: the stop-signal handler's timer may need it to interrupt a call".to_string()
                }
                (Disposition::Catch, Signal::SIGCHLD) => {
                    "SIGCHLD is caught: a child's end can interrupt a wait (no SA_RESTART)".to_string()
                }
                (Disposition::Catch, _) => format!(
                    "{name} is caught (no SA_RESTART): it ends the wait it arrives in, and the lab cleans up and exits {}",
                    128 + sig as i32
                ),
            };
            Shown::new(vec![name.into(), new, old, "8".into()], 0, note)
        },
    )
    .map(|action| Previous { sig, action })
}

fn handler_name(h: SigHandler) -> String {
    match h {
        SigHandler::SigIgn => "SIG_IGN".to_string(),
        SigHandler::SigDfl => "SIG_DFL".to_string(),
        _ => "ipclab_on_signal".to_string(),
    }
}

/// Corresponds to `sigaction(2)` (`rt_sigaction(2)`) putting back the
/// disposition a lab found.
///
/// # Errors
/// `EINVAL`, which cannot happen for a disposition the kernel gave us.
pub fn restore(rec: &mut Recorder, prev: Previous) -> Result<(), SysError> {
    let Previous { sig, action } = prev;
    let call = Call::new("rt_sigaction").libc("sigaction");
    // SAFETY: `action` is the disposition the kernel reported for `sig` a
    // moment ago (SIG_DFL, SIG_IGN, or a handler of this process), so
    // installing it again sets up nothing new.
    rec.call(
        call,
        || unsafe { nix::sys::signal::sigaction(sig, &action) },
        |r| {
            let new = format!("{{sa_handler={}, …}}", handler_name(action.handler()));
            let old = match r {
                Ok(old) => format!("{{sa_handler={}, …}}", handler_name(old.handler())),
                Err(_) => "0x…".to_string(),
            };
            let note = format!("{} gets back the disposition it had before", sig.as_str());
            Shown::new(vec![sig.as_str().into(), new, old, "8".into()], 0, note)
        },
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_read_as_strace_prints_them() {
        assert_eq!(set_notation(bits(&STOPS)), "[HUP INT TERM]");
        assert_eq!(set_notation(0), "[]");
        assert_eq!(set_notation(bit(Signal::SIGCHLD)), "[CHLD]");
    }
}
