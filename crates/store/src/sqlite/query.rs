//! Read helpers shared by the listings and lookups of the SQLite store.

use crate::codec::SortKey;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, Row};

use crate::{Page, PageRequest, Result};

/// A `WHERE` clause built from conditions with numbered parameters (`?N` in a condition
/// becomes that parameter's number), for a count and a page of one listing.
pub(crate) struct Where {
    cond: String,
    args: Vec<Value>,
}

impl Where {
    pub(crate) fn new(first: &str, value: Value) -> Self {
        let mut w = Where {
            cond: String::new(),
            args: Vec::new(),
        };
        w.push(first, value);
        w
    }

    fn push(&mut self, cond: &str, value: Value) {
        self.args.push(value);
        self.cond
            .push_str(&cond.replace("?N", &format!("?{}", self.args.len())));
    }

    pub(crate) fn and(&mut self, cond: &str, value: Value) {
        self.cond.push_str(" AND ");
        self.push(cond, value);
    }

    /// The page `page` of matching rows in `seq` order, and their total count if asked.
    pub(crate) fn page<T>(
        self,
        c: &Connection,
        table: &str,
        columns: &str,
        page: PageRequest,
        map: fn(&Row<'_>) -> Result<(i64, T)>,
    ) -> Result<Page<T>> {
        self.page_with_key(c, table, columns, SortKey::ascending("seq"), page, map)
    }

    /// [`Where::page`] over any `FROM` clause, ordered by the integer column `key`.
    pub(crate) fn page_with_key<T>(
        mut self,
        c: &Connection,
        from: &str,
        columns: &str,
        key: SortKey<'_>,
        page: PageRequest,
        map: fn(&Row<'_>) -> Result<(i64, T)>,
    ) -> Result<Page<T>> {
        let total = if page.count_total {
            let n: i64 = c.query_row(
                &format!("SELECT COUNT(*) FROM {from} WHERE {}", self.cond),
                params_from_iter(&self.args),
                |r| r.get(0),
            )?;
            Some(n.max(0) as u64)
        } else {
            None
        };
        let (start, op, order) = key.parts();
        let key = key.column;
        self.args.push(Value::Integer(page.after.unwrap_or(start)));
        self.args.push(Value::Integer(page.first as i64 + 1));
        let n = self.args.len();
        let sql = format!(
            "SELECT {columns} FROM {from} WHERE {} AND {key} {op} ?{} ORDER BY {key} {order} LIMIT ?{n}",
            self.cond,
            n - 1
        );
        let mut stmt = c.prepare_cached(&sql)?;
        let mut rows = stmt.query(params_from_iter(&self.args))?;
        let mut items = Vec::new();
        while let Some(row) = rows.next()? {
            items.push(map(row)?);
        }
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
pub(crate) fn by_id<T>(
    c: &Connection,
    table: &str,
    columns: &str,
    store: &str,
    id: &str,
    map: fn(&Row<'_>) -> Result<(i64, T)>,
) -> Result<Option<T>> {
    let sql = format!("SELECT {columns} FROM {table} WHERE store_hash = ?1 AND id = ?2");
    let mut stmt = c.prepare_cached(&sql)?;
    let mut rows = stmt.query(params![store, id])?;
    rows.next()?
        .map(|row| map(row).map(|(_, record)| record))
        .transpose()
}
