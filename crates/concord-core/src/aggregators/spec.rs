//! One aggregator as a typed value: its registry entry and its parameters, parsed and
//! range-checked once (from a CLI flag, a URL key, a config file) and handed on as is. Every
//! layer below — the trainer, the GPU weighting, the page — reads the typed values; nothing
//! parses a parameter string again.
//!
//! What depends on the number of tasks m (a list has m entries, Nash-MTL's n_tasks = m, Krum's
//! and TrimmedMean's row counts) is checked by [`AggregatorSpec::check_tasks`], which `build`
//! calls.

use super::registry::{self, AggregatorInfo, ParamDefault, ParamSpec, Range};
use super::{
    Aggregator, AlignedMtl, CaGrad, Config, Constant, CrMogm, DbMtl, DualProj, ExcessMtl, FairGrad, GradDrop, GradVac,
    ImtlG, Krum, Mean, Mgda, MoCo, MoDo, NashMtl, PcGrad, Pcd, Random, ScaleMode, SdmGrad, Sum, TrimmedMean, UpGrad,
};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A parsed, range-checked parameter value.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue {
    Float(f64),
    Int(usize),
    List(Vec<f64>),
    Word(&'static str),
}

impl fmt::Display for ParamValue {
    /// As the text form writes it: lists with `;` (a `,` separates methods in a URL).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Float(v) => write!(f, "{v}"),
            ParamValue::Int(v) => write!(f, "{v}"),
            ParamValue::List(v) => {
                let parts: Vec<String> = v.iter().map(|x| x.to_string()).collect();
                write!(f, "{}", parts.join(";"))
            }
            ParamValue::Word(w) => write!(f, "{w}"),
        }
    }
}

impl Serialize for ParamValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ParamValue::Float(v) => s.serialize_f64(*v),
            ParamValue::Int(v) => s.serialize_u64(*v as u64),
            ParamValue::List(v) => v.serialize(s),
            ParamValue::Word(w) => s.serialize_str(w),
        }
    }
}

/// Parse one raw value against its parameter's range. Lists may be written `1,2,3`, `1;2;3` or
/// `[1, 2, 3]`; their length is checked against m later.
pub(crate) fn parse_value(method: &str, spec: &ParamSpec, raw: &str) -> Result<ParamValue, String> {
    let raw = raw.trim();
    let bad = || format!("{method}: {} must be {}, got '{raw}'", spec.name, spec.range);
    // Each value is checked against its range's finite bounds (NaN fails every comparison).
    let within = |v: f64| spec.range.admits(v);
    match spec.range {
        Range::NonNegative { .. } | Range::Positive { .. } | Range::UnitInterval | Range::UnitIntervalOpen => {
            let v: f64 = raw.parse().map_err(|_| bad())?;
            within(v).then_some(ParamValue::Float(v)).ok_or_else(bad)
        }
        Range::Count { .. } | Range::PositiveCount { .. } | Range::EqualsM => {
            let v: usize = raw.parse().map_err(|_| bad())?;
            within(v as f64).then_some(ParamValue::Int(v)).ok_or_else(bad)
        }
        Range::FiniteList { .. } | Range::NonNegativeList { .. } => {
            let inner = raw.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(raw);
            let entries: Vec<f64> = inner
                .split([',', ';'])
                .map(|x| x.trim().parse::<f64>())
                .collect::<Result<_, _>>()
                .map_err(|_| bad())?;
            entries.iter().all(|x| within(*x)).then_some(ParamValue::List(entries)).ok_or_else(bad)
        }
        Range::OneOf(words) => words.iter().find(|w| **w == raw).map(|w| ParamValue::Word(w)).ok_or_else(bad),
    }
}

