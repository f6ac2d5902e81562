//! Pulling from a real registry: digests, indexes, errors, authentication, mirrors, TLS.

use crate::{Node, block_on};
use runtime::oci::{ImageConfig, Platform};
use runtime::registries::{Credentials, RegistryConfig};
use runtime::testing::{
    ImageBuilder, LayerCompression, Registry, RegistryAuth, RegistryOptions, busybox_image, busybox_layer,
};
use runtime::{PullError, Puller, Reference};
use std::time::Instant;

fn reference(s: &str) -> Reference {
    Reference::parse_normalized(s).unwrap()
}

pub fn pull_verifies_and_stores() {
    block_on(async {
        let registry = Registry::start();
        let node = Node::new();
        let image = busybox_image();
        registry.push("test/busybox", "1", &image).await.unwrap();
        let puller = Puller::new(node.store.clone(), RegistryConfig::default());
        let r = reference(&format!("{}/test/busybox:1", registry.host));
        let t = Instant::now();
        let pulled = puller.pull(&r, &[]).await.unwrap();
        let pull_time = t.elapsed();
        assert_eq!(pulled.name, r.to_string());
        assert_eq!(pulled.digest, image.manifest.digest, "the repo digest is the manifest's");
        assert_eq!(pulled.config, image.config.digest);
        assert_eq!(pulled.diff_ids, image.diff_ids);
        for layer in &image.layers {
            assert!(node.store.has_blob(&layer.digest));
        }
        assert_eq!(node.store.get(&r.to_string()).unwrap().as_ref(), Some(&pulled));
        // A second pull (policy Always) only asks for the manifest.
        let t = Instant::now();
        let again = puller.pull(&r, &[]).await.unwrap();
        assert_eq!(again, pulled);
        let repull_time = t.elapsed();
        // By digest too.
        let by_digest = reference(&format!("{}/test/busybox@{}", registry.host, image.manifest.digest));
        assert_eq!(puller.pull(&by_digest, &[]).await.unwrap().digest, image.manifest.digest);
        // Unpack time, for the record.
        let t = Instant::now();
        node.snapshots.prepare(&node.store, &pulled).unwrap();
        let unpack_time = t.elapsed();
        let size: u64 = image.layers.iter().map(|l| l.bytes.len() as u64).sum();
        println!(
            "    figures: pull of a {:.1} MiB busybox image from a loopback registry {:.1} ms (again, present: {:.1} ms); unpack {:.1} ms",
            size as f64 / (1 << 20) as f64,
            pull_time.as_secs_f64() * 1e3,
            repull_time.as_secs_f64() * 1e3,
            unpack_time.as_secs_f64() * 1e3
        );
    })
}

pub fn index_resolves_to_this_platform() {
    block_on(async {
        let registry = Registry::start();
        let node = Node::new();
        let here = busybox_image();
        let elsewhere = ImageBuilder::new()
            .layer(
                runtime::testing::LayerBuilder::new().file("hello", 0o644, b"s390x").finish(),
                LayerCompression::Gzip,
            )
            .platform(Platform { architecture: "s390x".into(), os: "linux".into(), variant: None, os_version: None })
            .docker_media_types()
            .build();
        let index = registry.push_index("multi/busybox", "latest", &[&elsewhere, &here]).await.unwrap();
        let puller = Puller::new(node.store.clone(), RegistryConfig::default());
        let pulled = puller.pull(&reference(&format!("{}/multi/busybox", registry.host)), &[]).await.unwrap();
        assert_eq!(pulled.digest, index.digest, "the repo digest is the index's");
        assert_eq!(pulled.manifest, here.manifest.digest, "the manifest is this platform's");
        assert!(!node.store.has_blob(&elsewhere.layers[0].digest), "other platforms' layers are not fetched");
        // Asking for a platform the index lacks is a clear error.
        let arm = Puller::new(node.store.clone(), RegistryConfig::default()).with_platform(Platform {
            architecture: "riscv64".into(),
            os: "linux".into(),
            variant: None,
            os_version: None,
        });
        let err = arm.pull(&reference(&format!("{}/multi/busybox", registry.host)), &[]).await.unwrap_err();
        assert!(err.to_string().contains("no manifest for platform linux/riscv64"), "{err}");
    })
}

pub fn missing_image_is_not_found() {
    block_on(async {
        let registry = Registry::start();
        let node = Node::new();
        let puller = Puller::new(node.store.clone(), RegistryConfig::default());
        let err = puller.pull(&reference(&format!("{}/no/such:image", registry.host)), &[]).await.unwrap_err();
        assert!(err.is_not_found(), "{err}");
        assert!(err.to_string().contains("no/such:image: not found"), "{err}");
        // A registry that is not there says so.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let err = puller.pull(&reference(&format!("127.0.0.1:{port}/x")), &[]).await.unwrap_err();
        assert!(matches!(err, PullError::Transport(_)), "{err}");
        assert!(err.to_string().to_lowercase().contains("connect"), "{err}");
    })
}

