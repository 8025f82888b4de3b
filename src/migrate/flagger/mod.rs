//! Flagger (`flagger.app/v1beta1`): Canary, MetricTemplate and AlertProvider.
//!
//! Flagger's model differs from Sluice's more than Argo's does: a Canary
//! points at a Deployment and generates the Services and route itself, and
//! its analysis is one loop of checks at a fixed interval. So a Canary
//! becomes a Rollout (the Deployment's selector and template folded in),
//! the Services and HTTPRoute Flagger would have generated, and an
//! AnalysisTemplate with its metrics inlined from the MetricTemplates.

mod alerts;
mod canary;
mod metrics;

pub use alerts::alert_provider;
pub use canary::canary;
pub use metrics::metric_template;
