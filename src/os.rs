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
#[derive(Debug)]
#[repr(C)]
pub struct Counters {
    pub seq: AtomicU64,
    pub calls: AtomicU64,
    pub failed: AtomicU64,
    /// Failures a lab provoked on purpose (EAGAIN on a full pipe, say).
    pub expected: AtomicU64,
    /// Per-syscall calls, errors and time, for `-c` (slots named in
    /// `trace::stats`).
    pub per_call: [CallStat; CALL_SLOTS],
    /// Held by the process whose `--step` prompt is on the terminal.
    pub step_lock: std::sync::atomic::AtomicI32,
    /// `--lanes`: the pid shown in each column (0: free), and for each
    /// column whether its process waits in a call (bit 0) and has shown
    /// its `┌ pid N` header (bit 1).
    pub lane_pids: [std::sync::atomic::AtomicI32; LANE_SLOTS],
    pub lane_waits: [std::sync::atomic::AtomicI32; LANE_SLOTS],
}

/// At most this many `--lanes` columns.
pub const LANE_SLOTS: usize = 8;

impl Default for Counters {
    fn default() -> Self {
        Counters {
            seq: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            expected: AtomicU64::new(0),
            per_call: std::array::from_fn(|_| CallStat::default()),
            step_lock: std::sync::atomic::AtomicI32::new(0),
            lane_pids: std::array::from_fn(|_| std::sync::atomic::AtomicI32::new(0)),
            lane_waits: std::array::from_fn(|_| std::sync::atomic::AtomicI32::new(0)),
        }
    }
}

/// How many syscall names `-c` can tell apart.
pub const CALL_SLOTS: usize = 96;

/// One syscall's totals for `-c`, shared by every process of the run.
#[derive(Debug, Default)]
#[repr(C)]
pub struct CallStat {
    pub calls: AtomicU64,
    pub errors: AtomicU64,
    pub nanos: AtomicU64,
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
                    // and all-zero bytes are a valid Counters (atomics at 0).
                    // It is never unmapped, so the reference lives for the process.
                    Shared(unsafe { &*p })
                }
                // Without shared memory, numbering is per process: still correct per pid.
                Err(_) => Shared(Box::leak(Box::default())),
            }
        })
        .0
}

/// Where the renderers write: fd 1, or the `-o FILE` descriptor.
static OUTPUT_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(1);

/// The descriptor the trace goes to, when it is not stdout (`-o FILE`).
pub fn output_fd() -> Option<i32> {
    let fd = OUTPUT_FD.load(Ordering::SeqCst);
    (fd != 1).then_some(fd)
}

/// Opens `-o FILE` for the trace (created or truncated, O_APPEND so that
/// processes writing at once never overwrite each other) and moves it to a
/// high descriptor, so the labs' own descriptors keep the numbers they
/// have without `-o`. Not a lab step: strace's own `-o` is not traced either.
pub fn open_output(path: &std::path::Path) -> std::io::Result<()> {
    let high = open_high(path)?;
    OUTPUT_FD.store(high, Ordering::SeqCst);
    Ok(())
}

/// Creates or truncates `path` for ipclab's own output (`-o`, `--diagram`,
/// `--html`) and returns it as a descriptor at 900 or above, out of the
/// labs' way; close-on-exec, O_APPEND.
pub fn open_high(path: &std::path::Path) -> std::io::Result<i32> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_CLOEXEC | libc::O_APPEND)
        .open(path)?;
    move_high(&f)
}

/// A new descriptor for `f` at 900 or above (the original closes with `f`).
fn move_high(f: &std::fs::File) -> std::io::Result<i32> {
    // SAFETY: `f` is an open descriptor; F_DUPFD_CLOEXEC makes a new one at
    // or above 900 and touches no memory.
    let high = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 900) };
    if high < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // Remembered in the first free slot (four are more than ipclab opens).
    let _ = OWN_FDS.iter().any(|s| {
        s.compare_exchange(-1, high, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    });
    Ok(high)
}

/// ipclab's own output descriptors (`-o`, `--diagram`, `--html`, the
/// run's copy), which the descriptor tables leave out: they are not the
/// experiment's.
static OWN_FDS: [std::sync::atomic::AtomicI32; 4] = [
    std::sync::atomic::AtomicI32::new(-1),
    std::sync::atomic::AtomicI32::new(-1),
    std::sync::atomic::AtomicI32::new(-1),
    std::sync::atomic::AtomicI32::new(-1),
];

