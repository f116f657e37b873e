//! Learning-rate warm-up and cosine decay, gradient-norm clipping, and which task a one-task
//! schedule trains on a step (dynamics.md §3–4).

use super::{LrSchedule, TaskSchedule};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The lr multiplier f(s) after `s` updates (0 for the first), with warm-up `warmup` = W and
/// `total` = T steps (SPAM/GaLore `training_utils.py`, the LambdaLR convention):
/// f = s / max(1, W) for s < W; then p = (s − W) / max(1, T − W) and
/// f = r + (1 − r)·½(1 + cos πp) for the cosine (floor ratio r), 1 for the constant shape.
pub fn lr_factor(schedule: LrSchedule, warmup: usize, total: usize, s: usize) -> f64 {
    if s < warmup {
        return s as f64 / warmup.max(1) as f64;
    }
    match schedule {
        LrSchedule::Constant => 1.0,
        LrSchedule::Cosine { min_ratio, .. } => {
            let p = ((s - warmup) as f64 / total.saturating_sub(warmup).max(1) as f64).min(1.0);
            min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
        }
    }
}

/// torch's `clip_grad_norm_` adds this to the total norm.
pub const CLIP_EPS: f64 = 1e-6;

/// torch.nn.utils.clip_grad_norm_ (p = 2) over the whole update: coef = min(1, max/(‖d‖ + 1e-6)),
/// d ← coef·d. Returns ‖d‖ before clipping and whether d was scaled down. (torch multiplies
/// even when coef = 1; so do we, which changes nothing.)
pub fn clip_by_norm(d: &mut [f64], max_norm: f64) -> (f64, bool) {
    let total = d.iter().map(|v| v * v).sum::<f64>().sqrt();
    let coef = (max_norm / (total + CLIP_EPS)).min(1.0);
    if coef < 1.0 {
        d.iter_mut().for_each(|v| *v *= coef);
    }
    (total, coef < 1.0)
}

