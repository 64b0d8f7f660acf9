//! One real API server: etcd and kube-apiserver on free loopback ports, in a temporary folder
//! removed when the server is dropped.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Config};
use serde_json::{Value, json};

use crate::process::Supervised;
use crate::{Error, binaries, pki::Pki};

/// The static token of the administrator (`system:masters`).
const ADMIN_TOKEN: &str = "capt-status-test-admin";
/// How long etcd and kube-apiserver may take to become ready on a loaded machine.
const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a CustomResourceDefinition may take to be established.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// A running kube-apiserver backed by its own etcd. Dropping it kills both and removes
/// their folder.
pub struct KubeServer {
    url: String,
    etcd_url: String,
    ca_file: PathBuf,
    admin: Client,
    // Field order is drop order: the API server stops before etcd, then the folder goes.
    _apiserver: Supervised,
    _etcd: Supervised,
    dir: TempDir,
}

impl KubeServer {
    /// Builds or reuses the binaries, starts etcd and kube-apiserver, and waits until
    /// `/readyz` answers `ok`.
    pub async fn start() -> Result<Self, Error> {
        let bin = tokio::task::spawn_blocking(|| binaries::dir().map(Path::to_path_buf))
            .await
            .expect("the build task does not panic")?;
        let dir = TempDir::new()?;
        let pki = Pki::generate(dir.path())?;
        let ca_file = dir.path().join("ca.crt");
        std::fs::write(&ca_file, &pki.ca_pem)
            .map_err(Error::io(format!("writing {}", ca_file.display())))?;
        let tokens = dir.path().join("tokens.csv");
        std::fs::write(
            &tokens,
            format!("{ADMIN_TOKEN},admin,admin,system:masters\n"),
        )
        .map_err(Error::io(format!("writing {}", tokens.display())))?;

        let [client_port, peer_port, secure_port] = free_ports()?;
        let etcd_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd_args = [
            format!("--data-dir={}", dir.path().join("etcd").display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=default={peer_url}"),
            "--unsafe-no-fsync".to_owned(),
            "--log-level=warn".to_owned(),
        ];
        let mut etcd = Supervised::spawn(
            "etcd",
            &bin.join("etcd"),
            &etcd_args,
            dir.path().join("etcd.log"),
        )?;
        wait_for_port(&mut etcd, client_port).await?;

        let path = |p: &Path| p.display().to_string();
        let apiserver_args = [
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".to_owned(),
            "--advertise-address=127.0.0.1".to_owned(),
            // The `kubernetes` Service's endpoints may not be a loopback address; no pod
            // needs them here.
            "--endpoint-reconciler-type=none".to_owned(),
            format!("--secure-port={secure_port}"),
            format!("--cert-dir={}", dir.path().display()),
            format!("--tls-cert-file={}", path(&pki.serving_cert)),
            format!("--tls-private-key-file={}", path(&pki.serving_key)),
            format!("--token-auth-file={}", path(&tokens)),
            "--authorization-mode=RBAC".to_owned(),
            "--service-account-issuer=https://kubernetes.default.svc".to_owned(),
            format!(
                "--service-account-key-file={}",
                path(&pki.service_account_public_key)
            ),
            format!(
                "--service-account-signing-key-file={}",
                path(&pki.service_account_key)
            ),
            "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
        ];
        let mut apiserver = Supervised::spawn(
            "kube-apiserver",
            &bin.join("kube-apiserver"),
            &apiserver_args,
            dir.path().join("kube-apiserver.log"),
        )?;
        let url = format!("https://127.0.0.1:{secure_port}");
        let admin = Client::try_from(config(&url, &ca_file, ADMIN_TOKEN, "admin").await?)
            .map_err(Error::kube("building the admin client"))?;
        wait_for_readyz(&mut apiserver, &admin).await?;
        Ok(Self {
            url,
            etcd_url,
            ca_file,
            admin,
            _apiserver: apiserver,
            _etcd: etcd,
            dir,
        })
    }

    /// A client authenticated as the administrator (`system:masters`), namespace `default`.
    pub fn client(&self) -> Client {
        self.admin.clone()
    }

    /// The API server's URL (`https://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// etcd's client URL (plain HTTP on loopback), for tests that compact its history.
    pub fn etcd_url(&self) -> &str {
        &self.etcd_url
    }

    /// The folder holding the logs (`etcd.log`, `kube-apiserver.log`) and credentials.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A kubeconfig file (in [`Self::dir`]) for the administrator, written on first use: what
    /// `kubectl` and other command-line tools are given with `--kubeconfig`.
    pub fn kubeconfig_file(&self) -> Result<PathBuf, Error> {
        let file = self.dir.path().join("admin.kubeconfig");
        if !file.exists() {
            let kubeconfig = json!({
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "test", "cluster": {
                    "server": self.url,
                    "certificate-authority": self.ca_file,
                }}],
                "users": [{"name": "admin", "user": {"token": ADMIN_TOKEN}}],
                "contexts": [{"name": "test", "context": {
                    "cluster": "test", "user": "admin", "namespace": "default",
                }}],
                "current-context": "test",
            });
            // JSON is YAML: kubectl reads it as it is.
            std::fs::write(&file, kubeconfig.to_string())
                .map_err(Error::io(format!("writing {}", file.display())))?;
        }
        Ok(file)
    }

    /// A `kubectl` command (the pinned release's, see [`binaries::kubectl`]) talking to this
    /// server as the administrator; add the arguments and run it.
    pub fn kubectl(&self) -> Result<Command, Error> {
        let mut command = Command::new(binaries::kubectl()?);
        command
            .arg("--kubeconfig")
            .arg(self.kubeconfig_file()?)
            .env_remove("KUBECONFIG");
        Ok(command)
    }

    /// A client configuration authenticated by `token`, namespace `default`.
    pub async fn config_for_token(&self, token: &str) -> Result<Config, Error> {
        config(&self.url, &self.ca_file, token, "user").await
    }

    /// A client authenticated as the ServiceAccount `namespace/name` (created with its
    /// namespace if missing), through a token from the TokenRequest API.
    pub async fn service_account_client(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Client, Error> {
        let token = self.service_account_token(namespace, name).await?;
        let config = self.config_for_token(&token).await?;
        Client::try_from(config).map_err(Error::kube("building a service-account client"))
    }

    /// A token of the ServiceAccount `namespace/name` (created with its namespace if missing).
    pub async fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<String, Error> {
        let namespaces: Api<Namespace> = Api::all(self.client());
        let ns =
            serde_json::from_value(json!({"metadata": {"name": namespace}})).expect("a Namespace");
        ignore_exists(namespaces.create(&PostParams::default(), &ns).await)
            .map_err(Error::kube(format!("creating the namespace {namespace}")))?;
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client(), namespace);
        let account =
            serde_json::from_value(json!({"metadata": {"name": name}})).expect("a ServiceAccount");
        ignore_exists(accounts.create(&PostParams::default(), &account).await)
            .map_err(Error::kube(format!("creating the ServiceAccount {name}")))?;
        let request = json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        });
        let response: Value = accounts
            .create_subresource("token", name, &PostParams::default(), &request)
            .await
            .map_err(Error::kube(format!(
                "requesting a token for {namespace}/{name}"
            )))?;
        Ok(response["status"]["token"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// Creates `objects` as the administrator: CustomResourceDefinitions first, each waited
    /// for until established, then the others in order (their kinds found by discovery).
    pub async fn install(&self, objects: &[Value]) -> Result<(), Error> {
        let crds: Api<CustomResourceDefinition> = Api::all(self.client());
        let (definitions, others): (Vec<&Value>, Vec<&Value>) = objects
            .iter()
            .partition(|o| o["kind"] == "CustomResourceDefinition");
        for definition in &definitions {
            let crd: CustomResourceDefinition = serde_json::from_value((*definition).clone())
                .map_err(|e| Error::Manifest {
                    file: PathBuf::from("(CustomResourceDefinition)"),
                    message: e.to_string(),
                })?;
            let name = crd.metadata.name.clone().unwrap_or_default();
            crds.create(&PostParams::default(), &crd)
                .await
                .map_err(Error::kube(format!("creating the CRD {name}")))?;
        }
        for definition in &definitions {
            let name = definition["metadata"]["name"].as_str().unwrap_or_default();
            let established = await_condition(crds.clone(), name, conditions::is_crd_established());
            match tokio::time::timeout(ESTABLISH_TIMEOUT, established).await {
                Ok(Ok(_)) => {}
                _ => return Err(Error::NotEstablished(name.to_owned())),
            }
        }
        for object in others {
            self.create(object).await?;
        }
        Ok(())
    }

    /// Creates one object of any served kind as the administrator.
    pub async fn create(&self, object: &Value) -> Result<(), Error> {
        let api = self.api_for(object).await?;
        let object: DynamicObject =
            serde_json::from_value(object.clone()).map_err(|e| Error::Manifest {
                file: PathBuf::from("(object)"),
                message: e.to_string(),
            })?;
        let name = object.metadata.name.clone().unwrap_or_default();
        api.create(&PostParams::default(), &object)
            .await
            .map_err(Error::kube(format!("creating {name}")))?;
        Ok(())
    }

    /// The API of `object`'s kind (and namespace), found by discovery.
    pub async fn api_for(&self, object: &Value) -> Result<Api<DynamicObject>, Error> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
        let (resource, capabilities) = kube::discovery::pinned_kind(&self.admin, &gvk)
            .await
            .map_err(Error::kube(format!("discovering {api_version} {kind}")))?;
        Ok(
            match (capabilities.scope, object["metadata"]["namespace"].as_str()) {
                (kube::discovery::Scope::Namespaced, Some(ns)) => {
                    Api::namespaced_with(self.client(), ns, &resource)
                }
                (kube::discovery::Scope::Namespaced, None) => {
                    Api::default_namespaced_with(self.client(), &resource)
                }
                (kube::discovery::Scope::Cluster, _) => Api::all_with(self.client(), &resource),
            },
        )
    }
}

