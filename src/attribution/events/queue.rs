//! The events still to come in one stretch, kept in buckets by α.

use super::state::Event;

/// Buckets per stretch. Events spread over them (a few thousand per stretch, most of them
/// going stale before their turn), so that a bucket holds a handful.
const BUCKETS: usize = 4096;

/// No entry: the end of a bucket's list, or of the free list.
const NONE: u32 = u32::MAX;

/// Scheduled events of one stretch [α₀, α₁), in buckets of equal width in α.
///
/// A push costs O(1); the earliest event is found by scanning the first non-empty bucket,
/// dropping the entries that went stale on the way. (A binary heap did the same job with
/// a sift through its whole depth per pop, and most pops were of stale entries.) The
/// earliest event is the greatest by [`Event`]'s order, as it was on the heap, so events
/// come out in the same order. Each bucket is a list linked through one arena of entries,
/// whose dropped entries are reused (a vector per bucket cost an allocation per bucket
/// per stretch).
pub(super) struct Queue {
    /// Per bucket: its first entry.
    heads: Vec<u32>,
    /// Events and the next entry of their bucket (or of the free list).
    entries: Vec<(Event, u32)>,
    /// The first entry free for reuse.
    free: u32,
    alpha0: f64,
    /// Buckets per unit of α.
    scale: f64,
    /// Every bucket before this one is empty.
    first: usize,
    /// Where [`Self::peek`] found the earliest event in bucket `first`: the entry, and
    /// the entry before it in the bucket's list.
    found: (u32, u32),
}

impl Queue {
    /// An empty queue for events at α in [α₀, α₁).
    pub(super) fn new([alpha0, alpha1]: [f64; 2]) -> Self {
        Queue {
            heads: vec![NONE; BUCKETS],
            entries: Vec::new(),
            free: NONE,
            alpha0,
            scale: BUCKETS as f64 / (alpha1 - alpha0),
            first: BUCKETS,
            found: (NONE, NONE),
        }
    }

    /// Adds an event at α in [α₀, α₁).
    pub(super) fn push(&mut self, ev: Event) {
        // Monotone in α (a rounded product of a rounded difference), so a bucket's
        // events all come before the next bucket's; `as` saturates.
        let b = (((ev.alpha - self.alpha0) * self.scale) as usize).min(BUCKETS - 1);
        let next = self.heads[b];
        let slot = if self.free == NONE {
            self.entries.push((ev, next));
            (self.entries.len() - 1) as u32
        } else {
            let slot = self.free;
            self.free = self.entries[slot as usize].1;
            self.entries[slot as usize] = (ev, next);
            slot
        };
        self.heads[b] = slot;
        self.first = self.first.min(b);
    }

    /// Unlinks entry `at` (after `before`, or at the head) of bucket `b` and frees it.
    fn remove(&mut self, b: usize, before: u32, at: u32) {
        let next = self.entries[at as usize].1;
        if before == NONE {
            self.heads[b] = next;
        } else {
            self.entries[before as usize].1 = next;
        }
        self.entries[at as usize].1 = self.free;
        self.free = at;
    }

    /// The earliest event that `current` accepts, left in the queue (see
    /// [`Self::pop_found`]); the entries it rejects on the way are dropped.
    pub(super) fn peek(&mut self, current: impl Fn(&Event) -> bool) -> Option<Event> {
        while self.first < BUCKETS {
            let b = self.first;
            let mut best: Option<(u32, u32)> = None;
            let (mut before, mut at) = (NONE, self.heads[b]);
            while at != NONE {
                let (ev, next) = self.entries[at as usize];
                if !current(&ev) {
                    self.remove(b, before, at);
                } else {
                    if best.is_none_or(|(_, k)| ev > self.entries[k as usize].0) {
                        best = Some((before, at));
                    }
                    before = at;
                }
                at = next;
            }
            if let Some((before, at)) = best {
                self.found = (before, at);
                return Some(self.entries[at as usize].0);
            }
            self.first += 1;
        }
        None
    }

    /// Removes the event the last [`Self::peek`] returned.
    pub(super) fn pop_found(&mut self) {
        let (before, at) = self.found;
        self.remove(self.first, before, at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BinaryHeap;

    proptest! {
        /// Events come out of the queue in the order a binary heap gives them, stale
        /// entries (odd versions here) skipped, with pushes between pops at or after the
        /// last event taken.
        #[test]
        fn queue_orders_as_a_heap(
            first in proptest::collection::vec((0u32..1000, 0u32..4, 0u32..50, 0u32..4), 1..300),
            later in proptest::collection::vec((0u32..1000, 0u32..4, 0u32..50, 0u32..4), 0..300),
        ) {
            let (alpha0, alpha1) = (0.5, 1.0);
            let event = |(t, stage, unit, version): (u32, u32, u32, u32), from: f64| Event {
                alpha: from + (alpha1 - from) * f64::from(t) / 1000.0,
                stage,
                unit,
                version,
                to: 0,
            };
            let current = |e: &Event| e.version.is_multiple_of(2);
            let mut queue = Queue::new([alpha0, alpha1]);
            let mut heap = BinaryHeap::new();
            for &e in &first {
                queue.push(event(e, alpha0));
                heap.push(event(e, alpha0));
            }
            let mut later = later.into_iter();
            loop {
                while heap.peek().is_some_and(|e| !current(e)) {
                    heap.pop();
                }
                let want = heap.pop();
                let got = queue.peek(current);
                prop_assert_eq!(got.map(|e| (e.alpha, e.stage, e.unit)), want.map(|e| (e.alpha, e.stage, e.unit)));
                let Some(taken) = got else { break };
                queue.pop_found();
                if let Some(e) = later.next() {
                    queue.push(event(e, taken.alpha));
                    heap.push(event(e, taken.alpha));
                }
            }
        }
    }
}
