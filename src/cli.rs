//! The command line: clap derive types only. `main` turns them into the
//! plain, validated configs each lab takes.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Performs the real syscalls behind client–server IPC and prints each one,
/// strace-style, with its real result.
#[derive(Debug, Parser)]
#[command(name = "ipclab", version, about, arg_required_else_help = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Output format: strace-like text, or JSON Lines for scripts and grading
    #[arg(long, value_enum, default_value_t = Format::Text, global = true)]
    pub format: Format,
    /// Print the descriptor table after each step that opens or closes one
    #[arg(long, global = true)]
    pub fds: bool,
    /// Pause before each syscall until Enter (needs a terminal on stdin)
    #[arg(long, global = true)]
    pub step: bool,
    /// Results only: no syscall lines
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// No colour (also when NO_COLOR is set or stdout is not a terminal)
    #[arg(long, global = true)]
    pub no_color: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every experiment the current privileges allow, then a summary table
    Tour,
    /// Anonymous pipe + fork: the child writes "hello", the parent reads it
    Pipe(PipeArgs),
    /// Named pipe (mkfifo): open blocks until both ends are open
    Fifo(FifoArgs),
    /// TCP repeater (the notes' echo server on port 8989): server, client or demo
    Tcp(TcpArgs),
    /// UDP repeater: server, client or demo; no listen, accept or connect
    Udp(UdpArgs),
    /// ICMP echo over a raw socket, like ping(8) [needs root or CAP_NET_RAW; --dgram does not]
    Ping(PingArgs),
    /// Capture frames with an AF_PACKET socket and decode each [needs root or CAP_NET_RAW]
    Sniff(SniffArgs),
    /// ONC RPC: the notes' remoteAdd, a portmapper as the matchmaker, call semantics
    Rpc(RpcArgs),
    /// Print shell completions for SHELL to stdout
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout
    Man,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("mode").args(["fill", "sigpipe", "forget_close", "duplex"]))]
pub struct PipeArgs {
    /// The parent writes and the child reads (either direction works)
    #[arg(long, conflicts_with_all = ["fill", "sigpipe", "duplex"])]
    pub reverse: bool,
    /// The message to send through the pipe
    #[arg(long, default_value = "hello", value_name = "TEXT")]
    pub message: String,
    /// Fill the 64 KiB pipe: EAGAIN when non-blocking, a blocked write otherwise
    #[arg(long)]
    pub fill: bool,
    /// Write with no reader left: EPIPE, then death by SIGPIPE
    #[arg(long)]
    pub sigpipe: bool,
    /// The parent keeps its write end open, so read() never sees EOF
    #[arg(long)]
    pub forget_close: bool,
    /// Two-way talk needs two pipes, one per direction
    #[arg(long)]
    pub duplex: bool,
}

#[derive(Debug, Args)]
pub struct PingArgs {
    /// Address (127.0.0.1, ::1) or name to ping
    pub host: String,
    /// Stop after N echo requests
    #[arg(short = 'c', default_value_t = 4, value_name = "N")]
    pub count: u32,
    /// Seconds between requests (0.01 to 60)
    #[arg(short = 'i', default_value_t = 1.0, value_name = "SECS")]
    pub interval: f64,
    /// Bytes of echo data after the 8-byte ICMP header
    #[arg(short = 's', default_value_t = 56, value_name = "SIZE")]
    pub size: usize,
    /// TTL (IPv4) or hop limit (IPv6) of the requests, 1 to 255
    #[arg(short = 't', value_name = "TTL")]
    pub ttl: Option<u16>,
    /// Seconds to wait for each reply (0.001 to 60)
    #[arg(short = 'W', default_value_t = 2.0, value_name = "SECS")]
    pub timeout: f64,
    /// IPv4 only
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// IPv6 only
    #[arg(short = '6')]
    pub ipv6: bool,
    /// Use the unprivileged ICMP socket (SOCK_DGRAM), allowed by net.ipv4.ping_group_range
    #[arg(long)]
    pub dgram: bool,
    /// Set no ICMP_FILTER: the raw socket then also gets our own requests on loopback
    #[arg(long)]
    pub no_filter: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SniffProto {
    Tcp,
    Udp,
    Icmp,
}

#[derive(Debug, Args)]
pub struct SniffArgs {
    /// Interface to capture on
    #[arg(long, default_value = "lo", value_name = "IFACE")]
    pub iface: String,
    /// Stop after N frames
    #[arg(short = 'c', default_value_t = 10, value_name = "N")]
    pub count: u32,
    /// Keep only this protocol (a BPF filter the kernel runs)
    #[arg(long, value_enum)]
    pub proto: Option<SniffProto>,
    /// Stop after this many seconds even if fewer frames came (0.1 to 3600)
    #[arg(
        short = 'W',
        long = "timeout",
        default_value_t = 10.0,
        value_name = "SECS"
    )]
    pub timeout: f64,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct FifoArgs {
    /// Use this path for the FIFO instead of a fresh private temp directory
    #[arg(long, value_name = "P")]
    pub path: Option<PathBuf>,
    /// The message the writer sends
    #[arg(long, default_value = "hello through a FIFO", value_name = "TEXT")]
    pub message: String,
    #[command(subcommand)]
    pub action: Option<FifoAction>,
}

