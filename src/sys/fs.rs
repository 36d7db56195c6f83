//! Durable files: openat with O_CREAT (and a mode), fsync, rename — the
//! write-a-new-file, sync it, rename it over the old one sequence that makes
//! a file's new content survive a crash whole or not at all.
//!
//! Why the three: `write` only copies bytes into the page cache, which a
//! power cut loses; `fsync` returns once the file's data and metadata are on
//! the device. Writing in place could leave half a file behind, so the new
//! content goes to a new name and `rename` swaps it in: POSIX makes the
//! replacement atomic, every reader sees the old file or the new one. The
//! rename itself is a change to the directory, which is durable once the
//! directory is synced too (`fsync` on a descriptor of the directory).
//! See <https://man7.org/linux/man-pages/man2/fsync.2.html> and
//! <https://man7.org/linux/man-pages/man2/rename.2.html>.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::error::SysError;
use crate::sys::file::quote_path;
use crate::trace::names;
use crate::trace::{Call, Recorder, Shown};

/// Corresponds to `open(2)` with `O_CREAT`, made as `openat(2)` relative to
/// the working directory: strace then shows the mode as a fourth argument.
/// See <https://man7.org/linux/man-pages/man2/open.2.html>.
///
/// # Errors
/// `EEXIST` (with `O_EXCL`: the name is taken), `ELOOP` (a symlink under
/// `O_NOFOLLOW`), `ENOENT` (no such directory), `EACCES`, `ENOSPC`.
pub fn openat_create(
    rec: &mut Recorder,
    path: &Path,
    flags: OFlag,
    mode: u32,
) -> Result<OwnedFd, SysError> {
    let flags = flags | OFlag::O_CREAT;
    let fl = names::open_flags(flags.bits());
    rec.call(
        Call::new("openat").libc("open").changes_fds(),
        || nix::fcntl::open(path, flags, Mode::from_bits_truncate(mode)),
        |r| {
            let ret = r.as_ref().map_or(-1, |fd| i64::from(fd.as_raw_fd()));
            Shown::new(
                vec![
                    "AT_FDCWD".into(),
                    quote_path(path),
                    fl.clone(),
                    format!("{mode:04o}"),
                ],
                ret,
                format!("a new file, opened as fd {ret}"),
            )
        },
    )
}

/// Corresponds to `fsync(2)`: returns once the data and metadata of `fd`
/// (a file, or a directory's entries) are on the storage device.
/// See <https://man7.org/linux/man-pages/man2/fsync.2.html>.
///
/// # Errors
/// `EIO` (the device failed: the data may be lost), `ENOSPC`, `EBADF`,
/// `EINVAL` (a descriptor that cannot be synced, a pipe or a socket).
pub fn fsync(rec: &mut Recorder, fd: BorrowedFd<'_>) -> Result<(), SysError> {
    let raw = fd.as_raw_fd();
    rec.call(
        Call::new("fsync"),
        || nix::unistd::fsync(fd),
        |_| {
            Shown::new(
                vec![raw.to_string()],
                0,
                format!("what fd {raw} holds is on the device now, not only in the page cache"),
            )
        },
    )
}

/// Corresponds to `rename(2)`: `to` now names what `from` named; a file
/// already at `to` is replaced in one step, so every reader sees either the
/// old file or the new one. A symlink at `to` is replaced, never followed.
/// See <https://man7.org/linux/man-pages/man2/rename.2.html>.
///
/// # Errors
/// `ENOENT`, `EACCES`, `EXDEV` (another file system), `EISDIR`, `ENOTDIR`.
pub fn rename(rec: &mut Recorder, from: &Path, to: &Path) -> Result<(), SysError> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(|_| SysError {
            call: "rename",
            errno: nix::errno::Errno::EINVAL,
        })
    };
    let (cf, ct) = (c(from)?, c(to)?);
    rec.call(
        Call::new("rename"),
        || {
            // glibc's rename() is the rename syscall on x86-64 (what strace
            // shows); nix offers only renameat.
            // SAFETY: both are NUL-terminated paths that outlive the call.
            let rc = unsafe { libc::rename(cf.as_ptr(), ct.as_ptr()) };
            nix::errno::Errno::result(rc).map(drop)
        },
        |_| {
            Shown::new(
                vec![quote_path(from), quote_path(to)],
                0,
                "the new file replaces the old one in one atomic step",
            )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{Recorder, TraceOptions};

    #[test]
    fn create_sync_rename_keeps_the_content() {
        let mut rec = Recorder::new(TraceOptions {
            json: true,
            quiet: true,
            fds: false,
            step: false,
            color: false,
            ..Default::default()
        });
        let dir = std::env::temp_dir().join(format!("ipclab-fs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let tmp = dir.join("a.tmp");
        let to = dir.join("a");
        let fd = openat_create(
            &mut rec,
            &tmp,
            OFlag::O_WRONLY | OFlag::O_EXCL | OFlag::O_CLOEXEC,
            0o600,
        )
        .expect("create");
        crate::sys::file::write(&mut rec, std::os::fd::AsFd::as_fd(&fd), b"x").expect("write");
        fsync(&mut rec, std::os::fd::AsFd::as_fd(&fd)).expect("fsync");
        crate::sys::file::close(&mut rec, fd).expect("close");
        rename(&mut rec, &tmp, &to).expect("rename");
        assert_eq!(std::fs::read(&to).expect("read"), b"x");
        assert!(!tmp.exists());
        let again = openat_create(&mut rec, &to, OFlag::O_WRONLY | OFlag::O_EXCL, 0o600);
        assert_eq!(again.expect_err("taken").errno, nix::errno::Errno::EEXIST);
        std::fs::remove_dir_all(&dir).expect("clean");
    }
}
