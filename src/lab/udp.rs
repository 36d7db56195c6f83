//! The seed's UDP repeater: server socket → bind → recvfrom → sendto …;
//! client socket → sendto → ppoll (bounded: a lost reply is reported) → recvfrom ….
//!
//! The notes' comparison with TCP, shown by the calls themselves: no
//! listen, accept or connect; one socket serves every client; each
//! recvfrom says who sent the datagram and each sendto names the receiver.
//! A datagram is a message: its boundaries are kept, 0 bytes is a real
//! (empty) message and not EOF, and nothing is retransmitted — so the client
//! sets a receive timeout and reports a lost reply instead of hanging
//! forever like the seed's client. Every wait is a ppoll that lets Ctrl-C
//! in (see `sys::signal`); the recvfrom after it returns at once.

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::wait::WaitStatus;

use crate::error::{Error, Result};
use crate::lab::repeater::{self, family, is_quit, reply_into, shown};
use crate::lab::{child_exit, wait};
use crate::sys::process::{self, Forked};
use crate::sys::{file, socket};
use crate::trace::Recorder;

/// The largest datagram a UDP socket can receive (and the buffer's size):
/// 65535 minus the 8-byte UDP header; over IPv4 65507 fit after the IP header.
pub const MAX_DATAGRAM: usize = 65535;

/// What the notes say about UDP compared with TCP.
pub const COMPARISON: &str = "UDP, compared with TCP (as the notes say): the server needs no listen() \
and no accept(), the client no connect(); one socket serves every client — recvfrom() tells who sent \
each datagram, and sendto() must name the receiver";

/// A validated `udp server`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Drop every Nth reply, to show loss.
    pub drop_every: Option<u32>,
    pub prefix: Vec<u8>,
}

/// A validated `udp client`.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub connect: SocketAddr,
    pub messages: Option<Vec<Vec<u8>>>,
    pub timeout: Duration,
}

