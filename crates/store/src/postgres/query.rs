//! Read helpers of the PostgreSQL store: [`Cols`] over sqlx's rows, typed arguments, and
//! the listings' `WHERE` builder.

use crate::codec::SortKey;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{AssertSqlSafe, PgPool, Postgres, Row};

use crate::codec::Cols;
use crate::{Conflict, Page, PageRequest, Result, StoreError};

impl Cols for PgRow {
    fn text(&self, i: usize) -> Result<String> {
        Ok(self.try_get(i)?)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        Ok(self.try_get(i)?)
    }
    fn int(&self, i: usize) -> Result<i64> {
        Ok(self.try_get(i)?)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        Ok(self.try_get(i)?)
    }
    fn bytes(&self, i: usize) -> Result<Vec<u8>> {
        Ok(self.try_get(i)?)
    }
    fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>> {
        Ok(self.try_get(i)?)
    }
    fn flag(&self, i: usize) -> Result<bool> {
        Ok(self.try_get(i)?)
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolClosed => StoreError::Closed,
            e => StoreError::Database(e.to_string()),
        }
    }
}

/// Whether `e` is a unique-key violation (SQLSTATE 23505).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23505"))
}

/// A unique-key violation becomes `Conflict(conflict)`; any other error stays a database error.
pub(crate) fn conflict_as(conflict: Conflict) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| {
        if is_unique_violation(&e) {
            StoreError::Conflict(conflict)
        } else {
            e.into()
        }
    }
}

/// An argument of a query built at run time.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
    Bool(bool),
}

pub(crate) fn bind_all<'q>(
    mut q: Query<'q, Postgres, PgArguments>,
    args: &[Arg],
) -> Query<'q, Postgres, PgArguments> {
    for arg in args {
        q = match arg {
            Arg::Text(s) => q.bind(s.clone()),
            Arg::Int(n) => q.bind(*n),
            Arg::Bool(b) => q.bind(*b),
        };
    }
    q
}

/// A `WHERE` clause built from conditions with numbered parameters (`$N` in a condition
/// becomes that parameter's number), for a count and a page of one listing.
pub(crate) struct Where {
    cond: String,
    args: Vec<Arg>,
}

impl Where {
    pub(crate) fn new(first: &str, value: Arg) -> Self {
        let mut w = Where {
            cond: String::new(),
            args: Vec::new(),
        };
        w.push(first, value);
        w
    }

    fn push(&mut self, cond: &str, value: Arg) {
        self.args.push(value);
        self.cond
            .push_str(&cond.replace("$N", &format!("${}", self.args.len())));
    }

    pub(crate) fn and(&mut self, cond: &str, value: Arg) {
        self.cond.push_str(" AND ");
        self.push(cond, value);
    }

    /// The page `page` of matching rows of `table` in `seq` order, and their total count
    /// if asked.
    pub(crate) async fn page<T>(
        self,
        pool: &PgPool,
        table: &str,
        columns: &str,
        page: PageRequest,
        map: fn(&PgRow) -> Result<(i64, T)>,
    ) -> Result<Page<T>> {
        self.page_with_key(pool, table, columns, SortKey::ascending("seq"), page, map)
            .await
    }

    /// [`Where::page`] over any `FROM` clause, ordered by the integer column `key`.
    pub(crate) async fn page_with_key<T>(
        mut self,
        pool: &PgPool,
        from: &str,
        columns: &str,
        key: SortKey<'_>,
        page: PageRequest,
        map: fn(&PgRow) -> Result<(i64, T)>,
    ) -> Result<Page<T>> {
        let total = if page.count_total {
            let sql = format!("SELECT COUNT(*) FROM {from} WHERE {}", self.cond);
            let row = bind_all(sqlx::query(AssertSqlSafe(sql)), &self.args)
                .fetch_one(pool)
                .await?;
            Some(row.try_get::<i64, _>(0)?.max(0) as u64)
        } else {
            None
        };
        let (start, op, order) = key.parts();
        let key = key.column;
        self.args.push(Arg::Int(page.after.unwrap_or(start)));
        self.args.push(Arg::Int(page.first as i64 + 1));
        let n = self.args.len();
        let sql = format!(
            "SELECT {columns} FROM {from} WHERE {} AND {key} {op} ${} ORDER BY {key} {order} LIMIT ${n}",
            self.cond,
            n - 1
        );
        let rows = bind_all(sqlx::query(AssertSqlSafe(sql)), &self.args)
            .fetch_all(pool)
            .await?;
        let mut items = rows.iter().map(map).collect::<Result<Vec<_>>>()?;
        let has_next = items.len() > page.first;
        items.truncate(page.first);
        Ok(Page {
            items,
            has_next,
            total,
        })
    }
}

/// The record `id` of `store` in `table`.
pub(crate) async fn by_id<'e, T>(
    executor: impl sqlx::PgExecutor<'e>,
    table: &str,
    columns: &str,
    store: &str,
    id: &str,
    map: fn(&PgRow) -> Result<(i64, T)>,
) -> Result<Option<T>> {
    let sql = format!("SELECT {columns} FROM {table} WHERE store_hash = $1 AND id = $2");
    sqlx::query(AssertSqlSafe(sql))
        .bind(store.to_owned())
        .bind(id.to_owned())
        .fetch_optional(executor)
        .await?
        .map(|row| map(&row).map(|(_, record)| record))
        .transpose()
}
