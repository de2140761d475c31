//! docker's networks as a user drives them: bridge networks through
//! netavark, names by DNS on user-defined networks, `--internal`, isolation
//! between networks, connect and disconnect, static addresses, published
//! ports, and what a killed supervisor leaves. Real containers on the
//! busybox image, as root (CI runs as root, with netavark installed).

#[path = "../../testdata/support/busybox.rs"]
mod busybox;

#[path = "../../testdata/support/containers.rs"]
mod containers;

use busybox::berth;
use containers::{
    err, fails, free_port, inspect, ok, out, root_store, run_detached, sigkill, supervisor_of,
    wait_until,
};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// iptables and aardvark-dns are what bridge networks need (testdata/test.sh
/// installs them).
fn network_tools_here() -> bool {
    let here = ["/usr/sbin/iptables-restore", "/usr/lib/podman/aardvark-dns"]
        .iter()
        .all(|p| Path::new(p).exists());
    assert!(
        here,
        "iptables and aardvark-dns are not installed (testdata/test.sh installs them)"
    );
    here
}

/// A busybox store for a test of networks, when containers and netavark
/// can run here.
fn network_store() -> Option<(containers::TestStore, std::path::PathBuf)> {
    let store = root_store()?;
    network_tools_here().then_some(store)
}

/// `sh -c SCRIPT` in a new `--rm` container with `flags`; its output and
/// whether it succeeded.
fn probe(root: &Path, flags: &[&str], script: &str) -> (bool, String) {
    let mut args = vec!["run", "--rm"];
    args.extend(flags);
    args.extend(["busybox", "sh", "-c", script]);
    let o = berth(root, &args);
    (o.status.success(), format!("{}{}", out(&o), err(&o)))
}

fn exec(root: &Path, name: &str, script: &str) -> (bool, String) {
    let o = berth(root, &["exec", name, "sh", "-c", script]);
    (o.status.success(), format!("{}{}", out(&o), err(&o)))
}

fn endpoint(root: &Path, ctr: &str, net: &str) -> Value {
    inspect(root, ctr)["NetworkSettings"]["Networks"][net].clone()
}

fn ip_of(root: &Path, ctr: &str, net: &str) -> String {
    endpoint(root, ctr, net)["IPAddress"]
        .as_str()
        .unwrap()
        .to_string()
}

fn network(root: &Path, name: &str) -> Value {
    let v: Value = serde_json::from_str(&ok(root, &["network", "inspect", name])).unwrap();
    v[0].clone()
}

/// The machine's own IPv4 address (not one of the bridges tests make).
fn host_address() -> String {
    containers::host_address().expect("this machine has an address outside loopback")
}

fn iptables_rules() -> String {
    let mut all = String::new();
    for table in ["filter", "nat"] {
        let o = Command::new("iptables")
            .args(["-t", table, "-S"])
            .output()
            .unwrap();
        all.push_str(&out(&o));
        all.push('\n');
    }
    all
}

fn links() -> String {
    out(&Command::new("ip").args(["-o", "link"]).output().unwrap())
}

#[test]
fn containers_on_one_network_find_each_other_and_nothing_crosses_networks() {
    let Some((_tmp, root)) = network_store() else {
        return;
    };
    ok(&root, &["network", "create", "backend"]);
    ok(&root, &["network", "create", "elsewhere"]);
    let id = run_detached(
        &root,
        "db",
        &[
            "--network",
            "backend",
            "--network-alias",
            "store",
            "--hostname",
            "dbhost",
        ],
        "busybox",
        &["sleep", "300"],
    );
    let ip = ip_of(&root, "db", "backend");
    let names = format!("db store dbhost {} db.backend", &id[..12]);
    let script = format!(
        "for n in {names}; do nslookup $n | grep -q 'Address: {ip}' && echo $n; done; ping -c1 -W2 db >/dev/null && echo ping"
    );
    let (_, seen) = probe(&root, &["--network", "backend"], &script);
    assert_eq!(seen, format!("{}\nping", names.replace(' ', "\n")));

    // Another network sees neither the names nor the address.
    let (reached, said) = probe(
        &root,
        &["--network", "elsewhere"],
        &format!("nslookup db | grep -q 'Address: {ip}' && echo named; ping -c1 -W1 {ip} && echo reached; true"),
    );
    assert!(reached, "{said}");
    assert!(
        !said.contains("named") && !said.contains("reached"),
        "{said}"
    );
    // Names outside keep resolving on a network with a way out: the
    // container's resolver is the network's DNS server, which asks the host's.
    let (_, resolv) = probe(&root, &["--network", "backend"], "cat /etc/resolv.conf");
    let gateway = network(&root, "backend")["IPAM"]["Config"][0]["Gateway"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        resolv.contains(&format!("nameserver {gateway}")),
        "{resolv}"
    );
}

