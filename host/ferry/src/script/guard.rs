//! Language functions a hostile or careless script could turn against the host,
//! replaced by versions that fail cleanly:
//!
//! * `exit()` would end the call into the script as if it had returned normally (Rhai
//!   maps it to a return value), so a revision would be recorded applied with its later
//!   steps never run. Here it stops the script with an error that cannot be caught.
//! * `sort(comparer)` and `dedup(comparer)` swallow an error thrown by the comparer and
//!   go on. Here the error is raised again where they were called.
//! * Formatting a value (`print`, `debug`, `to_string`, `to_debug`, `join`, string
//!   interpolation) recurses once per nesting level; a value nested thousands of levels
//!   deep (`a = [a]` in a loop) would overflow the stack and abort the process. Here
//!   values nested deeper than [`MAX_FORMAT_DEPTH`] are refused with an error.

use rhai::{Array, Dynamic, Engine, EvalAltResult, FnPtr, Map, NativeCallContext, Position};
use std::cell::RefCell;
use std::cmp::Ordering;

type Res<T> = Result<T, Box<EvalAltResult>>;

/// How deeply arrays and maps may nest inside a value that is formatted.
pub const MAX_FORMAT_DEPTH: usize = 64;

/// Registers the replacements on the engine's own namespace (searched before the
/// language packages).
pub fn register(engine: &mut Engine) {
    engine.register_fn("exit", |ctx: NativeCallContext| -> Res<()> {
        Err(exit_error(&ctx))
    });
    engine.register_fn(
        "exit",
        |ctx: NativeCallContext, _value: Dynamic| -> Res<()> { Err(exit_error(&ctx)) },
    );
    for name in ["sort", "sort_by"] {
        engine.register_fn(name, sort_by);
    }
    engine.register_fn("dedup", dedup_by);
    for name in ["print", "to_string", "debug", "to_debug"] {
        engine.register_fn(
            name,
            |ctx: NativeCallContext, a: &mut Array| -> Res<String> {
                let mut out = String::new();
                format_array(&ctx, a, 1, &mut out)?;
                Ok(out)
            },
        );
        engine.register_fn(name, |ctx: NativeCallContext, m: &mut Map| -> Res<String> {
            let mut out = String::new();
            format_map(&ctx, m, 1, &mut out)?;
            Ok(out)
        });
    }
}

/// What `exit()` reports.
pub const EXIT_MESSAGE: &str = "exit() was called: a migration script may not end the run \
     early (it would be recorded as applied with its remaining work never run); `throw` to \
     fail it";

thread_local! {
    /// Where the last `exit()` was called: the file (when not the revision's own) and
    /// the position. Rhai drops the position of an uncatchable error when it leaves the
    /// function, so the host reads it from here.
    static EXIT_AT: RefCell<Option<(Option<String>, Position)>> = const { RefCell::new(None) };
}

/// Where the last `exit()` was called, taken.
pub fn take_exit() -> Option<(Option<String>, Position)> {
    EXIT_AT.with(|e| e.borrow_mut().take())
}

fn exit_error(ctx: &NativeCallContext) -> Box<EvalAltResult> {
    let pos = ctx.call_position();
    EXIT_AT.with(|e| *e.borrow_mut() = Some((ctx.call_source().map(str::to_string), pos)));
    // `ErrorTerminated` cannot be caught by the script's own `try`.
    Box::new(EvalAltResult::ErrorTerminated(EXIT_MESSAGE.into(), pos))
}

/// How deeply `value` nests arrays and maps, measured no further than `limit + 1`
/// levels (so the measure itself recurses at most that deep).
pub fn nesting_depth(value: &Dynamic, limit: usize) -> usize {
    if !(value.is_array() || value.is_map()) {
        return 0;
    }
    if limit == 0 {
        return 1;
    }
    let inner = if let Some(a) = value.read_lock::<Array>() {
        a.iter()
            .map(|c| nesting_depth(c, limit - 1))
            .max()
            .unwrap_or(0)
    } else if let Some(m) = value.read_lock::<Map>() {
        m.values()
            .map(|c| nesting_depth(c, limit - 1))
            .max()
            .unwrap_or(0)
    } else {
        0
    };
    1 + inner
}

/// The error for a value nested too deeply to format.
pub fn too_deep() -> Box<EvalAltResult> {
    super::error::script_failure(format!(
        "this value nests arrays or maps more than {MAX_FORMAT_DEPTH} levels deep and cannot \
         be printed or turned into text"
    ))
}

