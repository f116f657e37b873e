//! One component per panel.

pub mod arena_methods;
pub mod backend;
pub mod conflict_map;
pub mod contour;
pub mod data;
pub mod dynamics;
pub mod explain;
pub mod io;
pub mod landscape;
pub mod lessons;
pub mod merge;
pub mod model;
pub mod moe;
pub mod network;
pub mod notices;
pub mod optimizer;
pub mod outputs;
pub mod preset;
pub mod samples;
pub mod transport;
pub mod trunk;
