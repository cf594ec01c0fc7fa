//! Handlers as OCI artifacts: `oci://` references, the wasm artifact
//! layout, registry credentials, and pulling from and pushing to a
//! registry with the ORAS project's client (`oci-client`).
//!
//! A handler is stored in a registry in the CNCF TAG-Runtime layout for
//! WebAssembly: a manifest whose config has the media type
//! [`WASM_CONFIG_MEDIA_TYPE`] and whose one layer, of media type
//! [`WASM_LAYER_MEDIA_TYPE`], is the component's bytes. The layer's
//! digest is therefore the SHA-256 of the component, the name the state
//! directory keeps it under.
//!
//! This module speaks to registries and knows nothing of routes or of the
//! state directory: [`crate::registry`] decides when to pull (once per
//! digest) and where the bytes and manifests are kept
//! ([`crate::registry::store`]). Every network call runs on a
//! current-thread runtime made for it, so callers stay blocking (the
//! registry compiles on blocking threads, never on a worker).
//!
//! Credentials come from `PERCORE_REGISTRY_USERNAME` and
//! `PERCORE_REGISTRY_PASSWORD` when both are set, else from the Docker
//! config file (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`,
//! its `auths`), else none. Registries are spoken to over HTTPS, except
//! those given as insecure ([`InsecureRegistry`], `--insecure-registry`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;
use oci_client::Reference;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use serde::{Deserialize, Serialize};

use crate::engine::sha256_hex;

/// The scheme of a component reference: `oci://REGISTRY/REPO:TAG` or
/// `oci://REGISTRY/REPO@sha256:HEX`.
pub const SCHEME: &str = "oci://";

/// The media type of a wasm artifact's config (CNCF TAG-Runtime).
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";

/// The media type of a wasm artifact's one layer: the component's bytes.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";

/// The user name for every registry (with [`PASSWORD_ENV`]); it takes
/// precedence over the Docker config file.
pub const USERNAME_ENV: &str = "PERCORE_REGISTRY_USERNAME";

/// The password (or token) for every registry, with [`USERNAME_ENV`].
pub const PASSWORD_ENV: &str = "PERCORE_REGISTRY_PASSWORD";

/// How long connecting to a registry may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a registry may send nothing while answering.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a reference could not be parsed, or a registry not pulled from or
/// pushed to. Every message names the reference and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The reference is not `oci://REGISTRY/REPO(:TAG|@sha256:HEX)`.
    #[error(
        "{reference:?} is not a component reference: {detail}; write oci://REGISTRY/REPOSITORY:TAG or oci://REGISTRY/REPOSITORY@sha256:DIGEST (e.g. oci://ghcr.io/you/hello:1.0)"
    )]
    BadReference {
        /// What was given.
        reference: String,
        /// What is wrong with it.
        detail: String,
    },
    /// An `--insecure-registry` value is not `HOST` or `HOST:PORT`.
    #[error(
        "{given:?} is not a registry host: give HOST or HOST:PORT, without a scheme or path (e.g. 127.0.0.1:5000)"
    )]
    BadRegistryHost {
        /// What was given.
        given: String,
    },
    /// The registry could not be reached (down, wrong port, TLS to a
    /// plain-HTTP registry...).
    #[error(
        "cannot reach the registry {registry} for {reference}: {detail}. Check that it is up and the address is right; a registry served over plain HTTP needs --insecure-registry {registry} (config: insecure_registries)"
    )]
    Unreachable {
        /// The reference.
        reference: String,
        /// The registry.
        registry: String,
        /// The transport error.
        detail: String,
    },
    /// The registry refused our credentials (or asked for some).
    #[error(
        "the registry {registry} refused access to {reference}: {detail}. Log in with `docker login {registry}` (percore reads the Docker config file), or set {USERNAME_ENV} and {PASSWORD_ENV}"
    )]
    Unauthorized {
        /// The reference.
        reference: String,
        /// The registry.
        registry: String,
        /// The registry's answer.
        detail: String,
    },
    /// No manifest with that tag or digest.
    #[error(
        "{reference} is not in the registry ({detail}); check the repository, tag and digest (`percore push` prints the digest of what it pushed)"
    )]
    NotFound {
        /// The reference.
        reference: String,
        /// The registry's answer.
        detail: String,
    },
    /// What the registry sent does not hash to the digest asked for.
    #[error(
        "what the registry sent for {reference} does not match its digest ({detail}); nothing was used. The registry or something between is corrupting data"
    )]
    DigestMismatch {
        /// The reference.
        reference: String,
        /// Expected and actual digests.
        detail: String,
    },
    /// The artifact is not a wasm artifact of one component layer.
    #[error(
        "{reference} is not a WebAssembly component artifact: {detail}. Push the component with `percore push FILE.wasm REGISTRY/REPOSITORY:TAG` (or with one layer of media type {WASM_LAYER_MEDIA_TYPE})"
    )]
    NotWasm {
        /// The reference.
        reference: String,
        /// What it is instead.
        detail: String,
    },
    /// The component is larger than this host accepts.
    #[error(
        "the component of {reference} is {size} bytes, above this host's limit of {limit} bytes (max_upload_bytes)"
    )]
    TooLarge {
        /// The reference.
        reference: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Any other failure of the registry or the protocol.
    #[error("the registry failed for {reference}: {detail}")]
    Registry {
        /// The reference.
        reference: String,
        /// What went wrong.
        detail: String,
    },
}

