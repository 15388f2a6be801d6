//! One AF_XDP socket per queue, read by one pinned thread.
//!
//! Everything a worker touches on the packet path is its own: UMEM, rings, handler (with its own
//! engine). The only shared state is a stop flag and counters the worker stores (relaxed) for the
//! control thread to read. All xdpilone objects are created inside the worker thread, so its UMEM
//! is allocated on the worker's core and nothing non-`Send` crosses threads.

use crate::error::{LiveError, Privilege};
use std::num::NonZeroU32;
use std::ops::Range;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use xdpilone::{IfInfo, Socket, SocketConfig, Umem, UmemConfig};

/// What the worker does with frames. Created inside the worker thread (it need not be `Send`).
/// The worker sleeps until a frame arrives or the handler's [`FrameHandler::poll_timeout`]
/// passes (quinn-proto's shape), never ticking the handler blindly.
pub trait FrameHandler {
    /// One received Ethernet frame; `ts_ns` is CLOCK_REALTIME taken when its batch was read.
    fn frame(&mut self, ts_ns: u64, frame: &[u8]);
    /// When (CLOCK_REALTIME ns) the handler next needs [`FrameHandler::handle_timeout`] if no
    /// frame arrives, or `None` while it has nothing due.
    fn poll_timeout(&self) -> Option<u64>;
    /// The time from [`FrameHandler::poll_timeout`] came (`now_ns` is at or after it).
    fn handle_timeout(&mut self, now_ns: u64);
    /// Called once, after the last frame.
    fn finish(&mut self, now_ns: u64);
    /// Before each batch: `waiting` frames of at most `capacity` are queued for this worker (its
    /// rx ring's occupancy), at `now_ns` (CLOCK_MONOTONIC). Overload control watches this.
    fn backlog(&mut self, now_ns: u64, waiting: u32, capacity: u32) {
        let _ = (now_ns, waiting, capacity);
    }
}

/// Longest sleep while idle, so the stop flag is noticed and kernel counters refreshed.
const IDLE_POLL_MS: u64 = 100;

/// UMEM and ring sizes of each queue's socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingConfig {
    /// Frames in the UMEM (each `frame_size` bytes).
    pub umem_frames: u32,
    /// 2048 or 4096: a frame holds one packet plus 256 bytes of kernel headroom.
    pub frame_size: u32,
    pub fill_ring: u32,
    pub rx_ring: u32,
    /// Most frames read per batch.
    pub batch: u32,
}

/// Default capture memory per queue: at 2048-byte frames, 129,536 frames and rings of 131,072,
/// about 1.5 s of a 1 Gbit/s link's full-size packets (README "Sizing").
pub const DEFAULT_CAPTURE_MEMORY: u64 = 256 << 20;
/// Bytes of ring descriptors per ring entry: 16 in the rx ring, 8 in the fill ring.
const RING_ENTRY_BYTES: u64 = 16 + 8;
/// The smallest budget: rings of 2048 entries.
pub const MIN_CAPTURE_MEMORY: u64 = 2048 * (2048 + RING_ENTRY_BYTES);

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig::from_memory(DEFAULT_CAPTURE_MEMORY, 2048).expect("the default budget fits")
    }
}

impl RingConfig {
    /// Rings and UMEM from a per-queue memory budget (UMEM plus ring descriptors): the rx and
    /// fill rings get the largest power of two of entries that the budget has frames for, and the
    /// UMEM every frame left after the rings. The rx ring is what absorbs a burst while the worker
    /// is busy, so it is made as large as the frames can fill.
    pub fn from_memory(budget: u64, frame_size: u32) -> Result<RingConfig, LiveError> {
        if !(frame_size == 2048 || frame_size == 4096) {
            return Err(LiveError::Config(format!(
                "--frame-size {frame_size} must be 2048 or 4096"
            )));
        }
        let frame = u64::from(frame_size);
        if budget < 2048 * (frame + RING_ENTRY_BYTES) {
            return Err(LiveError::Config(format!(
                "--capture-memory {budget} is too small for {frame_size}-byte frames: give at least {} bytes \
                 (2048 frames), 256M for a 1 Gbit/s link",
                2048 * (frame + RING_ENTRY_BYTES)
            )));
        }
        let frames = budget / frame;
        let ring = 1u64 << (63 - frames.leading_zeros());
        let ring = ring.min(1 << 30);
        let umem_frames = (budget - ring * RING_ENTRY_BYTES) / frame;
        let to_u32 =
            |v: u64| u32::try_from(v).map_err(|_| LiveError::Config(format!("--capture-memory {budget} is too large")));
        Ok(RingConfig {
            umem_frames: to_u32(umem_frames)?,
            frame_size,
            fill_ring: to_u32(ring)?,
            rx_ring: to_u32(ring)?,
            batch: 256,
        })
    }

