//! `concord sweep`: a base config and axes, every cell run in parallel, results as JSON lines.
//! (Being written.)

use crate::UsageError;
use clap::Args;

#[derive(Args, Debug)]
pub struct SweepArgs {}

pub fn run(_args: SweepArgs) -> Result<(), UsageError> {
    Err(UsageError("concord sweep is not built yet".into()))
}
