//! The container image as built by `just image` (tests/tools/image.sh): saved with `podman
//! save`, unpacked into an OCI bundle and run with runc, as a container runtime runs it (on
//! this machine `podman run` cannot set rlimits; runc of an unpacked bundle can). Its files,
//! modes, owners, configuration and size; `--version` and `crd print`; and the controller
//! inside it, non-root, read-only and without capabilities, against a real API server and
//! the EC2 simulator until a NodeENI is Ready.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use multi_eni::ec2::types::AttachmentStatus;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::controller::ready;
use crate::support::ec2sim::SimConfig;
use crate::support::process::free_port;
use crate::support::repo_file;
use crate::support::sim_cluster::{SimCluster, ZONES};

/// Every path of the image: type, mode, owner. Nothing else belongs in it.
const TREE: [&str; 10] = [
    "d 755 0:0 etc",
    "f 644 0:0 etc/group",
    "f 644 0:0 etc/passwd",
    "d 755 0:0 etc/ssl",
    "d 755 0:0 etc/ssl/certs",
    "f 644 0:0 etc/ssl/certs/ca-certificates.crt",
    "d 755 0:0 usr",
    "d 755 0:0 usr/local",
    "d 755 0:0 usr/local/bin",
    "f 755 0:0 usr/local/bin/multi-eni",
];

const MAX_SIZE: u64 = 15_000_000;

#[test]
fn image_holds_the_binary_the_ca_bundle_and_user_65532_only() {
    let image = image();
    let bundle = Bundle::unpack(image);
    assert_eq!(bundle.tree(), TREE, "the image's files");

    let config = &image.config;
    assert_eq!(config["User"], "65532:65532");
    assert_eq!(config["Entrypoint"], json!(["/usr/local/bin/multi-eni"]));
    assert!(
        config["Cmd"].as_array().is_none_or(Vec::is_empty),
        "{config}"
    );
    // The OCI labels (builders add their own, such as io.buildah.version).
    let labels: BTreeMap<&str, &str> = config["Labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(key, _)| key.starts_with("org.opencontainers.image."))
        .map(|(key, value)| (key.as_str(), value.as_str().unwrap_or_default()))
        .collect();
    let cargo = BTreeMap::from([
        ("org.opencontainers.image.title", env!("CARGO_PKG_NAME")),
        (
            "org.opencontainers.image.description",
            env!("CARGO_PKG_DESCRIPTION"),
        ),
        (
            "org.opencontainers.image.licenses",
            env!("CARGO_PKG_LICENSE"),
        ),
        (
            "org.opencontainers.image.version",
            env!("CARGO_PKG_VERSION"),
        ),
    ]);
    assert_eq!(
        labels, cargo,
        "labels: the Containerfile's against Cargo.toml's"
    );

    println!(
        "image: {} bytes ({} compressed)",
        image.size, image.compressed
    );
    assert!(image.size <= MAX_SIZE, "{} bytes: over 15 MB", image.size);

    let rootfs = bundle.rootfs();
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with("nonroot:x:65532:65532:"))
    );
    let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap();
    assert!(group.lines().any(|l| l.starts_with("nonroot:x:65532:")));
    let bundled = std::fs::read_to_string(rootfs.join("etc/ssl/certs/ca-certificates.crt"));
    assert_eq!(
        certificates(&bundled.unwrap()),
        debian_certificates(),
        "the CA bundle holds exactly the certificates of Debian's ca-certificates package"
    );
}

#[test]
fn image_prints_its_version_and_the_crd() {
    let bundle = Bundle::unpack(image());
    let version = bundle.run(&["--version"]);
    assert_eq!(
        version.trim(),
        format!("multi-eni {}", env!("CARGO_PKG_VERSION"))
    );
    let crd = bundle.run(&["crd", "print"]);
    let checked_in = std::fs::read_to_string(repo_file("manifests/crd.yaml")).unwrap();
    assert!(
        crd == checked_in,
        "crd print differs from manifests/crd.yaml"
    );
}

