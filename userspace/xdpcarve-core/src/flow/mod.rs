//! The flow table: flows by canonical key, without an allocation per flow.
//!
//! - [`index`]: an open-addressing index of slot ids (8 bytes an entry, no key copy).
//! - Slots in fixed chunks, with the key inline and an intrusive free list: a flow costs its slot
//!   and its share of the index, and growing never copies or doubles the slots.
//! - Lanes: each slot sits on one of a few intrusive least-recently-active lists. A lane doubles
//!   as a timeout queue (packet time only moves forward, so a lane's least recently active flow is
//!   its next to time out) and as an eviction class (the engine evicts from the cheapest lane
//!   first).

mod index;
mod key;

pub use key::{Endpoint, FlowHasherBuilder, FlowKey};

use index::Index;

const NIL: u32 = u32::MAX;
/// Slots per chunk (a power of two): small enough that a lightly used table stays small.
const CHUNK_BITS: u32 = 10;
const CHUNK: usize = 1 << CHUNK_BITS;
/// Lanes of a table.
pub const LANES: usize = 3;

struct Slot<T> {
    key: FlowKey,
    /// Towards the most recently active of the lane (or NIL).
    prev: u32,
    /// Towards the least recently active of the lane; for a free slot, the next free one.
    next: u32,
    lane: u8,
    value: Option<T>,
}

#[derive(Copy, Clone, Debug)]
struct Lane {
    /// Most recently touched.
    head: u32,
    /// Least recently touched.
    tail: u32,
    len: usize,
}

const EMPTY_LANE: Lane = Lane {
    head: NIL,
    tail: NIL,
    len: 0,
};

/// Flows in lanes of least-recent activity; `T` is the engine's per-flow state.
pub struct FlowTable<T> {
    index: Index,
    chunks: Vec<Box<[Slot<T>]>>,
    /// First free slot (NIL: every chunk is full).
    free: u32,
    lanes: [Lane; LANES],
}

impl<T> FlowTable<T> {
    /// A table whose hasher is seeded at random.
    pub fn new() -> Self {
        Self::with_hasher(FlowHasherBuilder::random())
    }

    /// A table with the given hasher (a fixed seed makes runs repeatable).
    pub fn with_hasher(hasher: FlowHasherBuilder) -> Self {
        FlowTable {
            index: Index::new(hasher),
            chunks: Vec::new(),
            free: NIL,
            lanes: [EMPTY_LANE; LANES],
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }
    pub fn is_empty(&self) -> bool {
        self.index.len() == 0
    }
    /// Flows in one lane.
    pub fn lane_len(&self, lane: usize) -> usize {
        self.lanes[lane].len
    }

    /// Bytes the table holds on the heap: its slots (used or free) and its index.
    pub fn heap_bytes(&self) -> usize {
        self.chunks.len() * CHUNK * std::mem::size_of::<Slot<T>>()
            + self.chunks.capacity() * std::mem::size_of::<Box<[Slot<T>]>>()
            + self.index.heap_bytes()
    }

    /// Bytes one more flow costs at the index's working load factor (1/4 to 1/2 full): its slot
    /// and three index entries (two to four).
    pub const fn bytes_per_flow() -> usize {
        std::mem::size_of::<Slot<T>>() + 3 * index::ENTRY_BYTES
    }

    pub fn lookup(&self, key: &FlowKey) -> Option<u32> {
        self.index.find(key, |id| &self.slot(id).key)
    }

    pub fn get_mut(&mut self, id: u32) -> &mut T {
        self.slot_mut(id).value.as_mut().expect("live flow slot")
    }
    pub fn get(&self, id: u32) -> &T {
        self.slot(id).value.as_ref().expect("live flow slot")
    }
    pub fn key(&self, id: u32) -> &FlowKey {
        &self.slot(id).key
    }
    /// The lane a flow is on.
    pub fn lane(&self, id: u32) -> usize {
        self.slot(id).lane as usize
    }

    /// Inserts a new flow as the most recent of `lane`; the key must not be present.
    pub fn insert(&mut self, lane: usize, key: FlowKey, value: T) -> u32 {
        if self.free == NIL {
            self.add_chunk();
        }
        let id = self.free;
        let slot = self.slot_mut(id);
        let next_free = slot.next;
        slot.key = key;
        slot.value = Some(value);
        slot.lane = lane as u8;
        self.free = next_free;
        self.index.insert(&key, id);
        self.link_front(id);
        id
    }

    pub fn remove(&mut self, id: u32) -> T {
        self.unlink(id);
        let key = self.slot(id).key;
        let chunks = &self.chunks;
        self.index.remove(&key, |i| &chunks[chunk_of(i)][offset_of(i)].key);
        let free = self.free;
        let slot = self.slot_mut(id);
        let value = slot.value.take().expect("live flow slot");
        slot.next = free;
        self.free = id;
        value
    }

    /// Marks a flow as just active.
    pub fn touch(&mut self, id: u32) {
        let lane = self.slot(id).lane as usize;
        if self.lanes[lane].head != id {
            self.unlink(id);
            self.link_front(id);
        }
    }

    /// Moves a flow to another lane, as its most recent.
    pub fn set_lane(&mut self, id: u32, lane: usize) {
        self.unlink(id);
        self.slot_mut(id).lane = lane as u8;
        self.link_front(id);
    }

    /// The least recently active flow of a lane.
    pub fn oldest(&self, lane: usize) -> Option<u32> {
        let tail = self.lanes[lane].tail;
        (tail != NIL).then_some(tail)
    }

    /// A lane's flows from least to most recently active, `max` at most.
    pub fn oldest_first(&self, lane: usize, max: usize) -> impl Iterator<Item = u32> + '_ {
        let mut cur = self.lanes[lane].tail;
        std::iter::from_fn(move || {
            let id = cur;
            (id != NIL).then(|| {
                cur = self.slot(id).prev;
                id
            })
        })
        .take(max)
    }

