//! The loss weightings the CLI and UI can name: parameters with defaults and ranges, validation,
//! and serialisable descriptions (for `concord methods`). Each weighting's file holds its own
//! description (`description()`, next to its code); this module lists them.

use serde::Serialize;

use super::{dwa, ew, famo, gls, gradnorm, imtl_l, rlw, stch, uw};
use super::{Dwa, Ew, Famo, Gls, GradNorm, ImtlL, LossWeighting, Rlw, Stch, Uw};

/// Every registered name, in display order.
pub const NAMES: [&str; 9] = ["ew", "uw", "dwa", "gradnorm", "famo", "gls", "stch", "rlw", "imtl-l"];

/// Each weighting's description, from its own file; the same order as [`NAMES`].
const DESCRIPTIONS: [fn() -> WeightingDescription; 9] = [
    ew::description,
    uw::description,
    dwa::description,
    gradnorm::description,
    famo::description,
    gls::description,
    stch::description,
    rlw::description,
    imtl_l::description,
];

/// LibMTL trains UW's and GradNorm's parameters with the model's optimizer: its defaults.
pub(crate) const TRAINER_LR: f64 = 1e-4;
pub(crate) const TRAINER_WEIGHT_DECAY: f64 = 1e-5;

// Upper bounds of the weightings' parameters, far above LibMTL's defaults (1e-4 … 2): a link or a
// file cannot ask for more. Learning rates above 10 and decays above 1 only diverge.
/// Upper bound of a learning rate (UW, GradNorm: 1e-4; FAMO: 0.025).
pub(crate) const LR_MAX: f64 = 10.0;
/// Upper bound of a weight decay (1e-5 … 1e-3).
pub(crate) const DECAY_MAX: f64 = 1.0;
/// Upper bound of a temperature, smoothing or strength (DWA's T = 2, STCH's μ = 1, GradNorm's α = 1.5).
pub(crate) const SCALE_MAX: f64 = 1e3;

/// One parameter: its default and its valid range.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParamSpec {
    pub name: &'static str,
    pub default: f64,
    /// Lower bound; exclusive unless `min_inclusive`.
    pub min: f64,
    pub min_inclusive: bool,
    /// Inclusive upper bound, if any.
    pub max: Option<f64>,
    /// Whether only whole numbers are valid.
    pub integer: bool,
    pub doc: &'static str,
}

impl ParamSpec {
    /// A value in (0, max]. Every weighting parameter has a finite upper bound (`max` stays an
    /// `Option` for the serialised shape; the registry test checks that each one is set).
    pub(crate) const fn positive(name: &'static str, default: f64, max: f64, doc: &'static str) -> Self {
        ParamSpec { name, default, min: 0.0, min_inclusive: false, max: Some(max), integer: false, doc }
    }

    /// A value in [0, max].
    pub(crate) const fn non_negative(name: &'static str, default: f64, max: f64, doc: &'static str) -> Self {
        ParamSpec { name, default, min: 0.0, min_inclusive: true, max: Some(max), integer: false, doc }
    }

    pub(crate) fn check(&self, value: f64) -> Result<(), String> {
        let above = if self.min_inclusive { value >= self.min } else { value > self.min };
        let below = self.max.is_none_or(|mx| value <= mx);
        if !value.is_finite() || !above || !below {
            let lo = if self.min_inclusive { "≥" } else { ">" };
            let hi = self.max.map(|mx| format!(" and ≤ {mx}")).unwrap_or_default();
            return Err(format!("parameter '{}' must be {lo} {}{hi}, got {value}", self.name, self.min));
        }
        if self.integer && (value.fract() != 0.0 || value > u32::MAX as f64) {
            return Err(format!("parameter '{}' must be a whole number, got {value}", self.name));
        }
        Ok(())
    }
}

/// What `concord methods` lists for a loss weighting.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WeightingDescription {
    pub name: &'static str,
    pub label: &'static str,
    pub summary: &'static str,
    /// How the method uses epochs (the trainer passes the epoch index in the context).
    pub epochs: &'static str,
    pub params: Vec<ParamSpec>,
    pub needs_jacobian: bool,
    pub needs_losses_after_step: bool,
}

/// The description of one registered name.
pub fn describe(name: &str) -> Option<WeightingDescription> {
    NAMES.iter().position(|n| *n == name).map(|i| DESCRIPTIONS[i]())
}

/// Every description, in display order.
pub fn descriptions() -> Vec<WeightingDescription> {
    NAMES.iter().filter_map(|n| describe(n)).collect()
}

/// Build a weighting by name with `key=value` parameters (unspecified ones take their defaults)
/// for m tasks; `seed` feeds RLW. The parameters are parsed once into a [`WeightingSpec`].
pub fn build(name: &str, params: &[(String, String)], m: usize, seed: u64) -> Result<Box<dyn LossWeighting>, String> {
    WeightingSpec::parse(name, params)?.build(m, seed)
}

