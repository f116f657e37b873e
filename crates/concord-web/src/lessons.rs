//! The guided lesson ("the classroom", issue 19): six steps from one task to task-routed experts.
//! Each step is plain data — a URL-hash fragment (the page's usual state keys), a title, one or
//! two sentences, and the control the student should touch (a CSS selector the panel outlines
//! and scrolls to, named in the text). `lesson=N` in the hash applies step N: its keys are the
//! defaults and any key the hash names itself wins, so a lesson link with edits reloads as edited.
//!
//! Every claim a step makes is asserted in web/tests/lessons.test.mjs on the page's own numbers.

/// One step of the lesson.
#[derive(Clone, Copy, Debug)]
pub struct LessonStep {
    pub title: &'static str,
    /// The state keys this step sets (`key=value&…`), read as any URL hash is.
    pub hash: &'static str,
    /// What to look at, and why (the claims the browser test checks).
    pub text: &'static str,
    /// The control or panel to touch: CSS selector, outlined and scrolled into view.
    pub target: &'static str,
}

/// The steps, in order; `lesson=1` is the first.
pub const LESSON: &[LessonStep] = &[
    LessonStep {
        title: "One task",
        hash: "preset=circle-vs-gauss&arena=constant:weights=1;0",
        text: "One network learns one task, the circle: the method is the constant weighting 1, 0, so only task 1’s loss counts and its loss falls as the Step counter runs. Press Reset (R) to watch it learn again from the start.",
        target: "button[aria-label=Reset]",
    },
    LessonStep {
        title: "Two tasks that agree",
        hash: "preset=xor-conflict&conflict=1&arena=mean",
        text: "Two tasks share the trunk. With the Conflict knob κ at 1 task 2 is task 1, so both task gradients point the same way: the Task-gradient cosines panel shows cos = +1.",
        target: "#conflict-range",
    },
    LessonStep {
        title: "Two tasks that conflict",
        hash: "preset=xor-conflict&conflict=-0.8&arena=mean",
        text: "Now κ = −0.8 flips task 2’s labels on most of the plane. In the Task-gradient cosines panel the cosine between the two task gradients starts negative: each task pulls the shared trunk against the other.",
        target: "[data-panel=cosine]",
    },
    LessonStep {
        title: "What the methods change",
        hash: "preset=xor-conflict&conflict=-0.8&arena=mean,pcgrad,mgda,upgrad",
        text: "The Arena runs Mean beside PCGrad, MGDA and UPGrad from the same weights on the same data: only the way each combines the two conflicting gradients differs, and their loss curves part. Add or change a method in the Arena.",
        target: "#add-method",
    },
    LessonStep {
        title: "Experts separate the tasks",
        hash: "preset=task-experts&arena=mean",
        text: "Model = MoE: each task has its own gate over 4 experts (top-1). In the MoE panel each task’s gate favours a different expert, so much of their gradients land on different parameters instead of fighting over one trunk.",
        target: "#model-select",
    },
    LessonStep {
        title: "Your turn",
        hash: "preset=circle-vs-gauss",
        text: "That is the whole story: conflict, what aggregators do about it, and what routing does. Pick any experiment in the Preset list; each comes with a card of what to look for.",
        target: "#preset-select",
    },
];

/// The step a `lesson` value names (1-based), or why it names none.
pub fn parse_step(raw: &str) -> Result<usize, String> {
    match raw.trim().parse::<usize>() {
        Ok(n) if (1..=LESSON.len()).contains(&n) => Ok(n),
        Ok(_) => Err(format!("no such step (1–{})", LESSON.len())),
        Err(_) => Err(format!("not a step number (1–{})", LESSON.len())),
    }
}