fn format_item(
    ctx: &NativeCallContext,
    v: &mut Dynamic,
    depth: usize,
    out: &mut String,
) -> Res<()> {
    if v.is_array() || v.is_map() {
        if depth + nesting_depth(v, MAX_FORMAT_DEPTH) > MAX_FORMAT_DEPTH {
            return Err(too_deep());
        }
        if let Some(mut a) = v.write_lock::<Array>() {
            return format_array(ctx, &mut a, depth + 1, out);
        }
        if let Some(mut m) = v.write_lock::<Map>() {
            return format_map(ctx, &mut m, depth + 1, out);
        }
    }
    let text = ctx
        .call_native_fn_raw("to_debug", true, &mut [v])
        .ok()
        .and_then(|r| r.into_immutable_string().ok())
        .map(|s| s.to_string())
        .unwrap_or_else(|| format!("{v:?}"));
    out.push_str(&text);
    Ok(())
}

fn format_array(ctx: &NativeCallContext, a: &mut Array, depth: usize, out: &mut String) -> Res<()> {
    if depth > MAX_FORMAT_DEPTH {
        return Err(too_deep());
    }
    out.push('[');
    for (i, v) in a.iter_mut().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        format_item(ctx, v, depth, out)?;
    }
    out.push(']');
    Ok(())
}

fn format_map(ctx: &NativeCallContext, m: &mut Map, depth: usize, out: &mut String) -> Res<()> {
    if depth > MAX_FORMAT_DEPTH {
        return Err(too_deep());
    }
    out.push_str("#{");
    for (i, (k, v)) in m.iter_mut().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&format!("{k:?}: "));
        format_item(ctx, v, depth, out)?;
    }
    out.push('}');
    Ok(())
}

/// `array.sort(comparer)`: a merge sort (stable, like Rhai's) that stops at the first
/// error the comparer raises and raises it again.
fn sort_by(ctx: NativeCallContext, array: &mut Array, comparer: FnPtr) -> Res<()> {
    if array.len() <= 1 {
        return Ok(());
    }
    let compare = |x: &Dynamic, y: &Dynamic| -> Res<Ordering> {
        let v = comparer.call_raw(&ctx, None, [x.clone(), y.clone()])?;
        if let Ok(i) = v.as_int() {
            return Ok(i.cmp(&0));
        }
        if let Ok(b) = v.as_bool() {
            return Ok(if b { Ordering::Less } else { Ordering::Greater });
        }
        Err(super::error::script_failure(format!(
            "the comparer of sort must return a number or a bool, it returned {}",
            v.type_name()
        )))
    };
    let items = std::mem::take(array);
    let sorted = merge_sort(items, &compare);
    match sorted {
        Ok(v) => {
            *array = v;
            Ok(())
        }
        Err((e, v)) => {
            *array = v;
            Err(e)
        }
    }
}

/// `array.dedup(comparer)`: drops each element for which `comparer(previous kept,
/// element)` is true, as Rhai's does, but raises the comparer's error.
fn dedup_by(ctx: NativeCallContext, array: &mut Array, comparer: FnPtr) -> Res<()> {
    let mut kept: Array = Vec::with_capacity(array.len());
    let mut rest = std::mem::take(array).into_iter();
    while let Some(item) = rest.next() {
        if let Some(last) = kept.last() {
            match comparer.call_raw(&ctx, None, [last.clone(), item.clone()]) {
                Ok(v) if v.as_bool().unwrap_or(false) => continue,
                Ok(_) => {}
                Err(e) => {
                    kept.push(item);
                    kept.extend(rest);
                    *array = kept;
                    return Err(e);
                }
            }
        }
        kept.push(item);
    }
    *array = kept;
    Ok(())
}

type Sorted = Result<Vec<Dynamic>, (Box<EvalAltResult>, Vec<Dynamic>)>;

