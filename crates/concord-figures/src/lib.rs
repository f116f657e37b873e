//! Chart drawing shared by the page (plotters-canvas on a `<canvas>`) and `concord … --plot`
//! (plotters' bitmap backend): one figure, any `DrawingBackend`, no I/O. The ticks and their
//! labels live here too, so both draw the same numbers, and the colour scales (colorous'), so
//! both colour a value alike.

pub mod axis;
pub mod colour;
pub mod colour_bar;
pub mod heatmap;
pub mod line_chart;

pub use axis::{fmt_tick, log_label, nice_levels, Axis};
pub use colour_bar::{draw_colour_bar, ColourBar};
pub use heatmap::{draw_heatmap, Heatmap};
pub use line_chart::{draw_line_chart, Frame, Line, LineChart, Marker, Rgb, Theme};