    /// Frames that can wait for the worker before the kernel drops: the rx ring, or fewer when
    /// the UMEM has fewer frames.
    pub fn backlog_capacity(&self) -> u32 {
        self.rx_ring.min(self.umem_frames)
    }

    /// Locked memory of one queue: UMEM and ring descriptors.
    pub fn locked_bytes(&self) -> u64 {
        self.umem_bytes() + u64::from(self.rx_ring) * 16 + u64::from(self.fill_ring) * 8
    }

    pub fn validate(&self) -> Result<(), LiveError> {
        let pow2 = |v: u32| v.is_power_of_two();
        if !(self.frame_size == 2048 || self.frame_size == 4096) {
            return Err(LiveError::Config(format!(
                "--frame-size {} must be 2048 or 4096",
                self.frame_size
            )));
        }
        if !pow2(self.fill_ring) || !pow2(self.rx_ring) {
            return Err(LiveError::Config("ring sizes must be powers of two".into()));
        }
        if self.batch == 0 {
            return Err(LiveError::Config("batch size must be positive".into()));
        }
        if u64::from(self.umem_frames) < 2 * u64::from(self.batch) {
            return Err(LiveError::Config(format!(
                "--umem-frames {} must be at least twice the batch size {} (the kernel needs frames to \
                 receive into while a batch is processed)",
                self.umem_frames, self.batch
            )));
        }
        Ok(())
    }

    pub fn umem_bytes(&self) -> u64 {
        u64::from(self.umem_frames) * u64::from(self.frame_size)
    }
}

/// Counters of one queue, written by its worker only (relaxed stores of the worker's totals).
#[derive(Default)]
pub(crate) struct SharedQueueCounters {
    values: [AtomicU64; QueueStats::FIELDS],
}

/// A snapshot of one queue's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub queue: u32,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_batches: u64,
    /// Packets that spanned several frames (put back together by copying).
    pub rx_multi_buffer: u64,
    /// Multi-buffer packets above 64 KiB: dropped.
    pub rx_oversized: u64,
    /// Batches that came back full: the rx ring had a backlog.
    pub rx_batches_full: u64,
    /// Times the worker found the fill ring empty when refilling (the kernel had no frame to
    /// receive into).
    pub fill_ring_empty_events: u64,
    /// Kernel XDP_STATISTICS of the socket.
    pub kernel_rx_dropped: u64,
    pub kernel_rx_invalid_descs: u64,
    pub kernel_rx_ring_full: u64,
    pub kernel_rx_fill_ring_empty_descs: u64,
    /// Most frames found waiting in the rx ring at once (its occupancy's high-water mark).
    pub rx_ring_high_water: u64,
    /// Frames that can wait before the kernel drops ([`RingConfig::backlog_capacity`]).
    pub rx_ring_capacity: u64,
}

impl QueueStats {
    const FIELDS: usize = 13;

    fn to_array(self) -> [u64; Self::FIELDS] {
        [
            self.rx_packets,
            self.rx_bytes,
            self.rx_batches,
            self.rx_multi_buffer,
            self.rx_oversized,
            self.rx_batches_full,
            self.fill_ring_empty_events,
            self.kernel_rx_dropped,
            self.kernel_rx_invalid_descs,
            self.kernel_rx_ring_full,
            self.kernel_rx_fill_ring_empty_descs,
            self.rx_ring_high_water,
            self.rx_ring_capacity,
        ]
    }

