//! Issue 9, "Done when": rpcinfo and rpcgen-built C programs interoperate
//! with ipclab in both directions. rpcinfo asks port 111 only, and
//! libtirpc asks rpcbind's socket /run/rpcbind.sock first; so each test
//! runs in new network and mount namespaces (`unshare -m -n`, root): a
//! loopback of its own where port 111 is always free, and a private /run
//! (tmpfs) that a host rpcbind's socket cannot reach into and that keeps
//! the files of the rpcbind a test starts. That rpcbind is killed and its
//! /run/rpcbind.sock and /run/rpcbind.lock removed by the script, and the
//! namespaces vanish with it. The C programs are the tests' own, built
//! here from `ipclab.x` with rpcgen and gcc into a TempDir; nothing
//! generated is committed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::util::{have_tool, is_root, run_cmd, skip, Run, TempDir};

const LIMIT: Duration = Duration::from_secs(60);

/// The C client: `client HOST tcp|udp A B` calls ADD through clnt_create,
/// which asks the matchmaker (rpcbind's GETADDR) for the port.
const CLIENT_C: &str = r#"#include <stdio.h>
#include <stdlib.h>
#include "ipclab.h"

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: client HOST tcp|udp A B\n");
        return 2;
    }
    CLIENT *c = clnt_create(argv[1], IPCLAB_PROG, IPCLAB_VERS, argv[2]);
    if (c == NULL) {
        clnt_pcreateerror(argv[1]);
        return 1;
    }
    add_args args = { atoi(argv[3]), atoi(argv[4]) };
    int *sum = add_1(&args, c);
    if (sum == NULL) {
        clnt_perror(c, "ADD");
        return 1;
    }
    printf("%d\n", *sum);
    clnt_destroy(c);
    return 0;
}
"#;

/// The procedures behind rpcgen's server `main` (which registers both
/// transports with the portmapper and runs svc_run).
const SERVER_C: &str = r#"#include "ipclab.h"

int *add_1_svc(add_args *args, struct svc_req *req) {
    static int sum;
    (void)req;
    sum = args->a + args->b;
    return &sum;
}

int *incr_1_svc(void *args, struct svc_req *req) {
    static int counter;
    (void)args;
    (void)req;
    counter++;
    return &counter;
}
"#;

/// Whether this test can run here; says why not (skip) otherwise.
fn can_run(test: &str, tools: &[&str]) -> bool {
    if !is_root() {
        skip(test, "needs root: rpcinfo and rpcbind use port 111, inside a network namespace made with unshare");
        return false;
    }
    for t in ["unshare", "ip"].iter().chain(tools) {
        if !have_tool(t) {
            skip(test, &format!("needs `{t}` on PATH (.ci/run installs it)"));
            return false;
        }
    }
    true
}

/// Builds `which` (client or server) from ipclab.x with rpcgen and gcc.
fn build_c(test: &str, dir: &Path, which: &str) -> Option<PathBuf> {
    if !Path::new("/usr/include/tirpc/rpc/rpc.h").exists() {
        skip(test, "needs libtirpc-dev (/usr/include/tirpc)");
        return None;
    }
    let x = Path::new(env!("CARGO_MANIFEST_DIR")).join("ipclab.x");
    std::fs::copy(&x, dir.join("ipclab.x")).expect("copy ipclab.x");
    let gen = Command::new("rpcgen")
        .arg("ipclab.x")
        .current_dir(dir)
        .output()
        .expect("rpcgen");
    assert!(
        gen.status.success(),
        "rpcgen: {}",
        String::from_utf8_lossy(&gen.stderr)
    );
    let (src, parts) = match which {
        "client" => (CLIENT_C, ["client.c", "ipclab_clnt.c", "ipclab_xdr.c"]),
        _ => (SERVER_C, ["server.c", "ipclab_svc.c", "ipclab_xdr.c"]),
    };
    std::fs::write(dir.join(parts[0]), src).expect("write C source");
    let out = dir.join(which);
    let cc = Command::new("gcc")
        .args(["-I/usr/include/tirpc", "-o"])
        .arg(&out)
        .args(parts)
        .arg("-ltirpc")
        .current_dir(dir)
        .output()
        .expect("gcc");
    assert!(
        cc.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&cc.stderr)
    );
    Some(out)
}

