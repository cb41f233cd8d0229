//! Connecting over TLS as libpq does, against a server of the test's own
//! (tls_support): each sslmode, root certificates, host names, client certificates,
//! passwords from the URL, PGPASSWORD and the password file, the PG* environment
//! variables, and passwords never shown in anything Ferry prints.

mod tls_support;

use std::process::{Command, Output};

use ferry::backend::{connect, DbUrl, Value};
use tls_support::{TlsServer, PASSWORD};

/// Connects in-process; `Ok(whether the session is encrypted)` or the error text.
fn try_connect(url: &str) -> Result<bool, String> {
    let url = DbUrl::parse(url).map_err(|e| e.to_string())?;
    let mut conn = connect(&url).map_err(|e| e.to_string())?;
    let rows = conn
        .query(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .map_err(|e| e.to_string())?;
    Ok(matches!(rows.rows[0][0], Value::Bool(true)))
}

fn refused(url: &str, what: &str) -> String {
    match try_connect(url) {
        Ok(_) => panic!("{what}: {url} should be refused"),
        Err(e) => e,
    }
}

/// Runs the ferry binary with `env` (and a home folder of its own), no scripts.
fn ferry(server: &TlsServer, env: &[(&str, String)], args: &[&str]) -> Output {
    let home = server.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.args(args)
        .current_dir(server.dir.path())
        .env("HOME", &home)
        .env_remove("FERRY_DB");
    for var in [
        "PGSSLMODE",
        "PGSSLROOTCERT",
        "PGSSLCERT",
        "PGSSLKEY",
        "PGPASSWORD",
        "PGPASSFILE",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn each_sslmode_connects_or_refuses_as_libpq_does() {
    let Some(server) = TlsServer::start("each_sslmode") else {
        return;
    };
    let ca = server.file("ca.crt");
    let other = server.file("other_ca.crt");
    let url = |user: &str, host: &str, q: &str| server.url(user, host, q);

    // The server accepts TLS connections only.
    let e = refused(&url("postgres", "localhost", "sslmode=disable"), "disable");
    assert!(e.contains("no encryption"), "{e}");
    // prefer (the default) and require take the certificate unverified.
    assert_eq!(try_connect(&url("postgres", "localhost", "")), Ok(true));
    assert_eq!(
        try_connect(&url("postgres", "127.0.0.1", "sslmode=prefer")),
        Ok(true)
    );
    assert_eq!(
        try_connect(&url("postgres", "127.0.0.1", "sslmode=require")),
        Ok(true)
    );
    // verify-full: the right root and the certificate's host name.
    let full = |host: &str, root: &str| {
        url(
            "postgres",
            host,
            &format!("sslmode=verify-full&sslrootcert={root}"),
        )
    };
    assert_eq!(try_connect(&full("localhost", &ca)), Ok(true));
    let e = refused(&full("localhost", &other), "verify-full, wrong root");
    assert!(e.contains("certificate verify failed"), "{e}");
    let e = refused(&full("127.0.0.1", &ca), "verify-full, wrong host name");
    assert!(
        e.contains("certificate verify failed") && e.to_lowercase().contains("mismatch"),
        "{e}"
    );
    // verify-ca checks the root, not the host name.
    let ca_only = |host: &str, root: &str| {
        url(
            "postgres",
            host,
            &format!("sslmode=verify-ca&sslrootcert={root}"),
        )
    };
    assert_eq!(try_connect(&ca_only("127.0.0.1", &ca)), Ok(true));
    let e = refused(&ca_only("127.0.0.1", &other), "verify-ca, wrong root");
    assert!(e.contains("certificate verify failed"), "{e}");
    // require with a root certificate file checks the chain, as libpq does.
    let e = refused(
        &url(
            "postgres",
            "127.0.0.1",
            &format!("sslmode=require&sslrootcert={other}"),
        ),
        "require with a root file",
    );
    assert!(e.contains("certificate verify failed"), "{e}");
    // A missing root file is named.
    let e = refused(
        &url(
            "postgres",
            "localhost",
            "sslmode=verify-full&sslrootcert=/nonexistent/ca.crt",
        ),
        "missing root",
    );
    assert!(e.contains("/nonexistent/ca.crt"), "{e}");
}

#[test]
fn client_certificates_and_the_environment() {
    let Some(server) = TlsServer::start("client_certificates") else {
        return;
    };
    let ca = server.file("ca.crt");
    let cert = server.file("client.crt");
    let key = server.file("client.key");
    // The role ferry_cert logs in with its certificate only.
    let with_cert = server.url(
        "ferry_cert",
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}&sslcert={cert}&sslkey={key}"),
    );
    assert_eq!(try_connect(&with_cert), Ok(true));
    let e = refused(
        &server.url(
            "ferry_cert",
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
        "no client certificate",
    );
    assert!(e.contains("certificate"), "{e}");

    // The same through the PG* variables, as libpq reads them, with the binary.
    let status = |user: &str, env: &[(&str, String)]| {
        let url = format!("{}?schema=public", server.url(user, "localhost", ""));
        ferry(&server, env, &["--db", &url, "--scripts", ".", "status"])
    };
    let tls_env = vec![
        ("PGSSLMODE", "verify-full".to_string()),
        ("PGSSLROOTCERT", ca.clone()),
        ("PGSSLCERT", cert.clone()),
        ("PGSSLKEY", key.clone()),
    ];
    let out = status("ferry_cert", &tls_env);
    assert!(out.status.success(), "{}", text(&out));
    let out = status("ferry_cert", &[("PGSSLMODE", "disable".into())]);
    assert!(!out.status.success());
    assert!(text(&out).contains("no encryption"), "{}", text(&out));
    let out = status(
        "postgres",
        &[
            ("PGSSLMODE", "verify-full".into()),
            ("PGSSLROOTCERT", server.file("other_ca.crt")),
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("certificate verify failed"),
        "{}",
        text(&out)
    );

    // A private key that others may read is refused, naming the file.
    let loose = server.dir.path().join("loose.key");
    std::fs::copy(&key, &loose).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = refused(
        &server.url(
            "ferry_cert",
            "localhost",
            &format!("sslmode=require&sslcert={cert}&sslkey={}", loose.display()),
        ),
        "loose key",
    );
    assert!(e.contains("loose.key") && e.contains("0644"), "{e}");
}

#[test]
fn passwords_come_from_the_url_pgpassword_and_the_password_file_and_are_never_shown() {
    let Some(server) = TlsServer::start("passwords") else {
        return;
    };
    let status = |url: &str, env: &[(&str, String)], extra: &[&str]| {
        let mut args = vec!["--db", url, "--scripts", "."];
        args.extend_from_slice(extra);
        ferry(&server, env, &args)
    };
    let with_pw = |pw: &str| {
        format!(
            "postgresql://ferry_pw:{pw}@localhost:{}/postgres?sslmode=require&schema=public",
            server.port
        )
    };
    let no_pw = format!(
        "{}&schema=public",
        server.url("ferry_pw", "localhost", "sslmode=require")
    );

    // Without a password: refused.
    let out = status(&no_pw, &[], &["status"]);
    assert!(!out.status.success(), "{}", text(&out));
    // From the URL, from PGPASSWORD, from a password file.
    let out = status(&with_pw(PASSWORD), &[], &["status"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = status(&no_pw, &[("PGPASSWORD", PASSWORD.into())], &["status"]);
    assert!(out.status.success(), "{}", text(&out));
    let passfile = server.dir.path().join("pgpass");
    std::fs::write(
        &passfile,
        format!("localhost:{}:postgres:ferry_pw:{PASSWORD}\n", server.port),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = status(
        &no_pw,
        &[("PGPASSFILE", passfile.display().to_string())],
        &["status"],
    );
    assert!(out.status.success(), "{}", text(&out));
    // ~/.pgpass of the home folder.
    let home_pgpass = server.dir.path().join("home").join(".pgpass");
    std::fs::copy(&passfile, &home_pgpass).unwrap();
    std::fs::set_permissions(&home_pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = status(&no_pw, &[], &["status"]);
    assert!(out.status.success(), "{}", text(&out));
    std::fs::remove_file(&home_pgpass).unwrap();

    // A wrong password, in every form: refused, and never printed.
    let wrong = "Wrong-Pw-Never-Shown-5512";
    let outs = [
        status(&with_pw(wrong), &[], &["status"]),
        status(&with_pw(wrong), &[], &["status", "--json"]),
        status(&with_pw(wrong), &[], &["history"]),
        status(&format!("{no_pw}&password={wrong}"), &[], &["status"]),
        status(&no_pw, &[("PGPASSWORD", wrong.into())], &["status"]),
    ];
    for out in &outs {
        let all = text(out);
        assert!(!out.status.success(), "{all}");
        assert!(all.contains("password authentication failed"), "{all}");
        assert!(!all.contains(wrong), "the password is shown: {all}");
    }
    // The right password: status, history, --json, plan and upgrade never show it.
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["history"],
        &["history", "--json"],
        &["plan"],
        &["upgrade"],
        &["heads"],
    ] {
        let out = status(&with_pw(PASSWORD), &[], args);
        let all = text(&out);
        assert!(out.status.success(), "{args:?}: {all}");
        assert!(
            !all.contains(PASSWORD),
            "{args:?} shows the password: {all}"
        );
    }
    // A server that is not there.
    let gone = format!("postgresql://ferry_pw:{PASSWORD}@127.0.0.1:1/postgres?schema=public");
    for args in [&["status"][..], &["status", "--json"], &["upgrade"]] {
        let out = status(&gone, &[], args);
        let all = text(&out);
        assert!(!out.status.success(), "{all}");
        assert!(
            !all.contains(PASSWORD),
            "{args:?} shows the password: {all}"
        );
        assert!(
            all.contains("***"),
            "{args:?}: the URL is shown masked: {all}"
        );
    }
}
