//! Shared memory: shm_open (an `openat` under /dev/shm), memfd_create,
//! ftruncate, mmap, munmap, shm_unlink (an `unlink`), and futex — the one
//! call two processes that share memory still make, to sleep until the
//! other has written and to wake it.
//!
//! glibc's `shm_open(3)` is not a syscall: it puts "/dev/shm/" in front of
//! the name and calls `openat(2)` with `O_NOFOLLOW|O_CLOEXEC` added to the
//! flags given; `shm_unlink(3)` is `unlink(2)` on the same path. strace
//! shows those, and so does ipclab (with `shm_open`/`shm_unlink` as the libc
//! names). glibc has no `futex()` function at all: C programs call
//! `syscall(SYS_futex, …)`, the libc name recorded here.
//!
//! A [`Mapping`] is a `MAP_SHARED` region that another process may be
//! writing at the same moment, so it is only ever handed out as atomics
//! (`AtomicU32` words, `AtomicU8` bytes): loads and stores on it are then
//! well-defined whatever the other side does. It is unmapped only through a
//! recorded [`munmap`]; dropping it without one leaves the memory mapped
//! until the process ends (never a silent, untraced munmap).
//! See <https://man7.org/linux/man-pages/man7/shm_overview.7.html>.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU8};
use std::time::Duration;

use nix::errno::Errno;

use crate::error::SysError;
use crate::trace::names::quote;
use crate::trace::{Call, Recorder, Shown};

/// Where glibc keeps POSIX shared-memory objects (a tmpfs).
pub const SHM_DIR: &str = "/dev/shm";

/// The path glibc's `shm_open(NAME)` opens: `/dev/shm/NAME`.
pub fn shm_path(name: &str) -> String {
    format!("{SHM_DIR}/{name}")
}

fn c_name(name: &str, call: &'static str) -> Result<CString, SysError> {
    CString::new(format!("/{name}")).map_err(|_| SysError {
        call,
        errno: Errno::EINVAL,
    })
}

/// Corresponds to `shm_open(3)` with `O_RDWR|O_CREAT|O_EXCL` and mode
/// 0600: a new shared-memory object `name` (no slash; glibc adds "/dev/shm/"),
/// which glibc makes as `openat(AT_FDCWD, "/dev/shm/NAME",
/// O_RDWR|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC, 0600)`. With `O_EXCL` an
/// existing name (a file, a symlink) is never opened: the call fails.
/// See <https://man7.org/linux/man-pages/man3/shm_open.3.html>.
///
/// # Errors
/// `EEXIST` (the name is taken), `EACCES`, `EINVAL` (a bad name),
/// `ENAMETOOLONG`, `EMFILE`.
pub fn shm_open(rec: &mut Recorder, name: &str) -> Result<OwnedFd, SysError> {
    let c = c_name(name, "openat")?;
    let path = shm_path(name);
    rec.call(
        Call::new("openat").libc("shm_open").changes_fds(),
        || {
            // SAFETY: `c` is a NUL-terminated name that outlives the call;
            // shm_open returns a new descriptor or -1 and keeps no pointer.
            let fd = unsafe {
                libc::shm_open(
                    c.as_ptr(),
                    libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
                    0o600,
                )
            };
            Errno::result(fd).map(|fd| {
                // SAFETY: `fd` was just returned by shm_open and nothing else owns it.
                unsafe { OwnedFd::from_raw_fd(fd) }
            })
        },
        |r| {
            let ret = r.as_ref().map_or(-1, |fd| i64::from(fd.as_raw_fd()));
            let mut shown = Shown::new(
                vec![
                    "AT_FDCWD".into(),
                    quote_path(&path),
                    "O_RDWR|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC".into(),
                    "0600".into(),
                ],
                ret,
                format!("a new shared-memory object as fd {ret}: a file in the tmpfs at {SHM_DIR}, 0 bytes long"),
            );
            if matches!(r, Err(Errno::EEXIST)) {
                shown = shown.err_note(format!(
                    "{path} exists already (a file, or a symlink: O_CREAT|O_EXCL never follows one): the kernel refuses to open it, so what is there stays untouched"
                ));
            }
            shown
        },
    )
}

