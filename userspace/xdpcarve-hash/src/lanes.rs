//! The MD5 of every file one worker carries, hashed several files at a time.
//!
//! Each open file has a slot in its worker's [`Md5Lanes`]. While other files are open too, a
//! file's bytes are staged (up to [`STAGE`] bytes); when its stage fills, it and the other files
//! with whole blocks staged go through the SIMD kernel together (16 lanes with AVX-512, 8 with
//! AVX2), a lane whose file runs out
//! being refilled by the next file with blocks, until fewer than [`MIN_LANES`] lanes have data.
//! What is left of the full stage is then hashed alone; the others keep theirs for later. A lone
//! file (or a CPU without AVX2) is hashed as it comes, with no copy: single-stream.
//!
//! Staging costs memory, so at most [`MAX_STAGED`] files of a worker stage at once; the others
//! are hashed single-stream. Either way every byte is hashed in order exactly once, so the digest
//! is MD5's.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::single::{self, Md5, INIT};
use crate::x16::Avx512;
use crate::x8::Avx2;

/// The widest kernel's lanes.
const MAX_LANES: usize = crate::x16::LANES;

/// Bytes a file stages before they are hashed: 128 blocks.
pub const STAGE: usize = 8 << 10;
/// Files of one worker that stage at once: bounds the stages to 64 x 8 KiB per worker.
pub const MAX_STAGED: usize = 64;
/// Fewest lanes with data for which a kernel call beats hashing them one after the other
/// (bench: `xdpcarve-bench --hash-speeds`).
pub const MIN_LANES: usize = 3;

/// What a dead lane reads: its results are thrown away.
static IDLE: [u8; STAGE] = [0; STAGE];

/// One worker's MD5 streams (cheap to clone: a handle). Not shared between workers: each has its
/// own, as each has its own files.
#[derive(Clone)]
pub struct Md5Lanes(Arc<Mutex<Pool>>);

/// The SIMD kernels files share: the widest this CPU runs.
#[derive(Copy, Clone, Debug)]
enum Kernel {
    /// Eight lanes, AVX2.
    X8(Avx2),
    /// Sixteen lanes, AVX-512F; and AVX2's eight (which AVX-512 CPUs have), quicker when no
    /// more than eight lanes have data.
    X16(Avx512, Avx2),
}

impl Kernel {
    fn width(self) -> usize {
        match self {
            Kernel::X8(_) => crate::x8::LANES,
            Kernel::X16(..) => crate::x16::LANES,
        }
    }

    /// Runs the first `active` lanes (at most [`Kernel::width`]).
    fn compress(self, active: usize, state: &mut [[u32; MAX_LANES]; 4], input: [&[u8]; MAX_LANES], blocks: usize) {
        match self {
            Kernel::X16(k, _) if active > crate::x8::LANES => k.compress(state, input, blocks),
            Kernel::X8(k) | Kernel::X16(_, k) => {
                const W: usize = crate::x8::LANES;
                let mut narrow = [[0u32; W]; 4];
                for (n, s) in narrow.iter_mut().zip(state.iter()) {
                    n.copy_from_slice(&s[..W]);
                }
                k.compress(&mut narrow, std::array::from_fn(|i| input[i]), blocks);
                for (n, s) in narrow.iter().zip(state.iter_mut()) {
                    s[..W].copy_from_slice(n);
                }
            }
        }
    }
}

/// How the blocks were hashed.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct LaneStats {
    /// Blocks hashed in SIMD lanes.
    pub lane_blocks: u64,
    /// Blocks hashed one stream at a time.
    pub single_blocks: u64,
    /// Kernel calls (each runs the kernel's 8 or 16 lanes, some maybe idle).
    pub kernel_calls: u64,
}

struct Pool {
    simd: Option<Kernel>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    open: usize,
    /// Slots with a stage, and stages not in use.
    staged: usize,
    spare: Vec<Vec<u8>>,
    stats: LaneStats,
    candidates: Vec<u32>,
}

#[derive(Default)]
struct Slot {
    state: [u32; 4],
    /// Bytes fed.
    len: u64,
    /// Bytes not yet compressed: under 64 without a stage, up to [`STAGE`] with one.
    buf: Vec<u8>,
    staging: bool,
}

impl Default for Md5Lanes {
    fn default() -> Self {
        Md5Lanes::new()
    }
}

impl std::fmt::Debug for Md5Lanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pool = self.lock();
        f.debug_struct("Md5Lanes")
            .field("simd", &pool.simd.is_some())
            .field("open", &pool.open)
            .finish()
    }
}

