//! Each process's descriptor table at each step, as its steps show it, for
//! the HTML report: a run made with `--fds` recorded the kernel's own
//! tables (`fds` lines), and those are used; otherwise the table is
//! rebuilt from the steps' `objects` — descriptors made by a step (pipe2,
//! socket, accept4, openat…), the parent's table copied at fork, a
//! descriptor gone at its close, all gone at exit_group. Descriptors the
//! steps never used (stdin, stdout, stderr) are not in it.

use std::collections::{BTreeMap, HashMap};

use super::input::{FdRow, Obj, StepRec};
use super::model::{is_fork, LaneKey, Section};

/// A child's start: its parent's table at the fork, and what each is for.
type Inherited = (BTreeMap<i32, FdRow>, HashMap<i32, String>);

/// Fills in `item.table` for every step, unless the run recorded tables.
pub fn rebuild(s: &mut Section) {
    if s.recorded_tables {
        return;
    }
    let mut live: HashMap<usize, BTreeMap<i32, FdRow>> = HashMap::new();
    // What each descriptor is for, from the step that made it.
    let mut roles: HashMap<(usize, i32), String> = HashMap::new();
    let mut inherit: HashMap<i32, Inherited> = HashMap::new();
    let mut last: HashMap<usize, usize> = HashMap::new();
    for i in 0..s.items.len() {
        let lane = s.items[i].lane;
        if let std::collections::hash_map::Entry::Vacant(e) = live.entry(lane) {
            let start = match s.lanes[lane].key {
                LaneKey::Pid(p) => inherit.remove(&p),
                LaneKey::Host(_) => None,
            };
            let (table, r) = start.unwrap_or_default();
            for (fd, role) in r {
                roles.insert((lane, fd), role);
            }
            e.insert(table);
        }
        let Some(st) = s.items[i].step().cloned() else {
            continue;
        };
        let table = live.get_mut(&lane).expect("inserted above");
        if st.syscall == "exit_group" {
            table.clear();
        }
        for (k, o) in st.objects.iter().enumerate() {
            if let Some(role) = role(&st, o, k) {
                roles.insert((lane, o.fd), role);
            }
            let role = roles.get(&(lane, o.fd)).map(String::as_str);
            table.insert(
                o.fd,
                FdRow {
                    fd: o.fd,
                    target: o.object.clone(),
                    desc: describe(o, role),
                },
            );
        }
        if st.syscall == "close" && st.ret == Some(0) {
            if let Some(fd) = st.args.first().and_then(|a| a.parse().ok()) {
                table.remove(&fd);
                roles.remove(&(lane, fd));
            }
        }
        if is_fork(&st) {
            if let Some(child) = st.ret.filter(|&r| r > 0) {
                let r = roles
                    .iter()
                    .filter(|((l, _), _)| *l == lane)
                    .map(|((_, fd), role)| (*fd, role.clone()))
                    .collect();
                inherit.insert(child as i32, (table.clone(), r));
            }
        }
        let rows: Vec<FdRow> = table.values().cloned().collect();
        let same = last.get(&lane).is_some_and(|&t| s.tables[t] == rows);
        if !same {
            s.tables.push(rows);
            last.insert(lane, s.tables.len() - 1);
        }
        s.items[i].table = last.get(&lane).copied();
    }
}

/// What the step that made a descriptor says it is for.
fn role(st: &StepRec, o: &Obj, k: usize) -> Option<String> {
    let made = |fd: i32| st.ret == Some(i64::from(fd));
    match st.syscall.as_str() {
        "pipe2" => Some(if k == 0 { "read end" } else { "write end" }.to_string()),
        "openat" if made(o.fd) => {
            let mode = st.args.get(2)?;
            Some(
                if mode.starts_with("O_WRONLY") {
                    "opened for writing"
                } else if mode.starts_with("O_RDWR") {
                    "opened for reading and writing"
                } else {
                    "opened for reading"
                }
                .to_string(),
            )
        }
        "accept4" | "accept" if made(o.fd) => Some("an accepted connection".to_string()),
        "socketpair" => Some("one end of a socket pair".to_string()),
        _ => None,
    }
}

/// `pipe:[9] (read end)`, `socket:[7] TCP 127.0.0.1:1 -> 127.0.0.1:2`.
fn describe(o: &Obj, role: Option<&str>) -> String {
    let mut s = o.object.clone();
    if let Some(p) = &o.proto {
        s.push(' ');
        s.push_str(p);
    }
    if let Some(l) = &o.local {
        s.push(' ');
        s.push_str(l);
    }
    if let Some(r) = &o.remote {
        s.push_str(" -> ");
        s.push_str(r);
    }
    if let Some(p) = &o.peer {
        s.push_str(" peer=");
        s.push_str(p);
    }
    if let Some(r) = role {
        s.push_str(&format!(" ({r})"));
    }
    s
}
