//! Multi-buffer scheduling for CBC encryption.
//!
//! CBC encryption of one buffer is a serial chain: each block waits for the
//! previous ciphertext, so one buffer runs at AES *latency*. With `L`
//! independent buffers in `L` SIMD lanes the same instructions carry `L`
//! chains and the loop runs at AES *throughput*. This module decides which
//! job each lane works on (a lane that finishes takes the next job, as in a
//! job manager); the backends only run fixed-length stretches ("runs") in
//! which every lane advances one block per step.
//!
//! A backend that fuses the CRC of the plaintext into its lanes
//! ([`cbc_encrypt_crc`]) also keeps a CRC accumulator per lane; the scheduler
//! sets it up when a lane takes a job and hands the folded value to the job
//! when the lane finishes it (see `kernel::crc`).

use super::Job;

/// Most lanes any backend uses (RustCrypto's VAES-512 batch is 64 blocks).
pub(crate) const MAX_LANES: usize = 64;
/// Most steps of one run; bounds the scratch space of idle lanes.
pub(crate) const MAX_RUN: usize = 64;
const IDLE: usize = usize::MAX;

/// Per-lane progress, shared between the scheduler and a backend's run.
pub(crate) struct Lanes {
    count: usize,
    job: [usize; MAX_LANES],
    block: [usize; MAX_LANES],
    /// The chaining value of each lane: the job's IV before its first block,
    /// then its latest ciphertext block. Backends read and update it.
    pub(crate) chain: [[u8; 16]; MAX_LANES],
    /// Fused CRC only: each lane's CRC accumulator, the job's plaintext so
    /// far folded to 128 bits (zero before its first block). Backends that
    /// fuse read and update it; others ignore it.
    pub(crate) crc: [[u8; 16]; MAX_LANES],
    /// Fused CRC only: what the first step of a run XORs into each lane's
    /// plaintext block before folding it into `crc`: the job's CRC register
    /// (`CrcRequest::first_block_mask`) for a lane that starts a job which
    /// asks for a CRC, zero for every other lane. Cleared after each run.
    pub(crate) crc_first: [[u8; 16]; MAX_LANES],
}

impl Lanes {
    /// The job and block index an active lane works on next; `None` when
    /// the lane is idle.
    pub(crate) fn position(&self, lane: usize) -> Option<(usize, usize)> {
        (lane < self.count && self.job[lane] != IDLE).then(|| (self.job[lane], self.block[lane]))
    }
}

/// Where idle lanes read and write, so a run needs no per-lane branches.
pub(crate) struct Scratch([u8; MAX_RUN * 16]);

impl Scratch {
    pub(crate) fn new() -> Self {
        Scratch([0; MAX_RUN * 16])
    }
}

/// The source and destination of the current block of every lane.
pub(crate) struct LanePtrs {
    pub(crate) src: [*const u8; MAX_LANES],
    pub(crate) dst: [*mut u8; MAX_LANES],
}

