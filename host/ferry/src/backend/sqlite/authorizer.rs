//! SQLite's own refusal of what a script may not send, behind the statement guard
//! ([`crate::sql_guard`]): if a statement gets past the guard, the engine still denies
//! it while it is being prepared.
//!
//! Every connection gets `SQLITE_DBCONFIG_DEFENSIVE` (no `writable_schema`, no
//! `journal_mode = OFF`, no writes to shadow tables) and double-quoted string literals
//! off (`"idd"` is an unknown column, not the string `'idd'`). An authorizer runs on
//! every statement: while a script's own statement is prepared ([`Script::set`]) it
//! denies `ATTACH`/`DETACH`, file-reaching functions, transaction control, savepoints,
//! pragmas outside the read-only allow-list, and any change to the
//! ledger tables (`ferry_revisions`, `ferry_history`, …). Ferry's own statements (ledger, DDL, locks) are prepared with the
//! script mode off.

use rusqlite::config::DbConfig;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Whether the statement being prepared is a script's, and the settings the
/// connection had before (restored by [`uninstall`]).
pub(super) struct Script {
    on: Arc<AtomicBool>,
    before: Vec<(DbConfig, bool)>,
}

impl Script {
    pub(super) fn set(&self, on: bool) {
        self.on.store(on, Ordering::SeqCst);
    }
}

/// What Ferry sets on every connection.
const SETTINGS: [(DbConfig, bool); 3] = [
    (DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true),
    (DbConfig::SQLITE_DBCONFIG_DQS_DML, false),
    (DbConfig::SQLITE_DBCONFIG_DQS_DDL, false),
];

/// Turns the defensive settings on and installs the authorizer.
pub(super) fn install(raw: &rusqlite::Connection) -> rusqlite::Result<Script> {
    let mut before = Vec::new();
    for (config, value) in SETTINGS {
        before.push((config, raw.db_config(config)?));
        raw.set_db_config(config, value)?;
    }
    let on = Arc::new(AtomicBool::new(false));
    let flag = on.clone();
    raw.authorizer(Some(move |ctx: AuthContext<'_>| {
        authorize(&ctx.action, flag.load(Ordering::SeqCst))
    }));
    Ok(Script { on, before })
}

/// Gives an application's connection back as it was: no authorizer, its own settings.
pub(super) fn uninstall(raw: &rusqlite::Connection, script: &Script) {
    raw.authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
    for (config, value) in &script.before {
        let _ = raw.set_db_config(*config, *value);
    }
}

fn authorize(action: &AuthAction<'_>, script: bool) -> Authorization {
    if !script {
        return Authorization::Allow;
    }
    let deny = match action {
        AuthAction::Attach { .. } | AuthAction::Detach { .. } => true,
        AuthAction::Function { function_name } => matches!(
            function_name.to_ascii_lowercase().as_str(),
            "load_extension" | "readfile" | "writefile" | "edit" | "fts3_tokenizer"
        ),
        AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } => true,
        AuthAction::Pragma {
            pragma_name,
            pragma_value,
        } => !crate::sql_guard::READ_ONLY_PRAGMAS
            .iter()
            .any(|(name, takes_argument)| {
                name.eq_ignore_ascii_case(pragma_name)
                    && (pragma_value.is_none() || *takes_argument)
            }),
        AuthAction::Insert { table_name }
        | AuthAction::Delete { table_name }
        | AuthAction::Update { table_name, .. }
        | AuthAction::DropTable { table_name }
        | AuthAction::AlterTable { table_name, .. }
        | AuthAction::CreateTrigger { table_name, .. }
        | AuthAction::CreateTempTrigger { table_name, .. }
        | AuthAction::DropTrigger { table_name, .. }
        | AuthAction::CreateTable { table_name }
        | AuthAction::CreateTempTable { table_name }
        | AuthAction::CreateIndex { table_name, .. }
        | AuthAction::DropIndex { table_name, .. } => crate::sql_guard::is_ledger_table(table_name),
        AuthAction::CreateView { view_name } | AuthAction::CreateTempView { view_name } => {
            crate::sql_guard::is_ledger_table(view_name)
        }
        _ => false,
    };
    if deny {
        Authorization::Deny
    } else {
        Authorization::Allow
    }
}