impl Md5Lanes {
    /// Lanes on this CPU: 16 with AVX-512, 8 with AVX2, else every file single-stream.
    pub fn new() -> Self {
        Self::with_simd(
            Avx512::detect()
                .zip(Avx2::detect())
                .map(|(x16, x8)| Kernel::X16(x16, x8))
                .or_else(|| Avx2::detect().map(Kernel::X8)),
        )
    }

    /// At most eight lanes (AVX2), whatever else the CPU has (to compare against).
    pub fn avx2() -> Self {
        Self::with_simd(Avx2::detect().map(Kernel::X8))
    }

    /// Every file single-stream, whatever the CPU (to compare against).
    pub fn single_stream() -> Self {
        Self::with_simd(None)
    }

    fn with_simd(simd: Option<Kernel>) -> Self {
        Md5Lanes(Arc::new(Mutex::new(Pool {
            simd,
            slots: Vec::new(),
            free: Vec::new(),
            open: 0,
            staged: 0,
            spare: Vec::new(),
            stats: LaneStats::default(),
            candidates: Vec::new(),
        })))
    }

    /// Whether files can share SIMD lanes here.
    pub fn simd(&self) -> bool {
        self.lock().simd.is_some()
    }

    /// The kernel files share, if any: "AVX-512 (16 lanes)" or "AVX2 (8 lanes)".
    pub fn kernel(&self) -> Option<&'static str> {
        self.lock().simd.map(|k| match k {
            Kernel::X8(_) => "AVX2 (8 lanes)",
            Kernel::X16(..) => "AVX-512 (16 lanes)",
        })
    }

    /// The MD5 of a new file.
    pub fn hasher(&self) -> Md5Hasher {
        let mut pool = self.lock();
        if pool.simd.is_none() {
            return Md5Hasher::Single(Md5::new());
        }
        let slot = pool.open_slot();
        Md5Hasher::Lane(LaneMd5 {
            lanes: self.clone(),
            slot,
        })
    }

    /// Files of this worker whose MD5 is open now (in the lanes or [held](Md5Lanes::hold)).
    pub fn open_files(&self) -> usize {
        self.lock().open
    }

    /// Counts a file whose MD5 is hashed elsewhere (a stitched pass) as open, until the ticket is
    /// dropped: the files that open beside it then know they are not alone.
    pub fn hold(&self) -> OpenTicket {
        self.lock().open += 1;
        OpenTicket { lanes: self.clone() }
    }

    pub fn stats(&self) -> LaneStats {
        self.lock().stats
    }

    fn lock(&self) -> MutexGuard<'_, Pool> {
        // A panic elsewhere cannot leave a slot half-updated in a way that matters more than the
        // panic itself; carry on.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A file counted as open in its worker's [`Md5Lanes`] without a slot there.
pub struct OpenTicket {
    lanes: Md5Lanes,
}

impl Drop for OpenTicket {
    fn drop(&mut self) {
        self.lanes.lock().open -= 1;
    }
}

/// One file's MD5.
pub enum Md5Hasher {
    Single(Md5),
    Lane(LaneMd5),
}

/// A file's slot in its worker's [`Md5Lanes`]; given back when dropped.
pub struct LaneMd5 {
    lanes: Md5Lanes,
    slot: u32,
}

impl Drop for LaneMd5 {
    fn drop(&mut self) {
        self.lanes.lock().release(self.slot);
    }
}

impl Md5Hasher {
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Md5Hasher::Single(h) => h.update(data),
            Md5Hasher::Lane(l) => l.lanes.lock().update(l.slot as usize, data),
        }
    }

    pub fn finalize(self) -> [u8; 16] {
        match self {
            Md5Hasher::Single(h) => h.finalize(),
            Md5Hasher::Lane(l) => {
                let (state, len, tail) = l.lanes.lock().flush(l.slot as usize);
                single::finish(state, len, &tail)
            }
        }
    }

    /// The same stream as a plain [`Md5`], to be continued on another thread.
    pub fn into_single(self) -> Md5 {
        match self {
            Md5Hasher::Single(h) => h,
            Md5Hasher::Lane(l) => {
                let (state, len, tail) = l.lanes.lock().flush(l.slot as usize);
                Md5::resume(state, len, &tail)
            }
        }
    }
}

