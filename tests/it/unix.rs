//! `ipclab unix`: the demo (stream and datagram, path and abstract name, the
//! stale socket file), server and client in two processes, socketpair,
//! descriptor passing, peer credentials; bad paths refused and left alone;
//! a stop signal at any moment leaves no socket file (issue 10).

use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::signals::{each_moment, stops_cleanly, Load, SIGNALS};
use crate::util::{
    leaked_fds, run, spawn, strace_crosscheck, unreaped_children, wait_until, Run, TempDir,
};

const LIMIT: Duration = Duration::from_secs(20);

fn clean(r: &Run) {
    r.assert_ok();
    let steps = r.lab_steps();
    assert!(unreaped_children(&steps).is_empty(), "{}", r.stdout);
    assert!(leaked_fds(&steps).is_empty(), "{:?}", leaked_fds(&steps));
}

fn calls<'a>(steps: &'a [Value], name: &str) -> Vec<&'a Value> {
    steps.iter().filter(|s| s["syscall"] == name).collect()
}

fn is_socket(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

#[test]
fn unix_demo_serves_over_a_path_then_meets_its_stale_socket_file() {
    let r = run(&["--format", "json", "unix", "demo"], LIMIT);
    clean(&r);
    let steps = r.lab_steps();
    let socket = calls(&steps, "socket")[0];
    assert_eq!(socket["args"][0], "AF_UNIX");
    assert_eq!(socket["args"][1], "SOCK_STREAM|SOCK_CLOEXEC");
    assert_eq!(socket["args"][2], "0");
    let bind = calls(&steps, "bind")[0];
    let addr = bind["args"][1].as_str().expect("address");
    assert!(
        addr.starts_with("{sa_family=AF_UNIX, sun_path=\"/") && addr.ends_with("/sock\"}"),
        "{addr}"
    );
    let path = addr
        .trim_start_matches("{sa_family=AF_UNIX, sun_path=\"")
        .trim_end_matches("\"}")
        .to_string();
    // offsetof(sun_path) + strlen + NUL, as unix(7) says.
    assert_eq!(bind["args"][2], (2 + path.len() + 1).to_string());
    // The socket file's mode is shown (lstat) and said.
    let look = calls(&steps, "newfstatat")
        .into_iter()
        .find(|s| s["args"][1] == format!("\"{path}\""))
        .expect("lstat of the socket file");
    assert!(look["args"][2]
        .as_str()
        .expect("stat")
        .starts_with("{st_mode=S_IFSOCK|"));
    assert!(r
        .messages()
        .iter()
        .any(|m| m.contains("the socket file has mode")));
    let accept = calls(&steps, "accept4")[0];
    assert_eq!(accept["args"][1], "{sa_family=AF_UNIX}");
    assert_eq!(accept["args"][2], "[110 => 2]");
    let connect = calls(&steps, "connect")[0];
    assert_eq!(connect["args"][1].as_str(), Some(addr));
    assert_ne!(connect["pid"], bind["pid"], "the client is the child");
    assert!(r
        .messages()
        .iter()
        .any(|m| m.contains("reply: \"我是复读机,哈哈，你刚才发送了：hello\"")));
    // The stale file: bind fails with EADDRINUSE, connect with ECONNREFUSED.
    let binds = calls(&steps, "bind");
    assert_eq!(binds.len(), 2);
    assert_eq!(binds[1]["errno"], "EADDRINUSE");
    let connects = calls(&steps, "connect");
    assert_eq!(connects.last().expect("connect")["errno"], "ECONNREFUSED");
    // Then it is removed, and its directory.
    assert!(steps.iter().any(|s| s["syscall"] == "unlink"
        && s["args"][0] == format!("\"{path}\"")
        && s["ret"] == 0));
    assert!(calls(&steps, "rmdir").iter().any(|s| s["ret"] == 0));
    assert!(!Path::new(&path).exists());
    assert!(!Path::new(&path).parent().expect("dir").exists());
    let row = &r.summary()[0];
    assert_eq!(row["result"], "ok");
    assert_eq!(row["failed"], 2, "the two failures the lesson provokes");
}

#[test]
fn unix_demo_abstract_has_no_file_and_binds_again() {
    let r = run(&["--format", "json", "unix", "demo", "--abstract"], LIMIT);
    clean(&r);
    let steps = r.lab_steps();
    let binds = calls(&steps, "bind");
    assert_eq!(binds.len(), 2);
    let addr = binds[0]["args"][1].as_str().expect("address");
    assert!(
        addr.starts_with("{sa_family=AF_UNIX, sun_path=@\"ipclab-"),
        "{addr}"
    );
    let name_len = addr.len() - "{sa_family=AF_UNIX, sun_path=@\"\"}".len();
    assert_eq!(binds[0]["args"][2], (2 + 1 + name_len).to_string());
    assert_eq!(binds[1]["args"][1].as_str(), Some(addr));
    assert_eq!(binds[1]["ret"], 0, "the name is free again");
    assert!(!steps
        .iter()
        .any(|s| s["syscall"] == "unlink" || s["syscall"] == "mkdir"));
    assert_eq!(r.summary()[0]["failed"], 0);
}

#[test]
fn unix_demo_dgram_client_autobinds_and_gets_its_reply() {
    for extra in [&[][..], &["--abstract"]] {
        let mut args = vec!["--format", "json", "unix", "demo", "--dgram"];
        args.extend_from_slice(extra);
        let r = run(&args, LIMIT);
        clean(&r);
        let steps = r.lab_steps();
        assert!(calls(&steps, "listen").is_empty() && calls(&steps, "accept4").is_empty());
        assert!(calls(&steps, "socket")
            .iter()
            .all(|s| s["args"][1] == "SOCK_DGRAM|SOCK_CLOEXEC"));
        let auto = calls(&steps, "bind")
            .into_iter()
            .find(|s| s["args"][1] == "{sa_family=AF_UNIX}")
            .expect("autobind");
        assert_eq!(auto["args"][2], "2");
        let name = calls(&steps, "getsockname")[0]["args"][1]
            .as_str()
            .expect("name")
            .to_string();
        assert!(
            name.starts_with("{sa_family=AF_UNIX, sun_path=@\""),
            "{name}"
        );
        // The server sees the datagram come from that name and answers it.
        let from = calls(&steps, "recvfrom")
            .into_iter()
            .find(|s| s["args"][1] == "\"hello\"")
            .expect("server's recvfrom");
        assert_eq!(from["args"][4].as_str(), Some(name.as_str()));
        assert!(calls(&steps, "sendto")
            .iter()
            .any(|s| s["args"][4].as_str() == Some(name.as_str())));
        assert!(
            r.messages().iter().any(|m| m.starts_with("reply: ")),
            "{args:?}"
        );
    }
}

#[test]
fn unix_server_and_client_meet_at_a_path_and_the_server_removes_it() {
    let tmp = TempDir::new("unix-ends");
    let path = tmp.path().join("repeater.sock");
    let p = path.to_str().expect("utf-8");
    let server = spawn(&["--format", "json", "unix", "server", p]);
    assert!(
        wait_until(LIMIT, || is_socket(&path)),
        "the server makes the socket file"
    );
    let c = run(
        &[
            "--format", "json", "unix", "client", p, "--send", "hello", "--send", "q",
        ],
        LIMIT,
    );
    clean(&c);
    assert!(
        c.messages()
            .iter()
            .any(|m| m.contains("你刚才发送了：hello")),
        "{:?}",
        c.messages()
    );
    assert!(calls(&c.lab_steps(), "newfstatat")[0]["args"][2]
        .as_str()
        .expect("stat")
        .starts_with("{st_mode=S_IFSOCK|"));
    let s = server.wait_timeout(LIMIT);
    clean(&s);
    assert!(s
        .messages()
        .iter()
        .any(|m| m.contains("\"q\" also stops the server")));
    assert!(!path.exists(), "the server removed the socket file it made");
}

#[test]
fn unix_server_and_client_meet_at_an_abstract_name() {
    let name = format!("@ipclabtest-{}", std::process::id());
    let server = spawn(&["--format", "json", "unix", "server", &name]);
    // No file to wait for: retry the client until the server listens.
    let mut last = None;
    let ok = wait_until(LIMIT, || {
        let c = run(
            &["--format", "json", "unix", "client", &name, "--send", "q"],
            LIMIT,
        );
        let done = c.code() == Some(0);
        last = Some(c);
        done
    });
    assert!(ok, "{:?}", last.map(|c| c.stderr));
    let s = server.wait_timeout(LIMIT);
    clean(&s);
    assert!(
        calls(&s.lab_steps(), "newfstatat").is_empty(),
        "no file to look at"
    );
}

#[test]
fn unix_server_refuses_an_existing_path_and_touches_nothing() {
    let tmp = TempDir::new("unix-bad");
    let file = tmp.path().join("notes.txt");
    std::fs::write(&file, "precious").expect("write");
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&file, &link).expect("symlink");
    let dangling = tmp.path().join("dangling");
    std::os::unix::fs::symlink(tmp.path().join("nowhere"), &dangling).expect("symlink");
    let sock = tmp.path().join("other.sock");
    let other = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
    for (target, says) in [
        (&file, "regular file"),
        (&link, "symbolic link"),
        (&dangling, "symbolic link"),
        (&sock, "a socket (a server may be using it"),
    ] {
        let t = target.to_str().expect("utf-8");
        let r = run(&["--format", "json", "unix", "server", t], LIMIT);
        assert_eq!(r.code(), Some(2), "{t}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{t}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(calls(&r.lab_steps(), "bind").is_empty(), "nothing bound");
    }
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "precious");
    assert!(std::fs::symlink_metadata(&link)
        .expect("link")
        .file_type()
        .is_symlink());
    assert!(
        !tmp.path().join("nowhere").exists(),
        "the dangling link was not followed"
    );
    assert!(
        is_socket(&sock),
        "the other server's socket file is still there"
    );
    drop(other);
}

