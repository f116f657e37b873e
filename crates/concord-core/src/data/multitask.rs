//! Several tasks labelling the SAME 2-D inputs, a conflict knob, and the train/test split.
//!
//! Pipeline (one ChaCha8 stream seeded by `seed`): place the points → label them per task →
//! apply the conflict knob → Fisher–Yates shuffle (points and all labels together) → split at
//! ⌊len·train_ratio⌋ (train first), as the Playground does with one task.

use super::playground::{Dataset, DOMAIN};
use super::sampling::{shuffle, uniform, DataRng};
use crate::model::{LossKind, Target};
use nalgebra::DMatrix;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

pub const MAX_DATA_TASKS: usize = 8;
pub const MAX_POINTS: usize = 100_000;
/// The most classes a `LabelKind::Classes` task has (class labels are 0–255).
pub const MAX_CLASSES: usize = 256;

/// Where the shared input points come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "kebab-case")]
pub enum InputSource {
    /// Task `task`'s own Playground generator places the points and keeps its native labels
    /// (so that task is exactly the Playground dataset); the others label them by rule.
    Native { task: usize },
    /// n points uniform on [−6, 6]²; every task labels them by rule.
    Uniform,
    /// Each task's native generator places ⌊n/m⌋ (+1 for the first n mod m) points; all
    /// points are then labelled by every task's rule (so a spiral task sees its own arms plus
    /// everyone else's points, labelled by nearest arm).
    Union,
}

impl Default for InputSource {
    fn default() -> Self {
        InputSource::Native { task: 0 }
    }
}

/// The conflict knob: κ ∈ [−1, 1] on task `task`. The task's label is negated (±1 flipped,
/// regression values negated) on the angular sector of the plane
/// { p : frac((atan2(p₂, p₁) + π)/2π) < φ }, φ = (1 − κ)/2, i.e. a wedge that opens
/// counter-clockwise from the negative x₁-axis. κ = 1 changes nothing; κ = −1 negates every
/// label; the flipped sets are nested as κ decreases, so the agreement with an identical task
/// falls monotonically (fraction of agreeing labels = (1 + κ)/2 for rotation-invariant inputs).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    pub task: usize,
    pub kappa: f64,
}