#[test]
fn internal_networks_reach_each_other_and_the_gateway_but_not_the_outside() {
    let Some((_tmp, root)) = network_store() else {
        return;
    };
    let host = host_address();
    ok(&root, &["network", "create", "--internal", "inner"]);
    ok(&root, &["network", "create", "outer"]);
    run_detached(
        &root,
        "peer",
        &["--network", "inner"],
        "busybox",
        &["sleep", "300"],
    );
    let gateway = network(&root, "inner")["IPAM"]["Config"][0]["Gateway"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(network(&root, "inner")["Internal"], true);
    let (_, said) = probe(
        &root,
        &["--network", "inner"],
        &format!(
            "ping -c1 -W2 peer >/dev/null && echo peer; ping -c1 -W2 {gateway} >/dev/null && echo gateway; \
             ip route | grep -q default && echo route; ping -c1 -W1 {host} >/dev/null 2>&1 && echo outside; true"
        ),
    );
    assert_eq!(said, "peer\ngateway");
    // The same from a network with a way out reaches the host.
    let (_, said) = probe(
        &root,
        &["--network", "outer"],
        &format!("ip route | grep -q default && echo route; ping -c1 -W2 {host} >/dev/null && echo outside"),
    );
    assert_eq!(said, "route\noutside");
}

#[test]
fn the_default_bridge_has_addresses_but_no_names() {
    let Some((_tmp, root)) = network_store() else {
        return;
    };
    run_detached(&root, "first", &[], "busybox", &["sleep", "300"]);
    let e = endpoint(&root, "first", "bridge");
    let ip = e["IPAddress"].as_str().unwrap().to_string();
    assert!(!ip.is_empty(), "{e}");
    assert_eq!(
        e["IPPrefixLen"],
        network(&root, "bridge")["IPAM"]["Config"][0]["Subnet"]
            .as_str()
            .unwrap()
            .split('/')
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
    );
    let gateway = e["Gateway"].as_str().unwrap().to_string();
    let (_, said) = probe(
        &root,
        &[],
        &format!(
            "ping -c1 -W2 {ip} >/dev/null && echo address; grep -q 'nameserver {gateway}' /etc/resolv.conf && echo dns; \
             grep -qw first /etc/hosts && echo hosts; true"
        ),
    );
    assert_eq!(said, "address");
    // Aliases and addresses of one's own are for user-defined networks.
    assert!(fails(
        &root,
        &["run", "--rm", "--network-alias", "x", "busybox", "true"]
    )
    .contains("network-scoped alias is supported only for containers in user defined networks"));
    assert!(fails(
        &root,
        &["run", "--rm", "--ip", "172.17.0.9", "busybox", "true"]
    )
    .contains("user specified IP address is supported on user defined networks only"));
    // --network none and host are as docker's.
    assert_eq!(
        probe(&root, &["--network", "none"], "ls /sys/class/net").1,
        "lo"
    );
    let v = inspect(&root, "first");
    assert_eq!(v["HostConfig"]["NetworkMode"], "default");
}

#[test]
fn a_running_container_is_connected_and_disconnected_at_once() {
    let Some((_tmp, root)) = network_store() else {
        return;
    };
    ok(&root, &["network", "create", "front"]);
    ok(&root, &["network", "create", "back"]);
    let web = run_detached(
        &root,
        "web",
        &["--network", "front"],
        "busybox",
        &["sleep", "300"],
    );
    run_detached(
        &root,
        "client",
        &["--network", "back"],
        "busybox",
        &["sleep", "300"],
    );
    let lookup =
        "nslookup www >/dev/null 2>&1 && echo www; ping -c1 -W1 web >/dev/null 2>&1 && echo web; true";
    assert_eq!(exec(&root, "client", lookup).1, "");

    ok(
        &root,
        &["network", "connect", "--alias", "www", "back", "web"],
    );
    let ip = ip_of(&root, "web", "back");
    assert!(exec(&root, "web", "ip addr show eth1")
        .1
        .contains(&format!("inet {ip}/")));
    assert_eq!(exec(&root, "client", lookup).1, "www\nweb");
    let members = network(&root, "back")["Containers"].clone();
    assert_eq!(members[&web]["Name"], "web");
    assert_eq!(
        members[&web]["IPv4Address"]
            .as_str()
            .unwrap()
            .split('/')
            .next(),
        Some(ip.as_str())
    );
    let again = fails(&root, &["network", "connect", "back", "web"]);
    assert!(again.contains("already exists in network back"), "{again}");

    ok(&root, &["network", "disconnect", "back", "web"]);
    assert_eq!(exec(&root, "client", lookup).1, "");
    assert!(!exec(&root, "web", "ip link show eth1").0);
    assert!(endpoint(&root, "web", "back").is_null());
    assert!(network(&root, "back")["Containers"].get(&web).is_none());
    let not = fails(&root, &["network", "disconnect", "back", "web"]);
    assert!(not.contains("is not connected to network back"), "{not}");

    // A stopped container is connected for its next start.
    ok(&root, &["stop", "-t", "0", "web"]);
    ok(&root, &["network", "connect", "back", "web"]);
    ok(&root, &["start", "web"]);
    assert_eq!(exec(&root, "client", lookup).1, "web");
}

#[test]
fn static_addresses_are_kept_across_restarts_and_never_given_twice() {
    let Some((_tmp, root)) = network_store() else {
        return;
    };
    ok(
        &root,
        &[
            "network",
            "create",
            "--subnet",
            "10.123.0.0/24",
            "--gateway",
            "10.123.0.254",
            "fixed",
        ],
    );
    let v = network(&root, "fixed");
    assert_eq!(v["IPAM"]["Config"][0]["Subnet"], "10.123.0.0/24");
    assert_eq!(v["IPAM"]["Config"][0]["Gateway"], "10.123.0.254");
    run_detached(
        &root,
        "aa",
        &["--network", "fixed", "--ip", "10.123.0.50"],
        "busybox",
        &["sleep", "300"],
    );
    assert_eq!(ip_of(&root, "aa", "fixed"), "10.123.0.50");
    ok(&root, &["restart", "-t", "0", "aa"]);
    assert_eq!(ip_of(&root, "aa", "fixed"), "10.123.0.50");
    assert!(exec(&root, "aa", "ip addr show eth0")
        .1
        .contains("inet 10.123.0.50/24"));
    let taken = fails(
        &root,
        &[
            "run",
            "--rm",
            "--network",
            "fixed",
            "--ip",
            "10.123.0.50",
            "busybox",
            "true",
        ],
    );
    assert!(taken.contains("Address already in use"), "{taken}");
    let outside = fails(
        &root,
        &[
            "run",
            "--rm",
            "--network",
            "fixed",
            "--ip",
            "10.124.0.5",
            "busybox",
            "true",
        ],
    );
    assert!(
        outside.contains("does not belong to any of this network's subnets"),
        "{outside}"
    );
    // Dynamic addresses start at the bottom and skip the ones in use.
    run_detached(
        &root,
        "bb",
        &["--network", "fixed"],
        "busybox",
        &["sleep", "300"],
    );
    assert_eq!(ip_of(&root, "bb", "fixed"), "10.123.0.1");
    // A removed container's address is free again.
    ok(&root, &["rm", "-f", "aa"]);
    run_detached(
        &root,
        "cc",
        &["--network", "fixed", "--ip", "10.123.0.50"],
        "busybox",
        &["sleep", "300"],
    );

    // Bad subnets: one line each, nothing made.
    let overlap = fails(
        &root,
        &["network", "create", "--subnet", "10.123.0.128/25", "other"],
    );
    assert!(
        overlap.contains("overlaps") && overlap.contains("network fixed"),
        "{overlap}"
    );
    let gw = fails(
        &root,
        &[
            "network",
            "create",
            "--subnet",
            "10.125.0.0/24",
            "--gateway",
            "10.126.0.1",
            "other",
        ],
    );
    assert!(gw.contains("not in subnet"), "{gw}");
    let cidr = fails(
        &root,
        &["network", "create", "--subnet", "10.125.0.0/40", "other"],
    );
    assert!(
        cidr.contains("invalid CIDR address: 10.125.0.0/40"),
        "{cidr}"
    );
    assert!(fails(
        &root,
        &["run", "--rm", "--network", "nowhere", "busybox", "true"]
    )
    .contains("network nowhere not found"));
    assert!(!ok(&root, &["network", "ls"]).contains("other"));
}

#[test]
fn networks_are_listed_removed_and_pruned_as_docker_does() {
    let Some((_tmp, root)) = network_store() else {
        return;
    };
    let id = ok(&root, &["network", "create", "--label", "team=a", "used"]);
    assert_eq!(id.len(), 64);
    let dup = fails(&root, &["network", "create", "used"]);
    assert!(
        dup.contains("network with name used already exists"),
        "{dup}"
    );
    assert!(fails(&root, &["network", "create", "bridge"]).contains("already exists"));
    ok(&root, &["network", "create", "spare"]);
    // Lookup: full ID, then name, then ID prefix.
    assert_eq!(network(&root, &id[..6])["Name"], "used");
    ok(&root, &["network", "create", &id[..6]]);
    assert_eq!(network(&root, &id[..6])["Name"], id[..6]);
    ok(&root, &["network", "rm", &id[..6]]);

    let ls = ok(&root, &["network", "ls"]);
    let head = ls.lines().next().unwrap();
    assert!(
        head.starts_with("NETWORK ID")
            && head.contains("NAME")
            && head.contains("DRIVER")
            && head.contains("SCOPE"),
        "{ls}"
    );
    for n in ["bridge", "host", "none", "used", "spare"] {
        assert!(
            ls.lines().any(|l| l.split_whitespace().nth(1) == Some(n)),
            "{n}: {ls}"
        );
    }
    assert_eq!(
        ok(&root, &["network", "ls", "-q", "--filter", "label=team=a"]),
        id[..12]
    );
    assert_eq!(
        ok(
            &root,
            &["network", "ls", "-q", "--no-trunc", "--filter", "name=use"]
        ),
        id
    );
    assert_eq!(
        ok(
            &root,
            &[
                "network",
                "ls",
                "--filter",
                "driver=null",
                "--format",
                "{{.Name}}"
            ]
        ),
        "none"
    );

    run_detached(
        &root,
        "member",
        &["--network", "used"],
        "busybox",
        &["sleep", "300"],
    );
    let o = berth(&root, &["network", "rm", "used", "spare"]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains(&format!("network used id {id} has active endpoints")),
        "{}",
        err(&o)
    );
    assert_eq!(out(&o), "spare");
    assert!(fails(&root, &["network", "rm", "bridge"]).contains("pre-defined network"));
    // A stopped container is no active endpoint.
    ok(&root, &["stop", "-t", "0", "member"]);
    ok(&root, &["network", "create", "unused"]);
    let pruned = ok(&root, &["network", "prune", "-f"]);
    assert!(pruned.starts_with("Deleted Networks:"), "{pruned}");
    assert!(
        pruned.contains("used") && pruned.contains("unused"),
        "{pruned}"
    );
    assert!(fails(&root, &["start", "member"]).contains("network used not found"));
    let events = containers::past_events(
        &root,
        "type=network",
        Some("{{.Action}} {{.Actor.Attributes.name}}"),
    );
    assert!(
        events.contains("create used") && events.contains("destroy used"),
        "{events}"
    );
}

#[test]
fn published_ports_reach_the_container_from_the_host_and_from_another_container() {
    let Some((_tmp, root)) = network_store() else {
        return;
    };
    let port = free_port();
    let publish = format!("{port}:80");
    run_detached(
        &root,
        "web",
        &["-p", &publish],
        "busybox",
        &[
            "sh",
            "-c",
            "mkdir /www && echo served > /www/index.html && httpd -f -p 80 -h /www",
        ],
    );
    let get = |addr: &str| -> String {
        use std::io::{Read, Write};
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(addr) {
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let _ = s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n");
                let mut body = String::new();
                let _ = s.read_to_string(&mut body);
                if body.contains("served") {
                    return body;
                }
            }
            assert!(Instant::now() < deadline, "nothing served at {addr}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    get(&format!("127.0.0.1:{port}"));
    let host = host_address();
    get(&format!("{host}:{port}"));
    let (_, said) = probe(
        &root,
        &[],
        &format!("printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {host} {port}"),
    );
    assert!(said.contains("served"), "{said}");
    assert_eq!(
        ok(&root, &["port", "web"]),
        format!("80/tcp -> 0.0.0.0:{port}")
    );
    assert!(ok(&root, &["ps"]).contains(&format!("0.0.0.0:{port}->80/tcp")));
    assert!(iptables_rules().contains(&format!("--dport {port}")));
    ok(&root, &["rm", "-f", "web"]);
    assert!(!iptables_rules().contains(&format!("--dport {port}")));
}

#[test]
fn a_killed_supervisor_leaks_no_address_interface_rule_or_namespace() {
    let Some((_tmp, root)) = network_store() else {
        return;
    };
    let net = ok(
        &root,
        &["network", "create", "--subnet", "10.231.0.0/24", "doomed"],
    );
    let bridge = format!("br-{}", &net[..12]);
    // The bridge is made with the network, as docker's is.
    assert!(links().contains(&bridge), "{}", links());
    let id = run_detached(
        &root,
        "victim",
        &["--network", "doomed"],
        "busybox",
        &["sleep", "300"],
    );
    let netns = format!("/run/berth/netns/{id}");
    assert!(Path::new(&netns).exists());
    assert!(links().contains(&format!("master {bridge}")));
    assert!(iptables_rules().contains("10.231.0.0/24"));
    sigkill(supervisor_of(&id));
    wait_until("the container to die with its supervisor", || {
        inspect(&root, "victim")["State"]["Running"] == false
    });
    // The next command that looks finds it dead and takes its network down
    // (its veth goes with its namespace, which the kernel takes away in the
    // background).
    ok(&root, &["container", "prune", "-f"]);
    assert!(!Path::new(&netns).exists(), "the namespace file stays");
    wait_until("the veth to go with the namespace", || {
        !links().contains(&format!("master {bridge}"))
    });
    // The network's own rules stay with it, as docker's do, until it goes.
    assert!(iptables_rules().contains("10.231.0.0/24"));
    ok(&root, &["network", "rm", "doomed"]);
    assert!(!links().contains(&bridge));
    assert!(
        !iptables_rules().contains("10.231.0.0/24"),
        "rules stay: {}",
        iptables_rules()
    );

    // The same when the network goes first: its rm takes the dead down.
    ok(
        &root,
        &["network", "create", "--subnet", "10.232.0.0/24", "doomed2"],
    );
    let id = run_detached(
        &root,
        "victim2",
        &["--network", "doomed2"],
        "busybox",
        &["sleep", "300"],
    );
    let supervisor = supervisor_of(&id);
    sigkill(supervisor);
    wait_until("the supervisor to go", || {
        !Path::new(&format!("/proc/{supervisor}")).exists()
    });
    ok(&root, &["network", "rm", "doomed2"]);
    assert!(!Path::new(&format!("/run/berth/netns/{id}")).exists());
    assert!(!iptables_rules().contains("10.232.0.0/24"));
}

#[test]
fn a_missing_aardvark_dns_is_named_with_its_package() {
    let Some((_tmp, root)) = root_store() else {
        return;
    };
    let o = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--root")
        .arg(&root)
        .args(["network", "create", "x"])
        .env("BERTH_AARDVARK", "/nonexistent/aardvark-dns")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = err(&o);
    assert!(
        e.contains("aardvark-dns") && e.contains("apt-get install aardvark-dns"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(!ok(&root, &["network", "ls"]).contains(" x "));
}

/// `testdata/examples/networks/run.sh`: docker's networking introduction
/// with MariaDB and nginx from Debian's packages (a debootstrap'd base; the
/// images' RUN steps reach the package mirror).
#[test]
fn the_networks_example_runs_as_docker_documents_it() {
    let Some((tmp, _root)) = network_store() else {
        return;
    };
    let root = tmp.path().join("debian-root");
    let o = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testdata/examples/networks/run.sh"
        ))
        .arg(env!("CARGO_BIN_EXE_berth"))
        .env("BERTH_ROOT", &root)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}\n{}", out(&o), err(&o));
    let said = out(&o);
    assert!(
        said.contains("frontend-app reaches database:3306"),
        "{said}"
    );
    assert!(said.contains("database reaches nothing outside"), "{said}");
    // The script takes its containers and networks away again.
    assert_eq!(ok(&root, &["ps", "-aq"]), "");
    assert!(!ok(&root, &["network", "ls"]).contains("frontend"));
}

#[test]
fn a_container_joins_another_containers_network() {
    let Some((_tmp, root)) = network_store() else {
        return;
    };
    ok(&root, &["network", "create", "shared"]);
    run_detached(
        &root,
        "host-of-it",
        &["--network", "shared"],
        "busybox",
        &[
            "sh",
            "-c",
            "mkdir /www && echo mine > /www/index.html && httpd -f -p 8080 -h /www",
        ],
    );
    let ip = ip_of(&root, "host-of-it", "shared");
    let (_, said) = probe(
        &root,
        &["--network", "container:host-of-it"],
        "ip -4 addr show eth0 | grep -o 'inet [0-9.]*'; sleep 0.3; printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 3 127.0.0.1 8080 | tail -1",
    );
    assert_eq!(said, format!("inet {ip}\nmine"));
    assert!(fails(
        &root,
        &[
            "run",
            "--rm",
            "--network",
            "container:host-of-it",
            "-p",
            "81:80",
            "busybox",
            "true"
        ]
    )
    .contains("conflicting options: port publishing and the container type network mode"));
    assert!(fails(
        &root,
        &[
            "run",
            "--rm",
            "--network",
            "container:nobody",
            "busybox",
            "true"
        ]
    )
    .contains("nobody"));
    ok(&root, &["stop", "-t", "0", "host-of-it"]);
    assert!(fails(
        &root,
        &[
            "run",
            "--rm",
            "--network",
            "container:host-of-it",
            "busybox",
            "true"
        ]
    )
    .contains("cannot join network of a non running container: host-of-it"));
}

#[test]
fn build_steps_run_on_the_network_the_build_names() {
    let Some((tmp, root)) = network_store() else {
        return;
    };
    ok(&root, &["network", "create", "buildnet"]);
    run_detached(
        &root,
        "artifacts",
        &["--network", "buildnet"],
        "busybox",
        &[
            "sh",
            "-c",
            "mkdir /www && echo fetched > /www/f && httpd -f -p 8080 -h /www",
        ],
    );
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN printf 'GET /f HTTP/1.0\\r\\n\\r\\n' | nc -w 5 artifacts 8080 | tail -1 > /got\nCMD [\"cat\", \"/got\"]\n",
    )
    .unwrap();
    ok(
        &root,
        &[
            "build",
            "-q",
            "--network",
            "buildnet",
            "-t",
            "fetched",
            ctx.to_str().unwrap(),
        ],
    );
    assert_eq!(
        ok(&root, &["run", "--rm", "--network", "none", "fetched"]),
        "fetched"
    );
    // The step's place on the network is gone with the step.
    let net = network(&root, "buildnet");
    assert_eq!(net["Containers"].as_object().unwrap().len(), 1, "{net}");
    // --network none: loopback only; a missing network is an error.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN ls /sys/class/net > /nets\n",
    )
    .unwrap();
    ok(
        &root,
        &[
            "build",
            "-q",
            "--network",
            "none",
            "-t",
            "alone",
            ctx.to_str().unwrap(),
        ],
    );
    assert_eq!(
        ok(
            &root,
            &["run", "--rm", "--network", "none", "alone", "cat", "/nets"]
        ),
        "lo"
    );
    let e = fails(
        &root,
        &["build", "-q", "--network", "nowhere", ctx.to_str().unwrap()],
    );
    assert!(e.contains("network nowhere not found"), "{e}");
}

#[test]
fn dns_hosts_hostname_and_mac_flags_shape_the_containers_files() {
    let Some((_tmp, root)) = network_store() else {
        return;
    };
    ok(
        &root,
        &["network", "create", "--subnet", "10.233.0.0/24", "flags"],
    );
    let (_, said) = probe(
        &root,
        &[
            "--network", "flags", "--dns", "192.0.2.53", "--dns-search", "example.test",
            "--dns-option", "ndots:2", "--add-host", "db.local:10.1.2.3", "--add-host",
            "gw:host-gateway", "--hostname", "myhost", "--mac-address", "02:42:0a:0b:0c:0d",
            "--ip", "10.233.0.77",
        ],
        "cat /etc/resolv.conf; echo --; cat /etc/hosts; echo --; hostname; cat /sys/class/net/eth0/address",
    );
    let parts: Vec<&str> = said.split("--\n").collect();
    assert_eq!(
        parts[0],
        "search example.test\nnameserver 10.233.0.1\nnameserver 192.0.2.53\noptions ndots:2\n",
        "{said}"
    );
    for line in [
        "10.1.2.3\tdb.local",
        "10.233.0.1\tgw",
        "10.233.0.77\tmyhost",
        "127.0.0.1\tlocalhost",
    ] {
        assert!(parts[1].lines().any(|l| l == line), "{line}: {said}");
    }
    assert_eq!(parts[2], "myhost\n02:42:0a:0b:0c:0d", "{said}");
    // On the default bridge --dns replaces the host's servers.
    let (_, said) = probe(
        &root,
        &["--dns", "192.0.2.54"],
        "grep nameserver /etc/resolv.conf",
    );
    assert_eq!(said, "nameserver 192.0.2.54");
    assert!(fails(
        &root,
        &["run", "--rm", "--add-host", "nocolon", "busybox", "true"]
    )
    .contains("bad format for add-host"));
}

#[test]
fn inspect_shows_networks_and_endpoints_in_dockers_shape() {
    let Some((_tmp, root)) = network_store() else {
        return;
    };
    ok(
        &root,
        &[
            "network",
            "create",
            "--label",
            "k=v",
            "-o",
            "com.docker.network.bridge.name=brshape0",
            "shape",
        ],
    );
    let id = run_detached(
        &root,
        "shaped",
        &["--network", "shape", "--network-alias", "al"],
        "busybox",
        &["sleep", "300"],
    );
    let net = network(&root, "shape");
    let keys: Vec<&str> = net
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "Name",
            "Id",
            "Created",
            "Scope",
            "Driver",
            "EnableIPv6",
            "IPAM",
            "Internal",
            "Attachable",
            "Ingress",
            "ConfigFrom",
            "ConfigOnly",
            "Containers",
            "Options",
            "Labels"
        ]
    );
    assert_eq!(net["Scope"], "local");
    assert_eq!(net["Driver"], "bridge");
    assert_eq!(net["IPAM"]["Driver"], "default");
    assert_eq!(net["Labels"]["k"], "v");
    assert_eq!(net["Options"]["com.docker.network.bridge.name"], "brshape0");
    assert!(links().contains("brshape0"));
    let member = &net["Containers"][&id];
    for k in [
        "Name",
        "EndpointID",
        "MacAddress",
        "IPv4Address",
        "IPv6Address",
    ] {
        assert!(member.get(k).is_some(), "{k}: {member}");
    }
    let e = endpoint(&root, "shaped", "shape");
    let keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "IPAMConfig",
            "Links",
            "Aliases",
            "NetworkID",
            "EndpointID",
            "Gateway",
            "IPAddress",
            "IPPrefixLen",
            "IPv6Gateway",
            "GlobalIPv6Address",
            "GlobalIPv6PrefixLen",
            "MacAddress",
            "DriverOpts"
        ]
    );
    assert_eq!(e["NetworkID"], net["Id"]);
    assert_eq!(e["EndpointID"], member["EndpointID"]);
    assert_eq!(e["MacAddress"], member["MacAddress"]);
    assert_eq!(e["Aliases"], serde_json::json!(["al", &id[..12]]));
    assert_eq!(
        inspect(&root, "shaped")["HostConfig"]["NetworkMode"],
        "shape"
    );
    assert_eq!(
        ok(
            &root,
            &["ps", "--format", "{{.Networks}}", "--filter", "name=shaped"]
        ),
        "shape"
    );
}

