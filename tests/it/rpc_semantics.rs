//! The three call semantics of the RPC lab (issue 9), by their effect on
//! INCR's counter: copies that run again, copies answered from the cache
//! or from a durable record, calls refused after a restart, state files
//! refused when damaged, the demo's table, and a registration undone on
//! SIGTERM. The calls are built by hand (see `rpc`).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::rpc::{
    auth_sys, call, messages, parse_reply, pmap_dump, server, udp_ask, Bg, Reply, PROG,
};
use crate::util::{run, TempDir};

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn duplicates_run_again_at_least_once_but_not_at_most_once() {
    let dir = TempDir::new("rpc-dup");
    let state = dir.path().join("amo.state");
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as u32;
    let incr = |xid: u32| call(xid, 2, PROG, 1, 2, &auth_sys(stamp, "testclient"), &[]);
    let value = |to, xid| match parse_reply(
        &udp_ask(to, &incr(xid), Duration::from_secs(2)).expect("reply"),
        xid,
    ) {
        Reply::Accepted(0, v) => v[0],
        other => panic!("{other:?}"),
    };
    // at-least-once: the same bytes twice run twice.
    let alo = server(&["--udp"]);
    assert_eq!((value(alo.addr, 1), value(alo.addr, 1)), (1, 2));
    drop(alo);
    // at-most-once, a first start (a fresh --state): the copy is answered from the cache.
    let amo = server(&[
        "--udp",
        "--semantics",
        "at-most-once",
        "--state",
        state.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        (value(amo.addr, 1), value(amo.addr, 1), value(amo.addr, 2)),
        (1, 1, 2)
    );
    let (_, events, _) = amo.stop();
    assert!(messages(&events)
        .iter()
        .any(|m| m.contains("answered from the duplicate-request cache")));
    // Restarted from its state file: the counter goes on, and the old stamp is refused.
    let amo = server(&[
        "--udp",
        "--semantics",
        "at-most-once",
        "--state",
        state.to_str().expect("utf-8"),
    ]);
    let r = udp_ask(amo.addr, &incr(3), Duration::from_secs(2)).expect("reply");
    assert_eq!(
        parse_reply(&r, 3),
        Reply::Denied(1, vec![2]),
        "AUTH_REJECTEDCRED"
    );
    let newer = call(4, 2, PROG, 1, 2, &auth_sys(stamp + 3600, "testclient"), &[]);
    let r = udp_ask(amo.addr, &newer, Duration::from_secs(2)).expect("reply");
    assert_eq!(parse_reply(&r, 4), Reply::Accepted(0, vec![3]));
    let (code, _, _) = amo.stop();
    assert_eq!(code, Some(143));
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("amo.state")],
        "no temp file left"
    );
}

#[test]
fn exactly_once_replays_from_its_record_after_a_restart() {
    let dir = TempDir::new("rpc-eo");
    let state = dir.path().join("eo.state");
    let st = state.to_str().expect("utf-8");
    let stamp = 1_700_000_000;
    let incr = |xid: u32| call(xid, 2, PROG, 1, 2, &auth_sys(stamp, "testclient"), &[]);
    let srv = server(&["--udp", "--semantics", "exactly-once", "--state", st]);
    let ask = |to, xid| {
        parse_reply(
            &udp_ask(to, &incr(xid), Duration::from_secs(2)).expect("reply"),
            xid,
        )
    };
    assert_eq!(ask(srv.addr, 100), Reply::Accepted(0, vec![1]));
    assert_eq!(ask(srv.addr, 101), Reply::Accepted(0, vec![2]));
    // SIGKILL: no cleanup at all.
    let port = srv.addr.port().to_string();
    drop(srv);
    let srv = server(&[
        "--udp",
        "--semantics",
        "exactly-once",
        "--state",
        st,
        "--port",
        &port,
    ]);
    assert_eq!(
        ask(srv.addr, 101),
        Reply::Accepted(0, vec![2]),
        "replayed, not run again"
    );
    assert_eq!(
        ask(srv.addr, 100),
        Reply::Denied(1, vec![2]),
        "a stale copy is refused"
    );
    assert_eq!(ask(srv.addr, 102), Reply::Accepted(0, vec![3]));
    let (code, events, _) = srv.stop();
    assert_eq!(code, Some(143));
    let msgs = messages(&events);
    for text in [
        "loaded from the state file: counter 2, 1 completion record(s)",
        "replayed from the completion record — result 2",
        "so this is a stale copy",
        "discarded: the record of xid 0x65",
    ] {
        assert!(
            msgs.iter().any(|m| m.contains(text)),
            "{text:?} not in {msgs:#?}"
        );
    }
    let steps: Vec<&Value> = events.iter().filter(|e| e["type"] == "syscall").collect();
    for name in ["fsync", "rename"] {
        assert!(
            steps.iter().any(|s| s["syscall"] == name && s["ret"] == 0),
            "no {name} step"
        );
    }
}

