//! Floats that may be non-finite, in JSON: a finite value is a number (written exactly as serde
//! writes an `f64`), +∞ is the string `"inf"`, −∞ is `"-inf"` and NaN is `"nan"`. JSON has no
//! token for them and serde_json writes them as `null`, which could not be read back into an
//! `f64`; a diverged run (losses overflowing to ∞) then made a file that could not be imported.
//! Any JSON parser reads these files; a Python reader maps the strings with `float(s)`.
//!
//! Reading accepts numbers, those strings (also `"+inf"`, `"infinity"`, `"-infinity"`, any
//! case) and, where a float is expected, `null` as NaN (files written before this form). An
//! `Option<f64>` reads `null` as `None`, as before.
//!
//! Use the module for the field's type: `#[serde(with = "crate::train::float_serde::floats")]` on
//! a `Vec<f64>` (`float`: `f64`, `opt_float`, `opt_floats`, `float_rows`: `Vec<Vec<f64>>`,
//! `pair_matrix`: a `PairMatrix`, `pair_matrices`), plus `#[serde(default)]` on an `Option`, which
//! a missing field then still reads as `None`.

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};
use std::fmt;

/// Serializes a float, or a container of floats, in this module's form.
pub struct Ser<'a, T: ?Sized>(pub &'a T);

/// Deserializes a float, or a container of floats, in this module's form.
pub struct De<T>(pub T);

/// The float a non-finite string stands for (`None`: not one of them).
pub fn parse_non_finite(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        "nan" => Some(f64::NAN),
        _ => None,
    }
}

impl Serialize for Ser<'_, f64> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = *self.0;
        if v.is_finite() {
            s.serialize_f64(v)
        } else if v.is_nan() {
            s.serialize_str("nan")
        } else if v > 0.0 {
            s.serialize_str("inf")
        } else {
            s.serialize_str("-inf")
        }
    }
}

impl<T> Serialize for Ser<'_, Option<T>>
where
    for<'b> Ser<'b, T>: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            None => s.serialize_none(),
            Some(v) => s.serialize_some(&Ser(v)),
        }
    }
}

impl<T> Serialize for Ser<'_, [T]>
where
    for<'b> Ser<'b, T>: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(Ser))
    }
}

impl<T> Serialize for Ser<'_, Vec<T>>
where
    for<'b> Ser<'b, T>: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Ser(self.0.as_slice()).serialize(s)
    }
}

struct FloatVisitor;

impl Visitor<'_> for FloatVisitor {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number, \"inf\", \"-inf\", \"nan\" or null")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        parse_non_finite(v).ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
    }
    fn visit_unit<E: de::Error>(self) -> Result<f64, E> {
        Ok(f64::NAN)
    }
    fn visit_none<E: de::Error>(self) -> Result<f64, E> {
        Ok(f64::NAN)
    }
}

impl<'de> Deserialize<'de> for De<f64> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FloatVisitor).map(De)
    }
}

impl<'de, T> Deserialize<'de> for De<Option<T>>
where
    De<T>: Deserialize<'de>,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(De(Option::<De<T>>::deserialize(d)?.map(|v| v.0)))
    }
}

impl<'de, T> Deserialize<'de> for De<Vec<T>>
where
    De<T>: Deserialize<'de>,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(De(Vec::<De<T>>::deserialize(d)?.into_iter().map(|v| v.0).collect()))
    }
}

/// Write `value` in this module's form.
pub fn serialize<T: ?Sized, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error>
where
    for<'b> Ser<'b, T>: Serialize,
{
    Ser(value).serialize(s)
}

/// Read a value written in this module's form (or as plain JSON numbers, with `null` for a
/// non-finite float).
pub fn deserialize<'de, T, D: Deserializer<'de>>(d: D) -> Result<T, D::Error>
where
    De<T>: Deserialize<'de>,
{
    De::<T>::deserialize(d).map(|v| v.0)
}

