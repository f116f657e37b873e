//! One playground: its URL state, its session (the engine) and every panel, provided to the
//! panels by context. The page's own playground reads and writes the location hash and takes
//! the keyboard; an embedded one (`window.concord.mount`) keeps its state to itself.

use crate::hook::Hook;
use crate::panels;
use crate::session::{self, Session};
use crate::state::{Notices, State};
use leptos::prelude::*;

pub fn current_hash() -> String {
    web_sys::window().and_then(|w| w.location().hash().ok()).unwrap_or_default()
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
fn on_key(ev: web_sys::KeyboardEvent, cfg: RwSignal<State>, session: Session) {
    if ev.ctrl_key() || ev.meta_key() || ev.alt_key() {
        return;
    }
    let in_control = ev
        .target()
        .and_then(|t| wasm_bindgen::JsCast::dyn_into::<web_sys::Element>(t).ok())
        // The lesson bar takes ← and → itself (its steps).
        .map(|el| {
            matches!(el.tag_name().as_str(), "INPUT" | "SELECT" | "TEXTAREA" | "BUTTON")
                || el.closest(".lesson-bar").ok().flatten().is_some()
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
        "s" | "S" | "ArrowRight" => session.step_once(),
        "r" | "R" => session.reset(),
        _ => {}
    }
}

/// One playground: its URL state, its session and every panel. The page's own (`embedded`
/// false) reads and writes the location hash and takes the keyboard; an embedded one keeps its
/// state to itself.
#[component]
pub fn Playground(hash: String, embedded: bool, hook: Hook) -> impl IntoView {
    let (initial, notices) = State::from_hash(&hash);
    let cfg = RwSignal::new(initial);
    let notices = RwSignal::new(notices);
    provide_context(cfg);
    provide_context(Notices(notices));
    let session = Session::new(cfg, hook.object(), !embedded, move || hook.mark_ready());
    provide_context(session);
    hook.fill(session);

    // Apply every state change to the session (and the page's hash).
    Effect::new(move |prev: Option<State>| {
        let s = cfg.get();
        if prev.as_ref().is_some_and(|p| *p != s) {
            session.with(|x| x.configure(&s));
        }
        if !embedded {
            write_hash(&s);
        }
        s
    });
    let is_toy = move || cfg.with(|s| s.preset.is_toy());

    if !embedded {
        // Edits of the hash by hand (or links inside the page) re-read the state.
        let _ = window_event_listener(leptos::ev::hashchange, move |_| {
            let (s, n) = State::from_hash(&current_hash());
            if s != cfg.get_untracked() {
                cfg.set(s);
            }
            notices.set(n);
        });
        let _ = window_event_listener(leptos::ev::keydown, move |ev| on_key(ev, cfg, session));
    }

    view! {
        <div class="playground" data-embedded=embedded.to_string()>
            <header class="topbar">
                <div class="brand">
                    <h1>"Concord"</h1>
                    <p class="subtitle">"Where multi-task gradients conflict, and what each method does about it"</p>
                </div>
                <panels::transport::TransportPanel />
                <panels::backend::BackendPanel />
            </header>
            <panels::notices::NoticesPanel />
            {(!embedded).then(|| view! { <panels::lessons::LessonsPanel /> })}
            <RunError />
            <main class="layout">
                <aside class="controls" aria-label="Settings">
                    <SettingsCards />
                </aside>
                <section class="figure" aria-label="Figures">
                    <FigureCards />
                </section>
                <aside class="side" class:hidden=move || cfg.with(|s| s.hide_text) aria-label="Explanation">
                    <panels::preset::PresetCard />
                    <Show when=is_toy>
                        <panels::explain::ExplainPanel />
                    </Show>
                </aside>
            </main>
        </div>
    }
}

/// The settings cards: preset, data and model (multi-task presets), methods, optimizer, I/O.
#[component]
pub fn SettingsCards() -> impl IntoView {
    let cfg = crate::state::use_cfg();
    let is_toy = move || cfg.with(|s| s.preset.is_toy());
    view! {
        <panels::preset::PresetPanel />
        <Show when=move || !is_toy()>
            <panels::data::DataPanel />
            <panels::model::ModelPanel />
            <panels::trunk::TrunkPanel />
        </Show>
        <panels::arena_methods::ArenaMethodsPanel />
        <panels::optimizer::OptimizerPanel />
        <panels::io::IoPanel />
    }
}

/// The figure panels: the toys' contour, the outputs, MoE and the landscape (multi-task).
#[component]
pub fn FigureCards() -> impl IntoView {
    let cfg = crate::state::use_cfg();
    let is_toy = move || cfg.with(|s| s.preset.is_toy());
    view! {
        <Show when=is_toy>
            <panels::contour::ContourPanel />
        </Show>
        <panels::outputs::OutputsPanel>
            <panels::conflict_map::ConflictMapPanel />
            <panels::samples::SamplesPanel />
            <panels::dynamics::DynamicsPanel />
        </panels::outputs::OutputsPanel>
        <Show when=move || !is_toy()>
            <panels::network::NetworkPanel />
            <panels::moe::MoePanel />
            <panels::landscape::LandscapePanel />
            <panels::merge::MergePanel />
        </Show>
    }
}

/// Why the runs could not be built (e.g. a BCE loss on a regression task).
#[component]
pub fn RunError() -> impl IntoView {
    let ui = session::use_session().ui;
    view! {
        <Show when=move || ui.error.with(|e| e.is_some())>
            <div class="notices run-error" role="alert" data-testid="run-error">
                <div class="notices-body">
                    <strong>"These settings cannot train: "</strong>
                    {move || ui.error.get().unwrap_or_default()}
                </div>
            </div>
        </Show>
    }
}
