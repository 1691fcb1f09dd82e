//! Recognizes the DDL dts applies from the binlog, and the tables it touches.
//! A small tokenizer rather than a full SQL parser: DDL as the server logs it
//! is regular at its head, and anything not recognized is skipped visibly.

use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DdlKind {
    AlterTable,
    AlterView,
    CreateFunction,
    CreateIndex,
    CreateProcedure,
    CreateTable,
    CreateTrigger,
    CreateView,
    DropFunction,
    DropIndex,
    DropProcedure,
    DropTable,
    DropTrigger,
    DropView,
    RenameTable,
    TruncateTable,
}

impl DdlKind {
    /// DDL of views, functions, procedures and triggers, which come with a
    /// whole database only; the rest is table DDL.
    pub fn of_whole_database(self) -> bool {
        matches!(
            self,
            DdlKind::AlterView
                | DdlKind::CreateFunction
                | DdlKind::CreateProcedure
                | DdlKind::CreateTrigger
                | DdlKind::CreateView
                | DdlKind::DropFunction
                | DdlKind::DropProcedure
                | DdlKind::DropTrigger
                | DdlKind::DropView
        )
    }

    pub fn of_trigger(self) -> bool {
        matches!(self, DdlKind::CreateTrigger | DdlKind::DropTrigger)
    }

    /// The name a task file gives it.
    pub fn operation(self) -> dts_common::spec::DdlOperation {
        use dts_common::spec::DdlOperation as Op;
        match self {
            DdlKind::AlterTable => Op::AlterTable,
            DdlKind::AlterView => Op::AlterView,
            DdlKind::CreateFunction => Op::CreateFunction,
            DdlKind::CreateIndex => Op::CreateIndex,
            DdlKind::CreateProcedure => Op::CreateProcedure,
            DdlKind::CreateTable => Op::CreateTable,
            DdlKind::CreateTrigger => Op::CreateTrigger,
            DdlKind::CreateView => Op::CreateView,
            DdlKind::DropFunction => Op::DropFunction,
            DdlKind::DropIndex => Op::DropIndex,
            DdlKind::DropProcedure => Op::DropProcedure,
            DdlKind::DropTable => Op::DropTable,
            DdlKind::DropTrigger => Op::DropTrigger,
            DdlKind::DropView => Op::DropView,
            DdlKind::RenameTable => Op::RenameTable,
            DdlKind::TruncateTable => Op::TruncateTable,
        }
    }
}

/// A table name as written: `db` is None when unqualified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectName {
    pub db: Option<String>,
    pub name: String,
    /// Where the name (qualifier included) stands in the statement's text.
    pub span: Range<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// Supported DDL and the objects it names (for RENAME: from, to, from, to...).
    Ddl {
        kind: DdlKind,
        objects: Vec<ObjectName>,
    },
    /// DDL dts does not apply (CREATE TRIGGER, GRANT, CREATE USER, ...): the first words.
    Unsupported(String),
    /// `XA END`: the rows before it belong to an XA transaction, committed
    /// (or rolled back) in a later event group when it was prepared.
    XaEnd,
    /// DML logged as a statement (binlog_format STATEMENT or MIXED): its verb
    /// (INSERT, UPDATE, DELETE, REPLACE, LOAD) and the names that qualify
    /// others in it (`db` of `db.t`), among them the databases it touches.
    Dml {
        verb: String,
        qualifiers: Vec<String>,
        /// The one table it writes, where its text says (see [`DmlTarget`]).
        target: DmlTarget,
    },
    /// Not DDL: transaction control, SET, and the like.
    Ignored,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Word(String),
    /// A backtick- or quote-delimited identifier.
    Quoted(String),
    Symbol(char),
}

/// Tokens with their byte ranges in `sql`.
pub fn tokenize_spanned(sql: &str) -> Vec<(Token, Range<usize>)> {
    let mut tokens = Vec::new();
    push_tokens(sql, 0, &mut tokens);
    tokens
}