/// One `#[serde(with = …)]` module per field type (a generic one leaves the compiler guessing
/// the type through the recursive impls).
macro_rules! with_modules {
    ($($(#[$doc:meta])* $name:ident: $ty:ty, $borrowed:ty;)*) => {$(
        $(#[$doc])*
        pub mod $name {
            use super::*;

            pub fn serialize<S: Serializer>(value: &$borrowed, s: S) -> Result<S::Ok, S::Error> {
                Ser(value).serialize(s)
            }

            pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                super::deserialize::<$ty, D>(d)
            }
        }
    )*};
}

with_modules! {
    /// `f64`.
    float: f64, f64;
    /// `Option<f64>` (`null` is `None`).
    opt_float: Option<f64>, Option<f64>;
    /// `Vec<f64>`.
    floats: Vec<f64>, [f64];
    /// `Option<Vec<f64>>`.
    opt_floats: Option<Vec<f64>>, Option<Vec<f64>>;
    /// `Vec<Vec<f64>>`.
    float_rows: Vec<Vec<f64>>, [Vec<f64>];
    /// A `PairMatrix`: `Vec<Vec<Option<f64>>>`.
    pair_matrix: Vec<Vec<Option<f64>>>, [Vec<Option<f64>>];
    /// `Vec<PairMatrix>`.
    pair_matrices: Vec<Vec<Vec<Option<f64>>>>, [Vec<Vec<Option<f64>>>];
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize)]
    struct All {
        #[serde(with = "super::float")]
        x: f64,
        #[serde(with = "super::opt_float", default)]
        o: Option<f64>,
        #[serde(with = "super::floats")]
        v: Vec<f64>,
        #[serde(with = "super::opt_floats", default)]
        ov: Option<Vec<f64>>,
        #[serde(with = "super::float_rows")]
        rows: Vec<Vec<f64>>,
        #[serde(with = "super::pair_matrix")]
        pairs: Vec<Vec<Option<f64>>>,
    }

    /// Bit-equal, NaN equal to NaN.
    fn same(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
    }

    #[test]
    fn finite_values_are_plain_numbers_and_non_finite_ones_strings_that_read_back() {
        let (inf, nan) = (f64::INFINITY, f64::NAN);
        let a = All {
            x: -inf,
            o: Some(nan),
            v: vec![1.5, inf, -0.0, nan, 1e-300],
            ov: Some(vec![nan]),
            rows: vec![vec![], vec![2.0, -inf]],
            pairs: vec![vec![None, Some(inf), Some(0.25)]],
        };
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(
            json,
            r#"{"x":"-inf","o":"nan","v":[1.5,"inf",-0.0,"nan",1e-300],"ov":["nan"],"rows":[[],[2.0,"-inf"]],"pairs":[[null,"inf",0.25]]}"#
        );
        let b: All = serde_json::from_str(&json).unwrap();
        assert!(b.x == -inf && b.o.unwrap().is_nan() && same(&b.v, &a.v) && same(b.ov.as_ref().unwrap(), &[nan]));
        assert!(same(&b.rows[1], &a.rows[1]) && b.pairs == vec![vec![None, Some(inf), Some(0.25)]]);
        // Finite values are written exactly as a plain f64 field writes them.
        let plain = serde_json::to_string(&[1.5, -0.0, 1e-300, 3.0]).unwrap();
        assert_eq!(serde_json::to_string(&Ser(&vec![1.5, -0.0, 1e-300, 3.0])).unwrap(), plain);
    }

    #[test]
    fn old_files_with_null_and_other_spellings_read_and_garbage_is_an_error() {
        let b: All = serde_json::from_str(
            r#"{"x":null,"v":[null,"Infinity","-INF","+inf",3],"rows":[[null]],"pairs":[[null,"NaN"]]}"#,
        )
        .unwrap();
        assert!(b.x.is_nan() && b.o.is_none() && b.ov.is_none());
        assert!(same(&b.v, &[f64::NAN, f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, 3.0]));
        assert!(b.rows[0][0].is_nan() && b.pairs[0][0].is_none() && b.pairs[0][1].unwrap().is_nan());
        for bad in [
            r#"{"x":"1.5","v":[],"rows":[],"pairs":[]}"#,
            r#"{"x":true,"v":[],"rows":[],"pairs":[]}"#,
            r#"{"x":1,"v":["x"],"rows":[],"pairs":[]}"#,
            r#"{"x":1,"v":{},"rows":[],"pairs":[]}"#,
            r#"{"x":1,"v":[],"rows":[1],"pairs":[]}"#,
        ] {
            assert!(serde_json::from_str::<All>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_finite_f64_reads_back_bit_for_bit() {
        // serde_json's default float parser can be one ulp off; the workspace enables its
        // `float_roundtrip` feature so that exported weights import exactly.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = f64::from_bits(x);
            if !v.is_finite() {
                continue;
            }
            let json = serde_json::to_string(&Ser(&v)).unwrap();
            let back: f64 = float::deserialize(&mut serde_json::Deserializer::from_str(&json)).unwrap();
            assert_eq!(back.to_bits(), v.to_bits(), "{json}");
        }
    }

    #[test]
    fn a_run_record_with_non_finite_values_reads_back_equal_and_a_finite_one_has_only_numbers() {
        use crate::train::{preset, train, RunRecord};
        let mut c = preset("task-experts").unwrap();
        c.steps = 3;
        let finite = train(&c).unwrap();
        let json = serde_json::to_string(&finite).unwrap();
        assert!(!json.contains("\"inf\"") && !json.contains("\"nan\""), "{json}");
        let back: RunRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, finite, "a finite record reads back bit for bit");

        let (inf, nan) = (f64::INFINITY, f64::NAN);
        let mut r = finite.clone();
        r.final_train_losses = vec![inf, nan];
        r.final_test_losses = Some(vec![-inf, 1.0]);
        let h = &mut r.history[1];
        h.losses[0] = inf;
        h.metrics.conflict_ratio = nan;
        h.metrics.cosine[0][1] = Some(nan);
        h.metrics.update_cosine_mean = Some(inf);
        h.metrics.directional[1] = -inf;
        let moe = h.moe.as_mut().expect("task-experts records routing");
        moe.routing.aux.z_loss = inf;
        moe.routing.task_expert[0][0] = nan;
        moe.expert_cosine[0][0][0] = Some(-inf);
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(r#""final_train_losses":["inf","nan"]"#), "{json}");
        let back: RunRecord = serde_json::from_str(&json).expect("a diverged record reads back");
        // Equal, NaN as NaN: the same text (NaN is written "nan") and the same finite values.
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
        assert!(back.final_train_losses[1].is_nan() && back.history[1].metrics.conflict_ratio.is_nan());
        assert_eq!(back.final_test_losses, r.final_test_losses);
        assert_eq!(back.params, r.params);
        // A file written before this form (non-finite values as null) reads too, null as NaN.
        let old = json.replace(r#"["inf","nan"]"#, "[null,null]");
        let back: RunRecord = serde_json::from_str(&old).unwrap();
        assert!(back.final_train_losses.iter().all(|v| v.is_nan()));
    }
}
