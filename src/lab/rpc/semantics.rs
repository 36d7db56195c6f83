//! What a server remembers of the calls it ran, so that a retransmission
//! of a non-idempotent call (INCR) does not run it twice. Pure logic: the
//! server does the I/O (the state file) and prints each decision.
//!
//! - at-least-once: nothing; every copy of a call runs.
//! - at-most-once, as the notes describe it: a duplicate-request cache
//!   ([`Drc`]) keyed by the client, the xid and the client's timestamp
//!   (AUTH_SYS `stamp`, the seconds since 1970 when the call was first
//!   sent; retransmissions keep it). A duplicate gets the cached reply. The
//!   cache is bounded in entries and age, so the server also keeps a
//!   *floor*: a stamp at or below it is refused, since its entry may be gone
//!   — after a restart the floor is the start second (what ran before is
//!   lost), after an eviction the evicted entry's stamp, and calls older
//!   than the cache's age are refused too. Refused means "may or may not
//!   have run": the client cannot tell. That is the price.
//! - exactly-once (RIFL, Lee et al., SOSP 2015): at-most-once whose
//!   completion records ([`Records`]) are durable with the result, written
//!   before the reply leaves, so they survive a crash. A sequential client
//!   that sends xid x has its replies for every xid before x: that client's
//!   older record is discarded then, and a copy of an older xid is refused
//!   as stale.

use std::collections::{BTreeMap, VecDeque};

use super::state::Completion;

/// Who called, as the server tells callers apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `machinename/uid N` for AUTH_SYS, the address for AUTH_NONE.
    pub client: String,
    /// The AUTH_SYS stamp; AUTH_NONE callers have none.
    pub stamp: Option<u32>,
}

/// What to do with an INCR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run it.
    Execute,
    /// Answer with the result it had, without running it again.
    Replay(i32),
    /// Answer AUTH_REJECTEDCRED, for this reason.
    Refuse(String),
}

/// `a` comes before `b` in xid order (with wrap-around).
pub fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

#[derive(Debug, Clone)]
struct Entry {
    caller: Caller,
    xid: u32,
    result: i32,
    /// The server's clock when the entry was made.
    at: u32,
}

/// The duplicate-request cache of at-most-once.
#[derive(Debug, Clone)]
pub struct Drc {
    entries: VecDeque<Entry>,
    max_entries: usize,
    max_age: u32,
    floor: u32,
    floor_why: String,
}

