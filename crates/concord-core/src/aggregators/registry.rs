//! Every aggregator by its CLI name: a description, its parameters (type, default, valid range,
//! meaning) and its properties, plus [`build`], which validates `key=value` parameters against
//! that table and constructs the aggregator for an m-row Jacobian.
//!
//! Each aggregator's file holds its own entry (`INFO`, next to its code); [`AGGREGATORS`] lists
//! them in display order. That list is the single source of truth for `concord methods`,
//! `concord aggregate`, `concord bench aggregate` and README's Methods table: numeric defaults are
//! parsed from it by [`build`], and its property columns are checked against the aggregators by
//! this module's tests. Semantics and defaults follow torchjd 0.18 (aggregators.md §3); the
//! properties are torchjd's documented table (aggregators.md §4).

use super::spec::AggregatorSpec;
use super::Aggregator;
use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;
use std::fmt;

/// One row of torchjd's property table: documented to hold, documented not to hold, or absent
/// from the table (GradVac, FairGrad). Serialises as "yes", "no", "not documented".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Property {
    Yes,
    No,
    NotDocumented,
}

impl Property {
    pub fn as_str(self) -> &'static str {
        match self {
            Property::Yes => "yes",
            Property::No => "no",
            Property::NotDocumented => "not documented",
        }
    }

    /// ✔, ✘ or – (for tables).
    pub fn mark(self) -> &'static str {
        match self {
            Property::Yes => "✔",
            Property::No => "✘",
            Property::NotDocumented => "–",
        }
    }
}

impl Serialize for Property {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The three documented properties (aggregators.md §4) and a note on their caveats.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Properties {
    /// J·A(J) ≥ 0 elementwise for every J.
    pub non_conflicting: Property,
    /// For positive c ∈ ℝᵐ, c ↦ A(diag(c)·J) is linear.
    pub linear_under_scaling: Property,
    /// There is a w with A(J) = Jᵀw.
    pub weighted: Property,
    /// Caveats (conditions, tolerances), if any.
    pub note: Option<&'static str>,
}

/// A parameter's valid values; also fixes its type. Every numeric range has a finite upper bound
/// (hostile-input hardening): a link, a file or a flag must not be able to ask for a solve that
/// freezes a tab, so iteration counts, tolerances and scales are capped well above their
/// published defaults (aggregators.md §3). `EqualsM` is bounded by the matrix it must match.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Range {
    /// A finite float in [0, max].
    NonNegative { max: f64 },
    /// A finite float in (0, max]: a step size that must move.
    Positive { max: f64 },
    /// A float in [0, 1].
    UnitInterval,
    /// A float in [0, 1): a decay or momentum that must forget.
    UnitIntervalOpen,
    /// An integer in [0, max].
    Count { max: usize },
    /// An integer in [1, max].
    PositiveCount { max: usize },
    /// An integer equal to m (the number of rows).
    EqualsM,
    /// m finite floats in [−bound, bound], comma-separated.
    FiniteList { bound: f64 },
    /// m finite floats in [0, max], comma-separated.
    NonNegativeList { max: f64 },
    /// One of the given words.
    OneOf(&'static [&'static str]),
}

