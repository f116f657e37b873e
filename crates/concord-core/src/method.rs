//! A run's method as one typed value: an aggregator and, optionally, a loss weighting and a
//! conflict-aware sample weighting (`crate::sample_weighting`), each with its parameters parsed
//! and range-checked once.
//!
//! The text form (URL keys, `--method` with `--param`, legends) is
//! `aggregator[+weighting][+sample-weighting][:key=value…]`, e.g. `cagrad:c=0.3`,
//! `mean+gradnorm:alpha=1.5` or `upgrad+harmonize` (the two `+` parts may come in either order:
//! their names differ). A parameter goes to the aggregator if it has one of that name, else to
//! the weighting, else to the sample weighting. Lists
//! are written with `;` (`upgrad:pref_vector=1;2`), since `,` separates the methods of a URL;
//! `,` is accepted too where nothing else is split on it (a CLI `--param`).

use crate::aggregators::{registry, AggregatorSpec};
use crate::sample_weighting::{self, SampleWeightingSpec};
use crate::weightings::{self, WeightingSpec};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodSpec {
    pub aggregator: AggregatorSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weighting: Option<WeightingSpec>,
    /// A stage before both that rewrites the batch's shared Jacobian from each sample's own
    /// task conflict (MLP models; the CPU reference path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_weighting: Option<SampleWeightingSpec>,
}

impl MethodSpec {
    /// An aggregator with its defaults and no loss weighting (`mean`, `mgda`, …). Panics only on
    /// a name that is not in the registry or needs a parameter: for literals in code.
    pub fn plain(aggregator: &str) -> Self {
        MethodSpec {
            aggregator: AggregatorSpec::named(aggregator).expect("a registry name without required parameters"),
            weighting: None,
            sample_weighting: None,
        }
    }

    /// The aggregator `name` with `key=value` parameters (as `--param` gives them), and an
    /// optional weighting with its own.
    pub fn from_parts(
        aggregator: &str,
        params: &[(String, String)],
        weighting: Option<(&str, &[(String, String)])>,
    ) -> Result<Self, String> {
        let aggregator = AggregatorSpec::parse(aggregator, params)?;
        let weighting = match weighting {
            None => None,
            Some((name, p)) => Some(WeightingSpec::parse(name, p)?),
        };
        let spec = MethodSpec { aggregator, weighting, sample_weighting: None };
        spec.check_loss_aware()?;
        Ok(spec)
    }

