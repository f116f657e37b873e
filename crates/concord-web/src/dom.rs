//! Page plumbing the panels share: file downloads and uploads, and the figure frame (heading,
//! PNG button, canvas, hint).

use leptos::html::Canvas;
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::HtmlCanvasElement;

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
        let text = wasm_bindgen_futures::JsFuture::from(file.text())
            .await
            .ok()
            .and_then(|v| v.as_string())
            .unwrap_or_default();
        done(name, text);
    });
}

/// Save a canvas as `concord-<name>.png`.
pub fn download_png(canvas: &HtmlCanvasElement, name: &str) {
    if let Ok(url) = canvas.to_data_url_with_type("image/png") {
        download_url(&url, &format!("concord-{name}.png"));
    }
}

/// One panel: a heading, a PNG button and the canvas.
pub(crate) fn figure(
    key: &'static str,
    title: &'static str,
    node: NodeRef<Canvas>,
    extra_hidden: Signal<bool>,
    hint: &'static str,
) -> impl IntoView {
    let panel_hidden = crate::state::panel_hidden(key);
    let hidden = move || panel_hidden() || extra_hidden.get();
    view! {
        <section class="card figure-card" class:hidden=hidden data-panel=key>
            <div class="figure-head">
                <h2>{title}</h2>
                <button
                    type="button"
                    class="btn small"
                    aria-label=format!("Download the {title} panel as PNG")
                    on:click=move |_| {
                        if let Some(c) = node.get_untracked() {
                            download_png(&c, key);
                        }
                    }
                >
                    "PNG"
                </button>
            </div>
            <canvas node_ref=node role="img" aria-label=title></canvas>
            <p class="hint">{hint}</p>
        </section>
    }
}
