//! Copy link, export / import of the run as JSON, and the download helper the PNG buttons use.

use crate::arena;
use crate::use_cfg;
use leptos::prelude::*;
use wasm_bindgen::JsCast;

/// Click a temporary `<a download>` for `url`.
pub fn download_url(url: &str, file_name: &str) {
    let Some(doc) = web_sys::window().and_then(|w| w.document()) else { return };
    if let Ok(a) = doc.create_element("a") {
        if let Ok(a) = a.dyn_into::<web_sys::HtmlAnchorElement>() {
            a.set_href(url);
            a.set_download(file_name);
            if let Some(body) = doc.body() {
                let _ = body.append_child(&a);
                a.click();
                let _ = body.remove_child(&a);
            }
        }
    }
}

/// Offer `text` as a file download.
pub fn download_text(text: &str, file_name: &str, mime: &str) {
    let parts = js_sys::Array::of1(&text.into());
    let opts = web_sys::BlobPropertyBag::new();
    opts.set_type(mime);
    if let Ok(blob) = web_sys::Blob::new_with_str_sequence_and_options(&parts, &opts) {
        if let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob) {
            download_url(&url, file_name);
            let _ = web_sys::Url::revoke_object_url(&url);
        }
    }
}

/// Read the first file of a file input as text, then call `done(name, text)`.
pub fn read_file(ev: &leptos::ev::Event, done: impl FnOnce(String, String) + 'static) {
    let Some(input) = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok()) else { return };
    let Some(file) = input.files().and_then(|f| f.get(0)) else { return };
    let name = file.name();
    input.set_value("");
    wasm_bindgen_futures::spawn_local(async move {
        let text = wasm_bindgen_futures::JsFuture::from(file.text()).await.ok().and_then(|v| v.as_string()).unwrap_or_default();
        done(name, text);
    });
}

#[component]
pub fn IoPanel() -> impl IntoView {
    let cfg = use_cfg();
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
                        if let Some(json) = arena::with(|a| a.export_json()) {
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
                        read_file(&ev, move |_name, text| {
                            let result = arena::with(|a| a.import_json(&text)).unwrap_or(Err("the page is busy".into()));
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
