//! The kubelet side: registration over `kubelet.sock`, and the inode check that tells a
//! restarted kubelet (it deletes every socket in the plugin directory and creates a new
//! `kubelet.sock`) or a deleted socket of ours from the same name.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Endpoint, Uri};
use tower::service_fn;

use crate::api::{DevicePluginOptions, RegisterRequest, registration_client::RegistrationClient};

/// The API version this plugin speaks.
pub const VERSION: &str = "v1beta1";
/// The kubelet's registration socket, in the plugin directory.
pub const KUBELET_SOCKET: &str = "kubelet.sock";
/// How long one registration attempt may take.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(5);

/// A registration that failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// `kubelet.sock` could not be reached.
    #[error("cannot connect to the kubelet at {}: {source}", path.display())]
    Connect {
        /// The socket.
        path: PathBuf,
        /// The transport error.
        #[source]
        source: tonic::transport::Error,
    },
    /// The kubelet refused the registration.
    #[error("the kubelet refused to register {resource}: {}", status.message())]
    Refused {
        /// The resource.
        resource: String,
        /// The kubelet's answer.
        status: tonic::Status,
    },
    /// The kubelet did not answer in time.
    #[error(
        "the kubelet did not answer the registration of {resource} within {}",
        crds::report::human_duration(REGISTER_TIMEOUT)
    )]
    Timeout {
        /// The resource.
        resource: String,
    },
}

/// A gRPC channel over a unix socket (the URI is a placeholder; the connector ignores it).
pub async fn connect(path: &Path) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    let path = path.to_owned();
    // A valid URI is required by the endpoint; the connector below never looks at it.
    Endpoint::from_static("http://[::1]:1")
        .connect_timeout(REGISTER_TIMEOUT)
        .connect_with_connector(service_fn(move |_: Uri| {
            let p = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(p).await?)) }
        }))
        .await
}

/// The registration request of a pool (`endpoint` is the socket file name, not a path).
pub fn register_request(resource: &str, socket_name: &str) -> RegisterRequest {
    RegisterRequest {
        version: VERSION.to_owned(),
        endpoint: socket_name.to_owned(),
        resource_name: resource.to_owned(),
        options: Some(DevicePluginOptions {
            pre_start_required: false,
            get_preferred_allocation_available: true,
        }),
    }
}

/// Registers `resource`, served on `socket_name` in `plugin_dir`, with the kubelet there.
pub async fn register(
    plugin_dir: &Path,
    resource: &str,
    socket_name: &str,
) -> Result<(), RegisterError> {
    let path = plugin_dir.join(KUBELET_SOCKET);
    let attempt = async {
        let channel = connect(&path)
            .await
            .map_err(|source| RegisterError::Connect {
                path: path.clone(),
                source,
            })?;
        RegistrationClient::new(channel)
            .register(register_request(resource, socket_name))
            .await
            .map_err(|status| RegisterError::Refused {
                resource: resource.to_owned(),
                status,
            })?;
        Ok(())
    };
    tokio::time::timeout(REGISTER_TIMEOUT, attempt)
        .await
        .map_err(|_| RegisterError::Timeout {
            resource: resource.to_owned(),
        })?
}

/// The inode of a file, `None` when it does not exist: a socket recreated under the same name
/// has a new inode.
pub fn inode(path: &Path) -> Option<u64> {
    std::fs::symlink_metadata(path).ok().map(|m| m.ino())
}
