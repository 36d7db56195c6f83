//! strace's `-e trace=…`: which steps are shown. Names and the classes
//! strace defines (`%network`, `%process`, `%desc`, `%file`, `%signal`,
//! `%ipc`), with `!` to exclude, as `strace -e trace=%network,!connect`.
//! Only the display is filtered: every call still runs and is counted.
//! See <https://man7.org/linux/man-pages/man1/strace.1.html> (Filtering).

/// The syscalls of each strace class that ipclab makes (strace's
/// syscallent flags TN, TP, TD, TF, TS, TI). A name may be in several.
const CLASSES: &[(&str, &[&str])] = &[
    (
        "%network",
        &[
            "socket",
            "socketpair",
            "bind",
            "listen",
            "accept",
            "accept4",
            "connect",
            "getsockname",
            "getpeername",
            "sendto",
            "recvfrom",
            "sendmsg",
            "recvmsg",
            "setsockopt",
            "getsockopt",
            "shutdown",
        ],
    ),
    (
        "%process",
        &[
            "clone",
            "clone3",
            "fork",
            "vfork",
            "execve",
            "exit_group",
            "wait4",
            "kill",
            "pidfd_open",
        ],
    ),
    (
        "%desc",
        &[
            "read",
            "write",
            "close",
            "pipe2",
            "fcntl",
            "ppoll",
            "poll",
            "epoll_create1",
            "epoll_ctl",
            "epoll_wait",
            "epoll_pwait",
            "openat",
            "newfstatat",
            "mknodat",
            "mkdirat",
            "unlinkat",
            "ioctl",
            "mmap",
            "ftruncate",
            "fsync",
            "memfd_create",
            "socket",
            "socketpair",
            "bind",
            "listen",
            "accept",
            "accept4",
            "connect",
            "getsockname",
            "getpeername",
            "sendto",
            "recvfrom",
            "sendmsg",
            "recvmsg",
            "setsockopt",
            "getsockopt",
            "shutdown",
            "pidfd_open",
            "signalfd4",
            "eventfd2",
            "dup",
            "dup2",
            "dup3",
        ],
    ),
    (
        "%file",
        &[
            "openat",
            "open",
            "mknodat",
            "mkdir",
            "mkdirat",
            "unlink",
            "unlinkat",
            "rmdir",
            "newfstatat",
            "chdir",
            "getcwd",
            "rename",
            "renameat",
            "renameat2",
            "execve",
            "memfd_create",
        ],
    ),
    (
        "%signal",
        &[
            "rt_sigaction",
            "rt_sigprocmask",
            "rt_sigreturn",
            "kill",
            "tgkill",
            "pause",
            "rt_sigsuspend",
        ],
    ),
    (
        "%ipc",
        &[
            "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "msgget", "msgsnd", "msgrcv",
        ],
    ),
];

/// What `-e` asked to show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// None: every name not excluded.
    only: Option<Vec<String>>,
    except: Vec<String>,
}

impl Filter {
    /// Parses the `-e` values: `trace=SET` (or a bare `SET`, as strace
    /// takes), where SET is names and classes joined by commas, each
    /// perhaps preceded by `!`. Other qualifiers (`signal=`, `read=`…) are
    /// refused, naming what is valid.
    pub fn parse(exprs: &[String]) -> Result<Filter, String> {
        let mut f = Filter::default();
        for e in exprs {
            let set = match e.split_once('=') {
                Some(("trace" | "t", set)) => set,
                Some((q, _)) => {
                    return Err(format!(
                        "-e {e}: only trace=… is supported (not {q}=…); e.g. -e trace=%network or -e trace=read,write"
                    ))
                }
                None => e.as_str(),
            };
            // `!a,b` excludes both, as in strace.
            let (negate, set) = match set.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, set),
            };
            for item in set.split(',').filter(|s| !s.is_empty()) {
                let names = expand(item).ok_or_else(|| {
                    format!(
                        "-e {e}: {item:?} is not a syscall name or class; classes are {}",
                        CLASSES.iter().map(|c| c.0).collect::<Vec<_>>().join(", ")
                    )
                })?;
                if negate {
                    f.except.extend(names);
                } else {
                    f.only.get_or_insert_with(Vec::new).extend(names);
                }
            }
        }
        Ok(f)
    }

    /// Whether a step of syscall `name` is shown.
    pub fn shows(&self, name: &str) -> bool {
        if self.except.iter().any(|n| n == name) {
            return false;
        }
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|n| n == name))
    }
}

/// A name or class as the names it stands for; None when it is neither.
fn expand(item: &str) -> Option<Vec<String>> {
    if let Some(class) = item.strip_prefix('%') {
        let (_, names) = CLASSES.iter().find(|(c, _)| &c[1..] == class)?;
        return Some(names.iter().map(|n| n.to_string()).collect());
    }
    let plain = item
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    (plain && !item.is_empty()).then(|| vec![item.to_string()])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(e: &[&str]) -> Filter {
        Filter::parse(&e.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("valid")
    }

    #[test]
    fn names_classes_and_negation_as_strace() {
        assert!(f(&[]).shows("read"));
        let net = f(&["trace=%network"]);
        assert!(net.shows("connect") && net.shows("recvfrom") && !net.shows("read"));
        let rw = f(&["read,write"]);
        assert!(rw.shows("write") && !rw.shows("close"));
        let not = f(&["trace=%network", "trace=!connect"]);
        assert!(not.shows("socket") && !not.shows("connect"));
        let all_but = f(&["trace=!ppoll,rt_sigprocmask"]);
        assert!(
            all_but.shows("read") && !all_but.shows("ppoll") && !all_but.shows("rt_sigprocmask")
        );
        assert!(Filter::parse(&["trace=%bogus".to_string()]).is_err());
        assert!(Filter::parse(&["signal=SIGINT".to_string()]).is_err());
        assert!(Filter::parse(&["trace=Read!".to_string()]).is_err());
    }
}
