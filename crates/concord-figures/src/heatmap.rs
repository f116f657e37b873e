//! A heatmap: a grid of values, each cell a filled rectangle in its colour, filling a frame.
//! The CLI draws its maps with it; the page blits the same colours through an `ImageData`
//! (one draw call instead of a rectangle per cell), from the same scales in `colour`.

use crate::line_chart::{Frame, Rgb};
use plotters::coord::Shift;
use plotters::prelude::*;

/// `values` row by row, `nx` per row; row 0 is the top of the frame when `top_down`, else the
/// bottom (a grid sampled with y rising).
pub struct Heatmap<'a> {
    pub frame: Frame,
    pub nx: usize,
    pub ny: usize,
    pub values: &'a [f64],
    pub top_down: bool,
    pub colour: &'a dyn Fn(f64) -> Rgb,
}

/// Draws `map` onto `area`, each cell from its own pixel edge to the next cell's, so the cells
/// tile the frame without gaps or overlaps whatever the frame's size.
pub fn draw_heatmap<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, map: &Heatmap) -> Result<(), String> {
    let Frame { x, y, w, h } = map.frame;
    if map.nx == 0 || map.ny == 0 || map.values.len() < map.nx * map.ny {
        return Err(format!(
            "a {} × {} heatmap needs {} values, got {}",
            map.nx,
            map.ny,
            map.nx * map.ny,
            map.values.len()
        ));
    }
    let edge = |k: usize, n: usize, len: i32| (f64::from(len) * k as f64 / n as f64).round() as i32;
    for r in 0..map.ny {
        let row = if map.top_down { r } else { map.ny - 1 - r };
        let (y0, y1) = (y + edge(row, map.ny, h), y + edge(row + 1, map.ny, h));
        for c in 0..map.nx {
            let (x0, x1) = (x + edge(c, map.nx, w), x + edge(c + 1, map.nx, w));
            let Rgb(cr, cg, cb) = (map.colour)(map.values[r * map.nx + c]);
            area.draw(&Rectangle::new([(x0, y0), (x1, y1)], RGBColor(cr, cg, cb).filled()))
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::colour::diverging;

    const W: u32 = 120;
    const H: u32 = 90;

    fn render(map: &Heatmap) -> Vec<u8> {
        let mut buf = vec![0u8; (W * H * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buf, (W, H)).into_drawing_area();
            root.fill(&WHITE).unwrap();
            draw_heatmap(&root, map).unwrap();
            root.present().unwrap();
        }
        buf
    }

    fn pixel(buf: &[u8], x: i32, y: i32) -> Rgb {
        let i = ((y as u32 * W + x as u32) * 3) as usize;
        Rgb(buf[i], buf[i + 1], buf[i + 2])
    }

    #[test]
    fn each_cell_has_its_colour_in_its_place() {
        // 3 × 2 cells of 30 × 25 px from (10, 20); values −1 … +1 row by row.
        let values = [-1.0, -0.5, 0.0, 0.25, 0.5, 1.0];
        let frame = Frame { x: 10, y: 20, w: 90, h: 50 };
        for top_down in [true, false] {
            let buf = render(&Heatmap { frame, nx: 3, ny: 2, values: &values, top_down, colour: &diverging });
            for (k, v) in values.iter().enumerate() {
                let (r, c) = (k / 3, k % 3);
                let shown_row = if top_down { r } else { 1 - r };
                // Each cell's centre and its inner corners are its colour.
                for (dx, dy) in [(15, 12), (1, 1), (28, 23)] {
                    let (px, py) = (10 + 30 * c as i32 + dx, 20 + 25 * shown_row as i32 + dy);
                    assert_eq!(pixel(&buf, px, py), diverging(*v), "cell {k} at ({px}, {py}), top_down {top_down}");
                }
            }
            // Nothing outside the frame.
            assert_eq!(pixel(&buf, 9, 40), Rgb(255, 255, 255));
            assert_eq!(pixel(&buf, 100, 40), Rgb(255, 255, 255));
            assert_eq!(pixel(&buf, 50, 70), Rgb(255, 255, 255));
        }
    }

    #[test]
    fn too_few_values_are_an_error_not_a_panic() {
        let mut buf = vec![0u8; (W * H * 3) as usize];
        let root = BitMapBackend::with_buffer(&mut buf, (W, H)).into_drawing_area();
        let map = Heatmap {
            frame: Frame { x: 0, y: 0, w: 10, h: 10 },
            nx: 2,
            ny: 2,
            values: &[0.0; 3],
            top_down: true,
            colour: &diverging,
        };
        assert!(draw_heatmap(&root, &map).is_err());
    }
}
