//! Erratum 5: The notes' TCP server spins on EOF. Its loop is
//! `while True: data = conn.recv(1024); if data: …` — when the client
//! closes, recv() returns b'' (0 bytes, EOF) at once, `if data:` skips it,
//! and the loop calls recv() again, for ever, at 100% CPU. Here that loop
//! shape runs for a bounded number of turns against a client that closed,
//! then ipclab's way: close on the first 0.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::lab::repeater::RECV_SIZE;
use crate::sys::{file, socket};
use crate::trace::Recorder;

/// The turns the notes' loop is allowed here, and how long at most.
const TURNS: u32 = 1000;
const LIMIT: Duration = Duration::from_millis(500);

pub fn run(rec: &mut Recorder) -> Result<()> {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("a valid literal address");
    let (lst, addr) = crate::lab::tcp::listener(rec, &any, 5, false)?;
    let result = (|| -> Result<()> {
        let client = socket::socket(
            rec,
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            libc::IPPROTO_TCP,
        )?;
        let done = crate::sys::signal::interruptible(rec, |rec| {
            socket::connect(rec, client.as_fd(), &addr)
        });
        if let Err(e) = done {
            let _ = file::close(rec, client);
            return Err(e.into());
        }
        rec.waiting("the client's connection is queued");
        crate::lab::wait::readable(rec, lst.as_fd(), Some(Duration::from_secs(5)))?;
        let (conn, _) = socket::accept4(rec, lst.as_fd(), libc::SOCK_CLOEXEC)?;
        rec.note("the client closes without sending \"q\": its FIN reaches the server");
        file::close(rec, client)?;
        let spun = spin(rec, &conn);
        rec.note("ipclab's server does this on the first recv() = 0: it closes the connection");
        file::close(rec, conn)?;
        spun
    })();
    file::close(rec, lst)?;
    result
}

/// The notes' loop, bounded: recv() = 0 every turn, never a wait.
fn spin(rec: &mut Recorder, conn: &std::os::fd::OwnedFd) -> Result<()> {
    let mut buf = [0u8; RECV_SIZE];
    let start = Instant::now();
    let mut turns = 0u32;
    rec.message(format!(
        "the notes' loop, `data = conn.recv(1024); if data: …`, now runs at most {TURNS} turns or {} ms",
        LIMIT.as_millis()
    ));
    while turns < TURNS && start.elapsed() < LIMIT {
        rec.note(
            "0 bytes: EOF, the client has closed — `if data:` skips it and the loop asks again",
        );
        let n = socket::recv(rec, conn.as_fd(), &mut buf, 0)?;
        if n != 0 {
            return Err(Error::protocol("data after the client closed"));
        }
        turns += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    rec.message(format!(
        "{turns} turns in {:.0} ms, every recv() = 0 at once: {:.0} turns per second — and that is with each \
         turn traced and printed; the notes' server, untraced, spins far faster, at 100% of a CPU, until killed. \
         ipclab's server calls recv() once, sees 0, and closes",
        secs * 1000.0,
        f64::from(turns) / secs.max(1e-9)
    ));
    Ok(())
}