#[tokio::test]
async fn controller_in_the_image_makes_a_nodeeni_ready() {
    let mut cluster = SimCluster::start(SimConfig::default()).await;
    let instance = cluster
        .add_node("n1", ZONES[0], "m5.large", &[("ng", "multi-eni")])
        .await;

    // The tests' controller command line, run from the image: the kubeconfig mounted read-only.
    let port = free_port();
    let host = cluster.controller_command(&[], port);
    let args: Vec<String> = host
        .get_args()
        .map(|a| a.to_str().unwrap().into())
        .collect();
    let mut env = Vec::new();
    let mut mounts = Vec::new();
    for (key, value) in host.get_envs() {
        let (key, value) = (key.to_str().unwrap(), value.unwrap().to_str().unwrap());
        if key == "KUBECONFIG" {
            mounts.push((PathBuf::from(value), "/kubeconfig"));
            env.push("KUBECONFIG=/kubeconfig".to_owned());
        } else {
            env.push(format!("{key}={value}"));
        }
    }
    let bundle = Bundle::unpack(image());
    bundle.configure(&args, &env, &mounts);
    // Declared after the cluster, so dropped (deleted) before it, a panic or not.
    let container = Container::new();
    cluster.spawn_controller(&mut container.run(&bundle), port);

    cluster
        .apply_nodeeni(
            "multus",
            json!({
                "nodeSelector": {"ng": "multi-eni"},
                "subnetIDs": [cluster.subnets[ZONES[0]]],
                "securityGroupIDs": [cluster.security_group],
                "deviceIndex": 1,
            }),
        )
        .await;
    cluster
        .wait_nodeeni("multus", "Ready", Duration::from_secs(30), ready)
        .await;
    let enis = cluster.owned_enis().await;
    assert_eq!(enis.len(), 1, "{enis:#?}");
    let attachment = enis[0].attachment.as_ref().expect("attached");
    assert_eq!(attachment.instance_id, instance);
    assert_eq!(attachment.status, AttachmentStatus::Attached);

    let status = container.proc("status");
    assert!(
        status.contains("\nUid:\t65532\t65532\t65532\t65532\n"),
        "{status}"
    );
    assert!(status.contains("\nCapEff:\t0000000000000000\n"), "{status}");
    let mounts = container.proc("mountinfo");
    let mut root = mounts.lines().map(|l| l.split(' ').collect::<Vec<_>>());
    let root_options = root.rfind(|fields| fields[4] == "/").expect("/")[5];
    assert!(root_options.split(',').any(|o| o == "ro"), "{mounts}");
    let log = std::fs::read_to_string(cluster.plane.dir().join("controller-1.log")).unwrap();
    assert!(
        !log.contains("native root CA"),
        "the SDK found no usable CA certificates in the image:\n{log}"
    );
}

/// The image as `podman save` writes it, read once per test process.
struct SavedImage {
    /// The image configuration's `config` object (User, Entrypoint, Env, Labels…).
    config: Value,
    /// The layers' blobs (tar archives, compressed), base first.
    layers: Vec<Vec<u8>>,
    /// Bytes unpacked, as `podman images` counts them.
    size: u64,
    /// Bytes of the compressed layers, as a registry stores them.
    compressed: u64,
}

fn image() -> &'static SavedImage {
    static IMAGE: OnceLock<SavedImage> = OnceLock::new();
    IMAGE.get_or_init(|| SavedImage::save(&image_id()))
}

/// `MULTI_ENI_IMAGE` (`just test` sets it from `just image`), else the image built now.
fn image_id() -> String {
    if let Some(id) = std::env::var("MULTI_ENI_IMAGE")
        .ok()
        .filter(|id| !id.is_empty())
    {
        return id;
    }
    let mut build = Command::new(repo_file("tests/tools/image.sh"));
    // Cargo's variables for this test (CARGO_MANIFEST_DIR, CARGO_PKG_NAME…) would make build
    // scripts that watch them (ring's) run again in the nested build, and after it in yours.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_") && !matches!(&*key, "CARGO_HOME" | "CARGO_TARGET_DIR") {
            build.env_remove(&*key);
        }
    }
    let output = run(&mut build);
    let stdout = String::from_utf8(output.stdout).unwrap();
    stdout.lines().last().expect("an image ID").to_owned()
}

