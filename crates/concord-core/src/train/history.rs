//! A run's step records with bounded memory: every record of a recent window, and the older
//! steps thinned to a stride that doubles as they fill their cap, so the number of records (and
//! their bytes) stays flat however long a run plays (issue 14 measured ≈ 0.7 GB at 20 000 MoE
//! steps when every record was kept).
//!
//! Older records are kept where `step` is a multiple of the stride (1, 2, 4, …), so the kept steps
//! stay evenly spaced, step 0 is always among them, and a thinned history that is exported and
//! imported again thins the same way. The first record and the latest one are always kept.

use super::StepRecord;
use std::ops::Deref;

/// The recent window: the latest `HISTORY_WINDOW` to 2·`HISTORY_WINDOW` records are all kept.
pub const HISTORY_WINDOW: usize = 512;
/// The most thinned older records kept.
pub const HISTORY_OLD_CAP: usize = 1024;
/// The most records a default [`History`] holds, however many steps it saw.
pub const HISTORY_CAP: usize = HISTORY_OLD_CAP + 2 * HISTORY_WINDOW;

/// Checks a saved run before a backend restores it, the same for every backend: `params.len()`
/// parameters, all finite, where the model has `model_len`; a history that starts at step 0 with
/// strictly increasing steps (thinned or recorded every k-th step is fine); at most `limit`
/// steps. Returns the step the run continues from (after the last record).
pub fn restore_point(params: &[f64], model_len: usize, history: &[StepRecord], limit: usize) -> Result<usize, String> {
    if params.len() != model_len {
        return Err(format!("the saved run has {} parameters, this model has {model_len}", params.len()));
    }
    if !params.iter().all(|v| v.is_finite()) {
        return Err("the saved parameters contain a non-finite value".into());
    }
    if let Some(r) = history.first().filter(|r| r.step != 0) {
        return Err(format!("the saved history's record 0 says step {}", r.step));
    }
    if let Some((i, r)) = history.iter().enumerate().skip(1).find(|(i, r)| r.step <= history[i - 1].step) {
        return Err(format!(
            "the saved history's record {i} says step {}, not after step {}",
            r.step,
            history[i - 1].step
        ));
    }
    // Compared before adding one: a hostile step of usize::MAX must not overflow.
    match history.last() {
        Some(r) if r.step >= limit => {
            Err(format!("the saved run has {} steps, more than this run's limit of {limit}", r.step as u128 + 1))
        }
        Some(r) => Ok(r.step + 1),
        None => Ok(0),
    }
}

/// Step records in step order, bounded (see the module docs). Reads as a slice.
#[derive(Clone, Debug, PartialEq)]
pub struct History {
    records: Vec<StepRecord>,
    /// `records[..boundary]` is the thinned older part, the rest the recent window.
    boundary: usize,
    /// Older records are kept where `step % stride == 0`.
    stride: usize,
    window: usize,
    old_cap: usize,
}

impl Default for History {
    fn default() -> Self {
        History::new()
    }
}

impl History {
    /// The default limits: at most [`HISTORY_CAP`] records.
    pub fn new() -> Self {
        History::with_limits(HISTORY_WINDOW, HISTORY_OLD_CAP)
    }

    /// Keeps the latest `window`…2·`window` records whole and at most `old_cap` older ones, so
    /// at most `old_cap + 2·window` records (window ≥ 1, old_cap ≥ 2).
    pub fn with_limits(window: usize, old_cap: usize) -> Self {
        History { records: Vec::new(), boundary: 0, stride: 1, window: window.max(1), old_cap: old_cap.max(2) }
    }

    /// The records of a saved run, thinned as if they had been pushed one by one.
    pub fn from_records(records: Vec<StepRecord>) -> Self {
        let mut h = History::new();
        for r in records {
            h.push(r);
        }
        h
    }

    /// The most records this history ever holds.
    pub fn cap(&self) -> usize {
        self.old_cap + 2 * self.window
    }

    /// Append the next step's record (steps must increase).
    pub fn push(&mut self, record: StepRecord) {
        self.records.push(record);
        if self.records.len() - self.boundary >= 2 * self.window {
            self.compact();
        }
    }

    /// Moves all but the latest `window` records into the older part, thinning it: the stride
    /// doubles until at most `old_cap` older records remain. O(len) once per `window` pushes.
    fn compact(&mut self) {
        let new_boundary = self.records.len() - self.window;
        let keep =
            |i: usize, r: &StepRecord, stride: usize| i == 0 || i >= new_boundary || r.step.is_multiple_of(stride);
        let older = |stride: usize| (0..new_boundary).filter(|&i| keep(i, &self.records[i], stride)).count();
        while older(self.stride) > self.old_cap {
            self.stride = self.stride.saturating_mul(2);
        }
        let stride = self.stride;
        let mut i = 0;
        self.records.retain(|r| {
            let k = keep(i, r, stride);
            i += 1;
            k
        });
        self.boundary = self.records.len() - self.window;
    }

    /// The stride of the older part (1 until the first thinning).
    pub fn stride(&self) -> usize {
        self.stride
    }

    pub fn as_slice(&self) -> &[StepRecord] {
        &self.records
    }

    pub fn into_vec(self) -> Vec<StepRecord> {
        self.records
    }

    pub fn clear(&mut self) {
        *self = History::with_limits(self.window, self.old_cap);
    }
}

impl Deref for History {
    type Target = [StepRecord];
    fn deref(&self) -> &[StepRecord] {
        &self.records
    }
}

