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
