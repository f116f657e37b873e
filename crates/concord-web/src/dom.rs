//! Page plumbing the panels share: file downloads and uploads, the figure frame (heading,
//! PNG button, canvas, hint), and the store and yield of a panel's on-demand computation.

use leptos::html::Canvas;
use leptos::prelude::*;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::JsCast;
use web_sys::HtmlCanvasElement;

/// A panel's last on-demand computation (its own, per playground): the result, whether one is
/// under way, and the error of the last try.
pub struct Computed<T> {
    pub result: Option<T>,
    pub busy: bool,
    pub error: Option<String>,
}

impl<T> Default for Computed<T> {
    fn default() -> Self {
        Computed { result: None, busy: false, error: None }
    }
}

pub type ComputedCell<T> = StoredValue<Rc<RefCell<Computed<T>>>, LocalStorage>;

/// `f` on the panel's computation; `None` once the panel is gone or while it is borrowed.
pub fn with_computed<T: 'static, R>(cell: ComputedCell<T>, f: impl FnOnce(&mut Computed<T>) -> R) -> Option<R> {
    let rc = cell.try_get_value()?;
    let mut guard = rc.try_borrow_mut().ok()?;
    Some(f(&mut guard))
}

/// Put `name()` on a playground's hook object (`hook`, when it has one): the panel's last
/// computation as {busy, error, result} (result serialised), plus `shown` when `shown` is given.
pub fn install_computed_hook<T: serde::Serialize + 'static>(
    hook: Option<js_sys::Object>,
    name: &str,
    store: ComputedCell<T>,
    shown: Option<Box<dyn Fn() -> bool>>,
) {
    let Some(hook) = hook else { return };
    let get = wasm_bindgen::closure::Closure::<dyn Fn() -> wasm_bindgen::JsValue>::new(move || {
        let shown = shown.as_ref().map(|f| f());
        with_computed(store, |s| {
            let mut out = serde_json::json!({ "busy": s.busy, "error": s.error });
            if let Some(shown) = shown {
                out["shown"] = shown.into();
            }
            if let Some(r) = &s.result {
                out["result"] = serde_json::to_value(r).unwrap_or_default();
            }
            js_sys::JSON::parse(&out.to_string()).unwrap_or(wasm_bindgen::JsValue::NULL)
        })
        .unwrap_or(wasm_bindgen::JsValue::NULL)
    });
    let _ = js_sys::Reflect::set(&hook, &name.into(), get.as_ref());
    get.forget();
}

/// Resolves on the next macrotask, so the browser can paint and handle input.
pub async fn yield_now() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 0);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

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

/// The largest run file the page reads (`saved::MAX_FILE_BYTES`, where the reason is).
pub const MAX_RUN_FILE_BYTES: f64 = crate::saved::MAX_FILE_BYTES as f64;
/// The largest CSV the page reads: 100 000 points (concord-core's cap) × 10 columns of
/// full-precision numbers is ≈ 20 MB.
pub const MAX_CSV_BYTES: f64 = 32.0 * 1024.0 * 1024.0;

/// Why a file of `size` bytes is refused under `limit` (`None`: it is not).
pub fn size_error(name: &str, size: f64, limit: f64, what: &str) -> Option<String> {
    let mb = |b: f64| format!("{:.1} MB", b / (1024.0 * 1024.0));
    (size > limit)
        .then(|| format!("{name}: the file is {}; a {what} may be at most {} (not read)", mb(size), mb(limit)))
}

/// Read the first file of a file input as text, then call `done(name, text)`; a file larger than
/// `limit` bytes (from `File.size`, before anything is read) gives `done(name, Err(why))`.
pub fn read_file(
    ev: &leptos::ev::Event,
    limit: f64,
    what: &'static str,
    done: impl FnOnce(String, Result<String, String>) + 'static,
) {
    let Some(input) = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok()) else { return };
    let Some(file) = input.files().and_then(|f| f.get(0)) else { return };
    let name = file.name();
    input.set_value("");
    if let Some(why) = size_error(&name, file.size(), limit, what) {
        done(name, Err(why));
        return;
    }
    wasm_bindgen_futures::spawn_local(async move {
        let text = wasm_bindgen_futures::JsFuture::from(file.text()).await.ok().and_then(|v| v.as_string());
        let text = text.ok_or_else(|| format!("{name}: the file could not be read as text"));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_above_the_limits_are_refused_before_reading() {
        assert_eq!(size_error("a.csv", MAX_CSV_BYTES, MAX_CSV_BYTES, "CSV file"), None);
        let why = size_error("big.csv", 40.0 * 1024.0 * 1024.0, MAX_CSV_BYTES, "CSV file").unwrap();
        assert_eq!(why, "big.csv: the file is 40.0 MB; a CSV file may be at most 32.0 MB (not read)");
        assert!(size_error("run.json", MAX_RUN_FILE_BYTES + 1.0, MAX_RUN_FILE_BYTES, "run file").is_some());
    }
}