impl SavedImage {
    fn save(id: &str) -> SavedImage {
        let dir = tempfile::Builder::new()
            .prefix("multi-eni-image-")
            .tempdir()
            .unwrap();
        let oci = dir.path().join("oci");
        run(Command::new("podman")
            .args(["save", "--quiet", "--format", "oci-dir", "-o"])
            .arg(&oci)
            .arg(id));
        let index = read_json(&oci.join("index.json"));
        let manifest = read_json(&blob(&oci, &index["manifests"][0]));
        let config = read_json(&blob(&oci, &manifest["config"]));
        let layers = manifest["layers"].as_array().expect("layers");
        let inspect =
            run(Command::new("podman").args(["image", "inspect", "--format", "{{.Size}}", id]));
        SavedImage {
            config: config["config"].clone(),
            layers: layers
                .iter()
                .map(|layer| std::fs::read(blob(&oci, layer)).unwrap())
                .collect(),
            size: String::from_utf8(inspect.stdout)
                .unwrap()
                .trim()
                .parse()
                .unwrap(),
            compressed: layers.iter().map(|l| l["size"].as_u64().unwrap()).sum(),
        }
    }
}

/// An OCI runtime bundle: the image's layers unpacked as its root filesystem, and runc's
/// default config.json adjusted as a runtime adjusts it for the image's configuration.
struct Bundle {
    dir: TempDir,
}

impl Bundle {
    fn unpack(image: &SavedImage) -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("multi-eni-bundle-")
            .tempdir()
            .unwrap();
        let bundle = Bundle { dir };
        let rootfs = bundle.rootfs();
        std::fs::create_dir(&rootfs).unwrap();
        std::fs::set_permissions(&rootfs, std::fs::Permissions::from_mode(0o755)).unwrap();
        let archive = bundle.dir.path().join("layer.tar");
        for layer in &image.layers {
            std::fs::write(&archive, layer).unwrap();
            // As root, tar keeps the layer's owners and modes.
            run(Command::new("tar")
                .arg("-xf")
                .arg(&archive)
                .arg("-C")
                .arg(&rootfs));
        }
        std::fs::remove_file(&archive).unwrap();
        bundle
    }

    fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// "type mode uid:gid path" of everything under the root, sorted by path.
    fn tree(&self) -> Vec<String> {
        let mut entries = Vec::new();
        walk(&self.rootfs(), Path::new(""), &mut entries);
        entries.sort();
        entries.into_iter().map(|(_, line)| line).collect()
    }

    /// config.json for the image's entrypoint with `args`, the image's environment and
    /// `env`, its user, no capabilities, a read-only root, the host's network (its loopback
    /// serves the API server and the simulator) and `mounts` bound read-only.
    fn configure(&self, args: &[String], env: &[String], mounts: &[(PathBuf, &str)]) {
        let path = self.dir.path().join("config.json");
        let _ = std::fs::remove_file(&path);
        run(Command::new("runc")
            .args(["spec", "--bundle"])
            .arg(self.dir.path()));
        let mut spec = read_json(&path);
        let image = &image().config;
        let process = &mut spec["process"];
        process["terminal"] = json!(false);
        let strings = |value: &Value| -> Vec<String> {
            let items = value.as_array().into_iter().flatten();
            items
                .map(|item| item.as_str().unwrap().to_owned())
                .collect()
        };
        process["args"] = json!([strings(&image["Entrypoint"]), args.to_vec()].concat());
        process["env"] = json!([strings(&image["Env"]), env.to_vec()].concat());
        let (uid, gid) = image["User"].as_str().unwrap().split_once(':').unwrap();
        process["user"] =
            json!({"uid": uid.parse::<u32>().unwrap(), "gid": gid.parse::<u32>().unwrap()});
        process["capabilities"] = json!({"bounding": [], "effective": [], "inheritable": [], "permitted": [], "ambient": []});
        spec["root"]["readonly"] = json!(true);
        let namespaces = spec["linux"]["namespaces"].as_array_mut().unwrap();
        namespaces.retain(|namespace| namespace["type"] != "network");
        let binds = spec["mounts"].as_array_mut().unwrap();
        for (source, destination) in mounts {
            binds.push(json!({"destination": destination, "type": "bind", "source": source, "options": ["rbind", "ro"]}));
        }
        std::fs::write(&path, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    }

    /// Runs the image's entrypoint with `args` to completion; its standard output.
    fn run(&self, args: &[&str]) -> String {
        let args: Vec<String> = args.iter().map(|&a| a.to_owned()).collect();
        self.configure(&args, &[], &[]);
        let container = Container::new();
        let output = run(&mut container.run(self));
        String::from_utf8(output.stdout).unwrap()
    }
}