#[derive(Debug, Subcommand)]
pub enum FifoAction {
    /// Open PATH for reading (creating the FIFO if absent) and print what arrives
    Read {
        /// The FIFO's path
        path: PathBuf,
    },
    /// Open PATH for writing (creating the FIFO if absent) and write MSG
    Write {
        /// The FIFO's path
        path: PathBuf,
        /// What to write
        msg: String,
    },
}

#[derive(Debug, Args)]
pub struct TcpArgs {
    #[command(subcommand)]
    pub action: TcpAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServerModel {
    /// One client at a time; "q" stops the server (the seed's)
    Iterative,
    /// One child process per connection
    Fork,
    /// One process, non-blocking sockets and epoll
    Poll,
}

#[derive(Debug, Subcommand)]
pub enum TcpAction {
    /// Echo server: socket, setsockopt, bind, listen, accept, recv, send, close
    Server {
        /// Address and port to listen on (port 0: the kernel picks one)
        #[arg(long, default_value = "0.0.0.0:8989", value_name = "ADDR:PORT")]
        listen: String,
        /// Length of the queue of connections not yet accepted
        #[arg(long, default_value_t = 5, value_name = "N",
              value_parser = clap::value_parser!(i32).range(1..=65535))]
        backlog: i32,
        /// How to serve more than one client
        #[arg(long, value_enum, default_value_t = ServerModel::Iterative)]
        model: ServerModel,
        /// Serve one connection, then exit
        #[arg(long)]
        once: bool,
        /// Text put before each echoed message (default: the seed's)
        #[arg(long, value_name = "TEXT")]
        reply_prefix: Option<String>,
        /// Close a connection that sends nothing for SECS (iterative and fork
        /// models; 0: wait for ever)
        #[arg(long, default_value_t = 60.0, value_name = "SECS")]
        idle_timeout: f64,
        /// Serve at most N connections at once (fork model); others wait in the backlog
        #[arg(long, default_value_t = 64, value_name = "N",
              value_parser = clap::value_parser!(u32).range(1..=4096))]
        max_children: u32,
    },
    /// Client: socket, connect, then send and recv per message ("q" quits)
    Client {
        /// Server address and port
        #[arg(long, default_value = "127.0.0.1:8989", value_name = "ADDR:PORT")]
        connect: String,
        /// Message to send (repeatable); without it, lines are read from stdin
        #[arg(long, value_name = "MSG")]
        send: Vec<String>,
        /// Seconds to wait for each reply before giving up
        #[arg(long, default_value_t = 10.0, value_name = "SECS")]
        timeout: f64,
    },
    /// Server (child) and client in one command, two connections, then "q"
    Demo {
        /// The server model to show
        #[arg(long, value_enum, default_value_t = ServerModel::Fork)]
        model: ServerModel,
    },
}

#[derive(Debug, Args)]
pub struct UdpArgs {
    #[command(subcommand)]
    pub action: UdpAction,
}

#[derive(Debug, Subcommand)]
pub enum UdpAction {
    /// Echo server: socket, bind, then recvfrom and sendto until "q"
    Server {
        /// Address and port to bind (port 0: the kernel picks one)
        #[arg(long, default_value = "0.0.0.0:8989", value_name = "ADDR:PORT")]
        listen: String,
        /// Drop every Nth reply on purpose, to show loss
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        drop_every: Option<u32>,
        /// Text put before each echoed message (default: the seed's)
        #[arg(long, value_name = "TEXT")]
        reply_prefix: Option<String>,
    },
    /// Client: socket, SO_RCVTIMEO, then sendto and recvfrom per message
    Client {
        /// Server address and port
        #[arg(long, default_value = "127.0.0.1:8989", value_name = "ADDR:PORT")]
        connect: String,
        /// Message to send as one datagram (repeatable; "" sends an empty one);
        /// without it, lines are read from stdin
        #[arg(long, value_name = "MSG")]
        send: Vec<String>,
        /// Seconds to wait for each reply before calling it lost
        #[arg(long, default_value_t = 1.0, value_name = "SECS")]
        timeout: f64,
    },
    /// Server (child, dropping every 3rd reply) and client in one command
    Demo,
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }
}