/// The one task `schedule` trains at 0-based `step` (`None` for the joint schedule).
pub fn task_for_step(schedule: &TaskSchedule, num_tasks: usize, seed: u64, step: usize) -> Option<usize> {
    let m = num_tasks.max(1);
    match schedule {
        TaskSchedule::Joint => None,
        TaskSchedule::Sequential { switch_every } => Some((step / (*switch_every).max(1)).min(m - 1)),
        TaskSchedule::Alternating { intervals } => {
            // IMP's executor: pass p = 1, 2, … visits task t when p mod interval_t = 0; the
            // visits repeat every lcm(intervals) passes.
            let iv: Vec<usize> = match intervals {
                Some(iv) => iv.iter().map(|&i| i.max(1)).collect(),
                None => vec![1; m],
            };
            let cycle_passes = iv.iter().fold(1, |l, &i| lcm(l, i));
            let iv = &iv;
            let order: Vec<usize> =
                (1..=cycle_passes).flat_map(|p| (0..m).filter(move |&t| p % iv[t.min(iv.len() - 1)] == 0)).collect();
            Some(order[step % order.len()])
        }
        TaskSchedule::Sample { weights } => {
            // A fresh stream per (seed, step): no state, so a restored run draws the same tasks.
            let mut rng =
                ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_7A5C ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let u: f64 = rng.random();
            let w: Vec<f64> = match weights {
                Some(w) => w.clone(),
                None => vec![1.0; m],
            };
            let total: f64 = w.iter().sum();
            let mut acc = 0.0;
            for (t, wt) in w.iter().enumerate() {
                acc += wt / total;
                if u < acc {
                    return Some(t);
                }
            }
            // Rounding left u above the last cumulative sum: the last task with weight.
            w.iter().rposition(|&v| v > 0.0)
        }
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn lcm(a: usize, b: usize) -> usize {
    a / gcd(a, b) * b
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn warmup_and_cosine_match_dynamics_md() {
        // dynamics.md §3: W = 10, T = 110, f at s = 0, 5, 10, 35, 60, 110.
        let s = [0, 5, 10, 35, 60, 110];
        let r0 = [0.0, 0.5, 1.0, 0.853553, 0.5, 0.0];
        let r1 = [0.0, 0.5, 1.0, 0.868198, 0.55, 0.1];
        for (k, &si) in s.iter().enumerate() {
            assert_abs_diff_eq!(
                lr_factor(LrSchedule::Cosine { min_ratio: 0.0, over: None }, 10, 110, si),
                r0[k],
                epsilon = 1e-6
            );
            assert_abs_diff_eq!(
                lr_factor(LrSchedule::Cosine { min_ratio: 0.1, over: None }, 10, 110, si),
                r1[k],
                epsilon = 1e-6
            );
        }
        // Constant after the warm-up; no warm-up: 1 from the first step.
        assert_eq!(lr_factor(LrSchedule::Constant, 10, 110, 5), 0.5);
        assert_eq!(lr_factor(LrSchedule::Constant, 10, 110, 50), 1.0);
        assert_eq!(lr_factor(LrSchedule::Constant, 0, 110, 0), 1.0);
    }

    #[test]
    fn clipping_matches_torch_clip_grad_norm() {
        // dynamics.md §3: (3, 4) and (12) with max_norm 1: total 13, coef 0.0769230710.
        let mut d = vec![3.0, 4.0, 12.0];
        let (total, clipped) = clip_by_norm(&mut d, 1.0);
        assert_abs_diff_eq!(total, 13.0, epsilon = 1e-12);
        assert!(clipped);
        assert_abs_diff_eq!(d[0], 0.2307692, epsilon = 1e-7);
        assert_abs_diff_eq!(d[1], 0.3076923, epsilon = 1e-7);
        assert_abs_diff_eq!(d[2], 0.9230769, epsilon = 1e-7);
        // max_norm 20: nothing changes.
        let mut d = vec![3.0, 4.0, 12.0];
        assert_eq!(clip_by_norm(&mut d, 20.0), (13.0, false));
        assert_eq!(d, vec![3.0, 4.0, 12.0]);
    }

    #[test]
    fn schedules_pick_tasks_as_defined() {
        let seq = TaskSchedule::Sequential { switch_every: 3 };
        let picks: Vec<_> = (0..8).map(|s| task_for_step(&seq, 2, 0, s).unwrap()).collect();
        assert_eq!(picks, vec![0, 0, 0, 1, 1, 1, 1, 1]);
        assert_eq!(seq.switches(2, 8), vec![3]);
        assert_eq!(seq.switches(3, 8), vec![3, 6]);
        let rr = TaskSchedule::Alternating { intervals: None };
        let picks: Vec<_> = (0..6).map(|s| task_for_step(&rr, 3, 0, s).unwrap()).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
        // IMP intervals (1, 2): pass 1 visits task 0, pass 2 visits 0 and 1, then again.
        let weighted = TaskSchedule::Alternating { intervals: Some(vec![1, 2]) };
        let picks: Vec<_> = (0..6).map(|s| task_for_step(&weighted, 2, 0, s).unwrap()).collect();
        assert_eq!(picks, vec![0, 0, 1, 0, 0, 1]);
        assert_eq!(task_for_step(&TaskSchedule::Joint, 2, 0, 5), None);
    }

    #[test]
    fn sampling_is_seeded_and_follows_the_weights() {
        let uniform = TaskSchedule::Sample { weights: None };
        let a: Vec<_> = (0..4000).map(|s| task_for_step(&uniform, 2, 7, s).unwrap()).collect();
        let b: Vec<_> = (0..4000).map(|s| task_for_step(&uniform, 2, 7, s).unwrap()).collect();
        assert_eq!(a, b, "the same seed draws the same tasks");
        let share = a.iter().filter(|&&t| t == 1).count() as f64 / 4000.0;
        // Binomial(4000, ½): sd 0.0079; 5 sd.
        assert!((share - 0.5).abs() < 0.04, "share of task 1 {share}");
        let skewed = TaskSchedule::Sample { weights: Some(vec![3.0, 1.0, 0.0]) };
        let picks: Vec<_> = (0..4000).map(|s| task_for_step(&skewed, 3, 7, s).unwrap()).collect();
        assert!(!picks.contains(&2), "a zero weight is never drawn");
        let share = picks.iter().filter(|&&t| t == 0).count() as f64 / 4000.0;
        assert!((share - 0.75).abs() < 0.035, "share of task 0 {share}");
    }

    #[test]
    fn alternating_sgd_settles_into_the_two_cycle() {
        // dynamics.md §4: L₁ = ½x², L₂ = ½(x − 1)², SGD η = 0.5, cyclic: x alternates 1/3 (after
        // task 1) and 2/3 (after task 2).
        let rr = TaskSchedule::Alternating { intervals: None };
        let mut x: f64 = 5.0;
        let mut after = [0.0; 2];
        for s in 0..200 {
            let t = task_for_step(&rr, 2, 0, s).unwrap();
            let g = if t == 0 { x } else { x - 1.0 };
            x -= 0.5 * g;
            after[t] = x;
        }
        assert_abs_diff_eq!(after[0], 1.0 / 3.0, epsilon = 1e-12);
        assert_abs_diff_eq!(after[1], 2.0 / 3.0, epsilon = 1e-12);
    }
}
