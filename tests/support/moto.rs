//! moto's EC2 server (from PyPI), an independent implementation of the EC2 API: what our
//! requests, filters and parsing must also satisfy. `just venv` installs it.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use super::process::{Process, free_port};

pub struct Moto {
    _process: Process,
    pub endpoint_url: String,
}

/// The moto server shared by the tests of this binary, started on first use.
pub fn shared() -> &'static Moto {
    static SHARED: OnceLock<Moto> = OnceLock::new();
    SHARED.get_or_init(|| {
        let port = free_port();
        let dir = std::env::temp_dir();
        let process = Process::spawn(
            "moto_server",
            Command::new(venv().join("bin/moto_server")).args([
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ]),
            &dir,
        );
        let endpoint_url = format!("http://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            process.check_alive();
            assert!(
                std::time::Instant::now() < deadline,
                "moto_server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Moto {
            _process: process,
            endpoint_url,
        }
    })
}

/// The Python environment `just venv` made (`MULTI_ENI_VENV`, else the cache's `venv`).
fn venv() -> PathBuf {
    if let Some(dir) = std::env::var_os("MULTI_ENI_VENV") {
        return dir.into();
    }
    let home = std::env::var_os("HOME").expect("HOME is set");
    let cache = std::env::var_os("MULTI_ENI_CACHE").map_or_else(
        || PathBuf::from(home).join(".cache/multi-eni"),
        PathBuf::from,
    );
    cache.join("venv")
}
