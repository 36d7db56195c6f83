//! Descriptors, pipes and the file system: pipe2, read, write, close, fcntl,
//! poll, openat, mknodat (mkfifo), mkdir, unlink, rmdir, newfstatat,
//! ftruncate.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{FcntlArg, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};

use crate::error::SysError;
use crate::trace::names::{self, quote};
use crate::trace::{Call, Recorder, Shown};

fn path_arg(p: &Path) -> String {
    quote_path(p)
}

/// A path as strace prints it: quoted, never cut.
pub fn quote_path(p: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    names::quote_max(p.as_os_str().as_bytes(), 4096)
}

/// Corresponds to `pipe(2)`, made as `pipe2(2)` with `flags`.
/// See <https://man7.org/linux/man-pages/man2/pipe.2.html>.
///
/// Returns `(read end, write end)`.
///
/// # Errors
/// `EMFILE`, `ENFILE`.
pub fn pipe2(rec: &mut Recorder, flags: OFlag) -> Result<(OwnedFd, OwnedFd), SysError> {
    let libc_name = if flags.is_empty() { "pipe" } else { "pipe2" };
    let call = Call::new("pipe2").libc(libc_name).changes_fds();
    rec.call(
        call,
        || nix::unistd::pipe2(flags),
        |r| {
            let (fds, note) = match r {
                Ok((rd, wr)) => (
                    format!("[{}, {}]", rd.as_raw_fd(), wr.as_raw_fd()),
                    format!(
                        "a pipe in kernel memory: fd {} is its read end, fd {} its write end",
                        rd.as_raw_fd(),
                        wr.as_raw_fd()
                    ),
                ),
                Err(_) => ("0x…".into(), String::new()),
            };
            let fl = if flags.is_empty() {
                "0".into()
            } else {
                names::open_flags(flags.bits()).replace("O_RDONLY|", "")
            };
            Shown::new(vec![fds, fl], 0, note)
        },
    )
}

