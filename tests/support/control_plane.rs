//! A real Kubernetes control plane for tests: etcd and kube-apiserver on free loopback ports,
//! with generated certificates (the approach of controller-runtime's envtest).
//!
//! The binaries come from `just testbins` (directory in `MULTI_ENI_TESTBINS`, else the
//! script is run). Processes are killed when the [`ControlPlane`] drops and, through
//! `PR_SET_PDEATHSIG`, when the test process dies, whatever the reason. Its directory (about
//! 120 MB, mostly etcd's preallocated WAL) goes on drop; the [`shared`] one, which a static
//! holds and so is never dropped, goes when the process exits, and the directories of runs
//! killed by a signal are removed by the next run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, CustomResourceExt};
use multi_eni::api::{ENINode, NodeENI};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use tempfile::TempDir;

use super::process::{Process, free_ports};

/// This machine's loopback as seen from a node VM (QEMU user networking's host address).
const GUEST_HOST: &str = "10.0.2.2";

pub struct ControlPlane {
    // Field order is drop order: the API server stops before etcd, the directory goes last.
    apiserver: Process,
    etcd: Process,
    pub kubeconfig: PathBuf,
    pub bin_dir: PathBuf,
    dir: TempDir,
}

/// The prefix of every control plane's directory, under the system's temporary directory.
const DIR_PREFIX: &str = "multi-eni-cp-";

static SHARED: OnceLock<ControlPlane> = OnceLock::new();

/// The control plane shared by every test of this test binary, started on first use with the
/// CRDs installed. It lives until the process exits, and is then stopped and its directory
/// removed (an `atexit` handler: the test harness ends by returning from `main` or by
/// `std::process::exit`, both of which run them).
pub fn shared() -> &'static ControlPlane {
    SHARED.get_or_init(|| {
        remove_dead_runs_dirs();
        // Start it on a runtime of its own: the caller's runtime ends with its test.
        let plane = std::thread::spawn(|| {
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
            runtime.block_on(async {
                let plane = ControlPlane::start().await;
                plane.install_crd().await;
                plane
            })
        })
        .join()
        .expect("the control plane started");
        #[allow(unsafe_code)]
        // SAFETY: registers a plain function; it runs once, on the exiting thread.
        let registered = unsafe { libc::atexit(stop_shared) };
        assert_eq!(registered, 0, "atexit");
        plane
    })
}

extern "C" fn stop_shared() {
    if let Some(plane) = SHARED.get() {
        plane.apiserver.kill();
        plane.etcd.kill();
        let _ = std::fs::remove_dir_all(plane.dir());
    }
}

