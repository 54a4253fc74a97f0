//! A sysfs tree in a temporary directory that behaves like the kernel's PCI driver files:
//! a thread plays the kernel, carrying out what is written to `drivers/<d>/bind`,
//! `drivers/<d>/unbind` and `drivers_probe` by moving the device's `driver` symlink (and
//! honouring `driver_override` as the kernel does), and logs each step it carried out.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tempfile::TempDir;

/// The tree and its kernel thread (stopped on drop).
pub struct FakeSysfs {
    dir: TempDir,
    kernel: Arc<Kernel>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Kernel {
    root: PathBuf,
    drivers: Vec<String>,
    /// The driver each device binds to without an override (`ena` for an ENI).
    native: Mutex<HashMap<String, String>>,
    log: Mutex<Vec<String>>,
    stop: AtomicBool,
}

impl FakeSysfs {
    /// A tree whose kernel has these drivers loaded.
    pub fn new(drivers: &[&str]) -> FakeSysfs {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        for driver in drivers {
            let path = root.join("bus/pci/drivers").join(driver);
            std::fs::create_dir_all(&path).unwrap();
            std::fs::write(path.join("bind"), "").unwrap();
            std::fs::write(path.join("unbind"), "").unwrap();
        }
        std::fs::create_dir_all(root.join("class/net")).unwrap();
        std::fs::write(root.join("bus/pci/drivers_probe"), "").unwrap();
        let kernel = Arc::new(Kernel {
            root,
            drivers: drivers.iter().map(ToString::to_string).collect(),
            native: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let running = kernel.clone();
        let thread = std::thread::spawn(move || {
            while !running.stop.load(Ordering::Relaxed) {
                running.step();
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        FakeSysfs {
            dir,
            kernel,
            thread: Some(thread),
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Adds a PCI device bound to `driver`, with a network interface when `interface` is set.
    pub fn add_device(&self, pci: &str, driver: &str, interface: Option<&str>) {
        let device = self.kernel.device(pci);
        std::fs::create_dir_all(&device).unwrap();
        std::fs::write(device.join("driver_override"), "(null)\n").unwrap();
        self.kernel.link_driver(pci, driver);
        self.kernel
            .native
            .lock()
            .unwrap()
            .insert(pci.into(), driver.into());
        if let Some(interface) = interface {
            let net = self.root().join("class/net").join(interface);
            std::fs::create_dir_all(&net).unwrap();
            std::os::unix::fs::symlink(&device, net.join("device")).unwrap();
        }
    }

    /// The driver `pci` is bound to now.
    pub fn driver(&self, pci: &str) -> Option<String> {
        self.kernel.driver(pci)
    }

    /// The steps the kernel carried out, in order.
    pub fn log(&self) -> Vec<String> {
        self.kernel.log.lock().unwrap().clone()
    }

    pub fn clear_log(&self) {
        self.kernel.log.lock().unwrap().clear();
    }
}

impl Drop for FakeSysfs {
    fn drop(&mut self) {
        self.kernel.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Kernel {
    fn step(&self) {
        for driver in &self.drivers {
            let dir = self.root.join("bus/pci/drivers").join(driver);
            if let Some(pci) = take_written(&dir.join("unbind")) {
                self.unbind(&pci, driver);
            }
            if let Some(pci) = take_written(&dir.join("bind")) {
                self.bind(&pci, driver);
            }
        }
        if let Some(pci) = take_written(&self.root.join("bus/pci/drivers_probe")) {
            let chosen = self
                .override_of(&pci)
                .or_else(|| self.native.lock().unwrap().get(&pci).cloned());
            if let (None, Some(driver)) = (self.driver(&pci), chosen) {
                self.bind(&pci, &driver);
            }
        }
    }

    fn bind(&self, pci: &str, driver: &str) {
        let refused = match (self.driver(pci), self.override_of(pci)) {
            (Some(current), _) => Some(format!("busy with {current}")),
            (None, Some(other)) if other != driver => Some(format!("driver_override is {other}")),
            _ => None,
        };
        let shown = self.override_of(pci).unwrap_or_else(|| "(null)".into());
        if let Some(reason) = refused {
            self.record(format!("refused to bind {pci} to {driver}: {reason}"));
        } else {
            self.link_driver(pci, driver);
            self.record(format!("bind {pci} to {driver} (driver_override={shown})"));
        }
    }

    fn unbind(&self, pci: &str, driver: &str) {
        if self.driver(pci).as_deref() == Some(driver) {
            std::fs::remove_file(self.device(pci).join("driver")).unwrap();
            self.record(format!("unbind {pci} from {driver}"));
        } else {
            self.record(format!(
                "refused to unbind {pci} from {driver}: not bound to it"
            ));
        }
    }

    fn link_driver(&self, pci: &str, driver: &str) {
        let target = self.root.join("bus/pci/drivers").join(driver);
        std::os::unix::fs::symlink(target, self.device(pci).join("driver")).unwrap();
    }

    fn driver(&self, pci: &str) -> Option<String> {
        let target = std::fs::read_link(self.device(pci).join("driver")).ok()?;
        Some(target.file_name()?.to_string_lossy().into_owned())
    }

    /// The override as the kernel keeps it: a newline (or nothing) clears it.
    fn override_of(&self, pci: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.device(pci).join("driver_override")).ok()?;
        let text = text.trim();
        (!text.is_empty() && text != "(null)").then(|| text.to_string())
    }

    fn device(&self, pci: &str) -> PathBuf {
        self.root.join("bus/pci/devices").join(pci)
    }

    fn record(&self, step: String) {
        self.log.lock().unwrap().push(step);
    }
}

/// A PCI address written to a kernel file, consumed; `None` while the file holds nothing
/// or only part of the address.
fn take_written(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let pci = text.trim();
    let complete = pci.len() == 12 && pci.as_bytes()[4] == b':' && pci.as_bytes()[10] == b'.';
    if !complete {
        return None;
    }
    std::fs::write(path, "").ok()?;
    Some(pci.to_string())
}
