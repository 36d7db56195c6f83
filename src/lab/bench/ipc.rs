//! `ipclab bench ipc`: two processes (fork), one mechanism at a time;
//! round trips for latency, a stream for bandwidth.
//!
//! Per mechanism: the channel is made (traced), the child forked (traced),
//! each side closes the other's ends (traced) and lets Ctrl-C in (traced);
//! then the loops run untraced (see `loops`); then the stop signals are held
//! again, the child told to quit, the ends closed and the child reaped — all
//! traced.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::unistd::Pid;

use super::loops::{self, Bufs, Chan};
use super::{hard_limit, report, Machine, Pin, Spread};
use crate::error::{Error, Result};
use crate::lab::{self, wait, Made};
use crate::sys::fast::{self, Ring};
use crate::sys::mem::{self, Mapping};
use crate::sys::process::{self, Forked};
use crate::sys::signal::{self, STOPS};
use crate::sys::{file, socket};
use crate::trace::Recorder;

/// One IPC mechanism `bench ipc` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Pipe,
    Fifo,
    Unix,
    UnixDgram,
    Shm,
    Tcp,
    Udp,
    RpcUdp,
    RpcTcp,
}

impl Mechanism {
    pub const ALL: [Mechanism; 9] = [
        Mechanism::Pipe,
        Mechanism::Fifo,
        Mechanism::Unix,
        Mechanism::UnixDgram,
        Mechanism::Shm,
        Mechanism::Tcp,
        Mechanism::Udp,
        Mechanism::RpcUdp,
        Mechanism::RpcTcp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Pipe => "pipe",
            Mechanism::Fifo => "fifo",
            Mechanism::Unix => "unix",
            Mechanism::UnixDgram => "unix-dgram",
            Mechanism::Shm => "shm",
            Mechanism::Tcp => "tcp",
            Mechanism::Udp => "udp",
            Mechanism::RpcUdp => "rpc-udp",
            Mechanism::RpcTcp => "rpc-tcp",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Mechanism::Pipe => "two pipes, one per direction",
            Mechanism::Fifo => "two FIFOs in a private directory, one per direction",
            Mechanism::Unix => "a Unix stream socketpair",
            Mechanism::UnixDgram => "a Unix datagram socketpair",
            Mechanism::Shm => "two rings in one shared mapping (memfd), futex wake-ups",
            Mechanism::Tcp => "a TCP connection on 127.0.0.1, TCP_NODELAY",
            Mechanism::Udp => "two connected UDP sockets on 127.0.0.1",
            Mechanism::RpcUdp => "ONC RPC NULL calls (RFC 5531) over UDP on 127.0.0.1",
            Mechanism::RpcTcp => "ONC RPC NULL calls over TCP on 127.0.0.1, record marking",
        }
    }

    fn is_rpc(self) -> bool {
        matches!(self, Mechanism::RpcUdp | Mechanism::RpcTcp)
    }

    fn is_datagram(self) -> bool {
        matches!(
            self,
            Mechanism::UnixDgram | Mechanism::Udp | Mechanism::RpcUdp
        )
    }

    /// Whether a streaming rate means something: not for UDP (no flow
    /// control: a stream would measure drops) nor RPC (calls, not bytes).
    fn streams(self) -> bool {
        !matches!(self, Mechanism::Udp | Mechanism::RpcUdp | Mechanism::RpcTcp)
    }

    /// `pipe,shm,rpc` → the mechanisms (`rpc` is both transports).
    ///
    /// # Errors
    /// An unknown name, or none.
    pub fn parse_list(list: &str) -> Result<Vec<Mechanism>> {
        super::parse_list(
            list,
            "--mechanisms",
            "mechanism",
            "pipe, fifo, unix, unix-dgram, shm, tcp, udp, rpc (rpc-udp, rpc-tcp)",
            "pipe,unix,tcp",
            |w| match w {
                "rpc" => vec![Mechanism::RpcUdp, Mechanism::RpcTcp],
                w => Mechanism::ALL
                    .iter()
                    .copied()
                    .filter(|m| m.name() == w)
                    .collect(),
            },
        )
    }
}

