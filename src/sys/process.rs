//! Processes and signals: fork (clone), wait4, kill, exit_group,
//! rt_sigaction, clock_nanosleep.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use crate::error::SysError;
use crate::trace::{Call, Recorder, Shown};

/// Which side of a fork this process is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    Parent { child: Pid },
    Child,
}

/// Corresponds to `fork(3)`, which glibc makes as `clone(2)` with SIGCHLD.
/// See <https://man7.org/linux/man-pages/man2/fork.2.html>.
///
/// The step is printed by the parent only (strace shows the call once, in
/// the parent); the child's recorder switches to the child's pid.
///
/// # Errors
/// `EAGAIN` (process limit), `ENOMEM`.
pub fn fork(rec: &mut Recorder) -> Result<Forked, SysError> {
    let call = Call::new("clone").libc("fork");
    // SAFETY: ipclab starts no threads, so the child is a copy of a
    // single-threaded process and may allocate and run Rust code; the
    // renderers hold no buffered output that the child could print twice.
    let run = || match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { child }) => Ok(Forked::Parent { child }),
        Ok(nix::unistd::ForkResult::Child) => Ok(Forked::Child),
        Err(e) => Err(e),
    };
    rec.call_fork(call, run, |r| {
        let ret = match r {
            Ok(Forked::Child) => return None,
            Ok(Forked::Parent { child }) => i64::from(child.as_raw()),
            Err(_) => -1,
        };
        let args = vec![
            "child_stack=NULL".into(),
            "flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD".into(),
        ];
        let note = format!(
            "a child process {ret} now runs the same code, with copies of every descriptor"
        );
        Some(Shown::new(args, ret, note))
    })
}

/// The strace notation of a wait status: `[{WIFEXITED(s) && WEXITSTATUS(s) == 0}]`.
pub fn wait_status_notation(st: &WaitStatus) -> String {
    match st {
        WaitStatus::Exited(_, code) => format!("[{{WIFEXITED(s) && WEXITSTATUS(s) == {code}}}]"),
        WaitStatus::Signaled(_, sig, core) => format!(
            "[{{WIFSIGNALED(s) && WTERMSIG(s) == {}{}}}]",
            sig.as_str(),
            if *core { " && WCOREDUMP(s)" } else { "" }
        ),
        WaitStatus::Stopped(_, sig) => {
            format!("[{{WIFSTOPPED(s) && WSTOPSIG(s) == {}}}]", sig.as_str())
        }
        _ => "[0]".to_string(),
    }
}

/// How a wait status reads to a person.
pub fn wait_status_text(st: &WaitStatus) -> String {
    match st {
        WaitStatus::Exited(pid, code) => format!("child {pid} exited with status {code}"),
        WaitStatus::Signaled(pid, sig, _) => format!("child {pid} was killed by {}", sig.as_str()),
        WaitStatus::Stopped(pid, sig) => format!("child {pid} stopped by {}", sig.as_str()),
        other => format!("child changed state: {other:?}"),
    }
}

/// Corresponds to `waitpid(3)`, made as `wait4(2)` with a NULL rusage.
/// See <https://man7.org/linux/man-pages/man2/wait4.2.html>.
///
/// # Errors
/// `ECHILD` (no such child), `EINTR` (a handled signal arrived).
pub fn wait4(rec: &mut Recorder, pid: Pid, nohang: bool) -> Result<WaitStatus, SysError> {
    let flags = nohang.then_some(nix::sys::wait::WaitPidFlag::WNOHANG);
    let mut call = Call::new("wait4").libc("waitpid");
    if !nohang {
        call = call.waits(pid.to_string(), "waiting for the child to exit");
    }
    rec.call(
        call,
        || nix::sys::wait::waitpid(pid, flags),
        |r| {
            let (status, ret, note) = match r {
                Ok(WaitStatus::StillAlive) => (
                    "0x0".to_string(),
                    0,
                    "the child is still running".to_string(),
                ),
                Ok(st) => (
                    wait_status_notation(st),
                    st.pid().map_or(0, |p| i64::from(p.as_raw())),
                    format!("{}; the zombie is reaped", wait_status_text(st)),
                ),
                Err(_) => ("0x…".to_string(), -1, String::new()),
            };
            let opt = if nohang { "WNOHANG" } else { "0" };
            Shown::new(
                vec![pid.to_string(), status, opt.into(), "NULL".into()],
                ret,
                note,
            )
        },
    )
}