/// Corresponds to `read(2)`. See <https://man7.org/linux/man-pages/man2/read.2.html>.
///
/// Returns the number of bytes read; 0 is end of file.
///
/// # Errors
/// `EAGAIN` (non-blocking, nothing there), `EINTR`, `EBADF`, `ECONNRESET`.
pub fn read(rec: &mut Recorder, fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, SysError> {
    let raw = fd.as_raw_fd();
    let call = Call::new("read").may_wait(raw.to_string(), "waiting for data");
    let len = buf.len();
    let ptr = buf.as_ptr();
    let pending = rec.begin(call);
    let r = nix::unistd::read(fd, &mut *buf);
    rec.end(pending, r, |r| {
        let (data, ret, note) = match r {
            Ok(0) => (
                "\"\"".to_string(),
                0,
                "0 bytes: end of file — every write end is closed".to_string(),
            ),
            Ok(n) => (
                quote(&buf[..*n]),
                *n as i64,
                format!("{} arrived", names::bytes(*n)),
            ),
            Err(_) => (crate::sys::ptr(ptr), -1, String::new()),
        };
        Shown::new(vec![raw.to_string(), data, len.to_string()], ret, note)
    })
}

/// Corresponds to `write(2)`. See <https://man7.org/linux/man-pages/man2/write.2.html>.
///
/// Returns the number of bytes written, which may be fewer than `data.len()`
/// on a non-blocking descriptor.
///
/// # Errors
/// `EAGAIN` (non-blocking, no room), `EPIPE` (no reader left), `EINTR`, `EBADF`.
pub fn write(rec: &mut Recorder, fd: BorrowedFd<'_>, data: &[u8]) -> Result<usize, SysError> {
    let raw = fd.as_raw_fd();
    let call = Call::new("write").may_wait(
        format!("{raw}, {}, {}", quote(data), data.len()),
        "waiting for room",
    );
    rec.call(
        call,
        || nix::unistd::write(fd, data),
        |r| {
            let (ret, note) = match r {
                Ok(n) if *n == data.len() => (
                    *n as i64,
                    format!("{} copied into the kernel", names::bytes(*n)),
                ),
                Ok(n) => (
                    *n as i64,
                    format!("short write: {n} of {} bytes fitted", data.len()),
                ),
                Err(_) => (-1, String::new()),
            };
            Shown::new(
                vec![raw.to_string(), quote(data), data.len().to_string()],
                ret,
                note,
            )
        },
    )
}

/// Announces a `write(2)` that may never return to this process, then makes
/// it. With no reader left the kernel fails the write with EPIPE and queues
/// SIGPIPE; the signal's default action kills the process on the way back to
/// user space, so nothing after the call could print its result. The step is
/// printed first, with strace's `= ?` (strace, watching from outside, shows
/// `= -1 EPIPE` and then `+++ killed by SIGPIPE +++`).
pub fn write_may_die(rec: &mut Recorder, fd: BorrowedFd<'_>, data: &[u8]) -> nix::Result<usize> {
    let raw = fd.as_raw_fd();
    let args = vec![raw.to_string(), quote(data), data.len().to_string()];
    let note = "no reader is left: the kernel fails this write with EPIPE and queues SIGPIPE, whose \
                default action kills this process before write() returns to it, so no result can be \
                printed here (strace shows -1 EPIPE, then +++ killed by SIGPIPE +++); see the parent's wait4";
    rec.call_unknown(Call::new("write"), args, note, || {
        nix::unistd::write(fd, data)
    })
}

/// Corresponds to `close(2)`. See <https://man7.org/linux/man-pages/man2/close.2.html>.
///
/// # Errors
/// `EBADF`, `EINTR`, `EIO`.
pub fn close(rec: &mut Recorder, fd: OwnedFd) -> Result<(), SysError> {
    let raw = fd.into_raw_fd();
    rec.call(
        Call::new("close").changes_fds(),
        || nix::unistd::close(raw),
        |_| {
            Shown::new(
                vec![raw.to_string()],
                0,
                format!("fd {raw} is closed and its number free again"),
            )
        },
    )
}

/// Corresponds to `fcntl(fd, F_GETPIPE_SZ)`: a pipe's capacity in bytes.
/// See <https://man7.org/linux/man-pages/man2/fcntl.2.html>.
pub fn fcntl_getpipe_sz(rec: &mut Recorder, fd: BorrowedFd<'_>) -> Result<usize, SysError> {
    let raw = fd.as_raw_fd();
    rec.call(
        Call::new("fcntl"),
        || nix::fcntl::fcntl(fd, FcntlArg::F_GETPIPE_SZ),
        |r| {
            let v = *r.as_ref().unwrap_or(&-1);
            Shown::new(
                vec![raw.to_string(), "F_GETPIPE_SZ".into()],
                i64::from(v),
                format!("the pipe holds {v} bytes"),
            )
        },
    )
    .map(|v| v as usize)
}

/// Corresponds to `fcntl(fd, F_GETFL)`: the open flags of a descriptor.
pub fn fcntl_getfl(rec: &mut Recorder, fd: BorrowedFd<'_>) -> Result<OFlag, SysError> {
    let raw = fd.as_raw_fd();
    rec.call(
        Call::new("fcntl"),
        || nix::fcntl::fcntl(fd, FcntlArg::F_GETFL),
        |r| {
            let v = *r.as_ref().unwrap_or(&-1);
            Shown::new(
                vec![raw.to_string(), "F_GETFL".into()],
                i64::from(v),
                "read the descriptor's flags",
            )
            .ret_note(format!("(flags {})", names::open_flags(v)))
        },
    )
    .map(OFlag::from_bits_retain)
}

/// Corresponds to `fcntl(fd, F_SETFL, flags)`: e.g. turn on O_NONBLOCK.
pub fn fcntl_setfl(rec: &mut Recorder, fd: BorrowedFd<'_>, flags: OFlag) -> Result<(), SysError> {
    let raw = fd.as_raw_fd();
    rec.call(
        Call::new("fcntl"),
        || nix::fcntl::fcntl(fd, FcntlArg::F_SETFL(flags)),
        |_| {
            let note = if flags.contains(OFlag::O_NONBLOCK) {
                "non-blocking: a call that would wait now fails with EAGAIN instead"
            } else {
                "blocking again: a call that cannot proceed now waits"
            };
            Shown::new(
                vec![
                    raw.to_string(),
                    "F_SETFL".into(),
                    names::open_flags(flags.bits()),
                ],
                0,
                note,
            )
        },
    )
    .map(|_| ())
}

/// Takes ownership of descriptor `fd`, inherited across execve, if it is an
/// open pipe (checked with fstat, not a step: this runs before the first).
pub fn adopt_pipe(fd: i32) -> Option<OwnedFd> {
    if fd < 3 {
        return None;
    }
    // SAFETY: an all-zero `stat` is a valid out-buffer; fstat on a number
    // that is not open fails with EBADF and touches nothing.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is live and writable.
    if unsafe { libc::fstat(fd, &raw mut st) } != 0 || st.st_mode & libc::S_IFMT != libc::S_IFIFO {
        return None;
    }
    // SAFETY: `fd` is open (fstat succeeded), is not stdin/out/err, and
    // nothing else in this process owns it: the parent run passed it down
    // for this one use.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Corresponds to `open(2)`, made as `openat(2)` relative to the working directory.
/// See <https://man7.org/linux/man-pages/man2/open.2.html>.
///
/// Opening a FIFO blocks until the other end is opened too, unless O_NONBLOCK.
///
/// # Errors
/// `ENOENT`, `EACCES`, `ELOOP` (a symlink under O_NOFOLLOW), `ENXIO`, `EINTR`.
pub fn openat(
    rec: &mut Recorder,
    path: &Path,
    flags: OFlag,
    waits_for: Option<&'static str>,
) -> Result<OwnedFd, SysError> {
    let fl = names::open_flags(flags.bits());
    let mut call = Call::new("openat").libc("open").changes_fds();
    if let Some(reason) = waits_for {
        call = call.waits(format!("AT_FDCWD, {}, {fl}", path_arg(path)), reason);
    }
    rec.call(
        call,
        || nix::fcntl::open(path, flags, Mode::empty()),
        |r| {
            let ret = r.as_ref().map_or(-1, |fd| i64::from(fd.as_raw_fd()));
            Shown::new(
                vec!["AT_FDCWD".into(), path_arg(path), fl.clone()],
                ret,
                format!("opened as fd {ret}"),
            )
        },
    )
}

/// Corresponds to `open(2)` with `O_CREAT`, made as `openat(2)`: `mode`
/// (less the umask) is the new file's permission bits.
/// See <https://man7.org/linux/man-pages/man2/open.2.html>.
///
/// # Errors
/// `EEXIST` (with `O_EXCL`), `ELOOP` (a symlink under `O_NOFOLLOW`),
/// `ENXIO` (a FIFO with no reader, under `O_NONBLOCK`), `EACCES`, `EISDIR`.
pub fn openat_mode(
    rec: &mut Recorder,
    path: &Path,
    flags: OFlag,
    mode: u32,
) -> Result<OwnedFd, SysError> {
    let fl = names::open_flags(flags.bits());
    rec.call(
        Call::new("openat").libc("open").changes_fds(),
        || nix::fcntl::open(path, flags, Mode::from_bits_truncate(mode)),
        |r| {
            let ret = r.as_ref().map_or(-1, |fd| i64::from(fd.as_raw_fd()));
            Shown::new(
                vec![
                    "AT_FDCWD".into(),
                    path_arg(path),
                    fl.clone(),
                    format!("{mode:04o}"),
                ],
                ret,
                if flags.contains(OFlag::O_EXCL) {
                    format!("a new file, opened as fd {ret}")
                } else {
                    format!("opened as fd {ret}")
                },
            )
        },
    )
}

/// Corresponds to `ftruncate(2)`: cut (or extend) the open file to `len` bytes.
/// See <https://man7.org/linux/man-pages/man2/ftruncate.2.html>.
///
/// # Errors
/// `EINVAL` (not a regular file open for writing), `EBADF`, `EFBIG`.
pub fn ftruncate(rec: &mut Recorder, fd: BorrowedFd<'_>, len: u64) -> Result<(), SysError> {
    let raw = fd.as_raw_fd();
    rec.call(
        Call::new("ftruncate"),
        || nix::unistd::ftruncate(fd, len as libc::off_t),
        |_| {
            Shown::new(
                vec![raw.to_string(), len.to_string()],
                0,
                format!("the file is now {len} bytes long"),
            )
        },
    )
}

/// Corresponds to `mkfifo(3)`, which glibc makes as `mknodat(2)` with S_IFIFO.
/// See <https://man7.org/linux/man-pages/man3/mkfifo.3.html>.
///
/// # Errors
/// `EEXIST`, `ENOENT` (no such directory), `EACCES`.
pub fn mkfifo(rec: &mut Recorder, path: &Path, mode: u32) -> Result<(), SysError> {
    let m = Mode::from_bits_truncate(mode);
    rec.call(
        Call::new("mknodat").libc("mkfifo"),
        || nix::unistd::mkfifo(path, m),
        |_| {
            Shown::new(
                vec![
                    "AT_FDCWD".into(),
                    path_arg(path),
                    names::file_mode(libc::S_IFIFO | mode),
                ],
                0,
                "a FIFO (named pipe) now exists in the file system; no data lives there",
            )
        },
    )
}

/// Corresponds to `mkdir(2)`. See <https://man7.org/linux/man-pages/man2/mkdir.2.html>.
///
/// # Errors
/// `EEXIST`, `ENOENT`, `EACCES`.
pub fn mkdir(rec: &mut Recorder, path: &Path, mode: u32) -> Result<(), SysError> {
    let m = Mode::from_bits_truncate(mode);
    rec.call(
        Call::new("mkdir"),
        || nix::unistd::mkdir(path, m),
        |_| {
            Shown::new(
                vec![path_arg(path), format!("{mode:04o}")],
                0,
                "a private directory only this user can enter",
            )
        },
    )
}

/// Corresponds to `unlink(2)`. See <https://man7.org/linux/man-pages/man2/unlink.2.html>.
///
/// # Errors
/// `ENOENT`, `EACCES`, `EISDIR`.
pub fn unlink(rec: &mut Recorder, path: &Path) -> Result<(), SysError> {
    rec.call(
        Call::new("unlink"),
        || nix::unistd::unlink(path),
        |_| Shown::new(vec![path_arg(path)], 0, "the name is gone"),
    )
}

/// Corresponds to `rmdir(2)`. See <https://man7.org/linux/man-pages/man2/rmdir.2.html>.
///
/// # Errors
/// `ENOTEMPTY`, `ENOENT`.
pub fn rmdir(rec: &mut Recorder, path: &Path) -> Result<(), SysError> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| SysError {
        call: "rmdir",
        errno: nix::errno::Errno::EINVAL,
    })?;
    rec.call(
        Call::new("rmdir"),
        || {
            // SAFETY: `c` is a NUL-terminated path that outlives the call.
            let rc = unsafe { libc::rmdir(c.as_ptr()) };
            nix::errno::Errno::result(rc).map(|_| ())
        },
        |_| Shown::new(vec![path_arg(path)], 0, "the directory is removed"),
    )
}

