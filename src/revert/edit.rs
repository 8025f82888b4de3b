//! The fallback edit when a revert conflicts: set the image back to the
//! stable one in the three places it usually lives.
//!
//! - a plain manifest: `image: registry/web:1.0.2` (any full image reference);
//! - a kustomization: `newTag: 1.0.2` (and `newName:`) under `images:`;
//! - Helm values: `tag: 1.0.2` (`image.tag` and the like).
//!
//! Only lines that hold the canary's reference change; comments, order and
//! formatting of everything else stay as the humans wrote them.

/// An image reference split into name and tag (`registry:5000/web:1.0` → `registry:5000/web`, `1.0`).
pub fn split_image(image: &str) -> (&str, Option<&str>) {
    let without_digest = image.split('@').next().unwrap_or(image);
    let slash = without_digest.rfind('/').map(|i| i + 1).unwrap_or(0);
    match without_digest[slash..].rfind(':') {
        Some(colon) => (
            &without_digest[..slash + colon],
            Some(&without_digest[slash + colon + 1..]),
        ),
        None => (without_digest, None),
    }
}

/// The value of a `key: value` line, without quotes, if the line is that key.
fn value_of<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = line.trim_start().trim_start_matches("- ").trim_start();
    let value = rest
        .strip_prefix(key)?
        .trim_start()
        .strip_prefix(':')?
        .trim();
    let value = value.split(" #").next().unwrap_or(value).trim();
    Some(value.trim_matches(|c| c == '"' || c == '\''))
}

/// Does this (added) line set the canary image, in any of the three forms?
pub fn sets_image(line: &str, canary: &str) -> bool {
    if line.contains(canary) {
        return true;
    }
    let Some(tag) = split_image(canary).1 else {
        return false;
    };
    ["newTag", "tag"]
        .iter()
        .any(|key| value_of(line, key) == Some(tag))
}

/// `text` with the canary image set back to `stable`; `None` when nothing changed.
pub fn set_back(text: &str, canary: &str, stable: &str) -> Option<String> {
    let (canary_name, canary_tag) = split_image(canary);
    let (stable_name, stable_tag) = split_image(stable);
    let mut changed = false;
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let mut new = line.to_string();
        if line.contains(canary) {
            new = line.replace(canary, stable);
        } else if let (Some(ct), Some(st)) = (canary_tag, stable_tag) {
            for key in ["newTag", "tag"] {
                if value_of(line, key) == Some(ct) {
                    // Keep the quoting and the rest of the line; only the tag changes.
                    if let Some(at) = line.rfind(ct) {
                        new = format!("{}{}{}", &line[..at], st, &line[at + ct.len()..]);
                    }
                }
            }
        }
        if canary_name != stable_name
            && value_of(line, "newName") == Some(canary_name)
            && let Some(at) = line.rfind(canary_name)
        {
            new = format!(
                "{}{}{}",
                &line[..at],
                stable_name,
                &line[at + canary_name.len()..]
            );
        }
        changed |= new != line;
        out.push_str(&new);
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANARY: &str = "registry.example.com/web:1.0.2";
    const STABLE: &str = "registry.example.com/web:1.0.1";

    #[test]
    fn plain_manifest_image() {
        let text = "spec:\n  containers:\n    - name: web\n      image: registry.example.com/web:1.0.2 # bumped by CI\n";
        assert_eq!(
            set_back(text, CANARY, STABLE).as_deref(),
            Some(
                "spec:\n  containers:\n    - name: web\n      image: registry.example.com/web:1.0.1 # bumped by CI\n"
            )
        );
        assert!(sets_image(
            "+      image: registry.example.com/web:1.0.2",
            CANARY
        ));
    }

    #[test]
    fn kustomize_new_tag_keeps_quotes() {
        let text = "images:\n  - name: registry.example.com/web\n    newTag: \"1.0.2\"\n";
        assert_eq!(
            set_back(text, CANARY, STABLE).as_deref(),
            Some("images:\n  - name: registry.example.com/web\n    newTag: \"1.0.1\"\n")
        );
        assert!(sets_image("    newTag: \"1.0.2\"", CANARY));
        assert!(!sets_image("    newTag: 1.0.20", CANARY));
    }

    #[test]
    fn helm_values_tag() {
        let text = "image:\n  repository: registry.example.com/web\n  tag: 1.0.2\nreplicas: 4\n";
        assert_eq!(
            set_back(text, CANARY, STABLE).as_deref(),
            Some("image:\n  repository: registry.example.com/web\n  tag: 1.0.1\nreplicas: 4\n")
        );
    }

    #[test]
    fn nothing_to_change_is_none() {
        assert_eq!(set_back("replicas: 4\n", CANARY, STABLE), None);
        assert_eq!(
            split_image("registry:5000/web"),
            ("registry:5000/web", None)
        );
    }
}
