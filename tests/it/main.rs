//! Integration tests: they spawn the real `ipclab` binary and talk to it over
//! real pipes, FIFOs and sockets. Every wait is bounded.

#[macro_use]
mod util;

mod bench;
mod cli;
mod diagram;
mod diagram_labs;
mod errata;
mod faults;
mod fifo;
mod golden;
mod habits;
mod net;
mod net_rpc;
mod ping;
mod ping_filter;
mod ping_iputils;
mod pipe;
mod readme;
mod rpc;
mod rpc_interop;
mod rpc_semantics;
mod shm;
mod signals;
mod sniff;
mod sniff_filter;
mod sniff_pcap;
mod strace;
mod strace_parse;
mod tcp;
mod tcp_hostile;
mod udp;
mod unix;
mod userns;