/// Runs `script` with sh in new mount and network namespaces, with a
/// private /run and loopback up. `$B` is ipclab, `$D` the test's
/// directory. Background jobs started with `… & track $!` are killed when
/// the script ends; each command has its own `timeout`.
fn in_namespaces(dir: &Path, script: &str) -> Run {
    let full = format!(
        "set -u\n\
         mount -t tmpfs tmpfs /run\n\
         ip link set lo up\n\
         # background jobs, killed when the script ends (dash's `jobs` is empty in a trap)\n\
         PIDS=''\n\
         track() {{ PIDS=\"$PIDS $1\"; }}\n\
         trap 'kill $PIDS 2>/dev/null; wait' EXIT\n\
         # waits (at most 10 s) until FILE contains TEXT\n\
         until_in() {{ i=0; while ! grep -q \"$2\" \"$1\" 2>/dev/null; do i=$((i+1)); [ $i -gt 100 ] && return 1; sleep 0.1; done; }}\n\
         {script}\n\
         exit 0\n"
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "-n", "sh", "-c", &full])
        .env("B", env!("CARGO_BIN_EXE_ipclab"))
        .env("D", dir);
    let r = run_cmd(&mut cmd, LIMIT);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    r
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_default()
}

fn json_messages(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "message")
        .filter_map(|v| v["text"].as_str().map(str::to_string))
        .collect()
}

/// ipclab's matchmaker on 111 and ipclab's server registered there, as
/// rpcinfo sees them: `-p` (portmapper DUMP), the rpcbind listing, `-t`
/// and `-u` (GETADDR, then NULL over TCP and UDP). A SET from an address
/// that is not loopback is refused.
#[test]
fn rpcinfo_lists_and_pings_ipclabs_matchmaker_and_server() {
    let test = "rpcinfo_lists_and_pings_ipclabs_matchmaker_and_server";
    if !can_run(test, &["rpcinfo"]) {
        return;
    }
    let dir = TempDir::new("rpcinfo");
    let python = have_tool("python3");
    let r = in_namespaces(
        dir.path(),
        &format!(
            r#"timeout 40 "$B" --format json rpc matchmaker > "$D/mm.json" 2> "$D/mm.err" & track $!
MM=$!
until_in "$D/mm.json" 'matchmaker (portmapper'
timeout 40 "$B" --format json rpc server --register > "$D/srv.json" 2> "$D/srv.err" & track $!
SRV=$!
until_in "$D/srv.json" 'registered at the matchmaker'
timeout 10 rpcinfo -p 127.0.0.1 > "$D/p.txt" 2>&1; echo $? > "$D/p.rc"
timeout 10 rpcinfo 127.0.0.1 > "$D/list.txt" 2>&1
timeout 10 rpcinfo -t 127.0.0.1 536870913 > "$D/t.txt" 2>&1; echo $? > "$D/t.rc"
timeout 10 rpcinfo -u 127.0.0.1 536870913 > "$D/u.txt" 2>&1; echo $? > "$D/u.rc"
if {python}; then
  ip addr add 10.1.2.3/32 dev lo
  timeout 10 python3 -c '
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.1.2.3", 0)); s.settimeout(5)
call = struct.pack(">10I4I", 7, 0, 2, 100000, 2, 1, 0, 0, 0, 0, 0x20000002, 1, 17, 4242)
s.sendto(call, ("10.1.2.3", 111))
print(struct.unpack(">7I", s.recv(100))[6])' > "$D/remote_set.txt" 2>&1
fi
kill -TERM $SRV; wait $SRV
timeout 10 rpcinfo -p 127.0.0.1 > "$D/p_after.txt" 2>&1
kill -TERM $MM; wait $MM; echo $? > "$D/mm.rc"
"#
        ),
    );
    assert!(r.status.success(), "script: {}\n{}", r.stdout, r.stderr);
    let p = read(dir.path(), "p.txt");
    assert_eq!(read(dir.path(), "p.rc").trim(), "0", "rpcinfo -p: {p}");
    for want in [
        "100000    2   tcp    111  portmapper",
        "100000    2   udp    111  portmapper",
    ] {
        assert!(p.contains(want), "{want:?} not in\n{p}");
    }
    let ours: Vec<&str> = p.lines().filter(|l| l.contains("536870913")).collect();
    assert_eq!(ours.len(), 2, "udp and tcp:\n{p}");
    let list = read(dir.path(), "list.txt");
    assert!(
        list.contains("536870913    1    udp") && list.contains("superuser"),
        "{list}"
    );
    for t in ["t", "u"] {
        let out = read(dir.path(), &format!("{t}.txt"));
        assert_eq!(
            read(dir.path(), &format!("{t}.rc")).trim(),
            "0",
            "rpcinfo -{t}: {out}"
        );
        assert!(
            out.contains("program 536870913 version 1 ready and waiting"),
            "rpcinfo -{t}: {out}"
        );
    }
    let after = read(dir.path(), "p_after.txt");
    assert!(
        !after.contains("536870913"),
        "unregistered on SIGTERM:\n{after}"
    );
    let mm = json_messages(&read(dir.path(), "mm.json"));
    assert!(
        mm.iter().any(|m| m
            .contains("lookup: prog 536870913 vers 0 is not registered, vers 1 is at 127.0.0.1.")),
        "{mm:#?}"
    );
    if python {
        assert_eq!(
            read(dir.path(), "remote_set.txt").trim(),
            "0",
            "FALSE for a caller off loopback"
        );
        assert!(
            mm.iter()
                .any(|m| m.contains("SET refused: 10.1.2.3 is not on loopback")),
            "{mm:#?}"
        );
    }
    let srv = json_messages(&read(dir.path(), "srv.json"));
    assert!(
        srv.iter()
            .any(|m| m.contains("no such version (versions 1 to 1): answered PROG_MISMATCH")),
        "rpcinfo asks version 0 first to learn the versions: {srv:#?}"
    );
}