/// Parameter values parsed against their specs: every parameter (given or default) and the
/// names the user gave, each value range-checked once. The loss weightings and the sample
/// weightings (`crate::sample_weighting`) both hold one.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ParamValues {
    /// In the specs' order, one per parameter.
    values: Vec<(&'static str, f64)>,
    /// The names the user gave (in the specs' order); `to_text` writes only these.
    given: Vec<&'static str>,
}

impl ParamValues {
    /// `owner` names the method in messages ("loss weighting 'dwa'").
    pub(crate) fn parse(owner: &str, specs: &[ParamSpec], params: &[(String, String)]) -> Result<Self, String> {
        let mut values: Vec<(&'static str, f64)> = specs.iter().map(|p| (p.name, p.default)).collect();
        let mut given: Vec<&'static str> = Vec::new();
        for (key, raw) in params {
            let key = key.trim();
            let idx = specs.iter().position(|p| p.name == key).ok_or_else(|| {
                let known: Vec<_> = specs.iter().map(|p| p.name).collect();
                let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
                format!("{owner} has no parameter '{key}' (its parameters: {known})")
            })?;
            if given.contains(&specs[idx].name) {
                return Err(format!("parameter '{key}' given twice"));
            }
            given.push(specs[idx].name);
            let value: f64 =
                raw.trim().parse().map_err(|_| format!("parameter '{key}' must be a number, got '{raw}'"))?;
            specs[idx].check(value)?;
            values[idx].1 = value;
        }
        given.sort_by_key(|g| specs.iter().position(|p| p.name == *g));
        Ok(ParamValues { values, given })
    }

    /// A parameter's value (given or default).
    pub(crate) fn get(&self, key: &str) -> Option<f64> {
        self.values.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// The parameters the user gave, as `key=value`.
    pub(crate) fn given(&self) -> Vec<(&'static str, String)> {
        self.given.iter().map(|k| (*k, self.get(k).expect("given values are kept").to_string())).collect()
    }

    /// `{"name": name, key: value…}` with the given parameters.
    pub(crate) fn serialize_named<S: serde::Serializer>(&self, name: &str, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(1 + self.given.len()))?;
        map.serialize_entry("name", name)?;
        for k in &self.given {
            map.serialize_entry(k, &self.get(k))?;
        }
        map.end()
    }
}

/// One loss weighting as a typed value: its name and every parameter (given or default),
/// range-checked once.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightingSpec {
    name: &'static str,
    values: ParamValues,
}

impl WeightingSpec {
    pub fn parse(name: &str, params: &[(String, String)]) -> Result<Self, String> {
        let name = name.trim();
        let desc = describe(name)
            .ok_or_else(|| format!("unknown loss weighting '{name}' (expected one of: {})", NAMES.join(", ")))?;
        let values = ParamValues::parse(&format!("loss weighting '{name}'"), &desc.params, params)?;
        Ok(WeightingSpec { name: desc.name, values })
    }

    pub fn named(name: &str) -> Result<Self, String> {
        Self::parse(name, &[])
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The description (label, summary, parameters).
    pub fn describe(&self) -> WeightingDescription {
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

    /// `gradnorm` or `gradnorm:alpha=1.5`.
    pub fn to_text(&self) -> String {
        let mut s = self.name.to_string();
        for (k, v) in self.given() {
            s.push_str(&format!(":{k}={v}"));
        }
        s
    }

    /// A fresh weighting for m tasks; `seed` feeds RLW.
    pub fn build(&self, m: usize, seed: u64) -> Result<Box<dyn LossWeighting>, String> {
        if m == 0 {
            return Err("a loss weighting needs at least one task".into());
        }
        let v = |k: &str| self.get(k).unwrap_or(f64::NAN);
        Ok(match self.name {
            "ew" => Box::new(Ew::new(m)),
            "uw" => Box::new(Uw::new(m, v("lr"), v("weight_decay"))),
            "dwa" => Box::new(Dwa::new(m, v("T"))),
            "gradnorm" => Box::new(GradNorm::new(m, v("alpha"), v("lr"), v("weight_decay"))),
            "famo" => Box::new(Famo::new(m, v("w_lr"), v("gamma"))),
            "gls" => Box::new(Gls::new(m)),
            "stch" => Box::new(Stch::new(m, v("mu"), v("warmup_epoch") as u64)),
            "rlw" => Box::new(Rlw::new(m, seed)),
            "imtl-l" => Box::new(ImtlL::new(m, v("lr"), v("weight_decay"))),
            _ => unreachable!("describe() knows only NAMES"),
        })
    }
}

/// `{"name": "gradnorm", "alpha": 1.5}`: the name and the given parameters.
impl serde::Serialize for WeightingSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.values.serialize_named(self.name, s)
    }
}