impl OciError {
    /// Whether the registry could not be reached at all (as opposed to
    /// answering no).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, OciError::Unreachable { .. })
    }
}

/// A component reference, `oci://REGISTRY/REPOSITORY` with a tag
/// (`:1.0`), a digest (`@sha256:HEX`), or both (the digest wins). The
/// registry must be named (no implicit Docker Hub).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OciReference {
    reference: Reference,
}

impl OciReference {
    /// Parses `oci://...`; the scheme is required.
    pub fn parse(text: &str) -> Result<OciReference, OciError> {
        let bad = |detail: &str| OciError::BadReference {
            reference: text.to_owned(),
            detail: detail.to_owned(),
        };
        let rest = text
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad("it does not start with oci://"))?;
        OciReference::parse_bare(rest).map_err(|e| match e {
            OciError::BadReference { detail, .. } => bad(&detail),
            other => other,
        })
    }

    /// Parses `REGISTRY/REPOSITORY[:TAG][@DIGEST]`, with or without
    /// `oci://` (what `percore push` takes).
    pub fn parse_bare(text: &str) -> Result<OciReference, OciError> {
        let text = text.strip_prefix(SCHEME).unwrap_or(text);
        let bad = |detail: String| OciError::BadReference {
            reference: text.to_owned(),
            detail,
        };
        let (registry, _) = text
            .split_once('/')
            .ok_or_else(|| bad("it names no registry".into()))?;
        if !(registry.contains('.') || registry.contains(':') || registry == "localhost") {
            return Err(bad(format!(
                "{registry:?} is not a registry host (it has no '.' or ':'); name the registry, e.g. docker.io/{text}"
            )));
        }
        let reference = Reference::try_from(text).map_err(|e| bad(e.to_string()))?;
        if let Some(digest) = reference.digest()
            && sha256_of_digest(digest).is_none()
        {
            return Err(bad(format!(
                "its digest {digest} is not sha256: followed by 64 lower-case hex digits"
            )));
        }
        Ok(OciReference { reference })
    }

    /// The registry (`HOST[:PORT]`).
    pub fn registry(&self) -> &str {
        self.reference.registry()
    }

    /// The digest (`sha256:HEX`), when the reference has one.
    pub fn digest(&self) -> Option<&str> {
        self.reference.digest()
    }

    /// This reference pinned to `digest` (its tag dropped).
    pub fn pinned(&self, digest: &str) -> OciReference {
        OciReference {
            reference: Reference::with_digest(
                self.reference.registry().to_owned(),
                self.reference.repository().to_owned(),
                digest.to_owned(),
            ),
        }
    }
}

