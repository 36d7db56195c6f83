//! Integration tests: they spawn the real `ipclab` binary and talk to it over
//! real pipes, FIFOs and sockets. Every wait is bounded.

#[macro_use]
mod util;

mod cli;
mod faults;
mod fifo;
mod golden;
mod ping;
mod pipe;
mod readme;
mod rpc;
mod rpc_interop;
mod rpc_semantics;
mod signals;
mod sniff;
mod strace;
mod tcp;
mod udp;