/// Whether `fd` is one of ipclab's own output descriptors.
pub fn is_own_fd(fd: i32) -> bool {
    fd >= 0 && OWN_FDS.iter().any(|s| s.load(Ordering::SeqCst) == fd)
}

/// A file with no name (O_TMPFILE in $TMPDIR, or, where the file system
/// cannot make one, a fresh name removed at once), read and appended to
/// through a descriptor at 900 or above: the run's JSON copy, which every
/// forked process inherits and which vanishes with the last descriptor,
/// whatever ends the run. Not a lab step.
pub fn open_copy() -> std::io::Result<i32> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::env::temp_dir();
    let unnamed = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC | libc::O_APPEND)
        .open(&dir);
    let f = match unnamed {
        Ok(f) => f,
        Err(_) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let path = dir.join(format!(".ipclab-run-{}-{nanos:08x}", std::process::id()));
            let f = std::fs::OpenOptions::new()
                .read(true)
                .append(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
                .open(&path)?;
            std::fs::remove_file(&path)?;
            f
        }
    };
    move_high(&f)
}

/// Borrows descriptor `fd` as a File that is never closed by dropping it.
fn borrowed_file(fd: i32) -> std::mem::ManuallyDrop<std::fs::File> {
    // SAFETY: callers pass a descriptor ipclab opened for its own output
    // (open_high, open_copy), open for the life of the process; ManuallyDrop
    // keeps the File from closing it.
    std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) })
}

/// Appends `bytes` to one of ipclab's own output descriptors.
pub fn write_fd(fd: i32, bytes: &[u8]) -> std::io::Result<()> {
    borrowed_file(fd).write_all(bytes)
}

/// Everything written so far to the copy `fd` (see [`open_copy`]).
pub fn read_copy(fd: i32) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let f = borrowed_file(fd);
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read_at(&mut buf, out.len() as u64)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// Closes one of ipclab's own output descriptors.
pub fn close_fd(fd: i32) {
    for s in &OWN_FDS {
        let _ = s.compare_exchange(fd, -1, Ordering::SeqCst, Ordering::SeqCst);
    }
    drop(std::mem::ManuallyDrop::into_inner(borrowed_file(fd)));
}

/// Columns of the terminal stdout is, if it is one (for wrapping notes).
pub fn terminal_width() -> Option<usize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into `ws`, a live local.
    let r = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, std::ptr::from_mut(&mut ws)) };
    (r == 0 && ws.ws_col > 0).then_some(usize::from(ws.ws_col))
}

/// Local wall-clock time of day (hours, minutes, seconds) for `secs` since
/// 1970, as strace's `-t` prints it.
pub fn local_time_of_day(secs: i64) -> (u32, u32, u32) {
    let t: libc::time_t = secs;
    // SAFETY: an all-zero tm is valid; localtime_r writes into `tm`, reads
    // `t`, and is thread-safe.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals.
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        let day = secs.rem_euclid(86_400) as u32;
        return (day / 3600, day / 60 % 60, day % 60);
    }
    (tm.tm_hour as u32, tm.tm_min as u32, tm.tm_sec as u32)
}

/// Writes `block` to the trace's descriptor unbuffered: one `write(2)` for
/// blocks up to PIPE_BUF, so a parent and child printing at once never
/// split a line.
pub fn write_stdout(block: &[u8]) -> std::io::Result<()> {
    let fd = match output_fd() {
        Some(fd) => fd,
        None => std::io::stdout().as_raw_fd(),
    };
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

/// The last signals caught, with what their siginfo said, for the
/// `--- SIGINT {…} ---` lines: a ring the handler writes with atomics only.
const RING: usize = 8;
static RING_HEAD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static RING_SIGNO: [std::sync::atomic::AtomicI32; RING] =
    [const { std::sync::atomic::AtomicI32::new(0) }; RING];
static RING_CODE: [std::sync::atomic::AtomicI32; RING] =
    [const { std::sync::atomic::AtomicI32::new(0) }; RING];
static RING_PID: [std::sync::atomic::AtomicI32; RING] =
    [const { std::sync::atomic::AtomicI32::new(0) }; RING];
static RING_UID: [std::sync::atomic::AtomicU32; RING] =
    [const { std::sync::atomic::AtomicU32::new(0) }; RING];
static RING_STATUS: [std::sync::atomic::AtomicI32; RING] =
    [const { std::sync::atomic::AtomicI32::new(0) }; RING];

/// One caught signal, as its siginfo described it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Caught {
    pub signo: i32,
    pub code: i32,
    pub pid: i32,
    pub uid: u32,
    /// For SIGCHLD: the exit status or signal of the child.
    pub status: i32,
}

