//! Test helpers shared by the aggregator tests: seeded random Jacobians and the J_base example.
use nalgebra::{DMatrix, DVector};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// J_base from aggregators.md §6; G_base = [[18, −22], [−22, 38]].
pub fn j_base() -> DMatrix<f64> {
    DMatrix::from_row_slice(2, 3, &[-4.0, 1.0, 1.0, 6.0, 1.0, 1.0])
}

/// A seeded source of standard-normal numbers (Box–Muller: rand_distr is not a dependency).
pub struct Normal(ChaCha8Rng);

impl Normal {
    pub fn new(seed: u64) -> Self {
        Normal(ChaCha8Rng::seed_from_u64(seed))
    }

    pub fn sample(&mut self) -> f64 {
        let u1: f64 = 1.0 - self.0.random::<f64>(); // (0, 1]: keeps ln finite
        let u2: f64 = self.0.random::<f64>();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// m × n with i.i.d. N(0, 1) entries.
    pub fn matrix(&mut self, m: usize, n: usize) -> DMatrix<f64> {
        DMatrix::from_fn(m, n, |_, _| self.sample())
    }

    /// m × n of rank ≤ r (a product of Gaussian factors), for rank-deficient Gramians.
    pub fn low_rank(&mut self, m: usize, n: usize, r: usize) -> DMatrix<f64> {
        self.matrix(m, r) * self.matrix(r, n)
    }

    pub fn index(&mut self, bound: usize) -> usize {
        self.0.random_range(0..bound)
    }
}

/// The (m, n, rank) shapes used by the property tests, after torchjd's "normal" and
/// stationarity families (aggregators.md §5).
pub const SHAPES: [(usize, usize, usize); 10] = [
    (1, 1, 1),
    (2, 5, 2),
    (4, 3, 1),
    (4, 3, 2),
    (4, 3, 3),
    (9, 11, 5),
    (9, 11, 9),
    (20, 10, 10),
    (20, 10, 5),
    (20, 100, 19),
];

/// Row permutation P·J.
pub fn permute_rows(j: &DMatrix<f64>, perm: &[usize]) -> DMatrix<f64> {
    DMatrix::from_fn(j.nrows(), j.ncols(), |i, k| j[(perm[i], k)])
}

/// A seeded random permutation of 0..m (Fisher–Yates).
pub fn random_permutation(rng: &mut Normal, m: usize) -> Vec<usize> {
    let mut p: Vec<usize> = (0..m).collect();
    for k in (1..m).rev() {
        p.swap(k, rng.index(k + 1));
    }
    p
}

/// The most negative entry of J·d relative to ‖J‖_F² (0 when nothing conflicts).
pub fn worst_conflict(j: &DMatrix<f64>, d: &DVector<f64>) -> f64 {
    let jd = j * d;
    let scale = j.norm_squared().max(f64::MIN_POSITIVE);
    jd.iter().fold(0.0f64, |acc, v| acc.min(*v)) / scale
}
