//! The per-point conflict map: at every cell of the heatmap grid, the smallest pairwise cosine
//! between the tasks' gradients of the shared trunk (m = 2: cos(g₁, g₂)), each task's gradient
//! taken against its own prediction at that point (`PointGradient::OwnPrediction`: no label is
//! needed, so it is defined on the whole plane). concord-core's `Mlp::point_grams` is the CPU
//! computation (and the reference of the GPU kernel); this module turns its Grams into the map
//! the panel draws and the run file carries, checks a map read from a file, and says where the
//! tasks' labels disagree (the train points the panel marks, and the grid cells the browser test
//! compares the map with).

use concord_core::data::{LabelKind, MultiTaskData, TaskSetConfig};
use concord_core::model::{Mlp, PointGradient, PointGrams};
use serde::{Deserialize, Serialize};

/// The gradient the page's map is made of.
pub const HOW: PointGradient = PointGradient::OwnPrediction;
/// Cells per side at most (the heatmaps' grid).
pub const MAX_SIDE: usize = 100;
/// The widest extent a map may claim (the page's grid is 6, or 5 % past the farthest point).
const MAX_EXTENT: f64 = 1e6;

/// One run's map at one step: `side` × `side` cells over [−extent, extent]², row 0 at the top
/// (x₂ = +extent), as `grid::points_n` lays them out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConflictMap {
    /// The step of the parameters it was computed at.
    pub step: usize,
    /// Where it was computed: "webgpu" (the kernel, f32) or "cpu" (concord-core, f64).
    pub engine: String,
    pub extent: f64,
    pub side: usize,
    /// Per cell, row-major: the smallest pairwise cosine; `null` where a task's gradient is zero
    /// (no direction). A run file holds them rounded to 4 decimals (the colour scale has far
    /// fewer steps), about 7 bytes a cell.
    #[serde(serialize_with = "rounded")]
    pub min_cos: Vec<Option<f32>>,
}

/// The cosines rounded to 4 decimals for the run file.
fn rounded<S: serde::Serializer>(cells: &[Option<f32>], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(cells.len()))?;
    for c in cells {
        seq.serialize_element(&c.map(|v| ((v as f64 * 1e4).round() / 1e4) as f32))?;
    }
    seq.end()
}

impl ConflictMap {
    /// The map of `grams` (one per cell of a `side` × `side` grid).
    pub fn from_grams(grams: &PointGrams, step: usize, engine: &str, extent: f64, side: usize) -> ConflictMap {
        let min_cos = (0..grams.len()).map(|i| grams.min_cos(i).map(|c| c as f32)).collect();
        ConflictMap { step, engine: engine.to_string(), extent, side, min_cos }
    }

    /// The CPU map of `mlp` at `params` over `points` (`grid::points_n(extent, side)`), each
    /// point through the run's input features (`None`: the raw point).
    #[allow(clippy::too_many_arguments)] // the map's grid and the run's features, as the caller has them
    pub fn cpu(
        mlp: &Mlp,
        features: Option<&concord_core::data::FeatureSet>,
        params: &[f64],
        points: &[[f64; 2]],
        step: usize,
        extent: f64,
        side: usize,
    ) -> Result<ConflictMap, String> {
        if mlp.num_tasks() < 2 {
            return Err("one task: there is no pair to compare".into());
        }
        let x = concord_core::data::feature_rows(features, points);
        let grams = mlp.point_grams(params, &x, HOW, None)?;
        Ok(ConflictMap::from_grams(&grams, step, "cpu", extent, side))
    }

    /// The share of the defined cells with cos < 0.
    pub fn conflict_share(&self) -> Option<f64> {
        let defined: Vec<f32> = self.min_cos.iter().flatten().copied().collect();
        (!defined.is_empty()).then(|| defined.iter().filter(|c| **c < 0.0).count() as f64 / defined.len() as f64)
    }

    /// The cell under (x₁, x₂), if the point is on the map.
    pub fn cell_at(&self, p: [f64; 2]) -> Option<usize> {
        let h = 2.0 * self.extent / self.side as f64;
        let (c, r) = ((p[0] + self.extent) / h, (self.extent - p[1]) / h);
        let inside = |v: f64| v >= 0.0 && v < self.side as f64;
        (inside(c) && inside(r)).then(|| r as usize * self.side + c as usize)
    }

