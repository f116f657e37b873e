//! Seeded multi-task data: the TF-Playground generators on shared 2-D inputs with a conflict
//! knob, GradNorm's synthetic regression, sinusoids, and a parser for the user's CSV.
//! Randomness is ChaCha8 (`rand_chacha`) seeded by a u64, not `Math.seedrandom`.

mod csv;
mod features;
mod gradnorm;
mod multitask;
mod playground;
mod sampling;
mod sinusoid;
#[cfg(test)]
mod tests;

pub use csv::parse_csv;
pub use features::{feature_rows, Feature, FeatureSet};
pub use gradnorm::{GradNormConfig, GradNormSynthetic};
pub use multitask::{
    Conflict, InputSource, LabelKind, MultiTaskData, TaskSetConfig, MAX_CLASSES, MAX_DATA_TASKS, MAX_POINTS,
};
pub use playground::{Dataset, Example, DOMAIN, SPIRAL_ARM_SAMPLES};
pub use sampling::{normal, shuffle, uniform, DataRng};
pub use sinusoid::{SinusoidConfig, SinusoidTask};