/// Bottom-up merge sort; on error the items come back (in some order) with the error.
fn merge_sort(
    mut items: Vec<Dynamic>,
    compare: &dyn Fn(&Dynamic, &Dynamic) -> Res<Ordering>,
) -> Sorted {
    let n = items.len();
    let mut width = 1;
    while width < n {
        let mut out = Vec::with_capacity(n);
        let mut rest = items.into_iter().peekable();
        loop {
            let left: Vec<Dynamic> = rest.by_ref().take(width).collect();
            if left.is_empty() {
                break;
            }
            let right: Vec<Dynamic> = rest.by_ref().take(width).collect();
            let (mut l, mut r) = (left.into_iter().peekable(), right.into_iter().peekable());
            loop {
                let pick_right = match (l.peek(), r.peek()) {
                    (Some(a), Some(b)) => match compare(a, b) {
                        Ok(o) => o == Ordering::Greater,
                        Err(e) => {
                            out.extend(l);
                            out.extend(r);
                            out.extend(rest);
                            return Err((e, out));
                        }
                    },
                    (Some(_), None) => false,
                    (None, Some(_)) => true,
                    (None, None) => break,
                };
                out.push(if pick_right { r.next() } else { l.next() }.expect("peeked"));
            }
        }
        items = out;
        width *= 2;
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::super::{FailureKind, Limits, ModulePaths, ScriptHost, Session};
    use std::cell::RefCell;
    use std::rc::Rc;

    fn host() -> ScriptHost {
        let conn =
            crate::backend::sqlite::SqliteConnection::open_path(std::path::Path::new(":memory:"))
                .expect("in-memory SQLite");
        let session = Session::new(
            Box::new(conn),
            Rc::new(crate::observer::Silent),
            crate::ledger::Actor::current(),
        );
        ScriptHost::new(
            Rc::new(RefCell::new(session)),
            Limits::default(),
            ModulePaths::default(),
            Default::default(),
        )
    }

    fn script(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
        let path = dir.path().join("r.rhai");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_panic_inside_a_call_is_a_failure_naming_where() {
        crate::crash::install();
        let mut host = host();
        host.engine.register_fn("host_bug", || -> i64 {
            panic!("an index out of range in the host")
        });
        let dir = tempfile::tempdir().unwrap();
        let path = script(&dir, "fn upgrade(db) {\n    host_bug();\n}\n");
        let ast = host.compile(&path, "r").unwrap();
        let err = host.call(&ast, "upgrade", "r", &path).unwrap_err();
        assert_eq!(err.kind, FailureKind::Host, "{err}");
        assert!(
            err.message
                .contains("Ferry itself failed while running fn upgrade")
                && err.message.contains("an index out of range in the host")
                && err.message.contains("guard.rs:"),
            "{err}"
        );
        assert_eq!(err.line, 1, "the function's line: {err}");
        // The session is not left borrowed: the next call runs.
        let path = script(
            &dir,
            "fn upgrade(db) { db.execute(\"CREATE TABLE t (x INTEGER)\", []); }\n",
        );
        let ast = host.compile(&path, "r").unwrap();
        let done = host.call(&ast, "upgrade", "r", &path);
        assert!(done.is_ok(), "the next call runs: {done:?}");
    }

    #[test]
    fn sort_keeps_order_and_raises_the_comparers_error() {
        let host = host();
        let dir = tempfile::tempdir().unwrap();
        let path = script(
            &dir,
            "fn upgrade(db) {\n    let a = [5, 3, 9, 1, 3, 7];\n    a.sort(|x, y| x - y);\n    \
             if a != [1, 3, 3, 5, 7, 9] { throw `sorted wrong: ${a}`; }\n    \
             let b = [\"b\", \"a\"];\n    b.sort(|x, y| x < y);\n    \
             if b != [\"a\", \"b\"] { throw `bool comparer: ${b}`; }\n    \
             a.sort(|x, y| { if x == 9 || y == 9 { throw \"nine\"; } x - y });\n}\n",
        );
        let ast = host.compile(&path, "r").unwrap();
        let err = host.call(&ast, "upgrade", "r", &path).unwrap_err();
        assert_eq!(err.kind, FailureKind::Thrown, "{err}");
        assert_eq!(err.message, "nine", "{err}");
        assert_eq!(err.line, 8, "{err}");
    }

    #[test]
    fn dedup_keeps_rhais_meaning_and_raises_the_comparers_error() {
        let host = host();
        let dir = tempfile::tempdir().unwrap();
        let path = script(
            &dir,
            "fn upgrade(db) {\n    let x = [1, 2, 2, 2, 3, 1, 2, 3, 4, 3, 3, 2, 1];\n    \
             x.dedup(|a, b| a >= b);\n    if x != [1, 2, 3, 4] { throw `dedup: ${x}`; }\n    \
             x.dedup(|a, b| { throw \"no dedup\"; });\n}\n",
        );
        let ast = host.compile(&path, "r").unwrap();
        let err = host.call(&ast, "upgrade", "r", &path).unwrap_err();
        assert_eq!(err.message, "no dedup", "{err}");
        assert_eq!(err.line, 5, "{err}");
    }

    #[test]
    fn shallow_values_format_as_rhai_does() {
        let host = host();
        let dir = tempfile::tempdir().unwrap();
        let path = script(
            &dir,
            "fn upgrade(db) {\n    let v = [1, \"a\", #{ k: [2.5, ()] }, true];\n    \
             let s = v.to_string();\n    \
             if s != `[1, \"a\", #{\"k\": [2.5, ()]}, true]` { throw s; }\n}\n",
        );
        let ast = host.compile(&path, "r").unwrap();
        let done = host.call(&ast, "upgrade", "r", &path);
        assert!(done.is_ok(), "formats: {done:?}");
    }
}
