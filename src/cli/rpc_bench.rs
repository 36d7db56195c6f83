//! The `rpc` and `bench` commands' arguments (clap derive types, as the
//! rest of [`crate::cli`]).

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

#[derive(Debug, Args)]
pub struct RpcArgs {
    #[command(subcommand)]
    pub action: RpcAction,
}

/// How a server treats a retransmitted INCR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SemanticsArg {
    /// No memory: a retransmission runs the procedure again
    AtLeastOnce,
    /// A duplicate-request cache keyed by client, xid and timestamp
    AtMostOnce,
    /// At-most-once whose completion records are durable (needs --state)
    ExactlyOnce,
}

#[derive(Debug, Subcommand)]
pub enum RpcAction {
    /// Portmapper v2 and rpcbind v3/v4 over UDP and TCP, as rpcinfo and clnt_create expect
    /// [port 111 needs root or CAP_NET_BIND_SERVICE]
    Matchmaker {
        /// Address to listen on
        #[arg(long, default_value = "0.0.0.0", value_name = "ADDR")]
        listen: String,
        /// Port for both UDP and TCP (0: the kernel picks one)
        #[arg(long, default_value_t = 111, value_name = "P")]
        port: u16,
    },
    /// Serve program 0x20000001 of ipclab.x (NULL, ADD, INCR) over UDP and TCP
    #[command(group = clap::ArgGroup::new("transport").args(["udp", "tcp", "both"]))]
    Server {
        /// Address to listen on
        #[arg(long, default_value = "0.0.0.0", value_name = "ADDR")]
        listen: String,
        /// Port for UDP and TCP (0: the kernel picks one; --register tells the matchmaker)
        #[arg(long, default_value_t = 0, value_name = "P")]
        port: u16,
        /// UDP only
        #[arg(long)]
        udp: bool,
        /// TCP only
        #[arg(long)]
        tcp: bool,
        /// UDP and TCP (the default)
        #[arg(long)]
        both: bool,
        /// Register with the matchmaker on 127.0.0.1 (ipclab's or rpcbind); unregister on exit
        #[arg(long)]
        register: bool,
        /// The matchmaker's port for --register
        #[arg(long, default_value_t = 111, value_name = "P")]
        matchmaker_port: u16,
        /// How a retransmitted INCR is treated
        #[arg(long, value_enum, default_value_t = SemanticsArg::AtLeastOnce)]
        semantics: SemanticsArg,
        /// File for the counter (and exactly-once's completion records), saved before each reply
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        /// Drop this share of UDP requests on purpose (0 to 0.9)
        #[arg(long, default_value_t = 0.0, value_name = "P")]
        drop_requests: f64,
        /// Drop this share of UDP replies on purpose (0 to 0.9)
        #[arg(long, default_value_t = 0.0, value_name = "P")]
        drop_replies: f64,
        /// Seed of the drops' random numbers (the same seed drops the same datagrams)
        #[arg(long, default_value_t = 1, value_name = "N")]
        seed: u64,
    },
    /// Call NULL, ADD A B (or remoteAdd A B) or INCR; the matchmaker tells the port
    #[command(group = clap::ArgGroup::new("transport").args(["udp", "tcp"]))]
    Call {
        /// NULL, ADD (alias remoteAdd) or INCR, any case
        #[arg(value_name = "PROC")]
        proc: String,
        /// The procedure's arguments (ADD: two integers)
        #[arg(value_name = "ARGS", allow_negative_numbers = true)]
        args: Vec<String>,
        /// The server's address
        #[arg(long, default_value = "127.0.0.1", value_name = "HOST")]
        server: String,
        /// The server's port (without it: GETPORT at the matchmaker)
        #[arg(long, value_name = "P")]
        port: Option<u16>,
        /// Call over TCP (the default, as in the notes)
        #[arg(long)]
        tcp: bool,
        /// Call over UDP
        #[arg(long)]
        udp: bool,
        /// Seconds to wait for a reply before sending again
        #[arg(long, default_value_t = 1.0, value_name = "S")]
        timeout: f64,
        /// Retransmissions at most (at-least-once and at-most-once)
        #[arg(long, default_value_t = 3, value_name = "N",
              value_parser = clap::value_parser!(u32).range(0..=100))]
        retries: u32,
        /// exactly-once keeps resending until a reply or --deadline
        #[arg(long, value_enum, default_value_t = SemanticsArg::AtLeastOnce)]
        semantics: SemanticsArg,
        /// Seconds exactly-once keeps resending at most
        #[arg(long, default_value_t = 10.0, value_name = "S")]
        deadline: f64,
        /// The matchmaker's port
        #[arg(long, default_value_t = 111, value_name = "P")]
        matchmaker_port: u16,
    },
    /// Matchmaker, server and client in one command: remoteAdd, then INCR under loss and a crash, per semantics
    Demo {
        /// Share of UDP requests and of replies the server drops (0 to 0.9)
        #[arg(long, default_value_t = 0.3, value_name = "P")]
        loss: f64,
        /// Seed of the drops' random numbers (the default, 8, shows every effect with 10 calls)
        #[arg(long, default_value_t = 8, value_name = "N")]
        seed: u64,
        /// INCR calls per semantics
        #[arg(long, default_value_t = 10, value_name = "N",
              value_parser = clap::value_parser!(u32).range(2..=200))]
        calls: u32,
    },
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub action: BenchAction,
}