    fn from_array(queue: u32, a: [u64; Self::FIELDS]) -> Self {
        QueueStats {
            queue,
            rx_packets: a[0],
            rx_bytes: a[1],
            rx_batches: a[2],
            rx_multi_buffer: a[3],
            rx_oversized: a[4],
            rx_batches_full: a[5],
            fill_ring_empty_events: a[6],
            kernel_rx_dropped: a[7],
            kernel_rx_invalid_descs: a[8],
            kernel_rx_ring_full: a[9],
            kernel_rx_fill_ring_empty_descs: a[10],
            rx_ring_high_water: a[11],
            rx_ring_capacity: a[12],
        }
    }

    /// Visits every counter by name (the queue id excluded).
    pub fn for_each(&self, mut f: impl FnMut(&'static str, u64)) {
        f("rx_packets", self.rx_packets);
        f("rx_bytes", self.rx_bytes);
        f("rx_batches", self.rx_batches);
        f("rx_multi_buffer", self.rx_multi_buffer);
        f("rx_oversized", self.rx_oversized);
        f("rx_batches_full", self.rx_batches_full);
        f("fill_ring_empty_events", self.fill_ring_empty_events);
        f("kernel_rx_dropped", self.kernel_rx_dropped);
        f("kernel_rx_invalid_descs", self.kernel_rx_invalid_descs);
        f("kernel_rx_ring_full", self.kernel_rx_ring_full);
        f("kernel_rx_fill_ring_empty_descs", self.kernel_rx_fill_ring_empty_descs);
        f("rx_ring_high_water", self.rx_ring_high_water);
        f("rx_ring_capacity", self.rx_ring_capacity);
    }

    /// Packets lost between the XDP program and this worker, as the kernel counts them
    /// (saturating: these are the kernel's values).
    pub fn kernel_drops(&self) -> u64 {
        self.kernel_rx_dropped
            .saturating_add(self.kernel_rx_ring_full)
            .saturating_add(self.kernel_rx_fill_ring_empty_descs)
    }
}

impl SharedQueueCounters {
    fn publish(&self, s: &QueueStats) {
        for (slot, v) in self.values.iter().zip(s.to_array()) {
            slot.store(v, Ordering::Relaxed);
        }
    }