impl Conflict {
    /// Whether the knob flips the label at p.
    pub fn flips(&self, p: [f64; 2]) -> bool {
        let phi = (1.0 - self.kappa) / 2.0;
        let a = ((p[1].atan2(p[0]) + PI) / (2.0 * PI)).fract(); // in [0, 1)
        a < phi
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskSetConfig {
    /// One Playground dataset per task (1–8).
    pub tasks: Vec<Dataset>,
    /// Number of points (native generators may round halves up, as in the Playground).
    pub n: usize,
    /// ν ∈ [0, 0.5] (the Playground's slider / 100).
    pub noise: f64,
    /// Fraction of points in the training set (the Playground's percTrainData / 100).
    pub train_ratio: f64,
    pub seed: u64,
    #[serde(default)]
    pub inputs: InputSource,
    #[serde(default)]
    pub conflict: Option<Conflict>,
}

impl TaskSetConfig {
    /// Playground defaults: N of the first task, no noise, 50 % train, native inputs, no knob.
    pub fn new(tasks: Vec<Dataset>, seed: u64) -> Self {
        let n = tasks.first().map_or(500, |d| d.default_n());
        TaskSetConfig { tasks, n, noise: 0.0, train_ratio: 0.5, seed, inputs: InputSource::default(), conflict: None }
    }

    pub fn validate(&self) -> Result<(), String> {
        let m = self.tasks.len();
        if !(1..=MAX_DATA_TASKS).contains(&m) {
            return Err(format!("need 1–{MAX_DATA_TASKS} tasks, got {m}"));
        }
        if !(2..=MAX_POINTS).contains(&self.n) {
            return Err(format!("n must be 2–{MAX_POINTS}, got {}", self.n));
        }
        if !(0.0..=0.5).contains(&self.noise) {
            return Err(format!("noise must lie in [0, 0.5], got {}", self.noise));
        }
        if !(self.train_ratio > 0.0 && self.train_ratio < 1.0) {
            return Err(format!("train_ratio must lie strictly between 0 and 1, got {}", self.train_ratio));
        }
        let n_train = (self.n as f64 * self.train_ratio).floor() as usize;
        if n_train == 0 || n_train >= self.n {
            return Err(format!(
                "train_ratio {} leaves an empty train or test set with n = {}",
                self.train_ratio, self.n
            ));
        }
        if let InputSource::Native { task } = self.inputs {
            if task >= m {
                return Err(format!("inputs come from task {task}, but there are {m} tasks"));
            }
        }
        if let Some(c) = self.conflict {
            if c.task >= m {
                return Err(format!("the conflict knob targets task {}, but there are {m} tasks", c.task));
            }
            if !(-1.0..=1.0).contains(&c.kappa) {
                return Err(format!("the conflict κ must lie in [−1, 1], got {}", c.kappa));
            }
        }
        Ok(())
    }

    /// Build the data set (validates first).
    pub fn generate(&self) -> Result<MultiTaskData, String> {
        self.validate()?;
        let mut rng = DataRng::seed_from_u64(self.seed);
        let m = self.tasks.len();
        let mut labels: Vec<Option<Vec<f64>>> = vec![None; m];
        let points: Vec<[f64; 2]> = match self.inputs {
            InputSource::Native { task } => {
                let ex = self.tasks[task].generate(self.n, self.noise, &mut rng);
                labels[task] = Some(ex.iter().map(|e| e.label).collect());
                ex.iter().map(|e| e.p).collect()
            }
            InputSource::Uniform => {
                (0..self.n).map(|_| [uniform(&mut rng, -DOMAIN, DOMAIN), uniform(&mut rng, -DOMAIN, DOMAIN)]).collect()
            }
            InputSource::Union => {
                let mut pts = Vec::with_capacity(self.n + m);
                for (t, d) in self.tasks.iter().enumerate() {
                    let share = self.n / m + usize::from(t < self.n % m);
                    if share > 0 {
                        pts.extend(d.generate(share, self.noise, &mut rng).iter().map(|e| e.p));
                    }
                }
                pts
            }
        };
        let labels: Vec<Vec<f64>> = labels
            .into_iter()
            .zip(&self.tasks)
            .map(|(native, d)| {
                native.unwrap_or_else(|| points.iter().map(|&p| d.label_at(p, self.noise, &mut rng)).collect())
            })
            .collect();
        let mut data = MultiTaskData {
            task_names: self.tasks.iter().map(|d| d.name().to_owned()).collect(),
            kinds: self
                .tasks
                .iter()
                .map(|d| if d.is_classification() { LabelKind::Binary } else { LabelKind::Regression })
                .collect(),
            points,
            labels,
            n_train: 0,
        };
        if let Some(c) = self.conflict {
            data.apply_conflict(c);
        }
        data.shuffle_and_split(&mut rng, self.train_ratio);
        Ok(data)
    }
}

/// What a task's labels mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LabelKind {
    /// ±1.
    Binary,
    /// Integer classes 0..k stored as f64.
    Classes { k: usize },
    /// Real values.
    Regression,
}

/// Shared 2-D inputs with one label column per task; points `0..n_train` are the train set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MultiTaskData {
    pub task_names: Vec<String>,
    pub kinds: Vec<LabelKind>,
    pub points: Vec<[f64; 2]>,
    /// labels[t][i]: task t's label of point i.
    pub labels: Vec<Vec<f64>>,
    pub n_train: usize,
}

impl MultiTaskData {
    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    pub fn num_tasks(&self) -> usize {
        self.labels.len()
    }

    /// Checks what every user of the data indexes by: 1–`MAX_DATA_TASKS` tasks, one name, kind
    /// and label column per task, 1–`MAX_POINTS` finite points, one finite label per point in
    /// every column that fits its kind (±1; whole classes 0..k with 2 ≤ k ≤ `MAX_CLASSES`; any
    /// finite value), and `n_train` ≤ the number of points. `parse_csv` and
    /// `TaskSetConfig::generate` produce such data; data from elsewhere (a run file) is checked
    /// with this before it is split or trained on, so a short column is an error, not a panic.
    pub fn validate(&self) -> Result<(), String> {
        let m = self.labels.len();
        if !(1..=MAX_DATA_TASKS).contains(&m) {
            return Err(format!("the data needs 1–{MAX_DATA_TASKS} label columns, got {m}"));
        }
        if self.kinds.len() != m || self.task_names.len() != m {
            return Err(format!(
                "the data has {m} label columns but {} label kinds and {} task names",
                self.kinds.len(),
                self.task_names.len()
            ));
        }
        let n = self.points.len();
        if !(1..=MAX_POINTS).contains(&n) {
            return Err(format!("the data needs 1–{MAX_POINTS} points, got {n}"));
        }
        if let Some(i) = self.points.iter().position(|p| !(p[0].is_finite() && p[1].is_finite())) {
            return Err(format!("point {i} is not finite ({:?})", self.points[i]));
        }
        for (t, ((col, kind), name)) in self.labels.iter().zip(&self.kinds).zip(&self.task_names).enumerate() {
            if col.len() != n {
                return Err(format!("task {t} ('{name}') has {} labels for {n} points", col.len()));
            }
            let fits = |v: f64| match *kind {
                LabelKind::Binary => v == 1.0 || v == -1.0,
                LabelKind::Classes { k } => v >= 0.0 && v.fract() == 0.0 && v < k as f64,
                LabelKind::Regression => v.is_finite(),
            };
            if let LabelKind::Classes { k } = *kind {
                if !(2..=MAX_CLASSES).contains(&k) {
                    return Err(format!("task {t} ('{name}') has {k} classes; 2–{MAX_CLASSES} are allowed"));
                }
            }
            if let Some(i) = col.iter().position(|&v| !fits(v)) {
                return Err(format!("task {t} ('{name}'): label {} of point {i} is not a {kind:?} label", col[i]));
            }
        }
        if self.n_train > n {
            return Err(format!("{} training points of {n}", self.n_train));
        }
        Ok(())
    }

