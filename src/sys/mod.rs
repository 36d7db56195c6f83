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
pub mod cwd;
pub mod fast;
pub mod file;
pub mod fs;
pub mod mem;
pub mod netlink;
pub mod ns;
pub mod packet;
pub mod poll;
pub mod process;
pub mod raw;
pub mod signal;
pub mod socket;

/// A pointer as strace prints one it cannot decode (a buffer after a failed read).
pub(crate) fn ptr<T>(p: *const T) -> String {
    format!("{p:p}")
}
