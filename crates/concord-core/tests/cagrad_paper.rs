//! The behaviour the CAGrad paper reports for its toy (Fig. 1), with the published setting:
//! Adam lr 1e-3, 100 000 steps, from (−8.5, 7.5), (−8.5, −5) and (9, 9).
//! - Adam on the mean gradient gets stuck away from the Pareto set from two starts;
//! - MGDA and PCGrad reach the Pareto set, but not the average-loss optimum;
//! - CAGrad (c = 0.5) reaches the average-loss optimum (0, −8.3551) from every start.

//!
//! The runs go through the one trainer: the toy is `DataSource::Toy` (x is the parameter
//! vector), the preset's config is the published setting, methods are named as on the CLI.

use concord_core::problems::CagradToy;
use concord_core::train::{DataSource, Preset};
use concord_core::{train, MethodSpec, ProblemKind};

const STARTS: [[f64; 2]; 3] = [[-8.5, 7.5], [-8.5, -5.0], [9.0, 9.0]];

/// Where a published run ends: its final point and final losses.
struct Outcome {
    final_point: [f64; 2],
    final_losses: Vec<f64>,
}

fn published(start: [f64; 2], method: &str) -> Outcome {
    let mut config = Preset::CagradToy.config();
    assert_eq!((config.steps, config.optimizer.lr()), (100_000, 1e-3), "the published setting");
    config.data = DataSource::Toy { problem: ProblemKind::CagradToy, start };
    config.method = MethodSpec::parse(method).unwrap();
    let r = train(&config).unwrap();
    assert_eq!(r.steps_done, 100_000);
    assert!(r.error.is_none());
    Outcome { final_point: [r.params[0], r.params[1]], final_losses: r.final_train_losses }
}

/// Distance to the exact Pareto set {(a, x₂*(a)) : |a| ≤ 7}, x₂*(a) ∈ [−8.4345, −8.3551].
fn off_pareto_set(p: [f64; 2]) -> f64 {
    let dx = (p[0].abs() - 7.0).max(0.0);
    let dy = if p[1] > -8.3551 {
        p[1] + 8.3551
    } else if p[1] < -8.4345 {
        -8.4345 - p[1]
    } else {
        0.0
    };
    dx.hypot(dy)
}

fn dist(a: [f64; 2], b: [f64; 2]) -> f64 {
    (a[0] - b[0]).hypot(a[1] - b[1])
}

#[test]
fn cagrad_reaches_the_average_optimum_from_every_start() {
    for start in STARTS {
        let t = published(start, "cagrad:c=0.5");
        assert!(dist(t.final_point, CagradToy::AVERAGE_OPTIMUM) < 1e-2, "{start:?} → {:?}", t.final_point);
        let avg: f64 = 0.5 * (t.final_losses[0] + t.final_losses[1]);
        assert!((avg - -15.0916).abs() < 1e-3, "{start:?}: average loss {avg}");
    }
}

#[test]
fn mean_gradient_gets_stuck_from_the_upper_starts() {
    for start in [[-8.5, 7.5], [9.0, 9.0]] {
        let t = published(start, "mean");
        assert!(off_pareto_set(t.final_point) > 5.0, "{start:?} → {:?} should be stuck", t.final_point);
    }
}

#[test]
fn mgda_and_pcgrad_reach_the_pareto_set_but_not_the_optimum() {
    for method in ["mgda", "pcgrad"] {
        for start in STARTS {
            let t = published(start, method);
            assert!(off_pareto_set(t.final_point) < 2e-2, "{} {start:?} → {:?}", method, t.final_point);
            assert!(t.final_point[0].abs() > 1.5, "{} {start:?} → {:?} is near the optimum", method, t.final_point);
        }
    }
}
