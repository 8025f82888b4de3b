//! Argo Rollouts (`argoproj.io/v1alpha1`): Rollout, AnalysisTemplate and
//! ClusterAnalysisTemplate. Most fields have the same name and meaning in
//! Sluice, by design; the rest is reported with the reason it has no
//! counterpart.

mod analysis;
mod rollout;
mod routes;

pub use analysis::analysis_template;
pub use rollout::rollout;
