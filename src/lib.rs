//! ipclab: performs the real Linux system calls behind client–server
//! communication and prints every one, strace-style, with its real result.
//!
//! Calls go one way: `lab` → `sys` → `trace` → `render`. Experiments never
//! print, and syscall wrappers never pick a format. `diagram` stands
//! apart: it draws a finished run from its JSON lines, and makes no calls.
#![deny(unsafe_code)]
#![warn(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

pub mod cli;
pub mod diagram;
pub mod error;
pub mod lab;
pub mod man;
#[allow(unsafe_code)]
pub mod os;
pub mod packet;
pub mod render;
#[allow(unsafe_code)]
pub mod sys;
pub mod trace;
