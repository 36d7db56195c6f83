//! Erratum 6: The notes' UDP client waits for ever when a reply is lost:
//! `client.recv(1024)` has no timeout, and UDP never retransmits. A
//! datagram goes to a port where a socket is bound but nobody answers (no
//! ICMP comes back either), the seed's wait is shown bounded by ppoll, then
//! the fix: SO_RCVTIMEO, after which recvfrom() gives up with EAGAIN.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::time::Duration;

use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::lab::wait;
use crate::sys::{file, socket};
use crate::trace::Recorder;

const SHOWN_WAIT: Duration = Duration::from_secs(1);
const FIX: Duration = Duration::from_millis(500);

pub fn run(rec: &mut Recorder) -> Result<()> {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("a valid literal address");
    rec.note("a socket that nobody will ever read: datagrams sent to it queue up, unanswered, and no ICMP error comes back");
    let (sink, addr) = crate::lab::udp::bound_socket(rec, &any)?;
    let result = (|| -> Result<()> {
        let client = socket::socket(
            rec,
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::IPPROTO_UDP,
        )?;
        let r = (|| -> Result<()> {
            socket::sendto(rec, client.as_fd(), b"hello", 0, Some(&addr))?;
            rec.waiting(format!(
                "the seed's client would wait here for ever; shown for {} s",
                SHOWN_WAIT.as_secs()
            ));
            rec.note("nothing: the request (or its reply) is lost, and `client.recv(1024)` has no timeout — the seed's client is still waiting, and would be tomorrow");
            if wait::readable(rec, client.as_fd(), Some(SHOWN_WAIT))? {
                return Err(Error::protocol("a reply came from a socket nobody reads"));
            }
            rec.note(format!(
                "the fix: a receive timeout of {} ms (Python: `client.settimeout(0.5)`)",
                FIX.as_millis()
            ));
            socket::setsockopt_timeval(
                rec,
                client.as_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                FIX,
            )?;
            let mut buf = [0u8; 1024];
            rec.waiting(format!("recvfrom() gives up after {} ms", FIX.as_millis()));
            rec.expect_err().note_err(
                "EAGAIN after the timeout: the client knows the reply is lost and can resend or report it \
                 (Python raises socket.timeout); ipclab's udp client does the same with a ppoll timeout, \
                 which also lets Ctrl-C in",
            );
            match socket::recvfrom(rec, client.as_fd(), &mut buf, 0) {
                Err(e) if e.errno == Errno::EAGAIN => Ok(()),
                Err(e) => Err(e.into()),
                Ok(_) => Err(Error::protocol("a reply came from a socket nobody reads")),
            }
        })();
        file::close(rec, client)?;
        r
    })();
    file::close(rec, sink)?;
    result
}
