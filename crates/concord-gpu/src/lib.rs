//! concord-gpu (in progress)