/// Checks a number of seconds given as `option` (`--timeout`).
pub fn check_timeout(secs: f64, option: &str) -> Result<Duration> {
    if !(0.001..=3600.0).contains(&secs) {
        return Err(Error::usage(format!(
            "{option} {secs} is out of range: give seconds between 0.001 and 3600"
        )));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// socket → bind (→ getsockname for port 0).
pub fn bound_socket(rec: &mut Recorder, addr: &SocketAddr) -> Result<(OwnedFd, SocketAddr)> {
    let fd = socket::socket(
        rec,
        family(addr),
        libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
        libc::IPPROTO_UDP,
    )?;
    crate::lab::set_up(rec, fd, |rec, fd| {
        rec.note(
            "bound: datagrams sent to this address now queue on this socket — no listen(), no accept()",
        );
        if let Err(e) = socket::bind(rec, fd, addr) {
            let hint = match e.errno {
                Errno::EADDRINUSE => format!("another socket already has UDP {addr}: stop it or pick another port (0: the kernel chooses)"),
                Errno::EACCES => format!("port {} is below 1024: it needs root or CAP_NET_BIND_SERVICE", addr.port()),
                Errno::EADDRNOTAVAIL => format!("{} is not an address of this machine", addr.ip()),
                _ => format!("cannot bind UDP {addr}"),
            };
            return Err(Error::SysHint(e, hint));
        }
        let local = repeater::local_address(rec, fd, addr)?;
        Ok(local)
    })
}

/// `ipclab udp server`.
pub fn server(rec: &mut Recorder, cfg: &ServerConfig) -> Result<()> {
    let (sock, local) = bound_socket(rec, &cfg.listen)?;
    rec.message(format!("UDP server on {local}; {COMPARISON}"));
    serve(rec, sock, cfg)
}

/// Answers datagrams on a bound socket until "q" (or a stop signal).
pub fn serve(rec: &mut Recorder, sock: OwnedFd, cfg: &ServerConfig) -> Result<()> {
    let result = serve_loop(rec, &sock, cfg);
    rec.note("the server's socket is closed: datagrams to its port are now answered with ICMP port unreachable");
    file::close(rec, sock)?;
    result
}

/// The largest UDP payload over IPv4: 65535 minus the IPv4 and UDP headers.
const MAX_DATAGRAM_V4: usize = 65507;

fn serve_loop(rec: &mut Recorder, sock: &OwnedFd, cfg: &ServerConfig) -> Result<()> {
    // Fixed, the largest datagram: memory does not grow with what clients send.
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut reply = Vec::with_capacity(cfg.prefix.len() + MAX_DATAGRAM);
    let mut replies = 0u64;
    loop {
        rec.waiting("waiting for a datagram from any client");
        wait::readable(rec, sock.as_fd(), None)?;
        let (n, from) = match socket::recvfrom(rec, sock.as_fd(), &mut buf, 0) {
            Ok(r) => r,
            // An ICMP error queued for an earlier reply (Linux reports some on
            // unconnected sockets too): not this datagram's business.
            Err(e) if e.errno == Errno::ECONNREFUSED => continue,
            Err(e) => return Err(e.into()),
        };
        let msg = &buf[..n];
        let who = from.map_or("an unknown sender".to_string(), |a| a.to_string());
        if is_quit(msg) {
            rec.message(format!(
                "{who} sent \"q\": the server stops, as in the seed (no reply to \"q\")"
            ));
            return Ok(());
        }
        if n == 0 {
            rec.message(format!(
                "an empty datagram from {who}: with UDP 0 bytes is a real message, not EOF (there is no connection to end)"
            ));
        } else if rec.tracing() {
            rec.message(format!("datagram from {who}: {}", shown(msg)));
        }
        let Some(to) = from else { continue };
        replies += 1;
        if cfg.drop_every.is_some_and(|k| replies % u64::from(k) == 0) {
            rec.message(format!(
                "reply #{replies} dropped on purpose (--drop-every {}): the client waits in vain — UDP itself never notices",
                cfg.drop_every.unwrap_or(0)
            ));
            continue;
        }
        reply_into(&mut reply, &cfg.prefix, msg);
        if reply.len() > MAX_DATAGRAM_V4 {
            rec.note_err(format!(
                "the reply ({} bytes: prefix + message) is larger than one UDP datagram may be (65507 bytes over IPv4): \
                 the kernel refuses it; the server carries on",
                reply.len()
            ));
        }
        match socket::sendto(rec, sock.as_fd(), &reply, 0, Some(&to)) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.errno,
                    Errno::EMSGSIZE | Errno::ECONNREFUSED | Errno::EAGAIN | Errno::ENOBUFS
                ) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// `ipclab udp client`.
pub fn client(rec: &mut Recorder, cfg: &ClientConfig) -> Result<()> {
    let sock = socket::socket(
        rec,
        family(&cfg.connect),
        libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
        libc::IPPROTO_UDP,
    )?;
    let result = talk(rec, &sock, cfg);
    file::close(rec, sock)?;
    result
}

fn talk(rec: &mut Recorder, sock: &OwnedFd, cfg: &ClientConfig) -> Result<()> {
    let mut counts = Counts::default();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    match &cfg.messages {
        Some(list) => {
            for m in list {
                if !one(rec, sock, cfg, m, &mut buf, &mut counts)? {
                    break;
                }
            }
        }
        None => {
            rec.message("type a message and Enter to send it as one datagram; \"q\" stops the server (the newline is not sent)");
            let mut lines = crate::lab::tcp::StdinLines::default();
            while let Some(line) = lines.next_line(rec, None)? {
                if !one(rec, sock, cfg, &line, &mut buf, &mut counts)? {
                    break;
                }
            }
        }
    }
    rec.message(format!(
        "{} sent, {} received, {} lost",
        crate::trace::names::count(counts.sent as usize, "datagram", "datagrams"),
        crate::trace::names::count(counts.replies as usize, "reply", "replies"),
        counts.lost
    ));
    if counts.lost > 0 && counts.replies == 0 {
        return Err(Error::protocol(format!(
            "no reply at all from {}: is `ipclab udp server --listen {}` running? (sendto() succeeds even when nobody listens)",
            cfg.connect, cfg.connect
        )));
    }
    Ok(())
}

#[derive(Default)]
struct Counts {
    sent: u64,
    replies: u64,
    lost: u64,
}

/// Sends one datagram and waits (bounded) for the reply. False after "q".
fn one(
    rec: &mut Recorder,
    sock: &OwnedFd,
    cfg: &ClientConfig,
    msg: &[u8],
    buf: &mut [u8],
    counts: &mut Counts,
) -> Result<bool> {
    if counts.sent == 0 {
        rec.note(
            "no connect(): the first sendto() binds this socket to a free local port implicitly",
        );
    }
    rec.note_err("the datagram was refused before it left: see the errno");
    socket::sendto(rec, sock.as_fd(), msg, 0, Some(&cfg.connect))?;
    counts.sent += 1;
    if is_quit(msg) {
        rec.message("\"q\" sent: the server stops and does not reply, so the client does not wait");
        return Ok(false);
    }
    rec.waiting(format!(
        "waiting for the reply, at most {:.3} s (the seed's client waits forever here)",
        cfg.timeout.as_secs_f64()
    ));
    rec.note(format!(
        "no reply within {:.3} s: the request or its reply was lost — UDP does not retransmit, the application must",
        cfg.timeout.as_secs_f64()
    ));
    if !wait::readable(rec, sock.as_fd(), Some(cfg.timeout))? {
        counts.lost += 1;
        rec.message(format!("lost: no reply to {}", shown(msg)));
        return Ok(true);
    }
    match socket::recvfrom(rec, sock.as_fd(), buf, 0) {
        Ok((n, from)) => {
            counts.replies += 1;
            let who = from.map_or("?".to_string(), |a| a.to_string());
            rec.message(format!("reply from {who}: {}", shown(&buf[..n])));
        }
        // An ICMP port unreachable, reported on this socket.
        Err(e) if e.errno == Errno::ECONNREFUSED => {
            counts.lost += 1;
            rec.message("the server's host answered ICMP port unreachable: nobody listens there");
        }
        Err(e) => return Err(e.into()),
    }
    Ok(true)
}

/// `ipclab udp demo`: the client here, the server in a child that drops
/// every third reply.
pub fn demo(rec: &mut Recorder) -> Result<()> {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("a valid literal address");
    let (sock, addr) = bound_socket(rec, &any)?;
    rec.message(COMPARISON);
    let scfg = ServerConfig {
        listen: addr,
        drop_every: Some(3),
        prefix: repeater::SEED_PREFIX.as_bytes().to_vec(),
    };
    match process::fork(rec)? {
        Forked::Child => child_exit(rec, |rec| serve(rec, sock, &scfg)),
        Forked::Parent { child } => {
            rec.note("the client closes its copy of the server's socket: the server child owns it");
            let ccfg = ClientConfig {
                connect: addr,
                messages: Some(vec![
                    b"hello".to_vec(),
                    "你好，复读机".as_bytes().to_vec(),
                    b"this reply will be dropped".to_vec(),
                    b"after the loss".to_vec(),
                    b"q".to_vec(),
                ]),
                timeout: Duration::from_millis(500),
            };
            let side = file::close(rec, sock)
                .map_err(Error::from)
                .and_then(|()| client(rec, &ccfg));
            match wait::finish(rec, child, side)? {
                WaitStatus::Exited(_, 0) => Ok(()),
                other => Err(Error::protocol(format!(
                    "the server {}",
                    process::wait_status_text(&other)
                ))),
            }
        }
    }
}
