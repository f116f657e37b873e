//! Which engine runs the steps: for a toy grid "WebGPU · <adapter>" or "CPU fallback —
//! <reason>"; for the multi-task runs the backend of every run, and why a run is on the CPU.

use crate::session::use_session;
use crate::state::use_cfg;
use leptos::prelude::*;

#[component]
pub fn BackendPanel() -> impl IntoView {
    let cfg = use_cfg();
    let ui = use_session().ui;
    let class = move || match (ui.backend.with(|b| b.gpu), cfg.with(|s| s.preset.is_toy())) {
        (None, _) => "backend backend-pending",
        (Some(true), _) => "backend backend-gpu",
        (Some(false), true) => "backend backend-cpu",
        (Some(false), false) => "backend backend-cpu-mt",
    };
    let text = move || ui.backend.with(|b| b.text.clone());
    view! {
        <div
            class=class
            class:hidden=move || cfg.with(|s| s.is_hidden("backend"))
            role="status"
            aria-live="polite"
            data-testid="backend"
        >
            <span class="backend-dot" aria-hidden="true"></span>
            <span class="backend-text">{text}</span>
        </div>
    }
}