/// An aggregator with its parameters: the given ones, plus every literal default. Parameters
/// whose default depends on m (a preference vector's 1/m, Nash-MTL's n_tasks) stay absent
/// unless given.
#[derive(Clone, Debug)]
pub struct AggregatorSpec {
    info: &'static AggregatorInfo,
    /// In the table's order.
    values: Vec<(&'static str, ParamValue)>,
    /// The names the user gave (the rest are defaults); `to_text` writes only these.
    given: Vec<&'static str>,
}

impl AggregatorSpec {
    /// `name` with `key=value` parameters, each checked against the registry's table: unknown
    /// names, unparsable or out-of-range values, a parameter given twice, a required one missing.
    pub fn parse(name: &str, given: &[(String, String)]) -> Result<Self, String> {
        let info = registry::find(name.trim()).ok_or_else(|| {
            format!("unknown aggregator '{}' (expected one of: {})", name.trim(), registry::names().join(", "))
        })?;
        let method = info.name;
        let mut raw: Vec<(&'static ParamSpec, ParamValue)> = Vec::new();
        for (key, value) in given {
            let key = key.trim();
            let spec = info.param(key).ok_or_else(|| {
                if info.params.is_empty() {
                    format!("{method} has no parameters, got '{key}'")
                } else {
                    let names: Vec<_> = info.params.iter().map(|p| p.name).collect();
                    format!("{method} has no parameter '{key}' (parameters: {})", names.join(", "))
                }
            })?;
            if raw.iter().any(|(p, _)| p.name == spec.name) {
                return Err(format!("{method}: parameter {key} is given twice"));
            }
            raw.push((spec, parse_value(method, spec, value)?));
        }
        // In the table's order, whatever order they came in: one spec, one text and one JSON
        // form (a JSON object's keys come back sorted; the fuzzer found `upgrad:reg_eps=0:norm_eps=0`
        // failing its JSON round trip when the user's order was kept).
        let given: Vec<&'static str> =
            info.params.iter().map(|p| p.name).filter(|n| raw.iter().any(|(p, _)| p.name == *n)).collect();
        let mut values = Vec::new();
        for spec in info.params {
            if let Some((_, v)) = raw.iter().find(|(p, _)| p.name == spec.name) {
                values.push((spec.name, v.clone()));
                continue;
            }
            match spec.default {
                ParamDefault::Required => {
                    return Err(format!(
                        "{method} needs the parameter {} ({}: {})",
                        spec.name, spec.range, spec.meaning
                    ))
                }
                ParamDefault::Value(v) => values.push((spec.name, parse_value(method, spec, v)?)),
                ParamDefault::Computed(_) => {}
            }
        }
        Ok(AggregatorSpec { info, values, given })
    }

    /// `name` with its defaults (an error for a method with a required parameter).
    pub fn named(name: &str) -> Result<Self, String> {
        Self::parse(name, &[])
    }

    /// The registry name (`mean`, `upgrad`, …).
    pub fn name(&self) -> &'static str {
        self.info.name
    }

    /// Its registry entry: label, description, parameters, properties.
    pub fn info(&self) -> &'static AggregatorInfo {
        self.info
    }

    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        self.values.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Every parameter that has a value (given or a literal default), in the table's order.
    pub fn values(&self) -> &[(&'static str, ParamValue)] {
        &self.values
    }

    /// The parameters the user gave, as `key=value` (lists with `;`).
    pub fn given(&self) -> Vec<(&'static str, String)> {
        self.given.iter().map(|k| (*k, self.get(k).expect("given values are kept").to_string())).collect()
    }

    /// A float parameter (with its default).
    pub fn float(&self, name: &str) -> Option<f64> {
        match self.get(name) {
            Some(ParamValue::Float(v)) => Some(*v),
            _ => None,
        }
    }

    pub fn int(&self, name: &str) -> Option<usize> {
        match self.get(name) {
            Some(ParamValue::Int(v)) => Some(*v),
            _ => None,
        }
    }

    pub fn list(&self, name: &str) -> Option<&[f64]> {
        match self.get(name) {
            Some(ParamValue::List(v)) => Some(v),
            _ => None,
        }
    }

    pub fn word(&self, name: &str) -> Option<&'static str> {
        match self.get(name) {
            Some(ParamValue::Word(w)) => Some(w),
            _ => None,
        }
    }

    /// Set one parameter from text (a live edit, e.g. CAGrad's c slider), checked as `parse` does.
    pub fn with_param(&self, key: &str, raw: &str) -> Result<Self, String> {
        let mut given: Vec<(String, String)> =
            self.given().into_iter().filter(|(k, _)| *k != key).map(|(k, v)| (k.to_string(), v)).collect();
        given.push((key.to_string(), raw.to_string()));
        Self::parse(self.name(), &given)
    }

