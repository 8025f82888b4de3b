//! The global `--kubeconfig` and `--context` flags, and the one place every
//! command builds its Kubernetes client and default namespace from them.
//!
//! Without either flag it is kube's usual inference (`KUBECONFIG` or
//! `~/.kube/config`, then the in-cluster service account), so the controller
//! keeps working in a pod. With one, the kubeconfig (that file, or the usual
//! ones) is read with that context, as kubectl does.

use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Flags that choose the cluster, for every command.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KubeArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config,
    /// then the in-cluster service account).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current-context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
}

/// Why no client could be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Neither a kubeconfig nor an in-cluster config was found.
    #[error("no Kubernetes configuration: {0}")]
    Infer(#[source] kube::config::InferConfigError),
    /// The kubeconfig could not be read or lacks the context.
    #[error("cannot use the kubeconfig: {0}")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    /// The configuration is unusable (certificates, TLS).
    #[error("cannot create a Kubernetes client: {0}")]
    Client(#[source] kube::Error),
}

impl KubeArgs {
    /// The configuration these flags choose.
    pub async fn config(&self) -> Result<Config, Error> {
        if self.kubeconfig.is_none() && self.context.is_none() {
            return Config::infer().await.map_err(Error::Infer);
        }
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..KubeConfigOptions::default()
        };
        let mut config = match &self.kubeconfig {
            Some(path) => {
                let file = Kubeconfig::read_from(path).map_err(Error::Kubeconfig)?;
                Config::from_custom_kubeconfig(file, &options).await
            }
            None => Config::from_kubeconfig(&options).await,
        }
        .map_err(Error::Kubeconfig)?;
        config.apply_debug_overrides();
        Ok(config)
    }

    /// A client for the chosen cluster; its `default_namespace()` is the
    /// context's namespace (`default` when the context sets none).
    pub async fn client(&self) -> Result<Client, Error> {
        Client::try_from(self.config().await?).map_err(Error::Client)
    }

    /// [`Self::client`] without kube's retry of 429/503/504: for calls whose
    /// refusal is an answer (an eviction a PodDisruptionBudget refuses), which
    /// the default client would retry with a backoff for minutes.
    pub async fn client_without_retry(&self) -> Result<Client, Error> {
        let mut config = self.config().await?;
        config.default_retry = false;
        Client::try_from(config).map_err(Error::Client)
    }

    /// `namespace` when given, else the chosen context's namespace, else `default`
    /// (also when there is no kubeconfig: for commands that may run without a cluster).
    pub async fn namespace_or_default(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) => ns.to_string(),
            None => self
                .config()
                .await
                .map(|c| c.default_namespace)
                .unwrap_or_else(|_| "default".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
current-context: one
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:1"}
users:
- name: u
  user: {token: t}
contexts:
- name: one
  context: {cluster: c, user: u, namespace: ns-one}
- name: two
  context: {cluster: c, user: u, namespace: ns-two}
- name: bare
  context: {cluster: c, user: u}
"#;

    #[tokio::test]
    async fn the_namespace_comes_from_the_flag_then_the_chosen_context() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config");
        std::fs::write(&path, KUBECONFIG).expect("write kubeconfig");
        let args = |context: Option<&str>| KubeArgs {
            kubeconfig: Some(path.clone()),
            context: context.map(String::from),
        };
        // (context, -n, expected namespace)
        let cases = [
            (None, None, "ns-one"),
            (Some("two"), None, "ns-two"),
            (Some("bare"), None, "default"),
            (Some("two"), Some("given"), "given"),
        ];
        for (context, flag, expected) in cases {
            let ns = args(context).namespace_or_default(flag).await;
            assert_eq!(ns, expected, "{context:?} {flag:?}");
        }
        let missing = args(Some("nope")).client().await.err();
        assert!(matches!(missing, Some(Error::Kubeconfig(_))), "{missing:?}");
    }
}
