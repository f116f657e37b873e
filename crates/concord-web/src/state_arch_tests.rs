//! The architectures' keys on the page state: `taskExperts` (CGC/PLE), `gamma` and
//! `auxEntropy` (DSelect-k): read, written back, bad values → a notice and the safe default or
//! the clamped value, and they reach the run's MoE config only for the routers that take them.

use crate::state::{MoeChoice, State};
use crate::train_config::base_config;
use concord_core::model::moe::RouterKind;

#[test]
fn architecture_keys_round_trip_and_reach_the_config() {
    let (s, notices) = State::from_hash("model=moe&router=ple&experts=3&taskExperts=2");
    assert!(notices.is_empty(), "{notices:?}");
    assert_eq!(s.moe.unwrap().task_experts, 2);
    let (back, n) = State::from_hash(&s.to_hash());
    assert!(n.is_empty(), "{n:?}");
    assert_eq!(back, s);
    let moe = base_config(&s, None).unwrap().moe.expect("model=moe");
    assert_eq!(moe.router, RouterKind::Ple { task_experts: 2 });

    let (s, notices) = State::from_hash("model=moe&router=dselect-k&experts=4&k=2&gamma=0.5&auxEntropy=0.001");
    assert!(notices.is_empty(), "{notices:?}");
    assert!(s.to_hash().contains("gamma=0.5") && s.to_hash().contains("auxEntropy=0.001"), "{}", s.to_hash());
    let (back, _) = State::from_hash(&s.to_hash());
    assert_eq!(back, s);
    let moe = base_config(&s, None).unwrap().moe.expect("model=moe");
    assert_eq!(moe.router, RouterKind::DselectK { k: 2, gamma: 0.5 });
    assert_eq!(moe.aux.entropy, 0.001);
}

#[test]
fn other_routers_ignore_the_architecture_keys() {
    let (s, _) = State::from_hash("model=moe&router=cgc&taskExperts=3&gamma=4&auxEntropy=0.5");
    let moe = base_config(&s, None).unwrap().moe.unwrap();
    assert_eq!(moe.router, RouterKind::Cgc { task_experts: 3 });
    assert_eq!(moe.aux.entropy, 0.0, "the entropy weight is DSelect-k's");
    let (s, _) = State::from_hash("model=moe&router=switch&taskExperts=3&gamma=4");
    let moe = base_config(&s, None).unwrap().moe.unwrap();
    assert!(matches!(moe.router, RouterKind::Switch { .. }));
}

#[test]
fn bad_architecture_values_give_a_notice_and_a_safe_value() {
    // Out of range: clamped, with a notice each.
    let (s, notices) = State::from_hash("model=moe&router=dselect-k&taskExperts=99&gamma=0&auxEntropy=5");
    assert_eq!(notices.len(), 3, "{notices:?}");
    let c = s.moe.unwrap();
    assert_eq!((c.task_experts, c.gamma, c.aux_entropy), (16, 0.01, 1.0));
    assert!(base_config(&s, None).is_ok(), "a clamped γ is one core accepts");
    // Not numbers: the defaults, with a notice each.
    let (s, notices) = State::from_hash("model=moe&router=cgc&taskExperts=lots&gamma=NaN&auxEntropy=x");
    assert_eq!(notices.len(), 3, "{notices:?}");
    let c = s.moe.unwrap();
    let d = MoeChoice::DEFAULT;
    assert_eq!((c.task_experts, c.gamma, c.aux_entropy), (d.task_experts, d.gamma, d.aux_entropy));
    // Old URLs without the keys keep loading with the core defaults (1 task expert, γ = 1).
    let (s, notices) = State::from_hash("model=moe&router=dselect-k");
    assert!(notices.is_empty(), "{notices:?}");
    let moe = base_config(&s, None).unwrap().moe.unwrap();
    assert_eq!(moe.router, RouterKind::DselectK { k: 1, gamma: 1.0 });
}