impl fmt::Display for OciReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.reference;
        write!(f, "{SCHEME}{}/{}", r.registry(), r.repository())?;
        if let Some(tag) = r.tag() {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = r.digest() {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for OciReference {
    type Err = OciError;

    fn from_str(text: &str) -> Result<Self, OciError> {
        OciReference::parse(text)
    }
}

/// The hex of a `sha256:HEX` digest, when it is one.
pub fn sha256_of_digest(digest: &str) -> Option<&str> {
    digest.strip_prefix("sha256:").filter(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// A registry spoken to over plain HTTP: `HOST` or `HOST:PORT`, given with
/// `--insecure-registry` or the config file's `insecure_registries`. This
/// is the one parser of that value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InsecureRegistry(String);

impl FromStr for InsecureRegistry {
    type Err = OciError;

    fn from_str(given: &str) -> Result<Self, OciError> {
        let ok = !given.is_empty()
            && given
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
            && !given.starts_with([':', '.', '-']);
        if ok {
            Ok(InsecureRegistry(given.to_owned()))
        } else {
            Err(OciError::BadRegistryHost {
                given: given.to_owned(),
            })
        }
    }
}

impl TryFrom<String> for InsecureRegistry {
    type Error = OciError;

    fn try_from(given: String) -> Result<Self, OciError> {
        given.parse()
    }
}

impl From<InsecureRegistry> for String {
    fn from(host: InsecureRegistry) -> String {
        host.0
    }
}

impl fmt::Display for InsecureRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The layer of a wasm artifact, read from its manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WasmLayer {
    /// Its digest, `sha256:HEX` (HEX is the component's SHA-256).
    pub digest: String,
    /// Its size in bytes, as the manifest declares it.
    pub size: u64,
}

/// Reads the one component layer of the manifest `bytes` of `reference`.
/// The config's media type is not checked (artifacts pushed with an empty
/// config serve as well); the layer's is.
pub fn wasm_layer(reference: &OciReference, bytes: &[u8]) -> Result<WasmLayer, OciError> {
    let not_wasm = |detail: String| OciError::NotWasm {
        reference: reference.to_string(),
        detail,
    };
    let manifest: OciImageManifest = serde_json::from_slice(bytes)
        .map_err(|e| not_wasm(format!("its manifest is not an OCI image manifest ({e})")))?;
    let layer = match manifest.layers.as_slice() {
        [layer] => layer,
        layers => {
            return Err(not_wasm(format!(
                "it has {} layers, and a component artifact has one",
                layers.len()
            )));
        }
    };
    if layer.media_type != WASM_LAYER_MEDIA_TYPE {
        return Err(not_wasm(format!(
            "its layer's media type is {}, not {WASM_LAYER_MEDIA_TYPE}",
            layer.media_type
        )));
    }
    if sha256_of_digest(&layer.digest).is_none() {
        return Err(not_wasm(format!(
            "its layer's digest {} is not a sha256 digest",
            layer.digest
        )));
    }
    Ok(WasmLayer {
        digest: layer.digest.clone(),
        size: u64::try_from(layer.size).unwrap_or(0),
    })
}

/// How this host talks to registries.
#[derive(Clone, Debug, Default)]
pub struct RegistryClient {
    /// Registries spoken to over plain HTTP.
    insecure: Vec<InsecureRegistry>,
    /// Largest component pulled, in bytes.
    max_bytes: u64,
}

/// A manifest as the registry sent it (its digest verified).
#[derive(Clone, Debug)]
pub struct Manifest {
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Its digest, `sha256:HEX`.
    pub digest: String,
}

impl RegistryClient {
    /// A client speaking plain HTTP to `insecure` and refusing components
    /// over `max_bytes`.
    pub fn new(insecure: Vec<InsecureRegistry>, max_bytes: u64) -> RegistryClient {
        RegistryClient {
            insecure,
            max_bytes,
        }
    }

    /// Fetches the manifest `reference` names (by digest or tag); when the
    /// reference has a digest, the manifest's bytes are checked against it.
    pub fn manifest(&self, reference: &OciReference) -> Result<Manifest, OciError> {
        let accepted = [OCI_IMAGE_MEDIA_TYPE];
        let (bytes, digest) = self.run(reference, |client, auth| async move {
            client
                .pull_manifest_raw(&reference.reference, &auth, &accepted)
                .await
        })?;
        let actual = format!("sha256:{}", sha256_hex(&bytes));
        let expected = reference.digest().unwrap_or(&digest);
        if actual != expected {
            return Err(OciError::DigestMismatch {
                reference: reference.to_string(),
                detail: format!("expected {expected}, got {actual}"),
            });
        }
        Ok(Manifest {
            bytes: bytes.to_vec(),
            digest: actual,
        })
    }

    /// Fetches `layer` of `reference` (pinned to its manifest's digest),
    /// checking its size against the limit and its bytes against its
    /// digest.
    pub fn layer(&self, reference: &OciReference, layer: &WasmLayer) -> Result<Vec<u8>, OciError> {
        if layer.size > self.max_bytes {
            return Err(OciError::TooLarge {
                reference: reference.to_string(),
                size: layer.size,
                limit: self.max_bytes,
            });
        }
        let descriptor = OciDescriptor {
            media_type: WASM_LAYER_MEDIA_TYPE.into(),
            digest: layer.digest.clone(),
            size: i64::try_from(layer.size).unwrap_or(i64::MAX),
            ..OciDescriptor::default()
        };
        let limit = usize::try_from(layer.size).unwrap_or(usize::MAX);
        let bytes = self.run(reference, |client, auth| async move {
            client
                .store_auth_if_needed(reference.registry(), &auth)
                .await;
            let mut out = Capped {
                bytes: Vec::with_capacity(limit.min(1 << 20)),
                limit,
            };
            client
                .pull_blob(&reference.reference, &descriptor, &mut out)
                .await
                .map(|()| out.bytes)
        })?;
        let actual = format!("sha256:{}", sha256_hex(&bytes));
        if actual != layer.digest || bytes.len() as u64 != layer.size {
            return Err(OciError::DigestMismatch {
                reference: reference.to_string(),
                detail: format!(
                    "layer expected {} ({} bytes), got {actual} ({} bytes)",
                    layer.digest,
                    layer.size,
                    bytes.len()
                ),
            });
        }
        Ok(bytes)
    }

    /// Pushes `component` to `reference` (its tag, `latest` when it has
    /// none) as a wasm artifact whose layer is titled `title` (the file
    /// name other clients pull it as); returns the manifest's digest,
    /// `sha256:HEX`. The caller checks that it is a component.
    pub fn push(
        &self,
        reference: &OciReference,
        component: &[u8],
        title: &str,
    ) -> Result<String, OciError> {
        let layer_digest = format!("sha256:{}", sha256_hex(component));
        let config = serde_json::to_vec(&WasmConfig {
            created: rfc3339(crate::registry::store::unix_now()),
            architecture: "wasm",
            os: "wasip2",
            layer_digests: vec![layer_digest.clone()],
        })
        .expect("the wasm config serialises");
        let config_digest = format!("sha256:{}", sha256_hex(&config));
        let manifest = OciImageManifest {
            schema_version: 2,
            media_type: Some(OCI_IMAGE_MEDIA_TYPE.into()),
            config: OciDescriptor {
                media_type: WASM_CONFIG_MEDIA_TYPE.into(),
                digest: config_digest.clone(),
                size: config.len() as i64,
                ..OciDescriptor::default()
            },
            layers: vec![OciDescriptor {
                media_type: WASM_LAYER_MEDIA_TYPE.into(),
                digest: layer_digest.clone(),
                size: component.len() as i64,
                annotations: Some(BTreeMap::from([(
                    "org.opencontainers.image.title".to_owned(),
                    title.to_owned(),
                )])),
                ..OciDescriptor::default()
            }],
            ..OciImageManifest::default()
        };
        let manifest = serde_json::to_vec(&manifest).expect("the manifest serialises");
        let digest = format!("sha256:{}", sha256_hex(&manifest));
        let component = bytes::Bytes::copy_from_slice(component);
        self.run(reference, |client, auth| async move {
            client
                .store_auth_if_needed(reference.registry(), &auth)
                .await;
            let image = &reference.reference;
            // Asks for a push token (and so checks the credentials) before
            // any upload.
            client
                .auth(image, &auth, oci_client::RegistryOperation::Push)
                .await?;
            client.push_blob(image, component, &layer_digest).await?;
            client.push_blob(image, config, &config_digest).await?;
            let content_type = OCI_IMAGE_MEDIA_TYPE.parse().expect("a valid header value");
            client
                .push_manifest_raw(image, manifest, content_type)
                .await
                .map(drop)
        })?;
        Ok(digest)
    }

    /// Runs `call` with a client and the credentials for `reference`'s
    /// registry, on a runtime made for it, and names the reference in its
    /// error.
    fn run<T, F>(
        &self,
        reference: &OciReference,
        call: impl FnOnce(oci_client::Client, RegistryAuth) -> F,
    ) -> Result<T, OciError>
    where
        F: Future<Output = Result<T, OciDistributionError>>,
    {
        install_crypto_provider();
        let registry = reference.registry().to_owned();
        let protocol = if self.insecure.iter().any(|h| h.0 == registry) {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| OciError::Registry {
                reference: reference.to_string(),
                detail: format!("cannot start a runtime: {e}"),
            })?;
        let auth = credentials(&registry);
        let result = runtime.block_on(async move {
            let client = oci_client::Client::new(ClientConfig {
                protocol,
                connect_timeout: Some(CONNECT_TIMEOUT),
                read_timeout: Some(READ_TIMEOUT),
                ..ClientConfig::default()
            });
            call(client, auth).await
        });
        result.map_err(|e| classify(reference, e))
    }
}

/// A buffer that refuses bytes past `limit`: a registry that sends more
/// than the manifest declared is cut off there, not buffered.
struct Capped {
    bytes: Vec<u8>,
    limit: usize,
}

impl tokio::io::AsyncWrite for Capped {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.bytes.len() + buf.len() > this.limit {
            return std::task::Poll::Ready(Err(std::io::Error::other(format!(
                "the registry sent more than the {} bytes the manifest declares",
                this.limit
            ))));
        }
        this.bytes.extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// The config blob of a wasm artifact (CNCF TAG-Runtime, `v0`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WasmConfig {
    created: String,
    architecture: &'static str,
    os: &'static str,
    layer_digests: Vec<String>,
}

/// `secs` since the Unix epoch as RFC 3339 (`2026-12-02T00:35:00Z`).
fn rfc3339(secs: u64) -> String {
    let t = percore_httpkit::CivilTime::from_unix(secs);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// reqwest is built without a default TLS provider (see the workspace's
/// Cargo.toml); this installs rustls's `ring` one, once.
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only when one is installed already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Turns the client's error into ours, naming `reference`.
fn classify(reference: &OciReference, error: OciDistributionError) -> OciError {
    let name = reference.to_string();
    let registry = reference.registry().to_owned();
    let detail = error_chain(&error);
    match &error {
        OciDistributionError::RequestError(e) if e.is_connect() || e.is_timeout() => {
            OciError::Unreachable {
                reference: name,
                registry,
                detail,
            }
        }
        OciDistributionError::RequestError(e) if e.is_request() => OciError::Unreachable {
            reference: name,
            registry,
            detail,
        },
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_)
        | OciDistributionError::ServerError {
            code: 401 | 403, ..
        } => OciError::Unauthorized {
            reference: name,
            registry,
            detail,
        },
        OciDistributionError::DigestError(_) => OciError::DigestMismatch {
            reference: name,
            detail,
        },
        OciDistributionError::ImageManifestNotFoundError(_) => OciError::NotFound {
            reference: name,
            detail,
        },
        OciDistributionError::RegistryError { envelope, .. }
            if envelope
                .errors
                .iter()
                .any(|e| matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied)) =>
        {
            OciError::Unauthorized {
                reference: name,
                registry,
                detail,
            }
        }
        OciDistributionError::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|e| {
                matches!(
                    e.code,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NotFound
                )
            }) =>
        {
            OciError::NotFound {
                reference: name,
                detail,
            }
        }
        OciDistributionError::ServerError { code: 404, .. } => OciError::NotFound {
            reference: name,
            detail,
        },
        OciDistributionError::UnsupportedMediaTypeError(_)
        | OciDistributionError::ManifestParsingError(_)
        | OciDistributionError::VersionedParsingError(_) => OciError::NotWasm {
            reference: name,
            detail,
        },
        _ => OciError::Registry {
            reference: name,
            detail,
        },
    }
}

/// `error` and its sources, joined by `: `.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let next = e.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = e.source();
    }
    text
}

