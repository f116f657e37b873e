//! The Playground's random primitives on a ChaCha8 stream instead of `Math.seedrandom`:
//! the same algorithms (uniform by affine map, Marsaglia polar normals with a *variance*
//! argument, the Fisher–Yates loop of `dataset.ts::shuffle`), so only the bit source differs.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The generators' random stream.
pub type DataRng = ChaCha8Rng;

/// `randUniform(a, b)`: `Math.random()·(b − a) + a`, with `random::<f64>()` ∈ [0, 1).
pub fn uniform(rng: &mut DataRng, a: f64, b: f64) -> f64 {
    rng.random::<f64>() * (b - a) + a
}

/// `normalRandom(mean, variance)`: Marsaglia's polar method. s = 0 is also rejected (the
/// Playground would return NaN there; it has probability ~2⁻¹⁰⁶).
pub fn normal(rng: &mut DataRng, mean: f64, variance: f64) -> f64 {
    loop {
        let v1 = 2.0 * rng.random::<f64>() - 1.0;
        let v2 = 2.0 * rng.random::<f64>() - 1.0;
        let s = v1 * v1 + v2 * v2;
        if s <= 1.0 && s > 0.0 {
            return mean + variance.sqrt() * (-2.0 * s.ln() / s).sqrt() * v1;
        }
    }
}

/// `dataset.ts::shuffle`: walk the counter down, swapping with a uniform index below it.
pub fn shuffle<T>(rng: &mut DataRng, items: &mut [T]) {
    let mut counter = items.len();
    while counter > 0 {
        let index = (rng.random::<f64>() * counter as f64).floor() as usize;
        counter -= 1;
        items.swap(counter, index.min(counter));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn normal_has_the_requested_mean_and_variance() {
        let mut rng = DataRng::seed_from_u64(1);
        let xs: Vec<f64> = (0..20_000).map(|_| normal(&mut rng, 2.0, 4.0)).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!((mean - 2.0).abs() < 0.05, "{mean}");
        assert!((var - 4.0).abs() < 0.15, "{var}");
    }

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let mut a: Vec<usize> = (0..50).collect();
        let mut b = a.clone();
        shuffle(&mut DataRng::seed_from_u64(3), &mut a);
        shuffle(&mut DataRng::seed_from_u64(3), &mut b);
        assert_eq!(a, b);
        assert_ne!(a, (0..50).collect::<Vec<_>>());
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    }
}
