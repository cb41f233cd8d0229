//! Connecting to a server as libpq would: TLS (`sslmode`, `sslrootcert`, `sslcert`,
//! `sslkey`) and the password (`password`, `PGPASSWORD`, the password file), from the
//! URL first and from the `PG*` environment variables second.
//!
//! TLS goes through `postgres-native-tls` (the system's OpenSSL on Linux, as libpq
//! uses): it is kept in the same repository as `tokio-postgres`, and each of libpq's
//! modes maps onto one `native-tls` setting without a certificate verifier of our own:
//!
//! | sslmode | TLS | server certificate |
//! | --- | --- | --- |
//! | `disable` | never | — |
//! | `prefer` (libpq's default, and ours) | if the server offers it | not checked |
//! | `require` | always | not checked (checked as `verify-ca` when a root certificate file is there) |
//! | `verify-ca` | always | signed by a root of `sslrootcert` |
//! | `verify-full` | always | signed, and issued for the host name |
//!
//! Nothing here ever puts a password into a message.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use native_tls::{Certificate, Identity, TlsConnector};
use postgres_native_tls::MakeTlsConnector;
use tokio::task::JoinHandle;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{Client, Config};

use crate::backend::pg_runtime::IoRuntime;

/// The client of a connection: connected by Ferry, or made by an application's pool.
pub enum PgClient {
    Own(Client),
    Pooled(deadpool_postgres::ClientWrapper),
    /// Checked out of Ferry's own step pool (`workers.rs`), back to it when dropped.
    Checkout(deadpool_postgres::Object),
}

impl std::ops::Deref for PgClient {
    type Target = Client;
    fn deref(&self) -> &Client {
        match self {
            PgClient::Own(c) => c,
            PgClient::Pooled(c) => c,
            PgClient::Checkout(c) => c,
        }
    }
}

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl TlsMode {
    fn parse(text: &str, from: &str) -> Result<TlsMode, String> {
        Ok(match text {
            "disable" => TlsMode::Disable,
            "allow" | "prefer" => TlsMode::Prefer,
            "require" => TlsMode::Require,
            "verify-ca" => TlsMode::VerifyCa,
            "verify-full" => TlsMode::VerifyFull,
            other => {
                return Err(format!(
                    "{from}: invalid sslmode {other:?} (use disable, prefer, require, verify-ca or verify-full)"
                ))
            }
        })
    }
}

/// How to connect: the driver's configuration and the TLS connector.
#[derive(Clone)]
pub struct Settings {
    pub config: Config,
    pub tls: MakeTlsConnector,
    /// The sslmode as given (read by the tests).
    #[allow(dead_code)]
    pub mode: TlsMode,
}

/// Where the settings that libpq reads from its surroundings come from: the
/// environment and the home folder (a parameter so that tests need not change either).
pub struct Surroundings<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub home: Option<PathBuf>,
}

impl Surroundings<'static> {
    /// The process's environment and home folder.
    pub fn process() -> Surroundings<'static> {
        Surroundings {
            env: &|name| std::env::var(name).ok().filter(|v| !v.is_empty()),
            home: std::env::var_os("HOME").map(PathBuf::from),
        }
    }
}

/// The keys Ferry reads itself; the driver is given the others.
const OWN_KEYS: [&str; 5] = ["sslmode", "sslrootcert", "sslcert", "sslkey", "passfile"];

