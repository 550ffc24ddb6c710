/// The one page query of the per-user listings (contacts, FIDO2 keys, SSH keys).
extension SQLiteStore {
    /// A page of `table`'s rows by user: at most `?2` users after `?1` (each has a row, so no more
    /// are needed), their rows counted, and those whose running total stays within `?2`: a user's
    /// rows come whole, and the first user's always come (a page is never empty while rows
    /// remain, whatever the limit). Selects `alias.user, columns`, ordered by user, then `order`.
    static func userPageSQL(table: String, alias: String, columns: String, order: String) -> String {
        """
        WITH page AS (
            SELECT user, count(*) AS n FROM \(table) WHERE user > ?1 GROUP BY user ORDER BY user LIMIT ?2
        ), running AS (
            SELECT user, n, sum(n) OVER (ORDER BY user) AS total FROM page
        )
        SELECT \(alias).user, \(columns)
        FROM running r JOIN \(table) \(alias) ON \(alias).user = r.user
        WHERE r.total <= ?2 OR r.total = r.n
        ORDER BY \(alias).user, \(order)
        """
    }
}