impl From<Vec<StepRecord>> for History {
    fn from(records: Vec<StepRecord>) -> Self {
        History::from_records(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::MethodSpec;
    use crate::train::{preset, Backend, Preset, Trainer};

    /// The records' size, measured as their JSON (what an export writes).
    fn bytes(h: &[StepRecord]) -> usize {
        serde_json::to_vec(h).unwrap().len()
    }

    fn increasing(h: &[StepRecord]) -> bool {
        h.windows(2).all(|w| w[0].step < w[1].step)
    }

    /// A hostile saved history (a file's last step at usize::MAX) is refused, not an overflow.
    #[test]
    fn restore_point_refuses_a_step_past_the_limit_without_overflow() {
        let mut t = Trainer::new(preset("xor-conflict").unwrap()).unwrap();
        t.step().unwrap();
        let mut r = t.history()[0].clone();
        let params = t.params().to_vec();
        assert_eq!(restore_point(&params, params.len(), std::slice::from_ref(&r), 10), Ok(1));
        let first = r.clone();
        r.step = usize::MAX;
        let e = restore_point(&params, params.len(), &[first, r], usize::MAX).unwrap_err();
        assert!(e.contains("more than this run's limit"), "{e}");
    }

    /// Issue 14: a run left playing kept every record. 20 000 steps of a small MLP (per-layer
    /// metrics on) stay under the cap, keep the first and last steps and the recent window
    /// whole, and their bytes stay flat between 10k and 20k steps.
    #[test]
    fn a_long_mlp_run_keeps_a_bounded_history_with_flat_bytes() {
        let mut c = preset("xor-conflict").unwrap();
        c.steps = 20_000;
        c.batch_size = Some(8);
        c.method = MethodSpec::plain("mean");
        c.layer_metrics = true;
        let mut t = Trainer::new(c).unwrap();
        let (mut to_10k, mut to_20k) = (0, 0);
        for s in 1..=20_000 {
            t.step().unwrap();
            assert!(t.history().len() <= HISTORY_CAP, "step {s}: {} records", t.history().len());
            if s % 250 == 0 && s >= 5_000 {
                let b = bytes(t.history());
                if s <= 10_000 {
                    to_10k = to_10k.max(b);
                } else {
                    to_20k = to_20k.max(b);
                }
            }
        }
        let h = t.history();
        eprintln!("history: {} records, {to_10k} B max in 5k–10k steps, {to_20k} B max in 15k–20k", h.len());
        assert_eq!((h[0].step, h.last().unwrap().step), (0, 19_999));
        assert!(increasing(h));
        let recent: Vec<usize> = h[h.len() - HISTORY_WINDOW..].iter().map(|r| r.step).collect();
        assert_eq!(recent, (20_000 - HISTORY_WINDOW..20_000).collect::<Vec<_>>(), "the recent window is whole");
        // Flat: the most bytes held between 15k and 20k is within 10 % of those between 5k and
        // 10k (every record kept would have doubled them).
        assert!(to_20k as f64 <= 1.1 * to_10k as f64, "{to_10k} B by 10k, {to_20k} B by 20k steps");
        assert!(h.len() * 100 < 20_000 * 11, "{} records", h.len());
    }

    /// `record_every` keeps its meaning: only its multiples (and the run's last step) are
    /// recorded, thinned or not; the older part stays evenly spaced.
    #[test]
    fn record_every_is_kept_under_thinning() {
        let mut c = Preset::CagradToy.config();
        c.steps = 60_001;
        c.record_every = 7;
        let mut t = Trainer::new(c).unwrap();
        t.run_to_end(|_| {});
        assert!(t.error().is_none());
        let h = t.history();
        assert!(h.len() <= HISTORY_CAP && h.len() > HISTORY_WINDOW, "{} records", h.len());
        assert_eq!((h[0].step, h.last().unwrap().step), (0, 60_000));
        assert!(increasing(h));
        assert!(h.iter().all(|r| r.step.is_multiple_of(7) || r.step == 60_000));
        // Gaps: the older part's stride, then record_every in the recent window (the last gap is
        // the run's final step).
        let gaps: Vec<usize> = h[..h.len() - 1].windows(2).map(|w| w[1].step - w[0].step).collect();
        let mut distinct = gaps.clone();
        distinct.dedup();
        assert!(distinct.len() == 2 && distinct[1] == 7 && distinct[0].is_multiple_of(7), "gaps {distinct:?}");
    }

    /// A thinned history exports and imports: restore accepts it, continues after its last step,
    /// and the read-back hands out each record once, by step.
    #[test]
    fn a_thinned_history_restores_and_reads_back_by_step() {
        let mut c = Preset::CagradToy.config();
        c.steps = 10_000;
        c.record_every = 1;
        let mut a = Trainer::new(c.clone()).unwrap();
        let first = crate::train::now(a.read_back()).unwrap().unwrap();
        assert!(first.new_records.is_empty());
        a.submit(5_000).unwrap();
        let snap = crate::train::now(a.read_back()).unwrap().unwrap();
        assert!(snap.new_records.len() < 5_000, "thinned before the read-back");
        assert_eq!(snap.new_records.last().unwrap().step, 4_999);
        a.submit(3).unwrap();
        let snap = crate::train::now(a.read_back()).unwrap().unwrap();
        assert_eq!(snap.new_records.iter().map(|r| r.step).collect::<Vec<_>>(), [5_000, 5_001, 5_002]);

        let saved = a.record();
        assert!(saved.history.len() < saved.steps_done);
        let mut b = Trainer::new(c).unwrap();
        Backend::restore(&mut b, saved.params.clone(), saved.history.clone()).unwrap();
        assert_eq!(b.step_index(), 5_003);
        assert_eq!(b.history(), &saved.history[..], "an already thinned history is kept as is");
        assert_eq!(b.step().unwrap().unwrap().step, 5_003);
        assert_eq!(crate::train::now(b.read_back()).unwrap().unwrap().new_records.len(), 1);
    }
}
