//! Parameter names, real types and one line of documentation for every function Ferry
//! registers, for the editor definitions file (`docs/ferry.d.rhai`).
//!
//! Rhai's `metadata` feature lists every registered function, but knows no parameter
//! names, writes a fallible function's return type as the Rust `Result` it is, and
//! knows no types at all for functions set into a module. [`apply`] rewrites each such
//! line of the generated text with the entry for it here, and reports every Ferry line
//! left without one and every entry no line matched, so the table cannot rot: the test
//! `script_definitions` fails on both.

/// (namespace, the line as Rhai generates it up to `->`, the signature to write, doc).
/// Lines that Rhai generates identically (overloads it cannot tell apart) have one
/// entry each, used in order.
const SIGNATURES: &[(&str, &str, &str, &str)] = &[
    // The `db` handle (the argument of upgrade, downgrade, preflight and hooks).
    ("static", "fn batches(_: Db, _: string, _: map, _: Fn)", "fn batches(db: Db, name: string, options: map, body: Fn) -> int", "Runs `body(db, batch)` over key-ordered batches, each committed with its cursor; returns the batches run."),
    ("static", "fn bulk_insert(_: Db, _: string, _: array, _: array)", "fn bulk_insert(db: Db, table: string, columns: array, rows: array) -> int", "Inserts rows (arrays of values, in `columns` order) as fast as the driver allows; returns the rows inserted."),
    ("static", "fn bulk_insert(_: Db, _: string, _: array, _: map)", "fn bulk_insert(db: Db, table: string, columns: array, source: map) -> int", "Inserts one row per row of `source.each` (a query), made by `source.values`; returns the rows inserted."),
    ("static", "fn columns(_: Db, _: string)", "fn columns(db: Db, table: string) -> array", "The table's columns in order: `[#{name, type, nullable, default_value}]`."),
    ("static", "fn each(_: Db, _: string, _: array, _: Fn)", "fn each(db: Db, sql: string, params: array, body: Fn) -> int", "Streams the query's rows to `body(row)` without holding them; returns the rows read."),
    ("static", "fn execute(_: Db, _: string)", "fn execute(db: Db, sql: string) -> int", "Runs one statement; returns the rows it touched."),
    ("static", "fn execute(_: Db, _: string, _: array)", "fn execute(db: Db, sql: string, params: array) -> int", "Runs one statement with `?` parameters; returns the rows it touched."),
    ("static", "fn foreign_keys(_: Db, _: string)", "fn foreign_keys(db: Db, table: string) -> array", "The table's foreign keys: `[#{name, columns, references, referenced_columns, on_delete}]`."),
    ("static", "fn get dialect(_: Db)", "fn get dialect(db: Db) -> string", "The backend: `\"sqlite\"` or `\"postgres\"`."),
    ("static", "fn indexes(_: Db, _: string)", "fn indexes(db: Db, table: string) -> array", "The table's indexes not behind a key: `[#{name, columns, unique}]`."),
    ("static", "fn insert_derived(_: Db, _: map)", "fn insert_derived(db: Db, spec: map) -> int", "Inserts rows derived from a query's rows by declared rules (UUIDs, copies), streaming; returns the rows inserted."),
    ("static", "fn primary_key(_: Db, _: string)", "fn primary_key(db: Db, table: string) -> ?", "The table's primary key `#{name, columns}`, or `()` when it has none."),
    ("static", "fn query(_: Db, _: string)", "fn query(db: Db, sql: string) -> array", "Runs a query; returns its rows as maps of column to value."),
    ("static", "fn query(_: Db, _: string, _: array)", "fn query(db: Db, sql: string, params: array) -> array", "Runs a query with `?` parameters; returns its rows as maps of column to value."),
    ("static", "fn query_row(_: Db, _: string)", "fn query_row(db: Db, sql: string) -> ?", "The query's first row as a map, or `()` when it returns none."),
    ("static", "fn query_row(_: Db, _: string, _: array)", "fn query_row(db: Db, sql: string, params: array) -> ?", "The first row (with `?` parameters) as a map, or `()` when there is none."),
    ("static", "fn query_value(_: Db, _: string)", "fn query_value(db: Db, sql: string) -> ?", "The first column of the first row, or `()` when there is no row."),
    ("static", "fn query_value(_: Db, _: string, _: array)", "fn query_value(db: Db, sql: string, params: array) -> ?", "The first column of the first row (with `?` parameters), or `()`."),
    ("static", "fn quote(_: Db, _: string)", "fn quote(db: Db, name: string) -> string", "The identifier quoted for this backend."),
    ("static", "fn step(_: Db, _: string, _: Fn)", "fn step(db: Db, name: string, body: Fn) -> ?", "Runs `body(db)` as a step that commits on its own and is skipped on a rerun once done."),
    ("static", "fn step(_: Db, _: string, _: map, _: Fn)", "fn step(db: Db, name: string, options: map, body: Fn) -> ?", "A step with options (`transactional: false` for statements that cannot run in a transaction)."),
    ("static", "fn step_beside(_: Db, _: string, _: map, _: Fn)", "fn step_beside(db: Db, name: string, spec: map, body: Fn) -> ?", "Runs a declared step (`#{ insert_derived: … }`) on a pooled connection while `body(db)` runs its steps; in turn where there is no pool."),
    ("static", "fn table_exists(_: Db, _: string)", "fn table_exists(db: Db, table: string) -> bool", "Whether the table exists."),
    ("static", "fn tables(_: Db, _: string)", "fn tables(db: Db, like_pattern: string) -> array", "The sorted names of the tables matching a SQL `LIKE` pattern."),
    ("static", "fn unique_constraints(_: Db, _: string)", "fn unique_constraints(db: Db, table: string) -> array", "The table's unique constraints: `[#{name, columns}]`."),
    // Language functions Ferry replaces with safer versions (see the guard module).
    ("static", "fn dedup(_: array, _: Fn)", "fn dedup(array: array, same: Fn) -> ()", "Removes consecutive elements `same(a, b)` calls equal; an error in `same` fails the call."),
    ("static", "fn join(_: array, _: string)", "fn join(array: array, separator: string) -> string", "The elements as text, joined by `separator`."),
    ("static", "fn sort(_: array, _: Fn)", "fn sort(array: array, compare: Fn) -> ()", "Sorts in place by `compare(a, b)` (a number or a bool); an error in `compare` fails the call."),
    ("static", "fn sort_by(_: array, _: Fn)", "fn sort_by(array: array, compare: Fn) -> ()", "Sorts in place by `compare(a, b)`, as `sort`."),
    ("static", "fn to_debug(_: array)", "fn to_debug(array: array) -> string", "The array in debug form (refused past 64 levels of nesting)."),
    ("static", "fn to_debug(_: map)", "fn to_debug(map: map) -> string", "The map in debug form (refused past 64 levels of nesting)."),
    ("static", "fn to_string(_: array)", "fn to_string(array: array) -> string", "The array as text (refused past 64 levels of nesting)."),
    ("static", "fn to_string(_: map)", "fn to_string(map: map) -> string", "The map as text (refused past 64 levels of nesting)."),
    ("static", "op debug(array)", "op debug(array) -> string", "Logs the array at debug level, in debug form."),
    ("static", "op debug(map)", "op debug(map) -> string", "Logs the map at debug level, in debug form."),
    ("static", "op print(array)", "op print(array) -> string", "Logs the array at info level."),
    ("static", "op print(map)", "op print(map) -> string", "Logs the map at info level."),
    // Ferry's types.
    ("static", "fn get canonical(_: Uuid)", "fn get canonical(uuid: Uuid) -> string", "The UUID as 8-4-4-4-12 hex digits with dashes."),
    ("static", "fn get hex(_: Uuid)", "fn get hex(uuid: Uuid) -> string", "The UUID as 32 hex digits, no dashes."),
    ("static", "fn get version(_: Uuid)", "fn get version(uuid: Uuid) -> int", "The UUID's version (4, 5, ...)."),
    ("static", "fn to_debug(_: Uuid)", "fn to_debug(uuid: Uuid) -> string", "The UUID in canonical form."),
    ("static", "fn to_string(_: Uuid)", "fn to_string(uuid: Uuid) -> string", "The UUID in canonical form."),
    ("static", "fn to_debug(_: ScriptFault)", "fn to_debug(error: ScriptFault) -> string", "The caught error's message."),
    ("static", "fn to_string(_: ScriptFault)", "fn to_string(error: ScriptFault) -> string", "The caught error's message."),
    // attributes::
    ("attributes", "fn all()", "fn all() -> map", "Every attribute of the repository's attribute table, name to value."),
    ("attributes", "fn delete(_: ?)", "fn delete(name: string) -> int", "Deletes the attribute; returns the rows deleted (0 or 1)."),
    ("attributes", "fn get(_: ?)", "fn get(name: string) -> ?", "The attribute's value, or `()` when it is not set."),
    ("attributes", "fn manager(_: ?)", "fn manager(component: string) -> ?", "The manager recorded for a component, `#{class, version}`, or `()`."),
    ("attributes", "fn set(_: ?, _: ?)", "fn set(name: string, value: string) -> ()", "Inserts or replaces the attribute."),
    ("attributes", "fn set_manager(_: ?, _: ?, _: ?)", "fn set_manager(component: string, class: string, version: string) -> ()", "Records a component's manager class and version (and drops the old class's version row)."),
    // config::
    ("config", "fn get(_: ?)", "fn get(key: string) -> ?", "The configuration value; fails naming the key when no layer sets it."),
    ("config", "fn get(_: ?, _: ?)", "fn get(key: string, default: ?) -> ?", "The configuration value, or `default` when no layer sets it."),
    ("config", "fn get_bool(_: ?)", "fn get_bool(key: string) -> bool", "The configuration value as a bool; fails when unset or of another type."),
    ("config", "fn get_bool(_: ?, _: ?)", "fn get_bool(key: string, default: bool) -> bool", "The configuration value as a bool, or `default` when unset."),
    ("config", "fn get_int(_: ?)", "fn get_int(key: string) -> int", "The configuration value as an integer; fails when unset or of another type."),
    ("config", "fn get_int(_: ?, _: ?)", "fn get_int(key: string, default: int) -> int", "The configuration value as an integer, or `default` when unset."),
    ("config", "fn get_string(_: ?)", "fn get_string(key: string) -> string", "The configuration value as a string; fails when unset or of another type."),
    ("config", "fn get_string(_: ?, _: ?)", "fn get_string(key: string, default: string) -> string", "The configuration value as a string, or `default` when unset."),
    ("config", "fn has(_: ?)", "fn has(key: string) -> bool", "Whether any layer (tree defaults, repository, config file, command line) sets the key."),
    // hooks::
    ("hooks", "fn has(_: ?)", "fn has(name: string) -> bool", "Whether some root provides the hook (with any key)."),
    ("hooks", "fn has(_: ?, _: ?)", "fn has(name: string, key: string) -> bool", "Whether some root provides the hook for `key`."),
    ("hooks", "fn keys(_: ?)", "fn keys(name: string) -> array", "The keys the keyed hook is provided for."),
    ("hooks", "fn run(_: ?, _: ?)", "fn run(name: string, args: ?) -> ?", "Calls the hook (declared in the revision's `HOOKS`) with `args`; returns its result."),
    ("hooks", "fn run(_: ?, _: ?, _: ?)", "fn run(name: string, key: string, args: ?) -> ?", "Calls the hook provided for `key` with `args`; returns its result."),
    // log::
    ("log", "fn error(_: ?)", "fn error(message: string) -> ()", "Logs at error level (the revision goes on: `throw` to fail it)."),
    ("log", "fn info(_: ?)", "fn info(message: string) -> ()", "Logs at info level."),
    ("log", "fn progress(_: ?, _: ?, _: ?)", "fn progress(step: string, done: int, total: int) -> ()", "Reports progress of a step (`total` <= 0: unknown)."),
    ("log", "fn verbose(_: ?)", "fn verbose(message: string) -> ()", "Logs at debug level."),
    ("log", "fn warn(_: ?)", "fn warn(message: string) -> ()", "Logs at warning level."),
    // schema::
    ("schema", "fn add_column(_: ?, _: ?)", "fn add_column(table: string, column: map) -> ()", "Adds a column `#{name, type, nullable, default}`."),
    ("schema", "fn add_foreign_key(_: ?, _: ?)", "fn add_foreign_key(table: string, key: map) -> ()", "Adds a foreign key `#{name, columns, references, referenced_columns, on_delete}`."),
    ("schema", "fn add_index(_: ?, _: ?, _: ?)", "fn add_index(table: string, name: string, columns: array) -> ()", "Creates an index."),
    ("schema", "fn add_index(_: ?, _: ?, _: ?, _: ?)", "fn add_index(table: string, name: string, columns: array, options: map) -> ()", "Creates an index with `#{unique, concurrently, if_not_exists}`."),
    ("schema", "fn add_primary_key(_: ?, _: ?, _: ?)", "fn add_primary_key(table: string, name: string, columns: array) -> ()", "Adds a primary key."),
    ("schema", "fn add_unique(_: ?, _: ?, _: ?)", "fn add_unique(table: string, name: string, columns: array) -> ()", "Adds a unique constraint."),
    ("schema", "fn alter_column_type(_: ?, _: ?, _: ?)", "fn alter_column_type(table: string, column: string, type: string) -> ()", "Changes a column's type."),
    ("schema", "fn alter_column_type(_: ?, _: ?, _: ?, _: ?)", "fn alter_column_type(table: string, column: string, type: string, using_sql: string) -> ()", "Changes a column's type, converting values with a SQL expression."),
    ("schema", "fn create_table(_: ?, _: ?)", "fn create_table(name: string, definition: map) -> ()", "Creates a table `#{columns, primary_key, unique, foreign_keys}`, portably."),
    ("schema", "fn drop_column(_: ?, _: ?)", "fn drop_column(table: string, column: string) -> ()", "Drops a column."),
    ("schema", "fn drop_constraint(_: ?, _: ?)", "fn drop_constraint(table: string, name: string) -> ()", "Drops a named constraint."),
    ("schema", "fn drop_index(_: ?, _: ?)", "fn drop_index(table: string, name: string) -> ()", "Drops an index."),
    ("schema", "fn drop_index(_: ?, _: ?, _: ?)", "fn drop_index(table: string, name: string, options: map) -> ()", "Drops an index with `#{if_exists, concurrently}`."),
    ("schema", "fn drop_table(_: ?)", "fn drop_table(table: string) -> ()", "Drops a table."),
    ("schema", "fn drop_table_if_exists(_: ?)", "fn drop_table_if_exists(table: string) -> ()", "Drops a table if it exists."),
    ("schema", "fn rename_column(_: ?, _: ?, _: ?)", "fn rename_column(table: string, column: string, new_name: string) -> ()", "Renames a column."),
    ("schema", "fn rename_table(_: ?, _: ?)", "fn rename_table(table: string, new_name: string) -> ()", "Renames a table."),
    ("schema", "fn replace_table_definition(_: ?, _: ?)", "fn replace_table_definition(table: string, create_sql: string) -> ()", "SQLite only: replaces the stored `CREATE TABLE` text in place, without copying a row."),
    ("schema", "fn rewrite_tables(_: ?)", "fn rewrite_tables(rewrites: array) -> ()", "Rewrites several tables into new definitions and swaps them in together."),
    ("schema", "fn rewrite_tables(_: ?, _: ?)", "fn rewrite_tables(rewrites: array, options: map) -> ()", "As `rewrite_tables(rewrites)`, with `#{steps: true}` for one resumable step per table."),
    ("schema", "fn set_nullable(_: ?, _: ?, _: ?)", "fn set_nullable(table: string, column: string, nullable: bool) -> ()", "Makes a column nullable or NOT NULL."),
    // uuid::
    ("uuid", "fn canonical(_: ?)", "fn canonical(uuid: Uuid) -> string", "The UUID as 8-4-4-4-12 hex digits with dashes."),
    ("uuid", "fn hex(_: ?)", "fn hex(uuid: Uuid) -> string", "The UUID as 32 hex digits, no dashes."),
    ("uuid", "fn parse(_: ?)", "fn parse(text: string) -> Uuid", "A UUID from its canonical or 32-hex-digit text."),
    ("uuid", "fn parse(_: ?)", "fn parse(uuid: Uuid) -> Uuid", "The UUID itself (so that `parse` accepts either form)."),
    ("uuid", "fn v4()", "fn v4() -> Uuid", "A random UUID."),
    ("uuid", "fn v5(_: ?, _: ?)", "fn v5(namespace: Uuid, name: string) -> Uuid", "The name-based (SHA-1) UUID of `name` in `namespace`."),
    ("uuid", "fn v5(_: ?, _: ?)", "fn v5(namespace: string, name: string) -> Uuid", "The name-based UUID, the namespace given as text."),
];

