//! Which engine runs the steps: "WebGPU · <adapter>" or "CPU fallback — <reason>" for the toy;
//! for the arena the backend of every run, and why a run is on the CPU.

use crate::arena::ArenaUi;
use crate::runner::BackendKind;
use crate::{use_cfg, use_ui};
use leptos::prelude::*;

#[component]
pub fn BackendPanel() -> impl IntoView {
    let cfg = use_cfg();
    let ui = use_ui();
    let class = move || match ui.backend.with(|b| b.kind) {
        Some(BackendKind::WebGpu) => "backend backend-gpu",
        Some(BackendKind::Cpu) => "backend backend-cpu",
        None => "backend backend-pending",
    };
    let toy = move || cfg.with(|s| s.preset.is_toy());
    let aui = expect_context::<ArenaUi>();
    let class = move || match (toy(), aui.backend.with(|b| b.0)) {
        (true, _) => class(),
        (false, true) => "backend backend-gpu",
        (false, false) => "backend backend-cpu-mt",
    };
    let text = move || {
        if !toy() {
            return aui.backend.with(|b| b.1.clone());
        }
        ui.backend.with(|b| match b.kind {
            Some(BackendKind::WebGpu) => {
                format!(
                    "WebGPU · {}",
                    b.adapter.strip_suffix(" · WebGPU").unwrap_or(&b.adapter)
                )
            }
            Some(BackendKind::Cpu) => format!(
                "CPU fallback — {}",
                b.reason.clone().unwrap_or_else(|| "no reason given".into())
            ),
            None => "Choosing a backend…".into(),
        })
    };
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
