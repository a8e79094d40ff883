//! The last few answers of [`Enricher::details`](crate::Enricher::details), kept in
//! front of the caches: under a connection storm the same processes are asked about
//! again and again, and a handful of comparisons then replaces the lookups in up to
//! five caches, the parse of the cgroup path of a process outside containers, and
//! the clones in between.
//!
//! An answer is reused only while it is certain to be what the caches would give:
//! none of them has changed since (their generations add up to the same number:
//! each only grows), and `now` lies between when it was made and when the first
//! cache entry it was made of expires. Answers that depend on something outside
//! the caches (cgroupfs, the Docker engine) are never kept.

use std::sync::Arc;
use std::time::Instant;

use crate::{Details, KernelFacts};

/// Answers kept at once: both ends of a loopback connection, and a few more.
const SLOTS: usize = 4;

/// How long an answer stays certain.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Validity {
    /// When it was made.
    from: Instant,
    /// The first instant one of its cache entries misses (`None`: never).
    until: Option<Instant>,
    /// Whether only cache entries made it.
    cached: bool,
}

impl Validity {
    /// An answer made at `now`, of no cache entry yet.
    pub fn new(now: Instant) -> Self {
        Self { from: now, until: None, cached: true }
    }

    /// Also made of a cache entry that misses from `expiry` on.
    pub fn bound(&mut self, expiry: Option<Instant>) {
        self.until = match (self.until, expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    /// Also made of something the caches do not hold: not to be kept.
    pub fn uncached(&mut self) {
        self.cached = false;
    }

    fn holds(&self, now: Instant) -> bool {
        self.from <= now && self.until.is_none_or(|u| now < u)
    }
}

#[derive(Debug)]
struct Slot {
    facts: KernelFacts,
    /// Whether the process cache held an entry for the process (always, but for pid 0).
    observed: bool,
    validity: Validity,
    details: Arc<Details>,
}

/// The memo.
#[derive(Debug, Default)]
pub(crate) struct Memo {
    /// The caches' generation the slots were made at.
    generation: u64,
    slots: Vec<Slot>,
    /// The slot to replace next, when all are taken.
    next: usize,
}

/// The facts an answer depends on. The parent pid is only read when the process
/// is first observed, which a kept answer guarantees is done.
fn asks_the_same(a: &KernelFacts, b: &KernelFacts) -> bool {
    same_program(a, b) && a.uid == b.uid && a.gid == b.gid && a.cgroup_id == b.cgroup_id
}

/// The same process running the same program (the process cache's key).
fn same_program(a: &KernelFacts, b: &KernelFacts) -> bool {
    a.pid == b.pid && a.start_ns == b.start_ns && a.exec_id == b.exec_id
}

impl Memo {
    fn valid(&mut self, generation: u64) -> &[Slot] {
        if self.generation != generation {
            self.slots.clear();
            self.next = 0;
            self.generation = generation;
        }
        &self.slots
    }

    /// The answer kept for `facts`, if still certain at `now`.
    pub fn details(&mut self, facts: &KernelFacts, generation: u64, now: Instant) -> Option<&Arc<Details>> {
        let slot = self.valid(generation).iter().position(|s| asks_the_same(&s.facts, facts))?;
        let slot = &self.slots[slot];
        slot.validity.holds(now).then_some(&slot.details)
    }

    /// Whether the process of `facts` is certainly in the process cache at `now`.
    pub fn observed(&mut self, facts: &KernelFacts, generation: u64, now: Instant) -> bool {
        self.valid(generation).iter().any(|s| s.observed && same_program(&s.facts, facts) && s.validity.holds(now))
    }

    /// Keeps `details`, made for `facts` from caches at `generation`, replacing any
    /// answer for the same facts, else the oldest one; unless not only caches made it.
    pub fn keep(
        &mut self,
        facts: KernelFacts,
        observed: bool,
        generation: u64,
        validity: Validity,
        details: Arc<Details>,
    ) {
        if !validity.cached {
            return;
        }
        let slot = Slot { facts, observed, validity, details };
        let slots = self.valid(generation);
        if let Some(i) = slots.iter().position(|s| asks_the_same(&s.facts, &facts)) {
            self.slots[i] = slot;
        } else if slots.len() < SLOTS {
            self.slots.push(slot);
        } else {
            self.slots[self.next] = slot;
            self.next = (self.next + 1) % SLOTS;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn facts(pid: u32) -> KernelFacts {
        KernelFacts { pid, start_ns: 1, exec_id: 1, uid: 0, gid: 0, cgroup_id: 7, ppid: 1 }
    }

    fn named(exe: &str) -> Arc<Details> {
        Arc::new(Details { exe: Some(exe.into()), ..Details::default() })
    }

    fn exe(memo: &mut Memo, pid: u32, generation: u64, now: Instant) -> Option<String> {
        memo.details(&facts(pid), generation, now).map(|d| d.exe.as_deref().unwrap_or_default().to_owned())
    }

    #[test]
    fn an_answer_holds_from_when_it_was_made_until_its_first_entry_expires() {
        let earlier = Instant::now();
        let s = Duration::from_secs(1);
        let t = earlier + s;
        let mut validity = Validity::new(t);
        validity.bound(Some(t + 10 * s));
        validity.bound(None);
        validity.bound(Some(t + 5 * s));
        let mut memo = Memo::default();
        memo.keep(facts(1), true, 3, validity, named("/a"));
        assert_eq!(exe(&mut memo, 1, 3, t).as_deref(), Some("/a"));
        assert_eq!(exe(&mut memo, 1, 3, t + (5 * s).saturating_sub(Duration::from_nanos(1))).as_deref(), Some("/a"));
        assert_eq!(exe(&mut memo, 1, 3, t + 5 * s), None);
        assert_eq!(exe(&mut memo, 1, 3, earlier), None, "an earlier clock may see entries since expired");
        assert!(memo.observed(&facts(1), 3, t));
        assert!(!memo.observed(&facts(1), 3, t + 5 * s));
    }

    #[test]
    fn any_change_to_the_caches_drops_every_answer() {
        let t = Instant::now();
        let mut memo = Memo::default();
        memo.keep(facts(1), true, 3, Validity::new(t), named("/a"));
        memo.keep(facts(2), true, 3, Validity::new(t), named("/b"));
        assert_eq!(exe(&mut memo, 2, 4, t), None);
        assert_eq!(exe(&mut memo, 1, 3, t), None, "dropped, not hidden");
        assert!(!memo.observed(&facts(1), 3, t));
    }

    #[test]
    fn a_process_past_the_slots_replaces_the_oldest_answer() {
        let t = Instant::now();
        let mut memo = Memo::default();
        for pid in 1..=5 {
            memo.keep(facts(pid), true, 3, Validity::new(t), named(&format!("/{pid}")));
        }
        assert_eq!(exe(&mut memo, 1, 3, t), None);
        for pid in 2..=5 {
            assert_eq!(exe(&mut memo, pid, 3, t), Some(format!("/{pid}")));
        }
        memo.keep(facts(3), true, 3, Validity::new(t), named("/3b"));
        assert_eq!(exe(&mut memo, 3, 3, t).as_deref(), Some("/3b"), "an answer for the same facts is replaced");
        assert_eq!(exe(&mut memo, 2, 3, t).as_deref(), Some("/2"));
    }

    #[test]
    fn an_answer_not_made_of_cache_entries_alone_is_not_kept() {
        let t = Instant::now();
        let mut memo = Memo::default();
        let mut validity = Validity::new(t);
        validity.uncached();
        memo.keep(facts(1), true, 3, validity, named("/a"));
        assert!(memo.details(&facts(1), 3, t).is_none());
    }

    #[test]
    fn an_answer_without_a_process_entry_does_not_vouch_for_one() {
        let t = Instant::now();
        let mut memo = Memo::default();
        memo.keep(facts(1), false, 3, Validity::new(t), Arc::default());
        assert!(memo.details(&facts(1), 3, t).is_some());
        assert!(!memo.observed(&facts(1), 3, t));
    }
}
