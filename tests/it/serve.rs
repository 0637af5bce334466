//! `trustmesh serve` end to end, on loopback: real node processes (a
//! publisher and followers) that converge on each new epoch and survive a
//! restart; a follower against in-process hostile peers (forged, unsigned,
//! tampered, replayed, equivocating); the MQTT bridge against a real
//! broker; HTTP bad requests. Every wait polls a predicate against a
//! deadline.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::util::Trustmesh;

/// How long any one predicate may take before the test fails: generous,
/// for a loaded 2-core CI machine (a passing wait returns as soon as it
/// holds, so this costs nothing when all is well).
const DEADLINE: Duration = Duration::from_secs(120);

fn repo_data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
}

fn free_tcp() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn free_udp() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A GET on loopback: (status, body), or None if nothing answered.
fn get(addr: SocketAddr, path: &str) -> Option<(u16, Vec<u8>)> {
    request(addr, "GET", path)
}

fn request(addr: SocketAddr, method: &str, path: &str) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let mut body = buf[end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body)?;
    }
    Some((status, body))
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n")?;
        let n = usize::from_str_radix(std::str::from_utf8(&b[..nl]).ok()?.trim(), 16).ok()?;
        if n == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(nl + 2..nl + 2 + n)?);
        b = b.get(nl + 4 + n..)?;
    }
}

fn get_json(addr: SocketAddr, path: &str) -> Option<(u16, serde_json::Value)> {
    let (s, b) = get(addr, path)?;
    Some((s, serde_json::from_slice(&b).ok()?))
}

/// The epoch a node serves as latest, if any.
fn epoch_of(addr: SocketAddr) -> Option<u64> {
    match get_json(addr, "/snapshot/latest")? {
        (200, v) => v["epoch"].as_u64(),
        _ => None,
    }
}

