//! `-c`: calls, errors and time per syscall, summed over every process of
//! the run (in the shared counter page), and the table strace prints.

use std::sync::atomic::Ordering::Relaxed;

use crate::os::{Counters, CALL_SLOTS};
use crate::render::event::CountRow;

/// The syscalls ipclab makes, each with its slot; the last slot collects
/// any name missing here (a test keeps it empty).
const NAMES: &[&str] = &[
    "accept",
    "accept4",
    "bind",
    "capget",
    "chdir",
    "clone",
    "close",
    "connect",
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "epoll_wait",
    "exit_group",
    "fcntl",
    "fsync",
    "ftruncate",
    "futex",
    "getcwd",
    "geteuid",
    "getpeername",
    "getppid",
    "getresgid",
    "getresuid",
    "getsockname",
    "getsockopt",
    "ioctl",
    "kill",
    "listen",
    "memfd_create",
    "mkdir",
    "mknodat",
    "mmap",
    "munmap",
    "newfstatat",
    "openat",
    "pidfd_open",
    "pipe2",
    "poll",
    "ppoll",
    "prctl",
    "read",
    "recvfrom",
    "recvmsg",
    "rename",
    "renameat2",
    "rmdir",
    "rt_sigaction",
    "rt_sigprocmask",
    "sendmsg",
    "sendto",
    "setgroups",
    "setitimer",
    "setresgid",
    "setresuid",
    "setsockopt",
    "shutdown",
    "socket",
    "socketpair",
    "umask",
    "unlink",
    "wait4",
    "write",
    "setns",
    "unshare",
    "sched_setaffinity",
    "clock_gettime",
    "lseek",
    "pwrite64",
    "pread64",
    "dup",
    "dup2",
    "dup3",
    "memfd_secret",
    "signalfd4",
    "eventfd2",
    "timerfd_create",
    "timerfd_settime",
    "flock",
    "sync_file_range",
    "renameat",
    "clock_nanosleep",
    "fstat",
    "gettid",
    "getpid",
    "sendmmsg",
    "recvmmsg",
];

/// The slot for `name`.
pub fn slot(name: &str) -> usize {
    NAMES
        .iter()
        .position(|n| *n == name)
        .unwrap_or(CALL_SLOTS - 1)
        .min(CALL_SLOTS - 1)
}

/// Counts one call in its slot.
pub fn count(c: &Counters, name: &str, failed: bool, elapsed: std::time::Duration) {
    let s = &c.per_call[slot(name)];
    s.calls.fetch_add(1, Relaxed);
    if failed {
        s.errors.fetch_add(1, Relaxed);
    }
    s.nanos
        .fetch_add(elapsed.as_nanos().min(u128::from(u64::MAX)) as u64, Relaxed);
}

/// The table's rows, as strace sorts them: most time first.
pub fn rows(c: &Counters) -> Vec<CountRow> {
    let mut rows: Vec<CountRow> = (0..CALL_SLOTS)
        .filter_map(|i| {
            let s = &c.per_call[i];
            let calls = s.calls.load(Relaxed);
            (calls > 0).then(|| CountRow {
                syscall: NAMES.get(i).copied().unwrap_or("?").to_string(),
                calls,
                errors: s.errors.load(Relaxed),
                nanos: s.nanos.load(Relaxed),
            })
        })
        .collect();
    rows.sort_by(|a, b| b.nanos.cmp(&a.nanos).then(b.calls.cmp(&a.calls)));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_has_its_own_slot() {
        assert!(NAMES.len() < CALL_SLOTS, "one slot stays for unknown names");
        assert_eq!(
            slot("read"),
            NAMES.iter().position(|n| *n == "read").unwrap_or(0)
        );
        assert_eq!(slot("no_such_call"), CALL_SLOTS - 1);
    }
}