/// An rpcgen-built C client, through clnt_create (so rpcbind's GETADDR at
/// ipclab's matchmaker), calls ADD 10 20 at ipclab's server over TCP and UDP.
#[test]
fn an_rpcgen_c_client_calls_ipclab_through_clnt_create() {
    let test = "an_rpcgen_c_client_calls_ipclab_through_clnt_create";
    if !can_run(test, &["rpcgen", "gcc"]) {
        return;
    }
    let dir = TempDir::new("c-client");
    let Some(_client) = build_c(test, dir.path(), "client") else {
        return;
    };
    let r = in_namespaces(
        dir.path(),
        r#"timeout 40 "$B" --format json rpc matchmaker > "$D/mm.json" 2>&1 & track $!
until_in "$D/mm.json" 'matchmaker (portmapper'
timeout 40 "$B" --format json rpc server --register > "$D/srv.json" 2>&1 & track $!
SRV=$!
until_in "$D/srv.json" 'registered at the matchmaker'
timeout 10 "$D/client" 127.0.0.1 tcp 10 20 > "$D/tcp.txt" 2>&1
timeout 10 "$D/client" localhost udp 10 20 > "$D/udp.txt" 2>&1
kill -TERM $SRV; wait $SRV
"#,
    );
    assert!(r.status.success(), "{}\n{}", r.stdout, r.stderr);
    assert_eq!(read(dir.path(), "tcp.txt").trim(), "30", "over TCP");
    assert_eq!(read(dir.path(), "udp.txt").trim(), "30", "over UDP");
    let srv = json_messages(&read(dir.path(), "srv.json"));
    let adds = srv
        .iter()
        .filter(|m| m.contains("ADD(10, 20)") && m.contains("cred AUTH_NONE"))
        .count();
    assert_eq!(adds, 2, "{srv:#?}");
}

