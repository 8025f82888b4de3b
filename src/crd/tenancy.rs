//! Which namespaces may use a cluster-scoped resource (`ClusterGitRepository`,
//! `ClusterAlertTarget`): an allow-list on the resource, deny by default.
//!
//! A cluster-scoped resource carries the platform's credentials (a Git token,
//! a paging key); without a list any tenant could push reverts or page with
//! them. The check is pure so that every call site gives the same answer and
//! the same message.

/// `allowedNamespaces` entry that admits every namespace (an explicit opt-in).
pub const ANY_NAMESPACE: &str = "*";

/// Whether `namespace` may use a resource whose allow-list is `allowed`.
pub fn namespace_allowed(allowed: &[String], namespace: &str) -> bool {
    allowed
        .iter()
        .any(|entry| entry == ANY_NAMESPACE || entry == namespace)
}

/// Why `namespace` cannot use `kind/name`, and what to add to allow it.
pub fn not_allowed_message(kind: &str, name: &str, namespace: &str) -> String {
    format!(
        "{kind} {name} does not list namespace {namespace:?} in spec.allowedNamespaces \
         (cluster-scoped resources are denied to every namespace not listed): \
         add {namespace:?} to {kind} {name}'s spec.allowedNamespaces, or use a namespaced \
         resource in {namespace}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_namespaces_are_allowed_and_an_empty_list_denies_all() {
        let listed = vec!["shop".to_string(), "payments".to_string()];
        assert!(namespace_allowed(&listed, "shop"));
        assert!(namespace_allowed(&listed, "payments"));
        assert!(!namespace_allowed(&listed, "kube-system"));
        assert!(!namespace_allowed(&listed, "sho"));
        assert!(!namespace_allowed(&[], "shop"));
        assert!(namespace_allowed(&["*".to_string()], "anything"));
    }

    #[test]
    fn the_refusal_says_what_to_add() {
        let text = not_allowed_message("ClusterGitRepository", "platform", "team-a");
        assert!(text.contains("spec.allowedNamespaces"), "{text}");
        assert!(text.contains("\"team-a\""), "{text}");
        assert!(text.contains("ClusterGitRepository platform"), "{text}");
    }
}
