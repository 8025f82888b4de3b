//! Credentials for fetch and push, from a Secret's keys, as environment for `git`.
//!
//! - SSH: `ssh-privatekey` (and `known_hosts`, checked strictly) are written to
//!   files readable only by the controller, and `GIT_SSH_COMMAND` points at them.
//!   Each revert gets its own fresh directory (mode 0700, random name), removed
//!   when its `Credentials` are dropped: no name derived from a tenant's
//!   namespace and Secret can collide with another tenant's, and no key
//!   outlives the revert that needed it.
//! - HTTPS: `username` and `password` (a token) become an Authorization header
//!   passed through `GIT_CONFIG_*` variables, so they never appear in a
//!   command line that other processes could read.
//! - Commit signing: `commit-signing-key` (an OpenSSH private key) is written
//!   to a private file and `git` signs every commit it makes with it
//!   (`gpg.format=ssh`, through `ssh-keygen -Y sign`), so GitHub, GitLab and
//!   Gitea show the revert as verified once the public key is registered.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use base64::Engine;

use super::Error;

/// Secret key of the SSH private key that signs revert commits.
pub const SIGNING_KEY: &str = "commit-signing-key";

/// Environment for `git`, and the private files it points at (removed on drop).
#[derive(Debug)]
pub struct Credentials {
    pub env: Vec<(String, String)>,
    _files: Option<tempfile::TempDir>,
}

/// Credentials for one revert from the Secret's data (key → bytes); key files go
/// to a new private directory under `keys`.
pub fn git_env(data: &BTreeMap<String, Vec<u8>>, keys: &Path) -> Result<Credentials, Error> {
    let text = |key: &str| {
        data.get(key)
            .map(|v| String::from_utf8_lossy(v).to_string())
    };
    let needs_files = data.contains_key("ssh-privatekey") || data.contains_key(SIGNING_KEY);
    let files = if needs_files {
        std::fs::create_dir_all(keys)
            .map_err(|e| Error::Workspace(keys.display().to_string(), e))?;
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("revert-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(keys)
            .map_err(|e| Error::Workspace(keys.display().to_string(), e))?;
        Some(dir)
    } else {
        None
    };
    let key_dir = files.as_ref().map(|d| d.path()).unwrap_or(keys);
    let mut env = Vec::new();
    if let Some(key) = data.get("ssh-privatekey") {
        let key_file = key_dir.join("id");
        write_private(&key_file, key)?;
        let known_hosts = key_dir.join("known_hosts");
        write_private(
            &known_hosts,
            text("known_hosts").unwrap_or_default().as_bytes(),
        )?;
        env.push((
            "GIT_SSH_COMMAND".into(),
            format!(
                "ssh -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -o BatchMode=yes",
                key_file.display(),
                known_hosts.display()
            ),
        ));
    }
    let mut config: Vec<(&str, String)> = Vec::new();
    if let (Some(user), Some(password)) = (text("username"), text("password")) {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        config.push(("http.extraHeader", format!("Authorization: Basic {token}")));
    }
    if let Some(key) = data.get(SIGNING_KEY) {
        let key_file = key_dir.join("signing");
        write_private(&key_file, key)?;
        config.push(("gpg.format", "ssh".into()));
        config.push(("user.signingKey", key_file.display().to_string()));
        config.push(("commit.gpgSign", "true".into()));
    }
    if !config.is_empty() {
        env.push(("GIT_CONFIG_COUNT".into(), config.len().to_string()));
        for (i, (key, value)) in config.into_iter().enumerate() {
            env.push((format!("GIT_CONFIG_KEY_{i}"), key.into()));
            env.push((format!("GIT_CONFIG_VALUE_{i}"), value));
        }
    }
    Ok(Credentials { env, _files: files })
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e| Error::Workspace(path.display().to_string(), e);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    file.write_all(bytes).map_err(fail)?;
    // ssh wants a newline at the end of a key.
    if !bytes.ends_with(b"\n") {
        file.write_all(b"\n").map_err(fail)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn https_credentials_become_a_header_not_an_argument() {
        let data = BTreeMap::from([
            ("username".to_string(), b"sluice".to_vec()),
            ("password".to_string(), b"t0ken".to_vec()),
        ]);
        let env = git_env(&data, Path::new("/nonexistent")).expect("env").env;
        assert!(env.contains(&(
            "GIT_CONFIG_VALUE_0".to_string(),
            "Authorization: Basic c2x1aWNlOnQwa2Vu".to_string()
        )));
    }

    #[test]
    fn ssh_keys_are_private_files() {
        let dir = std::env::temp_dir().join(format!("sluice-cred-{}", std::process::id()));
        let data = BTreeMap::from([
            ("ssh-privatekey".to_string(), b"KEY".to_vec()),
            ("known_hosts".to_string(), b"host ssh-ed25519 AAAA".to_vec()),
        ]);
        let credentials = git_env(&data, &dir).expect("env");
        let env = &credentials.env;
        assert!(env[0].1.contains("StrictHostKeyChecking=yes"));
        use std::os::unix::fs::PermissionsExt;
        let key = key_file(env);
        let mode = |p: &Path| std::fs::metadata(p).expect("file").permissions().mode() & 0o777;
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(key.parent().expect("dir")), 0o700);
        drop(credentials);
        assert!(!key.exists(), "the key is removed when the revert is done");
        let _ = std::fs::remove_dir_all(dir);
    }

    fn key_file(env: &[(String, String)]) -> PathBuf {
        let command = env
            .iter()
            .find(|(k, _)| k == "GIT_SSH_COMMAND")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let path = command.split(' ').nth(2).unwrap_or_default();
        PathBuf::from(path)
    }

    #[test]
    fn two_tenants_reverting_at_once_never_share_a_key_file() {
        // `sec-a-b/c` and `sec-a/b-c` once mapped to the same `sec-a-b-c` file.
        let keys = std::env::temp_dir().join(format!("sluice-tenants-{}", std::process::id()));
        let tenant = |key: &[u8]| BTreeMap::from([("ssh-privatekey".to_string(), key.to_vec())]);
        let first = git_env(&tenant(b"KEY OF sec-a-b/c"), &keys).expect("first");
        let second = git_env(&tenant(b"KEY OF sec-a/b-c"), &keys).expect("second");
        let (first_file, second_file) = (key_file(&first.env), key_file(&second.env));
        assert_ne!(first_file, second_file);
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        assert_eq!(read(&first_file), "KEY OF sec-a-b/c\n");
        assert_eq!(read(&second_file), "KEY OF sec-a/b-c\n");
        let _ = std::fs::remove_dir_all(keys);
    }
}