    pub(crate) fn snapshot(&self, queue: u32) -> QueueStats {
        QueueStats::from_array(queue, std::array::from_fn(|i| self.values[i].load(Ordering::Relaxed)))
    }
}

/// What a worker reports once its socket is bound.
pub(crate) struct Bound {
    /// A duplicate of the bound socket's descriptor (same socket, its own descriptor): it stays
    /// valid however long the control thread holds it, independent of the worker's lifetime.
    /// Dropping it closes only the duplicate.
    pub socket: OwnedFd,
    pub zero_copy: bool,
}

pub(crate) struct WorkerArgs {
    pub ifindex: u32,
    pub interface: String,
    pub queue: u32,
    pub core: Option<usize>,
    pub rings: RingConfig,
    pub try_zero_copy: bool,
    /// The program is multi-buffer aware: bind with XDP_USE_SG so large packets arrive in
    /// several frames.
    pub try_multi_buffer: bool,
    pub stop: Arc<AtomicBool>,
    pub counters: Arc<SharedQueueCounters>,
}

/// The worker thread's body: bind, report, wait for the go signal, then read until stopped.
pub(crate) fn run<H: FrameHandler>(
    args: WorkerArgs,
    make_handler: impl FnOnce(u32) -> H,
    bound: mpsc::Sender<Result<Bound, LiveError>>,
    go: mpsc::Receiver<bool>,
) {
    if let Some(core) = args.core {
        pin_to_core(core);
    }
    let mut queue = match QueueSocket::open(&args) {
        Ok(q) => q,
        Err(e) => {
            let _ = bound.send(Err(e));
            return;
        }
    };
    let zero_copy = queue.zero_copy;
    let socket = match queue.fd().try_clone_to_owned() {
        Ok(socket) => socket,
        Err(e) => {
            let _ = bound.send(Err(LiveError::Socket {
                interface: args.interface.clone(),
                queue: args.queue,
                error: format!("cannot duplicate the socket descriptor: {e}"),
            }));
            return;
        }
    };
    if bound.send(Ok(Bound { socket, zero_copy })).is_err() || go.recv() != Ok(true) {
        return;
    }
    let mut handler = make_handler(args.queue);
    queue.receive_loop(&mut handler, &args);
    handler.finish(now_ns());
}

/// The frame area handed to the kernel, mmapped so it is page aligned. Invariant: `ptr` is the
/// start of a live private anonymous mapping of exactly `len` bytes, readable and writable,
/// owned by this value and unmapped only in Drop.
struct FrameArea {
    ptr: NonNull<u8>,
    len: usize,
}

impl FrameArea {
    fn new(len: usize) -> Result<FrameArea, std::io::Error> {
        // SAFETY: a fresh anonymous mapping at an address the kernel chooses (NULL hint, no
        // MAP_FIXED) cannot alias any existing Rust object; no pointer is passed in.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(FrameArea {
            ptr: NonNull::new(ptr.cast()).expect("mmap returned null"),
            len,
        })
    }

    fn as_slice_ptr(&self) -> NonNull<[u8]> {
        NonNull::slice_from_raw_parts(self.ptr, self.len)
    }

    /// The bytes a received descriptor points at, or None when its kernel-supplied `addr` and
    /// `len` are out of bounds (see [`desc_range`]).
    ///
    /// # Safety
    ///
    /// The descriptor must just have been read from the rx ring of the socket this area is the
    /// UMEM of (the kernel has handed the frame to userspace), and the frame must not go back to
    /// the fill ring while the returned slice lives, so the kernel does not write it meanwhile.
    // SAFETY: (contract) the caller guarantees the frame is userspace's, as stated above.
    unsafe fn received(&self, addr: u64, len: u32, frame_size: u32) -> Option<&[u8]> {
        let range = desc_range(addr, len, frame_size, self.len)?;
        let start = self.ptr.as_ptr().wrapping_add(range.start);
        // SAFETY: `range` lies inside the live mapping of `self.len` bytes (checked just above),
        // which the kernel or MAP_ANONYMOUS initialised; the caller guarantees no writes while the
        // slice, which borrows `self`, lives.
        Some(unsafe { std::slice::from_raw_parts(start, range.len()) })
    }
}

impl Drop for FrameArea {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the mapping made in `new`, unmapped only here, and the
        // Umem and rings that the kernel used it through are dropped before (QueueSocket's field
        // order, and `open_with` declares `area` before the Umem).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The bytes of the UMEM a received descriptor points at, or None when its kernel-supplied
/// `addr`/`len` overflow, leave the area, or cross from the descriptor's frame into the next
/// one. `frame_size` is a power of two (RingConfig::validate).
fn desc_range(addr: u64, len: u32, frame_size: u32, area_len: usize) -> Option<Range<usize>> {
    let start = usize::try_from(addr).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    let frame_size = usize::try_from(frame_size).ok()?;
    let frame_end = (start - start.checked_rem(frame_size)?).checked_add(frame_size)?;
    (end <= area_len && end <= frame_end).then_some(start..end)
}

/// One bound AF_XDP socket with its own UMEM. Field order is drop order: rings and sockets
/// before the UMEM registration, the memory last.
struct QueueSocket {
    rx: xdpilone::RingRx,
    device: xdpilone::DeviceQueue,
    _user: xdpilone::User,
    _umem: Umem,
    area: FrameArea,
    frame_size: u32,
    /// Frame addresses owned by userspace, ready to go back to the fill ring.
    free: Vec<u64>,
    zero_copy: bool,
    /// A multi-buffer packet being put back together (its frames are copied here).
    partial: Vec<u8>,
    /// The packet in `partial` exceeded MAX_PACKET: dropped when its last frame arrives.
    partial_overflow: bool,
}

/// sockaddr_xdp flag: the socket accepts packets spanning several frames (Linux 6.6+).
const XDP_USE_SG: u16 = 1 << 4;
/// XdpDesc option: more frames of this packet follow.
const XDP_PKT_CONTD: u32 = 1 << 0;
/// Largest packet put back together from several frames (64 KiB IP + link headers).
const MAX_PACKET: usize = 65_536 + 64;

impl QueueSocket {
    /// Binds with the best flags the driver accepts: zero-copy before copy, multi-buffer before
    /// single-buffer.
    fn open(args: &WorkerArgs) -> Result<QueueSocket, LiveError> {
        let mut last = None;
        for zero_copy in [true, false] {
            for multi_buffer in [true, false] {
                if (zero_copy && !args.try_zero_copy) || (multi_buffer && !args.try_multi_buffer) {
                    continue;
                }
                match Self::open_with(args, zero_copy, multi_buffer) {
                    Ok(q) => return Ok(q),
                    Err(e @ LiveError::NoPermission { .. }) => return Err(e),
                    Err(e) => {
                        tracing::debug!(
                            "{} queue {}: bind (zero-copy {zero_copy}, multi-buffer {multi_buffer}) failed: {e}",
                            args.interface,
                            args.queue
                        );
                        last = Some(e);
                    }
                }
            }
        }
        Err(last.expect("copy mode is always attempted"))
    }

