//! Parser throughput on generated Dockerfiles of 1k, 10k and 100k
//! instructions: the time per byte should stay flat as the file grows.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::fmt::Write as _;
use std::time::Duration;

/// A Dockerfile of `n` instructions with the mix a real one has: stages,
/// continued RUNs, heredocs, COPY with flags, ENV/LABEL pairs, exec forms.
fn dockerfile(n: usize) -> String {
    let mut s = String::from("# syntax=docker/dockerfile:1\nARG BASE=busybox:latest\n");
    let mut i = 0;
    while i < n {
        let k = i % 10;
        let _ = match k {
            0 => writeln!(s, "FROM ${{BASE}} AS stage{i}"),
            1 => writeln!(
                s,
                "RUN set -e; \\\n    echo step {i} > /tmp/f{i} && \\\n    cat /tmp/f{i}"
            ),
            2 => writeln!(
                s,
                "COPY --chown=1000:1000 --chmod=0644 src/{i}.txt /app/{i}/"
            ),
            3 => writeln!(s, "ENV KEY{i}=\"value {i}\" OTHER{i}=plain\\ text"),
            4 => writeln!(s, "LABEL org.example.step{i}=\"{i}\""),
            5 => writeln!(
                s,
                "RUN --mount=type=cache,target=/var/cache/{i} [\"sh\", \"-c\", \"echo {i}\"]"
            ),
            6 => writeln!(
                s,
                "RUN <<EOF\necho heredoc {i}\necho ${{KEY{i}:-default}}\nEOF"
            ),
            7 => writeln!(s, "WORKDIR /app/{i}"),
            8 => writeln!(
                s,
                "# a comment about step {i}\nEXPOSE {}/tcp",
                1000 + i % 60000
            ),
            _ => writeln!(s, "CMD [\"/bin/app\", \"--step\", \"{i}\"]"),
        };
        i += 1;
    }
    s
}

fn bench_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    for n in [1_000, 10_000, 100_000] {
        let text = dockerfile(n);
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::new("typed", n), &text, |b, t| {
            b.iter(|| berth_grammar::parse(t).expect("benchmark input parses"))
        });
        group.bench_with_input(BenchmarkId::new("syntax", n), &text, |b, t| {
            b.iter(|| berth_grammar::parse_syntax(t).expect("benchmark input parses"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