fn push_tokens(sql: &str, base: usize, tokens: &mut Vec<(Token, Range<usize>)>) {
    let chars: Vec<(usize, char)> = sql.char_indices().collect();
    let offset = |i: usize| base + chars.get(i).map_or(sql.len(), |(at, _)| *at);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i].1;
        let next = chars.get(i + 1).map(|(_, c)| *c);
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('*') {
            // Executable comments (/*! ... */) carry real SQL: keep their content.
            let executable = chars.get(i + 2).map(|(_, c)| *c) == Some('!');
            let end = (i + 2..chars.len().saturating_sub(1))
                .find(|&j| chars[j].1 == '*' && chars[j + 1].1 == '/')
                .unwrap_or(chars.len());
            if executable {
                let start = (i + 3).min(end);
                let version_len = chars[start..end]
                    .iter()
                    .take_while(|(_, c)| c.is_ascii_digit())
                    .count();
                let from = offset(start + version_len) - base;
                let to = offset(end) - base;
                push_tokens(&sql[from..to], base + from, tokens);
            }
            i = end + 2;
        } else if c == '#' || (c == '-' && next == Some('-')) {
            while i < chars.len() && chars[i].1 != '\n' {
                i += 1;
            }
        } else if c == '`' || c == '"' || c == '\'' {
            let start = i;
            let mut value = String::new();
            i += 1;
            while i < chars.len() {
                if chars[i].1 == c {
                    if chars.get(i + 1).map(|(_, c)| *c) == Some(c) {
                        value.push(c);
                        i += 2;
                        continue;
                    }
                    break;
                }
                value.push(chars[i].1);
                i += 1;
            }
            i += 1;
            tokens.push((
                Token::Quoted(value),
                offset(start)..offset(i.min(chars.len())),
            ));
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].1.is_alphanumeric() || chars[i].1 == '_' || chars[i].1 == '$')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().map(|(_, c)| c).collect();
            tokens.push((Token::Word(word), offset(start)..offset(i)));
        } else {
            tokens.push((Token::Symbol(c), offset(i)..offset(i + 1)));
            i += 1;
        }
    }
}

struct Cursor {
    tokens: Vec<Token>,
    spans: Vec<Range<usize>>,
    at: usize,
}

impl Cursor {
    fn new(sql: &str) -> Self {
        let (tokens, spans) = tokenize_spanned(sql).into_iter().unzip();
        Self {
            tokens,
            spans,
            at: 0,
        }
    }

    fn peek_word(&self) -> Option<String> {
        match self.tokens.get(self.at) {
            Some(Token::Word(w)) => Some(w.to_ascii_uppercase()),
            _ => None,
        }
    }