    fn open_with(args: &WorkerArgs, zero_copy: bool, multi_buffer: bool) -> Result<QueueSocket, LiveError> {
        let r = &args.rings;
        let err = |what: &str, e: xdpilone::Errno| {
            let code = e.get_raw().abs();
            match (what, code) {
                ("create the socket", libc::EPERM | libc::EACCES) => LiveError::NoPermission {
                    action: "create an AF_XDP socket",
                    need: Privilege::NetRaw,
                },
                ("register the UMEM", libc::EPERM | libc::ENOMEM | libc::ENOBUFS) => LiveError::NoPermission {
                    action: "register the UMEM",
                    need: Privilege::Memlock,
                },
                ("bind", libc::EPERM | libc::EACCES) => LiveError::NoPermission {
                    action: "bind an AF_XDP socket",
                    need: Privilege::NetRaw,
                },
                _ => LiveError::Socket {
                    interface: args.interface.clone(),
                    queue: args.queue,
                    error: format!("cannot {what}: {}", std::io::Error::from_raw_os_error(code)),
                },
            }
        };
        let area = usize::try_from(r.umem_bytes())
            .map_err(std::io::Error::other)
            .and_then(FrameArea::new)
            .map_err(|e| LiveError::Socket {
                interface: args.interface.clone(),
                queue: args.queue,
                error: format!("cannot map {} bytes of UMEM: {e}", r.umem_bytes()),
            })?;
        let config = UmemConfig {
            fill_size: r.fill_ring,
            complete_size: 64, // nothing is transmitted
            frame_size: r.frame_size,
            headroom: 0,
            flags: 0,
        };
        // SAFETY: `area` is a page-aligned mapping of umem_frames * frame_size bytes, as
        // `config` describes, and outlives the Umem: QueueSocket drops `area` last, and here
        // `area` is declared first so it also drops last on every error return.
        let umem = unsafe { Umem::new(config, area.as_slice_ptr()) }.map_err(|e| err("register the UMEM", e))?;
        let mut info = IfInfo::invalid();
        info.from_ifindex(args.ifindex)
            .map_err(|e| err("look up the interface", e))?;
        info.set_queue(args.queue);
        let sock = Socket::with_shared(&info, &umem).map_err(|e| err("create the socket", e))?;
        let device = umem
            .fq_cq(&sock)
            .map_err(|e| err("create the fill/completion rings", e))?;
        let mut mode = if zero_copy {
            SocketConfig::XDP_BIND_ZEROCOPY
        } else {
            SocketConfig::XDP_BIND_COPY
        };
        if multi_buffer {
            mode |= XDP_USE_SG;
        }
        let user = umem
            .rx_tx(
                &sock,
                &SocketConfig {
                    rx_size: NonZeroU32::new(r.rx_ring),
                    tx_size: None,
                    bind_flags: mode | SocketConfig::XDP_BIND_NEED_WAKEUP,
                },
            )
            .map_err(|e| err("create the rx ring", e))?;
        let rx = user.map_rx().map_err(|e| err("map the rx ring", e))?;
        umem.bind(&user).map_err(|e| err("bind", e))?;
        let free = (0..r.umem_frames)
            .rev()
            .map(|i| u64::from(i) * u64::from(r.frame_size))
            .collect();
        let mut q = QueueSocket {
            rx,
            device,
            _user: user,
            _umem: umem,
            area,
            frame_size: r.frame_size,
            free,
            zero_copy,
            partial: Vec::new(),
            partial_overflow: false,
        };
        q.refill();
        Ok(q)
    }

