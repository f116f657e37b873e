//! The colour scales of every figure, page and CLI alike, built from colorous' schemes
//! (d3-scale-chromatic's ColorBrewer ramps). They diverge from blue to orange, never from red to
//! green, so that viewers with a red–green colour deficiency still tell the two ends apart.

use crate::line_chart::Rgb;

/// How far along colorous' ORANGES the negative end goes: its last steps turn brown, and 0.6 is
/// about the Playground's orange (#f59322).
const ORANGE_END: f64 = 0.6;
/// How far along colorous' BLUES the positive end goes: 0.75 is about the Playground's blue
/// (#0877bd) before the ramp turns navy.
const BLUE_END: f64 = 0.75;

/// What a value that cannot be shown (NaN, or no value) is drawn in: a neutral grey, apart from
/// both ends and from the light middle.
pub const UNDEFINED: Rgb = Rgb(190, 190, 190);

fn from(c: colorous::Color) -> Rgb {
    Rgb(c.r, c.g, c.b)
}

/// The diverging scale on [−1, 1]: orange (−1) → near-white (0) → blue (+1), clamped; NaN is the
/// middle. colorous' ORANGES for the negative half and BLUES for the positive, both starting
/// from their lightest step, as the Playground's orange ↔ blue heatmaps.
pub fn diverging(v: f64) -> Rgb {
    let v = if v.is_finite() { v.clamp(-1.0, 1.0) } else { 0.0 };
    if v < 0.0 {
        from(colorous::ORANGES.eval_continuous(-v * ORANGE_END))
    } else {
        from(colorous::BLUES.eval_continuous(v * BLUE_END))
    }
}

/// A cosine between two gradients: conflict (cos < 0) orange, agreement (cos > 0) blue,
/// orthogonal near-white; none (a zero gradient) or NaN is `UNDEFINED`.
pub fn cosine(c: Option<f64>) -> Rgb {
    match c {
        Some(c) if c.is_finite() => diverging(c),
        _ => UNDEFINED,
    }
}

/// A loss level, t ∈ [0, 1] from the lowest to the highest shown: blue (low) → light → orange
/// (high), washed over white as the Playground's heatmaps (alpha 160/255), so the isolines,
/// paths and markers drawn over it stay readable. NaN (a loss that blew up) is the high end.
pub fn loss_level(t: f64) -> Rgb {
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 1.0 };
    let Rgb(r, g, b) = diverging(1.0 - 2.0 * t);
    let wash = |c: u8| (255.0 + (f64::from(c) - 255.0) * (160.0 / 255.0)).round() as u8;
    Rgb(wash(r), wash(g), wash(b))
}

/// The colour of band `band` of `bands` loss bands (0 the lowest).
pub fn loss_band(band: usize, bands: usize) -> Rgb {
    let t = if bands <= 1 { 0.5 } else { band as f64 / (bands - 1) as f64 };
    loss_level(t)
}

/// Series colours (tasks, sweep arms, merge parents), in order: colorous' TABLEAU10, Tableau's
/// 2016 palette, picked to stay apart for viewers with a colour-vision deficiency (no pure
/// red–green pair among its first four), repeating after ten.
pub fn category(k: usize) -> Rgb {
    from(colorous::TABLEAU10[k % colorous::TABLEAU10.len()])
}

impl Rgb {
    pub const fn array(self) -> [u8; 3] {
        [self.0, self.1, self.2]
    }

    /// As CSS writes it: `#rrggbb`.
    pub fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which hue family a colour is in: orange has red > blue, blue has blue > red.
    fn is_orange(c: Rgb) -> bool {
        c.0 > 200 && c.2 < 80 && c.0 > c.1
    }

    fn is_blue(c: Rgb) -> bool {
        c.2 > 150 && c.0 < 80 && c.2 > c.1
    }

    fn lightness(c: Rgb) -> u32 {
        u32::from(c.0) + u32::from(c.1) + u32::from(c.2)
    }

    #[test]
    fn the_diverging_scale_is_orange_to_light_to_blue() {
        assert!(is_orange(diverging(-1.0)), "{:?}", diverging(-1.0));
        assert!(is_blue(diverging(1.0)), "{:?}", diverging(1.0));
        // The middle is light (both ramps' lightest step, within a few levels of white).
        assert!(lightness(diverging(0.0)) > 3 * 240, "{:?}", diverging(0.0));
        // Clamped, and NaN is the middle.
        assert_eq!(diverging(-5.0), diverging(-1.0));
        assert_eq!(diverging(5.0), diverging(1.0));
        assert_eq!(diverging(f64::NAN), diverging(0.0));
        // Darker the farther from 0, on both sides.
        for k in 1..=10 {
            let (a, b) = (f64::from(k - 1) / 10.0, f64::from(k) / 10.0);
            assert!(lightness(diverging(b)) < lightness(diverging(a)), "blue side at {b}");
            assert!(lightness(diverging(-b)) < lightness(diverging(-a)), "orange side at {b}");
        }
        // No red–green pair: the ends differ in blue, not only in red against green.
        let (o, b) = (diverging(-1.0), diverging(1.0));
        assert!(i32::from(b.2) - i32::from(o.2) > 120, "{o:?} vs {b:?}");
    }

    #[test]
    fn cosines_are_orange_when_they_conflict_and_grey_when_undefined() {
        assert_eq!(cosine(Some(-1.0)), diverging(-1.0));
        assert_eq!(cosine(Some(0.3)), diverging(0.3));
        assert_eq!(cosine(None), UNDEFINED);
        assert_eq!(cosine(Some(f64::NAN)), UNDEFINED);
    }

    #[test]
    fn loss_levels_run_from_washed_blue_to_washed_orange() {
        let (low, high) = (loss_level(0.0), loss_level(1.0));
        assert!(low.2 > low.0 + 60, "low loss is blue: {low:?}");
        assert!(high.0 > high.2 + 60, "high loss is orange: {high:?}");
        // Washed: nothing darker than the alpha 160/255 blend of the ends allows.
        for c in [low, high, loss_level(0.5)] {
            assert!(c.0.min(c.1).min(c.2) >= 90, "{c:?}");
        }
        assert_eq!(loss_level(f64::NAN), high);
        assert_eq!(loss_band(0, 9), low);
        assert_eq!(loss_band(8, 9), high);
        assert_eq!(loss_band(0, 1), loss_level(0.5));
    }

    #[test]
    fn series_colours_are_tableau10_distinct_and_repeat_after_ten() {
        assert_eq!(category(0).hex(), "#4e79a7");
        assert_eq!(category(1).hex(), "#f28e2c");
        assert_eq!(category(10), category(0));
        for a in 0..10 {
            for b in a + 1..10 {
                let (x, y) = (category(a), category(b));
                let d = (i32::from(x.0) - i32::from(y.0)).abs()
                    + (i32::from(x.1) - i32::from(y.1)).abs()
                    + (i32::from(x.2) - i32::from(y.2)).abs();
                assert!(d > 40, "series {a} and {b} too alike: {x:?} {y:?}");
            }
        }
    }

    #[test]
    fn colours_write_as_css_hex() {
        assert_eq!(Rgb(8, 119, 189).hex(), "#0877bd");
        assert_eq!(Rgb(8, 119, 189).array(), [8, 119, 189]);
    }
}
