//! Axes in data terms: a linear or log-10 range, the ticks worth labelling on it, and how a
//! number is written on an axis (a real minus sign, no trailing zeros on a log axis).

/// A linear or log-10 axis over [lo, hi] (on a log axis lo and hi are log₁₀ of the values).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Axis {
    pub lo: f64,
    pub hi: f64,
    pub log: bool,
}

impl Axis {
    /// The range of the finite (and, on a log axis, positive) values, padded a little.
    pub fn fit(values: impl Iterator<Item = f64>, log: bool) -> Axis {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter(|v| v.is_finite() && (!log || *v > 0.0)) {
            let v = if log { v.log10() } else { v };
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if !lo.is_finite() {
            return Axis { lo: 0.0, hi: 1.0, log };
        }
        if hi - lo < 1e-9 {
            let pad = if log { 0.5 } else { lo.abs().max(1.0) * 0.1 };
            return Axis { lo: lo - pad, hi: hi + pad, log };
        }
        let pad = (hi - lo) * 0.05;
        Axis { lo: lo - pad, hi: hi + pad, log }
    }

    pub fn fixed(lo: f64, hi: f64) -> Axis {
        Axis { lo, hi, log: false }
    }

    /// A log axis from `lo` to `hi` in data units (both > 0).
    pub fn log_range(lo: f64, hi: f64) -> Axis {
        Axis { lo: lo.log10(), hi: hi.log10(), log: true }
    }

    /// The value in axis units (log₁₀ on a log axis); `None` for one the axis cannot show
    /// (non-finite, or ≤ 0 on a log axis).
    pub fn to_axis(&self, v: f64) -> Option<f64> {
        let v = if self.log {
            if v <= 0.0 || !v.is_finite() {
                return None;
            }
            v.log10()
        } else {
            v
        };
        v.is_finite().then_some(v)
    }

    /// 0..1 along the axis (`None` for a value the axis cannot show).
    pub fn unit(&self, v: f64) -> Option<f64> {
        self.to_axis(v).map(|v| (v - self.lo) / (self.hi - self.lo))
    }

    /// About `n` tick positions in data units, with their labels.
    pub fn ticks(&self, n: usize) -> Vec<(f64, String)> {
        if self.log {
            // Less than two decades: 1, 2 and 5 of each decade (and more under a decade), so
            // there are enough labels.
            let span = self.hi - self.lo;
            let mantissas: &[f64] = if span < 0.7 {
                &[1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0]
            } else if span < 2.0 {
                &[1.0, 2.0, 5.0]
            } else {
                &[1.0]
            };
            let (a, b) = (self.lo.floor() as i32, self.hi.ceil() as i32);
            let step = ((b - a) as usize / n.max(1)).max(1);
            let ticks: Vec<(f64, String)> = (a..=b)
                .step_by(step)
                .flat_map(|k| mantissas.iter().map(move |m| m * 10f64.powi(k)))
                .filter(|v| v.log10() >= self.lo && v.log10() <= self.hi)
                .map(|v| (v, log_label(v)))
                .collect();
            if ticks.len() >= 2 {
                return ticks;
            }
            // A range too narrow for any of those: evenly spaced values inside it.
            let (lo, hi) = (10f64.powf(self.lo), 10f64.powf(self.hi));
            return nice_levels(lo, hi, n)
                .into_iter()
                .filter(|v| *v >= lo && *v <= hi && *v > 0.0)
                .map(|v| (v, log_label(v)))
                .collect();
        }
        let levels = nice_levels(self.lo, self.hi, n);
        let step = if levels.len() > 1 { levels[1] - levels[0] } else { 1.0 };
        // As many decimals as the step needs: 0.25 apart reads 0.25, 0.50, not 0.2, 0.5.
        let decimals = (0..=6)
            .find(|&d| {
                let s = step * 10f64.powi(d);
                (s - s.round()).abs() < 1e-6 * s.abs().max(1.0)
            })
            .unwrap_or(6) as usize;
        levels
            .into_iter()
            .filter(|v| *v >= self.lo - 1e-12 && *v <= self.hi + 1e-12)
            .map(|v| (v, fmt_tick(v, decimals)))
            .collect()
    }
}

/// 0.15, 2, 5e-5: at most three significant digits, no trailing zeros.
pub fn log_label(v: f64) -> String {
    let k = v.log10().floor() as i32;
    if !(-3..=4).contains(&k) {
        let m = v / 10f64.powi(k);
        return format!("{}e{k}", trim_zeros(&format!("{m:.1}")));
    }
    let decimals = (2 - k).max(0) as usize;
    trim_zeros(&format!("{v:.decimals$}"))
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// Levels at a "nice" step (1, 2, 2.5 or 5 × 10^k) giving about `target` bands.
pub fn nice_levels(min: f64, max: f64, target: usize) -> Vec<f64> {
    if !(min.is_finite() && max.is_finite()) || max <= min {
        return vec![min, min + 1.0];
    }
    let raw = (max - min) / target as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    let first = (min / step).floor() as i64;
    let last = (max / step).ceil() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// Numbers for axes and legends: `−8.36` with a real minus sign.
pub fn fmt_tick(x: f64, decimals: usize) -> String {
    let s = format!("{:.*}", decimals, x);
    let s = if s.starts_with('-') && s.trim_start_matches(['-', '0', '.']).is_empty() { s[1..].to_string() } else { s };
    s.replace('-', "−")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_axis_maps_decades_evenly_and_rejects_non_positive() {
        let a = Axis { lo: -2.0, hi: 0.0, log: true };
        assert_eq!(a.unit(0.01), Some(0.0));
        assert!((a.unit(0.1).unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(a.unit(0.0), None);
        assert_eq!(a.unit(-1.0), None);
        assert_eq!(a.unit(f64::NAN), None);
    }

    #[test]
    fn log_ticks_fill_a_short_range() {
        let a = Axis { lo: -1.3, hi: 0.05, log: true };
        let t: Vec<f64> = a.ticks(4).into_iter().map(|(v, _)| v).collect();
        assert_eq!(t, vec![0.1, 0.2, 0.5, 1.0]);
        let labels: Vec<String> = Axis { lo: -0.9, hi: -0.3, log: true }.ticks(4).into_iter().map(|(_, l)| l).collect();
        assert_eq!(labels, vec!["0.15", "0.2", "0.3", "0.4", "0.5"]);
        assert_eq!(log_label(5e-5), "5e-5");
        // Within 5 % of 9000 none of 1, 1.5, 2, 3, 4, 5, 7 × 10ᵏ falls: evenly spaced ticks.
        let narrow = Axis { lo: 8800f64.log10(), hi: 9400f64.log10(), log: true };
        let t: Vec<f64> = narrow.ticks(4).into_iter().map(|(v, _)| v).collect();
        assert!(t.len() >= 2 && t.iter().all(|v| (8800.0..=9400.0).contains(v)), "{t:?}");
        assert_eq!(log_label(2000.0), "2000");
    }

    #[test]
    fn linear_tick_labels_have_the_decimals_of_their_step() {
        let labels = |a: Axis| a.ticks(4).into_iter().map(|(_, l)| l).collect::<Vec<_>>();
        assert_eq!(labels(Axis::fixed(0.0, 1.0)), ["0.00", "0.25", "0.50", "0.75", "1.00"]);
        assert_eq!(labels(Axis::fixed(0.0, 0.1)), ["0.000", "0.025", "0.050", "0.075", "0.100"]);
        assert_eq!(labels(Axis::fixed(0.0, 180.0)), ["0", "50", "100", "150"]);
        assert_eq!(labels(Axis::fixed(-1.05, 1.05)), ["−1", "0", "1"]);
    }

    #[test]
    fn ticks_use_a_real_minus() {
        assert_eq!(fmt_tick(-5.0, 0), "−5");
        assert_eq!(fmt_tick(-0.0001, 2), "0.00");
    }
}
