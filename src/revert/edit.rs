//! The fallback edit when a revert conflicts: set the image back to the
//! stable one in the three places it usually lives.
//!
//! - a plain manifest: `image: registry/web:1.0.2` (any full image reference);
//! - a kustomization: `newTag: 1.0.2` (and `newName:`) under `images:`;
//! - Helm values: `tag: 1.0.2` (`image.tag` and the like).
//!
//! Only lines that hold the canary's reference change; comments, order and
//! formatting of everything else stay as the humans wrote them. A bare
//! `tag:`/`newTag:` line names no image, so it changes only when its own
//! mapping names the canary's image (`repository:`, `name:`, `newName:`,
//! with an optional `registry:`), or when it is the only such line in the
//! file: a sidecar that happens to share the tag keeps its own.

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

/// Indentation of the key on a line (a list item's `- ` counts as indentation).
fn key_indent(line: &str) -> usize {
    let spaces = line.len() - line.trim_start().len();
    let rest = line.trim_start();
    match rest.strip_prefix("- ") {
        Some(item) => spaces + 2 + (item.len() - item.trim_start().len()),
        None => spaces,
    }
}

fn is_list_item(line: &str) -> bool {
    line.trim_start().starts_with("- ")
}

fn is_content(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.starts_with('#')
}

/// The sibling lines of `lines[at]`: the keys of the same YAML mapping.
fn siblings<'a>(lines: &[&'a str], at: usize) -> Vec<&'a str> {
    let indent = key_indent(lines[at]);
    let mut found = Vec::new();
    // Upwards to the mapping's first key (a list item starts it).
    if !is_list_item(lines[at]) {
        for line in lines[..at].iter().rev().filter(|l| is_content(l)) {
            if key_indent(line) < indent {
                break;
            }
            if key_indent(line) == indent {
                found.push(*line);
                if is_list_item(line) {
                    break;
                }
            }
        }
    }
    // Downwards until the mapping ends or the next list item starts.
    for line in lines[at + 1..].iter().filter(|l| is_content(l)) {
        if key_indent(line) < indent || (key_indent(line) == indent && is_list_item(line)) {
            break;
        }
        if key_indent(line) == indent {
            found.push(*line);
        }
    }
    found
}

/// Whether the mapping around a tag line names `image_name`: `Some(true)`
/// or `Some(false)` when it names an image, `None` when it names none.
fn mapping_names(lines: &[&str], at: usize, image_name: &str) -> Option<bool> {
    let near = siblings(lines, at);
    let value = |key: &str| near.iter().find_map(|l| value_of(l, key));
    let name = value("repository")
        .or_else(|| value("newName"))
        .or_else(|| value("name"))?;
    let full = match value("registry") {
        Some(registry) => format!("{}/{name}", registry.trim_end_matches('/')),
        None => name.to_string(),
    };
    Some(
        full == image_name
            || image_name.ends_with(&format!("/{full}"))
            || (value("newName").is_some() && value("name") == Some(image_name)),
    )
}

/// Line numbers of `tag:`/`newTag:` lines that set the canary's tag for the canary's image.
fn canary_tag_lines(lines: &[&str], canary: &str) -> Vec<usize> {
    let (name, Some(tag)) = split_image(canary) else {
        return Vec::new();
    };
    let candidates: Vec<usize> = (0..lines.len())
        .filter(|&i| {
            ["newTag", "tag"]
                .iter()
                .any(|k| value_of(lines[i], k) == Some(tag))
        })
        .collect();
    let alone = candidates.len() == 1;
    candidates
        .into_iter()
        .filter(|&i| mapping_names(lines, i, name).unwrap_or(alone))
        .collect()
}

/// Whether a whole file sets the canary image (its full reference, or a tag of its own).
pub fn holds_image(text: &str, canary: &str) -> bool {
    let lines: Vec<&str> = text.lines().collect();
    lines.iter().any(|l| l.contains(canary)) || !canary_tag_lines(&lines, canary).is_empty()
}

/// `text` with the canary image set back to `stable`; `None` when nothing changed.
pub fn set_back(text: &str, canary: &str, stable: &str) -> Option<String> {
    let (canary_name, canary_tag) = split_image(canary);
    let (stable_name, stable_tag) = split_image(stable);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let trimmed: Vec<&str> = lines
        .iter()
        .map(|l| l.trim_end_matches(['\n', '\r']))
        .collect();
    let tag_lines = canary_tag_lines(&trimmed, canary);
    let mut changed = false;
    let mut out = String::with_capacity(text.len());
    for (i, line) in lines.iter().copied().enumerate() {
        let mut new = line.to_string();
        if line.contains(canary) {
            new = line.replace(canary, stable);
        } else if let (Some(ct), Some(st), true) = (canary_tag, stable_tag, tag_lines.contains(&i))
        {
            // Keep the quoting and the rest of the line; only the tag changes.
            if let Some(at) = line.rfind(ct) {
                new = format!("{}{}{}", &line[..at], st, &line[at + ct.len()..]);
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

    #[test]
    fn a_sidecar_sharing_the_tag_keeps_it() {
        let values = "image:\n  repository: registry.example.com/web\n  tag: 1.0.2\nsidecar:\n  image:\n    repository: envoyproxy/envoy\n    tag: 1.0.2\n";
        assert_eq!(
            set_back(values, CANARY, STABLE).as_deref(),
            Some(
                "image:\n  repository: registry.example.com/web\n  tag: 1.0.1\nsidecar:\n  image:\n    repository: envoyproxy/envoy\n    tag: 1.0.2\n"
            ),
            "Helm values: only the canary's image"
        );
        let split = "image:\n  registry: registry.example.com\n  repository: web\n  tag: \"1.0.2\"\nproxy:\n  tag: \"1.0.2\"\n  repository: proxy\n";
        assert_eq!(
            set_back(split, CANARY, STABLE).as_deref(),
            Some(
                "image:\n  registry: registry.example.com\n  repository: web\n  tag: \"1.0.1\"\nproxy:\n  tag: \"1.0.2\"\n  repository: proxy\n"
            ),
            "registry and repository split, tag before its repository"
        );
        let kustomization = "images:\n  - name: registry.example.com/proxy\n    newTag: \"1.0.2\"\n  - name: registry.example.com/web\n    newTag: \"1.0.2\"\n";
        assert_eq!(
            set_back(kustomization, CANARY, STABLE).as_deref(),
            Some(
                "images:\n  - name: registry.example.com/proxy\n    newTag: \"1.0.2\"\n  - name: registry.example.com/web\n    newTag: \"1.0.1\"\n"
            ),
            "kustomize: only the canary's entry"
        );
        assert!(!holds_image(
            "sidecar:\n  repository: envoyproxy/envoy\n  tag: 1.0.2\n",
            CANARY
        ));
    }
}