#[test]
fn a_supervisor_killed_during_the_network_setup_leaks_nothing() {
    let Some((tmp, root)) = network_store() else {
        return;
    };
    // aardvark-dns that lingers once it serves: the supervisor is killed
    // after the interfaces are made and before the setup is done.
    let slow = tmp.path().join("slow-aardvark");
    std::fs::write(
        &slow,
        "#!/bin/sh\n/usr/lib/podman/aardvark-dns \"$@\"; rc=$?\ncase \" $* \" in *\" run \"*) sleep 30;; esac\nexit $rc\n",
    )
    .unwrap();
    std::fs::set_permissions(&slow, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let net = ok(
        &root,
        &["network", "create", "--subnet", "10.234.0.0/24", "halfway"],
    );
    let bridge = format!("master br-{}", &net[..12]);
    let mut run = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--root")
        .arg(&root)
        .args([
            "run",
            "-d",
            "--name",
            "half",
            "--network",
            "halfway",
            "busybox",
            "sleep",
            "300",
        ])
        .env("BERTH_AARDVARK", &slow)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the setup to be made", || links().contains(&bridge));
    let id = ok(&root, &["ps", "-aq", "--no-trunc", "--filter", "name=half"]);
    let supervisor = supervisor_of(&id);
    sigkill(supervisor);
    assert!(!run.wait().unwrap().success());
    wait_until("the supervisor to go", || {
        !Path::new(&format!("/proc/{supervisor}")).exists()
    });
    ok(&root, &["container", "prune", "-f"]);
    wait_until("the veth to go with the namespace", || {
        !links().contains(&bridge)
    });
    assert!(!Path::new(&format!("/run/berth/netns/{id}")).exists());
    ok(&root, &["network", "rm", "halfway"]);
    assert!(
        !iptables_rules().contains("10.234.0.0/24"),
        "rules stay: {}",
        iptables_rules()
    );
}

/// netavark, the other backend (`BERTH_NETWORK_BACKEND=netavark`), serves
/// a user-defined network the same way, and takes its bridge and rules away
/// with its last container.
#[test]
fn the_netavark_backend_serves_a_network_too() {
    let Some((_tmp, root)) = network_store() else {
        return;
    };
    assert!(
        Path::new("/usr/lib/podman/netavark").exists(),
        "netavark is not installed (testdata/test.sh installs it)"
    );
    let via_netavark = |args: &[&str]| -> String {
        let o = Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("--root")
            .arg(&root)
            .args(args)
            .env("BERTH_NETWORK_BACKEND", "netavark")
            .output()
            .unwrap();
        assert!(o.status.success(), "berth {args:?}: {}", err(&o));
        out(&o)
    };
    let net = via_netavark(&[
        "network",
        "create",
        "--subnet",
        "10.235.0.0/24",
        "viapodman",
    ]);
    let bridge = format!("br-{}", &net[..12]);
    via_netavark(&[
        "run",
        "-d",
        "--name",
        "named",
        "--network",
        "viapodman",
        "busybox",
        "sleep",
        "300",
    ]);
    let said = via_netavark(&[
        "run",
        "--rm",
        "--network",
        "viapodman",
        "busybox",
        "sh",
        "-c",
        "nslookup named | grep -q 'Address: 10.235.0.2' && echo named",
    ]);
    assert_eq!(said, "named");
    assert!(iptables_rules().contains("10.235.0.0/24"));
    via_netavark(&["rm", "-f", "named"]);
    assert!(!links().contains(&bridge), "{}", links());
    assert!(!iptables_rules().contains("10.235.0.0/24"));
    via_netavark(&["network", "rm", "viapodman"]);
}