/// The largest UDP payload (65535 − 8 − 20).
const MAX_DATAGRAM: usize = 65507;
/// Each shared-memory ring's size.
const RING: u32 = 256 * 1024;
/// The status page (the child's CPU) before the rings.
const STATUS: usize = 4096;
const MAP_LEN: usize = STATUS + 2 * (Ring::HEADER + RING as usize);

/// A validated `bench ipc`.
#[derive(Debug, Clone)]
pub struct IpcConfig {
    pub mechanisms: Vec<Mechanism>,
    pub size: usize,
    pub round_trips: u64,
    pub seconds: f64,
    pub repeats: u32,
    pub chunk: usize,
    pub pin: Pin,
    pub svg: Option<PathBuf>,
    pub machine: Machine,
}

impl IpcConfig {
    /// # Errors
    /// A datagram mechanism with a size over what one datagram can carry.
    pub fn check(self) -> Result<Self> {
        if self.size > MAX_DATAGRAM {
            if let Some(m) = self
                .mechanisms
                .iter()
                .find(|m| m.is_datagram() && !m.is_rpc())
            {
                return Err(Error::usage(format!(
                    "--size {} is over the {MAX_DATAGRAM} bytes one {} datagram carries here; give a smaller size or leave {} out of --mechanisms",
                    self.size,
                    m.name(),
                    m.name()
                )));
            }
        }
        Ok(self)
    }

    fn chunk_for(&self, m: Mechanism) -> usize {
        if m.is_datagram() {
            self.chunk.min(65536)
        } else {
            self.chunk
        }
    }
}

/// Round trips, summed up.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    /// µs per round trip, over batches.
    pub spread: Spread,
    pub trips: u64,
    pub batch: u64,
    /// (max − min) / median of the repeats' medians, in percent.
    pub repeat_spread: f64,
}

/// A stream, summed up.
#[derive(Debug, Clone, Copy)]
pub struct Bandwidth {
    /// Median over the repeats, in MB/s (10⁶ bytes).
    pub mb_s: f64,
    pub chunk: usize,
    pub bytes: u64,
    pub repeat_spread: f64,
}

/// One mechanism's figures.
#[derive(Debug, Clone)]
pub struct IpcRow {
    pub mechanism: Mechanism,
    pub latency: Latency,
    pub bandwidth: Option<Bandwidth>,
    /// Where the ends ran at the end: (parent, child).
    pub cpus: (Option<usize>, Option<usize>),
}

