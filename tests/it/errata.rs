//! `ipclab errata`: each erratum through its JSON and its real effects
//! (issue 14). The strace cross-check of the whole command is in strace.rs.

use std::time::Duration;

use serde_json::Value;

use crate::util::{leaked_fds, run, unreaped_children, Run};

const LIMIT: Duration = Duration::from_secs(30);

fn erratum(name: &str) -> Run {
    let r = run(&["--format", "json", "errata", name], LIMIT);
    r.assert_ok();
    let steps = r.lab_steps();
    assert!(unreaped_children(&steps).is_empty(), "{name}: zombies");
    assert!(
        leaked_fds(&steps).is_empty(),
        "{name}: {:?}",
        leaked_fds(&steps)
    );
    r
}

fn find<'a>(steps: &'a [Value], name: &str) -> Vec<&'a Value> {
    steps.iter().filter(|s| s["syscall"] == name).collect()
}

#[test]
fn mkfifo_with_backslashes_makes_a_tab_named_fifo_in_the_working_directory() {
    let r = erratum("mkfifo-path");
    let steps = r.lab_steps();
    let mk = find(&steps, "mknodat");
    assert_eq!(mk.len(), 1);
    // The name as strace escapes it: two TABs, a relative path.
    assert_eq!(mk[0]["args"][1], "\"\\tmp\\testpip\"");
    assert_eq!(mk[0]["args"][2], "S_IFIFO|0777");
    let umask = find(&steps, "umask");
    let mask = umask[0]["ret"].as_u64().expect("umask's value") as u32;
    let want = format!("S_IFIFO|{:04o}", 0o777 & !mask);
    let stat = steps
        .iter()
        .find(|s| s["syscall"] == "newfstatat" && s["args"][1] == "\"\\tmp\\testpip\"")
        .expect("the FIFO was there");
    assert!(
        stat["args"][2].as_str().unwrap_or("").contains(&want),
        "{stat}: mode masked by umask {mask:03o}"
    );
    let dir = find(&steps, "chdir")[0]["args"][0]
        .as_str()
        .expect("dir")
        .trim_matches('"')
        .to_string();
    assert!(
        !std::path::Path::new(&dir).exists(),
        "the private dir is gone"
    );
    assert!(find(&steps, "unlink")[0]["ret"] == 0);
    assert!(!std::path::Path::new("\tmp\testpip").exists());
}

#[test]
fn read_leaves_no_nul_and_cout_prints_stale_bytes() {
    let r = erratum("read-nul");
    let m = r.messages().join("\n");
    assert!(
        m.contains("`cout << str` prints up to the first NUL: \"helloye, cruel world\""),
        "{m}"
    );
    assert!(m.contains("gives \"hello\""), "{m}");
    let reads = find(&r.lab_steps(), "read")
        .iter()
        .map(|s| s["ret"].as_i64().unwrap_or(-1))
        .collect::<Vec<_>>();
    assert_eq!(reads, vec![20, 5]);
}

#[test]
fn an_orphan_is_reparented_and_a_zombie_is_seen_then_reaped() {
    let r = erratum("no-wait");
    let steps = r.lab_steps();
    let main = steps[0]["pid"].as_i64().expect("pid");
    let ppids: Vec<i64> = find(&steps, "getppid")
        .iter()
        .filter_map(|s| s["ret"].as_i64())
        .collect();
    let parent = find(&steps, "clone")[0]["ret"]
        .as_i64()
        .expect("the parent");
    assert!(ppids.len() >= 2, "asked before and after: {ppids:?}");
    assert_eq!(
        ppids.first(),
        Some(&parent),
        "first the parent that forked it"
    );
    assert_eq!(ppids.last(), Some(&main), "then ipclab, the subreaper");
    let zombie = steps
        .iter()
        .find(|s| {
            s["syscall"] == "read" && s["args"][1].as_str().unwrap_or("").contains("State:\\tZ")
        })
        .expect("a read of /proc/PID/status showing State: Z");
    assert!(zombie["ret"].as_i64() > Some(0));
    let gone = steps
        .iter()
        .find(|s| s["syscall"] == "openat" && s["errno"] == "ENOENT")
        .expect("the status file gone after the reap");
    assert_eq!(gone["provoked"], true);
    assert!(steps
        .iter()
        .any(|s| s["syscall"] == "wait4" && s["args"][0] == "-1" && s["ret"].as_i64() > Some(0)));
}

