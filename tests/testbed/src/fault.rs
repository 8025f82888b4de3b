//! Fault profiles chosen by a revision's image tag.
//!
//! The tag is split on `-` and `_`; parts of the form `errN` add N percent of
//! HTTP 500 answers, `slowN` adds N milliseconds to every request's latency.
//! `web:1.0.1-err3` answers 3 points more errors than the baseline;
//! `web:1.0.2-slow80` is 80 ms slower at every percentile, p99 included.
//! A tag without such parts behaves like the baseline.

/// Extra errors and latency on top of the generator's baseline.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FaultProfile {
    /// Added probability of a 500, 0.0..=1.0.
    pub extra_error_ratio: f64,
    /// Added to every request's latency, in seconds.
    pub extra_latency_seconds: f64,
}

impl FaultProfile {
    /// Read the profile from an image reference such as `registry:5000/web:1.0.1-err3`.
    pub fn from_image(image: &str) -> FaultProfile {
        // The tag follows the last ':' that comes after the last '/' (a registry port is not a tag).
        let name = image.split('@').next().unwrap_or(image);
        let last_segment = name.rsplit('/').next().unwrap_or(name);
        let Some((_, tag)) = last_segment.rsplit_once(':') else {
            return FaultProfile::default();
        };
        let mut profile = FaultProfile::default();
        for part in tag.split(['-', '_']) {
            if let Some(n) = part.strip_prefix("err").and_then(|n| n.parse::<f64>().ok()) {
                profile.extra_error_ratio += n / 100.0;
            } else if let Some(n) = part
                .strip_prefix("slow")
                .and_then(|n| n.parse::<f64>().ok())
            {
                profile.extra_latency_seconds += n / 1000.0;
            }
        }
        profile.extra_error_ratio = profile.extra_error_ratio.clamp(0.0, 1.0);
        profile
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_tags_add_nothing() {
        assert_eq!(
            FaultProfile::from_image("web:1.0.0"),
            FaultProfile::default()
        );
        assert_eq!(FaultProfile::from_image("web"), FaultProfile::default());
        assert_eq!(
            FaultProfile::from_image("registry:5000/err5/web"),
            FaultProfile::default(),
            "a registry port or path is not a tag"
        );
    }

    #[test]
    fn err_and_slow_parts_combine() {
        let p = FaultProfile::from_image("registry.example.com/web:1.0.1-err3_slow80");
        assert!((p.extra_error_ratio - 0.03).abs() < 1e-9);
        assert!((p.extra_latency_seconds - 0.080).abs() < 1e-9);
        assert_eq!(
            FaultProfile::from_image("web:err250").extra_error_ratio,
            1.0
        );
    }
}
