//! Per-neuron conflict: for each shared (trunk) neuron, how the tasks' gradients on its own
//! incoming parameters — row j of its layer's W plus b_j — agree (the network view's rings).
//!
//! It is the per-layer Gram of metrics.md narrowed to one neuron's columns: G_n = J_n J_nᵀ with
//! J_n the m × (fan_in + 1) block of the shared Jacobian, then the usual cosines and norms (a
//! zero gradient gives an undefined cosine, `None`). For more than two tasks the single number
//! drawn is the most negative pairwise cosine (the worst conflict at that neuron); every pair is
//! kept for the tooltip.
//!
//! An MoE's shared neurons (`moe_neuron_conflicts`) are its pre-layers' and its experts' hidden
//! neurons, with the same reduction of its per-task Jacobian.

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

use super::{cosine_from_gram, norms_from_gram, PairMatrix};
use crate::model::moe::MoeLayout;
use crate::model::{LayerSlice, Layout};

/// One trunk neuron's conflict numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NeuronConflict {
    /// Trunk layer (0 = the first hidden layer) and the neuron's index in it.
    pub layer: usize,
    pub index: usize,
    /// ‖g_t‖ restricted to the neuron's incoming weights and bias, one per task.
    pub norms: Vec<f64>,
    /// m × m pairwise cosines on those parameters (`None`: a zero gradient).
    pub cosines: PairMatrix,
    /// The most negative defined cosine over pairs i < j (`None`: no defined pair, or one task).
    pub min_cos: Option<f64>,
    /// The pair (i, j) that gives `min_cos`.
    pub min_pair: Option<[usize; 2]>,
}

/// The flat-vector indices of neuron `j`'s incoming parameters: W[j, ·] (row-major, so one
/// contiguous run) then b_j.
pub fn neuron_params(slice: &LayerSlice, j: usize) -> impl Iterator<Item = usize> {
    let row = slice.weight.start + j * slice.fan_in;
    (row..row + slice.fan_in).chain(std::iter::once(slice.bias.start + j))
}

/// The conflict numbers of every trunk neuron from the m × d_shared Jacobian of the per-task
/// losses (row t = ∇ L_t w.r.t. the shared parameters, `Gradients::shared_jacobian`).
/// `[layer][neuron]`; errors if the Jacobian is narrower than the layout's trunk.
pub fn neuron_conflicts(layout: &Layout, jacobian: &DMatrix<f64>) -> Result<Vec<Vec<NeuronConflict>>, String> {
    let slices: Vec<&LayerSlice> = layout.trunk.iter().collect();
    slice_conflicts(&slices, layout.shared_len, jacobian)
}

/// The same numbers for an MoE's shared neurons, from its per-task Jacobian
/// (`MoeGradients::tasks.shared_jacobian`): "layers" 0..L are the dense pre-layers, layer L + e
/// is expert e's hidden layer (its neurons' incoming weights: row j of the expert's first W
/// plus b_j). The gates and the experts' output layers feed no neuron of their own: left out.
/// An expert no token reached has a zero gradient: its cosines are undefined (`None`).
pub fn moe_neuron_conflicts(layout: &MoeLayout, jacobian: &DMatrix<f64>) -> Result<Vec<Vec<NeuronConflict>>, String> {
    let slices: Vec<&LayerSlice> = layout.pre.iter().chain(layout.experts.iter().map(|e| &e.hidden)).collect();
    slice_conflicts(&slices, layout.shared_len, jacobian)
}

/// Per-neuron numbers of each layer in `slices` (its position is the neurons' `layer`).
fn slice_conflicts(
    slices: &[&LayerSlice],
    shared_len: usize,
    jacobian: &DMatrix<f64>,
) -> Result<Vec<Vec<NeuronConflict>>, String> {
    if jacobian.ncols() < shared_len {
        return Err(format!("the Jacobian has {} columns, the trunk {}", jacobian.ncols(), shared_len));
    }
    let m = jacobian.nrows();
    Ok(slices
        .iter()
        .enumerate()
        .map(|(l, slice)| {
            (0..slice.fan_out)
                .map(|j| {
                    let mut gram = DMatrix::zeros(m, m);
                    for c in neuron_params(slice, j) {
                        for a in 0..m {
                            for b in a..m {
                                gram[(a, b)] += jacobian[(a, c)] * jacobian[(b, c)];
                            }
                        }
                    }
                    for a in 0..m {
                        for b in 0..a {
                            gram[(a, b)] = gram[(b, a)];
                        }
                    }
                    let cosines = cosine_from_gram(&gram);
                    let (min_cos, min_pair) = most_negative(&cosines);
                    NeuronConflict { layer: l, index: j, norms: norms_from_gram(&gram), cosines, min_cos, min_pair }
                })
                .collect()
        })
        .collect())
}

