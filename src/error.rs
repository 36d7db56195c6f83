//! Errors: a failed syscall, a misbehaving peer, bad input.

use std::fmt;

use nix::errno::Errno;

/// A syscall that returned -1; its step has already been printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysError {
    pub call: &'static str,
    pub errno: Errno,
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {:?}: {}",
            self.call,
            self.errno,
            crate::render::errno::errno_text(self.errno)
        )
    }
}

impl std::error::Error for SysError {}

/// Everything an experiment can fail with. `main` alone turns it into an exit code.
#[derive(Debug)]
pub enum Error {
    /// A syscall failed (exit 1).
    Sys(SysError),
    /// A syscall failed and the lab has a sharper explanation (exit 1).
    SysHint(SysError, String),
    /// A peer or the kernel did something the experiment cannot go on from (exit 1).
    Protocol(String),
    /// Bad input: a value that is not valid, with what would be (exit 2).
    Usage(String),
    /// A stop signal (SIGHUP, SIGINT, SIGTERM) ended the run after cleaning up (exit 128+N).
    Interrupted(i32),
}

impl Error {
    pub fn usage(msg: impl Into<String>) -> Self {
        Error::Usage(msg.into())
    }

    pub fn protocol(msg: impl Into<String>) -> Self {
        Error::Protocol(msg.into())
    }

    /// The exit status for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            Error::Interrupted(sig) => 128 + sig,
            _ => 1,
        }
    }

    /// The errno, when this is a failed syscall.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Sys(e) | Error::SysHint(e, _) => Some(e.errno),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Sys(e) => write!(f, "{e}"),
            Error::SysHint(e, hint) => write!(f, "{e}: {hint}"),
            Error::Protocol(m) | Error::Usage(m) => write!(f, "{m}"),
            Error::Interrupted(sig) => {
                let name = nix::sys::signal::Signal::try_from(*sig)
                    .map_or_else(|_| sig.to_string(), |s| s.as_str().to_string());
                write!(f, "interrupted by {name}; cleaned up")
            }
        }
    }
}

impl std::error::Error for Error {}

impl From<SysError> for Error {
    /// A call that a stop signal interrupted becomes [`Error::Interrupted`]
    /// here, in one place: no lab can mistake it for a failure, or retry it.
    fn from(e: SysError) -> Self {
        if e.errno == Errno::EINTR {
            if let Some(sig) = crate::os::stop_pending() {
                return Error::Interrupted(sig);
            }
        }
        Error::Sys(e)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
