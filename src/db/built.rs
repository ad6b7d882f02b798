//! The SQL of a statement whose text depends only on its shape, built by sea-query once per
//! backend. A mutation on the hot path (a new source: the `seq` bump with the role read, the
//! source's row, the event's row) used to build each statement anew: a profile of the shape's
//! commits put 7 % of the server's samples in sea-query's builders and the allocations they
//! make. Each use now gives only its values, in the order the build binds them; in debug builds
//! (every test) the first build of each backend checks that order (a JSON value may be given
//! as its text, which is how SQLite keeps JSON).
use std::sync::OnceLock;

use sea_orm::{DbBackend, Statement, Value};

#[derive(Default)]
pub struct BuiltOnce {
    sqlite: OnceLock<String>,
    postgres: OnceLock<String>,
}

impl BuiltOnce {
    pub const fn new() -> Self {
        Self {
            sqlite: OnceLock::new(),
            postgres: OnceLock::new(),
        }
    }

    /// The statement with these `values`; `build` builds the whole statement, with the same
    /// values, the first time on a backend.
    pub fn statement(
        &self,
        backend: DbBackend,
        values: Vec<Value>,
        build: impl FnOnce() -> Statement,
    ) -> Statement {
        let cell = match backend {
            DbBackend::Sqlite => &self.sqlite,
            DbBackend::Postgres => &self.postgres,
            _ => return build(),
        };
        if let Some(sql) = cell.get() {
            return Statement::from_sql_and_values(backend, sql.clone(), values);
        }
        let built = build();
        debug_assert!(
            built
                .values
                .as_ref()
                .is_some_and(|b| b.0.len() == values.len()
                    && b.0.iter().zip(&values).all(|(b, v)| binds_as(v, b))),
            "the values are not in the order the build binds them: {values:?} against {:?}",
            built.values
        );
        let _ = cell.set(built.sql.clone());
        built
    }
}

/// Whether `given` binds as the build's `built` does: on SQLite, which keeps JSON as text, a
/// JSON value may be given as its text.
fn binds_as(given: &Value, built: &Value) -> bool {
    match (given, built) {
        (Value::String(Some(text)), Value::Json(Some(json))) => {
            serde_json::to_string(json).is_ok_and(|json| json == **text)
        }
        _ => given == built,
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::sea_query::{Expr, ExprTrait, Query};

    use super::*;

    fn bump(backend: DbBackend, id: i64, by: i64) -> Statement {
        let mut q = Query::update();
        q.table("t")
            .value("n", Expr::col("n").add(by))
            .and_where(Expr::col("id").eq(id));
        backend.build(&q)
    }

    #[test]
    fn later_statements_take_the_first_builds_sql_with_their_own_values() {
        for backend in [DbBackend::Sqlite, DbBackend::Postgres] {
            let once = BuiltOnce::new();
            let first = once.statement(backend, vec![2_i64.into(), 7_i64.into()], || {
                bump(backend, 7, 2)
            });
            assert_eq!(first, bump(backend, 7, 2));
            let mut built = false;
            let later = once.statement(backend, vec![5_i64.into(), 9_i64.into()], || {
                built = true;
                bump(backend, 9, 5)
            });
            assert!(!built, "built again");
            assert_eq!(later, bump(backend, 9, 5), "{backend:?}");
        }
    }

    #[test]
    fn json_may_be_given_as_its_text_and_nothing_else_may_differ() {
        let json = serde_json::json!({"a": "é", "n": 1});
        assert!(binds_as(&json.to_string().into(), &json.clone().into()));
        assert!(!binds_as(
            &r#"{"a":"e","n":1}"#.into(),
            &json.clone().into()
        ));
        assert!(!binds_as(&Value::from(1_i64), &Value::from(1_i32)));
    }

    #[test]
    #[should_panic(expected = "not in the order")]
    fn values_out_of_order_are_caught_on_the_first_build() {
        BuiltOnce::new().statement(DbBackend::Sqlite, vec![7_i64.into(), 2_i64.into()], || {
            bump(DbBackend::Sqlite, 7, 2)
        });
    }
}
