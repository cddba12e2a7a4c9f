//! A private registry for one test: `docker-registry serve` on a free
//! loopback port with its storage in a temporary directory, optionally
//! behind htpasswd auth, killed when dropped.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use slipway_engine::embedded::free_port;

/// The user of [`HTPASSWD`].
pub const USER: &str = "slipway";
/// The password of [`USER`] in [`HTPASSWD`].
pub const PASSWORD: &str = "slipway-test-pw";
/// An htpasswd line: a bcrypt (cost 4) hash of [`PASSWORD`] for [`USER`].
pub const HTPASSWD: &str = "slipway:$2b$04$ZOr6/ogtJBC4SqLK3dNhgOcuCE5arbFPjrdD/aQJ9zwMY5EECu0IW";

/// A running private registry.
pub struct PrivateRegistry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl PrivateRegistry {
    /// Starts a registry (with `htpasswd` auth when given, e.g. [`HTPASSWD`])
    /// and waits until it answers.
    pub fn start(htpasswd: Option<&str>) -> PrivateRegistry {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port().expect("free port");
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).expect("storage dir");
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            storage.display()
        );
        if let Some(line) = htpasswd {
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, format!("{line}\n")).expect("htpasswd");
            yaml.push_str(&format!("auth:\n  htpasswd:\n    realm: slipway-test\n    path: {}\n", file.display()));
        }
        let config = dir.path().join("config.yml");
        std::fs::write(&config, yaml).expect("registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("registry log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("docker-registry (apt-get install docker-registry)");
        let registry = PrivateRegistry { child, port, dir };
        registry.wait_until_up();
        registry
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What the registry logged so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("registry.log")) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    fn wait_until_up(&self) {
        let started = Instant::now();
        let url = format!("http://{}/v2/", self.host());
        loop {
            match ureq::get(&url).timeout(Duration::from_secs(1)).call() {
                Ok(_) | Err(ureq::Error::Status(401, _)) => return,
                Err(_) if started.elapsed() < Duration::from_secs(20) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => panic!("registry did not come up: {e}; log: {}", self.log()),
            }
        }
    }
}

impl Drop for PrivateRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
