import Foundation
import Testing
import TwofoldCore

@Test("the system clock reads real time in milliseconds")
func systemClock() {
    let before = Int64(Date().timeIntervalSince1970 * 1_000)
    let now = SystemClock().nowMillis()
    let after = Int64(Date().timeIntervalSince1970 * 1_000)
    #expect(before - 1 <= now && now <= after + 1)
}
