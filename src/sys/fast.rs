//! The measured loops of `ipclab bench`: the same syscalls as the labs make,
//! *without* the recorder — nothing in a measured loop formats or records a
//! step (tracing is for the labs; `bench trace` measures what it costs).
//! Every function here is one syscall and nothing else. The bench's set-up
//! (sockets, fork, pinning) goes through the traced wrappers as usual.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::mem::Mapping;

use nix::errno::Errno;

/// Whether a stop signal (Ctrl-C) has come. The bench lets the stop
/// signals in around its loops: a blocked call returns EINTR and the loop
/// ends; a loop also checks between batches, since a signal that came just
/// before a blocking call did not interrupt it.
pub fn stopping() -> bool {
    crate::os::stop_pending().is_some()
}

/// One `read(2)`; EINTR is retried unless a stop signal came.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
    loop {
        // SAFETY: `buf` is a live, writable buffer of `buf.len()` bytes.
        let r = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match Errno::result(r) {
            // A signal other than a stop (none is expected): the call again.
            Err(Errno::EINTR) if !stopping() => continue,
            r => return r.map(|n| n as usize),
        }
    }
}

/// One `write(2)`; EINTR is retried unless a stop signal came.
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> Result<usize, Errno> {
    loop {
        // SAFETY: `buf` is a live buffer of `buf.len()` bytes the kernel only reads.
        let r = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
        match Errno::result(r) {
            // A signal other than a stop (none is expected): the call again.
            Err(Errno::EINTR) if !stopping() => continue,
            r => return r.map(|n| n as usize),
        }
    }
}

/// Reads exactly `buf.len()` bytes (a stream may deliver them in pieces).
/// Returns false at EOF before the first byte.
pub fn read_exact(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<bool, Errno> {
    let mut off = 0;
    while off < buf.len() {
        let n = read(fd, &mut buf[off..])?;
        if n == 0 {
            if off == 0 {
                return Ok(false);
            }
            return Err(Errno::EPIPE);
        }
        off += n;
    }
    Ok(true)
}

/// Writes all of `buf`.
pub fn write_all(fd: BorrowedFd<'_>, buf: &[u8]) -> Result<(), Errno> {
    let mut off = 0;
    while off < buf.len() {
        off += write(fd, &buf[off..])?;
    }
    Ok(())
}

/// One `epoll_wait(2)` into `out`; returns how many events.
pub fn epoll_wait(
    ep: BorrowedFd<'_>,
    out: &mut [libc::epoll_event],
    timeout_ms: i32,
) -> Result<usize, Errno> {
    loop {
        // SAFETY: `out` is a live, writable array of `out.len()` events.
        let r = unsafe {
            libc::epoll_wait(
                ep.as_raw_fd(),
                out.as_mut_ptr(),
                out.len().min(i32::MAX as usize) as i32,
                timeout_ms,
            )
        };
        match Errno::result(r) {
            // A signal other than a stop (none is expected): the call again.
            Err(Errno::EINTR) if !stopping() => continue,
            r => return r.map(|n| n as usize),
        }
    }
}

/// `FUTEX_WAIT` on `word` while it holds `expected`, for at most
/// `timeout`. EAGAIN (the word changed already) and ETIMEDOUT are success:
/// the caller looks at the word again. EINTR is an error only for a stop
/// signal.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) -> Result<(), Errno> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `word` is a live, aligned u32 in shared memory and `ts` a
    // live timespec; FUTEX_WAIT reads nothing else.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &raw const ts,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    match Errno::result(r) {
        Ok(_) | Err(Errno::EAGAIN) | Err(Errno::ETIMEDOUT) => Ok(()),
        Err(Errno::EINTR) if !stopping() => Ok(()),
        Err(e) => Err(e),
    }
}

/// `FUTEX_WAKE` of one waiter on `word`.
pub fn futex_wake(word: &AtomicU32) -> Result<(), Errno> {
    // SAFETY: as for futex_wait; FUTEX_WAKE reads only the address.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            1,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    Errno::result(r).map(drop)
}

/// The CPU this process runs on now (`getcpu`, through the vDSO).
pub fn current_cpu() -> Option<usize> {
    // SAFETY: sched_getcpu takes nothing and returns a number or -1.
    let c = unsafe { libc::sched_getcpu() };
    (c >= 0).then_some(c as usize)
}

/// Whether `pid`, a child of ours, has ended — without reaping it
/// (`waitid(P_PID, pid, WEXITED|WNOHANG|WNOWAIT)`): the traced `wait4`
/// that reaps it comes later.
pub fn child_ended(pid: i32) -> bool {
    // SAFETY: a zeroed siginfo_t is a valid out-buffer for waitid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is live and writable; WNOWAIT leaves the child as is.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &raw mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: waitid filled `info` (si_pid stays 0 when nothing ended).
    r != 0 || unsafe { info.si_pid() } != 0
}

/// The parent's pid, to notice that it is gone (we were re-parented).
pub fn parent() -> i32 {
    // SAFETY: getppid takes nothing and cannot fail.
    unsafe { libc::getppid() }
}

