//! Commands that only read (status, plan, history, show, check, digest, graph, heads)
//! create nothing (issue 13, item 6): on a mistyped `sqlite:` path they say the file does
//! not exist and leave no file behind; on an existing repository they open the file
//! read-only and leave it byte for byte as it was.

mod common;

use common::*;
use std::path::Path;

const READ_ONLY: [&[&str]; 8] = [
    &["status"],
    &["status", "--json"],
    &["plan"],
    &["history"],
    &["show", "alpha-1"],
    &["check"],
    &["digest"],
    &["graph"],
];

/// Every entry of a directory, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn reading_commands_on_a_mistyped_path_create_nothing_and_say_so() {
    let db = TestDb::sqlite();
    let missing = db.dir().join("mistypd.sqlite");
    let url = format!("sqlite:{}", missing.display());
    let before = entries(db.dir());
    for args in READ_ONLY.iter().chain([&["heads"][..]].iter()) {
        let run = db.ferry().tree("linear").db_url(&url).run(args.iter());
        // What each command answers for an empty repository.
        let expected = match args[0] {
            "check" => 3,
            _ => 0,
        };
        let run = run.code(expected);
        if args[0] != "heads" {
            assert!(
                run.stderr.contains(&format!(
                    "the SQLite file {} does not exist",
                    missing.display()
                )),
                "{}: {}",
                run.what,
                run.stderr
            );
        }
        assert!(
            !missing.exists(),
            "{} created {}",
            run.what,
            missing.display()
        );
        assert_eq!(entries(db.dir()), before, "{} left files behind", run.what);
    }
    // The status names the file it was asked about.
    db.ferry()
        .tree("linear")
        .db_url(&url)
        .run(["status"])
        .success()
        .stdout_has(&format!("database: {url}"));
    // Writing commands still create a new repository.
    db.ferry()
        .tree("linear")
        .db_url(&url)
        .run(["upgrade"])
        .success();
    assert!(missing.exists());
}

#[test]
fn reading_commands_leave_an_existing_file_untouched() {
    let db = TestDb::sqlite();
    db.ferry()
        .tree("linear")
        .run(["upgrade", "alpha-2"])
        .success();
    let path = db
        .url()
        .strip_prefix("sqlite:")
        .map(std::path::PathBuf::from)
        .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let files = entries(db.dir());
    for args in READ_ONLY {
        let run = db.ferry().tree("linear").run(args.iter());
        let expected = if args[0] == "check" { 3 } else { 0 };
        let run = run.code(expected);
        assert!(
            !run.stderr.contains("does not exist"),
            "{}: {}",
            run.what,
            run.stderr
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "{} changed the file",
            run.what
        );
        assert_eq!(entries(db.dir()), files, "{} left files behind", run.what);
    }
    db.ferry()
        .tree("linear")
        .run(["status"])
        .success()
        .stdout_has("alpha-2");
}

/// A rehearsal of a repository that does not exist yet creates nothing either: the dry
/// run runs on a new file in the temporary directory, and `--sql` writes a script that
/// builds the repository, ledger included, when `sqlite3` applies it to a new file.
#[test]
fn rehearsals_of_a_missing_file_create_nothing() {
    let db = TestDb::sqlite();
    let missing = db.dir().join("not_yet.sqlite");
    let url = format!("sqlite:{}", missing.display());
    let before = entries(db.dir());
    db.ferry()
        .tree("linear")
        .db_url(&url)
        .run(["upgrade", "--dry-run"])
        .success()
        .stdout_has("nothing was changed");
    assert_eq!(entries(db.dir()), before, "the dry run left files behind");
    let script = db
        .ferry()
        .tree("linear")
        .db_url(&url)
        .run(["upgrade", "--sql"])
        .success()
        .stdout;
    assert_eq!(entries(db.dir()), before, "--sql left files behind");

    // The script builds the repository with the real client, and Ferry agrees.
    let built = db.dir().join("built.sqlite");
    let mut child = std::process::Command::new("sqlite3")
        .arg("-bail")
        .arg(&built)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("sqlite3 runs");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(
        child.wait().unwrap().success(),
        "sqlite3 applied the script"
    );
    db.ferry()
        .tree("linear")
        .db_url(&format!("sqlite:{}", built.display()))
        .run(["check"])
        .success();
}
