//! The flow table: connections by canonical key, in a slab with an intrusive least-recently-active
//! list. The list doubles as the idle-timeout queue: packet time only moves forward, so the
//! least recently active flow is always the next to time out, and expiring is a walk from the tail.

mod key;

pub use key::{Endpoint, FlowHasherBuilder, FlowKey};

use std::collections::HashMap;

const NIL: u32 = u32::MAX;

struct Slot<T> {
    key: FlowKey,
    value: Option<T>,
    prev: u32,
    next: u32,
}

/// Flows with an LRU order; `T` is the engine's per-connection state.
pub struct FlowTable<T> {
    index: HashMap<FlowKey, u32, FlowHasherBuilder>,
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    /// Most recently touched.
    head: u32,
    /// Least recently touched.
    tail: u32,
}

impl<T> FlowTable<T> {
    /// A table whose hasher is seeded at random.
    pub fn new() -> Self {
        Self::with_hasher(FlowHasherBuilder::random())
    }

    /// A table with the given hasher (a fixed seed makes runs repeatable).
    pub fn with_hasher(hasher: FlowHasherBuilder) -> Self {
        FlowTable {
            index: HashMap::with_hasher(hasher),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn lookup(&self, key: &FlowKey) -> Option<u32> {
        self.index.get(key).copied()
    }

    pub fn get_mut(&mut self, id: u32) -> &mut T {
        self.slots[id as usize].value.as_mut().expect("live flow slot")
    }
    pub fn get(&self, id: u32) -> &T {
        self.slots[id as usize].value.as_ref().expect("live flow slot")
    }
    pub fn key(&self, id: u32) -> &FlowKey {
        &self.slots[id as usize].key
    }

    /// Inserts a new flow as the most recent; the key must not be present.
    pub fn insert(&mut self, key: FlowKey, value: T) -> u32 {
        let slot = Slot {
            key,
            value: Some(value),
            prev: NIL,
            next: NIL,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = slot;
                id
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(key, id);
        self.link_front(id);
        id
    }

    pub fn remove(&mut self, id: u32) -> T {
        self.unlink(id);
        let slot = &mut self.slots[id as usize];
        self.index.remove(&slot.key);
        let value = slot.value.take().expect("live flow slot");
        self.free.push(id);
        value
    }

    /// Marks a flow as just active.
    pub fn touch(&mut self, id: u32) {
        if self.head != id {
            self.unlink(id);
            self.link_front(id);
        }
    }

    /// The least recently active flow.
    pub fn oldest(&self) -> Option<u32> {
        (self.tail != NIL).then_some(self.tail)
    }

    /// Flow ids from least to most recently active.
    pub fn ids_oldest_first(&self) -> Vec<u32> {
        let mut ids = Vec::with_capacity(self.len());
        let mut cur = self.tail;
        while cur != NIL {
            ids.push(cur);
            cur = self.slots[cur as usize].prev;
        }
        ids
    }

    fn unlink(&mut self, id: u32) {
        let (prev, next) = {
            let s = &self.slots[id as usize];
            (s.prev, s.next)
        };
        if prev != NIL {
            self.slots[prev as usize].next = next;
        } else {
            self.head = next;
        }
        if next != NIL {
            self.slots[next as usize].prev = prev;
        } else {
            self.tail = prev;
        }
        let s = &mut self.slots[id as usize];
        s.prev = NIL;
        s.next = NIL;
    }

    fn link_front(&mut self, id: u32) {
        let old = self.head;
        {
            let s = &mut self.slots[id as usize];
            s.prev = NIL;
            s.next = old;
        }
        if old != NIL {
            self.slots[old as usize].prev = id;
        } else {
            self.tail = id;
        }
        self.head = id;
    }
}

impl<T> Default for FlowTable<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn key(port: u16) -> FlowKey {
        let a = Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), port);
        let b = Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 80);
        FlowKey::new(a, b, None).0
    }

    #[test]
    fn both_directions_share_a_key() {
        let a = Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 1234);
        let b = Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 80);
        let (k1, a_lo) = FlowKey::new(a, b, Some(7));
        let (k2, b_lo) = FlowKey::new(b, a, Some(7));
        assert_eq!(k1, k2);
        assert_ne!(a_lo, b_lo);
        assert_ne!(k1, FlowKey::new(a, b, Some(8)).0);
    }

    #[test]
    fn lru_order_follows_touches() {
        let mut t = FlowTable::new();
        let a = t.insert(key(1), "a");
        let b = t.insert(key(2), "b");
        let c = t.insert(key(3), "c");
        assert_eq!(t.oldest(), Some(a));
        t.touch(a);
        assert_eq!(t.ids_oldest_first(), vec![b, c, a]);
        assert_eq!(t.remove(b), "b");
        assert_eq!(t.oldest(), Some(c));
        assert_eq!(t.lookup(&key(2)), None);
        let d = t.insert(key(4), "d");
        assert_eq!(d, b, "slot reused");
        assert_eq!(t.ids_oldest_first(), vec![c, a, d]);
        assert_eq!(t.len(), 3);
    }
}