/// Where the bench's processes run.
#[derive(Debug, Args)]
pub struct PinArgs {
    /// Run both ends on this CPU (default: the first one this process may use)
    #[arg(long, value_name = "CPU", conflicts_with = "no_pin")]
    pub pin: Option<usize>,
    /// Let the scheduler place the ends (figures then vary with placement)
    #[arg(long)]
    pub no_pin: bool,
}

#[derive(Debug, Subcommand)]
pub enum BenchAction {
    /// Two processes, one mechanism at a time: round-trip latency and streaming bandwidth
    Ipc {
        /// Which mechanisms, in order: pipe, fifo, unix, unix-dgram, shm, tcp, udp, rpc (rpc-udp, rpc-tcp)
        #[arg(
            long,
            default_value = "pipe,fifo,unix,unix-dgram,shm,tcp,udp,rpc",
            value_name = "LIST"
        )]
        mechanisms: String,
        /// Bytes per message in the round trips
        #[arg(long, default_value_t = 32, value_name = "BYTES",
              value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
        size: u32,
        /// At most this many round trips per mechanism (after the warm-up)
        #[arg(long, default_value_t = 200_000, value_name = "N",
              value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
        round_trips: u64,
        /// Time budget of each measurement of each mechanism (latency, then
        /// bandwidth), shared by its repeats (0.05 to 60)
        #[arg(long, default_value_t = 0.5, value_name = "S")]
        seconds: f64,
        /// Repeats of each measurement (their spread is shown)
        #[arg(long, default_value_t = 5, value_name = "R",
              value_parser = clap::value_parser!(u32).range(1..=100))]
        repeats: u32,
        /// Bytes per write when streaming
        #[arg(long, default_value_t = 65536, value_name = "BYTES",
              value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
        chunk: u32,
        #[command(flatten)]
        pin: PinArgs,
        /// Also draw the figures as an SVG chart into FILE
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
    },
    /// Load an echo server with many connections (ipclab's own in each model, or --target)
    Echo {
        /// Drive this echo server instead of ipclab's own (socat, ncat, a C server…)
        #[arg(long, value_name = "HOST:PORT", conflicts_with = "models")]
        target: Option<String>,
        /// Connections at once, each a closed loop of request and reply
        #[arg(long, default_value_t = 8, value_name = "N",
              value_parser = clap::value_parser!(u32).range(1..=1024))]
        connections: u32,
        /// At most this many requests in all
        #[arg(long, default_value_t = 10_000_000, value_name = "M",
              value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
        requests: u64,
        /// Bytes per request (each reply must be the same bytes)
        #[arg(long, default_value_t = 32, value_name = "B",
              value_parser = clap::value_parser!(u32).range(1..=65507))]
        size: u32,
        /// Time per server (0.05 to 60)
        #[arg(long, default_value_t = 2.0, value_name = "S")]
        seconds: f64,
        /// UDP datagrams instead of TCP connections
        #[arg(long)]
        udp: bool,
        /// ipclab's server models to drive, in order
        #[arg(long, default_value = "iterative,fork,poll", value_name = "LIST")]
        models: String,
        #[command(flatten)]
        pin: PinArgs,
        /// Also draw the figures as an SVG chart into FILE
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
    },
    /// The cost per syscall of ipclab's tracing and of strace's, against none
    Trace {
        /// Loop iterations (two syscalls each)
        #[arg(long, default_value_t = 100_000, value_name = "N",
              value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
        iterations: u64,
        /// At most this long per way (0.05 to 60)
        #[arg(long, default_value_t = 3.0, value_name = "S")]
        seconds: f64,
        /// Which ways, in order: untraced, ipclab, strace
        #[arg(long, default_value = "untraced,ipclab,strace", value_name = "LIST")]
        ways: String,
    },
    /// The loop `bench trace` times (run by it, in a fresh process)
    #[command(hide = true)]
    Loop {
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
        iterations: u64,
        #[arg(long)]
        seconds: f64,
        #[arg(long)]
        traced: bool,
        /// Where to write `calls=N ns=T` (a pipe inherited from `bench trace`)
        #[arg(long)]
        result_fd: i32,
    },
}
