//! `ipclab bench echo`: one process drives many connections to an echo
//! server (non-blocking sockets, epoll), checks every reply byte, and
//! reports round trips per second and latency percentiles.
//!
//! Without `--target` it starts ipclab's own server in each model (quiet,
//! no reply prefix) as a forked child and stops it after; with `--target`
//! it drives any echo server (socat, ncat, a C server), so one generator
//! measures them all. Connections are made with traced calls; the load
//! loop is untraced (`sys::fast`) and bounded in count and time.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::wait::WaitStatus;

use super::{hard_limit, report::Panel, Machine, Pin};
use crate::error::{Error, Result};
use crate::lab::{self, tcp, udp, wait};
use crate::render::event::{Cell, Column, Table};
use crate::sys::fast;
use crate::sys::process::{self, Forked};
use crate::sys::signal::{self, STOPS};
use crate::sys::{file, poll, socket};
use crate::trace::Recorder;

/// What `bench echo` drives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EchoTarget {
    /// Any echo server at this address.
    Address(SocketAddr),
    /// ipclab's own servers, one model after the other.
    Own(Vec<tcp::Model>),
}

/// A validated `bench echo`.
#[derive(Debug, Clone)]
pub struct EchoConfig {
    pub target: EchoTarget,
    pub connections: usize,
    pub requests: u64,
    pub size: usize,
    pub seconds: f64,
    pub udp: bool,
    pub pin: Pin,
    pub svg: Option<std::path::PathBuf>,
    pub machine: Machine,
}

/// One server's figures.
#[derive(Debug, Clone)]
struct EchoRow {
    server: String,
    trips: u64,
    per_second: f64,
    hist: Histogram,
    /// Connections that got at least one reply.
    served: usize,
    /// Requests sent whose reply never came (UDP loss, or a server that
    /// serves one client at a time and never reached this one).
    unanswered: u64,
}

/// Latencies in buckets 1% wide from 100 ns up: bounded memory whatever
/// the count, percentiles within 1%.
#[derive(Debug, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum_ns: f64,
    n: u64,
}

const BUCKETS: usize = 1700;
const GROWTH: f64 = 1.01;
const FLOOR_NS: f64 = 100.0;

impl Histogram {
    fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            sum_ns: 0.0,
            n: 0,
        }
    }

    fn add(&mut self, d: Duration) {
        let ns = d.as_nanos() as f64;
        let i = if ns <= FLOOR_NS {
            0
        } else {
            ((ns / FLOOR_NS).ln() / GROWTH.ln()) as usize
        };
        self.counts[i.min(BUCKETS - 1)] += 1;
        self.sum_ns += ns;
        self.n += 1;
    }

    /// The `p`th percentile in µs (the bucket's upper edge).
    fn percentile_us(&self, p: f64) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        let want = ((p / 100.0) * self.n as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return FLOOR_NS * GROWTH.powi(i as i32 + 1) / 1000.0;
            }
        }
        f64::NAN
    }

    fn mean_us(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.sum_ns / self.n as f64 / 1000.0
        }
    }
}

/// `ipclab bench echo`.
pub fn run(rec: &mut Recorder, cfg: &EchoConfig) -> Result<()> {
    super::pin(rec, cfg.pin)?;
    let mut rows = Vec::new();
    match &cfg.target {
        EchoTarget::Address(a) => {
            rec.message(format!("driving the echo server at {a}"));
            rows.push(drive(rec, cfg, *a, a.to_string())?);
        }
        EchoTarget::Own(_) if cfg.udp => rows.push(own_udp(rec, cfg)?),
        EchoTarget::Own(models) => {
            for &m in models {
                rows.push(own_tcp(rec, cfg, m)?);
            }
        }
    }
    let placement = match (&cfg.target, cfg.pin) {
        (EchoTarget::Address(_), Pin::Cpu(c)) => format!(
            "this load generator pinned to CPU {c} (sched_setaffinity); the server runs where it was started (taskset -c {c} puts it beside)"
        ),
        (EchoTarget::Address(_), Pin::Off) => format!(
            "not pinned: this load generator ended on CPU {}; the server runs where it was started",
            fast::current_cpu().map_or("?".into(), |c| c.to_string())
        ),
        (EchoTarget::Own(_), Pin::Cpu(c)) => format!(
            "the load generator and ipclab's servers pinned to CPU {c} (sched_setaffinity before fork)"
        ),
        (EchoTarget::Own(_), Pin::Off) => {
            "not pinned: the scheduler placed the generator and the servers".to_string()
        }
    };
    rec.table(&super::report::machine_table(&cfg.machine, &placement));
    rec.table(&table(cfg, &rows, &placement));
    if let Some(path) = &cfg.svg {
        let panel = Panel {
            title: format!(
                "{} round trips per second ({} connections, {} bytes)",
                if cfg.udp { "UDP" } else { "TCP" },
                cfg.connections,
                cfg.size
            ),
            bars: rows
                .iter()
                .map(|r| (r.server.clone(), r.per_second, None))
                .collect(),
        };
        super::report::write_svg(rec, path, &[panel])?;
    }
    Ok(())
}

