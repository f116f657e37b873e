//! Copy link, export / import of the runs as JSON.

use crate::dom::{download_text, read_file, MAX_RUN_FILE_BYTES};
use crate::session::use_session;
use crate::state::use_cfg;
use leptos::prelude::*;

#[component]
pub fn IoPanel() -> impl IntoView {
    let cfg = use_cfg();
    let session = use_session();
    let import_error = RwSignal::new(None::<String>);
    let copied = RwSignal::new(false);
    let is_toy = move || cfg.with(|s| s.preset.is_toy());
    view! {
        <section class="card" class:hidden=move || cfg.with(|s| s.is_hidden("io"))>
            <h2>"Share & save"</h2>
            <div class="button-row">
                <button
                    type="button"
                    class="btn"
                    id="copy-link"
                    on:click=move |_| {
                        if let Some(w) = web_sys::window() {
                            let href = w.location().href().unwrap_or_default();
                            let _ = w.navigator().clipboard().write_text(&href);
                            copied.set(true);
                        }
                    }
                >
                    {move || if copied.get() { "Link copied ✓" } else { "Copy link" }}
                </button>
                <button
                    type="button"
                    class="btn"
                    id="export-run"
                    class:hidden=is_toy
                    on:click=move |_| {
                        if let Some(json) = session.with(|a| a.export_json()) {
                            download_text(&json, "concord-run.json", "application/json");
                        }
                    }
                >
                    "Export run (JSON)"
                </button>
                <input
                    type="file"
                    id="import-run"
                    class:hidden=is_toy
                    class="visually-hidden"
                    accept=".json,application/json"
                    aria-label="Import a run exported as JSON"
                    on:change=move |ev| {
                        read_file(&ev, MAX_RUN_FILE_BYTES, "run file", move |_name, text| {
                            let result = text.and_then(|text| {
                                session.with(|a| a.import_json(&text)).unwrap_or(Err("the page is busy".into()))
                            });
                            import_error.set(result.err());
                        });
                    }
                />
                <label class="btn file-btn" class:hidden=is_toy for="import-run">"Import run…"</label>
            </div>
            <p class="error" role="alert" data-testid="import-error" class:hidden=move || import_error.with(|e| e.is_none())>
                {move || import_error.get().unwrap_or_default()}
            </p>
            <p class="hint" class:hidden=is_toy>"The link holds every setting. The run file holds the settings, the data, every run’s weights and its metrics history (optimizer moments restart on import)."</p>
        </section>
    }
}