/// One value of a node's /metrics (the first line starting with `series`).
fn metric(addr: SocketAddr, series: &str) -> Option<f64> {
    let (_, b) = get(addr, "/metrics")?;
    let text = String::from_utf8(b).ok()?;
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn rejected(addr: SocketAddr, reason: &str) -> f64 {
    metric(
        addr,
        &format!("trustmesh_snapshots_rejected_total{{reason=\"{reason}\"}}"),
    )
    .unwrap_or(0.0)
}

/// Polls `pred` until it holds; fails the test with `what` at the deadline.
fn wait_until(what: &str, mut pred: impl FnMut() -> bool) {
    let start = Instant::now();
    while !pred() {
        assert!(
            start.elapsed() < DEADLINE,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A new key file; returns its public key (hex).
fn new_key(path: &Path) -> String {
    Trustmesh::new()
        .args(["id", "new", "--out"])
        .arg(path)
        .ok()
        .stdout
        .trim()
        .to_string()
}

/// A `trustmesh serve` process, killed when dropped.
struct NodeProc {
    child: Child,
    http: SocketAddr,
    gossip: SocketAddr,
    args: Vec<String>,
    log: PathBuf,
}

impl NodeProc {
    fn start(dir: &Path, name: &str, key: &Path, extra: &[String]) -> NodeProc {
        let http = free_tcp();
        let gossip = free_udp();
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--key".into(),
            key.display().to_string(),
            "--http".into(),
            http.to_string(),
            "--gossip".into(),
            gossip.to_string(),
            "--state".into(),
            dir.join(format!("{name}-state")).display().to_string(),
            "--network".into(),
            "testnet".into(),
            "--gossip-interval".into(),
            "100ms".into(),
            "--fetch-timeout".into(),
            "3s".into(),
            "--device".into(),
            "cpu".into(),
        ];
        args.extend(extra.iter().cloned());
        let log = dir.join(format!("{name}.log"));
        let mut n = NodeProc {
            child: spawn(&args, &log),
            http,
            gossip,
            args,
            log,
        };
        n.wait_healthy();
        n
    }

    fn wait_healthy(&mut self) {
        let http = self.http;
        let log = self.log.clone();
        let start = Instant::now();
        while get(http, "/healthz").map(|r| r.0) != Some(200) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "node exited with {status}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(start.elapsed() < DEADLINE, "node at {http} never healthy");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// SIGKILL: no clean shutdown, as in a crash.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for a clean exit.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(start.elapsed() < DEADLINE, "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Starts again with the same arguments (same state directory).
    fn restart(&mut self) {
        self.child = spawn(&self.args, &self.log);
        self.wait_healthy();
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(args: &[String], log: &Path) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_trustmesh"))
        .args(args)
        .env("RAYON_NUM_THREADS", "1")
        .stdout(Stdio::null())
        .stderr(out)
        .spawn()
        .unwrap()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A log file: the bundled Bitcoin Alpha log copied under a new name
/// (new inputs, hence a new epoch).
fn add_log(dir: &Path, name: &str) {
    // Copy then rename, so a rescan never sees half a file.
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::copy(repo_data("bitcoin-alpha.parquet"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// A publisher node "pub" (key `d/pub.key`, made on first use) rescanning
/// `logs` every 200 ms, with `extra` flags; `logs` is created with one log
/// file the first time. Returns the node and its public key in hex.
fn start_publisher(d: &Path, logs: &Path, extra: &[&str]) -> (NodeProc, String) {
    if !logs.exists() {
        std::fs::create_dir(logs).unwrap();
        add_log(logs, "a.parquet");
    }
    let key = d.join("pub.key");
    let pkey = if key.exists() {
        let k = trustmesh::identity::read_key_file(&key).unwrap();
        hex::encode(k.verifying_key().to_bytes())
    } else {
        new_key(&key)
    };
    let mut args = strings(&[
        "--publisher",
        "--log",
        logs.to_str().unwrap(),
        "--interval",
        "200ms",
    ]);
    args.extend(strings(extra));
    (NodeProc::start(d, "pub", &key, &args), pkey)
}

/// A publisher and four followers converge on each new epoch; a follower
/// killed while an epoch is published catches up after its restart and
/// never serves an older epoch than it held; SIGTERM exits cleanly; the
/// HTTP API answers bad requests with 4xx JSON.
#[test]
fn serve_cluster_converges_and_a_restarted_follower_catches_up() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let logs = d.join("logs");
    let (mut publisher, pkey) = start_publisher(d, &logs, &[]);
    let mut followers: Vec<NodeProc> = (0..4)
        .map(|i| {
            let key = d.join(format!("f{i}.key"));
            new_key(&key);
            NodeProc::start(
                d,
                &format!("f{i}"),
                &key,
                &strings(&[
                    "--trust-publisher",
                    &pkey,
                    "--seed",
                    &publisher.gossip.to_string(),
                ]),
            )
        })
        .collect();
    let all = |ns: &[&NodeProc], epoch: u64| ns.iter().all(|n| epoch_of(n.http) == Some(epoch));
    let nodes = |f: &[NodeProc]| -> Vec<SocketAddr> {
        std::iter::once(publisher.http)
            .chain(f.iter().map(|n| n.http))
            .collect()
    };

    wait_until("epoch 1 on all five nodes", || {
        nodes(&followers).iter().all(|&a| epoch_of(a) == Some(1))
    });
    add_log(&logs, "b.parquet");
    wait_until("epoch 2 on all five nodes", || {
        nodes(&followers).iter().all(|&a| epoch_of(a) == Some(2))
    });
    // Every node serves the same header, and scores with proofs.
    let (_, h) = get_json(publisher.http, "/snapshot/latest").unwrap();
    assert_eq!(h["publisher"], pkey);
    assert_eq!(h["agent_count"], 3783);
    for n in &followers {
        let (_, f) = get_json(n.http, "/snapshot/latest").unwrap();
        assert_eq!(f["header_hash"], h["header_hash"]);
        assert_eq!(
            metric(n.http, "trustmesh_snapshots_fetched_total"),
            Some(2.0)
        );
    }
    let (s, score) = get_json(followers[0].http, "/score/1").unwrap();
    assert_eq!(s, 200, "{score}");
    assert_eq!(score["epoch"], 2);
    assert!(score["score"].as_f64().unwrap() > 0.0);
    assert_eq!(score["proof"]["format"], "trustmesh-proof-v1");
    // The proof checks against the header served beside it, offline.
    let verify_offline = |header: &[u8], proof: &serde_json::Value| {
        std::fs::write(d.join("h.bin"), header).unwrap();
        std::fs::write(d.join("p.json"), proof.to_string()).unwrap();
        Trustmesh::new()
            .args(["snapshot", "verify-proof", "--header"])
            .arg(d.join("h.bin"))
            .arg("--proof")
            .arg(d.join("p.json"))
            .args(["--publisher", &pkey])
            .ok();
    };
    let (_, header_bin) = get(followers[0].http, "/snapshot/2/header").unwrap();
    verify_offline(&header_bin, &score["proof"]);

    // A follower killed (no clean shutdown) while epoch 3 is published.
    followers[3].kill();
    add_log(&logs, "c.parquet");
    {
        let live: Vec<&NodeProc> = followers[..3].iter().collect();
        wait_until("epoch 3 on the four live nodes", || {
            epoch_of(publisher.http) == Some(3) && all(&live, 3)
        });
    }
    followers[3].restart();
    // From its first answer on, it never serves less than what it held.
    // The predicate only records; the check is after the wait, so a
    // failure names what was served rather than a timeout.
    let f3 = followers[3].http;
    let mut served = Vec::new();
    wait_until("the restarted follower at epoch 3", || {
        let e = epoch_of(f3);
        served.push(e);
        e == Some(3)
    });
    assert!(
        served.iter().all(|e| e.is_some_and(|e| e >= 2)),
        "restarted follower served {served:?}"
    );

    // Bad requests: 4xx with a JSON error.
    let f0 = followers[0].http;
    for (method, path, status) in [
        ("GET", "/snapshot/abc/header", 400),
        ("GET", "/snapshot/99/header", 404),
        ("GET", "/snapshot/1/nope", 404),
        ("GET", "/snapshot/latest?publisher=zz", 400),
        (
            "GET",
            &format!("/snapshot/latest?publisher={}", "0".repeat(64)),
            404,
        ),
        ("GET", "/score/no-such-agent", 404),
        ("GET", &format!("/score/{}", "x".repeat(5000)), 400),
        ("GET", "/mechanism/latest", 404),
        ("GET", "/no/such/route", 404),
        ("POST", "/healthz", 405),
    ] {
        let (s, body) = request(f0, method, path).unwrap();
        assert_eq!(s, status, "{method} {path}");
        let v: serde_json::Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e})"));
        assert!(v["error"].is_string(), "{method} {path}: {v}");
    }
    // A client that never finishes its headers is cut off (header-read
    // timeout, 10 s), not held open: the read ends well before its own
    // 60 s timeout would.
    {
        let mut s = TcpStream::connect(f0).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        let t = Instant::now();
        let r = s.read_to_end(&mut Vec::new());
        assert!(
            t.elapsed() < Duration::from_secs(50),
            "connection held {:?}: {r:?}",
            t.elapsed()
        );
    }
    let (_, absent) = get_json(f0, "/score/no-such-agent").unwrap();
    assert_eq!(absent["proof"]["format"], "trustmesh-absence-v1");
    let (_, header) = get(f0, "/snapshot/3/header").unwrap();
    assert!(header.starts_with(b"TMSNAP"));
    // The absence proof (from the node's stored tree) checks offline too.
    verify_offline(&header, &absent["proof"]);

    // A clean shutdown exits 0 and says so.
    let status = followers[0].terminate();
    assert!(status.success(), "{status}");
    let log = std::fs::read_to_string(&followers[0].log).unwrap();
    assert!(log.contains("shutting down"), "{log}");
    // The others notice it is gone.
    wait_until("peers_alive drops to 3 on the publisher", || {
        metric(publisher.http, "trustmesh_peers_alive") == Some(3.0)
    });

    // A restarted publisher resumes at its epoch and publishes nothing new
    // for unchanged logs; the next log gives the next epoch, chained.
    assert!(publisher.terminate().success());
    publisher.restart();
    let p = publisher.http;
    assert_eq!(epoch_of(p), Some(3));
    let rounds = metric(p, "trustmesh_gossip_rounds_total").unwrap();
    wait_until("five publisher rounds", || {
        metric(p, "trustmesh_gossip_rounds_total").unwrap() >= rounds + 5.0
    });
    assert_eq!(metric(p, "trustmesh_recomputes_total"), Some(0.0));
    assert_eq!(epoch_of(p), Some(3));
    add_log(&logs, "d.parquet");
    let live: Vec<&NodeProc> = std::iter::once(&publisher)
        .chain(followers[1..].iter())
        .collect();
    wait_until("epoch 4 after the publisher's restart", || all(&live, 4));
    let (_, h4) = get_json(p, "/snapshot/latest").unwrap();
    let (_, h3bin) = get(followers[1].http, "/snapshot/3/header").unwrap();
    assert_eq!(
        h4["prev_header_hash"].as_str().unwrap(),
        hex::encode(trustmesh::snapshot::header_hash(&h3bin))
    );
}

/// A publisher with `--mechanism-agents` posts trust-tiered contracts beside
/// each snapshot: bound to it by header hash, signed by the publisher, the
/// same solution `trustmesh mechanism` derives from the snapshot's body, and
/// served on by a follower byte for byte. A mechanism that cannot be solved
/// (an agent without a score) fails the publish, so no snapshot goes out
/// without the mechanism the node was told to post.
#[test]
fn serve_posts_a_signed_mechanism_beside_each_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let logs = d.join("logs");
    let agents = repo_data("agents-bitcoin-alpha.parquet");
    let (publisher, pkey) = start_publisher(
        d,
        &logs,
        &[
            "--mechanism-agents",
            agents.to_str().unwrap(),
            "--mechanism-budget",
            "2000",
        ],
    );
    let fkey = d.join("f.key");
    new_key(&fkey);
    let follower = NodeProc::start(
        d,
        "f",
        &fkey,
        &strings(&[
            "--trust-publisher",
            &pkey,
            "--seed",
            &publisher.gossip.to_string(),
        ]),
    );
    let (p, f) = (publisher.http, follower.http);
    wait_until("epoch 1 on both", || {
        epoch_of(p) == Some(1) && epoch_of(f) == Some(1)
    });
    let (status, file) = get(p, "/mechanism/latest").unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&file));
    let m: serde_json::Value = serde_json::from_slice(&file).unwrap();
    let (_, header) = get(p, "/snapshot/1/header").unwrap();
    let hash = trustmesh::snapshot::header_hash(&header);
    assert_eq!(m["epoch"], 1);
    assert_eq!(m["header_hash"].as_str().unwrap(), hex::encode(hash));
    assert_eq!(m["publisher"].as_str().unwrap(), pkey);
    assert_eq!(m["parameters"]["budget"], 2000.0);
    let (_, sig) = get(p, "/snapshot/1/mechanism.sig").unwrap();
    let publisher_key: [u8; 32] = hex::decode(&pkey).unwrap().try_into().unwrap();
    let binding = trustmesh::serve::mechanism::Binding {
        network: "testnet",
        publisher: &publisher_key,
        epoch: 1,
        header_hash: &hash,
    };
    trustmesh::serve::mechanism::verify(binding, &file, &sig).unwrap();
    // The follower serves the same bytes once it holds the epoch.
    wait_until("the follower serves the mechanism", || {
        get(f, "/mechanism/latest").map(|r| r.0) == Some(200)
    });
    assert_eq!(get(f, "/mechanism/latest").unwrap().1, file);
    // Re-derived from the snapshot's body with `trustmesh mechanism`.
    let body = d.join("body.parquet");
    std::fs::write(&body, get(p, "/snapshot/1/body").unwrap().1).unwrap();
    let out = d.join("m.json");
    Trustmesh::new()
        .args(["mechanism", "--scores"])
        .arg(&body)
        .arg("--agents")
        .arg(&agents)
        .args(["--budget", "2000", "--out"])
        .arg(&out)
        .ok();
    let again: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    for field in ["schedule", "expected_utility", "tiers", "uniform"] {
        assert_eq!(m[field], again[field], "{field}");
    }
    // An agents table naming an agent without a score: the next publish
    // fails, epoch 1 stays the latest, and the node says why.
    drop(follower);
    drop(publisher);
    let bad_agents = d.join("agents.parquet");
    {
        use arrow::array::{Float64Array, StringArray};
        use arrow::record_batch::RecordBatch;
        let batch = RecordBatch::try_from_iter([
            (
                "agent",
                Arc::new(StringArray::from(vec!["1", "no-such-agent"])) as _,
            ),
            ("cost", Arc::new(Float64Array::from(vec![1.0, 1.0])) as _),
            (
                "capability",
                Arc::new(Float64Array::from(vec![0.5, 0.5])) as _,
            ),
        ])
        .unwrap();
        let file = std::fs::File::create(&bad_agents).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }
    let (publisher, _) = start_publisher(
        d,
        &logs,
        &["--mechanism-agents", bad_agents.to_str().unwrap()],
    );
    add_log(&logs, "b.parquet");
    wait_until("the failed publish logged", || {
        std::fs::read_to_string(&publisher.log)
            .unwrap_or_default()
            .contains("no-such-agent")
    });
    assert_eq!(epoch_of(publisher.http), Some(1));
}

/// `serve --warm-start`: each recompute after the first starts from the
/// previous snapshot, which the next header names, and `snapshot audit
/// --start-from` re-derives the warm snapshot from it bit for bit.
#[test]
fn serve_warm_starts_from_the_previous_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let logs = d.join("logs");
    let (publisher, pkey) = start_publisher(d, &logs, &["--warm-start"]);
    let p = publisher.http;
    wait_until("epoch 1", || epoch_of(p) == Some(1));
    let (_, h1) = get_json(p, "/snapshot/latest").unwrap();
    assert!(
        h1["parameters"].get("start_snapshot").is_none(),
        "the first is cold"
    );
    // New rows that move the fixed point: the first half of the log again.
    {
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let src = std::fs::File::open(repo_data("bitcoin-alpha.parquet")).unwrap();
        let batches: Vec<_> = ParquetRecordBatchReaderBuilder::try_new(src)
            .unwrap()
            .build()
            .unwrap()
            .map(|b| b.unwrap())
            .collect();
        let all = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        let half = all.slice(0, all.num_rows() / 2);
        let tmp = logs.join(".b.tmp");
        let file = std::fs::File::create(&tmp).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, half.schema(), None).unwrap();
        w.write(&half).unwrap();
        w.close().unwrap();
        std::fs::rename(&tmp, logs.join("b.parquet")).unwrap();
    }
    wait_until("epoch 2", || epoch_of(p) == Some(2));
    let (_, h2) = get_json(p, "/snapshot/latest").unwrap();
    assert_eq!(h2["parameters"]["start_snapshot"], h1["header_hash"]);
    // The same logs cold: more iterations, other bits.
    let cold = d.join("cold.parquet");
    let report = d.join("cold.json");
    Trustmesh::new()
        .args(["score", "--device", "cpu", "--top", "0", "--log"])
        .arg(&logs)
        .arg("--out")
        .arg(&cold)
        .arg("--report")
        .arg(&report)
        .ok();
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let warm_it = h2["iterations"].as_u64().unwrap();
    let cold_it = r["iterations"].as_u64().unwrap();
    assert!(
        warm_it < cold_it,
        "warm {warm_it} vs cold {cold_it} iterations"
    );
    let epochs = d.join("pub-state").join(&pkey);
    let warm = crate::common::read_scores(&epochs.join("2").join("body.parquet"));
    let cold: std::collections::HashMap<_, _> = crate::common::read_scores(&cold)
        .into_iter()
        .map(|r| (r.0, r.1))
        .collect();
    assert!(
        warm.iter().any(|r| r.1.to_bits() != cold[&r.0].to_bits()),
        "warm and cold gave the same bits"
    );
    Trustmesh::new()
        .args(["snapshot", "audit"])
        .arg(epochs.join("2"))
        .arg("--log")
        .arg(&logs)
        .arg("--start-from")
        .arg(epochs.join("1"))
        .ok()
        .stdout_has(&[
            "audit passed",
            "reproduced bit for bit",
            "warm-started from epoch 1",
            ", the snapshot this one chains on",
        ]);
}

/// A snapshot chain made with the CLI: epochs 1 and 2, and two different
/// epoch-3 snapshots (an equivocating publisher).
struct Chain {
    key: ed25519_dalek::SigningKey,
    publisher: [u8; 32],
    snaps: Vec<(u64, Vec<u8>, Vec<u8>)>,
}

fn make_chain(d: &Path) -> Chain {
    let tm = Trustmesh::new;
    let pkey = new_key(&d.join("pub.key"));
    tm().args(["score", "--device", "cpu", "--top", "0", "--log"])
        .arg(repo_data("bitcoin-alpha.parquet"))
        .arg("--out")
        .arg(d.join("scores.parquet"))
        .ok();
    let mut snaps = Vec::new();
    for (name, epoch, prev, expires) in [
        ("s1", 1, None, "7d"),
        ("s2", 2, Some("s1"), "7d"),
        ("s3a", 3, Some("s2"), "7d"),
        ("s3b", 3, Some("s2"), "6d"),
    ] {
        let mut c = tm()
            .args(["snapshot", "create", "--network", "testnet", "--scores"])
            .arg(d.join("scores.parquet"))
            .arg("--key")
            .arg(d.join("pub.key"))
            .args(["--epoch", &epoch.to_string(), "--expires", expires, "--out"])
            .arg(d.join(name));
        if let Some(p) = prev {
            c = c.arg("--prev").arg(d.join(p));
        }
        c.ok();
        let read = |f: &str| std::fs::read(d.join(name).join(f)).unwrap();
        snaps.push((epoch, read("header.bin"), read("body.parquet")));
    }
    let key = trustmesh::identity::read_key_file(&d.join("pub.key")).unwrap();
    let publisher = key.verifying_key().to_bytes();
    assert_eq!(hex::encode(publisher), pkey);
    Chain {
        key,
        publisher,
        snaps,
    }
}

type Files = Arc<Mutex<std::collections::HashMap<(u64, String), Vec<u8>>>>;

/// A peer's HTTP server answering `/snapshot/{epoch}/{file}` from `files`.
async fn rogue_http(files: Files) -> SocketAddr {
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    async fn serve(
        State(files): State<Files>,
        Path((epoch, file)): Path<(u64, String)>,
    ) -> (StatusCode, Vec<u8>) {
        match files.lock().unwrap().get(&(epoch, file)) {
            Some(b) => (StatusCode::OK, b.clone()),
            None => (StatusCode::NOT_FOUND, Vec::new()),
        }
    }
    let app = axum::Router::new()
        .route("/snapshot/{epoch}/{file}", axum::routing::get(serve))
        .with_state(files);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    addr
}

/// A gossip participant under a fresh node key.
async fn rogue_gossip(seed: SocketAddr) -> (trustmesh::serve::gossip::Gossip, SocketAddr) {
    let key = trustmesh::identity::generate();
    let listen = free_udp();
    let g = trustmesh::serve::gossip::Gossip::start(
        trustmesh::serve::gossip::GossipConfig {
            node_id: hex::encode(key.verifying_key().to_bytes()),
            listen,
            seeds: vec![seed.to_string()],
            interval: Duration::from_millis(100),
            cluster: "trustmesh/testnet".into(),
        },
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    )
    .await
    .unwrap();
    (g, listen)
}

/// A follower against hostile peers: every refusal is counted under its
/// reason in /metrics, and only verified snapshots are accepted.
#[test]
fn serve_refuses_forged_tampered_replayed_and_equivocating_peers() {
    use trustmesh::serve::announce::{Announcement, Claim};
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let chain = make_chain(d);
    let pub_hex = hex::encode(chain.publisher);
    let rt = tokio::runtime::Runtime::new().unwrap();

    // Two HTTP servers: one tampers with bodies and replays old headers,
    // the other is honest.
    let bad_files: Files = Default::default();
    let good_files: Files = Default::default();
    let bad_http = rt.block_on(rogue_http(bad_files.clone()));
    let good_http = rt.block_on(rogue_http(good_files.clone()));
    let follower_key = d.join("f.key");
    new_key(&follower_key);
    // The rogue gossip node starts first, on a known port; the follower
    // seeds from it.
    let rogue_listen = free_udp();
    let rogue_key = trustmesh::identity::generate();
    let rogue = rt
        .block_on(trustmesh::serve::gossip::Gossip::start(
            trustmesh::serve::gossip::GossipConfig {
                node_id: hex::encode(rogue_key.verifying_key().to_bytes()),
                listen: rogue_listen,
                seeds: vec![],
                interval: Duration::from_millis(100),
                cluster: "trustmesh/testnet".into(),
            },
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
        ))
        .unwrap();
    let mut follower = NodeProc::start(
        d,
        "f",
        &follower_key,
        &strings(&[
            "--trust-publisher",
            &pub_hex,
            "--seed",
            &rogue_listen.to_string(),
        ]),
    );
    let f = follower.http;
    let key = format!("ann:{pub_hex}");
    let claim_of = |i: usize| {
        let (epoch, header, _) = &chain.snaps[i];
        Claim {
            network: "testnet".into(),
            publisher: chain.publisher,
            epoch: *epoch,
            header_hash: trustmesh::snapshot::header_hash(header),
            mechanism: None,
        }
    };
    let announce = |claim: Claim, http: SocketAddr| {
        let sig = claim.sign(&chain.key).unwrap();
        Announcement::new(claim, sig, &rogue_key, http)
            .unwrap()
            .to_text()
            .unwrap()
    };
    let set = |value: &str| rt.block_on(rogue.set(&key, value));
    let wait_reason = |reason: &str, n: f64| {
        wait_until(&format!("{reason} counted {n} times"), || {
            rejected(f, reason) >= n
        })
    };

    // Not an announcement at all.
    set("zz-not-hex");
    wait_reason("malformed_announcement", 1.0);
    // Unsigned: the node signature zeroed.
    let good = announce(claim_of(0), good_http);
    let mut bytes = hex::decode(&good).unwrap();
    let n = bytes.len();
    bytes[n - 64..].fill(0);
    set(&hex::encode(&bytes));
    wait_reason("bad_signature", 1.0);
    // Forged: a claim for the publisher signed by the rogue's key.
    let mut forged = Announcement::decode(&hex::decode(&good).unwrap()).unwrap();
    forged.publisher_sig = {
        use ed25519_dalek::Signer;
        let mut m = trustmesh::serve::announce::CLAIM_DOMAIN.to_vec();
        m.push(7);
        m.extend_from_slice(b"testnet");
        m.extend_from_slice(&chain.publisher);
        m.extend_from_slice(&1u64.to_be_bytes());
        m.extend_from_slice(&forged.claim.header_hash);
        m.push(0); // no mechanism
        rogue_key.sign(&m).to_bytes()
    };
    let forged = Announcement::new(
        forged.claim.clone(),
        forged.publisher_sig,
        &trustmesh::identity::generate(),
        good_http,
    );
    assert!(forged.is_err(), "a forged claim cannot even be announced");
    // ... so the rogue writes the bytes by hand: a valid node signature
    // over a claim whose publisher signature is the rogue's.
    {
        let mut raw = hex::decode(&good).unwrap();
        // After magic, network, publisher, epoch, header hash and the
        // mechanism flag (0: none).
        let sig_at = 8 + 1 + 7 + 32 + 8 + 32 + 1;
        let claim = claim_of(0);
        let mut m = trustmesh::serve::announce::CLAIM_DOMAIN.to_vec();
        m.push(7);
        m.extend_from_slice(b"testnet");
        m.extend_from_slice(&chain.publisher);
        m.extend_from_slice(&claim.epoch.to_be_bytes());
        m.extend_from_slice(&claim.header_hash);
        m.push(0);
        use ed25519_dalek::Signer;
        raw[sig_at..sig_at + 64].copy_from_slice(&rogue_key.sign(&m).to_bytes());
        let n = raw.len();
        let mut node_msg = trustmesh::serve::announce::NODE_DOMAIN.to_vec();
        node_msg.extend_from_slice(&raw[..n - 64]);
        let node_sig = rogue_key.sign(&node_msg).to_bytes();
        raw[n - 64..].copy_from_slice(&node_sig);
        set(&hex::encode(&raw));
        wait_reason("bad_signature", 2.0);
    }

    // A tampered body: the right header, one byte of the body changed.
    {
        let (epoch, header, body) = &chain.snaps[0];
        let mut tampered = body.clone();
        tampered[body.len() / 2] ^= 0x01;
        let mut b = bad_files.lock().unwrap();
        b.insert((*epoch, "header".into()), header.clone());
        b.insert((*epoch, "body".into()), tampered);
    }
    set(&announce(claim_of(0), bad_http));
    wait_reason("body_hash", 1.0);
    assert_eq!(epoch_of(f), None, "nothing accepted from a tampered body");
    // The honest copy of epoch 1 is accepted.
    {
        let (epoch, header, body) = &chain.snaps[0];
        let mut g = good_files.lock().unwrap();
        g.insert((*epoch, "header".into()), header.clone());
        g.insert((*epoch, "body".into()), body.clone());
    }
    // First the honest announcement copied under a wrong key: refused
    // there, and that verdict must not stick to the honest copy.
    let honest = announce(claim_of(0), good_http);
    let malformed = rejected(f, "malformed_announcement");
    rt.block_on(rogue.set("ann:x", &honest));
    wait_reason("malformed_announcement", malformed + 1.0);
    set(&honest);
    wait_until("epoch 1 accepted", || epoch_of(f) == Some(1));

    // A replayed old epoch: epoch 2 announced, epoch 1's header served.
    bad_files
        .lock()
        .unwrap()
        .insert((2, "header".into()), chain.snaps[0].1.clone());
    set(&announce(claim_of(1), bad_http));
    wait_reason("rollback", 1.0);
    assert_eq!(epoch_of(f), Some(1));
    // Epoch 2 with a mechanism beside it, which the publisher's claim
    // names by its SHA-256: a peer whose copy of the mechanism is not
    // signed by the publisher (signed by the rogue), altered after signing,
    // or missing (a peer stripping it answers 404) is refused as a whole;
    // the publisher's own file on the honest peer is accepted and served on.
    let binding_hash = trustmesh::snapshot::header_hash(&chain.snaps[1].1);
    let binding = trustmesh::serve::mechanism::Binding {
        network: "testnet",
        publisher: &chain.publisher,
        epoch: 2,
        header_hash: &binding_hash,
    };
    let mech = format!(
        "{{\"epoch\": 2, \"header_hash\": \"{}\", \"schedule\": [0, 10]}}\n",
        hex::encode(binding_hash)
    )
    .into_bytes();
    let good_sig = trustmesh::serve::mechanism::sign(&chain.key, binding, &mech);
    let mut altered = mech.clone();
    *altered.iter_mut().rev().nth(3).unwrap() = b'9';
    let claim2 = Claim {
        mechanism: Some(trustmesh::serve::mechanism::digest(&mech)),
        ..claim_of(1)
    };
    for (i, copy) in [
        Some((
            mech.clone(),
            trustmesh::serve::mechanism::sign(&rogue_key, binding, &mech),
        )),
        Some((altered, good_sig)),
        None,
    ]
    .into_iter()
    .enumerate()
    {
        let files: Files = Default::default();
        {
            let (epoch, header, body) = &chain.snaps[1];
            let mut m = files.lock().unwrap();
            m.insert((*epoch, "header".into()), header.clone());
            m.insert((*epoch, "body".into()), body.clone());
            if let Some((file, sig)) = copy {
                m.insert((*epoch, "mechanism".into()), file);
                m.insert((*epoch, "mechanism.sig".into()), sig.to_vec());
            }
        }
        let http = rt.block_on(rogue_http(files));
        set(&announce(claim2.clone(), http));
        wait_reason("bad_mechanism", i as f64 + 1.0);
        assert_eq!(
            epoch_of(f),
            Some(1),
            "nothing accepted with a bad mechanism"
        );
    }
    {
        let (epoch, header, body) = &chain.snaps[1];
        let mut g = good_files.lock().unwrap();
        g.insert((*epoch, "header".into()), header.clone());
        g.insert((*epoch, "body".into()), body.clone());
        g.insert((*epoch, "mechanism".into()), mech.clone());
        g.insert((*epoch, "mechanism.sig".into()), good_sig.to_vec());
    }
    set(&announce(claim2.clone(), good_http));
    wait_until("epoch 2 accepted", || epoch_of(f) == Some(2));
    let (status, served) = get(f, "/mechanism/latest").unwrap();
    assert_eq!((status, served), (200, mech.clone()));
    let (status, sig) = get(f, "/snapshot/2/mechanism.sig").unwrap();
    assert_eq!((status, sig), (200, good_sig.to_vec()));
    // Epoch 1 came without one: 404 with a JSON error.
    let (status, body) = get_json(f, "/snapshot/1/mechanism").unwrap();
    assert_eq!(status, 404);
    assert!(
        body["error"].as_str().unwrap().contains("no mechanism"),
        "{body}"
    );
    // A replayed old announcement: counted as stale, nothing changes.
    set(&announce(claim_of(0), good_http));
    wait_reason("stale", 1.0);
    assert_eq!(epoch_of(f), Some(2));

    // An equivocating publisher: two validly signed epoch-3 claims, from
    // two nodes; neither snapshot is served, so neither can be fetched
    // before both claims are seen.
    let (rogue2, _) = rt.block_on(rogue_gossip(rogue_listen));
    let announce2 = {
        let k2 = trustmesh::identity::generate();
        let claim = claim_of(3);
        let sig = claim.sign(&chain.key).unwrap();
        Announcement::new(claim, sig, &k2, good_http)
            .unwrap()
            .to_text()
            .unwrap()
    };
    set(&announce(claim_of(2), good_http));
    rt.block_on(rogue2.set(&key, &announce2));
    wait_until("the equivocation counted", || {
        metric(f, "trustmesh_equivocations_total") == Some(1.0)
    });
    // Now both are served; both stay refused.
    for i in [2, 3] {
        let (epoch, header, body) = &chain.snaps[i];
        let mut g = good_files.lock().unwrap();
        g.insert((*epoch, "header".into()), header.clone());
        g.insert((*epoch, "body".into()), body.clone());
    }
    let evidence = d.join("f-state").join(&pub_hex).join("evidence");
    let n_evidence = std::fs::read_dir(&evidence).map(|r| r.count()).unwrap_or(0);
    assert_eq!(n_evidence, 2, "both claims kept as evidence");
    // Several follower rounds later, still epoch 2.
    let rounds = metric(f, "trustmesh_gossip_rounds_total").unwrap();
    wait_until("five more gossip rounds", || {
        metric(f, "trustmesh_gossip_rounds_total").unwrap() >= rounds + 5.0
    });
    assert_eq!(epoch_of(f), Some(2));
    assert_eq!(
        metric(f, "trustmesh_snapshots_fetched_total"),
        Some(2.0),
        "only the two honest snapshots"
    );

    // The refusal survives a restart: with one of the two claims gone from
    // gossip and the other one served, the restarted follower still
    // refuses epoch 3.
    follower.kill();
    rt.block_on(rogue2.leave());
    {
        // The snapshot the remaining claim names, served honestly.
        let (epoch, header, body) = &chain.snaps[2];
        let mut g = good_files.lock().unwrap();
        g.insert((*epoch, "header".into()), header.clone());
        g.insert((*epoch, "body".into()), body.clone());
    }
    follower.restart();
    let f = follower.http;
    wait_until("resumed at epoch 2", || epoch_of(f) == Some(2));
    let rounds = metric(f, "trustmesh_gossip_rounds_total").unwrap();
    wait_until("ten more gossip rounds", || {
        metric(f, "trustmesh_gossip_rounds_total").unwrap() >= rounds + 10.0
    });
    assert_eq!(epoch_of(f), Some(2));
    assert_eq!(metric(f, "trustmesh_snapshots_fetched_total"), Some(0.0));
    drop(follower);
    rt.block_on(rogue.leave());
}

/// Whether mosquitto can be started; without it the MQTT test skips, unless
/// TRUSTMESH_REQUIRE_MQTT=1 (CI installs it) makes that a failure.
fn mosquitto() -> Option<PathBuf> {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join("mosquitto");
        if p.is_file() {
            return Some(p);
        }
    }
    if std::env::var("TRUSTMESH_REQUIRE_MQTT").as_deref() == Ok("1") {
        panic!("mosquitto not found and TRUSTMESH_REQUIRE_MQTT=1 (apt-get install mosquitto)");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED (mosquitto not found; apt-get install mosquitto)"
    );
    None
}

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The MQTT bridge: a subscriber gets each epoch's announcement once,
/// retained, QoS 1, on `trustmesh/<network>/<publisher>/announce`.
#[test]
fn serve_publishes_each_announcement_once_to_mqtt() {
    let Some(bin) = mosquitto() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let port = free_tcp().port();
    let conf = d.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
    )
    .unwrap();
    let _broker = Broker(
        Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("the broker listening", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });

    let logs = d.join("logs");
    std::fs::create_dir(&logs).unwrap();
    add_log(&logs, "a.parquet");
    let pkey = new_key(&d.join("pub.key"));
    let node = NodeProc::start(
        d,
        "pub",
        &d.join("pub.key"),
        &strings(&[
            "--publisher",
            "--log",
            logs.to_str().unwrap(),
            "--interval",
            "200ms",
            "--mqtt",
            &format!("mqtt://127.0.0.1:{port}"),
        ]),
    );
    wait_until("epoch 1", || epoch_of(node.http) == Some(1));

    // The subscriber arrives after epoch 1: it gets it retained.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let topic = format!("trustmesh/testnet/{pkey}/announce");
    let got: Arc<Mutex<Vec<serde_json::Value>>> = Default::default();
    let sink = got.clone();
    rt.spawn(async move {
        use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
        let (client, mut events) =
            AsyncClient::new(MqttOptions::new("test-sub", "127.0.0.1", port), 16);
        client.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
                    sink.lock().unwrap().push(v);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    let epochs = || -> Vec<u64> {
        got.lock()
            .unwrap()
            .iter()
            .map(|v| v["epoch"].as_u64().unwrap())
            .collect()
    };
    wait_until("epoch 1 retained", || epochs() == [1]);
    add_log(&logs, "b.parquet");
    wait_until("epoch 2 published", || epochs().contains(&2));
    add_log(&logs, "c.parquet");
    wait_until("epoch 3 published", || epochs().contains(&3));
    // Nothing twice: by now any duplicate of 1 or 2 would have arrived.
    assert_eq!(epochs(), [1, 2, 3]);
    // The payload carries the signed announcement, which verifies.
    let last = got.lock().unwrap()[2].clone();
    let a =
        trustmesh::serve::announce::Announcement::open_text(last["announcement"].as_str().unwrap())
            .unwrap();
    assert_eq!(a.claim.epoch, 3);
    assert_eq!(hex::encode(a.claim.publisher), pkey);
    assert_eq!(last["http"], node.http.to_string());
}

/// Propagation of a new epoch, for docs/benchmarks.md: in-process nodes (a
/// publisher and N-1 followers, seeded in a chain of the first few) on one
/// runtime; the time from the publisher serving epoch k until every node
/// serves it, and gossip bytes per node per round. Run with
/// `TRUSTMESH_SERVE_BENCH_NODES=5,20,50 cargo test --test it serve_propagation -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn serve_propagation_bench() {
    use trustmesh::serve::node::{run, NodeConfig, PublishConfig};
    let sizes: Vec<usize> = std::env::var("TRUSTMESH_SERVE_BENCH_NODES")
        .unwrap_or_else(|_| "5,20".into())
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let gossip_ms: u64 = std::env::var("TRUSTMESH_SERVE_BENCH_GOSSIP_MS")
        .ok()
        .map_or(100, |s| s.parse().unwrap());
    for n in sizes {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let logs = d.join("logs");
        std::fs::create_dir(&logs).unwrap();
        add_log(&logs, "a.parquet");
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let pkey = trustmesh::identity::generate();
        let pub_bytes = pkey.verifying_key().to_bytes();
        let mut https = Vec::new();
        let mut gossips: Vec<SocketAddr> = Vec::new();
        let mut tasks = Vec::new();
        // Every port reserved at once, so no two nodes get the same one.
        let ports: Vec<(TcpListener, UdpSocket)> = (0..n)
            .map(|_| {
                (
                    TcpListener::bind("127.0.0.1:0").unwrap(),
                    UdpSocket::bind("127.0.0.1:0").unwrap(),
                )
            })
            .collect();
        let addrs: Vec<(SocketAddr, SocketAddr)> = ports
            .iter()
            .map(|(t, u)| (t.local_addr().unwrap(), u.local_addr().unwrap()))
            .collect();
        drop(ports);
        for (i, &(http, gossip)) in addrs.iter().enumerate() {
            // Seeds: the publisher and, for later nodes, one earlier node.
            let mut seeds: Vec<String> = gossips.iter().take(1).map(|a| a.to_string()).collect();
            if i > 1 {
                seeds.push(gossips[i / 2].to_string());
            }
            let publish = (i == 0).then(|| PublishConfig {
                logs: logs.clone(),
                score: trustmesh::score::ScoreConfig::new(vec![logs.display().to_string()]),
                interval: Duration::from_millis(100),
                ttl_s: 86400,
                backend: Box::new(|| {
                    Ok(Box::new(trustmesh::trust::CpuBackend)
                        as Box<dyn trustmesh::trust::TrustBackend>)
                }),
                mechanism: None,
                warm_start: false,
            });
            let cfg = NodeConfig {
                key: if i == 0 {
                    pkey.clone()
                } else {
                    trustmesh::identity::generate()
                },
                network: "bench".into(),
                http,
                gossip,
                seeds,
                gossip_interval: Duration::from_millis(gossip_ms),
                state_dir: d.join(format!("n{i}")),
                trusted: vec![pub_bytes],
                publish,
                mqtt: None,
                fetch_timeout: Duration::from_secs(5),
                quiet: true,
            };
            let mut stop = stop_rx.clone();
            tasks.push(rt.spawn(async move {
                let r = run(cfg, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
                if let Err(e) = &r {
                    eprintln!("node {i}: {e}");
                }
            }));
            https.push(http);
            gossips.push(gossip);
        }
        let epoch_at = |a: SocketAddr| epoch_of(a).unwrap_or(0);
        let deadline = Duration::from_secs(120);
        let mut props = Vec::new();
        let mut recomputes = Vec::new();
        let mut gossiped = Vec::new();
        for k in 1..=3u64 {
            if k > 1 {
                add_log(&logs, &format!("{k}.parquet"));
            }
            let t = Instant::now();
            while epoch_at(https[0]) < k {
                assert!(t.elapsed() < deadline);
                std::thread::sleep(Duration::from_millis(2));
            }
            recomputes.push(metric(https[0], "trustmesh_recompute_seconds").unwrap_or(0.0));
            let t0 = Instant::now();
            // Gossip alone: every node has seen a valid announcement of k.
            let series = format!(
                "trustmesh_announced_epoch{{publisher=\"{}\"}}",
                hex::encode(pub_bytes)
            );
            let mut pending: Vec<SocketAddr> = https[1..].to_vec();
            while !pending.is_empty() {
                assert!(
                    t0.elapsed() < deadline,
                    "epoch {k} not announced everywhere"
                );
                pending.retain(|&a| metric(a, &series).unwrap_or(0.0) < k as f64);
            }
            gossiped.push(t0.elapsed().as_secs_f64());
            let mut pending: Vec<SocketAddr> = https[1..].to_vec();
            while !pending.is_empty() {
                assert!(
                    !tasks.iter().any(|t| t.is_finished()),
                    "a node stopped (its error is on stderr)"
                );
                assert!(
                    t0.elapsed() < deadline,
                    "epoch {k}: {} nodes behind",
                    pending.len()
                );
                pending.retain(|&a| epoch_at(a) < k);
            }
            props.push(t0.elapsed().as_secs_f64());
        }
        // Gossip bytes per node per round in a quiet period.
        let sum =
            |name: &str| -> f64 { https.iter().map(|&a| metric(a, name).unwrap_or(0.0)).sum() };
        let (b0, r0) = (
            sum("trustmesh_gossip_bytes_sent_total"),
            sum("trustmesh_gossip_rounds_total"),
        );
        std::thread::sleep(Duration::from_secs(3));
        let (b1, r1) = (
            sum("trustmesh_gossip_bytes_sent_total"),
            sum("trustmesh_gossip_rounds_total"),
        );
        println!(
            "nodes {n}, gossip every {gossip_ms} ms: epochs 1..3 announced everywhere after {} s, held everywhere after {} s (from the publisher serving them); recompute (cold, 1..3 copies of the log): {} s; gossip sent per node per round (quiet): {:.0} bytes",
            gossiped.iter().map(|p| format!("{p:.3}")).collect::<Vec<_>>().join(", "),
            props.iter().map(|p| format!("{p:.3}")).collect::<Vec<_>>().join(", "),
            recomputes.iter().map(|p| format!("{p:.3}")).collect::<Vec<_>>().join(", "),
            (b1 - b0) / (r1 - r0).max(1.0)
        );
        let _ = stop_tx.send(true);
        rt.block_on(async {
            for t in tasks {
                let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
            }
        });
    }
}

/// Configuration mistakes are run errors that say what to fix.
#[test]
fn serve_refuses_bad_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("n.key");
    let pkey = new_key(&key);
    let state = tmp.path().join("state");
    // Free ports for both addresses, never the defaults (another node or
    // test may hold 127.0.0.1:7700).
    let run = |extra: &[&str]| {
        let mut t = Trustmesh::new()
            .args(["serve", "--key"])
            .arg(&key)
            .arg("--state")
            .arg(&state)
            .args(["--gossip", &free_udp().to_string()]);
        if !extra.contains(&"--http") {
            t = t.args(["--http", "127.0.0.1:0"]);
        }
        t.args(extra.iter().copied())
    };
    run(&[]).fails(1).stderr_has(&["nothing to serve"]);
    run(&["--trust-publisher", "zz"])
        .fails(1)
        .stderr_has(&["--trust-publisher zz"]);
    run(&["--trust-publisher", &pkey, "--http", "0.0.0.0:0"])
        .fails(1)
        .stderr_has(&["must be one they can reach"]);
    run(&["--trust-publisher", &pkey, "--network", "a/b"])
        .fails(1)
        .stderr_has(&["network id"]);
    run(&["--trust-publisher", &pkey, "--interval", "soon"])
        .fails(1)
        .stderr_has(&["--interval"]);
    run(&[
        "--trust-publisher",
        &pkey,
        "--gossip-interval",
        "1000000000w",
    ])
    .fails(1)
    .stderr_has(&["--gossip-interval"]);
    run(&["--trust-publisher", &pkey, "--mqtt", "mqtts://h:1"])
        .fails(1)
        .stderr_has(&["plain mqtt://"]);
}