/// The signals caught since `*seen` (advanced past them); at most the last 8.
pub fn take_signals(seen: &mut usize) -> Vec<Caught> {
    let head = RING_HEAD.load(Ordering::SeqCst);
    let from = (*seen).max(head.saturating_sub(RING));
    let out = (from..head)
        .map(|i| {
            let k = i % RING;
            Caught {
                signo: RING_SIGNO[k].load(Ordering::SeqCst),
                code: RING_CODE[k].load(Ordering::SeqCst),
                pid: RING_PID[k].load(Ordering::SeqCst),
                uid: RING_UID[k].load(Ordering::SeqCst),
                status: RING_STATUS[k].load(Ordering::SeqCst),
            }
        })
        .collect();
    *seen = head;
    out
}

/// How many signals were caught so far (to start a reader at "now").
pub fn signals_so_far() -> usize {
    RING_HEAD.load(Ordering::SeqCst)
}

/// The handler ipclab installs: it records the signal and, for a stop
/// signal that lands inside a window, arms a repeating 10 ms timer. A stop
/// signal delivered in the instant between the window's last check and the
/// blocking call itself would otherwise go unnoticed until the call returned
/// by itself, perhaps never; each SIGALRM interrupts the call (no
/// SA_RESTART) until the window closes and disarms the timer.
// The kernel calls it with a valid siginfo (SA_SIGINFO); it must have this
// safe fn type to be installed as a handler.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // Atomics and setitimer only: both async-signal-safe.
    CAUGHT.fetch_or(bit(sig), Ordering::SeqCst);
    let k = RING_HEAD.load(Ordering::SeqCst) % RING;
    RING_SIGNO[k].store(sig, Ordering::SeqCst);
    if !info.is_null() {
        // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO
        // handler; the accessors read the union members its si_code set up
        // (si_pid/si_uid are meaningful for SI_USER and SIGCHLD; for others
        // they read zeros, which is what is printed).
        unsafe {
            RING_CODE[k].store((*info).si_code, Ordering::SeqCst);
            RING_PID[k].store((*info).si_pid(), Ordering::SeqCst);
            RING_UID[k].store((*info).si_uid(), Ordering::SeqCst);
            let status = if sig == libc::SIGCHLD {
                (*info).si_status()
            } else {
                0
            };
            RING_STATUS[k].store(status, Ordering::SeqCst);
        }
    }
    RING_HEAD.fetch_add(1, Ordering::SeqCst);
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

// ------------------------------------------------------------------ --step

/// What the person at a `--step` prompt answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepAnswer {
    /// Enter: run the call.
    Run,
    /// `q`, end of input, or no terminal: stop pausing.
    StopPausing,
}

/// Whether a terminal can be asked (`/dev/tty` opens).
pub fn have_tty() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .is_ok()
}

/// Asks on the terminal, one process at a time (a lock in the shared
/// page), before `pid` makes `call`. The prompt is on a line of its own and
/// names the process; the answer is read from /dev/tty, not stdin (which
/// may be the lab's input). The wait lets the stop signals in, so Ctrl-C
/// at a prompt stops the run as anywhere else. Not a lab step.
pub fn step_prompt(c: &Counters, pid: i32, call: &str) -> StepAnswer {
    use std::io::{Read, Write};
    let lock = &c.step_lock;
    while lock
        .compare_exchange(0, pid, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        if stop_pending().is_some() {
            return StepAnswer::StopPausing;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let answer = (|| {
        let mut tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .ok()?;
        let prompt =
            format!("\n[pid {pid}] next: {call}() — Enter runs it, q then Enter stops pausing: ");
        tty.write_all(prompt.as_bytes()).ok()?;
        let mut fds = [libc::pollfd {
            fd: tty.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let empty = nix::sys::signal::SigSet::empty();
        // SAFETY: one live pollfd, no timeout, and a valid empty sigset: the
        // held stop signals are let in only for this wait.
        let r = unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                1,
                std::ptr::null(),
                std::ptr::from_ref(empty.as_ref()),
            )
        };
        if r <= 0 {
            return None;
        }
        let mut buf = [0u8; 64];
        let n = tty.read(&mut buf).ok()?;
        let line = String::from_utf8_lossy(&buf[..n]);
        (n > 0 && line.trim() != "q").then_some(StepAnswer::Run)
    })();
    lock.store(0, Ordering::SeqCst);
    answer.unwrap_or(StepAnswer::StopPausing)
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