    fn eat(&mut self, word: &str) -> bool {
        if self.peek_word().as_deref() == Some(word) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn eat_all(&mut self, words: &[&str]) -> bool {
        let save = self.at;
        if words.iter().all(|w| self.eat(w)) {
            true
        } else {
            self.at = save;
            false
        }
    }

    /// Skips `KEY = value` options (ALGORITHM=..., DEFINER=user@host, SQL SECURITY ...).
    fn skip_create_options(&mut self) {
        loop {
            match self.peek_word().as_deref() {
                Some("OR") => {
                    self.eat_all(&["OR", "REPLACE"]);
                }
                Some("ALGORITHM") | Some("DEFINER") => {
                    self.at += 1;
                    if matches!(self.tokens.get(self.at), Some(Token::Symbol('='))) {
                        self.at += 1;
                    }
                    // value, possibly user@host
                    self.at += 1;
                    while matches!(self.tokens.get(self.at), Some(Token::Symbol('@'))) {
                        self.at += 2;
                    }
                }
                Some("SQL") => {
                    self.at += 3; // SQL SECURITY {DEFINER|INVOKER}
                }
                Some("AGGREGATE") | Some("UNIQUE") | Some("FULLTEXT") | Some("SPATIAL")
                | Some("ONLINE") | Some("OFFLINE") | Some("IGNORE") | Some("TEMPORARY") => {
                    self.at += 1
                }
                _ => return,
            }
        }
    }

    fn skip_if_exists(&mut self) {
        self.eat_all(&["IF", "NOT", "EXISTS"]);
        self.eat_all(&["IF", "EXISTS"]);
    }

    fn name(&mut self) -> Option<ObjectName> {
        let start = self.spans.get(self.at)?.start;
        let first = self.ident()?;
        if matches!(self.tokens.get(self.at), Some(Token::Symbol('.'))) {
            self.at += 1;
            let second = self.ident()?;
            return Some(ObjectName {
                db: Some(first),
                name: second,
                span: start..self.spans[self.at - 1].end,
            });
        }
        Some(ObjectName {
            db: None,
            name: first,
            span: start..self.spans[self.at - 1].end,
        })
    }

    fn ident(&mut self) -> Option<String> {
        let token = self.tokens.get(self.at)?.clone();
        self.at += 1;
        match token {
            Token::Word(w) | Token::Quoted(w) => Some(w),
            Token::Symbol(_) => None,
        }
    }

    /// From the clauses of an ALTER TABLE: the new name its RENAME clause
    /// gives the table (not RENAME COLUMN, INDEX or KEY).
    fn renamed_to(&mut self) -> Option<ObjectName> {
        let mut depth = 0usize;
        let mut clause_start = true;
        let mut i = self.at;
        while i < self.tokens.len() {
            match &self.tokens[i] {
                Token::Symbol('(') => depth += 1,
                Token::Symbol(')') => depth = depth.saturating_sub(1),
                Token::Symbol(',') if depth == 0 => {
                    clause_start = true;
                    i += 1;
                    continue;
                }
                Token::Word(w)
                    if depth == 0 && clause_start && w.eq_ignore_ascii_case("RENAME") =>
                {
                    let next = match self.tokens.get(i + 1) {
                        Some(Token::Word(n)) => n.to_ascii_uppercase(),
                        _ => String::new(),
                    };
                    if !matches!(next.as_str(), "COLUMN" | "INDEX" | "KEY" | "CONSTRAINT") {
                        self.at = i + 1;
                        if !self.eat("TO") {
                            self.eat("AS");
                        }
                        return self.name();
                    }
                }
                _ => {}
            }
            clause_start = false;
            i += 1;
        }
        None
    }

    fn comma(&mut self) -> bool {
        if matches!(self.tokens.get(self.at), Some(Token::Symbol(','))) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// Moves to just after the next `ON` keyword.
    fn skip_past_on(&mut self) -> bool {
        while self.at < self.tokens.len() {
            let on = self.peek_word().as_deref() == Some("ON");
            self.at += 1;
            if on {
                return true;
            }
        }
        false
    }
}

/// The clauses of an ALTER TABLE after its table name, each its tokens with
/// their places in `sql` (commas inside parentheses kept); `None` for
/// another statement.
pub fn alter_clauses(sql: &str) -> Option<Vec<Vec<(Token, Range<usize>)>>> {
    let mut c = Cursor::new(sql);
    if !c.eat("ALTER") {
        return None;
    }
    c.skip_create_options();
    if !c.eat("TABLE") {
        return None;
    }
    c.name()?;
    let tokens: Vec<(Token, Range<usize>)> = c.tokens[c.at..]
        .iter()
        .cloned()
        .zip(c.spans[c.at..].iter().cloned())
        .collect();
    let mut clauses = Vec::new();
    let (mut depth, mut current) = (0usize, Vec::new());
    for (token, span) in tokens {
        match token {
            Token::Symbol('(') => depth += 1,
            Token::Symbol(')') => depth = depth.saturating_sub(1),
            Token::Symbol(',') if depth == 0 => {
                clauses.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push((token, span));
    }
    clauses.push(current);
    Some(clauses)
}

/// Whether `sql`, an ALTER TABLE, changes only indexes and table options
/// (ADD or DROP INDEX, COMMENT, ENGINE, ...): nothing about how the table's
/// rows read. Anything not recognized counts as changing them.
pub fn alters_only_indexes_or_options(sql: &str) -> bool {
    let mut c = Cursor::new(sql);
    if !c.eat("ALTER") {
        return false;
    }
    c.skip_create_options();
    if !c.eat("TABLE") || c.name().is_none() {
        return false;
    }
    let rest = &c.tokens[c.at..];
    !rest.is_empty()
        && top_level_clauses(rest)
            .iter()
            .all(|clause| keeps_rows(clause))
}

/// The comma-separated clauses of an ALTER, commas inside parentheses kept.
fn top_level_clauses(tokens: &[Token]) -> Vec<&[Token]> {
    let mut clauses = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::Symbol('(') => depth += 1,
            Token::Symbol(')') => depth = depth.saturating_sub(1),
            Token::Symbol(',') if depth == 0 => {
                clauses.push(&tokens[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    clauses.push(&tokens[start..]);
    clauses
}

/// One ALTER clause that leaves every row's columns and values as they were.
fn keeps_rows(clause: &[Token]) -> bool {
    let words: Vec<String> = clause
        .iter()
        .take(3)
        .map(|t| match t {
            Token::Word(w) => w.to_ascii_uppercase(),
            _ => String::new(),
        })
        .collect();
    let word = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    let index = |w: &str| matches!(w, "INDEX" | "KEY");
    match word(0) {
        // Not ADD PRIMARY KEY or ADD CONSTRAINT: the first changes the
        // key rows are applied by, the second may be a foreign key.
        "ADD" => index(word(1)) || matches!(word(1), "UNIQUE" | "FULLTEXT" | "SPATIAL"),
        "DROP" | "RENAME" | "ALTER" => index(word(1)),
        "COMMENT"
        | "ENGINE"
        | "ALGORITHM"
        | "LOCK"
        | "FORCE"
        | "AUTO_INCREMENT"
        | "ROW_FORMAT"
        | "KEY_BLOCK_SIZE"
        | "STATS_PERSISTENT"
        | "STATS_AUTO_RECALC"
        | "STATS_SAMPLE_PAGES"
        | "PAGE_COMPRESSED"
        | "PAGE_COMPRESSION_LEVEL" => true,
        _ => false,
    }
}

/// The names followed by a dot: databases of qualified tables, and tables or
/// aliases of qualified columns.
fn qualifiers(tokens: &[Token]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for pair in tokens.windows(2) {
        if let [Token::Word(name) | Token::Quoted(name), Token::Symbol('.')] = pair {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    names
}

/// The table a statement-logged DML writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DmlTarget {
    /// Not told by its text (a multi-table UPDATE or DELETE, LOAD DATA):
    /// any database it names may be written.
    Unknown,
    /// One table (an INSERT or REPLACE, with or without a SELECT from
    /// others, or a single-table UPDATE): `db` when qualified, else the
    /// statement's default database.
    Table { db: Option<String> },
}

/// The one table an INSERT, REPLACE or single-table UPDATE writes: what
/// pt-table-checksum's `REPLACE INTO percona.checksums ... SELECT ... FROM
/// app.t` writes is the checksum table, not `app.t`.
fn written_table(sql: &str) -> DmlTarget {
    let mut c = Cursor::new(sql);
    let modifiers = ["LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE"];
    let target = if c.eat("INSERT") || c.eat("REPLACE") {
        for _ in 0..2 {
            for modifier in modifiers {
                c.eat(modifier);
            }
        }
        c.eat("INTO");
        c.name()
    } else if c.eat("UPDATE") {
        for modifier in modifiers {
            c.eat(modifier);
        }
        let name = c.name();
        // An alias may follow; anything else (a join, a second table)
        // makes it a multi-table update.
        c.eat("AS");
        if c.peek_word().is_some_and(|w| w != "SET") {
            c.ident();
        }
        name.filter(|_| c.eat("SET"))
    } else {
        None
    };
    match target {
        Some(name) => DmlTarget::Table { db: name.db },
        None => DmlTarget::Unknown,
    }
}

/// The table a `CREATE TABLE t LIKE other` (or `(LIKE other)`) copies.
pub fn like_source(sql: &str) -> Option<ObjectName> {
    let mut c = Cursor::new(sql);
    if !c.eat("CREATE") {
        return None;
    }
    c.skip_create_options();
    if !c.eat("TABLE") {
        return None;
    }
    c.skip_if_exists();
    c.name()?;
    let parenthesized = matches!(c.tokens.get(c.at), Some(Token::Symbol('(')));
    if parenthesized {
        c.at += 1;
    }
    if c.eat("LIKE") {
        c.name()
    } else {
        None
    }
}

/// Table names in `sql` besides the ones `classify` finds at its head:
/// every qualified `db.name` (in a view's body, a routine's, a foreign key's
/// reference) and the table after REFERENCES, qualified or not.
pub fn table_references(sql: &str) -> Vec<ObjectName> {
    let mut c = Cursor::new(sql);
    let mut names = Vec::new();
    while c.at < c.tokens.len() {
        let references = c.peek_word().as_deref() == Some("REFERENCES");
        let dotted = matches!(
            (c.tokens.get(c.at), c.tokens.get(c.at + 1)),
            (
                Some(Token::Word(_) | Token::Quoted(_)),
                Some(Token::Symbol('.'))
            )
        );
        if references {
            c.at += 1;
            if let Some(name) = c.name() {
                names.push(name);
            }
        } else if dotted {
            // `db.t.column` names `db.t`; what follows is skipped with it.
            if let Some(name) = c.name() {
                names.push(name);
            }
            while matches!(c.tokens.get(c.at), Some(Token::Symbol('.'))) {
                c.at += 2;
            }
        } else {
            c.at += 1;
        }
    }
    names
}

pub fn classify(sql: &str) -> Statement {
    let mut c = Cursor::new(sql);
    let tokens = &c.tokens;
    let head: Vec<String> = tokens
        .iter()
        .take(3)
        .map(|t| match t {
            Token::Word(w) => w.to_ascii_uppercase(),
            Token::Quoted(q) => q.clone(),
            Token::Symbol(c) => c.to_string(),
        })
        .collect();
    let unsupported = || Statement::Unsupported(head.join(" "));
    let one = |kind, name: Option<ObjectName>| match name {
        Some(name) => Statement::Ddl {
            kind,
            objects: vec![name],
        },
        None => Statement::Unsupported(head.join(" ")),
    };
    // Unsupported DDL is named by its verb and object kind, past any options
    // (`CREATE DEFINER=... TRIGGER t` is "CREATE TRIGGER t").
    let named = |c: &Cursor, verb: &str| {
        let rest: Vec<String> = c.tokens[c.at..]
            .iter()
            .take(2)
            .enumerate()
            .map(|(i, t)| match t {
                Token::Word(w) if i == 0 => w.to_ascii_uppercase(),
                Token::Word(w) | Token::Quoted(w) => w.clone(),
                Token::Symbol(s) => s.to_string(),
            })
            .collect();
        Statement::Unsupported(format!("{verb} {}", rest.join(" ")).trim().to_string())
    };
    if c.eat("CREATE") {
        c.skip_create_options();
        if c.eat("TABLE") {
            c.skip_if_exists();
            return one(DdlKind::CreateTable, c.name());
        }
        if c.eat("VIEW") {
            c.skip_if_exists();
            return one(DdlKind::CreateView, c.name());
        }
        if c.eat("FUNCTION") {
            c.skip_if_exists();
            return one(DdlKind::CreateFunction, c.name());
        }
        if c.eat("PROCEDURE") {
            c.skip_if_exists();
            return one(DdlKind::CreateProcedure, c.name());
        }
        if c.eat("INDEX") {
            return if c.skip_past_on() {
                one(DdlKind::CreateIndex, c.name())
            } else {
                unsupported()
            };
        }
        if c.eat("TRIGGER") {
            // The trigger, then the table it is on (both may need mapping).
            c.skip_if_exists();
            let trigger = c.name();
            let table = if c.skip_past_on() { c.name() } else { None };
            return match (trigger, table) {
                (Some(trigger), Some(table)) => Statement::Ddl {
                    kind: DdlKind::CreateTrigger,
                    objects: vec![trigger, table],
                },
                _ => unsupported(),
            };
        }
        return named(&c, "CREATE");
    }
    if c.eat("ALTER") {
        c.skip_create_options();
        if c.eat("TABLE") {
            let table = c.name();
            // `ALTER TABLE a RENAME [TO|AS] b` renames the table, as RENAME
            // TABLE does (with whatever other clauses it has).
            if let (Some(from), Some(to)) = (&table, c.renamed_to()) {
                return Statement::Ddl {
                    kind: DdlKind::RenameTable,
                    objects: vec![from.clone(), to],
                };
            }
            return one(DdlKind::AlterTable, table);
        }
        if c.eat("VIEW") {
            return one(DdlKind::AlterView, c.name());
        }
        return named(&c, "ALTER");
    }
    if c.eat("DROP") {
        c.skip_create_options();
        for (word, kind) in [
            ("TABLE", DdlKind::DropTable),
            ("VIEW", DdlKind::DropView),
            ("PROCEDURE", DdlKind::DropProcedure),
            ("FUNCTION", DdlKind::DropFunction),
            ("TRIGGER", DdlKind::DropTrigger),
        ] {
            if c.eat(word) {
                c.skip_if_exists();
                let mut objects = Vec::new();
                while let Some(name) = c.name() {
                    objects.push(name);
                    if !c.comma() {
                        break;
                    }
                }
                return if objects.is_empty() {
                    unsupported()
                } else {
                    Statement::Ddl { kind, objects }
                };
            }
        }
        if c.eat("INDEX") {
            c.skip_if_exists();
            let _index = c.ident();
            return if c.eat("ON") {
                one(DdlKind::DropIndex, c.name())
            } else {
                unsupported()
            };
        }
        return named(&c, "DROP");
    }
    if c.eat_all(&["RENAME", "TABLE"]) {
        let mut objects = Vec::new();
        loop {
            let from = c.name();
            let to = if c.eat("TO") { c.name() } else { None };
            let (Some(from), Some(to)) = (from, to) else {
                return unsupported();
            };
            objects.push(from);
            objects.push(to);
            if !c.comma() {
                break;
            }
        }
        return Statement::Ddl {
            kind: DdlKind::RenameTable,
            objects,
        };
    }
    if c.eat("TRUNCATE") {
        c.eat("TABLE");
        return one(DdlKind::TruncateTable, c.name());
    }
    if head.len() >= 2 && head[0] == "XA" && head[1] == "END" {
        return Statement::XaEnd;
    }
    if let Some(verb @ ("INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "LOAD")) =
        head.first().map(String::as_str)
    {
        return Statement::Dml {
            verb: verb.to_string(),
            qualifiers: qualifiers(&c.tokens),
            target: written_table(sql),
        };
    }
    match head.first().map(String::as_str) {
        Some("GRANT" | "REVOKE" | "REPAIR" | "FLUSH" | "SET" | "INSTALL" | "UNINSTALL") => {
            unsupported()
        }
        // ANALYZE and OPTIMIZE change neither a definition nor a row
        // (pt-online-schema-change runs ANALYZE on its new table).
        Some(
            "BEGIN" | "COMMIT" | "ROLLBACK" | "SAVEPOINT" | "RELEASE" | "XA" | "ANALYZE"
            | "OPTIMIZE",
        )
        | None => Statement::Ignored,
        _ => unsupported(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(sql: &str) -> (DdlKind, Vec<(Option<&'static str>, String)>) {
        match classify(sql) {
            Statement::Ddl { kind, objects } => (
                kind,
                objects
                    .into_iter()
                    .map(|o| (o.db.map(|d| Box::leak(d.into_boxed_str()) as &str), o.name))
                    .collect(),
            ),
            other => panic!("{sql}: {other:?}"),
        }
    }

    /// A statement, what it is, and the tables it names (database, table).
    type DdlCase<'a> = (&'a str, DdlKind, Vec<(Option<&'a str>, &'a str)>);

    #[test]
    fn recognizes_the_supported_ddl() {
        let cases: Vec<DdlCase> = vec![
            ("ALTER TABLE `shop`.`t` ADD COLUMN c INT", DdlKind::AlterTable, vec![(Some("shop"), "t")]),
            ("alter online table t add index (a)", DdlKind::AlterTable, vec![(None, "t")]),
            ("CREATE TABLE IF NOT EXISTS t2 (id int primary key)", DdlKind::CreateTable, vec![(None, "t2")]),
            ("CREATE UNIQUE INDEX ix ON shop.t (a, b)", DdlKind::CreateIndex, vec![(Some("shop"), "t")]),
            ("DROP INDEX `ix` ON `t`", DdlKind::DropIndex, vec![(None, "t")]),
            ("DROP TABLE IF EXISTS `a`,`b` /* generated by server */", DdlKind::DropTable, vec![(None, "a"), (None, "b")]),
            ("RENAME TABLE a TO b, shop.c TO shop.d", DdlKind::RenameTable, vec![(None, "a"), (None, "b"), (Some("shop"), "c"), (Some("shop"), "d")]),
            ("TRUNCATE TABLE t", DdlKind::TruncateTable, vec![(None, "t")]),
            ("truncate t", DdlKind::TruncateTable, vec![(None, "t")]),
            ("CREATE DEFINER=`root`@`localhost` FUNCTION f(x int) RETURNS int RETURN x", DdlKind::CreateFunction, vec![(None, "f")]),
            ("CREATE OR REPLACE ALGORITHM=UNDEFINED DEFINER=`root`@`%` SQL SECURITY DEFINER VIEW `v` AS select 1", DdlKind::CreateView, vec![(None, "v")]),
            ("ALTER ALGORITHM=MERGE VIEW v AS select 2", DdlKind::AlterView, vec![(None, "v")]),
            ("CREATE DEFINER=`u`@`h` PROCEDURE p() select 1", DdlKind::CreateProcedure, vec![(None, "p")]),
            ("DROP VIEW IF EXISTS v, r1.w", DdlKind::DropView, vec![(None, "v"), (Some("r1"), "w")]),
            ("DROP PROCEDURE r1.p", DdlKind::DropProcedure, vec![(Some("r1"), "p")]),
            ("drop function if exists `f`", DdlKind::DropFunction, vec![(None, "f")]),
            ("/* comment */ CREATE TABLE `we``ird` (a int)", DdlKind::CreateTable, vec![(None, "we`ird")]),
        ];
        for (sql, kind, expected) in cases {
            let (got_kind, got) = objects(sql);
            assert_eq!(got_kind, kind, "{sql}");
            let expected: Vec<(Option<&str>, String)> = expected
                .into_iter()
                .map(|(d, n)| (d, n.to_string()))
                .collect();
            assert_eq!(got, expected, "{sql}");
        }
    }

    #[test]
    fn names_keep_where_they_stand_in_the_text() {
        let sql = "ALTER TABLE /*!40000 `shop`.`t` */ ADD c INT";
        match classify(sql) {
            Statement::Ddl { objects, .. } => {
                assert_eq!(&sql[objects[0].span.clone()], "`shop`.`t`");
            }
            other => panic!("{other:?}"),
        }
        let sql = "CREATE VIEW `v` AS select `shop`.`t`.`id` AS `id` from `shop`.`t` join u \
                   /* x.y */ where a.b = 1";
        let found: Vec<&str> = table_references(sql)
            .iter()
            .map(|o| &sql[o.span.clone()])
            .collect();
        assert_eq!(found, ["`shop`.`t`", "`shop`.`t`", "a.b"]);
        let sql = "CREATE TABLE `c` (`p` int, CONSTRAINT `f` FOREIGN KEY (`p`) REFERENCES `parent` (`id`))";
        let found: Vec<(Option<String>, String)> = table_references(sql)
            .into_iter()
            .map(|o| (o.db, o.name))
            .collect();
        assert_eq!(found, [(None, "parent".to_string())]);
    }

    #[test]
    fn others_are_unsupported_or_ignored() {
        let names = |statement: Statement| match statement {
            Statement::Ddl { kind, objects } => Some((
                kind,
                objects
                    .into_iter()
                    .map(|o| format!("{}.{}", o.db.unwrap_or_default(), o.name))
                    .collect::<Vec<_>>(),
            )),
            _ => None,
        };
        assert_eq!(
            names(classify(
                "CREATE DEFINER=`root`@`localhost` TRIGGER tr BEFORE INSERT ON `s`.t FOR EACH ROW SET @x = 1"
            )),
            Some((DdlKind::CreateTrigger, vec![".tr".to_string(), "s.t".into()]))
        );
        assert_eq!(
            names(classify("DROP TRIGGER IF EXISTS s.tr")),
            Some((DdlKind::DropTrigger, vec!["s.tr".to_string()]))
        );
        assert!(matches!(
            classify("GRANT SELECT ON *.* TO u"),
            Statement::Unsupported(_)
        ));
        assert!(matches!(
            classify("CREATE DATABASE x"),
            Statement::Unsupported(_)
        ));
        assert_eq!(classify("SAVEPOINT s1"), Statement::Ignored);
        assert_eq!(classify("  "), Statement::Ignored);
        assert_eq!(
            classify("ANALYZE TABLE `d`.`_t_new` /* pt-online-schema-change */"),
            Statement::Ignored
        );
        assert_eq!(classify("XA END X'7831',X'',1"), Statement::XaEnd);
        // gh-ost's comments between the words.
        assert_eq!(
            names(classify(
                "create /* gh-ost */ table `d`.`_t_gho` like `d`.`t`"
            )),
            Some((DdlKind::CreateTable, vec!["d._t_gho".to_string()]))
        );
        assert_eq!(
            names(classify(
                "rename /* gh-ost */ table `d`.`t` to `d`.`_t_del`, `d`.`_t_gho` to `d`.`t`"
            )),
            Some((
                DdlKind::RenameTable,
                vec![
                    "d.t".to_string(),
                    "d._t_del".into(),
                    "d._t_gho".into(),
                    "d.t".into()
                ]
            ))
        );
    }

    #[test]
    fn an_alter_renaming_the_table_is_a_rename() {
        for (sql, to) in [
            ("ALTER TABLE t RENAME TO u", "u"),
            (
                "alter /* gh-ost */ table `d`.`t` rename `d`.`_t_del`",
                "d._t_del",
            ),
            ("ALTER TABLE t ADD x INT, RENAME AS u", "u"),
        ] {
            let (kind, objects) = objects(sql);
            assert_eq!(kind, DdlKind::RenameTable, "{sql}");
            let last = objects.last().map(|(db, name)| match db {
                Some(db) => format!("{db}.{name}"),
                None => name.clone(),
            });
            assert_eq!(last.as_deref(), Some(to), "{sql}");
        }
        for sql in [
            "ALTER TABLE t RENAME COLUMN a TO b",
            "ALTER TABLE t RENAME INDEX a TO b, RENAME KEY c TO d",
            "ALTER TABLE t ADD CHECK (name <> 'RENAME')",
        ] {
            assert_eq!(objects(sql).0, DdlKind::AlterTable, "{sql}");
        }
    }

    #[test]
    fn the_table_a_create_like_copies_is_found() {
        let source = |sql: &str| like_source(sql).map(|o| (o.db, o.name));
        assert_eq!(
            source("create /* gh-ost */ table `d`.`_t_gho` like `d`.`t`"),
            Some((Some("d".to_string()), "t".to_string()))
        );
        assert_eq!(
            source("CREATE TABLE IF NOT EXISTS x (LIKE t)"),
            Some((None, "t".to_string()))
        );
        assert_eq!(source("CREATE TABLE x (id INT) COMMENT 'LIKE t'"), None);
        assert_eq!(source("CREATE VIEW v AS SELECT 1 LIKE t"), None);
    }

    #[test]
    fn alters_of_indexes_and_options_are_told_from_alters_of_rows() {
        for keeps in [
            "ALTER TABLE t ADD INDEX by_v (v)",
            "alter online table app.t add unique key u (a, b), drop key old, comment = 'x'",
            "ALTER TABLE t ADD FULLTEXT (body), ENGINE=InnoDB, ALGORITHM=INPLACE, LOCK=NONE",
            "ALTER TABLE `t` RENAME INDEX a TO b, ALTER INDEX c IGNORED, FORCE",
        ] {
            assert!(alters_only_indexes_or_options(keeps), "{keeps}");
        }
        for changes in [
            "ALTER TABLE t MODIFY v TEXT",
            "ALTER TABLE t ADD INDEX i (v), ADD COLUMN c INT",
            "ALTER TABLE t ADD PRIMARY KEY (id)",
            "ALTER TABLE t DROP PRIMARY KEY",
            "ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (p) REFERENCES q (id)",
            "ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4",
            "ALTER TABLE t",
            "CREATE INDEX i ON t (v)",
        ] {
            assert!(!alters_only_indexes_or_options(changes), "{changes}");
        }
        assert_eq!(classify("XA COMMIT X'7831',X'',1"), Statement::Ignored);
    }

    #[test]
    fn statement_logged_dml_is_named_with_its_qualifiers() {
        let dml = |verb: &str, qualifiers: &[&str]| {
            let sql_target = match verb {
                "UPDATE" => DmlTarget::Table {
                    db: Some("app".into()),
                },
                "INSERT" => DmlTarget::Table { db: None },
                _ => DmlTarget::Unknown,
            };
            Statement::Dml {
                verb: verb.into(),
                qualifiers: qualifiers.iter().map(|q| q.to_string()).collect(),
                target: sql_target,
            }
        };
        assert_eq!(
            classify("update `app`.t set t.a = 1 where id = 2"),
            dml("UPDATE", &["app", "t"])
        );
        assert_eq!(
            classify("/* app */ INSERT INTO t VALUES (1)"),
            dml("INSERT", &[])
        );
        assert_eq!(
            classify("LOAD DATA INFILE '/tmp/x' INTO TABLE shop.t"),
            dml("LOAD", &["shop"])
        );
        assert_eq!(
            classify("DELETE a FROM a JOIN other.b USING (id)"),
            dml("DELETE", &["other"])
        );
    }

    #[test]
    fn the_one_table_an_insert_or_single_table_update_writes_is_told() {
        let target = |sql: &str| match classify(sql) {
            Statement::Dml { target, .. } => target,
            other => panic!("not DML: {other:?}"),
        };
        let table = |db: Option<&str>| DmlTarget::Table {
            db: db.map(str::to_string),
        };
        assert_eq!(
            target(
                "REPLACE INTO `percona`.`checksums` (db, tbl, chunk) SELECT 'sbtest', 'sbtest1', \
                 COUNT(*) FROM `sbtest`.`sbtest1` FORCE INDEX(`PRIMARY`) WHERE ((`id` >= '1'))"
            ),
            table(Some("percona"))
        );
        assert_eq!(
            target("INSERT IGNORE INTO t SELECT * FROM other.t"),
            table(None)
        );
        assert_eq!(
            target("UPDATE percona.checksums SET master_crc = '1' WHERE db = 'app'"),
            table(Some("percona"))
        );
        assert_eq!(target("UPDATE t AS x SET x.a = 1"), table(None));
        assert_eq!(
            target("UPDATE a JOIN other.b USING (id) SET a.x = b.x"),
            DmlTarget::Unknown
        );
        assert_eq!(
            target("LOAD DATA INFILE '/x' INTO TABLE shop.t"),
            DmlTarget::Unknown
        );
    }
}