fn table(cfg: &EchoConfig, rows: &[EchoRow], placement: &str) -> Table {
    let col = |key, title| Column { key, title };
    Table {
        name: "echo".into(),
        title: format!(
            "{} echo: {} connection{}, {} bytes per request",
            if cfg.udp { "UDP" } else { "TCP" },
            cfg.connections,
            if cfg.connections == 1 { "" } else { "s" },
            cfg.size
        ),
        columns: vec![
            col("server", "server"),
            col("per_second", "trips/s"),
            col("median_us", "median µs"),
            col("p99_us", "p99 µs"),
            col("mean_us", "mean µs"),
            col("trips", "trips"),
            col("served", "served"),
            col("unanswered", "unanswered"),
        ],
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    Cell::Text(r.server.clone()),
                    Cell::Num(r.per_second, 0),
                    Cell::Num(r.hist.percentile_us(50.0), 1),
                    Cell::Num(r.hist.percentile_us(99.0), 1),
                    Cell::Num(r.hist.mean_us(), 1),
                    Cell::Int(r.trips),
                    Cell::Text(format!("{}/{}", r.served, cfg.connections)),
                    Cell::Int(r.unanswered),
                ]
            })
            .collect(),
        bars: Some(1),
        notes: vec![
            "one closed loop per connection: the next request goes out when the reply is complete and checked byte by byte; latency from send to the last byte (percentiles within 1%)".into(),
            placement.to_string(),
        ],
    }
}

/// ipclab's TCP server in `model`, quiet, as a child; driven; stopped.
fn own_tcp(rec: &mut Recorder, cfg: &EchoConfig, model: tcp::Model) -> Result<EchoRow> {
    let lo = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    rec.message(format!(
        "ipclab's own {} server, quiet and with no reply prefix, in a child (its steps are counted, not shown)",
        model.name()
    ));
    let backlog = (cfg.connections as i32).clamp(5, 4096);
    let (lst, addr) = tcp::listener(rec, &lo, backlog, model == tcp::Model::Poll)?;
    let scfg = tcp::ServerConfig {
        listen: addr,
        backlog,
        model,
        limit: None,
        prefix: Vec::new(),
        idle: None,
        max_children: cfg.connections.max(1),
    };
    match process::fork(rec)? {
        Forked::Child => {
            rec.forked_child();
            rec.silence();
            lab::child_exit(rec, |rec| tcp::serve(rec, lst, &scfg))
        }
        Forked::Parent { child } => {
            file::close(rec, lst)?;
            let row = drive(rec, cfg, addr, format!("ipclab {}", model.name()));
            stop_server(rec, child, row)
        }
    }
}

/// ipclab's UDP server, quiet, as a child; driven; stopped.
fn own_udp(rec: &mut Recorder, cfg: &EchoConfig) -> Result<EchoRow> {
    let lo = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    rec.message("ipclab's own UDP server, quiet and with no reply prefix, in a child");
    let (sock, addr) = udp::bound_socket(rec, &lo)?;
    let scfg = udp::ServerConfig {
        listen: addr,
        drop_every: None,
        prefix: Vec::new(),
    };
    match process::fork(rec)? {
        Forked::Child => {
            rec.forked_child();
            rec.silence();
            lab::child_exit(rec, |rec| udp::serve(rec, sock, &scfg))
        }
        Forked::Parent { child } => {
            file::close(rec, sock)?;
            let row = drive(rec, cfg, addr, "ipclab udp".into());
            stop_server(rec, child, row)
        }
    }
}