/// Corresponds to `kill(2)`. See <https://man7.org/linux/man-pages/man2/kill.2.html>.
///
/// # Errors
/// `ESRCH` (no such process), `EPERM`.
pub fn kill(rec: &mut Recorder, pid: Pid, sig: Signal) -> Result<(), SysError> {
    rec.call(
        Call::new("kill"),
        || nix::sys::signal::kill(pid, sig),
        |_| {
            Shown::new(
                vec![pid.to_string(), sig.as_str().into()],
                0,
                format!("sent {} to {pid}", sig.as_str()),
            )
        },
    )
}

/// Corresponds to `_exit(2)`, made as `exit_group(2)`: ends the process now,
/// without running destructors or flushing anything. Printed before it runs,
/// with strace's `= ?`, since it never returns.
pub fn exit(rec: &mut Recorder, code: i32) -> ! {
    let note = if code == 0 {
        "this process ends; its descriptors are closed by the kernel"
    } else {
        "this process ends with a failure status"
    };
    rec.call_unknown(
        Call::new("exit_group").libc("_exit"),
        vec![code.to_string()],
        note,
        || {
            // SAFETY: _exit has no preconditions; it ends the process at once.
            unsafe { libc::_exit(code) }
        },
    )
}

/// Corresponds to `sigprocmask(2)`, made as `rt_sigprocmask(2)`: block or
/// unblock `sig` for this process (a blocked signal is held pending).
/// See <https://man7.org/linux/man-pages/man2/sigprocmask.2.html>.
pub fn sigprocmask(rec: &mut Recorder, block: bool, sig: Signal) -> Result<(), SysError> {
    use nix::sys::signal::SigmaskHow;
    let how = if block {
        SigmaskHow::SIG_BLOCK
    } else {
        SigmaskHow::SIG_UNBLOCK
    };
    let mut set = SigSet::empty();
    set.add(sig);
    let name = sig.as_str().trim_start_matches("SIG").to_string();
    rec.call(
        Call::new("rt_sigprocmask").libc("sigprocmask"),
        || nix::sys::signal::sigprocmask(how, Some(&set), None),
        |_| {
            let h = if block { "SIG_BLOCK" } else { "SIG_UNBLOCK" };
            Shown::new(
                vec![h.into(), format!("[{name}]"), "NULL".into(), "8".into()],
                0,
                if block {
                    format!("{} is held pending until unblocked", sig.as_str())
                } else {
                    format!("{} is delivered again", sig.as_str())
                },
            )
        },
    )
}

/// One bit per signal caught by `on_signal` and not yet taken by [`take_caught`].
static PENDING: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    // Only an atomic read-modify-write: async-signal-safe.
    if (0..64).contains(&sig) {
        PENDING.fetch_or(1 << sig, Ordering::SeqCst);
    }
}

fn bit(sig: Signal) -> u64 {
    1u64 << (sig as i32)
}

/// Whether `sig` was caught since the last call for it (and clears it), for
/// labs that catch several signals at once (SIGCHLD and SIGINT, say).
pub fn take_caught(sig: Signal) -> bool {
    PENDING.fetch_and(!bit(sig), Ordering::SeqCst) & bit(sig) != 0
}

/// SIGINT or SIGTERM, if one was caught and not yet taken: a request to stop.
pub fn pending_stop() -> Option<i32> {
    let pending = PENDING.load(Ordering::SeqCst);
    [Signal::SIGINT, Signal::SIGTERM]
        .into_iter()
        .find(|&s| pending & bit(s) != 0)
        .map(|s| s as i32)
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
    /// Record the signal and interrupt the blocked call (no SA_RESTART), so
    /// the lab can clean up and exit.
    Catch,
}

