//! The host half of the GPU trainer's training dynamics (concord-core `dynamics`, `optim::spam`):
//! per step, the constants `optim_prepare` (mlp_optim.wgsl) puts into the step state — the
//! scheduled learning rate lr·f(s), the clip bound, SPAM's step size, reset and clip flags, the
//! spike score's bias correction — worked out in f64 exactly as the CPU `Optimizer` counts them,
//! and what a recorded step's `DynamicsRecord` takes from the host rather than the GPU (lr,
//! reset).
//!
//! The counters are this trainer's own, as the CPU `Optimizer`'s: t counts the optimizer steps
//! this trainer submitted (a restored run continues its step index, not t), and `accumulated`
//! the updates v holds since it was last zero (SPAM's reset zeroes it).

use concord_core::dynamics::lr_factor;
// CLIP_AFTER: no spike clip, and no spike score, in the first 20 updates after a (re)start.
use concord_core::optim::{spam_warmup_scale, CLIP_AFTER};
use concord_core::train::{TrainConfig, TrainOptimizer};

use crate::kernels::mlp::PrepParams;

/// Whether a run records a `DynamicsRecord` (the CPU trainer's `records_dynamics`): it then runs
/// `optim_prepare` every step.
pub(crate) fn records_dynamics(config: &TrainConfig) -> bool {
    !config.dynamics.is_default() || matches!(config.optimizer, TrainOptimizer::Spam(_))
}

/// What the host knows of a step's dynamics record before the GPU has run it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct HostDynamics {
    /// lr·f(s), in f64 as the CPU records it.
    pub lr: f64,
    /// SPAM reset the moments on this step.
    pub reset: bool,
}

/// The optimizer's step count and v's update count (see the module doc).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct DynamicsClock {
    t: u64,
    accumulated: u64,
}

impl DynamicsClock {
    /// The next optimizer step's constants at run step `step` (0-based) of a run with `m` tasks
    /// over `len` parameters; advances the counters.
    pub fn next(&mut self, config: &TrainConfig, step: usize, m: usize, len: usize) -> (PrepParams, HostDynamics) {
        let dy = &config.dynamics;
        let factor = lr_factor(dy.lr_schedule, dy.warmup, dy.schedule_steps(config.steps), step);
        let lr_now = config.optimizer.lr() * factor;
        self.t += 1;
        let t = self.t;
        let mut prep = PrepParams {
            tasks: m as u32,
            len: len as u32,
            clip: u32::from(dy.clip_norm.is_some()),
            spam_flags: 0,
            clip_norm: dy.clip_norm.unwrap_or(0.0) as f32,
            lr_now: lr_now as f32,
            spam_step: 0.0,
            threshold: 0.0,
            spike_correction: 0.0,
            _pad: [0.0; 3],
        };
        let mut reset = false;
        let beta2 = match config.optimizer {
            TrainOptimizer::Spam(p) => {
                // optim/spam.rs `step`, in its order.
                let since_reset = if p.reset_every == 0 { t } else { t % p.reset_every };
                reset = p.reset_every > 0 && since_reset == 0;
                let clip = t >= CLIP_AFTER && since_reset >= CLIP_AFTER;
                let s = if p.reset_every == 0 || t < p.reset_every {
                    1.0
                } else {
                    spam_warmup_scale(since_reset, p.warmup)
                };
                let ti = t.min(i32::MAX as u64) as i32;
                let alpha = lr_now * (1.0 - p.beta2.powi(ti)).sqrt() / (1.0 - p.beta1.powi(ti));
                prep.spam_flags = u32::from(reset) | (u32::from(clip) << 1);
                prep.spam_step = (s * alpha) as f32;
                prep.threshold = p.threshold as f32;
                if reset {
                    self.accumulated = 0;
                }
                Some(p.beta2)
            }
            TrainOptimizer::Adam { beta2, .. } | TrainOptimizer::AdamW { beta2, .. } if dy.spikes => Some(beta2),
            _ => None,
        };
        if let Some(b2) = beta2 {
            // optim.rs `spike_score`: v̂ = v/(1 − β₂ᶜ), none in the first 20 updates of v.
            if self.accumulated >= CLIP_AFTER {
                prep.spike_correction = (1.0 - b2.powi(self.accumulated.min(i32::MAX as u64) as i32)) as f32;
            }
        }
        self.accumulated += 1;
        (prep, HostDynamics { lr: lr_now, reset })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_core::train::preset;

    #[test]
    fn spam_resets_clips_and_scores_on_the_cpu_optimizers_steps() {
        let mut c = preset("xor-conflict").unwrap();
        c.optimizer = TrainOptimizer::Spam(concord_core::optim::SpamParams {
            reset_every: 30,
            ..concord_core::optim::SpamParams::new(0.01)
        });
        let mut clock = DynamicsClock::default();
        let steps: Vec<_> = (0..70).map(|s| clock.next(&c, s, 2, 10)).collect();
        // t = 30 and 60 reset (run steps 29, 59); the clip is on for t = 20 … 29 and 50 … 59
        // (20 steps after the reset at 30).
        let resets: Vec<usize> = (0..70).filter(|&s| steps[s].1.reset).collect();
        assert_eq!(resets, vec![29, 59]);
        let clips: Vec<usize> = (0..70).filter(|&s| steps[s].0.spam_flags & 2 != 0).collect();
        assert_eq!(clips, (19..29).chain(49..59).collect::<Vec<_>>());
        // The score needs 20 updates in v: t = 21 … 29, then t = 50 … 59 after the reset.
        let scored: Vec<usize> = (0..70).filter(|&s| steps[s].0.spike_correction > 0.0).collect();
        assert_eq!(scored, (20..29).chain(49..59).collect::<Vec<_>>());
        // The warm-up after the reset at t = 30: s(0) = 0.01 of α.
        let t = 30i32;
        let alpha = 0.01 * (1.0 - 0.999f64.powi(t)).sqrt() / (1.0 - 0.9f64.powi(t));
        assert!(((steps[29].0.spam_step as f64) / (0.01 * alpha) - 1.0).abs() < 1e-6);
    }
}