/// Stops our server with SIGTERM (its normal end here) and reaps it.
fn stop_server(
    rec: &mut Recorder,
    child: nix::unistd::Pid,
    row: Result<EchoRow>,
) -> Result<EchoRow> {
    rec.note("the measurement is over: the server is stopped as Ctrl-C would stop it");
    let st = wait::stop(rec, child)?;
    let row = row?;
    match st {
        WaitStatus::Exited(_, c) if c == 0 || c == 128 + libc::SIGTERM => Ok(row),
        other => Err(Error::protocol(format!(
            "the server ended badly: {}",
            process::wait_status_text(&other)
        ))),
    }
}

/// One connection of the generator.
struct Conn {
    fd: OwnedFd,
    /// Bytes of the current reply received so far.
    got: usize,
    /// When the current request went out; None when none is outstanding.
    sent_at: Option<Instant>,
    /// Requests answered.
    answered: u64,
    /// Byte that starts this connection's next request (each differs).
    seq: u8,
}

/// Connects every client (traced), runs the load (untraced), closes (traced).
fn drive(rec: &mut Recorder, cfg: &EchoConfig, addr: SocketAddr, name: String) -> Result<EchoRow> {
    let ep = poll::epoll_create1(rec, libc::EPOLL_CLOEXEC)?;
    let mut conns: Vec<Conn> = Vec::with_capacity(cfg.connections);
    let made = connect_all(rec, cfg, addr, ep.as_fd(), &mut conns);
    let result = made.and_then(|()| {
        signal::sigprocmask(rec, false, &STOPS, "Ctrl-C may now end the load")?;
        let r = load(cfg, ep.as_fd(), &mut conns);
        signal::sigprocmask(rec, true, &STOPS, "held again for the clean-up")?;
        r.map_err(|e| super::loops::loop_error(e, "echo"))
    });
    for c in conns.drain(..) {
        let _ = file::close(rec, c.fd);
    }
    file::close(rec, ep)?;
    let (trips, elapsed, hist, served, unanswered) = result?;
    Ok(EchoRow {
        server: name,
        trips,
        per_second: trips as f64 / elapsed.as_secs_f64().max(1e-9),
        hist,
        served,
        unanswered,
    })
}

fn connect_all(
    rec: &mut Recorder,
    cfg: &EchoConfig,
    addr: SocketAddr,
    ep: std::os::fd::BorrowedFd<'_>,
    conns: &mut Vec<Conn>,
) -> Result<()> {
    let (ty, proto) = if cfg.udp {
        (libc::SOCK_DGRAM, libc::IPPROTO_UDP)
    } else {
        (libc::SOCK_STREAM, libc::IPPROTO_TCP)
    };
    for i in 0..cfg.connections {
        let fd = socket::socket(
            rec,
            crate::lab::repeater::family(&addr),
            ty | libc::SOCK_CLOEXEC,
            proto,
        )?;
        let (fd, ()) = lab::set_up(rec, fd, |rec, fd| {
            if !cfg.udp {
                socket::setsockopt_int(rec, fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)?;
            }
            // Blocking connect: on loopback (or any listening server) it
            // returns at once; Ctrl-C can still end a slow one.
            signal::interruptible(rec, |rec| socket::connect(rec, fd, &addr)).map_err(|e| {
                Error::SysHint(
                    e,
                    format!("cannot connect to {addr}: is an echo server listening there?"),
                )
            })?;
            rec.note("non-blocking from now on: the load loop waits in epoll, never in a read");
            let fl = file::fcntl_getfl(rec, fd)?;
            file::fcntl_setfl(rec, fd, fl | nix::fcntl::OFlag::O_NONBLOCK)?;
            poll::epoll_ctl(
                rec,
                ep,
                libc::EPOLL_CTL_ADD,
                fd.as_raw_fd(),
                libc::EPOLLIN as u32,
                i as u64,
            )?;
            Ok(())
        })?;
        conns.push(Conn {
            fd,
            got: 0,
            sent_at: None,
            answered: 0,
            seq: i as u8,
        });
    }
    Ok(())
}

/// Fills `buf` with request number `seq`'s bytes: letters a to p, so no
/// request is ever a lone "q" (which tells the seed's servers to stop).
fn pattern(buf: &mut [u8], seq: u8) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = b'a' + (seq.wrapping_add(i as u8) % 16);
    }
}

type Load = (u64, Duration, Histogram, usize, u64);

