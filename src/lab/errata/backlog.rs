//! Erratum 4: `server.listen(5)` does not "let five connections queue". On Linux the
//! backlog bounds the queue of *completed* connections waiting for accept:
//! a listener that never accepts lets backlog + 1 handshakes complete, then
//! drops the next SYNs, and those clients' connect() waits (retrying the SYN
//! after 1 s, 3 s, 7 s… for about two minutes). Shown with non-blocking
//! connects bounded by ppoll, and the queue lengths from /proc/net/tcp.

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::lab::wait;
use crate::sys::{file, socket};
use crate::trace::Recorder;

use super::read_until;

const BACKLOG: i32 = 5;
/// Clients: enough to fill the queue and see two more refused.
const CLIENTS: usize = BACKLOG as usize + 3;
/// How long each client waits for its handshake (the first SYN retry is at 1 s).
const WAIT: Duration = Duration::from_millis(300);

pub fn run(rec: &mut Recorder) -> Result<()> {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("a valid literal address");
    let (lst, addr) = crate::lab::tcp::listener(rec, &any, BACKLOG, false)?;
    rec.message(format!(
        "a listener with backlog {BACKLOG} that never calls accept(); {CLIENTS} clients connect one after another"
    ));
    let mut clients: Vec<OwnedFd> = Vec::new();
    let result = connect_all(rec, &addr, &mut clients).and_then(|done| {
        queues(rec, addr.port(), done)?;
        Ok(())
    });
    for c in clients {
        let _ = file::close(rec, c);
    }
    rec.note("the listener closes: the queued connections, never accepted, are reset");
    file::close(rec, lst)?;
    result
}

/// Connects each client without blocking; returns how many completed.
fn connect_all(rec: &mut Recorder, addr: &SocketAddr, clients: &mut Vec<OwnedFd>) -> Result<usize> {
    let mut done = 0;
    for i in 1..=CLIENTS {
        let fd = socket::socket(
            rec,
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            libc::IPPROTO_TCP,
        )?;
        rec.expect_err().note_err(
            "non-blocking: the SYN is sent, and connect() returns before the handshake ends",
        );
        let started = socket::connect(rec, fd.as_fd(), addr);
        clients.push(fd);
        let fd = clients.last().expect("just pushed").as_fd();
        match started {
            Ok(()) => {
                done += 1;
                continue;
            }
            Err(e) if e.errno == Errno::EINPROGRESS => {}
            Err(e) => return Err(e.into()),
        }
        rec.waiting(format!(
            "client #{i}: waiting at most {} ms for the handshake",
            WAIT.as_millis()
        ));
        if wait::writable(rec, fd, Some(WAIT))? {
            let err = socket::getsockopt_int(rec, fd, libc::SOL_SOCKET, libc::SO_ERROR, |v| {
                if v == 0 {
                    "no error: the handshake completed and the connection waits in the accept queue"
                        .into()
                } else {
                    "the handshake failed".into()
                }
            })?;
            if err != 0 {
                return Err(Error::protocol(format!("client #{i}: connect failed")));
            }
            done += 1;
            rec.message(format!("client #{i}: connected ({done} completed so far)"));
        } else {
            rec.message(format!(
                "client #{i}: no SYN-ACK within {} ms — the accept queue is full, so the listener dropped the SYN; \
                 a blocking connect() would sit here, resending the SYN after 1 s, 3 s, 7 s… for about two minutes",
                WAIT.as_millis()
            ));
        }
    }
    Ok(done)
}

/// Reads the listener's line of /proc/net/tcp: for a LISTEN socket the
/// kernel shows the accept queue's length as rx_queue — what `ss -lnt`
/// calls Recv-Q. (ss's Send-Q for a listener, the backlog, comes from
/// sock_diag over netlink; /proc/net/tcp shows 0 there.)
fn queues(rec: &mut Recorder, port: u16, done: usize) -> Result<()> {
    let local = format!("0100007F:{port:04X}");
    let ours = |l: &str| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.get(1) == Some(&local.as_str()) && f.get(3) == Some(&"0A")
    };
    // Listening sockets come first in the table: reading stops at ours.
    let text = read_until(
        rec,
        Path::new("/proc/net/tcp"),
        256 * 1024,
        "the kernel's table of TCP sockets, as `netstat` reads it (listening sockets first)",
        |t| t.lines().any(ours),
    )?;
    let line = text
        .lines()
        .find(|l| ours(l))
        .ok_or_else(|| Error::protocol("the listener is not in /proc/net/tcp"))?;
    let queue = line.split_whitespace().nth(4).unwrap_or("0:0");
    let rx = queue.split_once(':').map_or("0", |(_, rx)| rx);
    let rx = u32::from_str_radix(rx, 16).unwrap_or(0);
    rec.message(format!(
        "/proc/net/tcp, the listener's line: rx_queue {rx} — connections completed and waiting for accept(); \
         `ss -lnt` shows it as Recv-Q {rx}, and the backlog, {BACKLOG}, as Send-Q (ss asks sock_diag for that)"
    ));
    rec.message(format!(
        "{done} of {CLIENTS} clients completed: backlog + 1 = {} on Linux (the queue counts as full only \
         when it holds more than the backlog); the notes' \"five may queue\" is off by one, and the clients \
         beyond it are not refused but left waiting, their SYNs dropped",
        BACKLOG + 1
    ));
    if done != rx as usize {
        return Err(Error::protocol(format!(
            "{done} clients completed but /proc/net/tcp shows {rx} queued"
        )));
    }
    Ok(())
}