/// The credentials for `registry`: from [`USERNAME_ENV`] and
/// [`PASSWORD_ENV`] when both are set, else from the Docker config file,
/// else anonymous.
pub fn credentials(registry: &str) -> RegistryAuth {
    if let (Ok(user), Ok(password)) = (std::env::var(USERNAME_ENV), std::env::var(PASSWORD_ENV)) {
        return RegistryAuth::Basic(user, password);
    }
    let Some(path) = docker_config_path() else {
        return RegistryAuth::Anonymous;
    };
    match std::fs::read(&path) {
        Ok(bytes) => match docker_config_auth(&bytes, registry) {
            Ok(Some(auth)) => auth,
            Ok(None) => RegistryAuth::Anonymous,
            Err(detail) => {
                tracing::warn!(
                    file = %path.display(),
                    "ignoring the Docker config file's credentials for {registry}: {detail}"
                );
                RegistryAuth::Anonymous
            }
        },
        Err(_) => RegistryAuth::Anonymous,
    }
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker/config.json"))
}

/// The part of a Docker config file percore reads.
#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
}

/// One entry of `auths`.
#[derive(Deserialize)]
struct DockerAuth {
    /// `base64(user:password)`.
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    /// An OAuth2 refresh token, used as a bearer token.
    identitytoken: Option<String>,
}

