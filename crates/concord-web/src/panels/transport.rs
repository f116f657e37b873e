//! Play/pause, step, reset, the step counter and the live speed.

use crate::session::use_session;
use crate::state::use_cfg;
use leptos::prelude::*;

/// 12345678 → "12,345,678".
pub fn fmt_int(n: u64) -> String {
    commas(&n.to_string())
}

/// "0012345" → "0,012,345".
fn commas(s: &str) -> String {
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// TF Playground's counter: zero-padded to six digits, with commas (12 → "000,012").
pub fn fmt_padded(n: u64) -> String {
    commas(&format!("{n:06}"))
}

/// Whole epochs after `steps` mini-batches of `batch` out of `n_train` points.
pub fn epochs(steps: u64, batch: usize, n_train: usize) -> u64 {
    if n_train == 0 {
        0
    } else {
        steps * batch as u64 / n_train as u64
    }
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M", r / 1e6)
    } else if r >= 1e4 {
        format!("{:.0} k", r / 1e3)
    } else {
        fmt_int(r.round() as u64)
    }
}

/// "3 methods", or on the toys "4 methods × 3 starts".
fn runs_text(runs: &[crate::session::Run]) -> String {
    let count = |mut keys: Vec<usize>| {
        keys.sort_unstable();
        keys.dedup();
        keys.len()
    };
    let methods = count(runs.iter().map(|r| r.slot).collect());
    let starts = count(runs.iter().filter_map(|r| r.start.map(|s| s.1)).collect());
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    if starts > 0 {
        format!("{} × {}", plural(methods, "method"), plural(starts, "start"))
    } else {
        plural(methods, "method")
    }
}

#[component]
pub fn TransportPanel() -> impl IntoView {
    let cfg = use_cfg();
    let session = use_session();
    let ui = session.ui;
    let playing = move || cfg.with(|s| s.play);
    let hidden = move |key: &'static str| move || cfg.with(|s| s.is_hidden(key));
    // Every run takes the same steps (lock-step), so the speed is per run; the runs are counted
    // as methods (× starts on the toys).
    let runs = move || {
        ui.version.track();
        session.with(|s| runs_text(&s.runs)).unwrap_or_default()
    };
    let steps = move || ui.steps.get();
    // (batch, train points) of the first run: every run of the arena shares its data.
    let batch_of = move || {
        ui.version.track();
        session
            .with(|s| {
                let r = s.runs.first()?;
                let n = r.train_set()?.0.nrows();
                Some((r.config.batch_size.unwrap_or(n), n))
            })
            .flatten()
    };
    let rate = move || ui.rate.get();

    view! {
        <div class="transport" role="group" aria-label="Run controls">
            <button
                type="button"
                class="btn icon-btn"
                class:hidden=hidden("resetButton")
                title="Reset the runs to their starts (R)"
                aria-label="Reset"
                on:click=move |_| session.reset()
            >
                <svg width="20" height="20" viewBox="0 0 24 24" aria-hidden="true">
                    <path d="M12 5V1L7 6l5 5V7c3.31 0 6 2.69 6 6s-2.69 6-6 6-6-2.69-6-6H4c0 4.42 3.58 8 8 8s8-3.58 8-8-3.58-8-8-8z" fill="currentColor"></path>
                </svg>
            </button>
            <button
                type="button"
                class="btn play-btn"
                class:hidden=hidden("playButton")
                title="Play / pause (Space)"
                aria-label=move || if playing() { "Pause" } else { "Play" }
                aria-pressed=move || playing().to_string()
                on:click=move |_| cfg.update(|s| s.play = !s.play)
            >
                {move || {
                    if playing() {
                        view! {
                            <svg width="26" height="26" viewBox="0 0 24 24" aria-hidden="true">
                                <path d="M6 19h4V5H6v14zm8-14v14h4V5h-4z" fill="currentColor"></path>
                            </svg>
                        }
                    } else {
                        view! {
                            <svg width="26" height="26" viewBox="0 0 24 24" aria-hidden="true">
                                <path d="M8 5v14l11-7z" fill="currentColor"></path>
                            </svg>
                        }
                    }
                }}
            </button>
            <button
                type="button"
                class="btn icon-btn"
                class:hidden=hidden("stepButton")
                title=move || format!("Advance {} steps (S); a step is one mini-batch (TF Playground's step is one epoch)", cfg.with(|s| s.spf))
                aria-label="Step"
                on:click=move |_| session.step_once()
            >
                <svg width="20" height="20" viewBox="0 0 24 24" aria-hidden="true">
                    <path d="M6 18l8.5-6L6 6v12zM16 6v12h2V6h-2z" fill="currentColor"></path>
                </svg>
            </button>
            <div class="readout" aria-live="off">
                <span class="readout-label">"Step"</span>
                <span class="readout-value counter step-count" data-testid="steps">{move || fmt_int(steps())}</span>
            </div>
            <div class="readout" aria-live="off" class:hidden=move || batch_of().is_none()
                title="Epochs: steps × batch size ÷ training points">
                <span class="readout-label">"Epoch"</span>
                <span class="readout-value counter" data-testid="epochs">
                    {move || batch_of().map(|(b, n)| fmt_padded(epochs(steps(), b, n))).unwrap_or_default()}
                </span>
            </div>
            <div class="readout">
                <span class="readout-label">"Speed"</span>
                <span class="readout-value">
                    {move || fmt_rate(rate())}
                    <small>" steps/s per run"</small>
                </span>
                <span class="readout-note" data-testid="run-count">{runs}</span>
            </div>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_are_counted_and_padded_as_tf_playground_does() {
        assert_eq!(epochs(10, 50, 250), 2);
        assert_eq!(epochs(4, 50, 250), 0);
        assert_eq!(epochs(7, 0, 0), 0);
        assert_eq!(fmt_padded(0), "000,000");
        assert_eq!(fmt_padded(12), "000,012");
        assert_eq!(fmt_padded(1234), "001,234");
        assert_eq!(fmt_padded(12_345_678), "12,345,678");
    }
}
