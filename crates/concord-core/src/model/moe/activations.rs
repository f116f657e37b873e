//! What the network view draws of an MoE run: every shared neuron's activation (the pre-layers'
//! neurons, then each expert's hidden neurons) and each task's mean gate weight per expert.
//!
//! The neuron order is the one `metrics::moe_neuron_conflicts` numbers its "layers" by: the
//! pre-layers 0..L, then expert e as layer L + e.

use super::layout::ExpertSlice;
use super::linear;
use super::model::Moe;
use nalgebra::DMatrix;
use serde::Serialize;

/// One expert of `Moe::hidden_activations` (after the pre-layers): its level (0 for the
/// routers' single block; PLE has 2), whose experts it is among (`None`: the shared experts;
/// `Some(t)`: task t's, CGC/PLE), its index among them, and whether its parameters are shared
/// (in the Jacobian's columns, so `moe_neuron_conflicts` has its neurons) or task t's own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExpertGroup {
    pub level: usize,
    pub task: Option<usize>,
    pub index: usize,
    pub shared: bool,
    /// Where its two layers live in the flat parameter vector.
    #[serde(skip)]
    pub expert: ExpertSlice,
}

impl Moe {
    /// The experts of `hidden_activations`, in its order: the routers' experts, or a task-gated
    /// architecture's shared-parameter experts (`layout.experts`, the conflict layers) and then
    /// its task-owned experts.
    pub fn expert_groups(&self) -> Vec<ExpertGroup> {
        match self.arch() {
            Some(a) => a.expert_groups(),
            None => (self.layout().experts.iter().enumerate())
                .map(|(e, x)| ExpertGroup { level: 0, task: None, index: e, shared: true, expert: x.clone() })
                .collect(),
        }
    }

    /// φ(W·a + b) of every pre-layer and of every expert's hidden layer at each row of x: one
    /// B × width matrix per pre-layer, then one B × expert_hidden matrix per expert
    /// (`expert_groups` says which: a task-gated architecture's experts each read their own
    /// stream, and its task-owned experts come after the shared ones). An expert's
    /// hidden neurons are computed for every row, routed to it or not (the map of what the
    /// neuron would say there; the gate decides whether it is heard).
    pub fn hidden_activations(&self, params: &[f64], x: &DMatrix<f64>) -> Result<Vec<DMatrix<f64>>, String> {
        self.check_plain_inputs(params, x)?;
        let act = self.config().activation;
        let mut a = x.clone();
        let mut out = Vec::new();
        for s in &self.layout().pre {
            a = linear::forward(params, s, &a).map(|v| act.apply(v));
            out.push(a.clone());
        }
        if let Some(arch) = self.arch() {
            out.extend(crate::pause::finish(arch.expert_activations(params, x)));
            return Ok(out);
        }
        for e in &self.layout().experts {
            out.push(linear::forward(params, &e.hidden, &a).map(|v| act.apply(v)));
        }
        Ok(out)
    }

    /// `[task][expert]`: the mean over the rows of x of task t's combine weight on expert e
    /// (noise-free routing; 0 where the expert did not take a row).
    pub fn mean_gate_weights(&self, params: &[f64], x: &DMatrix<f64>) -> Result<Vec<Vec<f64>>, String> {
        let rows = x.nrows().max(1) as f64;
        Ok(self
            .routings(params, x)?
            .iter()
            .map(|r| (0..r.combine.ncols()).map(|e| r.combine.column(e).sum() / rows).collect())
            .collect())
    }

