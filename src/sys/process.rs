//! Processes: fork (clone), pidfd_open, wait4, kill, exit_group. Signals are in [`super::signal`].

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::sys::signal::Signal;
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
    let st = wait4_inner(rec, pid, nohang);
    if let Ok(WaitStatus::Signaled(p, sig, _)) = &st {
        rec.killed(p.as_raw(), sig.as_str());
    }
    st
}

fn wait4_inner(rec: &mut Recorder, pid: Pid, nohang: bool) -> Result<WaitStatus, SysError> {
    let flags = nohang.then_some(nix::sys::wait::WaitPidFlag::WNOHANG);
    let mut call = Call::new("wait4").libc("waitpid");
    if !nohang {
        // Usually made once a pidfd said the child is gone: no marker then.
        call = call.may_wait(pid.to_string(), "waiting for the child to exit");
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

/// Corresponds to `waitpid(-1, &st, WNOHANG)`, made as `wait4(-1, …,
/// WNOHANG, NULL)`: reaps any one child that has ended, or returns None.
///
/// # Errors
/// `ECHILD` (no child at all).
pub fn wait4_any(rec: &mut Recorder) -> Result<Option<WaitStatus>, SysError> {
    rec.call(
        Call::new("wait4").libc("waitpid"),
        || {
            nix::sys::wait::waitpid(
                Pid::from_raw(-1),
                Some(nix::sys::wait::WaitPidFlag::WNOHANG),
            )
        },
        |r| {
            let (status, ret, note) = match r {
                Ok(WaitStatus::StillAlive) => {
                    ("0x0".to_string(), 0, "no child has ended yet".to_string())
                }
                Ok(st) => (
                    wait_status_notation(st),
                    st.pid().map_or(0, |p| i64::from(p.as_raw())),
                    format!("{}; the zombie is reaped", wait_status_text(st)),
                ),
                Err(_) => ("0x…".to_string(), -1, String::new()),
            };
            Shown::new(
                vec!["-1".into(), status, "WNOHANG".into(), "NULL".into()],
                ret,
                note,
            )
        },
    )
    .map(|st| match st {
        WaitStatus::StillAlive => None,
        st => Some(st),
    })
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
    // The step (= ?) and strace's `+++ exited with N +++` go out first: the
    // call never returns to print anything.
    rec.call_unknown(
        Call::new("exit_group").libc("_exit"),
        vec![code.to_string()],
        note,
        || (),
    );
    rec.exiting(code);
    // SAFETY: _exit has no preconditions; it ends the process at once.
    unsafe { libc::_exit(code) }
}

/// Corresponds to `pidfd_open(2)`: a descriptor that refers to process
/// `pid` and becomes readable when it exits, so a wait for a child can be a
/// ppoll like any other (and let Ctrl-C in). Needs Linux 5.3.
/// See <https://man7.org/linux/man-pages/man2/pidfd_open.2.html>.
///
/// # Errors
/// `ESRCH` (no such process), `EMFILE`, `ENOSYS` (kernel before 5.3).
pub fn pidfd_open(rec: &mut Recorder, pid: Pid) -> Result<OwnedFd, SysError> {
    rec.call(
        Call::new("pidfd_open").changes_fds(),
        || {
            // SAFETY: pidfd_open takes a pid and flags and returns a new
            // descriptor or -1; no memory is passed.
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
            nix::errno::Errno::result(fd).map(|fd| {
                // SAFETY: `fd` was just returned by pidfd_open and nothing else owns it.
                unsafe { OwnedFd::from_raw_fd(fd as i32) }
            })
        },
        |r| {
            let ret = r.as_ref().map_or(-1, |fd| i64::from(fd.as_raw_fd()));
            Shown::new(
                vec![pid.to_string(), "0".into()],
                ret,
                format!(
                    "fd {ret} refers to process {pid}: it becomes readable when that process exits"
                ),
            )
        },
    )
}

/// Corresponds to `getppid(2)`: the parent's pid. Never fails.
/// See <https://man7.org/linux/man-pages/man2/getppid.2.html>.
pub fn getppid(rec: &mut Recorder, note: impl FnOnce(i32) -> String) -> Result<Pid, SysError> {
    rec.call(
        Call::new("getppid"),
        || Ok(nix::unistd::getppid()),
        |r| {
            let p = r.as_ref().map_or(0, |p| p.as_raw());
            Shown::new(vec![], i64::from(p), note(p))
        },
    )
}

/// Corresponds to `prctl(PR_SET_CHILD_SUBREAPER, 1)`: orphans among this
/// process's descendants are re-parented to it instead of to init, so it
/// can reap them. See <https://man7.org/linux/man-pages/man2/PR_SET_CHILD_SUBREAPER.2const.html>.
///
/// # Errors
/// `EINVAL`, which cannot happen here.
pub fn set_child_subreaper(rec: &mut Recorder, note: &str) -> Result<(), SysError> {
    rec.call(
        Call::new("prctl"),
        || {
            // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer and
            // touches no memory of ours.
            let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
            nix::errno::Errno::result(r).map(drop)
        },
        |_| Shown::new(vec!["PR_SET_CHILD_SUBREAPER".into(), "1".into()], 0, note),
    )
}

/// Corresponds to `sched_setaffinity(2)` for this process (pid 0): it
/// runs only on `cpu` from now on, and so will the children it forks.
/// See <https://man7.org/linux/man-pages/man2/sched_setaffinity.2.html>.
///
/// # Errors
/// `EINVAL` (no such CPU, or not one this process may use).
pub fn sched_setaffinity(rec: &mut Recorder, cpu: usize) -> Result<(), SysError> {
    rec.call(
        Call::new("sched_setaffinity"),
        || {
            let mut set = nix::sched::CpuSet::new();
            set.set(cpu)?;
            nix::sched::sched_setaffinity(Pid::from_raw(0), &set)
        },
        |_| {
            Shown::new(
                vec!["0".into(), "128".into(), format!("[{cpu}]")],
                0,
                format!("this process and the children it forks now run on CPU {cpu} only"),
            )
        },
    )
}

/// Corresponds to `execve(2)`: this process stops running ipclab and runs
/// `argv[0]` found at `path`, keeping its pid and its descriptors (except
/// close-on-exec ones). On success it never returns, so the step is printed
/// first, with `= ?` (strace, watching from outside, prints `= 0`); a
/// failure returns its errno, and the caller reports it.
/// See <https://man7.org/linux/man-pages/man2/execve.2.html>.
pub fn execve(rec: &mut Recorder, path: &std::path::Path, argv: &[String]) -> SysError {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let fail = |errno| SysError {
        call: "execve",
        errno,
    };
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return fail(nix::errno::Errno::EINVAL);
    };
    let Ok(c_args) = argv
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
    else {
        return fail(nix::errno::Errno::EINVAL);
    };
    let c_env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    let mut arg_ptrs: Vec<*const libc::c_char> = c_args.iter().map(|a| a.as_ptr()).collect();
    arg_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = c_env.iter().map(|e| e.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    let shown_args = format!(
        "[{}]",
        argv.iter()
            .map(|a| crate::trace::names::quote_max(a.as_bytes(), 4096))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let args = vec![
        super::file::quote_path(path),
        shown_args,
        format!(
            "{:#x} /* {} vars */",
            env_ptrs.as_ptr() as usize,
            c_env.len()
        ),
    ];
    rec.call_unknown(
        Call::new("execve"),
        args,
        format!(
            "this process now runs {} (same pid, same descriptors); if the call fails it returns -1 and the next line says why",
            path.display()
        ),
        || {
            // SAFETY: every pointer is to a live NUL-terminated string, and
            // both arrays end with NULL, as execve requires.
            unsafe { libc::execve(c_path.as_ptr(), arg_ptrs.as_ptr(), env_ptrs.as_ptr()) };
            fail(nix::errno::Errno::last())
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
