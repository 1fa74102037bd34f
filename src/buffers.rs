//! Large buffers recycled between passes of a tape, so that a sweep over step chunks
//! does not allocate (and the kernel does not zero and map fresh pages) for every node of
//! every chunk.
//!
//! [`Tape`](crate::Tape) hands the buffers of its nodes here when it is cleared (and its
//! adjoints and tangents when they are recomputed); ops take their output buffers from
//! here. The pool is per thread (tapes run on one thread; kernels only parallelise inside
//! an op), holds only buffers of at least [`MIN_POOLED_BYTES`], and is bounded by
//! [`MAX_POOLED_BUFFERS`] and [`MAX_POOLED_BYTES`]; when full, the buffers given longest
//! ago make room (so buffers of sizes no longer asked for cannot clog it).
//!
//! The pool outlives a request on purpose: a process explaining input after input (a
//! server, a benchmark, `mho ablate`) then reuses the same memory instead of having the
//! operating system map and zero fresh pages for every request. What it holds is at most
//! about one step chunk's tape per thread that ran one. [`release`] frees this thread's
//! pool; [`release_everywhere`] also the pools of rayon's threads, where
//! [`crate::attribution::attribute`] runs its sweeps.

use std::any::Any;
use std::cell::RefCell;
use std::mem::size_of;

/// Buffers smaller than this go straight back to the allocator (which serves small
/// requests cheaply from memory it already has).
pub const MIN_POOLED_BYTES: usize = 1 << 16;

/// At most this many buffers are kept per thread.
pub const MAX_POOLED_BUFFERS: usize = 256;

/// At most this many bytes are kept per thread.
pub const MAX_POOLED_BYTES: usize = 1 << 29;

/// A recycled buffer and its capacity in bytes.
struct Pooled {
    bytes: usize,
    buffer: Box<dyn Any>,
}

#[derive(Default)]
struct Pool {
    buffers: Vec<Pooled>,
    bytes: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

/// Gives a buffer back for reuse (dropped instead when it is smaller than
/// [`MIN_POOLED_BYTES`] or larger than the whole pool; when the pool is full, the buffers
/// given longest ago are dropped to make room).
pub fn give<E: Copy + 'static>(buffer: Vec<E>) {
    let bytes = buffer.capacity() * size_of::<E>();
    if bytes < MIN_POOLED_BYTES {
        return;
    }
    if bytes > MAX_POOLED_BYTES {
        return;
    }
    // `try_with`: a tape dropped during thread teardown, after the pool, just frees.
    let _ = POOL.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        // Full: the buffers given longest ago go first. Buffers in use cycle through the
        // pool every pass; one that nobody has taken since is of a size no longer asked
        // for (another request's, or a tensor allocated outside the pool), and keeping it
        // would turn every later give into a free and every take into fresh pages.
        while pool.buffers.len() >= MAX_POOLED_BUFFERS || pool.bytes + bytes > MAX_POOLED_BYTES {
            let oldest = pool.buffers.remove(0);
            pool.bytes -= oldest.bytes;
        }
        pool.bytes += bytes;
        pool.buffers.push(Pooled {
            bytes,
            buffer: Box::new(buffer),
        });
    });
}

/// The smallest pooled `Vec<E>` with room for `len` elements and at most twice that (so a
/// small request never pins a large buffer), taken out of the pool.
fn take_pooled<E: Copy + 'static>(len: usize) -> Option<Vec<E>> {
    if len * size_of::<E>() < MIN_POOLED_BYTES {
        return None;
    }
    POOL.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        let fits = |p: &Pooled| {
            p.buffer
                .downcast_ref::<Vec<E>>()
                .is_some_and(|v| v.capacity() >= len && v.capacity() <= 2 * len)
        };
        let best = pool
            .buffers
            .iter()
            .enumerate()
            .filter(|(_, p)| fits(p))
            .min_by_key(|(_, p)| p.bytes)
            .map(|(i, _)| i)?;
        // `remove`, not `swap_remove`: the pool stays in the order buffers were given.
        let pooled = pool.buffers.remove(best);
        pool.bytes -= pooled.bytes;
        pooled.buffer.downcast::<Vec<E>>().ok().map(|b| *b)
    })
    .ok()
    .flatten()
}

