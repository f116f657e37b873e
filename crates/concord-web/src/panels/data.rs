//! Data & tasks: 2–4 tasks with a dataset each, input placement, points, noise, train ratio,
//! the conflict knob, the seed (Regenerate draws a new one) and the user's CSV.

use crate::dom::{read_file, MAX_CSV_BYTES};
use crate::preset::Family;
use crate::session::use_session;
use crate::state::use_cfg;
use crate::state::{fmt_num, natural_loss, DATASETS, INPUTS, MAX_TASKS, MIN_TASKS};
use concord_core::data::{parse_csv, Dataset};
use leptos::prelude::*;

fn dataset_label(name: &str) -> &'static str {
    match name {
        "circle" => "Circle",
        "xor" => "XOR",
        "gauss" => "Gauss",
        "spiral" => "Spiral",
        "reg-plane" => "Plane (reg.)",
        _ => "Bumps (reg.)",
    }
}

fn inputs_label(name: &str) -> &'static str {
    match name {
        "native" => "Task 1’s generator",
        "union" => "All tasks’ generators",
        _ => "Uniform on [−6, 6]²",
    }
}

#[component]
pub fn DataPanel() -> impl IntoView {
    let cfg = use_cfg();
    let session = use_session();
    let aui = session.ui;
    // The last CSV problem (shown under the upload button).
    let io_error = RwSignal::new(None::<String>);
    let family = move || cfg.with(|s| s.preset.family());
    let csv_on = move || aui.csv.with(|c| c.is_some());
    let task_set = move || family() == Family::TaskSet && !csv_on();
    let has_points = move || matches!(family(), Family::TaskSet | Family::Sinusoid | Family::GradNorm) && !csv_on();
    let has_ratio = move || matches!(family(), Family::TaskSet | Family::Sinusoid) || csv_on();

    let task_rows = move || {
        let tasks = cfg.with(|s| s.tasks.clone());
        let m = tasks.len();
        tasks
            .into_iter()
            .enumerate()
            .map(|(t, d)| {
                let id = format!("task-{}-dataset", t + 1);
                view! {
                    <div class="field inline">
                        <label for=id.clone()>{format!("Task {}", t + 1)}</label>
                        <select
                            id=id
                            on:change=move |ev| {
                                if let Ok(d) = event_target_value(&ev).parse::<Dataset>() {
                                    cfg.update(|s| {
                                        s.tasks[t] = d;
                                        s.losses[t] = natural_loss(d);
                                    });
                                }
                            }
                        >
                            {DATASETS
                                .iter()
                                .map(|n| view! { <option value=*n selected=d.name() == *n>{dataset_label(n)}</option> })
                                .collect_view()}
                        </select>
                        <button
                            type="button"
                            class="btn small"
                            disabled=m <= MIN_TASKS
                            aria-label=format!("Remove task {}", t + 1)
                            on:click=move |_| {
                                cfg.update(|s| {
                                    if s.tasks.len() > MIN_TASKS {
                                        s.tasks.remove(t);
                                        s.losses.remove(t);
                                        s.conflict_task = s.conflict_task.min(s.tasks.len());
                                    }
                                })
                            }
                        >
                            "−"
                        </button>
                    </div>
                }
            })
            .collect_view()
    };

    let on_csv = move |ev: leptos::ev::Event| {
        read_file(&ev, MAX_CSV_BYTES, "CSV file", move |name, text| match text {
            Err(why) => io_error.set(Some(why)),
            Ok(text) => match parse_csv(&text) {
                Ok(data) => {
                    io_error.set(None);
                    session.with(|a| a.set_csv(Some((name, data))));
                }
                Err(e) => io_error.set(Some(format!("{name}: {e}"))),
            },
        });
    };

    view! {
        <section class="card" class:hidden=move || cfg.with(|s| s.is_hidden("data"))>
            <h2>"Data & tasks"</h2>
            <div class:hidden=move || !task_set()>
                {task_rows}
                <button
                    type="button"
                    class="btn small"
                    id="add-task"
                    disabled=move || cfg.with(|s| s.tasks.len() >= MAX_TASKS)
                    on:click=move |_| {
                        cfg.update(|s| {
                            if s.tasks.len() < MAX_TASKS {
                                s.tasks.push(Dataset::Circle);
                                s.losses.push(natural_loss(Dataset::Circle));
                            }
                        })
                    }
                >
                    "+ Add a task"
                </button>
                <div class="field">
                    <label for="inputs-select">"Input points from"</label>
                    <select
                        id="inputs-select"
                        on:change=move |ev| {
                            let v = event_target_value(&ev);
                            if let Some(n) = INPUTS.iter().find(|n| **n == v) {
                                cfg.update(|s| s.inputs = n);
                            }
                        }
                    >
                        {INPUTS
                            .iter()
                            .map(|n| view! { <option value=*n prop:selected=move || cfg.with(|s| s.inputs == *n)>{inputs_label(n)}</option> })
                            .collect_view()}
                    </select>
                </div>
                <div class="field">
                    <label for="conflict-range">
                        "Conflict knob κ: " {move || fmt_num(cfg.with(|s| s.conflict)).replace('-', "−")}
                        <small>" (1 = none, −1 = task fully flipped)"</small>
                    </label>
                    <input
                        id="conflict-range"
                        type="range"
                        min="-1"
                        max="1"
                        step="0.1"
                        prop:value=move || fmt_num(cfg.with(|s| s.conflict))
                        on:change=move |ev| {
                            if let Ok(k) = event_target_value(&ev).parse::<f64>() {
                                cfg.update(|s| s.conflict = (k.clamp(-1.0, 1.0) * 10.0).round() / 10.0);
                            }
                        }
                    />
                </div>
                <div class="field inline">
                    <label for="conflict-task">"κ flips the labels of"</label>
                    <select
                        id="conflict-task"
                        on:change=move |ev| {
                            if let Ok(t) = event_target_value(&ev).parse::<usize>() {
                                cfg.update(|s| s.conflict_task = t.clamp(1, s.tasks.len()));
                            }
                        }
                    >
                        {move || {
                            (1..=cfg.with(|s| s.tasks.len()))
                                .map(|t| view! { <option value=t.to_string() prop:selected=move || cfg.with(|s| s.conflict_task == t)>{format!("task {t}")}</option> })
                                .collect_view()
                        }}
                    </select>
                </div>
                <div class="field">
                    <label for="noise-range">"Noise: " {move || cfg.with(|s| s.noise)}</label>
                    <input
                        id="noise-range"
                        type="range"
                        min="0"
                        max="50"
                        step="5"
                        prop:value=move || cfg.with(|s| s.noise).to_string()
                        on:change=move |ev| {
                            if let Ok(n) = event_target_value(&ev).parse::<u32>() {
                                cfg.update(|s| s.noise = n.min(50));
                            }
                        }
                    />
                </div>
            </div>
            <div class="field" class:hidden=move || !has_points()>
                <label for="points-input">
                    {move || if family() == Family::GradNorm { "Training points" } else { "Points" }}
                </label>
                <input
                    id="points-input"
                    type="number"
                    min="50"
                    max="2000"
                    step="50"
                    prop:value=move || cfg.with(|s| s.points).to_string()
                    on:change=move |ev| {
                        match event_target_value(&ev).trim().parse::<f64>() {
                            Ok(n) if n.is_finite() => cfg.update(|s| s.points = n.round().clamp(50.0, 2000.0) as usize),
                            _ => cfg.update(|_| {}),
                        }
                    }
                />
            </div>
            <div class="field" class:hidden=move || !has_ratio()>
                <label for="ratio-range">"Training data: " {move || cfg.with(|s| s.train_pct)} " %"</label>
                <input
                    id="ratio-range"
                    type="range"
                    min="10"
                    max="90"
                    step="10"
                    prop:value=move || cfg.with(|s| s.train_pct).to_string()
                    on:change=move |ev| {
                        if let Ok(n) = event_target_value(&ev).parse::<u32>() {
                            cfg.update(|s| s.train_pct = n.clamp(10, 90));
                        }
                    }
                />
            </div>
            <div class="field inline">
                <label for="seed-input">"Seed"</label>
                <input
                    id="seed-input"
                    type="number"
                    min="0"
                    step="1"
                    prop:value=move || cfg.with(|s| s.seed).to_string()
                    on:change=move |ev| {
                        match event_target_value(&ev).trim().parse::<f64>() {
                            Ok(n) if n.is_finite() => cfg.update(|s| s.seed = n.round().clamp(0.0, 4_294_967_295.0) as u64),
                            _ => cfg.update(|_| {}),
                        }
                    }
                />
                <button
                    type="button"
                    class="btn small"
                    id="regenerate"
                    title="New data and new initial weights (a new seed)"
                    on:click=move |_| cfg.update(|s| s.seed = (js_sys::Math::random() * 100_000.0).floor() as u64)
                >
                    "Regenerate"
                </button>
            </div>
            <div class="csv">
                <input
                    type="file"
                    id="csv-upload"
                    class="visually-hidden"
                    accept=".csv,text/csv,text/plain"
                    aria-label="Upload a CSV: x1,x2 then one column per task"
                    on:change=on_csv
                />
                <label class="btn small file-btn" for="csv-upload">"Upload CSV…"</label>
                <button
                    type="button"
                    class="btn small"
                    class:hidden=move || !csv_on()
                    id="csv-clear"
                    on:click=move |_| {
                        session.with(|a| a.set_csv(None));
                    }
                >
                    "Use generated data"
                </button>
                <p class="hint" data-testid="csv-status" class:hidden=move || !csv_on()>
                    "Training on " {move || aui.csv.get().unwrap_or_default()}
                </p>
                <p class="hint">
                    "CSV: a header " <code>"x1,x2,task1,task2"</code> " (optionally " <code>"name:bin|class|reg"</code>
                    "), then one point per line."
                </p>
                <p class="error" role="alert" data-testid="io-error" class:hidden=move || io_error.with(|e| e.is_none())>
                    {move || io_error.get().unwrap_or_default()}
                </p>
            </div>
        </section>
    }
}
