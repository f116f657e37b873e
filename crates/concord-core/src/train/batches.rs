//! The mini-batch order of a run, in its own type so that every trainer (the CPU `Trainer`, the
//! GPU trainer in concord-gpu) walks exactly the same batches for a seed.

use crate::data::DataRng;
use rand::SeedableRng;

/// Mini-batches of `batch_size` rows out of `n_train`: a fresh shuffle of the train set every
/// epoch (stream 1 of the run's seed), dropping the last incomplete batch. With no batch size,
/// or one ≥ n_train, every step is the full train set.
#[derive(Clone, Debug)]
pub struct BatchSampler {
    batch_size: Option<usize>,
    n_train: usize,
    rng: DataRng,
    order: Vec<usize>,
    cursor: usize,
    /// Completed passes over the train set (counted when a new shuffle starts).
    epochs_started: u64,
}

impl BatchSampler {
    pub fn new(seed: u64, batch_size: Option<usize>, n_train: usize) -> Self {
        let mut rng = DataRng::seed_from_u64(seed);
        rng.set_stream(1);
        BatchSampler { batch_size, n_train, rng, order: Vec::new(), cursor: 0, epochs_started: 0 }
    }

    /// True when every step uses the whole train set.
    pub fn is_full_batch(&self) -> bool {
        self.batch_size.is_none_or(|b| b >= self.n_train)
    }

    /// Rows per step.
    pub fn rows_per_step(&self) -> usize {
        if self.is_full_batch() {
            self.n_train
        } else {
            self.batch_size.unwrap_or(self.n_train)
        }
    }

    /// The next batch's row indices (`None` = the whole train set), and whether this batch
    /// started a new epoch after an earlier one (the CPU trainer counts epochs with it).
    pub fn next_batch(&mut self) -> (Option<Vec<usize>>, bool) {
        let Some(b) = self.batch_size.filter(|&b| b < self.n_train) else {
            return (None, false);
        };
        let mut new_epoch = false;
        if self.order.is_empty() || self.cursor + b > self.order.len() {
            if !self.order.is_empty() {
                new_epoch = true;
                self.epochs_started += 1;
            }
            self.order = (0..self.n_train).collect();
            crate::data::shuffle(&mut self.rng, &mut self.order);
            self.cursor = 0;
        }
        let idx = self.order[self.cursor..self.cursor + b].to_vec();
        self.cursor += b;
        (Some(idx), new_epoch)
    }
}
