//! berth-store: the local image store (an OCI image layout of sha256 blobs, refs, unpacked layer
//! snapshots, deterministic layer tarballs, safe extraction, the build-cache index and GC).
//! Not implemented yet: see the store issue.