/// The load: every connection sends, waits for the whole echo, checks it,
/// sends again — until `requests` are answered or `seconds` pass.
fn load(
    cfg: &EchoConfig,
    ep: std::os::fd::BorrowedFd<'_>,
    conns: &mut [Conn],
) -> std::result::Result<Load, Errno> {
    let size = cfg.size;
    let mut out = vec![0u8; size];
    let mut back = vec![0u8; size.max(65536)];
    let mut expect = vec![0u8; size];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; conns.len().min(256)];
    let mut hist = Histogram::new();
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(cfg.seconds);
    let hard = start + hard_limit(cfg.seconds);
    let mut issued = 0u64;
    let mut done = 0u64;
    // When the last reply was complete: the rate is over the time the
    // replies took, not the grace period after the deadline.
    let mut last = start;
    let send = |c: &mut Conn, out: &mut [u8]| -> std::result::Result<(), Errno> {
        pattern(out, c.seq);
        // The clock starts before the write: the server may run (and even
        // answer) before write() returns to us.
        let t = Instant::now();
        let n = fast::write(c.fd.as_fd(), out)?;
        if n != out.len() {
            // 32-byte requests into an empty socket always fit; a partial
            // write means the server is not reading at all.
            return Err(Errno::EAGAIN);
        }
        c.sent_at = Some(t);
        c.got = 0;
        Ok(())
    };
    for c in conns.iter_mut() {
        if issued < cfg.requests {
            send(c, &mut out)?;
            issued += 1;
        }
    }
    // After the deadline, outstanding replies get this long to arrive.
    let grace = Duration::from_millis(500);
    loop {
        if fast::stopping() {
            return Err(Errno::EINTR);
        }
        let now = Instant::now();
        let outstanding = conns.iter().any(|c| c.sent_at.is_some());
        if !outstanding || now >= hard || (now >= deadline + grace) {
            break;
        }
        let wait_ms = if now >= deadline { 50 } else { 100 };
        let n = fast::epoll_wait(ep, &mut events, wait_ms)?;
        if n == 0 && cfg.udp {
            // A lost datagram is given up after a second: send the next.
            for c in conns.iter_mut() {
                if c.sent_at
                    .is_some_and(|t| t.elapsed() > Duration::from_secs(1))
                {
                    c.sent_at = None;
                    if Instant::now() < deadline && issued < cfg.requests {
                        c.seq = c.seq.wrapping_add(1);
                        send(c, &mut out)?;
                        issued += 1;
                    }
                }
            }
        }
        for ev in &events[..n] {
            let c = &mut conns[ev.u64 as usize];
            let Some(at) = c.sent_at else {
                // A reply nobody waits for (a late datagram): drop it.
                let _ = fast::read(c.fd.as_fd(), &mut back);
                continue;
            };
            let r = match fast::read(c.fd.as_fd(), &mut back[..size - c.got]) {
                Ok(0) => return Err(Errno::EPIPE),
                Ok(r) => r,
                Err(Errno::EAGAIN) => continue,
                Err(e) => return Err(e),
            };
            pattern(&mut expect, c.seq);
            if back[..r] != expect[c.got..c.got + r] {
                return Err(Errno::EBADMSG);
            }
            c.got += r;
            if c.got < size {
                continue;
            }
            last = Instant::now();
            hist.add(last - at);
            c.sent_at = None;
            c.answered += 1;
            done += 1;
            c.seq = c.seq.wrapping_add(1);
            if Instant::now() < deadline && issued < cfg.requests {
                send(c, &mut out)?;
                issued += 1;
            }
        }
    }
    let elapsed = last.saturating_duration_since(start);
    let served = conns.iter().filter(|c| c.answered > 0).count();
    Ok((done, elapsed, hist, served, issued - done))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_percentiles_are_within_a_percent() {
        let mut h = Histogram::new();
        for us in 1..=1000u64 {
            h.add(Duration::from_micros(us));
        }
        let p50 = h.percentile_us(50.0);
        assert!((p50 - 500.0).abs() / 500.0 < 0.011, "{p50}");
        let p99 = h.percentile_us(99.0);
        assert!((p99 - 990.0).abs() / 990.0 < 0.011, "{p99}");
        assert!((h.mean_us() - 500.5).abs() < 1e-6);
        h.add(Duration::from_secs(3600));
        assert_eq!(h.n, 1001);
        assert_eq!(Histogram::new().percentile_us(50.0), 0.0);
    }
}
