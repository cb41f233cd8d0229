//! docs/PLUGINS.md shows the example plugin's files whole: every fenced block whose info
//! string says `file=PATH` must be exactly the file at PATH (from the repository's
//! root), and every such `.rhai` file must read as what its folder makes it (a
//! revision's header, a hook's `HOOK`, a module that compiles). The guide cannot drift
//! from the plugin the tests run.

use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .canonicalize()
        .expect("repository root")
}

/// (line of the opening fence, PATH, body) of each block marked `file=PATH`.
fn file_blocks(text: &str) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String, String)> = None;
    for (i, line) in text.lines().enumerate() {
        match &mut current {
            None => {
                if let Some(info) = line.strip_prefix("```") {
                    if let Some(path) = info
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix("file="))
                    {
                        current = Some((i + 1, path.to_string(), String::new()));
                    }
                }
            }
            Some(_) if line.trim_end() == "```" => out.push(current.take().unwrap()),
            Some((_, _, body)) => {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    assert!(current.is_none(), "unterminated file block");
    out
}

#[test]
fn every_file_the_guide_shows_is_the_file_and_parses() {
    let root = repo_root();
    let text = std::fs::read_to_string(root.join("docs/PLUGINS.md")).expect("docs/PLUGINS.md");
    let blocks = file_blocks(&text);
    let plugin = root.join("examples/plugins/obs_test");
    let mut shown: Vec<String> = blocks.iter().map(|(_, p, _)| p.clone()).collect();
    shown.sort();
    assert_eq!(
        shown,
        [
            "examples/plugins/obs_test/ferry-test.toml",
            "examples/plugins/obs_test/hooks/populate_amplifier_tst.rhai",
            "examples/plugins/obs_test/lib/tst_camera.rhai",
            "examples/plugins/obs_test/obs_test/obs_test-1.rhai",
            "examples/plugins/obs_test/obs_test/obs_test-2.rhai",
        ],
        "the guide shows every file of the example plugin"
    );
    for (line, path, body) in blocks {
        let file = root.join(&path);
        let on_disk = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("PLUGINS.md:{line}: {path}: {e}"));
        assert_eq!(
            body, on_disk,
            "PLUGINS.md:{line}: the block differs from {path}"
        );
        check_parses(&file, &plugin, line);
    }
}

/// Reads the file as discovery would: a revision's metadata, a hook's, a module that
/// compiles, a test declaration that `ferry test` accepts.
fn check_parses(file: &Path, plugin: &Path, line: usize) {
    let rel = file.strip_prefix(plugin).expect("inside the plugin");
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_str()
        .unwrap();
    let what = match (first, file.extension().and_then(|e| e.to_str())) {
        (_, Some("toml")) => ferry::plugin_test::spec::read(plugin)
            .map(|s| format!("{} expectations", s.expectations.len()))
            .map_err(|e| e.to_string()),
        ("hooks", _) => ferry::metadata::read_hook(file, plugin)
            .map(|h| h.name)
            .map_err(|e| format!("{e:?}")),
        ("lib", _) => rhai::Engine::new()
            .compile(std::fs::read_to_string(file).unwrap())
            .map(|_| "module".to_string())
            .map_err(|e| e.to_string()),
        _ => ferry::metadata::read_revision(file, plugin)
            .map(|m| m.id)
            .map_err(|e| format!("{e:?}")),
    };
    if let Err(e) = what {
        panic!("PLUGINS.md:{line}: {} does not parse: {e}", file.display());
    }
}
