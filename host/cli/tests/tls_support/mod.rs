//! A PostgreSQL server of the test's own with TLS switched on: certificates made by
//! the test (openssl CLI), a cluster made by `initdb` in a temporary folder, listening
//! on a free port of 127.0.0.1 for TLS connections only, stopped when dropped.
//!
//! The server certificate is issued by the test's CA for the host name `localhost`
//! only, so `127.0.0.1` is a wrong host name for `verify-full`. Roles:
//! `postgres` (trust over TLS), `ferry_cert` (client certificate only) and `ferry_pw`
//! (password only, [`PASSWORD`]).
//!
//! `None` (after saying why) where the machine has no `initdb` or `openssl`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The password of the role `ferry_pw`.
pub const PASSWORD: &str = "pw-Only-For-Ferry-Tls-7431";

pub struct TlsServer {
    pub dir: tempfile::TempDir,
    pub port: u16,
    bin: PathBuf,
    as_postgres: bool,
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    run(Command::new("openssl").current_dir(dir).args(args));
}

/// Makes `NAME.key` and `NAME.crt` for subject `cn`, signed by `ca` (self-signed without).
fn certificate(dir: &Path, name: &str, cn: &str, ca: Option<&str>, san: Option<&str>) {
    let key = format!("{name}.key");
    let crt = format!("{name}.crt");
    let subject = format!("/CN={cn}");
    match ca {
        None => openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &crt,
                "-days",
                "2",
                "-subj",
                &subject,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ),
        Some(ca) => {
            let csr = format!("{name}.csr");
            openssl(
                dir,
                &[
                    "req",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-keyout",
                    &key,
                    "-out",
                    &csr,
                    "-subj",
                    &subject,
                ],
            );
            let ext = format!("{name}.ext");
            let mut text = String::from("basicConstraints=CA:FALSE\n");
            if let Some(san) = san {
                text.push_str(&format!("subjectAltName={san}\n"));
            }
            std::fs::write(dir.join(&ext), text).unwrap();
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    &format!("{ca}.crt"),
                    "-CAkey",
                    &format!("{ca}.key"),
                    "-CAcreateserial",
                    "-out",
                    &crt,
                    "-days",
                    "2",
                    "-extfile",
                    &ext,
                ],
            );
        }
    }
    set_mode(&dir.join(&key), 0o600);
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn find_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop()
}

impl TlsServer {
    pub fn start(test: &str) -> Option<TlsServer> {
        let Some(bin) = find_bin() else {
            eprintln!("{test}: skipped, no initdb under /usr/lib/postgresql/*/bin");
            return None;
        };
        if Command::new("openssl").arg("version").output().is_err() {
            eprintln!("{test}: skipped, no openssl command");
            return None;
        }
        let as_postgres = unsafe { libc::geteuid() } == 0;
        let dir = tempfile::tempdir().unwrap();
        set_mode(dir.path(), 0o755);
        let certs = &dir.path().to_path_buf();
        certificate(certs, "ca", "ferry-test-ca", None, None);
        certificate(certs, "other_ca", "ferry-other-ca", None, None);
        certificate(
            certs,
            "server",
            "localhost",
            Some("ca"),
            Some("DNS:localhost"),
        );
        certificate(certs, "client", "ferry_cert", Some("ca"), None);
        let data = dir.path().join("data");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = TlsServer {
            dir,
            port,
            bin,
            as_postgres,
        };
        let sock = server.dir.path().join("sock");
        std::fs::create_dir(&data).unwrap();
        std::fs::create_dir(&sock).unwrap();
        set_mode(&data, 0o700);
        if as_postgres {
            run(Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&data)
                .arg(&sock));
        }
        server.pg(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
            ],
        );
        for f in ["server.crt", "server.key", "ca.crt"] {
            std::fs::copy(certs.join(f), data.join(f)).unwrap();
        }
        set_mode(&data.join("server.key"), 0o600);
        let conf = format!(
            "\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
             ssl_ca_file = 'ca.crt'\nlisten_addresses = '127.0.0.1'\nport = {port}\n\
             unix_socket_directories = '{}'\nfsync = off\n",
            sock.display()
        );
        let mut text = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        text.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), text).unwrap();
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all ferry_cert 127.0.0.1/32 cert\n\
             hostssl all ferry_pw 127.0.0.1/32 scram-sha-256\n\
             hostssl all all 127.0.0.1/32 trust\n\
             hostnossl all all 127.0.0.1/32 reject\n",
        )
        .unwrap();
        if as_postgres {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&data));
        }
        let log = server.dir.path().join("sock").join("server.log");
        server.pg(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        let sql = format!(
            "CREATE ROLE ferry_cert LOGIN SUPERUSER; CREATE ROLE ferry_pw LOGIN SUPERUSER PASSWORD '{PASSWORD}';"
        );
        server.pg(
            "psql",
            &[
                "-h",
                sock.to_str().unwrap(),
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-qc",
                &sql,
            ],
        );
        Some(server)
    }

    /// Runs one of the server's programs (as the user postgres when we are root).
    fn pg(&self, program: &str, args: &[&str]) {
        let path = if program == "psql" && !self.bin.join("psql").exists() {
            PathBuf::from("psql")
        } else {
            self.bin.join(program)
        };
        if self.as_postgres {
            run(Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(path)
                .args(args)
                .current_dir("/"));
        } else {
            run(Command::new(path).args(args));
        }
    }

    /// A file of the test's certificates (`ca.crt`, `other_ca.crt`, `client.key`, …).
    pub fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// `postgresql://USER@HOST:PORT/postgres` and `?query` when not empty.
    pub fn url(&self, user: &str, host: &str, query: &str) -> String {
        let base = format!("postgresql://{user}@{host}:{}/postgres", self.port);
        if query.is_empty() {
            base
        } else {
            format!("{base}?{query}")
        }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let args = ["-D", data.to_str().unwrap(), "-m", "immediate", "stop"];
        let path = self.bin.join("pg_ctl");
        let _ = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(path)
                .args(args)
                .current_dir("/")
                .output()
        } else {
            Command::new(path).args(args).output()
        };
    }
}
