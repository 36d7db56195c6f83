//! Credentials: geteuid, setgroups, setresgid, setresuid, getresuid,
//! getresgid, capget — how a program started by `sudo` gives root back once its
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

/// Corresponds to `getegid(2)`. Never fails.
pub fn getegid(rec: &mut Recorder, note: impl FnOnce(u32) -> String) -> Result<Gid, SysError> {
    rec.call(
        Call::new("getegid"),
        || Ok(nix::unistd::getegid()),
        |r| {
            let v = r.as_ref().map_or(0, |g| g.as_raw());
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

/// The three capability sets of this process, as `capget(2)` reports them
/// (64 bits each: two 32-bit words, version 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Caps {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

impl Caps {
    pub fn is_empty(&self) -> bool {
        self.effective == 0 && self.permitted == 0 && self.inheritable == 0
    }
}

/// The name of the highest capability held in `set`, and how many are held.
pub fn cap_summary(set: u64) -> String {
    let n = set.count_ones();
    if n == 0 {
        return "none".into();
    }
    let has_raw = set & (1 << 13) != 0;
    format!(
        "{n} capabilit{}{}",
        if n == 1 { "y" } else { "ies" },
        if has_raw {
            ", CAP_NET_RAW among them"
        } else {
            ""
        }
    )
}

/// A capability set as strace prints it: `0`, or `1<<CAP_NET_RAW|…`.
pub fn cap_set_notation(set: u64) -> String {
    if set == 0 {
        return "0".into();
    }
    // linux/capability.h, in bit order.
    const NAMES: [&str; 41] = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_DAC_READ_SEARCH",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_KILL",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETPCAP",
        "CAP_LINUX_IMMUTABLE",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST",
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_IPC_LOCK",
        "CAP_IPC_OWNER",
        "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO",
        "CAP_SYS_CHROOT",
        "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT",
        "CAP_SYS_ADMIN",
        "CAP_SYS_BOOT",
        "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE",
        "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG",
        "CAP_MKNOD",
        "CAP_LEASE",
        "CAP_AUDIT_WRITE",
        "CAP_AUDIT_CONTROL",
        "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE",
        "CAP_MAC_ADMIN",
        "CAP_SYSLOG",
        "CAP_WAKE_ALARM",
        "CAP_BLOCK_SUSPEND",
        "CAP_AUDIT_READ",
        "CAP_PERFMON",
        "CAP_BPF",
        "CAP_CHECKPOINT_RESTORE",
    ];
    let mut parts = Vec::new();
    for bit in 0..64u32 {
        if set & (1u64 << bit) != 0 {
            match NAMES.get(bit as usize) {
                Some(n) => parts.push(format!("1<<{n}")),
                None => parts.push(format!("1<<{bit}")),
            }
        }
    }
    parts.join("|")
}

/// Corresponds to `capget(2)` for this process: its effective, permitted
/// and inheritable capability sets. See <https://man7.org/linux/man-pages/man2/capget.2.html>.
///
/// # Errors
/// `EINVAL` (unknown version), `EFAULT`.
pub fn capget(rec: &mut Recorder) -> Result<Caps, SysError> {
    // struct __user_cap_header_struct and two __user_cap_data_struct
    // (version 3 uses two 32-bit words per set).
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    rec.call(
        Call::new("capget"),
        || {
            let mut hdr = Header {
                version: VERSION_3,
                pid: 0,
            };
            let mut data = [Data::default(); 2];
            // SAFETY: `hdr` and `data` are live, properly sized and laid out
            // as the kernel's version-3 structures (repr(C)); the kernel
            // writes only into them.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_capget,
                    std::ptr::from_mut(&mut hdr),
                    data.as_mut_ptr(),
                )
            };
            nix::errno::Errno::result(r).map(|_| {
                let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
                Caps {
                    effective: join(data[0].effective, data[1].effective),
                    permitted: join(data[0].permitted, data[1].permitted),
                    inheritable: join(data[0].inheritable, data[1].inheritable),
                }
            })
        },
        |r| {
            let c = r.as_ref().copied().unwrap_or_default();
            let note = if c.is_empty() {
                "no capability is left: effective, permitted and inheritable sets are empty"
                    .to_string()
            } else {
                "capabilities are still held".to_string()
            };
            Shown::new(
                vec![
                    "{version=_LINUX_CAPABILITY_VERSION_3, pid=0}".into(),
                    format!(
                        "{{effective={}, permitted={}, inheritable={}}}",
                        cap_set_notation(c.effective),
                        cap_set_notation(c.permitted),
                        cap_set_notation(c.inheritable)
                    ),
                ],
                0,
                note,
            )
        },
    )
}