/// A buffer of `len` elements whose contents are unspecified (left over from an earlier
/// tensor, or `E::default()`): for outputs the caller overwrites completely.
pub fn take_for_overwrite<E: Copy + Default + 'static>(len: usize) -> Vec<E> {
    match take_pooled(len) {
        Some(mut v) => {
            v.resize(len, E::default());
            v
        }
        None => vec![E::default(); len],
    }
}

/// A buffer of `len` copies of `value`.
pub fn take_filled<E: Copy + Default + 'static>(len: usize, value: E) -> Vec<E> {
    match take_pooled(len) {
        Some(mut v) => {
            v.clear();
            v.resize(len, value);
            v
        }
        None => vec![value; len],
    }
}

/// Frees every buffer this thread holds.
pub fn release() {
    let _ = POOL.try_with(|pool| *pool.borrow_mut() = Pool::default());
}

/// Frees every buffer this thread and each thread of rayon's global pool hold (attribution
/// runs its sweeps on the pool's threads, so their pools hold its tape buffers).
pub fn release_everywhere() {
    rayon::broadcast(|_| release());
    release();
}

/// The number of buffers and bytes this thread holds.
pub fn held() -> (usize, usize) {
    POOL.with_borrow(|pool| (pool.buffers.len(), pool.bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_by_type_and_size_and_released() {
        release();
        let big = 1 << 16;
        give(vec![1.5f32; big]);
        give(vec![7u8; 16]); // too small: not kept
        assert_eq!(held(), (1, big * 4));
        // Wrong type or too small a request: not handed out.
        assert_eq!(take_pooled::<f64>(big).map(|v| v.len()), None);
        assert_eq!(take_pooled::<f32>(big / 4).map(|v| v.len()), None);
        let v = take_for_overwrite::<f32>(big - 3);
        assert_eq!(v.len(), big - 3);
        assert_eq!(held(), (0, 0));
        give(v);
        let z = take_filled::<f32>(big, 0.0);
        assert!(z.len() == big && z.iter().all(|&x| x == 0.0));
        give(z);
        release();
        assert_eq!(held(), (0, 0));
    }

    #[test]
    fn the_pool_is_bounded() {
        release();
        for _ in 0..MAX_POOLED_BUFFERS + 10 {
            give(vec![0f32; 1 << 14]);
        }
        assert_eq!(held().0, MAX_POOLED_BUFFERS);
        release();
    }

    #[test]
    fn a_full_pool_drops_the_buffers_given_longest_ago() {
        release();
        // The pool fills with buffers of a size nobody asks for again ...
        let stale = 1 << 14;
        for _ in 0..MAX_POOLED_BUFFERS {
            give(vec![0f32; stale]);
        }
        // ... then a working set of another size cycles through it, pass after pass: it
        // is kept (each pass takes back what the previous one gave), the stale ones go.
        let working = 3 << 14;
        for pass in 0..3 {
            let taken: Vec<Vec<f32>> = (0..40).map(|_| take_for_overwrite(working)).collect();
            let reused = taken.iter().filter(|v| v.capacity() == working).count();
            if pass > 0 {
                assert_eq!(reused, 40, "pass {pass}: the working set came back");
            }
            for v in taken {
                give(v);
            }
        }
        let (count, bytes) = held();
        assert_eq!(count, MAX_POOLED_BUFFERS);
        assert_eq!(
            bytes,
            40 * working * 4 + (MAX_POOLED_BUFFERS - 40) * stale * 4
        );
        release();
    }

    #[test]
    fn release_everywhere_empties_the_pools_of_rayon_threads() {
        // Fill the pool of every rayon thread (and this one), then release everywhere.
        rayon::broadcast(|_| give(vec![0f32; 1 << 14]));
        give(vec![0f32; 1 << 14]);
        assert!(rayon::broadcast(|_| held().0).iter().all(|&c| c >= 1));
        release_everywhere();
        assert!(rayon::broadcast(|_| held()).iter().all(|&h| h == (0, 0)));
        assert_eq!(held(), (0, 0));
    }

    #[test]
    fn a_buffer_larger_than_the_pool_is_freed_without_emptying_it() {
        release();
        give(vec![0f32; 1 << 14]);
        give(vec![0u8; MAX_POOLED_BYTES + 1]);
        assert_eq!(held(), (1, 1 << 16));
        release();
    }
}
