//! Credentials: geteuid, setgroups, setresgid, setresuid, getresuid,
//! getresgid — how a program started by `sudo` gives root back once its
//! privileged socket is open, as iputils ping does.
//!
//! Order matters: groups first (setgroups needs CAP_SETGID), then the group
//! ids, then the user ids last — after setresuid to a non-root user the
//! process has no capability left to change anything else. Setting all
//! three uids (real, effective, saved) means root cannot be taken back.
//! See <https://man7.org/linux/man-pages/man7/credentials.7.html>.

use nix::unistd::{Gid, Uid};

use crate::error::SysError;
use crate::trace::{Call, Recorder, Shown};

/// Corresponds to `geteuid(2)`. Never fails.
pub fn geteuid(rec: &mut Recorder, note: impl FnOnce(u32) -> String) -> Result<Uid, SysError> {
    rec.call(
        Call::new("geteuid"),
        || Ok(nix::unistd::geteuid()),
        |r| {
            let v = r.as_ref().map_or(0, |u| u.as_raw());
            Shown::new(vec![], i64::from(v), note(v))
        },
    )
}

/// Corresponds to `setgroups(2)` with an empty list: no supplementary groups.
/// See <https://man7.org/linux/man-pages/man2/setgroups.2.html>.
///
/// # Errors
/// `EPERM` (needs CAP_SETGID).
pub fn setgroups_empty(rec: &mut Recorder, note: &str) -> Result<(), SysError> {
    rec.call(
        Call::new("setgroups"),
        || nix::unistd::setgroups(&[]),
        |_| Shown::new(vec!["0".into(), "[]".into()], 0, note),
    )
}

/// Corresponds to `setresgid(2)`: real, effective and saved group id at once.
/// See <https://man7.org/linux/man-pages/man2/setresgid.2.html>.
///
/// # Errors
/// `EPERM` (needs CAP_SETGID to take a gid the process does not have).
pub fn setresgid(rec: &mut Recorder, gid: u32, note: &str) -> Result<(), SysError> {
    let g = Gid::from_raw(gid);
    rec.call(
        Call::new("setresgid"),
        || nix::unistd::setresgid(g, g, g),
        |_| Shown::new(vec![gid.to_string(); 3], 0, note),
    )
}

/// Corresponds to `setresuid(2)`: real, effective and saved user id at once.
/// See <https://man7.org/linux/man-pages/man2/setresuid.2.html>.
///
/// # Errors
/// `EPERM` (needs CAP_SETUID), `EAGAIN` (RLIMIT_NPROC of the target user).
pub fn setresuid(rec: &mut Recorder, uid: u32, note: &str) -> Result<(), SysError> {
    let u = Uid::from_raw(uid);
    rec.call(
        Call::new("setresuid"),
        || nix::unistd::setresuid(u, u, u),
        |_| Shown::new(vec![uid.to_string(); 3], 0, note),
    )
}

/// Corresponds to `getresuid(2)`: (real, effective, saved) user ids.
pub fn getresuid(rec: &mut Recorder) -> Result<(u32, u32, u32), SysError> {
    rec.call(
        Call::new("getresuid"),
        || {
            nix::unistd::getresuid()
                .map(|r| (r.real.as_raw(), r.effective.as_raw(), r.saved.as_raw()))
        },
        |r| {
            let (a, b, c) = r.unwrap_or((0, 0, 0));
            Shown::new(
                vec![format!("[{a}]"), format!("[{b}]"), format!("[{c}]")],
                0,
                format!("real, effective and saved uid are now {a}, {b}, {c}"),
            )
        },
    )
}

/// Corresponds to `getresgid(2)`: (real, effective, saved) group ids.
pub fn getresgid(rec: &mut Recorder) -> Result<(u32, u32, u32), SysError> {
    rec.call(
        Call::new("getresgid"),
        || {
            nix::unistd::getresgid()
                .map(|r| (r.real.as_raw(), r.effective.as_raw(), r.saved.as_raw()))
        },
        |r| {
            let (a, b, c) = r.unwrap_or((0, 0, 0));
            Shown::new(
                vec![format!("[{a}]"), format!("[{b}]"), format!("[{c}]")],
                0,
                format!("real, effective and saved gid are now {a}, {b}, {c}"),
            )
        },
    )
}
