import PostgresNIO

/// The one page query of the per-user listings (contacts, FIDO2 keys, SSH keys), as SQLite's
/// `userPageSQL`.
extension PostgresStore {
    /// A page of `table`'s rows by user: at most `limit` users after `afterUser`, and those whose
    /// running total of rows stays within `limit`; a user's rows come whole, the first user's
    /// always. Selects `alias.user_name, columns`, ordered by user, then `order`.
    static func userPage(table: String, alias: String, columns: String, order: String, after afterUser: String?, limit: Int) -> PostgresQuery {
        """
        WITH page AS (
            SELECT user_name, count(*) AS n FROM \(unescaped: table) WHERE user_name > \(afterUser ?? "")
            GROUP BY user_name ORDER BY user_name LIMIT \(limit)
        ), running AS (
            SELECT user_name, n, sum(n) OVER (ORDER BY user_name) AS total FROM page
        )
        SELECT \(unescaped: alias).user_name, \(unescaped: columns)
        FROM running r JOIN \(unescaped: table) \(unescaped: alias) ON \(unescaped: alias).user_name = r.user_name
        WHERE r.total <= \(limit) OR r.total = r.n
        ORDER BY \(unescaped: alias).user_name, \(unescaped: order)
        """
    }
}