    /// `cagrad` or `cagrad:c=0.3` (the given parameters only, lists with `;`).
    pub fn to_text(&self) -> String {
        let mut s = self.name().to_string();
        for (k, v) in self.given() {
            s.push_str(&format!(":{k}={v}"));
        }
        s
    }

    /// `CAGrad (c=0.3)`: the label with the given parameters, for legends.
    pub fn label(&self) -> String {
        let given = self.given();
        if given.is_empty() {
            return self.info.label.to_string();
        }
        let parts: Vec<String> = given.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{} ({})", self.info.label, parts.join(", "))
    }

    /// What depends on m: list lengths, Nash-MTL's n_tasks, the row counts Krum and
    /// TrimmedMean need.
    pub fn check_tasks(&self, m: usize) -> Result<(), String> {
        let method = self.name();
        if m == 0 {
            return Err(format!("{method} needs at least one row (task), got m = 0"));
        }
        for (name, value) in &self.values {
            let spec = self.info.param(name).expect("values come from the table");
            match (spec.range, value) {
                (Range::FiniteList { .. } | Range::NonNegativeList { .. }, ParamValue::List(v)) if v.len() != m => {
                    return Err(format!(
                        "{method}: {name} has {} entries but the matrix has m = {m} rows (one entry per row)",
                        v.len()
                    ))
                }
                (Range::EqualsM, ParamValue::Int(v)) if *v != m => {
                    return Err(format!("{method}: {name} = {v} but the matrix has m = {m} rows"))
                }
                _ => {}
            }
        }
        match method {
            "krum" => {
                let (f, selected) = (self.int("n_byzantine").unwrap_or(0), self.int("n_selected").unwrap_or(1));
                if m < f.saturating_add(3) {
                    return Err(format!(
                        "krum with n_byzantine = {f} needs m ≥ n_byzantine + 3 = {} rows, got m = {m}",
                        f.saturating_add(3)
                    ));
                }
                if m < selected {
                    return Err(format!("krum with n_selected = {selected} needs m ≥ n_selected rows, got m = {m}"));
                }
            }
            "trimmed-mean" => {
                let t = self.int("trim_number").unwrap_or(0);
                let needed = t.saturating_mul(2).saturating_add(1);
                if m < needed {
                    return Err(format!(
                        "trimmed-mean with trim_number = {t} needs m ≥ 2·trim_number + 1 = {needed} rows, got m = {m}"
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether the method reads the task losses as well as J: MoCo and DB-MTL always (the
    /// registry's `needs_losses`), MGDA with `gn=loss` or `gn=loss+`. Such a method runs only
    /// where the caller has the losses and calls `Aggregator::aggregate_with_losses`.
    pub fn needs_losses(&self) -> bool {
        self.info.needs_losses || matches!(self.word("gn"), Some("loss" | "loss+"))
    }

    /// `build` for a caller that has only J (`concord aggregate` without `--losses`, `concord
    /// bench aggregate`): a method that reads the task losses is refused with the reason, never
    /// run on made-up losses.
    pub fn build_without_losses(&self, m: usize, seed: u64) -> Result<Box<dyn Aggregator>, String> {
        if self.needs_losses() {
            return Err(format!(
                "{} reads the task losses as well as the matrix (a loss-aware method) and none were given: \
                 it runs where the losses are known (training: concord train, the page)",
                self.to_text()
            ));
        }
        self.build(m, seed)
    }

    /// A fresh aggregator for an m-row Jacobian; `seed` feeds the seeded methods. If
    /// [`AggregatorSpec::needs_losses`], the caller must pass the losses
    /// (`Aggregator::aggregate_with_losses`).
    pub fn build(&self, m: usize, seed: u64) -> Result<Box<dyn Aggregator>, String> {
        self.check_tasks(m)?;
        let method = self.name();
        let prefix = |e: String| format!("{method}: {e}");
        // The accessors' `expect`s can only fail on a mismatch between the table and this match
        // (the build-every-method tests catch that), never on user input.
        let float = |k: &str| self.float(k).unwrap_or_else(|| panic!("{method}: {k} has no float default"));
        let int = |k: &str| self.int(k).unwrap_or_else(|| panic!("{method}: {k} has no integer default"));
        let list = |k: &str| self.list(k).map(<[f64]>::to_vec);
        let aggregator: Box<dyn Aggregator> = match method {
            "mean" => Box::new(Mean),
            "sum" => Box::new(Sum),
            "constant" => Box::new(Constant::new(list("weights").expect("required")).map_err(prefix)?),
            "mgda" => Box::new(Mgda {
                epsilon: float("epsilon"),
                max_iters: int("max_iters"),
                l2_normalize: matches!(self.word("gn"), Some("l2" | "loss+")),
                loss_normalize: matches!(self.word("gn"), Some("loss" | "loss+")),
            }),
            "pcgrad" => Box::new(PcGrad::new(seed)),
            "gradvac" => Box::new(GradVac::with_params(float("beta"), float("eps"), seed).map_err(prefix)?),
            "cagrad" => Box::new(CaGrad {
                c: float("c"),
                norm_eps: float("norm_eps"),
                rescale: self.word("rescale").and_then(|r| r.parse().ok()).unwrap_or(0),
            }),
            "upgrad" => {
                Box::new(UpGrad::new(list("pref_vector"), float("norm_eps"), float("reg_eps")).map_err(prefix)?)
            }
            "dualproj" => {
                Box::new(DualProj::new(list("pref_vector"), float("norm_eps"), float("reg_eps")).map_err(prefix)?)
            }
            "imtl-g" => Box::new(ImtlG),
            "aligned-mtl" => {
                let mode = ScaleMode::parse(self.word("scale_mode").expect("default")).map_err(prefix)?;
                Box::new(AlignedMtl::new(list("pref_vector"), mode).map_err(prefix)?)
            }
            "config" => Box::new(Config::new(list("pref_vector")).map_err(prefix)?),
            "graddrop" => Box::new(GradDrop::new(seed)),
            "random" => Box::new(Random::new(seed)),
            "krum" => {
                let krum = Krum::new(int("n_byzantine"), int("n_selected")).map_err(prefix)?;
                krum.check_tasks(m).map_err(prefix)?;
                Box::new(krum)
            }
            "trimmed-mean" => Box::new(TrimmedMean::new(int("trim_number"))),
            "nash-mtl" => Box::new(
                NashMtl::with_params(
                    self.int("n_tasks").unwrap_or(m),
                    float("max_norm"),
                    int("update_weights_every") as u64,
                    int("optim_niter"),
                )
                .map_err(prefix)?,
            ),
            "fairgrad" => {
                let alpha = float("alpha");
                let built = match self.int("max_iters") {
                    Some(k) => FairGrad::with_max_iters(alpha, k),
                    None => FairGrad::new(alpha),
                };
                Box::new(built.map_err(prefix)?)
            }
            "excess-mtl" => {
                Box::new(ExcessMtl::new(float("robust_step_size"), int("n_warmup_steps") as u64).map_err(prefix)?)
            }
            "pcd" => Box::new(Pcd::new(float("tau"), float("beta"), float("eps")).map_err(prefix)?),
            "cr-mogm" => {
                let inner = registry::build(self.word("inner").expect("default"), &[], m, seed).map_err(prefix)?;
                Box::new(CrMogm::new(inner, float("alpha"), list("initial_weights")).map_err(prefix)?)
            }
            "modo" => Box::new(MoDo::new(float("gamma"), float("rho")).map_err(prefix)?),
            "sdmgrad" => Box::new(
                SdmGrad::new(float("lr"), float("momentum"), int("n_iter"), float("lambda"), list("pref_vector"))
                    .map_err(prefix)?,
            ),
            "moco" => Box::new(MoCo::new(
                float("beta"),
                float("beta_sigma"),
                float("gamma"),
                float("gamma_sigma"),
                float("rho"),
            )),
            "db-mtl" => Box::new(DbMtl::new(float("beta"), float("beta_sigma"))),
            other => unreachable!("registry entry '{other}' has no constructor"),
        };
        Ok(aggregator)
    }
}

impl PartialEq for AggregatorSpec {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name() && self.values == other.values && self.given == other.given
    }
}

impl fmt::Display for AggregatorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// `{"name": "cagrad", "c": 0.3}`: the name and the given parameters, typed.
impl Serialize for AggregatorSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(1 + self.given.len()))?;
        map.serialize_entry("name", self.name())?;
        for k in &self.given {
            map.serialize_entry(k, self.get(k).expect("given values are kept"))?;
        }
        map.end()
    }
}

/// Reads `{"name": …, key: value…}` (numbers, strings or arrays) or the text form
/// `"cagrad:c=0.3"`, and validates it exactly as `parse` does.
impl<'de> Deserialize<'de> for AggregatorSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let (name, params) = named_params(&v).map_err(D::Error::custom)?;
        AggregatorSpec::parse(&name, &params).map_err(D::Error::custom)
    }
}

/// `(name, [(key, raw)])` from a JSON spec: `"name:k=v:…"` or `{"name": …, "k": v, …}`.
pub(crate) fn named_params(v: &serde_json::Value) -> Result<(String, Vec<(String, String)>), String> {
    match v {
        serde_json::Value::String(text) => {
            let mut parts = text.split(':');
            let name = parts.next().unwrap_or("").trim().to_string();
            let params = parts
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| p.split_once('=').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| format!("'{text}': parameters must be key=value"))?;
            Ok((name, params))
        }
        serde_json::Value::Object(map) => {
            let name = map.get("name").and_then(|n| n.as_str()).ok_or("a method needs a \"name\"")?.to_string();
            let params =
                map.iter().filter(|(k, _)| k.as_str() != "name").map(|(k, v)| (k.clone(), raw_text(v))).collect();
            Ok((name, params))
        }
        other => Err(format!("a method is a name or an object, got {other}")),
    }
}

