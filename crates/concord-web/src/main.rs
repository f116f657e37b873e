//! Concord playground: a multi-task TF-Playground that shows gradient conflicts, plus the
//! CAGrad two-objective toys, run live in the browser.
//!
//! The page is a Leptos (CSR) app. A `playground::Playground` owns one `session::Session` — the
//! one engine: every run (a multi-task method, or a toy method × start) is a concord-core
//! `TrainConfig` driven through `train::Backend` on WebGPU or the CPU — and provides it and its
//! URL state to its panels by context. Nothing lives in globals, so a page can hold several
//! playgrounds: the embeddable `<concord-figure>` (`figure`, mounted by web/concord-embed.js) is
//! one. The settings — the URL state (`state`; `preset` derives every key's default from
//! concord-core's presets), state → configs (`train_config`) and the run file (`saved`) — are
//! this crate's library (lib.rs), which the CLI shares. `grid` is the heatmaps' grid, `panels`
//! has one component per panel, `plot`, `chart` and `dom` the drawing and page helpers, and
//! `hook` the `window.concord` test hook (cargo feature `test-hooks`).

mod chart;
mod dom;
mod dynamics_marks;
mod figure;
mod hook;
#[cfg(test)]
mod module_graph;
mod panels;
mod playground;
mod plot;
mod sample_series;
mod session;

// The settings half lives in the library (lib.rs), which `concord train --hash/--config` shares.
use concord_web::{conflict_map, grid, lessons, preset, saved, state, train_config};

use leptos::prelude::*;
use playground::{current_hash, Playground};

/// Mount another playground inside `el` (the hook's `mount`).
#[cfg(feature = "test-hooks")]
fn mount_embedded(el: web_sys::HtmlElement, hash: String, hook: hook::Hook) {
    // The mounted playground lives as long as the page.
    leptos::mount::mount_to(el, move || view! { <Playground hash=hash embedded=true hook=hook /> }).forget();
}

/// Whether the page loaded the module for `<concord-figure>` elements (web/concord-embed.js
/// sets `globalThis.concordEmbed` before `init()`): then the figures mount themselves
/// (`figure::mount_figure`) and no playground takes the page.
fn embedding() -> bool {
    js_sys::Reflect::get(&js_sys::global(), &"concordEmbed".into()).is_ok_and(|v| v.is_truthy())
}

fn main() {
    console_error_panic_hook::set_once();
    if embedding() {
        return;
    }
    // `window.concord` exists in the browser tests' build only; a user's page keeps a detached
    // hook object (the playground's panels still add to it).
    #[cfg(feature = "test-hooks")]
    let hook = hook::install(mount_embedded);
    #[cfg(not(feature = "test-hooks"))]
    let hook = hook::Hook::new();
    leptos::mount::mount_to_body(move || view! { <Playground hash=current_hash() embedded=false hook=hook /> });
}