/// `ipclab bench ipc`.
pub fn run(rec: &mut Recorder, cfg: &IpcConfig) -> Result<()> {
    super::pin(rec, cfg.pin)?;
    rec.note("one shared mapping for the whole run: a status page, then the two rings of the shm mechanism");
    let memfd = mem::memfd_create(rec, "ipclab-bench")?;
    let (memfd, map) = lab::set_up(rec, memfd, |rec, fd| {
        mem::ftruncate(rec, fd, MAP_LEN)?;
        Ok(mem::mmap_shared(rec, fd, MAP_LEN)?)
    })?;
    let mut rows = Vec::new();
    let mut result = Ok(());
    for &m in &cfg.mechanisms {
        match one(rec, cfg, &map, m) {
            Ok(row) => rows.push(row),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let _ = mem::munmap(rec, map);
    let _ = file::close(rec, memfd);
    result?;
    let tables = report::ipc_tables(cfg, &rows);
    for t in &tables {
        rec.table(t);
    }
    if let Some(path) = &cfg.svg {
        report::write_svg(rec, path, &report::ipc_chart(cfg, &rows))?;
    }
    Ok(())
}

/// The two sides' descriptors, before the fork.
struct Ends {
    parent: Vec<OwnedFd>,
    child: Vec<OwnedFd>,
    /// The FIFOs' directory and paths, opened after the fork.
    fifos: Option<(Made, PathBuf, PathBuf)>,
}

/// Makes the channel (traced).
fn make(rec: &mut Recorder, m: Mechanism) -> Result<Ends> {
    let none = |parent, child| Ends {
        parent,
        child,
        fifos: None,
    };
    let lo = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    Ok(match m {
        Mechanism::Pipe => {
            let (r1, w1) = file::pipe2(rec, OFlag::O_CLOEXEC)?;
            let (r2, w2) = file::pipe2(rec, OFlag::O_CLOEXEC)?;
            // The parent writes w1 and reads r2; the child the other way.
            none(vec![r2, w1], vec![r1, w2])
        }
        Mechanism::Fifo => {
            let dir = Made::private_dir(rec)?;
            let (up, down) = (dir.path.join("up"), dir.path.join("down"));
            file::mkfifo(rec, &up, 0o600)?;
            file::mkfifo(rec, &down, 0o600)?;
            Ends {
                parent: vec![],
                child: vec![],
                fifos: Some((dir, up, down)),
            }
        }
        Mechanism::Unix | Mechanism::UnixDgram => {
            let ty = if m == Mechanism::Unix {
                libc::SOCK_STREAM
            } else {
                libc::SOCK_DGRAM
            };
            let (a, b) = socket::unix::socketpair(rec, ty | libc::SOCK_CLOEXEC)?;
            none(vec![a], vec![b])
        }
        Mechanism::Shm => none(vec![], vec![]),
        Mechanism::Tcp | Mechanism::RpcTcp => {
            let (lst, addr) = crate::lab::tcp::listener(rec, &lo, 1, false)?;
            let c = socket::socket(
                rec,
                libc::AF_INET,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                libc::IPPROTO_TCP,
            )?;
            socket::connect(rec, c.as_fd(), &addr)?;
            let (s, _) = socket::accept4(rec, lst.as_fd(), libc::SOCK_CLOEXEC)?;
            file::close(rec, lst)?;
            for fd in [&c, &s] {
                rec.note("TCP_NODELAY: each small write goes out at once (no Nagle delay waiting for more)");
                socket::setsockopt_int(rec, fd.as_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)?;
            }
            none(vec![c], vec![s])
        }
        Mechanism::Udp | Mechanism::RpcUdp => {
            let (a, aa) = crate::lab::udp::bound_socket(rec, &lo)?;
            let (b, ba) = crate::lab::udp::bound_socket(rec, &lo)?;
            socket::connect(rec, a.as_fd(), &ba)?;
            socket::connect(rec, b.as_fd(), &aa)?;
            for fd in [&a, &b] {
                rec.note(
                    "a lost datagram must not hang the loop: a read waits at most 2 s (EAGAIN)",
                );
                socket::setsockopt_timeval(
                    rec,
                    fd.as_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    Duration::from_secs(2),
                )?;
            }
            none(vec![a], vec![b])
        }
    })
}

fn close_all(rec: &mut Recorder, fds: Vec<OwnedFd>) -> Result<()> {
    for fd in fds {
        file::close(rec, fd)?;
    }
    Ok(())
}

/// Opens this side's FIFO ends: the parent writes "up" and reads "down".
fn open_fifos(
    rec: &mut Recorder,
    up: &std::path::Path,
    down: &std::path::Path,
    parent: bool,
) -> Result<Vec<OwnedFd>> {
    let open = |rec: &mut Recorder, p: &std::path::Path, write: bool| -> Result<OwnedFd> {
        let acc = if write {
            OFlag::O_WRONLY
        } else {
            OFlag::O_RDONLY
        };
        let waits = if write {
            "open for writing blocks until a reader opens the FIFO"
        } else {
            "open for reading blocks until a writer opens the FIFO"
        };
        Ok(signal::interruptible(rec, |rec| {
            file::openat(
                rec,
                p,
                acc | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
                Some(waits),
            )
        })?)
    };
    // Same order on both sides ("up" first), so neither open waits for ever.
    let first = open(rec, up, parent)?;
    let second = open(rec, down, !parent)?;
    // rx first, then tx.
    Ok(if parent {
        vec![second, first]
    } else {
        vec![first, second]
    })
}

/// The channel over this side's ends (rx, tx), or over the rings.
fn chan<'m>(
    fds: &'m [OwnedFd],
    map: &'m Mapping,
    parent: bool,
    gone: &'m dyn Fn() -> bool,
) -> Chan<'m> {
    match fds {
        [] => {
            let a = Ring::new(map, STATUS, RING, gone);
            let b = Ring::new(map, STATUS + Ring::HEADER + RING as usize, RING, gone);
            // The parent sends on ring a, the child on ring b.
            if parent {
                Chan::Shm { rx: b, tx: a }
            } else {
                Chan::Shm { rx: a, tx: b }
            }
        }
        [one] => Chan::Fd {
            rx: one.as_fd(),
            tx: one.as_fd(),
        },
        [rx, tx, ..] => Chan::Fd {
            rx: rx.as_fd(),
            tx: tx.as_fd(),
        },
    }
}

