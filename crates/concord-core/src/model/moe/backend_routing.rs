//! A backend's routing of a batch back on the host, for the routing statistics: the GPU trainer
//! reads back each gate group's logits and what its routing kernels chose, and the statistics
//! are then the CPU pass's own code (`RoutingStats::from_routings`, `aux_losses`).

use super::aux::aux_losses;
use super::model::Moe;
use super::routing::Routing;
use super::selection;
use super::stats::RoutingStats;
use nalgebra::DMatrix;

/// What a backend's routing kernels chose for one gate group of a selecting router.
#[derive(Clone, Debug, PartialEq)]
pub struct BackendChoice {
    /// T × E combine weights, as the backend mixed the experts with them.
    pub combine: DMatrix<f64>,
    /// T × E: 1 where the backend sent token t to expert e.
    pub dispatch: DMatrix<f64>,
    /// Token→expert assignments the backend dropped for capacity.
    pub dropped: usize,
}

impl Moe {
    /// Gate group `group`'s routing as a backend computed it: its clean gate `logits` (T × E),
    /// noisy top-k's raw noise logits with the step's `noise_seed` (ε is the host's draw,
    /// [`Moe::routing_noise`], as on the CPU), and the backend's own `choice` (`None` for the
    /// dense routers, whose combine weights are the probabilities). The probabilities, capacity
    /// and noise cache come from the CPU router's code on those logits; the combine weights,
    /// dispatch and drop count are the backend's, so a near tie its f32 broke the other way
    /// shows as it was trained.
    pub fn routing_from_backend(
        &self,
        group: usize,
        logits: DMatrix<f64>,
        raw_noise: Option<DMatrix<f64>>,
        noise_seed: Option<u64>,
        choice: Option<BackendChoice>,
    ) -> Routing {
        let eps = noise_seed.filter(|_| raw_noise.is_some()).map(|s| self.routing_noise(s, group, logits.nrows()));
        let mut routing = selection::route(&self.config().router, logits, raw_noise, eps);
        if let Some(c) = choice {
            routing.combine = c.combine;
            routing.dispatch = c.dispatch;
            routing.dropped = c.dropped;
        }
        routing
    }

    /// The routing statistics of a batch from its gate groups' routings (one per group), as
    /// [`Moe::gradients`] reports them: per task, P(t,e) and the aux-loss values.
    pub fn routing_stats(&self, routings: &[Routing]) -> RoutingStats {
        let group_of: Vec<usize> = (0..self.num_tasks()).map(|t| self.group_of(t)).collect();
        let (aux, _) = aux_losses(&self.config().router, &self.config().aux, routings, &group_of);
        RoutingStats::from_routings(routings, &group_of, aux)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::moe::{linear, AuxWeights, MoeConfig, RouterKind, TaskGate};
    use crate::model::Target;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A playground MoE (no pre-layers: the gate reads x) with every aux weight on, random
    /// parameters (noisy gates start at 0, which would make every routing a tie) and a batch.
    fn setup(router: RouterKind) -> (Moe, Vec<f64>, DMatrix<f64>, Vec<Target>) {
        let mut cfg = MoeConfig::playground(2, 3, 3, router);
        cfg.aux =
            AuxWeights { load_balance: 0.3, z_loss: 0.2, importance: 0.5, load: 0.7, mutual_info: 0.4, entropy: 0.0 };
        let moe = Moe::new(cfg).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let params: Vec<f64> = (0..moe.layout().total_len).map(|_| rng.random_range(-1.0..1.0)).collect();
        let x = DMatrix::from_fn(12, 2, |_, _| rng.random_range(-2.0..2.0));
        let y = (0..2)
            .map(|_| Target::Values(DMatrix::from_fn(12, 1, |_, _| f64::from(u8::from(rng.random_bool(0.5))))))
            .collect();
        (moe, params, x, y)
    }

    /// Each gate group's routing as `Moe::routings` (noise-free) gives it, per task.
    fn group_routings(moe: &Moe, params: &[f64], x: &DMatrix<f64>) -> Vec<Routing> {
        let per_task = moe.routings(params, x).unwrap();
        let groups = (0..moe.num_tasks()).map(|t| moe.group_of(t)).max().unwrap() + 1;
        (0..groups).map(|g| per_task[(0..moe.num_tasks()).find(|&t| moe.group_of(t) == g).unwrap()].clone()).collect()
    }

    #[test]
    fn the_logits_and_the_same_choice_give_the_cpu_pass_statistics_bit_for_bit() {
        for router in [
            RouterKind::Softmax,
            RouterKind::Mmoe,
            RouterKind::Switch { capacity_factor: 1.0 },
            RouterKind::Top2 { capacity_factor: 1.0 },
            RouterKind::ExpertChoice { capacity_factor: 1.0 },
            RouterKind::Task { k: 2, gate: TaskGate::PerTask },
            RouterKind::Task { k: 1, gate: TaskGate::Embedding },
        ] {
            let (moe, params, x, y) = setup(router);
            let want = moe.gradients(&params, &x, &y, None).unwrap().stats;
            let rebuilt: Vec<Routing> = group_routings(&moe, &params, &x)
                .into_iter()
                .enumerate()
                .map(|(g, r)| {
                    let choice =
                        BackendChoice { combine: r.combine.clone(), dispatch: r.dispatch.clone(), dropped: r.dropped };
                    moe.routing_from_backend(g, r.logits.clone(), None, None, Some(choice))
                })
                .collect();
            assert_eq!(moe.routing_stats(&rebuilt), want, "{}", router.name());
        }
    }

    #[test]
    fn noisy_top_k_draws_the_steps_noise_on_the_host() {
        let (moe, params, x, y) = setup(RouterKind::NoisyTopK { k: 2 });
        let seed = 5;
        let want = moe.gradients(&params, &x, &y, Some(seed)).unwrap().stats;
        let gate = &moe.layout().gates[0];
        let logits = linear::forward(&params, &gate.weight, &x);
        let raw = linear::forward(&params, gate.noise.as_ref().unwrap(), &x);
        let r = moe.routing_from_backend(0, logits, Some(raw), Some(seed), None);
        assert!(r.noise.is_some());
        let stats = moe.routing_stats(std::slice::from_ref(&r));
        assert_eq!(stats, want);
        // Without the step's noise the routing (and so the Φ-smoothed load) would differ.
        assert_ne!(stats.aux.load_cv2, moe.routing_stats(&group_routings(&moe, &params, &x)).aux.load_cv2);
    }

    #[test]
    fn the_backends_choice_is_what_the_statistics_count() {
        let (moe, params, x, _) = setup(RouterKind::Switch { capacity_factor: 1.0 });
        let r = group_routings(&moe, &params, &x).remove(0);
        // Every token to expert 2, four of them dropped: the host would not have chosen this.
        let (t, e) = r.logits.shape();
        let dispatch = DMatrix::from_fn(t, e, |row, c| f64::from(u8::from(c == 2 && row < t - 4)));
        let combine = dispatch.clone() * 0.5;
        let choice = BackendChoice { combine, dispatch, dropped: 4 };
        let rebuilt = moe.routing_from_backend(0, r.logits.clone(), None, None, Some(choice));
        let stats = moe.routing_stats(&[rebuilt]);
        assert_eq!(stats.tasks[0].load, vec![0.0, 0.0, (t - 4) as f64 / t as f64]);
        assert_eq!((stats.tasks[0].dropped, stats.tasks[0].unrouted), (4, 4));
        // The probabilities are still the logits' softmax.
        assert_eq!(stats.tasks[0].router_prob, moe.routing_stats(&[r]).tasks[0].router_prob);
    }
}