    /// A map read from a run file, checked before the page keeps it: the engine's name, a grid
    /// of at most `MAX_SIDE` per side with one value per cell, a finite extent, cosines in
    /// [−1, 1], and a step no later than the run's.
    pub fn check(&self, steps: usize) -> Result<(), String> {
        if self.engine != "cpu" && self.engine != "webgpu" {
            return Err(format!("the conflict map's engine “{}” is not cpu or webgpu", clip(&self.engine)));
        }
        if !(1..=MAX_SIDE).contains(&self.side) {
            return Err(format!("the conflict map has {} cells per side; 1–{MAX_SIDE} are allowed", self.side));
        }
        if self.min_cos.len() != self.side * self.side {
            return Err(format!("the conflict map has {} cells for a side of {}", self.min_cos.len(), self.side));
        }
        if !(self.extent.is_finite() && self.extent > 0.0 && self.extent <= MAX_EXTENT) {
            return Err(format!("the conflict map's extent {} is not in (0, {MAX_EXTENT}]", self.extent));
        }
        if let Some((i, c)) =
            self.min_cos.iter().enumerate().find_map(|(i, c)| c.filter(|c| !(-1.0..=1.0).contains(c)).map(|c| (i, c)))
        {
            return Err(format!("the conflict map's cell {i} holds {c}, not a cosine"));
        }
        if self.step > steps {
            return Err(format!("the conflict map is of step {}, after the run's {steps} steps", self.step));
        }
        Ok(())
    }
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Whether a point's labels (one per task) disagree: two class labels differ, or two regression
/// targets have opposite signs.
pub fn labels_disagree(labels: &[f64], kinds: &[LabelKind]) -> bool {
    let key = |v: f64, k: &LabelKind| match k {
        LabelKind::Regression => (v >= 0.0) as i64 as f64,
        _ => v,
    };
    let mut keys = labels.iter().zip(kinds).map(|(v, k)| key(*v, k));
    let first = keys.next();
    keys.any(|k| Some(k) != first)
}

/// Per train point of `data` (its first `n_train`), whether its tasks' labels disagree.
pub fn train_disagreement(data: &MultiTaskData) -> Vec<bool> {
    (0..data.n_train)
        .map(|i| {
            let labels: Vec<f64> = data.labels.iter().map(|col| col[i]).collect();
            labels_disagree(&labels, &data.kinds)
        })
        .collect()
}

/// Per point, whether the tasks' noiseless labelling rules (each dataset's `label_at`, then the
/// conflict knob) disagree there: the region the map's conflict should cover.
pub fn rule_disagreement(config: &TaskSetConfig, points: &[[f64; 2]]) -> Vec<bool> {
    // No noise, so the rules draw nothing that matters from the stream.
    let mut rng = <concord_core::data::DataRng as rand::SeedableRng>::seed_from_u64(0);
    let kinds: Vec<LabelKind> = config
        .tasks
        .iter()
        .map(|d| if d.is_classification() { LabelKind::Binary } else { LabelKind::Regression })
        .collect();
    points
        .iter()
        .map(|&p| {
            let labels: Vec<f64> = config
                .tasks
                .iter()
                .enumerate()
                .map(|(t, d)| {
                    let y = d.label_at(p, 0.0, &mut rng);
                    match config.conflict {
                        Some(c) if c.task == t && c.flips(p) => -y,
                        _ => y,
                    }
                })
                .collect();
            labels_disagree(&labels, &kinds)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_core::data::{Conflict, Dataset, InputSource};
    use concord_core::model::MlpConfig;

    fn grid(extent: f64, side: usize) -> Vec<[f64; 2]> {
        let h = 2.0 * extent / side as f64;
        (0..side * side)
            .map(|i| [-extent + ((i % side) as f64 + 0.5) * h, extent - ((i / side) as f64 + 0.5) * h])
            .collect()
    }

    #[test]
    fn the_map_is_the_cosine_of_the_explicit_per_point_gradients() {
        // Independent reference: concord-core's explicit per-point gradient vectors (checked
        // there against finite differences), their cosine computed here.
        let mlp = Mlp::new(MlpConfig::playground(vec![5, 4], 3)).unwrap();
        let params = mlp.init_params(2);
        let pts = grid(6.0, 7);
        let map = ConflictMap::cpu(&mlp, None, &params, &pts, 3, 6.0, 7).unwrap();
        assert_eq!((map.side, map.min_cos.len(), map.step, map.engine.as_str()), (7, 49, 3, "cpu"));
        let x = nalgebra::DMatrix::from_fn(pts.len(), 2, |r, c| pts[r][c]);
        let g = mlp.per_point_gradients(&params, &x, HOW, None).unwrap();
        for i in 0..pts.len() {
            let mut worst = f64::INFINITY;
            for s in 0..3 {
                for t in s + 1..3 {
                    let (a, b) = (g[s].row(i), g[t].row(i));
                    worst = worst.min(a.dot(&b) / (a.norm() * b.norm()));
                }
            }
            // As f32.
            let got = map.min_cos[i].unwrap() as f64;
            assert!((got - worst).abs() <= 1e-6, "cell {i}: {got} vs {worst}");
        }
        map.check(3).unwrap();
        // In a run file, 4 decimals.
        let text = serde_json::to_string(&map).unwrap();
        let back: ConflictMap = serde_json::from_str(&text).unwrap();
        for (a, b) in map.min_cos.iter().zip(&back.min_cos) {
            assert!((a.unwrap() - b.unwrap()).abs() <= 5.1e-5, "{a:?} → {b:?}");
            let s = format!("{}", b.unwrap());
            assert!(s.trim_start_matches('-').len() <= 6, "{s}: at most 4 decimals");
        }
        assert_eq!(serde_json::to_string(&back).unwrap(), text, "rounding again changes nothing");
    }

    #[test]
    fn a_map_from_a_file_is_checked() {
        let ok = ConflictMap {
            step: 5,
            engine: "cpu".into(),
            extent: 6.0,
            side: 2,
            min_cos: vec![Some(0.5), None, Some(-1.0), Some(1.0)],
        };
        ok.check(5).unwrap();
        let bad = |f: &dyn Fn(&mut ConflictMap), steps: usize, needle: &str| {
            let mut m = ok.clone();
            f(&mut m);
            let e = m.check(steps).unwrap_err();
            assert!(e.contains(needle), "{needle}: {e}");
        };
        bad(&|m| m.engine = "tpu".into(), 5, "not cpu or webgpu");
        bad(&|m| m.side = 0, 5, "0 cells per side");
        bad(&|m| m.side = 101, 5, "101 cells per side");
        bad(&|m| m.side = 3, 5, "4 cells for a side of 3");
        bad(&|m| m.min_cos.pop().map_or((), drop), 5, "3 cells");
        bad(&|m| m.extent = f64::INFINITY, 5, "extent inf");
        bad(&|m| m.extent = -1.0, 5, "extent -1");
        bad(&|m| m.min_cos[1] = Some(1.5), 5, "cell 1 holds 1.5");
        bad(&|m| m.min_cos[0] = Some(f32::NAN), 5, "cell 0 holds NaN");
        bad(&|_| (), 4, "of step 5, after the run's 4 steps");
    }

    #[test]
    fn cells_and_disagreement() {
        let m = ConflictMap { step: 0, engine: "cpu".into(), extent: 6.0, side: 4, min_cos: vec![Some(-0.5); 16] };
        assert_eq!(m.cell_at([-5.9, 5.9]), Some(0));
        assert_eq!(m.cell_at([5.9, -5.9]), Some(15));
        assert_eq!(m.cell_at([0.1, 0.1]), Some(6));
        assert_eq!(m.cell_at([6.1, 0.0]), None);
        assert_eq!(m.conflict_share(), Some(1.0));
        assert!(labels_disagree(&[1.0, -1.0], &[LabelKind::Binary; 2]));
        assert!(!labels_disagree(&[1.0, 1.0, 1.0], &[LabelKind::Binary; 3]));
        assert!(labels_disagree(&[0.3, -0.2], &[LabelKind::Regression; 2]));
        assert!(!labels_disagree(&[0.3, 0.2], &[LabelKind::Regression; 2]));
        // Circle vs circle flipped on the lower-left quarter (κ = 0.5): the rules disagree
        // exactly there.
        let config = TaskSetConfig {
            tasks: vec![Dataset::Circle, Dataset::Circle],
            n: 100,
            noise: 0.0,
            train_ratio: 0.5,
            seed: 0,
            inputs: InputSource::Native { task: 0 },
            conflict: Some(Conflict { task: 1, kappa: 0.5 }),
        };
        let pts = [[-1.0, -1.0], [-4.0, -0.5], [1.0, -1.0], [-1.0, 1.0], [3.0, 3.0]];
        assert_eq!(rule_disagreement(&config, &pts), [true, true, false, false, false]);
        let data = config.generate().unwrap();
        let train = train_disagreement(&data);
        assert_eq!(train.len(), data.n_train);
        for (i, d) in train.iter().enumerate() {
            let p = data.points[i];
            assert_eq!(*d, p[0] < 0.0 && p[1] < 0.0, "point {p:?}");
        }
    }
}
