//! Namespaces: unshare and setns. A network namespace is a whole network
//! stack of its own — interfaces, addresses, routes, neighbour table,
//! sysctls under /proc/sys/net, sockets — and a user namespace gives its
//! maker every capability over the namespaces it owns, and nothing more.
//! See <https://man7.org/linux/man-pages/man7/namespaces.7.html>.

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;

use crate::error::SysError;
use crate::trace::{Call, Recorder, Shown};

/// `CLONE_NEW*` flags as strace prints them: `CLONE_NEWUSER|CLONE_NEWNET`.
pub fn clone_flags(flags: i32) -> String {
    let table = [
        (libc::CLONE_NEWNS, "CLONE_NEWNS"),
        (libc::CLONE_NEWCGROUP, "CLONE_NEWCGROUP"),
        (libc::CLONE_NEWUTS, "CLONE_NEWUTS"),
        (libc::CLONE_NEWIPC, "CLONE_NEWIPC"),
        (libc::CLONE_NEWUSER, "CLONE_NEWUSER"),
        (libc::CLONE_NEWPID, "CLONE_NEWPID"),
        (libc::CLONE_NEWNET, "CLONE_NEWNET"),
    ];
    let mut parts = Vec::new();
    let mut rest = flags;
    for (bit, name) in table {
        if flags & bit != 0 {
            parts.push(name.to_string());
            rest &= !bit;
        }
    }
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    if parts.is_empty() {
        return "0".into();
    }
    parts.join("|")
}

/// Corresponds to `unshare(2)`: this process leaves its namespaces of the
/// kinds in `flags` for new, empty ones. A new network namespace has only
/// `lo`, down. See <https://man7.org/linux/man-pages/man2/unshare.2.html>.
///
/// # Errors
/// `EPERM` (CLONE_NEWNET without CAP_SYS_ADMIN; CLONE_NEWUSER refused by a
/// policy, in a chroot, or in a threaded process), `ENOSPC` (the
/// user.max_user_namespaces limit), `EUSERS` (nested too deep), `EINVAL`.
pub fn unshare(rec: &mut Recorder, flags: i32, note: &str) -> Result<(), SysError> {
    rec.call(
        Call::new("unshare"),
        || {
            // SAFETY: unshare takes an int and touches no memory of ours;
            // ipclab runs no threads, which CLONE_NEWUSER requires.
            Errno::result(unsafe { libc::unshare(flags) }).map(drop)
        },
        |_| Shown::new(vec![clone_flags(flags)], 0, note),
    )
}

/// Corresponds to `setns(2)`: this process joins the namespace that `fd`
/// (an open `/proc/PID/ns/…` file) refers to. Sockets made afterwards
/// belong to the new network namespace; sockets already open stay in
/// theirs. See <https://man7.org/linux/man-pages/man2/setns.2.html>.
///
/// # Errors
/// `EPERM` (no CAP_SYS_ADMIN over the namespace), `EINVAL` (not a
/// namespace of that kind).
pub fn setns(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    nstype: i32,
    note: &str,
) -> Result<(), SysError> {
    let raw = fd.as_raw_fd();
    rec.call(
        Call::new("setns"),
        || {
            // SAFETY: setns takes a descriptor and an int; no memory of ours.
            Errno::result(unsafe { libc::setns(raw, nstype) }).map(drop)
        },
        |_| Shown::new(vec![raw.to_string(), clone_flags(nstype)], 0, note),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_as_strace_prints_them() {
        assert_eq!(
            clone_flags(libc::CLONE_NEWUSER | libc::CLONE_NEWNET),
            "CLONE_NEWUSER|CLONE_NEWNET"
        );
        assert_eq!(clone_flags(libc::CLONE_NEWNET), "CLONE_NEWNET");
        assert_eq!(clone_flags(0), "0");
    }
}