/// Removes the directories of control planes whose process is gone (a run killed by a
/// signal runs no exit handler): those no process names on its command line (etcd names its
/// data directory there, and dies with its test process) and untouched for a minute (a
/// plane being started has no etcd yet).
fn remove_dead_runs_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    let command_lines: Vec<String> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|process| std::fs::read(process.path().join("cmdline")).ok())
        .map(|line| String::from_utf8_lossy(&line).into_owned())
        .collect();
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|modified| modified.elapsed().unwrap_or_default() > Duration::from_mins(1));
        let dir = path.to_string_lossy();
        if name.to_string_lossy().starts_with(DIR_PREFIX)
            && old
            && !command_lines.iter().any(|line| line.contains(dir.as_ref()))
        {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver and waits until the API server is ready.
    pub async fn start() -> ControlPlane {
        let bin_dir = testbins();
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .expect("tempdir");
        let pki = Pki::write(dir.path());

        let [etcd_client, etcd_peer, secure] = free_ports();
        let etcd = Process::spawn(
            "etcd",
            Command::new(bin_dir.join("etcd")).args([
                format!("--data-dir={}", dir.path().join("etcd").display()),
                format!("--listen-client-urls=http://127.0.0.1:{etcd_client}"),
                format!("--advertise-client-urls=http://127.0.0.1:{etcd_client}"),
                format!("--listen-peer-urls=http://127.0.0.1:{etcd_peer}"),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}"),
                format!("--initial-cluster=default=http://127.0.0.1:{etcd_peer}"),
                "--unsafe-no-fsync=true".into(),
                "--log-level=error".into(),
            ]),
            dir.path(),
        );
        let apiserver = Process::spawn(
            "kube-apiserver",
            Command::new(bin_dir.join("kube-apiserver")).args([
                format!("--etcd-servers=http://127.0.0.1:{etcd_client}"),
                format!("--secure-port={secure}"),
                "--bind-address=127.0.0.1".into(),
                "--advertise-address=127.0.0.1".into(),
                format!("--cert-dir={}", dir.path().join("serving").display()),
                format!("--tls-cert-file={}", pki.serving_cert.display()),
                format!("--tls-private-key-file={}", pki.serving_key.display()),
                format!("--client-ca-file={}", pki.ca_cert.display()),
                format!("--service-account-key-file={}", pki.sa_pub.display()),
                format!(
                    "--service-account-signing-key-file={}",
                    pki.sa_key.display()
                ),
                "--service-account-issuer=https://kubernetes.default.svc".into(),
                "--service-cluster-ip-range=10.96.0.0/24".into(),
                "--authorization-mode=RBAC".into(),
                "--allow-privileged=true".into(),
                "--disable-admission-plugins=ServiceAccount".into(),
                "--v=0".into(),
            ]),
            dir.path(),
        );
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, pki.kubeconfig(secure)).expect("write kubeconfig");

        let plane = ControlPlane {
            apiserver,
            etcd,
            kubeconfig,
            bin_dir,
            dir,
        };
        plane.wait_ready().await;
        plane
    }

    /// A client for the cluster admin (group system:masters), bound to the caller's runtime.
    pub async fn client(&self) -> Client {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("kubeconfig is valid");
        Client::try_from(config).expect("client")
    }

    /// `kubectl` against this control plane.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new(self.bin_dir.join("kubectl"));
        command.arg("--kubeconfig").arg(&self.kubeconfig);
        command
    }

    /// Whether `user` may make `request`, given as the arguments of `kubectl auth can-i`
    /// (e.g. "patch eninodes.networking.k8s.aws --subresource=status").
    pub fn can_i(&self, user: &str, request: &str) -> bool {
        let output = self
            .kubectl()
            .args(["auth", "can-i"])
            .args(request.split_whitespace())
            .args(["--as", user])
            .output()
            .expect("run kubectl");
        String::from_utf8_lossy(&output.stdout).trim() == "yes"
    }

    /// `kubectl apply --server-side` of a manifest file; panics with kubectl's complaint.
    pub fn apply(&self, manifest: &Path) {
        let apply = self
            .kubectl()
            .args(["apply", "--server-side", "--force-conflicts", "-f"])
            .arg(manifest)
            .output()
            .expect("run kubectl");
        let stderr = String::from_utf8_lossy(&apply.stderr);
        assert!(
            apply.status.success(),
            "applying {}: {stderr}",
            manifest.display()
        );
    }

    /// `kubectl apply` of `yaml` with `args`, as the cluster admin.
    pub fn kubectl_apply(&self, yaml: &str, args: &[&str]) -> std::process::Output {
        use std::io::Write as _;
        let mut child = self
            .kubectl()
            .arg("apply")
            .args(args)
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(yaml.as_bytes()).expect("write to kubectl");
        drop(stdin);
        child.wait_with_output().expect("kubectl")
    }

    /// The node agent's ServiceAccount, RBAC and admission policy as the chart renders them
    /// for a release `multi-eni` in kube-system (with the SR-IOV device plugin restart on).
    pub fn install_agent_rights(&self) {
        let values = [
            "clusterName=test-cluster",
            "dpdk.enabled=true",
            "dpdk.sriovPlugin.restart=true",
        ];
        let rendered = super::chart::render("multi-eni", "kube-system", &values).expect("render");
        let applied = self.kubectl_apply(
            &super::chart::agent_rights(&rendered),
            &["--server-side", "--force-conflicts"],
        );
        assert!(
            applied.status.success(),
            "applying the agent's rights: {}",
            String::from_utf8_lossy(&applied.stderr)
        );
    }

    /// Creates the NodeENI and ENINode CRDs and waits until they are served.
    pub async fn install_crd(&self) {
        let client = self.client().await;
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in [NodeENI::crd(), ENINode::crd()] {
            crds.create(&PostParams::default(), &crd)
                .await
                .expect("create the CRD");
        }
        let nodeenis: Api<NodeENI> = Api::all(client.clone());
        let eninodes: Api<ENINode> = Api::all(client);
        wait_for("the CRDs to be served", || async {
            nodeenis.list(&ListParams::default()).await.is_ok()
                && eninodes.list(&ListParams::default()).await.is_ok()
        })
        .await;
    }

    async fn wait_ready(&self) {
        let client = self.client().await;
        wait_for("kube-apiserver to be ready", || async {
            self.apiserver.check_alive();
            self.etcd.check_alive();
            let request = http::Request::get("/readyz")
                .body(Vec::new())
                .expect("request");
            client
                .request_text(request)
                .await
                .is_ok_and(|body| body == "ok")
        })
        .await;
    }

    /// The admin kubeconfig as a node VM uses it: the API server at 10.0.2.2, the address at
    /// which QEMU's user networking reaches this machine's loopback.
    pub fn guest_kubeconfig(&self) -> String {
        let kubeconfig = std::fs::read_to_string(&self.kubeconfig).expect("read kubeconfig");
        kubeconfig.replace("https://127.0.0.1:", &format!("https://{GUEST_HOST}:"))
    }

    /// Where the control plane keeps its files (certificates, etcd data, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Polls `ready` every 100 ms for up to 60 s; panics naming `what` on time-out.