/// Corresponds to `shm_unlink(3)`, which glibc makes as
/// `unlink("/dev/shm/NAME")`: the name goes; the memory lives on while
/// anything still maps it or holds it open.
/// See <https://man7.org/linux/man-pages/man3/shm_unlink.3.html>.
///
/// # Errors
/// `ENOENT`, `EACCES`.
pub fn shm_unlink(rec: &mut Recorder, name: &str) -> Result<(), SysError> {
    let c = c_name(name, "unlink")?;
    let path = shm_path(name);
    rec.call(
        Call::new("unlink").libc("shm_unlink"),
        || {
            // SAFETY: `c` is a NUL-terminated name that outlives the call.
            Errno::result(unsafe { libc::shm_unlink(c.as_ptr()) }).map(drop)
        },
        |_| {
            Shown::new(
                vec![quote_path(&path)],
                0,
                "the shared-memory object's name is removed",
            )
        },
    )
}

fn quote_path(p: &str) -> String {
    crate::trace::names::quote_max(p.as_bytes(), 4096)
}

/// Corresponds to `memfd_create(2)` with `MFD_CLOEXEC`: an anonymous file
/// in memory, reachable only through descriptors and mappings — no name in
/// any directory (`name` only labels it in /proc/PID/fd and maps).
/// See <https://man7.org/linux/man-pages/man2/memfd_create.2.html>.
///
/// # Errors
/// `EMFILE`, `ENOMEM`, `EINVAL` (a name over 249 bytes).
pub fn memfd_create(rec: &mut Recorder, name: &str) -> Result<OwnedFd, SysError> {
    let c = CString::new(name).map_err(|_| SysError {
        call: "memfd_create",
        errno: Errno::EINVAL,
    })?;
    rec.call(
        Call::new("memfd_create").changes_fds(),
        || {
            // SAFETY: `c` is a NUL-terminated name that outlives the call;
            // memfd_create returns a new descriptor or -1.
            let fd = unsafe { libc::memfd_create(c.as_ptr(), libc::MFD_CLOEXEC) };
            Errno::result(fd).map(|fd| {
                // SAFETY: `fd` was just returned by memfd_create and nothing else owns it.
                unsafe { OwnedFd::from_raw_fd(fd) }
            })
        },
        |r| {
            let ret = r.as_ref().map_or(-1, |fd| i64::from(fd.as_raw_fd()));
            Shown::new(
                vec![quote(name.as_bytes()), "MFD_CLOEXEC".into()],
                ret,
                format!("fd {ret} is an anonymous file in memory, 0 bytes long, with no name in any directory"),
            )
        },
    )
}

/// Corresponds to `ftruncate(2)`: sets the file's size to `len` bytes (new
/// bytes read as zeros). A new shared-memory object is 0 bytes long; mapping
/// past its end would fault with SIGBUS.
/// See <https://man7.org/linux/man-pages/man2/ftruncate.2.html>.
///
/// # Errors
/// `EINVAL`, `EBADF`, `EFBIG`.
pub fn ftruncate(rec: &mut Recorder, fd: BorrowedFd<'_>, len: usize) -> Result<(), SysError> {
    let raw = fd.as_raw_fd();
    rec.call(
        Call::new("ftruncate"),
        || nix::unistd::ftruncate(fd, len as libc::off_t),
        |_| {
            Shown::new(
                vec![raw.to_string(), len.to_string()],
                0,
                format!("fd {raw} is now {len} bytes long, all zero"),
            )
        },
    )
}

/// A `MAP_SHARED` mapping made by [`mmap_shared`]: its bytes are the
/// file's, and every process that maps the file sees every store at once.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<libc::c_void>,
    len: usize,
}

impl Mapping {
    /// The address the kernel chose, as strace prints it.
    pub fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The mapping's first byte, for the bench's ring buffers (`sys::fast`).
    pub(super) fn base(&self) -> *mut u8 {
        self.ptr.as_ptr().cast()
    }

