//! The GitOps sync loop's parts: watch a branch of a Git repository, check out
//! its head, render the manifests under one path, and server-side apply them,
//! as Argo CD's auto-sync does when the branch moves.
//!
//! Rendering understands plain YAML files and a `kustomization.yaml` with
//! `resources:` (files in the same directory) and `images:` overrides. It does
//! not prune objects removed from Git (Argo CD's default without `prune`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::{Scope, pinned_kind};
use kube::{Api, Client};
use serde_json::Value;

/// The field manager the sync loop applies with (Sluice's own is `sluice`).
pub const FIELD_MANAGER: &str = "sluice-gitops-sync";

fn git(args: &[&str], dir: Option<&Path>) -> Result<String> {
    let mut command = Command::new("git");
    if let Some(dir) = dir {
        command.arg("-C").arg(dir);
    }
    let out = command
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .with_context(|| format!("run git {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The commit at the head of `branch` in `repo`, or None when the branch does not exist yet.
pub fn remote_head(repo: &str, branch: &str) -> Result<Option<String>> {
    let out = git(&["ls-remote", repo, &format!("refs/heads/{branch}")], None)?;
    Ok(out.split_whitespace().next().map(str::to_string))
}

/// Fetch `branch` of `repo` into the work tree `checkout` and check it out; returns the commit.
pub fn fetch_and_checkout(repo: &str, branch: &str, checkout: &Path) -> Result<String> {
    if !checkout.join(".git").exists() {
        std::fs::create_dir_all(checkout)
            .with_context(|| format!("create {}", checkout.display()))?;
        git(&["init", "-q"], Some(checkout))?;
    }
    git(
        &["fetch", "-q", repo, &format!("refs/heads/{branch}")],
        Some(checkout),
    )?;
    git(
        &["checkout", "-q", "--force", "--detach", "FETCH_HEAD"],
        Some(checkout),
    )?;
    git(&["rev-parse", "HEAD"], Some(checkout))
}

fn read_documents(file: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?;
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let value: Value = serde::Deserialize::deserialize(doc)
            .with_context(|| format!("parse YAML in {}", file.display()))?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("list {}", dir.display()))? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else if name.ends_with(".yaml") || name.ends_with(".yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// One `images:` entry of a kustomization.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageOverride {
    name: String,
    new_name: Option<String>,
    new_tag: Option<String>,
    digest: Option<String>,
}

impl ImageOverride {
    /// The replacement for `image` when this entry matches its name.
    fn apply(&self, image: &str) -> Option<String> {
        let (name, _) = split_image(image);
        if name != self.name {
            return None;
        }
        let name = self.new_name.as_deref().unwrap_or(name);
        Some(match (&self.digest, &self.new_tag) {
            (Some(digest), _) => format!("{name}@{digest}"),
            (None, Some(tag)) => format!("{name}:{tag}"),
            (None, None) => match split_image(image).1 {
                Some(tag) => format!("{name}:{tag}"),
                None => name.to_string(),
            },
        })
    }
}

/// `registry:5000/web:1.0` → (`registry:5000/web`, Some(`1.0`)).
fn split_image(image: &str) -> (&str, Option<&str>) {
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

fn override_images(doc: &mut Value, overrides: &[ImageOverride]) {
    let Some(spec) = doc.pointer_mut("/spec/template/spec") else {
        return;
    };
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for container in containers {
            let Some(image) = container.get("image").and_then(Value::as_str) else {
                continue;
            };
            if let Some(new) = overrides.iter().find_map(|o| o.apply(image)) {
                container["image"] = Value::String(new);
            }
        }
    }
}

/// The objects the directory describes, in apply order.
pub fn render(dir: &Path) -> Result<Vec<Value>> {
    let kustomization = ["kustomization.yaml", "kustomization.yml"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.exists());
    let Some(kustomization) = kustomization else {
        let mut docs = Vec::new();
        for file in yaml_files(dir)? {
            docs.extend(read_documents(&file)?);
        }
        return Ok(docs);
    };
    let k = read_documents(&kustomization)?
        .into_iter()
        .next()
        .unwrap_or(Value::Null);
    let overrides: Vec<ImageOverride> =
        serde_json::from_value(k.get("images").cloned().unwrap_or(Value::Array(vec![])))
            .context("kustomization images")?;
    let mut docs = Vec::new();
    for resource in k
        .get("resources")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let Some(file) = resource.as_str() else {
            bail!("kustomization resources must be file names");
        };
        let path = dir.join(file);
        if path.is_dir() {
            docs.extend(render(&path)?);
        } else {
            docs.extend(read_documents(&path)?);
        }
    }
    for doc in &mut docs {
        override_images(doc, &overrides);
    }
    Ok(docs)
}

/// Server-side applies objects, remembering how each kind is served.
pub struct Applier {
    client: Client,
    namespace: String,
    kinds: HashMap<GroupVersionKind, (ApiResource, Scope)>,
}

impl Applier {
    pub fn new(client: Client, namespace: &str) -> Applier {
        Applier {
            client,
            namespace: namespace.into(),
            kinds: HashMap::new(),
        }
    }

    pub async fn apply(&mut self, doc: &Value) -> Result<String> {
        let object: DynamicObject =
            serde_json::from_value(doc.clone()).context("manifest is not a Kubernetes object")?;
        let types = object
            .types
            .clone()
            .context("manifest lacks apiVersion/kind")?;
        let gvk = GroupVersionKind::try_from(&types).context("bad apiVersion")?;
        let name = object
            .metadata
            .name
            .clone()
            .context("manifest lacks metadata.name")?;
        if !self.kinds.contains_key(&gvk) {
            let (resource, caps) = pinned_kind(&self.client, &gvk)
                .await
                .with_context(|| format!("discover {}", gvk.kind))?;
            self.kinds.insert(gvk.clone(), (resource, caps.scope));
        }
        let (resource, scope) = &self.kinds[&gvk];
        let api: Api<DynamicObject> = if *scope == Scope::Namespaced {
            let ns = object
                .metadata
                .namespace
                .as_deref()
                .unwrap_or(&self.namespace);
            Api::namespaced_with(self.client.clone(), ns, resource)
        } else {
            Api::all_with(self.client.clone(), resource)
        };
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await
        .with_context(|| format!("apply {} {name}", gvk.kind))?;
        Ok(format!("{}/{name}", gvk.kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn image_names_split_past_a_registry_port() {
        assert_eq!(
            split_image("registry:5000/web:1.2"),
            ("registry:5000/web", Some("1.2"))
        );
        assert_eq!(
            split_image("registry:5000/web"),
            ("registry:5000/web", None)
        );
        assert_eq!(split_image("web@sha256:ab"), ("web", None));
    }

    #[test]
    fn kustomize_images_override_matching_containers_only() {
        let overrides = vec![ImageOverride {
            name: "registry.example.com/web".into(),
            new_name: None,
            new_tag: Some("1.0.1".into()),
            digest: None,
        }];
        let mut doc = json!({"kind": "Rollout", "spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "registry.example.com/web:1.0.0"},
            {"name": "proxy", "image": "envoy:1.30"}
        ]}}}});
        override_images(&mut doc, &overrides);
        assert_eq!(
            doc["spec"]["template"]["spec"]["containers"][0]["image"],
            "registry.example.com/web:1.0.1"
        );
        assert_eq!(
            doc["spec"]["template"]["spec"]["containers"][1]["image"],
            "envoy:1.30"
        );
    }
}