impl Range {
    /// "float", "integer", "float list" or "choice".
    pub fn type_name(self) -> &'static str {
        match self {
            Range::NonNegative { .. } | Range::Positive { .. } | Range::UnitInterval | Range::UnitIntervalOpen => {
                "float"
            }
            Range::Count { .. } | Range::PositiveCount { .. } | Range::EqualsM => "integer",
            Range::FiniteList { .. } | Range::NonNegativeList { .. } => "float list",
            Range::OneOf(_) => "choice",
        }
    }

    /// The numeric bounds [lo, hi] of a value (of each entry, for a list); `None` for a choice
    /// and for `EqualsM`, whose bound is the matrix's m.
    pub fn bounds(self) -> Option<(f64, f64)> {
        match self {
            Range::NonNegative { max } | Range::Positive { max } | Range::NonNegativeList { max } => Some((0.0, max)),
            Range::UnitInterval | Range::UnitIntervalOpen => Some((0.0, 1.0)),
            Range::Count { max } => Some((0.0, max as f64)),
            Range::PositiveCount { max } => Some((1.0, max as f64)),
            Range::FiniteList { bound } => Some((-bound, bound)),
            Range::EqualsM | Range::OneOf(_) => None,
        }
    }

    /// Whether the value must be strictly above / below [`Range::bounds`]' ends: the
    /// constructors reject them (torchjd's `> 0` and `< 1` checks), so parsing must too.
    pub fn open_ends(self) -> (bool, bool) {
        match self {
            Range::Positive { .. } => (true, false),
            Range::UnitIntervalOpen => (false, true),
            _ => (false, false),
        }
    }

    /// Whether `v` lies in the range's numeric bounds (always for a choice or `EqualsM`,
    /// checked against m later). NaN is never within.
    pub fn admits(self, v: f64) -> bool {
        let (open_lo, open_hi) = self.open_ends();
        self.bounds()
            .is_none_or(|(lo, hi)| (if open_lo { v > lo } else { v >= lo }) && (if open_hi { v < hi } else { v <= hi }))
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Range::NonNegative { max } => write!(f, "finite, ≥ 0 and ≤ {max}"),
            Range::Positive { max } => write!(f, "finite, > 0 and ≤ {max}"),
            Range::UnitInterval => write!(f, "in [0, 1]"),
            Range::UnitIntervalOpen => write!(f, "in [0, 1)"),
            Range::Count { max } => write!(f, "integer ≥ 0 and ≤ {max}"),
            Range::PositiveCount { max } => write!(f, "integer ≥ 1 and ≤ {max}"),
            Range::EqualsM => write!(f, "integer equal to m (the number of rows)"),
            Range::FiniteList { bound } => write!(f, "m comma-separated finite numbers in [-{bound}, {bound}]"),
            Range::NonNegativeList { max } => write!(f, "m comma-separated finite numbers ≥ 0 and ≤ {max}"),
            Range::OneOf(words) => write!(f, "one of {}", words.join(", ")),
        }
    }
}

/// A parameter's default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamDefault {
    /// No default: the parameter must be given.
    Required,
    /// A literal value, parsed exactly as a given one would be.
    Value(&'static str),
    /// A default that depends on m or means "absent", described in words (e.g. "1/m").
    Computed(&'static str),
}

impl ParamDefault {
    pub fn text(self) -> &'static str {
        match self {
            ParamDefault::Required => "required",
            ParamDefault::Value(v) | ParamDefault::Computed(v) => v,
        }
    }
}

/// One parameter of an aggregator. Serialises as
/// `{"name", "type", "default" ("required" when there is none), "required", "range", "meaning"}`.
#[derive(Clone, Copy, Debug)]
pub struct ParamSpec {
    pub name: &'static str,
    pub default: ParamDefault,
    pub range: Range,
    pub meaning: &'static str,
}

impl Serialize for ParamSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("ParamSpec", 6)?;
        st.serialize_field("name", self.name)?;
        st.serialize_field("type", self.range.type_name())?;
        st.serialize_field("default", self.default.text())?;
        st.serialize_field("required", &(self.default == ParamDefault::Required))?;
        st.serialize_field("range", &self.range.to_string())?;
        st.serialize_field("meaning", self.meaning)?;
        st.end()
    }
}

/// One aggregator: its CLI name, what it does, its parameters and properties.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct AggregatorInfo {
    /// The CLI spelling (`--method NAME`).
    pub name: &'static str,
    /// The paper/torchjd spelling.
    pub label: &'static str,
    pub description: &'static str,
    pub params: &'static [ParamSpec],
    pub properties: Properties,
    /// w = f(G) from the Gramian only (d = Jᵀw); false for the per-coordinate methods.
    pub gramian_weighted: bool,
    /// Carries state between calls (`reset` clears it).
    pub stateful: bool,
    /// Draws random numbers from the seed.
    pub seeded: bool,
    /// Reads the task losses as well as J (MoCo, DB-MTL): it runs where a trainer has them
    /// (`Aggregator::aggregate_with_losses`), never on a bare matrix. MGDA reads them only with
    /// `gn=loss` / `loss+` ([`AggregatorSpec::needs_losses`] decides per spec).
    pub needs_losses: bool,
}

impl AggregatorInfo {
    pub fn param(&self, name: &str) -> Option<&'static ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }
}

/// The three properties in the table's column order, for the per-aggregator `INFO` entries.
pub(crate) const fn props(
    non_conflicting: Property,
    linear_under_scaling: Property,
    weighted: Property,
    note: Option<&'static str>,
) -> Properties {
    Properties { non_conflicting, linear_under_scaling, weighted, note }
}

/// One parameter in one call, for the per-aggregator `INFO` entries.
pub(crate) const fn param(name: &'static str, default: ParamDefault, range: Range, meaning: &'static str) -> ParamSpec {
    ParamSpec { name, default, range, meaning }
}