impl LanePtrs {
    /// Pointers for a run of `steps` steps.
    ///
    /// Guarantee (checked here, relied on by the backends): for every lane
    /// `i < lanes.count`, `src[i]` is valid for reading and `dst[i]` for
    /// writing `steps * 16` bytes, the destinations of distinct active
    /// lanes do not overlap, and a source either equals its destination
    /// (in place) or does not overlap any destination. Idle lanes point at
    /// `scratch`.
    pub(crate) fn new(
        jobs: &mut [Job<'_>],
        lanes: &Lanes,
        steps: usize,
        scratch: &mut Scratch,
    ) -> LanePtrs {
        assert!(
            steps <= MAX_RUN,
            "multi-buffer run longer than the scratch space"
        );
        let scratch_ptr = scratch.0.as_mut_ptr();
        let mut ptrs = LanePtrs {
            src: [scratch_ptr.cast_const(); MAX_LANES],
            dst: [scratch_ptr; MAX_LANES],
        };
        for lane in 0..lanes.count {
            let job = lanes.job[lane];
            if job == IDLE {
                continue;
            }
            let io = &mut jobs[job].io;
            let start = lanes.block[lane] * 16;
            assert!(
                start + steps * 16 <= io.len(),
                "multi-buffer lane would run past the end of its job"
            );
            let (src, dst) = io.ptrs();
            ptrs.src[lane] = src.wrapping_add(start);
            ptrs.dst[lane] = dst.wrapping_add(start);
        }
        ptrs
    }
}

/// Encrypts the whole blocks of every job in CBC mode, `lane_count` jobs at
/// a time, by calling `run(jobs, lanes, steps)` for stretches in which every
/// active lane advances `steps` blocks.
///
/// Lane `i` starts `i * stagger` steps late. Pages laid out at a power-of-two
/// stride (a buffer pool) would otherwise put every lane's current cache
/// line in the same L1 set; a small offset between lanes spreads them.
pub(crate) fn cbc_encrypt(
    jobs: &mut [Job<'_>],
    lane_count: usize,
    stagger: usize,
    run: impl FnMut(&mut [Job<'_>], &mut Lanes, usize),
) {
    schedule::<false>(jobs, lane_count, stagger, run);
}

/// [`cbc_encrypt`] for a `run` that also folds each lane's plaintext blocks
/// into `Lanes::crc` (after XORing `Lanes::crc_first` into the first block
/// of the run). When a lane finishes a job that asks for a CRC, its
/// accumulator is stored in the job's `CrcRequest::fold`; the caller
/// reduces it and appends the tail. Jobs without a whole block never reach
/// a lane and keep their `fold` untouched.
#[cfg_attr(
    not(target_arch = "x86_64"),
    allow(dead_code, reason = "only the VAES-512 backend fuses the CRC")
)]
pub(crate) fn cbc_encrypt_crc(
    jobs: &mut [Job<'_>],
    lane_count: usize,
    stagger: usize,
    run: impl FnMut(&mut [Job<'_>], &mut Lanes, usize),
) {
    schedule::<true>(jobs, lane_count, stagger, run);
}

fn schedule<const CRC: bool>(
    jobs: &mut [Job<'_>],
    lane_count: usize,
    stagger: usize,
    mut run: impl FnMut(&mut [Job<'_>], &mut Lanes, usize),
) {
    let lane_count = lane_count.clamp(1, MAX_LANES);
    let mut lanes = Lanes {
        count: lane_count,
        job: [IDLE; MAX_LANES],
        block: [0; MAX_LANES],
        chain: [[0; 16]; MAX_LANES],
        crc: [[0; 16]; MAX_LANES],
        crc_first: [[0; 16]; MAX_LANES],
    };
    let mut start_at = [0usize; MAX_LANES];
    for (lane, start) in start_at.iter_mut().enumerate().take(lane_count) {
        *start = lane * stagger;
    }
    let blocks = |job: &Job<'_>| job.io.len() / 16;
    let next_nonempty =
        |jobs: &[Job<'_>], from: usize| (from..jobs.len()).find(|&j| blocks(&jobs[j]) > 0);
    let mut next = next_nonempty(jobs, 0);
    let mut now = 0;
    loop {
        for (lane, &start) in start_at.iter().enumerate().take(lane_count) {
            if lanes.job[lane] != IDLE || start > now {
                continue;
            }
            if let Some(job) = next {
                lanes.job[lane] = job;
                lanes.block[lane] = 0;
                lanes.chain[lane] = jobs[job].iv;
                if CRC {
                    lanes.crc[lane] = [0; 16];
                    lanes.crc_first[lane] = jobs[job]
                        .crc
                        .as_ref()
                        .map_or([0; 16], |crc| crc.first_block_mask());
                }
                next = next_nonempty(jobs, job + 1);
            }
        }
        let mut steps = MAX_RUN;
        let mut active = false;
        for (lane, &start) in start_at.iter().enumerate().take(lane_count) {
            match lanes.position(lane) {
                Some((job, block)) => {
                    active = true;
                    steps = steps.min(blocks(&jobs[job]) - block);
                }
                // Stop the run when a waiting lane may join.
                None if next.is_some() && start > now => steps = steps.min(start - now),
                None => {}
            }
        }
        if !active {
            // Lanes still waiting for their staggered start have no reason
            // to wait when nothing runs.
            match start_at[..lane_count]
                .iter()
                .copied()
                .filter(|&s| s > now)
                .min()
            {
                Some(start) if next.is_some() => now = start,
                _ => return,
            }
            continue;
        }
        run(jobs, &mut lanes, steps);
        now += steps;
        if CRC {
            lanes.crc_first[..lane_count].fill([0; 16]);
        }
        for lane in 0..lane_count {
            if let Some((job, block)) = lanes.position(lane) {
                lanes.block[lane] = block + steps;
                if block + steps == blocks(&jobs[job]) {
                    lanes.job[lane] = IDLE;
                    if CRC && let Some(crc) = &mut jobs[job].crc {
                        crc.fold = lanes.crc[lane];
                    }
                }
            }
        }
    }
}