    /// Parse the text form `aggregator[+weighting][:key=value…]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = text.split(':');
        let head = parts.next().unwrap_or("").trim();
        let mut names = head.split('+').map(str::trim);
        let agg = names.next().unwrap_or("");
        let info = registry::find(agg)
            .ok_or_else(|| format!("unknown aggregator '{agg}' (expected one of: {})", registry::names().join(", ")))?;
        let (mut weighting, mut sample) = (None, None);
        for name in names {
            if name.is_empty() || name == "none" {
                continue;
            }
            if let Some(d) = weightings::describe(name) {
                if weighting.replace(d).is_some() {
                    return Err(format!("'{text}' names two loss weightings"));
                }
            } else if let Some(d) = sample_weighting::describe(name) {
                if sample.replace(d).is_some() {
                    return Err(format!("'{text}' names two sample weightings"));
                }
            } else {
                return Err(format!(
                    "unknown loss weighting '{name}' (expected one of: {}; or a sample weighting: {})",
                    weightings::NAMES.join(", "),
                    sample_weighting::NAMES.join(", ")
                ));
            }
        }
        let (mut agg_params, mut w_params, mut s_params) = (Vec::new(), Vec::new(), Vec::new());
        for p in parts.map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = p.split_once('=').ok_or_else(|| format!("'{p}' is not key=value"))?;
            let (k, v) = (k.trim().to_string(), v.trim().to_string());
            if info.param(&k).is_some() {
                agg_params.push((k, v));
            } else if weighting.as_ref().is_some_and(|d| d.params.iter().any(|q| q.name == k)) {
                w_params.push((k, v));
            } else if sample.as_ref().is_some_and(|d| d.params.iter().any(|q| q.name == k)) {
                s_params.push((k, v));
            } else {
                let mut owner = info.label.to_string();
                for label in
                    [weighting.as_ref().map(|d| d.label), sample.as_ref().map(|d| d.label)].into_iter().flatten()
                {
                    owner = format!("{owner} + {label}");
                }
                return Err(format!("{owner} has no parameter '{k}'"));
            }
        }
        let aggregator = AggregatorSpec::parse(info.name, &agg_params)?;
        let weighting = match weighting {
            None => None,
            Some(d) => Some(WeightingSpec::parse(d.name, &w_params)?),
        };
        let sample_weighting = match sample {
            None => None,
            Some(d) => Some(SampleWeightingSpec::parse(d.name, &s_params)?),
        };
        let spec = MethodSpec { aggregator, weighting, sample_weighting };
        spec.check_loss_aware()?;
        Ok(spec)
    }

    /// A loss-aware aggregator (MoCo, DB-MTL, MGDA `gn=loss` / `loss+`) reads the raw task
    /// losses, as LibMTL runs it: there it is the run's only weighting. A loss weighting on top
    /// would make its input ill-defined (raw or weighted losses? MoCo's L_i·g_i/‖g_i‖ and
    /// MGDA's `gn=loss` cancel a row scale anyway), so the combination is refused.
    pub fn check_loss_aware(&self) -> Result<(), String> {
        match &self.weighting {
            Some(w) if self.aggregator.needs_losses() => Err(format!(
                "{} reads the raw task losses itself (LibMTL runs it as the only weighting): \
                 it cannot be combined with the loss weighting '{}' (leave the '+{}' out)",
                self.aggregator.to_text(),
                w.name(),
                w.name()
            )),
            _ => Ok(()),
        }
    }

    /// The text form; `parse(to_text())` gives the same spec.
    pub fn to_text(&self) -> String {
        let mut s = self.aggregator.name().to_string();
        if let Some(w) = &self.weighting {
            s.push('+');
            s.push_str(w.name());
        }
        if let Some(w) = &self.sample_weighting {
            s.push('+');
            s.push_str(w.name());
        }
        for (k, v) in self.aggregator.given() {
            s.push_str(&format!(":{k}={v}"));
        }
        if let Some(w) = &self.weighting {
            for (k, v) in w.given() {
                s.push_str(&format!(":{k}={v}"));
            }
        }
        if let Some(w) = &self.sample_weighting {
            for (k, v) in w.given() {
                s.push_str(&format!(":{k}={v}"));
            }
        }
        s
    }

    /// `UPGrad`, `GradNorm (alpha=1.5)`, `UPGrad + UW`, `Mean + Harmonize`: for legends. Mean
    /// with a weighting is named by the weighting alone (it is the plain weighted sum).
    pub fn label(&self) -> String {
        let mut params: Vec<String> = self.aggregator.given().iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut base = match &self.weighting {
            None => self.aggregator.info().label.to_string(),
            Some(w) => {
                params.extend(w.given().iter().map(|(k, v)| format!("{k}={v}")));
                let wl = w.describe().label;
                if self.aggregator.name() == "mean" {
                    wl.to_string()
                } else {
                    format!("{} + {wl}", self.aggregator.info().label)
                }
            }
        };
        if let Some(w) = &self.sample_weighting {
            params.extend(w.given().iter().map(|(k, v)| format!("{k}={v}")));
            base = format!("{base} + {}", w.describe().label);
        }
        if params.is_empty() {
            base
        } else {
            format!("{base} ({})", params.join(", "))
        }
    }

    /// Checks what depends on the number of tasks m (and the loss-aware combination, for specs
    /// that were deserialised rather than parsed).
    pub fn check_tasks(&self, m: usize) -> Result<(), String> {
        self.check_loss_aware()?;
        self.aggregator.check_tasks(m)?;
        if m == 0 && self.weighting.is_some() {
            return Err("a loss weighting needs at least one task".into());
        }
        Ok(())
    }
}

