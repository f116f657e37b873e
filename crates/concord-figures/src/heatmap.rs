//! A heatmap: a grid of values, each cell in its colour. `rgba` turns the grid into RGBA
//! pixels, one per cell with row 0 on top: the page puts them into an `ImageData` and scales it
//! onto its canvas (one draw call instead of a rectangle per cell), and `draw_heatmap` (the
//! CLI's maps) fills each cell's rectangle with the same pixel, so both colour a cell alike.

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

/// The pixels of a grid of `nx` × `ny` values (row by row), RGBA, one per cell, row 0 of the
/// image at the top: the values' row 0 when `top_down`, else their last row (a grid sampled with
/// y rising). Fully opaque.
pub fn rgba(
    nx: usize,
    ny: usize,
    values: &[f64],
    top_down: bool,
    colour: &dyn Fn(f64) -> Rgb,
) -> Result<Vec<u8>, String> {
    if nx == 0 || ny == 0 || values.len() < nx * ny {
        return Err(format!("a {nx} × {ny} heatmap needs {} values, got {}", nx * ny, values.len()));
    }
    let mut px = Vec::with_capacity(nx * ny * 4);
    for shown in 0..ny {
        let row = if top_down { shown } else { ny - 1 - shown };
        for v in &values[row * nx..(row + 1) * nx] {
            let Rgb(r, g, b) = colour(*v);
            px.extend_from_slice(&[r, g, b, 255]);
        }
    }
    Ok(px)
}

impl Heatmap<'_> {
    /// `rgba` of this map's grid.
    pub fn rgba(&self) -> Result<Vec<u8>, String> {
        rgba(self.nx, self.ny, self.values, self.top_down, self.colour)
    }
}

/// Draws `map` onto `area`, each cell from its own pixel edge to the next cell's, so the cells
/// tile the frame without gaps or overlaps whatever the frame's size.
pub fn draw_heatmap<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, map: &Heatmap) -> Result<(), String> {
    let Frame { x, y, w, h } = map.frame;
    let px = map.rgba()?;
    let edge = |k: usize, n: usize, len: i32| (f64::from(len) * k as f64 / n as f64).round() as i32;
    // Row `r` of the pixels is row `r` of the frame, from the top.
    for (r, row) in px.chunks_exact(map.nx * 4).enumerate() {
        let (y0, y1) = (y + edge(r, map.ny, h), y + edge(r + 1, map.ny, h));
        for (c, p) in row.chunks_exact(4).enumerate() {
            let (x0, x1) = (x + edge(c, map.nx, w), x + edge(c + 1, map.nx, w));
            area.draw(&Rectangle::new([(x0, y0), (x1, y1)], RGBColor(p[0], p[1], p[2]).filled()))
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
    fn the_pixels_are_the_cells_colours_row_0_on_top() {
        let values = [-1.0, -0.5, 0.0, 0.25, 0.5, 1.0];
        let down = rgba(3, 2, &values, true, &diverging).unwrap();
        let up = rgba(3, 2, &values, false, &diverging).unwrap();
        assert_eq!(down.len(), 3 * 2 * 4);
        for (k, v) in values.iter().enumerate() {
            let Rgb(r, g, b) = diverging(*v);
            assert_eq!(&down[k * 4..k * 4 + 4], &[r, g, b, 255], "top-down cell {k}");
            // y rising: the values' row 0 is the image's last row.
            let shown = (1 - k / 3) * 3 + k % 3;
            assert_eq!(&up[shown * 4..shown * 4 + 4], &[r, g, b, 255], "bottom-up cell {k}");
        }
        // The pixels the page blits are the colours the CLI's rectangles are filled with.
        let frame = Frame { x: 0, y: 0, w: 3, h: 2 };
        let buf = render(&Heatmap { frame, nx: 3, ny: 2, values: &values, top_down: false, colour: &diverging });
        for k in 0..6 {
            let (c, r) = ((k % 3) as i32, (k / 3) as i32);
            assert_eq!(pixel(&buf, c, r).array(), [up[k * 4], up[k * 4 + 1], up[k * 4 + 2]], "pixel {k}");
        }
    }

    #[test]
    fn too_few_values_are_an_error_not_a_panic() {
        assert!(rgba(2, 2, &[0.0; 3], true, &diverging).is_err());
        assert!(rgba(0, 2, &[], true, &diverging).is_err());
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
