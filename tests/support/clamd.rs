//! A real clamd of the test's own (Debian's `clamav-daemon` package, installed by tests/setup.sh):
//! a temporary config with its Unix socket in a temp dir, in the foreground, reading a test-only
//! signature database the test writes (MD5 hash signatures, `md5:size:Name`, in a `.hdb` file),
//! so nothing is downloaded. Stopped (killed and reaped) on drop.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::carve::TempDir;

/// One hash signature: a file of exactly these bytes is reported as `name` (clamd adds
/// `.UNOFFICIAL` to the names of signatures from a database it did not sign itself).
pub struct HashSig {
    pub md5: String,
    pub size: u64,
    pub name: String,
}

impl HashSig {
    pub fn of(data: &[u8], name: &str) -> HashSig {
        use md5::{Digest, Md5};
        HashSig {
            md5: Md5::digest(data).iter().map(|b| format!("{b:02x}")).collect(),
            size: data.len() as u64,
            name: name.to_string(),
        }
    }
}

/// A running clamd of the test.
pub struct Clamd {
    child: Child,
    pub socket: PathBuf,
    log: PathBuf,
    // Last, so the directory goes after the process is gone.
    dir: TempDir,
}

/// The clamd program: on PATH, or in the sbin folders a non-root PATH leaves out.
pub fn clamd_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join("clamd"))
        .find(|p| p.is_file())
}

impl Clamd {
    /// Starts clamd with a database of `sigs` and waits (up to a minute: loading is quick with
    /// so small a database) until it answers PING on its socket.
    pub fn start(sigs: &[HashSig]) -> Result<Clamd, String> {
        let bin = clamd_binary().ok_or("clamd not found (Debian package clamav-daemon; run tests/setup.sh)")?;
        let mut dir = TempDir::new("clamd");
        // A Unix socket path has at most 107 bytes: fall back to /tmp under a long TMPDIR.
        if dir.0.join("clamd.sock").as_os_str().len() > 100 {
            drop(dir);
            let short = PathBuf::from(format!("/tmp/xdpcarve-clamd-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&short);
            std::fs::create_dir_all(&short).map_err(|e| format!("{}: {e}", short.display()))?;
            dir = TempDir(short);
        }
        let db = dir.path("db");
        let tmp = dir.path("tmp");
        for d in [&db, &tmp] {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let mut hdb = String::new();
        for s in sigs {
            hdb.push_str(&format!("{}:{}:{}\n", s.md5, s.size, s.name));
        }
        std::fs::write(db.join("xdpcarve-test.hdb"), hdb).map_err(|e| format!("write the database: {e}"))?;
        let socket = dir.path("clamd.sock");
        let log = dir.path("clamd.log");
        let conf = dir.path("clamd.conf");
        // No `User`: it runs as whoever runs the test. No self-check, no TCP socket.
        std::fs::write(
            &conf,
            format!(
                "LocalSocket {}\nFixStaleSocket yes\nForeground yes\nDatabaseDirectory {}\n\
                 TemporaryDirectory {}\nLogFile {}\nLogTime yes\nSelfCheck 0\nMaxThreads 4\n\
                 StreamMaxLength 64M\n",
                socket.display(),
                db.display(),
                tmp.display(),
                log.display()
            ),
        )
        .map_err(|e| format!("write the config: {e}"))?;
        let out = std::fs::File::create(dir.path("clamd.out")).map_err(|e| e.to_string())?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("start {}: {e}", bin.display()))?;
        let mut clamd = Clamd {
            child,
            socket,
            log,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = clamd.child.try_wait() {
                return Err(format!("clamd exited ({status}) before answering:\n{}", clamd.output()));
            }
            if clamd.socket.exists() && clamd.command("zPING\0").is_ok_and(|a| a == "PONG") {
                return Ok(clamd);
            }
            if Instant::now() > deadline {
                return Err(format!("clamd did not answer PING within 60 s:\n{}", clamd.output()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What clamd printed and logged, for failure messages.
    pub fn output(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!(
            "--- clamd stdout/stderr:\n{}--- clamd log:\n{}",
            read(&self.dir.path("clamd.out")),
            read(&self.log)
        )
    }

    /// Sends one z-command (NUL-terminated) and returns the answer without its NUL.
    pub fn command(&self, cmd: &str) -> std::io::Result<String> {
        let mut s = UnixStream::connect(&self.socket)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(cmd.as_bytes())?;
        let mut answer = Vec::new();
        s.read_to_end(&mut answer)?;
        Ok(String::from_utf8_lossy(&answer)
            .trim_end_matches(['\0', '\n'])
            .to_string())
    }

    /// Scans `data` over INSTREAM, as the sensor does: `stream: OK` or `stream: NAME FOUND`.
    pub fn instream(&self, data: &[u8]) -> std::io::Result<String> {
        let mut s = UnixStream::connect(&self.socket)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.write_all(b"zINSTREAM\0")?;
        for chunk in data.chunks(8192) {
            s.write_all(&(chunk.len() as u32).to_be_bytes())?;
            s.write_all(chunk)?;
        }
        s.write_all(&0u32.to_be_bytes())?;
        let mut answer = Vec::new();
        s.read_to_end(&mut answer)?;
        Ok(String::from_utf8_lossy(&answer)
            .trim_end_matches(['\0', '\n'])
            .to_string())
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