/// Corresponds to `sigaction(2)`, made as `rt_sigaction(2)`.
/// See <https://man7.org/linux/man-pages/man2/sigaction.2.html>.
///
/// Returns the disposition it replaced, for [`restore`]. Catching a signal
/// first forgets an earlier catch of it, so a stale Ctrl-C cannot stop a
/// later lab.
///
/// # Errors
/// `EINVAL` for SIGKILL/SIGSTOP.
pub fn sigaction(rec: &mut Recorder, sig: Signal, disp: Disposition) -> Result<Previous, SysError> {
    if disp == Disposition::Catch {
        take_caught(sig);
    }
    let handler = match disp {
        Disposition::Ignore => SigHandler::SigIgn,
        Disposition::Default => SigHandler::SigDfl,
        Disposition::Catch => SigHandler::Handler(on_signal),
    };
    let action = SigAction::new(handler, SaFlags::empty(), SigSet::empty());
    let call = Call::new("rt_sigaction").libc("sigaction");
    // SAFETY: the handlers installed are SIG_IGN, SIG_DFL or `on_signal`,
    // which only stores to an atomic and so is async-signal-safe.
    rec.call(
        call,
        || unsafe { nix::sys::signal::sigaction(sig, &action) },
        |r| {
            let show = handler_name;
            let new = format!(
                "{{sa_handler={}, sa_mask=[], sa_flags=SA_RESTORER}}",
                show(handler)
            );
            let old = match r {
                Ok(old) => format!("{{sa_handler={}, …}}", show(old.handler())),
                Err(_) => "0x…".to_string(),
            };
            let note = match disp {
                Disposition::Ignore => format!("{} is ignored from now on", sig.as_str()),
                Disposition::Default => {
                    format!("{} gets its default action back (terminate)", sig.as_str())
                }
                Disposition::Catch => format!(
                    "{} now interrupts a blocked call (no SA_RESTART) so the lab can clean up",
                    sig.as_str()
                ),
            };
            Shown::new(vec![sig.as_str().into(), new, old, "8".into()], 0, note)
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
/// disposition a lab found, so the next lab in a tour starts as this one did.
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
            let note = format!(
                "{} gets back the disposition it had before this lab",
                sig.as_str()
            );
            Shown::new(vec![sig.as_str().into(), new, old, "8".into()], 0, note)
        },
    )
    .map(|_| ())
}

/// Corresponds to `clock_nanosleep(2)` on CLOCK_MONOTONIC, relative.
/// See <https://man7.org/linux/man-pages/man2/clock_nanosleep.2.html>.
///
/// # Errors
/// `EINTR` when a handled signal arrives first.
pub fn clock_nanosleep(rec: &mut Recorder, d: Duration) -> Result<(), SysError> {
    let ts = libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos().into(),
    };
    let call = Call::new("clock_nanosleep").waits("CLOCK_MONOTONIC, 0".into(), "sleeping");
    rec.call(
        call,
        || {
            // SAFETY: `ts` is a valid timespec that outlives the call, and a
            // NULL `remain` is allowed for a relative sleep.
            let rc = unsafe {
                libc::clock_nanosleep(libc::CLOCK_MONOTONIC, 0, &ts, std::ptr::null_mut())
            };
            // clock_nanosleep returns the error number instead of setting errno.
            if rc == 0 {
                Ok(())
            } else {
                Err(nix::errno::Errno::from_raw(rc))
            }
        },
        |_| {
            let req = format!("{{tv_sec={}, tv_nsec={}}}", ts.tv_sec, ts.tv_nsec);
            Shown::new(
                vec!["CLOCK_MONOTONIC".into(), "0".into(), req, "NULL".into()],
                0,
                "slept",
            )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_status_in_strace_notation() {
        let p = Pid::from_raw(7);
        assert_eq!(
            wait_status_notation(&WaitStatus::Exited(p, 0)),
            "[{WIFEXITED(s) && WEXITSTATUS(s) == 0}]"
        );
        assert_eq!(
            wait_status_notation(&WaitStatus::Signaled(p, Signal::SIGPIPE, false)),
            "[{WIFSIGNALED(s) && WTERMSIG(s) == SIGPIPE}]"
        );
    }
}
