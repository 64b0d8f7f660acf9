//! The API server a test runs against (each operator test binary includes this file with
//! `#[path]`): the in-process test double or the real kube-apiserver with etcd, both with the
//! CAPT, Cluster and Workspace CRDs. Tests parameterised by backend act only through
//! `kube::Client`: the administrator's ([`TestServer::client`]) plays Crossplane, CAPT and the
//! users; the operator runs with [`TestServer::operator_client`], on the real server the
//! ServiceAccount bound by exactly the roles of deploy/ (read from its kustomization).

use inproc_apiserver::{ApiServer, StoreReader};
use kube::Client;
use kube_harness::rbac::Grants;
use kube_harness::{KubeServer, crds};

use crate::grants;

/// Which API server a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The in-process test double (`inproc-apiserver`).
    InProcess,
    /// The real kube-apiserver and etcd (`kube-harness`).
    Real,
}

/// A started API server of either backend.
pub enum Server {
    /// The test double.
    InProcess(ApiServer),
    /// The real server, with the operator's ServiceAccount client.
    Real {
        /// The server (boxed: it is much larger than the double's handle).
        server: Box<KubeServer>,
        /// Authenticated as deploy/'s ServiceAccount.
        operator: Client,
        /// The namespace deploy/ installs the operator in.
        namespace: String,
    },
}

impl Backend {
    /// Starts a fresh server of this backend with every CRD the operator needs; on the real
    /// server, deploy/'s grants and the secret reader bound in `default`.
    pub async fn start(self) -> Server {
        match self {
            Self::InProcess => Server::InProcess(crate::harness::server().await),
            Self::Real => {
                let server = KubeServer::start()
                    .await
                    .expect("the real API server starts");
                let crds = crds::all().expect("the CRD files are found");
                server.install(&crds).await.expect("the CRDs are installed");
                let grants = Grants::from_deploy().expect("deploy/ is readable");
                grants::grant(&server, &grants).await;
                grants::bind_secret_reader(&server, &grants, "default").await;
                let operator = grants::service_account(&server, &grants).await;
                Server::Real {
                    server: Box::new(server),
                    operator,
                    namespace: grants.namespace,
                }
            }
        }
    }
}

impl Server {
    /// The test double, for the assertions only it can answer (its request log).
    pub fn in_process(&self) -> Option<&ApiServer> {
        match self {
            Self::InProcess(server) => Some(server),
            Self::Real { .. } => None,
        }
    }
}

/// Where the test's reads of the CAPT objects go.
pub enum Reads {
    /// The double's store: reads that do not show in its request log.
    Store(StoreReader),
    /// The API, as the administrator.
    Api(Client),
}

/// What the tests need of a server, whichever the backend.
pub trait TestServer {
    /// The administrator's client, for the test's own actions.
    fn client(&self) -> Client;
    /// The client the operator runs with.
    fn operator_client(&self) -> Client;
    /// Where the test reads objects from.
    fn reads(&self) -> Reads;
    /// The operator's own namespace (its Lease's).
    fn operator_namespace(&self) -> String;
}

impl TestServer for ApiServer {
    fn client(&self) -> Client {
        ApiServer::client(self)
    }

    fn operator_client(&self) -> Client {
        Client::try_from(self.kube_config().expect("a client configuration")).expect("a client")
    }

    fn reads(&self) -> Reads {
        Reads::Store(self.store())
    }

    fn operator_namespace(&self) -> String {
        "default".to_owned()
    }
}

impl TestServer for Server {
    fn client(&self) -> Client {
        match self {
            Self::InProcess(server) => TestServer::client(server),
            Self::Real { server, .. } => server.client(),
        }
    }

    fn operator_client(&self) -> Client {
        match self {
            Self::InProcess(server) => server.operator_client(),
            Self::Real { operator, .. } => operator.clone(),
        }
    }

    fn reads(&self) -> Reads {
        match self {
            Self::InProcess(server) => server.reads(),
            Self::Real { server, .. } => Reads::Api(server.client()),
        }
    }

    fn operator_namespace(&self) -> String {
        match self {
            Self::InProcess(server) => server.operator_namespace(),
            Self::Real { namespace, .. } => namespace.clone(),
        }
    }
}

/// Runs the test body `$body` (an `async fn(Backend)` in scope) on both backends, as the
/// tests `$body::in_process` and `$body::real`.
#[macro_export]
macro_rules! on_both_backends {
    ($body:ident) => {
        mod $body {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn in_process() {
                super::$body($crate::backend::Backend::InProcess).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn real() {
                super::$body($crate::backend::Backend::Real).await
            }
        }
    };
}