// The caps shared by several entries. Thresholds and ridges act on the trace-normalised G
// (tr Ĝ = 1) or on denominators, where anything near 1 already swamps the data; list entries
// are weights and preferences, whose scale is free but never needs 10⁶.
/// Upper bound of a threshold, ridge or denominator ε (defaults 1e-8 … 1e-3).
pub(crate) const EPS_MAX: f64 = 1e3;
/// Upper bound of |entry| of a weight or preference list.
pub(crate) const LIST_MAX: f64 = 1e6;
/// Upper bound of a count of rows (Krum's f and selection, TrimmedMean's t): m itself bounds
/// them further.
pub(crate) const ROWS_MAX: usize = 1_000;

// Parameters shared by several entries (UPGrad, DualProj; Aligned-MTL's p).
pub(crate) const PREF_MEAN: ParamSpec = param(
    "pref_vector",
    ParamDefault::Computed("1/m"),
    Range::NonNegativeList { max: LIST_MAX },
    "preference vector p: how much of each task's projected gradient to take",
);
pub(crate) const NORM_EPS: ParamSpec = param(
    "norm_eps",
    ParamDefault::Value("1e-4"),
    Range::NonNegative { max: EPS_MAX },
    "G is divided by tr G; below this trace it is treated as 0",
);
pub(crate) const REG_EPS: ParamSpec = param(
    "reg_eps",
    ParamDefault::Value("1e-4"),
    Range::NonNegative { max: EPS_MAX },
    "ridge added to the normalised G (0 gives the exact projection)",
);

/// Every aggregator, in display order.
pub static AGGREGATORS: [AggregatorInfo; 25] = [
    super::mean::INFO,
    super::sum::INFO,
    super::constant::INFO,
    super::mgda::INFO,
    super::pcgrad::INFO,
    super::gradvac::INFO,
    super::cagrad::INFO,
    super::upgrad::INFO,
    super::dualproj::INFO,
    super::imtl_g::INFO,
    super::aligned_mtl::INFO,
    super::config::INFO,
    super::graddrop::INFO,
    super::random::INFO,
    super::krum::INFO,
    super::trimmed_mean::INFO,
    super::nash_mtl::INFO,
    super::fairgrad::INFO,
    super::excess_mtl::INFO,
    super::pcd::INFO,
    super::cr_mogm::INFO,
    super::modo::INFO,
    super::sdmgrad::INFO,
    super::moco::INFO,
    super::db_mtl::INFO,
];

/// The entry for a CLI name.
pub fn find(name: &str) -> Option<&'static AggregatorInfo> {
    AGGREGATORS.iter().find(|a| a.name == name)
}

/// Every CLI name, in display order.
pub fn names() -> Vec<&'static str> {
    AGGREGATORS.iter().map(|a| a.name).collect()
}

/// Builds the aggregator `name` for an m-row Jacobian from `key=value` parameters (values as
/// typed on the command line). The parameters are parsed once into an [`AggregatorSpec`], which
/// validates them; `build` checks what depends on m. `seed` feeds the seeded methods. For a
/// caller with a bare matrix: a method that reads the task losses is refused
/// ([`AggregatorSpec::build_without_losses`]).
pub fn build(name: &str, params: &[(String, String)], m: usize, seed: u64) -> Result<Box<dyn Aggregator>, String> {
    AggregatorSpec::parse(name, params)?.build_without_losses(m, seed)
}

#[cfg(test)]
// Test tables of (name, parameters, expected) tuples read best inline.
#[allow(clippy::type_complexity)]
mod tests {
    use super::super::testing::{j_base, worst_conflict, Normal};
    use super::*;
    use nalgebra::{DMatrix, DVector};

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// The parameters that have no default, for an m-row J (and Krum's m ≥ f + 3).
    fn required(name: &str, m: usize) -> Vec<(String, String)> {
        match name {
            "constant" => kv(&[("weights", &(1..=m).map(|i| i.to_string()).collect::<Vec<_>>().join(","))]),
            "krum" => kv(&[("n_byzantine", &(m - 3).to_string())]),
            "trimmed-mean" => kv(&[("trim_number", &((m - 1) / 2).to_string())]),
            "fairgrad" => kv(&[("alpha", "1")]),
            _ => vec![],
        }
    }

