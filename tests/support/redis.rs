//! Real redis-server processes for the fleet tests (Debian's `redis-server`, started here on
//! loopback ports of our own, killed on drop): one server (optionally TLS and a password), a
//! three-node Redis Cluster, and a server that can be killed and restarted on its data.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port free for a server and, for Cluster nodes, for its bus (port + 10000).
pub fn free_port_pair() -> u16 {
    use std::net::TcpListener;
    // Below 55536 so that the Cluster bus port exists; spread by pid to keep parallel tests apart.
    let start = 20_000 + (std::process::id() % 2_000) as u16 * 10;
    for port in (start..40_000).chain(20_000..start) {
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 10_000) && PORTS_TAKEN.lock().unwrap().insert(port) {
            return port;
        }
    }
    panic!("no free loopback port pair");
}

static PORTS_TAKEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// TLS files for `redis-server --tls-port`: a test CA and a server certificate for 127.0.0.1.
pub struct TestCerts {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Makes a CA and a server certificate (IP SAN 127.0.0.1) in `dir` with `openssl`.
pub fn make_certs(dir: &Path) -> TestCerts {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=xdpcarve test CA"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    run(&ca);
    let mut csr = vec![
        "req",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ];
    csr.extend(ec);
    run(&csr);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        "server.crt",
        "-extfile",
        "server.ext",
    ]);
    TestCerts {
        ca: dir.join("ca.crt"),
        cert: dir.join("server.crt"),
        key: dir.join("server.key"),
    }
}

/// One redis-server on 127.0.0.1, its data (an append-only file, fsynced on every write, so a
/// kill loses nothing it acknowledged) in its own directory.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    args: Vec<String>,
    tls: bool,
}

impl RedisServer {
    /// Starts a plain server.
    pub fn start(dir: &Path) -> RedisServer {
        RedisServer::start_with(dir, &[], false)
    }

    /// Starts a server with more `redis-server` arguments; `tls`: the port speaks only TLS.
    pub fn start_with(dir: &Path, extra: &[String], tls: bool) -> RedisServer {
        let port = free_port_pair();
        let dir = dir.join(format!("redis-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let port_args = if tls {
            vec!["--port".to_string(), "0".into(), "--tls-port".into(), port.to_string()]
        } else {
            vec!["--port".to_string(), port.to_string()]
        };
        let mut args: Vec<String> = port_args;
        args.extend(
            [
                "--bind",
                "127.0.0.1",
                "--dir",
                dir.to_str().unwrap(),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--protected-mode",
                "no",
                "--logfile",
                "redis.log",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        args.extend(extra.iter().cloned());
        let mut s = RedisServer {
            child: None,
            port,
            dir,
            args,
            tls,
        };
        s.launch();
        s
    }

    fn launch(&mut self) {
        let log = self.dir.join("redis.log");
        let before = std::fs::read_to_string(&log).map(|t| t.len()).unwrap_or(0);
        let child = Command::new("redis-server")
            .args(&self.args)
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text
                .get(before..)
                .is_some_and(|t| t.contains("Ready to accept connections"))
            {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "redis-server exited ({status}) at start: {}",
                    text.get(before..).unwrap_or("")
                );
            }
            assert!(Instant::now() < deadline, "redis-server not ready within 20 s: {text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:<port>` (or `rediss://`).
    pub fn url(&self) -> String {
        format!(
            "{}://127.0.0.1:{}",
            if self.tls { "rediss" } else { "redis" },
            self.port
        )
    }

    /// SIGKILL: no shutdown, as a crash or an OOM kill.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis Cluster of three masters (no replicas), made with `redis-cli --cluster create`.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start(dir: &Path) -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|i| {
                let extra = [
                    "--cluster-enabled".to_string(),
                    "yes".into(),
                    "--cluster-config-file".into(),
                    format!("nodes-{i}.conf"),
                    "--cluster-node-timeout".into(),
                    "2000".into(),
                ];
                RedisServer::start_with(dir, &extra, false)
            })
            .collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for n in &nodes {
            create.arg(format!("127.0.0.1:{}", n.port));
        }
        let out = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        for n in &nodes {
            loop {
                let out = Command::new("redis-cli")
                    .args(["-p", &n.port.to_string(), "cluster", "info"])
                    .output()
                    .expect("redis-cli runs");
                if String::from_utf8_lossy(&out.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "cluster not ok within 30 s");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        RedisCluster { nodes }
    }

    /// The seed list for `fleet.redis`: every node, comma-separated.
    pub fn urls(&self) -> String {
        self.nodes.iter().map(RedisServer::url).collect::<Vec<_>>().join(",")
    }
}

/// One stream entry as xdpcarve writes it.
#[derive(Debug)]
pub struct Entry {
    pub id: String,
    pub sensor: String,
    pub kind: String,
    pub record: serde_json::Value,
    /// The file's sightings (absent for verdicts).
    pub sightings: Option<serde_json::Value>,
}

/// Every entry of `stream`, oldest first, through any connection (a server or a cluster).
pub fn stream_entries(con: &mut dyn redis::ConnectionLike, stream: &str) -> Vec<Entry> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query(con)
        .expect("XRANGE");
    reply
        .ids
        .into_iter()
        .map(|e| {
            let field = |k: &str| -> String { e.get(k).unwrap_or_else(|| panic!("entry {} has no field {k}", e.id)) };
            Entry {
                sensor: field("sensor"),
                kind: field("kind"),
                record: serde_json::from_str(&field("record")).expect("record is JSON"),
                sightings: e
                    .get::<String>("sightings")
                    .map(|s| serde_json::from_str(&s).expect("sightings are JSON")),
                id: e.id.clone(),
            }
        })
        .collect()
}