    /// Every flow, lane by lane, each lane from least to most recently active.
    pub fn ids(&self) -> Vec<u32> {
        let mut ids = Vec::with_capacity(self.len());
        for lane in 0..LANES {
            ids.extend(self.oldest_first(lane, usize::MAX));
        }
        ids
    }

    /// Every live flow's value, in slot order.
    pub fn values(&self) -> impl Iterator<Item = &T> + '_ {
        self.chunks
            .iter()
            .flat_map(|c| c.iter())
            .filter_map(|s| s.value.as_ref())
    }

    /// Forgets every flow at once (no per-flow removal from the index), keeping the hasher.
    pub fn clear(&mut self) {
        self.index.clear();
        self.chunks = Vec::new();
        self.free = NIL;
        self.lanes = [EMPTY_LANE; LANES];
    }

    fn slot(&self, id: u32) -> &Slot<T> {
        &self.chunks[chunk_of(id)][offset_of(id)]
    }
    fn slot_mut(&mut self, id: u32) -> &mut Slot<T> {
        &mut self.chunks[chunk_of(id)][offset_of(id)]
    }

    /// A chunk of free slots, all on the free list in order.
    fn add_chunk(&mut self) {
        let base = (self.chunks.len() * CHUNK) as u32;
        let none = Endpoint { addr: [0; 16], port: 0 };
        let blank = FlowKey {
            lo: none,
            hi: none,
            vlan: 0,
        };
        let chunk: Box<[Slot<T>]> = (0..CHUNK as u32)
            .map(|i| Slot {
                key: blank,
                prev: NIL,
                next: if i + 1 < CHUNK as u32 { base + i + 1 } else { self.free },
                lane: 0,
                value: None,
            })
            .collect();
        self.chunks.push(chunk);
        self.free = base;
    }

    fn unlink(&mut self, id: u32) {
        let (prev, next, lane) = {
            let s = self.slot(id);
            (s.prev, s.next, s.lane as usize)
        };
        if prev != NIL {
            self.slot_mut(prev).next = next;
        } else {
            self.lanes[lane].head = next;
        }
        if next != NIL {
            self.slot_mut(next).prev = prev;
        } else {
            self.lanes[lane].tail = prev;
        }
        self.lanes[lane].len -= 1;
        let s = self.slot_mut(id);
        s.prev = NIL;
        s.next = NIL;
    }

    fn link_front(&mut self, id: u32) {
        let lane = self.slot(id).lane as usize;
        let old = self.lanes[lane].head;
        {
            let s = self.slot_mut(id);
            s.prev = NIL;
            s.next = old;
        }
        if old != NIL {
            self.slot_mut(old).prev = id;
        } else {
            self.lanes[lane].tail = id;
        }
        self.lanes[lane].head = id;
        self.lanes[lane].len += 1;
    }
}

fn chunk_of(id: u32) -> usize {
    (id >> CHUNK_BITS) as usize
}
fn offset_of(id: u32) -> usize {
    id as usize & (CHUNK - 1)
}

impl<T> Default for FlowTable<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests;
