//! Under sudo, give root back once the privileged socket is open, as
//! iputils ping does: setgroups → setresgid → setresuid, then *verify* with
//! getresuid, getresgid and capget, and refuse to go on if any privilege is
//! left.
//!
//! Order matters: groups first (setgroups needs CAP_SETGID), then the group
//! ids, then the user ids last — after setresuid to a non-root user the
//! process has no capability left to change anything else. Setting all
//! three ids (real, effective, saved) means root cannot be taken back.

use crate::error::{Error, Result};
use crate::sys::creds;
use crate::trace::Recorder;

/// Whom `sudo` ran ipclab for, from SUDO_UID and SUDO_GID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SudoUser {
    pub uid: u32,
    pub gid: u32,
}

/// Reads SUDO_UID and SUDO_GID: None when neither is set; an error (bad
/// input, exit 2) when only one is, or when either is not a usable id.
/// 4294967295 is (uid_t)-1, which setresuid reads as "leave unchanged": it
/// would drop nothing.
pub fn sudo_user() -> Result<Option<SudoUser>> {
    sudo_user_from(std::env::var_os("SUDO_UID"), std::env::var_os("SUDO_GID"))
}

fn sudo_user_from(
    uid: Option<std::ffi::OsString>,
    gid: Option<std::ffi::OsString>,
) -> Result<Option<SudoUser>> {
    let parse = |name: &str, v: &std::ffi::OsStr| -> Result<u32> {
        match v.to_str().and_then(|s| s.parse::<u32>().ok()) {
            Some(n) if n != u32::MAX => Ok(n),
            _ => Err(Error::usage(format!(
                "{name}={} is not a user or group id (0 to 4294967294); ipclab will not guess whom to drop root to",
                v.to_string_lossy()
            ))),
        }
    };
    match (uid, gid) {
        (None, None) => Ok(None),
        (Some(u), Some(g)) => Ok(Some(SudoUser {
            uid: parse("SUDO_UID", &u)?,
            gid: parse("SUDO_GID", &g)?,
        })),
        (Some(_), None) => Err(Error::usage(
            "SUDO_UID is set but SUDO_GID is not: set both (as sudo does) or neither",
        )),
        (None, Some(_)) => Err(Error::usage(
            "SUDO_GID is set but SUDO_UID is not: set both (as sudo does) or neither",
        )),
    }
}

/// Under sudo (root, with SUDO_UID/SUDO_GID set), gives root back and
/// checks that nothing of it is left. Does nothing otherwise.
pub fn drop(rec: &mut Recorder, what: &str) -> Result<()> {
    let Some(to) = sudo_user()? else {
        return Ok(());
    };
    let (uid, gid) = (to.uid, to.gid);
    let euid = creds::geteuid(rec, |e| {
        if e == 0 {
            format!("root, started by sudo for uid {uid}: {what} is open, so root goes now, before any packet")
        } else {
            "not root: SUDO_UID is set but there is nothing to give back".into()
        }
    })?;
    if !euid.is_root() {
        return Ok(());
    }
    creds::setgroups_empty(rec, "no supplementary groups: root's group list is dropped first, while CAP_SETGID is still ours")?;
    creds::setresgid(
        rec,
        gid,
        "real, effective and saved gid all become SUDO_GID: no way back to gid 0",
    )?;
    creds::setresuid(
        rec,
        uid,
        "real, effective and saved uid all become SUDO_UID; the kernel clears every capability with it",
    )?;
    // Verify, never assume: what the kernel says now.
    let uids = creds::getresuid(rec)?;
    let gids = creds::getresgid(rec)?;
    let caps = creds::capget(rec)?;
    let mut left = Vec::new();
    if uids != (uid, uid, uid) {
        left.push(format!("uids are {}, {}, {}", uids.0, uids.1, uids.2));
    }
    if gids != (gid, gid, gid) {
        left.push(format!("gids are {}, {}, {}", gids.0, gids.1, gids.2));
    }
    if uid != 0 && !caps.is_empty() {
        left.push(format!(
            "{} remain in the permitted set (see the capget step)",
            creds::cap_summary(caps.permitted | caps.effective)
        ));
    }
    if !left.is_empty() {
        return Err(Error::protocol(format!(
            "the drop to uid {uid} gid {gid} did not take: {}; refusing to go on with privileges",
            left.join("; ")
        )));
    }
    rec.message(format!(
        "running as uid {uid} gid {gid} now, checked: no capability is left; the open socket keeps working: privilege is checked when a socket is created, not when it is used"
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> Option<std::ffi::OsString> {
        Some(s.into())
    }

    #[test]
    fn sudo_environment_is_checked() {
        assert_eq!(sudo_user_from(None, None).ok(), Some(None));
        assert_eq!(
            sudo_user_from(os("1000"), os("1000")).ok(),
            Some(Some(SudoUser {
                uid: 1000,
                gid: 1000
            }))
        );
        for (u, g) in [
            (os("4294967295"), os("4294967295")),
            (os("1000"), None),
            (None, os("1000")),
            (os("-1"), os("1000")),
            (os("bob"), os("1000")),
        ] {
            let r = sudo_user_from(u.clone(), g.clone());
            assert!(
                matches!(r, Err(Error::Usage(_))),
                "{u:?} {g:?} must be refused"
            );
        }
    }
}
