//! A real OpenSSH server on a loopback port for Git-over-SSH tests: it
//! accepts one throwaway key and is killed when dropped. Shared by test
//! crates that each use part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `sshd` and what a client needs to reach it.
pub struct Sshd {
    child: Child,
    pub port: u16,
    /// A `known_hosts` line for `[127.0.0.1]:port`.
    pub known_hosts: String,
    /// The private key sshd accepts, and one it does not know.
    pub user_key: Vec<u8>,
    pub other_key: Vec<u8>,
    /// sshd's log (`LogLevel INFO`: one "Accepted publickey" line per login).
    pub log: std::path::PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A passphrase-less ed25519 key pair at `path` and `path.pub`.
pub fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen");
    assert!(status.success());
}

/// Start sshd with its keys and configuration under `root/sshd`.
pub fn start_sshd(root: &Path) -> Sshd {
    let dir = root.join("sshd");
    std::fs::create_dir_all(&dir).expect("dir");
    for name in ["host_key", "user_key", "other_key"] {
        keygen(&dir.join(name));
    }
    std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).expect("authorized_keys");
    // sshd's privilege-separation directory.
    let _ = std::fs::create_dir_all("/run/sshd");
    let port = free_port();
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPidFile {d}/sshd.pid\nLogLevel INFO\n",
        d = dir.display()
    );
    std::fs::write(dir.join("sshd_config"), config).expect("config");
    let log = dir.join("sshd.log");
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(dir.join("sshd_config"))
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start sshd");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "sshd did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let host = std::fs::read_to_string(dir.join("host_key.pub")).expect("host key");
    let host: Vec<&str> = host.split_whitespace().take(2).collect();
    Sshd {
        child,
        port,
        known_hosts: format!("[127.0.0.1]:{port} {}\n", host.join(" ")),
        user_key: std::fs::read(dir.join("user_key")).expect("key"),
        other_key: std::fs::read(dir.join("other_key")).expect("key"),
        log,
    }
}

/// The user the tests run as (sshd logs that user in).
pub fn user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