/// One mechanism: make, fork, measure, quit, reap.
fn one(rec: &mut Recorder, cfg: &IpcConfig, map: &Mapping, m: Mechanism) -> Result<IpcRow> {
    rec.message(format!(
        "{}: {} (the loops are not traced)",
        m.name(),
        m.what()
    ));
    let ends = make(rec, m)?;
    let me = std::process::id() as i32;
    let bufsize = cfg.size.max(cfg.chunk).max(4096);
    match process::fork(rec)? {
        Forked::Child => {
            rec.forked_child();
            lab::child_exit(rec, |rec| {
                close_all(rec, ends.parent)?;
                let mut own = ends.child;
                if let Some((_, up, down)) = &ends.fifos {
                    own = open_fifos(rec, up, down, false)?;
                }
                let gone = || fast::parent() != me;
                let mut buf = vec![0u8; bufsize];
                signal::sigprocmask(rec, false, &STOPS, "Ctrl-C may now end the loop")?;
                let r = loops::obey(&chan(&own, map, false, &gone), &mut buf);
                map.word(0).store(
                    fast::current_cpu().map_or(0, |c| c as u32 + 1),
                    std::sync::atomic::Ordering::SeqCst,
                );
                signal::sigprocmask(rec, true, &STOPS, "held again for the clean-up")?;
                r.map_err(|e| loops::loop_error(e, m.name()))?;
                close_all(rec, own)
            })
        }
        Forked::Parent { child } => {
            let r = parent_side(rec, cfg, map, m, ends, child);
            let side = match &r {
                Ok(_) => Ok(()),
                Err(_) => Err(Error::protocol("the parent's side failed")),
            };
            let st = wait::finish(rec, child, side);
            let mut row = r?;
            wait::expect_exit_0(st?)?;
            let c = map.word(0).load(std::sync::atomic::Ordering::SeqCst);
            row.cpus.1 = c.checked_sub(1).map(|c| c as usize);
            Ok(row)
        }
    }
}

fn parent_side(
    rec: &mut Recorder,
    cfg: &IpcConfig,
    map: &Mapping,
    m: Mechanism,
    ends: Ends,
    child: Pid,
) -> Result<IpcRow> {
    close_all(rec, ends.child)?;
    let mut own = ends.parent;
    if let Some((dir, up, down)) = ends.fifos {
        let opened = open_fifos(rec, &up, &down, true);
        for p in [&up, &down] {
            let _ = file::unlink(rec, p);
        }
        dir.remove(
            rec,
            true,
            "both FIFOs are open: their names are no longer needed",
        );
        own = opened?;
    }
    let gone = || fast::child_ended(child.as_raw());
    let ch = chan(&own, map, true, &gone);
    let mut bufs = Bufs::new(cfg.size.max(cfg.chunk));
    signal::sigprocmask(rec, false, &STOPS, "Ctrl-C may now end the loop")?;
    let measured = measure(&ch, &mut bufs, cfg, m);
    let cpu = fast::current_cpu();
    let quit = loops::quit(&ch);
    signal::sigprocmask(rec, true, &STOPS, "held again for the clean-up")?;
    let (latency, bandwidth) = measured.map_err(|e| loops::loop_error(e, m.name()))?;
    quit.map_err(|e| loops::loop_error(e, m.name()))?;
    close_all(rec, own)?;
    Ok(IpcRow {
        mechanism: m,
        latency,
        bandwidth,
        cpus: (cpu, None),
    })
}