/// Reads a `postgres://` URL (without Ferry's `schema`) the way libpq would.
pub fn settings(conninfo: &str, around: &Surroundings<'_>) -> Result<Settings, String> {
    let (base, query) = match conninfo.split_once('?') {
        Some((b, q)) => (b, q),
        None => (conninfo, ""),
    };
    let mut own: Vec<(&str, String)> = Vec::new();
    let mut kept: Vec<&str> = Vec::new();
    for param in query.split('&').filter(|p| !p.is_empty()) {
        match param.split_once('=') {
            Some((key, value)) if OWN_KEYS.contains(&key) => {
                let value = url::form_urlencoded::parse(format!("v={value}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                own.push((key, value));
            }
            _ => kept.push(param),
        }
    }
    let driver_url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config: Config = driver_url.parse().map_err(|e: tokio_postgres::Error| {
        // The driver's messages name the option, never its value.
        let mut text = format!("cannot read the URL: {e}");
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            text.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        text
    })?;
    // URL first, environment second, as libpq.
    let setting = |key: &str, var: &str| -> Option<(String, String)> {
        own.iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| (v.clone(), format!("the URL's {key}")))
            .or_else(|| (around.env)(var).map(|v| (v, var.to_string())))
    };
    let mode = match setting("sslmode", "PGSSLMODE") {
        Some((text, from)) => TlsMode::parse(&text, &from)?,
        None => TlsMode::Prefer,
    };
    let postgresql_dir = around.home.as_ref().map(|h| h.join(".postgresql"));
    let default_file = |name: &str| postgresql_dir.as_ref().map(|d| d.join(name));

    let mut tls = TlsConnector::builder();
    let mut effective = mode;
    let root = match setting("sslrootcert", "PGSSLROOTCERT") {
        Some((path, from)) => Some((path, from)),
        None => default_file("root.crt")
            .filter(|p| p.exists() || matches!(mode, TlsMode::VerifyCa | TlsMode::VerifyFull))
            .map(|p| {
                (
                    p.display().to_string(),
                    "the default ~/.postgresql/root.crt".into(),
                )
            }),
    };
    match &root {
        Some((path, from)) if path == "system" && mode != TlsMode::VerifyFull => {
            return Err(format!(
                "{from}: sslrootcert=system needs sslmode=verify-full (libpq refuses a weaker mode with the system's roots)"
            ));
        }
        // The system's roots: native-tls's default.
        Some((path, _)) if path == "system" => {}
        // prefer and require use a root file only when it is there; verify-* need one.
        Some((path, from))
            if matches!(mode, TlsMode::VerifyCa | TlsMode::VerifyFull)
                || (mode != TlsMode::Disable && Path::new(path).exists()) =>
        {
            let pem = fs::read(path).map_err(|e| {
                format!(
                    "root certificate file {path:?} ({from}) cannot be read: {e}; \
                     give sslrootcert, use sslrootcert=system, or use an sslmode that does \
                     not verify the server (require)"
                )
            })?;
            let certs = certificates(&pem)
                .map_err(|e| format!("root certificate file {path:?} ({from}): {e}"))?;
            tls.disable_built_in_roots(true);
            for cert in certs {
                tls.add_root_certificate(cert);
            }
            // libpq: with a root certificate file, require checks the chain.
            if mode == TlsMode::Require {
                effective = TlsMode::VerifyCa;
            }
        }
        _ => {}
    }
    match effective {
        TlsMode::Disable | TlsMode::Prefer | TlsMode::Require => {
            tls.danger_accept_invalid_certs(true);
        }
        TlsMode::VerifyCa => {
            tls.danger_accept_invalid_hostnames(true);
        }
        TlsMode::VerifyFull => {}
    }
    let cert = setting("sslcert", "PGSSLCERT").or_else(|| {
        default_file("postgresql.crt")
            .filter(|p| p.exists())
            .map(|p| {
                (
                    p.display().to_string(),
                    "the default ~/.postgresql/postgresql.crt".into(),
                )
            })
    });
    if let Some((cert_path, cert_from)) = cert {
        if mode != TlsMode::Disable && Path::new(&cert_path).exists() {
            let (key_path, key_from) = setting("sslkey", "PGSSLKEY")
                .or_else(|| {
                    default_file("postgresql.key").map(|p| {
                        (
                            p.display().to_string(),
                            "the default ~/.postgresql/postgresql.key".into(),
                        )
                    })
                })
                .ok_or_else(|| format!("{cert_from} names {cert_path:?} but no sslkey is given"))?;
            let cert_pem = fs::read(&cert_path)
                .map_err(|e| format!("client certificate {cert_path:?} ({cert_from}): {e}"))?;
            check_key_permissions(Path::new(&key_path))
                .map_err(|e| format!("private key file {key_path:?} ({key_from}): {e}"))?;
            let key_pem = fs::read(&key_path)
                .map_err(|e| format!("private key file {key_path:?} ({key_from}): {e}"))?;
            let identity = Identity::from_pkcs8(&cert_pem, &key_pem).map_err(|e| {
                format!("client certificate {cert_path:?} with key {key_path:?}: {e}")
            })?;
            tls.identity(identity);
        }
    }
    config.ssl_mode(match mode {
        TlsMode::Disable => SslMode::Disable,
        TlsMode::Prefer => SslMode::Prefer,
        _ => SslMode::Require,
    });
    let connector = tls.build().map_err(|e| format!("cannot set up TLS: {e}"))?;

    if config.get_password().is_none() {
        if let Some(password) = (around.env)("PGPASSWORD") {
            config.password(password);
        } else {
            let passfile = setting("passfile", "PGPASSFILE")
                .map(|(p, from)| (PathBuf::from(p), from))
                .or_else(|| {
                    around
                        .home
                        .as_ref()
                        .map(|h| (h.join(".pgpass"), "the default ~/.pgpass".into()))
                });
            if let Some((path, _)) = passfile {
                if let Some(password) = password_from_file(&path, &config) {
                    config.password(password);
                }
            }
        }
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    Ok(Settings {
        config,
        tls: MakeTlsConnector::new(connector),
        mode,
    })
}

/// Every certificate of a PEM file.
fn certificates(pem: &[u8]) -> Result<Vec<Certificate>, String> {
    const END: &str = "-----END CERTIFICATE-----";
    let text = String::from_utf8_lossy(pem);
    let mut out = Vec::new();
    for block in text.split_inclusive(END).filter(|b| b.contains(END)) {
        out.push(Certificate::from_pem(block.trim_start().as_bytes()).map_err(|e| e.to_string())?);
    }
    if out.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    Ok(out)
}

/// libpq refuses a private key that others may read.
fn check_key_permissions(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path).map_err(|e| e.to_string())?;
    let mode = meta.mode() & 0o777;
    let by_root = meta.uid() == 0;
    let allowed = if by_root { 0o640 } else { 0o600 };
    if mode & !allowed != 0 {
        return Err(format!(
            "has permissions {mode:04o}: it must be u=rw (0600) or less, or u=rw,g=r (0640) or less if owned by root"
        ));
    }
    Ok(())
}

/// The password of the first matching line of a password file
/// (`hostname:port:database:username:password`, `*` matches anything, `\` escapes),
/// or `None`. libpq ignores a file that others may read, and so does Ferry.
fn password_from_file(path: &Path, config: &Config) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path).ok()?;
    if !meta.is_file() || meta.mode() & 0o077 != 0 {
        return None;
    }
    let text = fs::read_to_string(path).ok()?;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        _ => "localhost".to_string(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = config.get_user().unwrap_or("").to_string();
    let database = config.get_dbname().unwrap_or(&user).to_string();
    let wanted = [host.as_str(), &port, &database, &user];
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .find_map(|line| {
            let fields = split_pgpass(line);
            if fields.len() != 5 {
                return None;
            }
            let matches = fields[..4]
                .iter()
                .zip(wanted)
                .all(|(field, want)| field == "*" || field == want);
            matches.then(|| fields[4].clone())
        })
}