#[test]
fn listen_backlog_completes_backlog_plus_one_and_proc_agrees() {
    let r = erratum("listen-backlog");
    let steps = r.lab_steps();
    let listen = find(&steps, "listen");
    assert_eq!(listen[0]["args"][1], "5");
    let completed = find(&steps, "getsockopt")
        .iter()
        .filter(|s| s["args"][3] == "[0]")
        .count()
        + find(&steps, "connect")
            .iter()
            .filter(|s| s["ret"] == 0)
            .count();
    assert_eq!(completed, 6, "backlog + 1");
    let timeouts = find(&steps, "ppoll")
        .iter()
        .filter(|s| s["ret"] == 0)
        .count();
    assert_eq!(timeouts, 2, "the two clients beyond the queue wait");
    let m = r.messages().join("\n");
    assert!(m.contains("rx_queue 6"), "/proc/net/tcp agrees: {m}");
}

#[test]
fn the_notes_loop_spins_on_eof_and_ipclab_closes() {
    let r = erratum("eof-spin");
    let steps = r.lab_steps();
    let zeros = find(&steps, "recvfrom")
        .iter()
        .filter(|s| s["ret"] == 0)
        .count();
    assert!(zeros >= 100, "recv() = 0, turn after turn: {zeros}");
    assert!(r.messages().join("\n").contains("turns per second"));
}

#[test]
fn a_lost_udp_reply_waits_for_ever_without_so_rcvtimeo() {
    let r = erratum("udp-timeout");
    let steps = r.lab_steps();
    let wait = find(&steps, "ppoll");
    assert_eq!(wait[0]["ret"], 0);
    assert_eq!(wait[0]["args"][2], "{tv_sec=1, tv_nsec=0}");
    let opt = find(&steps, "setsockopt")
        .into_iter()
        .find(|s| s["args"][2] == "SO_RCVTIMEO_OLD")
        .expect("SO_RCVTIMEO");
    assert_eq!(opt["args"][3], "{tv_sec=0, tv_usec=500000}");
    let rf = find(&steps, "recvfrom");
    assert_eq!(rf[0]["errno"], "EAGAIN");
    assert!(rf[0]["elapsed_us"].as_u64() >= Some(400_000));
}

#[test]
fn a_fifo_is_one_stream_in_one_kernel() {
    let r = erratum("fifo-duplex");
    let steps = r.lab_steps();
    let read = find(&steps, "read");
    assert_eq!(read[0]["args"][1], "\"ping\"", "its own bytes come back");
    let st = find(&steps, "newfstatat")
        .into_iter()
        .find(|s| s["args"][2].as_str().unwrap_or("").contains("S_IFIFO"))
        .expect("the FIFO's stat");
    assert!(st["args"][2].as_str().unwrap_or("").contains("st_size=0"));
}

#[test]
fn pipe_and_fork_are_pipe2_and_clone_and_the_comment_is_off() {
    let r = erratum("pipe-names");
    let steps = r.lab_steps();
    assert_eq!(find(&steps, "pipe2")[0]["libc"], "pipe");
    assert_eq!(find(&steps, "clone")[0]["libc"], "fork");
    let r = erratum("port-comment");
    assert!(r.messages().join("\n").contains("6969"));
}

#[test]
fn errata_runs_them_all_and_refuses_unknown_names() {
    let all = run(&["--format", "json", "errata"], LIMIT);
    all.assert_ok();
    let sections: Vec<Value> = all
        .events()
        .into_iter()
        .filter(|e| e["type"] == "section")
        .collect();
    assert_eq!(sections.len(), 9);
    let bad = run(&["errata", "no-such"], LIMIT);
    assert_eq!(bad.code(), Some(2));
    assert_eq!(bad.stderr.lines().count(), 1);
    assert!(bad.stderr.contains("mkfifo-path"), "{}", bad.stderr);
    assert!(bad.stdout.is_empty());
}
