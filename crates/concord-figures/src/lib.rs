//! Chart drawing shared by the page (plotters-canvas on a `<canvas>`) and `concord … --plot`
//! (plotters' bitmap backend): one figure, any `DrawingBackend`, no I/O. The ticks and their
//! labels live here too, so both draw the same numbers.

pub mod axis;
pub mod line_chart;

pub use axis::{fmt_tick, log_label, nice_levels, Axis};
pub use line_chart::{draw_line_chart, Frame, Line, LineChart, Marker, Rgb, Theme};