/// The `:`-separated fields of a password file line, with `\:` and `\\` unescaped.
fn split_pgpass(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("one field").push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

/// Connects, and runs the driver's connection task on `runtime`.
pub async fn connect(
    settings: Settings,
    runtime: &IoRuntime,
) -> Result<(Client, JoinHandle<()>), tokio_postgres::Error> {
    let (client, connection) = settings.config.connect(settings.tls).await?;
    let task = runtime.spawn(async move {
        // Errors surface on the client's next call as a closed connection.
        let _ = connection.await;
    });
    Ok((client, task))
}

/// A new connection made by an application's pool's manager (its server, credentials,
/// TLS and connect hooks), on the runtime that is current (Ferry's own), so that its
/// connection task runs whatever the application's runtime is doing.
pub async fn from_pool(
    pool: &deadpool_postgres::Pool,
) -> Result<deadpool_postgres::ClientWrapper, tokio_postgres::Error> {
    use deadpool::managed::Manager as _;
    pool.manager().create().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::os::unix::fs::PermissionsExt;

    fn with_env<'a>(vars: &'a HashMap<&'a str, String>, home: &Path) -> Surroundings<'a> {
        let env: &'a dyn Fn(&str) -> Option<String> =
            Box::leak(Box::new(move |name: &str| vars.get(name).cloned()));
        Surroundings {
            env,
            home: Some(home.to_path_buf()),
        }
    }

    #[test]
    fn sslmode_comes_from_the_url_before_the_environment() {
        let home = tempfile::tempdir().unwrap();
        let vars = HashMap::from([("PGSSLMODE", "disable".to_string())]);
        let around = with_env(&vars, home.path());
        let s = settings("postgres://u@h/db", &around).unwrap();
        assert_eq!(s.mode, TlsMode::Disable);
        assert_eq!(s.config.get_ssl_mode(), SslMode::Disable);
        let s = settings("postgres://u@h/db?sslmode=require", &around).unwrap();
        assert_eq!(s.mode, TlsMode::Require);
        assert_eq!(s.config.get_ssl_mode(), SslMode::Require);
        let none = HashMap::new();
        let s = settings("postgres://u@h/db", &with_env(&none, home.path())).unwrap();
        assert_eq!(s.mode, TlsMode::Prefer, "libpq's default");
        let err = settings("postgres://u@h/db?sslmode=maybe", &around)
            .err()
            .unwrap();
        assert!(
            err.contains("the URL's sslmode") && err.contains("maybe"),
            "{err}"
        );
    }

    #[test]
    fn verify_modes_need_a_root_certificate() {
        let home = tempfile::tempdir().unwrap();
        let none = HashMap::new();
        let err = settings(
            "postgres://u@h/db?sslmode=verify-full",
            &with_env(&none, home.path()),
        )
        .err()
        .unwrap();
        assert!(
            err.contains("root.crt") && err.contains("cannot be read"),
            "{err}"
        );
        let vars = HashMap::from([("PGSSLROOTCERT", "/nonexistent/ca.pem".to_string())]);
        let err = settings(
            "postgres://u@h/db?sslmode=verify-ca",
            &with_env(&vars, home.path()),
        )
        .err()
        .unwrap();
        assert!(
            err.contains("/nonexistent/ca.pem") && err.contains("PGSSLROOTCERT"),
            "{err}"
        );
    }

    #[test]
    fn passwords_come_from_the_url_the_environment_and_the_password_file() {
        let home = tempfile::tempdir().unwrap();
        let pgpass = home.path().join(".pgpass");
        fs::write(
            &pgpass,
            "# comment\nother:5432:*:*:no\nh:5432:db:u:from\\:file\n*:*:*:*:fallback\n",
        )
        .unwrap();
        fs::set_permissions(&pgpass, fs::Permissions::from_mode(0o600)).unwrap();
        let none = HashMap::new();
        let password = |url: &str, vars: &HashMap<&str, String>| {
            settings(url, &with_env(vars, home.path()))
                .unwrap()
                .config
                .get_password()
                .map(|p| String::from_utf8(p.to_vec()).unwrap())
        };
        assert_eq!(
            password("postgres://u:url@h/db", &none).as_deref(),
            Some("url")
        );
        let env = HashMap::from([("PGPASSWORD", "env".to_string())]);
        assert_eq!(password("postgres://u@h/db", &env).as_deref(), Some("env"));
        assert_eq!(
            password("postgres://u@h/db", &none).as_deref(),
            Some("from:file")
        );
        assert_eq!(
            password("postgres://v@h:5433/x", &none).as_deref(),
            Some("fallback")
        );
        // A file others may read is ignored, as libpq does.
        fs::set_permissions(&pgpass, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(password("postgres://u@h/db", &none), None);
        // PGPASSFILE names another file.
        let other = home.path().join("other.pgpass");
        fs::write(&other, "h:*:*:u:elsewhere\n").unwrap();
        fs::set_permissions(&other, fs::Permissions::from_mode(0o600)).unwrap();
        let env = HashMap::from([("PGPASSFILE", other.display().to_string())]);
        assert_eq!(
            password("postgres://u@h/db", &env).as_deref(),
            Some("elsewhere")
        );
    }

    #[test]
    fn a_private_key_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.key");
        fs::write(&key, "x").unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(check_key_permissions(&key).is_ok());
        fs::set_permissions(&key, fs::Permissions::from_mode(0o604)).unwrap();
        let err = check_key_permissions(&key).unwrap_err();
        assert!(err.contains("0604"), "{err}");
    }
}
