//! The container image's root filesystem laid out as a pod would see it,
//! without a container runtime (none runs here): `buildah mount` gives the
//! image's files; a read-only bind of them is the root (the chart sets
//! `readOnlyRootFilesystem`), with a tmpfs `/dev` holding the usual device
//! nodes, `/proc`, the ServiceAccount token, CA and namespace at
//! `/var/run/secrets/kubernetes.io/serviceaccount`, and a writable emptyDir
//! where the Deployment mounts one. Processes start in it with `chroot
//! --userspec`, as the pod's numeric user.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const STORAGE: &str = "--storage-driver=vfs";
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Run `buildah` and return its stdout.
pub fn buildah(args: &[&str]) -> String {
    let out = Command::new("buildah")
        .arg(STORAGE)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run buildah (installed by tests/cluster/install-deps.sh)");
    assert!(
        out.status.success(),
        "buildah {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `path` (absolute, as the pod sees it) inside the image's files at `root`,
/// following symbolic links as the pod would: an absolute target is read
/// from `root`, never from the host (Debian's `/var/run` is a link to `/run`).
fn resolve(root: &Path, path: &str) -> PathBuf {
    let mut resolved = root.to_path_buf();
    let mut pending: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .rev()
        .map(String::from)
        .collect();
    let mut hops = 0;
    while let Some(component) = pending.pop() {
        if component == "." {
            continue;
        }
        if component == ".." {
            if resolved != root {
                resolved.pop();
            }
            continue;
        }
        let next = resolved.join(&component);
        match std::fs::read_link(&next) {
            Ok(target) => {
                hops += 1;
                assert!(hops < 40, "too many symbolic links in {path}");
                let target = target.to_string_lossy().into_owned();
                if target.starts_with('/') {
                    resolved = root.to_path_buf();
                }
                pending.extend(
                    target
                        .split('/')
                        .filter(|c| !c.is_empty())
                        .rev()
                        .map(String::from),
                );
            }
            Err(_) => resolved = next,
        }
    }
    resolved
}

/// What the pod's ServiceAccount volume holds.
pub struct ServiceAccountFiles<'a> {
    pub token: &'a str,
    pub ca: &'a [u8],
    pub namespace: &'a str,
}

/// A mounted image, its pod-like root and the mounts on it; all undone on drop.
pub struct PodRoot {
    container: String,
    pub root: PathBuf,
    /// The image's `ENTRYPOINT`.
    pub entrypoint: Vec<String>,
}

impl PodRoot {
    /// Mount `image` for `name` (unique per test) under `dir`, with an
    /// emptyDir at each of `empty_dirs` (absolute paths inside the pod).
    pub fn new(
        image: &str,
        name: &str,
        dir: &Path,
        account: &ServiceAccountFiles<'_>,
        empty_dirs: &[&str],
    ) -> PodRoot {
        let config: serde_json::Value =
            serde_json::from_str(&buildah(&["inspect", "--type", "image", image]))
                .expect("buildah inspect");
        let entrypoint: Vec<String> =
            serde_json::from_value(config["OCIv1"]["config"]["Entrypoint"].clone())
                .expect("the image's entrypoint");
        // A container left by an earlier, killed run of this test.
        let _ = Command::new("buildah").args([STORAGE, "rm", name]).output();
        let container = buildah(&["from", "--pull-never", "--name", name, image]);
        let files = PathBuf::from(buildah(&["mount", &container]));
        let root = dir.join("root");
        let secrets = dir.join("serviceaccount");
        for path in [&root, &secrets] {
            std::fs::create_dir_all(path).expect("pod dir");
        }
        std::fs::write(secrets.join("token"), account.token).expect("token");
        std::fs::write(secrets.join("ca.crt"), account.ca).expect("ca.crt");
        std::fs::write(secrets.join("namespace"), account.namespace).expect("namespace");
        // Mount points must exist in the image's files before its root turns
        // read-only; each is found as the pod would find it.
        let mount_points: Vec<&str> = empty_dirs
            .iter()
            .copied()
            .chain([SERVICE_ACCOUNT_DIR, "/dev", "/proc"])
            .collect();
        for inside in &mount_points {
            std::fs::create_dir_all(resolve(&files, inside)).expect("mount point");
        }
        let pod = PodRoot {
            container,
            root: root.clone(),
            entrypoint,
        };
        // The same place under the read-only bind of the files.
        let at = |inside: &str| {
            let path = resolve(&files, inside);
            let relative = path.strip_prefix(&files).expect("inside the image");
            root.join(relative).display().to_string()
        };
        let root_arg = root.display().to_string();
        let files_arg = files.display().to_string();
        run("mount", &["--bind", &files_arg, &root_arg]);
        run("mount", &["-o", "remount,ro,bind", &root_arg]);
        let dev = at("/dev");
        run(
            "mount",
            &["-t", "tmpfs", "-o", "mode=755,size=64k", "tmpfs", &dev],
        );
        for (node, minor) in [
            ("null", "3"),
            ("zero", "5"),
            ("random", "8"),
            ("urandom", "9"),
        ] {
            run(
                "mknod",
                &["-m", "666", &format!("{dev}/{node}"), "c", "1", minor],
            );
        }
        run("mount", &["-t", "proc", "proc", &at("/proc")]);
        let account_dir = at(SERVICE_ACCOUNT_DIR);
        run(
            "mount",
            &["--bind", &secrets.display().to_string(), &account_dir],
        );
        run("mount", &["-o", "remount,ro,bind", &account_dir]);
        for inside in empty_dirs {
            // An emptyDir is world-writable, like the kubelet makes it.
            let host = dir.join(format!(
                "empty-{}",
                inside.trim_matches('/').replace('/', "-")
            ));
            std::fs::create_dir_all(&host).expect("emptyDir");
            let host = host.display().to_string();
            run("chmod", &["1777", &host]);
            run("mount", &["--bind", &host, &at(inside)]);
        }
        pod
    }

    /// Start `command` inside the root as `uid:gid`, with exactly `env`; it
    /// is killed when the returned guard drops (before the root is unmounted,
    /// when the guard is declared after the root: a running process keeps the
    /// mounts busy).
    pub fn spawn(
        &self,
        user: &str,
        command: &[String],
        env: &[(String, String)],
        log: &Path,
    ) -> PodProcess {
        let file = std::fs::File::create(log).expect("log file");
        let child = Command::new("chroot")
            .arg(format!("--userspec={user}"))
            .arg(&self.root)
            .args(command)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .expect("chroot into the image");
        PodProcess(child)
    }
}

/// A process started in a [`PodRoot`], killed on drop.
pub struct PodProcess(Child);

impl PodProcess {
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// Whether it has not exited.
    pub fn running(&mut self) -> bool {
        self.0.try_wait().ok().flatten().is_none()
    }
}

impl Drop for PodProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for PodRoot {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-R").arg(&self.root).status();
        let _ = Command::new("buildah")
            .args([STORAGE, "umount", &self.container])
            .output();
        let _ = Command::new("buildah")
            .args([STORAGE, "rm", &self.container])
            .output();
    }
}
