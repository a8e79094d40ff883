//! One shared copy of each socket owner: the flows of one thread point at it instead
//! of carrying a hundred bytes each.

use std::rc::Rc;

use rustc_hash::FxHashMap as HashMap;

use crate::source::Owner;

/// Owners by (pid, tid, process start).
#[derive(Default)]
pub struct Owners {
    map: HashMap<(u32, u32, u64), Rc<Owner>>,
    /// The owner interned last: a storm's events mostly come from one thread.
    last: Option<Rc<Owner>>,
}

impl Owners {
    /// The shared copy of `owner`; a thread whose facts changed (a new uid, comm or
    /// cgroup) gets a new copy, and flows made before keep the old one.
    pub fn intern(&mut self, owner: Option<&Owner>) -> Option<Rc<Owner>> {
        let o = owner?;
        if let Some(last) = self.last.as_ref().filter(|last| ***last == *o) {
            return Some(Rc::clone(last));
        }
        let shared = self.map.entry((o.pid, o.tid, o.start_ns)).or_insert_with(|| Rc::new(*o));
        if **shared != *o {
            *shared = Rc::new(*o);
        }
        self.last = Some(Rc::clone(shared));
        Some(Rc::clone(shared))
    }

    /// Forgets owners that no flow refers to any more.
    pub fn sweep(&mut self) {
        self.last = None;
        self.map.retain(|_, o| Rc::strong_count(o) > 1);
        super::shrink_map(&mut self.map);
    }

    /// Owners held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(tid: u32, uid: u32) -> Owner {
        Owner {
            pid: 7,
            tid,
            uid,
            gid: 0,
            comm: "c".into(),
            cgroup_id: 1,
            from_current: false,
            ppid: 1,
            parent_comm: "init".into(),
            exe: "c".into(),
            start_ns: 42,
            exec_id: 1,
        }
    }

    #[test]
    fn one_copy_per_thread_renewed_when_its_facts_change() {
        let mut owners = Owners::default();
        let a = owners.intern(Some(&owner(1, 0))).unwrap();
        let b = owners.intern(Some(&owner(1, 0))).unwrap();
        assert!(Rc::ptr_eq(&a, &b));
        let other_thread = owners.intern(Some(&owner(2, 0))).unwrap();
        assert!(!Rc::ptr_eq(&a, &other_thread));
        let setuid = owners.intern(Some(&owner(1, 1000))).unwrap();
        assert_eq!(setuid.uid, 1000);
        assert_eq!(a.uid, 0, "earlier flows keep what was true then");
        assert!(owners.intern(None).is_none());
    }

    #[test]
    fn sweep_forgets_owners_no_flow_holds() {
        let mut owners = Owners::default();
        let kept = owners.intern(Some(&owner(1, 0)));
        drop(owners.intern(Some(&owner(2, 0))));
        owners.sweep();
        assert_eq!(owners.len(), 1);
        drop(kept);
        owners.sweep();
        assert_eq!(owners.len(), 0);
    }
}
