//! Child processes for tests: started on free loopback ports, logging to a file, and dead
//! when the test process dies, whatever the reason.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// `N` distinct free ports on 127.0.0.1.
pub fn free_ports<const N: usize>() -> [u16; N] {
    // Hold every listener until all ports are chosen so that they differ.
    let listeners: Vec<_> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("local addr").port())
}

/// A child process whose output goes to `<dir>/<name>.log` and which dies with the test
/// process (PR_SET_PDEATHSIG) or when dropped.
pub struct Process {
    name: String,
    child: std::sync::Mutex<Child>,
    log: PathBuf,
}

impl Process {
    pub fn spawn(name: &str, command: &mut Command, dir: &Path) -> Process {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("create log");
        command.stdout(file.try_clone().expect("log")).stderr(file);
        #[allow(unsafe_code)]
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        // PR_SET_PDEATHSIG fires when the spawning *thread* exits, so spawn from a thread
        // that lives as long as the process.
        let (send, receive) = std::sync::mpsc::channel();
        let command = std::mem::replace(command, Command::new(""));
        std::thread::spawn(move || {
            let mut command = command;
            send.send(command.spawn()).expect("send child");
            loop {
                std::thread::park();
            }
        });
        let child = receive
            .recv()
            .expect("spawned")
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Process {
            name: name.to_owned(),
            child: std::sync::Mutex::new(child),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.lock().expect("lock").id()
    }

    /// Kills the process and reaps it; does nothing when another thread holds it.
    pub fn kill(&self) {
        if let Ok(mut child) = self.child.try_lock() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn check_alive(&self) {
        let exited = self.child.lock().expect("lock").try_wait().expect("wait");
        if let Some(status) = exited {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<_> = log.lines().rev().take(30).collect();
            let tail: Vec<_> = tail.into_iter().rev().collect();
            panic!("{} exited with {status}:\n{}", self.name, tail.join("\n"));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let child = self
            .child
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Runs `command` to its end; its standard output. Panics with the command line and its
/// error output when it cannot run or fails.
pub fn run(command: &mut Command) -> String {
    let line = format!("{command:?}");
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("run {line}: {e}"));
    assert!(
        output.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// One free port on 127.0.0.1.
pub fn free_port() -> u16 {
    let [port] = free_ports();
    port
}
