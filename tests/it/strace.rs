//! The faithfulness guard: each run's JSON steps against `strace -f`.
//! Later labs add their runs here.

use std::time::Duration;

use crate::util::strace_crosscheck;

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn strace_agrees_with_every_pipe_option() {
    for extra in [
        &[][..],
        &["--reverse"],
        &["--fill"],
        &["--sigpipe"],
        &["--forget-close"],
        &["--duplex"],
    ] {
        let mut args = vec!["pipe"];
        args.extend_from_slice(extra);
        let Some(run) = strace_crosscheck("strace_agrees_with_every_pipe_option", &args, LIMIT)
        else {
            return;
        };
        run.assert_ok();
    }
}

#[test]
fn strace_agrees_with_the_fifo_demo() {
    if let Some(run) = strace_crosscheck("strace_agrees_with_the_fifo_demo", &["fifo"], LIMIT) {
        run.assert_ok();
    }
}

#[test]
fn strace_agrees_with_the_whole_tour() {
    // Every section in one process tree: what the tour adds between sections
    // (section headers, the summary) must make no unprinted syscall.
    if let Some(run) = strace_crosscheck(
        "strace_agrees_with_the_whole_tour",
        &["tour"],
        Duration::from_secs(90),
    ) {
        run.assert_ok();
    }
}

#[test]
fn strace_agrees_with_every_erratum() {
    if let Some(run) = strace_crosscheck(
        "strace_agrees_with_every_erratum",
        &["errata"],
        Duration::from_secs(60),
    ) {
        run.assert_ok();
    }
}

#[test]
fn strace_agrees_with_net_demo() {
    // Hosts in network namespaces, setns, rtnetlink sendmsg/recvmsg, writes
    // to /proc: every one a step, by the pid strace saw make it.
    if let Some(run) = strace_crosscheck(
        "strace_agrees_with_net_demo",
        &["net", "demo"],
        Duration::from_secs(120),
    ) {
        run.assert_ok();
    }
}
