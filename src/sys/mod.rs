//! One wrapper per syscall, named after it, each recorded as a step.
//!
//! This is the only module allowed `unsafe`. Every wrapper runs its call
//! exactly once through [`Recorder::call`](crate::trace::Recorder::call) and
//! describes it in strace's notation; the name recorded is the kernel's (what
//! `strace -f` prints), the `libc` name is the function we called.
//!
//! Calls are made through nix where nix makes exactly the syscall we name,
//! and through `libc` where we need control over an argument strace shows
//! (a NULL where nix passes a pointer, say).

pub mod creds;
pub mod file;
pub mod process;
pub mod raw;
pub mod socket;

use std::os::fd::{AsRawFd, FromRawFd};

use crate::trace::Counters;

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
                    // and all-zero bytes are a valid Counters (three AtomicU64 at 0).
                    // It is never unmapped, so the reference lives for the process.
                    Shared(unsafe { &*p })
                }
                // Without shared memory, numbering is per process: still correct per pid.
                Err(_) => Shared(Box::leak(Box::default())),
            }
        })
        .0
}

/// A `File` on fd 1 that never closes it: unbuffered output for the renderers.
pub fn stdout_file() -> std::mem::ManuallyDrop<std::fs::File> {
    let fd = std::io::stdout().as_raw_fd();
    // SAFETY: fd 1 stays open for the life of the process, and the File is
    // wrapped in ManuallyDrop so dropping it never closes the descriptor.
    std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) })
}

/// A pointer as strace prints one it cannot decode (a buffer after a failed read).
pub(crate) fn ptr<T>(p: *const T) -> String {
    format!("{p:p}")
}
