//! `concord methods`: every aggregator, loss weighting and sample weighting with its
//! parameters, defaults and properties, and the MoE routers and architectures with their flags,
//! from the registries in concord-core (a readable table, or `{"aggregators": [...],
//! "weightings": [...], "sample_weightings": [...], "routers": [...], "moe_params": [...]}`).

use crate::UsageError;
use clap::Args;
use concord_core::aggregators::registry::{AggregatorInfo, ParamDefault, AGGREGATORS};
use concord_core::model::moe::catalogue::{RouterInfo, RouterParam, MOE_PARAMS, ROUTERS};
use concord_core::sample_weighting::{self, SampleWeightingDescription};
use concord_core::weightings::{descriptions, WeightingDescription};
use serde::Serialize;

#[derive(Args, Debug)]
pub struct MethodsArgs {
    /// Print one JSON object {"aggregators": [...], "weightings": [...], "sample_weightings": [...],
    /// "routers": [...], "moe_params": [...]} on stdout.
    #[arg(long)]
    json: bool,
}

/// The JSON document.
#[derive(Serialize)]
struct Listing {
    aggregators: &'static [AggregatorInfo],
    weightings: Vec<WeightingDescription>,
    sample_weightings: Vec<SampleWeightingDescription>,
    routers: &'static [RouterInfo],
    moe_params: &'static [RouterParam],
}

pub fn run(args: MethodsArgs) -> Result<(), UsageError> {
    if args.json {
        let listing = Listing {
            aggregators: &AGGREGATORS,
            weightings: descriptions(),
            sample_weightings: sample_weighting::descriptions(),
            routers: &ROUTERS,
            moe_params: &MOE_PARAMS,
        };
        println!("{}", serde_json::to_string_pretty(&listing).expect("the registry serialises"));
        return Ok(());
    }
    print!("{}", table());
    Ok(())
}

fn table() -> String {
    let mut out = String::new();
    out.push_str(
        "Aggregators (d = Jᵀw from the Gramian G = JJᵀ unless marked per-coordinate; torchjd 0.18 semantics)\n",
    );
    out.push_str(
        "Properties: NC = non-conflicting, LS = linear under scaling, W = weighted (✔ yes, ✘ no, – not documented)\n\n",
    );
    out.push_str(&format!("{:<14} {:<12} {:^3} {:^3} {:^3}  {}\n", "NAME", "LABEL", "NC", "LS", "W", "DESCRIPTION"));
    for a in &AGGREGATORS {
        let p = a.properties;
        let mut flags = Vec::new();
        if a.needs_losses {
            // MoCo, DB-MTL: d from gradients tracked across steps, with the batch losses.
            flags.push("reads the losses: train only, or aggregate --losses");
        } else if !a.gramian_weighted {
            flags.push("per-coordinate");
        }
        if a.stateful {
            flags.push("stateful");
        }
        if a.seeded {
            flags.push("uses --seed");
        }
        let flags = if flags.is_empty() { String::new() } else { format!(" [{}]", flags.join(", ")) };
        out.push_str(&format!(
            "{:<14} {:<12} {:^3} {:^3} {:^3}  {}{}\n",
            a.name,
            a.label,
            p.non_conflicting.mark(),
            p.linear_under_scaling.mark(),
            p.weighted.mark(),
            a.description,
            flags
        ));
        if let Some(note) = p.note {
            out.push_str(&format!("    note: {note}\n"));
        }
        for q in a.params {
            out.push_str(&format!(
                "    --param {}=…  ({}, {}; {}): {}\n",
                q.name,
                q.range.type_name(),
                match q.default {
                    ParamDefault::Required => "required".to_string(),
                    d => format!("default {}", d.text()),
                },
                q.range,
                q.meaning
            ));
        }
    }
    out.push_str("\nLoss weightings (scalarisations of the task losses; LibMTL semantics)\n\n");
    for w in descriptions() {
        out.push_str(&format!("{:<14} {:<12} {}\n    epochs: {}\n", w.name, w.label, w.summary, w.epochs));
        for q in &w.params {
            let lo = if q.min_inclusive { "≥" } else { ">" };
            let hi = q.max.map(|m| format!(", ≤ {m}")).unwrap_or_default();
            out.push_str(&format!(
                "    --param {}=…  (default {}; {lo} {}{hi}): {}\n",
                q.name, q.default, q.min, q.doc
            ));
        }
    }
    out.push_str(
        "\nSample weightings (a stage before the weighting and the aggregator: each sample's own task conflict \
         rewrites the shared gradient; MLP models, CPU; --method AGG+NAME[:key=value])\n\n",
    );
    for w in sample_weighting::descriptions() {
        out.push_str(&format!("{:<14} {:<20} {}\n", w.name, w.label, w.summary));
        for q in &w.params {
            let lo = if q.min_inclusive { "≥" } else { ">" };
            let hi = q.max.map(|m| format!(", ≤ {m}")).unwrap_or_default();
            out.push_str(&format!("    :{}=…  (default {}; {lo} {}{hi}): {}\n", q.name, q.default, q.min, q.doc));
        }
    }
    out.push_str(
        "\nMoE routers and architectures (concord train --model moe --router NAME; architectures have \
         task-owned gates and experts)\n\n",
    );
    for r in &ROUTERS {
        let kind = if r.architecture { "architecture" } else { "router" };
        out.push_str(&format!("{:<14} {:<14} {:<13} {}\n", r.name, r.label, kind, r.description));
        for q in r.params {
            out.push_str(&format!("    {}=…  (default {}): {}\n", q.flag, q.default, q.meaning));
        }
    }
    out.push_str("every MoE model:\n");
    for q in &MOE_PARAMS {
        out.push_str(&format!("    {}=…  (default {}): {}\n", q.flag, q.default, q.meaning));
    }
    out
}
