//! Structural operators by the nested-set model (`traceql.md` §7.3). A span takes part in a
//! positive relation only when its nested-set numbers are non-zero (orphans never do); the
//! negated forms return the R spans the positive form does not, orphans included.
//!
//! Nested sets are laminar (two intervals nest or are disjoint), which turns "is r inside some
//! l" into a prefix maximum over L sorted by `left`, and "does r contain some l" into a search
//! for an L `left` inside r: O((|L| + |R|) log |L|) instead of |L| × |R|.

use std::collections::{HashMap, HashSet};

use crate::ast::SpansetOp;
use crate::batch::SpanBatch;

/// The spans `L op R` returns (sorted, without repeats); `rs` is not empty.
pub(super) fn relate(b: &SpanBatch, op: SpansetOp, ls: &[u32], rs: &[u32]) -> Vec<u32> {
    use SpansetOp::*;
    let l_lefts: HashSet<i32> = ls.iter().map(|&l| left(b, l)).filter(|l| *l != 0).collect();
    let l_parents: HashSet<i32> = ls
        .iter()
        .filter(|&&l| left(b, l) != 0)
        .map(|&l| parent(b, l))
        .collect();
    let is_child =
        |_: &SpanBatch, _: &[u32], r: u32| left(b, r) != 0 && l_lefts.contains(&parent(b, r));
    let is_parent =
        |_: &SpanBatch, _: &[u32], r: u32| left(b, r) != 0 && l_parents.contains(&left(b, r));
    let mut out: Vec<u32> = match op {
        Child => rs.iter().copied().filter(|&r| is_child(b, ls, r)).collect(),
        Parent => rs
            .iter()
            .copied()
            .filter(|&r| is_parent(b, ls, r))
            .collect(),
        Descendant => {
            let inside = Inside::new(b, ls);
            rs.iter()
                .copied()
                .filter(|&r| inside.contains_some(b, r))
                .collect()
        }
        Ancestor => {
            let starts = Starts::new(b, ls);
            rs.iter()
                .copied()
                .filter(|&r| starts.within(b, r))
                .collect()
        }
        Sibling => {
            let sib = Siblings::new(b, ls);
            rs.iter()
                .copied()
                .filter(|&r| sib.has_sibling(b, r))
                .collect()
        }
        NotChild => rs
            .iter()
            .copied()
            .filter(|&r| !is_child(b, ls, r))
            .collect(),
        NotParent => rs
            .iter()
            .copied()
            .filter(|&r| !is_parent(b, ls, r))
            .collect(),
        NotDescendant => {
            let inside = Inside::new(b, ls);
            rs.iter()
                .copied()
                .filter(|&r| !inside.contains_some(b, r))
                .collect()
        }
        NotAncestor => {
            let starts = Starts::new(b, ls);
            rs.iter()
                .copied()
                .filter(|&r| !starts.within(b, r))
                .collect()
        }
        NotSibling => {
            let sib = Siblings::new(b, ls);
            rs.iter()
                .copied()
                .filter(|&r| !sib.has_sibling(b, r))
                .collect()
        }
        UnionChild => {
            let kids: Vec<u32> = rs.iter().copied().filter(|&r| is_child(b, ls, r)).collect();
            let parents: HashSet<i32> = kids.iter().map(|&k| parent(b, k)).collect();
            let mut v: Vec<u32> = ls
                .iter()
                .copied()
                .filter(|&l| left(b, l) != 0 && parents.contains(&left(b, l)))
                .collect();
            v.extend(kids);
            v
        }
        UnionParent => {
            let ps: Vec<u32> = rs
                .iter()
                .copied()
                .filter(|&r| is_parent(b, ls, r))
                .collect();
            let lefts: HashSet<i32> = ps.iter().map(|&p| left(b, p)).collect();
            let mut v: Vec<u32> = ls
                .iter()
                .copied()
                .filter(|&l| left(b, l) != 0 && lefts.contains(&parent(b, l)))
                .collect();
            v.extend(ps);
            v
        }
        UnionDescendant => {
            let inside = Inside::new(b, ls);
            let ds: Vec<u32> = rs
                .iter()
                .copied()
                .filter(|&r| inside.contains_some(b, r))
                .collect();
            let starts = Starts::new(b, &ds);
            let mut v: Vec<u32> = ls
                .iter()
                .copied()
                .filter(|&l| starts.within(b, l))
                .collect();
            v.extend(ds);
            v
        }
        UnionAncestor => {
            let starts = Starts::new(b, ls);
            let anc: Vec<u32> = rs
                .iter()
                .copied()
                .filter(|&r| starts.within(b, r))
                .collect();
            let inside = Inside::new(b, &anc);
            let mut v: Vec<u32> = ls
                .iter()
                .copied()
                .filter(|&l| inside.contains_some(b, l))
                .collect();
            v.extend(anc);
            v
        }
        UnionSibling => {
            let sib_l = Siblings::new(b, ls);
            let sib_r = Siblings::new(b, rs);
            let mut v: Vec<u32> = rs
                .iter()
                .copied()
                .filter(|&r| sib_l.has_sibling(b, r))
                .collect();
            v.extend(ls.iter().copied().filter(|&l| sib_r.has_sibling(b, l)));
            v
        }
        And | Union => unreachable_logic(ls, rs),
    };
    out.sort_unstable();
    out.dedup();
    out
}