/// Warm-up, then `repeats` of round trips in batches; then the stream.
fn measure(
    ch: &Chan<'_>,
    b: &mut Bufs,
    cfg: &IpcConfig,
    m: Mechanism,
) -> std::result::Result<(Latency, Option<Bandwidth>), nix::errno::Errno> {
    let budget = Duration::from_secs_f64(cfg.seconds);
    let hard = hard_limit(cfg.seconds);
    let start = Instant::now();
    let mut xid = 0u32;
    let mut trips = |n: u64, b: &mut Bufs| match m {
        Mechanism::RpcUdp | Mechanism::RpcTcp => {
            loops::rpc_calls(ch, b, m == Mechanism::RpcTcp, n, &mut xid)
        }
        _ => loops::round_trips(ch, b, cfg.size, n),
    };
    // Warm-up: caches, page faults, the scheduler settling; also the estimate.
    let (mut warm, mut warm_time) = (0u64, Duration::ZERO);
    while warm < 20 || (warm_time < budget / 10 && warm < cfg.round_trips / 5) {
        warm_time += trips(10, b)?;
        warm += 10;
    }
    let per = warm_time.as_secs_f64() / warm as f64;
    let reps = u64::from(cfg.repeats);
    let fit = (budget.as_secs_f64() * 0.9 / per.max(1e-9)) as u64;
    let total = cfg.round_trips.min(fit).max(reps);
    let per_rep = (total / reps).max(1);
    let batch = (per_rep / 20).clamp(1, 200);
    let mut samples = Vec::with_capacity((per_rep.div_ceil(batch) * reps) as usize);
    let mut medians = Vec::with_capacity(reps as usize);
    let mut done = 0;
    'reps: for _ in 0..reps {
        let from = samples.len();
        let mut left = per_rep;
        while left > 0 {
            let n = left.min(batch);
            let d = trips(n, b)?;
            samples.push(d.as_secs_f64() * 1e6 / n as f64);
            left -= n;
            done += n;
            if start.elapsed() > hard {
                break 'reps;
            }
        }
        let mut mine = samples[from..].to_vec();
        medians.push(Spread::of(&mut mine).median);
    }
    let latency = Latency {
        spread: Spread::of(&mut samples),
        trips: done,
        batch,
        repeat_spread: super::repeat_spread(&medians),
    };
    if !m.streams() {
        return Ok((latency, None));
    }
    let chunk = cfg.chunk_for(m);
    let warm_bytes = (chunk as u64 * 16).max(1 << 20);
    let d0 = loops::stream(ch, b, chunk, warm_bytes)?;
    let rate = warm_bytes as f64 / d0.as_secs_f64().max(1e-9);
    let want = (rate * budget.as_secs_f64() / reps as f64) as u64;
    let per_rep = (want / chunk as u64).clamp(1, (8u64 << 30) / chunk as u64) * chunk as u64;
    let mut rates = Vec::with_capacity(reps as usize);
    let mut bytes = 0;
    for _ in 0..reps {
        let d = loops::stream(ch, b, chunk, per_rep)?;
        rates.push(per_rep as f64 / d.as_secs_f64().max(1e-9) / 1e6);
        bytes += per_rep;
        if start.elapsed() > hard {
            break;
        }
    }
    let spread = super::repeat_spread(&rates);
    Ok((
        latency,
        Some(Bandwidth {
            mb_s: Spread::of(&mut rates).median,
            chunk,
            bytes,
            repeat_spread: spread,
        }),
    ))
}