/// (path, "type mode uid:gid path") of everything under `root`/`relative`, recursively.
fn walk(root: &Path, relative: &Path, entries: &mut Vec<(PathBuf, String)>) {
    for entry in std::fs::read_dir(root.join(relative)).unwrap() {
        let path = relative.join(entry.unwrap().file_name());
        let meta = std::fs::symlink_metadata(root.join(&path)).unwrap();
        let kind = match meta.file_type() {
            t if t.is_dir() => 'd',
            t if t.is_file() => 'f',
            t if t.is_symlink() => 'l',
            _ => 'o',
        };
        let (mode, uid, gid) = (meta.mode() & 0o7777, meta.uid(), meta.gid());
        let line = format!("{kind} {mode:o} {uid}:{gid} {}", path.display());
        entries.push((path.clone(), line));
        if meta.is_dir() {
            walk(root, &path, entries);
        }
    }
}

/// One runc container, deleted (killed first) when dropped: `runc run` killed leaves its
/// container running.
struct Container {
    id: String,
}

impl Container {
    fn new() -> Container {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        static STALE: OnceLock<()> = OnceLock::new();
        STALE.get_or_init(delete_stale_containers);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Container {
            id: format!("{CONTAINER_PREFIX}{}-{n}", std::process::id()),
        }
    }

    /// `runc run` of `bundle` in the foreground: the container's output is runc's.
    fn run(&self, bundle: &Bundle) -> Command {
        let mut command = Command::new("runc");
        command
            .args(["run", "--bundle"])
            .arg(bundle.dir.path())
            .arg(&self.id);
        command
    }

    /// /proc/<pid>/`name` of the container's process.
    fn proc(&self, name: &str) -> String {
        let state = run(Command::new("runc").args(["state", &self.id]));
        let state: Value = serde_json::from_slice(&state.stdout).unwrap();
        std::fs::read_to_string(format!("/proc/{}/{name}", state["pid"])).unwrap()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("runc")
            .args(["delete", "--force", &self.id])
            .output();
    }
}

const CONTAINER_PREFIX: &str = "multi-eni-test-";

/// Deletes the containers of test processes that died without deleting theirs.
fn delete_stale_containers() {
    let list = run(Command::new("runc").args(["list", "--format", "json"]));
    let list: Value = serde_json::from_slice(&list.stdout).unwrap_or(Value::Null);
    for container in list.as_array().into_iter().flatten() {
        let id = container["id"].as_str().unwrap_or_default();
        let Some(owner) = id
            .strip_prefix(CONTAINER_PREFIX)
            .and_then(|r| r.split('-').next())
        else {
            continue;
        };
        if !Path::new("/proc").join(owner).exists() {
            let _ = Command::new("runc")
                .args(["delete", "--force", id])
                .output();
        }
    }
}

/// Runs `command` to success; a missing podman or runc is named with how to install it.
fn run(command: &mut Command) -> Output {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command.output().unwrap_or_else(|error| match error.kind() {
        std::io::ErrorKind::NotFound => panic!(
            "{program} is not installed: `just image-deps` installs Debian's podman and runc"
        ),
        _ => panic!("{program}: {error}"),
    });
    assert!(
        output.status.success(),
        "{command:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The path of the blob a descriptor names, in an OCI layout.
fn blob(oci: &Path, descriptor: &Value) -> PathBuf {
    let digest = descriptor["digest"].as_str().expect("a digest");
    let (algorithm, hex) = digest.split_once(':').expect("algorithm:hex");
    oci.join("blobs").join(algorithm).join(hex)
}

/// The PEM certificates of a bundle, sorted.
fn certificates(pem: &str) -> Vec<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    let mut certs: Vec<String> = pem
        .split(BEGIN)
        .skip(1)
        .map(|rest| format!("{BEGIN}{}", rest.trim_end()))
        .collect();
    certs.sort();
    certs
}

/// The certificates Debian's ca-certificates package ships, sorted.
fn debian_certificates() -> Vec<String> {
    let files = run(Command::new("dpkg-query").args(["-L", "ca-certificates"]));
    let files = String::from_utf8(files.stdout).unwrap();
    let mut certs: Vec<String> = files
        .lines()
        .filter(|f| f.starts_with("/usr/share/ca-certificates/"))
        .filter(|f| Path::new(f).extension().is_some_and(|e| e == "crt"))
        .flat_map(|f| certificates(&std::fs::read_to_string(f).unwrap()))
        .collect();
    certs.sort();
    certs
}
