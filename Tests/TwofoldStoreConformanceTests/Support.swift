// The helpers shared with TwofoldStoreTests (withTempDir, makeKeys, enroll, accept) live in
// Tests/StoreTestSupport.
@_exported import TwofoldStoreTestSupport