    /// The socket's descriptor, borrowed from `self`.
    fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor is the socket xdpilone's RingRx holds (an Arc'd descriptor
        // that is closed when its last holder drops); `self.rx` holds it for as long as `self`,
        // and the BorrowedFd borrows `self`, so it cannot outlive the open descriptor.
        unsafe { BorrowedFd::borrow_raw(self.rx.as_raw_fd()) }
    }

    /// Gives free frames back to the kernel. Returns how many went in.
    fn refill(&mut self) -> u32 {
        if self.free.is_empty() {
            return 0;
        }
        let wanted = u32::try_from(self.free.len()).unwrap_or(u32::MAX);
        let mut writer = self.device.fill(wanted);
        let start = self.free.len() - (writer.capacity().min(wanted) as usize);
        let n = writer.insert(self.free[start..].iter().copied());
        writer.commit();
        self.free.truncate(self.free.len().saturating_sub(n as usize));
        n
    }

    fn receive_loop<H: FrameHandler>(&mut self, handler: &mut H, args: &WorkerArgs) {
        let capacity = args.rings.backlog_capacity();
        let mut stats = QueueStats {
            queue: args.queue,
            rx_ring_capacity: u64::from(capacity),
            ..Default::default()
        };
        let mut last_kernel_stats = 0u64;
        let batch = args.rings.batch;
        let mut stopping = false;
        loop {
            // After the stop flag, one more pass drains what is already in the ring.
            if !stopping && args.stop.load(Ordering::Relaxed) {
                stopping = true;
            }
            // The kernel had nothing to receive into if the fill ring ran dry since our last refill.
            if self.device.pending() == 0 && !self.free.is_empty() {
                stats.fill_ring_empty_events += 1;
            }
            let ts = now_ns();
            // Occupancy before the batch: the backlog overload control acts on.
            let waiting = self.rx.available().min(capacity);
            stats.rx_ring_high_water = stats.rx_ring_high_water.max(u64::from(waiting));
            handler.backlog(monotonic_ns(), waiting, capacity);
            let mut n = 0u32;
            {
                let mut reader = self.rx.receive(batch);
                while let Some(desc) = reader.read() {
                    self.free.push(desc.addr & !(u64::from(self.frame_size) - 1));
                    n += 1;
                    // The frame goes back to the kernel in `refill` after this loop, which takes
                    // `&mut self`: the borrow checker ends `frame` before that.
                    // SAFETY: `desc` was just read from our rx ring (acquire in `receive`): the
                    // kernel has finished the frame and writes it again only once it is refilled.
                    let frame = unsafe { self.area.received(desc.addr, desc.len, self.frame_size) };
                    // addr and len are the kernel's: out-of-bounds descriptors are skipped.
                    let Some(frame) = frame else {
                        continue;
                    };
                    let len = frame.len();
                    let more = desc.options & XDP_PKT_CONTD != 0;
                    if !more && self.partial.is_empty() && !self.partial_overflow {
                        stats.rx_packets += 1;
                        handler.frame(ts, frame);
                        stats.rx_bytes += len as u64;
                        continue;
                    }
                    if self.partial.len().saturating_add(len) <= MAX_PACKET {
                        self.partial.extend_from_slice(frame);
                    } else {
                        self.partial_overflow = true;
                    }
                    if !more {
                        stats.rx_packets += 1;
                        if self.partial_overflow {
                            stats.rx_oversized += 1;
                        } else {
                            handler.frame(ts, &self.partial);
                            stats.rx_bytes += self.partial.len() as u64;
                            stats.rx_multi_buffer += 1;
                        }
                        self.partial.clear();
                        self.partial_overflow = false;
                    }
                }
                reader.release();
            }
            self.refill();
            if self.device.needs_wakeup() {
                self.device.wake();
            }
            if n > 0 {
                stats.rx_batches += 1;
                if n == batch {
                    stats.rx_batches_full += 1;
                }
            }
            let now = if n > 0 { ts } else { now_ns() };
            let due = handler.poll_timeout();
            if due.is_some_and(|t| t <= now) {
                handler.handle_timeout(now);
            }
            if now.saturating_sub(last_kernel_stats) >= 500_000_000 || stopping {
                self.kernel_stats(&mut stats);
                last_kernel_stats = now;
            }
            args.counters.publish(&stats);
            if stopping && n == 0 {
                break;
            }
            if n == 0 {
                // Sleep until a frame arrives or the handler's next deadline, whichever is first.
                let until_due = handler
                    .poll_timeout()
                    .map(|t| t.saturating_sub(now_ns()).div_ceil(1_000_000));
                let timeout_ms = until_due.map_or(IDLE_POLL_MS, |ms| ms.min(IDLE_POLL_MS));
                let mut pfd = libc::pollfd {
                    fd: self.fd().as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: `pfd` is one live, writable pollfd (nfds 1) for the duration of the
                // call; its descriptor is open (borrowed from `self.rx`).
                unsafe { libc::poll(&mut pfd, 1, timeout_ms as libc::c_int) };
            }
        }
        self.kernel_stats(&mut stats);
        args.counters.publish(&stats);
    }

    /// XDP_STATISTICS of the socket (xdpilone's getsockopt wrapper, 5.9+ layout).
    fn kernel_stats(&self, stats: &mut QueueStats) {
        if let Ok(s) = self.device.statistics_v2() {
            stats.kernel_rx_dropped = s.rx_dropped;
            stats.kernel_rx_invalid_descs = s.rx_invalid_descs;
            stats.kernel_rx_ring_full = s.rx_ring_full;
            stats.kernel_rx_fill_ring_empty_descs = s.rx_fill_ring_empty_descs;
        }
    }
}

/// CLOCK_REALTIME in nanoseconds (what `SystemTime::now` reads on Linux); 0 before 1970.
pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// CLOCK_MONOTONIC in nanoseconds (std's Instant reads it on Linux), from a process-wide origin.
pub(crate) fn monotonic_ns() -> u64 {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let origin = *ORIGIN.get_or_init(std::time::Instant::now);
    // +1: zero means "never" to the load monitor.
    u64::try_from(origin.elapsed().as_nanos())
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

fn pin_to_core(core: usize) {
    if core >= libc::CPU_SETSIZE as usize {
        tracing::warn!("could not pin worker to core {core}: beyond CPU_SETSIZE");
        return;
    }
    // SAFETY: cpu_set_t is a plain array of integers; all-zero bytes are the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `core` is below CPU_SETSIZE (checked above), so the bit lies inside `set`.
    unsafe { libc::CPU_SET(core, &mut set) };
    // SAFETY: `set` is a live cpu_set_t and the size passed is exactly its size; the kernel only
    // reads it.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        tracing::warn!(
            "could not pin worker to core {core}: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// CPUs this process may run on, in order.
pub(crate) fn allowed_cores() -> Vec<usize> {
    // SAFETY: cpu_set_t is a plain array of integers; all-zero bytes are the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live, writable cpu_set_t and the size passed is exactly its size; the
    // kernel writes at most that many bytes.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: every `c` is below CPU_SETSIZE, so the bit lies inside `set`.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

/// Sleeps briefly; used by the control thread while quiescing.
pub(crate) fn nap() {
    std::thread::sleep(Duration::from_millis(50));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_config_validation() {
        assert!(RingConfig::default().validate().is_ok());
        let bad_frame = RingConfig {
            frame_size: 3000,
            ..Default::default()
        };
        assert!(bad_frame.validate().unwrap_err().to_string().contains("2048 or 4096"));
        let bad_ring = RingConfig {
            rx_ring: 1000,
            ..Default::default()
        };
        assert!(bad_ring.validate().is_err());
        let small_umem = RingConfig {
            umem_frames: 300,
            ..Default::default()
        };
        assert!(small_umem.validate().unwrap_err().to_string().contains("--umem-frames"));
    }

    #[test]
    fn rings_come_from_the_memory_budget() {
        let d = RingConfig::default();
        assert_eq!((d.rx_ring, d.fill_ring, d.umem_frames), (131_072, 131_072, 129_536));
        assert!(d.validate().is_ok());
        assert!(d.locked_bytes() <= DEFAULT_CAPTURE_MEMORY);
        assert_eq!(d.backlog_capacity(), 129_536);
        // Not a power of two: the rings round down, the UMEM takes the rest.
        let r = RingConfig::from_memory(300 << 20, 2048).unwrap();
        assert_eq!(r.rx_ring, 131_072);
        assert!(r.umem_frames > 150_000 && r.locked_bytes() <= 300 << 20);
        let big = RingConfig::from_memory(1 << 30, 4096).unwrap();
        assert_eq!(big.rx_ring, 262_144);
        assert!(big.validate().is_ok() && big.locked_bytes() <= 1 << 30);
        let min = RingConfig::from_memory(MIN_CAPTURE_MEMORY, 2048).unwrap();
        assert!(min.validate().is_ok());
        let small = RingConfig::from_memory(MIN_CAPTURE_MEMORY - 1, 2048)
            .unwrap_err()
            .to_string();
        assert!(
            small.contains("--capture-memory") && small.contains("at least"),
            "{small}"
        );
        assert!(RingConfig::from_memory(1 << 30, 3000).is_err());
    }

    #[test]
    fn descriptors_are_bounds_checked_without_overflow() {
        const FRAME: u32 = 2048;
        let area = 4 * FRAME as usize;
        // In the frame after the kernel's 256 bytes of headroom, up to the frame's end.
        assert_eq!(desc_range(2048 + 256, 100, FRAME, area), Some(2304..2404));
        assert_eq!(desc_range(3 * 2048 + 256, 2048 - 256, FRAME, area), Some(6400..8192));
        assert_eq!(desc_range(8192, 1, FRAME, area), None, "a frame past the area");
        assert_eq!(desc_range(8192, 0, FRAME, area), Some(8192..8192), "empty, as before");
        assert_eq!(
            desc_range(2048 + 256, 2048, FRAME, area),
            None,
            "crosses into the next frame"
        );
        assert_eq!(desc_range(7000, 2000, FRAME, area), None, "runs past the area");
        // Sums that wrap around usize are out of bounds, not a small offset.
        assert_eq!(desc_range(u64::MAX, 2, FRAME, area), None);
        assert_eq!(desc_range(u64::MAX - 10, u32::MAX, FRAME, usize::MAX), None);
        assert_eq!(desc_range(0, 10, 0, area), None, "no frame size: no division by zero");
    }

    #[test]
    fn counter_sums_saturate() {
        let s = QueueStats {
            kernel_rx_dropped: u64::MAX,
            kernel_rx_ring_full: 5,
            ..Default::default()
        };
        assert_eq!(s.kernel_drops(), u64::MAX);
    }

    #[test]
    fn now_is_after_2020() {
        assert!(now_ns() > 1_577_836_800_000_000_000);
    }

    #[test]
    fn allowed_cores_include_one_and_pinning_out_of_range_is_refused() {
        let cores = allowed_cores();
        assert!(!cores.is_empty());
        assert!(cores.iter().all(|&c| c < libc::CPU_SETSIZE as usize));
        pin_to_core(usize::MAX); // warns, no panic
    }

    #[test]
    fn queue_stats_roundtrip_through_shared_counters() {
        let shared = SharedQueueCounters::default();
        let s = QueueStats {
            queue: 3,
            rx_packets: 1,
            rx_bytes: 2,
            rx_batches: 3,
            rx_multi_buffer: 31,
            rx_oversized: 32,
            rx_batches_full: 4,
            fill_ring_empty_events: 5,
            kernel_rx_dropped: 6,
            kernel_rx_invalid_descs: 7,
            kernel_rx_ring_full: 8,
            kernel_rx_fill_ring_empty_descs: 9,
            rx_ring_high_water: 10,
            rx_ring_capacity: 11,
        };
        shared.publish(&s);
        assert_eq!(shared.snapshot(3), s);
        let mut names = 0;
        s.for_each(|_, _| names += 1);
        assert_eq!(names, QueueStats::FIELDS);
    }
}