/// The smallest defined off-diagonal cosine and its pair (the first such pair on ties).
fn most_negative(cosines: &PairMatrix) -> (Option<f64>, Option<[usize; 2]>) {
    let mut best: Option<(f64, [usize; 2])> = None;
    for (i, row) in cosines.iter().enumerate() {
        for (j, c) in row.iter().enumerate().skip(i + 1) {
            if let Some(c) = *c {
                if best.is_none_or(|(b, _)| c < b) {
                    best = Some((c, [i, j]));
                }
            }
        }
    }
    (best.map(|b| b.0), best.map(|b| b.1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Activation, HeadConfig, LossKind, Mlp, MlpConfig, Target};

    fn mlp(hidden: Vec<usize>, tasks: usize) -> Mlp {
        Mlp::new(MlpConfig {
            input_dim: 2,
            hidden,
            activation: Activation::Tanh,
            heads: (0..tasks).map(|_| HeadConfig { out_dim: 1, loss: LossKind::Bce }).collect(),
            tied_head_init: false,
            head_init_scale: 1.0,
        })
        .unwrap()
    }

    /// A small seeded data set with task t's label = [x₁·x₂·(−1)^t > 0] (xor, flipped per task)
    /// or, for t ≥ 2, [x₁ > 0].
    fn data(tasks: usize) -> (DMatrix<f64>, Vec<Target>) {
        let pts: Vec<[f64; 2]> = (0..24).map(|i| [((i * 7) % 11) as f64 - 5.0, ((i * 5) % 13) as f64 - 6.0]).collect();
        let x = DMatrix::from_fn(pts.len(), 2, |r, c| pts[r][c] / 3.0);
        let targets = (0..tasks)
            .map(|t| {
                Target::Values(DMatrix::from_fn(pts.len(), 1, |r, _| {
                    let p = pts[r];
                    let pos = match t {
                        0 => p[0] * p[1] > 0.0,
                        1 => p[0] * p[1] < 0.0,
                        _ => p[0] > 0.0,
                    };
                    f64::from(u8::from(pos))
                }))
            })
            .collect();
        (x, targets)
    }

    /// Central finite differences of every task's loss on one neuron's parameters.
    fn fd_rows(m: &Mlp, params: &[f64], x: &DMatrix<f64>, y: &[Target], l: usize, j: usize) -> Vec<Vec<f64>> {
        let h = 1e-6;
        let idx: Vec<usize> = neuron_params(&m.layout().trunk[l], j).collect();
        let mut rows = vec![Vec::new(); m.num_tasks()];
        for &i in &idx {
            let mut p = params.to_vec();
            p[i] += h;
            let up = m.losses(&p, x, y).unwrap();
            p[i] -= 2.0 * h;
            let down = m.losses(&p, x, y).unwrap();
            for (t, row) in rows.iter_mut().enumerate() {
                row.push((up[t] - down[t]) / (2.0 * h));
            }
        }
        rows
    }

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn neuron_numbers_match_finite_differences() {
        // Central differences with h = 1e-6 on losses of size ~1 are exact to ~1e-9; the
        // cosines and norms formed from them agree to 1e-6.
        for tasks in [2, 3] {
            let m = mlp(vec![3, 2], tasks);
            let params = m.init_params(7);
            let (x, y) = data(tasks);
            let g = m.gradients(&params, &x, &y).unwrap();
            let out = neuron_conflicts(m.layout(), &g.shared_jacobian).unwrap();
            assert_eq!(out.len(), 2);
            assert_eq!(out[0].len(), 3);
            assert_eq!(out[1].len(), 2);
            for (l, layer) in out.iter().enumerate() {
                for n in layer {
                    assert_eq!((n.layer, n.index), (l, n.index));
                    let rows = fd_rows(&m, &params, &x, &y, l, n.index);
                    for t in 0..tasks {
                        let norm = dot(&rows[t], &rows[t]).sqrt();
                        assert!((n.norms[t] - norm).abs() < 1e-6 * norm.max(1.0), "norm {} vs {norm}", n.norms[t]);
                        for u in 0..tasks {
                            let c = dot(&rows[t], &rows[u]) / (norm * dot(&rows[u], &rows[u]).sqrt());
                            let got = n.cosines[t][u].unwrap();
                            assert!((got - c).abs() < 1e-6, "layer {l} neuron {} cos[{t}][{u}] {got} vs {c}", n.index);
                        }
                    }
                    let pairs: Vec<(f64, [usize; 2])> = (0..tasks)
                        .flat_map(|i| (i + 1..tasks).map(move |j| [i, j]))
                        .map(|[i, j]| (n.cosines[i][j].unwrap(), [i, j]))
                        .collect();
                    let worst =
                        pairs.iter().copied().fold((f64::INFINITY, [0, 0]), |a, b| if b.0 < a.0 { b } else { a });
                    assert_eq!(n.min_cos, Some(worst.0));
                    assert_eq!(n.min_pair, Some(worst.1));
                }
            }
        }
    }

    #[test]
    fn hand_computed_gram_and_undefined_cases() {
        // One trunk layer 1 → 2 (weights at 0, 1; biases at 2, 3) and two heads after it.
        let m = Mlp::new(MlpConfig {
            input_dim: 1,
            hidden: vec![2],
            activation: Activation::Linear,
            heads: vec![HeadConfig { out_dim: 1, loss: LossKind::Mse }; 2],
            tied_head_init: false,
            head_init_scale: 1.0,
        })
        .unwrap();
        let layout = m.layout();
        assert_eq!(neuron_params(&layout.trunk[0], 1).collect::<Vec<_>>(), vec![1, 3]);
        // Neuron 0 sees columns 0 and 2: task 0 (3, 4), task 1 (−3, −4): cos −1, norms 5, 5.
        // Neuron 1 sees columns 1 and 3: task 0 (1, 0), task 1 (0, 0): undefined cosine.
        let j = DMatrix::from_row_slice(2, 4, &[3.0, 1.0, 4.0, 0.0, -3.0, 0.0, -4.0, 0.0]);
        let out = neuron_conflicts(layout, &j).unwrap();
        let n0 = &out[0][0];
        assert_eq!(n0.norms, vec![5.0, 5.0]);
        assert_eq!(n0.min_cos, Some(-1.0));
        assert_eq!(n0.min_pair, Some([0, 1]));
        let n1 = &out[0][1];
        assert_eq!(n1.norms, vec![1.0, 0.0]);
        assert_eq!(n1.cosines[0][1], None);
        assert_eq!(n1.min_cos, None);
        assert!(neuron_conflicts(layout, &DMatrix::zeros(2, 3)).is_err());
    }

    #[test]
    fn moe_neuron_numbers_match_a_direct_computation_and_finite_differences() {
        use crate::model::moe::{Moe, MoeConfig, RouterKind};
        // Smooth (dense) routers, so central differences of the losses are exact to ~1e-9:
        // one shared softmax gate and MMoE's gate per task; pre-layer [3], 3 experts of 2. And
        // the task-gated architectures, whose shared neurons are those of `layout.experts`: CGC's
        // shared experts; PLE's shared experts of both levels and its level-1 task experts (the
        // shared gate reads them); DSelect-k's experts (its smooth-step selectors are C¹).
        for router in [
            RouterKind::Softmax,
            RouterKind::Mmoe,
            RouterKind::Cgc { task_experts: 1 },
            RouterKind::Ple { task_experts: 1 },
            RouterKind::DselectK { k: 2, gamma: 1.0 },
        ] {
            let mut config = MoeConfig::playground(2, 3, 2, router);
            config.hidden = vec![3];
            let moe = Moe::new(config).unwrap();
            let params = moe.init_params(11);
            let (x, y) = data(2);
            let g = moe.gradients(&params, &x, &y, None).unwrap();
            let jac = &g.tasks.shared_jacobian;
            let out = moe_neuron_conflicts(moe.layout(), jac).unwrap();
            let layout = moe.layout();
            let shared_experts = match router {
                RouterKind::Ple { .. } => 3 + 2 + 3,
                _ => 3,
            };
            assert_eq!(layout.experts.len(), shared_experts, "{router:?}");
            let want: Vec<usize> = std::iter::once(3).chain(std::iter::repeat_n(2, shared_experts)).collect();
            assert_eq!(out.iter().map(Vec::len).collect::<Vec<_>>(), want, "{router:?}");
            for (l, layer) in out.iter().enumerate() {
                let slice = if l == 0 { &layout.pre[0] } else { &layout.experts[l - 1].hidden };
                for n in layer {
                    assert_eq!(n.layer, l);
                    // Direct: the neuron's W row and bias picked out of the Jacobian by hand.
                    let cols: Vec<usize> = (0..slice.fan_in)
                        .map(|k| slice.weight.start + n.index * slice.fan_in + k)
                        .chain([slice.bias.start + n.index])
                        .collect();
                    let rows: Vec<Vec<f64>> = (0..2).map(|t| cols.iter().map(|&c| jac[(t, c)]).collect()).collect();
                    let norms: Vec<f64> = rows.iter().map(|r| dot(r, r).sqrt()).collect();
                    let cos = dot(&rows[0], &rows[1]) / (norms[0] * norms[1]);
                    for (got, want) in n.norms.iter().zip(&norms) {
                        assert!((got - want).abs() <= 1e-12 * want.max(1e-300));
                    }
                    assert!((n.cosines[0][1].unwrap() - cos).abs() < 1e-12, "{router:?} layer {l}");
                    assert_eq!(n.min_cos, n.cosines[0][1]);
                    // And the Jacobian itself against central differences of the task losses.
                    let h = 1e-6;
                    for (i, &c) in cols.iter().enumerate() {
                        let mut p = params.clone();
                        p[c] += h;
                        let up = moe.losses(&p, &x, &y).unwrap();
                        p[c] -= 2.0 * h;
                        let down = moe.losses(&p, &x, &y).unwrap();
                        for t in 0..2 {
                            let fd = (up[t] - down[t]) / (2.0 * h);
                            assert!(
                                (rows[t][i] - fd).abs() < 1e-7,
                                "{router:?} layer {l} param {c}: {} vs {fd}",
                                rows[t][i]
                            );
                        }
                    }
                }
            }
            assert!(moe_neuron_conflicts(layout, &DMatrix::zeros(2, layout.shared_len - 1)).is_err());
        }
    }
}
