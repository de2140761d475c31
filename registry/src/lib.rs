//! berth-registry: the OCI distribution client (pull, push, auth, Docker Hub naming, retries).
//! Not implemented yet: see the registry issue.
