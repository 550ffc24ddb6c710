import TwofoldStore

/// The `kind` label of `twofold_store_errors_total`: which `StoreError` it was.
enum StoreErrorKind: String, CaseIterable {
    case wrongKey = "wrong_key", schemaTooNew = "schema_too_new", corruptRecord = "corrupt_record", badKeyFile = "bad_key_file"
    case notEnrolled = "not_enrolled", database, unreachable, conflict

    init(_ error: StoreError) {
        self = switch error {
        case .wrongKey: .wrongKey
        case .schemaTooNew: .schemaTooNew
        case .corruptRecord: .corruptRecord
        case .badKeyFile: .badKeyFile
        case .notEnrolled: .notEnrolled
        case .database: .database
        case .unreachable: .unreachable
        case .conflict: .conflict
        }
    }
}
