//! The sequence-diagram model of a run: per section, one lane per process
//! (from its first event to its exit), one item per syscall and the other
//! events, the blocked intervals, and the arrows between lanes.
//!
//! Built from the JSON lines alone (`input`), so `ipclab diagram RUN.jsonl`
//! and `--diagram` draw the same picture. Pure: no syscalls, no steps.

use std::collections::HashMap;

use super::input::{FdRow, Record, StepRec};
use super::{arrows, order, tables};

/// The whole run.
#[derive(Debug, Clone)]
pub struct Diagram {
    pub title: String,
    pub sections: Vec<Section>,
}

/// One section of a run (`tour` has many; a single lab is one).
#[derive(Debug, Clone)]
pub struct Section {
    pub name: String,
    pub title: String,
    /// The summary's verdict for it (`ok`, `skipped: …`), when there is one.
    pub result: Option<String>,
    pub lanes: Vec<Lane>,
    /// In drawing order: time runs down, each item after its causes.
    pub items: Vec<Item>,
    pub arrows: Vec<Arrow>,
    /// Descriptor tables, which items refer to: the run's own (`fds`
    /// lines, with `--fds`) or rebuilt from the steps (`tables`).
    pub tables: Vec<Vec<FdRow>>,
    /// Whether the tables are the run's own.
    pub recorded_tables: bool,
}

/// What a lane stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaneKey {
    Pid(i32),
    /// An address seen in captured packets (`127.0.0.1:8989`).
    Host(String),
}

/// How a process's lane ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    Exited(i32),
    Killed(String),
    /// Still running when the section ended (the parent runs on).
    Open,
}

#[derive(Debug, Clone)]
pub struct Lane {
    pub key: LaneKey,
    /// `parent · client`, `child · server`, `host`.
    pub role: String,
    /// The lane's first and last items (indices into `items`).
    pub first: Option<usize>,
    pub last: Option<usize>,
    pub end: End,
}

impl Lane {
    /// `pid 4242` or the address.
    pub fn label(&self) -> String {
        match &self.key {
            LaneKey::Pid(p) => format!("pid {p}"),
            LaneKey::Host(h) => h.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Item {
    pub lane: usize,
    pub kind: Kind,
    /// The descriptor table in force for this process at this item, if
    /// the run recorded tables (`--fds`, `--html`).
    pub table: Option<usize>,
}

#[derive(Debug, Clone)]
pub enum Kind {
    Step(Box<StepRec>),
    /// A call that can block is about to be made; `until` is its step.
    Waiting {
        syscall: String,
        reason: String,
        until: Option<usize>,
    },
    Message(String),
    Signal {
        signal: String,
        from: i32,
    },
    Exit {
        status: Option<i32>,
        signal: Option<String>,
    },
}

impl Item {
    pub fn step(&self) -> Option<&StepRec> {
        match &self.kind {
            Kind::Step(s) => Some(s),
            _ => None,
        }
    }
}

/// What an arrow shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrowKind {
    /// Bytes written in one lane and read in another.
    Data,
    /// connect → the accept that took the connection.
    Connect,
    /// fork (clone) → the child's first event.
    Fork,
    /// The child's exit → the wait4 that reaped it.
    Reap,
    /// A signal sent (or caused) by one process and delivered to another.
    Signal,
    /// futex FUTEX_WAKE → the FUTEX_WAIT it ended (shared memory).
    Wake,
    /// A frame captured by sniff, between the addresses it names.
    Packet,
}

impl ArrowKind {
    /// The class name in the SVG (`arrow data`…).
    pub fn class(self) -> &'static str {
        match self {
            ArrowKind::Data => "data",
            ArrowKind::Connect => "connect",
            ArrowKind::Fork => "fork",
            ArrowKind::Reap => "reap",
            ArrowKind::Signal => "signal",
            ArrowKind::Wake => "wake",
            ArrowKind::Packet => "packet",
        }
    }
}

/// A place on a lane: the lane and the item (row) it is drawn at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    pub lane: usize,
    pub item: usize,
}

#[derive(Debug, Clone)]
pub struct Arrow {
    pub kind: ArrowKind,
    /// `None`: from outside the run (a signal from another process).
    pub from: Option<Point>,
    pub to: Point,
    /// `5 B`, `2 of 5 B`, `SIGCHLD`, `#3 [SYN]`.
    pub label: String,
    /// For data: the bytes this arrow carries.
    pub bytes: Option<u64>,
    /// For data: part of one write read in pieces, or one of the writes
    /// that one read took at once.
    pub piece: bool,
}

