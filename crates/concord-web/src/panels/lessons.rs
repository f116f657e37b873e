//! The lesson bar: the guided steps of `lessons::LESSON` (Prev/Next, ←/→ while the bar has
//! focus, a list of the steps), each step's text, and its control outlined and scrolled to.
//! Without a lesson in the URL it is a single "Start the lesson" button.

use crate::lessons::{LessonStep, LESSON};
use crate::state::{use_cfg, State};
use leptos::prelude::*;

/// The class that outlines the step's control (style.css).
const HIGHLIGHT: &str = "lesson-target";

/// Outline `step`'s control (and only it) and scroll it into view, once the panels of the new
/// state are in the DOM (the next frame).
fn highlight(step: Option<&'static LessonStep>) {
    request_animation_frame(move || {
        let Some(doc) = web_sys::window().and_then(|w| w.document()) else { return };
        while let Ok(Some(old)) = doc.query_selector(&format!(".{HIGHLIGHT}")) {
            let _ = old.class_list().remove_1(HIGHLIGHT);
        }
        if let Some(el) = step.and_then(|s| doc.query_selector(s.target).ok().flatten()) {
            let _ = el.class_list().add_1(HIGHLIGHT);
            el.scroll_into_view_with_bool(false);
        }
    });
}

#[component]
pub fn LessonsPanel() -> impl IntoView {
    let cfg = use_cfg();
    let lesson = move || cfg.with(|s| s.lesson);
    // Going to a step applies its state afresh (keeping play/pause, hidden controls and text).
    let go = move |n: usize| {
        let n = n.clamp(1, LESSON.len());
        cfg.update(|s| {
            let keep = (s.hidden.clone(), s.hide_text, s.play);
            *s = State::from_hash(&format!("lesson={n}")).0;
            (s.hidden, s.hide_text, s.play) = keep;
        });
    };
    let close = move || {
        highlight(None);
        cfg.update(|s| s.lesson = None);
    };
    Effect::new(move |prev: Option<Option<usize>>| {
        let now = lesson();
        if prev != Some(now) {
            highlight(now.map(|n| &LESSON[n - 1]));
        }
        now
    });
    let step = move || lesson().map(|n| &LESSON[n - 1]);
    let at_first = move || lesson().is_none_or(|n| n <= 1);
    let at_last = move || lesson().is_none_or(|n| n >= LESSON.len());
    let on_key = move |ev: web_sys::KeyboardEvent| {
        let Some(n) = lesson() else { return };
        let to = match ev.key().as_str() {
            "ArrowLeft" if n > 1 => n - 1,
            "ArrowRight" if n < LESSON.len() => n + 1,
            "ArrowLeft" | "ArrowRight" => n,
            _ => return,
        };
        // The page's own → (step the runs) must not fire as well.
        ev.prevent_default();
        ev.stop_propagation();
        // At either end the key does nothing: going to the same step would re-apply it and
        // discard what the student changed on it.
        if to != n {
            go(to);
        }
    };

    view! {
        <Show
            when=move || lesson().is_some()
            fallback=move || {
                view! {
                    <div class="lesson-start">
                        <button type="button" class="btn small" id="lesson-start" on:click=move |_| go(1)>
                            "Start the lesson: gradient conflict in 6 steps"
                        </button>
                    </div>
                }
            }
        >
            <section
                class="card lesson-bar"
                data-testid="lesson"
                tabindex="0"
                aria-label="Lesson (← and → change the step)"
                on:keydown=on_key
            >
                <div class="lesson-head">
                    <h2>
                        {move || format!("Lesson {} of {}: ", lesson().unwrap_or(1), LESSON.len())}
                        {move || step().map(|s| s.title)}
                    </h2>
                    <div class="lesson-nav">
                        <button
                            type="button"
                            class="btn small"
                            id="lesson-prev"
                            disabled=at_first
                            on:click=move |_| go(lesson().unwrap_or(1) - 1)
                        >
                            "← Prev"
                        </button>
                        <button
                            type="button"
                            class="btn small"
                            id="lesson-next"
                            disabled=at_last
                            on:click=move |_| go(lesson().unwrap_or(1) + 1)
                        >
                            "Next →"
                        </button>
                        <button type="button" class="btn small" id="lesson-close" on:click=move |_| close()>
                            "Close"
                        </button>
                    </div>
                </div>
                <p class="lesson-text" data-testid="lesson-text">{move || step().map(|s| s.text)}</p>
                <ol class="lesson-steps" aria-label="Lesson steps">
                    {LESSON
                        .iter()
                        .enumerate()
                        .map(|(i, s)| {
                            let n = i + 1;
                            view! {
                                <li>
                                    <button
                                        type="button"
                                        class="lesson-step"
                                        aria-current=move || (lesson() == Some(n)).then_some("step")
                                        on:click=move |_| go(n)
                                    >
                                        {format!("{n}. {}", s.title)}
                                    </button>
                                </li>
                            }
                        })
                        .collect_view()}
                </ol>
            </section>
        </Show>
    }
}