/// Functions left out of the definitions: the sandbox replaces them with versions that
/// only fail, so an editor should not offer them.
const LEFT_OUT: &[&str] = &["sleep", "exit"];

/// The namespaces whose every function is Ferry's.
const FERRY_MODULES: &[&str] = &["attributes", "config", "hooks", "log", "schema", "uuid"];

/// Rewrites the definitions Rhai generated (`generated`) with the table of signatures and
/// drops the functions left out. `Err` lists every Ferry function without an entry and every entry that
/// matched nothing.
pub fn apply(generated: &str) -> Result<String, Vec<String>> {
    let mut used = vec![false; SIGNATURES.len()];
    let mut problems = Vec::new();
    let mut out: Vec<String> = Vec::new();
    let mut module = "static";
    for line in generated.lines() {
        if let Some(name) = line.strip_prefix("module ") {
            module = name.trim_end_matches([';', '{', ' ']);
        }
        let is_fn = line.starts_with("fn ") || line.starts_with("op ");
        if !is_fn {
            out.push(line.to_string());
            continue;
        }
        let head = line.split(" -> ").next().unwrap_or(line);
        let name = head[3..]
            .trim_start_matches("get ")
            .split('(')
            .next()
            .unwrap_or_default();
        if module == "static" && LEFT_OUT.contains(&name) {
            // Drop the function and the doc comment Rhai wrote above it.
            while out.last().is_some_and(|l| l.starts_with("///")) {
                out.pop();
            }
            continue;
        }
        let entry = SIGNATURES
            .iter()
            .enumerate()
            .find(|(i, (m, h, _, _))| !used[*i] && *m == module && *h == head);
        match entry {
            Some((i, (_, _, signature, doc))) => {
                used[i] = true;
                out.push(format!("/// {doc}"));
                out.push(format!("{signature};"));
            }
            None => {
                let ferry = FERRY_MODULES.contains(&module) || line.contains("EvalAltResult");
                if ferry {
                    problems.push(format!("no signature for {module}: {line}"));
                }
                out.push(line.to_string());
            }
        }
    }
    for (i, (m, h, _, _)) in SIGNATURES.iter().enumerate() {
        if !used[i] {
            problems.push(format!(
                "signature for {m}: {h} matches no registered function"
            ));
        }
    }
    if problems.is_empty() {
        let mut text = out.join("\n");
        text.push('\n');
        // Dropping functions leaves runs of blank lines behind.
        while text.contains("\n\n\n") {
            text = text.replace("\n\n\n", "\n\n");
        }
        Ok(text)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_without_an_entry_and_an_entry_without_a_function_are_reported() {
        let generated = "module static;\n\nfn sleep(_: int) -> EvalAltResult>>;\n\nmodule log {\nfn shout(_: ?) -> ;\n}\n";
        let problems = apply(generated).unwrap_err();
        assert!(problems
            .iter()
            .any(|p| p == "no signature for log: fn shout(_: ?) -> ;"));
        assert!(
            problems
                .iter()
                .any(|p| p
                    .contains("signature for log: fn info(_: ?) matches no registered function"))
        );
        assert!(
            problems.iter().all(|p| !p.contains("sleep")),
            "sleep is left out, not missing"
        );
    }
}
