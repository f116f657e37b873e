//! Element-wise loops compiled for the CPU at hand: the portable x86-64 build has SSE2 only
//! (4 f32 lanes), so the hot loops of the fast trainer and the optimizer are also compiled for
//! AVX2 + FMA and AVX-512 and picked at run time (`is_x86_feature_detected!` caches the answer).
//! Lane-wise IEEE operations give the same bits at every width (Rust never fuses a·b + c by
//! itself), so the f64 reference's numbers do not depend on the CPU.

/// Defines `fn $name` three times over: compiled for AVX-512, for AVX2 + FMA and as it is, and
/// picks at run time the first the CPU has, so its element-wise loops use 16 or 8 lanes instead
/// of the portable x86-64 build's 4 (SSE2). On the wide trunk the activations took 15 % of a
/// step with SSE2. The browser build (SIMD128) and other CPUs run the plain version.
macro_rules! multiversion {
    ($(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                fn avx512($($arg: $ty),*) {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) {
                    body($($arg),*)
                }
                use std::arch::is_x86_feature_detected as has;
                if has!("avx512f") && has!("avx512vl") && has!("avx2") && has!("fma") {
                    // SAFETY: the CPU has these features (checked just above).
                    return unsafe { avx512($($arg),*) };
                }
                if has!("avx2") && has!("fma") {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

pub(crate) use multiversion;

multiversion! {
/// Whether every value is finite: a branch-free fold (`all` stops at the first bad value, and
/// its branch per element kept the check scalar: 12 % of a gradnorm-scales step).
fn fold_finite_f64(values: &[f64], ok: &mut bool) {
    *ok = values.iter().fold(true, |acc, v| acc & v.is_finite());
}
}

multiversion! {
fn fold_finite_f32(values: &[f32], ok: &mut bool) {
    *ok = values.iter().fold(true, |acc, v| acc & v.is_finite());
}
}

/// Whether every value is finite (vectorised).
pub fn all_finite(values: &[f64]) -> bool {
    let mut ok = false;
    fold_finite_f64(values, &mut ok);
    ok
}

/// Whether every value is finite (vectorised).
pub fn all_finite_f32(values: &[f32]) -> bool {
    let mut ok = false;
    fold_finite_f32(values, &mut ok);
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finiteness_is_checked_everywhere_in_the_slice() {
        for len in [0usize, 1, 7, 8, 9, 31, 64, 1000] {
            assert!(all_finite(&vec![1.5; len]));
            assert!(all_finite_f32(&vec![1.5; len]));
            for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
                for at in [0, len / 2, len.saturating_sub(1)].into_iter().filter(|&i| i < len) {
                    let mut v = vec![0.25; len];
                    v[at] = bad;
                    assert!(!all_finite(&v), "len {len}, {bad} at {at}");
                    let mut w = vec![0.25f32; len];
                    w[at] = bad as f32;
                    assert!(!all_finite_f32(&w), "len {len}, {bad} at {at} (f32)");
                }
            }
        }
    }
}
