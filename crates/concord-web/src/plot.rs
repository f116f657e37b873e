//! Pure plotting helpers for the contour figure: sampling the losses, nice levels, bands,
//! marching squares, method colours and start markers. No DOM here except `draw_marker`.

use crate::state::View;
use concord_core::{problems::CagradToy, Problem, ProblemKind};
use web_sys::CanvasRenderingContext2d;

/// The plotted square, [−11, 11]² as in `toy.py`.
pub const DOMAIN: [f64; 2] = CagradToy::DOMAIN;
/// Cells per side of the contour-line grid.
pub const CONTOUR_CELLS: usize = 200;

/// The value the view shows at x.
pub fn view_value(toy: &CagradToy, view: View, x: [f64; 2]) -> f64 {
    let l = toy.losses(&x);
    match view {
        View::Average => 0.5 * (l[0] + l[1]),
        View::L1 => l[0],
        View::L2 => l[1],
    }
}

/// Values on an (n+1)×(n+1) grid of sample points over the domain, row-major, row 0 at x₂ = −11
/// (the bottom of the plot).
pub fn sample_grid(problem: ProblemKind, view: View, n: usize) -> Vec<f64> {
    let toy = problem.toy();
    let (lo, hi) = (DOMAIN[0], DOMAIN[1]);
    let h = (hi - lo) / n as f64;
    let mut v = Vec::with_capacity((n + 1) * (n + 1));
    for j in 0..=n {
        let x2 = lo + j as f64 * h;
        for i in 0..=n {
            v.push(view_value(&toy, view, [lo + i as f64 * h, x2]));
        }
    }
    v
}

/// Contour levels at a "nice" step (1, 2, 2.5 or 5 × 10^k) giving about `target` bands, and
/// axis numbers with a real minus sign: the figures' own (shared with the CLI).
pub use concord_figures::{fmt_tick, nice_levels};

/// Band index of `v` among `levels` (0 .. levels.len()−2).
pub fn band_of(levels: &[f64], v: f64) -> usize {
    let bands = levels.len().saturating_sub(1).max(1);
    let idx = levels.partition_point(|l| *l <= v);
    idx.saturating_sub(1).min(bands - 1)
}

/// The `level` isoline of an (n+1)×(n+1) grid of samples, as segments in grid units (i along
/// x₁, j along x₂): concord-core's `isolines` (the `contour` crate's marching squares), which
/// `concord landscape --plot` draws from too. A non-finite sample counts as high.
pub fn isoline(values: &[f64], n: usize, level: f64) -> Vec<[[f64; 2]; 2]> {
    concord_core::landscape::isolines(values, n + 1, n + 1, &[level]).map(|mut l| l.remove(0)).unwrap_or_default()
}

/// Where ½(L₁+L₂) is smallest. For x₂ < 0 the average is ½(1+s)·[λL₁+(1−λ)L₂] with
/// λ = s/(1+s) (s scales L₁), whose minimiser is x₁ = a = 7(2λ−1) and x₂ = argmin of
/// tanh(−x₂/2)(0.01(x₂+8)² − 15.1 − 0.1a²) (toys.md §1). Found by golden-section search.
pub fn average_optimum(problem: ProblemKind) -> [f64; 2] {
    let s = problem.toy().scale;
    let lambda = s / (1.0 + s);
    let a = 7.0 * (2.0 * lambda - 1.0);
    let h = |x2: f64| (-0.5 * x2).tanh() * (0.01 * (x2 + 8.0).powi(2) - 15.1 - 0.1 * a * a);
    let (mut lo, mut hi) = (-11.0f64, -5.0f64);
    let g = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..200 {
        let m1 = hi - g * (hi - lo);
        let m2 = lo + g * (hi - lo);
        if h(m1) < h(m2) {
            hi = m2;
        } else {
            lo = m1;
        }
    }
    [a, 0.5 * (lo + hi)]
}

/// Start markers, by the start's index in the problem's published starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    Circle,
    Square,
    Triangle,
    Diamond,
    TriangleDown,
}

