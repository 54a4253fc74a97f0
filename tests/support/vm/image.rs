//! A node VM's boot files: Debian's cloud kernel (fetched once by tests/tools/node-kernel.sh)
//! and an initramfs assembled here, at test time, from this machine's Debian packages and
//! the project's own build: busybox-static (shell, init, `ip`, `nc`, `ping`, `nsenter`), the
//! kernel modules a node needs with their dependencies, the `multi-eni` binary (the debug
//! build, stripped, with the shared libraries `ldd` lists), the CNI plugins ipvlan,
//! host-local and host-device, and the scripts in `guest/`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::process::run;

/// Modules loaded at boot, in this order (each after its dependencies): fw_cfg (the test's
/// settings), the virtio PCI transport and network driver (the management link and every
/// hot-plugged ENI), ipvlan (pods' secondary networks), uio_pci_generic and vfio-pci (DPDK;
/// vfio-pci loads, but cannot take a device: the `pc` machine has no IOMMU and the kernel no
/// VFIO_NOIOMMU).
const MODULES: [&str; 6] = [
    "qemu_fw_cfg",
    "virtio_pci",
    "virtio_net",
    "ipvlan",
    "uio_pci_generic",
    "vfio-pci",
];

/// The CNI plugins a pod's attachments run (containernetworking-plugins): ipvlan with
/// host-local, and host-device (a whole ENI advertised by the SR-IOV device plugin).
const CNI_PLUGINS: [&str; 3] = ["ipvlan", "host-local", "host-device"];
const CNI_DIR: &str = "/usr/lib/cni";
const BUSYBOX: &str = "/bin/busybox";

/// What the node VMs need from this machine, and the Debian package of each.
const PREREQUISITES: [(&str, &str); 7] = [
    ("/usr/bin/qemu-system-x86_64", "qemu-system-x86"),
    (BUSYBOX, "busybox-static"),
    ("/usr/lib/cni/ipvlan", "containernetworking-plugins"),
    ("/usr/bin/cpio", "cpio"),
    ("/usr/bin/strip", "binutils"),
    ("/usr/sbin/modprobe", "kmod"),
    ("/dev/net/tun", "the tun driver (a kernel with CONFIG_TUN)"),
];

/// The kernel and initramfs every node VM of a test boots.
pub struct NodeImage {
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
}

impl NodeImage {
    /// Assembles the initramfs under `dir` with the `multi-eni` binary at `agent` and, in
    /// `/bin` as well, the `extra` binaries (e.g. a benchmark's probe). Panics naming what
    /// is missing and how to install it.
    pub fn build(dir: &Path, agent: &Path, extra: &[&Path]) -> NodeImage {
        check_prerequisites();
        let kernel_dir = kernel_dir();
        let version = kernel_version(&kernel_dir);
        let root = dir.join("initramfs-root");
        let _ = std::fs::remove_dir_all(&root);
        for sub in [
            "bin",
            "etc",
            "lib/modules",
            "proc",
            "sys",
            "dev",
            "run",
            "tmp",
            "var",
        ] {
            std::fs::create_dir_all(root.join(sub)).expect("initramfs directories");
        }
        copy(Path::new(BUSYBOX), &root.join("bin/busybox"));
        install_guest_files(&root);
        install_modules(&kernel_dir, &version, &root);
        for binary in [agent].into_iter().chain(extra.iter().copied()) {
            install_binary(binary, &root.join("bin"), &root);
        }
        for plugin in CNI_PLUGINS {
            let target = root.join(&CNI_DIR[1..]);
            install_binary(&Path::new(CNI_DIR).join(plugin), &target, &root);
        }
        let initramfs = dir.join("initramfs.cpio");
        pack(&root, &initramfs);
        std::fs::remove_dir_all(&root).expect("remove the staging tree");
        NodeImage {
            kernel: kernel_dir.join(format!("boot/vmlinuz-{version}")),
            initramfs,
        }
    }
}

fn check_prerequisites() {
    let missing: Vec<String> = PREREQUISITES
        .iter()
        .filter(|(path, _)| !Path::new(path).exists())
        .map(|(path, package)| format!("{path} ({package})"))
        .collect();
    assert!(
        missing.is_empty(),
        "node VMs need {}: run `just vm-deps` (as root; it installs them from Debian)",
        missing.join(", ")
    );
}

