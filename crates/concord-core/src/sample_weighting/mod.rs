//! Conflict-aware sample weighting (issue 17): a stage before the loss weighting and the
//! aggregator that rewrites the batch's shared Jacobian from each sample's own task conflict.
//!
//! For the batch x_1 … x_B, g_t(x_i) is the gradient of task t's per-sample loss w.r.t. the
//! shared (trunk) parameters and G_i its m × m Gram (`Mlp::point_grams`, `PointGradient::Loss`).
//! A stage turns each G_i into a coefficient matrix C_i (m × m) and a divisor N, and the shared
//! Jacobian the weighting and the aggregator see becomes
//!
//! J′_t = (1/N) Σ_i Σ_s C_i[t][s] g_s(x_i)     (plain training: C_i = I, N = B, J′ = J).
//!
//! The heads' gradients, the losses and the recorded `StepMetrics` (of the raw J) are unchanged:
//! the heads are task-private, so no conflict is resolved there.
//!
//! **Why no per-sample gradient is stored.** The trunk's backward pass is linear in the gradient
//! at its output, and for one sample g_s(x_i) is the backward pass of row i of
//! dH_s = ∂ℓ_s/∂h (the head's output gradient times its weights). So J′_t is one batched
//! backward pass of dH′_t, row i = (1/N) Σ_s C_i[t][s] dH_s[i]: m backward passes, as for J,
//! plus the Grams (m more backward passes for the per-layer deltas). See `Mlp::stage_gradients`.
//!
//! The stages (one file each): `harmonize` (per-sample projection of conflicting task
//! gradients), `curriculum` (the least-conflicting samples first, the rest let in as training
//! goes on), `conflict_mask` (the most conflicting samples left out). A sample's conflict is its
//! smallest pairwise cosine min_{s<t} cos(g_s(x_i), g_t(x_i)) (`PointGrams::min_cos`; a sample
//! with a zero task gradient has none and never counts as conflicting, as in
//! `train::SampleConflict`).

mod conflict_mask;
mod curriculum;
mod harmonize;
mod ranking;

pub use harmonize::harmonize_coefficients;
pub(crate) use ranking::conflict_key;
pub use ranking::take_first;

use crate::model::PointGrams;
use crate::weightings::{ParamSpec, ParamValues};
use serde::{Deserialize, Serialize};

/// Every registered name, in display order.
pub const NAMES: [&str; 3] = ["harmonize", "curriculum", "conflict-mask"];

/// What `concord methods` lists for a sample-weighting stage.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SampleWeightingDescription {
    pub name: &'static str,
    pub label: &'static str,
    pub summary: &'static str,
    pub params: Vec<ParamSpec>,
}

/// The description of one registered name.
pub fn describe(name: &str) -> Option<SampleWeightingDescription> {
    match name {
        "harmonize" => Some(harmonize::description()),
        "curriculum" => Some(curriculum::description()),
        "conflict-mask" => Some(conflict_mask::description()),
        _ => None,
    }
}

/// Every description, in display order.
pub fn descriptions() -> Vec<SampleWeightingDescription> {
    NAMES.iter().filter_map(|n| describe(n)).collect()
}

/// One step's stage: the coefficient matrices C_i (row-major, `i·m² ..`), the divisor N and
/// what the record keeps.
#[derive(Clone, Debug, PartialEq)]
pub struct SampleMix {
    pub m: usize,
    pub coefficients: Vec<f64>,
    /// N; 0 when every sample is left out (J′ = 0: only the heads learn that step).
    pub divisor: f64,
    pub record: SampleStageRecord,
}

impl SampleMix {
    /// C_i = w_i·I, N = Σ_i w_i: a per-sample weight (the curriculum and the mask).
    pub(crate) fn weighted(m: usize, weights: &[f64], record: SampleStageRecord) -> Self {
        let mut coefficients = vec![0.0; weights.len() * m * m];
        for (i, w) in weights.iter().enumerate() {
            for t in 0..m {
                coefficients[i * m * m + t * m + t] = *w;
            }
        }
        SampleMix { m, coefficients, divisor: weights.iter().sum(), record }
    }

    /// Sample i's C_i (m × m, row-major).
    pub fn coefficients_of(&self, i: usize) -> &[f64] {
        let mm = self.m * self.m;
        &self.coefficients[i * mm..(i + 1) * mm]
    }
}

/// What a step's stage did, for the record: how many of the batch's samples it changed
/// (projected, or left out — fractionally for ties at a cut) and, for the curriculum, the share
/// of the batch it let in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleStageRecord {
    /// B.
    pub samples: usize,
    /// Samples projected (harmonize) or weight left out (curriculum, conflict-mask).
    #[serde(with = "crate::train::float_serde::float")]
    pub changed: f64,
    /// The curriculum's share of the batch let in at this step.
    #[serde(with = "crate::train::float_serde::opt_float", default, skip_serializing_if = "Option::is_none")]
    pub kept_share: Option<f64>,
}

/// One sample-weighting stage as a typed value: its name and every parameter (given or
/// default), range-checked once.
#[derive(Clone, Debug, PartialEq)]
pub struct SampleWeightingSpec {
    name: &'static str,
    values: ParamValues,
}

impl SampleWeightingSpec {
    pub fn parse(name: &str, params: &[(String, String)]) -> Result<Self, String> {
        let name = name.trim();
        let desc = describe(name)
            .ok_or_else(|| format!("unknown sample weighting '{name}' (expected one of: {})", NAMES.join(", ")))?;
        let values = ParamValues::parse(&format!("sample weighting '{name}'"), &desc.params, params)?;
        Ok(SampleWeightingSpec { name: desc.name, values })
    }

    pub fn named(name: &str) -> Result<Self, String> {
        Self::parse(name, &[])
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn describe(&self) -> SampleWeightingDescription {
        describe(self.name).expect("specs hold registered names")
    }

    /// A parameter's value (given or default).
    pub fn get(&self, key: &str) -> Option<f64> {
        self.values.get(key)
    }

    /// The parameters the user gave, as `key=value`.
    pub fn given(&self) -> Vec<(&'static str, String)> {
        self.values.given()
    }

    /// The stage for one batch from its samples' Grams, at step `step` of the run.
    pub fn mix(&self, grams: &PointGrams, step: usize) -> SampleMix {
        let v = |k: &str| self.get(k).unwrap_or(f64::NAN);
        match self.name {
            "harmonize" => harmonize::mix(grams),
            "curriculum" => curriculum::mix(grams, step, v("start"), v("anneal")),
            "conflict-mask" => conflict_mask::mix(grams, v("top")),
            _ => unreachable!("describe() knows only NAMES"),
        }
    }
}

/// `{"name": "curriculum", "start": 0.3}`: the name and the given parameters.
impl Serialize for SampleWeightingSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.values.serialize_named(self.name, s)
    }
}

/// Reads `{"name": …, key: number…}` or `"name:key=value"`, validated as `parse` does.
impl<'de> Deserialize<'de> for SampleWeightingSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let v = serde_json::Value::deserialize(d)?;
        let (name, params) = crate::aggregators::named_params(&v).map_err(D::Error::custom)?;
        SampleWeightingSpec::parse(&name, &params).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests;