#[test]
fn a_truncated_or_corrupt_state_file_is_refused_at_start() {
    let dir = TempDir::new("rpc-state");
    let state = dir.path().join("s.state");
    let st = state.to_str().expect("utf-8");
    let srv = server(&["--udp", "--semantics", "exactly-once", "--state", st]);
    let m = call(5, 2, PROG, 1, 2, &auth_sys(1_700_000_000, "t"), &[]);
    assert!(udp_ask(srv.addr, &m, Duration::from_secs(2)).is_some());
    srv.stop();
    let good = std::fs::read(&state).expect("a state file");
    let args = [
        "rpc",
        "server",
        "--listen",
        "127.0.0.1",
        "--udp",
        "--semantics",
        "exactly-once",
        "--state",
        st,
    ];
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x40;
    for (bytes, why) in [
        (good[..good.len() - 3].to_vec(), "truncated"),
        (flipped, "corrupted"),
        (b"counter=7\n".to_vec(), "not an ipclab state file"),
    ] {
        std::fs::write(&state, &bytes).expect("write");
        let r = run(&args, LIMIT);
        assert_eq!(r.code(), Some(1), "{why}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(
            r.stderr.contains(why) && r.stderr.contains("refusing to start"),
            "{}",
            r.stderr
        );
        assert!(!r.stdout.contains("bind("), "nothing served: {}", r.stdout);
        assert_eq!(
            std::fs::read(&state).expect("still there"),
            bytes,
            "left as it was"
        );
    }
    // A symlink is never followed.
    std::fs::remove_file(&state).expect("rm");
    std::os::unix::fs::symlink("/etc/passwd", &state).expect("symlink");
    let r = run(&args, LIMIT);
    assert_eq!(r.code(), Some(1));
    assert!(r.stderr.contains("symbolic link"), "{}", r.stderr);
}

/// The closing table's row for `semantics`: calls, replies, resent,
/// refused, no-reply, executed.
fn row(msgs: &[String], semantics: &str) -> Vec<i64> {
    // The table is one message per line, after its heading.
    let head = msgs
        .iter()
        .position(|m| m.starts_with("semantics"))
        .expect("the table");
    let table = &msgs[head..];
    let line = table
        .iter()
        .find(|l| l.starts_with(semantics))
        .unwrap_or_else(|| panic!("no {semantics} row in\n{table:?}"));
    line.split_whitespace()
        .skip(1)
        .take(6)
        .map(|v| v.parse().expect("a number"))
        .collect()
}

#[test]
fn the_demo_shows_what_each_semantics_guarantees_across_a_crash() {
    let t0 = Instant::now();
    let r = run(
        &["--format", "json", "rpc", "demo"],
        Duration::from_secs(60),
    );
    r.assert_ok();
    eprintln!("rpc demo took {:?}", t0.elapsed());
    let msgs = r.messages();
    let n = 10;
    let alo = row(&msgs, "at-least-once");
    let amo = row(&msgs, "at-most-once");
    let eo = row(&msgs, "exactly-once");
    assert!(alo[5] > n, "at-least-once ran duplicates: {alo:?}");
    assert!(amo[5] <= n, "at-most-once never above N: {amo:?}");
    assert!(
        amo[5] < n || amo[3] + amo[4] > 0,
        "at-most-once lost or refused a call: {amo:?}"
    );
    assert_eq!(eo[5], n, "exactly-once: {eo:?}");
    assert_eq!(eo[1], n, "exactly-once answered every call: {eo:?}");
    assert!(msgs.iter().any(|m| m.starts_with("remoteAdd(10, 20) = 30")));
    assert!(msgs
        .iter()
        .any(|m| m.contains("replayed from the completion record")));
    assert!(msgs
        .iter()
        .any(|m| m.contains("answered from the duplicate-request cache")));
    let steps = r.lab_steps();
    let kills = steps
        .iter()
        .filter(|s| s["syscall"] == "kill" && s["args"][1] == "SIGKILL")
        .count();
    assert_eq!(kills, 2, "at-most-once and exactly-once each crash once");
    assert!(crate::util::unreaped_children(&steps).is_empty());
    assert!(
        crate::util::leaked_fds(&steps).is_empty(),
        "{:?}",
        crate::util::leaked_fds(&steps)
    );
}

#[test]
fn a_registered_server_unregisters_on_sigterm() {
    let mm = Bg::start(&["rpc", "matchmaker", "--listen", "127.0.0.1", "--port", "0"]);
    let port = mm.addr.port().to_string();
    let mut srv = Bg::start(&[
        "rpc",
        "server",
        "--listen",
        "127.0.0.1",
        "--register",
        "--matchmaker-port",
        &port,
    ]);
    assert!(srv.wait_for("registered at the matchmaker", Duration::from_secs(10)));
    let ours: Vec<_> = pmap_dump(mm.addr)
        .into_iter()
        .filter(|m| m[0] == PROG)
        .collect();
    assert_eq!(ours.len(), 2, "udp and tcp: {ours:?}");
    assert!(ours.iter().all(|m| m[3] == u32::from(srv.addr.port())));
    // A client finds it through the matchmaker, over both transports.
    for t in ["--udp", "--tcp"] {
        let r = run(
            &[
                "--format",
                "json",
                "rpc",
                "call",
                "ADD",
                "-7",
                "40000",
                t,
                "--matchmaker-port",
                &port,
            ],
            LIMIT,
        );
        r.assert_ok();
        assert!(r
            .messages()
            .iter()
            .any(|m| m.starts_with("ADD(-7, 40000) = 39993")));
    }
    let (code, _, err) = srv.stop();
    assert_eq!(code, Some(143), "{err}");
    let left: Vec<_> = pmap_dump(mm.addr)
        .into_iter()
        .filter(|m| m[0] == PROG)
        .collect();
    assert!(left.is_empty(), "still registered: {left:?}");
    let (code, events, _) = mm.stop();
    assert_eq!(code, Some(143));
    let msgs = messages(&events);
    assert!(
        msgs.iter()
            .any(|m| m.contains("unregistered: prog 536870913 vers 1")),
        "{msgs:?}"
    );
}