impl fmt::Display for MethodSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl std::str::FromStr for MethodSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        MethodSpec::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_and_routes_parameters() {
        for text in [
            "mean",
            "cagrad:c=0.3",
            "mean+gradnorm:alpha=1.5",
            "upgrad+uw:pref_vector=1;2:lr=0.01",
            "imtl-g+famo",
            "mean+harmonize",
            "upgrad+uw+curriculum:pref_vector=1;2:lr=0.01:start=0.25",
            "mgda+conflict-mask:top=20",
            "moco",
            "moco:gamma=0.3:rho=0.01",
            "db-mtl:beta=0.5",
            "mgda:gn=loss+",
            "moco+harmonize",
            "mgda+uw:gn=l2",
        ] {
            let s = MethodSpec::parse(text).unwrap();
            assert_eq!(s.to_text(), text);
            assert_eq!(MethodSpec::parse(&s.to_text()).unwrap(), s);
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(serde_json::from_str::<MethodSpec>(&json).unwrap(), s, "{json}");
        }
        let s = MethodSpec::parse("upgrad+uw:pref_vector=1;2:lr=0.01").unwrap();
        assert_eq!(s.aggregator.list("pref_vector"), Some(&[1.0, 2.0][..]));
        assert_eq!(s.weighting.as_ref().unwrap().get("lr"), Some(0.01));
        assert_eq!(MethodSpec::parse("mean+gradnorm:alpha=1.5").unwrap().label(), "GradNorm (alpha=1.5)");
        assert_eq!(MethodSpec::parse("cagrad:c=0.3").unwrap().label(), "CAGrad (c=0.3)");
        // The sample weighting may come first; it prints after the loss weighting.
        let s = MethodSpec::parse("upgrad+curriculum+uw:anneal=20").unwrap();
        assert_eq!(s.to_text(), "upgrad+uw+curriculum:anneal=20");
        assert_eq!(s.sample_weighting.as_ref().unwrap().get("anneal"), Some(20.0));
        assert_eq!(s.label(), "UPGrad + UW + Conflict curriculum (anneal=20)");
        assert_eq!(MethodSpec::parse("mean+harmonize").unwrap().label(), "Mean + Harmonize");
    }

    /// Hardening: links that asked for an unbounded solve (issue 14) are spec errors naming the
    /// range, which the page shows as notices.
    #[test]
    fn hostile_solver_parameters_are_rejected_with_their_range() {
        let cases = [
            ("mgda+dwa:epsilon=0:max_iters=4294967295", "max_iters must be integer ≥ 1 and ≤ 100000, got '4294967295'"),
            ("mgda:max_iters=18446744073709551615", "max_iters must be integer ≥ 1 and ≤ 100000"),
            ("mgda:epsilon=1e300", "epsilon must be finite, ≥ 0 and ≤ 1, got '1e300'"),
            ("nash-mtl:optim_niter=1000000000", "optim_niter must be integer ≥ 1 and ≤ 1000"),
            ("fairgrad:alpha=1:max_iters=4294967295", "max_iters must be integer ≥ 1 and ≤ 100000"),
            ("fairgrad:alpha=1e308", "alpha must be finite, ≥ 0 and ≤ 1000"),
            ("cagrad:c=1e300", "c must be finite, ≥ 0 and ≤ 100"),
            ("upgrad:reg_eps=1e200", "reg_eps must be finite, ≥ 0 and ≤ 1000"),
            ("krum:n_byzantine=4294967295", "n_byzantine must be integer ≥ 0 and ≤ 1000"),
            ("trimmed-mean:trim_number=4294967295", "trim_number must be integer ≥ 0 and ≤ 1000"),
            ("constant:weights=1;1e300", "weights must be m comma-separated finite numbers in [-1000000, 1000000]"),
            ("mean+stch:warmup_epoch=4294967295", "'warmup_epoch' must be ≥ 0 and ≤ 1000000"),
            ("mean+gradnorm:lr=1e300", "'lr' must be > 0 and ≤ 10"),
            ("mean+dwa:T=1e300", "'T' must be > 0 and ≤ 1000"),
        ];
        for (text, needle) in cases {
            let e = MethodSpec::parse(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
        // The published defaults and generous values around them still parse.
        for text in
            ["mgda:epsilon=1e-7:max_iters=100000", "nash-mtl:optim_niter=200", "fairgrad:alpha=2:max_iters=5000"]
        {
            MethodSpec::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        }
    }

    #[test]
    fn bad_text_is_an_error_naming_the_problem() {
        let cases = [
            ("upgrade", "unknown aggregator 'upgrade'"),
            ("mean+nope", "unknown loss weighting 'nope'"),
            ("mean:c=1", "Mean has no parameter 'c'"),
            ("cagrad:c", "'c' is not key=value"),
            ("cagrad:c=-1", "c must be finite, ≥ 0"),
            ("krum", "needs the parameter n_byzantine"),
            ("mean+dwa:T=0", "parameter 'T' must be > 0"),
            ("mean+harmonize+curriculum", "names two sample weightings"),
            ("mean+uw+dwa", "names two loss weightings"),
            ("mean+conflict-mask:top=0", "parameter 'top' must be > 0 and ≤ 100"),
            ("mean+curriculum:start=1.5", "parameter 'start' must be > 0 and ≤ 1"),
            ("mean+harmonize:start=0.5", "Mean + Harmonize has no parameter 'start'"),
            ("mean+harmonise", "or a sample weighting: harmonize, curriculum, conflict-mask"),
            ("moco+uw", "moco reads the raw task losses itself"),
            ("db-mtl+ew", "cannot be combined with the loss weighting 'ew'"),
            ("mgda+famo:gn=loss+", "mgda:gn=loss+ reads the raw task losses"),
            ("moco:beta=1.5", "beta must be in [0, 1]"),
            ("db-mtl:beta_sigma=-1", "beta_sigma must be finite, ≥ 0 and ≤ 10"),
            ("mgda:gn=loss2", "gn must be one of none, l2, loss, loss+"),
        ];
        for (text, needle) in cases {
            let e = MethodSpec::parse(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
