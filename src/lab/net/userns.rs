//! Root without root: `unshare(CLONE_NEWUSER)`, then the three writes
//! that make this user root inside — `/proc/self/uid_map` ("0 UID 1"),
//! `/proc/self/setgroups` ("deny", which an unprivileged process must
//! write before it may map its group) and `/proc/self/gid_map`. Inside,
//! the process has every capability, CAP_NET_ADMIN and CAP_NET_RAW among
//! them, but only over namespaces this user namespace owns: the network
//! namespaces made from here on. The host's own network stays out of reach.
//!
//! Where user namespaces are refused, the lab reads the settings that can
//! refuse them (traced) and names the one that did.
//! See <https://man7.org/linux/man-pages/man7/user_namespaces.7.html>.

use std::os::fd::AsFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;

use crate::error::{Error, Result, SysError};
use crate::sys::{file, ns};
use crate::trace::Recorder;

/// The ids to map: this user's, read before the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
}

impl Ids {
    /// The effective uid and gid of this process (no step: read in `plan`).
    pub fn current() -> Ids {
        Ids {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        }
    }
}

/// CAP_NET_ADMIN and CAP_SYS_ADMIN's bits (linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;

/// Whether this process may make network namespaces and configure them
/// itself (CAP_SYS_ADMIN and CAP_NET_ADMIN in its effective set), read
/// from /proc/self/status before the run (not a step).
pub fn privileged() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    eff & (1 << CAP_NET_ADMIN) != 0 && eff & (1 << CAP_SYS_ADMIN) != 0
}

/// Opens `path` for writing, writes `text`, closes it: three steps.
pub fn write_file(rec: &mut Recorder, path: &str, text: &str, note: &str) -> Result<()> {
    rec.note(note);
    let fd = file::openat(
        rec,
        Path::new(path),
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        None,
    )?;
    let written = file::write(rec, fd.as_fd(), text.as_bytes());
    file::close(rec, fd)?;
    written?;
    Ok(())
}

/// Reads a setting from /proc/sys with traced calls; None if absent.
fn read_setting(rec: &mut Recorder, path: &str) -> Option<String> {
    rec.note("one of the settings that decide whether this user may make user namespaces");
    rec.note_err("this kernel has no such setting");
    let fd = file::openat(
        rec,
        Path::new(path),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        None,
    )
    .ok()?;
    let mut buf = [0u8; 32];
    let n = file::read(rec, fd.as_fd(), &mut buf).ok();
    let _ = file::close(rec, fd);
    Some(String::from_utf8_lossy(&buf[..n?]).trim().to_string())
}

/// Why `unshare(CLONE_NEWUSER)` failed: the setting that refused it.
fn refusal(rec: &mut Recorder, e: SysError) -> Error {
    let max = read_setting(rec, "/proc/sys/user/max_user_namespaces");
    let clone = read_setting(rec, "/proc/sys/kernel/unprivileged_userns_clone");
    let apparmor = read_setting(
        rec,
        "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
    );
    let hint = if e.errno == Errno::ENOSPC && max.as_deref() == Some("0") {
        "user namespaces are refused by user.max_user_namespaces = 0 (/proc/sys/user/max_user_namespaces, \
         in this or a parent user namespace): an administrator can allow them with \
         `sysctl -w user.max_user_namespaces=10000`, or run ipclab with sudo"
            .to_string()
    } else if e.errno == Errno::ENOSPC {
        format!(
            "the user.max_user_namespaces limit ({}) is used up in this or a parent user namespace; run ipclab with sudo",
            max.unwrap_or_else(|| "?".into())
        )
    } else if clone.as_deref() == Some("0") {
        "user namespaces are refused by kernel.unprivileged_userns_clone = 0 (a Debian/Ubuntu setting): \
         `sudo sysctl -w kernel.unprivileged_userns_clone=1`, or run ipclab with sudo"
            .to_string()
    } else if apparmor.as_deref() == Some("1") {
        "user namespaces are restricted by AppArmor (kernel.apparmor_restrict_unprivileged_userns = 1): \
         run ipclab with sudo, or give it an AppArmor profile that allows userns"
            .to_string()
    } else if e.errno == Errno::EUSERS {
        "user namespaces are nested too deep here (32 at most); run ipclab with sudo".to_string()
    } else {
        format!(
            "user namespaces are refused here (user.max_user_namespaces = {}; no other setting says no): \
             a seccomp filter (inside a container) or a chroot refuses unshare; run ipclab with sudo",
            max.unwrap_or_else(|| "?".into())
        )
    };
    Error::SysHint(e, hint)
}

/// unshare(CLONE_NEWUSER | `more`) → uid_map → setgroups → gid_map.
/// `why` says why a user namespace is made (shown after the maps).
pub fn become_root(rec: &mut Recorder, ids: Ids, more: i32, why: &str) -> Result<()> {
    let also = if more & libc::CLONE_NEWNET != 0 {
        " — and a network namespace of its own, owned by it, with only lo (down)"
    } else {
        ""
    };
    rec.note_err("user namespaces are refused here; the lines below say by what");
    if let Err(e) = ns::unshare(
        rec,
        libc::CLONE_NEWUSER | more,
        &format!(
            "a user namespace of this process's own{also}: inside it the process has every capability, \
             but only over the namespaces this user namespace owns; its uid is unmapped (65534) until uid_map is written"
        ),
    ) {
        return Err(refusal(rec, e));
    }
    let Ids { uid, gid } = ids;
    write_file(
        rec,
        "/proc/self/uid_map",
        &format!("0 {uid} 1"),
        &format!("uid_map: uid 0 inside is uid {uid} outside — the only id an unprivileged process may map is its own"),
    )?;
    write_file(
        rec,
        "/proc/self/setgroups",
        "deny",
        "setgroups is denied in this namespace: the kernel insists on it before an unprivileged process maps its group (otherwise it could drop a group that denies it access)",
    )?;
    write_file(
        rec,
        "/proc/self/gid_map",
        &format!("0 {gid} 1"),
        &format!("gid_map: gid 0 inside is gid {gid} outside"),
    )?;
    rec.message(format!(
        "{why}: uid {uid} is root inside this user namespace, with CAP_NET_ADMIN and CAP_NET_RAW over its own network namespaces only — the host's network stays out of reach"
    ));
    Ok(())
}

/// `ipclab ping --userns` / `sniff --userns`, and the tour without
/// CAP_NET_RAW: a fresh user and network namespace, its loopback up
/// (socket → RTM_NEWLINK lo up → its ACK → close).
pub fn private_loopback(rec: &mut Recorder, ids: Ids, why: &str) -> Result<()> {
    become_root(rec, ids, libc::CLONE_NEWNET, why)?;
    let mut nl = super::rtnl::Rtnl::open(rec, "this namespace")?;
    let up = nl.request(
        rec,
        |seq| crate::packet::netlink::link_up(seq, "lo"),
        "`ip link set lo up`: a new network namespace's loopback starts down, and 127.0.0.1 does not answer until it is up",
    );
    let closed = nl.close(rec);
    up?;
    closed?;
    rec.message(
        "raw sockets work here: this network namespace has only lo (127.0.0.1 and ::1), and it belongs to this user",
    );
    Ok(())
}