/// Reads `{"name": …, key: number…}` or `"name:key=value"`, validated as `parse` does.
impl<'de> serde::Deserialize<'de> for WeightingSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let v = serde_json::Value::deserialize(d)?;
        let (name, params) = crate::aggregators::named_params(&v).map_err(D::Error::custom)?;
        WeightingSpec::parse(&name, &params).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::super::WeightingContext;
    use super::*;
    use nalgebra::DMatrix;

    fn p(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn every_name_builds_with_defaults_and_describes_itself() {
        assert_eq!(descriptions().len(), NAMES.len());
        for name in NAMES {
            let w = build(name, &[], 3, 0).unwrap();
            assert_eq!(w.name(), name);
            assert_eq!(w.num_tasks(), 3);
            let d = describe(name).unwrap();
            assert_eq!(d.name, name);
            assert_eq!(d.needs_jacobian, w.needs_jacobian());
            assert_eq!(d.needs_losses_after_step, w.needs_losses_after_step());
        }
        let json = serde_json::to_string(&descriptions()).unwrap();
        assert!(json.contains("\"warmup_epoch\"") && json.contains("\"famo\""));
    }

    #[test]
    fn registry_rejects_bad_input() {
        assert!(build("nope", &[], 2, 0).err().unwrap().contains("unknown loss weighting"));
        assert!(build("ew", &[], 0, 0).is_err());
        assert!(build("ew", &[p("T", "2")], 2, 0).err().unwrap().contains("no parameter"));
        assert!(build("dwa", &[p("T", "abc")], 2, 0).err().unwrap().contains("must be a number"));
        assert!(build("dwa", &[p("T", "0")], 2, 0).is_err());
        assert!(build("dwa", &[p("T", "-1")], 2, 0).is_err());
        assert!(build("dwa", &[p("T", "inf")], 2, 0).is_err());
        assert!(build("dwa", &[p("T", "NaN")], 2, 0).is_err());
        assert!(build("dwa", &[p("T", "1"), p("T", "2")], 2, 0).err().unwrap().contains("twice"));
        assert!(build("stch", &[p("warmup_epoch", "1.5")], 2, 0).err().unwrap().contains("whole number"));
        assert!(build("famo", &[p("gamma", "-0.1")], 2, 0).is_err());
        assert!(build("famo", &[p("gamma", "0")], 2, 0).is_ok());
        assert!(build("gradnorm", &[p("alpha", "0.12"), p("lr", "0.025")], 2, 0).is_ok());
        assert!(build("stch", &[p("warmup_epoch", " 0 "), p("mu", "0.5")], 2, 0).is_ok());
    }

    /// Hardening: every parameter has a finite upper bound that parsing enforces (with a message
    /// naming the range), and its default lies inside.
    #[test]
    fn every_parameter_has_finite_bounds_that_parsing_enforces() {
        let mut checked = 0;
        for d in descriptions() {
            for q in &d.params {
                let hi = q.max.unwrap_or_else(|| panic!("{} {} has no upper bound", d.name, q.name));
                assert!(q.min.is_finite() && hi.is_finite() && q.min < hi, "{} {}", d.name, q.name);
                assert!(q.check(q.default).is_ok() && q.check(hi).is_ok(), "{} {}", d.name, q.name);
                let above = if q.integer { hi + 1.0 } else { hi * 2.0 };
                let e = WeightingSpec::parse(d.name, &[p(q.name, &above.to_string())]).unwrap_err();
                assert!(
                    e.contains(&format!("parameter '{}' must be", q.name)) && e.contains(&format!("≤ {hi}")),
                    "{e}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 12);
        let e = WeightingSpec::parse("stch", &[p("warmup_epoch", "4294967295")]).unwrap_err();
        assert_eq!(e, "parameter 'warmup_epoch' must be ≥ 0 and ≤ 1000000, got 4294967295");
    }

    #[test]
    fn every_weighting_is_finite_and_survives_hostile_input() {
        let j = DMatrix::from_row_slice(3, 2, &[1.0, 2.0, -3.0, 0.5, 0.0, 0.0]);
        let losses: [&[f64]; 6] = [
            &[1.0, 2.0, 3.0],
            &[0.0, 0.0, 0.0],
            &[-1.0, 1e-300, 1e300],
            &[0.5, 0.5, 0.5],
            &[1e-30, 4.0, 2.0],
            &[3.0, 1.0, 0.1],
        ];
        for name in NAMES {
            let mut w = build(name, &[p_warm(name)].concat(), 3, 1).unwrap();
            let mut step = 0;
            for epoch in 0..6 {
                for l in losses {
                    let ctx = WeightingContext::new(l, step, epoch).with_jacobian(&j);
                    let out = w.weights(&ctx);
                    assert_eq!(out.len(), 3, "{name}");
                    assert!(out.iter().all(|x| x.is_finite()), "{name} at {l:?}: {out:?}");
                    w.after_step(&[0.9, 0.0, -2.0]);
                    step += 1;
                }
            }
            // Wrong number of losses: equal weights, no panic.
            assert_eq!(w.weights(&WeightingContext::new(&[1.0, 1.0], step, 6)), vec![1.0, 1.0]);
            // NaN losses: no panic.
            let _ = w.weights(&WeightingContext::new(&[f64::NAN, 1.0, 1.0], step + 1, 6));
            w.reset();
        }
    }

    fn p_warm(name: &str) -> Vec<(String, String)> {
        if name == "stch" {
            vec![p("warmup_epoch", "1")]
        } else {
            vec![]
        }
    }
}
