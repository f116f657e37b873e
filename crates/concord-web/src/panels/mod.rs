//! One component per panel.

pub mod backend;
pub mod contour;
pub mod explain;
pub mod methods;
pub mod notices;
pub mod optimizer;
pub mod problem;
pub mod transport;