    pub fn train_indices(&self) -> std::ops::Range<usize> {
        0..self.n_train
    }

    pub fn test_indices(&self) -> std::ops::Range<usize> {
        self.n_train..self.len()
    }

    /// Negate task `c.task`'s labels where the knob's sector covers the point.
    pub fn apply_conflict(&mut self, c: Conflict) {
        for (i, &p) in self.points.iter().enumerate() {
            if c.flips(p) {
                self.labels[c.task][i] = -self.labels[c.task][i];
            }
        }
    }

    /// Fisher–Yates over the points (labels follow), then the split at ⌊len·ratio⌋.
    pub fn shuffle_and_split(&mut self, rng: &mut DataRng, train_ratio: f64) {
        let mut order: Vec<usize> = (0..self.len()).collect();
        shuffle(rng, &mut order);
        self.points = order.iter().map(|&i| self.points[i]).collect();
        for col in &mut self.labels {
            *col = order.iter().map(|&i| col[i]).collect();
        }
        self.n_train = (self.len() as f64 * train_ratio).floor() as usize;
    }

    /// The inputs of the given points, one per row (B × 2).
    pub fn inputs(&self, idx: &[usize]) -> DMatrix<f64> {
        DMatrix::from_fn(idx.len(), 2, |r, c| self.points[idx[r]][c])
    }

    /// Targets of the given points for each task's loss: MSE takes the label as is; BCE maps
    /// ±1 → {0, 1}; softmax-CE takes ±1 → class {0, 1} or the stored class index.
    pub fn targets(&self, idx: &[usize], losses: &[LossKind]) -> Result<Vec<Target>, String> {
        if losses.len() != self.num_tasks() {
            return Err(format!("{} losses for {} tasks", losses.len(), self.num_tasks()));
        }
        if let Some(&i) = idx.iter().find(|&&i| i >= self.len()) {
            return Err(format!("point {i} does not exist ({} points)", self.len()));
        }
        let mut out = Vec::with_capacity(losses.len());
        for (t, (&loss, &kind)) in losses.iter().zip(&self.kinds).enumerate() {
            let col = &self.labels[t];
            let name = &self.task_names[t];
            out.push(match (loss, kind) {
                (LossKind::Mse, _) => Target::Values(DMatrix::from_fn(idx.len(), 1, |r, _| col[idx[r]])),
                (LossKind::Bce, LabelKind::Binary) => {
                    Target::Values(DMatrix::from_fn(idx.len(), 1, |r, _| (col[idx[r]] + 1.0) / 2.0))
                }
                (LossKind::SoftmaxCe, LabelKind::Binary) => {
                    Target::Classes(idx.iter().map(|&i| usize::from(col[i] > 0.0)).collect())
                }
                (LossKind::SoftmaxCe, LabelKind::Classes { .. }) => {
                    Target::Classes(idx.iter().map(|&i| col[i] as usize).collect())
                }
                (loss, kind) => {
                    return Err(format!("task {t} ('{name}') has {kind:?} labels, which {} cannot use", loss.name()))
                }
            });
        }
        Ok(out)
    }

    /// Inputs and targets of a whole split (`train_indices()` or `test_indices()`).
    pub fn batch(
        &self,
        range: std::ops::Range<usize>,
        losses: &[LossKind],
    ) -> Result<(DMatrix<f64>, Vec<Target>), String> {
        let idx: Vec<usize> = range.collect();
        Ok((self.inputs(&idx), self.targets(&idx, losses)?))
    }
}