    /// Built as the trainer builds it (a loss-aware method too: the tests pass losses).
    fn build_ok(name: &str, m: usize, seed: u64) -> Box<dyn Aggregator> {
        AggregatorSpec::parse(name, &required(name, m))
            .and_then(|s| s.build(m, seed))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// Callers with a bare matrix (`build`: `concord aggregate` without losses, `bench
    /// aggregate`) refuse exactly the loss-aware methods, with the reason; the trainer's
    /// `AggregatorSpec::build` builds them.
    #[test]
    fn loss_aware_methods_are_refused_without_losses() {
        for info in &AGGREGATORS {
            let spec = AggregatorSpec::parse(info.name, &required(info.name, 5)).unwrap();
            assert_eq!(spec.needs_losses(), info.needs_losses, "{}", info.name);
            assert_eq!(build(info.name, &required(info.name, 5), 5, 0).is_err(), info.needs_losses, "{}", info.name);
        }
        assert_eq!(
            AGGREGATORS.iter().filter(|a| a.needs_losses).map(|a| a.name).collect::<Vec<_>>(),
            ["moco", "db-mtl"]
        );
        for text in ["moco", "db-mtl", "mgda:gn=loss", "mgda:gn=loss+"] {
            let spec = crate::MethodSpec::parse(text).unwrap().aggregator;
            let e = spec.build_without_losses(2, 0).err().unwrap_or_else(|| panic!("{text} built without losses"));
            assert!(e.starts_with(text) && e.contains("reads the task losses") && e.contains("concord train"), "{e}");
            assert!(spec.build(2, 0).is_ok(), "{text}");
        }
        for text in ["mgda", "mgda:gn=l2"] {
            assert!(crate::MethodSpec::parse(text).unwrap().aggregator.build_without_losses(2, 0).is_ok(), "{text}");
        }
    }

    fn err(name: &str, params: &[(&str, &str)], m: usize) -> String {
        match build(name, &kv(params), m, 0) {
            Ok(_) => panic!("{name} {params:?} (m = {m}) built"),
            Err(e) => e,
        }
    }

    #[test]
    fn table_lists_every_aggregator_once_in_cli_spelling() {
        let expected = [
            "mean",
            "sum",
            "constant",
            "mgda",
            "pcgrad",
            "gradvac",
            "cagrad",
            "upgrad",
            "dualproj",
            "imtl-g",
            "aligned-mtl",
            "config",
            "graddrop",
            "random",
            "krum",
            "trimmed-mean",
            "nash-mtl",
            "fairgrad",
            "excess-mtl",
            "pcd",
            "cr-mogm",
            "modo",
            "sdmgrad",
            "moco",
            "db-mtl",
        ];
        assert_eq!(names(), expected);
        for info in &AGGREGATORS {
            // Parameter names are unique and every literal default parses and is in range.
            for (i, p) in info.params.iter().enumerate() {
                assert!(info.params[..i].iter().all(|q| q.name != p.name), "{} {}", info.name, p.name);
                if let ParamDefault::Value(v) = p.default {
                    super::super::spec::parse_value(info.name, p, v).unwrap_or_else(|e| panic!("default: {e}"));
                }
            }
            // Weighted ⇔ Gramian-weighted where documented; not-documented rows are noted.
            match info.properties.weighted {
                Property::Yes => assert!(info.gramian_weighted, "{}", info.name),
                Property::No => assert!(!info.gramian_weighted, "{}", info.name),
                Property::NotDocumented => assert!(info.properties.note.is_some(), "{}", info.name),
            }
        }
    }

    /// aggregators.md §4, row by row (GradVac and FairGrad have none).
    #[test]
    fn properties_match_torchjds_table() {
        let table: [(&str, [&str; 3]); 23] = [
            ("upgrad", ["yes", "yes", "yes"]),
            ("aligned-mtl", ["no", "no", "yes"]),
            ("cagrad", ["no", "no", "yes"]),
            ("config", ["no", "yes", "yes"]),
            ("constant", ["no", "yes", "yes"]),
            ("dualproj", ["yes", "no", "yes"]),
            ("graddrop", ["no", "no", "no"]),
            ("imtl-g", ["no", "no", "yes"]),
            ("krum", ["no", "no", "yes"]),
            ("mean", ["no", "yes", "yes"]),
            ("mgda", ["yes", "no", "yes"]),
            ("nash-mtl", ["yes", "no", "yes"]),
            ("pcgrad", ["no", "yes", "yes"]),
            ("random", ["no", "yes", "yes"]),
            ("sum", ["no", "yes", "yes"]),
            ("trimmed-mean", ["no", "no", "no"]),
            ("gradvac", ["not documented"; 3]),
            ("fairgrad", ["not documented"; 3]),
            ("excess-mtl", ["not documented"; 3]),
            ("pcd", ["not documented"; 3]),
            ("cr-mogm", ["not documented"; 3]),
            ("modo", ["not documented"; 3]),
            ("sdmgrad", ["not documented"; 3]),
        ];
        for (name, row) in table {
            let p = find(name).unwrap().properties;
            let got = [p.non_conflicting.as_str(), p.linear_under_scaling.as_str(), p.weighted.as_str()];
            assert_eq!(got, row, "{name}");
        }
    }

    /// Every name builds with its defaults (required parameters supplied) on a 3 × 5 J and gives
    /// a finite update of length n (and, where weighted, finite weights of length m), twice.
    #[test]
    fn every_method_builds_with_defaults_and_is_finite_on_3x5() {
        let j = Normal::new(7).matrix(3, 5);
        for info in &AGGREGATORS {
            let mut agg = build_ok(info.name, 3, 0);
            for _ in 0..2 {
                let a = agg.aggregate(&j);
                assert_eq!(a.update.len(), 5, "{}", info.name);
                assert!(a.update.iter().all(|v| v.is_finite()), "{}: {}", info.name, a.update);
                if let Some(w) = &a.weights {
                    assert_eq!(w.len(), 3, "{}", info.name);
                    assert!(w.iter().all(|v| v.is_finite()), "{}: {}", info.name, w);
                }
            }
        }
    }

    /// The registry's defaults are torchjd's: the §6 values on J_base (atol 1e-4).
    #[test]
    fn defaults_give_torchjds_values_on_j_base() {
        let cases: [(&str, &[(&str, &str)], [f64; 3]); 11] = [
            ("mean", &[], [1.0, 1.0, 1.0]),
            ("sum", &[], [2.0, 2.0, 2.0]),
            ("constant", &[("weights", "1,2")], [8.0, 3.0, 3.0]),
            ("mgda", &[], [0.0, 1.0, 1.0]),
            ("pcgrad", &[], [0.5848, 3.8012, 3.8012]),
            ("gradvac", &[], [0.5848, 3.8012, 3.8012]),
            ("upgrad", &[], [0.2929, 1.9004, 1.9004]),
            ("dualproj", &[], [0.5563, 1.1109, 1.1109]),
            ("imtl-g", &[], [0.0767, 1.0, 1.0]),
            ("aligned-mtl", &[], [0.2133, 0.9673, 0.9673]),
            ("cagrad", &[("c", "0.5")], [0.1835, 1.2041, 1.2041]),
        ];
        let more: [(&str, &[(&str, &str)], [f64; 3]); 3] = [
            ("config", &[], [0.1588, 2.0706, 2.0706]),
            ("fairgrad", &[("alpha", "1.0")], [0.0766, 0.9985, 0.9985]),
            ("nash-mtl", &[], [0.0542, 0.7061, 0.7061]),
        ];
        for (name, params, expected) in cases.iter().chain(more.iter()) {
            let d = build(name, &kv(params), 2, 0).unwrap().aggregate(&j_base()).update;
            let err = (&d - DVector::from_row_slice(expected)).amax();
            assert!(err <= 1e-4, "{name}: {d} vs {expected:?}");
        }
        let j_krum = DMatrix::from_row_slice(5, 3, &[1., 1., 1., 1., 0., 1., 75., -666., 23., 1., 2., 3., 2., 0., 1.]);
        let d =
            build("krum", &kv(&[("n_byzantine", "1"), ("n_selected", "4")]), 5, 0).unwrap().aggregate(&j_krum).update;
        assert!((&d - DVector::from_row_slice(&[1.25, 0.75, 1.5])).amax() <= 1e-4, "krum {d}");
        let j_tm = DMatrix::from_row_slice(4, 2, &[1e11, 3., 1., -1e11, -1e10, 1e10, 2., 2.]);
        let d = build("trimmed-mean", &kv(&[("trim_number", "1")]), 4, 0).unwrap().aggregate(&j_tm).update;
        assert!((&d - DVector::from_row_slice(&[1.5, 2.5])).amax() <= 1e-4, "trimmed-mean {d}");
    }

    #[test]
    fn unknown_names_and_parameters_are_rejected() {
        let e = err("upgrade", &[], 3);
        assert!(e.contains("unknown aggregator 'upgrade'") && e.contains("trimmed-mean"), "{e}");
        let e = err("mean", &[("c", "1")], 3);
        assert!(e.contains("mean has no parameters"), "{e}");
        let e = err("cagrad", &[("alpha", "1")], 3);
        assert!(e.contains("no parameter 'alpha'") && e.contains("c, norm_eps"), "{e}");
        let e = err("cagrad", &[("c", "1"), ("c", "2")], 3);
        assert!(e.contains("given twice"), "{e}");
        let e = err("mean", &[], 0);
        assert!(e.contains("at least one row"), "{e}");
    }

    #[test]
    fn required_parameters_are_required() {
        for (name, param) in
            [("constant", "weights"), ("krum", "n_byzantine"), ("trimmed-mean", "trim_number"), ("fairgrad", "alpha")]
        {
            let e = err(name, &[], 5);
            assert!(e.contains(&format!("needs the parameter {param}")), "{e}");
        }
    }

    #[test]
    fn bad_numbers_and_out_of_range_values_are_rejected() {
        let cases: [(&str, &[(&str, &str)], &str); 16] = [
            ("cagrad", &[("c", "abc")], "c must be finite, ≥ 0 and ≤ 100, got 'abc'"),
            ("cagrad", &[("c", "-1")], "c must be finite, ≥ 0 and ≤ 100, got '-1'"),
            ("cagrad", &[("c", "inf")], "got 'inf'"),
            ("cagrad", &[("c", "NaN")], "got 'NaN'"),
            ("mgda", &[("max_iters", "0")], "max_iters must be integer ≥ 1"),
            ("mgda", &[("max_iters", "2.5")], "got '2.5'"),
            ("gradvac", &[("beta", "1.5")], "beta must be in [0, 1]"),
            ("gradvac", &[("eps", "-1e-8")], "eps must be finite, ≥ 0"),
            ("upgrad", &[("reg_eps", "-0.1")], "reg_eps must be"),
            ("dualproj", &[("norm_eps", "x")], "norm_eps must be"),
            ("aligned-mtl", &[("scale_mode", "max")], "scale_mode must be one of min, median, rmse, got 'max'"),
            ("krum", &[("n_byzantine", "-1")], "n_byzantine must be integer ≥ 0"),
            ("krum", &[("n_byzantine", "0"), ("n_selected", "0")], "n_selected must be integer ≥ 1"),
            ("nash-mtl", &[("optim_niter", "0")], "optim_niter must be integer ≥ 1"),
            ("nash-mtl", &[("max_norm", "-1")], "max_norm must be"),
            ("fairgrad", &[("alpha", "1"), ("max_iters", "0")], "max_iters must be integer ≥ 1"),
        ];
        for (name, params, needle) in cases {
            let e = err(name, params, 3);
            assert!(e.starts_with(name) && e.contains(needle), "{name} {params:?}: {e}");
        }
    }

    /// Hardening: every numeric parameter has finite bounds (a link or a file cannot ask for an
    /// unbounded solve); the literal defaults and both ends parse, and just past either end is
    /// an error naming the range. `EqualsM` is bounded by m (`row_count_constraints_are_checked`).
    #[test]
    fn every_numeric_parameter_has_finite_bounds_that_parsing_enforces() {
        let mut checked = 0;
        for info in &AGGREGATORS {
            for p in info.params {
                let Some((lo, hi)) = p.range.bounds() else {
                    assert!(matches!(p.range, Range::OneOf(_) | Range::EqualsM), "{} {}", info.name, p.name);
                    continue;
                };
                assert!(lo.is_finite() && hi.is_finite() && lo < hi, "{} {}: [{lo}, {hi}]", info.name, p.name);
                let parse = |raw: &str| super::super::spec::parse_value(info.name, p, raw);
                if let ParamDefault::Value(v) = p.default {
                    let v: f64 = v.parse().unwrap();
                    assert!(lo <= v && v <= hi, "{} {}: default {v} outside [{lo}, {hi}]", info.name, p.name);
                }
                // An open end is itself refused (the constructor would reject it); a point just
                // inside it parses.
                let (open_lo, open_hi) = p.range.open_ends();
                let inside_lo = if open_lo { lo + (hi - lo) * 1e-6 } else { lo };
                let inside_hi = if open_hi { hi - (hi - lo) * 1e-6 } else { hi };
                for ok in [inside_lo, inside_hi] {
                    parse(&ok.to_string()).unwrap_or_else(|e| panic!("{} {} = {ok}: {e}", info.name, p.name));
                }
                let integer = p.range.type_name() == "integer";
                let above = if integer { (hi + 1.0).to_string() } else { (hi * 2.0).to_string() };
                let mut bad = vec![above, (lo - 1.0).to_string()];
                bad.extend(open_lo.then(|| lo.to_string()));
                bad.extend(open_hi.then(|| hi.to_string()));
                for bad in bad {
                    let e = parse(&bad).map(|v| v.to_string()).expect_err(&format!("{} {} = {bad}", info.name, p.name));
                    assert_eq!(e, format!("{}: {} must be {}, got '{bad}'", info.name, p.name, p.range));
                    assert!(
                        e.contains(&format!("≤ {hi}"))
                            || e.contains(&format!("{hi}]"))
                            || e.contains(&format!("{hi})")),
                        "names the bound: {e}"
                    );
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 44, "numeric parameters with bounds");
    }

    #[test]
    fn vector_parameters_must_have_m_finite_entries() {
        let e = err("constant", &[("weights", "1,2")], 3);
        assert!(e.contains("weights has 2 entries but the matrix has m = 3 rows"), "{e}");
        let e = err("constant", &[("weights", "1,,3")], 3);
        assert!(e.contains("weights must be m comma-separated finite numbers"), "{e}");
        let e = err("constant", &[("weights", "1,inf,3")], 3);
        assert!(e.contains("weights must be"), "{e}");
        // Constant weights may be negative; preference vectors may not.
        assert!(build("constant", &kv(&[("weights", "[1, -2, 3]")]), 3, 0).is_ok());
        for name in ["upgrad", "dualproj", "aligned-mtl", "config"] {
            let e = err(name, &[("pref_vector", "1,-1,1")], 3);
            assert!(e.contains("pref_vector must be m comma-separated finite numbers ≥ 0"), "{name}: {e}");
            let e = err(name, &[("pref_vector", "1,1,1,1")], 3);
            assert!(e.contains("pref_vector has 4 entries but the matrix has m = 3 rows"), "{name}: {e}");
            assert!(build(name, &kv(&[("pref_vector", "0.2,0.3,0.5")]), 3, 0).is_ok(), "{name}");
        }
    }

    #[test]
    fn row_count_constraints_are_checked() {
        let e = err("krum", &[("n_byzantine", "1")], 3);
        assert!(e.contains("needs m ≥ n_byzantine + 3 = 4 rows, got m = 3"), "{e}");
        assert!(build("krum", &kv(&[("n_byzantine", "1")]), 4, 0).is_ok());
        let e = err("krum", &[("n_byzantine", "0"), ("n_selected", "4")], 3);
        assert!(e.contains("needs m ≥ n_selected rows, got m = 3"), "{e}");
        let e = err("trimmed-mean", &[("trim_number", "2")], 4);
        assert!(e.contains("needs m ≥ 2·trim_number + 1 = 5 rows, got m = 4"), "{e}");
        assert!(build("trimmed-mean", &kv(&[("trim_number", "2")]), 5, 0).is_ok());
        let e = err("nash-mtl", &[("n_tasks", "2")], 3);
        assert!(e.contains("n_tasks = 2 but the matrix has m = 3 rows"), "{e}");
        assert!(build("nash-mtl", &kv(&[("n_tasks", "3")]), 3, 0).is_ok());
    }

    /// Every method marked non-conflicting gives J·d ≥ −tol·‖J‖²_F on random full-rank J (m ≤ n,
    /// where the defaults' 1e-4 ridge stays harmless, aggregators.md §7.1).
    #[test]
    fn marked_non_conflicting_methods_do_not_conflict() {
        let mut rng = Normal::new(31);
        let marked: Vec<_> = AGGREGATORS.iter().filter(|a| a.properties.non_conflicting == Property::Yes).collect();
        assert_eq!(marked.iter().map(|a| a.name).collect::<Vec<_>>(), ["mgda", "upgrad", "dualproj", "nash-mtl"]);
        for info in marked {
            let (mut checked, mut skipped) = (0, 0);
            for &(m, n) in &[(2, 3), (3, 5), (4, 7), (5, 12)] {
                for _ in 0..4 {
                    let j = rng.matrix(m, n);
                    let a = build_ok(info.name, m, 0).aggregate(&j);
                    // Nash-MTL's documented caveat: when the first solve fails (from α = 1, e.g.
                    // when Σg_i conflicts with some g_i) torchjd keeps α = 1, so d is the
                    // (rescaled) sum. Such calls are counted, not checked.
                    let w = a.weights.as_ref().unwrap();
                    if info.name == "nash-mtl" && w.iter().all(|x| (x - w[0]).abs() <= 1e-12 * w[0].abs()) {
                        skipped += 1;
                        continue;
                    }
                    checked += 1;
                    let worst = worst_conflict(&j, &a.update);
                    assert!(worst >= -1e-3, "{} {m}×{n}: J·d = {} (relative {worst})", info.name, &j * &a.update);
                }
            }
            assert!(skipped <= checked / 4, "{}: {skipped} calls kept α = 1, {checked} checked", info.name);
        }
    }

    /// Every method marked weighted (or Gramian-weighted) returns weights w of length m with
    /// Jᵀw = d, and those weights depend on J only through G: J and J·Q (Q orthogonal) get the
    /// same w. The methods marked not weighted return none.
    #[test]
    fn weighted_methods_return_weights_that_give_the_update() {
        let mut rng = Normal::new(32);
        for info in &AGGREGATORS {
            for &(m, n) in &[(3, 5), (5, 4)] {
                let j = rng.matrix(m, n);
                let q = rng.matrix(n, n).qr().q();
                let losses: Vec<f64> = (0..m).map(|i| 0.5 + i as f64).collect();
                let a = build_ok(info.name, m, 5).aggregate_with_losses(&j, &losses);
                let weighted = info.properties.weighted == Property::Yes || info.gramian_weighted;
                // ExcessMTL: d = Jᵀw, but w depends on J elementwise (not only through G). MoCo and
                // DB-MTL: d comes from gradients tracked across steps, so no w is reported.
                if info.needs_losses {
                    assert!(a.weights.is_none(), "{} reports weights", info.name);
                    continue;
                }
                if !weighted && info.properties.weighted == Property::NotDocumented {
                    if let Some(w) = &a.weights {
                        let err = (j.tr_mul(w) - &a.update).amax() / (1.0 + a.update.amax());
                        assert!(err < 1e-12, "{}: Jᵀw − d = {err}", info.name);
                    }
                    continue;
                }
                if !weighted {
                    assert!(a.weights.is_none(), "{} reports weights", info.name);
                    continue;
                }
                let w = a.weights.unwrap_or_else(|| panic!("{} has no weights", info.name));
                assert_eq!(w.len(), m);
                let err = (j.tr_mul(&w) - &a.update).amax() / (1.0 + a.update.amax());
                assert!(err < 1e-12, "{}: Jᵀw − d = {err}", info.name);
                let wq = build_ok(info.name, m, 5).aggregate(&(&j * &q)).weights.unwrap();
                let diff = (&wq - &w).amax() / (1.0 + w.amax());
                assert!(diff < 1e-6, "{}: weights change under J → JQ by {diff}", info.name);
            }
        }
    }

    /// Every method marked linear under scaling: A(diag(αc₁ + βc₂)J) ≈ αA(diag(c₁)J) +
    /// βA(diag(c₂)J) for positive c (fresh, identically seeded aggregators, so Random and PCGrad
    /// use the same draws). UPGrad gets torchjd's 6e-2, because of its 1e-4 ridge.
    #[test]
    fn marked_linear_methods_are_linear_under_scaling() {
        let mut rng = Normal::new(33);
        let unif = |rng: &mut Normal| DVector::from_fn(4, |_, _| 0.1 + rng.sample().abs());
        for info in AGGREGATORS.iter().filter(|a| a.properties.linear_under_scaling == Property::Yes) {
            let tol = if info.name == "upgrad" { 6e-2 } else { 1e-9 };
            for _ in 0..5 {
                let j = rng.matrix(4, 6);
                let (c1, c2) = (unif(&mut rng), unif(&mut rng));
                let (a, b) = (rng.sample().abs(), rng.sample().abs());
                let scaled = |c: &DVector<f64>| DMatrix::from_fn(4, 6, |i, k| c[i] * j[(i, k)]);
                let run = |c: &DVector<f64>| build_ok(info.name, 4, 9).aggregate(&scaled(c)).update;
                let lhs = run(&(&c1 * a + &c2 * b));
                let rhs = run(&c1) * a + run(&c2) * b;
                let err = (&lhs - &rhs).amax() / (1.0 + lhs.amax());
                assert!(err < tol, "{}: {err}", info.name);
            }
        }
    }

    #[test]
    fn descriptions_serialise() {
        let v = serde_json::to_value(AGGREGATORS).unwrap();
        let krum = &v[14];
        assert_eq!(krum["name"], "krum");
        assert_eq!(krum["params"][0]["name"], "n_byzantine");
        assert_eq!(krum["params"][0]["default"], "required");
        assert_eq!(krum["params"][0]["required"], true);
        assert_eq!(krum["params"][0]["type"], "integer");
        assert_eq!(krum["params"][1]["default"], "1");
        assert_eq!(krum["properties"]["weighted"], "yes");
        assert_eq!(v[5]["properties"]["non_conflicting"], "not documented");
        assert_eq!(v[12]["gramian_weighted"], false);
        assert_eq!(v[12]["needs_losses"], false);
        assert_eq!(v[23]["name"], "moco");
        assert_eq!(v[23]["needs_losses"], true);
        assert_eq!(v[23]["params"][0]["default"], "0.5");
    }
}