/// A one-way byte stream through shared memory: a single-producer,
/// single-consumer ring in a `MAP_SHARED` mapping that both processes
/// inherited across fork. Positions are byte counts that wrap at 2³²; a
/// side with nothing to do sleeps in `FUTEX_WAIT` on the other side's
/// position and is woken by `FUTEX_WAKE` — only when it said it sleeps, so
/// a busy stream makes no futex calls at all.
///
/// Layout at `base`: head (written by the producer) at +0, tail (consumer)
/// at +64, "consumer sleeps" at +128, "producer sleeps" at +192, data from
/// +[`Ring::HEADER`], `cap` bytes.
pub struct Ring<'m> {
    map: &'m Mapping,
    base: usize,
    cap: u32,
    /// Says whether the other end is gone (for a wait that times out).
    peer_gone: &'m dyn Fn() -> bool,
}

impl<'m> Ring<'m> {
    /// Bytes before the data: the four words, each on its own cache line.
    pub const HEADER: usize = 256;
    /// How long one futex wait lasts before the ring looks at the peer again.
    const NAP: Duration = Duration::from_millis(500);

    /// A ring of `cap` bytes (a power of two) at `base` in `map`, which the
    /// caller zeroed (ftruncate does) before both sides started.
    ///
    /// # Panics
    /// When the ring does not fit the mapping or `cap` is not a power of two.
    pub fn new(map: &'m Mapping, base: usize, cap: u32, peer_gone: &'m dyn Fn() -> bool) -> Self {
        assert!(cap.is_power_of_two() && base % 64 == 0);
        assert!(base + Self::HEADER + cap as usize <= map.len());
        Ring {
            map,
            base,
            cap,
            peer_gone,
        }
    }

    fn word(&self, at: usize) -> &AtomicU32 {
        self.map.word(self.base + at)
    }

    /// Sleeps while `word` still holds `seen` (said in `flag`), or the peer is gone.
    fn sleep(&self, word: &AtomicU32, seen: u32, flag: &AtomicU32) -> Result<(), Errno> {
        flag.store(1, Ordering::SeqCst);
        if word.load(Ordering::SeqCst) == seen {
            futex_wait(word, seen, Self::NAP)?;
            if word.load(Ordering::SeqCst) == seen && (self.peer_gone)() {
                flag.store(0, Ordering::SeqCst);
                return Err(Errno::EPIPE);
            }
        }
        flag.store(0, Ordering::SeqCst);
        Ok(())
    }

    /// Copies all of `data` in, waiting for room as needed.
    pub fn write_all(&self, data: &[u8]) -> Result<(), Errno> {
        let (head_w, tail_w) = (self.word(0), self.word(64));
        let (reader_sleeps, writer_sleeps) = (self.word(128), self.word(192));
        let mut off = 0;
        while off < data.len() {
            let head = head_w.load(Ordering::Relaxed);
            let tail = tail_w.load(Ordering::Acquire);
            let used = head.wrapping_sub(tail);
            if used >= self.cap {
                self.sleep(tail_w, tail, writer_sleeps)?;
                continue;
            }
            let pos = head & (self.cap - 1);
            let n = (self.cap - used)
                .min(self.cap - pos)
                .min((data.len() - off) as u32);
            // SAFETY: [pos, pos+n) lies inside the data area (pos + n ≤ cap,
            // and new() checked the area fits the mapping); the consumer
            // reads it only after the SeqCst store of head below, and the
            // producer does not touch bytes the consumer has yet to release.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    data.as_ptr().add(off),
                    self.map.base().add(self.base + Self::HEADER + pos as usize),
                    n as usize,
                );
            }
            head_w.store(head.wrapping_add(n), Ordering::SeqCst);
            if reader_sleeps.load(Ordering::SeqCst) != 0 {
                futex_wake(head_w)?;
            }
            off += n as usize;
        }
        Ok(())
    }

    /// Fills all of `buf`, waiting for bytes as needed.
    pub fn read_exact(&self, buf: &mut [u8]) -> Result<(), Errno> {
        let (head_w, tail_w) = (self.word(0), self.word(64));
        let (reader_sleeps, writer_sleeps) = (self.word(128), self.word(192));
        let mut off = 0;
        while off < buf.len() {
            let tail = tail_w.load(Ordering::Relaxed);
            let head = head_w.load(Ordering::Acquire);
            let avail = head.wrapping_sub(tail);
            if avail == 0 {
                self.sleep(head_w, head, reader_sleeps)?;
                continue;
            }
            let pos = tail & (self.cap - 1);
            let n = avail.min(self.cap - pos).min((buf.len() - off) as u32);
            // SAFETY: as in write_all: the producer published these bytes
            // with its store of head, which the Acquire load above saw.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    self.map.base().add(self.base + Self::HEADER + pos as usize),
                    buf.as_mut_ptr().add(off),
                    n as usize,
                );
            }
            tail_w.store(tail.wrapping_add(n), Ordering::SeqCst);
            if writer_sleeps.load(Ordering::SeqCst) != 0 {
                futex_wake(tail_w)?;
            }
            off += n as usize;
        }
        Ok(())
    }
}