/// The unpacked kernel package: `MULTI_ENI_NODE_KERNEL`, else what node-kernel.sh prints.
fn kernel_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MULTI_ENI_NODE_KERNEL") {
        return dir.into();
    }
    let script = crate::support::repo_file("tests/tools/node-kernel.sh");
    let output = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .expect("run node-kernel.sh");
    assert!(
        output.status.success(),
        "{} failed: the node VMs have no kernel",
        script.display()
    );
    let stdout = String::from_utf8(output.stdout).expect("utf-8 path");
    stdout.lines().last().expect("a directory").into()
}

/// The one kernel version under `lib/modules` of the unpacked package.
fn kernel_version(kernel_dir: &Path) -> String {
    let modules = kernel_dir.join("lib/modules");
    let entries = std::fs::read_dir(&modules)
        .unwrap_or_else(|e| panic!("{}: {e}", modules.display()))
        .filter_map(Result::ok);
    entries
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .next()
        .expect("a kernel version under lib/modules")
}

fn install_guest_files(root: &Path) {
    let guest = crate::support::repo_file("tests/support/vm/guest");
    for (file, target, mode) in [
        ("init", "init", 0o755),
        ("inittab", "etc/inittab", 0o644),
        ("rcS", "etc/rcS", 0o755),
        ("start-agent", "bin/start-agent", 0o755),
    ] {
        copy(&guest.join(file), &root.join(target));
        set_mode(&root.join(target), mode);
    }
}

/// Copies each module `modprobe --show-depends` names for `MODULES` into `/lib/modules`
/// and lists them, dependencies first, in `/etc/modules` for the guest's `insmod`.
fn install_modules(kernel_dir: &Path, version: &str, root: &Path) {
    let mut order: Vec<PathBuf> = Vec::new();
    for module in MODULES {
        // "insmod /…/virtio_ring.ko " lines; built-in modules say "builtin <name>".
        let text = run(Command::new("modprobe")
            .args(["--show-depends", "-C", "/dev/null", "-S", version, "-d"])
            .arg(kernel_dir)
            .arg(module));
        for line in text.lines() {
            if let Some(path) = line.strip_prefix("insmod ") {
                let path = PathBuf::from(path.split_whitespace().next().unwrap_or_default());
                if !order.contains(&path) {
                    order.push(path);
                }
            }
        }
    }
    let mut list = String::new();
    for path in &order {
        let name = path.file_name().expect("a module file");
        copy(path, &root.join("lib/modules").join(name));
        list.push_str(&name.to_string_lossy());
        list.push('\n');
    }
    std::fs::write(root.join("etc/modules"), list).expect("etc/modules");
}

/// Copies a dynamically linked binary, stripped, into `dir`, and the shared libraries
/// `ldd` lists for it to the same paths under `root`.
fn install_binary(binary: &Path, dir: &Path, root: &Path) {
    std::fs::create_dir_all(dir).expect("binary directory");
    let target = dir.join(binary.file_name().expect("a file name"));
    run(Command::new("strip").arg("-o").arg(&target).arg(binary));
    // "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "\t/lib64/ld-linux-x86-64.so.2 (0x…)".
    for line in run(Command::new("ldd").arg(binary)).lines() {
        let path = line.split("=>").last().unwrap_or_default().trim();
        let path = path.split(" (").next().unwrap_or_default();
        if let Some(relative) = path.strip_prefix('/') {
            let library = root.join(relative);
            if !library.exists() {
                std::fs::create_dir_all(library.parent().expect("a directory")).expect("lib dir");
                copy(Path::new(path), &library);
            }
        }
    }
}

/// `find . | cpio -o -H newc`: the kernel unpacks an uncompressed newc archive fastest.
fn pack(root: &Path, initramfs: &Path) {
    let mut files = Vec::new();
    list_files(root, root, &mut files);
    let archive = std::fs::File::create(initramfs).expect("create the initramfs");
    let mut cpio = Command::new("cpio")
        .args(["-o", "-H", "newc", "-R", "0:0", "--quiet"])
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(archive)
        .spawn()
        .expect("run cpio");
    let mut stdin = cpio.stdin.take().expect("cpio's stdin");
    stdin
        .write_all(files.join("\n").as_bytes())
        .expect("list files to cpio");
    drop(stdin);
    assert!(cpio.wait().expect("cpio").success(), "cpio failed");
}

fn list_files(root: &Path, dir: &Path, files: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("read the staging tree") {
        let path = entry.expect("an entry").path();
        let relative = path.strip_prefix(root).expect("under the root");
        files.push(relative.to_string_lossy().into_owned());
        if path.is_dir() && !path.is_symlink() {
            list_files(root, &path, files);
        }
    }
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}
