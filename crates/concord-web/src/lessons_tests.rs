//! The lesson table against the URL state: every step loads cleanly and reads back, a link's own
//! keys win, a bad step is a notice. (Here, not in lessons.rs: state.rs reads the table, so a
//! test there importing the state would close a module circle; see main.rs's module_graph.)

use crate::lessons::LESSON;
use crate::state::State;

#[test]
fn every_step_loads_without_notices_and_reads_back() {
    for (i, step) in LESSON.iter().enumerate() {
        let (s, notices) = State::from_hash(&format!("lesson={}", i + 1));
        assert!(notices.is_empty(), "step {}: {notices:?}", i + 1);
        assert_eq!(s.lesson, Some(i + 1));
        // The step's own keys hold: the same state as its hash read directly.
        let (direct, _) = State::from_hash(step.hash);
        assert_eq!(State { lesson: None, ..s.clone() }, direct, "step {}", i + 1);
        assert_eq!(State::from_hash(&s.to_hash()).0, s, "step {} round trip", i + 1);
    }
}

#[test]
fn the_hash_overrides_a_steps_keys() {
    let (s, _) = State::from_hash("lesson=3&conflict=0.5&play=false");
    assert_eq!((s.conflict, s.play, s.lesson), (0.5, false, Some(3)));
}

#[test]
fn a_bad_step_is_a_notice_and_step_one() {
    for raw in ["99", "0", "x", "-1"] {
        let (s, notices) = State::from_hash(&format!("lesson={raw}"));
        assert_eq!(s.lesson, Some(1), "lesson={raw}");
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert!(notices[0].starts_with(&format!("lesson={raw}:")), "{notices:?}");
        assert_eq!(State { lesson: None, ..s }, State::from_hash(LESSON[0].hash).0);
    }
}

#[test]
fn the_sequence_walks_the_issue_s_path() {
    assert_eq!(LESSON.len(), 6);
    let state = |i: usize| State::from_hash(LESSON[i].hash).0;
    assert_eq!(state(1).conflict, 1.0, "two tasks that agree");
    assert!(state(2).conflict < 0.0, "two that conflict");
    let methods: Vec<_> = state(3).arena.iter().map(|r| r.method.aggregator.name().to_string()).collect();
    assert_eq!(methods, ["mean", "pcgrad", "mgda", "upgrad"]);
    assert!(state(4).moe.is_some(), "the MoE step trains an MoE");
}
