//! The first two principal components of a trajectory (`setup_PCA_directions` in the
//! reference): rows θ_i − θ_final, centred as sklearn's PCA centres them, decomposed through the
//! small n × n Gram matrix (n checkpoints ≪ parameters).

use nalgebra::{DMatrix, SymmetricEigen};

/// PC₁, PC₂ and their explained-variance ratios.
pub type PcaPlane = (Vec<f64>, Vec<f64>, [f64; 2]);

/// (PC₁, PC₂, explained-variance ratios). PCs have unit norm; a sign is fixed so that the
/// largest-magnitude entry is positive (PCA signs are arbitrary).
pub fn pca_directions(trajectory: &[Vec<f64>], end: &[f64]) -> Result<PcaPlane, String> {
    let n = trajectory.len();
    if n < 3 {
        return Err(format!("PCA directions need at least 3 trajectory snapshots, got {n}"));
    }
    let p = end.len();
    if let Some(i) = trajectory.iter().position(|t| t.len() != p) {
        return Err(format!("snapshot {i} has {} parameters, expected {p}", trajectory[i].len()));
    }
    // Centred rows M (n × p).
    let mut m = DMatrix::from_fn(n, p, |r, c| trajectory[r][c] - end[c]);
    for c in 0..p {
        let mean = m.column(c).mean();
        m.column_mut(c).add_scalar_mut(-mean);
    }
    let gram = &m * m.transpose();
    let eig = SymmetricEigen::new(gram);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
    let total: f64 = eig.eigenvalues.iter().map(|v| v.max(0.0)).sum();
    let (l1, l2) = (eig.eigenvalues[order[0]], eig.eigenvalues[order[1]]);
    if !(total > 0.0 && l2 > 1e-12 * l1.max(0.0) && l2 > 0.0) {
        return Err("the trajectory spans fewer than two directions: PCA cannot define a plane".into());
    }
    let component = |k: usize, lambda: f64| -> Vec<f64> {
        let u = eig.eigenvectors.column(k);
        let mut v: Vec<f64> = (m.transpose() * u).iter().map(|x| x / lambda.sqrt()).collect();
        let big = v.iter().copied().fold(0.0f64, |acc, x| if x.abs() > acc.abs() { x } else { acc });
        if big < 0.0 {
            v.iter_mut().for_each(|x| *x = -*x);
        }
        v
    };
    Ok((component(order[0], l1), component(order[1], l2), [l1 / total, l2 / total]))
}
