//! A probe of the machine's peak f32 multiply-add throughput: independent fused
//! multiply-adds on registers only, at the widest vector width the CPU has. The
//! benchmarks divide their FLOP rates by what it reaches (`cargo bench --bench kernels --
//! peak`).

use crate::simd::{vectorized_with, VectorWidth};

/// Independent accumulators: 12 AVX-512 registers of 16 f32 lanes, more than the FMA
/// latency × issue width, so the loop is bound by FMA throughput alone. On an AVX2-only CPU
/// the same 192 lanes need 24 of its 16 registers, so the loop spills and the figure
/// understates that CPU's peak (only measured here on AVX-512).
const CHAINS: usize = 12;

/// f32 lanes per chain.
const LANES: usize = 16;

/// Floating-point operations [`fma_rounds`] performs per round: one multiply and one add
/// per lane of every chain.
pub const FLOPS_PER_ROUND: u64 = (2 * CHAINS * LANES) as u64;

/// Runs `rounds` rounds of `acc ← acc·m + c` on [`CHAINS`] × [`LANES`] independent f32
/// lanes, compiled for `width` (the baseline if the CPU lacks it), on this thread; returns
/// a checksum so that the work cannot be optimised away. The AVX-512 and AVX2 widths are
/// compiled with FMA enabled; at the baseline width each multiply-add is a library call.
pub fn fma_rounds(width: VectorWidth, rounds: u64) -> f32 {
    vectorized_with(
        width,
        #[inline(always)]
        || {
            let mut acc = [[1.0f32; LANES]; CHAINS];
            for (i, chain) in acc.iter_mut().enumerate() {
                chain[0] += i as f32;
            }
            // m slightly below 1 and c small: the values stay finite and normal.
            let (m, c) = (std::hint::black_box(0.999_999_9f32), 1e-7f32);
            for _ in 0..rounds {
                // Constant indices: the compiler keeps each chain in a register. (A loop
                // over the chains was vectorized across them instead, through gathers, and
                // ran at 5 GFLOP/s: hence the twelve written-out calls.)
                step(&mut acc[0], m, c);
                step(&mut acc[1], m, c);
                step(&mut acc[2], m, c);
                step(&mut acc[3], m, c);
                step(&mut acc[4], m, c);
                step(&mut acc[5], m, c);
                step(&mut acc[6], m, c);
                step(&mut acc[7], m, c);
                step(&mut acc[8], m, c);
                step(&mut acc[9], m, c);
                step(&mut acc[10], m, c);
                step(&mut acc[11], m, c);
            }
            acc.iter().flatten().sum()
        },
    )
}

/// One round of one chain: v ← v·m + c on every lane.
#[inline(always)]
fn step(chain: &mut [f32; LANES], m: f32, c: f32) {
    for v in chain.iter_mut() {
        *v = v.mul_add(m, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loop computes what it says, at every width (fused multiply-adds are exact
    /// whatever the width, so the checksums agree bit for bit).
    #[test]
    fn fma_rounds_computes_the_recurrence() {
        let rounds = 1000;
        let mut want = 0.0f32;
        for i in 0..CHAINS {
            for lane in 0..LANES {
                let mut v = 1.0f32 + if lane == 0 { i as f32 } else { 0.0 };
                for _ in 0..rounds {
                    v = v.mul_add(0.999_999_9, 1e-7);
                }
                want += v;
            }
        }
        for width in VectorWidth::ALL {
            let got = fma_rounds(width, rounds);
            assert_eq!(got.to_bits(), want.to_bits(), "width {width:?}");
        }
    }
}