/// A JSON value as the text a command line would give.
fn raw_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => items.iter().map(raw_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn parsed_once_then_typed() {
        let s = AggregatorSpec::parse("upgrad", &kv(&[("pref_vector", "[1, 2, 3]"), ("reg_eps", "0")])).unwrap();
        assert_eq!(s.list("pref_vector"), Some(&[1.0, 2.0, 3.0][..]));
        assert_eq!(s.float("reg_eps"), Some(0.0));
        assert_eq!(s.float("norm_eps"), Some(1e-4), "literal defaults are filled in");
        assert_eq!(s.to_text(), "upgrad:pref_vector=1;2;3:reg_eps=0");
        assert_eq!(s.label(), "UPGrad (pref_vector=1;2;3, reg_eps=0)");
        assert!(s.check_tasks(3).is_ok());
        let e = s.check_tasks(2).unwrap_err();
        assert!(e.contains("pref_vector has 3 entries but the matrix has m = 2 rows"), "{e}");
    }

    #[test]
    fn text_and_json_round_trip() {
        for text in [
            "mean",
            "cagrad:c=0.3",
            "aligned-mtl:scale_mode=rmse",
            "krum:n_byzantine=1:n_selected=2",
            "constant:weights=1;-2",
        ] {
            let (name, params) = named_params(&serde_json::Value::String(text.into())).unwrap();
            let s = AggregatorSpec::parse(&name, &params).unwrap();
            assert_eq!(s.to_text(), text);
            let json = serde_json::to_string(&s).unwrap();
            let back: AggregatorSpec = serde_json::from_str(&json).unwrap();
            assert_eq!(back, s, "{json}");
            let from_text: AggregatorSpec = serde_json::from_str(&format!("\"{text}\"")).unwrap();
            assert_eq!(from_text, s);
        }
        let e = serde_json::from_str::<AggregatorSpec>(r#"{"name": "cagrad", "c": -1}"#).unwrap_err().to_string();
        assert!(e.contains("c must be finite, ≥ 0"), "{e}");
        assert_eq!(
            serde_json::to_value(AggregatorSpec::parse("cagrad", &kv(&[("c", "0.25")])).unwrap()).unwrap(),
            serde_json::json!({"name": "cagrad", "c": 0.25})
        );
    }

    #[test]
    fn live_edit_keeps_the_other_parameters() {
        let s = AggregatorSpec::parse("cagrad", &kv(&[("norm_eps", "0.001")])).unwrap();
        let t = s.with_param("c", "0.9").unwrap();
        assert_eq!(t.float("c"), Some(0.9));
        assert_eq!(t.float("norm_eps"), Some(0.001));
        assert!(s.with_param("c", "-1").is_err());
    }
}
