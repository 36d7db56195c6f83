//! The order items are drawn in, top to bottom.
//!
//! Each process writes its own lines, so the run's file holds them in the
//! order they reached it: a fork's line comes after the child's first
//! ones (the parent writes it once `clone` has returned), and a reader can
//! write its line before the writer does. Drawn as is, such arrows would
//! point up. The drawing order keeps each lane's own order and puts every
//! arrow's start above its end, and otherwise keeps the file's order: a
//! topological sort that always takes the earliest item it may, by the
//! time the run recorded: when a step returned (`t_us` + `elapsed_us`:
//! its result is what the box shows), when a waiting marker's call began;
//! other lines take the time of the line before them in their lane. Runs
//! saved without times keep the file's order. (If the arrows made a
//! cycle, which a faithful run cannot, the earliest item left is taken
//! anyway.)

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::model::{Arrow, Item, Kind};

/// When each item happened, as far as the run says (µs since its start).
fn times(items: &[Item]) -> Vec<u64> {
    let mut lane_time: std::collections::HashMap<usize, u64> = Default::default();
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        let t = match &it.kind {
            Kind::Step(s) => s.end_us(),
            Kind::Waiting { until: Some(u), .. } => items[*u].step().and_then(|s| s.t_us),
            _ => None,
        };
        let t = t.unwrap_or_else(|| lane_time.get(&it.lane).copied().unwrap_or(0));
        lane_time.insert(it.lane, t);
        out.push(t);
    }
    out
}

/// A wait that returned because something became ready.
fn woke(it: &Item) -> bool {
    it.step().is_some_and(|s| {
        matches!(
            s.syscall.as_str(),
            "ppoll" | "poll" | "epoll_wait" | "epoll_pwait" | "select" | "pselect6"
        ) && s.ret.is_some_and(|r| r > 0)
    })
}

/// A permutation of `0..items.len()`: the item drawn at each row.
pub fn layout(items: &[Item], arrows: &[Arrow]) -> Vec<usize> {
    let n = items.len();
    let when = times(items);
    let mut succ: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut indeg = vec![0usize; n];
    let mut edge = |a: usize, b: usize, succ: &mut Vec<Vec<usize>>| {
        if a != b {
            succ[a].push(b);
            indeg[b] += 1;
        }
    };
    let mut last_in_lane: std::collections::HashMap<usize, usize> = Default::default();
    let mut before = vec![None; n];
    for (i, it) in items.iter().enumerate() {
        if let Some(prev) = last_in_lane.insert(it.lane, i) {
            edge(prev, i, &mut succ);
            before[i] = Some(prev);
        }
    }
    for a in arrows {
        let Some(f) = a.from else { continue };
        edge(f.item, a.to.item, &mut succ);
        // The wait that ended because of it (ppoll on the descriptor the
        // read then drains, on the pidfd before wait4) comes after it too.
        if let Some(p) = before[a.to.item].filter(|&p| woke(&items[p])) {
            edge(f.item, p, &mut succ);
        }
    }
    let mut ready: BinaryHeap<Reverse<(u64, usize)>> = (0..n)
        .filter(|&i| indeg[i] == 0)
        .map(|i| Reverse((when[i], i)))
        .collect();
    let mut placed = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while order.len() < n {
        let next = match ready.pop() {
            Some(Reverse((_, i))) if placed[i] => continue,
            Some(Reverse((_, i))) => i,
            // A cycle: take the earliest line not yet drawn.
            None => (0..n).find(|&i| !placed[i]).expect("one is left"),
        };
        placed[next] = true;
        order.push(next);
        for &s in &succ[next] {
            indeg[s] = indeg[s].saturating_sub(1);
            if indeg[s] == 0 && !placed[s] {
                ready.push(Reverse((when[s], s)));
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagram::model::{ArrowKind, Kind, Point};

    fn item(lane: usize) -> Item {
        Item {
            lane,
            kind: Kind::Message(String::new()),
            table: None,
        }
    }

    fn arrow(from: (usize, usize), to: (usize, usize)) -> Arrow {
        Arrow {
            kind: ArrowKind::Data,
            from: Some(Point {
                lane: from.0,
                item: from.1,
            }),
            to: Point {
                lane: to.0,
                item: to.1,
            },
            label: String::new(),
            bytes: None,
            piece: false,
        }
    }

    #[test]
    fn arrows_point_down_and_lanes_keep_their_order() {
        // The child (lane 1) wrote items 0 and 1 before the parent's fork line (2).
        let items = vec![item(1), item(1), item(0), item(0)];
        let order = layout(&items, &[arrow((0, 2), (1, 0))]);
        assert_eq!(order, [2, 0, 1, 3]);
    }

    #[test]
    fn a_cycle_still_gives_every_item_once() {
        let items = vec![item(0), item(1)];
        let mut order = layout(&items, &[arrow((0, 0), (1, 1)), arrow((1, 1), (0, 0))]);
        order.sort_unstable();
        assert_eq!(order, [0, 1]);
    }
}