pub async fn wait_for<F, Fut>(what: &str, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_mins(1);
    while !ready().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The directory holding etcd, kube-apiserver and kubectl.
pub fn testbins() -> PathBuf {
    if let Some(dir) = std::env::var_os("MULTI_ENI_TESTBINS") {
        return dir.into();
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/testbins.sh");
    let output = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .expect("run testbins.sh");
    assert!(output.status.success(), "{} failed", script.display());
    let stdout = String::from_utf8(output.stdout).expect("utf-8 path");
    stdout
        .lines()
        .last()
        .expect("testbins.sh prints a directory")
        .into()
}

/// Certificates and keys of the control plane, and the admin's kubeconfig.
struct Pki {
    ca_cert: PathBuf,
    serving_cert: PathBuf,
    serving_key: PathBuf,
    sa_key: PathBuf,
    sa_pub: PathBuf,
    ca_pem: String,
    admin_cert_pem: String,
    admin_key_pem: String,
}

impl Pki {
    fn write(dir: &Path) -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "multi-eni test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca =
            CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("ca");

        let serving_key = KeyPair::generate().expect("key");
        // 10.0.2.2: this machine's loopback as node VMs see it (QEMU user networking).
        let names = vec!["127.0.0.1".into(), "localhost".into(), GUEST_HOST.into()];
        let mut serving = CertificateParams::new(names).expect("serving params");
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let serving = serving.signed_by(&serving_key, &ca).expect("serving cert");

        let admin_key = KeyPair::generate().expect("key");
        let mut admin = CertificateParams::new(Vec::<String>::new()).expect("admin params");
        admin.distinguished_name.push(DnType::CommonName, "admin");
        admin
            .distinguished_name
            .push(DnType::OrganizationName, "system:masters");
        admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let admin = admin.signed_by(&admin_key, &ca).expect("admin cert");

        let sa_key = KeyPair::generate().expect("key");
        let write = |name: &str, pem: &str| {
            let path = dir.join(name);
            std::fs::write(&path, pem).expect("write pki file");
            path
        };
        Pki {
            ca_cert: write("ca.crt", &ca.pem()),
            serving_cert: write("serving.crt", &serving.pem()),
            serving_key: write("serving.key", &serving_key.serialize_pem()),
            sa_key: write("sa.key", &sa_key.serialize_pem()),
            sa_pub: write("sa.pub", &sa_key.public_key_pem()),
            ca_pem: ca.pem(),
            admin_cert_pem: admin.pem(),
            admin_key_pem: admin_key.serialize_pem(),
        }
    }

    fn kubeconfig(&self, port: u16) -> String {
        use base64::Engine as _;
        let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: https://127.0.0.1:{port}
    certificate-authority-data: {ca}
users:
- name: admin
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: test
  context: {{cluster: test, user: admin}}
current-context: test
",
            ca = b64(&self.ca_pem),
            cert = b64(&self.admin_cert_pem),
            key = b64(&self.admin_key_pem),
        )
    }
}
