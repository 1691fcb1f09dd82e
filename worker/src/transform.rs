//! What changes between source and destination: names mapped by the route
//! (in row changes and in statement text), operations filtered, statement
//! text rewritten for the destination.

pub mod columns;
pub mod ddl;
pub mod filter;
pub mod loop_marker;
pub mod names;
pub mod rows;
pub mod select;
pub mod sql_text;

/// A route compiled from `objects` (the task file's object sections, after
/// any top-level keys).
#[cfg(test)]
pub(crate) fn test_route(objects: &str) -> dts_common::route::Route {
    let (head, sections) = objects.split_at(objects.find('[').unwrap_or(0));
    let text = format!(
        "{head}\n[source]\nhost = \"a\"\nuser = \"u\"\n[destination]\nhost = \"b\"\nuser = \"u\"\n{sections}"
    );
    let spec = dts_common::TaskSpec::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    dts_common::route::Route::compile(&spec).unwrap_or_else(|e| panic!("{e}"))
}
