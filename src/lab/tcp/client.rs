//! The client side: socket → connect → (sendto → recvfrom)… → close, and
//! `tcp demo`, which runs the server in a child and two clients here.

use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::wait::WaitStatus;

use super::{listener, send_all, serve, ClientConfig, Model, ServerConfig};
use crate::error::{Error, Result};
use crate::lab::repeater::{family, is_quit, shown, RECV_SIZE};
use crate::lab::{child_exit, wait};
use crate::sys::poll::{self, Lets};
use crate::sys::process::{self, Forked};
use crate::sys::{file, signal, socket};
use crate::trace::Recorder;

/// How long the demo's clients wait for a reply.
const DEMO_TIMEOUT: Duration = Duration::from_secs(10);

/// `ipclab tcp client`.
pub fn client(rec: &mut Recorder, cfg: &ClientConfig) -> Result<()> {
    let sock = connect(rec, &cfg.connect, None)?;
    let result = match &cfg.messages {
        Some(list) => {
            let mut r = Ok(());
            for m in list {
                match exchange(rec, &sock, m, cfg.timeout) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        r = Err(e);
                        break;
                    }
                }
            }
            r
        }
        None => interactive(rec, &sock, cfg.timeout),
    };
    file::close(rec, sock)?;
    result
}

/// socket → connect, with each classic failure explained.
fn connect(rec: &mut Recorder, addr: &SocketAddr, note: Option<&str>) -> Result<OwnedFd> {
    let sock = socket::socket(
        rec,
        family(addr),
        libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
        libc::IPPROTO_TCP,
    )?;
    rec.note(note.unwrap_or(
        "the three-way handshake (SYN, SYN-ACK, ACK) is done: the connection exists (the server may not have accept()ed it yet)",
    ));
    rec.waiting("waiting for the handshake");
    let done = signal::interruptible(rec, |rec| socket::connect(rec, sock.as_fd(), addr));
    if let Err(e) = done {
        let hint = match e.errno {
            Errno::EINTR => {
                let _ = file::close(rec, sock);
                return Err(e.into());
            }
            Errno::ECONNREFUSED => format!(
                "nobody is listening on {addr}: the kernel answered the SYN with a RST — start `ipclab tcp server --listen {addr}` first"
            ),
            Errno::ETIMEDOUT => format!(
                "no answer to the SYNs from {addr}: the host is down or a firewall drops them silently"
            ),
            Errno::EHOSTUNREACH | Errno::ENETUNREACH => format!(
                "no route to {}: an ICMP unreachable came back, or this machine has no route there",
                addr.ip()
            ),
            _ => format!("cannot connect to {addr}"),
        };
        let _ = file::close(rec, sock);
        return Err(Error::SysHint(e, hint));
    }
    Ok(sock)
}