impl Drc {
    /// A cache of at most `max_entries`, each kept `max_age` seconds;
    /// stamps at or below `floor` are refused for `why`.
    pub fn new(max_entries: usize, max_age: u32, floor: u32, why: impl Into<String>) -> Self {
        Drc {
            entries: VecDeque::new(),
            max_entries: max_entries.max(1),
            max_age,
            floor,
            floor_why: why.into(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn floor(&self) -> u32 {
        self.floor
    }

    /// Drops the entries older than the age limit; says what went.
    pub fn expire(&mut self, now: u32) -> Vec<String> {
        let mut gone = Vec::new();
        while let Some(e) = self.entries.front() {
            if now.saturating_sub(e.at) < self.max_age {
                break;
            }
            gone.push(format!(
                "evicted from the cache (older than {} s): {} xid {:#x}",
                self.max_age, e.caller.client, e.xid
            ));
            self.entries.pop_front();
        }
        gone
    }

    /// Whether a call was seen, is too old to tell, or is new.
    pub fn check(&self, now: u32, caller: &Caller, xid: u32) -> Decision {
        if let Some(e) = self
            .entries
            .iter()
            .find(|e| e.xid == xid && e.caller == *caller)
        {
            return Decision::Replay(e.result);
        }
        let Some(stamp) = caller.stamp else {
            return Decision::Execute;
        };
        if stamp <= self.floor {
            return Decision::Refuse(format!(
                "stamp {stamp} is not after {} ({}): this server cannot tell whether that call ran already",
                self.floor, self.floor_why
            ));
        }
        if now.saturating_sub(stamp) >= self.max_age {
            return Decision::Refuse(format!(
                "stamp {stamp} is {} s old, older than the {} s the cache keeps: whether it ran can no longer be told",
                now.saturating_sub(stamp),
                self.max_age
            ));
        }
        Decision::Execute
    }

    /// Remembers the result of a call that ran; an entry evicted to make
    /// room raises the floor to its stamp. Says what went.
    pub fn insert(&mut self, now: u32, caller: Caller, xid: u32, result: i32) -> Vec<String> {
        let mut gone = Vec::new();
        while self.entries.len() >= self.max_entries {
            let Some(e) = self.entries.pop_front() else {
                break;
            };
            let raised = match e.caller.stamp {
                Some(s) if s > self.floor => {
                    self.floor = s;
                    self.floor_why = "the stamp of a call evicted from the full cache".into();
                    format!("; stamps up to {s} are refused from now on")
                }
                _ => String::new(),
            };
            gone.push(format!(
                "evicted from the full cache ({} entries): {} xid {:#x}{raised}",
                self.max_entries, e.caller.client, e.xid
            ));
        }
        self.entries.push_back(Entry {
            caller,
            xid,
            result,
            at: now,
        });
        gone
    }
}

/// The completion records of exactly-once: the latest call of each client.
#[derive(Debug, Clone, Default)]
pub struct Records {
    by_client: BTreeMap<String, Completion>,
    /// Clients, least recently completed first.
    order: VecDeque<String>,
    max: usize,
}

impl Records {
    /// Records loaded from the state file; at most `max` clients.
    pub fn new(loaded: Vec<Completion>, max: usize) -> Self {
        let mut r = Records {
            max: max.max(1),
            ..Records::default()
        };
        for c in loaded {
            r.order.retain(|k| *k != c.client);
            r.order.push_back(c.client.clone());
            r.by_client.insert(c.client.clone(), c);
        }
        r
    }

    pub fn len(&self) -> usize {
        self.by_client.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_client.is_empty()
    }

    /// The records, oldest first, as the state file keeps them.
    pub fn to_vec(&self) -> Vec<Completion> {
        self.order
            .iter()
            .filter_map(|k| self.by_client.get(k).cloned())
            .collect()
    }

    pub fn check(&self, caller: &Caller, xid: u32) -> Decision {
        let stamp = caller.stamp.unwrap_or(0);
        match self.by_client.get(&caller.client) {
            Some(r) if r.xid == xid && r.stamp == stamp => Decision::Replay(r.result),
            Some(r) if before(xid, r.xid) => Decision::Refuse(format!(
                "xid {xid:#x} comes before {:#x}, this client's latest call: the client has had that reply \
                 (a sequential client sends a new call only then), so this is a stale copy",
                r.xid
            )),
            _ => Decision::Execute,
        }
    }

    /// Records a completed call; says which records go (the client's
    /// previous one, and the least recent client's when over the limit).
    pub fn complete(&mut self, caller: &Caller, xid: u32, result: i32) -> Vec<String> {
        let mut notes = Vec::new();
        let rec = Completion {
            client: caller.client.clone(),
            xid,
            stamp: caller.stamp.unwrap_or(0),
            result,
        };
        if let Some(old) = self.by_client.insert(caller.client.clone(), rec) {
            if old.xid != xid {
                notes.push(format!(
                    "discarded: the record of xid {:#x} — {} sent xid {xid:#x}, so it has that reply",
                    old.xid, caller.client
                ));
            }
        }
        self.order.retain(|k| *k != caller.client);
        self.order.push_back(caller.client.clone());
        while self.by_client.len() > self.max {
            let Some(k) = self.order.pop_front() else {
                break;
            };
            if let Some(old) = self.by_client.remove(&k) {
                notes.push(format!(
                    "evicted: the record of {k} xid {:#x} ({} clients at most): a copy of that call would run again",
                    old.xid, self.max
                ));
            }
        }
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sys(stamp: u32) -> Caller {
        Caller {
            client: "ipclab-7/uid 0".into(),
            stamp: Some(stamp),
        }
    }

    #[test]
    fn the_cache_answers_duplicates_and_refuses_what_it_cannot_know() {
        let mut d = Drc::new(2, 60, 100, "the server's start");
        assert_eq!(d.check(110, &sys(105), 1), Decision::Execute);
        assert!(d.insert(110, sys(105), 1, 41).is_empty());
        assert_eq!(d.check(111, &sys(105), 1), Decision::Replay(41));
        // Same xid, another stamp: another call.
        assert_eq!(d.check(111, &sys(106), 1), Decision::Execute);
        // From before the start: refused.
        assert!(matches!(d.check(111, &sys(100), 9), Decision::Refuse(w) if w.contains("start")));
        // Older than the cache keeps.
        assert!(matches!(d.check(200, &sys(130), 9), Decision::Refuse(w) if w.contains("old")));
        // AUTH_NONE callers have no stamp: only the cache decides.
        let none = Caller {
            client: "127.0.0.1:5".into(),
            stamp: None,
        };
        assert_eq!(d.check(111, &none, 3), Decision::Execute);
    }

    #[test]
    fn evictions_are_reported_and_move_the_floor() {
        let mut d = Drc::new(2, 60, 0, "nothing lost");
        d.insert(10, sys(10), 1, 1);
        d.insert(11, sys(11), 2, 2);
        let gone = d.insert(12, sys(12), 3, 3);
        assert_eq!(gone.len(), 1);
        assert!(
            gone[0].contains("xid 0x1") && gone[0].contains("up to 10"),
            "{gone:?}"
        );
        assert_eq!(d.floor(), 10);
        // The evicted call's copy is refused, not run again.
        assert!(matches!(d.check(12, &sys(10), 1), Decision::Refuse(_)));
        let old = d.expire(71);
        assert_eq!(old.len(), 1, "{old:?}");
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn records_replay_discard_and_refuse_stale_copies() {
        let mut r = Records::new(Vec::new(), 2);
        assert_eq!(r.check(&sys(50), 10), Decision::Execute);
        assert!(r.complete(&sys(50), 10, 1).is_empty());
        assert_eq!(r.check(&sys(50), 10), Decision::Replay(1));
        assert_eq!(r.check(&sys(51), 11), Decision::Execute);
        let notes = r.complete(&sys(51), 11, 2);
        assert!(
            notes[0].starts_with("discarded: the record of xid 0xa"),
            "{notes:?}"
        );
        assert!(matches!(r.check(&sys(50), 10), Decision::Refuse(w) if w.contains("stale")));
        // Wrap-around: 0 comes after 0xffffffff.
        assert!(before(0xffff_ffff, 0));
        assert!(!before(0, 0xffff_ffff));
        // Over the limit, the least recent client's record goes.
        for (i, who) in ["a", "b"].iter().enumerate() {
            let c = Caller {
                client: (*who).into(),
                stamp: None,
            };
            let notes = r.complete(&c, 1, i as i32);
            if i == 1 {
                assert!(
                    notes
                        .iter()
                        .any(|n| n.contains("evicted: the record of ipclab-7")),
                    "{notes:?}"
                );
            }
        }
        assert_eq!(r.len(), 2);
        // A round trip through the state file keeps the order.
        let back = Records::new(r.to_vec(), 2);
        assert_eq!(back.to_vec(), r.to_vec());
    }
}