#[test]
fn unix_client_refuses_what_is_not_a_socket_file() {
    let tmp = TempDir::new("unix-client-bad");
    let sock = tmp.path().join("real.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
    let link = tmp.path().join("link.sock");
    std::os::unix::fs::symlink(&sock, &link).expect("symlink");
    let file = tmp.path().join("plain");
    std::fs::write(&file, "x").expect("write");
    for target in [&link, &file] {
        let t = target.to_str().expect("utf-8");
        let r = run(
            &["--format", "json", "unix", "client", t, "--send", "hi"],
            LIMIT,
        );
        assert_eq!(r.code(), Some(2), "{t}: {}", r.stderr);
        assert!(r.stderr.contains("not a socket file"), "{}", r.stderr);
        assert!(
            calls(&r.lab_steps(), "connect").is_empty(),
            "never connected"
        );
    }
    // Nothing there: the real ENOENT, exit 1.
    let missing = tmp.path().join("missing.sock");
    let r = run(
        &[
            "--format",
            "json",
            "unix",
            "client",
            missing.to_str().expect("utf-8"),
            "--send",
            "hi",
        ],
        LIMIT,
    );
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains("ENOENT") && r.stderr.contains("unix server"),
        "{}",
        r.stderr
    );
}

#[test]
fn unix_server_in_a_missing_directory_fails_with_the_real_errno() {
    let r = run(
        &[
            "--format",
            "json",
            "unix",
            "server",
            "/nonexistent-ipclab-dir/s.sock",
        ],
        LIMIT,
    );
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("ENOENT"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1);
    let steps = r.lab_steps();
    assert!(steps
        .iter()
        .any(|s| s["syscall"] == "bind" && s["errno"] == "ENOENT"));
    assert!(leaked_fds(&steps).is_empty(), "{:?}", leaked_fds(&steps));
}