    /// The 32-bit word at `offset` (a multiple of 4 inside the mapping).
    ///
    /// # Panics
    /// When `offset` is not aligned or not inside the mapping.
    pub fn word(&self, offset: usize) -> &AtomicU32 {
        assert!(
            offset % 4 == 0 && offset + 4 <= self.len,
            "word at {offset} outside the {}-byte mapping",
            self.len
        );
        // SAFETY: the mapping is page-aligned, so `offset` (a multiple of 4)
        // is 4-byte aligned, and `offset + 4 <= len` keeps the word inside
        // it. It stays mapped while `self` is borrowed (munmap takes `self`
        // by value). AtomicU32 has u32's layout, and the other processes
        // sharing the page only change it atomically (or through the
        // kernel's futex), so an `&AtomicU32` to it is sound.
        unsafe {
            &*self
                .ptr
                .as_ptr()
                .cast::<u8>()
                .add(offset)
                .cast::<AtomicU32>()
        }
    }

    /// The mapping's bytes, each an atomic (another process may store to
    /// them at any moment).
    pub fn bytes(&self) -> &[AtomicU8] {
        // SAFETY: `ptr` is valid for `len` bytes while `self` is borrowed
        // (munmap takes `self` by value); AtomicU8 has u8's layout and
        // alignment, and concurrent stores by other processes are atomic
        // byte accesses, which `&[AtomicU8]` allows.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast::<AtomicU8>(), self.len) }
    }
}

/// Corresponds to `mmap(2)` with `NULL, len, PROT_READ|PROT_WRITE,
/// MAP_SHARED, fd, 0`: maps the first `len` bytes of the file behind `fd`
/// into this process. Stores to the mapping go to the file's pages, which
/// every process mapping it sees — a forked child inherits the mapping.
/// See <https://man7.org/linux/man-pages/man2/mmap.2.html>.
///
/// # Errors
/// `EACCES` (fd not open for reading and writing), `EINVAL`, `ENOMEM`, `ENODEV`.
pub fn mmap_shared(
    rec: &mut Recorder,
    fd: BorrowedFd<'_>,
    len: usize,
) -> Result<Mapping, SysError> {
    let raw = fd.as_raw_fd();
    rec.call(
        Call::new("mmap").changes_fds(),
        || {
            // SAFETY: a NULL hint lets the kernel pick a fresh range, so the
            // new mapping replaces nothing of ours; `raw` is an open
            // descriptor borrowed for the call.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    raw,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                return Err(Errno::last());
            }
            NonNull::new(p).map(|ptr| Mapping { ptr, len }).ok_or(Errno::EINVAL)
        },
        |r| {
            let ret = r.as_ref().map_or(-1, |m| m.addr() as i64);
            let mut shown = Shown::new(
                vec![
                    "NULL".into(),
                    len.to_string(),
                    "PROT_READ|PROT_WRITE".into(),
                    "MAP_SHARED".into(),
                    raw.to_string(),
                    "0".into(),
                ],
                ret,
                format!("{len} bytes of fd {raw} now appear at {ret:#x} in this process; a store there changes the file itself"),
            );
            if r.is_ok() {
                shown = shown.hex();
            }
            shown
        },
    )
}

/// Corresponds to `munmap(2)`: removes the mapping from this process (other
/// processes keep theirs). See <https://man7.org/linux/man-pages/man2/munmap.2.html>.
///
/// # Errors
/// `EINVAL`.
pub fn munmap(rec: &mut Recorder, m: Mapping) -> Result<(), SysError> {
    let (ptr, len) = (m.ptr, m.len);
    let addr = m.addr();
    rec.call(
        Call::new("munmap").changes_fds(),
        || {
            // SAFETY: `ptr`/`len` are exactly a mapping mmap returned, and
            // `m` is consumed: no reference into it can outlive this call.
            Errno::result(unsafe { libc::munmap(ptr.as_ptr(), len) }).map(drop)
        },
        |_| {
            Shown::new(
                vec![format!("{addr:#x}"), len.to_string()],
                0,
                "the mapping is gone from this process",
            )
        },
    )
}

fn timespec_notation(d: Option<Duration>) -> String {
    d.map_or("NULL".to_string(), |d| {
        format!("{{tv_sec={}, tv_nsec={}}}", d.as_secs(), d.subsec_nanos())
    })
}

