//! The playground's settings, shared by the page (main.rs) and the command line: the URL state
//! (`state`, with every key's default from concord-core's presets via `preset`), the state → run
//! configs (`train_config`), and the run file the page exports and imports (`saved`, with each run's
//! per-point conflict map: `conflict_map`).
//!
//! `concord train --hash` reads a playground URL and `concord train --config` a page export
//! through these same modules, so a run seen on the page is the run replayed headless: there is
//! no second parser of either. Nothing here draws or touches the DOM.

pub mod conflict_map;
pub mod grid;
pub mod lessons;
#[cfg(test)]
mod lessons_tests;
pub mod preset;
pub mod saved;
pub mod state;
#[cfg(test)]
mod state_arch_tests;
#[cfg(test)]
mod state_fuzz;
#[cfg(test)]
mod state_tf_tests;
pub mod train_config;
