//! Concord playground: the CAGrad two-objective toy, run live in the browser.
//!
//! The page is a Leptos (CSR) app. `state` holds the URL-hash state, `runner` advances the runs
//! (WebGPU by default, the CPU as fallback) once per animation frame, `panels` has one component
//! per panel, `plot` the drawing helpers, and `hook` the `window.concord` test hook.

mod hook;
mod panels;
mod plot;
mod runner;
mod state;

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
        "s" | "S" | "ArrowRight" => {
            let spf = cfg.with_untracked(|s| s.spf) as u64;
            runner::with(|r| r.request_steps(spf, None));
        }
        "r" | "R" => {
            runner::with(|r| {
                if r.is_ready() {
                    r.reset()
                }
            });
        }
        _ => {}
    }
}

#[component]
fn App() -> impl IntoView {
    let (initial, notices) = State::from_hash(&current_hash());
    let cfg = RwSignal::new(initial.clone());
    let notices = RwSignal::new(notices);
    let ui = runner::Ui::new();
    provide_context(cfg);
    provide_context(ui);
    provide_context(Notices(notices));

    runner::install(ui, &initial, hook::mark_ready);

    // Apply every state change to the runner and the hash.
    Effect::new(move |prev: Option<State>| {
        let s = cfg.get();
        if let Some(p) = &prev {
            if *p != s {
                runner::with(|r| r.configure(&s, p.needs_reset(&s)));
            }
        }
        write_hash(&s);
        s
    });

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
                <p class="subtitle">"Gradient conflict on CAGrad’s two-objective toy"</p>
            </div>
            <panels::transport::TransportPanel />
            <panels::backend::BackendPanel />
        </header>
        <panels::notices::NoticesPanel />
        <main class="layout">
            <aside class="controls" aria-label="Settings">
                <panels::problem::ProblemPanel />
                <panels::methods::MethodsPanel />
                <panels::optimizer::OptimizerPanel />
            </aside>
            <section class="figure" aria-label="Figure">
                <panels::contour::ContourPanel />
            </section>
            <aside class="side" class:hidden=move || cfg.with(|s| s.hide_text) aria-label="Explanation">
                <panels::explain::ExplainPanel />
            </aside>
        </main>
    }
}

fn main() {
    console_error_panic_hook::set_once();
    hook::install();
    leptos::mount::mount_to_body(App);
}