/// Corresponds to `futex(2)` with `FUTEX_WAIT`: sleeps while `*word` equals
/// `expected`, until a `FUTEX_WAKE` on the same word, `timeout` (relative),
/// or a signal. The kernel compares the value and goes to sleep in one
/// step, so a wake between our check and the call is never lost: then the
/// value differs and the call returns EAGAIN at once. Not
/// `FUTEX_PRIVATE_FLAG`: the word is in memory shared between processes,
/// and the kernel must key the wait on the page, not on this process.
/// See <https://man7.org/linux/man-pages/man2/futex.2.html>.
///
/// It cannot be a ppoll, so a lab makes it inside
/// [`super::signal::interruptible`] to let Ctrl-C end it.
///
/// # Errors
/// `EAGAIN` (the word no longer held `expected`), `ETIMEDOUT`, `EINTR`.
pub fn futex_wait(
    rec: &mut Recorder,
    word: &AtomicU32,
    expected: u32,
    timeout: Option<Duration>,
) -> Result<(), SysError> {
    let addr = std::ptr::from_ref(word) as usize;
    let t = timespec_notation(timeout);
    let call = Call::new("futex").libc("syscall").waits(
        format!("{addr:#x}, FUTEX_WAIT, {expected}, {t}"),
        "waiting for a FUTEX_WAKE",
    );
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos().into(),
    });
    rec.call(
        call,
        || {
            let tp = ts.as_ref().map_or(std::ptr::null(), std::ptr::from_ref);
            // SAFETY: `word` is a live, aligned u32 (an AtomicU32) for the
            // length of the call; `tp` is NULL or a timespec that outlives
            // it. FUTEX_WAIT only reads both.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    word.as_ptr(),
                    libc::FUTEX_WAIT,
                    expected,
                    tp,
                    std::ptr::null::<u32>(),
                    0u32,
                )
            };
            Errno::result(r).map(drop)
        },
        |r| {
            let shown = Shown::new(
                vec![
                    format!("{addr:#x}"),
                    "FUTEX_WAIT".into(),
                    expected.to_string(),
                    t.clone(),
                ],
                0,
                "woken by a FUTEX_WAKE on this word",
            );
            match r {
                Err(Errno::EAGAIN) => shown.err_note(format!(
                    "the word no longer held {expected} when the kernel looked: the other side had already changed it, so there is nothing to wait for (this is why FUTEX_WAIT takes the value expected)"
                )),
                Err(Errno::ETIMEDOUT) => shown.err_note("no FUTEX_WAKE came before the timeout"),
                _ => shown,
            }
        },
    )
}

/// Corresponds to `futex(2)` with `FUTEX_WAKE`: wakes at most `n` of the
/// processes sleeping in `FUTEX_WAIT` on `word`. Returns how many it woke
/// (0 when nobody was waiting yet: the waiter will see the new value).
/// See <https://man7.org/linux/man-pages/man2/futex.2.html>.
///
/// # Errors
/// `EINVAL`, `EFAULT`.
pub fn futex_wake(rec: &mut Recorder, word: &AtomicU32, n: i32) -> Result<usize, SysError> {
    let addr = std::ptr::from_ref(word) as usize;
    rec.call(
        Call::new("futex").libc("syscall"),
        || {
            // SAFETY: `word` is a live, aligned u32 for the call; FUTEX_WAKE
            // reads no other argument.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    word.as_ptr(),
                    libc::FUTEX_WAKE,
                    n,
                    std::ptr::null::<libc::timespec>(),
                    std::ptr::null::<u32>(),
                    0u32,
                )
            };
            Errno::result(r).map(|v| v as usize)
        },
        |r| {
            let woke = *r.as_ref().unwrap_or(&0);
            let note = match woke {
                0 => "nobody was asleep on this word yet: whoever comes will see the new value and not sleep".to_string(),
                1 => "one sleeper woken".to_string(),
                n => format!("{n} sleepers woken"),
            };
            Shown::new(
                vec![format!("{addr:#x}"), "FUTEX_WAKE".into(), n.to_string()],
                woke as i64,
                note,
            )
        },
    )
}
