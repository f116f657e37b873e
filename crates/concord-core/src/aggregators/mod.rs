//! Gradient aggregators in the Gramian-weighted shape.
//!
//! From the m × n task Jacobian J (row i = ∇L_i over the n shared parameters) every method here
//! forms G = JJᵀ, computes weights w = f(G) with a tiny m × m problem, and returns d = Jᵀw.
//! The two O(mn) passes (`gram`, `combine`) are shared; a method is only its `Weighting`.
//! Semantics and defaults follow torchjd 0.18 (`shared/reference/aggregators.md`).
//!
//! J is an `nalgebra::DMatrix<f64>` (m rows, n columns); weights are `DVector<f64>` of length m.

mod cagrad;
mod fairgrad;
mod graddrop;
mod gradvac;
mod mean;
mod mgda;
mod nash_mtl;
mod numerics;
mod pcgrad;
mod sum;
mod trimmed_mean;
mod aligned_mtl;
mod config;
mod constant;
mod dual_cone;
mod dualproj;
mod imtl_g;
mod krum;
mod random;
pub mod registry;
mod upgrad;
#[cfg(test)]
mod properties;
#[cfg(test)]
mod testing;

pub use cagrad::CaGrad;
pub use fairgrad::FairGrad;
pub use graddrop::{graddrop, GradDrop};
pub use gradvac::GradVac;
pub use mean::Mean;
pub use mgda::Mgda;
pub use nash_mtl::NashMtl;
pub use pcgrad::{pcg_hash, visit_order, PcGrad};
pub use sum::Sum;
pub use trimmed_mean::TrimmedMean;
pub use aligned_mtl::{AlignedMtl, ScaleMode};
pub use config::Config;
pub use constant::Constant;
pub use dualproj::DualProj;
pub use imtl_g::ImtlG;
pub use krum::Krum;
pub use random::Random;
pub use upgrad::UpGrad;

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

/// The result of one aggregation: the update direction d (length n) and, for weighted
/// methods, the weights w with d = Jᵀw.
#[derive(Clone, Debug, PartialEq)]
pub struct Aggregation {
    pub update: DVector<f64>,
    pub weights: Option<DVector<f64>>,
}

/// w = f(G): the only part in which Gramian-weighted methods differ.
pub trait Weighting: Send {
    /// Weights for the m × m Gramian `gram` (symmetric positive semi-definite).
    fn weights(&mut self, gram: &DMatrix<f64>) -> DVector<f64>;
    /// Forget any state carried between calls (random streams restart from their seed).
    fn reset(&mut self) {}
}

/// J ↦ d. Every Gramian-weighted method gets this through the blanket impl below.
pub trait Aggregator: Send {
    fn aggregate(&mut self, jacobian: &DMatrix<f64>) -> Aggregation;
    fn reset(&mut self);
}

impl<W: Weighting> Aggregator for W {
    fn aggregate(&mut self, jacobian: &DMatrix<f64>) -> Aggregation {
        let w = self.weights(&gram(jacobian));
        Aggregation { update: combine(jacobian, &w), weights: Some(w) }
    }

    fn reset(&mut self) {
        Weighting::reset(self)
    }
}

/// G = JJᵀ (m × m).
pub fn gram(jacobian: &DMatrix<f64>) -> DMatrix<f64> {
    jacobian * jacobian.transpose()
}

/// d = Jᵀw (length n).
pub fn combine(jacobian: &DMatrix<f64>, weights: &DVector<f64>) -> DVector<f64> {
    jacobian.tr_mul(weights)
}

/// The methods the CLI and UI can name, with their parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case")]
pub enum Method {
    Mean,
    Sum,
    #[serde(rename = "pcgrad")]
    PcGrad,
    Mgda,
    /// torchjd `CAGrad(c)`: no rescale of the output (the toy's `cagrad` divides by 1+c).
    #[serde(rename = "cagrad")]
    CaGrad { c: f64 },
}

impl Method {
    /// Every method with its default parameters, in display order.
    pub const ALL: [Method; 5] =
        [Method::Mean, Method::Sum, Method::PcGrad, Method::Mgda, Method::CaGrad { c: 0.5 }];

    pub fn name(&self) -> &'static str {
        match self {
            Method::Mean => "mean",
            Method::Sum => "sum",
            Method::PcGrad => "pcgrad",
            Method::Mgda => "mgda",
            Method::CaGrad { .. } => "cagrad",
        }
    }

    /// A human label for legends, naming the parameters.
    pub fn label(&self) -> String {
        match self {
            Method::CaGrad { c } => format!("CAGrad (c={c})"),
            Method::Mean => "Mean".into(),
            Method::Sum => "Sum".into(),
            Method::PcGrad => "PCGrad".into(),
            Method::Mgda => "MGDA".into(),
        }
    }

    /// Parse a method name plus `key=value` parameters (as given to `--param`).
    pub fn parse(name: &str, params: &[(String, f64)]) -> Result<Method, String> {
        let mut method = Method::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| {
                let names: Vec<_> = Method::ALL.iter().map(|m| m.name()).collect();
                format!("unknown method '{name}' (expected one of: {})", names.join(", "))
            })?;
        for (key, value) in params {
            match (&mut method, key.as_str()) {
                (Method::CaGrad { c }, "c") => {
                    if !(value.is_finite() && *value >= 0.0) {
                        return Err(format!("cagrad needs c ≥ 0, got {value}"));
                    }
                    *c = *value;
                }
                _ => return Err(format!("method '{name}' has no parameter '{key}'")),
            }
        }
        Ok(method)
    }

    /// A fresh aggregator. `seed` feeds the methods that draw random numbers (PCGrad's visiting order).
    pub fn build(&self, seed: u64) -> Box<dyn Aggregator> {
        match *self {
            Method::Mean => Box::new(Mean),
            Method::Sum => Box::new(Sum),
            Method::PcGrad => Box::new(PcGrad::new(seed)),
            Method::Mgda => Box::new(Mgda::default()),
            Method::CaGrad { c } => Box::new(CaGrad::new(c)),
        }
    }
}