pub fn basic_auth() {
    block_on(async {
        let registry = Registry::start_with(RegistryOptions { auth: RegistryAuth::Basic, tls: false });
        let node = Node::new();
        registry.push("private/busybox", "v1", &busybox_image()).await.unwrap();
        let r = reference(&format!("{}/private/busybox:v1", registry.host));
        let puller = Puller::new(node.store.clone(), RegistryConfig::default());
        let err = puller.pull(&r, &[]).await.unwrap_err();
        assert!(matches!(err, PullError::Unauthorized { .. }), "{err}");
        let wrong = Credentials::basic("alice", "wrong");
        let err = puller.pull(&r, std::slice::from_ref(&wrong)).await.unwrap_err();
        assert!(matches!(err, PullError::Unauthorized { .. }), "{err}");
        // Pull secrets are tried in turn.
        let right = Credentials::basic("alice", "secret");
        puller.pull(&r, &[wrong, right]).await.unwrap();
        // Or the credentials come from registries.yaml.
        let other = Node::new();
        let config = RegistryConfig::from_yaml(&format!(
            "configs:\n  \"{}\":\n    auth:\n      username: alice\n      password: secret\n",
            registry.host
        ))
        .unwrap();
        Puller::new(other.store.clone(), config).pull(&r, &[]).await.unwrap();
    })
}

pub fn bearer_token_auth() {
    block_on(async {
        let registry = Registry::start_with(RegistryOptions { auth: RegistryAuth::Token, tls: false });
        let node = Node::new();
        let image = busybox_image();
        registry.push("tokens/busybox", "v1", &image).await.unwrap();
        let r = reference(&format!("{}/tokens/busybox:v1", registry.host));
        let puller = Puller::new(node.store.clone(), RegistryConfig::default());
        let err = puller.pull(&r, &[]).await.unwrap_err();
        assert!(matches!(err, PullError::Unauthorized { .. }), "anonymous: {err}");
        let pulled = puller.pull(&r, &[Credentials::basic("alice", "secret")]).await.unwrap();
        assert_eq!(pulled.digest, image.manifest.digest);
    })
}

pub fn mirror_serves_docker_io_with_rewrite() {
    block_on(async {
        let registry = Registry::start();
        let node = Node::new();
        let image = busybox_image();
        registry.push("mirrored/busybox", "latest", &image).await.unwrap();
        // An air-gapped node: docker.io is served by the local registry, and
        // `library/*` lives under `mirrored/` there.
        let config = RegistryConfig::from_yaml(&format!(
            "mirrors:\n  docker.io:\n    endpoint:\n      - \"http://{}\"\n    rewrite:\n      \"^library/(.*)\": \"mirrored/$1\"\n",
            registry.host
        ))
        .unwrap();
        let puller = Puller::new(node.store.clone(), config);
        let pulled = puller.pull(&reference("busybox"), &[]).await.unwrap();
        assert_eq!(pulled.name, "docker.io/library/busybox:latest");
        assert_eq!(pulled.digest, image.manifest.digest);
    })
}

pub fn https_with_a_custom_ca() {
    block_on(async {
        let registry = Registry::start_with(RegistryOptions { auth: RegistryAuth::None, tls: true });
        let node = Node::new();
        let image = ImageBuilder::new()
            .layer(busybox_layer().finish(), LayerCompression::Zstd)
            .config(ImageConfig { cmd: Some(vec!["sh".into()]), ..ImageConfig::default() })
            .build();
        registry.push("secure/busybox", "v1", &image).await.unwrap();
        let r = reference(&format!("{}/secure/busybox:v1", registry.host));
        let ca = registry.ca_file.clone().unwrap();
        // Without the CA the certificate is not trusted.
        let untrusted = RegistryConfig::from_yaml(&format!(
            "configs:\n  \"{}\":\n    tls:\n      insecure_skip_verify: false\n",
            registry.host
        ))
        .unwrap();
        let err = Puller::new(node.store.clone(), untrusted).pull(&r, &[]).await.unwrap_err();
        assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");
        let trusted = RegistryConfig::from_yaml(&format!(
            "configs:\n  \"{}\":\n    tls:\n      ca_file: {}\n",
            registry.host,
            ca.display()
        ))
        .unwrap();
        let pulled = Puller::new(node.store.clone(), trusted).pull(&r, &[]).await.unwrap();
        assert_eq!(pulled.digest, image.manifest.digest);
        // Skipping verification works too.
        let other = Node::new();
        let insecure = RegistryConfig::from_yaml(&format!(
            "configs:\n  \"{}\":\n    tls:\n      insecure_skip_verify: true\n",
            registry.host
        ))
        .unwrap();
        Puller::new(other.store.clone(), insecure).pull(&r, &[]).await.unwrap();
    })
}