/// The credentials a Docker config file (`bytes`) holds for `registry`;
/// its `auths` keys may carry a scheme and a path
/// (`https://index.docker.io/v1/`).
fn docker_config_auth(bytes: &[u8], registry: &str) -> Result<Option<RegistryAuth>, String> {
    let config: DockerConfig = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let host_of = |key: &str| {
        let key = key
            .strip_prefix("https://")
            .or_else(|| key.strip_prefix("http://"))
            .unwrap_or(key);
        key.split('/').next().unwrap_or(key).to_owned()
    };
    let Some(entry) = config
        .auths
        .iter()
        .find(|(key, _)| host_of(key) == registry)
        .map(|(_, entry)| entry)
    else {
        return Ok(None);
    };
    if let Some(encoded) = &entry.auth
        && !encoded.is_empty()
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|e| format!("its auth for {registry} is not base64 ({e})"))?;
        let text = String::from_utf8(decoded)
            .map_err(|_| format!("its auth for {registry} is not UTF-8"))?;
        let (user, password) = text
            .split_once(':')
            .ok_or_else(|| format!("its auth for {registry} is not USER:PASSWORD"))?;
        return Ok(Some(RegistryAuth::Basic(user.into(), password.into())));
    }
    if let Some(token) = &entry.identitytoken {
        return Ok(Some(RegistryAuth::Bearer(token.clone())));
    }
    if let (Some(user), Some(password)) = (&entry.username, &entry.password) {
        return Ok(Some(RegistryAuth::Basic(user.clone(), password.clone())));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

    #[test]
    fn references() {
        let r = OciReference::parse("oci://127.0.0.1:5000/hello:1.0").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.digest(), None);
        assert_eq!(r.to_string(), "oci://127.0.0.1:5000/hello:1.0");
        let pinned = r.pinned(DIGEST);
        assert_eq!(
            pinned.to_string(),
            format!("oci://127.0.0.1:5000/hello@{DIGEST}")
        );
        assert_eq!(OciReference::parse(&pinned.to_string()).unwrap(), pinned);
        let nested = OciReference::parse("oci://ghcr.io/a/b/c:v").unwrap();
        assert_eq!(nested.to_string(), "oci://ghcr.io/a/b/c:v");
        assert_eq!(
            OciReference::parse_bare("localhost/x:1")
                .unwrap()
                .registry(),
            "localhost"
        );
        for bad in [
            "127.0.0.1:5000/hello:1.0",
            "oci://hello:1.0",
            "oci://user/hello",
            "oci://ghcr.io/x@sha256:abc",
            "oci://ghcr.io/X Y",
        ] {
            let err = OciReference::parse(bad).unwrap_err();
            assert!(matches!(err, OciError::BadReference { .. }), "{bad}: {err}");
            assert!(err.to_string().contains("oci://REGISTRY"), "{err}");
        }
    }

    #[test]
    fn insecure_registry_hosts() {
        assert_eq!(
            "127.0.0.1:5000"
                .parse::<InsecureRegistry>()
                .unwrap()
                .to_string(),
            "127.0.0.1:5000"
        );
        assert!("registry.local".parse::<InsecureRegistry>().is_ok());
        for bad in ["", "http://x:1", "x/y", ":5000"] {
            assert!(bad.parse::<InsecureRegistry>().is_err(), "{bad}");
        }
        let parsed: Vec<InsecureRegistry> = serde_json::from_str(r#"["a.b:1"]"#).unwrap();
        assert_eq!(parsed[0].to_string(), "a.b:1");
        assert!(serde_json::from_str::<Vec<InsecureRegistry>>(r#"["a/b"]"#).is_err());
    }

    #[test]
    fn manifests_of_wasm_artifacts() {
        let r = OciReference::parse("oci://r.io/x:1").unwrap();
        let manifest = |layers: &str| {
            format!(
                r#"{{"schemaVersion": 2, "mediaType": "{OCI_IMAGE_MEDIA_TYPE}",
                   "config": {{"mediaType": "{WASM_CONFIG_MEDIA_TYPE}", "digest": "{DIGEST}", "size": 2}},
                   "layers": [{layers}]}}"#
            )
        };
        let layer =
            |media: &str| format!(r#"{{"mediaType": "{media}", "digest": "{DIGEST}", "size": 7}}"#);
        let ok = wasm_layer(&r, manifest(&layer(WASM_LAYER_MEDIA_TYPE)).as_bytes()).unwrap();
        assert_eq!(
            ok,
            WasmLayer {
                digest: DIGEST.into(),
                size: 7
            }
        );
        let tar = wasm_layer(
            &r,
            manifest(&layer("application/vnd.oci.image.layer.v1.tar")).as_bytes(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            tar.contains("media type") && tar.contains("oci://r.io/x:1"),
            "{tar}"
        );
        let two = format!(
            "{},{}",
            layer(WASM_LAYER_MEDIA_TYPE),
            layer(WASM_LAYER_MEDIA_TYPE)
        );
        let err = wasm_layer(&r, manifest(&two).as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("2 layers"), "{err}");
        assert!(wasm_layer(&r, b"not json").is_err());
    }

    #[test]
    fn docker_config_credentials() {
        let auth = base64::engine::general_purpose::STANDARD.encode("me:secret");
        let config = format!(
            r#"{{"auths": {{"https://r.io/v1/": {{"auth": "{auth}"}},
                           "t.io": {{"identitytoken": "tok"}},
                           "bad.io": {{"auth": "!!"}}}},
                "credsStore": "desktop"}}"#
        );
        let get = |registry| docker_config_auth(config.as_bytes(), registry);
        assert!(
            matches!(get("r.io"), Ok(Some(RegistryAuth::Basic(u, p))) if u == "me" && p == "secret")
        );
        assert!(matches!(get("t.io"), Ok(Some(RegistryAuth::Bearer(t))) if t == "tok"));
        assert!(matches!(get("other.io"), Ok(None)));
        assert!(get("bad.io").is_err());
        assert!(docker_config_auth(b"{\"auths\": 1}", "r.io").is_err());
    }

    #[test]
    fn layers_are_cut_off_at_their_declared_size() {
        use tokio::io::AsyncWriteExt as _;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut out = Capped {
                bytes: Vec::new(),
                limit: 4,
            };
            out.write_all(b"abcd").await.unwrap();
            let err = out.write_all(b"e").await.unwrap_err().to_string();
            assert!(err.contains("more than the 4 bytes"), "{err}");
            assert_eq!(out.bytes, b"abcd");
        });
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
