//! Per-thread scratch buffers reused from call to call, so that kernels called again and
//! again (a convolution per layer per step chunk) do not allocate, zero and fault in
//! fresh pages for their im2col tiles every time.

use std::any::Any;
use std::cell::RefCell;

thread_local! {
    /// This thread's scratch buffer (a `Vec<T>` for the last `T` used), if any is free.
    static SCRATCH: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// Scratch buffers above this many bytes are freed after use instead of kept.
const MAX_KEPT_BYTES: usize = 1 << 28;

/// Runs `f` on a scratch slice of `len` elements whose contents are unspecified (left
/// over from an earlier call on this thread, or zeros): `f` must write before it reads.
///
/// The buffer is taken out of the thread's slot for the call, so a nested call (rayon
/// may run another job on this thread while `f` waits) simply gets a buffer of its own.
pub(crate) fn with_scratch<T: Copy + Default + 'static, R>(
    len: usize,
    f: impl FnOnce(&mut [T]) -> R,
) -> R {
    // `try_with`: during thread teardown (a kernel called from another thread-local's
    // destructor) the slot may be gone; then the call simply uses a fresh buffer.
    let kept = SCRATCH
        .try_with(|slot| slot.borrow_mut().take())
        .ok()
        .flatten()
        .and_then(|b| b.downcast::<Vec<T>>().ok());
    let mut buffer = kept.map_or_else(Vec::new, |b| *b);
    if buffer.len() < len {
        buffer.resize(len, T::default());
    }
    let result = f(&mut buffer[..len]);
    if buffer.len() * std::mem::size_of::<T>() <= MAX_KEPT_BYTES {
        // Ignoring a slot already torn down drops the buffer, which is all that is left.
        let _ = SCRATCH.try_with(|slot| *slot.borrow_mut() = Some(Box::new(buffer)));
    }
    result
}

/// Fills this thread's kept scratch buffer (growing it to `len`) with `value`, so tests
/// can show that no kernel reads scratch it has not written (poison it with NaN).
#[doc(hidden)]
pub fn poison<T: Copy + Default + 'static>(len: usize, value: T) {
    with_scratch::<T, _>(len, |s| s.fill(value));
}

#[cfg(test)]
mod tests {
    use super::with_scratch;

    #[test]
    fn scratch_is_reused_and_sized_to_the_request() {
        let first = with_scratch::<f32, _>(1000, |s| {
            s.fill(2.0);
            s.as_ptr() as usize
        });
        // The same allocation comes back (left-over contents included) for a smaller request.
        let (again, len, old) =
            with_scratch::<f32, _>(10, |s| (s.as_ptr() as usize, s.len(), s[3]));
        assert_eq!((again, len, old), (first, 10, 2.0));
        // A nested call gets a buffer of its own.
        with_scratch::<f32, _>(8, |outer| {
            outer.fill(1.0);
            with_scratch::<f32, _>(8, |inner| inner.fill(5.0));
            assert!(outer.iter().all(|&v| v == 1.0));
        });
        // Another element type replaces the kept buffer.
        assert_eq!(with_scratch::<f64, _>(4, |s| s.len()), 4);
    }
}