fn stat_notation(st: &FileStat) -> String {
    format!(
        "{{st_mode={}, st_size={}, …}}",
        names::file_mode(st.st_mode),
        st.st_size
    )
}

/// Corresponds to `lstat(2)`, made as `newfstatat(AT_FDCWD, path, …, AT_SYMLINK_NOFOLLOW)`:
/// what is at `path`, without following a symlink.
/// See <https://man7.org/linux/man-pages/man2/stat.2.html>.
///
/// # Errors
/// `ENOENT`, `EACCES`, `ENOTDIR`.
pub fn lstat(rec: &mut Recorder, path: &Path) -> Result<FileStat, SysError> {
    let flags = nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW;
    let call = Call::new("newfstatat").libc("fstatat");
    rec.call(
        call,
        || nix::sys::stat::fstatat(nix::fcntl::AT_FDCWD, path, flags),
        |r| {
            let st = r.as_ref().map_or("0x…".to_string(), stat_notation);
            let note = match r {
                Ok(st) => format!(
                    "{} is {}",
                    names::printable(path.as_os_str().as_encoded_bytes()),
                    kind_text(st.st_mode)
                ),
                Err(_) => String::new(),
            };
            Shown::new(
                vec![
                    "AT_FDCWD".into(),
                    path_arg(path),
                    st,
                    "AT_SYMLINK_NOFOLLOW".into(),
                ],
                0,
                note,
            )
        },
    )
}

/// Corresponds to `fstat(2)`, made as `newfstatat(fd, "", …, AT_EMPTY_PATH)`:
/// what an open descriptor refers to.
pub fn fstat(rec: &mut Recorder, fd: BorrowedFd<'_>) -> Result<FileStat, SysError> {
    let raw = fd.as_raw_fd();
    let call = Call::new("newfstatat").libc("fstatat");
    let flags = nix::fcntl::AtFlags::AT_EMPTY_PATH;
    rec.call(
        call,
        || nix::sys::stat::fstatat(fd.as_fd(), "", flags),
        |r| {
            let st = r.as_ref().map_or("0x…".to_string(), stat_notation);
            let note = match r {
                Ok(st) => format!("fd {raw} is {}", kind_text(st.st_mode)),
                Err(_) => String::new(),
            };
            Shown::new(
                vec![raw.to_string(), "\"\"".into(), st, "AT_EMPTY_PATH".into()],
                0,
                note,
            )
        },
    )
}

/// A person's name for the file type in `mode`.
pub fn kind_text(mode: u32) -> &'static str {
    match SFlag::from_bits_truncate(mode & libc::S_IFMT) {
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFREG => "a regular file",
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFLNK => "a symbolic link",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        _ => "something else",
    }
}