    fn check_plain_inputs(&self, params: &[f64], x: &DMatrix<f64>) -> Result<(), String> {
        if params.len() != self.layout().total_len {
            return Err(format!("expected {} parameters, got {}", self.layout().total_len, params.len()));
        }
        if x.ncols() != self.config().input_dim {
            return Err(format!("inputs have {} columns, the model expects {}", x.ncols(), self.config().input_dim));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{MoeConfig, RouterKind};
    use super::*;
    use crate::model::Activation;

    #[test]
    fn activations_match_a_hand_written_forward_pass_and_gates_average_the_routing() {
        let mut config = MoeConfig::playground(2, 3, 2, RouterKind::Mmoe);
        config.hidden = vec![3];
        config.activation = Activation::Tanh;
        let moe = Moe::new(config).unwrap();
        let params = moe.init_params(5);
        let x = DMatrix::from_row_slice(4, 2, &[0.5, -1.0, 2.0, 0.25, -3.0, 1.5, 0.0, 0.0]);
        let acts = moe.hidden_activations(&params, &x).unwrap();
        assert_eq!(acts.iter().map(|m| m.ncols()).collect::<Vec<_>>(), vec![3, 2, 2, 2]);
        // By hand: pre-layer neuron j = tanh(Σ_k W[j,k] x_k + b_j); expert e neuron j reads a.
        let layout = moe.layout();
        let neuron = |s: &crate::model::LayerSlice, j: usize, input: &[f64]| {
            let mut z = params[s.bias.start + j];
            for (k, v) in input.iter().enumerate() {
                z += params[s.weight.start + j * s.fan_in + k] * v;
            }
            z.tanh()
        };
        for r in 0..4 {
            let input = [x[(r, 0)], x[(r, 1)]];
            let a: Vec<f64> = (0..3).map(|j| neuron(&layout.pre[0], j, &input)).collect();
            for (j, v) in a.iter().enumerate() {
                assert!((acts[0][(r, j)] - v).abs() < 1e-14);
            }
            for (e, ex) in layout.experts.iter().enumerate() {
                for j in 0..2 {
                    assert!((acts[1 + e][(r, j)] - neuron(&ex.hidden, j, &a)).abs() < 1e-14);
                }
            }
        }
        let gates = moe.mean_gate_weights(&params, &x).unwrap();
        let routings = moe.routings(&params, &x).unwrap();
        for t in 0..2 {
            // MMoE: one dense softmax per task, so each task's means sum to 1.
            assert!((gates[t].iter().sum::<f64>() - 1.0).abs() < 1e-12);
            for (e, g) in gates[t].iter().enumerate() {
                let mean = (0..4).map(|r| routings[t].combine[(r, e)]).sum::<f64>() / 4.0;
                assert!((g - mean).abs() < 1e-15);
            }
        }
        assert!(moe.hidden_activations(&params[1..], &x).is_err());
        assert!(moe.expert_groups().iter().all(|g| g.shared && g.level == 0 && g.task.is_none()));
        assert!(moe.hidden_activations(&params, &DMatrix::zeros(2, 3)).is_err());
    }

    /// CGC and PLE: every expert's activations on the stream it reads. Level-1 experts read a;
    /// PLE's level-2 shared experts read h_s¹ = a + Σ_c p_c·e_c(a) with p = softmax of the
    /// level-1 shared gate over [shared; task 1's; task 2's] — recomputed here by hand.
    #[test]
    fn task_gated_experts_read_their_own_streams() {
        let direct = |params: &[f64], s: &crate::model::LayerSlice, input: &DMatrix<f64>, tanh: bool| {
            let z = linear::forward(params, s, input);
            if tanh {
                z.map(f64::tanh)
            } else {
                z
            }
        };
        for router in [RouterKind::Cgc { task_experts: 1 }, RouterKind::Ple { task_experts: 1 }] {
            let mut config = MoeConfig::playground(2, 2, 2, router);
            config.hidden = vec![3];
            config.activation = Activation::Tanh;
            let moe = Moe::new(config).unwrap();
            let params = moe.init_params(7);
            let x = DMatrix::from_row_slice(3, 2, &[0.5, -1.0, 2.0, 0.25, -3.0, 1.5]);
            let acts = moe.hidden_activations(&params, &x).unwrap();
            let groups = moe.expert_groups();
            assert_eq!(acts.len(), 1 + groups.len());
            let a = &acts[0];
            let shared: Vec<_> = groups.iter().filter(|g| g.shared).collect();
            // The shared-parameter experts are `layout.experts`, in order, then the owned ones.
            assert_eq!(shared.iter().map(|g| g.expert.clone()).collect::<Vec<_>>(), moe.layout().experts);
            assert!(groups.iter().skip(shared.len()).all(|g| !g.shared && g.task.is_some()));
            let is_ple = matches!(router, RouterKind::Ple { .. });
            assert_eq!(groups.len(), if is_ple { 8 } else { 4 });
            for (g, m) in groups.iter().zip(&acts[1..]) {
                let want = if g.level == 0 {
                    direct(&params, &g.expert.hidden, a, true)
                } else if g.task.is_none() {
                    // PLE level 2, a shared expert: reads h_s¹.
                    let gate = &moe.layout().gates[0].weight;
                    let p = super::super::routing::softmax_rows(&direct(&params, gate, a, false));
                    let mut h = a.clone();
                    for (c, e) in groups.iter().filter(|e| e.level == 0).enumerate() {
                        let u = direct(&params, &e.expert.hidden, a, true);
                        let y = direct(&params, &e.expert.out, &u, false);
                        for r in 0..h.nrows() {
                            for col in 0..h.ncols() {
                                h[(r, col)] += p[(r, c)] * y[(r, col)];
                            }
                        }
                    }
                    direct(&params, &g.expert.hidden, &h, true)
                } else {
                    continue;
                };
                assert!((m - &want).abs().max() < 1e-12, "{router:?} {g:?}");
            }
        }
    }
}
