//! Cutting a batch by its samples' conflict, with ties shared fairly: the sample-weighting
//! stages' cuts and `train::SampleConflict`'s opposing share use the same two pieces.

use crate::train::COS_TIE;

/// A sample's conflict rounded to [`COS_TIE`]: its smallest pairwise task-gradient cosine
/// (`None`, a zero task gradient: no conflict, ranked after every cosine).
pub(crate) fn conflict_key(min_cos: Option<f64>) -> i64 {
    min_cos.map_or(i64::MAX, |c| (c / COS_TIE).round() as i64)
}

/// How much of each sample is taken when the `take` samples with the smallest keys are taken:
/// 1 or 0, except for a tie at the cut, where q tied samples share the r slots left (r/q
/// each: the expected share under a random tie-break). Without that, round-off would choose
/// among samples whose tasks are exactly opposed (tied heads at step 0 give cos = −1 at every
/// point), and with it the result does not depend on the batch's order. Σ = min(take, len).
pub fn take_first(keys: &[i64], take: usize) -> Vec<f64> {
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|&i| keys[i]);
    let mut out = vec![0.0; keys.len()];
    let mut pos = 0;
    while pos < order.len() && pos < take {
        let key = keys[order[pos]];
        let end = pos + order[pos..].iter().take_while(|&&i| keys[i] == key).count();
        let share = ((take - pos) as f64 / (end - pos) as f64).min(1.0);
        for &i in &order[pos..end] {
            out[i] = share;
        }
        pos = end;
    }
    out
}