#[test]
fn unix_bad_arguments_exit_2_before_any_step() {
    let long = format!("/tmp/{}", "x".repeat(110));
    for args in [
        vec!["unix", "server", long.as_str()],
        vec!["unix", "server", ""],
        vec!["unix", "client", "@", "--send", "x"],
        vec!["unix", "client", "/tmp/x.sock", "--send", ""],
        vec!["unix", "pair", "--message", ""],
        vec!["unix", "nope"],
    ] {
        let r = run(&args, LIMIT);
        assert_eq!(r.code(), Some(2), "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{args:?}: {}", r.stdout);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    }
    // A TMPDIR too long for a socket path inside it.
    let mut cmd = crate::util::ipclab();
    cmd.args(["unix", "demo"])
        .env("TMPDIR", format!("/tmp/{}", "d".repeat(100)));
    let r = crate::util::run_cmd(&mut cmd, LIMIT);
    assert_eq!(r.code(), Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("TMPDIR"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
}

#[test]
fn unix_pair_talks_both_ways_over_one_descriptor_each() {
    let r = run(
        &["--format", "json", "unix", "pair", "--message", "ping?"],
        LIMIT,
    );
    clean(&r);
    let steps = r.lab_steps();
    let pair = calls(&steps, "socketpair")[0];
    assert_eq!(pair["args"][0], "AF_UNIX");
    assert_eq!(pair["args"][1], "SOCK_STREAM|SOCK_CLOEXEC");
    assert_eq!(pair["args"][3], "[3, 4]");
    let parent = pair["pid"].clone();
    // The parent sends and receives on fd 3, the child on fd 4.
    for s in calls(&steps, "sendto")
        .iter()
        .chain(calls(&steps, "recvfrom").iter())
    {
        let fd = if s["pid"] == parent { "3" } else { "4" };
        assert_eq!(s["args"][0], fd, "{s}");
    }
    assert!(
        r.messages()
            .iter()
            .any(|m| m.contains("\"child got: ping?\"")),
        "{:?}",
        r.messages()
    );
}

#[test]
fn unix_pass_fd_gives_the_child_another_number_for_the_same_file() {
    let r = run(&["--fds", "--format", "json", "unix", "pass-fd"], LIMIT);
    clean(&r);
    let steps = r.lab_steps();
    let send = calls(&steps, "sendmsg")[0];
    let parent = send["pid"].clone();
    let msg = send["args"][1].as_str().expect("msghdr");
    assert!(
        msg.contains("msg_control=[{cmsg_len=20, cmsg_level=SOL_SOCKET, cmsg_type=SCM_RIGHTS, cmsg_data=[4]}], msg_controllen=24"),
        "{msg}"
    );
    let recv = calls(&steps, "recvmsg")[0];
    assert_ne!(recv["pid"], parent);
    assert_eq!(recv["args"][2], "MSG_CMSG_CLOEXEC");
    let got = recv["args"][1].as_str().expect("msghdr");
    assert!(got.contains("cmsg_type=SCM_RIGHTS, cmsg_data=[3]"), "{got}");
    // The child reads the file through fd 3, which it never opened.
    let read = calls(&steps, "read")
        .into_iter()
        .find(|s| s["pid"] == recv["pid"])
        .expect("the child's read");
    assert_eq!(read["args"][0], "3");
    assert_eq!(read["ret"], 78);
    assert!(!calls(&steps, "openat")
        .iter()
        .any(|s| s["pid"] == recv["pid"]));
    assert!(r
        .messages()
        .iter()
        .any(|m| m == "read through the passed descriptor: written by the parent; read by the child through a descriptor it never opened"));
    // --fds: both tables show the same file, under 4 and under 3.
    let file = calls(&steps, "openat")[0]["args"][1]
        .as_str()
        .expect("path")
        .trim_matches('"')
        .to_string();
    let tables: Vec<Value> = r
        .events()
        .into_iter()
        .filter(|e| e["type"] == "fds")
        .collect();
    let holds = |pid: &Value, fd: i64| {
        tables.iter().any(|t| {
            t["pid"] == *pid
                && t["fds"]
                    .as_array()
                    .expect("fds")
                    .iter()
                    .any(|f| f["fd"] == fd && f["target"] == file.as_str())
        })
    };
    assert!(holds(&parent, 4), "the parent's table");
    assert!(holds(&recv["pid"], 3), "the child's table");
    // The socket pair is described with its peer.
    assert!(tables.iter().any(
        |t| t["fds"].as_array().expect("fds").iter().any(|f| f["desc"]
            .as_str()
            .unwrap_or("")
            .contains("UNIX STREAM CONNECTED peer=socket:["))
    ));
    assert!(!Path::new(&file).exists(), "the file is removed");
}

#[test]
fn unix_cred_names_the_client_pid_uid_and_gid() {
    let r = run(&["--format", "json", "unix", "cred"], LIMIT);
    clean(&r);
    let steps = r.lab_steps();
    let child = calls(&steps, "clone")[0]["ret"].as_i64().expect("child");
    let opt = calls(&steps, "getsockopt")[0];
    assert_eq!(opt["args"][1], "SOL_SOCKET");
    assert_eq!(opt["args"][2], "SO_PEERCRED");
    assert_eq!(opt["args"][4], "[12]");
    let (uid, gid) = ids();
    assert_eq!(
        opt["args"][3],
        format!("{{pid={child}, uid={uid}, gid={gid}}}")
    );
    assert!(r
        .messages()
        .iter()
        .any(|m| m == &format!("pid {child} is indeed the child forked above")));
}

/// This process's real uid and gid, from /proc (no unsafe in the tests).
fn ids() -> (String, String) {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let field = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .expect("id")
            .to_string()
    };
    (field("Uid:"), field("Gid:"))
}

#[test]
fn fds_resolves_unix_sockets_by_name_state_and_peer() {
    let r = run(&["--fds", "--format", "json", "unix", "demo"], LIMIT);
    r.assert_ok();
    let descs: Vec<String> = r
        .events()
        .into_iter()
        .filter(|e| e["type"] == "fds")
        .flat_map(|t| {
            t["fds"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| f["desc"].as_str().map(str::to_string))
        })
        .collect();
    assert!(
        descs.iter().any(|d| d.starts_with("socket:[")
            && d.contains("UNIX STREAM /")
            && d.ends_with("/sock LISTEN")),
        "{descs:?}"
    );
    assert!(
        descs.iter().any(|d| d.contains("CONNECTED peer=socket:[")),
        "{descs:?}"
    );
    let r = run(
        &["--fds", "--format", "json", "unix", "demo", "--abstract"],
        LIMIT,
    );
    r.assert_ok();
    assert!(r.stdout.contains("UNIX STREAM @ipclab-"), "{}", r.stdout);
}

#[test]
fn unix_commands_stop_cleanly_at_any_moment() {
    for args in [
        &["unix", "demo"][..],
        &["unix", "demo", "--dgram"],
        &["unix", "demo", "--abstract"],
        &["unix", "pair"],
        &["unix", "pass-fd"],
        &["unix", "cred"],
    ] {
        each_moment(args, Load::None, 4);
    }
}

#[test]
fn a_waiting_unix_server_removes_its_socket_file_on_any_stop_signal() {
    for (i, sig) in SIGNALS.iter().enumerate() {
        let dir = TempDir::new("unix-sig");
        let path = dir.path().join("s.sock");
        let p = path.to_str().expect("utf-8");
        stops_cleanly(
            &["unix", "server", p],
            *sig,
            crate::signals::delay(i * 2 + 3),
            Load::None,
            false,
        );
        assert!(!path.exists(), "the socket file ipclab made was removed");
    }
}

#[test]
fn strace_agrees_with_every_unix_command() {
    for args in [
        &["unix", "demo"][..],
        &["unix", "demo", "--abstract"],
        &["unix", "demo", "--dgram"],
        &["unix", "demo", "--dgram", "--abstract"],
        &["unix", "pair"],
        &["unix", "pass-fd"],
        &["unix", "cred"],
    ] {
        let Some(run) = strace_crosscheck("strace_agrees_with_every_unix_command", args, LIMIT)
        else {
            return;
        };
        run.assert_ok();
    }
}

#[test]
fn strace_agrees_with_unix_server_and_client() {
    crate::require_tool!("strace_agrees_with_unix_server_and_client", "strace");
    let tmp = TempDir::new("unix-strace");
    let path = tmp.path().join("s.sock");
    let p = path.to_str().expect("utf-8").to_string();
    // The server under strace, the client beside it.
    let (q, w) = (p.clone(), path.clone());
    let client = std::thread::spawn(move || {
        if !wait_until(LIMIT, || is_socket(&w)) {
            return None;
        }
        Some(run(
            &["unix", "client", &q, "--send", "hello", "--send", "q"],
            LIMIT,
        ))
    });
    let server = strace_crosscheck(
        "strace_agrees_with_unix_server_and_client",
        &["unix", "server", &p],
        LIMIT,
    );
    let c = client.join().expect("client thread");
    let Some(server) = server else {
        return;
    };
    server.assert_ok();
    c.expect("the server made its socket file").assert_ok();
    // And the client under strace, against a plain server.
    let server = spawn(&["unix", "server", &p]);
    assert!(wait_until(LIMIT, || is_socket(&path)));
    if let Some(c) = strace_crosscheck(
        "strace_agrees_with_unix_server_and_client",
        &["unix", "client", &p, "--send", "hello", "--send", "q"],
        LIMIT,
    ) {
        c.assert_ok();
    }
    server.wait_timeout(LIMIT).assert_ok();
}
