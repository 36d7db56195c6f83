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

#[test]
fn strace_agrees_with_the_rpc_demo() {
    if let Some(run) = strace_crosscheck(
        "strace_agrees_with_the_rpc_demo",
        &["rpc", "demo", "--calls", "4"],
        Duration::from_secs(90),
    ) {
        run.assert_ok();
    }
}

#[test]
fn strace_agrees_with_an_rpc_call_over_tcp_and_udp() {
    let srv = crate::rpc::Bg::start(&["rpc", "server", "--listen", "127.0.0.1"]);
    let port = srv.addr.port().to_string();
    for t in ["--tcp", "--udp"] {
        let args = ["rpc", "call", "remoteAdd", "10", "20", t, "--port", &port];
        if let Some(run) = strace_crosscheck(
            "strace_agrees_with_an_rpc_call_over_tcp_and_udp",
            &args,
            LIMIT,
        ) {
            run.assert_ok();
        }
    }
}

#[test]
fn strace_agrees_with_an_rpc_server_run() {
    let dir = crate::util::TempDir::new("strace-rpc");
    let state = dir.path().join("eo.state");
    let args = [
        "rpc",
        "server",
        "--listen",
        "127.0.0.1",
        "--semantics",
        "exactly-once",
        "--state",
        state.to_str().expect("utf-8"),
    ];
    let test = "strace_agrees_with_an_rpc_server_run";
    let run = crate::util::strace_crosscheck_server(test, &args, LIMIT, "\"epoll_ctl\"", |to| {
        use crate::rpc::{add_over_udp, auth_sys, call, udp_ask, PROG};
        assert_eq!(add_over_udp(to, 1, 10, 20), Some(30));
        let incr = call(2, 2, PROG, 1, 2, &auth_sys(1_700_000_000, "strace"), &[]);
        assert!(udp_ask(to, &incr, Duration::from_secs(5)).is_some());
        assert!(udp_ask(to, b"garbage", Duration::from_millis(200)).is_none());
        let mut s = std::net::TcpStream::connect(to).expect("connect");
        std::io::Write::write_all(&mut s, &crate::rpc::record(&incr)).expect("send");
        assert!(crate::rpc::read_record(&mut s).is_some());
    });
    if let Some(run) = run {
        assert_eq!(run.code(), Some(143), "{}", run.stderr);
    }
}
