//! Concord playground: a multi-task TF-Playground that shows gradient conflicts, plus the
//! CAGrad two-objective toy, run live in the browser.
//!
//! The page is a Leptos (CSR) app. `state` holds the URL-hash state (`preset` picks the family
//! and every other key's default), `arena` trains up to four multi-task methods side by side
//! (behind `runner::TrainBackend`: concord-gpu's GPU trainer via `gpu_run` on WebGPU, concord-core's
//! CPU trainer otherwise, per run), `runner` advances the toy runs (WebGPU by default, the CPU as
//! fallback) and acquires the WebGPU device both use, `grid` is the heatmaps' 100 × 100 grid,
//! `panels` has one component per panel, `plot` and `chart` the drawing helpers, and `hook` the
//! `window.concord` test hook.

mod arena;
mod chart;
mod grid;
#[cfg(feature = "webgpu")]
mod gpu_run;
mod hook;
mod panels;
mod plot;
mod preset;
mod runner;
mod spec;
mod state;
mod train_config;

use leptos::prelude::*;
use state::State;

/// The notices about malformed URL values, shown until dismissed.
#[derive(Clone, Copy)]
pub struct Notices(pub RwSignal<Vec<String>>);

pub fn use_cfg() -> RwSignal<State> {
    expect_context::<RwSignal<State>>()
}

pub fn use_ui() -> runner::Ui {
    expect_context::<runner::Ui>()
}

fn current_hash() -> String {
    web_sys::window()
        .and_then(|w| w.location().hash().ok())
        .unwrap_or_default()
}

/// Replace the hash without adding a history entry (and without a `hashchange` event).
fn write_hash(state: &State) {
    let hash = format!("#{}", state.to_hash());
    if current_hash() == hash {
        return;
    }
    if let Some(history) = web_sys::window().and_then(|w| w.history().ok()) {
        let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&hash));
    }
}

/// Keyboard shortcuts: Space play/pause, S (or →) step, R reset — unless a form control has focus.
fn on_key(ev: web_sys::KeyboardEvent, cfg: RwSignal<State>) {
    if ev.ctrl_key() || ev.meta_key() || ev.alt_key() {
        return;
    }
    let in_control = ev
        .target()
        .and_then(|t| wasm_bindgen::JsCast::dyn_into::<web_sys::Element>(t).ok())
        .map(|el| {
            matches!(
                el.tag_name().as_str(),
                "INPUT" | "SELECT" | "TEXTAREA" | "BUTTON"
            )
        })
        .unwrap_or(false);
    if in_control {
        return;
    }
    match ev.key().as_str() {
        " " => {
            ev.prevent_default();
            cfg.update(|s| s.play = !s.play);
        }
        "s" | "S" | "ArrowRight" => step_once(cfg),
        "r" | "R" => reset_runs(cfg),
        _ => {}
    }
}

/// One press of Step: steps-per-frame more steps, on whichever engine the preset uses.
pub fn step_once(cfg: RwSignal<State>) {
    let (spf, toy) = cfg.with_untracked(|s| (s.spf as u64, s.preset.is_toy()));
    if toy {
        runner::with(|r| r.request_steps(spf, None));
    } else {
        arena::with(|a| a.request_steps(spf, None));
    }
}

/// Reset: the toy runs to their starts, or the arena to the shared initial weights.
pub fn reset_runs(cfg: RwSignal<State>) {
    if cfg.with_untracked(|s| s.preset.is_toy()) {
        runner::with(|r| {
            if r.is_ready() {
                r.reset()
            }
        });
    } else {
        arena::with(|a| a.rebuild());
    }
}

#[component]
fn App() -> impl IntoView {
    let (initial, notices) = State::from_hash(&current_hash());
    let cfg = RwSignal::new(initial.clone());
    let notices = RwSignal::new(notices);
    let ui = runner::Ui::new();
    let aui = arena::ArenaUi::new();
    provide_context(cfg);
    provide_context(ui);
    provide_context(aui);
    provide_context(Notices(notices));

    arena::install(aui, cfg, &initial);
    runner::install(ui, &initial, hook::mark_ready);

    // Apply every state change to the runners and the hash.
    Effect::new(move |prev: Option<State>| {
        let s = cfg.get();
        if let Some(p) = &prev {
            if *p != s {
                runner::with(|r| r.configure(&s, p.needs_reset(&s)));
                arena::with(|a| a.configure(&s));
            }
        }
        write_hash(&s);
        s
    });
    let is_toy = move || cfg.with(|s| s.preset.is_toy());

    // Edits of the hash by hand (or links inside the page) re-read the state.
    let _ = window_event_listener(leptos::ev::hashchange, move |_| {
        let (s, n) = State::from_hash(&current_hash());
        if s != cfg.get_untracked() {
            cfg.set(s);
        }
        notices.set(n);
    });
    let _ = window_event_listener(leptos::ev::keydown, move |ev| on_key(ev, cfg));

    view! {
        <header class="topbar">
            <div class="brand">
                <h1>"Concord"</h1>
                <p class="subtitle">"Where multi-task gradients conflict, and what each method does about it"</p>
            </div>
            <panels::transport::TransportPanel />
            <panels::backend::BackendPanel />
        </header>
        <panels::notices::NoticesPanel />
        <ArenaError />
        <main class="layout">
            <aside class="controls" aria-label="Settings">
                <panels::preset::PresetPanel />
                <Show
                    when=is_toy
                    fallback=|| view! {
                        <panels::data::DataPanel />
                        <panels::model::ModelPanel />
                        <panels::arena_methods::ArenaMethodsPanel />
                    }
                >
                    <panels::methods::MethodsPanel />
                </Show>
                <panels::optimizer::OptimizerPanel />
                <panels::io::IoPanel />
            </aside>
            <section class="figure" aria-label="Figures">
                <Show when=is_toy fallback=|| view! { <panels::outputs::OutputsPanel /> <panels::moe::MoePanel /> <panels::landscape::LandscapePanel /> }>
                    <panels::contour::ContourPanel />
                </Show>
            </section>
            <aside class="side" class:hidden=move || cfg.with(|s| s.hide_text) aria-label="Explanation">
                <panels::preset::PresetCard />
                <Show when=is_toy>
                    <panels::explain::ExplainPanel />
                </Show>
            </aside>
        </main>
    }
}

/// Why the arena could not build its runs (e.g. a BCE loss on a regression task).
#[component]
fn ArenaError() -> impl IntoView {
    let aui = expect_context::<arena::ArenaUi>();
    let cfg = use_cfg();
    view! {
        <Show when=move || aui.error.with(|e| e.is_some()) && !cfg.with(|s| s.preset.is_toy())>
            <div class="notices run-error" role="alert" data-testid="run-error">
                <div class="notices-body">
                    <strong>"These settings cannot train: "</strong>
                    {move || aui.error.get().unwrap_or_default()}
                </div>
            </div>
        </Show>
    }
}

fn main() {
    console_error_panic_hook::set_once();
    hook::install();
    leptos::mount::mount_to_body(App);
}