/// `&&`/`||` never reach here (the evaluator handles them); answer as a union to stay total.
fn unreachable_logic(ls: &[u32], rs: &[u32]) -> Vec<u32> {
    ls.iter().chain(rs).copied().collect()
}

fn left(b: &SpanBatch, s: u32) -> i32 {
    b.span_nested_left[s as usize]
}

fn right(b: &SpanBatch, s: u32) -> i32 {
    b.span_nested_right[s as usize]
}

fn parent(b: &SpanBatch, s: u32) -> i32 {
    b.span_nested_parent[s as usize]
}

/// L intervals sorted by `left` with the running maximum of `right`: is r inside some l?
struct Inside {
    lefts: Vec<i32>,
    max_right: Vec<i32>,
}

impl Inside {
    fn new(b: &SpanBatch, ls: &[u32]) -> Inside {
        let mut iv: Vec<(i32, i32)> = ls
            .iter()
            .map(|&l| (left(b, l), right(b, l)))
            .filter(|(l, _)| *l != 0)
            .collect();
        iv.sort_unstable();
        let mut max_right = Vec::with_capacity(iv.len());
        let mut m = i32::MIN;
        for (_, r) in &iv {
            m = m.max(*r);
            max_right.push(m);
        }
        Inside {
            lefts: iv.into_iter().map(|(l, _)| l).collect(),
            max_right,
        }
    }

    fn contains_some(&self, b: &SpanBatch, r: u32) -> bool {
        let (rl, rr) = (left(b, r), right(b, r));
        if rl == 0 {
            return false;
        }
        let n = self.lefts.partition_point(|&l| l < rl);
        n > 0 && self.max_right[n - 1] > rr
    }
}

/// Sorted L `left`s: does r contain some l?
struct Starts(Vec<i32>);

impl Starts {
    fn new(b: &SpanBatch, ls: &[u32]) -> Starts {
        let mut v: Vec<i32> = ls.iter().map(|&l| left(b, l)).filter(|l| *l != 0).collect();
        v.sort_unstable();
        Starts(v)
    }

    fn within(&self, b: &SpanBatch, r: u32) -> bool {
        let (rl, rr) = (left(b, r), right(b, r));
        if rl == 0 {
            return false;
        }
        let i = self.0.partition_point(|&l| l <= rl);
        i < self.0.len() && self.0[i] < rr
    }
}

/// L spans counted by parent: does r have a sibling (another span with its parent) in L?
struct Siblings(HashMap<i32, Vec<u32>>);

impl Siblings {
    fn new(b: &SpanBatch, ls: &[u32]) -> Siblings {
        let mut m: HashMap<i32, Vec<u32>> = HashMap::new();
        for &l in ls {
            if left(b, l) != 0 && parent(b, l) != 0 {
                m.entry(parent(b, l)).or_default().push(l);
            }
        }
        Siblings(m)
    }

    fn has_sibling(&self, b: &SpanBatch, r: u32) -> bool {
        if left(b, r) == 0 || parent(b, r) == 0 {
            return false;
        }
        self.0
            .get(&parent(b, r))
            .is_some_and(|v| v.iter().any(|&l| l != r))
    }
}