/// Sends one message on a connected stream socket (TCP or Unix) and waits
/// for the reply. Returns false once the conversation is over ("q" sent
/// and the server closed).
pub(crate) fn exchange(
    rec: &mut Recorder,
    sock: &OwnedFd,
    msg: &[u8],
    timeout: Duration,
) -> Result<bool> {
    let who = "the server";
    if is_quit(msg) {
        rec.note("\"q\" sent: the server closes this connection (the iterative one also stops)");
    } else {
        rec.note(
            "sent; the client now waits for the reply before sending more — a stream socket has no \
             message boundaries, so two quick sends could reach the server as one recv()",
        );
    }
    if send_all(rec, sock, msg, who)?.is_none() {
        return Err(Error::protocol("the server closed the connection"));
    }
    let mut buf = [0u8; 4 * RECV_SIZE];
    if is_quit(msg) {
        // The seed's server closes without a reply; read until it does.
        for _ in 0..64 {
            rec.waiting("waiting for the server to close the connection");
            if !wait::readable(rec, sock.as_fd(), Some(timeout))? {
                return Err(Error::protocol(format!(
                    "the server neither replied nor closed within {} s after \"q\" (--timeout)",
                    timeout.as_secs_f64()
                )));
            }
            match socket::recv(rec, sock.as_fd(), &mut buf, 0) {
                Ok(0) => {
                    rec.message("the server closed the connection after \"q\": recv() = 0 is EOF");
                    return Ok(false);
                }
                Ok(n) => rec.message(format!("reply: {}", shown(&buf[..n]))),
                Err(e) if e.errno == Errno::ECONNRESET => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(false);
    }
    rec.waiting(format!(
        "waiting up to {} s for the reply",
        timeout.as_secs_f64()
    ));
    if !wait::readable(rec, sock.as_fd(), Some(timeout))? {
        return Err(Error::protocol(format!(
            "no reply within {} s (--timeout): the server is busy or stuck; the seed's client would wait forever",
            timeout.as_secs_f64()
        )));
    }
    match socket::recv(rec, sock.as_fd(), &mut buf, 0) {
        Ok(0) => Err(Error::protocol(
            "the server closed the connection without replying (recv() = 0, EOF)",
        )),
        Ok(n) => {
            rec.message(format!("reply: {}", shown(&buf[..n])));
            Ok(true)
        }
        Err(e) => Err(e.into()),
    }
}

/// Lines from stdin, read with traced read(2) calls into a fixed buffer.
pub struct StdinLines {
    buf: [u8; RECV_SIZE],
    len: usize,
    eof: bool,
    /// Set when a watched socket spoke before stdin did.
    pub peer_closed: bool,
}

impl Default for StdinLines {
    fn default() -> Self {
        StdinLines {
            buf: [0; RECV_SIZE],
            len: 0,
            eof: false,
            peer_closed: false,
        }
    }
}

impl StdinLines {
    /// Waits for stdin or the socket; false when the socket spoke first
    /// (the server closed, or sent without being asked).
    fn stdin_or_peer(&mut self, rec: &mut Recorder, sock: BorrowedFd<'_>) -> Result<bool> {
        let stdin = std::io::stdin();
        let mut set = [
            poll::pollfd(stdin.as_fd(), libc::POLLIN),
            poll::pollfd(sock, libc::POLLIN),
        ];
        rec.waiting("waiting for a line on stdin (Ctrl-D ends), watching the connection too");
        poll::ppoll(rec, &mut set, None, Lets::Stops)?;
        if set[1].revents != 0 && set[0].revents == 0 {
            self.peer_closed = true;
            return Ok(false);
        }
        Ok(true)
    }
    /// The next line without its newline (and "\r"); a line longer than
    /// 1024 bytes comes in 1024-byte pieces. None at end of input, or when
    /// `watch` (a connected socket, watched with stdin so that a server that
    /// closes is noticed at once) becomes readable first: then `peer_closed`.
    pub fn next_line(
        &mut self,
        rec: &mut Recorder,
        watch: Option<BorrowedFd<'_>>,
    ) -> Result<Option<Vec<u8>>> {
        loop {
            if let Some(i) = self.buf[..self.len].iter().position(|&b| b == b'\n') {
                let mut line = self.buf[..i].to_vec();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.buf.copy_within(i + 1..self.len, 0);
                self.len -= i + 1;
                return Ok(Some(line));
            }
            if self.len >= RECV_SIZE || (self.eof && self.len > 0) {
                let n = self.len.min(RECV_SIZE);
                let line = self.buf[..n].to_vec();
                self.buf.copy_within(n..self.len, 0);
                self.len -= n;
                return Ok(Some(line));
            }
            if self.eof {
                return Ok(None);
            }
            if let Some(sock) = watch {
                if !self.stdin_or_peer(rec, sock)? {
                    return Ok(None);
                }
            } else {
                rec.waiting("waiting for a line on stdin (Ctrl-D ends)");
                wait::readable(rec, std::io::stdin().as_fd(), None)?;
            }
            let stdin = std::io::stdin();
            // Not empty: a full buffer was handed out as a piece above.
            let n = file::read(rec, stdin.as_fd(), &mut self.buf[self.len..])?;
            if n == 0 {
                self.eof = true;
            }
            self.len += n;
        }
    }
}

/// Lines from stdin, each sent as one message on a connected stream
/// socket, until end of input or "q".
pub(crate) fn interactive(rec: &mut Recorder, sock: &OwnedFd, timeout: Duration) -> Result<()> {
    rec.message("type a message and Enter to send it to the repeater server; \"q\" quits (the newline is not sent)");
    let mut lines = StdinLines::default();
    while let Some(line) = lines.next_line(rec, Some(sock.as_fd()))? {
        if line.is_empty() {
            rec.message("empty line: nothing sent (a 0-byte send carries nothing on a stream socket, and no reply would come)");
            continue;
        }
        if !exchange(rec, sock, &line, timeout)? {
            return Ok(());
        }
    }
    if lines.peer_closed {
        let mut buf = [0u8; RECV_SIZE];
        match socket::recv(rec, sock.as_fd(), &mut buf, 0) {
            Ok(0) | Err(_) => {
                return Err(Error::protocol(
                    "the server closed the connection while we waited for input (recv() = 0, EOF)",
                ))
            }
            Ok(n) => rec.message(format!(
                "unasked data from the server: {}",
                shown(&buf[..n])
            )),
        }
        return Ok(());
    }
    rec.message("end of input: closing the connection (the server's recv() returns 0)");
    Ok(())
}

/// `ipclab tcp demo`: the client here, the server in a child; two
/// connections, so the model's handling of a second client shows.
pub fn demo(rec: &mut Recorder, model: Model) -> Result<()> {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("a valid literal address");
    let (lst, addr) = listener(rec, &any, 5, model == Model::Poll)?;
    let mut cfg = ServerConfig::new(addr, model);
    cfg.limit = Some(2);
    match process::fork(rec)? {
        Forked::Child => child_exit(rec, |rec| serve(rec, lst, &cfg)),
        Forked::Parent { child } => {
            rec.note(
                "the client closes its copy of the listening socket: the server child owns it",
            );
            let side = file::close(rec, lst)
                .map_err(Error::from)
                .and_then(|()| demo_client(rec, &addr, model));
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

fn demo_client(rec: &mut Recorder, addr: &SocketAddr, model: Model) -> Result<()> {
    rec.message(format!("client A connects to {addr}"));
    let a = connect(rec, addr, None)?;
    exchange(rec, &a, b"hello", DEMO_TIMEOUT)?;
    exchange(rec, &a, "你好，复读机".as_bytes(), DEMO_TIMEOUT)?;
    rec.message("client B connects while A is still connected");
    let b = connect(
        rec,
        addr,
        Some("connected, though the server has not called accept() for B: the kernel did the handshake alone, and B waits in the listen backlog"),
    )?;
    rec.note("B's request is sent; it waits in B's receive queue on the server side until someone reads it");
    send_all(rec, &b, b"I am the second client", "the server")?;
    let ms: u64 = if model == Model::Iterative { 500 } else { 5000 };
    rec.waiting(format!("waiting at most {ms} ms for B's reply"));
    if !wait::readable(rec, b.as_fd(), Some(Duration::from_millis(ms)))? {
        rec.message(format!(
            "no reply for B within {ms} ms: the {} server is busy with A — B waits in the backlog until A is done",
            model.name()
        ));
    } else {
        rec.message(format!(
            "B got its reply while A is still connected: the {} server serves clients concurrently",
            model.name()
        ));
    }
    rec.note("A closes without sending \"q\": the server's recv() on A returns 0 (EOF)");
    file::close(rec, a)?;
    let mut buf = [0u8; 4 * RECV_SIZE];
    rec.waiting("waiting for B's reply");
    if !wait::readable(rec, b.as_fd(), Some(DEMO_TIMEOUT))? {
        return Err(Error::protocol("no reply for B within 10 s"));
    }
    let n = socket::recv(rec, b.as_fd(), &mut buf, 0)?;
    if n == 0 {
        return Err(Error::protocol("the server closed B without replying"));
    }
    rec.message(format!("reply to B: {}", shown(&buf[..n])));
    exchange(rec, &b, b"q", DEMO_TIMEOUT)?;
    file::close(rec, b)?;
    Ok(())
}
