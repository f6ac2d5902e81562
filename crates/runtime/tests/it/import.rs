//! Importing `docker save` and OCI layout archives, then running what was imported.

use crate::{Node, block_on};
use runtime::container::wait_stopped;
use runtime::import::{ImportError, import_archive};
use runtime::oci::Platform;
use runtime::testing::busybox_image;
use std::io::Write;
use std::time::Duration;

pub fn docker_archive_and_oci_layout() {
    block_on(async {
        let node = Node::new();
        let image = busybox_image();
        let platform = Platform::host();

        let docker = image.docker_archive("example.com/tools/busybox:1.0");
        let imported = import_archive(&node.store, &docker[..], &platform).unwrap();
        assert_eq!(imported.len(), 1);
        let from_docker = &imported[0];
        assert_eq!(from_docker.name, "example.com/tools/busybox:1.0");
        assert_eq!(from_docker.config, image.config.digest, "the image ID survives the round trip");
        assert_eq!(from_docker.diff_ids, image.diff_ids);

        // An OCI layout, gzip-compressed as a whole, with a short name.
        let oci = image.oci_archive("busybox:oci");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&oci).unwrap();
        let imported = import_archive(&node.store, &gz.finish().unwrap()[..], &platform).unwrap();
        assert_eq!(imported[0].name, "docker.io/library/busybox:oci");
        assert_eq!(imported[0].digest, image.manifest.digest);

        let names: Vec<String> = node.store.list().unwrap().into_iter().map(|i| i.name).collect();
        assert_eq!(names, ["docker.io/library/busybox:oci", "example.com/tools/busybox:1.0"]);

        // The docker archive's uncompressed layers unpack and run.
        let options = node.bundle("imported", from_docker, &["echo", "imported"], |_| {});
        node.start("imported", &options).await;
        let state = wait_stopped(&node.runc, "imported", Duration::from_secs(30)).await.unwrap();
        assert_eq!(state.exit.unwrap().code, 0);
        assert_eq!(node.log_lines("imported"), ["stdout imported"]);

        // Not an image archive at all.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        b.append_data(&mut h, "hello.txt", &b"hi"[..]).unwrap();
        let junk = b.into_inner().unwrap();
        assert!(matches!(import_archive(&node.store, &junk[..], &platform), Err(ImportError::UnknownFormat)));
        // A truncated archive is an error, not a panic.
        assert!(import_archive(&node.store, &docker[..docker.len() / 3], &platform).is_err());
    })
}
