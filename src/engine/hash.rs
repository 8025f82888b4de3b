//! Pod-template hashes: the identity of a revision.
//!
//! The hash is computed over the template as the user wrote it (minus the
//! label Sluice adds), so the same template always maps to the same
//! ReplicaSet, before and after a controller restart.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use sha2::{Digest, Sha256};

/// Label carrying the pod-template hash on ReplicaSets, pods and Service selectors.
pub const POD_TEMPLATE_HASH_LABEL: &str = "sluice.dev/pod-template-hash";

/// Characters that cannot form words (no vowels) and never confuse (no 0/1/3).
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Length of a rendered hash.
const HASH_LEN: usize = 10;

/// Hash of a pod template, stable across runs and safe for use in names and labels.
pub fn pod_template_hash(template: &PodTemplateSpec) -> String {
    let mut template = template.clone();
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
    }
    // serde_json writes struct fields in declaration order and maps sorted
    // (BTreeMap), so the bytes are canonical for a given template.
    let bytes = serde_json::to_vec(&template).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    digest
        .iter()
        .take(HASH_LEN)
        .map(|b| SAFE_ALPHABET[usize::from(*b) % SAFE_ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "web".into(),
                    image: Some(image.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    #[test]
    fn same_template_same_hash_and_image_change_changes_it() {
        let a = pod_template_hash(&template("web:1"));
        assert_eq!(a, pod_template_hash(&template("web:1")));
        assert_ne!(a, pod_template_hash(&template("web:2")));
        assert_eq!(a.len(), HASH_LEN);
        assert!(a.bytes().all(|c| SAFE_ALPHABET.contains(&c)));
    }

    #[test]
    fn hash_label_does_not_change_the_hash() {
        let plain = template("web:1");
        let mut labelled = plain.clone();
        if let Some(labels) = labelled.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.insert(POD_TEMPLATE_HASH_LABEL.into(), "whatever".into());
        }
        assert_eq!(pod_template_hash(&plain), pod_template_hash(&labelled));
    }
}
