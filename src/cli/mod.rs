//! The command line: clap derive types only. `main` (its `plan` module)
//! turns them into the plain, validated configs each lab takes.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod rpc_bench;
pub use rpc_bench::{BenchAction, BenchArgs, PinArgs, RpcAction, RpcArgs, SemanticsArg};

/// Performs the real syscalls behind client–server IPC and prints each one,
/// strace-style, with its real result.
#[derive(Debug, Parser)]
#[command(
    name = "ipclab",
    version,
    about,
    arg_required_else_help = true,
    subcommand_help_heading = "Commands",
    after_help = "ipclab's options go before the command, the command's after it: ipclab -tt -e trace=%network tcp demo"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// ipclab's own options. Like strace's, they stand *before* the subcommand
/// (`ipclab -c ping -c 3 HOST`, as `strace -c ping -c 3 HOST`): strace's
/// `-c`, `-t`, `-s` and `-r` mean other things to ping and sniff.
#[derive(Debug, Args)]
#[command(next_help_heading = "ipclab's options (before the subcommand)")]
pub struct GlobalArgs {
    /// Output format: strace-like text, or JSON Lines for scripts and grading
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Print the descriptor table after each step that opens or closes one
    #[arg(long)]
    pub fds: bool,
    /// Pause before each syscall until Enter (reads the terminal, /dev/tty)
    #[arg(long)]
    pub step: bool,
    /// Results only: no syscall lines (section headings and results stay)
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// No colour (also when NO_COLOR is set or stdout is not a terminal)
    #[arg(long)]
    pub no_color: bool,
    /// Wall-clock time before each line, as strace: -t seconds, -tt
    /// microseconds, -ttt seconds since 1970
    #[arg(short = 't', long = "timestamps", action = clap::ArgAction::Count)]
    pub timestamps: u8,
    /// Time since the process's previous step before each line (strace -r)
    #[arg(short = 'r', long = "relative-timestamps")]
    pub relative: bool,
    /// Which steps to show, as strace: -e trace=read,write or a class
    /// (%network, %process, %desc, %file, %signal, %ipc); !name excludes.
    /// The summary still counts every call
    #[arg(short = 'e', value_name = "EXPR")]
    pub expr: Vec<String>,
    /// Show at most N bytes of each buffer (strace -s; default 32)
    #[arg(short = 's', value_name = "N", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(0..=1_048_576))]
    pub strsize: u32,
    /// Write the trace to FILE instead of stdout (strace -o)
    #[arg(short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Count time, calls and errors per syscall and show the table at the
    /// end instead of each step (strace -c)
    #[arg(short = 'c', long = "summary-only")]
    pub count: bool,
    /// Also draw the run as a sequence diagram in FILE.svg: a lane per
    /// process, a box per syscall, arrows for the bytes, connections, forks,
    /// exits and signals between them (tour: every section, one under another)
    #[arg(long, value_name = "FILE.svg")]
    pub diagram: Option<PathBuf>,
    /// Also write a self-contained HTML report to FILE: the diagrams and the
    /// step list; hover over or click a box for its strace line, note and
    /// descriptors
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Text in one column per process, time downward (needs a terminal of
    /// 120 columns or more, or COLUMNS set when stdout is not one)
    #[arg(long)]
    pub lanes: bool,
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
    /// Shared memory + fork: the child stores a message, a futex wakes the parent
    Shm(ShmArgs),
    /// Unix-domain sockets: demo, server, client, pair, pass-fd, cred
    Unix(UnixArgs),
    /// ICMP echo over a raw socket, like ping(8) [needs root or CAP_NET_RAW; --dgram and --userns do not]
    Ping(PingArgs),
    /// Capture frames like tcpdump: AF_PACKET, BPF filters, pcap in and out [root or CAP_NET_RAW; -r, -d, --userns need neither]
    Sniff(SniffArgs),
    /// A client, a router and a server in network namespaces: ARP, TTL,
    /// unreachable hosts, timeouts, fragments [root, or a user namespace by itself]
    Net(NetArgs),
    /// ONC RPC: the notes' remoteAdd, a portmapper as the matchmaker, call semantics
    Rpc(RpcArgs),
    /// What each mechanism costs: round trips and streams, load on echo servers, the price of tracing
    Bench(BenchArgs),
    /// Draw a saved JSON run (`ipclab --format json LAB > RUN.jsonl`) as a sequence diagram
    Diagram {
        /// The run's JSON lines
        run: PathBuf,
        /// Write the diagram (SVG) to FILE.svg
        #[arg(short = 'o', value_name = "FILE.svg")]
        output: Option<PathBuf>,
        /// Write a self-contained HTML report (diagrams and step list) to FILE
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// The mistakes in the notes' programs, each shown by a real run (all, or NAME)
    Errata {
        /// One erratum: mkfifo-path, read-nul, no-wait, listen-backlog,
        /// eof-spin, udp-timeout, port-comment, fifo-duplex, pipe-names
        name: Option<String>,
    },
    /// Print shell completions for SHELL to stdout
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print a man page (roff) to stdout, or install them all
    Man {
        /// Write every page (ipclab.1, ipclab-tour.1, ipclab-tcp-server.1…)
        /// into DIR/man1, then run e.g. `MANPATH=DIR: man ipclab-tcp`
        #[arg(long, value_name = "DIR")]
        install: Option<PathBuf>,
        /// The command whose page to print (`ipclab man tcp server`)
        command: Vec<String>,
    },
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
pub struct ShmArgs {
    /// The message the child stores in the shared page (at most 4087 bytes)
    #[arg(long, default_value = "hello", value_name = "TEXT")]
    pub message: String,
    /// No futex: the parent looks without waiting (the race shared memory must guard against)
    #[arg(long)]
    pub no_sync: bool,
    /// memfd_create instead of shm_open: an object with no name in /dev/shm
    #[arg(long, conflicts_with = "name")]
    pub memfd: bool,
    /// Use /dev/shm/NAME instead of a fresh name (it must not exist yet)
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct UnixArgs {
    #[command(subcommand)]
    pub action: UnixAction,
}

#[derive(Debug, Subcommand)]
pub enum UnixAction {
    /// Server (parent) and client (child) over a socket in a private directory, then the stale socket file
    Demo {
        /// Datagram sockets (SOCK_DGRAM): no listen, accept or connect; the client autobinds
        #[arg(long)]
        dgram: bool,
        /// An abstract name (@ipclab-…) instead of a path: no file at all
        #[arg(long = "abstract")]
        abstract_name: bool,
    },
    /// Repeater server on the socket PATH (@NAME: an abstract name); "q" from a client stops it
    Server {
        /// Where to make the socket file (it must not exist), or @NAME
        path: PathBuf,
    },
    /// Client: connect to PATH (@NAME: abstract), then send and recv per message ("q" quits)
    Client {
        /// The server's socket file, or @NAME
        path: PathBuf,
        /// Message to send (repeatable); without it, lines are read from stdin
        #[arg(long, value_name = "MSG")]
        send: Vec<String>,
        /// Seconds to wait for each reply before giving up
        #[arg(long, default_value_t = 10.0, value_name = "SECS")]
        timeout: f64,
    },
    /// socketpair + fork: two-way talk over one pair of descriptors
    Pair {
        /// The parent's question to the child
        #[arg(long, default_value = "hello", value_name = "TEXT")]
        message: String,
    },
    /// The parent opens a file and sends the descriptor to the child (sendmsg, SCM_RIGHTS)
    PassFd,
    /// SO_PEERCRED: the server learns the client's pid, uid and gid from the kernel
    Cred,
}

#[derive(Debug, Args)]
pub struct PingArgs {
    /// Address (127.0.0.1, ::1) or name to ping
    pub host: String,
    /// Stop after N echo requests (without -c: until Ctrl-C or -w)
    #[arg(short = 'c', value_name = "N")]
    pub count: Option<u32>,
    /// Seconds between requests (0.002 to 60; root may go lower)
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
    /// Stop after SECS seconds, whatever was sent or received
    #[arg(short = 'w', value_name = "SECS")]
    pub deadline: Option<f64>,
    /// Quiet: only the first line and the statistics
    #[arg(short = 'q')]
    pub quiet: bool,
    /// Numeric: addresses only, never the name given
    #[arg(short = 'n')]
    pub numeric: bool,
    /// Each reply line starts with its time (seconds since 1970)
    #[arg(short = 'D')]
    pub print_time: bool,
    /// Say when a request is still unanswered as the next one goes out
    #[arg(short = 'O')]
    pub outstanding: bool,
    /// Fill the data with these bytes (up to 16, in hex), e.g. -p ff
    #[arg(short = 'p', value_name = "PATTERN")]
    pub pattern: Option<String>,
    /// Send through this interface (or from this source address)
    #[arg(short = 'I', value_name = "IFACE")]
    pub iface: Option<String>,
    /// Flood: the next request as soon as the last is answered (root only)
    #[arg(short = 'f')]
    pub flood: bool,
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
    /// Run in a fresh user and network namespace of your own (loopback
    /// only), where a raw socket needs no privilege
    #[arg(long, conflicts_with = "dgram")]
    pub userns: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SniffProto {
    Tcp,
    Udp,
    Icmp,
}

#[derive(Debug, Args)]
pub struct SniffArgs {
    /// Interface to capture on (default lo)
    #[arg(short = 'i', long = "iface", value_name = "IFACE")]
    pub iface: Option<String>,
    /// Stop after N frames (default: run until Ctrl-C)
    #[arg(short = 'c', value_name = "N")]
    pub count: Option<u32>,
    /// Keep only this protocol: shorthand for the filter `tcp`, `udp` or `icmp or icmp6`
    #[arg(long, value_enum)]
    pub proto: Option<SniffProto>,
    /// Stop after this many seconds even if fewer frames came (0.1 to 3600)
    #[arg(short = 'W', long = "timeout", value_name = "SECS")]
    pub timeout: Option<f64>,
    /// Also write each frame to FILE, a pcap file that tcpdump -r and Wireshark open
    #[arg(short = 'w', value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// Read frames from the pcap FILE (- for stdin) instead of capturing [no privilege]
    #[arg(short = 'r', value_name = "FILE")]
    pub read: Option<PathBuf>,
    /// Print the filter's BPF program as tcpdump -d does, and exit (-dd: C array, -ddd: decimal)
    #[arg(short = 'd', action = clap::ArgAction::Count)]
    pub dump: u8,
    /// Show the Ethernet header of each frame: addresses, ethertype, length
    #[arg(short = 'e')]
    pub link: bool,
    /// Absolute TCP sequence numbers (default: relative, as tcpdump)
    #[arg(short = 'S')]
    pub absolute: bool,
    /// Show each frame from the IP header on in hex and ASCII
    #[arg(short = 'X', conflicts_with = "ascii")]
    pub hex: bool,
    /// Show each frame from the IP header on in ASCII
    #[arg(short = 'A')]
    pub ascii: bool,
    /// Numbers, not names (ipclab never looks names up; taken for tcpdump's -n and -nn)
    #[arg(short = 'n', action = clap::ArgAction::Count)]
    pub numeric: u8,
    /// Capture in a fresh user and network namespace of your own (only lo
    /// there), where a packet socket needs no privilege
    #[arg(long)]
    pub userns: bool,
    /// Filter, as tcpdump's: `tcp and port 8989`, `host ::1`, `not (udp or icmp)` …
    #[arg(value_name = "EXPRESSION")]
    pub filter: Vec<String>,
}

#[derive(Debug, Args)]
pub struct NetArgs {
    /// Which experiment (demo: all of them, on one topology)
    #[arg(value_enum)]
    pub experiment: NetExperiment,
    /// Keep the hosts afterwards and print how to enter each (nsenter);
    /// Enter or Ctrl-C takes them down [needs a terminal]
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NetExperiment {
    /// Every experiment below, one section each
    Demo,
    /// The client's first packet: ARP who-has / is-at, then the neighbour entry
    Arp,
    /// The TCP repeater across the router, which rewrites MACs, not IP addresses
    Tcp,
    /// The UDP repeater across the router
    Udp,
    /// ping across the router, then with TTL 1: Time Exceeded
    Ttl,
    /// Unreachable and prohibited routes, a host nobody owns: EHOSTUNREACH
    Unreachable,
    /// A blackhole route: connect() times out (ETIMEDOUT)
    Timeout,
    /// MTU 1280: fragments, and "fragmentation needed"
    Mtu,
    /// The matchmaker (port 111) and RPC server on `server`, the client on `client`: remoteAdd across the router
    Rpc,
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
        /// Address and port to listen on (PORT or :PORT alone: every IPv4
        /// address, as socat and ncat take it; port 0: the kernel picks one)
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
        /// Address and port to bind (PORT or :PORT alone: every IPv4 address;
        /// port 0: the kernel picks one)
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }
}
