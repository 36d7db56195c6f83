//! Raw OS helpers that the trace core and the renderers need, and that are
//! not lab steps: the page of counters shared by every process of a run, and
//! the unbuffered stdout the renderers write to.
//!
//! A leaf module: it imports nothing from ipclab, so `lab → sys → trace →
//! render` stays a one-way chain with this underneath.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::AtomicU64;

/// Counters shared by every process of a run (parent and forked children),
/// so `seq` is one sequence and the summary counts the children's calls too.
#[derive(Debug, Default)]
#[repr(C)]
pub struct Counters {
    pub seq: AtomicU64,
    pub calls: AtomicU64,
    pub failed: AtomicU64,
    /// Failures a lab provoked on purpose (EAGAIN on a full pipe, say).
    pub expected: AtomicU64,
}

/// Counters in a `MAP_SHARED` anonymous mapping, so every forked child of
/// this run numbers its steps in the one sequence and counts into the one summary.
pub fn shared_counters() -> &'static Counters {
    use std::sync::OnceLock;
    struct Shared(&'static Counters);
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let len = std::num::NonZeroUsize::new(std::mem::size_of::<Counters>())
                .expect("Counters is not zero-sized");
            let prot = nix::sys::mman::ProtFlags::PROT_READ | nix::sys::mman::ProtFlags::PROT_WRITE;
            let flags =
                nix::sys::mman::MapFlags::MAP_SHARED | nix::sys::mman::MapFlags::MAP_ANONYMOUS;
            // SAFETY: a fresh anonymous mapping aliases no Rust object.
            let mapped = unsafe { nix::sys::mman::mmap_anonymous(None, len, prot, flags) };
            match mapped {
                Ok(ptr) => {
                    let p = ptr.as_ptr().cast::<Counters>();
                    // SAFETY: the mapping is page-aligned, large enough, zero-filled,
                    // and all-zero bytes are a valid Counters (AtomicU64s at 0).
                    // It is never unmapped, so the reference lives for the process.
                    Shared(unsafe { &*p })
                }
                // Without shared memory, numbering is per process: still correct per pid.
                Err(_) => Shared(Box::leak(Box::default())),
            }
        })
        .0
}

/// Writes `block` to fd 1 unbuffered: one `write(2)` for blocks up to
/// PIPE_BUF, so a parent and child printing at once never split a line.
pub fn write_stdout(block: &[u8]) -> std::io::Result<()> {
    let fd = std::io::stdout().as_raw_fd();
    // SAFETY: fd 1 stays open for the life of the process, and the File is
    // wrapped in ManuallyDrop so dropping it never closes the descriptor.
    let mut f = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
    f.write_all(block)
}

// ------------------------------------------------------------------ signals

use std::sync::atomic::{AtomicBool, Ordering};

/// One bit per signal caught by [`on_signal`]. The stop signals' bits are
/// never cleared: once one came, the run is ending.
static CAUGHT: AtomicU64 = AtomicU64::new(0);
/// Set while a blocking call that cannot be a ppoll runs with the stop
/// signals let in (see `sys::signal::interruptible`).
static IN_WINDOW: AtomicBool = AtomicBool::new(false);
/// Set by the handler when it armed the re-interrupt timer.
static KICKED: AtomicBool = AtomicBool::new(false);

/// SIGHUP, SIGINT, SIGTERM: the signals that ask a command to stop.
pub const STOP_SIGNALS: [i32; 3] = [libc::SIGHUP, libc::SIGINT, libc::SIGTERM];

fn bit(sig: i32) -> u64 {
    if (1..64).contains(&sig) {
        1u64 << sig
    } else {
        0
    }
}

/// The handler ipclab installs: it records the signal and, for a stop
/// signal that lands inside a window, arms a repeating 10 ms timer. A stop
/// signal delivered in the instant between the window's last check and the
/// blocking call itself would otherwise go unnoticed until the call returned
/// by itself, perhaps never; each SIGALRM interrupts the call (no
/// SA_RESTART) until the window closes and disarms the timer.
pub extern "C" fn on_signal(sig: libc::c_int) {
    // Atomics and setitimer only: both async-signal-safe.
    CAUGHT.fetch_or(bit(sig), Ordering::SeqCst);
    if STOP_SIGNALS.contains(&sig)
        && IN_WINDOW.load(Ordering::SeqCst)
        && !KICKED.swap(true, Ordering::SeqCst)
    {
        let tick = libc::timeval {
            tv_sec: 0,
            tv_usec: 10_000,
        };
        let t = libc::itimerval {
            it_interval: tick,
            it_value: tick,
        };
        // SAFETY: `t` is a valid itimerval on this stack frame; a NULL old
        // value is allowed. setitimer touches no memory of ours besides `t`.
        unsafe {
            libc::setitimer(libc::ITIMER_REAL, &t, std::ptr::null_mut());
        }
    }
}

/// The first stop signal caught, if any (SIGINT before SIGTERM before SIGHUP).
pub fn stop_pending() -> Option<i32> {
    let c = CAUGHT.load(Ordering::SeqCst);
    [libc::SIGINT, libc::SIGTERM, libc::SIGHUP]
        .into_iter()
        .find(|&s| c & bit(s) != 0)
}

/// Whether `sig` was caught since the last call for it, clearing it (for
/// SIGCHLD and SIGALRM; a stop signal stays recorded).
pub fn take_caught(sig: i32) -> bool {
    if STOP_SIGNALS.contains(&sig) {
        return CAUGHT.load(Ordering::SeqCst) & bit(sig) != 0;
    }
    CAUGHT.fetch_and(!bit(sig), Ordering::SeqCst) & bit(sig) != 0
}

/// Opens or closes the window in which the handler arms its timer.
pub fn set_window(open: bool) {
    IN_WINDOW.store(open, Ordering::SeqCst);
}

/// Whether the handler armed its timer since the last call (and clears it).
pub fn take_kicked() -> bool {
    KICKED.swap(false, Ordering::SeqCst)
}

// ------------------------------------------------------------------ time

/// This machine's offset from UTC at `secs` since the epoch, in seconds
/// east (`tm_gmtoff` of localtime_r(3)), for printing times of day as
/// tcpdump does. The first call loads the time zone (glibc reads
/// /etc/localtime: openat, read, close); call it before the first step, so
/// those reads happen outside the trace. 0 if the zone cannot be had.
pub fn utc_offset(secs: i64) -> i64 {
    let t: libc::time_t = secs;
    let mut tm = std::mem::MaybeUninit::<libc::tm>::uninit();
    // SAFETY: `t` and `tm` are live locals; localtime_r writes only into
    // `tm` and returns NULL, leaving it unset, when it fails.
    let r = unsafe { libc::localtime_r(&t, tm.as_mut_ptr()) };
    if r.is_null() {
        return 0;
    }
    // SAFETY: localtime_r returned non-NULL, so it filled `tm`.
    unsafe { tm.assume_init() }.tm_gmtoff
}

/// [`utc_offset`] now, taken once per process and kept: call it before the
/// first step (`main` does for the commands that print times of day), and
/// later calls make no syscall.
pub fn local_offset() -> i64 {
    use std::sync::OnceLock;
    static OFFSET: OnceLock<i64> = OnceLock::new();
    *OFFSET.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        utc_offset(now)
    })
}