impl Diagram {
    /// The diagram of a run's records, under `title`.
    pub fn build(records: Vec<Record>, title: &str) -> Diagram {
        let results: HashMap<String, String> = records
            .iter()
            .filter_map(|r| match r {
                Record::Summary(rows) => Some(rows.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        let sections = split(records)
            .into_iter()
            .map(|(name, title, recs)| {
                let result = results.get(&name).cloned();
                Section::build(name, title, result, recs)
            })
            .collect();
        Diagram {
            title: title.to_string(),
            sections,
        }
    }
}

/// The records of each section: (name, title, records). A run without
/// sections is one, named after its summary row; what comes before the
/// first section is a section of its own when it holds steps.
fn split(records: Vec<Record>) -> Vec<(String, String, Vec<Record>)> {
    let has_sections = records.iter().any(|r| matches!(r, Record::Section { .. }));
    let single_name = records
        .iter()
        .rev()
        .find_map(|r| match r {
            Record::Summary(rows) if rows.len() == 1 => Some(rows[0].0.clone()),
            _ => None,
        })
        .unwrap_or_else(|| "run".to_string());
    let mut out: Vec<(String, String, Vec<Record>)> = Vec::new();
    let (first_name, first_title) = if has_sections {
        (
            "start".to_string(),
            "before the first section: the stop signals are held and caught".to_string(),
        )
    } else {
        (single_name, String::new())
    };
    out.push((first_name, first_title, Vec::new()));
    for r in records {
        match r {
            Record::Section { name, title } => out.push((name, title, Vec::new())),
            Record::Summary(_) => {}
            r => out.last_mut().expect("one section at least").2.push(r),
        }
    }
    if has_sections
        && !out[0]
            .2
            .iter()
            .any(|r| matches!(r, Record::Step(_) | Record::Message { .. }))
    {
        out.remove(0);
    }
    out
}

impl Section {
    fn build(name: String, title: String, result: Option<String>, recs: Vec<Record>) -> Section {
        let mut s = Section {
            name,
            title,
            result,
            lanes: Vec::new(),
            items: Vec::new(),
            arrows: Vec::new(),
            tables: Vec::new(),
            recorded_tables: false,
        };
        let mut in_force: HashMap<i32, usize> = HashMap::new();
        let mut last_step: HashMap<i32, usize> = HashMap::new();
        for r in recs {
            let (pid, kind) = match r {
                Record::Step(st) => (st.pid, Kind::Step(Box::new(st))),
                Record::Waiting {
                    pid,
                    syscall,
                    reason,
                } => (
                    pid,
                    Kind::Waiting {
                        syscall,
                        reason,
                        until: None,
                    },
                ),
                Record::Message { pid, text } => (pid, Kind::Message(text)),
                Record::Signal {
                    pid,
                    signal,
                    si_pid,
                    ..
                } => (
                    pid,
                    Kind::Signal {
                        signal,
                        from: si_pid,
                    },
                ),
                Record::Exit {
                    pid,
                    status,
                    signal,
                } => (pid, Kind::Exit { status, signal }),
                Record::Fds { pid, fds } => {
                    s.tables.push(fds);
                    let t = s.tables.len() - 1;
                    in_force.insert(pid, t);
                    // The table was taken right after this process's last step.
                    if let Some(&i) = last_step.get(&pid) {
                        s.items[i].table = Some(t);
                    }
                    continue;
                }
                Record::Section { .. } | Record::Summary(_) => continue,
            };
            let lane = s.lane_of(LaneKey::Pid(pid));
            if matches!(kind, Kind::Step(_)) {
                last_step.insert(pid, s.items.len());
            }
            s.items.push(Item {
                lane,
                kind,
                table: in_force.get(&pid).copied(),
            });
        }
        s.recorded_tables = !s.tables.is_empty();
        s.link_waits();
        s.arrows = arrows::find(&mut s);
        let order = order::layout(&s.items, &s.arrows);
        s.reorder(&order);
        s.finish_lanes();
        tables::rebuild(&mut s);
        s
    }

    /// The lane for `key`, added when new.
    pub fn lane_of(&mut self, key: LaneKey) -> usize {
        if let Some(i) = self.lanes.iter().position(|l| l.key == key) {
            return i;
        }
        self.lanes.push(Lane {
            key,
            role: String::new(),
            first: None,
            last: None,
            end: End::Open,
        });
        self.lanes.len() - 1
    }

    /// Each waiting marker's step: the lane's next step of that call.
    fn link_waits(&mut self) {
        for i in 0..self.items.len() {
            let Kind::Waiting { syscall, .. } = &self.items[i].kind else {
                continue;
            };
            let lane = self.items[i].lane;
            let until = (i + 1..self.items.len()).find(|&j| {
                self.items[j].lane == lane
                    && self.items[j].step().is_some_and(|s| s.syscall == *syscall)
            });
            if let Kind::Waiting { until: u, .. } = &mut self.items[i].kind {
                *u = until;
            }
        }
    }

    /// Puts the items in `order` (a permutation), renumbering references.
    fn reorder(&mut self, order: &[usize]) {
        let mut new_index = vec![0; order.len()];
        for (new, &old) in order.iter().enumerate() {
            new_index[old] = new;
        }
        let mut items: Vec<Option<Item>> = std::mem::take(&mut self.items)
            .into_iter()
            .map(Some)
            .collect();
        self.items = order
            .iter()
            .map(|&old| items[old].take().expect("a permutation"))
            .collect();
        for it in &mut self.items {
            if let Kind::Waiting { until: Some(u), .. } = &mut it.kind {
                *u = new_index[*u];
            }
        }
        for a in &mut self.arrows {
            if let Some(f) = &mut a.from {
                f.item = new_index[f.item];
            }
            a.to.item = new_index[a.to.item];
        }
    }

    /// First and last item, end and role of each lane.
    fn finish_lanes(&mut self) {
        for (i, it) in self.items.iter().enumerate() {
            let l = &mut self.lanes[it.lane];
            l.first.get_or_insert(i);
            l.last = Some(i);
            if let Kind::Exit { status, signal } = &it.kind {
                l.end = match (status, signal) {
                    (_, Some(sig)) => End::Killed(sig.clone()),
                    (Some(c), None) => End::Exited(*c),
                    (None, None) => End::Exited(0),
                };
            }
        }
        for a in &self.arrows {
            if a.kind == ArrowKind::Packet {
                for p in a.from.iter().chain(std::iter::once(&a.to)) {
                    let l = &mut self.lanes[p.lane];
                    l.first = Some(l.first.map_or(p.item, |f| f.min(p.item)));
                    l.last = Some(l.last.map_or(p.item, |f| f.max(p.item)));
                }
            }
        }
        let roles: Vec<String> = (0..self.lanes.len()).map(|l| self.role(l)).collect();
        for (l, r) in self.lanes.iter_mut().zip(roles) {
            l.role = r;
        }
    }

    fn steps_of(&self, lane: usize) -> impl Iterator<Item = &StepRec> {
        self.items
            .iter()
            .filter(move |it| it.lane == lane)
            .filter_map(Item::step)
    }

    /// What a lane's process is, from the fork structure and what it does.
    fn role(&self, lane: usize) -> String {
        match &self.lanes[lane].key {
            LaneKey::Pid(_) => {}
            LaneKey::Host(addr) => {
                // A socket of this section that has the address, if one does.
                let owner = self.items.iter().find_map(|it| {
                    let st = it.step()?;
                    let o = st
                        .objects
                        .iter()
                        .find(|o| o.local.as_deref() == Some(addr))?;
                    Some(format!("socket of pid {}, fd {}", st.pid, o.fd))
                });
                return owner.unwrap_or_else(|| "address".to_string());
            }
        }
        let forked_by = self
            .arrows
            .iter()
            .find(|a| a.kind == ArrowKind::Fork && a.to.lane == lane)
            .and_then(|a| a.from)
            .map(|p| p.lane);
        let forks = self
            .steps_of(lane)
            .any(|s| is_fork(s) && s.ret.is_some_and(|r| r > 0));
        let structure = match (forked_by, forks) {
            (Some(_), _) => "child",
            (None, true) => "parent",
            (None, false) => "process",
        };
        let ok = |s: &&StepRec| s.errno.is_none() || s.errno.as_deref() == Some("EINPROGRESS");
        let does = |names: &[&str]| {
            self.steps_of(lane)
                .filter(ok)
                .any(|s| names.contains(&s.syscall.as_str()))
        };
        let parent_serves = forked_by.is_some_and(|p| {
            self.steps_of(p)
                .any(|s| matches!(s.syscall.as_str(), "listen" | "accept4" | "accept"))
        });
        // A parent may make the listening socket and hand it to a child
        // (tcp demo): who accepts is the server, who connects the client.
        let function = if does(&["accept4", "accept"]) {
            "server"
        } else if does(&["connect"]) {
            "client"
        } else if parent_serves && does(&["recvfrom", "recvmsg", "read"]) {
            "serves one client"
        } else if does(&["listen"]) {
            "server"
        } else if let Some(first) = self.steps_of(lane).filter(ok).find(|s| {
            matches!(
                s.syscall.as_str(),
                "sendto" | "recvfrom" | "sendmsg" | "recvmsg"
            )
        }) {
            if first.syscall.starts_with("recv") {
                "server"
            } else {
                "client"
            }
        } else {
            let writes = does(&["write"]);
            let reads = does(&["read"]);
            match (writes, reads) {
                (true, true) => "reads and writes",
                (true, false) => "writer",
                (false, true) => "reader",
                _ => "",
            }
        };
        if function.is_empty() {
            structure.to_string()
        } else {
            format!("{structure} · {function}")
        }
    }
}

/// `clone`, `fork` or `vfork`: a new process.
pub fn is_fork(s: &StepRec) -> bool {
    matches!(s.syscall.as_str(), "clone" | "clone3" | "fork" | "vfork")
}