/// The other direction: an rpcgen-built C server registered with the
/// system's rpcbind (started here), called by ipclab's client; then
/// ipclab's server registers with that rpcbind and unregisters on SIGTERM.
#[test]
fn ipclab_calls_an_rpcgen_c_server_registered_with_rpcbind() {
    let test = "ipclab_calls_an_rpcgen_c_server_registered_with_rpcbind";
    if !can_run(test, &["rpcgen", "gcc", "rpcbind", "rpcinfo"]) {
        return;
    }
    let dir = TempDir::new("c-server");
    let Some(_server) = build_c(test, dir.path(), "server") else {
        return;
    };
    let r = in_namespaces(
        dir.path(),
        r#"timeout 40 rpcbind -f -w & track $!
RB=$!
i=0; while [ ! -S /run/rpcbind.sock ] && [ $i -lt 100 ]; do i=$((i+1)); sleep 0.1; done
timeout 40 "$D/server" & track $!
CS=$!
i=0; while ! timeout 5 rpcinfo -p 127.0.0.1 2>/dev/null | grep -q 536870913 && [ $i -lt 100 ]; do i=$((i+1)); sleep 0.1; done
timeout 10 "$B" --format json rpc call remoteAdd 10 20 > "$D/add_tcp.json" 2>&1; echo $? > "$D/add_tcp.rc"
timeout 10 "$B" --format json rpc call ADD -7 40000 --udp > "$D/add_udp.json" 2>&1
timeout 10 "$B" --format json rpc call INCR --udp > "$D/incr1.json" 2>&1
timeout 10 "$B" --format json rpc call INCR > "$D/incr2.json" 2>&1
kill $CS; wait $CS
# rpcgen's server does not unregister when killed: rpcinfo -d does it.
timeout 10 rpcinfo -d 536870913 1
timeout 40 "$B" --format json rpc server --register --udp > "$D/srv.json" 2>&1 & track $!
SRV=$!
until_in "$D/srv.json" 'registered at the matchmaker'
timeout 10 rpcinfo -u 127.0.0.1 536870913 1 > "$D/u.txt" 2>&1
kill -TERM $SRV; wait $SRV
timeout 10 rpcinfo -p 127.0.0.1 > "$D/p_after.txt" 2>&1
kill $RB; wait $RB
rm -f /run/rpcbind.sock /run/rpcbind.lock
"#,
    );
    assert!(r.status.success(), "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        read(dir.path(), "add_tcp.rc").trim(),
        "0",
        "{}",
        read(dir.path(), "add_tcp.json")
    );
    let last = |f: &str| {
        json_messages(&read(dir.path(), f))
            .last()
            .cloned()
            .unwrap_or_default()
    };
    let add_tcp = json_messages(&read(dir.path(), "add_tcp.json"));
    assert!(
        add_tcp.iter().any(|m| m.starts_with("ADD(10, 20) = 30")),
        "{add_tcp:#?}"
    );
    assert!(add_tcp
        .iter()
        .any(|m| m.contains("the matchmaker says: program 536870913 version 1 listens on port")));
    assert!(json_messages(&read(dir.path(), "add_udp.json"))
        .iter()
        .any(|m| m.starts_with("ADD(-7, 40000) = 39993")));
    let i1 = json_messages(&read(dir.path(), "incr1.json"));
    let i2 = json_messages(&read(dir.path(), "incr2.json"));
    assert!(
        i1.iter().any(|m| m.starts_with("INCR() = 1")),
        "{i1:#?} {}",
        last("incr1.json")
    );
    assert!(i2.iter().any(|m| m.starts_with("INCR() = 2")), "{i2:#?}");
    let u = read(dir.path(), "u.txt");
    assert!(
        u.contains("program 536870913 version 1 ready and waiting"),
        "ipclab's server via rpcbind: {u}"
    );
    let after = read(dir.path(), "p_after.txt");
    assert!(
        after.contains("100000") && !after.contains("536870913"),
        "unregistered from rpcbind:\n{after}"
    );
}
