//! berth-builder: lowers a parsed Dockerfile into a DAG of stages and steps, computes
//! content-addressed cache keys, schedules stages in parallel and commits layers through the store.
//! Not implemented yet: see the builder issue.
