//! One line on what a failed call means, for the errnos these labs meet.
//!
//! A `sys` wrapper or a lab can give a sharper note (it knows the address or
//! the path); this is what is shown when none does.

use nix::errno::Errno;

/// The default note under a failed step.
pub fn errno(call: &str, e: Errno) -> String {
    let text = match (call, e) {
        (_, Errno::EAGAIN) => {
            "would block: the descriptor is non-blocking and no data or room is ready now"
        }
        (_, Errno::EINTR) => {
            "interrupted by a signal before anything happened (strace shows the kernel's internal ERESTARTSYS here)"
        }
        (_, Errno::ECONNABORTED) => "the client gave up before accept() took its connection: nothing to do",
        ("write" | "sendto" | "sendmsg", Errno::EPIPE) => {
            "no reader is left on the other end: the kernel answers EPIPE (and raises SIGPIPE)"
        }
        (_, Errno::EADDRINUSE) => {
            "another socket holds this address (or TIME_WAIT does, without SO_REUSEADDR)"
        }
        (_, Errno::ECONNREFUSED) => "nobody is listening there: the peer answered with a reset",
        (_, Errno::ECONNRESET) => {
            "the peer reset the connection (RST): it closed with data unread or aborted"
        }
        (_, Errno::ETIMEDOUT) => "no answer before the timeout: the peer or the path is down",
        (_, Errno::EHOSTUNREACH) => "no route to the host: the network says it cannot be reached",
        (_, Errno::ENETUNREACH) => "no route to that network from this machine",
        (_, Errno::EACCES) => "permission denied: see the hint below for the privilege it needs",
        (_, Errno::EPERM) => "operation not permitted: this needs a privilege the process lacks",
        (_, Errno::ENOENT) => "no such file or directory on that path",
        (_, Errno::EEXIST) => "something already exists at that path",
        (_, Errno::ENOTDIR) => "a component of the path is not a directory",
        (_, Errno::ELOOP) => "the path is a symbolic link and O_NOFOLLOW refuses to follow it",
        (_, Errno::ENXIO) => {
            "no process has the FIFO open for reading (O_NONBLOCK open for writing)"
        }
        (_, Errno::EBADF) => "not an open descriptor (or not open for this direction)",
        (_, Errno::EMFILE) => "this process has reached its descriptor limit (ulimit -n)",
        (_, Errno::ENFILE) => "the whole system has reached its limit of open files",
        (_, Errno::ECHILD) => "no child left to wait for",
        (_, Errno::ESRCH) => "no such process",
        (_, Errno::EMSGSIZE) => "the datagram is larger than the protocol allows",
        (_, Errno::EINVAL) => "the kernel rejected an argument as invalid",
        _ => "",
    };
    if text.is_empty() {
        format!("failed: {}", crate::render::errno::errno_text(e))
    } else {
        text.to_string()
    }
}