impl Marker {
    pub fn for_start(i: usize) -> Marker {
        [Marker::Circle, Marker::Square, Marker::Triangle, Marker::Diamond, Marker::TriangleDown][i % 5]
    }

    /// The outline as points around (0, 0) with radius `r` (y down), or `None` for the circle.
    fn polygon(self, r: f64) -> Option<Vec<[f64; 2]>> {
        let k = r * 0.9;
        match self {
            Marker::Circle => None,
            Marker::Square => Some(vec![[-k, -k], [k, -k], [k, k], [-k, k]]),
            Marker::Triangle => Some(vec![[0.0, -r * 1.15], [r * 1.05, r * 0.75], [-r * 1.05, r * 0.75]]),
            Marker::TriangleDown => Some(vec![[0.0, r * 1.15], [r * 1.05, -r * 0.75], [-r * 1.05, -r * 0.75]]),
            Marker::Diamond => Some(vec![[0.0, -r * 1.25], [r, 0.0], [0.0, r * 1.25], [-r, 0.0]]),
        }
    }

    /// An SVG path `d` centred at (cx, cy).
    pub fn svg_path(self, cx: f64, cy: f64, r: f64) -> String {
        match self.polygon(r) {
            None => format!("M{} {}a{r} {r} 0 1 0 {} 0a{r} {r} 0 1 0 {} 0Z", cx - r, cy, 2.0 * r, -2.0 * r),
            Some(pts) => {
                let mut d = String::new();
                for (i, p) in pts.iter().enumerate() {
                    d.push_str(&format!("{}{:.2} {:.2}", if i == 0 { "M" } else { "L" }, cx + p[0], cy + p[1]));
                }
                d.push('Z');
                d
            }
        }
    }
}

/// Trace a marker's outline as the current path on `ctx`.
pub fn trace_marker(ctx: &CanvasRenderingContext2d, marker: Marker, x: f64, y: f64, r: f64) {
    ctx.begin_path();
    match marker.polygon(r) {
        None => {
            let _ = ctx.arc(x, y, r, 0.0, std::f64::consts::TAU);
        }
        Some(pts) => {
            for (i, p) in pts.iter().enumerate() {
                if i == 0 {
                    ctx.move_to(x + p[0], y + p[1]);
                } else {
                    ctx.line_to(x + p[0], y + p[1]);
                }
            }
            ctx.close_path();
        }
    }
}

/// A five-pointed star outline for the optimum.
pub fn star_points(cx: f64, cy: f64, r: f64) -> Vec<[f64; 2]> {
    (0..10)
        .map(|k| {
            let radius = if k % 2 == 0 { r } else { r * 0.45 };
            let a = -std::f64::consts::FRAC_PI_2 + k as f64 * std::f64::consts::PI / 5.0;
            [cx + radius * a.cos(), cy + radius * a.sin()]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optimum_matches_the_reference() {
        let o = average_optimum(ProblemKind::CagradToy);
        assert!(o[0].abs() < 1e-12);
        assert!((o[1] + 8.3551).abs() < 1e-3, "{o:?}");
        let s = average_optimum(ProblemKind::CagradToyScaled);
        assert!((s[0] + 5.7273).abs() < 1e-3, "{s:?}");
    }

    #[test]
    fn levels_and_bands() {
        let l = nice_levels(-15.1, 12.4, 14);
        assert_eq!(l.first(), Some(&-16.0));
        assert_eq!(l.last(), Some(&14.0));
        assert_eq!(band_of(&l, -16.0), 0);
        assert_eq!(band_of(&l, 13.9), l.len() - 2);
        assert_eq!(band_of(&l, 100.0), l.len() - 2);
    }

    #[test]
    fn isoline_of_a_plane_is_straight() {
        let n = 4;
        let v: Vec<f64> = (0..=n).flat_map(|j| (0..=n).map(move |i| i as f64 + 0.0 * j as f64)).collect();
        let segs = isoline(&v, n, 1.5);
        assert_eq!(segs.len(), n);
        assert!(segs.iter().all(|s| (s[0][0] - 1.5).abs() < 1e-12 && (s[1][0] - 1.5).abs() < 1e-12));
    }
}