impl Pool {
    fn open_slot(&mut self) -> u32 {
        self.open += 1;
        let slot = Slot {
            state: INIT,
            ..Slot::default()
        };
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        }
    }

    fn release(&mut self, id: u32) {
        let slot = std::mem::take(&mut self.slots[id as usize]);
        if slot.staging {
            let mut buf = slot.buf;
            buf.clear();
            self.spare.push(buf);
            self.staged -= 1;
        }
        self.open -= 1;
        self.free.push(id);
    }

    fn update(&mut self, id: usize, mut data: &[u8]) {
        let direct = self.simd.is_none() || self.open < 2;
        if !direct && !self.slots[id].staging && self.staged < MAX_STAGED {
            let mut stage = self.spare.pop().unwrap_or_else(|| Vec::with_capacity(STAGE));
            let slot = &mut self.slots[id];
            stage.extend_from_slice(&slot.buf);
            slot.buf = stage;
            slot.staging = true;
            self.staged += 1;
        }
        let slot = &mut self.slots[id];
        slot.len = slot.len.wrapping_add(data.len() as u64);
        if direct || !slot.staging {
            self.hash_now(id, data);
            return;
        }
        while !data.is_empty() {
            let slot = &mut self.slots[id];
            let n = (STAGE - slot.buf.len()).min(data.len());
            slot.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if slot.buf.len() == STAGE {
                self.drain(id);
            }
        }
    }

    /// Hashes what the slot holds and `data` now, single-stream; keeps a tail under 64 bytes.
    fn hash_now(&mut self, id: usize, mut data: &[u8]) {
        self.compress_staged(id);
        let slot = &mut self.slots[id];
        if !slot.buf.is_empty() {
            let n = (64 - slot.buf.len()).min(data.len());
            slot.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if slot.buf.len() < 64 {
                return;
            }
            single::compress(&mut slot.state, &slot.buf);
            slot.buf.clear();
            self.stats.single_blocks += 1;
        }
        let whole = data.len() - data.len() % 64;
        single::compress(&mut slot.state, &data[..whole]);
        slot.buf.extend_from_slice(&data[whole..]);
        self.stats.single_blocks += (whole / 64) as u64;
    }

    /// Compresses the slot's whole staged blocks single-stream.
    fn compress_staged(&mut self, id: usize) {
        let slot = &mut self.slots[id];
        let whole = slot.buf.len() - slot.buf.len() % 64;
        if whole > 0 {
            single::compress(&mut slot.state, &slot.buf[..whole]);
            slot.buf.drain(..whole);
            self.stats.single_blocks += (whole / 64) as u64;
        }
    }

    /// The stream so far, every whole block compressed: (state, length, tail under 64 bytes).
    fn flush(&mut self, id: usize) -> ([u32; 4], u64, Vec<u8>) {
        self.compress_staged(id);
        let slot = &mut self.slots[id];
        (slot.state, slot.len, std::mem::take(&mut slot.buf))
    }

    /// Slot `x`'s stage is full: hashes it, in lanes beside other staged files when enough have
    /// whole blocks.
    fn drain(&mut self, x: usize) {
        let Some(simd) = self.simd else {
            self.compress_staged(x);
            return;
        };
        let mut queue = std::mem::take(&mut self.candidates);
        queue.clear();
        queue.extend(
            (0..self.slots.len())
                .filter(|&i| i != x && self.slots[i].staging && self.slots[i].buf.len() >= 64)
                .map(|i| i as u32),
        );
        if queue.len() + 1 < MIN_LANES {
            self.candidates = queue;
            self.compress_staged(x);
            return;
        }
        // Fullest first: they keep their lanes longest.
        queue.sort_unstable_by_key(|&i| std::cmp::Reverse(self.slots[i as usize].buf.len()));
        queue.insert(0, x as u32);
        let mut next = 0;
        // Each lane: (slot, blocks done, blocks staged).
        let mut lanes: [Option<(usize, usize, usize)>; MAX_LANES] = [None; MAX_LANES];
        for lane in lanes.iter_mut().take(simd.width()) {
            if let Some(&id) = queue.get(next) {
                let id = id as usize;
                *lane = Some((id, 0, self.slots[id].buf.len() / 64));
                next += 1;
            }
        }
        loop {
            let active = lanes.iter().flatten().count();
            if active < MIN_LANES {
                break;
            }
            let n = lanes
                .iter()
                .flatten()
                .map(|&(_, done, all)| all - done)
                .min()
                .unwrap_or(0);
            // The kernel's lane k runs the k-th lane with data: eight or fewer fit the narrower
            // kernel.
            let mut busy = [(0usize, 0usize); MAX_LANES];
            for (k, &(id, done, _)) in lanes.iter().flatten().enumerate() {
                busy[k] = (id, done);
            }
            let mut state = [[0u32; MAX_LANES]; 4];
            for (k, &(id, _)) in busy[..active].iter().enumerate() {
                for (w, s) in state.iter_mut().zip(self.slots[id].state) {
                    w[k] = s;
                }
            }
            let input: [&[u8]; MAX_LANES] = std::array::from_fn(|k| match busy.get(k) {
                Some(&(id, done)) if k < active => &self.slots[id].buf[done * 64..],
                _ => &IDLE[..],
            });
            simd.compress(active, &mut state, input, n);
            self.stats.kernel_calls += 1;
            self.stats.lane_blocks += (n * active) as u64;
            for (k, &(id, _)) in busy[..active].iter().enumerate() {
                for (s, w) in self.slots[id].state.iter_mut().zip(&state) {
                    *s = w[k];
                }
            }
            for lane in lanes.iter_mut() {
                let Some((id, done, all)) = lane else { continue };
                let slot = &mut self.slots[*id];
                *done += n;
                if *done == *all {
                    slot.buf.drain(..*all * 64);
                    *lane = queue.get(next).map(|&id| {
                        let id = id as usize;
                        (id, 0, self.slots[id].buf.len() / 64)
                    });
                    next += lane.is_some() as usize;
                }
            }
        }
        for &(id, done, _) in lanes.iter().flatten() {
            self.slots[id].buf.drain(..done * 64);
        }
        self.candidates = queue;
        // What the lanes did not take of the full stage.
        self.compress_staged(x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::Digest;
    use proptest::prelude::*;

    fn reference(data: &[u8]) -> [u8; 16] {
        md5::Md5::digest(data).into()
    }

    /// Files of the given sizes, fed in pieces interleaved in the order `order` picks, closed in
    /// the order they end; every digest must be MD5's.
    fn interleaved(lanes: &Md5Lanes, sizes: &[usize], pieces: &[usize], order: &[usize]) {
        let files: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(f, &n)| (0..n).map(|i| (i * 31 + f * 7 + i / 251) as u8).collect())
            .collect();
        let mut hashers: Vec<Option<Md5Hasher>> = files.iter().map(|_| Some(lanes.hasher())).collect();
        let mut at = vec![0usize; files.len()];
        let mut k = 0;
        while hashers.iter().any(Option::is_some) {
            let f = order[k % order.len()] % files.len();
            let piece = pieces[k % pieces.len()];
            k += 1;
            let f = (f..f + files.len())
                .map(|i| i % files.len())
                .find(|&i| hashers[i].is_some())
                .unwrap();
            let end = (at[f] + piece).min(files[f].len());
            hashers[f].as_mut().unwrap().update(&files[f][at[f]..end]);
            at[f] = end;
            if end == files[f].len() {
                let digest = hashers[f].take().unwrap().finalize();
                assert_eq!(digest, reference(&files[f]), "file {f} of {} bytes", files[f].len());
            }
        }
    }

    #[test]
    fn sixteen_files_side_by_side_use_the_lanes_and_hash_right() {
        for lanes in [Md5Lanes::new(), Md5Lanes::avx2()] {
            interleaved(&lanes, &[300_000; 16], &[1460], &(0..16).collect::<Vec<_>>());
            let s = lanes.stats();
            if lanes.simd() {
                assert!(s.lane_blocks > 9 * s.single_blocks, "{:?}: {s:?}", lanes.kernel());
            }
            assert_eq!(lanes.lock().open, 0);
            assert_eq!(lanes.lock().staged, 0);
        }
    }

    #[test]
    fn a_lone_file_is_hashed_as_it_comes() {
        let lanes = Md5Lanes::new();
        interleaved(&lanes, &[1 << 20], &[1460], &[0]);
        assert_eq!(lanes.stats().lane_blocks, 0);
    }

    #[test]
    fn handed_over_midway_a_stream_goes_on_alone() {
        let lanes = Md5Lanes::new();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        let mut a = lanes.hasher();
        let mut others: Vec<Md5Hasher> = (0..7).map(|_| lanes.hasher()).collect();
        for c in data[..150_001].chunks(1000) {
            a.update(c);
            for o in &mut others {
                o.update(c);
            }
        }
        let mut single = a.into_single();
        single.update(&data[150_001..]);
        assert_eq!(single.finalize(), reference(&data));
        for o in others {
            assert_eq!(o.finalize(), reference(&data[..150_001]));
        }
    }

    #[test]
    fn more_files_than_stages_hash_right() {
        let lanes = Md5Lanes::new();
        let n = MAX_STAGED + 20;
        interleaved(
            &lanes,
            &vec![40_000; n],
            &[700, 1460, 9000],
            &(0..n).collect::<Vec<_>>(),
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn lanes_hash_as_md5_whatever_the_sizes_and_split_points(
            sizes in proptest::collection::vec(0usize..40_000, 1..20),
            pieces in proptest::collection::vec(1usize..10_000, 1..8),
            order in proptest::collection::vec(0usize..20, 1..30),
        ) {
            interleaved(&Md5Lanes::new(), &sizes, &pieces, &order);
            interleaved(&Md5Lanes::avx2(), &sizes, &pieces, &order);
            interleaved(&Md5Lanes::single_stream(), &sizes, &pieces, &order);
        }
    }
}