fn ignore_exists<T>(result: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// A client configuration for `url`, trusting the CA in `ca_file`, authenticated by `token`.
async fn config(url: &str, ca_file: &Path, token: &str, user: &str) -> Result<Config, Error> {
    let kubeconfig = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kube", "cluster": {
            "server": url,
            "certificate-authority": ca_file.display().to_string(),
        }}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "kube", "context": {
            "cluster": "kube", "user": user, "namespace": "default",
        }}],
        "current-context": "kube",
    });
    let kubeconfig: Kubeconfig =
        serde_json::from_value(kubeconfig).expect("a well-formed kubeconfig");
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| Error::Manifest {
            file: ca_file.to_path_buf(),
            message: format!("the client configuration: {e}"),
        })
}

/// Free loopback ports (bound then released: the usual, slightly racy, way).
fn free_ports<const N: usize>() -> Result<[u16; N], Error> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::io("finding a free port"))?;
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(Error::io("finding a free port"))?;
    Ok(ports.try_into().expect("N ports"))
}

/// Waits until `process` accepts connections on loopback `port`.
async fn wait_for_port(process: &mut Supervised, port: u16) -> Result<(), Error> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_until(process, || async {
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    })
    .await
}

/// Waits until `/readyz` answers `ok`.
async fn wait_for_readyz(process: &mut Supervised, client: &Client) -> Result<(), Error> {
    wait_until(process, || async {
        let request = http::Request::get("/readyz")
            .body(Vec::new())
            .expect("a request");
        matches!(client.request_text(request).await, Ok(body) if body == "ok")
    })
    .await
}

/// Polls `ready` every 100 ms until it holds, failing if `process` exits first or
/// [`READY_TIMEOUT`] passes.
async fn wait_until<F, Fut>(process: &mut Supervised, mut ready: F) -> Result<(), Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if let Some(status) = process.exited() {
            return Err(process.exited_error(status));
        }
        if ready().await {
            return Ok(());
        }
        if start.elapsed() > READY_TIMEOUT {
            return Err(Error::NotReady {
                name: process.name,
                seconds: READY_TIMEOUT.as_secs(),
                log: process.log.clone(),
                tail: process.log_tail(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A fresh folder under the system's temporary folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self, Error> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "capt-kube-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)
            .map_err(Error::io(format!("creating {}", path.display())))?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
