//! TF Playground's input features: what the model reads of a 2-D point (x₁, x₂, x₁², x₂², x₁x₂,
//! sin x₁, sin x₂). A feature set maps each point to one column per feature, so toggling a
//! feature changes the model's input dimension. Only sources whose inputs are 2-D points (task
//! sets, CSV points) take one.

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

/// One input feature, named as TF Playground's URL keys name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Feature {
    #[serde(rename = "x")]
    X,
    #[serde(rename = "y")]
    Y,
    #[serde(rename = "xSquared")]
    XSquared,
    #[serde(rename = "ySquared")]
    YSquared,
    #[serde(rename = "xTimesY")]
    XTimesY,
    #[serde(rename = "sinX")]
    SinX,
    #[serde(rename = "sinY")]
    SinY,
}

impl Feature {
    /// Every feature, in the order the columns (and the page's toggles) take.
    pub const ALL: [Feature; 7] =
        [Feature::X, Feature::Y, Feature::XSquared, Feature::YSquared, Feature::XTimesY, Feature::SinX, Feature::SinY];

    /// TF Playground's URL key (`x`, `xSquared`, …).
    pub fn key(self) -> &'static str {
        match self {
            Feature::X => "x",
            Feature::Y => "y",
            Feature::XSquared => "xSquared",
            Feature::YSquared => "ySquared",
            Feature::XTimesY => "xTimesY",
            Feature::SinX => "sinX",
            Feature::SinY => "sinY",
        }
    }

    /// The label the page shows.
    pub fn label(self) -> &'static str {
        match self {
            Feature::X => "x₁",
            Feature::Y => "x₂",
            Feature::XSquared => "x₁²",
            Feature::YSquared => "x₂²",
            Feature::XTimesY => "x₁x₂",
            Feature::SinX => "sin x₁",
            Feature::SinY => "sin x₂",
        }
    }

    pub fn from_key(key: &str) -> Option<Feature> {
        Feature::ALL.into_iter().find(|f| f.key() == key)
    }

    /// This feature's value at the point (x₁, x₂).
    pub fn value(self, p: [f64; 2]) -> f64 {
        let [x1, x2] = p;
        match self {
            Feature::X => x1,
            Feature::Y => x2,
            Feature::XSquared => x1 * x1,
            Feature::YSquared => x2 * x2,
            Feature::XTimesY => x1 * x2,
            Feature::SinX => x1.sin(),
            Feature::SinY => x2.sin(),
        }
    }
}

/// A non-empty set of features, kept in [`Feature::ALL`] order (one column each).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<Feature>", into = "Vec<Feature>")]
pub struct FeatureSet(Vec<Feature>);

impl FeatureSet {
    /// The set of the given features (duplicates dropped, `ALL` order); an empty list is an
    /// error: the model would read nothing.
    pub fn new(features: &[Feature]) -> Result<Self, String> {
        let set: Vec<Feature> = Feature::ALL.into_iter().filter(|f| features.contains(f)).collect();
        if set.is_empty() {
            return Err("at least one input feature must be on".into());
        }
        Ok(FeatureSet(set))
    }

    /// x₁, x₂: the raw point (what a config without features reads).
    pub fn raw() -> Self {
        FeatureSet(vec![Feature::X, Feature::Y])
    }

    pub fn is_raw(&self) -> bool {
        *self == Self::raw()
    }

    pub fn features(&self) -> &[Feature] {
        &self.0
    }

    pub fn contains(&self, f: Feature) -> bool {
        self.0.contains(&f)
    }

    /// The model's input dimension.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The features of one point.
    pub fn apply(&self, p: [f64; 2]) -> Vec<f64> {
        self.0.iter().map(|f| f.value(p)).collect()
    }

    /// Rows of 2-D points (an n × 2 matrix) to rows of features (n × len).
    pub fn map_rows(&self, x: &DMatrix<f64>) -> Result<DMatrix<f64>, String> {
        if x.ncols() != 2 {
            return Err(format!("input features map 2-D points; these inputs have {} columns", x.ncols()));
        }
        Ok(DMatrix::from_fn(x.nrows(), self.len(), |r, c| self.0[c].value([x[(r, 0)], x[(r, 1)]])))
    }

    /// Points to the model's input rows (n × len).
    pub fn map_points(&self, points: &[[f64; 2]]) -> DMatrix<f64> {
        DMatrix::from_fn(points.len(), self.len(), |r, c| self.0[c].value(points[r]))
    }
}

impl TryFrom<Vec<Feature>> for FeatureSet {
    type Error = String;
    fn try_from(v: Vec<Feature>) -> Result<Self, String> {
        FeatureSet::new(&v)
    }
}

impl From<FeatureSet> for Vec<Feature> {
    fn from(s: FeatureSet) -> Self {
        s.0
    }
}

/// The model inputs at 2-D points under an optional feature set (`None`: the raw point).
pub fn feature_rows(features: Option<&FeatureSet>, points: &[[f64; 2]]) -> DMatrix<f64> {
    match features {
        Some(f) => f.map_points(points),
        None => DMatrix::from_fn(points.len(), 2, |r, c| points[r][c]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_feature_has_tf_playgrounds_value() {
        let p = [0.5, -2.0];
        let want = [0.5, -2.0, 0.25, 4.0, -1.0, 0.5f64.sin(), (-2.0f64).sin()];
        for (f, w) in Feature::ALL.into_iter().zip(want) {
            assert_eq!(f.value(p), w, "{}", f.key());
            assert_eq!(Feature::from_key(f.key()), Some(f));
        }
    }

    #[test]
    fn a_set_keeps_all_order_and_maps_rows() {
        let s = FeatureSet::new(&[Feature::SinY, Feature::X, Feature::XTimesY, Feature::X]).unwrap();
        assert_eq!(s.features(), &[Feature::X, Feature::XTimesY, Feature::SinY]);
        assert_eq!(s.apply([2.0, 3.0]), vec![2.0, 6.0, 3.0f64.sin()]);
        let x = DMatrix::from_row_slice(2, 2, &[2.0, 3.0, -1.0, 0.0]);
        let m = s.map_rows(&x).unwrap();
        assert_eq!((m.nrows(), m.ncols()), (2, 3));
        assert_eq!(m[(1, 0)], -1.0);
        assert_eq!(m[(1, 1)], -0.0);
        assert_eq!(s.map_points(&[[2.0, 3.0], [-1.0, 0.0]]), m);
        assert!(s.map_rows(&DMatrix::zeros(1, 3)).is_err());
    }

    #[test]
    fn an_empty_set_is_refused_in_code_and_in_json() {
        assert!(FeatureSet::new(&[]).is_err());
        assert!(serde_json::from_str::<FeatureSet>("[]").is_err());
        let s: FeatureSet = serde_json::from_str(r#"["xSquared","x"]"#).unwrap();
        assert_eq!(s.features(), &[Feature::X, Feature::XSquared]);
        assert_eq!(serde_json::to_string(&s).unwrap(), r#"["x","xSquared"]"#);
        assert!(FeatureSet::raw().is_raw());
    }
}
